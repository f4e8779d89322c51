/* Private temporary files and atomic file writes (temp file + fsync +
 * rename + fsync of the directory): rollout.fs.write_atomic, the pid files
 * of rollout.proc.spawn, the REPL's history. */
#define _GNU_SOURCE
#include "rollout/lib.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The directory of path ("." when none). 0 or ENAMETOOLONG. */
static int dir_of(const char *path, char *out, size_t outlen)
{
    const char *slash = strrchr(path, '/');
    size_t n;
    if (slash == NULL)
        return snprintf(out, outlen, ".") >= (int)outlen ? ENAMETOOLONG : 0;
    n = (size_t)(slash - path);
    if (n == 0)
        n = 1; /* "/x" lives in "/" */
    if (n >= outlen)
        return ENAMETOOLONG;
    memcpy(out, path, n);
    out[n] = '\0';
    return 0;
}

int rollout_tmpfile(const char *path, unsigned mode, char *tmp, size_t tmplen)
{
    static unsigned long counter;
    char dir[PATH_MAX];
    const char *base = strrchr(path, '/');
    int fd = -1, err;
    base = base ? base + 1 : path;
    if (*base == '\0') {
        errno = EISDIR; /* "dir/" names no file */
        return -1;
    }
    if ((err = dir_of(path, dir, sizeof dir)) != 0) {
        errno = err;
        return -1;
    }
    for (int attempt = 0; fd < 0; attempt++) {
        /* a hidden name unique per process and call, short enough for NAME_MAX */
        int n = snprintf(tmp, tmplen, "%s/.%.200s.tmp-%ld-%lu", dir, base, (long)getpid(), ++counter);
        if (n < 0 || (size_t)n >= tmplen) {
            errno = ENAMETOOLONG;
            return -1;
        }
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, (mode_t)(mode & 0777));
        if (fd < 0 && (errno != EEXIST || attempt >= 100))
            return -1;
    }
    if (fchmod(fd, (mode_t)mode) != 0) { /* exactly `mode`, whatever the umask */
        err = errno;
        close(fd);
        unlink(tmp);
        errno = err;
        return -1;
    }
    return fd;
}

int rollout_tmpfile_commit(const char *tmp, const char *path, int do_fsync)
{
    char dir[PATH_MAX];
    if (rename(tmp, path) != 0) {
        int err = errno;
        unlink(tmp);
        return err;
    }
    if (do_fsync && dir_of(path, dir, sizeof dir) == 0) {
        /* the rename is durable once the directory is; best effort: some
         * filesystems refuse fsync on directories */
        int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) {
            fsync(dfd);
            close(dfd);
        }
    }
    return 0;
}

static int write_all(int fd, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, data, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return errno;
        }
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

int rollout_write_atomic(const char *path, const char *data, size_t len, unsigned mode, int do_fsync)
{
    char tmp[PATH_MAX];
    int fd = rollout_tmpfile(path, mode, tmp, sizeof tmp);
    int err;
    if (fd < 0)
        return errno;
    err = write_all(fd, data, len);
    if (err == 0 && do_fsync && fsync(fd) != 0)
        err = errno;
    if (close(fd) != 0 && err == 0)
        err = errno;
    if (err != 0) {
        unlink(tmp);
        return err;
    }
    return rollout_tmpfile_commit(tmp, path, do_fsync);
}
