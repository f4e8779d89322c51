/* rollout.yaml: load / load_all / load_file / dump on libyaml.
 *
 * Loading reads libyaml's events (not its document tree, so that nesting is
 * refused at the first level too deep, before anything else is built) and
 * builds Lua values. Errors are "name:line:col: message" with 1-based
 * positions (columns in characters), libyaml's context appended.
 *
 * Decisions (the Lua API is described in the report and the spec):
 *   - Schema: YAML 1.2 core for plain, untagged scalars. null/Null/NULL/~/
 *     empty -> null; true/True/TRUE/false/False/FALSE -> booleans; YAML 1.1's
 *     yes/no/on/off/y/n stay strings. [-+]?[0-9]+ (so 012 is 12), 0x.., 0o..
 *     -> integers; beyond int64 they become (approximate) floats. 1.5, -1e3,
 *     .5, 1., .inf, -.inf, .nan -> floats. Anything else is a string, and so
 *     is every quoted or block scalar.
 *   - Tags: !!str !!int !!float !!bool !!null convert (or refuse, with the
 *     position: "invalid !!int value 'abc'"); a core tag on the wrong kind of
 *     node (!!str [1], !!seq 1) is refused; the non-specific tag "!" makes a
 *     string; any other tag (!Ref, !!binary, !!timestamp...) is ignored: the
 *     value reads as if untagged.
 *   - Keys are scalars converted with the schema (1: x gives the integer key
 *     1), or aliases of scalars; collections and NaN are refused; a
 *     duplicate key is refused at the second one.
 *   - Merge keys are supported: a plain "<<" (or !!merge) whose value is a
 *     mapping or a list of mappings; explicit keys win, then the mappings in
 *     the order listed. A quoted "<<" is an ordinary key.
 *   - Anchors are per document and resolved by copying (tables keep their
 *     marker and their positions). Every node made counts against max_nodes
 *     (keys and copies included); an alias is checked before it is copied,
 *     so an alias bomb costs nothing. An anchor used inside itself is
 *     refused, as is an undefined alias.
 *   - load returns the first document; the rest of the stream is still
 *     parsed, so a syntax error further down refuses the whole input.
 *   - Positions (opts.positions): a second result, weak-keyed by table:
 *     pos[t] = {line=, col=, at = {key -> {line=, col=}}, keys = {...}}
 *     (keys for mappings); pos.root (load) or pos.roots[i] (load_all) is
 *     where a document's root node begins (1:1 when there is none), so a
 *     document that is a scalar can be located too.
 *
 * Dumping walks the value with the shared walker (runtime/convert.c) and
 * feeds libyaml's emitter (block style, 2-space indent, block sequences in
 * mappings not indented: libyaml's default; no line folding; UTF-8 output).
 * A string is single-quoted when a plain scalar would read back as something
 * else (null, booleans, numbers, "", "<<"), or when other YAML readers would
 * take it for a 1.1 boolean or a number (yes, no, on, 1.2.3, 2024-01-01...);
 * libyaml itself quotes what cannot be plain (": ", " #", leading
 * indicators, surrounding spaces). Multi-line strings are literal blocks,
 * except when they end with two or more newlines ("|+" would need a "..."
 * line) or cannot be blocks: then double-quoted. Floats print with the
 * fewest digits that read back (and ".0" when integral), .inf/-.inf/.nan.
 * Strings must be valid UTF-8 (else it raises).
 */
#include "rollout/convert.h"
#include "rollout/host.h"

#include <limits.h>
#include <locale.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#define TAG_PREFIX "tag:yaml.org,2002:"
#define TAG_PREFIX_LEN (sizeof TAG_PREFIX - 1)
#define DEFAULT_MAX_NODES 1000000

/* ---- the core schema (plain scalars) ------------------------------------ */

typedef enum ykind { YS_NULL, YS_BOOL, YS_INT, YS_FLOAT, YS_STR } ykind;

typedef struct yscalar {
    ykind kind;
    int b;
    lua_Integer i;
    double d;
} yscalar;

static int eq(const char *s, size_t n, const char *lit)
{
    return strlen(lit) == n && memcmp(s, lit, n) == 0;
}

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static int null_text(const char *s, size_t n)
{
    return n == 0 || eq(s, n, "~") || eq(s, n, "null") || eq(s, n, "Null") || eq(s, n, "NULL");
}

static int bool_text(const char *s, size_t n, int *b)
{
    if (eq(s, n, "true") || eq(s, n, "True") || eq(s, n, "TRUE")) {
        *b = 1;
        return 1;
    }
    if (eq(s, n, "false") || eq(s, n, "False") || eq(s, n, "FALSE")) {
        *b = 0;
        return 1;
    }
    return 0;
}

/* strtod on a copy with the locale's decimal point; s[0..n) is a float in
 * the core schema's syntax. */
static double text_to_double(const char *s, size_t n)
{
    char buf[128];
    char dp = localeconv()->decimal_point[0];
    if (n >= sizeof buf)
        return strtod(s, NULL); /* values from libyaml and Lua end with a NUL */
    memcpy(buf, s, n);
    buf[n] = '\0';
    if (dp != '.' && dp != '\0') {
        char *p = strchr(buf, '.');
        if (p)
            *p = dp;
    }
    return strtod(buf, NULL);
}

/* [-+]?[0-9]+ | 0o[0-7]+ | 0x[0-9a-fA-F]+. Beyond int64: a float. */
static int int_text(const char *s, size_t n, yscalar *v)
{
    size_t i = 0;
    int neg = 0, base = 10;
    unsigned long long acc = 0, limit;
    double d = 0;
    int overflow = 0;
    if (n >= 3 && s[0] == '0' && (s[1] == 'o' || s[1] == 'x')) {
        base = s[1] == 'o' ? 8 : 16;
        i = 2;
    } else if (n > 0 && (s[0] == '-' || s[0] == '+')) {
        neg = s[0] == '-';
        i = 1;
    }
    if (i >= n)
        return 0;
    limit = neg ? (unsigned long long)LLONG_MAX + 1ULL : (unsigned long long)LLONG_MAX;
    for (; i < n; i++) {
        int dv = base == 16 ? hex_value(s[i]) : is_digit(s[i]) ? s[i] - '0' : -1;
        if (dv < 0 || dv >= base)
            return 0;
        d = d * base + dv;
        if (!overflow && acc > (limit - (unsigned)dv) / (unsigned)base)
            overflow = 1;
        else if (!overflow)
            acc = acc * (unsigned)base + (unsigned)dv;
    }
    if (overflow) {
        v->kind = YS_FLOAT;
        v->d = base == 10 ? text_to_double(s, n) : d;
        return 1;
    }
    v->kind = YS_INT;
    if (neg)
        v->i = acc == (unsigned long long)LLONG_MAX + 1ULL ? LUA_MININTEGER : -(lua_Integer)acc;
    else
        v->i = (lua_Integer)acc;
    return 1;
}

