/* rollout.k8s configuration: the kubeconfig file (as kubectl reads it) or
 * the in-cluster service account.
 *
 * Which one:
 *   - in_cluster = true: in-cluster;
 *   - else the file opts.kubeconfig, else the first entry of $KUBECONFIG
 *     (a ':' list: only the first non-empty entry is read, no merging),
 *     else ~/.kube/config; when no kubeconfig option was given, that file
 *     does not exist and KUBERNETES_SERVICE_HOST is set: in-cluster.
 *
 * Kubeconfig: the context opts.context or current-context, its cluster
 * (server, certificate-authority[-data], insecure-skip-tls-verify,
 * proxy-url, extensions for exec plugins) and user (token, tokenFile,
 * client-certificate[-data], client-key[-data], exec; username/password,
 * which Kubernetes no longer accepts, are ignored).
 * Relative file paths are relative to the kubeconfig's directory, as are
 * exec commands that contain a '/'. *-data fields win over files. Files are
 * read now, so an unreadable one is a "config" error naming it.
 *
 * In-cluster: https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT,
 * token, ca.crt and namespace from /var/run/secrets/kubernetes.io/
 * serviceaccount (or $ROLLOUT_K8S_SA_DIR); the token file is re-read.
 *
 * Every error is one line "kubeconfig PATH: ..." / "in-cluster: ...",
 * code "config", and never shows a credential. */
#include "k8s_internal.h"
#include "rollout/convert.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define SA_DIR "/var/run/secrets/kubernetes.io/serviceaccount"
#define MAX_FILE ((size_t)16 << 20)
#define EXEC_V1 "client.authentication.k8s.io/v1"
#define EXEC_V1BETA1 "client.authentication.k8s.io/v1beta1"

typedef struct cfgctx {
    lua_State *L;
    k8s_client *c;
    int ci;           /* the client */
    int opts;         /* the options table */
    const char *what; /* "kubeconfig PATH" or "in-cluster" (anchored) */
    char dir[PATH_MAX];
} cfgctx;

/* nil, "<what>: <formatted>", "config" */
static int cfail(cfgctx *x, const char *fmt, ...)
{
    va_list ap;
    lua_State *L = x->L;
    lua_pushnil(L);
    lua_pushfstring(L, "%s: ", x->what);
    va_start(ap, fmt);
    lua_pushvfstring(L, fmt, ap);
    va_end(ap);
    lua_concat(L, 2);
    lua_pushliteral(L, "config");
    return 3;
}

static int oom(cfgctx *x)
{
    return luaL_error(x->L, "out of memory");
}

int k8s_pem_has(const char *p, size_t len, const char *type)
{
    const char *begin;
    if (p == NULL || len == 0 || strlen(p) != len)
        return 0;
    begin = strstr(p, "-----BEGIN ");
    if (begin == NULL)
        return 0;
    if (strcmp(type, "PRIVATE KEY") == 0) {
        const char *eol = strchr(begin, '\n');
        const char *k = strstr(begin, "PRIVATE KEY-----");
        return k != NULL && (eol == NULL || k < eol);
    }
    for (; begin != NULL; begin = strstr(begin + 1, "-----BEGIN ")) {
        size_t tl = strlen(type);
        if (strncmp(begin + 11, type, tl) == 0 && strncmp(begin + 11 + tl, "-----", 5) == 0)
            return 1;
    }
    return 0;
}

/* A string field of the table at t: 0 with *out (NULL when absent or null),
 * or -1 when it has another type. The string is anchored by the table. */
static int str_field(lua_State *L, int t, const char *field, const char **out)
{
    int ty = lua_getfield(L, t, field), ok;
    *out = NULL;
    if (ty == LUA_TSTRING) {
        *out = lua_tostring(L, -1);
        lua_pop(L, 1);
        return 0;
    }
    ok = ty == LUA_TNIL || rc_is_null(L, -1);
    lua_pop(L, 1);
    return ok ? 0 : -1;
}

