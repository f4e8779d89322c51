/* rollout.proc.spawn: starts a detached daemon that outlives rollout (double
 * fork + setsid, stdin from /dev/null, stdout+stderr appended to a log),
 * returns its real pid, and reports exec failures like proc.run. */
#define _GNU_SOURCE
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define SPAWN_MT "rollout.proc.spawn"
#define START_TIMEOUT 10.0 /* seconds for the daemon to reach exec */

typedef struct spawn_state {
    int null_fd, log_fd, report_r, report_w;
} spawn_state;

static void spawn_release(spawn_state *st)
{
    px_close_fd(&st->null_fd);
    px_close_fd(&st->log_fd);
    px_close_fd(&st->report_r);
    px_close_fd(&st->report_w);
}

static int spawn_gc(lua_State *L)
{
    spawn_release(luaL_checkudata(L, 1, SPAWN_MT));
    return 0;
}

/* The daemon, between fork and exec: async-signal-safe calls only. */
static _Noreturn void daemon_exec(const spawn_state *st, const px_spec *spec)
{
    int w = st->report_w;
    px_child_reset_signals();
    setpgid(0, 0); /* its own group (pgid == pid), in the new session */
    if (dup2(st->null_fd, 0) < 0 || dup2(st->log_fd, 1) < 0 || dup2(st->log_fd, 2) < 0)
        px_child_fail(w, PX_MSG_SETUP, errno);
    if (spec->cwd != NULL && chdir(spec->cwd) != 0)
        px_child_fail(w, PX_MSG_CHDIR, errno);
    px_child_cloexec_from3(spec->max_fd);
    execve(spec->path, spec->argv, spec->envp);
    px_child_fail(w, PX_MSG_EXEC, errno);
}

/* The intermediate child: a new session, the daemon, its pid, gone. */
static _Noreturn void intermediate(const spawn_state *st, const px_spec *spec)
{
    px_msg m;
    pid_t pid;
    setsid();
    pid = fork();
    if (pid == 0)
        daemon_exec(st, spec);
    if (pid < 0)
        px_child_fail(st->report_w, PX_MSG_FORK, errno);
    m.kind = PX_MSG_PID;
    m.value = (int)pid;
    while (write(st->report_w, &m, sizeof m) < 0 && errno == EINTR)
        ;
    _exit(0);
}

/* Reads the reports until EOF (the daemon exec'd). Returns 0 with *pid set,
 * 1 with *fail set, -1 on timeout, -2 on ^C. */
