/* ^C: the first one interrupts the running Lua code (a hook raises the
 * interrupt sentinel, where lua.c raises a message) and sends SIGTERM to
 * the process group of each child of rollout.proc.run (they run in their
 * own group, so a terminal ^C does not reach them directly); blocking C
 * calls poll rollout_interrupted() and finish stopping them. A second ^C
 * ends the process.
 *
 * The sentinel: one read-only table per Lua state, in the registry; it
 * prints as "interrupted" (include/rollout/host.h). */
#include "rollout/host.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

static const char sentinel_key = 0; /* its address keys the registry */


static lua_State *volatile hooked_state;
static volatile sig_atomic_t pending;
static volatile sig_atomic_t deferred; /* inside rollout_interrupt_defer(1) */
/* The tracked children: pids, 0 for a free slot. The handler reads the
 * table; it only changes size with SIGINT blocked (rollout_child_track). */
static volatile sig_atomic_t *volatile children;
static volatile size_t nchildren;

/* ---- the sentinel ---------------------------------------------------- */

static int sentinel_tostring(lua_State *L)
{
    lua_pushliteral(L, "interrupted");
    return 1;
}

/* "..." .. e and e .. "...": as if it were its text */
static int sentinel_concat(lua_State *L)
{
    luaL_tolstring(L, 1, NULL);
    luaL_tolstring(L, 2, NULL);
    lua_concat(L, 2);
    return 1;
}

static int sentinel_newindex(lua_State *L)
{
    return luaL_error(L, "the interrupt sentinel is read-only");
}

void rollout_push_interrupt(lua_State *L)
{
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &sentinel_key) == LUA_TTABLE)
        return;
    lua_pop(L, 1);
    lua_newtable(L);
    lua_createtable(L, 0, 5); /* its metatable */
    lua_createtable(L, 0, 2); /* what e.message, e.code read */
    lua_pushliteral(L, "interrupted");
    lua_setfield(L, -2, "message");
    lua_pushliteral(L, "interrupted");
    lua_setfield(L, -2, "code");
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, sentinel_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pushcfunction(L, sentinel_concat);
    lua_setfield(L, -2, "__concat");
    lua_pushcfunction(L, sentinel_newindex);
    lua_setfield(L, -2, "__newindex");
    lua_pushliteral(L, "rollout.interrupted");
    lua_setfield(L, -2, "__name");
    lua_setmetatable(L, -2);
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &sentinel_key);
}

int rollout_is_interrupt(lua_State *L, int idx)
{
    int is;
    idx = lua_absindex(L, idx);
    if (lua_type(L, idx) != LUA_TTABLE)
        return 0;
    lua_rawgetp(L, LUA_REGISTRYINDEX, &sentinel_key);
    is = lua_rawequal(L, idx, -1);
    lua_pop(L, 1);
    return is;
}

/* ---- the signal ------------------------------------------------------ */

static void stop_hook(lua_State *L, lua_Debug *ar)
{
    (void)ar;
    lua_sethook(L, NULL, 0, 0);
    if (deferred)
        return; /* raised when the critical section ends */
    pending = 0;
    rollout_push_interrupt(L);
    lua_error(L);
}

/* The next ^C takes the default action: the process ends. */
static void second_ends(void)
{
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigaction(SIGINT, &dfl, NULL);
}

static void on_sigint(int sig)
{
    int flag = LUA_MASKCALL | LUA_MASKRET | LUA_MASKCOUNT;
    int saved_errno = errno; /* kill() and sigaction() may change it */
    (void)sig;
    pending = 1;
    if (deferred) {
        /* a critical section (a change of file, gateway and state): this
         * ^C, and any further one, is noticed when it ends, so that an
         * impatient second ^C cannot leave the change half-done */
        errno = saved_errno;
        return;
    }
    second_ends();
    for (size_t i = 0; i < nchildren; i++) {
        pid_t pid = (pid_t)children[i];
        /* the child's own process group (pgid == pid); the pid alone if it
         * is not a group leader */
        if (pid > 0 && kill(-pid, SIGTERM) != 0)
            kill(pid, SIGTERM);
    }
    if (hooked_state != NULL)
        lua_sethook(hooked_state, stop_hook, flag, 1); /* async-signal-safe in 5.4 */
    errno = saved_errno;
}

void rollout_interrupt_arm(lua_State *L)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; /* no SA_RESTART: blocking calls return EINTR */
    hooked_state = L;
    pending = 0;
    sigaction(SIGINT, &sa, NULL);
}

void rollout_interrupt_disarm(void)
{
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigaction(SIGINT, &dfl, NULL);
    if (hooked_state != NULL)
        lua_sethook(hooked_state, NULL, 0, 0);
    hooked_state = NULL;
    pending = 0;
}

int rollout_interrupted(void)
{
    return pending != 0 && !deferred;
}

int rollout_interrupt_defer(int on)
{
    int was = deferred != 0;
    deferred = on != 0;
    return was;
}

int rollout_raise_interrupt(lua_State *L)
{
    pending = 0;
    if (hooked_state != NULL)
        second_ends(); /* a ^C deferred by a critical section: the next one ends the process */
    lua_sethook(L, NULL, 0, 0);
    rollout_push_interrupt(L);
    return lua_error(L);
}

void rollout_check_interrupt(lua_State *L)
{
    if (pending && !deferred)
        rollout_raise_interrupt(L);
}

int rollout_child_track(pid_t pid)
{
    sigset_t block, old;
    volatile sig_atomic_t *grown;
    size_t n;
    for (size_t i = 0; i < nchildren; i++) {
        if (children[i] == 0) {
            children[i] = (sig_atomic_t)pid;
            return 0;
        }
    }
    /* full: a larger table, made with SIGINT blocked so that the handler
     * never reads one being moved */
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigprocmask(SIG_BLOCK, &block, &old);
    n = nchildren ? nchildren * 2 : 16;
    grown = realloc((void *)children, n * sizeof *grown);
    if (grown != NULL) {
        for (size_t i = nchildren; i < n; i++)
            grown[i] = 0;
        grown[nchildren] = (sig_atomic_t)pid;
        children = grown;
        nchildren = n;
    }
    sigprocmask(SIG_SETMASK, &old, NULL);
    return grown != NULL ? 0 : -1;
}

void rollout_child_untrack(pid_t pid)
{
    for (size_t i = 0; i < nchildren; i++)
        if (children[i] == (sig_atomic_t)pid)
            children[i] = 0;
}
