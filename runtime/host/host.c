/* The host: bindings in package.preload, the stdlib on package.path, one
 * protected call with a traceback for every entry into Lua, error reports. */
#define _GNU_SOURCE
#include "rollout/host.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <dlfcn.h>
#include <lualib.h>

/* Every binding of modules.h, declared weak: the ones built into
 * rollout-net.so (those that need libcurl) are absent from the binary and
 * are loaded from the library on first require. */
#define ROLLOUT_MODULE(name) __attribute__((weak)) int luaopen_rollout_##name(lua_State *L);
#include "rollout/modules.h"
#undef ROLLOUT_MODULE

static const luaL_Reg modules[] = {
#define ROLLOUT_MODULE(name) {"rollout." #name, luaopen_rollout_##name},
#include "rollout/modules.h"
#undef ROLLOUT_MODULE
    {NULL, NULL}};

static int is_dir_with(const char *dir, const char *rel)
{
    char path[PATH_MAX];
    struct stat st;
    if (snprintf(path, sizeof path, "%s/%s", dir, rel) >= (int)sizeof path)
        return 0;
    return stat(path, &st) == 0;
}

/* The directory holding rollout/init.lua: next to the binary in the source
 * tree (./stdlib, ../stdlib for build dirs) or $(PREFIX)/share/rollout. */
static int find_stdlib(const char *exe, char *out, size_t outlen)
{
    static const char *const candidates[] = {"stdlib", "../stdlib", "../share/rollout"};
    char dir[PATH_MAX];
    char *slash;
    if (snprintf(dir, sizeof dir, "%s", exe) >= (int)sizeof dir)
        return 0;
    slash = strrchr(dir, '/');
    if (slash == NULL)
        return 0;
    *slash = '\0';
    for (size_t i = 0; i < sizeof candidates / sizeof candidates[0]; i++) {
        char cand[PATH_MAX], real[PATH_MAX];
        if (snprintf(cand, sizeof cand, "%s/%s", dir, candidates[i]) >= (int)sizeof cand)
            continue;
        if (is_dir_with(cand, "rollout/init.lua") && realpath(cand, real) != NULL) {
            snprintf(out, outlen, "%s", real);
            return 1;
        }
    }
    return 0;
}

static void find_exe(const char *argv0, char *out, size_t outlen)
{
    ssize_t n = readlink("/proc/self/exe", out, outlen - 1);
    if (n > 0) {
        out[n] = '\0';
        return;
    }
    if (argv0 == NULL || realpath(argv0, out) == NULL)
        snprintf(out, outlen, "%s", argv0 ? argv0 : "rollout");
}

/* package.path = ROLLOUT_PATH entries, the stdlib, then Lua's own path. */
static void set_path(lua_State *L, const char *stdlib)
{
    luaL_Buffer b;
    const char *extra = getenv("ROLLOUT_PATH");
    lua_getglobal(L, "package");
    luaL_buffinit(L, &b);
    if (extra != NULL && *extra != '\0') {
        const char *p = extra;
        while (*p) {
            const char *end = strchr(p, ':');
            size_t len = end ? (size_t)(end - p) : strlen(p);
            if (len > 0) {
                luaL_addlstring(&b, p, len);
                luaL_addstring(&b, "/?.lua;");
                luaL_addlstring(&b, p, len);
                luaL_addstring(&b, "/?/init.lua;");
            }
            p += len;
            if (*p == ':')
                p++;
        }
    }
    if (stdlib != NULL) {
        luaL_addstring(&b, stdlib);
        luaL_addstring(&b, "/?.lua;");
        luaL_addstring(&b, stdlib);
        luaL_addstring(&b, "/?/init.lua;");
    }
    lua_getfield(L, -2, "path");
    luaL_addvalue(&b);
    luaL_pushresult(&b);
    lua_setfield(L, -2, "path");
    lua_pop(L, 1);
}

/* rollout-net.so: next to the binary (build tree) or in ../lib/rollout
 * (installed). Opened once, kept for the life of the process. */
static void *netlib;
static char netlib_dir[PATH_MAX];

static int open_netlib(lua_State *L)
{
    static const char *const candidates[] = {"rollout-net.so", "../lib/rollout/rollout-net.so"};
    char tried[2 * PATH_MAX + 64] = "";
    if (netlib != NULL)
        return 1;
    for (size_t i = 0; i < sizeof candidates / sizeof candidates[0]; i++) {
        char path[PATH_MAX];
        if (snprintf(path, sizeof path, "%s/%s", netlib_dir, candidates[i]) >= (int)sizeof path)
            continue;
        netlib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
        if (netlib != NULL)
            return 1;
        if (access(path, F_OK) == 0) /* there but broken: say why */
            return luaL_error(L, "cannot load %s: %s", path, dlerror());
        strncat(tried, i ? ", " : "", sizeof tried - strlen(tried) - 1);
        strncat(tried, path, sizeof tried - strlen(tried) - 1);
    }
    return luaL_error(L, "rollout-net.so (the libcurl bindings) not found; looked for %s", tried);
}

