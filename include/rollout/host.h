/* The C host: exit codes, the error convention and the helpers every binding
 * shares. (README: "C bindings" and "Layout of runtime/".)
 *
 * Error convention:
 *   - misuse (wrong argument type, closed handle) raises: luaL_argerror or
 *     luaL_error;
 *   - environment failures (timeouts, exit codes, HTTP errors, missing files)
 *     return `nil, message, code, raw` (rollout_fail, rollout_fail_errno):
 *       message  one line for a person, naming what failed
 *       code     one of the error codes below, always
 *       raw      the upstream reason the code was mapped from: the errno
 *                name ("ENOENT"), "curl 28", ...; the code itself when
 *                rollout decided on its own (its deadline, its cap)
 *     (proc.run's timeout adds the partial result after raw);
 *   - ^C raises the interrupt sentinel (rollout_raise_interrupt), never a
 *     string: see lib/interrupt.c;
 *   - a refusal that should end the program with a chosen exit code is an
 *     error value that is a table { message = "...", exit = 2 }; the host
 *     prints the message without a traceback and exits with that code.
 *
 * Error codes (enum rollout_code in include/rollout/lib.h; the same list,
 * with the same meanings, is errors.codes in stdlib/rollout/errors.lua and
 * tests/lua/errors_spec.lua checks they agree):
 *   not_found     the object, file, release or version does not exist
 *   exists        it exists already
 *   conflict      a concurrent change or a field owned by another manager
 *   invalid       the request or the input is invalid
 *   unauthorized  no or bad credentials (HTTP 401)
 *   forbidden     not allowed (HTTP 403, EACCES, EPERM)
 *   timeout       a deadline passed
 *   connect       cannot connect (refused, unreachable, DNS)
 *   tls           TLS or certificate problem
 *   unavailable   the server is busy or down (HTTP 429/5xx after retries)
 *   gone          too old to resume (HTTP 410, an expired watch)
 *   locked        another rollout holds the lock
 *   interrupted   ^C
 *   io            another operating-system error
 *   protocol      a malformed or unexpected answer
 *   too_large     over a size cap
 *   failed        a command ran and reported failure (non-zero exit)
 *   other         anything else
 * errno values map to codes in lib/errors.c (rollout_errno_code), libcurl's
 * in net/curlx.c (curlx_code).
 */
#ifndef ROLLOUT_HOST_H
#define ROLLOUT_HOST_H

#include <signal.h>
#include <sys/types.h>

#include <lua.h>
#include <lauxlib.h>

#include "rollout/lib.h"

#define ROLLOUT_VERSION "0.1.0"

/* Exit codes of the rollout binary (documented in --help and README). */
typedef enum rollout_exit {
    ROLLOUT_EXIT_OK = 0,      /* success */
    ROLLOUT_EXIT_FAILURE = 1, /* an uncaught error, a failed check */
    ROLLOUT_EXIT_USAGE = 2    /* usage error, or invalid input refused before any change */
} rollout_exit;

/* Every C binding, registered in package.preload as "rollout.<name>"
 * (runtime/host/host.c declares them weak: those in rollout-net.so are
 * loaded from it on first require).
 *
 * Bindings that use each other, the one rule:
 *   - a binding uses another binding's Lua functions through require:
 *     rollout_require(L, "rollout.<name>") at the time it needs them (the
 *     other may live in rollout-net.so, which only package.preload knows
 *     how to load; require also keeps one module table per state);
 *   - it never calls another binding's luaopen_rollout_<name> nor its C
 *     functions, and never includes another binding's private header
 *     (tests/lua/layout_spec.lua: private headers stay in their folder);
 *   - what two bindings share in C is a part of its own, not a binding:
 *     a helper in runtime/lib (include/rollout/lib.h, this header) or a
 *     header in include/rollout with its own .c (convert.h: json and yaml;
 *     curlx.h: the libcurl bindings).
 * Only the host (host.c) refers to the luaopen_ functions: the preload
 * table. */
#define ROLLOUT_MODULE(name) int luaopen_rollout_##name(lua_State *L);
#include "rollout/modules.h"
#undef ROLLOUT_MODULE

