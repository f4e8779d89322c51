/* rollout.helm: Helm releases through the helm CLI. helm runs as an argv
 * (never a shell) through rollout.proc.run's runner (px_run), with a
 * deadline; its JSON output (-o json) is decoded with rollout.json.
 *
 *   helm.version([opts]) -> "v3.21.4"
 *   helm.install{release=, chart=, namespace=, values={...}, wait=true,
 *                timeout=300, create_namespace=true, atomic=false,
 *                reuse_values=false, kubeconfig=, kube_context=, ...}
 *     -> the release (`helm upgrade --install ... -o json`, decoded)
 *   helm.upgrade = helm.install
 *   helm.uninstall{release=, namespace=, wait=false, timeout=300, ...} -> true
 *   helm.list{namespace= | all_namespaces=true, filter=, all=false, ...}
 *     -> array of {name, namespace, revision, updated, status, chart,
 *        app_version}
 *   helm.status{release=, namespace=, ...} -> the release
 *   helm.get_values{release=, namespace=, all=false, ...} -> values table
 *     ({} when the release has no user-supplied values)
 *
 * Options every function takes: helm= (the binary; default $ROLLOUT_HELM,
 * else "helm" on PATH), env= (extra environment for helm, as proc.run's:
 * NAME = value, or false to remove), timeout= (seconds), margin= (seconds
 * helm may take beyond timeout before it is killed), kubeconfig=,
 * kube_context=. install and uninstall pass timeout to helm (--timeout, for
 * --wait and hooks; default 300) and kill helm after timeout + margin
 * (default margin 30); the other commands kill it after timeout (default 60)
 * + margin (default 0).
 *
 * Errors: misuse raises — wrong types, unknown options, a release name that
 * is not helm's DNS-1123 form of at most 53 characters, a namespace that is
 * not a DNS-1123 label; all checked before anything runs. Environment
 * failures return nil, message, code:
 *   "not_installed"  helm is not found (or not executable)
 *   "timeout"        helm did not finish in time: its process group was
 *                    stopped (SIGTERM, then SIGKILL) and reaped
 *   "notfound"       uninstall/status/get_values of a missing release
 *                    (helm's "release: not found")
 *   "failed"         helm exited non-zero (the message is its "Error: ..."
 *                    text), its output is not the JSON expected, the chart
 *                    path does not exist or is no chart
 *   ENOSPC, EACCES.. the values file could not be written
 * ^C stops helm and raises "interrupted".
 *
 * Values (they may hold secrets) never reach the command line: they are
 * written as JSON (which is YAML) to a file of mode 0600 in a private
 * directory (mode 0700, under $TMPDIR or /tmp) given with --values, and
 * both are removed as soon as helm has finished, whether the call returns,
 * fails or raises (only a SIGKILL of rollout itself can leave them). values
 * must be a table of named values (a list raises). install passes
 * --reset-values (or --reuse-values with reuse_values = true), so an upgrade
 * renders exactly the values given, not the previous release's.
 *
 * The command line: string flags are written --flag=value (a value can
 * never be read as a flag), the chart path is made absolute, names are
 * validated. `--atomic` is what helm v3 calls it (helm v4 still accepts it,
 * deprecated, for --rollback-on-failure). Some helm versions leave `chart`
 * out of `helm status -o json`: read the chart from install's answer.
 */
#define _GNU_SOURCE
#include "proc_internal.h"
#include "rollout/convert.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define HELM_TMP_MT "rollout.helm.tmp"
#define INSTALL_URL "https://helm.sh/docs/intro/install/"
#define WRITE_TIMEOUT 300.0  /* install, uninstall */
#define QUERY_TIMEOUT 60.0   /* version, list, status, get_values */
#define WRITE_MARGIN 30.0
#define MAX_SECONDS (7 * 86400.0)
#define RELEASE_MAX 53
#define LABEL_MAX 63
#define MSG_MAX 4096
#define JSON_MAX ((lua_Integer)256 << 20)

/* Upvalues of every function: rollout.json's encode and decode. */
#define UV_ENCODE lua_upvalueindex(1)
#define UV_DECODE lua_upvalueindex(2)

/* ---- the private values file ----------------------------------------- */

typedef struct htmp {
    char dir[PATH_MAX];
    char file[PATH_MAX];
    int have_dir, have_file;
} htmp;

