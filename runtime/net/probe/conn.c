/* One probe worker's connections and its event loop.
 *
 * Why this design (see also include/rollout/probe.h): a libcurl transfer per
 * request cost the probe ~10 us of user CPU per request against wrk's ~1 us,
 * and on a machine whose CPUs are shared with the gateway and the backends
 * that CPU is throughput lost. So libcurl only establishes connections — an
 * easy handle per slot with CURLOPT_CONNECT_ONLY, driven by
 * curl_multi_socket_action (DNS, TCP, TLS with verification, never a proxy)
 * — and stays in the multi holding its connection; the probe then writes
 * the prebuilt request with curl_easy_send (TLS included), reads with
 * curl_easy_recv into the slot's buffer, parses with probe_http_feed, and
 * sends the next request on the same connection (keep-alive). Its own epoll
 * set watches both libcurl's sockets (while connecting) and its own
 * connections (CURLINFO_ACTIVESOCKET); a per-request deadline list gives
 * the timeouts. A connection is given back to libcurl (the handle removed,
 * which closes it) and a new one made when the server closes or says
 * "Connection: close", after an error or a timeout, and after every request
 * with keepalive = false.
 *
 * A reused connection that the server closed before any byte of the
 * response (an idle keep-alive connection it timed out) gets the request
 * once more on a new connection, as browsers and curl do; that is not an
 * error. A refused connection, or one reset or closed in the middle of a
 * response, is.
 *
 * Nothing is left to libcurl's HTTP code, so no request needs the old
 * curl-transfer path: the probe only ever speaks HTTP/1.1 (never HTTP/2),
 * builds Basic credentials from the URL itself, and never uses a proxy. */
#include "internal.h"

#include "rollout/curlx.h"
#include "rollout/host.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#define IN_FIRST 8192                     /* first receive buffer of a slot */
#define IN_MAX (PROBE_HEAD_MAX + 16384)   /* what the parser may need at once */
#define MAX_AGE_S (1L << 30)              /* "never" for CURLOPT_MAXAGE_CONN */

static int on_socket(CURL *e, curl_socket_t fd, int what, void *userp, void *socketp);
static curl_socket_t on_open(void *clientp, curlsocktype purpose, struct curl_sockaddr *a);
static int on_close(void *clientp, curl_socket_t fd);
static int on_timer(CURLM *m, long timeout_ms, void *userp);
static int slot_go(probe_worker *w, probe_slot *sl);

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

/* ---- descriptors ----------------------------------------------------
 * One table entry per descriptor number: whether a connection of ours owns
 * it, and what is registered in the epoll set. Our open/close callbacks
 * keep it exact when numbers are reused. */

