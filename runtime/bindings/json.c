/* rollout.json: decode with cJSON, encode with our own writer.
 *
 * Decoding: a first pass over the text (cheap, no allocation) finds what
 * cJSON would accept or report badly: nesting deeper than max_depth (cJSON
 * would stop only at its own limit of 1000), raw control characters (cJSON
 * takes any byte <= 32 for whitespace), invalid UTF-8, \u0000 (cJSON's C
 * strings would cut the string there), unterminated strings. Then cJSON
 * parses; the earliest problem in the text is reported, as "[name: ]line N,
 * column M: reason near 'excerpt'" (columns in characters; cJSON's error
 * pointer, corrected where cJSON points one past a bad object key).
 *
 * Decisions:
 *   - Numbers are re-read from their text, in document order (cJSON keeps
 *     only doubles): no '.', 'e' or 'E' and within int64 -> a Lua integer,
 *     else a float (-0 is the integer 0). cJSON's leniencies remain: leading
 *     zeros (01 -> 1), 1e400 -> inf.
 *   - Duplicate object keys: the last one wins.
 *   - \u0000 in a string is refused (the encoder does write it).
 *
 * Encoding is written here (cJSON prints every number through a double): the
 * shared walker (runtime/convert.c) visits the value; this file only writes.
 * Integers print as integers; floats with the fewest of 15..17 digits that
 * read back, always with a '.' or an exponent (1.0 stays "1.0", so a round
 * trip keeps floats floats); NaN and infinities raise. Strings: '"', '\\'
 * and control characters are escaped (\n, \t..., \u001f), everything else
 * is written as is; invalid UTF-8 raises. Keys are sorted bytewise unless
 * sort_keys = false; pretty output indents by two spaces; no final newline.
 */
#include "rollout/convert.h"
#include "rollout/host.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

/* ---- decoding ----------------------------------------------------------- */

#define JTREE_MT "rollout.json.tree"

typedef struct jtree {
    cJSON *root;
} jtree;

static int jtree_gc(lua_State *L)
{
    jtree *t = luaL_checkudata(L, 1, JTREE_MT);
    if (t->root != NULL) {
        cJSON_Delete(t->root);
        t->root = NULL;
    }
    return 0;
}

static jtree *new_tree(lua_State *L)
{
    jtree *t = lua_newuserdatauv(L, sizeof *t, 0);
    t->root = NULL;
    if (luaL_newmetatable(L, JTREE_MT)) {
        lua_pushcfunction(L, jtree_gc);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, jtree_gc);
        lua_setfield(L, -2, "__close");
    }
    lua_setmetatable(L, -2);
    return t;
}

/* A problem found in the text: where, and what. */
typedef struct jproblem {
    size_t pos; /* SIZE_MAX: none */
    char what[96];
} jproblem;

static void problem(jproblem *p, size_t pos, const char *what)
{
    p->pos = pos;
    snprintf(p->what, sizeof p->what, "%s", what);
}

/* The first pass. Stops at the first problem. */
static void prescan(const char *text, size_t len, int max_depth, jproblem *p)
{
    const unsigned char *s = (const unsigned char *)text;
    int depth = 0, in_str = 0;
    size_t str_start = 0;
    p->pos = SIZE_MAX;
    for (size_t i = 0; i < len; i++) {
        unsigned c = s[i];
        if (c >= 0x80) {
            size_t n = rc_utf8_seq(s + i, len - i);
            if (n == 0) {
                problem(p, i, "invalid UTF-8");
                return;
            }
            i += n - 1;
            continue;
        }
        if (in_str) {
            if (c == '"') {
                in_str = 0;
            } else if (c == '\\') {
                if (i + 5 < len && s[i + 1] == 'u' && memcmp(s + i + 2, "0000", 4) == 0) {
                    problem(p, i, "\\u0000 is not supported in strings");
                    return;
                }
                if (i + 1 < len && s[i + 1] < 0x80)
                    i++;
            } else if (c < 0x20) {
                problem(p, i, "control character in a string");
                return;
            }
            continue;
        }
        switch (c) {
        case '"':
            in_str = 1;
            str_start = i;
            break;
        case '[':
        case '{':
            if (++depth > max_depth) {
                snprintf(p->what, sizeof p->what, "nesting deeper than %d", max_depth);
                p->pos = i;
                return;
            }
            break;
        case ']':
        case '}':
            if (depth > 0)
                depth--;
            break;
        case ' ':
        case '\t':
        case '\n':
        case '\r':
            break;
        default:
            if (c < 0x20) {
                problem(p, i, "control character");
                return;
            }
            break;
        }
    }
    if (in_str)
        problem(p, str_start, "unterminated string");
}

