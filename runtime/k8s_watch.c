/* rollout.k8s watch: GET ...?watch=1 streams one JSON event per line
 * ({"type": "ADDED|MODIFIED|DELETED|BOOKMARK|ERROR", "object": {...}}, in
 * HTTP chunks). A watch has its own easy handle and multi handle (so the
 * callback may use the client for other requests), held by a userdata that
 * frees them if anything raises.
 *
 *   client:watch(kind, {namespace =, selector =, field_selector =,
 *                       all_namespaces =, resource_version =, timeout =},
 *                function(type, object) ... end)
 *     -> true, last_resource_version   (the callback returned true, the
 *                                       timeout passed, or the server ended
 *                                       the stream)
 *     -> nil, message, code [, status] (HTTP errors: the Status reason; an
 *                                       ERROR event: its reason, "Expired"
 *                                       for 410; transport: curlx codes)
 * BOOKMARK events only move last_resource_version. ^C stops the stream,
 * frees it and raises "interrupted"; an error raised by the callback is
 * raised again after the stream is freed. */
#include "k8s_internal.h"
#include "rollout/convert.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define K8S_WATCH_MT "rollout.k8s.watch"
#define MAX_EVENT ((size_t)64 << 20)

typedef struct k8s_watch {
    CURL *e;
    CURLM *m;
    int added;
    struct curl_slist *hdrs;
    k8s_buf buf;
    int too_large;
    char errbuf[CURL_ERROR_SIZE];
    curlx_guard guard;
} k8s_watch;

static void watch_free(k8s_watch *w)
{
    if (w->added)
        curl_multi_remove_handle(w->m, w->e);
    w->added = 0;
    if (w->e != NULL)
        curl_easy_cleanup(w->e);
    if (w->m != NULL)
        curl_multi_cleanup(w->m);
    w->e = NULL;
    w->m = NULL;
    curl_slist_free_all(w->hdrs);
    w->hdrs = NULL;
    free(w->buf.p);
    memset(&w->buf, 0, sizeof w->buf);
}

static int watch_gc(lua_State *L)
{
    watch_free(luaL_checkudata(L, 1, K8S_WATCH_MT));
    return 0;
}

static size_t on_data(char *data, size_t size, size_t nmemb, void *ud)
{
    k8s_watch *w = ud;
    size_t n = size * nmemb;
    k8s_buf *b = &w->buf;
    if (n > MAX_EVENT - b->len) {
        w->too_large = 1;
        return 0;
    }
    if (k8s_buf_append(b, data, n, 16384) != 0)
        return 0;
    return n;
}

typedef struct wctx {
    lua_State *L;
    int ci, wi, fn, rv; /* stack slots: client, watch userdata, callback, last rv */
    k8s_client *c;
    k8s_watch *w;
    const char *path;
} wctx;

enum { EV_GO = 0, EV_STOP = 1, EV_FAIL = 2 };

/* Handles one event line. EV_FAIL leaves nil, message, code[, status]. */
static int handle_line(wctx *x, const char *line, size_t len)
{
    lua_State *L = x->L;
    int top = lua_gettop(L), ev, obj;
    const char *type;

    if (k8s_json_decode(L, line, len) != 1) {
        const char *why = lua_tostring(L, -2);
        lua_pushnil(L);
        lua_pushfstring(L, "watch %s: an event is not JSON: %s", x->path, why ? why : "?");
        lua_pushliteral(L, "invalid");
        return EV_FAIL;
    }
    ev = lua_gettop(L);
    if (!lua_istable(L, ev) || lua_getfield(L, ev, "type") != LUA_TSTRING ||
        lua_getfield(L, ev, "object") != LUA_TTABLE) {
        lua_pushnil(L);
        lua_pushfstring(L, "watch %s: an event has no type or object", x->path);
        lua_pushliteral(L, "invalid");
        return EV_FAIL;
    }
    type = lua_tostring(L, ev + 1);
    obj = ev + 2;
    if (strcmp(type, "ERROR") == 0) {
        const char *msg = NULL, *reason = NULL;
        lua_Integer code = 0;
        if (lua_getfield(L, obj, "message") == LUA_TSTRING)
            msg = lua_tostring(L, -1);
        if (lua_getfield(L, obj, "reason") == LUA_TSTRING)
            reason = lua_tostring(L, -1);
        if (lua_getfield(L, obj, "code") == LUA_TNUMBER)
            code = lua_tointeger(L, -1);
        lua_pushnil(L);
        lua_pushstring(L, msg && *msg ? msg : "watch ERROR event");
        if (code == 410)
            lua_pushliteral(L, "Expired");
        else
            lua_pushstring(L, reason && *reason ? reason : k8s_reason_for_code((long)code));
        lua_pushvalue(L, obj);
        return EV_FAIL;
    }
    if (lua_getfield(L, obj, "metadata") == LUA_TTABLE &&
        lua_getfield(L, -1, "resourceVersion") == LUA_TSTRING)
        lua_replace(L, x->rv);
    lua_settop(L, obj);
    if (strcmp(type, "BOOKMARK") == 0) {
        lua_settop(L, top);
        return EV_GO;
    }
    lua_pushvalue(L, x->fn);
    lua_pushvalue(L, ev + 1);
    lua_pushvalue(L, obj);
    if (lua_pcall(L, 2, 1, 0) != LUA_OK) {
        watch_free(x->w);
        lua_error(L); /* the callback's error, after cleanup */
    }
    ev = lua_toboolean(L, -1);
    lua_settop(L, top);
    if (ev || x->c->closed)
        return EV_STOP;
    return EV_GO;
}