static probe_fd *fd_get(probe_worker *w, curl_socket_t fd)
{
    if (fd < 0)
        return NULL;
    if ((size_t)fd >= w->nfds) {
        size_t n = w->nfds ? w->nfds : 64;
        probe_fd *p;
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

static int fd_watch(probe_worker *w, probe_fd *fi, int fd, uint32_t events)
{
    struct epoll_event ev;
    if (fi->registered && fi->events == events)
        return 0;
    memset(&ev, 0, sizeof ev);
    ev.data.fd = fd;
    ev.events = events;
    if (fi->registered) {
        if (epoll_ctl(w->ep, EPOLL_CTL_MOD, fd, &ev) != 0 &&
            (errno != ENOENT || epoll_ctl(w->ep, EPOLL_CTL_ADD, fd, &ev) != 0))
            return -1;
    } else if (epoll_ctl(w->ep, EPOLL_CTL_ADD, fd, &ev) != 0 &&
               (errno != EEXIST || epoll_ctl(w->ep, EPOLL_CTL_MOD, fd, &ev) != 0)) {
        return -1;
    }
    fi->registered = 1;
    fi->events = events;
    return 0;
}

static void fd_unwatch(probe_worker *w, probe_fd *fi, int fd)
{
    if (fi->registered)
        epoll_ctl(w->ep, EPOLL_CTL_DEL, fd, NULL);
    fi->registered = 0;
    fi->events = 0;
}

static curl_socket_t on_open(void *clientp, curlsocktype purpose, struct curl_sockaddr *a)
{
    probe_worker *w = clientp;
    curl_socket_t fd;
    probe_fd *fi;
    (void)purpose;
    fd = socket(a->family, a->socktype, a->protocol);
    if (fd < 0)
        return CURL_SOCKET_BAD;
    fi = fd_get(w, fd);
    if (fi == NULL) {
        close(fd);
        return CURL_SOCKET_BAD;
    }
    memset(fi, 0, sizeof *fi);
    return fd;
}

/* libcurl closes a socket: when we give a connection back (the slot knows),
 * a failed connection attempt, or — never seen, but possible in principle —
 * a connection of ours it judged dead: then the slot learns it in the loop
 * (w->lost), not here inside a libcurl call. */
static int on_close(void *clientp, curl_socket_t fd)
{
    probe_worker *w = clientp;
    if (fd >= 0 && (size_t)fd < w->nfds) {
        probe_fd *fi = &w->fds[fd];
        if (fi->own != NULL && fi->own->connected && fi->own->fd == fd) {
            fi->own->connected = 0;
            fi->own->fd = -1;
            fi->own->lost = 1;
            w->lost = 1;
        }
        fd_unwatch(w, fi, fd);
        fi->own = NULL;
    }
    return close(fd);
}

/* libcurl's interest in its sockets while it connects. Sockets we drive
 * are ours alone: whatever libcurl says about them is ignored. */
static int on_socket(CURL *e, curl_socket_t fd, int what, void *userp, void *socketp)
{
    probe_worker *w = userp;
    probe_fd *fi = fd_get(w, fd);
    (void)e;
    (void)socketp;
    if (fi == NULL)
        return -1;
    if (fi->own != NULL)
        return 0;
    if (what == CURL_POLL_REMOVE) {
        fd_unwatch(w, fi, fd);
        return 0;
    }
    return fd_watch(w, fi, fd,
                    (what & CURL_POLL_IN ? EPOLLIN : 0) | (what & CURL_POLL_OUT ? EPOLLOUT : 0)) == 0
               ? 0
               : -1;
}

static int on_timer(CURLM *m, long timeout_ms, void *userp)
{
    probe_worker *w = userp;
    (void)m;
    /* 0 (due now, after every add_handle) needs no clock reading */
    w->timer_at = timeout_ms < 0 ? -1 : timeout_ms == 0 ? 0 : rollout_now() + (double)timeout_ms / 1000.0;
    return 0;
}

/* ---- the in-flight list (earliest deadline first) -------------------
 * Every request has the same timeout, so appending keeps the order. */

static void list_add(probe_worker *w, probe_slot *sl)
{
    sl->next = NULL;
    sl->prev = w->last;
    if (w->last != NULL)
        w->last->next = sl;
    else
        w->first = sl;
    w->last = sl;
}

static void list_remove(probe_worker *w, probe_slot *sl)
{
    if (sl->prev != NULL)
        sl->prev->next = sl->next;
    else if (w->first == sl)
        w->first = sl->next;
    if (sl->next != NULL)
        sl->next->prev = sl->prev;
    else if (w->last == sl)
        w->last = sl->prev;
    sl->prev = sl->next = NULL;
}

/* ---- slots --------------------------------------------------------- */

static int slot_init(probe_worker *w, probe_slot *sl)
{
    const probe_config *c = w->s->cfg;
    CURL *e = curl_easy_init();
    int ok;
    sl->w = w;
    sl->e = e;
    sl->fd = -1;
    if (e == NULL)
        return -1;
    ok = curlx_common(e) == CURLE_OK &&
         curl_easy_setopt(e, CURLOPT_URL, c->url) == CURLE_OK &&
         curl_easy_setopt(e, CURLOPT_CONNECT_ONLY, 1L) == CURLE_OK &&
         curl_easy_setopt(e, CURLOPT_PRIVATE, sl) == CURLE_OK &&
         curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, on_open) == CURLE_OK &&
         curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, w) == CURLE_OK &&
         curl_easy_setopt(e, CURLOPT_CLOSESOCKETFUNCTION, on_close) == CURLE_OK &&
         curl_easy_setopt(e, CURLOPT_CLOSESOCKETDATA, w) == CURLE_OK &&
         curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, c->timeout_ms) == CURLE_OK &&
         curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, c->connect_timeout_ms) == CURLE_OK &&
         curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1) == CURLE_OK &&
         curl_easy_setopt(e, CURLOPT_MAXAGE_CONN, MAX_AGE_S) == CURLE_OK &&
         curl_easy_setopt(e, CURLOPT_PROXY, "") == CURLE_OK; /* the gateway itself, never a proxy */
    return ok ? 0 : -1;
}