/* A boolean field: 0/1, or -1 when it has another type. */
static int bool_field(lua_State *L, int t, const char *field)
{
    int ty = lua_getfield(L, t, field), v = 0;
    if (ty == LUA_TBOOLEAN)
        v = lua_toboolean(L, -1);
    else if (ty != LUA_TNIL && !rc_is_null(L, -1))
        v = -1;
    lua_pop(L, 1);
    return v;
}

/* Is the field a table (pushed, returns 1), absent/null (nothing pushed,
 * 0), or something else (-1)? */
static int table_field(lua_State *L, int t, const char *field)
{
    int ty = lua_getfield(L, t, field), ok;
    if (ty == LUA_TTABLE)
        return 1;
    ok = ty == LUA_TNIL || rc_is_null(L, -1);
    lua_pop(L, 1);
    return ok ? 0 : -1;
}

/* In the list field `list` of cfg ([{name=, <inner>=}...]), finds `name`
 * and pushes its `inner` table (1). Otherwise pushes "a, b" (the names, or
 * "none") and returns 0. */
static int find_named(lua_State *L, int cfg, const char *list, const char *name, const char *inner)
{
    luaL_Buffer b;
    int n = 0, have = table_field(L, cfg, list);
    if (have == 1) {
        int t = lua_gettop(L);
        for (lua_Integer i = 1; lua_rawgeti(L, t, i) != LUA_TNIL; i++) {
            const char *nm = NULL;
            if (lua_istable(L, -1) && str_field(L, -1, "name", &nm) == 0 && nm != NULL &&
                strcmp(nm, name) == 0) {
                if (table_field(L, -1, inner) == 1) {
                    lua_replace(L, t);
                    lua_settop(L, t);
                    return 1;
                }
                lua_newtable(L); /* an entry without its body: empty */
                lua_replace(L, t);
                lua_settop(L, t);
                return 1;
            }
            lua_pop(L, 1);
        }
        lua_pop(L, 1); /* the nil */
        luaL_buffinit(L, &b);
        for (lua_Integer i = 1; lua_rawgeti(L, t, i) != LUA_TNIL; i++) {
            const char *nm = NULL;
            if (lua_istable(L, -1) && str_field(L, -1, "name", &nm) == 0 && nm != NULL) {
                lua_pop(L, 1);
                if (n++ > 0)
                    luaL_addstring(&b, ", ");
                luaL_addstring(&b, nm);
            } else {
                lua_pop(L, 1);
            }
        }
        lua_pop(L, 1);
        if (n == 0)
            luaL_addstring(&b, "none");
        luaL_pushresult(&b);
        lua_remove(L, t);
        return 0;
    }
    lua_pushliteral(L, "none");
    return 0;
}

/* path relative to the kubeconfig's directory, pushed */
static const char *resolve_path(cfgctx *x, const char *p)
{
    if (p[0] == '/' || x->dir[0] == '\0')
        lua_pushstring(x->L, p);
    else
        lua_pushfstring(x->L, "%s/%s", x->dir, p);
    return lua_tostring(x->L, -1);
}

/* Reads a file into a secret; on failure pushes the config error. */
static int read_secret(cfgctx *x, const char *owner, const char *field, const char *path, k8s_secret *out)
{
    lua_State *L = x->L;
    int top = lua_gettop(L);
    size_t len;
    const char *p;
    if (rc_read_file(L, path, MAX_FILE) != 1) {
        const char *msg = lua_tostring(L, -2); /* "PATH: reason" */
        return cfail(x, "%s%s %s", owner, field, msg ? msg : path);
    }
    p = lua_tolstring(L, -1, &len);
    if (k8s_secret_set(out, p, len) != 0)
        oom(x);
    lua_settop(L, top);
    return 0;
}

/* *-data (base64) or the file field into out; PEM of `type` required.
 * Returns 0 (also when neither is given), or 3 with the error pushed. */
