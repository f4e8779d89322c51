/* rollout.http: one HTTP request via libcurl, with timeouts, TLS options,
 * a body limit, ^C; and a raw exchange over a unix stream socket (HAProxy's
 * admin socket speaks plain text, not HTTP).
 *
 *   http.request{url=, method=, headers=, body=, timeout=30,
 *                connect_timeout=10, verify=true, ca_file=, ca_data=,
 *                cert_file=, key_file=, cert_data=, key_data=,
 *                follow=false, max_body=64 MiB, unix_socket=}
 *     -> {status=, headers={lower-case name = value}, body=, duration=}
 *        for any HTTP status
 *     -> nil, message, code, raw on transport failure: code connect,
 *        timeout, tls, too_large, invalid, other (include/rollout/curlx.h);
 *        raw "curl N"
 *   http.get(url [, opts])
 *   http.unix_exchange(path, text [, timeout=5]) -> reply
 *     -> nil, message, code, raw: connect, timeout, too_large, invalid,
 *        or an errno's code; raw the errno name when there is one
 *   http.free_port([addr="127.0.0.1"]) -> a TCP port free right now
 *
 * Misuse (bad types, bad header names) raises. ^C raises the interrupt sentinel
 * after everything is freed. Messages never show request headers and show
 * the URL without userinfo, query or fragment. */
#include "rollout/curlx.h"
#include "rollout/host.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>

#define HTTP_REQUEST "rollout.http.request"
#define HTTP_SOCKET "rollout.http.socket"
#define DEFAULT_MAX_BODY ((lua_Integer)64 << 20)
#define HEADERS_MAX (1 << 20)
#define UNIX_REPLY_MAX ((size_t)16 << 20)

/* ---- the request userdata ------------------------------------------ */

typedef struct http_req {
    CURL *e;
    struct curl_slist *headers;
    rbuf body, head;
    size_t max_body;
    int too_large;
    int closed;
    curlx_guard guard;
    char errbuf[CURL_ERROR_SIZE];
} http_req;

static void req_free(http_req *r)
{
    if (r->closed)
        return;
    r->closed = 1;
    if (r->e != NULL)
        curl_easy_cleanup(r->e);
    r->e = NULL;
    curl_slist_free_all(r->headers);
    r->headers = NULL;
    rbuf_free(&r->body);
    rbuf_free(&r->head);
}

static int req_gc(lua_State *L)
{
    req_free(luaL_checkudata(L, 1, HTTP_REQUEST));
    return 0;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *ud)
{
    http_req *r = ud;
    size_t n = size * nmemb;
    if (n > r->max_body - r->body.len) {
        r->too_large = 1;
        return 0;
    }
    return rbuf_add(&r->body, data, n) == 0 ? n : 0;
}

static size_t on_header(char *line, size_t size, size_t nitems, void *ud)
{
    http_req *r = ud;
    size_t n = size * nitems;
    if (n >= 5 && memcmp(line, "HTTP/", 5) == 0) { /* a new response (redirect, 100) */
        rbuf_clear(&r->head);
        rbuf_clear(&r->body);
    }
    if (n > HEADERS_MAX - r->head.len || rbuf_add(&r->head, line, n) != 0) {
        r->too_large = 1;
        return 0;
    }
    return n;
}

/* ---- options ------------------------------------------------------- */

static double seconds_field(lua_State *L, int opts, const char *field, double def)
{
    double v = rollout_optfield_number(L, opts, field, def);
    if (!(v > 0)) /* also NaN */
        luaL_error(L, "field '%s' must be a number of seconds > 0", field);
    return v;
}

static void set_blob(lua_State *L, CURL *e, CURLoption opt, int opts, const char *field)
{
    lua_getfield(L, opts, field);
    if (!lua_isnil(L, -1)) {
        struct curl_blob blob;
        size_t len;
        if (lua_type(L, -1) != LUA_TSTRING)
            luaL_error(L, "field '%s' must be a string (got %s)", field, luaL_typename(L, -1));
        blob.data = (void *)lua_tolstring(L, -1, &len);
        blob.len = len;
        blob.flags = CURL_BLOB_COPY;
        if (curl_easy_setopt(e, opt, &blob) != CURLE_OK)
            luaL_error(L, "field '%s' is not supported by this libcurl", field);
    }
    lua_pop(L, 1);
}

static void set_string(lua_State *L, CURL *e, CURLoption opt, int opts, const char *field)
{
    const char *v = rollout_optfield_string(L, opts, field, NULL);
    if (v != NULL && curl_easy_setopt(e, opt, v) != CURLE_OK)
        luaL_error(L, "field '%s' is not supported by this libcurl", field);
}

/* ---- http.request -------------------------------------------------- */