/* Gives the slot's connection back to libcurl, which closes it. */
static void drop_conn(probe_worker *w, probe_slot *sl)
{
    sl->connected = 0; /* first: on_close must not take this for a loss */
    sl->lost = 0;
    if (sl->in_multi) {
        curl_multi_remove_handle(w->m, sl->e);
        sl->in_multi = 0;
    }
    if (sl->fd >= 0 && (size_t)sl->fd < w->nfds && w->fds[sl->fd].own == sl) {
        fd_unwatch(w, &w->fds[sl->fd], sl->fd); /* not closed by libcurl (cannot happen) */
        w->fds[sl->fd].own = NULL;
    }
    sl->fd = -1;
    sl->reused = 0;
    rbuf_clear(&sl->in);
}

/* Starts a new request on the slot. */
static int slot_begin(probe_worker *w, probe_slot *sl, double now)
{
    const probe_config *c = w->s->cfg;
    sl->t_start = now;
    sl->t_deadline = c->timeout_ms > 0 ? now + (double)c->timeout_ms / 1000.0 : 0;
    sl->retried = 0;
    if (c->nvariants > 0) {
        uint64_t i = atomic_fetch_add_explicit(&w->s->seq, 1, memory_order_relaxed);
        sl->variant = c->cycle[i % (uint64_t)c->ncycle];
        w->r->variants[sl->variant].sent++;
    }
    if (sl->t_deadline > 0)
        list_add(w, sl);
    w->active++;
    w->sent++;
    return slot_go(w, sl);
}

/* The request is over (counted): the next one, if any may start. */
static int slot_next(probe_worker *w, probe_slot *sl, double now)
{
    if (sl->t_deadline > 0)
        list_remove(w, sl);
    sl->phase = SLOT_IDLE;
    w->active--;
    if (probe_may_start(w, now))
        return slot_begin(w, sl, now);
    return 0;
}

/* Ends the request with an outcome (see probe_finish). */
static int slot_end(probe_worker *w, probe_slot *sl, int outcome)
{
    double now = rollout_now();
    if (probe_finish(w, sl, outcome, now) != 0)
        return -1;
    return slot_next(w, sl, now);
}

static int slot_error(probe_worker *w, probe_slot *sl, int kind)
{
    drop_conn(w, sl);
    return slot_end(w, sl, kind);
}

