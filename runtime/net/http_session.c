/* rollout.http_session: the transport under the Kubernetes client
 * (stdlib/rollout/k8s/): an HTTP session with keep-alive, TLS settings and
 * client credentials held in C memory, and line streams for watches. Only
 * mechanisms live here; what to request, how to authenticate, when to
 * retry and what an answer means is Lua (rollout.k8s).
 *
 *   s = http_session.new{ca_data =, insecure = false, cert_data =,
 *                        key_data =, token =, tls_server_name =, proxy =,
 *                        user_agent =, connect_timeout = 10,
 *                        max_body = 256 MiB}
 *   s:set_credentials{token =, cert_data =, key_data =}  -- replaces them
 *   s:request{method = "GET", url =, headers = {}, body =, timeout = 30,
 *             auth = true}
 *       -> {status =, headers = {lower-case name = value}, body =}
 *       -> nil, message, code, raw   (transport failures only)
 *   st = s:stream{method = "GET", url =, headers =, timeout =, auth = true}
 *       -> a stream once the response headers are in (any status), or
 *          nil, message, code, raw
 *   st:status(), st:headers()
 *   st:read(wait) -> one line (without the "\n"), false when no complete
 *                    line arrived within `wait` seconds, nil at the end of
 *                    the stream, or nil, message, code, raw
 *   st:rest([wait]) -> what is left of the body (error answers), or nil,
 *                    message, code, raw
 *   st:close(), s:close(): idempotent; also __gc and __close
 *
 * Secrets: the token and the client key and certificate are copied into
 * buffers that are wiped when replaced or freed; the Authorization header
 * is built per request in such a buffer; nothing here ever returns them,
 * and __tostring shows none of them.
 *
 * tls_server_name (kubeconfig tls-server-name): the name the server's
 * certificate is verified against and sent as SNI, as Go's
 * tls.Config.ServerName. The request goes to that name on the URL's port
 * (so curl uses it for SNI and verification), CURLOPT_CONNECT_TO points the
 * connection at the URL's real host, and the Host header keeps the real
 * host, as Go's client sends it.
 *
 * Codes of failures (rollout.errors.codes): connect (refused, unreachable,
 * unresolved), timeout, tls, too_large, invalid (a URL curl refuses), other;
 * raw is "curl N" (the CURLcode). ^C raises the interrupt sentinel after the transfer
 * is abandoned. Misuse raises.
 *
 * A stream holds its session (user value), and the connection cache they
 * share is freed with the last of them, whichever is closed first. */
#include "rollout/curlx.h"
#include "rollout/host.h"

#include <lauxlib.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SESSION_MT "rollout.http_session.session"
#define STREAM_MT "rollout.http_session.stream"
#define DEFAULT_MAX_BODY ((size_t)256 << 20)
#define MAX_LINE ((size_t)64 << 20)
#define MAX_HEAD ((size_t)1 << 20)

/* ---- secrets ---------------------------------------------------------- */

/* Replaces a secret with the string field `field` of the table at idx
 * (nil: cleared). Misuse raises; memory failures raise too. */
static void secret_field(lua_State *L, int idx, const char *field, rbuf *out)
{
    size_t len;
    const char *s;
    lua_getfield(L, idx, field);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        rbuf_wipe(out);
        return;
    }
    if (lua_type(L, -1) != LUA_TSTRING)
        luaL_error(L, "field '%s' must be a string (got %s)", field, luaL_typename(L, -1));
    s = lua_tolstring(L, -1, &len);
    rbuf_wipe(out);
    if (len > 0 && rbuf_add(out, s, len) != 0)
        luaL_error(L, "out of memory");
    lua_pop(L, 1);
}

/* A string replaces the secret, false clears it, nil keeps it. */
static void update_secret(lua_State *L, int idx, const char *field, rbuf *out)
{
    int t = lua_getfield(L, idx, field);
    lua_pop(L, 1);
    if (t == LUA_TNIL)
        return;
    if (t == LUA_TBOOLEAN) {
        lua_getfield(L, idx, field);
        if (lua_toboolean(L, -1))
            luaL_error(L, "field '%s' must be a string or false", field);
        lua_pop(L, 1);
        rbuf_wipe(out);
        return;
    }
    secret_field(L, idx, field, out);
}