/* Handles the complete lines in the buffer (all of it when final). */
static int drain_lines(wctx *x, int final)
{
    k8s_buf *b = &x->w->buf;
    size_t off = 0;
    int r = EV_GO;
    while (r == EV_GO && off < b->len) {
        char *nl = memchr(b->p + off, '\n', b->len - off);
        size_t end = nl ? (size_t)(nl - b->p) : b->len;
        size_t start = off;
        if (nl == NULL && !final)
            break;
        off = nl ? end + 1 : b->len;
        while (start < end && (b->p[start] == ' ' || b->p[start] == '\r'))
            start++;
        if (end > start)
            r = handle_line(x, b->p + start, end - start);
        b = &x->w->buf; /* unchanged: the callback cannot touch it */
        if (b->p == NULL)
            return r;
    }
    if (off > 0 && b->p != NULL) {
        memmove(b->p, b->p + off, b->len - off);
        b->len -= off;
        b->p[b->len] = '\0';
    }
    return r;
}

static int stopped(wctx *x)
{
    lua_State *L = x->L;
    watch_free(x->w);
    lua_pushboolean(L, 1);
    lua_pushvalue(L, x->rv);
    return 2;
}

static int failed(wctx *x, int nres)
{
    watch_free(x->w);
    return nres;
}

int k8s_watch_run(lua_State *L, int ci, const k8s_res *r, const char *ns, const char *query, double timeout,
                  const char *rv, int fn)
{
    wctx x;
    k8s_watch *w;
    k8s_client *c = lua_touserdata(L, ci);
    int retried = 0, res;
    const char *url;
    double deadline = timeout > 0 ? rollout_now() + timeout : 0;

    memset(&x, 0, sizeof x);
    x.L = L;
    x.ci = ci;
    x.fn = lua_absindex(L, fn);
    x.c = c;
    if (rv != NULL)
        lua_pushstring(L, rv);
    else
        lua_pushnil(L);
    x.rv = lua_gettop(L);
    k8s_push_path(L, r, ns, NULL, NULL);
    x.path = lua_tostring(L, -1);
    lua_pushfstring(L, "%s%s?%s", c->server, x.path, query);
    url = lua_tostring(L, -1);

    w = lua_newuserdatauv(L, sizeof *w, 0);
    memset(w, 0, sizeof *w);
    if (luaL_newmetatable(L, K8S_WATCH_MT)) {
        lua_pushcfunction(L, watch_gc);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, watch_gc);
        lua_setfield(L, -2, "__close");
    }
    lua_setmetatable(L, -2);
    x.wi = lua_gettop(L);
    x.w = w;
    w->e = curl_easy_init();
    w->m = curl_multi_init();
    if (w->e == NULL || w->m == NULL)
        return luaL_error(L, "out of memory");