/* package.preload loader of a binding that lives in rollout-net.so. */
static int load_from_netlib(lua_State *L)
{
    const char *modname = luaL_checkstring(L, 1); /* "rollout.http" */
    char sym[128];
    lua_CFunction open;
    open_netlib(L);
    snprintf(sym, sizeof sym, "luaopen_rollout_%s", modname + strlen("rollout."));
    *(void **)(&open) = dlsym(netlib, sym);
    if (open == NULL)
        return luaL_error(L, "rollout-net.so has no %s", sym);
    lua_pushcfunction(L, open);
    lua_pushvalue(L, 1);
    lua_call(L, 1, 1);
    return 1;
}

void rollout_host_open(lua_State *L, const rollout_options *opts)
{
    char exe[PATH_MAX], stdlib[PATH_MAX];
    const char *target = opts->target;
    int have_stdlib;
    char *slash;

    rollout_push_interrupt(L); /* made now, not by the first ^C's hook */
    lua_pop(L, 1);
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
    for (const luaL_Reg *m = modules; m->name != NULL; m++) {
        lua_pushcfunction(L, m->func != NULL ? m->func : load_from_netlib);
        lua_setfield(L, -2, m->name);
    }
    lua_pop(L, 1);

    find_exe(opts->argv0, exe, sizeof exe);
    snprintf(netlib_dir, sizeof netlib_dir, "%s", exe);
    slash = strrchr(netlib_dir, '/');
    if (slash != NULL)
        *slash = '\0';
    have_stdlib = find_stdlib(exe, stdlib, sizeof stdlib);
    set_path(L, have_stdlib ? stdlib : NULL);

    if (target == NULL || *target == '\0')
        target = getenv("ROLLOUT_TARGET");
    if (target != NULL && *target == '\0')
        target = NULL;
    lua_pushstring(L, exe);
    lua_setfield(L, LUA_REGISTRYINDEX, ROLLOUT_KEY_EXE);
    if (have_stdlib)
        lua_pushstring(L, stdlib);
    else
        lua_pushnil(L);
    lua_setfield(L, LUA_REGISTRYINDEX, ROLLOUT_KEY_STDLIB);
    if (target)
        lua_pushstring(L, target);
    else
        lua_pushnil(L);
    lua_setfield(L, LUA_REGISTRYINDEX, ROLLOUT_KEY_TARGET);
}

/* Message handler: a traceback for ordinary errors; refusal tables
 * ({message=, exit=}) and the interrupt sentinel pass through untouched. */
static int msghandler(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);
    if (msg == NULL) {
        if (rollout_is_interrupt(L, 1))
            return 1;
        if (lua_istable(L, 1)) {
            lua_getfield(L, 1, "exit");
            if (lua_isinteger(L, -1)) {
                lua_pop(L, 1);
                return 1;
            }
            lua_pop(L, 1);
        }
        if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
            return 1;
        msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    }
    luaL_traceback(L, L, msg, 1);
    return 1;
}

int rollout_docall(lua_State *L, int narg, int nres)
{
    int status;
    int base = lua_gettop(L) - narg;
    lua_pushcfunction(L, msghandler);
    lua_insert(L, base);
    rollout_interrupt_arm(L);
    status = lua_pcall(L, narg, nres, base);
    rollout_interrupt_disarm();
    lua_remove(L, base);
    return status;
}

int rollout_report(lua_State *L, int status, const char *progname)
{
    int code = ROLLOUT_EXIT_FAILURE;
    if (status == LUA_OK)
        return ROLLOUT_EXIT_OK;
    if (lua_istable(L, -1)) {
        lua_getfield(L, -1, "exit");
        if (lua_isinteger(L, -1))
            code = (int)lua_tointeger(L, -1);
        lua_pop(L, 1);
        lua_getfield(L, -1, "message");
        fprintf(stderr, "%s: %s\n", progname,
                lua_isstring(L, -1) ? lua_tostring(L, -1) : "(no message)");
        lua_pop(L, 2);
    } else {
        const char *msg = lua_tostring(L, -1);
        fprintf(stderr, "%s: %s\n", progname, msg ? msg : "(error object is not a string)");
        lua_pop(L, 1);
    }
    fflush(stderr);
    return code;
}