/* [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)? | [-+]?\.(inf|Inf|INF)
 * | \.(nan|NaN|NAN) */
static int float_text(const char *s, size_t n, double *d)
{
    size_t i = 0, digits = 0;
    int neg = 0;
    if (eq(s, n, ".nan") || eq(s, n, ".NaN") || eq(s, n, ".NAN")) {
        *d = NAN;
        return 1;
    }
    if (n > 0 && (s[0] == '-' || s[0] == '+')) {
        neg = s[0] == '-';
        i = 1;
    }
    if (eq(s + i, n - i, ".inf") || eq(s + i, n - i, ".Inf") || eq(s + i, n - i, ".INF")) {
        *d = neg ? -HUGE_VAL : HUGE_VAL;
        return 1;
    }
    while (i < n && is_digit(s[i])) {
        i++;
        digits++;
    }
    if (i < n && s[i] == '.') {
        size_t frac = 0;
        i++;
        while (i < n && is_digit(s[i])) {
            i++;
            frac++;
        }
        if (digits == 0 && frac == 0)
            return 0;
        digits += frac;
    }
    if (digits == 0)
        return 0;
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        size_t exp = 0;
        i++;
        if (i < n && (s[i] == '-' || s[i] == '+'))
            i++;
        while (i < n && is_digit(s[i])) {
            i++;
            exp++;
        }
        if (exp == 0)
            return 0;
    }
    if (i != n)
        return 0;
    *d = text_to_double(s, n);
    return 1;
}

/* What a plain, untagged scalar means. */
static ykind resolve_plain(const char *s, size_t n, yscalar *v)
{
    v->kind = YS_STR;
    if (null_text(s, n))
        v->kind = YS_NULL;
    else if (bool_text(s, n, &v->b))
        v->kind = YS_BOOL;
    else if (int_text(s, n, v))
        ; /* kind set */
    else if (float_text(s, n, &v->d))
        v->kind = YS_FLOAT;
    return v->kind;
}

static void push_scalar(lua_State *L, const yscalar *v, const char *s, size_t n)
{
    switch (v->kind) {
    case YS_NULL:
        rc_push_null(L);
        break;
    case YS_BOOL:
        lua_pushboolean(L, v->b);
        break;
    case YS_INT:
        lua_pushinteger(L, v->i);
        break;
    case YS_FLOAT:
        lua_pushnumber(L, (lua_Number)v->d);
        break;
    default:
        lua_pushlstring(L, s, n);
        break;
    }
}

/* ---- the parser, owned by a userdata ------------------------------------ */

#define PARSER_MT "rollout.yaml.parser"

typedef struct yparser {
    yaml_parser_t p;
    yaml_event_t ev;
    int has_p, has_ev;
} yparser;

static int parser_close(lua_State *L)
{
    yparser *y = luaL_checkudata(L, 1, PARSER_MT);
    if (y->has_ev) {
        yaml_event_delete(&y->ev);
        y->has_ev = 0;
    }
    if (y->has_p) {
        yaml_parser_delete(&y->p);
        y->has_p = 0;
    }
    return 0;
}

static yparser *new_parser(lua_State *L)
{
    yparser *y = lua_newuserdatauv(L, sizeof *y, 0);
    y->has_p = y->has_ev = 0;
    if (luaL_newmetatable(L, PARSER_MT)) {
        lua_pushcfunction(L, parser_close);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, parser_close);
        lua_setfield(L, -2, "__close");
    }
    lua_setmetatable(L, -2);
    if (!yaml_parser_initialize(&y->p))
        luaL_error(L, "yaml: not enough memory");
    y->has_p = 1;
    return y;
}

/* ---- loading ------------------------------------------------------------ */

typedef struct yctx {
    lua_State *L;
    yparser *y;
    const char *text;
    size_t len;
    int max_depth;
    lua_Integer max_nodes, nodes;
    int pos;     /* stack index of the weak positions table, 0 when off */
    int anchors; /* stack index of {anchor -> {v=, n=, h=}} (this document) */
    int inprog;  /* stack index of {anchor -> count} being defined */
    int roots;   /* stack index of the list of documents' root marks, 0 when off */
    unsigned long events;
    size_t eline, ecol;
    size_t end_line, end_col; /* where the text ends (yaml_position) */
    char emsg[400];
} yctx;

static int yerr(yctx *c, yaml_mark_t m, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* 1-based line and column (in characters) of byte offset off, counted the
 * way libyaml counts its marks: CR, LF, CRLF, NEL, LS and PS end a line, and
 * a leading byte order mark is not a column. For the reader's errors, which
 * libyaml gives as a byte offset: rc_position counts LF only. */
static void yaml_position(const char *text, size_t len, size_t off, size_t *line, size_t *col)
{
    const unsigned char *s = (const unsigned char *)text;
    size_t l = 1, c = 1, i = 0;
    if (off > len)
        off = len;
    if (len >= 3 && s[0] == 0xEF && s[1] == 0xBB && s[2] == 0xBF)
        i = 3;
    while (i < off) {
        size_t brk = 0;
        if (s[i] == '\r')
            brk = i + 1 < len && s[i + 1] == '\n' ? 2 : 1;
        else if (s[i] == '\n')
            brk = 1;
        else if (s[i] == 0xC2 && i + 1 < len && s[i + 1] == 0x85)
            brk = 2;
        else if (s[i] == 0xE2 && i + 2 < len && s[i + 1] == 0x80 && (s[i + 2] == 0xA8 || s[i + 2] == 0xA9))
            brk = 3;
        if (brk > 0) {
            l++;
            c = 1;
            i += brk;
            continue;
        }
        if ((s[i] & 0xC0) != 0x80)
            c++;
        i++;
    }
    *line = l;
    *col = c;
}

/* The 1-based position of a mark, in messages and positions. At the end of
 * a text without a final line break libyaml "forces a new line": its mark
 * is then on a line the text does not have; the end of the text is given
 * instead. */
static void mark_position(const yctx *c, yaml_mark_t m, size_t *line, size_t *col)
{
    *line = m.line + 1;
    *col = m.column + 1;
    if (*line > c->end_line || (*line == c->end_line && *col > c->end_col)) {
        *line = c->end_line;
        *col = c->end_col;
    }
}

static int yerr(yctx *c, yaml_mark_t m, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->emsg, sizeof c->emsg, fmt, ap);
    va_end(ap);
    mark_position(c, m, &c->eline, &c->ecol);
    return -1;
}