start:
    if ((res = k8s_auth_prepare(L, ci)) != 0)
        return failed(&x, res);
    if (c->closed)
        return luaL_error(L, "attempt to use a closed k8s client");
    if (w->added)
        curl_multi_remove_handle(w->m, w->e);
    w->added = 0;
    curl_easy_reset(w->e);
    w->buf.len = 0;
    w->too_large = 0;
    w->errbuf[0] = '\0';
    w->guard.deadline = deadline;
    w->guard.stop = CURLX_GO;
    curl_easy_setopt(w->e, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(w->e, CURLOPT_WRITEDATA, w);
    curl_easy_setopt(w->e, CURLOPT_ERRORBUFFER, w->errbuf);
    if (k8s_setup_handle(c, w->e, &w->hdrs, "GET", url, NULL, NULL, NULL, 0,
                         timeout > 0 ? timeout : c->timeout, 1) != 0)
        return luaL_error(L, "cannot set up a curl handle (out of memory?)");
    curlx_guard_attach(w->e, &w->guard);
    if (curl_multi_add_handle(w->m, w->e) != CURLM_OK)
        return luaL_error(L, "cannot start a watch (curl_multi_add_handle)");
    w->added = 1;

    for (;;) {
        int running = 0, queued;
        long status = 0;
        CURLMsg *msg;
        CURLcode rc = CURLE_OK;
        int done = 0;

        if (curl_multi_perform(w->m, &running) != CURLM_OK)
            return luaL_error(L, "watch: curl_multi_perform failed");
        while ((msg = curl_multi_info_read(w->m, &queued)) != NULL)
            if (msg->msg == CURLMSG_DONE && msg->easy_handle == w->e) {
                rc = msg->data.result;
                done = 1;
            }
        if (running == 0)
            done = 1;
        curl_easy_getinfo(w->e, CURLINFO_RESPONSE_CODE, &status);
        if (status == 200 && w->buf.len > 0) {
            res = drain_lines(&x, done && rc == CURLE_OK);
            if (res == EV_STOP)
                return stopped(&x);
            if (res == EV_FAIL)
                return failed(&x, lua_istable(L, -1) ? 4 : 3);
        }
        if (done) {
            if (w->guard.stop == CURLX_INTERRUPTED) {
                watch_free(w);
                rollout_check_interrupt(L);
                return luaL_error(L, "interrupted");
            }
            if (w->guard.stop == CURLX_EXPIRED)
                return stopped(&x);
            if (rc != CURLE_OK) {
                const char *code = curlx_code(rc, &w->guard, w->too_large);
                lua_pushfstring(L, "%s%s", c->server, x.path);
                res = curlx_fail(L, "GET", lua_tostring(L, -1), rc, w->errbuf, code);
                return failed(&x, res);
            }
            if (status == 200)
                return stopped(&x); /* the server ended the watch (timeoutSeconds) */
            if (status == 401 && !retried && k8s_auth_invalidate(c)) {
                retried = 1;
                goto start;
            }
            res = k8s_push_status_error(L, c, "GET", x.path, status, w->buf.p ? w->buf.p : "", w->buf.len);
            return failed(&x, res);
        }
        if (curlx_guard_check(&w->guard) != CURLX_GO) {
            if (w->guard.stop == CURLX_INTERRUPTED) {
                watch_free(w);
                rollout_check_interrupt(L);
                return luaL_error(L, "interrupted");
            }
            return stopped(&x);
        }
        curl_multi_poll(w->m, NULL, 0, 100, NULL);
    }
}

/* client:watch(kind, opts, fn) */
int k8s_op_watch(lua_State *L)
{
    k8s_client *c = k8s_check(L, 1);
    const char *kind, *ns, *sel = NULL, *fsel = NULL, *rv = NULL;
    double timeout = 0;
    k8s_res res;
    luaL_Buffer b;
    int r, first = 1;

    luaL_checktype(L, 2, LUA_TSTRING);
    kind = lua_tostring(L, 2);
    k8s_check_opts(L, 3);
    luaL_checktype(L, 4, LUA_TFUNCTION);
    lua_settop(L, 4);
    ns = k8s_opt_namespace(L, c, 3);
    if (lua_istable(L, 3)) {
        sel = rollout_optfield_string(L, 3, "selector", NULL);
        fsel = rollout_optfield_string(L, 3, "field_selector", NULL);
        if (rollout_optfield_boolean(L, 3, "all_namespaces", 0))
            ns = NULL;
        lua_getfield(L, 3, "resource_version"); /* 5: stays, anchors rv */
        if (lua_isinteger(L, 5)) {
            lua_pushfstring(L, "%I", (lua_Integer)lua_tointeger(L, 5));
            lua_replace(L, 5);
        } else if (!lua_isnil(L, 5) && lua_type(L, 5) != LUA_TSTRING) {
            return luaL_error(L, "field 'resource_version' must be a string (got %s)", luaL_typename(L, 5));
        }
        rv = lua_tostring(L, 5);
        if (lua_getfield(L, 3, "timeout") != LUA_TNIL) {
            timeout = lua_tonumber(L, -1);
            if (lua_type(L, -1) != LUA_TNUMBER || !(timeout > 0))
                return luaL_error(L, "field 'timeout' must be a number of seconds > 0");
        }
        lua_pop(L, 1);
    }
    if ((r = k8s_resolve_kind(L, 1, kind, &res)) != 0)
        return r;
    luaL_buffinit(L, &b);
    k8s_add_query(&b, &first, "watch", "1");
    if (sel != NULL && *sel != '\0')
        k8s_add_query(&b, &first, "labelSelector", sel);
    if (fsel != NULL && *fsel != '\0')
        k8s_add_query(&b, &first, "fieldSelector", fsel);
    if (rv != NULL && *rv != '\0')
        k8s_add_query(&b, &first, "resourceVersion", rv);
    if (timeout > 0) {
        char num[32];
        snprintf(num, sizeof num, "%d", (int)(timeout > 2e9 ? 2e9 : ceil(timeout)));
        k8s_add_query(&b, &first, "timeoutSeconds", num);
    }
    luaL_pushresult(&b);
    return k8s_watch_run(L, 1, &res, ns, lua_tostring(L, -1), timeout, rv, 4);
}