static int h_request(lua_State *L)
{
    http_req *r;
    CURL *e;
    const char *url, *method, *body;
    size_t body_len = 0;
    lua_Integer max_body;
    double timeout, connect_timeout;
    CURLcode rc;
    long status = 0;
    curl_off_t total_us = 0;
    int ok;

    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);

    r = lua_newuserdatauv(L, sizeof *r, 0); /* 2 */
    memset(r, 0, sizeof *r);
    luaL_setmetatable(L, HTTP_REQUEST);

    lua_getfield(L, 1, "url");
    if (lua_type(L, -1) != LUA_TSTRING)
        return luaL_error(L, "field 'url' must be a string (got %s)", luaL_typename(L, -1));
    url = lua_tostring(L, -1); /* anchored by the options table */
    lua_pop(L, 1);
    lua_getfield(L, 1, "body");
    if (!lua_isnil(L, -1) && lua_type(L, -1) != LUA_TSTRING)
        return luaL_error(L, "field 'body' must be a string (got %s)", luaL_typename(L, -1));
    body = lua_tolstring(L, -1, &body_len);
    lua_pop(L, 1);
    method = rollout_optfield_string(L, 1, "method", body ? "POST" : "GET");
    if (!curlx_is_token(method))
        return luaL_error(L, "field 'method' must be an HTTP method name");
    timeout = seconds_field(L, 1, "timeout", 30);
    connect_timeout = seconds_field(L, 1, "connect_timeout", 10);
    {
        double mb = rollout_optfield_number(L, 1, "max_body", (double)DEFAULT_MAX_BODY);
        if (!(mb >= 0 && mb <= 9007199254740992.0))
            return luaL_error(L, "field 'max_body' must be a number of bytes >= 0");
        max_body = (lua_Integer)mb;
    }
    r->max_body = (size_t)max_body;

    lua_getfield(L, 1, "headers");
    curlx_read_headers(L, -1, &r->headers);
    lua_pop(L, 1);
    if (body != NULL) { /* no "Expect: 100-continue" round trip */
        struct curl_slist *l = curl_slist_append(r->headers, "Expect:");
        if (l == NULL)
            return luaL_error(L, "out of memory");
        r->headers = l;
    }

    if (curlx_init() != CURLE_OK)
        return luaL_error(L, "curl_global_init failed");
    e = r->e = curl_easy_init();
    if (e == NULL)
        return luaL_error(L, "out of memory");
    ok = curlx_common(e) == CURLE_OK &&
         curl_easy_setopt(e, CURLOPT_URL, url) == CURLE_OK &&
         curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf) == CURLE_OK &&
         curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body) == CURLE_OK &&
         curl_easy_setopt(e, CURLOPT_WRITEDATA, r) == CURLE_OK &&
         curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header) == CURLE_OK &&
         curl_easy_setopt(e, CURLOPT_HEADERDATA, r) == CURLE_OK &&
         curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)max_body) == CURLE_OK;
    if (!ok)
        return luaL_error(L, "cannot set up a curl handle");
    curlx_timeouts(e, timeout, connect_timeout);
    curlx_guard_attach(e, &r->guard); /* ^C also inside a long transfer */
    if (r->headers != NULL)
        curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->headers);
    if (strcmp(method, "HEAD") == 0)
        curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    else if (strcmp(method, "GET") != 0 && !(body != NULL && strcmp(method, "POST") == 0))
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
    if (body != NULL) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, body); /* anchored by the options */
    }
    if (rollout_optfield_boolean(L, 1, "follow", 0)) {
        curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 1L);
        curl_easy_setopt(e, CURLOPT_MAXREDIRS, 10L);
    }
    if (!rollout_optfield_boolean(L, 1, "verify", 1)) {
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    set_string(L, e, CURLOPT_CAINFO, 1, "ca_file");
    set_blob(L, e, CURLOPT_CAINFO_BLOB, 1, "ca_data");
    set_string(L, e, CURLOPT_SSLCERT, 1, "cert_file");
    set_string(L, e, CURLOPT_SSLKEY, 1, "key_file");
    set_blob(L, e, CURLOPT_SSLCERT_BLOB, 1, "cert_data");
    set_blob(L, e, CURLOPT_SSLKEY_BLOB, 1, "key_data");
    set_string(L, e, CURLOPT_UNIX_SOCKET_PATH, 1, "unix_socket");

    rc = curlx_perform(e, &r->guard);

    if (r->guard.stop == CURLX_INTERRUPTED) {
        req_free(r);
        return rollout_raise_interrupt(L);
    }
    if (rc != CURLE_OK) {
        char limit[64];
        snprintf(limit, sizeof limit, "%lld bytes", (long long)max_body);
        curlx_fail(L, method, url, rc, r->errbuf, &r->guard, r->too_large, limit);
        req_free(r);
        return 4;
    }

    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(e, CURLINFO_TOTAL_TIME_T, &total_us);
    lua_createtable(L, 0, 4);
    lua_pushinteger(L, status);
    lua_setfield(L, -2, "status");
    curlx_push_headers(L, r->head.p ? r->head.p : "", r->head.len);
    lua_setfield(L, -2, "headers");
    lua_pushlstring(L, r->body.p ? r->body.p : "", r->body.len);
    lua_setfield(L, -2, "body");
    lua_pushnumber(L, (double)total_us / 1e6);
    lua_setfield(L, -2, "duration");
    req_free(r);
    return 1;
}