static int slot_send(probe_worker *w, probe_slot *sl)
{
    const probe_shared *s = w->s;
    probe_fd *fi = &w->fds[sl->fd];
    const char *req = s->cfg->nvariants > 0 ? s->vreq[sl->variant] : s->req;
    size_t req_len = s->cfg->nvariants > 0 ? s->vreq_len[sl->variant] : s->req_len;
    while (sl->req_off < req_len) {
        size_t n = 0;
        CURLcode rc = curl_easy_send(sl->e, req + sl->req_off, req_len - sl->req_off, &n);
        if (rc == CURLE_AGAIN)
            return fd_watch(w, fi, sl->fd, EPOLLIN | EPOLLOUT) == 0 ? 0 : slot_error(w, sl, PROBE_OTHER);
        if (rc != CURLE_OK) {
            /* the server closed a kept-alive connection: once more, anew */
            if (sl->reused && !sl->retried && sl->got == 0) {
                sl->retried = 1;
                drop_conn(w, sl);
                return slot_go(w, sl);
            }
            return slot_error(w, sl, PROBE_OTHER);
        }
        sl->req_off += n;
    }
    sl->phase = SLOT_RECEIVING;
    if (fi->events != EPOLLIN && fd_watch(w, fi, sl->fd, EPOLLIN) != 0)
        return slot_error(w, sl, PROBE_OTHER);
    return 0;
}

/* (Re)starts the exchange of the current request: on the slot's
 * connection, or on a new one. */
static int slot_go(probe_worker *w, probe_slot *sl)
{
    sl->req_off = 0;
    sl->got = 0;
    rbuf_clear(&sl->in);
    sl->have_ver = 0;
    sl->have_by = 0;
    rbuf_clear(&sl->hdr);
    probe_http_begin(&sl->http, w->s->head, PROBE_BODY_MAX);
    if (sl->connected) {
        sl->phase = SLOT_SENDING;
        return slot_send(w, sl);
    }
    if (sl->in_multi) {
        curl_multi_remove_handle(w->m, sl->e);
        sl->in_multi = 0;
    }
    if (curl_multi_add_handle(w->m, sl->e) != CURLM_OK) {
        probe_fail(w, PROBE_FAILED, "curl_multi_add_handle failed");
        return -1;
    }
    sl->in_multi = 1;
    sl->phase = SLOT_CONNECTING;
    return 0;
}

/* libcurl finished connecting the slot (or failed to). */
static int slot_connected(probe_worker *w, probe_slot *sl, CURLcode rc)
{
    curl_socket_t fd = CURL_SOCKET_BAD;
    probe_fd *fi;
    if (sl->phase != SLOT_CONNECTING)
        return 0;
    if (rc != CURLE_OK)
        return slot_error(w, sl, transport_kind(rc));
    if (curl_easy_getinfo(sl->e, CURLINFO_ACTIVESOCKET, &fd) != CURLE_OK || fd == CURL_SOCKET_BAD ||
        (fi = fd_get(w, fd)) == NULL)
        return slot_error(w, sl, PROBE_OTHER);
    fi->own = sl;
    if (fd_watch(w, fi, fd, EPOLLIN) != 0) {
        fi->own = NULL;
        return slot_error(w, sl, PROBE_OTHER);
    }
    sl->fd = fd;
    sl->connected = 1;
    sl->reused = 0;
    sl->phase = SLOT_SENDING;
    return slot_send(w, sl);
}

/* The head of the final response: what extraction needs from it. Every
 * response may name the version that answered through served_by; a 2xx
 * response is asked for its version, an error response only so that its
 * error is attributed (the JSON body or header, not a Lua callback). */
static void on_head(probe_worker *w, probe_slot *sl, const char *head, size_t len)
{
    const probe_config *c = w->s->cfg;
    if (c->served_by[0] != '\0') {
        probe_config by = *c;
        memcpy(by.header_name, c->served_by, sizeof by.header_name);
        sl->have_by = probe_extract_header(&by, head, len, sl->by, &sl->bylen);
    }
    if (sl->http.status < 200 || sl->http.status > 299) {
        if (c->mode == PROBE_EXTRACT_JSON)
            sl->http.keep = 1;
        else if (c->mode == PROBE_EXTRACT_HEADER)
            sl->have_ver = probe_extract_header(c, head, len, sl->ver, &sl->verlen);
        return;
    }
    if (c->mode == PROBE_EXTRACT_JSON) {
        sl->http.keep = 1;
    } else if (c->mode == PROBE_EXTRACT_HEADER) {
        sl->have_ver = probe_extract_header(c, head, len, sl->ver, &sl->verlen);
    } else {
        sl->http.keep = 1;
        if (len > PROBE_HEADERS_MAX) { /* whole lines only */
            len = PROBE_HEADERS_MAX;
            while (len > 0 && head[len - 1] != '\n')
                len--;
        }
        rbuf_clear(&sl->hdr);
        rbuf_add(&sl->hdr, head, len); /* headers are a courtesy to the callback: none without memory */
    }
}

