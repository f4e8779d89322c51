/* rollout.k8s credentials: token files and exec credential plugins
 * (client.authentication.k8s.io/v1 and v1beta1).
 *
 * Exec plugins run through rollout.proc's px_run (argv, never a shell;
 * stdin is /dev/null; stdout and stderr captured; killed after
 * exec_timeout) with the kubeconfig's env entries and KUBERNETES_EXEC_INFO
 * (an ExecCredential with spec.interactive = false, and spec.cluster when
 * provideClusterInfo is set). The answer must be an ExecCredential of the
 * same apiVersion with status.token, or status.clientCertificateData and
 * status.clientKeyData (PEM). The credential is cached per client until
 * shortly before status.expirationTimestamp (10% of its lifetime, at most
 * 30 s early; without a timestamp, until the server answers 401); a 401
 * runs the plugin again, once per request.
 *
 * Errors ("auth"): "exec plugin NAME failed (exit N): <first line of
 * stderr>", "exec plugin NAME timed out after Ns", "exec plugin NAME: ...".
 * The plugin's stdout is never quoted (it holds the credential). */
#include "k8s_internal.h"
#include "proc_internal.h"
#include "rollout/convert.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double wall_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Days since 1970-01-01 of a civil date (proleptic Gregorian). */
static long days_from_civil(long y, unsigned m, unsigned d)
{
    long era;
    unsigned yoe, doy, doe;
    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = (unsigned)(y - era * 400);
    doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (long)doe - 719468;
}

static int digits(const char *s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i]))
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

/* RFC 3339 "2026-11-26T21:16:44[.123]Z" or "+01:00" -> epoch seconds. */
static int parse_rfc3339(const char *s, double *out)
{
    int y, mo, d, h, mi, se, oh = 0, om = 0;
    double frac = 0, t;
    const char *p;
    if (strlen(s) < 20 || digits(s, 4, &y) || s[4] != '-' || digits(s + 5, 2, &mo) || s[7] != '-' ||
        digits(s + 8, 2, &d) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') || digits(s + 11, 2, &h) ||
        s[13] != ':' || digits(s + 14, 2, &mi) || s[16] != ':' || digits(s + 17, 2, &se))
        return -1;
    if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 60)
        return -1;
    p = s + 19;
    if (*p == '.') {
        double scale = 0.1;
        p++;
        if (!isdigit((unsigned char)*p))
            return -1;
        while (isdigit((unsigned char)*p)) {
            frac += (*p - '0') * scale;
            scale /= 10;
            p++;
        }
    }
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int sign = *p == '-' ? -1 : 1;
        if (digits(p + 1, 2, &oh) || p[3] != ':' || digits(p + 4, 2, &om))
            return -1;
        oh *= sign;
        om *= sign;
        p += 6;
    } else {
        return -1;
    }
    if (*p != '\0')
        return -1;
    t = (double)days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400.0 + h * 3600.0 + mi * 60.0 + se + frac;
    *out = t - oh * 3600.0 - om * 60.0;
    return 0;
}

/* ---- token files --------------------------------------------------------- */

static void reread_token_file(lua_State *L, k8s_client *c)
{
    int top = lua_gettop(L);
    if (rc_read_file(L, c->token_file, 1 << 20) == 1) {
        size_t len, a = 0;
        const char *p = lua_tolstring(L, -1, &len);
        while (len > 0 && isspace((unsigned char)p[len - 1]))
            len--;
        while (a < len && isspace((unsigned char)p[a]))
            a++;
        if (len > a && k8s_token_ok(p + a, len - a))
            k8s_secret_set(&c->token, p + a, len - a);
    }
    /* a file that went away keeps the last token (as client-go does) */
    c->token_read_at = rollout_now();
    lua_settop(L, top);
}

/* ---- exec plugins -------------------------------------------------------- */