/* http.get(url [, opts]): request{url = url, method = "GET", ...opts} */
static int h_get(lua_State *L)
{
    luaL_checkstring(L, 1);
    if (!lua_isnoneornil(L, 2))
        luaL_checktype(L, 2, LUA_TTABLE);
    lua_settop(L, 2);
    lua_newtable(L); /* 3 */
    if (lua_istable(L, 2)) {
        lua_pushnil(L);
        while (lua_next(L, 2) != 0) {
            lua_pushvalue(L, -2);
            lua_insert(L, -2);
            lua_rawset(L, 3);
        }
    }
    lua_pushvalue(L, 1);
    lua_setfield(L, 3, "url");
    lua_getfield(L, 3, "method");
    if (lua_isnil(L, -1)) {
        lua_pushliteral(L, "GET");
        lua_setfield(L, 3, "method");
    }
    lua_pop(L, 1);
    lua_replace(L, 1);
    lua_settop(L, 1);
    return h_request(L);
}

/* ---- http.unix_exchange -------------------------------------------- */

typedef struct unix_sock {
    int fd;
} unix_sock;

static int sock_close(lua_State *L)
{
    unix_sock *s = luaL_checkudata(L, 1, HTTP_SOCKET);
    if (s->fd >= 0) {
        close(s->fd);
        s->fd = -1;
    }
    return 0;
}

static void sock_free(unix_sock *s)
{
    if (s->fd >= 0) {
        close(s->fd);
        s->fd = -1;
    }
}

/* Waits for events on fd until the deadline, waking every 100 ms for ^C.
 * Returns 1 when ready, 0 on deadline, -1 on ^C, -2 on error. */
static int wait_fd(int fd, short events, double deadline)
{
    for (;;) {
        struct pollfd p = {fd, events, 0};
        double left = deadline - rollout_now();
        int ms, n;
        if (rollout_interrupted())
            return -1;
        if (left <= 0)
            return 0;
        ms = left > 0.1 ? 100 : (int)(left * 1000) + 1;
        n = poll(&p, 1, ms);
        if (n > 0)
            return 1;
        if (n < 0 && errno != EINTR)
            return -2;
    }
}

/* http.unix_exchange(path, text [, timeout]): connects to a unix stream
 * socket, sends text, half-closes, and reads the reply until the peer
 * closes. HAProxy's admin socket: text = "show stat\n". */