static int pem_field(cfgctx *x, int t, const char *owner, const char *file_field, const char *data_field,
                     const char *type, k8s_secret *out)
{
    lua_State *L = x->L;
    const char *data, *file;
    int r;
    if (str_field(L, t, data_field, &data) != 0)
        return cfail(x, "%s%s must be a string", owner, data_field);
    if (str_field(L, t, file_field, &file) != 0)
        return cfail(x, "%s%s must be a string", owner, file_field);
    if (data != NULL && *data != '\0') {
        if (k8s_base64_decode(data, strlen(data), out) != 0)
            return cfail(x, "%s%s is not valid base64", owner, data_field);
        if (!k8s_pem_has(out->p, out->len, type))
            return cfail(x, "%s%s holds no PEM %s", owner, data_field,
                         strcmp(type, "CERTIFICATE") == 0 ? "certificate" : "private key");
        return 0;
    }
    if (file != NULL && *file != '\0') {
        const char *path = resolve_path(x, file);
        if ((r = read_secret(x, owner, file_field, path, out)) != 0)
            return r;
        if (!k8s_pem_has(out->p, out->len, type))
            return cfail(x, "%s%s %s holds no PEM %s", owner, file_field, path,
                         strcmp(type, "CERTIFICATE") == 0 ? "certificate" : "private key");
        lua_pop(L, 1);
    }
    return 0;
}

/* Trims whitespace at both ends of a secret (token files end with "\n"). */
static void trim_secret(k8s_secret *s)
{
    size_t a = 0, n = s->len;
    while (n > 0 && (s->p[n - 1] == '\n' || s->p[n - 1] == '\r' || s->p[n - 1] == ' ' || s->p[n - 1] == '\t'))
        n--;
    while (a < n && (s->p[a] == ' ' || s->p[a] == '\t' || s->p[a] == '\n' || s->p[a] == '\r'))
        a++;
    if (a > 0)
        memmove(s->p, s->p + a, n - a);
    s->len = n - a;
    s->p[s->len] = '\0';
}

static void set_dir(cfgctx *x, const char *path)
{
    const char *slash = strrchr(path, '/');
    x->dir[0] = '\0';
    if (slash == NULL)
        snprintf(x->dir, sizeof x->dir, ".");
    else if (slash == path)
        snprintf(x->dir, sizeof x->dir, "/");
    else if ((size_t)(slash - path) < sizeof x->dir)
        snprintf(x->dir, sizeof x->dir, "%.*s", (int)(slash - path), path);
}