static int parser_error(yctx *c)
{
    yaml_parser_t *p = &c->y->p;
    const char *problem = p->problem ? p->problem : "unknown error";
    switch (p->error) {
    case YAML_MEMORY_ERROR:
        return luaL_error(c->L, "yaml: not enough memory");
    case YAML_READER_ERROR:
        yaml_position(c->text, c->len, p->problem_offset, &c->eline, &c->ecol);
        if (p->problem_value != -1)
            snprintf(c->emsg, sizeof c->emsg, "%s (#%X)", problem, (unsigned)p->problem_value);
        else
            snprintf(c->emsg, sizeof c->emsg, "%s", problem);
        return -1;
    default:
        if (p->context != NULL) {
            size_t line, col;
            mark_position(c, p->context_mark, &line, &col);
            return yerr(c, p->problem_mark, "%s (%s at line %zu, column %zu)", problem, p->context, line, col);
        }
        return yerr(c, p->problem_mark, "%s", problem);
    }
}

static int next_event(yctx *c)
{
    yparser *y = c->y;
    if (y->has_ev) {
        yaml_event_delete(&y->ev);
        y->has_ev = 0;
    }
    if ((++c->events & 4095) == 0)
        rollout_check_interrupt(c->L);
    if (!yaml_parser_parse(&y->p, &y->ev))
        return parser_error(c);
    y->has_ev = 1;
    return 0;
}

static int too_many_nodes(yctx *c, yaml_mark_t m)
{
    return yerr(c, m, "more than %lld nodes (max_nodes)", (long long)c->max_nodes);
}

/* Pushes {line=, col=} (1-based) */
static void push_mark(yctx *c, yaml_mark_t m)
{
    lua_State *L = c->L;
    size_t line, col;
    mark_position(c, m, &line, &col);
    lua_createtable(L, 0, 2);
    lua_pushinteger(L, (lua_Integer)line);
    lua_setfield(L, -2, "line");
    lua_pushinteger(L, (lua_Integer)col);
    lua_setfield(L, -2, "col");
}

/* pos[t] = {line=, col=, at={}, keys={}}; pushes at (and keys for maps) */
static void new_pos_entry(yctx *c, int t, yaml_mark_t m, int is_map)
{
    lua_State *L = c->L;
    push_mark(c, m);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, "at");
    if (is_map) {
        lua_newtable(L);
        lua_pushvalue(L, -1);
        lua_setfield(L, -4, "keys");
    }
    lua_pushvalue(L, t);
    lua_pushvalue(L, -2 - is_map - 1);
    lua_rawset(L, c->pos);
    lua_remove(L, -2 - is_map); /* the entry: keep at (and keys) */
}

/* A short text for a key in messages: 'name', 3, true, null */
static void key_text(lua_State *L, int idx, char *out, size_t outlen)
{
    size_t n;
    const char *s;
    switch (lua_type(L, idx)) {
    case LUA_TSTRING:
        s = lua_tolstring(L, idx, &n);
        snprintf(out, outlen, "'%.*s%s'", (int)(n > 60 ? 60 : n), s, n > 60 ? "..." : "");
        break;
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx))
            snprintf(out, outlen, "%lld", (long long)lua_tointeger(L, idx));
        else
            snprintf(out, outlen, "%.17g", (double)lua_tonumber(L, idx));
        break;
    case LUA_TBOOLEAN:
        snprintf(out, outlen, "%s", lua_toboolean(L, idx) ? "true" : "false");
        break;
    default:
        snprintf(out, outlen, "null");
        break;
    }
}

static int is_core_tag(const char *t)
{
    static const char *const names[] = {"str", "int", "float", "bool", "null", "seq", "map"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(t, names[i]) == 0)
            return 1;
    return 0;
}

/* Pushes the value of the current scalar event: the core schema for plain
 * untagged scalars, the standard tags, other tags ignored. */
static int scalar_value(yctx *c)
{
    const yaml_event_t *ev = &c->y->ev;
    const char *s = (const char *)ev->data.scalar.value;
    size_t n = ev->data.scalar.length;
    const char *tag = (const char *)ev->data.scalar.tag;
    int plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
    int shown = (int)(n > 40 ? 40 : n);
    yscalar v;

    v.kind = YS_STR;
    if (tag != NULL && strncmp(tag, TAG_PREFIX, TAG_PREFIX_LEN) == 0 && is_core_tag(tag + TAG_PREFIX_LEN)) {
        const char *t = tag + TAG_PREFIX_LEN;
        if (strcmp(t, "str") == 0) {
            v.kind = YS_STR;
        } else if (strcmp(t, "int") == 0) {
            if (!int_text(s, n, &v) || v.kind != YS_INT)
                return yerr(c, ev->start_mark, "invalid !!int value '%.*s'", shown, s);
        } else if (strcmp(t, "float") == 0) {
            if (int_text(s, n, &v)) {
                if (v.kind == YS_INT)
                    v.d = (double)v.i;
                v.kind = YS_FLOAT;
            } else if (float_text(s, n, &v.d)) {
                v.kind = YS_FLOAT;
            } else {
                return yerr(c, ev->start_mark, "invalid !!float value '%.*s'", shown, s);
            }
        } else if (strcmp(t, "bool") == 0) {
            if (!bool_text(s, n, &v.b))
                return yerr(c, ev->start_mark, "invalid !!bool value '%.*s'", shown, s);
            v.kind = YS_BOOL;
        } else if (strcmp(t, "null") == 0) {
            if (!null_text(s, n))
                return yerr(c, ev->start_mark, "invalid !!null value '%.*s'", shown, s);
            v.kind = YS_NULL;
        } else {
            return yerr(c, ev->start_mark, "!!%s tag on a scalar", t);
        }
    } else if (tag != NULL && strcmp(tag, "!") == 0) {
        v.kind = YS_STR; /* the non-specific tag: a string */
    } else if (plain) {
        resolve_plain(s, n, &v); /* untagged, or a tag we do not know */
    }
    push_scalar(c->L, &v, s, n);
    return 0;
}