static int h_unix_exchange(lua_State *L)
{
    size_t plen, tlen, sent = 0, got = 0;
    const char *path = luaL_checklstring(L, 1, &plen);
    const char *text = luaL_checklstring(L, 2, &tlen);
    double timeout = luaL_optnumber(L, 3, 5);
    double deadline;
    struct sockaddr_un sa;
    unix_sock *s;
    luaL_Buffer b;
    int w;

    luaL_argcheck(L, timeout > 0, 3, "must be a number of seconds > 0");
    lua_settop(L, 3);
    deadline = rollout_now() + timeout;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    if (plen == 0 || plen >= sizeof sa.sun_path || strlen(path) != plen)
        return rollout_fail(L, ROLLOUT_E_INVALID, NULL, "unix socket %s: bad path (empty, NUL or over %d bytes)",
                            path, (int)sizeof sa.sun_path - 1);
    memcpy(sa.sun_path, path, plen);

    s = lua_newuserdatauv(L, sizeof *s, 0); /* 4 */
    s->fd = -1;
    luaL_setmetatable(L, HTTP_SOCKET);
    s->fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (s->fd < 0)
        return rollout_fail_errno(L, errno, "unix socket %s", path);
    fcntl(s->fd, F_SETFD, FD_CLOEXEC);
    if (connect(s->fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        int err = errno;
        sock_free(s);
        return rollout_fail(L, ROLLOUT_E_CONNECT, rollout_errno_name(err), "unix socket %s: connect: %s", path,
                            strerror(err));
    }
    fcntl(s->fd, F_SETFL, fcntl(s->fd, F_GETFL) | O_NONBLOCK);

    while (sent < tlen) {
        ssize_t n;
        int err = 0;
        w = wait_fd(s->fd, POLLOUT, deadline);
        if (w == 1) {
            n = send(s->fd, text + sent, tlen - sent, MSG_NOSIGNAL);
            if (n > 0) {
                sent += (size_t)n;
                continue;
            }
            if (n < 0 && (errno == EAGAIN || errno == EINTR))
                continue;
            w = -2;
        }
        err = errno;
        sock_free(s);
        if (w == -1) {
            return rollout_raise_interrupt(L);
        }
        if (w == 0)
            return rollout_fail(L, ROLLOUT_E_TIMEOUT, NULL, "unix socket %s: no room to send after %.3g s", path,
                                timeout);
        return rollout_fail_errno(L, err, "unix socket %s: send", path);
    }
    shutdown(s->fd, SHUT_WR);

    luaL_buffinit(L, &b);
    for (;;) {
        ssize_t n;
        char *p;
        int err = 0;
        w = wait_fd(s->fd, POLLIN, deadline);
        if (w == 1) {
            p = luaL_prepbuffsize(&b, 16384);
            n = recv(s->fd, p, 16384, 0);
            if (n == 0)
                break;
            if (n > 0) {
                luaL_addsize(&b, (size_t)n);
                got += (size_t)n;
                if (got > UNIX_REPLY_MAX) {
                    sock_free(s);
                    return rollout_fail(L, ROLLOUT_E_TOO_LARGE, NULL, "unix socket %s: the reply is over %d MiB",
                                        path, (int)(UNIX_REPLY_MAX >> 20));
                }
                continue;
            }
            if (errno == EAGAIN || errno == EINTR)
                continue;
            w = -2;
        }
        err = errno;
        sock_free(s);
        if (w == -1) {
            return rollout_raise_interrupt(L);
        }
        if (w == 0)
            return rollout_fail(L, ROLLOUT_E_TIMEOUT, NULL, "unix socket %s: no complete reply after %.3g s",
                                path, timeout);
        return rollout_fail_errno(L, err, "unix socket %s: recv", path);
    }
    sock_free(s);
    luaL_pushresult(&b);
    return 1;
}

/* http.free_port([addr = "127.0.0.1"]) -> port | nil, message, code, raw
 * A TCP port that is free right now on a numeric loopback/local address
 * (bound to port 0, read back, closed): for test fixtures and the local
 * target, which must give HAProxy a fixed port. Racy by nature: bind soon. */
static int h_free_port(lua_State *L)
{
    const char *addr = luaL_optstring(L, 1, "127.0.0.1");
    struct sockaddr_in a4;
    struct sockaddr_in6 a6;
    struct sockaddr *sa;
    socklen_t len;
    int fd, port, err;

    memset(&a4, 0, sizeof a4);
    memset(&a6, 0, sizeof a6);
    if (inet_pton(AF_INET, addr, &a4.sin_addr) == 1) {
        a4.sin_family = AF_INET;
        sa = (struct sockaddr *)&a4;
        len = sizeof a4;
    } else if (inet_pton(AF_INET6, addr, &a6.sin6_addr) == 1) {
        a6.sin6_family = AF_INET6;
        sa = (struct sockaddr *)&a6;
        len = sizeof a6;
    } else {
        return luaL_argerror(L, 1, "must be a numeric IPv4 or IPv6 address");
    }
    fd = socket(sa->sa_family, SOCK_STREAM, 0);
    if (fd < 0)
        return rollout_fail_errno(L, errno, "free_port: socket");
    if (bind(fd, sa, len) != 0 || getsockname(fd, sa, &len) != 0) {
        err = errno;
        close(fd);
        return rollout_fail_errno(L, err, "free_port: bind %s", addr);
    }
    port = sa->sa_family == AF_INET ? ntohs(a4.sin_port) : ntohs(a6.sin6_port);
    close(fd);
    lua_pushinteger(L, port);
    return 1;
}

int luaopen_rollout_http(lua_State *L)
{
    static const luaL_Reg funcs[] = {
        {"request", h_request},
        {"get", h_get},
        {"unix_exchange", h_unix_exchange},
        {"free_port", h_free_port},
        {NULL, NULL}};
    static const luaL_Reg req_meta[] = {
        {"__gc", req_gc},
        {"__close", req_gc},
        {NULL, NULL}};
    static const luaL_Reg sock_meta[] = {
        {"__gc", sock_close},
        {"__close", sock_close},
        {NULL, NULL}};
    if (luaL_newmetatable(L, HTTP_REQUEST))
        luaL_setfuncs(L, req_meta, 0);
    lua_pop(L, 1);
    if (luaL_newmetatable(L, HTTP_SOCKET))
        luaL_setfuncs(L, sock_meta, 0);
    lua_pop(L, 1);
    curlx_init();
    luaL_newlib(L, funcs);
    return 1;
}
