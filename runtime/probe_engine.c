/* The probe engine: many requests on libcurl's multi interface (see
 * include/rollout/probe.h). Lua-free: the binding (runtime/probe.c) hands it
 * callbacks for a Lua extract function and progress.
 *
 * One worker = one multi handle and its slots; a slot = one easy handle and
 * its buffers, reused for every request it sends (remove + re-add keeps the
 * connection in the multi's pool: keep-alive). With threads > 1 each worker
 * runs on its own thread (no Lua there) and the calling thread supervises:
 * ^C, the deadline and progress; results are merged afterwards. */
#include "rollout/probe.h"

#include "rollout/curlx.h"
#include "rollout/host.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

enum { GO = 0, NO_MORE = 1, ABORT = 2 };

typedef struct shared {
    const probe_config *cfg;
    atomic_uint_fast64_t claimed; /* request numbers handed out (n mode) */
    atomic_uint_fast64_t done;    /* completed, all workers */
    atomic_int stop;              /* GO, NO_MORE (n or duration reached), ABORT */
    atomic_int hit_duration;      /* sending stopped because the duration ended */
    atomic_int hit_deadline;      /* the deadline stopped work in progress */
    double t0, t_end, t_deadline; /* rollout_now(); 0 = none */
} shared;

typedef struct worker worker;

typedef struct fdinfo {
    uint8_t flags;   /* FD_REGISTERED, FD_WANTED, FD_OURS */
    uint32_t events; /* registered epoll events */
} fdinfo;

typedef struct slot {
    CURL *e;
    worker *w;
    char *body;
    size_t blen, bcap;
    char *hdr;
    size_t hlen, hcap;
    char ver[PROBE_VERSION_MAX + 1];
    size_t verlen;
    int have_ver;
    int too_large;
    int in_multi;
} slot;

struct worker {
    shared *s;
    int index;
    CURLM *m;
    slot *slots;
    int nslots;
    int active;
    int ep;              /* epoll set of curl's sockets */
    fdinfo *fds;         /* epoll state by descriptor */
    size_t nfds;
    double timer_at;     /* curl's next timeout (rollout_now), -1 = none */
    uint64_t sent;
    probe_result *r;     /* this worker's tally */
    int status;          /* enum probe_status */
    char err[256];
    pthread_t tid;
    int started;
    double t_done;       /* when its loop ended (rollout_now) */
    atomic_int finished;
};

/* ---- curl callbacks ------------------------------------------------ */

static size_t on_body(char *data, size_t size, size_t nmemb, void *ud)
{
    slot *sl = ud;
    size_t n = size * nmemb;
    if (sl->w->s->cfg->mode == PROBE_EXTRACT_HEADER)
        return n; /* the body is not needed */
    if (n > PROBE_BODY_MAX - sl->blen) {
        sl->too_large = 1;
        return 0;
    }
    if (sl->blen + n > sl->bcap) {
        size_t cap = sl->bcap ? sl->bcap : 1024;
        char *p;
        while (cap < sl->blen + n)
            cap *= 2;
        if (cap > PROBE_BODY_MAX)
            cap = PROBE_BODY_MAX;
        p = realloc(sl->body, cap);
        if (p == NULL)
            return 0;
        sl->body = p;
        sl->bcap = cap;
    }
    memcpy(sl->body + sl->blen, data, n);
    sl->blen += n;
    return n;
}