/* !!str on a mapping and the like */
static int check_collection_tag(yctx *c, const yaml_char_t *utag, const char *want, yaml_mark_t m)
{
    const char *tag = (const char *)utag;
    if (tag == NULL || strncmp(tag, TAG_PREFIX, TAG_PREFIX_LEN) != 0)
        return 0;
    tag += TAG_PREFIX_LEN;
    if (strcmp(tag, want) == 0 || !is_core_tag(tag))
        return 0;
    return yerr(c, m, "!!%s tag on a %s", tag, strcmp(want, "seq") == 0 ? "sequence" : "mapping");
}

/* anchors[name at name_idx] = {v = value on top, n = count, h = height} */
static void register_anchor(yctx *c, int name_idx, lua_Integer count, int height)
{
    lua_State *L = c->L;
    lua_pushvalue(L, name_idx);
    lua_createtable(L, 0, 3);
    lua_pushvalue(L, -3);
    lua_setfield(L, -2, "v");
    lua_pushinteger(L, count);
    lua_setfield(L, -2, "n");
    lua_pushinteger(L, height);
    lua_setfield(L, -2, "h");
    lua_rawset(L, c->anchors);
}

static void inprog_add(yctx *c, int name_idx, int delta)
{
    lua_State *L = c->L;
    lua_Integer k;
    lua_pushvalue(L, name_idx);
    lua_rawget(L, c->inprog);
    k = lua_tointeger(L, -1) + delta;
    lua_pop(L, 1);
    lua_pushvalue(L, name_idx);
    if (k > 0)
        lua_pushinteger(L, k);
    else
        lua_pushnil(L);
    lua_rawset(L, c->inprog);
}

/* Pushes a deep copy of the value at idx (tables keep their marker and
 * their positions). The depth was checked by the caller. */
static void copy_value(yctx *c, int idx)
{
    lua_State *L = c->L;
    int t;
    idx = lua_absindex(L, idx);
    if (!lua_istable(L, idx)) {
        lua_pushvalue(L, idx);
        return;
    }
    luaL_checkstack(L, 8, "yaml: nesting too deep");
    lua_createtable(L, (int)lua_rawlen(L, idx), 0);
    t = lua_gettop(L);
    if (lua_getmetatable(L, idx))
        lua_setmetatable(L, t);
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        lua_pushvalue(L, -2);
        copy_value(c, -2);
        lua_rawset(L, t);
        lua_pop(L, 1);
    }
    if (c->pos != 0) {
        lua_pushvalue(L, t);
        lua_pushvalue(L, idx);
        lua_rawget(L, c->pos);
        lua_rawset(L, c->pos);
    }
}

static int build(yctx *c, int depth, lua_Integer *count, int *height);

static int build_scalar(yctx *c, lua_Integer *count, int *height)
{
    lua_State *L = c->L;
    const yaml_event_t *ev = &c->y->ev;
    if (++c->nodes > c->max_nodes)
        return too_many_nodes(c, ev->start_mark);
    if (scalar_value(c) != 0)
        return -1;
    *count = 1;
    *height = 0;
    if (ev->data.scalar.anchor != NULL) {
        lua_pushstring(L, (const char *)ev->data.scalar.anchor);
        lua_insert(L, -2);
        register_anchor(c, -2, 1, 0);
        lua_remove(L, -2);
    }
    return 0;
}

static int build_alias(yctx *c, int depth, lua_Integer *count, int *height)
{
    lua_State *L = c->L;
    const yaml_event_t *ev = &c->y->ev;
    const char *name = (const char *)ev->data.alias.anchor;
    yaml_mark_t m = ev->start_mark;
    lua_Integer n;
    int h;

    lua_pushstring(L, name);
    if (lua_rawget(L, c->anchors) == LUA_TNIL) {
        lua_pushstring(L, name);
        if (lua_rawget(L, c->inprog) != LUA_TNIL)
            return yerr(c, m, "recursive alias '*%.60s' (an anchor used inside itself) is not supported", name);
        return yerr(c, m, "undefined alias '*%.60s'", name);
    }
    lua_getfield(L, -1, "n");
    n = lua_tointeger(L, -1);
    lua_getfield(L, -2, "h");
    h = (int)lua_tointeger(L, -1);
    lua_pop(L, 2);
    if (n > c->max_nodes - c->nodes)
        return yerr(c, m, "alias '*%.60s' would make the document larger than %lld nodes (max_nodes)", name,
                    (long long)c->max_nodes);
    if (depth + h > c->max_depth)
        return yerr(c, m, "nesting deeper than %d (through alias '*%.60s')", c->max_depth, name);
    lua_getfield(L, -1, "v");
    copy_value(c, -1);
    lua_replace(L, -3);
    lua_pop(L, 1);
    c->nodes += n;
    *count = n;
    *height = h;
    return 0;
}

/* Checks the value of a merge key (on top) and appends the mappings it
 * names to the list at merges. */
static int add_merge(yctx *c, int merges, yaml_mark_t vm)
{
    lua_State *L = c->L;
    int v = lua_gettop(L);
    static const char bad[] = "the value of the merge key '<<' must be a mapping or a list of mappings";
    if (!lua_istable(L, v))
        return yerr(c, vm, "%s", bad);
    if (rc_marker(L, v) == RC_OBJECT) {
        lua_pushvalue(L, v);
        lua_rawseti(L, merges, (lua_Integer)lua_rawlen(L, merges) + 1);
        return 0;
    }
    for (lua_Integer i = 1; i <= (lua_Integer)lua_rawlen(L, v); i++) {
        lua_rawgeti(L, v, i);
        if (!lua_istable(L, -1) || rc_marker(L, -1) != RC_OBJECT)
            return yerr(c, vm, "%s", bad);
        lua_rawseti(L, merges, (lua_Integer)lua_rawlen(L, merges) + 1);
    }
    return 0;
}

