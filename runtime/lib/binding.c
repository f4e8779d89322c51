/* What every binding shares: failures returned as values (nil, message,
 * code, raw), the optional fields of an options table, a buffer a userdata
 * holds, require. */
#include "rollout/host.h"

#include <stdarg.h>
#include <string.h>

int rollout_fail(lua_State *L, rollout_code code, const char *raw, const char *fmt, ...)
{
    va_list ap;
    lua_pushnil(L);
    va_start(ap, fmt);
    lua_pushvfstring(L, fmt, ap);
    va_end(ap);
    lua_pushstring(L, rollout_code_name(code));
    lua_pushstring(L, raw != NULL ? raw : rollout_code_name(code));
    return 4;
}

int rollout_fail_errno(lua_State *L, int err, const char *fmt, ...)
{
    va_list ap;
    lua_pushnil(L);
    va_start(ap, fmt);
    lua_pushvfstring(L, fmt, ap);
    va_end(ap);
    lua_pushfstring(L, ": %s", strerror(err));
    lua_concat(L, 2);
    lua_pushstring(L, rollout_code_name(rollout_errno_code(err)));
    lua_pushstring(L, rollout_errno_name(err));
    return 4;
}

double rollout_optfield_number(lua_State *L, int idx, const char *field, double def)
{
    double v = def;
    idx = lua_absindex(L, idx);
    lua_getfield(L, idx, field);
    if (!lua_isnil(L, -1)) {
        int ok;
        v = lua_tonumberx(L, -1, &ok);
        if (!ok)
            luaL_error(L, "field '%s' must be a number (got %s)", field, luaL_typename(L, -1));
    }
    lua_pop(L, 1);
    return v;
}

const char *rollout_optfield_string(lua_State *L, int idx, const char *field, const char *def)
{
    const char *v = def;
    idx = lua_absindex(L, idx);
    lua_getfield(L, idx, field);
    if (!lua_isnil(L, -1)) {
        if (lua_type(L, -1) != LUA_TSTRING)
            luaL_error(L, "field '%s' must be a string (got %s)", field, luaL_typename(L, -1));
        v = lua_tostring(L, -1); /* anchored by the table */
    }
    lua_pop(L, 1);
    return v;
}

int rollout_optfield_boolean(lua_State *L, int idx, const char *field, int def)
{
    int v = def;
    idx = lua_absindex(L, idx);
    lua_getfield(L, idx, field);
    if (!lua_isnil(L, -1))
        v = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return v;
}

#define BUF_MT "rollout.buffer"

static int buf_gc(lua_State *L)
{
    rbuf_free(luaL_checkudata(L, 1, BUF_MT));
    return 0;
}

rbuf *rollout_newbuf(lua_State *L)
{
    rbuf *b = lua_newuserdatauv(L, sizeof *b, 0);
    *b = (rbuf)RBUF_INIT;
    if (luaL_newmetatable(L, BUF_MT)) {
        lua_pushcfunction(L, buf_gc);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, buf_gc);
        lua_setfield(L, -2, "__close");
    }
    lua_setmetatable(L, -2);
    return b;
}

void rollout_pushbuf(lua_State *L, rbuf *b)
{
    lua_pushlstring(L, b->p ? b->p : "", b->len);
    rbuf_free(b);
}

void rollout_require(lua_State *L, const char *name)
{
    lua_getglobal(L, "require");
    lua_pushstring(L, name);
    lua_call(L, 1, 1);
}