static const char *basename_of(const char *p)
{
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

static int check_server(cfgctx *x, const char *server, const char *cluster)
{
    size_t n;
    if (server == NULL || *server == '\0')
        return cfail(x, "cluster \"%s\" has no server", cluster);
    if (strncmp(server, "https://", 8) != 0 && strncmp(server, "http://", 7) != 0)
        return cfail(x, "cluster \"%s\": server must be an http(s) URL", cluster);
    if (strpbrk(server, " \t\r\n") != NULL)
        return cfail(x, "cluster \"%s\": server must be a URL without spaces", cluster);
    x->c->server = k8s_strdup(server);
    if (x->c->server == NULL)
        oom(x);
    n = strlen(x->c->server);
    while (n > 8 && x->c->server[n - 1] == '/')
        x->c->server[--n] = '\0';
    return 0;
}

/* ---- exec plugins ---------------------------------------------------- */

/* Reads users[].user.exec (the table at t) into uservalue.exec. */
static int read_exec(cfgctx *x, int t, int cluster, const char *owner)
{
    lua_State *L = x->L;
    const char *command, *api, *hint, *mode;
    int provide, spec, info, top = lua_gettop(L);

    if (str_field(L, t, "command", &command) != 0 || command == NULL || *command == '\0')
        return cfail(x, "%sexec has no command", owner);
    if (str_field(L, t, "apiVersion", &api) != 0 || api == NULL)
        return cfail(x, "%sexec has no apiVersion (use %s)", owner, EXEC_V1);
    if (strcmp(api, EXEC_V1) != 0 && strcmp(api, EXEC_V1BETA1) != 0)
        return cfail(x, "%sexec apiVersion \"%s\" is not supported (use %s or %s)", owner, api, EXEC_V1,
                     EXEC_V1BETA1);
    if (str_field(L, t, "installHint", &hint) != 0)
        return cfail(x, "%sexec installHint must be a string", owner);
    if (str_field(L, t, "interactiveMode", &mode) != 0)
        return cfail(x, "%sexec interactiveMode must be a string", owner);
    if (mode != NULL && strcmp(mode, "Never") != 0 && strcmp(mode, "IfAvailable") != 0) {
        if (strcmp(mode, "Always") == 0)
            return cfail(x, "%sexec interactiveMode is Always, but rollout runs plugins without a terminal",
                         owner);
        return cfail(x, "%sexec interactiveMode \"%s\" is not Never, IfAvailable or Always", owner, mode);
    }
    provide = bool_field(L, t, "provideClusterInfo");
    if (provide < 0)
        return cfail(x, "%sexec provideClusterInfo must be a boolean", owner);

    lua_createtable(L, 0, 8);
    spec = lua_gettop(L);
    if (strchr(command, '/') != NULL)
        resolve_path(x, command);
    else
        lua_pushstring(L, command);
    lua_setfield(L, spec, "command");
    lua_pushstring(L, basename_of(command));
    lua_setfield(L, spec, "name");
    lua_pushstring(L, api);
    lua_setfield(L, spec, "api_version");
    if (hint != NULL) {
        lua_pushstring(L, hint);
        lua_setfield(L, spec, "install_hint");
    }

    /* args: a list of strings */
    lua_newtable(L);
    {
        int have = table_field(L, t, "args");
        if (have < 0)
            return cfail(x, "%sexec args must be a list of strings", owner);
        if (have == 1) {
            for (lua_Integer i = 1; lua_rawgeti(L, -1, i) != LUA_TNIL; i++) {
                if (lua_type(L, -1) != LUA_TSTRING)
                    return cfail(x, "%sexec args[%d] must be a string", owner, (int)i);
                lua_rawseti(L, -3, i);
            }
            lua_pop(L, 2);
        }
    }
    lua_setfield(L, spec, "args");

    /* env: [{name=, value=}] -> {NAME = value} */
    lua_newtable(L);
    {
        int have = table_field(L, t, "env");
        if (have < 0)
            return cfail(x, "%sexec env must be a list of {name, value}", owner);
        if (have == 1) {
            for (lua_Integer i = 1; lua_rawgeti(L, -1, i) != LUA_TNIL; i++) {
                const char *nm = NULL, *v = NULL;
                if (!lua_istable(L, -1) || str_field(L, -1, "name", &nm) != 0 || nm == NULL || *nm == '\0' ||
                    strchr(nm, '=') != NULL || str_field(L, -1, "value", &v) != 0)
                    return cfail(x, "%sexec env[%d] must be {name = NAME, value = string}", owner, (int)i);
                lua_pushstring(L, v ? v : "");
                lua_setfield(L, -4, nm);
                lua_pop(L, 1);
            }
            lua_pop(L, 2);
        }
    }
    lua_setfield(L, spec, "env");

    /* KUBERNETES_EXEC_INFO: {apiVersion, kind, spec = {interactive = false
     * [, cluster = {...}]}} */
    lua_createtable(L, 0, 3);
    info = lua_gettop(L);
    lua_pushstring(L, api);
    lua_setfield(L, info, "apiVersion");
    lua_pushliteral(L, "ExecCredential");
    lua_setfield(L, info, "kind");
    lua_createtable(L, 0, 2);
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "interactive");
    if (provide == 1) {
        int cl;
        lua_createtable(L, 0, 5);
        cl = lua_gettop(L);
        lua_pushstring(L, x->c->server);
        lua_setfield(L, cl, "server");
        if (x->c->ca.len > 0) {
            k8s_base64_push(L, x->c->ca.p, x->c->ca.len);
            lua_setfield(L, cl, "certificate-authority-data");
        }
        if (x->c->insecure) {
            lua_pushboolean(L, 1);
            lua_setfield(L, cl, "insecure-skip-tls-verify");
        }
        if (x->c->proxy != NULL) {
            lua_pushstring(L, x->c->proxy);
            lua_setfield(L, cl, "proxy-url");
        }
        /* the cluster's extension named client.authentication.k8s.io/exec */
        if (table_field(L, cluster, "extensions") == 1) {
            for (lua_Integer i = 1; lua_rawgeti(L, -1, i) != LUA_TNIL; i++) {
                const char *nm = NULL;
                if (lua_istable(L, -1) && str_field(L, -1, "name", &nm) == 0 && nm != NULL &&
                    strcmp(nm, "client.authentication.k8s.io/exec") == 0) {
                    lua_getfield(L, -1, "extension");
                    lua_setfield(L, cl, "config");
                }
                lua_pop(L, 1);
            }
            lua_pop(L, 2);
        }
        lua_setfield(L, -2, "cluster");
    }
    lua_setfield(L, info, "spec");
    k8s_json_encode(L, info);
    lua_setfield(L, spec, "info");
    lua_settop(L, spec);

    k8s_uservalue(L, x->ci);
    lua_insert(L, -2);
    lua_setfield(L, -2, "exec");
    lua_settop(L, top);
    x->c->has_exec = 1;
    return 0;
}

