/* rollout.k8s operations: get, list, apply (server-side apply), patch,
 * create, replace, delete and the raw request.
 *
 * Every operation is one HTTP request (discovery aside, for kinds outside
 * the built-in table), returns the decoded answer, or nil, message, code:
 * API errors use the Status reason as code and its message (one line) as
 * message, with the Status table as a 4th value; transport errors use
 * curlx's codes with messages naming the server URL. */
#include "k8s_internal.h"
#include "rollout/convert.h"

#include <stdio.h>
#include <string.h>

void k8s_check_opts(lua_State *L, int idx)
{
    if (!lua_isnoneornil(L, idx) && !lua_istable(L, idx))
        luaL_typeerror(L, idx, "table or nil");
}

const char *k8s_opt_namespace(lua_State *L, k8s_client *c, int opts)
{
    const char *ns = NULL;
    if (lua_istable(L, opts))
        ns = rollout_optfield_string(L, opts, "namespace", NULL);
    if (ns != NULL && *ns == '\0')
        luaL_error(L, "field 'namespace' must not be empty");
    return ns ? ns : c->ns;
}

double k8s_opt_timeout(lua_State *L, k8s_client *c, int opts)
{
    double t = c->timeout;
    if (lua_istable(L, opts)) {
        t = rollout_optfield_number(L, opts, "timeout", c->timeout);
        if (!(t > 0))
            luaL_error(L, "field 'timeout' must be a number of seconds > 0");
    }
    return t;
}

static const char *opt_string(lua_State *L, int opts, const char *field)
{
    const char *v = lua_istable(L, opts) ? rollout_optfield_string(L, opts, field, NULL) : NULL;
    return v;
}

static int opt_bool(lua_State *L, int opts, const char *field)
{
    return lua_istable(L, opts) ? rollout_optfield_boolean(L, opts, field, 0) : 0;
}

static const char *check_name(lua_State *L, int idx)
{
    const char *s;
    luaL_checktype(L, idx, LUA_TSTRING);
    s = lua_tostring(L, idx);
    luaL_argcheck(L, *s != '\0', idx, "name must not be empty");
    return s;
}

static const char *check_kind(lua_State *L, int idx)
{
    const char *s;
    luaL_checktype(L, idx, LUA_TSTRING);
    s = lua_tostring(L, idx);
    luaL_argcheck(L, *s != '\0', idx, "kind must not be empty");
    return s;
}

static int finish(lua_State *L, k8s_client *c, const k8s_req *rq)
{
    long status = 0;
    int r = k8s_perform(L, 1, rq, &status);
    if (r != 0)
        return r;
    return k8s_push_result(L, c, rq, status);
}

static void init_req(k8s_req *rq, const char *method, const char *path, double timeout)
{
    memset(rq, 0, sizeof *rq);
    rq->method = method;
    rq->path = path;
    rq->timeout = timeout;
}

/* client:get(kind, name [, {namespace =, timeout =}]) */
int k8s_op_get(lua_State *L)
{
    k8s_client *c = k8s_check(L, 1);
    const char *kind = check_kind(L, 2), *name = check_name(L, 3), *ns;
    k8s_res res;
    k8s_req rq;
    double timeout;
    int r;
    k8s_check_opts(L, 4);
    lua_settop(L, 4);
    ns = k8s_opt_namespace(L, c, 4);
    timeout = k8s_opt_timeout(L, c, 4);
    if ((r = k8s_resolve_kind(L, 1, kind, &res)) != 0)
        return r;
    k8s_push_path(L, &res, ns, name, NULL);
    init_req(&rq, "GET", lua_tostring(L, -1), timeout);
    return finish(L, c, &rq);
}

/* client:list(kind [, {namespace =, selector =, field_selector =,
 *                      all_namespaces = false, limit =, timeout =}]) */
int k8s_op_list(lua_State *L)
{
    k8s_client *c = k8s_check(L, 1);
    const char *kind = check_kind(L, 2), *ns, *sel, *fsel;
    k8s_res res;
    k8s_req rq;
    luaL_Buffer b;
    double timeout, limit = 0;
    int r, first = 1;
    k8s_check_opts(L, 3);
    lua_settop(L, 3);
    ns = k8s_opt_namespace(L, c, 3);
    timeout = k8s_opt_timeout(L, c, 3);
    sel = opt_string(L, 3, "selector");
    fsel = opt_string(L, 3, "field_selector");
    if (opt_bool(L, 3, "all_namespaces"))
        ns = NULL;
    if (lua_istable(L, 3)) {
        limit = rollout_optfield_number(L, 3, "limit", 0);
        if (!(limit >= 0 && limit <= 1e9) || limit != (double)(long long)limit)
            return luaL_error(L, "field 'limit' must be a whole number >= 0");
    }
    if ((r = k8s_resolve_kind(L, 1, kind, &res)) != 0)
        return r;
    k8s_push_path(L, &res, ns, NULL, NULL);
    luaL_buffinit(L, &b);
    if (sel != NULL && *sel != '\0')
        k8s_add_query(&b, &first, "labelSelector", sel);
    if (fsel != NULL && *fsel != '\0')
        k8s_add_query(&b, &first, "fieldSelector", fsel);
    if (limit > 0) {
        char num[32];
        snprintf(num, sizeof num, "%lld", (long long)limit);
        k8s_add_query(&b, &first, "limit", num);
    }
    luaL_pushresult(&b);
    init_req(&rq, "GET", lua_tostring(L, -2), timeout);
    rq.query = lua_tostring(L, -1);
    return finish(L, c, &rq);
}