/* A complete response. */
static int slot_done(probe_worker *w, probe_slot *sl, int leftover)
{
    double now = rollout_now();
    if (probe_finish(w, sl, PROBE_OUT_RESPONSE, now) != 0)
        return -1;
    /* not reused: the server said so, sent more than the response,
     * answered before the whole request was written, or keepalive = false */
    if (sl->http.close || leftover || sl->phase == SLOT_SENDING || !w->s->cfg->keepalive)
        drop_conn(w, sl);
    else
        sl->reused = 1;
    return slot_next(w, sl, now);
}

/* Parses what was received. 0: more to come; 1: the request ended;
 * -1: stop the run. */
static int slot_parse(probe_worker *w, probe_slot *sl)
{
    for (;;) {
        size_t used = 0;
        int ev = probe_http_feed(&sl->http, sl->in.p, sl->in.len, &used);
        if (ev == PROBE_HTTP_HEAD) {
            on_head(w, sl, sl->in.p + sl->http.head_off, sl->http.head_len);
            rbuf_consume(&sl->in, used);
            continue;
        }
        rbuf_consume(&sl->in, used);
        switch (ev) {
        case PROBE_HTTP_MORE:
            return 0;
        case PROBE_HTTP_DONE:
            return slot_done(w, sl, sl->in.len > 0) != 0 ? -1 : 1;
        case PROBE_HTTP_OVER:
            drop_conn(w, sl);
            return slot_end(w, sl, PROBE_OUT_TOO_LARGE) != 0 ? -1 : 1;
        default:
            return slot_error(w, sl, PROBE_OTHER) != 0 ? -1 : 1;
        }
    }
}

/* The connection closed (or failed: broken) before the response ended. */
static int slot_closed(probe_worker *w, probe_slot *sl, int broken)
{
    if (sl->phase == SLOT_IDLE) { /* an idle connection the server closed */
        drop_conn(w, sl);
        return 0;
    }
    if (sl->got == 0 && sl->reused && !sl->retried) {
        /* a kept-alive connection the server had closed: once more, anew */
        sl->retried = 1;
        drop_conn(w, sl);
        return slot_go(w, sl);
    }
    if (!broken && sl->got > 0 && probe_http_eof(&sl->http) == PROBE_HTTP_DONE) {
        double now = rollout_now();
        drop_conn(w, sl);
        if (probe_finish(w, sl, PROBE_OUT_RESPONSE, now) != 0)
            return -1;
        return slot_next(w, sl, now);
    }
    return slot_error(w, sl, PROBE_OTHER);
}

/* Room to receive into at the end of sl->in, which grows (doubling) up to
 * IN_MAX bytes: 0, or -1 when it is full (the parser refuses a response
 * before that) or out of memory. */
static int in_room(probe_slot *sl, size_t *room)
{
    size_t left = IN_MAX - sl->in.len, have;
    if (left == 0)
        return -1;
    if (rbuf_room(&sl->in) == 0) {
        size_t more = sl->in.len > 0 ? sl->in.len : IN_FIRST;
        if (rbuf_reserve(&sl->in, more < left ? more : left) != 0)
            return -1;
    }
    have = rbuf_room(&sl->in);
    *room = have < left ? have : left;
    return 0;
}

