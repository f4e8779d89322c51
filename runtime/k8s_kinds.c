/* rollout.k8s kinds: a kind argument ("Deployment", "deployments",
 * "deployment", "deploy", "apps/v1/deployments", "v1/pods") or a manifest's
 * apiVersion + kind -> group, version, resource, namespaced.
 *
 * A built-in table covers what rollout uses; anything else is looked up
 * with discovery (/api/v1, /apis, /apis/G/V), cached per client. Unknown
 * kinds are nil, message, "unknown_kind". */
#include "k8s_internal.h"
#include "rollout/convert.h"

#include <string.h>
#include <strings.h>

typedef struct builtin {
    const char *group, *version, *resource, *kind, *singular, *shortname;
    int namespaced;
} builtin;

static const builtin builtins[] = {
    {"", "v1", "namespaces", "Namespace", "namespace", "ns", 0},
    {"", "v1", "services", "Service", "service", "svc", 1},
    {"", "v1", "pods", "Pod", "pod", "po", 1},
    {"", "v1", "events", "Event", "event", "ev", 1},
    {"", "v1", "configmaps", "ConfigMap", "configmap", "cm", 1},
    {"", "v1", "secrets", "Secret", "secret", NULL, 1},
    {"apps", "v1", "deployments", "Deployment", "deployment", "deploy", 1},
    {"apps", "v1", "replicasets", "ReplicaSet", "replicaset", "rs", 1},
    {"networking.istio.io", "v1beta1", "virtualservices", "VirtualService", "virtualservice", "vs", 1},
    {"networking.istio.io", "v1beta1", "destinationrules", "DestinationRule", "destinationrule", "dr", 1},
    {"gateway.networking.k8s.io", "v1", "httproutes", "HTTPRoute", "httproute", NULL, 1},
};
#define NBUILTIN (sizeof builtins / sizeof builtins[0])

/* Pushes {group=, version=, resource=, kind=, namespaced=} and points r at
 * its strings. */
static void push_res(lua_State *L, const char *g, const char *v, const char *res, const char *kind, int ns,
                     k8s_res *r)
{
    lua_createtable(L, 0, 5);
    lua_pushstring(L, g);
    lua_setfield(L, -2, "group");
    lua_pushstring(L, v);
    lua_setfield(L, -2, "version");
    lua_pushstring(L, res);
    lua_setfield(L, -2, "resource");
    lua_pushstring(L, kind ? kind : "");
    lua_setfield(L, -2, "kind");
    lua_getfield(L, -1, "group");
    r->group = lua_tostring(L, -1);
    lua_getfield(L, -2, "version");
    r->version = lua_tostring(L, -1);
    lua_getfield(L, -3, "resource");
    r->resource = lua_tostring(L, -1);
    lua_getfield(L, -4, "kind");
    r->kind = lua_tostring(L, -1);
    lua_pop(L, 4); /* anchored by the table */
    r->namespaced = ns;
}

static int builtin_matches(const builtin *b, const char *name)
{
    return strcmp(b->kind, name) == 0 || strcasecmp(b->kind, name) == 0 || strcasecmp(b->resource, name) == 0 ||
           strcasecmp(b->singular, name) == 0 || (b->shortname && strcasecmp(b->shortname, name) == 0);
}

/* ---- discovery ----------------------------------------------------------- */

/* GET path on the API and decode it: pushes the object (0), false for a
 * 404 (0), or nil, message, code (3). */
static int discover(lua_State *L, int ci, const char *path)
{
    k8s_client *c = lua_touserdata(L, ci);
    k8s_req rq;
    long status = 0;
    int r;
    memset(&rq, 0, sizeof rq);
    rq.method = "GET";
    rq.path = path;
    rq.timeout = c->timeout;
    if ((r = k8s_perform(L, ci, &rq, &status)) != 0)
        return r;
    if (status == 404) {
        lua_pushboolean(L, 0);
        return 0;
    }
    r = k8s_push_result(L, c, &rq, status);
    if (r != 1)
        return r;
    return 0;
}