/* Pushes "[name: ]line N, column M: what[ near 'excerpt']" */
static int fail_at(lua_State *L, const char *name, const char *text, size_t len, size_t pos, const char *what)
{
    size_t line, col, n = 0;
    char near[64];
    rc_position(text, len, pos, &line, &col);
    while (pos + n < len && n < 24) { /* printable, valid UTF-8, one line */
        unsigned char ch = (unsigned char)text[pos + n];
        size_t k = rc_utf8_seq((const unsigned char *)text + pos + n, len - pos - n);
        if (ch < 0x20 || ch == 0x7f || k == 0)
            break;
        n += k;
    }
    if (n > 0)
        snprintf(near, sizeof near, " near '%.*s'", (int)n, text + pos);
    else
        near[0] = '\0';
    return rollout_fail(L, ROLLOUT_E_INVALID, NULL, "%s%sline %d, column %d: %s%s", name ? name : "", name ? ": " : "",
                        (int)line, (int)col, what, near);
}

static int is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* cJSON reports a failed object key one character late (it points past the
 * character that is not a '"'). 1 when err - 1 is such a character: inside
 * an object, right after '{' or ','. The text before err is checked. */
static int expected_key(const char *text, size_t err)
{
    char open[RC_LIMIT_MAX_DEPTH + 1];
    int depth = 0, in_str = 0;
    size_t i, q;
    if (err == 0 || is_ws(text[err - 1]) || text[err - 1] == '"')
        return 0;
    q = err - 1;
    for (i = 0; i < q; i++) {
        char c = text[i];
        if (in_str) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_str = 0;
        } else if (c == '"') {
            in_str = 1;
        } else if (c == '[' || c == '{') {
            if (depth < RC_LIMIT_MAX_DEPTH)
                open[depth] = c;
            depth++;
        } else if ((c == ']' || c == '}') && depth > 0) {
            depth--;
        }
    }
    if (in_str || depth == 0 || depth > RC_LIMIT_MAX_DEPTH || open[depth - 1] != '{')
        return 0;
    while (q > 0 && is_ws(text[q - 1]))
        q--;
    return q > 0 && (text[q - 1] == ',' || text[q - 1] == '{');
}

typedef struct jctx {
    lua_State *L;
    const char *text;
    size_t len;
    size_t cursor; /* where to look for the next number's text */
    int max_depth;
} jctx;

/* Finds the next number token at or after the cursor, skipping strings. */
static int next_number(jctx *c, size_t *start, size_t *end)
{
    const char *s = c->text;
    size_t i = c->cursor;
    while (i < c->len) {
        char ch = s[i];
        if (ch == '"') {
            for (i++; i < c->len && s[i] != '"'; i++)
                if (s[i] == '\\')
                    i++;
            i++;
        } else if (ch == '-' || (ch >= '0' && ch <= '9')) {
            size_t j = i;
            while (j < c->len && strchr("0123456789+-.eE", s[j]) != NULL && s[j] != '\0')
                j++;
            *start = i;
            *end = j;
            c->cursor = j;
            return 1;
        } else {
            i++;
        }
    }
    c->cursor = i;
    return 0;
}

static void push_number(jctx *c, const cJSON *item)
{
    size_t a, b;
    char tok[72];
    if (next_number(c, &a, &b) && b - a < sizeof tok) {
        memcpy(tok, c->text + a, b - a);
        tok[b - a] = '\0';
        if (lua_stringtonumber(c->L, tok) != 0)
            return;
    }
    lua_pushnumber(c->L, (lua_Number)item->valuedouble); /* not expected */
}

/* Pushes the Lua value of item; -1 when too deep (not expected after the
 * first pass). */
