/* rollout.k8s: a Kubernetes API client over libcurl.
 *
 *   k8s.client{kubeconfig =, context =, namespace =, in_cluster = true,
 *              timeout = 30, exec_timeout = 10}
 *       -> client | nil, message, "config"        (runtime/k8s_config.c)
 *   client:namespace() -> the default namespace; client:server() -> URL;
 *   client:context() -> context name (nil in-cluster); client:close()
 *   client:get(kind, name [, {namespace =, timeout =}]) -> object
 *   client:list(kind [, {namespace =, selector =, field_selector =,
 *               all_namespaces =, limit =, timeout =}]) -> List object
 *   client:apply(manifest [, {field_manager = "rollout", force = false,
 *                dry_run = false, namespace =, timeout =}]) -> object
 *   client:create(manifest [, opts]) / client:replace(manifest [, opts])
 *   client:patch(kind, name, patch [, {type = "merge"|"strategic"|"json",
 *                namespace =, field_manager =, dry_run =}]) -> object
 *   client:delete(kind, name [, {namespace =, propagation =, dry_run =}])
 *       -> the answer (a Status, or the object for pods and namespaces)
 *   client:request{method =, path =, query =, body =, content_type =,
 *                  accept =, timeout =} -> {status, headers, body, object}
 *   client:watch(kind, opts, fn)                    (runtime/k8s_watch.c)
 *   client:pods / logs / wait_rollout               (runtime/k8s_rollout.c)
 *
 * kind: "Deployment", "deployments", "deployment", "deploy",
 * "apps/v1/deployments" or "v1/pods" (runtime/k8s_kinds.c).
 *
 * Failures return nil, message, code: API errors carry the Status reason
 * ("NotFound", "Forbidden", "Conflict", "Invalid", "Unauthorized", ...) as
 * code and its message (one line) as message, and the Status table as a 4th
 * value; transport errors use curlx's codes ("connect", "timeout", "tls",
 * ...) with "METHOD URL: ..." messages; "auth" for exec plugins; "invalid"
 * for manifests without apiVersion/kind/name; "unknown_kind". Misuse
 * raises. ^C raises "interrupted" after cleanup.
 *
 * A client is a userdata owning one curl easy handle (keep-alive between
 * requests through a share of its connection cache), the configuration and
 * the credentials. Its metatable is set before anything is acquired; one
 * idempotent close serves __gc and __close; a closed client raises. No
 * token, key or certificate ever appears in a message or in __tostring. */
#include "k8s_internal.h"
#include "rollout/convert.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- small shared helpers -------------------------------------------- */

char *k8s_strdup(const char *s)
{
    size_t n;
    char *p;
    if (s == NULL)
        return NULL;
    n = strlen(s) + 1;
    p = malloc(n);
    if (p != NULL)
        memcpy(p, s, n);
    return p;
}

int k8s_token_ok(const char *p, size_t len)
{
    if (len == 0)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (p[i] == '\r' || p[i] == '\n' || p[i] == '\0')
            return 0;
    return 1;
}

static void wipe(void *p, size_t n)
{
    volatile unsigned char *v = p;
    while (n-- > 0)
        *v++ = 0;
}

void k8s_secret_free(k8s_secret *s)
{
    if (s->p != NULL) {
        wipe(s->p, s->len);
        free(s->p);
    }
    s->p = NULL;
    s->len = 0;
}

int k8s_secret_set(k8s_secret *s, const char *p, size_t len)
{
    char *n = malloc(len + 1);
    if (n == NULL)
        return -1;
    memcpy(n, p, len);
    n[len] = '\0';
    k8s_secret_free(s);
    s->p = n;
    s->len = len;
    return 0;
}

void k8s_lib(lua_State *L, const char *field)
{
    lua_getfield(L, LUA_REGISTRYINDEX, K8S_LIB_KEY);
    lua_getfield(L, -1, field);
    lua_remove(L, -2);
}

int k8s_json_decode(lua_State *L, const char *text, size_t len)
{
    k8s_lib(L, "decode");
    lua_pushlstring(L, text, len);
    k8s_lib(L, "decode_opts");
    lua_call(L, 2, 3);
    if (!lua_isnil(L, -3) || lua_isnil(L, -2)) {
        lua_pop(L, 2);
        return 1;
    }
    return 3;
}

void k8s_json_encode(lua_State *L, int idx)
{
    idx = lua_absindex(L, idx);
    k8s_lib(L, "encode");
    lua_pushvalue(L, idx);
    lua_call(L, 1, 1);
}

/* ---- the client userdata ------------------------------------------- */

