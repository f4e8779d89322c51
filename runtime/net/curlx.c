/* curlx: libcurl set-up, options, ^C/deadline guard and error mapping shared
 * by rollout.http, rollout.probe and the Kubernetes client. */
#include "rollout/curlx.h"
#include "rollout/host.h"

#include <lauxlib.h>

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static CURLcode init_result = CURLE_FAILED_INIT;

static void do_init(void)
{
    init_result = curl_global_init(CURL_GLOBAL_DEFAULT);
}

CURLcode curlx_init(void)
{
    pthread_once(&init_once, do_init);
    return init_result;
}

CURLcode curlx_common(CURL *e)
{
    CURLcode rc = curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    return rc;
}

long curlx_ms(double s)
{
    double ms;
    if (isinf(s) || isnan(s))
        return 0;
    ms = ceil(s * 1000.0);
    if (ms < 1)
        return 1;
    if (ms > 2147483647.0)
        return 0; /* more than 24 days: no limit */
    return (long)ms;
}

void curlx_timeouts(CURL *e, double total_s, double connect_s)
{
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, curlx_ms(total_s));
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, curlx_ms(connect_s));
}

int curlx_guard_check(curlx_guard *g)
{
    if (g->stop != CURLX_GO)
        return g->stop;
    if (rollout_interrupted())
        g->stop = CURLX_INTERRUPTED;
    else if (g->deadline > 0 && rollout_now() >= g->deadline)
        g->stop = CURLX_EXPIRED;
    return g->stop;
}

static int xferinfo(void *clientp, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                    curl_off_t ulnow)
{
    (void)dltotal;
    (void)dlnow;
    (void)ultotal;
    (void)ulnow;
    return curlx_guard_check((curlx_guard *)clientp) != CURLX_GO;
}

void curlx_guard_attach(CURL *e, curlx_guard *g)
{
    curl_easy_setopt(e, CURLOPT_XFERINFOFUNCTION, xferinfo);
    curl_easy_setopt(e, CURLOPT_XFERINFODATA, g);
    curl_easy_setopt(e, CURLOPT_NOPROGRESS, 0L);
}

CURLcode curlx_perform(CURL *e, curlx_guard *g)
{
    curlx_guard local = {0, CURLX_GO};
    CURLcode rc = CURLE_OK;
    CURLM *m;

    if (g == NULL)
        g = &local;
    m = curl_multi_init();
    if (m == NULL)
        return CURLE_OUT_OF_MEMORY;
    if (curl_multi_add_handle(m, e) != CURLM_OK) {
        curl_multi_cleanup(m);
        return CURLE_FAILED_INIT;
    }
    for (;;) {
        int running = 0, queued;
        CURLMsg *msg;
        CURLMcode mc = curl_multi_perform(m, &running);
        if (mc != CURLM_OK) {
            rc = mc == CURLM_OUT_OF_MEMORY ? CURLE_OUT_OF_MEMORY : CURLE_FAILED_INIT;
            break;
        }
        if (running == 0) {
            rc = CURLE_FAILED_INIT;
            while ((msg = curl_multi_info_read(m, &queued)) != NULL)
                if (msg->msg == CURLMSG_DONE && msg->easy_handle == e)
                    rc = msg->data.result;
            break;
        }
        if (curlx_guard_check(g) != CURLX_GO) {
            rc = CURLE_ABORTED_BY_CALLBACK;
            break;
        }
        mc = curl_multi_poll(m, NULL, 0, 100, NULL);
        if (mc != CURLM_OK) {
            rc = CURLE_FAILED_INIT;
            break;
        }
    }
    /* the guard may also have stopped the transfer from the xferinfo
     * callback: keep its reason */
    if (rc == CURLE_ABORTED_BY_CALLBACK && g->stop == CURLX_GO)
        curlx_guard_check(g);
    curl_multi_remove_handle(m, e);
    curl_multi_cleanup(m);
    return rc;
}

rollout_code curlx_code(CURLcode rc, const curlx_guard *g, int too_large)
{
    switch (rc) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
        return ROLLOUT_E_CONNECT;
    case CURLE_OPERATION_TIMEDOUT:
        return ROLLOUT_E_TIMEOUT;
    case CURLE_ABORTED_BY_CALLBACK:
        if (g != NULL && g->stop == CURLX_INTERRUPTED)
            return ROLLOUT_E_INTERRUPTED;
        if (g != NULL && g->stop == CURLX_EXPIRED)
            return ROLLOUT_E_TIMEOUT;
        return ROLLOUT_E_OTHER;
    case CURLE_FILESIZE_EXCEEDED:
        return ROLLOUT_E_TOO_LARGE;
    case CURLE_WRITE_ERROR:
        return too_large ? ROLLOUT_E_TOO_LARGE : ROLLOUT_E_OTHER;
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
        return ROLLOUT_E_INVALID;
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_ENGINE_INITFAILED:
    case CURLE_USE_SSL_FAILED:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_SHUTDOWN_FAILED:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_CLIENTCERT:
        return ROLLOUT_E_TLS;
    default:
        return ROLLOUT_E_OTHER;
    }
}

void curlx_redact_url(const char *url, char *out, size_t outlen)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL, *port = NULL, *path = NULL;

    if (outlen == 0)
        return;
    snprintf(out, outlen, "(invalid URL)");
    if (u == NULL || url == NULL)
        goto done;
    if (curl_url_set(u, CURLUPART_URL, url, CURLU_GUESS_SCHEME | CURLU_NON_SUPPORT_SCHEME) !=
        CURLUE_OK)
        goto done;
    if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK)
        goto done;
    if (curl_url_get(u, CURLUPART_PORT, &port, 0) != CURLUE_OK)
        port = NULL; /* not given explicitly */
    if (curl_url_get(u, CURLUPART_PATH, &path, 0) != CURLUE_OK)
        path = NULL;
    snprintf(out, outlen, "%s://%s%s%s%s", scheme, host, port ? ":" : "",
             port ? port : "", path ? path : "/");