/* nil, "exec plugin NAME<formatted>", "auth" */
static int auth_fail(lua_State *L, const char *name, const char *fmt, const char *detail)
{
    lua_pushnil(L);
    lua_pushfstring(L, "exec plugin %s", name);
    lua_pushfstring(L, fmt, detail);
    lua_concat(L, 2);
    lua_pushliteral(L, "auth");
    return 3;
}

/* Pushes the first non-empty line of s (trimmed, at most 300 bytes). */
static void push_first_line(lua_State *L, const char *s, size_t len)
{
    const char *end = s + len, *eol;
    while (s < end) {
        const char *a = s, *b;
        eol = memchr(s, '\n', (size_t)(end - s));
        b = eol ? eol : end;
        while (a < b && isspace((unsigned char)*a))
            a++;
        while (b > a && isspace((unsigned char)b[-1]))
            b--;
        if (b > a) {
            lua_pushlstring(L, a, (size_t)(b - a) > 300 ? 300 : (size_t)(b - a));
            return;
        }
        s = eol ? eol + 1 : end;
    }
    lua_pushliteral(L, "(nothing on stderr)");
}

/* Parses the ExecCredential at the top of the stack into the client. */
static int take_credential(lua_State *L, k8s_client *c, const char *name, const char *api)
{
    int cred = lua_gettop(L), st;
    const char *v;
    size_t tlen = 0, clen = 0, klen = 0;
    const char *token = NULL, *cert = NULL, *key = NULL, *exp = NULL;
    double expiry = 0, now = wall_now();

    if (!lua_istable(L, cred))
        return auth_fail(L, name, ": %s", "the output is not an ExecCredential object");
    lua_getfield(L, cred, "kind");
    v = lua_tostring(L, -1);
    if (lua_type(L, -1) != LUA_TSTRING || strcmp(v, "ExecCredential") != 0)
        return auth_fail(L, name, ": %s", "the output is not an ExecCredential (kind)");
    lua_getfield(L, cred, "apiVersion");
    v = lua_tostring(L, -1);
    if (lua_type(L, -1) != LUA_TSTRING || strcmp(v, api) != 0) {
        lua_pushfstring(L, ": the output's apiVersion is not %s", api);
        return auth_fail(L, name, "%s", lua_tostring(L, -1));
    }
    lua_getfield(L, cred, "status");
    if (!lua_istable(L, -1))
        return auth_fail(L, name, ": %s", "the ExecCredential has no status");
    st = lua_gettop(L);
    if (lua_getfield(L, st, "token") == LUA_TSTRING)
        token = lua_tolstring(L, -1, &tlen);
    if (lua_getfield(L, st, "clientCertificateData") == LUA_TSTRING)
        cert = lua_tolstring(L, -1, &clen);
    if (lua_getfield(L, st, "clientKeyData") == LUA_TSTRING)
        key = lua_tolstring(L, -1, &klen);
    if (lua_getfield(L, st, "expirationTimestamp") == LUA_TSTRING)
        exp = lua_tostring(L, -1);
    if (tlen == 0 && (clen == 0 || klen == 0))
        return auth_fail(L, name, ": %s",
                         "the ExecCredential has neither status.token nor status.clientCertificateData "
                         "and status.clientKeyData");
    if (tlen > 0 && !k8s_token_ok(token, tlen))
        return auth_fail(L, name, ": %s", "the ExecCredential's token holds a line break");
    if ((clen > 0) != (klen > 0))
        return auth_fail(L, name, ": %s",
                         "the ExecCredential has only one of clientCertificateData and clientKeyData");
    if (clen > 0 && (!k8s_pem_has(cert, clen, "CERTIFICATE") || !k8s_pem_has(key, klen, "PRIVATE KEY")))
        return auth_fail(L, name, ": %s", "the ExecCredential's certificate or key is not PEM");
    if (exp != NULL && parse_rfc3339(exp, &expiry) != 0)
        return auth_fail(L, name, ": %s", "the ExecCredential's expirationTimestamp is not RFC 3339");

    k8s_secret_free(&c->exec_token);
    k8s_secret_free(&c->exec_cert);
    k8s_secret_free(&c->exec_key);
    if ((tlen > 0 && k8s_secret_set(&c->exec_token, token, tlen) != 0) ||
        (clen > 0 && k8s_secret_set(&c->exec_cert, cert, clen) != 0) ||
        (klen > 0 && k8s_secret_set(&c->exec_key, key, klen) != 0))
        return luaL_error(L, "out of memory");
    c->cred_valid = 1;
    c->cred_expiry = expiry;
    c->cred_margin = 0;
    if (expiry > now) {
        c->cred_margin = (expiry - now) * 0.1;
        if (c->cred_margin > 30)
            c->cred_margin = 30;
    }
    lua_settop(L, cred - 1);
    return 0;
}