static size_t on_header(char *line, size_t size, size_t nitems, void *ud)
{
    slot *sl = ud;
    size_t n = size * nitems;
    const probe_config *c = sl->w->s->cfg;

    if (n >= 5 && memcmp(line, "HTTP/", 5) == 0) { /* a new response */
        sl->have_ver = 0;
        sl->hlen = 0;
    }
    if (c->mode == PROBE_EXTRACT_HEADER) {
        size_t nlen = strlen(c->header_name);
        if (n > nlen && line[nlen] == ':' && strncasecmp(line, c->header_name, nlen) == 0) {
            const char *v = line + nlen + 1, *end = line + n;
            while (v < end && (*v == ' ' || *v == '\t'))
                v++;
            while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ' || end[-1] == '\t'))
                end--;
            if (probe_valid_version(v, (size_t)(end - v))) {
                memcpy(sl->ver, v, (size_t)(end - v));
                sl->verlen = (size_t)(end - v);
                sl->have_ver = 1;
            }
        }
    } else if (c->mode == PROBE_EXTRACT_CALLBACK && n <= PROBE_HEADERS_MAX - sl->hlen) {
        if (sl->hlen + n > sl->hcap) {
            size_t cap = sl->hcap ? sl->hcap : 1024;
            char *p;
            while (cap < sl->hlen + n)
                cap *= 2;
            p = realloc(sl->hdr, cap);
            if (p == NULL)
                return n; /* headers are a courtesy to the callback */
            sl->hdr = p;
            sl->hcap = cap;
        }
        memcpy(sl->hdr + sl->hlen, line, n);
        sl->hlen += n;
    }
    return n;
}

static void fail(worker *w, int status, const char *msg)
{
    if (w->status == PROBE_OK) {
        w->status = status;
        snprintf(w->err, sizeof w->err, "%s", msg);
    }
    atomic_store(&w->s->stop, ABORT);
}

static enum probe_kind transport_kind(CURLcode rc)
{
    switch (rc) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
        return PROBE_CONNECT;
    case CURLE_OPERATION_TIMEDOUT:
        return PROBE_TIMEOUT;
    default:
        return PROBE_OTHER;
    }
}

/* Puts one finished request in its bucket. Returns 0, or -1 to stop. */
static int finish(worker *w, slot *sl, CURLcode rc)
{
    const probe_config *c = w->s->cfg;
    probe_result *r = w->r;
    long status = 0;
    curl_off_t total_us = 0;
    uint32_t us;
    int32_t what = 0;
    int kind = -1;

    curl_easy_getinfo(sl->e, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(sl->e, CURLINFO_TOTAL_TIME_T, &total_us);
    us = total_us < 0 ? 0 : total_us > (curl_off_t)UINT32_MAX ? UINT32_MAX : (uint32_t)total_us;

    if (rc == CURLE_OK || (rc == CURLE_WRITE_ERROR && sl->too_large)) {
        if (status > 0 && status < PROBE_STATUS_MAX)
            r->status_counts[status]++;
        if (status >= 200 && status <= 299) {
            int got = 0;
            if (rc == CURLE_OK) {
                if (c->mode == PROBE_EXTRACT_JSON)
                    got = probe_extract_json(c, sl->body, sl->blen, sl->ver, &sl->verlen);
                else if (c->mode == PROBE_EXTRACT_HEADER)
                    got = sl->have_ver;
                else {
                    probe_response resp = {status, sl->body, sl->blen, sl->hdr, sl->hlen};
                    got = c->extract(c->extract_ud, &resp, sl->ver, &sl->verlen);
                    if (got < 0) {
                        fail(w, PROBE_ABORTED, "the extract function failed");
                        return -1;
                    }
                    if (got > 0 && !probe_valid_version(sl->ver, sl->verlen))
                        got = 0;
                }
            }
            if (got) {
                int idx = probe_tally_version(r, sl->ver, sl->verlen);
                if (idx == -2) {
                    fail(w, PROBE_FAILED, "out of memory");
                    return -1;
                }
                if (idx >= 0) {
                    what = idx;
                    r->counts[idx]++;
                } else {
                    kind = PROBE_PARSE; /* more distinct versions than we keep */
                }
            } else {
                kind = PROBE_PARSE;
            }
        } else if (status >= 400 && status <= 499) {
            kind = PROBE_HTTP_4XX;
        } else if (status >= 500 && status <= 599) {
            kind = PROBE_HTTP_5XX;
        } else {
            kind = PROBE_OTHER;
        }
    } else {
        kind = transport_kind(rc);
    }
    if (kind >= 0) {
        r->errors[kind]++;
        what = -(kind + 1);
    }
    r->completed++;
    atomic_fetch_add_explicit(&w->s->done, 1, memory_order_relaxed);
    if (probe_tally_latency(r, us) != 0 || (c->record && probe_tally_sample(r, what, us) != 0)) {
        fail(w, PROBE_FAILED, "out of memory");
        return -1;
    }
    return 0;
}

static int on_socket(CURL *e, curl_socket_t fd, int what, void *userp, void *socketp);
static curl_socket_t on_open(void *clientp, curlsocktype purpose, struct curl_sockaddr *a);
static int on_close(void *clientp, curl_socket_t fd);
static int on_timer(CURLM *m, long timeout_ms, void *userp);

/* ---- slots --------------------------------------------------------- */

static int slot_init(worker *w, slot *sl)
{
    const probe_config *c = w->s->cfg;
    CURL *e = curl_easy_init();
    int ok;
    sl->w = w;
    sl->e = e;
    if (e == NULL)
        return -1;
    ok = curlx_common(e) == CURLE_OK &&
         curl_easy_setopt(e, CURLOPT_URL, c->url) == CURLE_OK &&
         curl_easy_setopt(e, CURLOPT_PRIVATE, sl) == CURLE_OK &&
         curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, on_open) == CURLE_OK &&
         curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, w) == CURLE_OK &&
         curl_easy_setopt(e, CURLOPT_CLOSESOCKETFUNCTION, on_close) == CURLE_OK &&
         curl_easy_setopt(e, CURLOPT_CLOSESOCKETDATA, w) == CURLE_OK &&
         curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body) == CURLE_OK &&
         curl_easy_setopt(e, CURLOPT_WRITEDATA, sl) == CURLE_OK &&
         curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, c->timeout_ms) == CURLE_OK &&
         curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, c->connect_timeout_ms) == CURLE_OK &&
         curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1) == CURLE_OK &&
         curl_easy_setopt(e, CURLOPT_PROXY, "") == CURLE_OK; /* the gateway itself, never a proxy */
    if (ok && c->mode != PROBE_EXTRACT_JSON)
        ok = curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header) == CURLE_OK &&
             curl_easy_setopt(e, CURLOPT_HEADERDATA, sl) == CURLE_OK;
    if (ok && c->headers != NULL)
        ok = curl_easy_setopt(e, CURLOPT_HTTPHEADER, c->headers) == CURLE_OK;
    if (ok && !c->keepalive)
        ok = curl_easy_setopt(e, CURLOPT_FORBID_REUSE, 1L) == CURLE_OK;
    if (ok && c->method != NULL && strcmp(c->method, "GET") != 0) {
        if (strcmp(c->method, "HEAD") == 0)
            ok = curl_easy_setopt(e, CURLOPT_NOBODY, 1L) == CURLE_OK;
        else
            ok = curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, c->method) == CURLE_OK;
    }
    return ok ? 0 : -1;
}

