/* rollout.proc: what to exec (argv, environment, PATH search, cwd) and the
 * async-signal-safe set-up a child does between fork and exec. */
#define _GNU_SOURCE
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_PATH "/usr/local/bin:/usr/bin:/bin"

static int is_exec_file(const char *path, int *err)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        *err = errno;
        return 0;
    }
    if (!S_ISREG(st.st_mode)) {
        *err = EACCES;
        return 0;
    }
    if (access(path, X_OK) != 0) {
        *err = errno;
        return 0;
    }
    return 1;
}

/* Makes a relative candidate absolute against the current directory. */
static int absolutize(const char *cand, char *out, size_t outlen)
{
    char cwd[PATH_MAX];
    if (cand[0] == '/') {
        if (snprintf(out, outlen, "%s", cand) >= (int)outlen)
            return ENAMETOOLONG;
        return 0;
    }
    if (getcwd(cwd, sizeof cwd) == NULL)
        return errno;
    if (snprintf(out, outlen, "%s/%s", cwd, cand) >= (int)outlen)
        return ENAMETOOLONG;
    return 0;
}

int px_search_path(const char *name, const char *path_env, char *out, size_t outlen)
{
    const char *p;
    int seen_eacces = 0;
    if (name[0] == '\0')
        return ENOENT;
    if (strchr(name, '/') != NULL) {
        int err = 0;
        if (!is_exec_file(name, &err))
            return err;
        return absolutize(name, out, outlen);
    }
    if (path_env == NULL)
        path_env = DEFAULT_PATH;
    p = path_env;
    for (;;) {
        const char *end = strchr(p, ':');
        size_t dlen = end ? (size_t)(end - p) : strlen(p);
        char cand[PATH_MAX];
        int n, err = 0;
        if (dlen == 0) /* an empty entry is the current directory */
            n = snprintf(cand, sizeof cand, "%s", name);
        else
            n = snprintf(cand, sizeof cand, "%.*s/%s", (int)dlen, p, name);
        if (n > 0 && n < (int)sizeof cand) {
            if (is_exec_file(cand, &err))
                return absolutize(cand, out, outlen);
            if (err == EACCES)
                seen_eacces = 1;
        }
        if (end == NULL)
            break;
        p = end + 1;
    }
    return seen_eacces ? EACCES : ENOENT;
}

/* Checks that the string at idx has no NUL byte (it would cut it short). */
static const char *check_cstring(lua_State *L, int idx, const char *what, lua_Integer i)
{
    size_t len;
    const char *s = lua_tolstring(L, idx, &len);
    if (strlen(s) != len) {
        if (i > 0)
            luaL_error(L, "%s[%I] contains a NUL byte", what, i);
        else
            luaL_error(L, "%s contains a NUL byte", what);
    }
    return s;
}

static void read_argv(lua_State *L, int opts, px_spec *spec)
{
    lua_Integer n;
    int t;
    lua_getfield(L, opts, "argv");
    if (!lua_istable(L, -1))
        luaL_error(L, "field 'argv' must be a table of strings (got %s)", luaL_typename(L, -1));
    t = lua_gettop(L); /* stays on the stack: anchors the strings */
    n = (lua_Integer)lua_rawlen(L, t);
    if (n < 1)
        luaL_error(L, "field 'argv' must not be empty");
    if (n > 100000)
        luaL_error(L, "field 'argv' has too many items");
    spec->argv = lua_newuserdatauv(L, sizeof(char *) * (size_t)(n + 1), 0);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, t, i);
        if (lua_type(L, -1) != LUA_TSTRING)
            luaL_error(L, "argv[%I] must be a string (got %s)", i, luaL_typename(L, -1));
        spec->argv[i - 1] = (char *)check_cstring(L, -1, "argv", i);
        lua_pop(L, 1); /* still anchored by the argv table */
    }
    spec->argv[n] = NULL;
}

/* Is the environ entry `entry` (KEY=VALUE) overridden by the env table? */
static int overridden(lua_State *L, int env, const char *entry)
{
    const char *eq = strchr(entry, '=');
    int found;
    if (env == 0 || eq == NULL)
        return 0;
    lua_pushlstring(L, entry, (size_t)(eq - entry));
    found = lua_rawget(L, env) != LUA_TNIL;
    lua_pop(L, 1);
    return found;
}