/* ---- the session ------------------------------------------------------- */

typedef struct session {
    int closed;
    CURL *e;        /* reused for every request: keep-alive */
    CURLSH *share;  /* connections, TLS sessions and DNS, shared with streams */
    struct curl_slist *hdrs, *connect_to;
    rbuf body, head;
    size_t max_body;
    int too_large;
    char errbuf[CURL_ERROR_SIZE];
    curlx_guard guard;
    double connect_timeout;
    int insecure;
    char *proxy, *user_agent, *server_name;
    rbuf ca, cert, key, token;
    int streams; /* open streams using `share` */
} session;

typedef struct stream {
    int closed;
    CURL *e;
    CURLM *m;
    int added, done, headers_done;
    CURLcode rc;
    struct curl_slist *hdrs, *connect_to;
    rbuf data, head;
    size_t off;    /* data before off has been handed out */
    int too_large;
    long status;
    char errbuf[CURL_ERROR_SIZE];
    curlx_guard guard;
    char *method, *url; /* for messages */
    session *owner;     /* kept alive by the stream's user value */
} stream;

static void session_free(session *s)
{
    if (s->closed)
        return;
    s->closed = 1;
    if (s->e != NULL)
        curl_easy_cleanup(s->e);
    s->e = NULL;
    if (s->share != NULL && s->streams == 0) {
        curl_share_cleanup(s->share);
        s->share = NULL;
    }
    curl_slist_free_all(s->hdrs);
    curl_slist_free_all(s->connect_to);
    s->hdrs = s->connect_to = NULL;
    rbuf_free(&s->body);
    rbuf_free(&s->head);
    rbuf_wipe(&s->ca);
    rbuf_wipe(&s->cert);
    rbuf_wipe(&s->key);
    rbuf_wipe(&s->token);
    free(s->proxy);
    free(s->user_agent);
    free(s->server_name);
    s->proxy = s->user_agent = s->server_name = NULL;
}

static session *check_session(lua_State *L, int idx)
{
    session *s = luaL_checkudata(L, idx, SESSION_MT);
    if (s->closed)
        luaL_error(L, "attempt to use a closed http session");
    return s;
}

static int session_gc(lua_State *L)
{
    session_free(luaL_checkudata(L, 1, SESSION_MT));
    return 0;
}

static int session_tostring(lua_State *L)
{
    session *s = luaL_checkudata(L, 1, SESSION_MT);
    if (s->closed)
        lua_pushliteral(L, "http session (closed)");
    else
        lua_pushfstring(L, "http session (%s%s%s)", s->insecure ? "TLS unverified" : "TLS verified",
                        s->token.len > 0 ? ", token" : "", s->cert.len > 0 ? ", client certificate" : "");
    return 1;
}

static char *dup_field(lua_State *L, int idx, const char *field)
{
    const char *v = rollout_optfield_string(L, idx, field, NULL);
    char *p;
    if (v == NULL || *v == '\0')
        return NULL;
    if (strpbrk(v, "\r\n") != NULL)
        luaL_error(L, "field '%s' must not hold CR or LF", field);
    p = malloc(strlen(v) + 1);
    if (p == NULL)
        luaL_error(L, "out of memory");
    strcpy(p, v);
    return p;
}

static double seconds(lua_State *L, int idx, const char *field, double def)
{
    double v = rollout_optfield_number(L, idx, field, def);
    if (!(v > 0))
        luaL_error(L, "field '%s' must be a number of seconds > 0", field);
    return v;
}

