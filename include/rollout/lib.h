/* runtime/lib: the Lua-free helpers every other part of the runtime uses.
 * They are leaves: nothing here calls a binding, the host or libcurl
 * (tests/lua/layout_spec.lua checks it).
 *
 *   lib/clock.c  the monotonic clock, a short sleep
 *   lib/file.c   private temporary files and atomic file writes
 *   lib/errno.c  errno names
 */
#ifndef ROLLOUT_LIB_H
#define ROLLOUT_LIB_H

#include <stddef.h>

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

/* ---- lib/errno.c ---------------------------------------------------- */

/* The name of an errno value ("ENOENT"), "EIO" for one without a name here. */
const char *rollout_errno_name(int err);

#endif