/* Reads apiVersion, kind, metadata.name/namespace of the manifest at idx.
 * Returns 0, or nil, message, "invalid" (3). */
static int manifest_meta(lua_State *L, int idx, const char **api, const char **kind, const char **name,
                         const char **ns, int need_name)
{
    *api = *kind = *name = *ns = NULL;
    if (lua_getfield(L, idx, "apiVersion") == LUA_TSTRING)
        *api = lua_tostring(L, -1);
    if (lua_getfield(L, idx, "kind") == LUA_TSTRING)
        *kind = lua_tostring(L, -1);
    if (lua_getfield(L, idx, "metadata") == LUA_TTABLE) {
        if (lua_getfield(L, -1, "name") == LUA_TSTRING)
            *name = lua_tostring(L, -1);
        if (lua_getfield(L, -2, "namespace") == LUA_TSTRING)
            *ns = lua_tostring(L, -1);
        lua_pop(L, 2);
    }
    lua_pop(L, 3); /* the strings are anchored by the manifest */
    if (*api == NULL || **api == '\0')
        return rollout_fail(L, "invalid", "manifest has no apiVersion");
    if (*kind == NULL || **kind == '\0')
        return rollout_fail(L, "invalid", "manifest has no kind");
    if (need_name && (*name == NULL || **name == '\0'))
        return rollout_fail(L, "invalid", "%s manifest has no metadata.name", *kind);
    if (*ns != NULL && **ns == '\0')
        *ns = NULL;
    return 0;
}

/* ?fieldManager=&force=true&dryRun=All from the options at opts. */
static void push_write_query(lua_State *L, int opts, const char *default_manager, int allow_force)
{
    luaL_Buffer b;
    int first = 1;
    const char *fm = opt_string(L, opts, "field_manager");
    int force = allow_force && opt_bool(L, opts, "force");
    int dry = opt_bool(L, opts, "dry_run");
    if (fm == NULL)
        fm = default_manager;
    if (fm != NULL && *fm == '\0')
        luaL_error(L, "field 'field_manager' must not be empty");
    luaL_buffinit(L, &b);
    if (dry)
        k8s_add_query(&b, &first, "dryRun", "All");
    if (fm != NULL)
        k8s_add_query(&b, &first, "fieldManager", fm);
    if (force)
        k8s_add_query(&b, &first, "force", "true");
    luaL_pushresult(&b);
}

/* PATCH/POST/PUT of a manifest. mode: 'a'pply, 'c'reate, 'r'eplace */
static int write_manifest(lua_State *L, int mode)
{
    k8s_client *c = k8s_check(L, 1);
    const char *api, *kind, *name, *ns;
    k8s_res res;
    k8s_req rq;
    size_t blen;
    int r, path;
    luaL_checktype(L, 2, LUA_TTABLE);
    k8s_check_opts(L, 3);
    lua_settop(L, 3);
    if ((r = manifest_meta(L, 2, &api, &kind, &name, &ns, mode != 'c')) != 0)
        return r;
    if (ns == NULL)
        ns = k8s_opt_namespace(L, c, 3);
    if ((r = k8s_resolve_gvk(L, 1, api, kind, &res)) != 0)
        return r;
    k8s_push_path(L, &res, ns, mode == 'c' ? NULL : name, NULL);
    path = lua_gettop(L);
    push_write_query(L, 3, mode == 'a' ? "rollout" : NULL, mode == 'a');
    k8s_json_encode(L, 2);
    init_req(&rq, mode == 'a' ? "PATCH" : mode == 'c' ? "POST" : "PUT", lua_tostring(L, path),
             k8s_opt_timeout(L, c, 3));
    rq.query = lua_tostring(L, path + 1);
    rq.body = lua_tolstring(L, path + 2, &blen);
    rq.body_len = blen;
    rq.content_type = mode == 'a' ? "application/apply-patch+yaml" : "application/json";
    return finish(L, c, &rq);
}

/* client:apply(manifest [, {field_manager = "rollout", force = false,
 *                           dry_run = false, namespace =, timeout =}]) */