/* Pushes require(name): how a binding uses another one (see above). */
void rollout_require(lua_State *L, const char *name);

/* Host set-up (runtime/host/host.c). */
typedef struct rollout_options {
    const char *argv0;  /* as invoked, used to find the stdlib */
    const char *target; /* --target NAME, or NULL */
} rollout_options;

/* Registers the bindings in package.preload and puts the stdlib on
 * package.path. Runs inside a protected call. */
void rollout_host_open(lua_State *L, const rollout_options *opts);

/* Registry fields set by rollout_host_open (read by rollout.sys). */
#define ROLLOUT_KEY_STDLIB "rollout.stdlib"
#define ROLLOUT_KEY_TARGET "rollout.target"
#define ROLLOUT_KEY_EXE "rollout.exe"

/* Calls the function below `narg` arguments with a traceback handler, with
 * ^C armed for the duration. Returns a lua status. */
int rollout_docall(lua_State *L, int narg, int nres);

/* Reports the error on top of the stack (stderr) and returns the exit code
 * it asks for: the `exit` field of a refusal table, else 1. Pops it. */
int rollout_report(lua_State *L, int status, const char *progname);

/* ^C handling (runtime/lib/interrupt.c).
 *
 * ^C is a value, not a message: the error raised is one sentinel per Lua
 * state (a read-only table in the registry, sys.INTERRUPTED, also
 * rollout.errors.INTERRUPTED), recognised by identity (errors.is_interrupt
 * in Lua, rollout_is_interrupt in C), never by the word in a string. It
 * prints as "interrupted" (__tostring, __concat; e.message and e.code are
 * "interrupted" too), so the host reports "rollout: interrupted" (exit 1)
 * and scripts printing it keep working. */
void rollout_interrupt_arm(lua_State *L);    /* install the SIGINT handler */
void rollout_interrupt_disarm(void);         /* restore the default action */
int rollout_interrupted(void);               /* a ^C arrived and is pending */
/* Defers ^C (on = 1) for a critical section: a ^C (and any further one)
 * only marks itself pending until the section ends (on = 0); the ^C after
 * that ends the process. Returns the previous setting. */
int rollout_interrupt_defer(int on);
/* Raises the sentinel if a ^C is pending (and not deferred). */
void rollout_check_interrupt(lua_State *L);
/* Forgets the pending ^C (the next one ends the process) and raises the
 * sentinel: for a blocking call that saw rollout_interrupted() and has
 * freed what it held. */
int rollout_raise_interrupt(lua_State *L);
/* Pushes the sentinel (made on first use). */
void rollout_push_interrupt(lua_State *L);
/* Is the value at idx the sentinel? */
int rollout_is_interrupt(lua_State *L, int idx);
/* Children of rollout.proc.run, stopped by ^C (detached daemons are not).
 * The table grows as needed; track returns -1 only when out of memory
 * (the caller must then not leave the child running untracked). */
int rollout_child_track(pid_t pid);
void rollout_child_untrack(pid_t pid);

/* Environment failures: push nil, message, code, raw and return 4. raw is
 * the upstream reason ("curl 28"), NULL when there is none (then the
 * code's name is pushed). */
int rollout_fail(lua_State *L, rollout_code code, const char *raw, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;
/* Same, with strerror(err) appended; the code is rollout_errno_code(err),
 * raw the errno name ("ENOENT"). */
int rollout_fail_errno(lua_State *L, int err, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* Pushes a userdata holding an empty rbuf (include/rollout/lib.h) that its
 * __gc / __close frees: a buffer a raise never leaks. */
rbuf *rollout_newbuf(lua_State *L);
/* Pushes the contents of b as a string and frees its memory. */
void rollout_pushbuf(lua_State *L, rbuf *b);

/* Reads an optional numeric field of the table at idx (misuse raises). */
double rollout_optfield_number(lua_State *L, int idx, const char *field, double def);
/* Reads an optional string field; returns def when absent. */
const char *rollout_optfield_string(lua_State *L, int idx, const char *field, const char *def);
/* Reads an optional boolean field. */
int rollout_optfield_boolean(lua_State *L, int idx, const char *field, int def);

#endif