/* http_session.new{...} */
static int hs_new(lua_State *L)
{
    session *s;
    double mb;
    if (lua_isnoneornil(L, 1)) {
        lua_settop(L, 0);
        lua_newtable(L);
    }
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    s = lua_newuserdatauv(L, sizeof *s, 0);
    memset(s, 0, sizeof *s);
    luaL_setmetatable(L, SESSION_MT);
    s->insecure = rollout_optfield_boolean(L, 1, "insecure", 0);
    s->connect_timeout = seconds(L, 1, "connect_timeout", 10);
    mb = rollout_optfield_number(L, 1, "max_body", (double)DEFAULT_MAX_BODY);
    if (!(mb >= 0 && mb <= 9007199254740992.0))
        return luaL_error(L, "field 'max_body' must be a number of bytes >= 0");
    s->max_body = (size_t)mb;
    s->proxy = dup_field(L, 1, "proxy");
    s->user_agent = dup_field(L, 1, "user_agent");
    s->server_name = dup_field(L, 1, "tls_server_name");
    if (s->server_name != NULL && strpbrk(s->server_name, " /:@[]?#") != NULL)
        return luaL_error(L, "field 'tls_server_name' must be a host name");
    secret_field(L, 1, "ca_data", &s->ca);
    secret_field(L, 1, "cert_data", &s->cert);
    secret_field(L, 1, "key_data", &s->key);
    secret_field(L, 1, "token", &s->token);
    if (s->token.len > 0 && strpbrk(s->token.p, "\r\n") != NULL)
        return luaL_error(L, "field 'token' must not hold CR or LF");
    if ((s->cert.len > 0) != (s->key.len > 0))
        return luaL_error(L, "fields 'cert_data' and 'key_data' go together");
    if (curlx_init() != CURLE_OK)
        return luaL_error(L, "curl_global_init failed");
    s->share = curl_share_init();
    s->e = curl_easy_init();
    if (s->share == NULL || s->e == NULL)
        return luaL_error(L, "out of memory");
    curl_share_setopt(s->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT);
    curl_share_setopt(s->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
    curl_share_setopt(s->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
    return 1;
}

/* s:set_credentials{token =, cert_data =, key_data =}: a string replaces
 * that credential, false clears it, nil (absent) keeps it. curl matches the client certificate when it reuses a connection or a TLS
 * session, so a new certificate is presented on the next request. */
static int hs_set_credentials(lua_State *L)
{
    session *s = check_session(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_settop(L, 2);
    lua_getfield(L, 2, "token");
    if (lua_type(L, -1) == LUA_TSTRING && strpbrk(lua_tostring(L, -1), "\r\n") != NULL)
        return luaL_error(L, "field 'token' must be a string without CR or LF");
    lua_pop(L, 1);
    lua_getfield(L, 2, "cert_data");
    lua_getfield(L, 2, "key_data");
    if (lua_type(L, -1) != lua_type(L, -2))
        return luaL_error(L, "fields 'cert_data' and 'key_data' go together");
    lua_pop(L, 2);
    update_secret(L, 2, "cert_data", &s->cert);
    update_secret(L, 2, "key_data", &s->key);
    update_secret(L, 2, "token", &s->token);
    return 0;
}

static int hs_close(lua_State *L)
{
    session_free(luaL_checkudata(L, 1, SESSION_MT));
    return 0;
}

/* ---- one handle's set-up ------------------------------------------------ */

static int add_header(struct curl_slist **l, const char *h)
{
    struct curl_slist *n = curl_slist_append(*l, h);
    if (n == NULL)
        return -1;
    *l = n;
    return 0;
}

/* The URL curl is given (pushed): with tls_server_name, the URL's host is
 * replaced by it and *connect_to maps it back to the real host; *host gets
 * the "Host:" header to send. Raises on a URL curl cannot parse. */
static const char *effective_url(lua_State *L, session *s, const char *url, struct curl_slist **connect_to,
                                 struct curl_slist **hdrs)
{
    CURLU *u;
    char *host = NULL, *port = NULL, *out = NULL, *scheme = NULL;
    const char *res;
    if (s->server_name == NULL) {
        lua_pushstring(L, url);
        return lua_tostring(L, -1);
    }
    u = curl_url();
    if (u == NULL)
        luaL_error(L, "out of memory");
    if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) != CURLUE_OK) {
        curl_free(host);
        curl_free(scheme);
        curl_url_cleanup(u);
        luaL_error(L, "field 'url' is not a URL");
    }
    lua_pushfstring(L, "%s:%s:%s:%s", s->server_name, port, host, port);
    {
        char hh[600];
        int explicit_port = 0;
        char *p2 = NULL;
        if (curl_url_get(u, CURLUPART_PORT, &p2, 0) == CURLUE_OK)
            explicit_port = 1;
        curl_free(p2);
        snprintf(hh, sizeof hh, "Host: %s%s%s", host, explicit_port ? ":" : "", explicit_port ? port : "");
        if (add_header(hdrs, hh) != 0 || add_header(connect_to, lua_tostring(L, -1)) != 0) {
            curl_free(host);
            curl_free(port);
            curl_free(scheme);
            curl_url_cleanup(u);
            luaL_error(L, "out of memory");
        }
    }
    lua_pop(L, 1);
    curl_url_set(u, CURLUPART_HOST, s->server_name, 0);
    curl_url_get(u, CURLUPART_URL, &out, 0);
    lua_pushstring(L, out ? out : url);
    curl_free(out);
    curl_free(host);
    curl_free(port);
    curl_free(scheme);
    curl_url_cleanup(u);
    res = lua_tostring(L, -1);
    return res;
}

/* Reads method, url, headers, body, auth of the request table at idx and
 * sets up e. Leaves the effective URL and the body (or nil) on the stack.
 * Misuse raises; *hdrs and *connect_to belong to a userdata (freed on a
 * raise). */
static void setup(lua_State *L, session *s, CURL *e, int idx, struct curl_slist **hdrs,
                  struct curl_slist **connect_to, const char **method_out, int stream_mode, double timeout)
{
    const char *method, *url, *body = NULL;
    size_t body_len = 0;
    int auth;

    method = rollout_optfield_string(L, idx, "method", "GET");
    if (!curlx_is_token(method))
        luaL_error(L, "field 'method' must be an HTTP method name");
    *method_out = method;
    lua_getfield(L, idx, "url");
    if (lua_type(L, -1) != LUA_TSTRING)
        luaL_error(L, "field 'url' must be a string (got %s)", luaL_typename(L, -1));
    url = lua_tostring(L, -1);
    if (strlen(url) != lua_rawlen(L, -1) || strpbrk(url, " \t\r\n") != NULL)
        luaL_error(L, "field 'url' must not hold spaces, CR, LF or NUL");
    lua_pop(L, 1); /* anchored by the request table */
    auth = rollout_optfield_boolean(L, idx, "auth", 1);

    curl_slist_free_all(*hdrs);
    curl_slist_free_all(*connect_to);
    *hdrs = *connect_to = NULL;
    lua_getfield(L, idx, "headers");
    curlx_read_headers(L, -1, hdrs);
    lua_pop(L, 1);
    if (add_header(hdrs, "Expect:") != 0)
        luaL_error(L, "out of memory");
    if (auth && s->token.len > 0) {
        rbuf h = RBUF_INIT;
        int bad = rbuf_adds(&h, "Authorization: Bearer ") != 0 || rbuf_add(&h, s->token.p, s->token.len) != 0 ||
                  add_header(hdrs, h.p) != 0;
        rbuf_wipe(&h);
        if (bad)
            luaL_error(L, "out of memory");
    }
    url = effective_url(L, s, url, connect_to, hdrs); /* pushed */

    lua_getfield(L, idx, "body");
    if (lua_type(L, -1) == LUA_TSTRING)
        body = lua_tolstring(L, -1, &body_len);
    else if (!lua_isnil(L, -1))
        luaL_error(L, "field 'body' must be a string (got %s)", luaL_typename(L, -1));

    if (curlx_common(e) != CURLE_OK || curl_easy_setopt(e, CURLOPT_URL, url) != CURLE_OK)
        luaL_error(L, "cannot set up a curl handle");
    curl_easy_setopt(e, CURLOPT_SHARE, s->share);
    curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    if (s->user_agent != NULL)
        curl_easy_setopt(e, CURLOPT_USERAGENT, s->user_agent);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, *hdrs);
    if (*connect_to != NULL)
        curl_easy_setopt(e, CURLOPT_CONNECT_TO, *connect_to);
    if (strcmp(method, "HEAD") == 0)
        curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    else if (strcmp(method, "GET") == 0 && body == NULL)
        curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    else if (!(strcmp(method, "POST") == 0 && body != NULL))
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
    if (body != NULL) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, body); /* anchored on the stack */
    }
    /* TLS: verification on unless the session says otherwise */
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, s->insecure ? 0L : 1L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, s->insecure ? 0L : 2L);
    if (s->ca.len > 0) {
        struct curl_blob b = {s->ca.p, s->ca.len, CURL_BLOB_COPY};
        if (curl_easy_setopt(e, CURLOPT_CAINFO_BLOB, &b) != CURLE_OK)
            luaL_error(L, "this libcurl cannot take a CA from memory");
        curl_easy_setopt(e, CURLOPT_CAPATH, NULL); /* only the given CAs */
    }
    if (s->cert.len > 0 && auth) {
        struct curl_blob cb = {s->cert.p, s->cert.len, CURL_BLOB_COPY};
        struct curl_blob kb = {s->key.p, s->key.len, CURL_BLOB_COPY};
        curl_easy_setopt(e, CURLOPT_SSLCERTTYPE, "PEM");
        curl_easy_setopt(e, CURLOPT_SSLKEYTYPE, "PEM");
        if (curl_easy_setopt(e, CURLOPT_SSLCERT_BLOB, &cb) != CURLE_OK ||
            curl_easy_setopt(e, CURLOPT_SSLKEY_BLOB, &kb) != CURLE_OK)
            luaL_error(L, "this libcurl cannot take a client certificate from memory");
    }
    if (s->proxy != NULL)
        curl_easy_setopt(e, CURLOPT_PROXY, s->proxy);
    if (stream_mode)
        curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
                         curlx_ms(timeout < s->connect_timeout ? timeout : s->connect_timeout));
    else
        curlx_timeouts(e, timeout, timeout < s->connect_timeout ? timeout : s->connect_timeout);
}