/* ---- kubeconfig -------------------------------------------------------- */

static int read_user(cfgctx *x, int u, int cluster, const char *user)
{
    lua_State *L = x->L;
    k8s_client *c = x->c;
    const char *token, *token_file;
    char owner[300];
    int r, have;

    snprintf(owner, sizeof owner, "user \"%s\": ", user);
    if ((have = table_field(L, u, "auth-provider")) != 0) {
        const char *nm = NULL;
        if (have == 1)
            str_field(L, -1, "name", &nm);
        return cfail(x, "%sauth-provider \"%s\" is not supported; use an exec credential plugin", owner,
                     nm ? nm : "?");
    }
    if (str_field(L, u, "token", &token) != 0)
        return cfail(x, "%stoken must be a string", owner);
    if (str_field(L, u, "tokenFile", &token_file) != 0)
        return cfail(x, "%stokenFile must be a string", owner);
    if (token != NULL && *token != '\0') {
        if (!k8s_token_ok(token, strlen(token)))
            return cfail(x, "%stoken holds a line break", owner);
        if (k8s_secret_set(&c->token, token, strlen(token)) != 0)
            oom(x);
    } else if (token_file != NULL && *token_file != '\0') {
        const char *path = resolve_path(x, token_file);
        if ((r = read_secret(x, owner, "tokenFile", path, &c->token)) != 0)
            return r;
        trim_secret(&c->token);
        if (!k8s_token_ok(c->token.p, c->token.len))
            return cfail(x, "%stokenFile %s is empty or holds more than one line", owner, path);
        c->token_file = k8s_strdup(path);
        if (c->token_file == NULL)
            oom(x);
        c->token_read_at = rollout_now();
        lua_pop(L, 1);
    }
    if ((r = pem_field(x, u, owner, "client-certificate", "client-certificate-data", "CERTIFICATE",
                       &c->cert)) != 0)
        return r;
    if ((r = pem_field(x, u, owner, "client-key", "client-key-data", "PRIVATE KEY", &c->key)) != 0)
        return r;
    if ((c->cert.len > 0) != (c->key.len > 0))
        return cfail(x, "%s%s without %s", owner, c->cert.len > 0 ? "client-certificate" : "client-key",
                     c->cert.len > 0 ? "client-key" : "client-certificate");
    have = table_field(L, u, "exec");
    if (have < 0)
        return cfail(x, "%sexec must be a mapping", owner);
    if (have == 1) {
        r = read_exec(x, lua_gettop(L), cluster, owner);
        if (r != 0)
            return r;
        lua_pop(L, 1);
    }
    return 0;
}

