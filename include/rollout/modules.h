/* The C bindings, one per runtime/<name>.c, each required as rollout.<name>.
 * Included with ROLLOUT_MODULE(name) defined; keep one line per module. */
ROLLOUT_MODULE(sys)
ROLLOUT_MODULE(weights)
ROLLOUT_MODULE(time)
ROLLOUT_MODULE(stats)
ROLLOUT_MODULE(proc)
ROLLOUT_MODULE(fs)
ROLLOUT_MODULE(http)
ROLLOUT_MODULE(probe)
ROLLOUT_MODULE(yaml)
ROLLOUT_MODULE(json)
ROLLOUT_MODULE(http_session)
