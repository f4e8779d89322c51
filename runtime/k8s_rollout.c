/* rollout.k8s helpers for rollouts: pods, logs, wait_rollout.
 *
 *   client:pods(selector [, {namespace =}]) -> {pod, ...}
 *       selector: "app=x,version in (v1,v2)", {app = "x"} or nil (all)
 *   client:logs(pod [, {namespace =, container =, tail = N, previous =}])
 *       -> text
 *   client:wait_rollout(deployment [, {namespace =, timeout = 300}])
 *       -> true once the Deployment is complete: observedGeneration >=
 *          generation, updatedReplicas == availableReplicas == spec.replicas
 *          and no old replicas (status.replicas == updatedReplicas)
 *       -> nil, "deployment NAME: A of R replicas available after Ts; pod P:
 *          REASON: latest warning event", "timeout"
 *       -> nil, "deployment NAME exceeded its progress deadline; ...",
 *          "progress_deadline"
 *       -> nil, message, code for API and transport errors
 *   It watches the Deployment (no polling): a get, then watches from its
 *   resourceVersion until complete or the timeout; a 410 starts over. */
#include "k8s_internal.h"
#include "rollout/convert.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_PODS_REPORTED 3
#define MAX_DETAIL 300

/* ---- nested fields ------------------------------------------------------- */

/* Pushes t.a.b.c ("a.b.c"); nil when a step is missing. Returns its type. */
static int getp(lua_State *L, int t, const char *dotted)
{
    char key[64];
    t = lua_absindex(L, t);
    lua_pushvalue(L, t);
    while (*dotted != '\0') {
        const char *dot = strchr(dotted, '.');
        size_t n = dot ? (size_t)(dot - dotted) : strlen(dotted);
        if (n >= sizeof key)
            n = sizeof key - 1;
        memcpy(key, dotted, n);
        key[n] = '\0';
        if (!lua_istable(L, -1)) {
            lua_pop(L, 1);
            lua_pushnil(L);
            return LUA_TNIL;
        }
        lua_getfield(L, -1, key);
        lua_remove(L, -2);
        dotted = dot ? dot + 1 : dotted + n;
    }
    return lua_type(L, -1);
}

static lua_Integer geti(lua_State *L, int t, const char *dotted, lua_Integer def)
{
    lua_Integer v = def;
    if (getp(L, t, dotted) == LUA_TNUMBER)
        v = lua_tointeger(L, -1);
    lua_pop(L, 1);
    return v;
}

/* A string at t.dotted (anchored by t), or NULL. */
static const char *gets(lua_State *L, int t, const char *dotted)
{
    const char *s = NULL;
    if (getp(L, t, dotted) == LUA_TSTRING)
        s = lua_tostring(L, -1);
    lua_pop(L, 1);
    return s;
}

/* Pushes a one-line copy of s, at most max bytes ("..." when cut). */
static void push_short(lua_State *L, const char *s, size_t max)
{
    luaL_Buffer b;
    size_t n = 0;
    luaL_buffinit(L, &b);
    for (; *s != '\0' && n < max; s++, n++)
        luaL_addchar(&b, (*s == '\n' || *s == '\r' || *s == '\t') ? ' ' : *s);
    if (*s != '\0')
        luaL_addstring(&b, "...");
    luaL_pushresult(&b);
}

/* ---- lists ------------------------------------------------------------------ */

/* GET a list of a built-in kind: pushes the List (1) or the error (3/4). */
static int list_of(lua_State *L, int ci, const char *kind, const char *ns, const char *sel, const char *fsel,
                   double timeout)
{
    k8s_client *c = lua_touserdata(L, ci);
    k8s_res res;
    k8s_req rq;
    luaL_Buffer b;
    long status = 0;
    int r, first = 1;
    if ((r = k8s_resolve_kind(L, ci, kind, &res)) != 0)
        return r;
    k8s_push_path(L, &res, ns, NULL, NULL);
    luaL_buffinit(L, &b);
    if (sel != NULL && *sel != '\0')
        k8s_add_query(&b, &first, "labelSelector", sel);
    if (fsel != NULL && *fsel != '\0')
        k8s_add_query(&b, &first, "fieldSelector", fsel);
    luaL_pushresult(&b);
    memset(&rq, 0, sizeof rq);
    rq.method = "GET";
    rq.path = lua_tostring(L, -2);
    rq.query = lua_tostring(L, -1);
    rq.timeout = timeout;
    if ((r = k8s_perform(L, ci, &rq, &status)) != 0)
        return r;
    return k8s_push_result(L, c, &rq, status);
}