static void client_free(k8s_client *c)
{
    if (c->closed)
        return;
    c->closed = 1;
    if (c->e != NULL)
        curl_easy_cleanup(c->e);
    c->e = NULL;
    if (c->share != NULL)
        curl_share_cleanup(c->share);
    c->share = NULL;
    curl_slist_free_all(c->hdrs);
    c->hdrs = NULL;
    free(c->body.p);
    free(c->head.p);
    memset(&c->body, 0, sizeof c->body);
    memset(&c->head, 0, sizeof c->head);
    free(c->server);
    free(c->context);
    free(c->ns);
    free(c->source);
    free(c->proxy);
    free(c->token_file);
    c->server = c->context = c->ns = c->source = c->proxy = c->token_file = NULL;
    k8s_secret_free(&c->ca);
    k8s_secret_free(&c->token);
    k8s_secret_free(&c->cert);
    k8s_secret_free(&c->key);
    k8s_secret_free(&c->exec_token);
    k8s_secret_free(&c->exec_cert);
    k8s_secret_free(&c->exec_key);
}

k8s_client *k8s_check(lua_State *L, int idx)
{
    k8s_client *c = luaL_checkudata(L, idx, K8S_CLIENT_MT);
    if (c->closed)
        luaL_error(L, "attempt to use a closed k8s client");
    luaL_checkstack(L, 64, "k8s"); /* the operations nest a few tables deep */
    return c;
}

void k8s_uservalue(lua_State *L, int client_idx)
{
    lua_getiuservalue(L, client_idx, 1);
}

static int client_gc(lua_State *L)
{
    client_free(luaL_checkudata(L, 1, K8S_CLIENT_MT));
    return 0;
}

/* The server URL for display: without userinfo, query, fragment, and
 * without the "/" curlx_redact_url adds for an empty path. */
static void server_display(const k8s_client *c, char *out, size_t outlen)
{
    size_t n, sn = strlen(c->server);
    curlx_redact_url(c->server, out, outlen);
    n = strlen(out);
    if (n > 0 && out[n - 1] == '/' && (sn == 0 || c->server[sn - 1] != '/'))
        out[n - 1] = '\0';
}

static int client_tostring(lua_State *L)
{
    k8s_client *c = luaL_checkudata(L, 1, K8S_CLIENT_MT);
    char where[512];
    if (c->closed) {
        lua_pushliteral(L, "k8s client (closed)");
        return 1;
    }
    server_display(c, where, sizeof where);
    if (c->in_cluster)
        lua_pushfstring(L, "k8s client (in-cluster, server %s, namespace \"%s\")", where, c->ns);
    else
        lua_pushfstring(L, "k8s client (context \"%s\", server %s, namespace \"%s\")",
                        c->context ? c->context : "", where, c->ns);
    return 1;
}

/* client:namespace() -> the default namespace */
static int client_namespace(lua_State *L)
{
    k8s_client *c = k8s_check(L, 1);
    lua_pushstring(L, c->ns);
    return 1;
}

/* client:server() -> the API server URL (without userinfo) */
static int client_server(lua_State *L)
{
    k8s_client *c = k8s_check(L, 1);
    char where[512];
    server_display(c, where, sizeof where);
    lua_pushstring(L, where);
    return 1;
}

/* client:context() -> the context name, or nil in-cluster */
static int client_context(lua_State *L)
{
    k8s_client *c = k8s_check(L, 1);
    if (c->context == NULL)
        lua_pushnil(L);
    else
        lua_pushstring(L, c->context);
    return 1;
}

/* client:close(): idempotent */
static int client_close(lua_State *L)
{
    client_free(luaL_checkudata(L, 1, K8S_CLIENT_MT));
    return 0;
}

int k8s_buf_append(k8s_buf *b, const char *data, size_t n, size_t initial)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : initial;
        char *p;
        while (cap < b->len + n + 1)
            cap *= 2;
        p = realloc(b->p, cap);
        if (p == NULL)
            return -1;
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, n);
    b->len += n;
    b->p[b->len] = '\0';
    return 0;
}

void k8s_push_joined(lua_State *L, int list, int n, char sep)
{
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (int i = 1; i <= n; i++) {
        if (i > 1)
            luaL_addchar(&b, sep);
        lua_rawgeti(L, list, i);
        luaL_addvalue(&b);
    }
    luaL_pushresult(&b);
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *ud)
{
    k8s_client *c = ud;
    size_t n = size * nmemb;
    k8s_buf *b = &c->body;
    if (n > K8S_MAX_BODY - b->len) {
        c->too_large = 1;
        return 0;
    }
    if (k8s_buf_append(b, data, n, 16384) != 0)
        return 0;
    return n;
}

static size_t on_header(char *line, size_t size, size_t nitems, void *ud)
{
    k8s_client *c = ud;
    size_t n = size * nitems;
    k8s_buf *b = &c->head;
    if (n >= 5 && memcmp(line, "HTTP/", 5) == 0) {
        b->len = 0;
        c->body.len = 0;
    }
    if (b->len + n > (1u << 20))
        return 0;
    if (k8s_buf_append(b, line, n, 4096) != 0)
        return 0;
    return n;
}

