/* The Lua-driven harnesses' runtime: see fuzz_lua.h. */
#include "fuzz_lua.h"

#include "rollout/host.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lualib.h>

static lua_State *L;
static int check_ref = LUA_NOREF;

/* ---- Lua line coverage -------------------------------------------------
 * libFuzzer reads every byte of the section __libfuzzer_extra_counters as
 * an 8-bit coverage counter, clears them before each input and turns their
 * (bucketed) values into features. A line hook counts transitions between
 * Lua lines (source, line) -> (source, line), hashed into the counters the
 * way AFL counts edges. Source pointers are stable: each chunk is loaded
 * once per process. */
#define COV_SIZE (1u << 16)
__attribute__((section("__libfuzzer_extra_counters"), used, no_sanitize("address")))
static uint8_t lua_cov[COV_SIZE];
static uint32_t cov_prev;

static uint32_t mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return (uint32_t)x;
}

static void line_hook(lua_State *S, lua_Debug *ar)
{
    uint32_t cur;
    if (!lua_getinfo(S, "S", ar))
        return;
    cur = mix((uint64_t)(uintptr_t)ar->source * 1000003u + (uint64_t)ar->currentline);
    lua_cov[(cur ^ cov_prev) & (COV_SIZE - 1)]++;
    cov_prev = cur >> 1;
}

/* ---- set-up ---------------------------------------------------------- */

static int traceback(lua_State *S)
{
    const char *msg = lua_tostring(S, 1);
    if (msg == NULL && lua_istable(S, 1)) { /* a refusal or failure table escaped */
        lua_getfield(S, 1, "message");
        msg = lua_pushfstring(S, "(error table) %s", lua_isstring(S, -1) ? lua_tostring(S, -1) : "?");
    } else if (msg == NULL) {
        msg = lua_pushfstring(S, "(error object is a %s value)", luaL_typename(S, 1));
    }
    luaL_traceback(S, S, msg, 1);
    return 1;
}

static int setup(lua_State *S)
{
    const char *argv0 = lua_touserdata(S, 1);
    const char *script = lua_touserdata(S, 2);
    rollout_options opts = {argv0, NULL};
    char dir[PATH_MAX], path[PATH_MAX];
    const char *stdlib;
    char *slash;

    luaL_openlibs(S);
    rollout_host_open(S, &opts);
    /* the source tree: the stdlib's parent (build-fuzz/ is next to stdlib/) */
    lua_getfield(S, LUA_REGISTRYINDEX, ROLLOUT_KEY_STDLIB);
    stdlib = lua_tostring(S, -1);
    if (stdlib == NULL)
        return luaL_error(S, "the stdlib was not found next to %s", argv0);
    snprintf(dir, sizeof dir, "%s", stdlib);
    slash = strrchr(dir, '/');
    if (slash == NULL)
        return luaL_error(S, "odd stdlib path %s", stdlib);
    *slash = '\0';
    if (snprintf(path, sizeof path, "%s/tests/fuzz", dir) >= (int)sizeof path)
        return luaL_error(S, "path too long");
    /* tests/fuzz/?.lua first: the scripts' shared helpers */
    lua_getglobal(S, "package");
    lua_pushfstring(S, "%s/?.lua;", path);
    lua_getfield(S, -2, "path");
    lua_concat(S, 2);
    lua_setfield(S, -2, "path");
    lua_pop(S, 1);
    lua_pushfstring(S, "%s/%s", path, script);
    if (luaL_loadfile(S, lua_tostring(S, -1)) != LUA_OK)
        return lua_error(S);
    lua_call(S, 0, 1);
    if (!lua_isfunction(S, -1))
        return luaL_error(S, "%s must return a function", script);
    return 1;
}

void fuzz_lua_init(int *argc, char ***argv, const char *script, int coverage)
{
    (void)argc;
    L = luaL_newstate();
    if (L == NULL) {
        fprintf(stderr, "fuzz: cannot create a Lua state\n");
        exit(1);
    }
    lua_pushcfunction(L, traceback);
    lua_pushcfunction(L, setup);
    lua_pushlightuserdata(L, (*argv)[0]);
    lua_pushlightuserdata(L, (void *)script);
    if (lua_pcall(L, 2, 1, 1) != LUA_OK) {
        fprintf(stderr, "fuzz: set-up failed: %s\n", lua_tostring(L, -1));
        exit(1);
    }
    check_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_settop(L, 0);
    if (coverage && getenv("FUZZ_NO_LUA_COVERAGE") == NULL) /* the knob: to measure what it brings */
        lua_sethook(L, line_hook, LUA_MASKLINE, 0);
}

void fuzz_lua_run(const uint8_t *data, size_t size)
{
    cov_prev = 0;
    lua_settop(L, 0);
    lua_pushcfunction(L, traceback);
    lua_rawgeti(L, LUA_REGISTRYINDEX, check_ref);
    lua_pushlstring(L, (const char *)data, size);
    if (lua_pcall(L, 1, 0, 1) != LUA_OK) {
        fprintf(stderr, "fuzz: FINDING: %s\n", lua_tostring(L, -1));
        fflush(stderr);
        abort();
    }
    /* Everything this input made is garbage now: collecting it keeps runs
     * independent of each other, and libFuzzer's leak detection (which
     * checks the heap after any run that malloc'd more than it freed)
     * from running after every input. */
    lua_gc(L, LUA_GCCOLLECT);
}