static int read_reports(spawn_state *st, pid_t *pid, px_msg *fail)
{
    double deadline = rollout_now() + START_TIMEOUT;
    px_msg m;
    size_t got = 0;
    int failed = 0;
    for (;;) {
        struct pollfd pfd;
        ssize_t n;
        if (rollout_interrupted())
            return -2;
        if (rollout_now() >= deadline)
            return -1;
        pfd.fd = st->report_r;
        pfd.events = POLLIN;
        if (poll(&pfd, 1, 100) <= 0)
            continue;
        n = read(st->report_r, (char *)&m + got, sizeof m - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break; /* EOF: both children have closed their end */
        got += (size_t)n;
        if (got < sizeof m)
            continue;
        got = 0;
        if (m.kind == PX_MSG_PID) {
            *pid = (pid_t)m.value;
        } else if (!failed) {
            *fail = m;
            failed = 1;
        }
    }
    return failed;
}

/* Pushes a fresh spawn state (every fd -1, closed by __gc) and returns it. */
static spawn_state *new_spawn_state(lua_State *L)
{
    spawn_state *st = lua_newuserdatauv(L, sizeof *st, 0);
    st->null_fd = st->log_fd = st->report_r = st->report_w = -1;
    if (luaL_newmetatable(L, SPAWN_MT)) {
        lua_pushcfunction(L, spawn_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_setmetatable(L, -2);
    return st;
}

/* Opens the daemon's stdout+stderr (log, or /dev/null): 0, else the state
 * released and the failure pushed. */
static int open_log(lua_State *L, spawn_state *st, const char *log)
{
    int err;
    if (log == NULL) {
        st->log_fd = px_fd_above2(open("/dev/null", O_WRONLY | O_CLOEXEC));
    } else {
        /* never through a symbolic link planted where the log goes, and only
         * into a regular file (O_NONBLOCK: a FIFO without reader must not
         * hang the open) */
        struct stat lst;
        st->log_fd = px_fd_above2(open(log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0600));
        if (st->log_fd < 0 && errno == ELOOP) {
            spawn_release(st);
            return rollout_fail(L, ROLLOUT_E_INVALID, "ELOOP", "cannot open the log '%s': it is a symbolic link (rollout does not "
                                "follow links there)", log);
        }
        if (st->log_fd < 0 && errno == ENXIO) { /* a FIFO nobody reads */
            spawn_release(st);
            return rollout_fail(L, ROLLOUT_E_INVALID, "EINVAL", "cannot open the log '%s': not a regular file (a FIFO)",
                                log);
        }
        if (st->log_fd >= 0 && (fstat(st->log_fd, &lst) != 0 || !S_ISREG(lst.st_mode))) {
            spawn_release(st);
            return rollout_fail(L, ROLLOUT_E_INVALID, "EINVAL", "cannot open the log '%s': not a regular file", log);
        }
        if (st->log_fd >= 0)
            fcntl(st->log_fd, F_SETFL, fcntl(st->log_fd, F_GETFL) & ~O_NONBLOCK);
    }
    if (st->log_fd < 0) {
        err = errno;
        spawn_release(st);
        return rollout_fail_errno(L, err, "cannot open the log '%s'", log ? log : "/dev/null");
    }
    return 0;
}

/* Opens /dev/null for stdin, the log and the report pipe: 0, else the
 * failure pushed. */
static int open_fds(lua_State *L, spawn_state *st, const char *log, const px_spec *spec)
{
    int r, err, p[2];
    st->null_fd = px_fd_above2(open("/dev/null", O_RDONLY | O_CLOEXEC));
    if (st->null_fd < 0)
        return rollout_fail_errno(L, errno, "cannot open /dev/null");
    if ((r = open_log(L, st, log)) != 0)
        return r;
    if (pipe2(p, O_CLOEXEC) != 0 || (p[0] = px_fd_above2(p[0])) < 0 || (p[1] = px_fd_above2(p[1])) < 0) {
        err = errno;
        spawn_release(st);
        return rollout_fail_errno(L, err, "cannot run '%s': pipe", spec->argv[0]);
    }
    st->report_r = p[0];
    st->report_w = p[1];
    return 0;
}

/* Forks the intermediate child (which starts the daemon) and reaps it,
 * keeping only the read end of the report pipe: 0, else the failure pushed. */
static int start_daemon(lua_State *L, spawn_state *st, const px_spec *spec)
{
    sigset_t old;
    pid_t mid;
    int err;
    px_block_signals(&old);
    mid = fork();
    if (mid == 0)
        intermediate(st, spec);
    err = errno;
    px_restore_signals(&old);
    if (mid < 0) {
        spawn_release(st);
        return rollout_fail_errno(L, err, "cannot run '%s': fork", spec->argv[0]);
    }
    px_close_fd(&st->report_w);
    px_close_fd(&st->null_fd);
    px_close_fd(&st->log_fd);
    while (waitpid(mid, NULL, 0) < 0 && errno == EINTR)
        ; /* it exits right after the second fork */
    return 0;
}

/* Turns what read_reports returned into 0 (the daemon runs as pid), or
 * raises ^C, or pushes the failure (killing a daemon that is late). */
static int check_started(lua_State *L, int r, pid_t pid, const px_msg *fail, const px_spec *spec)
{
    if (r == -2) {
        return rollout_raise_interrupt(L);
    }
    if (r == -1) {
        if (pid > 0)
            kill(pid, SIGKILL);
        return rollout_fail(L, ROLLOUT_E_TIMEOUT, NULL, "cannot run '%s': it did not start within %ds", spec->argv[0],
                            (int)START_TIMEOUT);
    }
    if (r == 1)
        return px_fail_exec(L, spec, fail);
    if (pid <= 0)
        return rollout_fail(L, ROLLOUT_E_IO, "EIO", "cannot run '%s': the intermediate process failed", spec->argv[0]);
    return 0;
}

/* Writes "pid\n" to pidfile: 0, else the daemon killed and the failure pushed. */
static int write_pidfile(lua_State *L, const char *pidfile, pid_t pid)
{
    char buf[32];
    int n = snprintf(buf, sizeof buf, "%ld\n", (long)pid);
    int err = rollout_write_atomic(pidfile, buf, (size_t)n, 0644, 1);
    if (err != 0) {
        kill(pid, SIGKILL); /* nobody could find it to stop it */
        return rollout_fail_errno(L, err, "cannot write the pidfile '%s'", pidfile);
    }
    return 0;
}

/* proc.spawn{argv=, log=, pidfile=, cwd=, env=, clear_env=} -> pid | nil, msg, code, raw */
int px_spawn(lua_State *L)
{
    px_spec spec;
    spawn_state *st;
    const char *log, *pidfile;
    pid_t pid = 0;
    px_msg fail;
    int r;

    luaL_checktype(L, 1, LUA_TTABLE);
    log = rollout_optfield_string(L, 1, "log", NULL);
    pidfile = rollout_optfield_string(L, 1, "pidfile", NULL);
    st = new_spawn_state(L);
    if ((r = px_read_spec(L, 1, &spec)) != 0)
        return r;
    if ((r = open_fds(L, st, log, &spec)) != 0)
        return r;
    if ((r = start_daemon(L, st, &spec)) != 0)
        return r;

    r = read_reports(st, &pid, &fail);
    spawn_release(st);
    if ((r = check_started(L, r, pid, &fail, &spec)) != 0)
        return r;
    if (pidfile != NULL && (r = write_pidfile(L, pidfile, pid)) != 0)
        return r;
    lua_pushinteger(L, (lua_Integer)pid);
    return 1;
}