/* May this worker send one more request? Claims it when there is a count. */
static int may_start(worker *w, double now)
{
    shared *s = w->s;
    const probe_config *c = s->cfg;
    if (atomic_load_explicit(&s->stop, memory_order_relaxed) != GO)
        return 0;
    if (s->t_deadline > 0 && now >= s->t_deadline) {
        atomic_store(&s->hit_deadline, 1);
        atomic_store(&s->stop, ABORT);
        return 0;
    }
    if (s->t_end > 0 && now >= s->t_end) {
        int expect = GO;
        if (atomic_compare_exchange_strong(&s->stop, &expect, NO_MORE))
            atomic_store(&s->hit_duration, 1);
        return 0;
    }
    if (c->n > 0 && atomic_fetch_add(&s->claimed, 1) >= c->n) {
        int expect = GO;
        atomic_compare_exchange_strong(&s->stop, &expect, NO_MORE);
        return 0;
    }
    return 1;
}

static int slot_start(worker *w, slot *sl)
{
    sl->blen = 0;
    sl->hlen = 0;
    sl->have_ver = 0;
    sl->verlen = 0;
    sl->too_large = 0;
    if (curl_multi_add_handle(w->m, sl->e) != CURLM_OK) {
        fail(w, PROBE_FAILED, "curl_multi_add_handle failed");
        return -1;
    }
    sl->in_multi = 1;
    w->active++;
    w->sent++;
    return 0;
}