/* Idempotent: removes the file, then the directory. */
static void htmp_close(htmp *t)
{
    if (t->have_file) {
        unlink(t->file);
        t->have_file = 0;
    }
    if (t->have_dir) {
        rmdir(t->dir);
        t->have_dir = 0;
    }
}

static int htmp_gc(lua_State *L)
{
    htmp_close(luaL_checkudata(L, 1, HELM_TMP_MT));
    return 0;
}

/* Pushes an empty holder whose metatable (__gc, __close) is already set. */
static htmp *htmp_new(lua_State *L)
{
    htmp *t = lua_newuserdatauv(L, sizeof *t, 0);
    memset(t, 0, sizeof *t);
    if (luaL_newmetatable(L, HELM_TMP_MT)) {
        lua_pushcfunction(L, htmp_gc);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, htmp_gc);
        lua_setfield(L, -2, "__close");
    }
    lua_setmetatable(L, -2);
    return t;
}

/* Creates the directory and writes the file. Returns 0 or an errno (then
 * nothing is left behind). */
static int htmp_write(htmp *t, const char *data, size_t len)
{
    const char *base = getenv("TMPDIR");
    int fd, err;
    size_t off = 0;
    if (base == NULL || *base == '\0')
        base = "/tmp";
    if (snprintf(t->dir, sizeof t->dir, "%s/rollout-helm-XXXXXX", base) >= (int)sizeof t->dir)
        return ENAMETOOLONG;
    if (mkdtemp(t->dir) == NULL) /* mode 0700 */
        return errno;
    t->have_dir = 1;
    if (snprintf(t->file, sizeof t->file, "%s/values.json", t->dir) >= (int)sizeof t->file) {
        htmp_close(t);
        return ENAMETOOLONG;
    }
    fd = open(t->file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        err = errno;
        htmp_close(t);
        return err;
    }
    t->have_file = 1;
    while (off < len) {
        ssize_t n = write(fd, data + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            err = n < 0 ? errno : EIO;
            close(fd);
            htmp_close(t);
            return err;
        }
        off += (size_t)n;
    }
    if (close(fd) != 0) {
        err = errno;
        htmp_close(t);
        return err;
    }
    return 0;
}

/* ---- a call ------------------------------------------------------------ */

enum { BIN_DEFAULT, BIN_OPTION, BIN_ENV };

typedef struct hcall {
    const char *fn;      /* "install": messages say "helm.install" */
    const char *what;    /* "helm upgrade web-v1": messages about the run */
    int opts;            /* index of the options table, 0 when none */
    int argv;            /* index of the argv table being built */
    lua_Integer argc;
    double timeout, margin;
    const char *bin;
    int bin_from;
    const char *kubeconfig, *kube_context; /* or NULL */
    int notfound_ok;     /* "release: not found" means "notfound" */
} hcall;

static const char *const common_keys[] = {"helm", "env", "timeout", "margin", "kubeconfig", "kube_context", NULL};

/* Pushes opts[field], read raw: options come from the table itself, as
 * check_keys sees them (an __index could hand out unanchored strings). */
static int rawopt(lua_State *L, hcall *h, const char *field)
{
    if (h->opts == 0) {
        lua_pushnil(L);
        return LUA_TNIL;
    }
    lua_pushstring(L, field);
    return lua_rawget(L, h->opts);
}

static int in_list(const char *k, const char *const *list)
{
    for (; list != NULL && *list != NULL; list++)
        if (strcmp(k, *list) == 0)
            return 1;
    return 0;
}

/* Raises on a key that is neither common nor in `extra`. */
static void check_keys(lua_State *L, int idx, const char *fn, const char *const *extra)
{
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        const char *k;
        if (lua_type(L, -2) != LUA_TSTRING)
            luaL_error(L, "helm.%s: option keys must be strings (got %s)", fn, luaL_typename(L, -2));
        k = lua_tostring(L, -2);
        if (!in_list(k, common_keys) && !in_list(k, extra))
            luaL_error(L, "helm.%s: unknown option '%s'", fn, k);
        lua_pop(L, 1);
    }
}

