/* What rollout.json and rollout.yaml share (runtime/bindings/convert.c): the null
 * sentinel, the array/object markers, options and caps, number formatting, positions, and the table walker both
 * encoders use (shapes, key order, cycles, depth, error paths).
 *
 * Conventions (README, "C bindings": rollout.yaml and rollout.json):
 *   - null is lua_pushlightuserdata(L, NULL): json.null == yaml.null;
 *   - decoded arrays and objects carry a shared metatable whose field
 *     __jsontype is "array" or "object", so an empty one keeps its kind;
 *   - an unmarked table with keys exactly 1..n (n >= 1) is an array, an empty
 *     one is an object, any other table is an object with string keys;
 *   - depth is capped (default 128) on decode and encode, and every level
 *     checks the Lua stack.
 */
#ifndef ROLLOUT_CONVERT_H
#define ROLLOUT_CONVERT_H

#include <stddef.h>

#include <lua.h>
#include <lauxlib.h>

#define RC_DEFAULT_MAX_DEPTH 128
#define RC_LIMIT_MAX_DEPTH 1000 /* the largest opts.max_depth accepted */
#define RC_DEFAULT_MAX_SIZE (16 * 1024 * 1024)

/* Kinds of tables. */
enum { RC_NONE = 0, RC_ARRAY = 1, RC_OBJECT = 2 };

/* Registry names of the two shared metatables. */
#define RC_ARRAY_MT "rollout.array"
#define RC_OBJECT_MT "rollout.object"

/* Pushes the null sentinel. */
void rc_push_null(lua_State *L);
/* 1 when the value at idx is the null sentinel. */
int rc_is_null(lua_State *L, int idx);
/* Sets the array or object marker on the table at idx. */
void rc_mark(lua_State *L, int idx, int kind);
/* RC_ARRAY, RC_OBJECT or RC_NONE from the metatable's __jsontype. */
int rc_marker(lua_State *L, int idx);
/* Sets module fields: null, array(t), object(t). The module is on top. */
void rc_register_common(lua_State *L);

/* Options shared by the decoders: max_depth, max_size, name. The options
 * table (or nil/none) is at idx; bad types raise. */
typedef struct rc_opts {
    int max_depth;
    size_t max_size;
    const char *name; /* NULL when not given; anchored by the options table */
} rc_opts;
void rc_read_opts(lua_State *L, int idx, rc_opts *o);
/* An optional integer field of the options table at idx, lo..hi; raises on
 * a wrong type or range. */
lua_Integer rc_opt_integer(lua_State *L, int idx, const char *field, lua_Integer def, lua_Integer lo,
                           lua_Integer hi);
/* Raises unless the value at idx is nil, none or a table. */
void rc_check_opts(lua_State *L, int idx);

/* nil, "[name: ]input is larger than N bytes (max_size)", "invalid", "invalid" */
int rc_fail_too_large(lua_State *L, const char *name, size_t max);
/* Reads a whole file into a string on the stack, refusing more than max
 * bytes. Returns 1 (string pushed) or the 4 values of rollout_fail*. */
int rc_read_file(lua_State *L, const char *path, size_t max);

/* Shortest of %.15g/%.16g/%.17g that reads back to the same double, with
 * ".0" appended when it would otherwise look like an integer; "." whatever
 * the locale. Not for NaN or infinities. Returns the length. */
int rc_format_double(double d, char *out, size_t outlen);

/* 1-based line and column (in UTF-8 characters) of byte offset off. */
void rc_position(const char *text, size_t len, size_t off, size_t *line, size_t *col);

/* Length of the valid UTF-8 sequence starting at s (at most n bytes), or 0
 * when it is invalid (overlong, surrogate, beyond U+10FFFF, truncated). */
size_t rc_utf8_seq(const unsigned char *s, size_t n);

/* ---- the encoders' table walker ---------------------------------------- */

typedef struct rc_walk rc_walk;
struct rc_walk {
    lua_State *L;
    const char *what;     /* "json.encode", "yaml.dump": prefix of errors */
    int max_depth;
    int sort_keys;        /* object keys in a stable order */
    int key_order;        /* stack index of {key -> rank}, or 0 */
    int scalar_keys;      /* marked objects may have number/boolean/null keys (YAML) */
    void *ud;             /* the writer's state */
    /* a non-table value at idx (nil, null, boolean, number, string) */
    void (*value)(rc_walk *w, int idx);
    /* an array or object of n elements begins / ends */
    void (*open)(rc_walk *w, int kind, size_t n);
    void (*close)(rc_walk *w, int kind, size_t n);
    /* before element i (0-based) of the current container; key_idx is the
     * stack index of the key for objects, 0 for arrays */
    void (*elem)(rc_walk *w, size_t i, int key_idx);
    /* internal */
    unsigned long visits; /* ^C is checked every 4096 tables */
    int depth;
    int visiting;
    int path[RC_LIMIT_MAX_DEPTH + 2];
};

/* Prepares the walker (pushes a helper table: keep the stack balanced). */
void rc_walk_init(rc_walk *w, lua_State *L, const char *what, int max_depth);
/* Walks the value at idx, calling the writer; raises on un-encodable values,
 * cycles, mixed or sparse tables, nesting deeper than max_depth. */
void rc_walk_value(rc_walk *w, int idx);
/* Raises "<what>: <message> (at <path>)" for the current position. */
int rc_walk_error(rc_walk *w, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

#endif