/* Pushes the cache table uservalue.disco (created when missing). */
static void push_cache(lua_State *L, int ci)
{
    k8s_uservalue(L, ci);
    if (lua_getfield(L, -1, "disco") != LUA_TTABLE) {
        lua_pop(L, 1);
        lua_newtable(L);
        lua_pushvalue(L, -1);
        lua_setfield(L, -3, "disco");
    }
    lua_remove(L, -2);
}

/* Pushes the resources list of group-version gv ("v1", "apps/v1"), or
 * false when the server does not serve it. 0, or 3 on errors. */
static int gv_resources(lua_State *L, int ci, const char *gv)
{
    int cache, r;
    push_cache(L, ci);
    cache = lua_gettop(L);
    if (lua_getfield(L, cache, gv) != LUA_TNIL) {
        lua_remove(L, cache);
        return 0;
    }
    lua_pop(L, 1);
    if (strcmp(gv, "v1") == 0)
        lua_pushliteral(L, "/api/v1");
    else
        lua_pushfstring(L, "/apis/%s", gv);
    if ((r = discover(L, ci, lua_tostring(L, -1))) != 0)
        return r;
    if (lua_istable(L, -1)) {
        lua_getfield(L, -1, "resources");
        if (!lua_istable(L, -1)) {
            lua_pop(L, 1);
            lua_newtable(L);
        }
        lua_remove(L, -2);
    }
    lua_pushvalue(L, -1);
    lua_setfield(L, cache, gv);
    lua_replace(L, cache);
    lua_settop(L, cache);
    return 0;
}

/* Pushes the list of preferred group-versions: "v1", then /apis' groups. */
static int all_gvs(lua_State *L, int ci)
{
    int cache, r, out, n = 0;
    push_cache(L, ci);
    cache = lua_gettop(L);
    if (lua_getfield(L, cache, " groups") == LUA_TTABLE) {
        lua_remove(L, cache);
        return 0;
    }
    lua_pop(L, 1);
    lua_newtable(L);
    out = lua_gettop(L);
    lua_pushliteral(L, "v1");
    lua_rawseti(L, out, ++n);
    if ((r = discover(L, ci, "/apis")) != 0)
        return r;
    if (lua_istable(L, -1) && lua_getfield(L, -1, "groups") == LUA_TTABLE) {
        int groups = lua_gettop(L);
        for (lua_Integer i = 1; lua_rawgeti(L, groups, i) == LUA_TTABLE; i++) {
            if (lua_getfield(L, -1, "preferredVersion") == LUA_TTABLE &&
                lua_getfield(L, -1, "groupVersion") == LUA_TSTRING)
                lua_rawseti(L, out, ++n);
            lua_settop(L, groups);
        }
    }
    lua_settop(L, out);
    lua_pushvalue(L, out);
    lua_setfield(L, cache, " groups");
    lua_replace(L, cache);
    lua_settop(L, cache);
    return 0;
}

static int field_is(lua_State *L, int t, const char *field, const char *name, int ci_compare)
{
    int yes = 0;
    if (lua_getfield(L, t, field) == LUA_TSTRING)
        yes = ci_compare ? strcasecmp(lua_tostring(L, -1), name) == 0 : strcmp(lua_tostring(L, -1), name) == 0;
    lua_pop(L, 1);
    return yes;
}

/* Finds name in the resources list at idx (not subresources): pushes the
 * APIResource and returns 1, else 0. kind_only: match the Kind only. */