static const char *opt_string(lua_State *L, hcall *h, const char *field, int required)
{
    const char *v = NULL;
    if (h->opts != 0) {
        rawopt(L, h, field);
        if (lua_type(L, -1) == LUA_TSTRING) {
            v = lua_tostring(L, -1); /* anchored by the options table */
            if (*v == '\0')
                luaL_error(L, "helm.%s: option '%s' must not be empty", h->fn, field);
            if (strlen(v) != lua_rawlen(L, -1))
                luaL_error(L, "helm.%s: option '%s' contains a NUL byte", h->fn, field);
        } else if (!lua_isnil(L, -1)) {
            luaL_error(L, "helm.%s: option '%s' must be a string (got %s)", h->fn, field, luaL_typename(L, -1));
        }
        lua_pop(L, 1);
    }
    if (v == NULL && required)
        luaL_error(L, "helm.%s: option '%s' is required", h->fn, field);
    return v;
}

static int opt_bool(lua_State *L, hcall *h, const char *field, int def)
{
    int v = def;
    if (h->opts == 0)
        return def;
    rawopt(L, h, field);
    if (lua_type(L, -1) == LUA_TBOOLEAN)
        v = lua_toboolean(L, -1);
    else if (!lua_isnil(L, -1))
        luaL_error(L, "helm.%s: option '%s' must be a boolean (got %s)", h->fn, field, luaL_typename(L, -1));
    lua_pop(L, 1);
    return v;
}

/* timeout (> 0) and margin (>= 0): seconds, at most a week */
static double opt_seconds(lua_State *L, hcall *h, const char *field, double def, int positive)
{
    double v = def;
    if (h->opts == 0)
        return def;
    rawopt(L, h, field);
    if (lua_type(L, -1) == LUA_TNUMBER) {
        v = lua_tonumber(L, -1);
        if (!(positive ? v > 0 : v >= 0) || !(v <= MAX_SECONDS))
            luaL_error(L, "helm.%s: option '%s' must be a number of seconds %s 0 and at most %d", h->fn, field,
                       positive ? "above" : "from", (int)MAX_SECONDS);
    } else if (!lua_isnil(L, -1)) {
        luaL_error(L, "helm.%s: option '%s' must be a number of seconds (got %s)", h->fn, field,
                   luaL_typename(L, -1));
    }
    lua_pop(L, 1);
    return v;
}

/* helm's release names (chartutil.ValidateReleaseName): DNS-1123 labels
 * joined by dots, at most 53 characters. Namespaces: one label, <= 63. */
static int valid_dns(const char *s, size_t max, int dots)
{
    size_t len = strlen(s), i;
    if (len == 0 || len > max)
        return 0;
    for (i = 0; i < len; i++) {
        char c = s[i];
        int alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        if (alnum)
            continue;
        if (c == '-' && i > 0 && i + 1 < len && s[i - 1] != '.' && s[i + 1] != '.')
            continue;
        if (c == '.' && dots && i > 0 && i + 1 < len && s[i - 1] != '.' && s[i - 1] != '-' && s[i + 1] != '-')
            continue;
        return 0;
    }
    return 1;
}

static const char *opt_release(lua_State *L, hcall *h)
{
    const char *r;
    rawopt(L, h, "release");
    if (lua_type(L, -1) != LUA_TSTRING)
        luaL_error(L, "helm.%s: option 'release' must be a string (got %s)", h->fn, luaL_typename(L, -1));
    r = lua_tostring(L, -1);
    if (strlen(r) != lua_rawlen(L, -1) || !valid_dns(r, RELEASE_MAX, 1))
        luaL_error(L, "helm.%s: invalid release name \"%s\": it must be at most %d characters of a-z, 0-9, '-' "
                      "and '.', start and end with a letter or digit (DNS-1123)",
                   h->fn, r, RELEASE_MAX);
    lua_pop(L, 1); /* anchored by the options table */
    return r;
}

static const char *opt_namespace(lua_State *L, hcall *h)
{
    const char *ns = NULL;
    if (h->opts == 0)
        return NULL;
    rawopt(L, h, "namespace");
    if (lua_type(L, -1) == LUA_TSTRING) {
        ns = lua_tostring(L, -1);
        if (strlen(ns) != lua_rawlen(L, -1) || !valid_dns(ns, LABEL_MAX, 0))
            luaL_error(L, "helm.%s: invalid namespace \"%s\": it must be at most %d characters of a-z, 0-9 and '-', "
                          "start and end with a letter or digit (DNS-1123 label)",
                       h->fn, ns, LABEL_MAX);
    } else if (!lua_isnil(L, -1)) {
        luaL_error(L, "helm.%s: option 'namespace' must be a string (got %s)", h->fn, luaL_typename(L, -1));
    }
    lua_pop(L, 1);
    return ns;
}