done:
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_free(path);
    curl_url_cleanup(u);
}

int curlx_is_token(const char *s)
{
    size_t n = strlen(s);
    return n > 0 && n < 64 &&
           strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_!#$%&'*+.^`|~") == n;
}

void curlx_read_headers(lua_State *L, int idx, struct curl_slist **list)
{
    idx = lua_absindex(L, idx);
    if (lua_isnil(L, idx))
        return;
    if (!lua_istable(L, idx))
        luaL_error(L, "field 'headers' must be a table (got %s)", luaL_typename(L, idx));
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        const char *name, *value;
        size_t vlen;
        luaL_Buffer b;
        struct curl_slist *l;
        if (lua_type(L, -2) != LUA_TSTRING || !curlx_is_token(lua_tostring(L, -2)))
            luaL_error(L, "headers: names must be HTTP tokens (letters, digits, -)");
        name = lua_tostring(L, -2);
        if (lua_type(L, -1) != LUA_TSTRING && lua_type(L, -1) != LUA_TNUMBER)
            luaL_error(L, "headers: the value of %s must be a string (got %s)", name,
                       luaL_typename(L, -1));
        value = lua_tolstring(L, -1, &vlen);
        if (strlen(value) != vlen || strpbrk(value, "\r\n") != NULL)
            luaL_error(L, "headers: the value of %s holds CR, LF or NUL", name);
        luaL_buffinit(L, &b);
        luaL_addstring(&b, name);
        luaL_addstring(&b, vlen ? ": " : ";");
        luaL_addlstring(&b, value, vlen);
        luaL_pushresult(&b);
        l = curl_slist_append(*list, lua_tostring(L, -1));
        if (l == NULL)
            luaL_error(L, "out of memory");
        *list = l;
        lua_pop(L, 2);
    }
}

void curlx_push_headers(lua_State *L, const char *raw, size_t len)
{
    const char *p = raw, *end = raw + len;
    int t;
    lua_newtable(L);
    t = lua_gettop(L);
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        const char *line_end = eol ? eol : end;
        const char *colon, *v, *ve;
        char name[256];
        size_t nlen;
        if (line_end - p >= 5 && memcmp(p, "HTTP/", 5) == 0) {
            lua_settop(L, t - 1); /* a new response: start over */
            lua_newtable(L);
        } else if ((colon = memchr(p, ':', (size_t)(line_end - p))) != NULL &&
                   (nlen = (size_t)(colon - p)) > 0 && nlen < sizeof name) {
            for (size_t i = 0; i < nlen; i++) {
                char c = p[i];
                name[i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
            }
            v = colon + 1;
            ve = line_end;
            while (v < ve && (*v == ' ' || *v == '\t'))
                v++;
            while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ' || ve[-1] == '\t'))
                ve--;
            lua_pushlstring(L, name, nlen);
            lua_pushvalue(L, -1);
            lua_rawget(L, t);
            if (lua_isstring(L, -1)) { /* repeated: "a, b" */
                lua_pushliteral(L, ", ");
                lua_pushlstring(L, v, (size_t)(ve - v));
                lua_concat(L, 3);
            } else {
                lua_pop(L, 1);
                lua_pushlstring(L, v, (size_t)(ve - v));
            }
            lua_rawset(L, t);
        }
        p = eol ? eol + 1 : end;
    }
}

int curlx_fail(lua_State *L, const char *method, const char *url, CURLcode rc, const char *errbuf,
               const curlx_guard *g, int too_large, const char *limit)
{
    char where[512];
    rollout_code code = curlx_code(rc, g, too_large);
    const char *text;
    size_t len;

    curlx_redact_url(url, where, sizeof where);
    lua_pushnil(L);
    lua_pushfstring(L, "%s %s: ", method ? method : "GET", where);
    if (code == ROLLOUT_E_TOO_LARGE && limit != NULL) {
        lua_pushfstring(L, "the response is over the limit of %s", limit);
    } else {
        /* curl's own text; not its error buffer when our deadline stopped
         * the transfer (it says "callback aborted") */
        int ours = g != NULL && g->stop == CURLX_EXPIRED;
        text = !ours && errbuf != NULL && *errbuf != '\0' ? errbuf : curl_easy_strerror(rc);
        len = strlen(text);
        while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r'))
            len--; /* curl's error buffer may end with a newline */
        lua_pushlstring(L, text, len);
    }
    lua_concat(L, 2);
    lua_pushstring(L, rollout_code_name(code));
    lua_pushfstring(L, "curl %d", (int)rc);
    return 4;
}

void curlx_push_response(lua_State *L, CURL *e, const rbuf *head, const rbuf *body, int extra)
{
    long status = 0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    lua_createtable(L, 0, 3 + extra);
    lua_pushinteger(L, status);
    lua_setfield(L, -2, "status");
    curlx_push_headers(L, head->p ? head->p : "", head->len);
    lua_setfield(L, -2, "headers");
    lua_pushlstring(L, body->p ? body->p : "", body->len);
    lua_setfield(L, -2, "body");
}

size_t curlx_add_capped(rbuf *b, size_t max, int *too_large, const char *data, size_t n)
{
    if (n > max - b->len) {
        *too_large = 1;
        return 0;
    }
    return rbuf_add(b, data, n) == 0 ? n : 0;
}