int k8s_op_apply(lua_State *L)
{
    return write_manifest(L, 'a');
}

/* client:create(manifest [, {field_manager =, dry_run =, namespace =}]) */
int k8s_op_create(lua_State *L)
{
    return write_manifest(L, 'c');
}

/* client:replace(manifest [, {field_manager =, dry_run =, namespace =}]) */
int k8s_op_replace(lua_State *L)
{
    return write_manifest(L, 'r');
}

/* client:patch(kind, name, patch [, {type = "merge"|"strategic"|"json",
 *                                   namespace =, field_manager =, dry_run =}]) */
int k8s_op_patch(lua_State *L)
{
    k8s_client *c = k8s_check(L, 1);
    const char *kind = check_kind(L, 2), *name = check_name(L, 3), *ns, *type, *ctype;
    k8s_res res;
    k8s_req rq;
    size_t blen;
    int r, path;
    if (!lua_istable(L, 4) && lua_type(L, 4) != LUA_TSTRING)
        return luaL_typeerror(L, 4, "table or JSON string");
    k8s_check_opts(L, 5);
    lua_settop(L, 5);
    ns = k8s_opt_namespace(L, c, 5);
    type = opt_string(L, 5, "type");
    if (type == NULL || strcmp(type, "merge") == 0)
        ctype = "application/merge-patch+json";
    else if (strcmp(type, "strategic") == 0)
        ctype = "application/strategic-merge-patch+json";
    else if (strcmp(type, "json") == 0)
        ctype = "application/json-patch+json";
    else
        return luaL_error(L, "field 'type' must be \"merge\", \"strategic\" or \"json\" (got \"%s\")", type);
    if ((r = k8s_resolve_kind(L, 1, kind, &res)) != 0)
        return r;
    k8s_push_path(L, &res, ns, name, NULL);
    path = lua_gettop(L);
    push_write_query(L, 5, NULL, 0);
    if (lua_istable(L, 4))
        k8s_json_encode(L, 4);
    else
        lua_pushvalue(L, 4);
    init_req(&rq, "PATCH", lua_tostring(L, path), k8s_opt_timeout(L, c, 5));
    rq.query = lua_tostring(L, path + 1);
    rq.body = lua_tolstring(L, path + 2, &blen);
    rq.body_len = blen;
    rq.content_type = ctype;
    return finish(L, c, &rq);
}

/* client:delete(kind, name [, {namespace =, propagation =, dry_run =}]) */
int k8s_op_delete(lua_State *L)
{
    k8s_client *c = k8s_check(L, 1);
    const char *kind = check_kind(L, 2), *name = check_name(L, 3), *ns, *prop;
    k8s_res res;
    k8s_req rq;
    luaL_Buffer b;
    int r, first = 1;
    k8s_check_opts(L, 4);
    lua_settop(L, 4);
    ns = k8s_opt_namespace(L, c, 4);
    prop = opt_string(L, 4, "propagation");
    if (prop != NULL && strcmp(prop, "Background") != 0 && strcmp(prop, "Foreground") != 0 &&
        strcmp(prop, "Orphan") != 0)
        return luaL_error(L, "field 'propagation' must be \"Background\", \"Foreground\" or \"Orphan\" (got \"%s\")",
                          prop);
    if ((r = k8s_resolve_kind(L, 1, kind, &res)) != 0)
        return r;
    k8s_push_path(L, &res, ns, name, NULL);
    luaL_buffinit(L, &b);
    if (opt_bool(L, 4, "dry_run"))
        k8s_add_query(&b, &first, "dryRun", "All");
    if (prop != NULL)
        k8s_add_query(&b, &first, "propagationPolicy", prop);
    luaL_pushresult(&b);
    init_req(&rq, "DELETE", lua_tostring(L, -2), k8s_opt_timeout(L, c, 4));
    rq.query = lua_tostring(L, -1);
    return finish(L, c, &rq);
}

/* Pushes one "key=value" (escaped) query piece. */
static void push_piece(lua_State *L, const char *key, const char *value)
{
    luaL_Buffer b;
    int first = 1;
    luaL_buffinit(L, &b);
    k8s_add_query(&b, &first, key, value);
    luaL_pushresult(&b);
}

/* Pushes the query string of the table at idx ({k = v | {v1, v2}}): the
 * pieces are collected first, then joined (a luaL_Buffer must not have
 * lua_next's key and value above it). */