static void arg(lua_State *L, hcall *h, const char *s)
{
    lua_pushstring(L, s);
    lua_rawseti(L, h->argv, ++h->argc);
}

static void argf(lua_State *L, hcall *h, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    lua_pushvfstring(L, fmt, ap);
    va_end(ap);
    lua_rawseti(L, h->argv, ++h->argc);
}

/* Reads the options every function shares and starts argv with the binary.
 * opts = 0 when the function takes no table. */
static void begin(lua_State *L, hcall *h, int opts, const char *fn, double timeout, double margin)
{
    memset(h, 0, sizeof *h);
    h->fn = fn;
    h->opts = opts;
    h->bin = opt_string(L, h, "helm", 0);
    h->bin_from = BIN_OPTION;
    if (h->bin == NULL) {
        const char *env = getenv("ROLLOUT_HELM");
        h->bin = env;
        h->bin_from = BIN_ENV;
        if (env == NULL || *env == '\0') {
            h->bin = "helm";
            h->bin_from = BIN_DEFAULT;
        }
    }
    rawopt(L, h, "env");
    if (!lua_isnil(L, -1) && !lua_istable(L, -1))
        luaL_error(L, "helm.%s: option 'env' must be a table (got %s)", fn, luaL_typename(L, -1));
    lua_pop(L, 1);
    h->timeout = opt_seconds(L, h, "timeout", timeout, 1);
    h->margin = opt_seconds(L, h, "margin", margin, 0);
    h->kubeconfig = opt_string(L, h, "kubeconfig", 0);
    h->kube_context = opt_string(L, h, "kube_context", 0);
    lua_newtable(L);
    h->argv = lua_gettop(L);
    lua_pushstring(L, h->bin); /* a copy: getenv's string may change */
    lua_rawseti(L, h->argv, ++h->argc);
    lua_rawgeti(L, h->argv, 1);
    h->bin = lua_tostring(L, -1); /* anchored by argv */
    lua_pop(L, 1);
}

/* --kubeconfig / --kube-context, in the --flag=value form so that a value
 * can never be taken for a flag. */
static void kube_flags(lua_State *L, hcall *h)
{
    if (h->kubeconfig != NULL)
        argf(L, h, "--kubeconfig=%s", h->kubeconfig);
    if (h->kube_context != NULL)
        argf(L, h, "--kube-context=%s", h->kube_context);
}

/* Go duration for --timeout: whole seconds, else milliseconds. */
static void timeout_flag(lua_State *L, hcall *h)
{
    lua_Integer ms = (lua_Integer)ceil(h->timeout * 1000.0);
    if (ms % 1000 == 0)
        argf(L, h, "--timeout=%Is", ms / 1000);
    else
        argf(L, h, "--timeout=%Ims", ms);
}

static void describe(lua_State *L, hcall *h, const char *sub, const char *release)
{
    if (release != NULL)
        lua_pushfstring(L, "helm %s %s", sub, release);
    else
        lua_pushfstring(L, "helm %s", sub);
    h->what = lua_tostring(L, -1); /* stays on the stack */
}

/* ---- running helm and reading its answer ------------------------------ */

static int is_blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r')
            return 0;
    return 1;
}

/* Appends to out (MSG_MAX bytes), cutting with "..." once full. */
static void add_bytes(char *out, size_t *used, const char *s, size_t n)
{
    size_t room;
    if (*used > MSG_MAX - 4)
        return; /* already cut */
    room = MSG_MAX - 4 - *used;
    if (n > room) {
        memcpy(out + *used, s, room);
        memcpy(out + *used + room, "...", 3);
        *used += room + 3;
        return;
    }
    memcpy(out + *used, s, n);
    *used += n;
}

/* The meaningful part of helm's stderr into out (NUL-terminated): from the
 * first "Error: " line (without that prefix) to the first blank line,
 * leaving out cobra's "Usage:" and "Run 'helm --help'" lines; without such
 * a line, the end of stderr. Warnings before the error are dropped. */