/* Pushes a label selector string from {k = v} (sorted by key). */
static void push_selector_table(lua_State *L, int t)
{
    luaL_Buffer b;
    int keys, n = 0;
    lua_newtable(L);
    keys = lua_gettop(L);
    lua_pushnil(L);
    while (lua_next(L, t) != 0) {
        if (lua_type(L, -2) != LUA_TSTRING || (lua_type(L, -1) != LUA_TSTRING && lua_type(L, -1) != LUA_TNUMBER))
            luaL_error(L, "selector tables map label names to strings");
        lua_pop(L, 1);
        lua_pushvalue(L, -1);
        lua_rawseti(L, keys, ++n);
    }
    /* insertion sort of the keys (selectors are small) */
    for (int i = 2; i <= n; i++) {
        for (int j = i; j > 1; j--) {
            lua_rawgeti(L, keys, j - 1);
            lua_rawgeti(L, keys, j);
            if (strcmp(lua_tostring(L, -2), lua_tostring(L, -1)) <= 0) {
                lua_pop(L, 2);
                break;
            }
            lua_rawseti(L, keys, j - 1);
            lua_rawseti(L, keys, j);
        }
    }
    luaL_buffinit(L, &b);
    for (int i = 1; i <= n; i++) {
        if (i > 1)
            luaL_addchar(&b, ',');
        lua_rawgeti(L, keys, i);
        luaL_addvalue(&b);
        luaL_addchar(&b, '=');
        lua_rawgeti(L, keys, i);
        lua_gettable(L, t);
        luaL_addvalue(&b);
    }
    luaL_pushresult(&b);
    lua_remove(L, keys);
}

/* client:pods(selector [, {namespace =, timeout =}]) -> items */
int k8s_op_pods(lua_State *L)
{
    k8s_client *c = k8s_check(L, 1);
    const char *sel = NULL, *ns;
    double timeout;
    int r;
    if (!lua_isnoneornil(L, 2) && !lua_istable(L, 2) && lua_type(L, 2) != LUA_TSTRING)
        return luaL_typeerror(L, 2, "selector string, table or nil");
    k8s_check_opts(L, 3);
    lua_settop(L, 3);
    ns = k8s_opt_namespace(L, c, 3);
    timeout = k8s_opt_timeout(L, c, 3);
    if (lua_istable(L, 2)) {
        push_selector_table(L, 2);
        lua_replace(L, 2);
    }
    sel = lua_tostring(L, 2);
    if ((r = list_of(L, 1, "pods", ns, sel, NULL, timeout)) != 1)
        return r;
    if (lua_getfield(L, -1, "items") != LUA_TTABLE) {
        lua_pop(L, 1);
        lua_newtable(L);
        rc_mark(L, -1, RC_ARRAY);
    }
    return 1;
}

