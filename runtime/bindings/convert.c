/* What rollout.json and rollout.yaml share: the null sentinel, the
 * array/object markers, options, a userdata-owned buffer, number formatting,
 * positions, UTF-8 checks and the encoders' table walker. */
#include "rollout/convert.h"
#include "rollout/host.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <locale.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- null and markers --------------------------------------------------- */

void rc_push_null(lua_State *L)
{
    lua_pushlightuserdata(L, NULL);
}

int rc_is_null(lua_State *L, int idx)
{
    return lua_type(L, idx) == LUA_TLIGHTUSERDATA && lua_touserdata(L, idx) == NULL;
}

static void push_marker_mt(lua_State *L, int kind)
{
    const char *name = kind == RC_ARRAY ? RC_ARRAY_MT : RC_OBJECT_MT;
    if (luaL_newmetatable(L, name)) {
        lua_pushstring(L, kind == RC_ARRAY ? "array" : "object");
        lua_setfield(L, -2, "__jsontype");
    }
}

void rc_mark(lua_State *L, int idx, int kind)
{
    idx = lua_absindex(L, idx);
    push_marker_mt(L, kind);
    lua_setmetatable(L, idx);
}

int rc_marker(lua_State *L, int idx)
{
    int kind = RC_NONE;
    if (!lua_getmetatable(L, idx))
        return RC_NONE;
    lua_pushliteral(L, "__jsontype");
    if (lua_rawget(L, -2) == LUA_TSTRING) {
        const char *s = lua_tostring(L, -1);
        if (strcmp(s, "array") == 0)
            kind = RC_ARRAY;
        else if (strcmp(s, "object") == 0)
            kind = RC_OBJECT;
    }
    lua_pop(L, 2);
    return kind;
}

/* array([t]) / object([t]): marks t (or a new table) and returns it */
static int mark_arg(lua_State *L, int kind)
{
    if (lua_isnoneornil(L, 1)) {
        lua_settop(L, 0);
        lua_newtable(L);
    } else {
        luaL_checktype(L, 1, LUA_TTABLE);
        lua_settop(L, 1);
        if (lua_getmetatable(L, 1)) {
            lua_pop(L, 1);
            if (rc_marker(L, 1) == RC_NONE)
                return luaL_argerror(L, 1, "table already has a metatable");
        }
    }
    rc_mark(L, 1, kind);
    return 1;
}

static int l_array(lua_State *L)
{
    return mark_arg(L, RC_ARRAY);
}

static int l_object(lua_State *L)
{
    return mark_arg(L, RC_OBJECT);
}

void rc_register_common(lua_State *L)
{
    rc_push_null(L);
    lua_setfield(L, -2, "null");
    lua_pushcfunction(L, l_array);
    lua_setfield(L, -2, "array");
    lua_pushcfunction(L, l_object);
    lua_setfield(L, -2, "object");
}

/* ---- options ------------------------------------------------------------ */

void rc_check_opts(lua_State *L, int idx)
{
    if (!lua_isnoneornil(L, idx) && !lua_istable(L, idx))
        luaL_typeerror(L, idx, "table of options");
}

lua_Integer rc_opt_integer(lua_State *L, int idx, const char *field, lua_Integer def, lua_Integer lo,
                           lua_Integer hi)
{
    lua_Integer v = def;
    idx = lua_absindex(L, idx);
    lua_getfield(L, idx, field);
    if (!lua_isnil(L, -1)) {
        int ok;
        v = lua_tointegerx(L, -1, &ok);
        if (!ok || lua_type(L, -1) != LUA_TNUMBER)
            luaL_error(L, "option '%s' must be an integer (got %s)", field, luaL_typename(L, -1));
        if (v < lo || v > hi)
            luaL_error(L, "option '%s' must be between %I and %I (got %I)", field, lo, hi, v);
    }
    lua_pop(L, 1);
    return v;
}