static void error_text(const char *err, size_t len, char *out)
{
    size_t used = 0, pos = 0;
    const char *first = NULL;
    while (pos < len) {
        const char *line = err + pos;
        const char *nl = memchr(line, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - line) : len - pos;
        if (first == NULL && n >= 7 && memcmp(line, "Error: ", 7) == 0) {
            first = line;
            add_bytes(out, &used, line + 7, n - 7);
        } else if (first != NULL) {
            if (is_blank(line, n))
                break;
            if (!(n >= 6 && memcmp(line, "Usage:", 6) == 0) && !(n >= 5 && memcmp(line, "Run '", 5) == 0)) {
                add_bytes(out, &used, "\n", 1);
                add_bytes(out, &used, line, n);
            }
        }
        pos += n + 1;
    }
    if (first == NULL) {
        while (len > 0 && (err[len - 1] == '\n' || err[len - 1] == ' ' || err[len - 1] == '\r'))
            len--;
        if (len > MSG_MAX - 8) {
            add_bytes(out, &used, "...", 3);
            err += len - (MSG_MAX - 8);
            len = MSG_MAX - 8;
        }
        while (len > 0 && (*err == '\n' || *err == ' '))
            err++, len--;
        add_bytes(out, &used, err, len);
    }
    while (used > 0 && (out[used - 1] == '\n' || out[used - 1] == ' ' || out[used - 1] == '\r'))
        used--;
    out[used] = '\0';
}

static void fmt_seconds(char *out, size_t n, double s)
{
    snprintf(out, n, "%.3f", s);
    if (strchr(out, '.') != NULL) {
        char *end = out + strlen(out) - 1;
        while (*end == '0')
            *end-- = '\0';
        if (*end == '.')
            *end = '\0';
    }
}

/* The run failed before helm could answer (px_run's nil, msg, code at
 * base .. base+2). Pushes nil, message, code. */
static int run_failure(lua_State *L, hcall *h, int base)
{
    const char *code = lua_tostring(L, base + 2);
    const char *msg = lua_tostring(L, base + 1);
    if (code != NULL && strcmp(code, "timeout") == 0) {
        char t[32], m[32], all[32];
        fmt_seconds(t, sizeof t, h->timeout);
        fmt_seconds(m, sizeof m, h->margin);
        fmt_seconds(all, sizeof all, h->timeout + h->margin);
        return rollout_fail(L, "timeout", "%s did not finish within %ss (timeout %ss + margin %ss): helm was stopped",
                            h->what, all, t, m);
    }
    if (code != NULL && (strcmp(code, "ENOENT") == 0 || strcmp(code, "EACCES") == 0 ||
                         strcmp(code, "ENOTDIR") == 0 || strcmp(code, "ENOEXEC") == 0)) {
        const char *from = h->bin_from == BIN_OPTION ? "opts.helm" : "ROLLOUT_HELM";
        if (h->bin_from == BIN_DEFAULT)
            return rollout_fail(L, "not_installed", "helm is not installed (looked for it on PATH): see " INSTALL_URL);
        if (strchr(h->bin, '/') == NULL)
            return rollout_fail(L, "not_installed",
                                "helm is not installed (looked for '%s' on PATH, from %s): see " INSTALL_URL, h->bin,
                                from);
        return rollout_fail(L, "not_installed", "helm is not installed at '%s' (from %s): %s; see " INSTALL_URL,
                            h->bin, from, msg ? msg : code);
    }
    return rollout_fail(L, "failed", "%s: %s", h->what, msg ? msg : "cannot run helm");
}

/* Runs argv. On success (exit 0) leaves helm's stdout on the stack top and
 * returns 0; else leaves nil, message, code and returns 3. `tmp` (or NULL)
 * is released as soon as helm has finished, and before a raise (^C). */