/* client:logs(pod [, {namespace =, container =, tail =, previous =}]) */
int k8s_op_logs(lua_State *L)
{
    k8s_client *c = k8s_check(L, 1);
    const char *name, *ns, *container = NULL;
    k8s_res res;
    k8s_req rq;
    luaL_Buffer b;
    long status = 0;
    int r, first = 1, previous = 0;
    lua_Integer tail = -1;
    luaL_checktype(L, 2, LUA_TSTRING);
    name = lua_tostring(L, 2);
    luaL_argcheck(L, *name != '\0', 2, "pod name must not be empty");
    k8s_check_opts(L, 3);
    lua_settop(L, 3);
    ns = k8s_opt_namespace(L, c, 3);
    if (lua_istable(L, 3)) {
        container = rollout_optfield_string(L, 3, "container", NULL);
        previous = rollout_optfield_boolean(L, 3, "previous", 0);
        if (lua_getfield(L, 3, "tail") != LUA_TNIL) {
            if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 0)
                return luaL_error(L, "field 'tail' must be an integer >= 0");
            tail = lua_tointeger(L, -1);
        }
        lua_pop(L, 1);
    }
    if ((r = k8s_resolve_kind(L, 1, "pods", &res)) != 0)
        return r;
    k8s_push_path(L, &res, ns, name, "log");
    luaL_buffinit(L, &b);
    if (container != NULL)
        k8s_add_query(&b, &first, "container", container);
    if (previous)
        k8s_add_query(&b, &first, "previous", "true");
    if (tail >= 0) {
        char num[32];
        snprintf(num, sizeof num, "%lld", (long long)tail);
        k8s_add_query(&b, &first, "tailLines", num);
    }
    luaL_pushresult(&b);
    memset(&rq, 0, sizeof rq);
    rq.method = "GET";
    rq.path = lua_tostring(L, -2);
    rq.query = lua_tostring(L, -1);
    rq.accept = "text/plain, */*";
    rq.timeout = k8s_opt_timeout(L, c, 3);
    if ((r = k8s_perform(L, 1, &rq, &status)) != 0)
        return r;
    if (status >= 200 && status < 300) {
        lua_pushlstring(L, c->body.p ? c->body.p : "", c->body.len);
        return 1;
    }
    return k8s_push_status_error(L, c, "GET", rq.path, status, c->body.p ? c->body.p : "", c->body.len);
}

/* ---- wait_rollout --------------------------------------------------------- */

enum { DS_PENDING, DS_COMPLETE, DS_DEADLINE, DS_DELETED };

/* The state of the Deployment object at idx. */
static int deployment_state(lua_State *L, int d)
{
    lua_Integer gen = geti(L, d, "metadata.generation", 0);
    lua_Integer observed = geti(L, d, "status.observedGeneration", 0);
    lua_Integer want = geti(L, d, "spec.replicas", 1);
    lua_Integer replicas = geti(L, d, "status.replicas", 0);
    lua_Integer updated = geti(L, d, "status.updatedReplicas", 0);
    lua_Integer available = geti(L, d, "status.availableReplicas", 0);
    int state = DS_PENDING;
    if (observed >= gen && updated == want && replicas == updated && available == want)
        return DS_COMPLETE;
    if (getp(L, d, "status.conditions") == LUA_TTABLE) {
        int conds = lua_gettop(L);
        for (lua_Integer i = 1; lua_rawgeti(L, conds, i) == LUA_TTABLE; i++) {
            const char *type = gets(L, -1, "type"), *reason = gets(L, -1, "reason");
            if (type && reason && strcmp(type, "Progressing") == 0 && strcmp(reason, "ProgressDeadlineExceeded") == 0)
                state = DS_DEADLINE;
            lua_pop(L, 1);
        }
        lua_settop(L, conds);
    }
    lua_pop(L, 1);
    return state;
}

/* The watch callback: upvalue 1 is the wait's state table {last =, state =}. */
static int on_deployment_event(lua_State *L)
{
    const char *type = luaL_checkstring(L, 1);
    int state;
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_pushvalue(L, 2);
    lua_setfield(L, lua_upvalueindex(1), "last");
    state = strcmp(type, "DELETED") == 0 ? DS_DELETED : deployment_state(L, 2);
    lua_pushinteger(L, state);
    lua_setfield(L, lua_upvalueindex(1), "state");
    lua_pushboolean(L, state != DS_PENDING);
    return 1;
}

/* Pushes the Deployment's selector (matchLabels and matchExpressions) as a
 * label selector string. */