void rc_read_opts(lua_State *L, int idx, rc_opts *o)
{
    o->max_depth = RC_DEFAULT_MAX_DEPTH;
    o->max_size = RC_DEFAULT_MAX_SIZE;
    o->name = NULL;
    rc_check_opts(L, idx);
    if (!lua_istable(L, idx))
        return;
    idx = lua_absindex(L, idx);
    o->max_depth = (int)rc_opt_integer(L, idx, "max_depth", RC_DEFAULT_MAX_DEPTH, 1, RC_LIMIT_MAX_DEPTH);
    o->max_size = (size_t)rc_opt_integer(L, idx, "max_size", RC_DEFAULT_MAX_SIZE, 0,
                                      (lua_Integer)(SIZE_MAX / 2 < (size_t)LUA_MAXINTEGER ? SIZE_MAX / 2
                                                                                           : LUA_MAXINTEGER));
    o->name = rollout_optfield_string(L, idx, "name", NULL);
}

/* ---- files -------------------------------------------------------------- */

int rc_fail_too_large(lua_State *L, const char *name, size_t max)
{
    char num[32];
    snprintf(num, sizeof num, "%zu", max);
    return rollout_fail(L, ROLLOUT_E_INVALID, NULL, "%s%sinput is larger than %s bytes (max_size)", name ? name : "",
                        name ? ": " : "", num);
}

int rc_read_file(lua_State *L, const char *path, size_t max)
{
    rbuf *b = rollout_newbuf(L);
    struct stat st;
    int fd, err = 0, too_big = 0;
    char chunk[16384];

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return rollout_fail_errno(L, errno, "%s", path);
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && (unsigned long long)st.st_size > max)
        too_big = 1;
    while (!too_big) {
        ssize_t n = read(fd, chunk, sizeof chunk);
        if (n < 0) {
            if (errno == EINTR && !rollout_interrupted())
                continue;
            err = errno;
            break;
        }
        if (n == 0)
            break;
        if ((size_t)n > max - b->len) {
            too_big = 1;
            break;
        }
        if (rbuf_add(b, chunk, (size_t)n) != 0) {
            err = ENOMEM;
            break;
        }
    }
    close(fd);
    if (too_big)
        return rc_fail_too_large(L, path, max);
    if (err != 0)
        return rollout_fail_errno(L, err, "%s", path);
    rollout_pushbuf(L, b);
    lua_remove(L, -2);
    return 1;
}

/* ---- numbers, positions, UTF-8 ------------------------------------------ */

int rc_format_double(double d, char *out, size_t outlen)
{
    char dp = localeconv()->decimal_point[0];
    int n = 0;
    for (int prec = 15; prec <= 17; prec++) {
        n = snprintf(out, outlen, "%.*g", prec, d);
        if (strtod(out, NULL) == d)
            break;
    }
    if (n < 0 || (size_t)n >= outlen)
        return snprintf(out, outlen, "0.0");
    if (dp != '.' && dp != '\0') {
        char *p = strchr(out, dp);
        if (p)
            *p = '.';
    }
    if (strpbrk(out, ".eEni") == NULL && (size_t)n + 2 < outlen) {
        out[n++] = '.';
        out[n++] = '0';
        out[n] = '\0';
    }
    return n;
}

void rc_position(const char *text, size_t len, size_t off, size_t *line, size_t *col)
{
    size_t l = 1, c = 1;
    if (off > len)
        off = len;
    for (size_t i = 0; i < off; i++) {
        unsigned char ch = (unsigned char)text[i];
        if (ch == '\n') {
            l++;
            c = 1;
        } else if ((ch & 0xC0) != 0x80) {
            c++;
        }
    }
    *line = l;
    *col = c;
}