static int read_cluster(cfgctx *x, int cl, const char *cluster)
{
    lua_State *L = x->L;
    k8s_client *c = x->c;
    const char *server, *proxy;
    char owner[300];
    int r, insecure;

    snprintf(owner, sizeof owner, "cluster \"%s\": ", cluster);
    if (str_field(L, cl, "server", &server) != 0)
        return cfail(x, "%sserver must be a string", owner);
    if ((r = check_server(x, server, cluster)) != 0)
        return r;
    insecure = bool_field(L, cl, "insecure-skip-tls-verify");
    if (insecure < 0)
        return cfail(x, "%sinsecure-skip-tls-verify must be true or false", owner);
    if ((r = pem_field(x, cl, owner, "certificate-authority", "certificate-authority-data", "CERTIFICATE",
                       &c->ca)) != 0)
        return r;
    if (insecure && c->ca.len > 0) /* as kubectl: refused */
        return cfail(x, "%sa certificate authority together with insecure-skip-tls-verify is not allowed",
                     owner);
    c->insecure = insecure;
    if (str_field(L, cl, "proxy-url", &proxy) != 0)
        return cfail(x, "%sproxy-url must be a string", owner);
    if (proxy != NULL && *proxy != '\0' && (c->proxy = k8s_strdup(proxy)) == NULL)
        oom(x);
    return 0;
}