/* Reads what the connection has. */
static int slot_recv(probe_worker *w, probe_slot *sl)
{
    for (;;) {
        size_t room, n = 0;
        CURLcode rc;
        int r;
        if (in_room(sl, &room) != 0)
            return slot_error(w, sl, PROBE_OTHER);
        rc = curl_easy_recv(sl->e, sl->in.p + sl->in.len, room, &n);
        if (rc == CURLE_AGAIN)
            return 0;
        if (rc != CURLE_OK)
            return slot_closed(w, sl, 1);
        if (n == 0)
            return slot_closed(w, sl, 0);
        if (sl->phase != SLOT_RECEIVING && sl->phase != SLOT_SENDING) {
            drop_conn(w, sl); /* bytes nobody asked for */
            return 0;
        }
        sl->got += n;
        rbuf_grew(&sl->in, n);
        r = slot_parse(w, sl);
        if (r != 0)
            return r < 0 ? -1 : 0;
        /* plain TCP: a short read drained the socket (epoll is level-
         * triggered anyway); TLS may hold decrypted bytes: read on */
        if (!w->s->tls && n < room)
            return 0;
    }
}

/* An event on a connection of ours. */
static int conn_event(probe_worker *w, probe_slot *sl, uint32_t events)
{
    if (sl->phase == SLOT_SENDING && (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
        if (slot_send(w, sl) != 0)
            return -1;
    }
    if (sl->connected && (events & (EPOLLIN | EPOLLERR | EPOLLHUP)))
        return slot_recv(w, sl);
    return 0;
}

/* Slots whose connection libcurl closed: as if the server had. */
static int handle_lost(probe_worker *w)
{
    w->lost = 0;
    for (int i = 0; i < w->nslots; i++) {
        probe_slot *sl = &w->slots[i];
        if (sl->lost) {
            sl->lost = 0;
            if (slot_closed(w, sl, 1) != 0)
                return -1;
        }
    }
    return 0;
}

/* Connections libcurl finished making. */
static int reap(probe_worker *w)
{
    CURLMsg *msg;
    int queued;
    while ((msg = curl_multi_info_read(w->m, &queued)) != NULL) {
        char *priv = NULL;
        CURLcode rc;
        if (msg->msg != CURLMSG_DONE)
            continue;
        rc = msg->data.result;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &priv);
        if (slot_connected(w, (probe_slot *)(void *)priv, rc) != 0)
            return -1;
    }
    return 0;
}

/* Requests past their deadline: timeouts. */
static int expire(probe_worker *w, double now)
{
    while (w->first != NULL && w->first->t_deadline <= now) {
        probe_slot *sl = w->first;
        drop_conn(w, sl);
        if (probe_finish(w, sl, PROBE_TIMEOUT, now) != 0 || slot_next(w, sl, now) != 0)
            return -1;
    }
    return 0;
}

/* ---- the worker ---------------------------------------------------- */

void probe_worker_free(probe_worker *w)
{
    if (w->slots != NULL) {
        for (int i = 0; i < w->nslots; i++) {
            probe_slot *sl = &w->slots[i];
            sl->connected = 0;
            if (sl->in_multi && w->m != NULL)
                curl_multi_remove_handle(w->m, sl->e);
            sl->in_multi = 0;
        }
    }
    if (w->m != NULL)
        curl_multi_cleanup(w->m);
    w->m = NULL;
    if (w->slots != NULL) {
        for (int i = 0; i < w->nslots; i++) {
            probe_slot *sl = &w->slots[i];
            if (sl->e != NULL)
                curl_easy_cleanup(sl->e);
            rbuf_free(&sl->in);
            rbuf_free(&sl->hdr);
            probe_http_free(&sl->http);
        }
        free(w->slots);
    }
    w->slots = NULL;
    if (w->ep >= 0)
        close(w->ep);
    w->ep = -1;
    free(w->fds);
    w->fds = NULL;
    w->nfds = 0;
}