/* Copies the keys of the merged mappings that t does not have; the first
 * mapping listed wins over later ones, explicit keys over all. */
static void apply_merges(yctx *c, int t, int merges, int at, int keys)
{
    lua_State *L = c->L;
    for (lua_Integer j = 1; j <= (lua_Integer)lua_rawlen(L, merges); j++) {
        int src, src_at = 0, src_keys = 0;
        lua_rawgeti(L, merges, j);
        src = lua_gettop(L);
        if (c->pos != 0) {
            lua_pushvalue(L, src);
            if (lua_rawget(L, c->pos) == LUA_TTABLE) {
                lua_getfield(L, -1, "at");
                lua_getfield(L, -2, "keys");
                src_at = src + 2;
                src_keys = src + 3;
            }
        }
        lua_pushnil(L);
        while (lua_next(L, src) != 0) {
            lua_pushvalue(L, -2);
            if (lua_rawget(L, t) == LUA_TNIL) {
                lua_pop(L, 1);
                lua_pushvalue(L, -2);
                lua_pushvalue(L, -2);
                lua_rawset(L, t);
                if (src_at != 0 && lua_istable(L, src_at) && lua_istable(L, src_keys)) {
                    lua_pushvalue(L, -2);
                    lua_pushvalue(L, -1);
                    lua_rawget(L, src_at);
                    lua_rawset(L, at);
                    lua_pushvalue(L, -2);
                    lua_pushvalue(L, -1);
                    lua_rawget(L, src_keys);
                    lua_rawset(L, keys);
                }
            } else {
                lua_pop(L, 1);
            }
            lua_pop(L, 1);
        }
        lua_settop(L, src - 1);
    }
}

static int is_merge_key(const yaml_event_t *ev)
{
    const char *tag = (const char *)ev->data.scalar.tag;
    return ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE && ev->data.scalar.length == 2 &&
           memcmp(ev->data.scalar.value, "<<", 2) == 0 && (tag == NULL || strcmp(tag, TAG_PREFIX "merge") == 0);
}

/* A collection being built: its stack slots and what it counted so far. */
typedef struct ycoll {
    int is_map;
    const yaml_char_t *anchor;
    int name;    /* stack index of the anchor's name, or of nil */
    int t;       /* stack index of the table */
    int at;      /* stack index of pos[t].at, 0 when positions are off */
    int keys;    /* stack index of pos[t].keys (maps), else 0 */
    int merges;  /* stack index of the list of merged mappings, 0 if none */
    int h;       /* height */
    lua_Integer total, i; /* nodes made; items of a sequence */
} ycoll;

/* Checks the start event (depth, stack, tag, node budget) and pushes the
 * anchor's name (or nil) and the new table with its positions. */
static int open_collection(yctx *c, int depth, ycoll *col)
{
    lua_State *L = c->L;
    const yaml_event_t *ev = &c->y->ev;
    yaml_mark_t m = ev->start_mark;

    col->is_map = ev->type == YAML_MAPPING_START_EVENT;
    col->anchor = col->is_map ? ev->data.mapping_start.anchor : ev->data.sequence_start.anchor;
    col->name = col->t = col->at = col->keys = col->merges = 0;
    col->h = 1;
    col->total = 1;
    col->i = 0;
    if (depth + 1 > c->max_depth)
        return yerr(c, m, "nesting deeper than %d", c->max_depth);
    if (!lua_checkstack(L, 24))
        return yerr(c, m, "nesting too deep for the Lua stack");
    if (check_collection_tag(c, col->is_map ? ev->data.mapping_start.tag : ev->data.sequence_start.tag,
                             col->is_map ? "map" : "seq", m) != 0)
        return -1;
    if (++c->nodes > c->max_nodes)
        return too_many_nodes(c, m);
    if (col->anchor != NULL)
        lua_pushstring(L, (const char *)col->anchor);
    else
        lua_pushnil(L);
    col->name = lua_gettop(L);
    if (col->anchor != NULL)
        inprog_add(c, col->name, 1);
    lua_newtable(L);
    col->t = lua_gettop(L);
    rc_mark(L, col->t, col->is_map ? RC_OBJECT : RC_ARRAY);
    if (c->pos != 0) {
        new_pos_entry(c, col->t, m, col->is_map);
        col->at = col->t + 1;
        col->keys = col->is_map ? col->t + 2 : 0;
    }
    return 0;
}

/* Pushes the key of a mapping entry (the current event; nothing for the
 * merge key '<<', which sets *merge), checks it is a new scalar, and moves
 * on to the value's first event. */
static int build_key(yctx *c, int depth, ycoll *col, int *merge)
{
    lua_State *L = c->L;
    const yaml_event_t *ev = &c->y->ev;
    yaml_mark_t km = ev->start_mark;
    lua_Integer n;
    int ch;
    char ktext[96];

    if (ev->type == YAML_SCALAR_EVENT && is_merge_key(ev)) {
        *merge = 1;
        if (++c->nodes > c->max_nodes)
            return too_many_nodes(c, km);
        n = 1;
    } else if (ev->type == YAML_SCALAR_EVENT) {
        if (build_scalar(c, &n, &ch) != 0)
            return -1;
    } else if (ev->type == YAML_ALIAS_EVENT) {
        if (build_alias(c, depth + 1, &n, &ch) != 0)
            return -1;
        if (lua_istable(L, -1))
            return yerr(c, km, "mapping keys must be scalars (alias '*%.60s' is a collection)",
                        (const char *)ev->data.alias.anchor);
    } else {
        return yerr(c, km, "mapping keys must be scalars");
    }
    col->total += n;
    if (!*merge) {
        if (lua_type(L, -1) == LUA_TNUMBER && isnan((double)lua_tonumber(L, -1)))
            return yerr(c, km, "a mapping key cannot be NaN");
        lua_pushvalue(L, -1);
        if (lua_rawget(L, col->t) != LUA_TNIL) {
            key_text(L, -2, ktext, sizeof ktext);
            return yerr(c, km, "duplicate key %s", ktext);
        }
        lua_pop(L, 1);
    }
    return next_event(c);
}

