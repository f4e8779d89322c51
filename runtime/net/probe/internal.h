/* Private to the probe engine (runtime/net/probe/): what engine.c (the run
 * and its threads), conn.c (one worker's connections and its event loop)
 * and rules.c (stop rules, counting) share. Lua-free.
 *
 * Dependencies go one way: engine.c -> conn.c -> rules.c -> tally.c,
 * extract.c; http.c (request bytes, response parser) is used by engine.c
 * and conn.c. */
#ifndef ROLLOUT_PROBE_INTERNAL_H
#define ROLLOUT_PROBE_INTERNAL_H

#include "rollout/probe.h"

#include <pthread.h>
#include <stdatomic.h>

enum { PROBE_GO = 0, PROBE_NO_MORE = 1, PROBE_ABORT = 2 };

/* Outcomes of a request besides the error kinds of enum probe_kind. */
enum {
    PROBE_OUT_RESPONSE = -1, /* a complete response (status in the slot's parser) */
    PROBE_OUT_TOO_LARGE = -2 /* a response whose kept body went over the cap */
};

typedef struct probe_shared {
    const probe_config *cfg;
    char *req;                    /* the request bytes (probe_http_request) */
    size_t req_len;
    char *vreq[PROBE_MAX_VARIANTS]; /* the request bytes of each variant */
    size_t vreq_len[PROBE_MAX_VARIANTS];
    atomic_uint_fast64_t seq;     /* requests started, all workers (variant cycle) */
    int tls;                      /* https: read until curl says EAGAIN */
    int head;                     /* the method is HEAD: responses have no body */
    atomic_uint_fast64_t claimed; /* request numbers handed out (n mode) */
    atomic_uint_fast64_t done;    /* completed, all workers */
    atomic_int stop;              /* PROBE_GO, PROBE_NO_MORE, PROBE_ABORT */
    atomic_int hit_duration;      /* sending stopped because the duration ended */
    atomic_int hit_deadline;      /* the deadline stopped work in progress */
    double t0, t_end, t_deadline; /* rollout_now(); 0 = none */
} probe_shared;

typedef struct probe_worker probe_worker;
typedef struct probe_slot probe_slot;

enum probe_phase {
    SLOT_IDLE = 0,   /* no request */
    SLOT_CONNECTING, /* libcurl is connecting (the handle is in the multi) */
    SLOT_SENDING,    /* request bytes left to write */
    SLOT_RECEIVING   /* waiting for / reading the response */
};

/* One concurrency slot: an easy handle (CONNECT_ONLY) that holds at most
 * one connection, and the request in flight on it. */
struct probe_slot {
    probe_worker *w;
    CURL *e;
    enum probe_phase phase;
    int in_multi;       /* e is in the worker's multi (connecting or connected) */
    int connected;      /* the connection is established and driven by us */
    int reused;         /* it completed a response before this request */
    int lost;           /* libcurl closed the connection under us */
    int fd;             /* its socket, -1 when none */
    int retried;        /* this request was resent on a new connection */
    int variant;        /* the request variant in flight (0 without variants) */
    double t_start;     /* when this request started (rollout_now) */
    double t_deadline;  /* its timeout; 0 = none */
    size_t req_off;     /* request bytes written */
    size_t got;         /* response bytes received for this request */
    rbuf in;            /* received, not yet parsed (at most IN_MAX bytes) */
    probe_http http;
    rbuf hdr;           /* the head, for an extract callback */
    char ver[PROBE_VERSION_MAX + 1];
    size_t verlen;
    int have_ver;
    char by[PROBE_VERSION_MAX + 1]; /* the served_by header's version */
    size_t bylen;
    int have_by;
    probe_slot *prev, *next; /* requests in flight, by deadline */
};

/* Per descriptor: who drives it. */
typedef struct probe_fd {
    probe_slot *own;  /* a connection of ours; NULL: libcurl watches it */
    uint32_t events;  /* registered epoll events */
    int registered;
} probe_fd;

struct probe_worker {
    probe_shared *s;
    int index;
    CURLM *m;
    probe_slot *slots;
    int nslots;
    int active;          /* requests in flight */
    int ep;              /* epoll set */
    probe_fd *fds;
    size_t nfds;
    double timer_at;     /* libcurl's next timeout (rollout_now), -1 = none */
    int lost;            /* some slot's connection was closed by libcurl */
    probe_slot *first, *last; /* requests in flight, earliest deadline first */
    uint64_t sent;
    probe_result *r;     /* this worker's tally */
    int status;          /* enum probe_status */
    char err[256];
    pthread_t tid;
    int started;
    double t_done;       /* when its loop ended (rollout_now) */
    atomic_int finished;
};

/* ---- runtime/net/probe/rules.c ---- */

/* May this worker send one more request? Claims it when there is a count. */
int probe_may_start(probe_worker *w, double now);
/* Records the worker's first failure and stops every worker. */
void probe_fail(probe_worker *w, int status, const char *msg);
/* Puts a finished request in its bucket: outcome is PROBE_OUT_RESPONSE,
 * PROBE_OUT_TOO_LARGE or an enum probe_kind. 0, or -1 to stop. */
int probe_finish(probe_worker *w, probe_slot *sl, int outcome, double now);

/* ---- runtime/net/probe/conn.c ---- */

int probe_worker_init(probe_worker *w, probe_shared *s, int index, int nslots);
void probe_worker_free(probe_worker *w);
/* Runs until no request is in flight and none may start, or until abort.
 * supervise: the calling thread of a single-threaded run (checks ^C and
 * calls progress itself). */
void probe_worker_loop(probe_worker *w, int supervise);

#endif