static void push_deployment_selector(lua_State *L, int d)
{
    int top = lua_gettop(L), parts = top + 1, n = 0;
    lua_newtable(L);
    if (getp(L, d, "spec.selector.matchLabels") == LUA_TTABLE) {
        push_selector_table(L, lua_gettop(L));
        if (lua_rawlen(L, -1) > 0)
            lua_rawseti(L, parts, ++n);
    }
    lua_settop(L, parts);
    if (getp(L, d, "spec.selector.matchExpressions") == LUA_TTABLE) {
        int ex = lua_gettop(L);
        for (lua_Integer i = 1; lua_rawgeti(L, ex, i) == LUA_TTABLE; i++) {
            int e = lua_gettop(L), cnt = 0;
            const char *key = gets(L, e, "key"), *op = gets(L, e, "operator");
            if (key != NULL && op != NULL) {
                if (strcmp(op, "Exists") == 0) {
                    lua_pushstring(L, key);
                    cnt = 1;
                } else if (strcmp(op, "DoesNotExist") == 0) {
                    lua_pushfstring(L, "!%s", key);
                    cnt = 1;
                } else if ((strcmp(op, "In") == 0 || strcmp(op, "NotIn") == 0) &&
                           getp(L, e, "values") == LUA_TTABLE) {
                    int vals = lua_gettop(L);
                    lua_pushfstring(L, "%s %s (", key, op[0] == 'I' ? "in" : "notin");
                    cnt = 1;
                    for (lua_Integer j = 1; lua_rawgeti(L, vals, j) == LUA_TSTRING; j++) {
                        if (j > 1) {
                            lua_pushliteral(L, ",");
                            lua_insert(L, -2);
                            cnt++;
                        }
                        cnt++;
                    }
                    lua_pop(L, 1);
                    lua_pushliteral(L, ")");
                    lua_concat(L, cnt + 1);
                    lua_remove(L, vals);
                    cnt = 1;
                }
            }
            if (cnt == 1)
                lua_rawseti(L, parts, ++n);
            lua_settop(L, e - 1);
        }
    }
    lua_settop(L, parts);
    k8s_push_joined(L, parts, n, ',');
    lua_replace(L, parts);
    lua_settop(L, parts);
}

/* Is the pod at p Ready? */
static int pod_ready(lua_State *L, int p)
{
    int ready = 0;
    if (getp(L, p, "status.conditions") == LUA_TTABLE) {
        int conds = lua_gettop(L);
        for (lua_Integer i = 1; lua_rawgeti(L, conds, i) == LUA_TTABLE; i++) {
            const char *type = gets(L, -1, "type"), *st = gets(L, -1, "status");
            if (type && st && strcmp(type, "Ready") == 0 && strcmp(st, "True") == 0)
                ready = 1;
            lua_pop(L, 1);
        }
        lua_settop(L, conds);
    }
    lua_pop(L, 1);
    return ready;
}

/* Pushes why the pod at p is not ready ("ImagePullBackOff", ...) and, as a
 * second value, the waiting/terminated message or nil. The strings found
 * stay anchored by the pod table. */
static void push_pod_reason(lua_State *L, int p)
{
    static const char *const lists[] = {"status.initContainerStatuses", "status.containerStatuses"};
    const char *reason = NULL, *msg = NULL;
    for (int k = 0; k < 2 && reason == NULL; k++) {
        int cs;
        getp(L, p, lists[k]);
        cs = lua_gettop(L);
        if (lua_istable(L, cs)) {
            for (lua_Integer i = 1; reason == NULL && lua_rawgeti(L, cs, i) == LUA_TTABLE; i++) {
                int c = lua_gettop(L);
                const char *r = gets(L, c, "state.waiting.reason"), *m = gets(L, c, "state.waiting.message");
                if (r == NULL) {
                    const char *tr = gets(L, c, "state.terminated.reason");
                    if (tr != NULL && !(k == 0 && strcmp(tr, "Completed") == 0)) {
                        r = tr;
                        m = gets(L, c, "state.terminated.message");
                    }
                }
                if (r == NULL && gets(L, c, "state.running.startedAt") != NULL &&
                    lua_getfield(L, c, "ready") == LUA_TBOOLEAN && !lua_toboolean(L, -1))
                    r = "Running, not ready";
                if (r != NULL) {
                    reason = r;
                    msg = m;
                }
                lua_settop(L, c - 1);
            }
        }
        lua_settop(L, cs - 1);
    }
    if (reason == NULL) {
        reason = gets(L, p, "status.reason");
        msg = gets(L, p, "status.message");
    }
    if (reason == NULL && getp(L, p, "status.conditions") == LUA_TTABLE) {
        int conds = lua_gettop(L);
        for (lua_Integer i = 1; lua_rawgeti(L, conds, i) == LUA_TTABLE; i++) {
            const char *type = gets(L, -1, "type"), *st = gets(L, -1, "status");
            if (reason == NULL && type && st && strcmp(type, "PodScheduled") == 0 && strcmp(st, "False") == 0) {
                reason = gets(L, -1, "reason");
                msg = gets(L, -1, "message");
            }
            lua_pop(L, 1);
        }
        lua_settop(L, conds - 1);
    } else if (reason == NULL) {
        lua_pop(L, 1);
    }
    if (reason == NULL)
        reason = gets(L, p, "status.phase");
    lua_pushstring(L, reason ? reason : "not ready");
    if (msg != NULL)
        lua_pushstring(L, msg);
    else
        lua_pushnil(L);
}

