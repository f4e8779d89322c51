/* The error codes (include/rollout/host.h lists them and what they mean),
 * and errno values as codes (the `code` of a failure an operating-system
 * call gave) and as names (its `raw`). */
#include "rollout/lib.h"

#include <errno.h>

static const char *const code_names[ROLLOUT_E_NCODES] = {
    [ROLLOUT_E_NOT_FOUND] = "not_found",
    [ROLLOUT_E_EXISTS] = "exists",
    [ROLLOUT_E_CONFLICT] = "conflict",
    [ROLLOUT_E_INVALID] = "invalid",
    [ROLLOUT_E_UNAUTHORIZED] = "unauthorized",
    [ROLLOUT_E_FORBIDDEN] = "forbidden",
    [ROLLOUT_E_TIMEOUT] = "timeout",
    [ROLLOUT_E_CONNECT] = "connect",
    [ROLLOUT_E_TLS] = "tls",
    [ROLLOUT_E_UNAVAILABLE] = "unavailable",
    [ROLLOUT_E_GONE] = "gone",
    [ROLLOUT_E_LOCKED] = "locked",
    [ROLLOUT_E_INTERRUPTED] = "interrupted",
    [ROLLOUT_E_IO] = "io",
    [ROLLOUT_E_PROTOCOL] = "protocol",
    [ROLLOUT_E_TOO_LARGE] = "too_large",
    [ROLLOUT_E_FAILED] = "failed",
    [ROLLOUT_E_OTHER] = "other",
};

const char *rollout_code_name(rollout_code code)
{
    if ((unsigned)code >= ROLLOUT_E_NCODES)
        return "other";
    return code_names[code];
}

rollout_code rollout_errno_code(int err)
{
    switch (err) {
    case ENOENT: /* no such file or directory */
    case ENOTDIR: /* a path component is not a directory */
    case ESRCH: /* no such process */
    case ECHILD: /* no such child */
    case ENXIO: /* no such device or address (a FIFO without a reader) */
    case ENODEV:
        return ROLLOUT_E_NOT_FOUND;
    case EEXIST:
    case ENOTEMPTY: /* the directory still has entries */
        return ROLLOUT_E_EXISTS;
    case EBUSY:
    case ETXTBSY:
    case EADDRINUSE: /* another process holds the resource */
        return ROLLOUT_E_CONFLICT;
    case EACCES:
    case EPERM:
    case EROFS:
        return ROLLOUT_E_FORBIDDEN;
    case ETIMEDOUT:
        return ROLLOUT_E_TIMEOUT;
    case ECONNREFUSED:
    case ENETUNREACH:
    case EHOSTUNREACH:
    case EADDRNOTAVAIL:
        return ROLLOUT_E_CONNECT;
    case EINVAL:
    case ENAMETOOLONG:
    case ELOOP: /* a symbolic link where none is followed, or too many */
    case EISDIR: /* a directory where a file is expected */
    case ENOEXEC: /* not a program */
    case EXDEV:
        return ROLLOUT_E_INVALID;
    case EFBIG:
    case E2BIG:
    case EOVERFLOW:
    case EMSGSIZE:
        return ROLLOUT_E_TOO_LARGE;
    default: /* ENOSPC, EDQUOT, ENOMEM, EMFILE, EIO, EPIPE, ECONNRESET, EINTR... */
        return ROLLOUT_E_IO;
    }
}

const char *rollout_errno_name(int err)
{
    switch (err) {
    case ENOENT: return "ENOENT";
    case EACCES: return "EACCES";
    case EPERM: return "EPERM";
    case EEXIST: return "EEXIST";
    case ENOTDIR: return "ENOTDIR";
    case EISDIR: return "EISDIR";
    case ENOSPC: return "ENOSPC";
    case EAGAIN: return "EAGAIN";
    case EINTR: return "EINTR";
    case ECHILD: return "ECHILD";
    case ESRCH: return "ESRCH";
    case EINVAL: return "EINVAL";
    case ECONNREFUSED: return "ECONNREFUSED";
    case ECONNRESET: return "ECONNRESET";
    case ENETUNREACH: return "ENETUNREACH";
    case EHOSTUNREACH: return "EHOSTUNREACH";
    case EADDRNOTAVAIL: return "EADDRNOTAVAIL";
    case EPIPE: return "EPIPE";
    case ETIMEDOUT: return "ETIMEDOUT";
    case EADDRINUSE: return "EADDRINUSE";
    case ENAMETOOLONG: return "ENAMETOOLONG";
    case EROFS: return "EROFS";
    case EMFILE: return "EMFILE";
    case ENFILE: return "ENFILE";
    case ENOTEMPTY: return "ENOTEMPTY";
    case ELOOP: return "ELOOP";
    case EXDEV: return "EXDEV";
    case EBUSY: return "EBUSY";
    case ENOEXEC: return "ENOEXEC";
    case ETXTBSY: return "ETXTBSY";
    case E2BIG: return "E2BIG";
    case ENOMEM: return "ENOMEM";
    case EFBIG: return "EFBIG";
    case EBADF: return "EBADF";
    case EMLINK: return "EMLINK";
    case EDQUOT: return "EDQUOT";
    case ENXIO: return "ENXIO";
    case ENODEV: return "ENODEV";
    case EOVERFLOW: return "EOVERFLOW";
    case EMSGSIZE: return "EMSGSIZE";
    default: return "EIO";
    }
}
