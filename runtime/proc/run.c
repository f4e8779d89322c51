/* rollout.proc.run: runs an argv in its own process group, feeds stdin and
 * captures stdout/stderr through one poll loop, and stops the whole group on
 * a timeout or ^C (SIGTERM, a short grace, SIGKILL), always reaping it. */
#define _GNU_SOURCE
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define RUN_MT "rollout.proc.run"
#define DEFAULT_MAX_OUTPUT (64.0 * 1024 * 1024)
#define GRACE 0.5      /* seconds between SIGTERM and SIGKILL */
#define CHUNK 65536

enum { IO_CAPTURE, IO_INHERIT, IO_NULL, IO_STDOUT };

/* Captured output, up to max bytes (the rest is dropped and said so). */
typedef struct outbuf {
    rbuf b;
    size_t max;
    int truncated;
} outbuf;

/* Everything a run holds, in a userdata whose __gc releases it if a raise
 * ever skips the explicit release. */
typedef struct run_state {
    pid_t pid;     /* the child; its process group has the same id */
    int live;      /* forked and not reaped yet */
    int wstatus;   /* once reaped */
    double start, end;
    int in_fd, out_fd, err_fd; /* our ends of the pipes, -1 when closed */
    int child_in, child_out, child_err, null_fd, report_r, report_w;
    int pidfd;
    const char *input; /* anchored by the options table */
    size_t input_len, input_off;
    outbuf out, err;
} run_state;

static void close_child_ends(run_state *st)
{
    px_close_fd(&st->child_in);
    px_close_fd(&st->child_out);
    px_close_fd(&st->child_err);
    px_close_fd(&st->null_fd);
    px_close_fd(&st->report_w);
}

/* Reaps the child, blocking (it has been sent SIGKILL, or has exited). */
static void reap(run_state *st)
{
    int ws = 0;
    rollout_child_untrack(st->pid); /* before the pid can be reused */
    while (waitpid(st->pid, &ws, 0) < 0 && errno == EINTR)
        ;
    st->wstatus = ws;
    st->live = 0;
    st->end = rollout_now();
}

static void run_release(run_state *st)
{
    if (st->live) {
        kill(-st->pid, SIGKILL);
        reap(st);
    }
    close_child_ends(st);
    px_close_fd(&st->in_fd);
    px_close_fd(&st->out_fd);
    px_close_fd(&st->err_fd);
    px_close_fd(&st->report_r);
    px_close_fd(&st->pidfd);
    rbuf_free(&st->out.b);
    rbuf_free(&st->err.b);
}

static int run_gc(lua_State *L)
{
    run_release(luaL_checkudata(L, 1, RUN_MT));
    return 0;
}

static void append(outbuf *o, const char *src, size_t n)
{
    if (n > o->max - o->b.len) {
        o->truncated = 1;
        n = o->max - o->b.len;
    }
    if (n > 0 && rbuf_add(&o->b, src, n) != 0)
        o->truncated = 1;
}

/* Reads what is available on *fd into b; closes it at EOF or on error.
 * With `all`, keeps reading until the pipe is empty. */
