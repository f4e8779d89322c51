/* rollout.sys: facts about the host process — version, target, where the
 * stdlib lives, terminals. */
#define _GNU_SOURCE
#include "rollout/host.h"

#include <errno.h>
#include <limits.h>
#include <string.h>
#include <unistd.h>

static void push_registry(lua_State *L, const char *key)
{
    lua_getfield(L, LUA_REGISTRYINDEX, key);
}

/* sys.isatty(fd | "stdin" | "stdout" | "stderr") -> boolean */
static int sys_isatty(lua_State *L)
{
    int fd;
    if (lua_type(L, 1) == LUA_TSTRING) {
        static const char *const names[] = {"stdin", "stdout", "stderr", NULL};
        fd = luaL_checkoption(L, 1, NULL, names);
    } else {
        fd = (int)luaL_checkinteger(L, 1);
    }
    lua_pushboolean(L, isatty(fd));
    return 1;
}

static int sys_getpid(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)getpid());
    return 1;
}

/* sys.euid() -> the effective user id (who owns what rollout creates) */
static int sys_euid(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)geteuid());
    return 1;
}

static int sys_hostname(lua_State *L)
{
    char name[HOST_NAME_MAX + 1];
    if (gethostname(name, sizeof name) != 0)
        return rollout_fail_errno(L, errno, "gethostname");
    name[HOST_NAME_MAX] = '\0';
    lua_pushstring(L, name);
    return 1;
}

/* sys.target() -> the --target / ROLLOUT_TARGET name, or nil */
static int sys_target(lua_State *L)
{
    push_registry(L, ROLLOUT_KEY_TARGET);
    return 1;
}

/* sys.check_interrupt(): raises the interrupt sentinel if a ^C is pending. */
static int sys_check_interrupt(lua_State *L)
{
    rollout_check_interrupt(L);
    return 0;
}

/* sys.critical(fn, ...) -> fn's results. Runs fn with ^C deferred: a ^C
 * during fn takes effect (sys.INTERRUPTED) only once fn has returned, so a
 * change of several steps ends whole (e.g. file, gateway, state). */
static int sys_critical(lua_State *L)
{
    int was, status, nres;
    luaL_checktype(L, 1, LUA_TFUNCTION);
    rollout_check_interrupt(L); /* a ^C that came before: do not start */
    was = rollout_interrupt_defer(1);
    status = lua_pcall(L, lua_gettop(L) - 1, LUA_MULTRET, 0);
    rollout_interrupt_defer(was);
    if (status != LUA_OK)
        return lua_error(L);
    nres = lua_gettop(L);
    rollout_check_interrupt(L);
    return nres;
}

int luaopen_rollout_sys(lua_State *L)
{
    static const luaL_Reg funcs[] = {
        {"isatty", sys_isatty},
        {"getpid", sys_getpid},
        {"euid", sys_euid},
        {"hostname", sys_hostname},
        {"target", sys_target},
        {"check_interrupt", sys_check_interrupt},
        {"critical", sys_critical},
        {NULL, NULL}};
    luaL_newlib(L, funcs);
    /* the error codes of the bindings (include/rollout/host.h) */
    lua_createtable(L, ROLLOUT_E_NCODES, 0);
    for (int c = 0; c < ROLLOUT_E_NCODES; c++) {
        lua_pushstring(L, rollout_code_name((rollout_code)c));
        lua_rawseti(L, -2, c + 1);
    }
    lua_setfield(L, -2, "error_codes");
    rollout_push_interrupt(L);
    lua_setfield(L, -2, "INTERRUPTED");
    lua_pushliteral(L, ROLLOUT_VERSION);
    lua_setfield(L, -2, "version");
    lua_pushliteral(L, LUA_RELEASE);
    lua_setfield(L, -2, "lua_version");
    push_registry(L, ROLLOUT_KEY_EXE);
    lua_setfield(L, -2, "exe");
    /* the stdlib directory, and the tree it sits in (source checkout or
     * $(PREFIX)/share/rollout) where scripts/ and deployments/ are found */
    push_registry(L, ROLLOUT_KEY_STDLIB);
    if (lua_isstring(L, -1)) {
        const char *dir = lua_tostring(L, -1);
        const char *slash = strrchr(dir, '/');
        const char *base = slash ? slash + 1 : dir;
        if (strcmp(base, "stdlib") == 0 && slash != NULL)
            lua_pushlstring(L, dir, (size_t)(slash - dir));
        else
            lua_pushvalue(L, -1);
        lua_setfield(L, -3, "root");
    }
    lua_setfield(L, -2, "stdlib");
    return 1;
}