static int run(lua_State *L, hcall *h, htmp *tmp)
{
    int status, base;
    lua_createtable(L, 0, 3);
    lua_pushvalue(L, h->argv);
    lua_setfield(L, -2, "argv");
    rawopt(L, h, "env");
    lua_setfield(L, -2, "env");
    lua_pushnumber(L, h->timeout + h->margin);
    lua_setfield(L, -2, "timeout");
    lua_pushcfunction(L, px_run);
    lua_insert(L, -2);
    status = lua_pcall(L, 1, 3, 0);
    if (tmp != NULL)
        htmp_close(tmp);
    if (status != LUA_OK)
        return lua_error(L);
    base = lua_gettop(L) - 2;
    if (!lua_istable(L, base))
        return run_failure(L, h, base);

    lua_getfield(L, base, "status");
    if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) != 0) {
        char text[MSG_MAX];
        size_t elen;
        const char *err;
        int code = lua_isinteger(L, -1) ? (int)lua_tointeger(L, -1) : -1;
        lua_getfield(L, base, "stderr");
        err = lua_tolstring(L, -1, &elen);
        error_text(err ? err : "", err ? elen : 0, text);
        if (code < 0) {
            lua_getfield(L, base, "signal");
            return rollout_fail(L, "failed", "%s: helm was killed by signal %d%s%s", h->what,
                                (int)lua_tointeger(L, -1), *text ? ": " : "", text);
        }
        if (*text == '\0')
            return rollout_fail(L, "failed", "%s: helm exited with status %d and printed no error", h->what, code);
        return rollout_fail(L, h->notfound_ok && strstr(text, "release: not found") ? "notfound" : "failed",
                            "%s: %s", h->what, text);
    }
    lua_pop(L, 1);
    lua_getfield(L, base, "stdout");
    lua_replace(L, base);
    lua_settop(L, base);
    return 0;
}

/* Replaces the stdout on top with its decoded JSON; or returns 3 with nil,
 * message, "failed". */
static int decode(lua_State *L, hcall *h)
{
    int out = lua_gettop(L);
    size_t len;
    const char *text = lua_tolstring(L, out, &len);
    lua_pushvalue(L, UV_DECODE);
    lua_pushvalue(L, out);
    lua_createtable(L, 0, 2);
    lua_pushinteger(L, JSON_MAX);
    lua_setfield(L, -2, "max_size");
    lua_pushfstring(L, "%s output", h->what);
    lua_setfield(L, -2, "name");
    lua_call(L, 2, 2);
    if (lua_isnil(L, -2)) {
        char head[121];
        size_t n = len < 120 ? len : 120;
        memcpy(head, text, n);
        head[n] = '\0';
        return rollout_fail(L, "failed", "%s: its output is not the JSON expected (%s); it began: '%s'", h->what,
                            lua_tostring(L, -1), head);
    }
    lua_pop(L, 1);
    lua_replace(L, out);
    return 1;
}

/* ---- the functions ----------------------------------------------------- */

static int h_version(lua_State *L)
{
    static const char *const keys[] = {NULL};
    hcall h;
    const char *out, *end;
    size_t len;
    int r;
    if (lua_isnoneornil(L, 1)) {
        lua_settop(L, 0);
        begin(L, &h, 0, "version", QUERY_TIMEOUT, 0);
    } else {
        luaL_checktype(L, 1, LUA_TTABLE);
        lua_settop(L, 1);
        check_keys(L, 1, "version", keys);
        begin(L, &h, 1, "version", QUERY_TIMEOUT, 0);
    }
    arg(L, &h, "version");
    arg(L, &h, "--short");
    describe(L, &h, "version", NULL);
    if ((r = run(L, &h, NULL)) != 0)
        return r;
    out = lua_tolstring(L, -1, &len);
    while (len > 0 && (*out == ' ' || *out == '\n'))
        out++, len--;
    end = out;
    while (end < out + len && *end != '+' && *end != '\n' && *end != ' ' && *end != '\r')
        end++;
    if (len < 2 || out[0] != 'v' || out[1] < '0' || out[1] > '9') {
        lua_pushlstring(L, out, len < 120 ? len : 120);
        return rollout_fail(L, "failed", "helm version: unexpected output '%s'", lua_tostring(L, -1));
    }
    lua_pushlstring(L, out, (size_t)(end - out));
    return 1;
}

/* The chart path: must exist; a directory must hold Chart.yaml. Pushes its
 * absolute path, or returns 3 with nil, message, "failed". */
static int chart_path(lua_State *L, hcall *h, const char *chart)
{
    char real[PATH_MAX], cy[PATH_MAX + 16];
    struct stat st;
    if (realpath(chart, real) == NULL || stat(real, &st) != 0)
        return rollout_fail(L, "failed", "helm.%s: chart '%s' not found: %s", h->fn, chart, strerror(errno));
    if (S_ISDIR(st.st_mode)) {
        snprintf(cy, sizeof cy, "%s/Chart.yaml", real);
        if (stat(cy, &st) != 0)
            return rollout_fail(L, "failed", "helm.%s: '%s' is not a chart: it has no Chart.yaml", h->fn, chart);
    } else if (!S_ISREG(st.st_mode)) {
        return rollout_fail(L, "failed", "helm.%s: chart '%s' is neither a directory nor a packaged chart", h->fn,
                            chart);
    }
    lua_pushstring(L, real);
    return 0;
}