static int find_in(lua_State *L, int idx, const char *name, int kind_only)
{
    for (int pass = 0; pass < 2; pass++) {
        for (lua_Integer i = 1; lua_rawgeti(L, idx, i) == LUA_TTABLE; i++) {
            int t = lua_gettop(L), hit = 0;
            const char *rname = NULL;
            if (lua_getfield(L, t, "name") == LUA_TSTRING)
                rname = lua_tostring(L, -1);
            lua_pop(L, 1);
            if (rname == NULL || strchr(rname, '/') != NULL) {
                lua_pop(L, 1);
                continue;
            }
            if (pass == 0)
                hit = field_is(L, t, "kind", name, 0);
            else if (kind_only)
                hit = field_is(L, t, "kind", name, 1);
            else {
                hit = field_is(L, t, "kind", name, 1) || field_is(L, t, "name", name, 1) ||
                      field_is(L, t, "singularName", name, 1);
                if (!hit) {
                    int sn;
                    lua_getfield(L, t, "shortNames");
                    sn = lua_gettop(L);
                    if (lua_istable(L, sn))
                        for (lua_Integer j = 1; !hit && lua_rawgeti(L, sn, j) == LUA_TSTRING; j++) {
                            hit = strcasecmp(lua_tostring(L, -1), name) == 0;
                            lua_pop(L, 1);
                        }
                    lua_settop(L, t);
                }
            }
            if (hit)
                return 1;
            lua_pop(L, 1);
        }
        lua_pop(L, 1); /* the non-table that ended the loop */
    }
    return 0;
}

/* From the APIResource at the top (popped) in gv. */
static void res_from_api(lua_State *L, const char *gv, k8s_res *r)
{
    const char *slash = strchr(gv, '/');
    const char *res, *kind;
    int ns;
    int t = lua_gettop(L);
    lua_getfield(L, t, "name");
    res = lua_tostring(L, -1);
    lua_getfield(L, t, "kind");
    kind = lua_tostring(L, -1);
    lua_getfield(L, t, "namespaced");
    ns = lua_toboolean(L, -1);
    if (slash != NULL) {
        lua_pushlstring(L, gv, (size_t)(slash - gv));
        push_res(L, lua_tostring(L, -1), slash + 1, res, kind, ns, r);
    } else {
        lua_pushliteral(L, "");
        push_res(L, "", gv, res, kind, ns, r);
    }
    lua_replace(L, t);
    lua_settop(L, t);
}

static int unknown(lua_State *L, const char *arg)
{
    lua_pushnil(L);
    lua_pushfstring(L, "the server doesn't have a resource type \"%s\"", arg);
    lua_pushliteral(L, "unknown_kind");
    return 3;
}

/* ---- the entry points ------------------------------------------------------ */

int k8s_resolve_kind(lua_State *L, int ci, const char *arg, k8s_res *r)
{
    int top = lua_gettop(L), rc;
    const char *slash = strchr(arg, '/');

    if (*arg == '\0')
        return luaL_error(L, "kind must not be empty");
    if (slash != NULL) {
        const char *slash2 = strchr(slash + 1, '/');
        const char *g, *v, *name;
        if (slash2 != NULL && strchr(slash2 + 1, '/') != NULL)
            return unknown(L, arg);
        if (slash2 != NULL) {
            lua_pushlstring(L, arg, (size_t)(slash - arg));
            g = lua_tostring(L, -1);
            lua_pushlstring(L, slash + 1, (size_t)(slash2 - slash - 1));
            v = lua_tostring(L, -1);
            name = slash2 + 1;
        } else {
            g = "";
            lua_pushlstring(L, arg, (size_t)(slash - arg));
            v = lua_tostring(L, -1);
            name = slash + 1;
        }
        if (*v == '\0' || *name == '\0')
            return unknown(L, arg);
        for (size_t i = 0; i < NBUILTIN; i++)
            if (strcmp(builtins[i].group, g) == 0 && builtin_matches(&builtins[i], name)) {
                push_res(L, g, v, builtins[i].resource, builtins[i].kind, builtins[i].namespaced, r);
                lua_replace(L, top + 1);
                lua_settop(L, top + 1);
                return 0;
            }
        if (*g == '\0')
            lua_pushstring(L, v);
        else
            lua_pushfstring(L, "%s/%s", g, v);
        {
            const char *gv = lua_tostring(L, -1);
            if ((rc = gv_resources(L, ci, gv)) != 0)
                return rc;
            if (!lua_istable(L, -1) || !find_in(L, lua_gettop(L), name, 0))
                return unknown(L, arg);
            res_from_api(L, gv, r);
        }
        lua_replace(L, top + 1);
        lua_settop(L, top + 1);
        return 0;
    }

    for (size_t i = 0; i < NBUILTIN; i++)
        if (builtin_matches(&builtins[i], arg)) {
            const builtin *b = &builtins[i];
            push_res(L, b->group, b->version, b->resource, b->kind, b->namespaced, r);
            return 0;
        }
    if ((rc = all_gvs(L, ci)) != 0)
        return rc;
    {
        int gvs = lua_gettop(L);
        for (lua_Integer i = 1; lua_rawgeti(L, gvs, i) == LUA_TSTRING; i++) {
            const char *gv = lua_tostring(L, -1);
            if ((rc = gv_resources(L, ci, gv)) != 0)
                return rc;
            if (lua_istable(L, -1) && find_in(L, lua_gettop(L), arg, 0)) {
                res_from_api(L, gv, r);
                lua_replace(L, top + 1);
                lua_settop(L, top + 1);
                return 0;
            }
            lua_settop(L, gvs);
        }
    }
    return unknown(L, arg);
}