/* Compares the numeric strings a and b (resourceVersions). */
static int rv_cmp(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la != lb)
        return la < lb ? -1 : 1;
    return strcmp(a, b);
}

/* Pushes the most telling Warning event message for pod `name` from the
 * events list at ev, or nil: the latest (lastTimestamp, then
 * resourceVersion), preferring messages that are not "Error: REASON". */
static void push_pod_event(lua_State *L, int ev, const char *name)
{
    const char *best = NULL, *best_ts = "", *best_rv = "";
    int best_plain = 0;
    if (ev == 0 || getp(L, ev, "items") != LUA_TTABLE) {
        if (ev != 0)
            lua_pop(L, 1);
        lua_pushnil(L);
        return;
    }
    {
        int items = lua_gettop(L);
        for (lua_Integer i = 1; lua_rawgeti(L, items, i) == LUA_TTABLE; i++) {
            int e = lua_gettop(L);
            const char *who = gets(L, e, "involvedObject.name"), *type = gets(L, e, "type");
            const char *msg = gets(L, e, "message"), *ts = gets(L, e, "lastTimestamp");
            const char *rv = gets(L, e, "metadata.resourceVersion");
            if (ts == NULL)
                ts = gets(L, e, "eventTime");
            if (ts == NULL)
                ts = "";
            if (rv == NULL)
                rv = "";
            if (who && msg && *msg && strcmp(who, name) == 0 && (type == NULL || strcmp(type, "Warning") == 0)) {
                int plain = strncmp(msg, "Error: ", 7) != 0;
                int later = strcmp(ts, best_ts) > 0 || (strcmp(ts, best_ts) == 0 && rv_cmp(rv, best_rv) > 0);
                if (best == NULL || (plain && !best_plain) || (plain == best_plain && later)) {
                    best = msg;
                    best_ts = ts;
                    best_rv = rv;
                    best_plain = plain;
                }
            }
            lua_settop(L, e - 1); /* strings stay anchored by the list */
        }
        lua_settop(L, items);
        if (best != NULL)
            lua_pushstring(L, best);
        else
            lua_pushnil(L);
        lua_remove(L, items);
    }
}