/* Runs the plugin described by uservalue.exec; on success the credential
 * is in the client. */
static int run_plugin(lua_State *L, int ci, k8s_client *c)
{
    int top = lua_gettop(L), spec, opts, n;
    const char *name, *api, *command;

    k8s_uservalue(L, ci);
    lua_getfield(L, -1, "exec");
    spec = lua_gettop(L);
    lua_getfield(L, spec, "name");
    name = lua_tostring(L, -1);
    lua_getfield(L, spec, "api_version");
    api = lua_tostring(L, -1);
    lua_getfield(L, spec, "command");
    command = lua_tostring(L, -1);

    lua_pushcfunction(L, px_run);
    lua_createtable(L, 0, 6);
    opts = lua_gettop(L);
    lua_getfield(L, spec, "args");
    lua_createtable(L, (int)lua_rawlen(L, -1) + 1, 0);
    lua_pushvalue(L, spec + 3);
    lua_rawseti(L, -2, 1);
    n = (int)lua_rawlen(L, -2);
    for (int i = 1; i <= n; i++) {
        lua_rawgeti(L, -2, i);
        lua_rawseti(L, -2, i + 1);
    }
    lua_setfield(L, opts, "argv");
    lua_pop(L, 1);
    lua_newtable(L); /* env: the kubeconfig's entries + KUBERNETES_EXEC_INFO */
    lua_getfield(L, spec, "env");
    lua_pushnil(L);
    while (lua_next(L, -2) != 0) {
        lua_pushvalue(L, -2);
        lua_insert(L, -2);
        lua_rawset(L, -5);
    }
    lua_pop(L, 1);
    lua_getfield(L, spec, "info");
    lua_setfield(L, -2, "KUBERNETES_EXEC_INFO");
    lua_setfield(L, opts, "env");
    lua_pushnumber(L, c->exec_timeout);
    lua_setfield(L, opts, "timeout");
    lua_pushinteger(L, 1 << 20);
    lua_setfield(L, opts, "max_output");
    lua_call(L, 1, 3); /* px_run raises "interrupted" on ^C */

    if (lua_isnil(L, -3)) {
        const char *code = lua_tostring(L, -1);
        if (code != NULL && strcmp(code, "timeout") == 0) {
            char secs[32];
            snprintf(secs, sizeof secs, "%g", c->exec_timeout);
            return auth_fail(L, name, " timed out after %ss (killed)", secs);
        }
        if (code != NULL && (strcmp(code, "ENOENT") == 0 || strcmp(code, "EACCES") == 0)) {
            const char *hint;
            lua_getfield(L, spec, "install_hint");
            hint = lua_tostring(L, -1);
            lua_pushfstring(L, ": cannot run %s: %s", command,
                            strcmp(code, "ENOENT") == 0 ? "executable not found" : "permission denied");
            if (hint != NULL) {
                lua_pushliteral(L, " (");
                push_first_line(L, hint, strlen(hint));
                lua_pushliteral(L, ")");
                lua_concat(L, 4);
            }
            return auth_fail(L, name, "%s", lua_tostring(L, -1));
        }
        lua_pushfstring(L, ": %s", lua_tostring(L, -2));
        return auth_fail(L, name, "%s", lua_tostring(L, -1));
    }
    lua_pop(L, 2);
    {
        int res = lua_gettop(L);
        size_t olen, elen;
        const char *out, *err;
        lua_getfield(L, res, "stdout");
        out = lua_tolstring(L, -1, &olen);
        lua_getfield(L, res, "stderr");
        err = lua_tolstring(L, -1, &elen);
        lua_getfield(L, res, "status");
        if (lua_isnil(L, -1)) { /* killed by a signal */
            lua_getfield(L, res, "signal");
            lua_pushfstring(L, " failed (signal %d): ", (int)lua_tointeger(L, -1));
            push_first_line(L, err ? err : "", elen);
            lua_concat(L, 2);
            return auth_fail(L, name, "%s", lua_tostring(L, -1));
        }
        if (lua_tointeger(L, -1) != 0) {
            lua_pushfstring(L, " failed (exit %d): ", (int)lua_tointeger(L, -1));
            push_first_line(L, err ? err : "", elen);
            lua_concat(L, 2);
            return auth_fail(L, name, "%s", lua_tostring(L, -1));
        }
        if (k8s_json_decode(L, out ? out : "", olen) != 1)
            return auth_fail(L, name, ": %s", "the output is not JSON (an ExecCredential was expected)");
        if ((n = take_credential(L, c, name, api)) != 0)
            return n;
    }
    lua_settop(L, top);
    return 0;
}

