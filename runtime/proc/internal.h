/* Private to rollout.proc (runtime/proc/): how a child is described, set
 * up between fork and exec, and reported on. */
#ifndef ROLLOUT_PROC_INTERNAL_H
#define ROLLOUT_PROC_INTERNAL_H

#include "rollout/host.h"

#include <stddef.h>
#include <sys/types.h>

/* What to exec. Strings point into Lua values kept on the stack by
 * px_read_spec; the arrays live in userdata on that stack. */
typedef struct px_spec {
    char path[4096];   /* the program, after the PATH search */
    char **argv;       /* NULL-terminated */
    char **envp;       /* NULL-terminated */
    const char *cwd;   /* or NULL */
    int max_fd;        /* highest fd to close when close_range is missing */
} px_spec;

/* Reads argv, env, clear_env and cwd from the options table at idx (misuse
 * raises) and finds the program on PATH. Leaves anchors on the stack.
 * Returns 0, or pushes nil, message, code, raw and returns 4. */
int px_read_spec(lua_State *L, int idx, px_spec *spec);

/* "sleep 100" for messages: argv joined by spaces, shortened to fit. */
void px_describe(const px_spec *spec, char *out, size_t outlen);

/* The PATH search shared by proc.which and run/spawn: writes an absolute
 * path of an executable regular file, or returns an errno (ENOENT,
 * EACCES, ENAMETOOLONG). `path_env` is the PATH to use (NULL: default). */
int px_search_path(const char *name, const char *path_env, char *out, size_t outlen);

/* A message from a child through the close-on-exec report pipe. */
enum { PX_MSG_EXEC = 1, PX_MSG_CHDIR, PX_MSG_SETUP, PX_MSG_FORK, PX_MSG_PID };
typedef struct px_msg {
    int kind;
    int value; /* an errno, or a pid for PX_MSG_PID */
} px_msg;

/* Blocks every signal around fork() so that no handler of ours runs in the
 * child before it has reset them. */
void px_block_signals(sigset_t *old);
void px_restore_signals(const sigset_t *old);

/* In the child (async-signal-safe only): default dispositions, empty mask. */
void px_child_reset_signals(void);
/* In the child: marks every fd >= 3 close-on-exec (the report fd already is). */
void px_child_cloexec_from3(int max_fd);
/* In the child: sends {kind, err} on fd and ends with status 127. */
_Noreturn void px_child_fail(int fd, int kind, int err);

/* Pushes nil, "cannot run 'prog': ...", code and returns 3. */
int px_fail_exec(lua_State *L, const px_spec *spec, const px_msg *msg);

/* Closes *fd when it is open and sets it to -1. */
void px_close_fd(int *fd);

/* Moves fd to a number >= 3 (close-on-exec), closing the original. Returns
 * the new fd, or -1 with errno set. */
int px_fd_above2(int fd);

/* The functions with a file of their own (run.c, spawn.c). */
int px_run(lua_State *L);
int px_spawn(lua_State *L);

#endif