static void push_query_table(lua_State *L, int idx)
{
    int pieces, n = 0;
    lua_newtable(L);
    pieces = lua_gettop(L);
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        const char *k;
        if (lua_type(L, -2) != LUA_TSTRING)
            luaL_error(L, "query keys must be strings");
        k = lua_tostring(L, -2);
        if (lua_istable(L, -1)) {
            for (lua_Integer i = 1; lua_rawgeti(L, -1, i) != LUA_TNIL; i++) {
                if (lua_type(L, -1) != LUA_TSTRING && lua_type(L, -1) != LUA_TNUMBER)
                    luaL_error(L, "query.%s[%d] must be a string or a number", k, (int)i);
                push_piece(L, k, lua_tostring(L, -1));
                lua_rawseti(L, pieces, ++n);
                lua_pop(L, 1);
            }
            lua_pop(L, 1);
        } else if (lua_type(L, -1) == LUA_TBOOLEAN) {
            push_piece(L, k, lua_toboolean(L, -1) ? "true" : "false");
            lua_rawseti(L, pieces, ++n);
        } else if (lua_type(L, -1) == LUA_TSTRING || lua_type(L, -1) == LUA_TNUMBER) {
            lua_pushvalue(L, -1); /* tostring on a copy: lua_next needs the original */
            push_piece(L, k, lua_tostring(L, -1));
            lua_rawseti(L, pieces, ++n);
            lua_pop(L, 1);
        } else {
            luaL_error(L, "query.%s must be a string, a number, a boolean or a list", k);
        }
        lua_pop(L, 1);
    }
    k8s_push_joined(L, pieces, n, '&');
    lua_remove(L, pieces);
}

/* client:request{method = "GET", path =, query = {}, body = string|table,
 *                content_type =, accept =, timeout =}
 *   -> {status =, headers =, body =, object = decoded JSON or nil} */
int k8s_op_request(lua_State *L)
{
    k8s_client *c = k8s_check(L, 1);
    const char *method, *path;
    k8s_req rq;
    long status = 0;
    size_t blen = 0;
    int r, qidx = 0, bidx = 0, res;
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_settop(L, 2);
    method = rollout_optfield_string(L, 2, "method", "GET");
    if (!curlx_is_token(method))
        return luaL_error(L, "field 'method' must be an HTTP method name");
    lua_getfield(L, 2, "path"); /* 3 */
    if (lua_type(L, 3) != LUA_TSTRING)
        return luaL_error(L, "field 'path' must be a string (got %s)", luaL_typename(L, 3));
    path = lua_tostring(L, 3);
    if (path[0] != '/' || strpbrk(path, " \t\r\n?#") != NULL || strlen(path) != lua_rawlen(L, 3))
        return luaL_error(L, "field 'path' must start with '/' and hold no spaces, '?' or '#' (use 'query')");
    lua_getfield(L, 2, "query"); /* 4 */
    if (!lua_isnil(L, 4) && !lua_istable(L, 4))
        return luaL_error(L, "field 'query' must be a table (got %s)", luaL_typename(L, 4));
    qidx = lua_istable(L, 4) ? 4 : 0;
    if (qidx)
        push_query_table(L, qidx); /* 5 */
    else
        lua_pushliteral(L, "");
    lua_getfield(L, 2, "body"); /* 6 */
    if (lua_istable(L, 6)) {
        k8s_json_encode(L, 6);
        lua_replace(L, 6);
    } else if (!lua_isnil(L, 6) && lua_type(L, 6) != LUA_TSTRING) {
        return luaL_error(L, "field 'body' must be a string or a table (got %s)", luaL_typename(L, 6));
    }
    bidx = lua_isnil(L, 6) ? 0 : 6;
    init_req(&rq, method, path, k8s_opt_timeout(L, c, 2));
    rq.query = lua_tostring(L, 5);
    if (bidx) {
        rq.body = lua_tolstring(L, bidx, &blen);
        rq.body_len = blen;
    }
    rq.content_type = rollout_optfield_string(L, 2, "content_type", NULL);
    rq.accept = rollout_optfield_string(L, 2, "accept", NULL);
    if ((rq.content_type && strpbrk(rq.content_type, "\r\n")) || (rq.accept && strpbrk(rq.accept, "\r\n")))
        return luaL_error(L, "fields 'content_type' and 'accept' must not hold CR or LF");
    if ((r = k8s_perform(L, 1, &rq, &status)) != 0)
        return r;
    lua_createtable(L, 0, 4);
    res = lua_gettop(L);
    lua_pushinteger(L, status);
    lua_setfield(L, res, "status");
    curlx_push_headers(L, c->head.p ? c->head.p : "", c->head.len);
    lua_setfield(L, res, "headers");
    lua_pushlstring(L, c->body.p ? c->body.p : "", c->body.len);
    lua_setfield(L, res, "body");
    if (c->body.len > 0) {
        const char *ct;
        lua_getfield(L, res, "headers");
        lua_getfield(L, -1, "content-type");
        ct = lua_tostring(L, -1);
        if (ct != NULL && strstr(ct, "json") != NULL && k8s_json_decode(L, c->body.p, c->body.len) == 1)
            lua_setfield(L, res, "object");
        lua_settop(L, res);
    }
    return 1;
}