static int convert(jctx *c, const cJSON *item, int depth)
{
    lua_State *L = c->L;
    const cJSON *ch;
    switch (item->type & 0xFF) {
    case cJSON_NULL:
        rc_push_null(L);
        return 0;
    case cJSON_False:
        lua_pushboolean(L, 0);
        return 0;
    case cJSON_True:
        lua_pushboolean(L, 1);
        return 0;
    case cJSON_Number:
        push_number(c, item);
        return 0;
    case cJSON_String:
        lua_pushstring(L, item->valuestring ? item->valuestring : "");
        return 0;
    case cJSON_Array:
    case cJSON_Object: {
        int is_array = (item->type & 0xFF) == cJSON_Array;
        int n = 0;
        lua_Integer i = 0;
        if (depth >= c->max_depth || !lua_checkstack(L, 6))
            return -1;
        for (ch = item->child; ch != NULL; ch = ch->next)
            n++;
        if (is_array)
            lua_createtable(L, n, 0);
        else
            lua_createtable(L, 0, n);
        rc_mark(L, -1, is_array ? RC_ARRAY : RC_OBJECT);
        for (ch = item->child; ch != NULL; ch = ch->next) {
            if (!is_array)
                lua_pushstring(L, ch->string ? ch->string : "");
            if (convert(c, ch, depth + 1) != 0)
                return -1;
            if (is_array)
                lua_rawseti(L, -2, ++i);
            else
                lua_rawset(L, -3); /* duplicate keys: the last one wins */
        }
        return 0;
    }
    default:
        lua_pushnil(L);
        return 0;
    }
}

static int decode_text(lua_State *L, const char *text, size_t len, const rc_opts *o)
{
    jproblem scan;
    const char *end = NULL;
    size_t err;
    jtree *t;
    jctx c;

    if (len > o->max_size)
        return rc_fail_too_large(L, o->name, o->max_size);
    prescan(text, len, o->max_depth, &scan);
    t = new_tree(L);
    /* the terminating NUL counts, so that a failure at the end of the text is
     * reported there (cJSON reports length-1 otherwise) */
    t->root = cJSON_ParseWithLengthOpts(text, len + 1, &end, 0);
    if (t->root == NULL) {
        err = end != NULL && end >= text ? (size_t)(end - text) : 0;
        if (scan.pos <= err)
            return fail_at(L, o->name, text, len, scan.pos, scan.what);
        if (expected_key(text, err))
            return fail_at(L, o->name, text, len, err - 1, "expected a string key");
        if (err >= len) {
            size_t i = 0;
            while (i < len && is_ws(text[i]))
                i++;
            return fail_at(L, o->name, text, len, len, i == len ? "empty input" : "unexpected end of input");
        }
        return fail_at(L, o->name, text, len, err, "syntax error");
    }
    err = (size_t)(end - text);
    while (err < len && is_ws(text[err]))
        err++;
    if (scan.pos <= err) /* the text up to err is valid JSON */
        return fail_at(L, o->name, text, len, scan.pos, scan.what);
    if (err < len)
        return fail_at(L, o->name, text, len, err, "unexpected text after the value");

    c.L = L;
    c.text = text;
    c.len = len;
    c.cursor = 0;
    c.max_depth = o->max_depth;
    if (convert(&c, t->root, 0) != 0) {
        char what[64];
        snprintf(what, sizeof what, "nesting deeper than %d", o->max_depth);
        return fail_at(L, o->name, text, len, 0, what);
    }
    cJSON_Delete(t->root);
    t->root = NULL;
    return 1;
}

/* json.decode(text [, opts]) -> value | nil, message, "invalid", "invalid" */
static int j_decode(lua_State *L)
{
    size_t len;
    const char *text;
    rc_opts o;
    luaL_checktype(L, 1, LUA_TSTRING);
    text = lua_tolstring(L, 1, &len);
    rc_read_opts(L, 2, &o);
    lua_settop(L, 2);
    return decode_text(L, text, len, &o);
}

/* ---- encoding ----------------------------------------------------------- */

typedef struct jwriter {
    rbuf *b;
    int pretty;
    int level;
} jwriter;

static void put(rc_walk *w, const char *s, size_t n)
{
    jwriter *j = w->ud;
    if (rbuf_add(j->b, s, n) != 0)
        luaL_error(w->L, "%s: not enough memory", w->what);
}

static void newline(rc_walk *w)
{
    jwriter *j = w->ud;
    static const char spaces[] = "                                ";
    put(w, "\n", 1);
    for (int i = 0; i < j->level; i++)
        put(w, spaces, 2);
}