/* Stores the value on top (with its key below it in a mapping) into the
 * table, with its positions; a merge key's value joins the merges. */
static int store_entry(yctx *c, ycoll *col, int merge, yaml_mark_t km, yaml_mark_t vm)
{
    lua_State *L = c->L;
    if (!col->is_map) {
        lua_rawseti(L, col->t, ++col->i);
        if (col->at != 0) {
            push_mark(c, vm);
            lua_rawseti(L, col->at, col->i);
        }
    } else if (merge) {
        if (col->merges == 0) {
            lua_newtable(L);
            lua_insert(L, -2);
            col->merges = lua_gettop(L) - 1;
        }
        if (add_merge(c, col->merges, vm) != 0)
            return -1;
        lua_pop(L, 1);
    } else {
        if (col->at != 0) {
            lua_pushvalue(L, -2);
            push_mark(c, vm);
            lua_rawset(L, col->at);
            lua_pushvalue(L, -2);
            push_mark(c, km);
            lua_rawset(L, col->keys);
        }
        lua_rawset(L, col->t);
    }
    return 0;
}

/* After the end event: applies the merges, leaves only the table on the
 * stack and registers it under its anchor. */
static void close_collection(yctx *c, const ycoll *col)
{
    lua_State *L = c->L;
    if (col->merges != 0)
        apply_merges(c, col->t, col->merges, col->at, col->keys);
    lua_settop(L, col->t);
    if (col->anchor != NULL) {
        inprog_add(c, col->name, -1);
        register_anchor(c, col->name, col->total, col->h);
    }
    lua_remove(L, col->name);
}

/* A sequence or a mapping: the current event is its start. */
static int build_collection(yctx *c, int depth, lua_Integer *count, int *height)
{
    const yaml_event_t *ev = &c->y->ev;
    ycoll col;

    if (open_collection(c, depth, &col) != 0)
        return -1;
    for (;;) {
        yaml_mark_t km, vm;
        lua_Integer n;
        int ch, merge = 0;
        if (next_event(c) != 0)
            return -1;
        if (ev->type == YAML_SEQUENCE_END_EVENT || ev->type == YAML_MAPPING_END_EVENT)
            break;
        km = ev->start_mark;
        if (col.is_map && build_key(c, depth, &col, &merge) != 0)
            return -1;
        vm = ev->start_mark;
        if (build(c, depth + 1, &n, &ch) != 0)
            return -1;
        col.total += n;
        if (ch + 1 > col.h)
            col.h = ch + 1;
        if (store_entry(c, &col, merge, km, vm) != 0)
            return -1;
    }
    close_collection(c, &col);
    *count = col.total;
    *height = col.h;
    return 0;
}

/* Pushes the value of the node whose first event is current. depth: the
 * collections around it. Out: the nodes it made, its height. */
static int build(yctx *c, int depth, lua_Integer *count, int *height)
{
    switch (c->y->ev.type) {
    case YAML_SCALAR_EVENT:
        return build_scalar(c, count, height);
    case YAML_ALIAS_EVENT:
        return build_alias(c, depth, count, height);
    case YAML_SEQUENCE_START_EVENT:
    case YAML_MAPPING_START_EVENT:
        return build_collection(c, depth, count, height);
    default:
        return yerr(c, c->y->ev.start_mark, "unexpected YAML event %d", (int)c->y->ev.type);
    }
}

/* Parses the stream; appends documents to the list at results (only the
 * first one unless all; the rest is still checked). */
static int run(yctx *c, int all, int results)
{
    lua_State *L = c->L;
    lua_Integer docs = 0;
    if (next_event(c) != 0) /* stream start */
        return -1;
    for (;;) {
        lua_Integer n;
        int h;
        if (next_event(c) != 0)
            return -1;
        if (c->y->ev.type == YAML_STREAM_END_EVENT)
            return 0;
        if (docs > 0 && !all)
            continue; /* syntax only */
        if (c->y->ev.type != YAML_DOCUMENT_START_EVENT)
            return yerr(c, c->y->ev.start_mark, "unexpected YAML event %d", (int)c->y->ev.type);
        lua_newtable(L); /* anchors are per document */
        lua_replace(L, c->anchors);
        if (next_event(c) != 0)
            return -1;
        if (c->roots != 0) {
            push_mark(c, c->y->ev.start_mark);
            lua_rawseti(L, c->roots, docs + 1);
        }
        if (build(c, 0, &n, &h) != 0)
            return -1;
        lua_rawseti(L, results, ++docs);
        if (next_event(c) != 0) /* document end */
            return -1;
    }
}

typedef struct yopts {
    rc_opts o;
    int positions;
    lua_Integer max_nodes;
} yopts;

static void read_yopts(lua_State *L, int idx, yopts *yo)
{
    rc_read_opts(L, idx, &yo->o);
    yo->positions = 0;
    yo->max_nodes = DEFAULT_MAX_NODES;
    if (lua_istable(L, idx)) {
        yo->positions = rollout_optfield_boolean(L, idx, "positions", 0);
        yo->max_nodes = rc_opt_integer(L, idx, "max_nodes", DEFAULT_MAX_NODES, 1, LUA_MAXINTEGER / 2);
    }
}