void k8s_client_callbacks(k8s_client *c)
{
    curl_easy_setopt(c->e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c->e, CURLOPT_WRITEDATA, c);
    curl_easy_setopt(c->e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c->e, CURLOPT_HEADERDATA, c);
    curl_easy_setopt(c->e, CURLOPT_ERRORBUFFER, c->errbuf);
    curl_easy_setopt(c->e, CURLOPT_SHARE, c->share);
}

static double positive_seconds(lua_State *L, int opts, const char *field, double def)
{
    double v = rollout_optfield_number(L, opts, field, def);
    if (!(v > 0))
        luaL_error(L, "field '%s' must be a number of seconds > 0", field);
    return v;
}

/* k8s.client{...} -> client | nil, message, "config" */
static int k8s_client_new(lua_State *L)
{
    k8s_client *c;
    int r;
    if (!lua_isnoneornil(L, 1))
        luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    luaL_checkstack(L, 64, "k8s");
    if (lua_isnil(L, 1)) {
        lua_newtable(L);
        lua_replace(L, 1);
    }
    /* misuse is checked before anything is done */
    (void)rollout_optfield_string(L, 1, "kubeconfig", NULL);
    (void)rollout_optfield_string(L, 1, "context", NULL);
    (void)rollout_optfield_string(L, 1, "namespace", NULL);
    (void)rollout_optfield_boolean(L, 1, "in_cluster", 0);

    c = lua_newuserdatauv(L, sizeof *c, 1); /* 2 */
    memset(c, 0, sizeof *c); /* nothing to free yet */
    luaL_setmetatable(L, K8S_CLIENT_MT);
    c->timeout = positive_seconds(L, 1, "timeout", K8S_DEFAULT_TIMEOUT);
    c->exec_timeout = positive_seconds(L, 1, "exec_timeout", K8S_DEFAULT_EXEC_TIMEOUT);
    lua_newtable(L);
    lua_setiuservalue(L, 2, 1);

    if ((r = k8s_configure(L, 2, 1)) != 0) {
        client_free(c);
        return r;
    }
    if (curlx_init() != CURLE_OK)
        return luaL_error(L, "curl_global_init failed");
    c->share = curl_share_init();
    c->e = curl_easy_init();
    if (c->share == NULL || c->e == NULL)
        return luaL_error(L, "out of memory");
    curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT);
    curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
    curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
    lua_settop(L, 2);
    return 1;
}

int luaopen_rollout_k8s(lua_State *L)
{
    static const luaL_Reg funcs[] = {
        {"client", k8s_client_new},
        {NULL, NULL}};
    static const luaL_Reg methods[] = {
        {"namespace", client_namespace},
        {"server", client_server},
        {"context", client_context},
        {"close", client_close},
        {"get", k8s_op_get},
        {"list", k8s_op_list},
        {"apply", k8s_op_apply},
        {"patch", k8s_op_patch},
        {"create", k8s_op_create},
        {"replace", k8s_op_replace},
        {"delete", k8s_op_delete},
        {"request", k8s_op_request},
        {"watch", k8s_op_watch},
        {"pods", k8s_op_pods},
        {"logs", k8s_op_logs},
        {"wait_rollout", k8s_op_wait_rollout},
        {NULL, NULL}};
    static const luaL_Reg meta[] = {
        {"__gc", client_gc},
        {"__close", client_gc},
        {"__tostring", client_tostring},
        {NULL, NULL}};

    /* the converters of rollout.json and rollout.yaml */
    lua_newtable(L);
    luaL_requiref(L, "rollout.json", luaopen_rollout_json, 0);
    lua_getfield(L, -1, "decode");
    lua_setfield(L, -3, "decode");
    lua_getfield(L, -1, "encode");
    lua_setfield(L, -3, "encode");
    lua_pop(L, 1);
    lua_createtable(L, 0, 1); /* lists can be larger than json's default */
    lua_pushinteger(L, (lua_Integer)K8S_MAX_BODY);
    lua_setfield(L, -2, "max_size");
    lua_setfield(L, -2, "decode_opts");
    luaL_requiref(L, "rollout.yaml", luaopen_rollout_yaml, 0);
    lua_getfield(L, -1, "load");
    lua_setfield(L, -3, "yaml_load");
    lua_pop(L, 1);
    lua_setfield(L, LUA_REGISTRYINDEX, K8S_LIB_KEY);

    if (luaL_newmetatable(L, K8S_CLIENT_MT)) {
        luaL_setfuncs(L, meta, 0);
        luaL_newlib(L, methods);
        lua_setfield(L, -2, "__index");
    }
    lua_pop(L, 1);
    curlx_init();
    luaL_newlib(L, funcs);
    return 1;
}
