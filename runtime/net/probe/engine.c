/* The probe engine: probe_run (see include/rollout/probe.h for the design).
 * Lua-free: the binding (runtime/net/probe/probe.c) hands it callbacks for
 * a Lua extract function and progress.
 *
 * One worker = one multi handle (for connecting), one epoll set and its
 * slots (runtime/net/probe/conn.c). With threads > 1 each worker runs on
 * its own thread (no Lua there) and the calling thread supervises: ^C, the
 * deadline and progress; results are merged afterwards. The rules all
 * workers share (when to stop, how a request is counted) are
 * runtime/net/probe/rules.c. */
#include "internal.h"

#include "rollout/curlx.h"
#include "rollout/host.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void *worker_main(void *arg)
{
    probe_worker *w = arg;
    probe_worker_loop(w, 0);
    w->t_done = rollout_now();
    atomic_store(&w->finished, 1);
    return NULL;
}

/* The calling thread while worker threads run: ^C, deadline, progress. */
static int supervise(probe_shared *s, probe_worker *ws, int nw, char *err, size_t errlen)
{
    const probe_config *c = s->cfg;
    double next_progress = c->progress ? rollout_now() + c->progress_interval : 0;
    int status = PROBE_OK;
    for (;;) {
        int all = 1;
        double now;
        struct timespec ts = {0, 10 * 1000 * 1000};
        for (int i = 0; i < nw; i++)
            if (!atomic_load(&ws[i].finished))
                all = 0;
        if (all)
            break;
        now = rollout_now();
        if (status == PROBE_OK && rollout_interrupted()) {
            status = PROBE_INTERRUPTED;
            snprintf(err, errlen, "interrupted");
        }
        if (status == PROBE_OK && next_progress > 0 && now >= next_progress) {
            if (c->progress(c->progress_ud, atomic_load(&s->done), c->n, now - s->t0) != 0) {
                status = PROBE_ABORTED;
                snprintf(err, errlen, "the progress function failed");
            }
            next_progress = rollout_now() + c->progress_interval;
        }
        if (status != PROBE_OK)
            atomic_store(&s->stop, PROBE_ABORT); /* workers notice within 100 ms */
        nanosleep(&ts, NULL);
    }
    return status;
}

/* How many workers: `threads`, but one when Lua runs on the calling thread
 * (an extract function, recorded samples), and never more than the
 * concurrency or the count. */
static int worker_count(const probe_config *cfg)
{
    int nw = cfg->threads < 1 ? 1 : cfg->threads > PROBE_MAX_THREADS ? PROBE_MAX_THREADS : cfg->threads;
    if (cfg->record || cfg->mode == PROBE_EXTRACT_CALLBACK)
        nw = 1;
    if (nw > cfg->concurrency)
        nw = cfg->concurrency;
    if (cfg->n > 0 && (uint64_t)nw > cfg->n)
        nw = (int)cfg->n;
    return nw < 1 ? 1 : nw;
}

/* Frees the request bytes, wiped first: they may hold credentials. */
static void free_requests(probe_shared *s)
{
    if (s->req != NULL) {
        memset(s->req, 0, s->req_len);
        free(s->req);
        s->req = NULL;
    }
    for (int v = 0; v < PROBE_MAX_VARIANTS; v++) {
        if (s->vreq[v] != NULL) {
            memset(s->vreq[v], 0, s->vreq_len[v]);
            free(s->vreq[v]);
            s->vreq[v] = NULL;
        }
    }
}

/* The shared state: the request bytes of the run and of each variant, and
 * the counters. 0, or -1 with err set. */
static int shared_init(probe_shared *s, const probe_config *cfg, char *err, size_t errlen)
{
    int tls = 0;
    memset(s, 0, sizeof *s);
    s->cfg = cfg;
    if (probe_http_request(cfg, &s->req, &s->req_len, &tls, err, errlen) != 0)
        return -1;
    s->tls = tls;
    for (int v = 0; v < cfg->nvariants; v++) {
        probe_config vc = *cfg;
        vc.headers = cfg->variant_headers[v];
        if (probe_http_request(&vc, &s->vreq[v], &s->vreq_len[v], &tls, err, errlen) != 0) {
            free_requests(s);
            return -1;
        }
    }
    s->head = cfg->method != NULL && strcmp(cfg->method, "HEAD") == 0;
    atomic_init(&s->claimed, 0);
    atomic_init(&s->seq, 0);
    atomic_init(&s->done, 0);
    atomic_init(&s->stop, PROBE_GO);
    atomic_init(&s->hit_duration, 0);
    atomic_init(&s->hit_deadline, 0);
    return 0;
}

/* Sets up nw workers, the concurrency split over them (and never more
 * slots than n). PROBE_OK, or PROBE_FAILED with err set. */