/* Loads text (anchored by the caller) and returns the Lua results. */
static int load_text(lua_State *L, const char *text, size_t len, const yopts *yo, const char *name, int all)
{
    int base = lua_gettop(L), results, rc;
    yctx c;

    if (len > yo->o.max_size)
        return rc_fail_too_large(L, name, yo->o.max_size);
    memset(&c, 0, sizeof c);
    c.L = L;
    c.text = text;
    c.len = len;
    c.max_depth = yo->o.max_depth;
    c.max_nodes = yo->max_nodes;
    yaml_position(text, len, len, &c.end_line, &c.end_col);
    c.y = new_parser(L);
    yaml_parser_set_input_string(&c.y->p, (const unsigned char *)text, len);
    lua_newtable(L);
    c.anchors = lua_gettop(L);
    lua_newtable(L);
    c.inprog = lua_gettop(L);
    if (yo->positions) {
        lua_newtable(L);
        lua_createtable(L, 0, 1);
        lua_pushliteral(L, "k");
        lua_setfield(L, -2, "__mode");
        lua_setmetatable(L, -2);
        c.pos = lua_gettop(L);
        lua_newtable(L);
        c.roots = lua_gettop(L);
    }
    lua_newtable(L);
    results = lua_gettop(L);
    rc = run(&c, all, results);
    lua_pushcfunction(L, parser_close);
    lua_pushvalue(L, base + 1);
    lua_call(L, 1, 0);
    if (rc != 0) {
        lua_settop(L, base);
        return rollout_fail(L, ROLLOUT_E_INVALID, NULL, "%s:%d:%d: %s", name, (int)c.eline, (int)c.ecol, c.emsg);
    }
    if (all)
        rc_mark(L, results, RC_ARRAY);
    else if (lua_rawgeti(L, results, 1) == LUA_TNIL) {
        lua_pop(L, 1);
        rc_push_null(L); /* no document: null */
    }
    if (!yo->positions)
        return 1;
    /* pos.root (load) / pos.roots (load_all): where the documents' root
     * nodes are, so that a scalar document can be located too; 1:1 when
     * there is no document */
    lua_pushvalue(L, c.pos);
    if (all) {
        lua_pushvalue(L, c.roots);
        lua_setfield(L, -2, "roots");
    } else {
        if (lua_rawgeti(L, c.roots, 1) == LUA_TNIL) {
            yaml_mark_t start = {0, 0, 0};
            lua_pop(L, 1);
            push_mark(&c, start);
        }
        lua_setfield(L, -2, "root");
    }
    return 2;
}

static int load_string(lua_State *L, int all)
{
    size_t len;
    const char *text;
    yopts yo;
    luaL_checktype(L, 1, LUA_TSTRING);
    text = lua_tolstring(L, 1, &len);
    read_yopts(L, 2, &yo);
    lua_settop(L, 2);
    return load_text(L, text, len, &yo, yo.o.name ? yo.o.name : "<string>", all);
}

/* yaml.load(text [, opts]) -> value [, pos] | nil, message, "invalid", "invalid" */
static int y_load(lua_State *L)
{
    return load_string(L, 0);
}

/* yaml.load_all(text [, opts]) -> {documents} [, pos] | nil, message, "invalid",
 *   "invalid" */
static int y_load_all(lua_State *L)
{
    return load_string(L, 1);
}

/* yaml.load_file(path [, opts]) -> value [, pos] | nil, message, code, raw */
static int y_load_file(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    yopts yo;
    size_t len;
    const char *text;
    int n;
    read_yopts(L, 2, &yo);
    lua_settop(L, 2);
    n = rc_read_file(L, path, yo.o.max_size);
    if (n != 1)
        return n;
    text = lua_tolstring(L, 3, &len);
    return load_text(L, text, len, &yo, yo.o.name ? yo.o.name : path, 0);
}

/* ---- dumping ------------------------------------------------------------ */

#define EMITTER_MT "rollout.yaml.emitter"

typedef struct yemitter {
    yaml_emitter_t e;
    int has_e;
} yemitter;

static int emitter_close(lua_State *L)
{
    yemitter *y = luaL_checkudata(L, 1, EMITTER_MT);
    if (y->has_e) {
        yaml_emitter_delete(&y->e);
        y->has_e = 0;
    }
    return 0;
}

static int write_out(void *data, unsigned char *buffer, size_t size)
{
    return rbuf_add(data, buffer, size) == 0;
}

static void emit(rc_walk *w, yaml_event_t *ev, int ok)
{
    yemitter *y = w->ud;
    if (!ok)
        rc_walk_error(w, "not enough memory");
    if (!yaml_emitter_emit(&y->e, ev)) {
        if (y->e.error == YAML_MEMORY_ERROR || y->e.error == YAML_WRITER_ERROR)
            rc_walk_error(w, "not enough memory");
        rc_walk_error(w, "%s", y->e.problem ? y->e.problem : "emitter error");
    }
}

/* YAML 1.1 booleans: quoted too, for the tools that still read YAML 1.1 */
static int yaml11_bool(const char *s, size_t n)
{
    static const char *const words[] = {"y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO",
                                        "on", "On", "ON", "off", "Off", "OFF"};
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
        if (eq(s, n, words[i]))
            return 1;
    return 0;
}

/* A string that a plain scalar would not give back (or that looks like a
 * number to other readers): quote it. */
static int needs_quotes(const char *s, size_t n)
{
    yscalar v;
    if (resolve_plain(s, n, &v) != YS_STR)
        return 1;
    if (eq(s, n, "<<") || yaml11_bool(s, n))
        return 1;
    if (n > 0 && (is_digit(s[0]) || ((s[0] == '-' || s[0] == '+' || s[0] == '.') && n > 1 && is_digit(s[1]))))
        return 1;
    return 0;
}

static void emit_scalar(rc_walk *w, const char *s, size_t n, yaml_scalar_style_t style)
{
    yaml_event_t ev;
    int ok;
    if (n > INT_MAX)
        rc_walk_error(w, "string too long");
    ok = yaml_scalar_event_initialize(&ev, NULL, NULL, (const yaml_char_t *)s, (int)n, 1, 1, style);
    emit(w, &ev, ok);
}