static void read_some(int *fd, outbuf *b, int all)
{
    char chunk[CHUNK];
    while (*fd >= 0) {
        ssize_t n = read(*fd, chunk, sizeof chunk);
        if (n > 0) {
            append(b, chunk, (size_t)n);
            if (!all)
                return;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        px_close_fd(fd); /* EOF or a read error */
    }
}

static void drain(run_state *st)
{
    read_some(&st->out_fd, &st->out, 1);
    read_some(&st->err_fd, &st->err, 1);
}

/* write() that turns SIGPIPE into EPIPE: the signal is blocked around the
 * call and a SIGPIPE it raised is consumed. */
static ssize_t write_nosigpipe(int fd, const void *buf, size_t n)
{
    sigset_t pipe_set, old, pending;
    int was_pending, err;
    ssize_t r;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    sigpending(&pending);
    was_pending = sigismember(&pending, SIGPIPE);
    sigprocmask(SIG_BLOCK, &pipe_set, &old);
    r = write(fd, buf, n);
    err = errno;
    if (r < 0 && err == EPIPE && !was_pending) {
        struct timespec zero = {0, 0};
        sigtimedwait(&pipe_set, NULL, &zero);
    }
    sigprocmask(SIG_SETMASK, &old, NULL);
    errno = err;
    return r;
}

static void write_some(run_state *st)
{
    while (st->in_fd >= 0) {
        size_t left = st->input_len - st->input_off;
        ssize_t n;
        if (left == 0) {
            px_close_fd(&st->in_fd); /* EOF for the child */
            return;
        }
        n = write_nosigpipe(st->in_fd, st->input + st->input_off, left > CHUNK ? CHUNK : left);
        if (n > 0) {
            st->input_off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        px_close_fd(&st->in_fd); /* EPIPE: the child does not read any more */
    }
}

/* Has the child exited? Reaps it if so (without blocking). */
static int try_reap(run_state *st)
{
    siginfo_t si;
    if (!st->live)
        return 1;
    memset(&si, 0, sizeof si);
    if (waitid(P_PID, (id_t)st->pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid == st->pid) {
        reap(st);
        return 1;
    }
    return 0;
}

/* SIGTERM to the group, a grace period (still reading output), SIGKILL to
 * the group while the child's pid still names it, then reap. */
static void stop_child(run_state *st)
{
    double until;
    if (!st->live)
        return;
    kill(-st->pid, SIGTERM);
    until = rollout_now() + GRACE;
    while (rollout_now() < until) {
        siginfo_t si;
        memset(&si, 0, sizeof si);
        if (waitid(P_PID, (id_t)st->pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid == st->pid)
            break;
        drain(st);
        rollout_nap(0.01);
    }
    kill(-st->pid, SIGKILL); /* grandchildren that ignored or outlived SIGTERM */
    reap(st);
}

static void set_nonblock(int fd)
{
    if (fd >= 0)
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

static void push_buf(lua_State *L, const outbuf *b, const char *field)
{
    lua_pushlstring(L, b->b.p ? b->b.p : "", b->b.len);
    lua_setfield(L, -2, field);
}

static void push_result(lua_State *L, const run_state *st)
{
    lua_createtable(L, 0, 6);
    if (WIFEXITED(st->wstatus)) {
        lua_pushinteger(L, WEXITSTATUS(st->wstatus));
        lua_setfield(L, -2, "status");
    } else if (WIFSIGNALED(st->wstatus)) {
        lua_pushinteger(L, WTERMSIG(st->wstatus));
        lua_setfield(L, -2, "signal");
    }
    push_buf(L, &st->out, "stdout");
    push_buf(L, &st->err, "stderr");
    lua_pushnumber(L, st->end - st->start);
    lua_setfield(L, -2, "duration");
    if (st->out.truncated || st->err.truncated) {
        lua_pushboolean(L, 1);
        lua_setfield(L, -2, "truncated");
    }
}

static int io_mode(lua_State *L, const char *field, int allow_stdout)
{
    const char *v = rollout_optfield_string(L, 1, field, "capture");
    if (strcmp(v, "capture") == 0)
        return IO_CAPTURE;
    if (strcmp(v, "inherit") == 0)
        return IO_INHERIT;
    if (strcmp(v, "null") == 0)
        return IO_NULL;
    if (allow_stdout && strcmp(v, "stdout") == 0)
        return IO_STDOUT;
    return luaL_error(L, "field '%s' must be \"capture\", \"inherit\", \"null\"%s (got \"%s\")", field,
                      allow_stdout ? " or \"stdout\"" : "", v);
}

/* A pipe whose fds are both >= 3 and close-on-exec. */
static int make_pipe(int *r, int *w)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0)
        return errno;
    p[0] = px_fd_above2(p[0]);
    p[1] = px_fd_above2(p[1]);
    if (p[0] < 0 || p[1] < 0) {
        int err = errno;
        if (p[0] >= 0)
            close(p[0]);
        if (p[1] >= 0)
            close(p[1]);
        return err;
    }
    *r = p[0];
    *w = p[1];
    return 0;
}

static int open_fds(run_state *st, int out_mode, int err_mode)
{
    int err;
    st->null_fd = px_fd_above2(open("/dev/null", O_RDWR | O_CLOEXEC));
    if (st->null_fd < 0)
        return errno;
    if (st->input != NULL) {
        if ((err = make_pipe(&st->child_in, &st->in_fd)) != 0)
            return err;
    }
    if (out_mode == IO_CAPTURE && (err = make_pipe(&st->out_fd, &st->child_out)) != 0)
        return err;
    if (err_mode == IO_CAPTURE && (err = make_pipe(&st->err_fd, &st->child_err)) != 0)
        return err;
    return make_pipe(&st->report_r, &st->report_w);
}

/* Between fork and exec: async-signal-safe calls only. */
static _Noreturn void child_exec(const run_state *st, const px_spec *spec, int out_mode, int err_mode)
{
    int w = st->report_w;
    px_child_reset_signals();
    setpgid(0, 0);
    if (dup2(st->input != NULL ? st->child_in : st->null_fd, 0) < 0)
        px_child_fail(w, PX_MSG_SETUP, errno);
    if (out_mode != IO_INHERIT && dup2(out_mode == IO_CAPTURE ? st->child_out : st->null_fd, 1) < 0)
        px_child_fail(w, PX_MSG_SETUP, errno);
    if (err_mode == IO_STDOUT) {
        if (dup2(1, 2) < 0)
            px_child_fail(w, PX_MSG_SETUP, errno);
    } else if (err_mode != IO_INHERIT &&
               dup2(err_mode == IO_CAPTURE ? st->child_err : st->null_fd, 2) < 0) {
        px_child_fail(w, PX_MSG_SETUP, errno);
    }
    if (spec->cwd != NULL && chdir(spec->cwd) != 0)
        px_child_fail(w, PX_MSG_CHDIR, errno);
    px_child_cloexec_from3(spec->max_fd);
    execve(spec->path, spec->argv, spec->envp);
    px_child_fail(w, PX_MSG_EXEC, errno);
}

/* Stops the child, releases everything and raises the interrupt sentinel. */
static int interrupted(lua_State *L, run_state *st)
{
    stop_child(st);
    run_release(st);
    return rollout_raise_interrupt(L);
}

static int timed_out(lua_State *L, run_state *st, const px_spec *spec, double timeout)
{
    char what[512], secs[64];
    stop_child(st);
    drain(st);
    px_describe(spec, what, sizeof what);
    snprintf(secs, sizeof secs, "%g", timeout);
    rollout_fail(L, ROLLOUT_E_TIMEOUT, NULL, "timed out after %ss: %s", secs, what);
    push_result(L, st);
    run_release(st);
    return 5;
}

/* Waits for the exec report (honouring ^C and the deadline): 0 once the
 * child has exec'd, else the results of a failure pushed. */
static int await_exec(lua_State *L, run_state *st, const px_spec *spec, double deadline, double timeout)
{
    px_msg msg;
    size_t got = 0;
    while (got < sizeof msg) {
        struct pollfd pfd;
        double left = deadline - rollout_now();
        ssize_t n;
        if (rollout_interrupted())
            return interrupted(L, st);
        if (left <= 0)
            return timed_out(L, st, spec, timeout);
        pfd.fd = st->report_r;
        pfd.events = POLLIN;
        if (poll(&pfd, 1, left < 0.1 ? (int)ceil(left * 1000.0) : 100) <= 0)
            continue;
        n = read(st->report_r, (char *)&msg + got, sizeof msg - got);
        if (n > 0)
            got += (size_t)n;
        else if (n == 0 || errno != EINTR)
            break;
    }
    px_close_fd(&st->report_r);
    if (got < sizeof msg)
        return 0; /* EOF: execve succeeded and closed the pipe */
    reap(st); /* the child ends with _exit(127) right after reporting */
    run_release(st);
    return px_fail_exec(L, spec, &msg);
}

/* Reads opts.timeout (HUGE_VAL when absent) and opts.max_output. Misuse
 * raises. */
static void read_limits(lua_State *L, double *timeout, double *max_output)
{
    *timeout = HUGE_VAL;
    lua_getfield(L, 1, "timeout");
    if (!lua_isnil(L, -1)) {
        if (lua_type(L, -1) != LUA_TNUMBER || !(lua_tonumber(L, -1) > 0))
            luaL_error(L, "field 'timeout' must be a positive number of seconds");
        *timeout = lua_tonumber(L, -1);
    }
    lua_pop(L, 1);
    *max_output = rollout_optfield_number(L, 1, "max_output", DEFAULT_MAX_OUTPUT);
    if (!(*max_output >= 0) || *max_output > 4e18)
        luaL_error(L, "field 'max_output' must be a number of bytes >= 0");
}

/* Pushes a fresh run state (every fd -1, released by __gc) and returns it. */
static run_state *new_run_state(lua_State *L, double max_output)
{
    run_state *st = lua_newuserdatauv(L, sizeof *st, 0);
    memset(st, 0, sizeof *st);
    st->in_fd = st->out_fd = st->err_fd = st->pidfd = -1;
    st->child_in = st->child_out = st->child_err = st->null_fd = st->report_r = st->report_w = -1;
    st->out.max = st->err.max = (size_t)max_output;
    if (luaL_newmetatable(L, RUN_MT)) {
        lua_pushcfunction(L, run_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_setmetatable(L, -2);
    return st;
}

/* Reads opts.stdin (a string, anchored by the table, or nil). Misuse raises. */
static void read_stdin(lua_State *L, run_state *st)
{
    lua_getfield(L, 1, "stdin");
    if (lua_type(L, -1) == LUA_TSTRING)
        st->input = lua_tolstring(L, -1, &st->input_len); /* anchored by the table */
    else if (!lua_isnil(L, -1))
        luaL_error(L, "field 'stdin' must be a string (got %s)", luaL_typename(L, -1));
    lua_pop(L, 1);
}

/* Opens the pipes and forks the child into its own group, tracked for ^C:
 * 0 once it runs, else everything released and the failure pushed. */
static int start_child(lua_State *L, run_state *st, const px_spec *spec, int out_mode, int err_mode)
{
    sigset_t old;
    pid_t pid;
    int err;

    if ((err = open_fds(st, out_mode, err_mode)) != 0) {
        run_release(st);
        return rollout_fail_errno(L, err, "cannot run '%s'", spec->argv[0]);
    }
    px_block_signals(&old);
    st->start = rollout_now();
    pid = fork();
    if (pid == 0)
        child_exec(st, spec, out_mode, err_mode);
    if (pid < 0) {
        err = errno;
        px_restore_signals(&old);
        run_release(st);
        return rollout_fail_errno(L, err, "cannot run '%s': fork", spec->argv[0]);
    }
    setpgid(pid, pid); /* also here, so the group exists before we signal it */
    st->pid = pid;
    st->live = 1;
    err = rollout_child_track(pid) != 0;
    px_restore_signals(&old);
    if (err) { /* ^C could not stop it: it does not run at all */
        run_release(st);
        return rollout_fail(L, ROLLOUT_E_IO, "ENOMEM", "cannot run '%s': out of memory", spec->argv[0]);
    }
    close_child_ends(st);
    return 0;
}

/* Adds fd to the poll set when it is open; its index there, or -1. */
static int watch_fd(struct pollfd *fds, int *nfds, int fd, short events)
{
    if (fd < 0)
        return -1;
    fds[*nfds].fd = fd;
    fds[*nfds].events = events;
    fds[*nfds].revents = 0;
    return (*nfds)++;
}

/* One poll round of at most `left` seconds: feeds stdin and reads stdout
 * and stderr as far as they are ready. */
static void pump_io(run_state *st, double left)
{
    struct pollfd fds[4];
    int nfds = 0, ms, in_i, out_i, err_i;
    double wait;
    in_i = watch_fd(fds, &nfds, st->in_fd, POLLOUT);
    out_i = watch_fd(fds, &nfds, st->out_fd, POLLIN);
    err_i = watch_fd(fds, &nfds, st->err_fd, POLLIN);
    watch_fd(fds, &nfds, st->pidfd, POLLIN);
    /* wake up now and then to notice a ^C that hit before poll() */
    wait = st->pidfd >= 0 ? 0.1 : 0.02;
    if (left < wait)
        wait = left;
    ms = (int)ceil(wait * 1000.0);
    if (poll(fds, (nfds_t)nfds, ms) <= 0)
        return; /* timeout or EINTR: the caller's checks decide */
    if (in_i >= 0 && fds[in_i].revents)
        write_some(st);
    if (out_i >= 0 && fds[out_i].revents)
        read_some(&st->out_fd, &st->out, 0);
    if (err_i >= 0 && fds[err_i].revents)
        read_some(&st->err_fd, &st->err, 0);
}

/* Exchanges data with the exec'd child until it exits: 0 then (its output
 * drained), else (^C, timeout) the results of the failure pushed. */
static int await_exit(lua_State *L, run_state *st, const px_spec *spec, double deadline, double timeout)
{
    st->pidfd = (int)syscall(SYS_pidfd_open, st->pid, 0); /* -1 on old kernels: we tick instead */
    set_nonblock(st->in_fd);
    set_nonblock(st->out_fd);
    set_nonblock(st->err_fd);
    for (;;) {
        double now;
        if (try_reap(st)) {
            drain(st); /* what it wrote is in the pipes; grandchildren may hold them open */
            return 0;
        }
        if (rollout_interrupted())
            return interrupted(L, st);
        now = rollout_now();
        if (now >= deadline)
            return timed_out(L, st, spec, timeout);
        pump_io(st, deadline - now);
    }
}

/* proc.run{argv=, env=, clear_env=, cwd=, stdin=, timeout=, stdout=, stderr=,
 *          max_output=} -> {status=, signal=, stdout=, stderr=, duration=
 *          [, truncated=true]} | nil, msg, code, raw [, partial] */
int px_run(lua_State *L)
{
    px_spec spec;
    run_state *st;
    int out_mode, err_mode, r;
    double timeout, deadline, max_output;

    luaL_checktype(L, 1, LUA_TTABLE);
    out_mode = io_mode(L, "stdout", 0);
    err_mode = io_mode(L, "stderr", 1);
    read_limits(L, &timeout, &max_output);
    st = new_run_state(L, max_output);
    read_stdin(L, st);
    if ((r = px_read_spec(L, 1, &spec)) != 0)
        return r;
    if ((r = start_child(L, st, &spec, out_mode, err_mode)) != 0)
        return r;

    deadline = st->start + timeout;
    if ((r = await_exec(L, st, &spec, deadline, timeout)) != 0)
        return r;
    if ((r = await_exit(L, st, &spec, deadline, timeout)) != 0)
        return r;
    push_result(L, st);
    run_release(st);
    return 1;
}