static int init_workers(probe_shared *s, probe_worker *ws, int nw, char *err, size_t errlen)
{
    const probe_config *cfg = s->cfg;
    int conc = cfg->concurrency, per, extra;
    if (cfg->n > 0 && (uint64_t)conc > cfg->n)
        conc = (int)cfg->n;
    per = conc / nw;
    extra = conc % nw;
    for (int i = 0; i < nw; i++)
        ws[i].ep = -1;
    for (int i = 0; i < nw; i++) {
        if (probe_worker_init(&ws[i], s, i, per + (i < extra)) != 0) {
            snprintf(err, errlen, "%s", ws[i].err);
            return PROBE_FAILED;
        }
    }
    return PROBE_OK;
}

/* Each worker on a thread of its own while the calling thread supervises
 * (signals such as ^C go to the calling thread, never to a worker). */
static int run_threads(probe_shared *s, probe_worker *ws, int nw, char *err, size_t errlen)
{
    sigset_t all, old;
    int status = PROBE_OK, st;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    for (int i = 0; i < nw; i++) {
        if (pthread_create(&ws[i].tid, NULL, worker_main, &ws[i]) == 0) {
            ws[i].started = 1;
            continue;
        }
        atomic_store(&ws[i].finished, 1);
        atomic_store(&s->stop, PROBE_ABORT);
        if (status == PROBE_OK) {
            status = PROBE_FAILED;
            snprintf(err, errlen, "cannot start a probe thread");
        }
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    st = supervise(s, ws, nw, err, errlen);
    if (status == PROBE_OK)
        status = st;
    for (int i = 0; i < nw; i++)
        if (ws[i].started)
            pthread_join(ws[i].tid, NULL);
    return status;
}

/* Runs the workers (on the calling thread when there is one) until they
 * are done: the run's status and duration (to the end of the last worker,
 * not to when the supervisor noticed). */
static int run_workers(probe_shared *s, probe_worker *ws, int nw, probe_result *res)
{
    const probe_config *cfg = s->cfg;
    int status = PROBE_OK;
    s->t0 = rollout_now();
    s->t_end = cfg->duration > 0 ? s->t0 + cfg->duration : 0;
    s->t_deadline = cfg->deadline > 0 ? s->t0 + cfg->deadline : 0;
    if (nw == 1) {
        probe_worker_loop(&ws[0], 1);
        ws[0].t_done = rollout_now();
    } else {
        status = run_threads(s, ws, nw, res->err, sizeof res->err);
    }
    for (int i = 0; i < nw; i++)
        if (ws[i].t_done - s->t0 > res->duration)
            res->duration = ws[i].t_done - s->t0;
    for (int i = 0; i < nw && status == PROBE_OK; i++) {
        if (ws[i].status != PROBE_OK) {
            status = ws[i].status;
            snprintf(res->err, sizeof res->err, "%s", ws[i].err);
        }
    }
    return status;
}

/* The workers' tallies into res (moved from a single worker, merged from
 * several), then the workers freed. Returns status, or PROBE_FAILED when
 * memory ran out merging. */
static int collect(probe_worker *ws, int nw, probe_result *res, int status)
{
    for (int i = 0; i < nw; i++)
        if (ws[i].r != NULL)
            ws[i].r->sent = ws[i].sent;
    if (nw == 1 && ws[0].r != NULL) {
        probe_result_move(res, ws[0].r);
    } else {
        for (int i = 0; i < nw; i++) {
            if (ws[i].r != NULL && probe_result_merge(res, ws[i].r) != 0 && status == PROBE_OK) {
                status = PROBE_FAILED;
                snprintf(res->err, sizeof res->err, "out of memory");
            }
        }
    }
    for (int i = 0; i < nw; i++) {
        probe_worker_free(&ws[i]);
        if (ws[i].r != NULL) {
            probe_result_free(ws[i].r);
            free(ws[i].r);
        }
    }
    return status;
}

static int failed_early(probe_result *res, const char *msg)
{
    if (msg != NULL)
        snprintf(res->err, sizeof res->err, "%s", msg);
    res->status = PROBE_FAILED;
    return res->status;
}

int probe_run(const probe_config *cfg, probe_result *res)
{
    probe_shared s;
    probe_worker *ws;
    int nw = worker_count(cfg), status;

    res->status = PROBE_OK;
    if (curlx_init() != CURLE_OK)
        return failed_early(res, "curl_global_init failed");
    if (shared_init(&s, cfg, res->err, sizeof res->err) != 0)
        return failed_early(res, NULL);
    ws = calloc((size_t)nw, sizeof *ws);
    if (ws == NULL) {
        free_requests(&s);
        return failed_early(res, "out of memory");
    }
    status = init_workers(&s, ws, nw, res->err, sizeof res->err);
    if (status == PROBE_OK)
        status = run_workers(&s, ws, nw, res);
    status = collect(ws, nw, res, status);
    free(ws);
    free_requests(&s);

    if (atomic_load(&s.hit_deadline))
        res->stopped = PROBE_STOPPED_DEADLINE;
    else if (atomic_load(&s.hit_duration))
        res->stopped = PROBE_STOPPED_DURATION;
    probe_result_sort(res);
    res->status = status;
    return status;
}