static void y_value(rc_walk *w, int idx)
{
    lua_State *L = w->L;
    char num[64];
    switch (lua_type(L, idx)) {
    case LUA_TBOOLEAN:
        if (lua_toboolean(L, idx))
            emit_scalar(w, "true", 4, YAML_PLAIN_SCALAR_STYLE);
        else
            emit_scalar(w, "false", 5, YAML_PLAIN_SCALAR_STYLE);
        break;
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx)) {
            int n = snprintf(num, sizeof num, LUA_INTEGER_FMT, (LUAI_UACINT)lua_tointeger(L, idx));
            emit_scalar(w, num, (size_t)n, YAML_PLAIN_SCALAR_STYLE);
        } else {
            double d = (double)lua_tonumber(L, idx);
            if (isnan(d))
                emit_scalar(w, ".nan", 4, YAML_PLAIN_SCALAR_STYLE);
            else if (isinf(d))
                emit_scalar(w, d > 0 ? ".inf" : "-.inf", d > 0 ? 4 : 5, YAML_PLAIN_SCALAR_STYLE);
            else
                emit_scalar(w, num, (size_t)rc_format_double(d, num, sizeof num), YAML_PLAIN_SCALAR_STYLE);
        }
        break;
    case LUA_TSTRING: {
        size_t n;
        const char *s = lua_tolstring(L, idx, &n);
        yaml_scalar_style_t style = YAML_ANY_SCALAR_STYLE;
        for (size_t i = 0; i < n; i++) {
            if ((unsigned char)s[i] >= 0x80) {
                size_t k = rc_utf8_seq((const unsigned char *)s + i, n - i);
                if (k == 0)
                    rc_walk_error(w, "string is not valid UTF-8 (byte %zu)", i + 1);
                i += k - 1;
            }
        }
        if (needs_quotes(s, n))
            style = YAML_SINGLE_QUOTED_SCALAR_STYLE;
        else if (memchr(s, '\n', n) != NULL && !(n >= 2 && s[n - 1] == '\n' && s[n - 2] == '\n'))
            style = YAML_LITERAL_SCALAR_STYLE; /* "|+" would end the stream with "..." */
        else if (memchr(s, '\n', n) != NULL)
            style = YAML_DOUBLE_QUOTED_SCALAR_STYLE;
        emit_scalar(w, s, n, style);
        break;
    }
    default: /* nil at the top, or null */
        emit_scalar(w, "null", 4, YAML_PLAIN_SCALAR_STYLE);
        break;
    }
}

static void y_open(rc_walk *w, int kind, size_t n)
{
    yaml_event_t ev;
    int ok;
    if (kind == RC_ARRAY)
        ok = yaml_sequence_start_event_initialize(&ev, NULL, NULL, 1,
                                                  n == 0 ? YAML_FLOW_SEQUENCE_STYLE : YAML_BLOCK_SEQUENCE_STYLE);
    else
        ok = yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1,
                                                 n == 0 ? YAML_FLOW_MAPPING_STYLE : YAML_BLOCK_MAPPING_STYLE);
    emit(w, &ev, ok);
}

static void y_close(rc_walk *w, int kind, size_t n)
{
    yaml_event_t ev;
    int ok;
    (void)n;
    if (kind == RC_ARRAY)
        ok = yaml_sequence_end_event_initialize(&ev);
    else
        ok = yaml_mapping_end_event_initialize(&ev);
    emit(w, &ev, ok);
}

static void y_elem(rc_walk *w, size_t i, int key_idx)
{
    (void)i;
    if (key_idx != 0)
        y_value(w, key_idx);
}

/* yaml.dump(value [, opts]) -> string; raises on what YAML cannot hold */
static int y_dump(lua_State *L)
{
    rc_walk w;
    rbuf *out;
    yemitter *y;
    yaml_event_t ev;
    int max_depth = RC_DEFAULT_MAX_DEPTH, doc_start = 0, key_order = 0;

    luaL_checkany(L, 1);
    rc_check_opts(L, 2);
    lua_settop(L, 2);
    if (lua_istable(L, 2)) {
        rc_opts o;
        rc_read_opts(L, 2, &o);
        max_depth = o.max_depth;
        doc_start = rollout_optfield_boolean(L, 2, "document_start", 0);
        lua_getfield(L, 2, "key_order"); /* index 3 */
        if (lua_istable(L, 3)) {
            lua_Integer n = (lua_Integer)lua_rawlen(L, 3);
            lua_createtable(L, 0, (int)(n < 1000 ? n : 0));
            for (lua_Integer i = 1; i <= n; i++) {
                if (lua_rawgeti(L, 3, i) == LUA_TNIL || (lua_type(L, -1) == LUA_TNUMBER &&
                                                         isnan((double)lua_tonumber(L, -1))))
                    return luaL_error(L, "option 'key_order' must be a list of keys");
                lua_pushvalue(L, -1);
                if (lua_rawget(L, 4) == LUA_TNIL) {
                    lua_pop(L, 1);
                    lua_pushinteger(L, i);
                    lua_rawset(L, 4);
                } else {
                    lua_pop(L, 2);
                }
            }
            key_order = 4;
        } else if (!lua_isnil(L, 3)) {
            return luaL_error(L, "option 'key_order' must be a list of keys (got %s)", luaL_typename(L, 3));
        }
    }
    out = rollout_newbuf(L);
    y = lua_newuserdatauv(L, sizeof *y, 0);
    y->has_e = 0;
    if (luaL_newmetatable(L, EMITTER_MT)) {
        lua_pushcfunction(L, emitter_close);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, emitter_close);
        lua_setfield(L, -2, "__close");
    }
    lua_setmetatable(L, -2);
    if (!yaml_emitter_initialize(&y->e))
        return luaL_error(L, "yaml.dump: not enough memory");
    y->has_e = 1;
    yaml_emitter_set_output(&y->e, write_out, out);
    yaml_emitter_set_unicode(&y->e, 1);
    yaml_emitter_set_width(&y->e, -1);
    yaml_emitter_set_indent(&y->e, 2);

    rc_walk_init(&w, L, "yaml.dump", max_depth);
    w.key_order = key_order;
    w.scalar_keys = 1;
    w.ud = y;
    w.value = y_value;
    w.open = y_open;
    w.close = y_close;
    w.elem = y_elem;
    emit(&w, &ev, yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING));
    emit(&w, &ev, yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, !doc_start));
    rc_walk_value(&w, 1);
    emit(&w, &ev, yaml_document_end_event_initialize(&ev, 1));
    emit(&w, &ev, yaml_stream_end_event_initialize(&ev));
    if (!yaml_emitter_flush(&y->e))
        return luaL_error(L, "yaml.dump: not enough memory");
    yaml_emitter_delete(&y->e);
    y->has_e = 0;
    rollout_pushbuf(L, out);
    return 1;
}

int luaopen_rollout_yaml(lua_State *L)
{
    static const luaL_Reg funcs[] = {
        {"load", y_load},
        {"load_all", y_load_all},
        {"load_file", y_load_file},
        {"dump", y_dump},
        {NULL, NULL}};
    luaL_newlib(L, funcs);
    rc_register_common(L);
    return 1;
}
