/* rollout.weights: relative weights -> shares and exact percentages, and
 * their validation. The arithmetic is runtime/core/weights.c. */
#include "rollout/host.h"
#include "rollout/weights.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_VERSIONS 256

typedef struct weight_set {
    rw_entry e[MAX_VERSIONS];
    size_t n;
} weight_set;

/* Converts one Lua weight; on a bad type writes a message naming the version. */
static int to_weight(lua_State *L, int idx, const char *name, long long *out, char *err, size_t errlen)
{
    if (lua_isinteger(L, idx)) {
        *out = (long long)lua_tointeger(L, idx);
        return 0;
    }
    if (lua_type(L, idx) == LUA_TNUMBER) {
        lua_Number v = lua_tonumber(L, idx);
        /* 50.0 is the integer 50; the range first: converting 1e300, inf
         * or NaN to long long is undefined behaviour */
        if (v >= -9223372036854775808.0 && v < 9223372036854775808.0 && v == (lua_Number)(long long)v) {
            *out = (long long)v;
            return 0;
        }
        snprintf(err, errlen, "weight of %s must be an integer (got %.14g)", name, (double)v);
        return -1;
    }
    if (lua_isnil(L, idx))
        snprintf(err, errlen, "version %s has no weight", name);
    else if (lua_type(L, idx) == LUA_TSTRING)
        snprintf(err, errlen, "weight of %s must be an integer (got the string \"%.40s\")", name,
                 lua_tostring(L, idx));
    else
        snprintf(err, errlen, "weight of %s must be an integer (got a %s)", name, luaL_typename(L, idx));
    return -1;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const rw_entry *)a)->name, ((const rw_entry *)b)->name);
}

/* Reads {v1=50, ...} or { {name="v1", weight=50}, ... } at idx. Names stay
 * anchored by the table. Returns 0, or -1 with a message. */
static int read_set(lua_State *L, int idx, weight_set *ws, char *err, size_t errlen)
{
    luaL_checktype(L, idx, LUA_TTABLE);
    ws->n = 0;
    if (lua_rawlen(L, idx) > 0) {
        size_t len = lua_rawlen(L, idx);
        for (size_t i = 1; i <= len; i++) {
            const char *name;
            if (ws->n >= MAX_VERSIONS) {
                snprintf(err, errlen, "too many versions (more than %d)", MAX_VERSIONS);
                return -1;
            }
            lua_rawgeti(L, idx, (lua_Integer)i);
            if (!lua_istable(L, -1)) {
                snprintf(err, errlen, "entry %zu must be a table {name=, weight=}", i);
                lua_pop(L, 1);
                return -1;
            }
            lua_getfield(L, -1, "name");
            if (lua_type(L, -1) != LUA_TSTRING) {
                snprintf(err, errlen, "entry %zu has no version name", i);
                lua_pop(L, 2);
                return -1;
            }
            name = lua_tostring(L, -1); /* anchored by the entry, anchored by the list */
            lua_pop(L, 1);
            lua_getfield(L, -1, "weight");
            if (to_weight(L, -1, name, &ws->e[ws->n].weight, err, errlen) != 0) {
                lua_pop(L, 2);
                return -1;
            }
            lua_pop(L, 2);
            ws->e[ws->n].name = name;
            ws->n++;
        }
    } else {
        lua_pushnil(L);
        while (lua_next(L, idx) != 0) {
            const char *name;
            if (lua_type(L, -2) != LUA_TSTRING) {
                snprintf(err, errlen, "version names must be strings (got a %s key)", luaL_typename(L, -2));
                lua_pop(L, 2);
                return -1;
            }
            if (ws->n >= MAX_VERSIONS) {
                snprintf(err, errlen, "too many versions (more than %d)", MAX_VERSIONS);
                lua_pop(L, 2);
                return -1;
            }
            name = lua_tostring(L, -2);
            if (to_weight(L, -1, name, &ws->e[ws->n].weight, err, errlen) != 0) {
                lua_pop(L, 2);
                return -1;
            }
            ws->e[ws->n].name = name;
            ws->n++;
            lua_pop(L, 1);
        }
        /* deterministic order for messages and tie-breaks */
        qsort(ws->e, ws->n, sizeof ws->e[0], by_name);
    }
    return rw_validate(ws->e, ws->n, err, errlen);
}