int k8s_auth_prepare(lua_State *L, int ci)
{
    k8s_client *c = lua_touserdata(L, ci);
    if (c->token_file != NULL && rollout_now() - c->token_read_at >= K8S_TOKEN_FILE_TTL)
        reread_token_file(L, c);
    if (c->has_exec) {
        int fresh = c->cred_valid;
        if (fresh && c->cred_expiry > 0 && wall_now() + c->cred_margin >= c->cred_expiry)
            fresh = 0;
        if (!fresh) {
            int r = run_plugin(L, ci, c);
            if (r != 0)
                return r;
        }
    }
    return 0;
}

int k8s_auth_invalidate(k8s_client *c)
{
    int any = 0;
    if (c->has_exec) {
        c->cred_valid = 0;
        any = 1;
    }
    if (c->token_file != NULL) {
        c->token_read_at = -1e9; /* re-read before the next request */
        any = 1;
    }
    return any;
}

int k8s_auth_apply(k8s_client *c, CURL *e, struct curl_slist **hdrs)
{
    const k8s_secret *token = NULL, *cert = NULL, *key = NULL;
    struct curl_slist *l;
    if (c->has_exec && c->cred_valid) {
        if (c->exec_token.len > 0)
            token = &c->exec_token;
        if (c->exec_cert.len > 0) {
            cert = &c->exec_cert;
            key = &c->exec_key;
        }
    }
    if (token == NULL && c->token.len > 0)
        token = &c->token;
    if (cert == NULL && c->cert.len > 0) {
        cert = &c->cert;
        key = &c->key;
    }
    if (token != NULL) {
        size_t n = token->len + 32;
        char *h = malloc(n);
        if (h == NULL)
            return -1;
        snprintf(h, n, "Authorization: Bearer %s", token->p);
        l = curl_slist_append(*hdrs, h);
        {
            k8s_secret tmp = {h, strlen(h)};
            k8s_secret_free(&tmp);
        }
        if (l == NULL)
            return -1;
        *hdrs = l;
    }
    if (cert != NULL) {
        struct curl_blob cb = {cert->p, cert->len, CURL_BLOB_COPY};
        struct curl_blob kb = {key->p, key->len, CURL_BLOB_COPY};
        curl_easy_setopt(e, CURLOPT_SSLCERTTYPE, "PEM");
        curl_easy_setopt(e, CURLOPT_SSLKEYTYPE, "PEM");
        if (curl_easy_setopt(e, CURLOPT_SSLCERT_BLOB, &cb) != CURLE_OK ||
            curl_easy_setopt(e, CURLOPT_SSLKEY_BLOB, &kb) != CURLE_OK)
            return -1;
    }
    return 0;
}
