/* rollout.sock: plain sockets, without libcurl (a caller that only talks to
 * HAProxy's admin socket never loads rollout-net.so).
 *
 *   sock.exchange(path, text [, timeout = 5]) -> reply
 *     connects to a unix stream socket, sends text, half-closes, and reads
 *     the reply until the peer closes (HAProxy's admin and master sockets:
 *     text = "show stat\n").
 *     -> nil, message, code, raw: invalid (a bad path), connect (raw: the
 *        errno name), timeout, too_large (a reply over 16 MiB), or the code
 *        of the errno a send or receive gave
 *   sock.free_port([addr = "127.0.0.1"]) -> a TCP port free right now
 *
 * rollout.http keeps unix_exchange and free_port as aliases of these.
 * Misuse raises. ^C raises the interrupt sentinel after the socket is
 * closed. */
#define _GNU_SOURCE
#include "rollout/host.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define SOCKET_MT "rollout.sock.socket"
#define REPLY_MAX ((size_t)16 << 20)
#define CHUNK 16384

/* A socket held while Lua may raise; closed by __gc if a raise skips the
 * explicit close. */
typedef struct sock_ud {
    int fd;
} sock_ud;

static void sock_close(sock_ud *s)
{
    if (s->fd >= 0) {
        close(s->fd);
        s->fd = -1;
    }
}

static int sock_gc(lua_State *L)
{
    sock_close(luaL_checkudata(L, 1, SOCKET_MT));
    return 0;
}

/* How a step of the exchange ended. */
enum { STEP_OK, STEP_TIMEOUT, STEP_INTERRUPTED, STEP_ERROR, STEP_TOO_LARGE };

/* Waits for events on fd until the deadline, waking every 100 ms for ^C.
 * STEP_OK when ready, else STEP_TIMEOUT, STEP_INTERRUPTED or STEP_ERROR
 * (errno set). */
static int wait_fd(int fd, short events, double deadline)
{
    for (;;) {
        struct pollfd p = {fd, events, 0};
        double left = deadline - rollout_now();
        int ms, n;
        if (rollout_interrupted())
            return STEP_INTERRUPTED;
        if (left <= 0)
            return STEP_TIMEOUT;
        ms = left > 0.1 ? 100 : (int)(left * 1000) + 1;
        n = poll(&p, 1, ms);
        if (n > 0)
            return STEP_OK;
        if (n < 0 && errno != EINTR)
            return STEP_ERROR;
    }
}

/* A connected, non-blocking unix stream socket in s->fd: 0, or the
 * failure pushed (its count). */
static int connect_unix(lua_State *L, sock_ud *s, const char *path, size_t plen)
{
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    if (plen == 0 || plen >= sizeof sa.sun_path || strlen(path) != plen)
        return rollout_fail(L, ROLLOUT_E_INVALID, NULL, "unix socket %s: bad path (empty, NUL or over %d bytes)",
                            path, (int)sizeof sa.sun_path - 1);
    memcpy(sa.sun_path, path, plen);
    s->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s->fd < 0)
        return rollout_fail_errno(L, errno, "unix socket %s", path);
    if (connect(s->fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        int err = errno;
        sock_close(s);
        return rollout_fail(L, ROLLOUT_E_CONNECT, rollout_errno_name(err), "unix socket %s: connect: %s", path,
                            strerror(err));
    }
    fcntl(s->fd, F_SETFL, fcntl(s->fd, F_GETFL) | O_NONBLOCK);
    return 0;
}

/* Sends all of text: STEP_OK, or how it stopped (*err: the errno). */
static int send_all(int fd, const char *text, size_t len, double deadline, int *err)
{
    size_t sent = 0;
    while (sent < len) {
        ssize_t n;
        int w = wait_fd(fd, POLLOUT, deadline);
        if (w != STEP_OK) {
            *err = errno;
            return w;
        }
        n = send(fd, text + sent, len - sent, MSG_NOSIGNAL);
        if (n > 0)
            sent += (size_t)n;
        else if (n < 0 && errno != EAGAIN && errno != EINTR) {
            *err = errno;
            return STEP_ERROR;
        }
    }
    return STEP_OK;
}

/* Reads until the peer closes, into b: STEP_OK, or how it stopped (*err:
 * the errno). */
static int recv_all(int fd, luaL_Buffer *b, double deadline, int *err)
{
    size_t got = 0;
    for (;;) {
        ssize_t n;
        int w = wait_fd(fd, POLLIN, deadline);
        if (w != STEP_OK) {
            *err = errno;
            return w;
        }
        n = recv(fd, luaL_prepbuffsize(b, CHUNK), CHUNK, 0);
        if (n == 0)
            return STEP_OK;
        if (n > 0) {
            luaL_addsize(b, (size_t)n);
            got += (size_t)n;
            if (got > REPLY_MAX)
                return STEP_TOO_LARGE;
        } else if (errno != EAGAIN && errno != EINTR) {
            *err = errno;
            return STEP_ERROR;
        }
    }
}

