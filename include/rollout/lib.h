/* runtime/lib: the Lua-free helpers every other part of the runtime uses.
 * They are leaves: nothing here calls a binding, the host or libcurl
 * (tests/lua/layout_spec.lua checks it).
 *
 *   lib/buf.c    the growable byte buffer
 *   lib/clock.c  the monotonic clock, a short sleep
 *   lib/file.c   private temporary files and atomic file writes
 *   lib/errors.c the error codes; errno values as codes and names
 */
#ifndef ROLLOUT_LIB_H
#define ROLLOUT_LIB_H

#include <stddef.h>

/* ---- lib/buf.c ------------------------------------------------------ */

/* A growable byte buffer, the one every part of rollout uses. Zeroed (or
 * RBUF_INIT) is an empty buffer. Once anything was added, p[len] is a NUL
 * (so the contents can be used as a C string when they hold no NUL). An
 * allocation failure is sticky: the add that failed and every later one
 * return -1 and change nothing, until rbuf_clear; so a builder can add
 * many pieces and look once (rbuf.oom). A buffer that must survive a Lua
 * error is held by a userdata (rollout_newbuf, include/rollout/host.h). */
typedef struct rbuf {
    char *p;
    size_t len, cap;
    int oom;
} rbuf;
#define RBUF_INIT {NULL, 0, 0, 0}

/* Appends n bytes: 0, or -1 when out of memory. */
int rbuf_add(rbuf *b, const void *data, size_t n);
/* Appends a C string. */
int rbuf_adds(rbuf *b, const char *s);
/* Makes room for n more bytes (and the NUL) without adding them: the
 * caller writes at p + len, then calls rbuf_grew(b, n). 0 or -1. */
int rbuf_reserve(rbuf *b, size_t n);
/* Bytes that fit at p + len without growing. */
size_t rbuf_room(const rbuf *b);
/* The caller wrote n bytes at p + len (n <= rbuf_room). */
void rbuf_grew(rbuf *b, size_t n);
/* Drops the first n bytes (all of them when n >= len). */
void rbuf_consume(rbuf *b, size_t n);
/* Empties the buffer (keeps its memory) and forgets a failure. */
void rbuf_clear(rbuf *b);
/* Frees the memory; the buffer is empty again. */
void rbuf_free(rbuf *b);
/* The same, zeroing the memory first: for secrets. */
void rbuf_wipe(rbuf *b);

/* ---- lib/clock.c ---------------------------------------------------- */

/* Monotonic clock in seconds. */
double rollout_now(void);

/* Sleeps `secs` (callers keep it short, so that they notice ^C), returning
 * early on EINTR. */
void rollout_nap(double secs);

/* ---- lib/file.c ----------------------------------------------------- */

/* Creates a private temporary file next to path (the same directory, so a
 * rename over path is atomic): a hidden name unique to this process and
 * call, O_EXCL and O_NOFOLLOW, close-on-exec, with exactly `mode` (not
 * masked by the umask). Writes its name to tmp. Returns the open fd, or -1
 * with errno set (ENAMETOOLONG when tmp is too small, EISDIR when path
 * names a directory: "dir/"). */
int rollout_tmpfile(const char *path, unsigned mode, char *tmp, size_t tmplen);

/* Renames tmp over path and, with do_fsync, fsyncs the directory (so the
 * rename itself is durable; best effort where a filesystem refuses that).
 * On failure tmp is removed. Returns 0 or an errno. */
int rollout_tmpfile_commit(const char *tmp, const char *path, int do_fsync);

/* Writes data to a temporary file next to path, fsyncs it (do_fsync),
 * renames it over path and fsyncs the directory. Returns 0 or an errno; on
 * failure the temporary file is gone and path is untouched. */
int rollout_write_atomic(const char *path, const char *data, size_t len, unsigned mode, int do_fsync);

/* ---- lib/errors.c --------------------------------------------------- */

/* The error codes: the `code` of every failure a binding returns. The list
 * and what each means: include/rollout/host.h. */
typedef enum rollout_code {
    ROLLOUT_E_NOT_FOUND,
    ROLLOUT_E_EXISTS,
    ROLLOUT_E_CONFLICT,
    ROLLOUT_E_INVALID,
    ROLLOUT_E_UNAUTHORIZED,
    ROLLOUT_E_FORBIDDEN,
    ROLLOUT_E_TIMEOUT,
    ROLLOUT_E_CONNECT,
    ROLLOUT_E_TLS,
    ROLLOUT_E_UNAVAILABLE,
    ROLLOUT_E_GONE,
    ROLLOUT_E_LOCKED,
    ROLLOUT_E_INTERRUPTED,
    ROLLOUT_E_IO,
    ROLLOUT_E_PROTOCOL,
    ROLLOUT_E_TOO_LARGE,
    ROLLOUT_E_FAILED,
    ROLLOUT_E_OTHER,
    ROLLOUT_E_NCODES
} rollout_code;

/* "not_found", "exists", ... */
const char *rollout_code_name(rollout_code code);

/* The code of an errno value (ENOENT -> not_found, EACCES -> forbidden...;
 * io for the operating-system errors without a closer code). */
rollout_code rollout_errno_code(int err);

/* The name of an errno value ("ENOENT"), "EIO" for one without a name here. */
const char *rollout_errno_name(int err);

#endif
