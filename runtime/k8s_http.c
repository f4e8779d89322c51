/* rollout.k8s requests: one API request on the client's easy handle
 * (reset and set up each time; the connection stays in the client's share,
 * so requests reuse it), credentials first and one retry after a 401 when
 * a credential can be refreshed; API errors from the Status body. */
#include "k8s_internal.h"
#include "rollout/convert.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void k8s_add_escaped(luaL_Buffer *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (; *s != '\0'; s++) {
        unsigned char ch = (unsigned char)*s;
        if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-' ||
            ch == '.' || ch == '_' || ch == '~') {
            luaL_addchar(b, (char)ch);
        } else {
            luaL_addchar(b, '%');
            luaL_addchar(b, hex[ch >> 4]);
            luaL_addchar(b, hex[ch & 15]);
        }
    }
}

void k8s_add_query(luaL_Buffer *b, int *first, const char *key, const char *value)
{
    if (!*first)
        luaL_addchar(b, '&');
    *first = 0;
    k8s_add_escaped(b, key);
    luaL_addchar(b, '=');
    k8s_add_escaped(b, value);
}

const char *k8s_reason_for_code(long code)
{
    switch (code) {
    case 400: return "BadRequest";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "NotFound";
    case 405: return "MethodNotAllowed";
    case 406: return "NotAcceptable";
    case 409: return "Conflict";
    case 410: return "Expired";
    case 413: return "RequestEntityTooLarge";
    case 415: return "UnsupportedMediaType";
    case 422: return "Invalid";
    case 429: return "TooManyRequests";
    case 500: return "InternalError";
    case 503: return "ServiceUnavailable";
    case 504: return "Timeout";
    default: return "Unknown";
    }
}

static int add_header(struct curl_slist **hdrs, const char *h)
{
    struct curl_slist *l = curl_slist_append(*hdrs, h);
    if (l == NULL)
        return -1;
    *hdrs = l;
    return 0;
}

int k8s_setup_handle(k8s_client *c, CURL *e, struct curl_slist **hdrs, const char *method,
                     const char *url, const char *content_type, const char *accept,
                     const char *body, size_t body_len, double timeout, int stream)
{
    char h[256];
    int ok;

    curl_slist_free_all(*hdrs);
    *hdrs = NULL;
    ok = curlx_common(e) == CURLE_OK && curl_easy_setopt(e, CURLOPT_URL, url) == CURLE_OK &&
         curl_easy_setopt(e, CURLOPT_USERAGENT, K8S_USER_AGENT) == CURLE_OK &&
         curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "") == CURLE_OK &&
         curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L) == CURLE_OK;
    if (!ok)
        return -1;
    snprintf(h, sizeof h, "Accept: %s", accept ? accept : "application/json");
    if (add_header(hdrs, h) != 0 || add_header(hdrs, "Expect:") != 0)
        return -1;
    if (body != NULL) {
        snprintf(h, sizeof h, "Content-Type: %s", content_type ? content_type : "application/json");
        if (add_header(hdrs, h) != 0)
            return -1;
    }
    if (k8s_auth_apply(c, e, hdrs) != 0)
        return -1;
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, *hdrs);

    if (strcmp(method, "GET") == 0) {
        curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    } else if (strcmp(method, "HEAD") == 0) {
        curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    } else {
        if (strcmp(method, "POST") != 0 || body == NULL)
            curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
    }
    if (body != NULL) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
    }

    /* TLS: verification is on unless the kubeconfig says otherwise */
    if (c->insecure) {
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
    } else {
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
    }
    if (c->ca.len > 0) {
        struct curl_blob b = {c->ca.p, c->ca.len, CURL_BLOB_COPY};
        if (curl_easy_setopt(e, CURLOPT_CAINFO_BLOB, &b) != CURLE_OK)
            return -1;
        curl_easy_setopt(e, CURLOPT_CAPATH, NULL); /* only the cluster's CA */
    }
    if (c->proxy != NULL)
        curl_easy_setopt(e, CURLOPT_PROXY, c->proxy);

    if (stream) {
        curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, curlx_ms(timeout < 10 ? timeout : 10));
    } else {
        curlx_timeouts(e, timeout, timeout < 10 ? timeout : 10);
    }
    return 0;
}