static void put_string(rc_walk *w, int idx)
{
    size_t len, run = 0;
    const unsigned char *s = (const unsigned char *)lua_tolstring(w->L, idx, &len);
    put(w, "\"", 1);
    for (size_t i = 0; i < len; i++) {
        unsigned c = s[i];
        const char *esc = NULL;
        char u[8];
        if (c >= 0x80) {
            size_t n = rc_utf8_seq(s + i, len - i);
            if (n == 0)
                rc_walk_error(w, "string is not valid UTF-8 (byte %zu)", i + 1);
            i += n - 1;
            continue;
        }
        switch (c) {
        case '"': esc = "\\\""; break;
        case '\\': esc = "\\\\"; break;
        case '\b': esc = "\\b"; break;
        case '\f': esc = "\\f"; break;
        case '\n': esc = "\\n"; break;
        case '\r': esc = "\\r"; break;
        case '\t': esc = "\\t"; break;
        default:
            if (c < 0x20) {
                snprintf(u, sizeof u, "\\u%04x", c);
                esc = u;
            }
            break;
        }
        if (esc != NULL) {
            put(w, (const char *)s + run, i - run);
            put(w, esc, strlen(esc));
            run = i + 1;
        }
    }
    put(w, (const char *)s + run, len - run);
    put(w, "\"", 1);
}

static void j_value(rc_walk *w, int idx)
{
    lua_State *L = w->L;
    char num[64];
    switch (lua_type(L, idx)) {
    case LUA_TBOOLEAN:
        if (lua_toboolean(L, idx))
            put(w, "true", 4);
        else
            put(w, "false", 5);
        break;
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx)) {
            int n = snprintf(num, sizeof num, LUA_INTEGER_FMT, (LUAI_UACINT)lua_tointeger(L, idx));
            put(w, num, (size_t)n);
        } else {
            double d = (double)lua_tonumber(L, idx);
            if (isnan(d) || isinf(d))
                rc_walk_error(w, "cannot encode %s in JSON", isnan(d) ? "NaN" : d > 0 ? "inf" : "-inf");
            put(w, num, (size_t)rc_format_double(d, num, sizeof num));
        }
        break;
    case LUA_TSTRING:
        put_string(w, idx);
        break;
    default: /* nil at the top, or null */
        put(w, "null", 4);
        break;
    }
}

static void j_open(rc_walk *w, int kind, size_t n)
{
    jwriter *j = w->ud;
    (void)n;
    put(w, kind == RC_ARRAY ? "[" : "{", 1);
    j->level++;
}

static void j_close(rc_walk *w, int kind, size_t n)
{
    jwriter *j = w->ud;
    j->level--;
    if (j->pretty && n > 0)
        newline(w);
    put(w, kind == RC_ARRAY ? "]" : "}", 1);
}

static void j_elem(rc_walk *w, size_t i, int key_idx)
{
    jwriter *j = w->ud;
    if (i > 0)
        put(w, ",", 1);
    if (j->pretty)
        newline(w);
    if (key_idx != 0) {
        put_string(w, key_idx);
        if (j->pretty)
            put(w, ": ", 2);
        else
            put(w, ":", 1);
    }
}

/* json.encode(value [, opts]) -> string; raises on what JSON cannot hold */
static int j_encode(lua_State *L)
{
    rc_walk w;
    jwriter j;
    int max_depth = RC_DEFAULT_MAX_DEPTH;
    int sort_keys = 1;
    luaL_checkany(L, 1);
    rc_check_opts(L, 2);
    lua_settop(L, 2);
    j.pretty = 0;
    j.level = 0;
    if (lua_istable(L, 2)) {
        rc_opts o;
        rc_read_opts(L, 2, &o);
        max_depth = o.max_depth;
        j.pretty = rollout_optfield_boolean(L, 2, "pretty", 0);
        sort_keys = rollout_optfield_boolean(L, 2, "sort_keys", 1);
    }
    j.b = rollout_newbuf(L); /* index 3 */
    rc_walk_init(&w, L, "json.encode", max_depth);
    w.sort_keys = sort_keys;
    w.ud = &j;
    w.value = j_value;
    w.open = j_open;
    w.close = j_close;
    w.elem = j_elem;
    rc_walk_value(&w, 1);
    rollout_pushbuf(L, j.b);
    return 1;
}

int luaopen_rollout_json(lua_State *L)
{
    static const luaL_Reg funcs[] = {
        {"decode", j_decode},
        {"encode", j_encode},
        {NULL, NULL}};
    luaL_newlib(L, funcs);
    rc_register_common(L);
    return 1;
}