int k8s_resolve_gvk(lua_State *L, int ci, const char *api_version, const char *kind, k8s_res *r)
{
    int top = lua_gettop(L), rc;
    const char *slash = strchr(api_version, '/');
    const char *g = "", *v = api_version;

    if (slash != NULL) {
        lua_pushlstring(L, api_version, (size_t)(slash - api_version));
        g = lua_tostring(L, -1);
        v = slash + 1;
    }
    if (*v == '\0' || strchr(v, '/') != NULL || (slash != NULL && *g == '\0')) {
        lua_pushnil(L);
        lua_pushfstring(L, "apiVersion \"%s\" is not GROUP/VERSION or VERSION", api_version);
        lua_pushliteral(L, "invalid");
        return 3;
    }
    for (size_t i = 0; i < NBUILTIN; i++)
        if (strcmp(builtins[i].group, g) == 0 && strcmp(builtins[i].kind, kind) == 0) {
            push_res(L, g, v, builtins[i].resource, builtins[i].kind, builtins[i].namespaced, r);
            lua_replace(L, top + 1);
            lua_settop(L, top + 1);
            return 0;
        }
    if ((rc = gv_resources(L, ci, api_version)) != 0)
        return rc;
    if (!lua_istable(L, -1) || !find_in(L, lua_gettop(L), kind, 1)) {
        lua_pushnil(L);
        lua_pushfstring(L, "no matches for kind \"%s\" in version \"%s\"", kind, api_version);
        lua_pushliteral(L, "unknown_kind");
        return 3;
    }
    res_from_api(L, api_version, r);
    lua_replace(L, top + 1);
    lua_settop(L, top + 1);
    return 0;
}

void k8s_push_path(lua_State *L, const k8s_res *r, const char *ns, const char *name, const char *sub)
{
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    if (r->group[0] == '\0') {
        luaL_addstring(&b, "/api/");
    } else {
        luaL_addstring(&b, "/apis/");
        luaL_addstring(&b, r->group);
        luaL_addchar(&b, '/');
    }
    luaL_addstring(&b, r->version);
    if (r->namespaced && ns != NULL) {
        luaL_addstring(&b, "/namespaces/");
        k8s_add_escaped(&b, ns);
    }
    luaL_addchar(&b, '/');
    luaL_addstring(&b, r->resource);
    if (name != NULL) {
        luaL_addchar(&b, '/');
        k8s_add_escaped(&b, name);
        if (sub != NULL) {
            luaL_addchar(&b, '/');
            luaL_addstring(&b, sub);
        }
    }
    luaL_pushresult(&b);
}