static int from_kubeconfig(cfgctx *x, const char *path)
{
    lua_State *L = x->L;
    k8s_client *c = x->c;
    const char *ctx_name, *cluster_name, *user_name, *ns, *opt_ns;
    int cfg, ctx, cl, u = 0, r;
    size_t len;
    const char *text;

    lua_pushfstring(L, "kubeconfig %s", path);
    x->what = lua_tostring(L, -1); /* stays on the stack */
    set_dir(x, path);
    c->source = k8s_strdup(path);
    if (c->source == NULL)
        oom(x);

    if (rc_read_file(L, path, MAX_FILE) != 1) {
        const char *msg = lua_tostring(L, -2); /* "PATH: reason" */
        lua_pushnil(L);
        lua_pushfstring(L, "kubeconfig %s", msg);
        lua_pushliteral(L, "config");
        return 3;
    }
    text = lua_tolstring(L, -1, &len);
    k8s_lib(L, "yaml_load");
    lua_pushlstring(L, text, len);
    lua_createtable(L, 0, 1);
    lua_pushstring(L, path);
    lua_setfield(L, -2, "name");
    lua_call(L, 2, 2);
    if (lua_isnil(L, -2)) {
        /* "invalid !!int value '...'" would quote a value: maybe a secret */
        const char *msg = lua_tostring(L, -1), *q = msg ? strstr(msg, " value '") : NULL;
        if (q != NULL) {
            const char *head = lua_pushlstring(L, msg, (size_t)(q - msg)); /* anchored below */
            lua_pushnil(L);
            lua_pushfstring(L, "kubeconfig %s value (not shown)", head);
        } else {
            lua_pushnil(L);
            lua_pushfstring(L, "kubeconfig %s", msg);
        }
        lua_pushliteral(L, "config");
        return 3;
    }
    lua_pop(L, 1);
    if (!lua_istable(L, -1))
        return cfail(x, "not a kubeconfig (expected a mapping)");
    cfg = lua_gettop(L);

    ctx_name = rollout_optfield_string(L, x->opts, "context", NULL);
    if (ctx_name == NULL) {
        if (str_field(L, cfg, "current-context", &ctx_name) != 0)
            return cfail(x, "current-context must be a string");
        if (ctx_name == NULL || *ctx_name == '\0') {
            find_named(L, cfg, "contexts", "", "context");
            return cfail(x, "no context given and current-context is not set (contexts: %s)", lua_tostring(L, -1));
        }
    }
    if (!find_named(L, cfg, "contexts", ctx_name, "context"))
        return cfail(x, "context \"%s\" not found (contexts: %s)", ctx_name, lua_tostring(L, -1));
    ctx = lua_gettop(L);
    c->context = k8s_strdup(ctx_name);
    if (c->context == NULL)
        oom(x);

    if (str_field(L, ctx, "cluster", &cluster_name) != 0 || cluster_name == NULL || *cluster_name == '\0')
        return cfail(x, "context \"%s\" names no cluster", ctx_name);
    if (str_field(L, ctx, "user", &user_name) != 0)
        return cfail(x, "context \"%s\": user must be a string", ctx_name);
    if (str_field(L, ctx, "namespace", &ns) != 0)
        return cfail(x, "context \"%s\": namespace must be a string", ctx_name);

    if (!find_named(L, cfg, "clusters", cluster_name, "cluster"))
        return cfail(x, "cluster \"%s\" of context \"%s\" not found (clusters: %s)", cluster_name, ctx_name,
                     lua_tostring(L, -1));
    cl = lua_gettop(L);
    if (user_name != NULL && *user_name != '\0') {
        if (!find_named(L, cfg, "users", user_name, "user"))
            return cfail(x, "user \"%s\" of context \"%s\" not found (users: %s)", user_name, ctx_name,
                         lua_tostring(L, -1));
        u = lua_gettop(L);
    }

    if ((r = read_cluster(x, cl, cluster_name)) != 0)
        return r;
    if (u != 0 && (r = read_user(x, u, cl, user_name)) != 0)
        return r;

    opt_ns = rollout_optfield_string(L, x->opts, "namespace", NULL);
    c->ns = k8s_strdup(opt_ns && *opt_ns ? opt_ns : ns && *ns ? ns : "default");
    if (c->ns == NULL)
        oom(x);
    return 0;
}

/* ---- in-cluster ---------------------------------------------------------- */

static int from_cluster(cfgctx *x)
{
    lua_State *L = x->L;
    k8s_client *c = x->c;
    const char *host = getenv("KUBERNETES_SERVICE_HOST");
    const char *port = getenv("KUBERNETES_SERVICE_PORT");
    const char *dir = getenv("ROLLOUT_K8S_SA_DIR");
    const char *opt_ns, *path;
    k8s_secret ns = {NULL, 0};
    char buf[PATH_MAX + 64];
    int r;

    lua_pushliteral(L, "in-cluster");
    x->what = lua_tostring(L, -1);
    x->dir[0] = '\0';
    c->in_cluster = 1;
    if (dir == NULL || *dir == '\0')
        dir = SA_DIR;
    c->source = k8s_strdup(dir);
    if (c->source == NULL)
        oom(x);
    if (host == NULL || *host == '\0' || port == NULL || *port == '\0')
        return cfail(x, "KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must be set");
    if (strspn(port, "0123456789") != strlen(port) || strlen(port) > 5)
        return cfail(x, "KUBERNETES_SERVICE_PORT \"%s\" is not a port number", port);
    if (strpbrk(host, "/ @?#[]\\") != NULL)
        return cfail(x, "KUBERNETES_SERVICE_HOST \"%s\" is not a host name", host);
    if (strchr(host, ':') != NULL) /* IPv6 */
        snprintf(buf, sizeof buf, "https://[%s]:%s", host, port);
    else
        snprintf(buf, sizeof buf, "https://%s:%s", host, port);
    c->server = k8s_strdup(buf);
    if (c->server == NULL)
        oom(x);

    lua_pushfstring(L, "%s/token", dir);
    path = lua_tostring(L, -1);
    if ((r = read_secret(x, "", "token", path, &c->token)) != 0)
        return r;
    trim_secret(&c->token);
    if (!k8s_token_ok(c->token.p, c->token.len))
        return cfail(x, "token %s is empty or holds more than one line", path);
    c->token_file = k8s_strdup(path);
    if (c->token_file == NULL)
        oom(x);
    c->token_read_at = rollout_now();

    lua_pushfstring(L, "%s/ca.crt", dir);
    path = lua_tostring(L, -1);
    if ((r = read_secret(x, "", "certificate authority", path, &c->ca)) != 0)
        return r;
    if (!k8s_pem_has(c->ca.p, c->ca.len, "CERTIFICATE"))
        return cfail(x, "certificate authority %s holds no PEM certificate", path);

    opt_ns = rollout_optfield_string(L, x->opts, "namespace", NULL);
    if (opt_ns != NULL && *opt_ns != '\0') {
        c->ns = k8s_strdup(opt_ns);
    } else {
        lua_pushfstring(L, "%s/namespace", dir);
        if (rc_read_file(L, lua_tostring(L, -1), 4096) == 1 &&
            k8s_secret_set(&ns, lua_tostring(L, -1), lua_rawlen(L, -1)) == 0) {
            trim_secret(&ns);
            c->ns = k8s_strdup(ns.len > 0 ? ns.p : "default");
            k8s_secret_free(&ns);
        } else {
            c->ns = k8s_strdup("default");
        }
    }
    if (c->ns == NULL)
        oom(x);
    return 0;
}

