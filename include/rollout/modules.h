/* The C bindings, each required as rollout.<name>: runtime/bindings/<name>.c
 * and runtime/proc/ in the binary, runtime/net/ in rollout-net.so (the host
 * finds those by name there). Included with ROLLOUT_MODULE(name) defined;
 * keep one line per module. */
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
ROLLOUT_MODULE(sock)