/* A step that did not end with STEP_OK: the socket is closed, then ^C
 * raises, anything else is returned as nil, message, code, raw. */
static int step_failed(lua_State *L, sock_ud *s, int step, int err, const char *path, const char *what,
                       double timeout)
{
    sock_close(s);
    switch (step) {
    case STEP_INTERRUPTED:
        return rollout_raise_interrupt(L);
    case STEP_TIMEOUT:
        return rollout_fail(L, ROLLOUT_E_TIMEOUT, NULL, "unix socket %s: %s after %.3g s", path,
                            strcmp(what, "send") == 0 ? "no room to send" : "no complete reply", timeout);
    case STEP_TOO_LARGE:
        return rollout_fail(L, ROLLOUT_E_TOO_LARGE, NULL, "unix socket %s: the reply is over %d MiB", path,
                            (int)(REPLY_MAX >> 20));
    default:
        return rollout_fail_errno(L, err, "unix socket %s: %s", path, what);
    }
}

/* sock.exchange(path, text [, timeout = 5]) */
static int s_exchange(lua_State *L)
{
    size_t plen, tlen;
    const char *path = luaL_checklstring(L, 1, &plen);
    const char *text = luaL_checklstring(L, 2, &tlen);
    double timeout = luaL_optnumber(L, 3, 5);
    double deadline;
    sock_ud *s;
    luaL_Buffer b;
    int step, err = 0, n;

    luaL_argcheck(L, timeout > 0, 3, "must be a number of seconds > 0");
    lua_settop(L, 3);
    deadline = rollout_now() + timeout;
    s = lua_newuserdatauv(L, sizeof *s, 0); /* 4 */
    s->fd = -1;
    luaL_setmetatable(L, SOCKET_MT);
    if ((n = connect_unix(L, s, path, plen)) != 0)
        return n;
    step = send_all(s->fd, text, tlen, deadline, &err);
    if (step != STEP_OK)
        return step_failed(L, s, step, err, path, "send", timeout);
    shutdown(s->fd, SHUT_WR);
    luaL_buffinit(L, &b);
    step = recv_all(s->fd, &b, deadline, &err);
    if (step != STEP_OK)
        return step_failed(L, s, step, err, path, "recv", timeout);
    sock_close(s);
    luaL_pushresult(&b);
    return 1;
}

/* sock.free_port([addr = "127.0.0.1"]) -> port | nil, message, code, raw
 * A TCP port that is free right now on a numeric loopback/local address
 * (bound to port 0, read back, closed): for test fixtures and the local
 * target, which must give HAProxy a fixed port. Racy by nature: bind soon. */
static int s_free_port(lua_State *L)
{
    const char *addr = luaL_optstring(L, 1, "127.0.0.1");
    struct sockaddr_in a4;
    struct sockaddr_in6 a6;
    struct sockaddr *sa;
    socklen_t len;
    int fd, port, err;

    memset(&a4, 0, sizeof a4);
    memset(&a6, 0, sizeof a6);
    if (inet_pton(AF_INET, addr, &a4.sin_addr) == 1) {
        a4.sin_family = AF_INET;
        sa = (struct sockaddr *)&a4;
        len = sizeof a4;
    } else if (inet_pton(AF_INET6, addr, &a6.sin6_addr) == 1) {
        a6.sin6_family = AF_INET6;
        sa = (struct sockaddr *)&a6;
        len = sizeof a6;
    } else {
        return luaL_argerror(L, 1, "must be a numeric IPv4 or IPv6 address");
    }
    fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return rollout_fail_errno(L, errno, "free_port: socket");
    if (bind(fd, sa, len) != 0 || getsockname(fd, sa, &len) != 0) {
        err = errno;
        close(fd);
        return rollout_fail_errno(L, err, "free_port: bind %s", addr);
    }
    port = sa->sa_family == AF_INET ? ntohs(a4.sin_port) : ntohs(a6.sin6_port);
    close(fd);
    lua_pushinteger(L, port);
    return 1;
}

int luaopen_rollout_sock(lua_State *L)
{
    static const luaL_Reg funcs[] = {
        {"exchange", s_exchange},
        {"free_port", s_free_port},
        {NULL, NULL}};
    if (luaL_newmetatable(L, SOCKET_MT)) {
        lua_pushcfunction(L, sock_gc);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, sock_gc);
        lua_setfield(L, -2, "__close");
    }
    lua_pop(L, 1);
    luaL_newlib(L, funcs);
    return 1;
}