/* The kubeconfig to read when none is given (pushed), or NULL. */
static const char *default_kubeconfig(lua_State *L)
{
    const char *env = getenv("KUBECONFIG"), *home = getenv("HOME");
    if (env != NULL && *env != '\0') {
        const char *p = env;
        while (*p != '\0') {
            const char *end = strchr(p, ':');
            size_t n = end ? (size_t)(end - p) : strlen(p);
            if (n > 0) {
                lua_pushlstring(L, p, n);
                return lua_tostring(L, -1);
            }
            if (end == NULL)
                break;
            p = end + 1;
        }
    }
    if (home == NULL || *home == '\0')
        return NULL;
    lua_pushfstring(L, "%s/.kube/config", home);
    return lua_tostring(L, -1);
}

int k8s_configure(lua_State *L, int ci, int oi)
{
    cfgctx x;
    const char *path, *host = getenv("KUBERNETES_SERVICE_HOST");
    int top = lua_gettop(L), r;
    struct stat st;

    memset(&x, 0, sizeof x);
    x.L = L;
    x.ci = ci;
    x.opts = oi;
    x.c = lua_touserdata(L, ci);
    path = rollout_optfield_string(L, oi, "kubeconfig", NULL);
    if (rollout_optfield_boolean(L, oi, "in_cluster", 0)) {
        r = from_cluster(&x);
    } else if (path != NULL) {
        r = from_kubeconfig(&x, path);
    } else {
        path = default_kubeconfig(L);
        if ((path == NULL || stat(path, &st) != 0) && host != NULL && *host != '\0') {
            r = from_cluster(&x);
        } else if (path == NULL) {
            lua_pushnil(L);
            lua_pushliteral(L, "no kubeconfig: KUBECONFIG and HOME are not set, and KUBERNETES_SERVICE_HOST "
                               "is not set (not in a cluster)");
            lua_pushliteral(L, "config");
            r = 3;
        } else {
            r = from_kubeconfig(&x, path);
        }
    }
    if (r != 0) {
        /* keep only the three results */
        int n = lua_gettop(L);
        for (int i = 0; i < 3; i++)
            lua_copy(L, n - 2 + i, top + 1 + i);
        lua_settop(L, top + 3);
        return 3;
    }
    lua_settop(L, top);
    return 0;
}