static void worker_free(worker *w)
{
    if (w->slots != NULL) {
        for (int i = 0; i < w->nslots; i++)
            if (w->slots[i].in_multi && w->m != NULL)
                curl_multi_remove_handle(w->m, w->slots[i].e);
    }
    if (w->m != NULL)
        curl_multi_cleanup(w->m);
    w->m = NULL;
    if (w->ep >= 0)
        close(w->ep);
    w->ep = -1;
    free(w->fds);
    w->fds = NULL;
    w->nfds = 0;
    if (w->slots != NULL) {
        for (int i = 0; i < w->nslots; i++) {
            if (w->slots[i].e != NULL)
                curl_easy_cleanup(w->slots[i].e);
            free(w->slots[i].body);
            free(w->slots[i].hdr);
        }
        free(w->slots);
    }
    w->slots = NULL;
}

static int worker_init(worker *w, shared *s, int index, int nslots)
{
    w->s = s;
    w->index = index;
    w->nslots = nslots;
    w->status = PROBE_OK;
    atomic_init(&w->finished, 0);
    w->timer_at = -1;
    w->ep = epoll_create1(EPOLL_CLOEXEC);
    if (w->ep < 0) {
        snprintf(w->err, sizeof w->err, "epoll_create1: %s", strerror(errno));
        return -1;
    }
    w->r = calloc(1, sizeof *w->r);
    w->slots = calloc((size_t)nslots, sizeof *w->slots);
    w->m = curl_multi_init();
    if (w->r == NULL || w->slots == NULL || w->m == NULL) {
        snprintf(w->err, sizeof w->err, "out of memory");
        return -1;
    }
    curl_multi_setopt(w->m, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)nslots);
    curl_multi_setopt(w->m, CURLMOPT_MAXCONNECTS, (long)nslots);
    curl_multi_setopt(w->m, CURLMOPT_PIPELINING, (long)CURLPIPE_NOTHING);
    curl_multi_setopt(w->m, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(w->m, CURLMOPT_SOCKETDATA, w);
    curl_multi_setopt(w->m, CURLMOPT_TIMERFUNCTION, on_timer);
    curl_multi_setopt(w->m, CURLMOPT_TIMERDATA, w);
    for (int i = 0; i < nslots; i++) {
        if (slot_init(w, &w->slots[i]) != 0) {
            snprintf(w->err, sizeof w->err, "cannot set up a curl handle"); /* no URL: credentials */
            return -1;
        }
    }
    return 0;
}

/* ---- the loop ------------------------------------------------------
 * curl_multi_socket_action on an epoll set: curl tells us which sockets to
 * watch (on_socket) and when its next timeout is (on_timer); we hand it
 * exactly the sockets that are ready, so a wake-up costs in proportion to
 * the work done, not to the number of slots. */

/* Per-descriptor epoll state. Registrations are kept lazily: when curl
 * stops watching a socket (CURL_POLL_REMOVE: the connection went back to the
 * pool) it stays in the epoll set, so reusing it for the next request costs
 * no epoll_ctl. An idle socket that becomes ready is dropped then (on_ready).
 * Our own open/close callbacks keep the table exact when descriptor numbers
 * are reused; sockets curl made itself are unregistered at once. */
enum { FD_REGISTERED = 1, FD_WANTED = 2, FD_OURS = 4 };

static fdinfo *fd_get(worker *w, curl_socket_t fd)
{
    if (fd < 0)
        return NULL;
    if ((size_t)fd >= w->nfds) {
        size_t n = w->nfds ? w->nfds : 64;
        fdinfo *p;
        while (n <= (size_t)fd)
            n *= 2;
        p = realloc(w->fds, n * sizeof *p);
        if (p == NULL)
            return NULL;
        memset(p + w->nfds, 0, (n - w->nfds) * sizeof *p);
        w->fds = p;
        w->nfds = n;
    }
    return &w->fds[fd];
}

static curl_socket_t on_open(void *clientp, curlsocktype purpose, struct curl_sockaddr *a)
{
    worker *w = clientp;
    curl_socket_t fd;
    fdinfo *fi;
    (void)purpose;
    fd = socket(a->family, a->socktype, a->protocol);
    if (fd < 0)
        return CURL_SOCKET_BAD;
    fi = fd_get(w, fd);
    if (fi == NULL) {
        close(fd);
        return CURL_SOCKET_BAD;
    }
    fi->flags = FD_OURS;
    fi->events = 0;
    return fd;
}