/* Pushes "deployment NAME: ..." for a rollout that did not complete. */
static void push_report(lua_State *L, int ci, int d, const char *name, const char *ns, double timeout,
                        int deadline)
{
    k8s_client *c = lua_touserdata(L, ci);
    lua_Integer want = geti(L, d, "spec.replicas", 1);
    lua_Integer available = geti(L, d, "status.availableReplicas", 0);
    lua_Integer updated = geti(L, d, "status.updatedReplicas", 0);
    lua_Integer replicas = geti(L, d, "status.replicas", 0);
    int top = lua_gettop(L), parts, n = 0, pods = 0, events = 0, reported = 0;
    double t = timeout < 10 ? timeout : 10;
    char secs[32];
    luaL_Buffer b;

    lua_newtable(L);
    parts = lua_gettop(L);
    snprintf(secs, sizeof secs, "%g", timeout);
    if (deadline)
        lua_pushfstring(L, "deployment %s exceeded its progress deadline: %d of %d replicas available", name,
                        (int)available, (int)want);
    else
        lua_pushfstring(L, "deployment %s: %d of %d replicas available after %ss", name, (int)available,
                        (int)want, secs);
    if (updated < want || replicas > updated) {
        lua_pushfstring(L, " (%d updated, %d old)", (int)updated, (int)(replicas - updated));
        lua_concat(L, 2);
    }
    lua_rawseti(L, parts, ++n);

    (void)c;
    push_deployment_selector(L, d);
    if (list_of(L, ci, "pods", ns, lua_tostring(L, -1), NULL, t) == 1)
        pods = lua_gettop(L);
    else
        lua_settop(L, parts + 1);
    if (list_of(L, ci, "events", ns, NULL, "involvedObject.kind=Pod,type=Warning", t) == 1)
        events = lua_gettop(L);
    else {
        lua_settop(L, pods ? pods : parts + 1);
        lua_pushnil(L);
    }
    if (pods != 0 && getp(L, pods, "items") == LUA_TTABLE) {
        int items = lua_gettop(L);
        for (lua_Integer i = 1; reported < MAX_PODS_REPORTED && lua_rawgeti(L, items, i) == LUA_TTABLE; i++) {
            int p = lua_gettop(L);
            const char *pname = gets(L, p, "metadata.name");
            if (pname != NULL && !pod_ready(L, p) && gets(L, p, "metadata.deletionTimestamp") == NULL) {
                const char *reason, *detail;
                push_pod_reason(L, p);              /* p+1 reason, p+2 message */
                push_pod_event(L, events, pname);   /* p+3 */
                reason = lua_tostring(L, p + 1);
                detail = lua_isstring(L, p + 3) ? lua_tostring(L, p + 3) : lua_tostring(L, p + 2);
                lua_pushfstring(L, "pod %s: %s", pname, reason ? reason : "not ready");
                if (detail != NULL && *detail != '\0') {
                    lua_pushliteral(L, ": ");
                    push_short(L, detail, MAX_DETAIL);
                    lua_concat(L, 3);
                }
                lua_rawseti(L, parts, ++n);
                reported++;
            }
            lua_settop(L, items);
        }
        if (reported == 0 && lua_rawlen(L, items) == 0) {
            lua_pushliteral(L, "no pods match its selector");
            lua_rawseti(L, parts, ++n);
        }
    }
    if (reported == 0) { /* the Deployment's own failure conditions */
        if (getp(L, d, "status.conditions") == LUA_TTABLE) {
            int conds = lua_gettop(L);
            for (lua_Integer i = 1; lua_rawgeti(L, conds, i) == LUA_TTABLE; i++) {
                const char *st = gets(L, -1, "status"), *msg = gets(L, -1, "message");
                const char *type = gets(L, -1, "type");
                if (st && msg && type && strcmp(st, "False") == 0 && strcmp(type, "Available") != 0) {
                    push_short(L, msg, MAX_DETAIL);
                    lua_rawseti(L, parts, ++n);
                }
                lua_pop(L, 1);
            }
        }
    }
    lua_settop(L, parts);
    luaL_buffinit(L, &b);
    for (int i = 1; i <= n; i++) {
        if (i > 1)
            luaL_addstring(&b, "; ");
        lua_rawgeti(L, parts, i);
        luaL_addvalue(&b);
    }
    luaL_pushresult(&b);
    lua_replace(L, top + 1);
    lua_settop(L, top + 1);
}

/* Sleeps up to half a second (not past the deadline), raising on ^C. */
static void nap(lua_State *L, double deadline)
{
    double until = rollout_now() + 0.5;
    if (until > deadline)
        until = deadline;
    while (rollout_now() < until) {
        struct timespec ts = {0, 50 * 1000 * 1000};
        rollout_check_interrupt(L);
        nanosleep(&ts, NULL);
    }
    rollout_check_interrupt(L);
}