/* helm.install{...} / helm.upgrade{...}: helm upgrade --install */
static int h_install(lua_State *L)
{
    static const char *const keys[] = {"release", "chart", "namespace", "values", "wait", "create_namespace",
                                       "atomic", "reuse_values", NULL};
    hcall h;
    htmp *tmp = NULL;
    const char *release, *ns, *chart, *values = NULL;
    size_t vlen = 0;
    int wait, create_ns, atomic, reuse, r;

    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    check_keys(L, 1, "install", keys);
    begin(L, &h, 1, "install", WRITE_TIMEOUT, WRITE_MARGIN);
    release = opt_release(L, &h);
    ns = opt_namespace(L, &h);
    chart = opt_string(L, &h, "chart", 1);
    wait = opt_bool(L, &h, "wait", 1);
    create_ns = opt_bool(L, &h, "create_namespace", 1);
    atomic = opt_bool(L, &h, "atomic", 0);
    reuse = opt_bool(L, &h, "reuse_values", 0);
    rawopt(L, &h, "values");
    if (lua_istable(L, -1) && (lua_rawlen(L, -1) > 0 || rc_marker(L, -1) == RC_ARRAY)) {
        return luaL_error(L, "helm.install: option 'values' must be a table of named values, not a list");
    } else if (lua_istable(L, -1)) {
        lua_pushvalue(L, UV_ENCODE);
        lua_insert(L, -2);
        lua_call(L, 1, 1); /* raises on what JSON cannot hold: misuse */
        values = lua_tolstring(L, -1, &vlen); /* stays on the stack */
    } else if (!lua_isnil(L, -1)) {
        return luaL_error(L, "helm.install: option 'values' must be a table (got %s)", luaL_typename(L, -1));
    }
    describe(L, &h, "upgrade", release);

    if ((r = chart_path(L, &h, chart)) != 0)
        return r;
    arg(L, &h, "upgrade");
    arg(L, &h, "--install");
    arg(L, &h, release);
    arg(L, &h, lua_tostring(L, -1));
    if (ns != NULL)
        argf(L, &h, "--namespace=%s", ns);
    if (create_ns)
        arg(L, &h, "--create-namespace");
    arg(L, &h, reuse ? "--reuse-values" : "--reset-values");
    if (wait)
        arg(L, &h, "--wait");
    if (atomic)
        arg(L, &h, "--atomic");
    timeout_flag(L, &h);
    arg(L, &h, "--output=json");
    kube_flags(L, &h);
    if (values != NULL) {
        int err;
        tmp = htmp_new(L);
        if ((err = htmp_write(tmp, values, vlen)) != 0)
            return rollout_fail_errno(L, err, "helm.install: cannot write the values file in %s",
                                 getenv("TMPDIR") && *getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
        argf(L, &h, "--values=%s", tmp->file);
    }
    if ((r = run(L, &h, tmp)) != 0)
        return r;
    return decode(L, &h);
}

/* helm.uninstall{release=, namespace=, wait=false, timeout=300, ...} -> true */
static int h_uninstall(lua_State *L)
{
    static const char *const keys[] = {"release", "namespace", "wait", NULL};
    hcall h;
    const char *release, *ns;
    int wait, r;
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    check_keys(L, 1, "uninstall", keys);
    begin(L, &h, 1, "uninstall", WRITE_TIMEOUT, WRITE_MARGIN);
    release = opt_release(L, &h);
    ns = opt_namespace(L, &h);
    wait = opt_bool(L, &h, "wait", 0);
    describe(L, &h, "uninstall", release);
    h.notfound_ok = 1;
    arg(L, &h, "uninstall");
    arg(L, &h, release);
    if (ns != NULL)
        argf(L, &h, "--namespace=%s", ns);
    if (wait)
        arg(L, &h, "--wait");
    timeout_flag(L, &h);
    kube_flags(L, &h);
    if ((r = run(L, &h, NULL)) != 0)
        return r;
    lua_pushboolean(L, 1);
    return 1;
}

/* helm.list{namespace= | all_namespaces=true, filter=, all=false, ...} */
static int h_list(lua_State *L)
{
    static const char *const keys[] = {"namespace", "all_namespaces", "filter", "all", NULL};
    hcall h;
    const char *ns, *filter;
    int all_ns, all, r;
    if (lua_isnoneornil(L, 1)) {
        lua_settop(L, 0);
        lua_newtable(L);
    }
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    check_keys(L, 1, "list", keys);
    begin(L, &h, 1, "list", QUERY_TIMEOUT, 0);
    ns = opt_namespace(L, &h);
    all_ns = opt_bool(L, &h, "all_namespaces", 0);
    filter = opt_string(L, &h, "filter", 0);
    all = opt_bool(L, &h, "all", 0);
    if (ns != NULL && all_ns)
        return luaL_error(L, "helm.list: options 'namespace' and 'all_namespaces' exclude each other");
    describe(L, &h, "list", NULL);
    arg(L, &h, "list");
    arg(L, &h, "--output=json");
    if (ns != NULL)
        argf(L, &h, "--namespace=%s", ns);
    if (all_ns)
        arg(L, &h, "--all-namespaces");
    if (filter != NULL)
        argf(L, &h, "--filter=%s", filter);
    if (all)
        arg(L, &h, "--all");
    kube_flags(L, &h);
    if ((r = run(L, &h, NULL)) != 0)
        return r;
    return decode(L, &h);
}

/* helm.status{release=, namespace=, ...} -> the release */
static int h_status(lua_State *L)
{
    static const char *const keys[] = {"release", "namespace", NULL};
    hcall h;
    const char *release, *ns;
    int r;
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    check_keys(L, 1, "status", keys);
    begin(L, &h, 1, "status", QUERY_TIMEOUT, 0);
    release = opt_release(L, &h);
    ns = opt_namespace(L, &h);
    describe(L, &h, "status", release);
    h.notfound_ok = 1;
    arg(L, &h, "status");
    arg(L, &h, release);
    arg(L, &h, "--output=json");
    if (ns != NULL)
        argf(L, &h, "--namespace=%s", ns);
    kube_flags(L, &h);
    if ((r = run(L, &h, NULL)) != 0)
        return r;
    return decode(L, &h);
}

/* helm.get_values{release=, namespace=, all=false, ...} -> table */
static int h_get_values(lua_State *L)
{
    static const char *const keys[] = {"release", "namespace", "all", NULL};
    hcall h;
    const char *release, *ns;
    int all, r;
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    check_keys(L, 1, "get_values", keys);
    begin(L, &h, 1, "get_values", QUERY_TIMEOUT, 0);
    release = opt_release(L, &h);
    ns = opt_namespace(L, &h);
    all = opt_bool(L, &h, "all", 0);
    describe(L, &h, "get values", release);
    h.notfound_ok = 1;
    arg(L, &h, "get");
    arg(L, &h, "values");
    arg(L, &h, release);
    arg(L, &h, "--output=json");
    if (all)
        arg(L, &h, "--all");
    if (ns != NULL)
        argf(L, &h, "--namespace=%s", ns);
    kube_flags(L, &h);
    if ((r = run(L, &h, NULL)) != 0)
        return r;
    if ((r = decode(L, &h)) != 1)
        return r;
    if (rc_is_null(L, -1)) { /* no user-supplied values */
        lua_pop(L, 1);
        lua_newtable(L);
        rc_mark(L, -1, RC_OBJECT);
    } else if (!lua_istable(L, -1)) {
        return rollout_fail(L, "failed", "%s: expected a JSON object, got a %s", h.what, luaL_typename(L, -1));
    }
    return 1;
}

int luaopen_rollout_helm(lua_State *L)
{
    static const luaL_Reg funcs[] = {
        {"version", h_version},
        {"install", h_install},
        {"uninstall", h_uninstall},
        {"list", h_list},
        {"status", h_status},
        {"get_values", h_get_values},
        {NULL, NULL}};
    lua_getglobal(L, "require"); /* as host.h asks: bindings require each other from Lua */
    lua_pushliteral(L, "rollout.json");
    lua_call(L, 1, 1);
    lua_newtable(L);           /* the module */
    lua_getfield(L, -2, "encode");
    lua_getfield(L, -3, "decode");
    luaL_setfuncs(L, funcs, 2);
    lua_getfield(L, -1, "install");
    lua_setfield(L, -2, "upgrade");
    lua_remove(L, -2);         /* rollout.json */
    return 1;
}