static void check_set(lua_State *L, int idx, weight_set *ws)
{
    char err[256];
    if (read_set(L, idx, ws, err, sizeof err) != 0)
        luaL_error(L, "invalid weights: %s", err);
}

/* __tostring of result maps: "v1=34 v2=33 v3=33" in name order */
static int result_tostring(lua_State *L)
{
    luaL_Buffer b;
    const char *names[MAX_VERSIONS];
    size_t n = 0;
    lua_pushnil(L);
    while (lua_next(L, 1) != 0 && n < MAX_VERSIONS) {
        if (lua_type(L, -2) == LUA_TSTRING)
            names[n++] = lua_tostring(L, -2);
        lua_pop(L, 1);
    }
    for (size_t i = 1; i < n; i++) /* insertion sort: n is small */
        for (size_t j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0; j--) {
            const char *t = names[j];
            names[j] = names[j - 1];
            names[j - 1] = t;
        }
    luaL_buffinit(L, &b);
    for (size_t i = 0; i < n; i++) {
        lua_getfield(L, 1, names[i]);
        if (i > 0)
            luaL_addchar(&b, ' ');
        luaL_addstring(&b, names[i]);
        luaL_addchar(&b, '=');
        if (lua_isinteger(L, -1))
            lua_pushfstring(L, "%I", lua_tointeger(L, -1));
        else
            lua_pushfstring(L, "%s", lua_tostring(L, -1));
        lua_remove(L, -2);
        luaL_addvalue(&b);
    }
    luaL_pushresult(&b);
    return 1;
}

static void push_result_table(lua_State *L, size_t n)
{
    lua_createtable(L, 0, (int)n);
    if (luaL_newmetatable(L, "rollout.weights.result")) {
        lua_pushcfunction(L, result_tostring);
        lua_setfield(L, -2, "__tostring");
    }
    lua_setmetatable(L, -2);
}

/* weights.shares(set) -> {name = share} (floats summing to 1) */
static int w_shares(lua_State *L)
{
    weight_set ws;
    double share[MAX_VERSIONS];
    check_set(L, 1, &ws);
    rw_shares(ws.e, ws.n, share);
    push_result_table(L, ws.n);
    for (size_t i = 0; i < ws.n; i++) {
        lua_pushnumber(L, share[i]);
        lua_setfield(L, -2, ws.e[i].name);
    }
    return 1;
}

/* weights.percentages(set) -> {name = integer}, summing to exactly 100 */
static int w_percentages(lua_State *L)
{
    weight_set ws;
    int pct[MAX_VERSIONS];
    check_set(L, 1, &ws);
    rw_percentages(ws.e, ws.n, pct);
    push_result_table(L, ws.n);
    for (size_t i = 0; i < ws.n; i++) {
        lua_pushinteger(L, pct[i]);
        lua_setfield(L, -2, ws.e[i].name);
    }
    return 1;
}

/* weights.validate(set) -> true | nil, message, "invalid", "invalid" */
static int w_validate(lua_State *L)
{
    weight_set ws;
    char err[256];
    if (read_set(L, 1, &ws, err, sizeof err) != 0)
        return rollout_fail(L, ROLLOUT_E_INVALID, NULL, "%s", err);
    lua_pushboolean(L, 1);
    return 1;
}

/* weights.is_name(s) -> boolean: a DNS-1123 label */
static int w_is_name(lua_State *L)
{
    lua_pushboolean(L, lua_type(L, 1) == LUA_TSTRING && rw_is_dns1123_label(lua_tostring(L, 1)) &&
                           strlen(lua_tostring(L, 1)) == lua_rawlen(L, 1));
    return 1;
}

int luaopen_rollout_weights(lua_State *L)
{
    static const luaL_Reg funcs[] = {
        {"shares", w_shares},
        {"percentages", w_percentages},
        {"validate", w_validate},
        {"is_name", w_is_name},
        {NULL, NULL}};
    luaL_newlib(L, funcs);
    lua_pushinteger(L, RW_MAX_WEIGHT);
    lua_setfield(L, -2, "MAX_WEIGHT");
    return 1;
}