/* nil, "METHOD url: text", code, "curl N" */
static int fail(lua_State *L, const char *method, const char *url, CURLcode rc, const char *errbuf,
                const curlx_guard *g, int too_large, size_t limit)
{
    char mib[32];
    snprintf(mib, sizeof mib, "%d MiB", (int)(limit >> 20));
    return curlx_fail(L, method, url, rc, errbuf, g, too_large, mib);
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *ud)
{
    session *s = ud;
    return curlx_add_capped(&s->body, s->max_body, &s->too_large, data, size * nmemb);
}

static size_t on_header(char *line, size_t size, size_t nitems, void *ud)
{
    session *s = ud;
    size_t n = size * nitems;
    if (n >= 5 && memcmp(line, "HTTP/", 5) == 0) { /* a new response (100 Continue, proxy CONNECT) */
        rbuf_clear(&s->head);
        rbuf_clear(&s->body);
    }
    if (s->head.len + n > MAX_HEAD)
        return 0;
    return rbuf_add(&s->head, line, n) == 0 ? n : 0;
}

/* s:request{...} */
static int hs_request(lua_State *L)
{
    session *s = check_session(L, 1);
    const char *method;
    double timeout;
    CURLcode rc;
    int top;
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_settop(L, 2);
    timeout = seconds(L, 2, "timeout", 30);
    curl_easy_reset(s->e);
    rbuf_clear(&s->body);
    rbuf_clear(&s->head);
    s->too_large = 0;
    s->errbuf[0] = '\0';
    s->guard.deadline = 0;
    s->guard.stop = CURLX_GO;
    setup(L, s, s->e, 2, &s->hdrs, &s->connect_to, &method, 0, timeout);
    top = lua_gettop(L); /* url (top-1), body (top) */
    curl_easy_setopt(s->e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(s->e, CURLOPT_WRITEDATA, s);
    curl_easy_setopt(s->e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(s->e, CURLOPT_HEADERDATA, s);
    curl_easy_setopt(s->e, CURLOPT_ERRORBUFFER, s->errbuf);
    curlx_guard_attach(s->e, &s->guard);
    rc = curlx_perform(s->e, &s->guard);
    /* the headers hold the credential: not kept beyond the request */
    curl_easy_setopt(s->e, CURLOPT_HTTPHEADER, NULL);
    curl_slist_free_all(s->hdrs);
    s->hdrs = NULL;
    if (s->guard.stop == CURLX_INTERRUPTED) {
        return rollout_raise_interrupt(L);
    }
    if (rc != CURLE_OK)
        return fail(L, method, lua_tostring(L, top - 1), rc, s->errbuf, &s->guard, s->too_large, s->max_body);
    curlx_push_response(L, s->e, &s->head, &s->body, 0);
    if (s->body.cap > ((size_t)1 << 20)) /* don't keep a large list's buffer */
        rbuf_free(&s->body);
    return 1;
}

/* ---- streams ------------------------------------------------------------- */

static void stream_free(stream *st)
{
    if (st->closed)
        return;
    st->closed = 1;
    if (st->added)
        curl_multi_remove_handle(st->m, st->e);
    st->added = 0;
    if (st->e != NULL)
        curl_easy_cleanup(st->e);
    if (st->m != NULL)
        curl_multi_cleanup(st->m);
    st->e = NULL;
    st->m = NULL;
    if (st->owner != NULL) {
        session *s = st->owner;
        st->owner = NULL;
        if (--s->streams == 0 && s->closed && s->share != NULL) {
            curl_share_cleanup(s->share);
            s->share = NULL;
        }
    }
    curl_slist_free_all(st->hdrs);
    curl_slist_free_all(st->connect_to);
    st->hdrs = st->connect_to = NULL;
    rbuf_free(&st->data);
    rbuf_free(&st->head);
    free(st->method);
    free(st->url);
    st->method = st->url = NULL;
}

static stream *check_stream(lua_State *L, int idx)
{
    stream *st = luaL_checkudata(L, idx, STREAM_MT);
    if (st->closed)
        luaL_error(L, "attempt to use a closed stream");
    return st;
}

static int stream_gc(lua_State *L)
{
    stream_free(luaL_checkudata(L, 1, STREAM_MT));
    return 0;
}

static size_t on_stream_data(char *data, size_t size, size_t nmemb, void *ud)
{
    stream *st = ud;
    size_t n = size * nmemb;
    if (n > MAX_LINE - (st->data.len - st->off)) {
        st->too_large = 1;
        return 0;
    }
    if (st->off > 0 && st->off == st->data.len) { /* all handed out: start over */
        rbuf_clear(&st->data);
        st->off = 0;
    }
    return rbuf_add(&st->data, data, n) == 0 ? n : 0;
}

static size_t on_stream_header(char *line, size_t size, size_t nitems, void *ud)
{
    stream *st = ud;
    size_t n = size * nitems;
    if (n >= 5 && memcmp(line, "HTTP/", 5) == 0) {
        rbuf_clear(&st->head);
        st->headers_done = 0;
    } else if ((n == 2 && line[0] == '\r' && line[1] == '\n') || (n == 1 && line[0] == '\n')) {
        long code = 0;
        curl_easy_getinfo(st->e, CURLINFO_RESPONSE_CODE, &code);
        if (code >= 200)
            st->headers_done = 1;
    }
    if (st->head.len + n > MAX_HEAD)
        return 0;
    return rbuf_add(&st->head, line, n) == 0 ? n : 0;
}

enum { STEP_GO, STEP_DONE, STEP_WAIT_OVER, STEP_STOP };

/* Runs the transfer until `ready(st)` holds, it ends, `wait` seconds pass
 * or ^C. Returns one of STEP_*. */
static int pump(stream *st, double wait, int (*ready)(stream *))
{
    double until = rollout_now() + wait;
    for (;;) {
        int running = 0, queued;
        CURLMsg *msg;
        if (curl_multi_perform(st->m, &running) != CURLM_OK) {
            st->done = 1;
            st->rc = CURLE_FAILED_INIT;
            return STEP_DONE;
        }
        while ((msg = curl_multi_info_read(st->m, &queued)) != NULL)
            if (msg->msg == CURLMSG_DONE && msg->easy_handle == st->e) {
                st->rc = msg->data.result;
                st->done = 1;
            }
        if (running == 0 && !st->done) {
            st->done = 1;
            st->rc = CURLE_OK;
        }
        if (ready(st))
            return STEP_GO;
        if (st->done)
            return STEP_DONE;
        if (curlx_guard_check(&st->guard) != CURLX_GO)
            return STEP_STOP;
        if (rollout_now() >= until)
            return STEP_WAIT_OVER;
        {
            double left = until - rollout_now();
            int ms = left > 0.1 ? 100 : (int)(left * 1000) + 1;
            curl_multi_poll(st->m, NULL, 0, ms, NULL);
        }
    }
}

static int have_headers(stream *st)
{
    return st->headers_done;
}

static int have_line(stream *st)
{
    return memchr(st->data.p ? st->data.p + st->off : "", '\n', st->data.len - st->off) != NULL;
}

static int never(stream *st)
{
    (void)st;
    return 0;
}

static int stream_error(lua_State *L, stream *st)
{
    return fail(L, st->method, st->url, st->rc, st->errbuf, &st->guard, st->too_large, MAX_LINE);
}

/* s:stream{...} */
static int hs_stream(lua_State *L)
{
    session *s = check_session(L, 1);
    const char *method;
    stream *st;
    double timeout;
    int r;
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_settop(L, 2);
    timeout = seconds(L, 2, "timeout", 30); /* to connect and get the headers */
    st = lua_newuserdatauv(L, sizeof *st, 1); /* 3 */
    memset(st, 0, sizeof *st);
    luaL_setmetatable(L, STREAM_MT);
    lua_pushvalue(L, 1);
    lua_setiuservalue(L, 3, 1);
    st->owner = s;
    s->streams++;
    st->e = curl_easy_init();
    st->m = curl_multi_init();
    if (st->e == NULL || st->m == NULL)
        return luaL_error(L, "out of memory");
    setup(L, s, st->e, 2, &st->hdrs, &st->connect_to, &method, 1, timeout);
    st->method = malloc(strlen(method) + 1);
    st->url = malloc(strlen(lua_tostring(L, -2)) + 1);
    if (st->method == NULL || st->url == NULL)
        return luaL_error(L, "out of memory");
    strcpy(st->method, method);
    strcpy(st->url, lua_tostring(L, -2));
    curl_easy_setopt(st->e, CURLOPT_WRITEFUNCTION, on_stream_data);
    curl_easy_setopt(st->e, CURLOPT_WRITEDATA, st);
    curl_easy_setopt(st->e, CURLOPT_HEADERFUNCTION, on_stream_header);
    curl_easy_setopt(st->e, CURLOPT_HEADERDATA, st);
    curl_easy_setopt(st->e, CURLOPT_ERRORBUFFER, st->errbuf);
    curlx_guard_attach(st->e, &st->guard);
    if (curl_multi_add_handle(st->m, st->e) != CURLM_OK)
        return luaL_error(L, "cannot start a stream (curl_multi_add_handle)");
    st->added = 1;
    r = pump(st, timeout, have_headers);
    /* the credential in the headers is sent: forget it */
    curl_slist_free_all(st->hdrs);
    st->hdrs = NULL;
    curl_easy_setopt(st->e, CURLOPT_HTTPHEADER, NULL);
    if (st->guard.stop == CURLX_INTERRUPTED) {
        stream_free(st);
        return rollout_raise_interrupt(L);
    }
    if (r == STEP_WAIT_OVER) {
        st->rc = CURLE_OPERATION_TIMEDOUT;
        snprintf(st->errbuf, sizeof st->errbuf, "no answer within %gs", timeout);
        r = stream_error(L, st);
        stream_free(st);
        return r;
    }
    if (!st->headers_done) {
        if (st->rc == CURLE_OK)
            st->rc = CURLE_GOT_NOTHING;
        r = stream_error(L, st);
        stream_free(st);
        return r;
    }
    curl_easy_getinfo(st->e, CURLINFO_RESPONSE_CODE, &st->status);
    lua_settop(L, 3);
    return 1;
}

static int st_status(lua_State *L)
{
    stream *st = check_stream(L, 1);
    lua_pushinteger(L, st->status);
    return 1;
}

static int st_headers(lua_State *L)
{
    stream *st = check_stream(L, 1);
    curlx_push_headers(L, st->head.p ? st->head.p : "", st->head.len);
    return 1;
}

static double wait_arg(lua_State *L, int idx, double def)
{
    double w = luaL_optnumber(L, idx, def);
    luaL_argcheck(L, w >= 0, idx, "must be a number of seconds >= 0");
    return w;
}

/* st:read(wait) */
static int st_read(lua_State *L)
{
    stream *st = check_stream(L, 1);
    double wait = wait_arg(L, 2, 1);
    char *nl;
    int r = STEP_GO;
    if (!have_line(st) && !st->done)
        r = pump(st, wait, have_line);
    if (r == STEP_STOP && st->guard.stop == CURLX_INTERRUPTED) {
        stream_free(st);
        return rollout_raise_interrupt(L);
    }
    nl = st->data.p ? memchr(st->data.p + st->off, '\n', st->data.len - st->off) : NULL;
    if (nl != NULL) {
        size_t start = st->off, end = (size_t)(nl - st->data.p);
        st->off = end + 1;
        if (end > start && st->data.p[end - 1] == '\r')
            end--;
        lua_pushlstring(L, st->data.p + start, end - start);
        return 1;
    }
    if (!st->done) {
        lua_pushboolean(L, 0);
        return 1;
    }
    if (st->rc != CURLE_OK)
        return stream_error(L, st);
    if (st->off < st->data.len) { /* a last line without "\n" */
        lua_pushlstring(L, st->data.p + st->off, st->data.len - st->off);
        st->off = st->data.len;
        return 1;
    }
    lua_pushnil(L);
    return 1;
}

/* st:rest([wait = 30]) */
static int st_rest(lua_State *L)
{
    stream *st = check_stream(L, 1);
    double wait = wait_arg(L, 2, 30);
    int r = STEP_DONE;
    if (!st->done)
        r = pump(st, wait, never);
    if (r == STEP_STOP && st->guard.stop == CURLX_INTERRUPTED) {
        stream_free(st);
        return rollout_raise_interrupt(L);
    }
    if (st->done && st->rc != CURLE_OK)
        return stream_error(L, st);
    lua_pushlstring(L, st->data.p ? st->data.p + st->off : "", st->data.len - st->off);
    st->off = st->data.len;
    return 1;
}

static int st_close(lua_State *L)
{
    stream_free(luaL_checkudata(L, 1, STREAM_MT));
    return 0;
}

static int st_tostring(lua_State *L)
{
    stream *st = luaL_checkudata(L, 1, STREAM_MT);
    if (st->closed) {
        lua_pushliteral(L, "http stream (closed)");
    } else {
        char where[512];
        curlx_redact_url(st->url, where, sizeof where);
        lua_pushfstring(L, "http stream (%s %s, status %d%s)", st->method, where, (int)st->status,
                        st->done ? ", ended" : "");
    }
    return 1;
}

int luaopen_rollout_http_session(lua_State *L)
{
    static const luaL_Reg funcs[] = {{"new", hs_new}, {NULL, NULL}};
    static const luaL_Reg session_methods[] = {
        {"request", hs_request}, {"stream", hs_stream}, {"set_credentials", hs_set_credentials},
        {"close", hs_close},     {NULL, NULL}};
    static const luaL_Reg stream_methods[] = {{"status", st_status}, {"headers", st_headers}, {"read", st_read},
                                              {"rest", st_rest},     {"close", st_close},     {NULL, NULL}};
    if (luaL_newmetatable(L, SESSION_MT)) {
        lua_pushcfunction(L, session_gc);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, session_gc);
        lua_setfield(L, -2, "__close");
        lua_pushcfunction(L, session_tostring);
        lua_setfield(L, -2, "__tostring");
        luaL_newlib(L, session_methods);
        lua_setfield(L, -2, "__index");
    }
    lua_pop(L, 1);
    if (luaL_newmetatable(L, STREAM_MT)) {
        lua_pushcfunction(L, stream_gc);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, stream_gc);
        lua_setfield(L, -2, "__close");
        lua_pushcfunction(L, st_tostring);
        lua_setfield(L, -2, "__tostring");
        luaL_newlib(L, stream_methods);
        lua_setfield(L, -2, "__index");
    }
    lua_pop(L, 1);
    curlx_init();
    luaL_newlib(L, funcs);
    return 1;
}