/* client:wait_rollout(name [, {namespace =, timeout = 300}]) */
int k8s_op_wait_rollout(lua_State *L)
{
    k8s_client *c = k8s_check(L, 1);
    const char *name, *ns;
    double timeout = 300, deadline;
    k8s_res res;
    k8s_req rq;
    int r, state_t, cb, obj, state;
    long status = 0;
    luaL_checktype(L, 2, LUA_TSTRING);
    name = lua_tostring(L, 2);
    luaL_argcheck(L, *name != '\0', 2, "deployment name must not be empty");
    k8s_check_opts(L, 3);
    lua_settop(L, 3);
    ns = k8s_opt_namespace(L, c, 3);
    if (lua_istable(L, 3)) {
        timeout = rollout_optfield_number(L, 3, "timeout", 300);
        if (!(timeout > 0))
            return luaL_error(L, "field 'timeout' must be a number of seconds > 0");
    }
    deadline = rollout_now() + timeout;
    if ((r = k8s_resolve_kind(L, 1, "deployments", &res)) != 0) /* 4 */
        return r;
    lua_newtable(L); /* 5: {last =, state =} */
    state_t = lua_gettop(L);
    lua_pushvalue(L, state_t);
    lua_pushcclosure(L, on_deployment_event, 1); /* 6 */
    cb = lua_gettop(L);
    k8s_push_path(L, &res, ns, name, NULL); /* 7 */
    lua_pushfstring(L, "metadata.name=%s", name); /* 8 */

    for (;;) {
        double left, started;
        const char *rv;
        luaL_Buffer b;
        int first = 1;

        /* the current object */
        lua_settop(L, 8);
        memset(&rq, 0, sizeof rq);
        rq.method = "GET";
        rq.path = lua_tostring(L, 7);
        left = deadline - rollout_now();
        rq.timeout = left < c->timeout ? (left > 1 ? left : 1) : c->timeout;
        if ((r = k8s_perform(L, 1, &rq, &status)) != 0)
            return r;
        if ((r = k8s_push_result(L, c, &rq, status)) != 1)
            return r;
        obj = lua_gettop(L); /* 9 */
        lua_pushvalue(L, obj);
        lua_setfield(L, state_t, "last");
        state = deployment_state(L, obj);
        for (;;) {
            if (state == DS_COMPLETE) {
                lua_pushboolean(L, 1);
                return 1;
            }
            if (state == DS_DELETED)
                return rollout_fail(L, "NotFound", "deployment %s was deleted while waiting for it", name);
            lua_getfield(L, state_t, "last");
            obj = lua_gettop(L);
            if (state == DS_DEADLINE) {
                lua_pushnil(L);
                push_report(L, 1, obj, name, ns, timeout, 1);
                lua_pushliteral(L, "progress_deadline");
                return 3;
            }
            left = deadline - rollout_now();
            if (left <= 0) {
                lua_pushnil(L);
                push_report(L, 1, obj, name, ns, timeout, 0);
                lua_pushliteral(L, "timeout");
                return 3;
            }
            rv = gets(L, obj, "metadata.resourceVersion");
            luaL_buffinit(L, &b);
            k8s_add_query(&b, &first, "watch", "1");
            k8s_add_query(&b, &first, "fieldSelector", lua_tostring(L, 8));
            if (rv != NULL)
                k8s_add_query(&b, &first, "resourceVersion", rv);
            {
                char num[32];
                snprintf(num, sizeof num, "%d", (int)ceil(left));
                k8s_add_query(&b, &first, "timeoutSeconds", num);
            }
            luaL_pushresult(&b);
            lua_pushinteger(L, DS_PENDING);
            lua_setfield(L, state_t, "state");
            started = rollout_now();
            r = k8s_watch_run(L, 1, &res, ns, lua_tostring(L, -1), left, rv, cb);
            if (r >= 3 && lua_isnil(L, -r)) {
                const char *code = lua_tostring(L, -r + 2);
                if (code != NULL && strcmp(code, "Expired") == 0)
                    break; /* 410: get the object again */
                return r;
            }
            lua_getfield(L, state_t, "state");
            state = (int)lua_tointeger(L, -1);
            first = 1;
            lua_settop(L, 8);
            if (state == DS_PENDING && rollout_now() - started < 1.0)
                nap(L, deadline); /* a server that ends watches at once: no busy loop */
        }
    }
}
