/* rollout.http: one HTTP request via libcurl, with timeouts, TLS options,
 * a body limit, ^C.
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
 *   http.unix_exchange, http.free_port: rollout.sock's exchange and
 *     free_port (runtime/bindings/sock.c), kept here for older callers
 *
 * Misuse (bad types, bad header names) raises. ^C raises the interrupt
 * sentinel after everything is freed. Messages never show request headers
 * and show the URL without userinfo, query or fragment. */
#include "rollout/curlx.h"
#include "rollout/host.h"

#include <stdio.h>
#include <string.h>

#define HTTP_REQUEST "rollout.http.request"
#define DEFAULT_MAX_BODY ((lua_Integer)64 << 20)
#define HEADERS_MAX (1 << 20)

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
    return curlx_add_capped(&r->body, r->max_body, &r->too_large, data, size * nmemb);
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

/* What http.request read from its options table (strings anchored by it). */
typedef struct req_opts {
    const char *url, *method, *body;
    size_t body_len;
    lua_Integer max_body;
    double timeout, connect_timeout;
} req_opts;

/* Reads url, body, method, timeout, connect_timeout and max_body from the
 * options (stack 1). Misuse raises. */
static void read_opts(lua_State *L, req_opts *o)
{
    double mb;
    lua_getfield(L, 1, "url");
    if (lua_type(L, -1) != LUA_TSTRING)
        luaL_error(L, "field 'url' must be a string (got %s)", luaL_typename(L, -1));
    o->url = lua_tostring(L, -1); /* anchored by the options table */
    lua_pop(L, 1);
    lua_getfield(L, 1, "body");
    if (!lua_isnil(L, -1) && lua_type(L, -1) != LUA_TSTRING)
        luaL_error(L, "field 'body' must be a string (got %s)", luaL_typename(L, -1));
    o->body_len = 0;
    o->body = lua_tolstring(L, -1, &o->body_len);
    lua_pop(L, 1);
    o->method = rollout_optfield_string(L, 1, "method", o->body ? "POST" : "GET");
    if (!curlx_is_token(o->method))
        luaL_error(L, "field 'method' must be an HTTP method name");
    o->timeout = seconds_field(L, 1, "timeout", 30);
    o->connect_timeout = seconds_field(L, 1, "connect_timeout", 10);
    mb = rollout_optfield_number(L, 1, "max_body", (double)DEFAULT_MAX_BODY);
    if (!(mb >= 0 && mb <= 9007199254740992.0))
        luaL_error(L, "field 'max_body' must be a number of bytes >= 0");
    o->max_body = (lua_Integer)mb;
}

/* Reads opts.headers into the request's list, plus an empty Expect: when
 * there is a body. Misuse raises. */
static void read_req_headers(lua_State *L, http_req *r, int has_body)
{
    lua_getfield(L, 1, "headers");
    curlx_read_headers(L, -1, &r->headers);
    lua_pop(L, 1);
    if (has_body) { /* no "Expect: 100-continue" round trip */
        struct curl_slist *l = curl_slist_append(r->headers, "Expect:");
        if (l == NULL)
            luaL_error(L, "out of memory");
        r->headers = l;
    }
}

/* Creates the request's curl handle and sets the URL, callbacks, limits,
 * timeouts, ^C guard, headers, method and body. Failures raise. */
static CURL *open_handle(lua_State *L, http_req *r, const req_opts *o)
{
    CURL *e;
    int ok;
    if (curlx_init() != CURLE_OK)
        luaL_error(L, "curl_global_init failed");
    e = r->e = curl_easy_init();
    if (e == NULL)
        luaL_error(L, "out of memory");
    ok = curlx_common(e) == CURLE_OK &&
         curl_easy_setopt(e, CURLOPT_URL, o->url) == CURLE_OK &&
         curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf) == CURLE_OK &&
         curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body) == CURLE_OK &&
         curl_easy_setopt(e, CURLOPT_WRITEDATA, r) == CURLE_OK &&
         curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header) == CURLE_OK &&
         curl_easy_setopt(e, CURLOPT_HEADERDATA, r) == CURLE_OK &&
         curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)o->max_body) == CURLE_OK;
    if (!ok)
        luaL_error(L, "cannot set up a curl handle");
    curlx_timeouts(e, o->timeout, o->connect_timeout);
    curlx_guard_attach(e, &r->guard); /* ^C also inside a long transfer */
    if (r->headers != NULL)
        curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->headers);
    if (strcmp(o->method, "HEAD") == 0)
        curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    else if (strcmp(o->method, "GET") != 0 && !(o->body != NULL && strcmp(o->method, "POST") == 0))
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, o->method);
    if (o->body != NULL) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)o->body_len);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, o->body); /* anchored by the options */
    }
    return e;
}

/* Sets follow, verify and the TLS and unix-socket options. Misuse raises. */
static void set_connection_opts(lua_State *L, CURL *e)
{
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
}

/* Pushes {status=, headers=, body=, duration=} of the finished transfer. */
static void push_response(lua_State *L, http_req *r)
{
    curl_off_t total_us = 0;
    curl_easy_getinfo(r->e, CURLINFO_TOTAL_TIME_T, &total_us);
    curlx_push_response(L, r->e, &r->head, &r->body, 1);
    lua_pushnumber(L, (double)total_us / 1e6);
    lua_setfield(L, -2, "duration");
}

static int h_request(lua_State *L)
{
    http_req *r;
    CURL *e;
    req_opts o;
    CURLcode rc;

    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);

    r = lua_newuserdatauv(L, sizeof *r, 0); /* 2 */
    memset(r, 0, sizeof *r);
    luaL_setmetatable(L, HTTP_REQUEST);

    read_opts(L, &o);
    r->max_body = (size_t)o.max_body;
    read_req_headers(L, r, o.body != NULL);
    e = open_handle(L, r, &o);
    set_connection_opts(L, e);

    rc = curlx_perform(e, &r->guard);

    if (r->guard.stop == CURLX_INTERRUPTED) {
        req_free(r);
        return rollout_raise_interrupt(L);
    }
    if (rc != CURLE_OK) {
        char limit[64];
        snprintf(limit, sizeof limit, "%lld bytes", (long long)o.max_body);
        curlx_fail(L, o.method, o.url, rc, r->errbuf, &r->guard, r->too_large, limit);
        req_free(r);
        return 4;
    }

    push_response(L, r);
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

int luaopen_rollout_http(lua_State *L)
{
    static const luaL_Reg funcs[] = {
        {"request", h_request},
        {"get", h_get},
        {NULL, NULL}};
    static const luaL_Reg req_meta[] = {
        {"__gc", req_gc},
        {"__close", req_gc},
        {NULL, NULL}};
    if (luaL_newmetatable(L, HTTP_REQUEST))
        luaL_setfuncs(L, req_meta, 0);
    lua_pop(L, 1);
    curlx_init();
    luaL_newlib(L, funcs);
    /* unix_exchange and free_port were here before rollout.sock: the same
     * functions, through require (a binding never opens another itself) */
    rollout_require(L, "rollout.sock");
    lua_getfield(L, -1, "exchange");
    lua_setfield(L, -3, "unix_exchange");
    lua_getfield(L, -1, "free_port");
    lua_setfield(L, -3, "free_port");
    lua_pop(L, 1);
    return 1;
}