int probe_worker_init(probe_worker *w, probe_shared *s, int index, int nslots)
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
    /* connections made with CONNECT_ONLY are never reused by libcurl nor
     * closed to make room; the slots bound how many there are */
    curl_multi_setopt(w->m, CURLMOPT_MAXCONNECTS, (long)nslots + 1);
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

/* How long epoll may sleep: libcurl's timer, the first request deadline,
 * the run's deadline, the end of the duration, the next progress call, and
 * at most 100 ms (^C, stop flag). */
static int wait_ms(const probe_worker *w, double now, double next_progress)
{
    const probe_shared *s = w->s;
    double wait = 0.1;
    if (w->timer_at >= 0 && w->timer_at - now < wait)
        wait = w->timer_at - now;
    if (w->first != NULL && w->first->t_deadline - now < wait)
        wait = w->first->t_deadline - now;
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

void probe_worker_loop(probe_worker *w, int supervise)
{
    probe_shared *s = w->s;
    const probe_config *c = s->cfg;
    struct epoll_event evs[64];
    double now = rollout_now();
    double next_progress = supervise && c->progress ? now + c->progress_interval : 0;
    int running = 0;

    for (int i = 0; i < w->nslots && probe_may_start(w, now); i++)
        if (slot_begin(w, &w->slots[i], now) != 0)
            return;
    while (w->active > 0) {
        int n = epoll_wait(w->ep, evs, (int)(sizeof evs / sizeof evs[0]), wait_ms(w, now, next_progress));
        if (n < 0 && errno != EINTR) {
            probe_fail(w, PROBE_FAILED, "epoll_wait failed");
            return;
        }
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            uint32_t ev = evs[i].events;
            probe_slot *own = fd >= 0 && (size_t)fd < w->nfds ? w->fds[fd].own : NULL;
            if (own != NULL) {
                if (conn_event(w, own, ev) != 0)
                    return;
            } else {
                int flags = (ev & EPOLLIN ? CURL_CSELECT_IN : 0) | (ev & EPOLLOUT ? CURL_CSELECT_OUT : 0) |
                            (ev & (EPOLLERR | EPOLLHUP) ? CURL_CSELECT_ERR : 0);
                if (curl_multi_socket_action(w->m, fd, flags, &running) != CURLM_OK) {
                    probe_fail(w, PROBE_FAILED, "curl_multi_socket_action failed");
                    return;
                }
            }
            if (w->lost && handle_lost(w) != 0)
                return;
        }
        now = rollout_now();
        if (w->timer_at >= 0 && now >= w->timer_at) {
            w->timer_at = -1;
            if (curl_multi_socket_action(w->m, CURL_SOCKET_TIMEOUT, 0, &running) != CURLM_OK) {
                probe_fail(w, PROBE_FAILED, "curl_multi_socket_action failed");
                return;
            }
        }
        if (reap(w) != 0 || (w->lost && handle_lost(w) != 0) || expire(w, now) != 0)
            return;
        if (atomic_load_explicit(&s->stop, memory_order_relaxed) == PROBE_ABORT)
            return;
        if (supervise && rollout_interrupted()) {
            probe_fail(w, PROBE_INTERRUPTED, "interrupted");
            return;
        }
        if (s->t_deadline > 0 && now >= s->t_deadline) {
            if (w->active > 0) {
                atomic_store(&s->hit_deadline, 1);
                atomic_store(&s->stop, PROBE_ABORT);
            }
            return;
        }
        if (next_progress > 0 && now >= next_progress) {
            if (c->progress(c->progress_ud, atomic_load(&s->done), c->n, now - s->t0) != 0) {
                probe_fail(w, PROBE_ABORTED, "the progress function failed");
                return;
            }
            now = rollout_now();
            next_progress = now + c->progress_interval;
        }
    }
}
