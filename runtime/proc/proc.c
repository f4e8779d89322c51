/* rollout.proc: processes without a shell. run and spawn live in run.c and
 * spawn.c, what to exec and the child's set-up in exec.c; here are
 * signals, liveness, stop, which. */
#define _GNU_SOURCE
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static const struct {
    const char *name;
    int sig;
} signal_names[] = {
    {"TERM", SIGTERM}, {"KILL", SIGKILL}, {"INT", SIGINT}, {"HUP", SIGHUP},
    {"USR1", SIGUSR1}, {"USR2", SIGUSR2}, {"STOP", SIGSTOP}, {"CONT", SIGCONT},
    {"QUIT", SIGQUIT}, {"0", 0},
};

static const char *signal_name(int sig)
{
    for (size_t i = 0; i < sizeof signal_names / sizeof signal_names[0]; i++)
        if (signal_names[i].sig == sig)
            return signal_names[i].name;
    return NULL;
}

/* A signal number or name ("TERM", "SIGTERM", "0") at idx; misuse raises. */
static int check_signal(lua_State *L, int idx, int def)
{
    if (lua_isnoneornil(L, idx))
        return def;
    if (lua_type(L, idx) == LUA_TSTRING) {
        const char *s = lua_tostring(L, idx);
        if (strncmp(s, "SIG", 3) == 0)
            s += 3;
        for (size_t i = 0; i < sizeof signal_names / sizeof signal_names[0]; i++)
            if (strcmp(s, signal_names[i].name) == 0)
                return signal_names[i].sig;
        return luaL_argerror(L, idx, lua_pushfstring(L, "unknown signal '%s'", lua_tostring(L, idx)));
    }
    if (lua_isinteger(L, idx)) {
        lua_Integer n = lua_tointeger(L, idx);
        if (n >= 0 && n < NSIG)
            return (int)n;
        return luaL_argerror(L, idx, "signal number out of range");
    }
    return luaL_typeerror(L, idx, "signal name or number");
}

static pid_t check_pid(lua_State *L, int idx)
{
    lua_Integer pid = luaL_checkinteger(L, idx);
    luaL_argcheck(L, pid > 0 && pid <= INT_MAX, idx, "pid must be a positive process id");
    return (pid_t)pid;
}

/* Exists and is not a zombie (an exited process nobody has reaped yet). */
static int is_alive(pid_t pid)
{
    char path[64], buf[512];
    const char *paren;
    ssize_t n;
    int fd;
    snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            return 0;
        return kill(pid, 0) == 0 || errno == EPERM; /* no /proc */
    }
    n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return 0; /* it went away while we looked */
    buf[n] = '\0';
    /* "pid (comm) S ...": comm may hold ')' itself, the state follows the last */
    paren = strrchr(buf, ')');
    if (paren == NULL || paren[1] != ' ')
        return 1;
    return paren[2] != 'Z' && paren[2] != 'X' && paren[2] != 'x';
}

/* Reaps pid if it is our own child that has exited; harmless otherwise. */
static void reap_if_child(pid_t pid)
{
    while (waitpid(pid, NULL, WNOHANG) < 0 && errno == EINTR)
        ;
}

/* proc.alive(pid) -> boolean */
static int p_alive(lua_State *L)
{
    lua_pushboolean(L, is_alive(check_pid(L, 1)));
    return 1;
}

static int fail_kill(lua_State *L, int err, pid_t pid, int sig)
{
    const char *name = signal_name(sig);
    if (name != NULL && sig != 0)
        return rollout_fail_errno(L, err, "cannot send SIG%s to process %d", name, (int)pid);
    return rollout_fail_errno(L, err, "cannot signal process %d", (int)pid);
}

/* proc.kill(pid, sig) -> true | nil, msg, code, raw ("not_found", "ESRCH" when gone) */
static int p_kill(lua_State *L)
{
    pid_t pid = check_pid(L, 1);
    int sig = check_signal(L, 2, SIGTERM);
    if (!is_alive(pid)) { /* signalling a zombie "succeeds" but reaches nobody */
        reap_if_child(pid);
        return fail_kill(L, ESRCH, pid, sig);
    }
    if (kill(pid, sig) != 0)
        return fail_kill(L, errno, pid, sig);
    lua_pushboolean(L, 1);
    return 1;
}

/* Waits until pid is gone or `secs` pass, honouring ^C. */
static int wait_gone(lua_State *L, pid_t pid, double secs)
{
    double deadline = rollout_now() + secs, step = 0.005;
    for (;;) {
        double left;
        reap_if_child(pid);
        if (!is_alive(pid))
            return 1;
        rollout_check_interrupt(L);
        left = deadline - rollout_now();
        if (left <= 0)
            return 0;
        rollout_nap(left < step ? left : step);
        if (step < 0.05)
            step *= 2;
    }
}

/* proc.stop(pid [, {timeout = 5, signal = "TERM"}]) -> true | nil, msg, code, raw */
static int p_stop(lua_State *L)
{
    pid_t pid = check_pid(L, 1);
    double timeout = 5;
    int sig = SIGTERM;
    if (!lua_isnoneornil(L, 2)) {
        luaL_checktype(L, 2, LUA_TTABLE);
        timeout = rollout_optfield_number(L, 2, "timeout", 5);
        luaL_argcheck(L, timeout >= 0, 2, "timeout must be >= 0");
        lua_getfield(L, 2, "signal");
        sig = check_signal(L, lua_gettop(L), SIGTERM);
        lua_pop(L, 1);
    }
    if (!is_alive(pid)) {
        reap_if_child(pid);
        lua_pushboolean(L, 1);
        return 1;
    }
    if (kill(pid, sig) != 0 && errno != ESRCH)
        return fail_kill(L, errno, pid, sig);
    if (wait_gone(L, pid, timeout)) {
        lua_pushboolean(L, 1);
        return 1;
    }
    if (kill(pid, SIGKILL) != 0 && errno != ESRCH)
        return fail_kill(L, errno, pid, SIGKILL);
    if (wait_gone(L, pid, 2.0)) {
        lua_pushboolean(L, 1);
        return 1;
    }
    return rollout_fail(L, ROLLOUT_E_TIMEOUT, NULL, "process %d is still running after SIGKILL", (int)pid);
}

/* proc.which(name) -> absolute path | nil */
static int p_which(lua_State *L)
{
    size_t len;
    const char *name = luaL_checklstring(L, 1, &len);
    char out[PATH_MAX];
    if (len == 0 || strlen(name) != len || px_search_path(name, getenv("PATH"), out, sizeof out) != 0)
        lua_pushnil(L);
    else
        lua_pushstring(L, out);
    return 1;
}

/* proc.pid() -> our pid */
static int p_pid(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)getpid());
    return 1;
}

int luaopen_rollout_proc(lua_State *L)
{
    static const luaL_Reg funcs[] = {
        {"run", px_run},
        {"spawn", px_spawn},
        {"alive", p_alive},
        {"kill", p_kill},
        {"stop", p_stop},
        {"which", p_which},
        {"pid", p_pid},
        {NULL, NULL}};
    luaL_newlib(L, funcs);
    return 1;
}