/* Builds envp; returns the PATH the child will see (or NULL). */
static const char *read_env(lua_State *L, int opts, px_spec *spec)
{
    int clear = rollout_optfield_boolean(L, opts, "clear_env", 0);
    int env = 0, anchors;
    size_t count = 0, n = 0;
    const char *path = clear ? NULL : getenv("PATH");
    lua_getfield(L, opts, "env");
    if (lua_istable(L, -1))
        env = lua_gettop(L);
    else if (!lua_isnil(L, -1))
        luaL_error(L, "field 'env' must be a table (got %s)", luaL_typename(L, -1));
    lua_newtable(L); /* anchors the KEY=VALUE strings */
    anchors = lua_gettop(L);
    if (env != 0) {
        lua_pushnil(L);
        while (lua_next(L, env) != 0) {
            const char *k, *v;
            if (lua_type(L, -2) != LUA_TSTRING)
                luaL_error(L, "env keys must be strings (got %s)", luaL_typename(L, -2));
            k = check_cstring(L, -2, "env key", 0);
            if (*k == '\0' || strchr(k, '=') != NULL)
                luaL_error(L, "env key '%s' is not a variable name", k);
            if (lua_type(L, -1) == LUA_TBOOLEAN && !lua_toboolean(L, -1)) {
                if (strcmp(k, "PATH") == 0)
                    path = NULL;
                lua_pop(L, 1); /* false: remove the variable */
                continue;
            }
            if (lua_type(L, -1) != LUA_TSTRING && lua_type(L, -1) != LUA_TNUMBER)
                luaL_error(L, "env.%s must be a string, a number or false (got %s)", k,
                           luaL_typename(L, -1));
            v = lua_tostring(L, -1); /* a copy on the stack: converting it is safe */
            if (strlen(v) != lua_rawlen(L, -1))
                luaL_error(L, "env.%s contains a NUL byte", k);
            lua_pushfstring(L, "%s=%s", k, v);
            if (strcmp(k, "PATH") == 0)
                path = lua_tostring(L, -1) + 5;
            lua_rawseti(L, anchors, (lua_Integer)++count);
            lua_pop(L, 1);
        }
    }
    if (!clear)
        for (char **e = environ; *e != NULL; e++)
            count++;
    spec->envp = lua_newuserdatauv(L, sizeof(char *) * (count + 1), 0);
    if (!clear)
        for (char **e = environ; *e != NULL; e++)
            if (!overridden(L, env, *e))
                spec->envp[n++] = *e;
    for (lua_Integer i = 1; lua_rawgeti(L, anchors, i) == LUA_TSTRING; i++) {
        spec->envp[n++] = (char *)lua_tostring(L, -1);
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    spec->envp[n] = NULL;
    return path;
}

int px_read_spec(lua_State *L, int idx, px_spec *spec)
{
    const char *path_env;
    struct rlimit rl;
    int err;
    idx = lua_absindex(L, idx);
    luaL_checktype(L, idx, LUA_TTABLE);
    luaL_checkstack(L, 16, "proc");
    read_argv(L, idx, spec);
    path_env = read_env(L, idx, spec);
    spec->cwd = rollout_optfield_string(L, idx, "cwd", NULL);
    spec->max_fd = 1024;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
        spec->max_fd = rl.rlim_cur > 65536 ? 65536 : (int)rl.rlim_cur;
    if (strchr(spec->argv[0], '/') != NULL) {
        /* exec'd as given, relative to cwd if any; the child reports what
         * execve says */
        if (snprintf(spec->path, sizeof spec->path, "%s", spec->argv[0]) < (int)sizeof spec->path)
            return 0;
        err = ENAMETOOLONG;
    } else {
        err = px_search_path(spec->argv[0], path_env, spec->path, sizeof spec->path);
        if (err == 0)
            return 0;
    }
    return rollout_fail_errno(L, err, "cannot run '%s'", spec->argv[0]);
}

void px_describe(const px_spec *spec, char *out, size_t outlen)
{
    size_t used = 0;
    out[0] = '\0';
    for (char **a = spec->argv; *a != NULL; a++) {
        int n = snprintf(out + used, outlen - used, "%s%s", a == spec->argv ? "" : " ", *a);
        if (n < 0 || (size_t)n >= outlen - used) {
            if (outlen > 4)
                memcpy(out + outlen - 4, "...", 4);
            return;
        }
        used += (size_t)n;
    }
}

int px_fail_exec(lua_State *L, const px_spec *spec, const px_msg *msg)
{
    switch (msg->kind) {
    case PX_MSG_CHDIR:
        return rollout_fail_errno(L, msg->value, "cannot run '%s': cannot change directory to '%s'",
                             spec->argv[0], spec->cwd ? spec->cwd : "?");
    case PX_MSG_SETUP:
        return rollout_fail_errno(L, msg->value, "cannot run '%s': cannot set up the child", spec->argv[0]);
    case PX_MSG_FORK:
        return rollout_fail_errno(L, msg->value, "cannot run '%s': fork", spec->argv[0]);
    default:
        return rollout_fail_errno(L, msg->value, "cannot run '%s'", spec->argv[0]);
    }
}

void px_block_signals(sigset_t *old)
{
    sigset_t all;
    sigfillset(&all);
    sigprocmask(SIG_SETMASK, &all, old);
}

void px_restore_signals(const sigset_t *old)
{
    sigprocmask(SIG_SETMASK, old, NULL);
}

void px_child_reset_signals(void)
{
    struct sigaction dfl;
    sigset_t none;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    for (int sig = 1; sig < NSIG; sig++)
        sigaction(sig, &dfl, NULL); /* fails harmlessly for KILL, STOP and reserved ones */
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
}

void px_child_cloexec_from3(int max_fd)
{
    if (close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) == 0)
        return;
    for (int fd = 3; fd < max_fd; fd++) {
        int flags = fcntl(fd, F_GETFD);
        if (flags >= 0 && !(flags & FD_CLOEXEC))
            fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
    }
}

_Noreturn void px_child_fail(int fd, int kind, int err)
{
    px_msg m;
    m.kind = kind;
    m.value = err;
    while (write(fd, &m, sizeof m) < 0 && errno == EINTR)
        ;
    _exit(127);
}

void px_close_fd(int *fd)
{
    if (*fd >= 0) {
        close(*fd);
        *fd = -1;
    }
}

int px_fd_above2(int fd)
{
    int nfd;
    if (fd < 0 || fd > 2)
        return fd;
    nfd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
    close(fd);
    return nfd;
}