size_t rc_utf8_seq(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t len;
    unsigned long cp;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
        cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10FFFF ||
        (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

/* ---- the encoders' table walker ----------------------------------------- */

void rc_walk_init(rc_walk *w, lua_State *L, const char *what, int max_depth)
{
    w->L = L;
    w->what = what;
    w->max_depth = max_depth;
    w->sort_keys = 1;
    w->key_order = 0;
    w->scalar_keys = 0;
    w->ud = NULL;
    w->depth = 0;
    w->visits = 0;
    lua_newtable(L);
    w->visiting = lua_gettop(L);
}

static int is_ident(const char *s, size_t n)
{
    if (n == 0 || !((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z') || s[0] == '_'))
        return 0;
    for (size_t i = 1; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9') ||
              s[i] == '_' || s[i] == '-'))
            return 0;
    return 1;
}

/* Appends a short description of the key at idx: name, [3], ["a b"], [true] */
static size_t describe_key(lua_State *L, int idx, int first, char *out, size_t outlen)
{
    int n;
    switch (lua_type(L, idx)) {
    case LUA_TSTRING: {
        size_t len;
        const char *s = lua_tolstring(L, idx, &len);
        if (is_ident(s, len))
            n = snprintf(out, outlen, "%s%.*s", first ? "" : ".", (int)(len > 60 ? 60 : len), s);
        else
            n = snprintf(out, outlen, "[\"%.*s%s\"]", (int)(len > 40 ? 40 : len), s, len > 40 ? "..." : "");
        break;
    }
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx))
            n = snprintf(out, outlen, "[" LUA_INTEGER_FMT "]", (LUAI_UACINT)lua_tointeger(L, idx));
        else
            n = snprintf(out, outlen, "[%.17g]", (double)lua_tonumber(L, idx));
        break;
    case LUA_TBOOLEAN:
        n = snprintf(out, outlen, "[%s]", lua_toboolean(L, idx) ? "true" : "false");
        break;
    default:
        n = snprintf(out, outlen, "[%s]", rc_is_null(L, idx) ? "null" : luaL_typename(L, idx));
        break;
    }
    if (n < 0)
        return 0;
    return (size_t)n < outlen ? (size_t)n : outlen - 1;
}

int rc_walk_error(rc_walk *w, const char *fmt, ...)
{
    char msg[1024];
    size_t at;
    va_list ap;
    int n = snprintf(msg, sizeof msg, "%s: ", w->what);
    at = n > 0 ? (size_t)n : 0;
    va_start(ap, fmt);
    n = vsnprintf(msg + at, sizeof msg - at, fmt, ap);
    va_end(ap);
    if (n > 0)
        at += (size_t)n < sizeof msg - at ? (size_t)n : sizeof msg - at - 1;
    if (w->depth > 0 && at + 8 < sizeof msg) {
        at += (size_t)snprintf(msg + at, sizeof msg - at, " (at ");
        for (int d = 0; d < w->depth && at + 8 < sizeof msg; d++)
            at += describe_key(w->L, w->path[d], d == 0, msg + at, sizeof msg - at - 2);
        if (at + 2 < sizeof msg) {
            msg[at++] = ')';
            msg[at] = '\0';
        }
    }
    lua_pushstring(w->L, msg);
    return lua_error(w->L);
}

/* What a table is: its kind and element count, or an error. */
typedef struct shape {
    size_t count;
    lua_Integer maxk;
    int all_pos;        /* every key is an integer >= 1 */
    int has_int;        /* some key is an integer */
    lua_Integer an_int; /* one of them */
    int has_str;
    int other_key;      /* some key is neither an integer nor a string */
    int other_scalar;   /* ... and it is a float, a boolean or null */
    char other[64];     /* a description of the first such key */
} shape;

static void measure(lua_State *L, int idx, shape *s)
{
    memset(s, 0, sizeof *s);
    s->all_pos = 1;
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        s->count++;
        if (lua_isinteger(L, -2)) {
            lua_Integer k = lua_tointeger(L, -2);
            if (!s->has_int) {
                s->has_int = 1;
                s->an_int = k;
            }
            if (k >= 1) {
                if (k > s->maxk)
                    s->maxk = k;
            } else {
                s->all_pos = 0;
            }
        } else {
            s->all_pos = 0;
            if (lua_type(L, -2) == LUA_TSTRING) {
                s->has_str = 1;
            } else if (!s->other_key) {
                s->other_key = 1;
                s->other_scalar = lua_type(L, -2) == LUA_TNUMBER || lua_type(L, -2) == LUA_TBOOLEAN ||
                                  rc_is_null(L, -2);
                if (lua_type(L, -2) == LUA_TNUMBER)
                    snprintf(s->other, sizeof s->other, "number %.17g", (double)lua_tonumber(L, -2));
                else if (lua_type(L, -2) == LUA_TBOOLEAN)
                    snprintf(s->other, sizeof s->other, "boolean %s", lua_toboolean(L, -2) ? "true" : "false");
                else if (rc_is_null(L, -2))
                    snprintf(s->other, sizeof s->other, "null");
                else
                    snprintf(s->other, sizeof s->other, "%s", luaL_typename(L, -2));
            }
        }
        lua_pop(L, 1);
    }
}

/* One object key, for sorting. */
typedef struct sortkey {
    size_t rank; /* position in key_order, SIZE_MAX when not listed */
    int cls;     /* 0 null, 1 boolean, 2 number, 3 string */
    int isint;
    lua_Integer i;
    double d;
    const char *s;
    size_t len;
    lua_Integer slot; /* index in the keys table */
} sortkey;

static int cmp_keys(const void *pa, const void *pb)
{
    const sortkey *a = pa, *b = pb;
    if (a->rank != b->rank)
        return a->rank < b->rank ? -1 : 1;
    if (a->cls != b->cls)
        return a->cls < b->cls ? -1 : 1;
    switch (a->cls) {
    case 1:
        return a->isint - b->isint; /* isint holds the boolean */
    case 2:
        if (a->isint && b->isint)
            return a->i < b->i ? -1 : a->i > b->i;
        return a->d < b->d ? -1 : a->d > b->d;
    case 3: {
        size_t n = a->len < b->len ? a->len : b->len;
        int c = memcmp(a->s, b->s, n);
        if (c != 0)
            return c;
        return a->len < b->len ? -1 : a->len > b->len;
    }
    default:
        return 0;
    }
}

static void walk_table(rc_walk *w, int idx);

void rc_walk_value(rc_walk *w, int idx)
{
    lua_State *L = w->L;
    idx = lua_absindex(L, idx);
    switch (lua_type(L, idx)) {
    case LUA_TNIL:
    case LUA_TBOOLEAN:
    case LUA_TNUMBER:
    case LUA_TSTRING:
        w->value(w, idx);
        return;
    case LUA_TLIGHTUSERDATA:
        if (rc_is_null(L, idx)) {
            w->value(w, idx);
            return;
        }
        break;
    case LUA_TTABLE:
        walk_table(w, idx);
        return;
    default:
        break;
    }
    rc_walk_error(w, "cannot encode a %s value", luaL_typename(L, idx));
}

static void walk_array(rc_walk *w, int idx, size_t n)
{
    lua_State *L = w->L;
    w->open(w, RC_ARRAY, n);
    for (size_t i = 1; i <= n; i++) {
        lua_pushinteger(L, (lua_Integer)i);
        w->path[w->depth++] = lua_gettop(L);
        w->elem(w, i - 1, 0);
        lua_rawgeti(L, idx, (lua_Integer)i);
        rc_walk_value(w, -1);
        lua_pop(L, 2);
        w->depth--;
    }
    w->close(w, RC_ARRAY, n);
}

static void walk_object(rc_walk *w, int idx, size_t n)
{
    lua_State *L = w->L;
    int keys;
    sortkey *sk;
    lua_Integer k = 0;

    lua_createtable(L, (int)(n < INT_MAX ? n : 0), 0);
    keys = lua_gettop(L);
    sk = lua_newuserdatauv(L, n * sizeof *sk + 1, 0);
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        sortkey *e = &sk[k];
        lua_pop(L, 1);
        lua_pushvalue(L, -1);
        lua_rawseti(L, keys, ++k);
        memset(e, 0, sizeof *e);
        e->slot = k;
        e->rank = SIZE_MAX;
        if (w->key_order != 0) {
            lua_pushvalue(L, -1);
            if (lua_rawget(L, w->key_order) == LUA_TNUMBER)
                e->rank = (size_t)lua_tointeger(L, -1);
            lua_pop(L, 1);
        }
        switch (lua_type(L, -1)) {
        case LUA_TBOOLEAN:
            e->cls = 1;
            e->isint = lua_toboolean(L, -1);
            break;
        case LUA_TNUMBER:
            e->cls = 2;
            e->isint = lua_isinteger(L, -1);
            e->i = lua_tointeger(L, -1);
            e->d = (double)lua_tonumber(L, -1);
            break;
        case LUA_TSTRING:
            e->cls = 3;
            e->s = lua_tolstring(L, -1, &e->len); /* anchored by the keys table */
            break;
        default:
            e->cls = 0;
            break;
        }
    }
    if (w->sort_keys && n > 1)
        qsort(sk, n, sizeof *sk, cmp_keys);
    w->open(w, RC_OBJECT, n);
    for (size_t i = 0; i < n; i++) {
        lua_rawgeti(L, keys, sk[i].slot);
        w->path[w->depth++] = lua_gettop(L);
        w->elem(w, i, lua_gettop(L));
        lua_pushvalue(L, -1);
        lua_rawget(L, idx);
        rc_walk_value(w, -1);
        lua_pop(L, 2);
        w->depth--;
    }
    w->close(w, RC_OBJECT, n);
    lua_pop(L, 2);
}