int k8s_perform(lua_State *L, int ci, const k8s_req *rq, long *status)
{
    k8s_client *c = lua_touserdata(L, ci);
    int retried = 0, r;
    CURLcode rc;
    luaL_Buffer b;
    const char *url;

    luaL_buffinit(L, &b);
    luaL_addstring(&b, c->server);
    luaL_addstring(&b, rq->path);
    if (rq->query != NULL && *rq->query != '\0') {
        luaL_addchar(&b, '?');
        luaL_addstring(&b, rq->query);
    }
    luaL_pushresult(&b);
    url = lua_tostring(L, -1); /* stays on the stack */

again:
    if ((r = k8s_auth_prepare(L, ci)) != 0)
        return r;
    if (c->closed)
        return luaL_error(L, "attempt to use a closed k8s client");
    curl_easy_reset(c->e);
    k8s_client_callbacks(c);
    c->body.len = 0;
    c->head.len = 0;
    if (c->body.p)
        c->body.p[0] = '\0';
    c->too_large = 0;
    c->errbuf[0] = '\0';
    c->guard.deadline = 0;
    c->guard.stop = CURLX_GO;
    if (k8s_setup_handle(c, c->e, &c->hdrs, rq->method, url, rq->content_type, rq->accept, rq->body,
                         rq->body_len, rq->timeout, 0) != 0)
        return luaL_error(L, "cannot set up a curl handle (out of memory?)");
    curlx_guard_attach(c->e, &c->guard);

    rc = curlx_perform(c->e, &c->guard);
    curl_slist_free_all(c->hdrs); /* it holds the credential */
    c->hdrs = NULL;

    if (c->guard.stop == CURLX_INTERRUPTED) {
        rollout_check_interrupt(L);
        return luaL_error(L, "interrupted");
    }
    if (rc != CURLE_OK) {
        const char *code = curlx_code(rc, &c->guard, c->too_large);
        if (strcmp(code, "too_large") == 0) {
            char where[512];
            curlx_redact_url(url, where, sizeof where);
            lua_pushnil(L);
            lua_pushfstring(L, "%s %s: the response is over %d MiB", rq->method, where, (int)(K8S_MAX_BODY >> 20));
            lua_pushstring(L, code);
            return 3;
        }
        return curlx_fail(L, rq->method, url, rc, c->errbuf, code);
    }
    curl_easy_getinfo(c->e, CURLINFO_RESPONSE_CODE, status);
    if (*status == 401 && !retried && k8s_auth_invalidate(c)) {
        retried = 1;
        goto again;
    }
    lua_pop(L, 1); /* the URL */
    return 0;
}

/* Pushes the first line of s with at most max bytes (CR/LF -> ' '). */
static void push_one_line(lua_State *L, const char *s, size_t len, size_t max)
{
    luaL_Buffer b;
    size_t n = 0;
    int space = 0;
    luaL_buffinit(L, &b);
    for (size_t i = 0; i < len && n < max; i++) {
        char ch = s[i];
        if (ch == '\n' || ch == '\r' || ch == '\t') {
            space = n > 0;
            continue;
        }
        if (space) {
            luaL_addchar(&b, ' ');
            n++;
            space = 0;
        }
        luaL_addchar(&b, ch);
        n++;
    }
    luaL_pushresult(&b);
}

int k8s_push_status_error(lua_State *L, k8s_client *c, const char *method, const char *path,
                          long status, const char *body, size_t len)
{
    int top = lua_gettop(L);
    char where[512];
    lua_pushfstring(L, "%s%s", c->server, path);
    curlx_redact_url(lua_tostring(L, -1), where, sizeof where);
    lua_pop(L, 1);
    if (len > 0 && k8s_json_decode(L, body, len) == 1 && lua_istable(L, -1)) {
        int st = lua_gettop(L);
        const char *kind = NULL, *msg = NULL, *reason = NULL;
        if (lua_getfield(L, st, "kind") == LUA_TSTRING)
            kind = lua_tostring(L, -1);
        if (kind != NULL && strcmp(kind, "Status") == 0) {
            size_t mlen = 0;
            if (lua_getfield(L, st, "message") == LUA_TSTRING)
                msg = lua_tolstring(L, -1, &mlen);
            if (lua_getfield(L, st, "reason") == LUA_TSTRING)
                reason = lua_tostring(L, -1);
            lua_pushnil(L);
            if (msg != NULL && mlen > 0)
                push_one_line(L, msg, mlen, 2000);
            else
                lua_pushfstring(L, "%s %s: HTTP %d %s", method, where, (int)status,
                                reason && *reason ? reason : k8s_reason_for_code(status));
            lua_pushstring(L, reason && *reason ? reason : k8s_reason_for_code(status));
            lua_pushvalue(L, st);
            return 4;
        }
    }
    lua_settop(L, top);
    lua_pushnil(L);
    lua_pushfstring(L, "%s %s: HTTP %d", method, where, (int)status);
    if (len > 0) {
        lua_pushliteral(L, ": ");
        push_one_line(L, body, len, 300);
        lua_concat(L, 3);
    }
    lua_pushstring(L, k8s_reason_for_code(status));
    return 3;
}

int k8s_push_result(lua_State *L, k8s_client *c, const k8s_req *rq, long status)
{
    const char *body = c->body.p ? c->body.p : "";
    size_t len = c->body.len;
    if (status >= 200 && status < 300) {
        int r;
        if (len == 0) {
            lua_pushboolean(L, 1);
            return 1;
        }
        r = k8s_json_decode(L, body, len);
        if (r != 1) {
            char where[512];
            const char *why = lua_tostring(L, -2); /* anchored below */
            lua_pushfstring(L, "%s%s", c->server, rq->path);
            curlx_redact_url(lua_tostring(L, -1), where, sizeof where);
            lua_pushnil(L);
            lua_pushfstring(L, "%s %s: the answer is not JSON: %s", rq->method, where, why ? why : "?");
            lua_pushliteral(L, "invalid");
            return 3;
        }
        return 1;
    }
    return k8s_push_status_error(L, c, rq->method, rq->path, status, body, len);
}