static int on_close(void *clientp, curl_socket_t fd)
{
    worker *w = clientp;
    if (fd >= 0 && (size_t)fd < w->nfds) {
        if (w->fds[fd].flags & FD_REGISTERED)
            epoll_ctl(w->ep, EPOLL_CTL_DEL, fd, NULL); /* close would do it too */
        w->fds[fd].flags = 0;
        w->fds[fd].events = 0;
    }
    return close(fd);
}

static int on_socket(CURL *e, curl_socket_t fd, int what, void *userp, void *socketp)
{
    worker *w = userp;
    fdinfo *fi = fd_get(w, fd);
    struct epoll_event ev;
    uint32_t events;
    (void)e;
    (void)socketp;
    if (fi == NULL)
        return -1;
    if (what == CURL_POLL_REMOVE) {
        if (fi->flags & FD_OURS) {
            fi->flags &= ~FD_WANTED; /* lazily: it may be reused soon */
        } else {
            /* not a connection of ours (the resolver's socketpair): curl
             * closes it without telling us, so forget it now */
            if (fi->flags & FD_REGISTERED)
                epoll_ctl(w->ep, EPOLL_CTL_DEL, fd, NULL);
            fi->flags = 0;
            fi->events = 0;
        }
        return 0;
    }
    events = (what & CURL_POLL_IN ? EPOLLIN : 0) | (what & CURL_POLL_OUT ? EPOLLOUT : 0);
    fi->flags |= FD_WANTED;
    if ((fi->flags & FD_REGISTERED) && fi->events == events)
        return 0;
    memset(&ev, 0, sizeof ev);
    ev.data.fd = fd;
    ev.events = events;
    if (fi->flags & FD_REGISTERED) {
        if (epoll_ctl(w->ep, EPOLL_CTL_MOD, fd, &ev) != 0 && errno == ENOENT)
            epoll_ctl(w->ep, EPOLL_CTL_ADD, fd, &ev);
    } else if (epoll_ctl(w->ep, EPOLL_CTL_ADD, fd, &ev) != 0 && errno == EEXIST) {
        epoll_ctl(w->ep, EPOLL_CTL_MOD, fd, &ev);
    }
    fi->flags |= FD_REGISTERED;
    fi->events = events;
    return 0;
}

/* An event on fd: hand it to curl, or drop an idle socket from the set. */
static int on_ready(worker *w, curl_socket_t fd, uint32_t revents, int *running)
{
    int flags;
    if (fd >= 0 && (size_t)fd < w->nfds && !(w->fds[fd].flags & FD_WANTED)) {
        if (w->fds[fd].flags & FD_REGISTERED)
            epoll_ctl(w->ep, EPOLL_CTL_DEL, fd, NULL);
        w->fds[fd].flags &= FD_OURS;
        w->fds[fd].events = 0;
        return 0;
    }
    flags = (revents & EPOLLIN ? CURL_CSELECT_IN : 0) | (revents & EPOLLOUT ? CURL_CSELECT_OUT : 0) |
            (revents & (EPOLLERR | EPOLLHUP) ? CURL_CSELECT_ERR : 0);
    return curl_multi_socket_action(w->m, fd, flags, running) == CURLM_OK ? 0 : -1;
}

static int on_timer(CURLM *m, long timeout_ms, void *userp)
{
    worker *w = userp;
    (void)m;
    /* 0 (due now, after every add_handle) needs no clock reading */
    w->timer_at = timeout_ms < 0 ? -1 : timeout_ms == 0 ? 0 : rollout_now() + (double)timeout_ms / 1000.0;
    return 0;
}

/* How long epoll may sleep: curl's timer, the deadline, the end of the
 * duration, the next progress call, and at most 100 ms (^C, stop flag). */