static void walk_table(rc_walk *w, int idx)
{
    lua_State *L = w->L;
    shape s;
    int mark, kind;

    if ((++w->visits & 4095) == 0)
        rollout_check_interrupt(L);
    if (w->depth >= w->max_depth)
        rc_walk_error(w, "nesting deeper than %d", w->max_depth);
    if (!lua_checkstack(L, 10))
        rc_walk_error(w, "nesting too deep for the Lua stack");
    lua_pushvalue(L, idx);
    if (lua_rawget(L, w->visiting) != LUA_TNIL)
        rc_walk_error(w, "cycle: a table contains itself");
    lua_pop(L, 1);

    measure(L, idx, &s);
    mark = rc_marker(L, idx);
    if (mark == RC_ARRAY) {
        if (s.count > 0 && !s.all_pos)
            rc_walk_error(w, "table marked as an array has a key that is not an index (%s)",
                          s.has_str ? "a string" : s.other_key ? s.other : "an integer below 1");
        if ((size_t)s.maxk != s.count)
            rc_walk_error(w, "sparse array: %zu items but largest index %lld", s.count, (long long)s.maxk);
        kind = RC_ARRAY;
    } else if (mark == RC_OBJECT) {
        if (!w->scalar_keys && s.has_int)
            rc_walk_error(w, "object keys must be strings (got integer key %lld)", (long long)s.an_int);
        if (s.other_key && !(w->scalar_keys && s.other_scalar))
            rc_walk_error(w, "cannot encode a table key of type %s%s", s.other,
                          w->scalar_keys ? "" : " (object keys must be strings)");
        kind = RC_OBJECT;
    } else if (s.count == 0) {
        kind = RC_OBJECT;
    } else if (s.all_pos) {
        if ((size_t)s.maxk != s.count)
            rc_walk_error(w, "sparse array: %zu items but largest index %lld", s.count, (long long)s.maxk);
        kind = RC_ARRAY;
    } else if (s.has_int) {
        rc_walk_error(w, "table has integer key %lld but is not an array with keys 1..n", (long long)s.an_int);
        return;
    } else if (s.other_key) {
        rc_walk_error(w, "cannot encode a table key of type %s (object keys must be strings)", s.other);
        return;
    } else {
        kind = RC_OBJECT;
    }

    lua_pushvalue(L, idx);
    lua_pushboolean(L, 1);
    lua_rawset(L, w->visiting);
    if (kind == RC_ARRAY)
        walk_array(w, idx, s.count);
    else
        walk_object(w, idx, s.count);
    lua_pushvalue(L, idx);
    lua_pushnil(L);
    lua_rawset(L, w->visiting);
}