static int wait_ms(const worker *w, double now, double next_progress)
{
    const shared *s = w->s;
    double wait = 0.1;
    if (w->timer_at >= 0 && w->timer_at - now < wait)
        wait = w->timer_at - now;
    if (s->t_deadline > 0 && s->t_deadline - now < wait)
        wait = s->t_deadline - now;
    if (s->t_end > 0 && now < s->t_end && s->t_end - now < wait)
        wait = s->t_end - now;
    if (next_progress > 0 && next_progress - now < wait)
        wait = next_progress - now;
    if (wait <= 0)
        return 0;
    return (int)(wait * 1000.0) + 1;
}

/* Collects finished transfers, restarting their slots. Returns -1 to stop. */
static int reap(worker *w, double now)
{
    CURLMsg *msg;
    int queued;
    while ((msg = curl_multi_info_read(w->m, &queued)) != NULL) {
        slot *sl;
        char *priv = NULL;
        CURLcode rc;
        if (msg->msg != CURLMSG_DONE)
            continue;
        rc = msg->data.result; /* msg is invalid after the remove */
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &priv);
        sl = (slot *)(void *)priv;
        curl_multi_remove_handle(w->m, sl->e);
        sl->in_multi = 0;
        w->active--;
        if (finish(w, sl, rc) != 0)
            return -1;
        if (may_start(w, now) && slot_start(w, sl) != 0)
            return -1;
    }
    return 0;
}

/* Runs until no request is in flight and none may start, or until ABORT.
 * supervise: this is the calling thread of a single-threaded run (it
 * checks ^C and calls progress itself). */
static void worker_loop(worker *w, int supervise)
{
    shared *s = w->s;
    const probe_config *c = s->cfg;
    struct epoll_event evs[64];
    double now = rollout_now();
    double next_progress = supervise && c->progress ? now + c->progress_interval : 0;
    int running = 0;

    for (int i = 0; i < w->nslots && may_start(w, now); i++)
        if (slot_start(w, &w->slots[i]) != 0)
            return;
    while (w->active > 0) {
        int n = epoll_wait(w->ep, evs, (int)(sizeof evs / sizeof evs[0]), wait_ms(w, now, next_progress));
        if (n < 0 && errno != EINTR) {
            fail(w, PROBE_FAILED, "epoll_wait failed");
            return;
        }
        for (int i = 0; i < n; i++) {
            if (on_ready(w, evs[i].data.fd, evs[i].events, &running) != 0) {
                fail(w, PROBE_FAILED, "curl_multi_socket_action failed");
                return;
            }
        }
        now = rollout_now();
        if (w->timer_at >= 0 && now >= w->timer_at) {
            w->timer_at = -1;
            if (curl_multi_socket_action(w->m, CURL_SOCKET_TIMEOUT, 0, &running) != CURLM_OK) {
                fail(w, PROBE_FAILED, "curl_multi_socket_action failed");
                return;
            }
        }
        if (reap(w, now) != 0)
            return;
        if (atomic_load_explicit(&s->stop, memory_order_relaxed) == ABORT)
            return;
        if (supervise && rollout_interrupted()) {
            fail(w, PROBE_INTERRUPTED, "interrupted");
            return;
        }
        if (s->t_deadline > 0 && now >= s->t_deadline) {
            if (w->active > 0) {
                atomic_store(&s->hit_deadline, 1);
                atomic_store(&s->stop, ABORT);
            }
            return;
        }
        if (next_progress > 0 && now >= next_progress) {
            if (c->progress(c->progress_ud, atomic_load(&s->done), c->n, now - s->t0) != 0) {
                fail(w, PROBE_ABORTED, "the progress function failed");
                return;
            }
            now = rollout_now();
            next_progress = now + c->progress_interval;
        }
    }
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    worker_loop(w, 0);
    w->t_done = rollout_now();
    atomic_store(&w->finished, 1);
    return NULL;
}

/* The calling thread while worker threads run: ^C, deadline, progress. */
static int supervise(shared *s, worker *ws, int nw, char *err, size_t errlen)
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
            atomic_store(&s->stop, ABORT); /* workers notice within 100 ms */
        nanosleep(&ts, NULL);
    }
    return status;
}

int probe_run(const probe_config *cfg, probe_result *res)
{
    shared s;
    worker *ws;
    int nw = cfg->threads < 1 ? 1 : cfg->threads > PROBE_MAX_THREADS ? PROBE_MAX_THREADS : cfg->threads;
    int status = PROBE_OK;
    int per, extra;

    res->status = PROBE_OK;
    if (curlx_init() != CURLE_OK) {
        res->status = PROBE_FAILED;
        snprintf(res->err, sizeof res->err, "curl_global_init failed");
        return res->status;
    }
    if (cfg->record || cfg->mode == PROBE_EXTRACT_CALLBACK)
        nw = 1;
    if (nw > cfg->concurrency)
        nw = cfg->concurrency;
    if (cfg->n > 0 && (uint64_t)nw > cfg->n)
        nw = (int)cfg->n;
    if (nw < 1)
        nw = 1;

    memset(&s, 0, sizeof s);
    s.cfg = cfg;
    atomic_init(&s.claimed, 0);
    atomic_init(&s.done, 0);
    atomic_init(&s.stop, GO);
    atomic_init(&s.hit_duration, 0);
    atomic_init(&s.hit_deadline, 0);

    ws = calloc((size_t)nw, sizeof *ws);
    if (ws == NULL) {
        res->status = PROBE_FAILED;
        snprintf(res->err, sizeof res->err, "out of memory");
        return res->status;
    }
    for (int i = 0; i < nw; i++)
        ws[i].ep = -1;
    /* slots: concurrency split over the workers, and never more than n */
    {
        int conc = cfg->concurrency;
        if (cfg->n > 0 && (uint64_t)conc > cfg->n)
            conc = (int)cfg->n;
        per = conc / nw;
        extra = conc % nw;
    }
    for (int i = 0; i < nw; i++) {
        if (worker_init(&ws[i], &s, i, per + (i < extra)) != 0) {
            status = PROBE_FAILED;
            snprintf(res->err, sizeof res->err, "%s", ws[i].err);
            break;
        }
    }

    if (status == PROBE_OK) {
        s.t0 = rollout_now();
        s.t_end = cfg->duration > 0 ? s.t0 + cfg->duration : 0;
        s.t_deadline = cfg->deadline > 0 ? s.t0 + cfg->deadline : 0;
        if (nw == 1) {
            worker_loop(&ws[0], 1);
            ws[0].t_done = rollout_now();
        } else {
            sigset_t all, old;
            sigfillset(&all);
            /* signals (^C) go to the calling thread, never to a worker */
            pthread_sigmask(SIG_BLOCK, &all, &old);
            for (int i = 0; i < nw; i++) {
                if (pthread_create(&ws[i].tid, NULL, worker_main, &ws[i]) == 0) {
                    ws[i].started = 1;
                } else {
                    atomic_store(&ws[i].finished, 1);
                    atomic_store(&s.stop, ABORT);
                    if (status == PROBE_OK) {
                        status = PROBE_FAILED;
                        snprintf(res->err, sizeof res->err, "cannot start a probe thread");
                    }
                }
            }
            pthread_sigmask(SIG_SETMASK, &old, NULL);
            {
                int st = supervise(&s, ws, nw, res->err, sizeof res->err);
                if (status == PROBE_OK)
                    status = st;
            }
            for (int i = 0; i < nw; i++)
                if (ws[i].started)
                    pthread_join(ws[i].tid, NULL);
        }
        /* the end of the last worker, not when the supervisor noticed */
        for (int i = 0; i < nw; i++)
            if (ws[i].t_done - s.t0 > res->duration)
                res->duration = ws[i].t_done - s.t0;
        for (int i = 0; i < nw && status == PROBE_OK; i++) {
            if (ws[i].status != PROBE_OK) {
                status = ws[i].status;
                snprintf(res->err, sizeof res->err, "%s", ws[i].err);
            }
        }
    }

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
        worker_free(&ws[i]);
        if (ws[i].r != NULL) {
            probe_result_free(ws[i].r);
            free(ws[i].r);
        }
    }
    free(ws);

    if (atomic_load(&s.hit_deadline))
        res->stopped = PROBE_STOPPED_DEADLINE;
    else if (atomic_load(&s.hit_duration))
        res->stopped = PROBE_STOPPED_DURATION;
    probe_result_sort(res);
    res->status = status;
    return status;
}
