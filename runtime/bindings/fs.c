/* rollout.fs: reading, atomic writing (temp file + fsync + rename + fsync of
 * the directory), directories, path strings, and advisory locks (flock)
 * that say who holds them. */
#define _GNU_SOURCE
#include "rollout/host.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define GUARD_MT "rollout.fs.guard"
#define LOCK_MT "rollout.fs.lock"
#define MAX_TREE_DEPTH 256

/* ---------------------------------------------------------------- guards */

/* An fd or DIR* held while Lua may raise (out of memory); closed by __gc
 * if the explicit close is skipped. */
typedef struct guard {
    int fd;
    DIR *dir;
} guard;

static void guard_close(guard *g)
{
    if (g->dir != NULL) {
        closedir(g->dir);
        g->dir = NULL;
        g->fd = -1;
    }
    if (g->fd >= 0) {
        close(g->fd);
        g->fd = -1;
    }
}

static int guard_gc(lua_State *L)
{
    guard_close(luaL_checkudata(L, 1, GUARD_MT));
    return 0;
}

static guard *new_guard(lua_State *L)
{
    guard *g = lua_newuserdatauv(L, sizeof *g, 0);
    g->fd = -1;
    g->dir = NULL;
    if (luaL_newmetatable(L, GUARD_MT)) {
        lua_pushcfunction(L, guard_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_setmetatable(L, -2);
    return g;
}

static const char *check_path(lua_State *L, int idx)
{
    size_t len;
    const char *p = luaL_checklstring(L, idx, &len);
    if (strlen(p) != len)
        luaL_argerror(L, idx, "path contains a NUL byte");
    return p;
}

/* ------------------------------------------------------------ read/write */

/* What a file that is not a regular one is, for messages. */
static const char *file_kind(mode_t m)
{
    if (S_ISREG(m))
        return "a regular file";
    if (S_ISDIR(m))
        return "a directory";
    if (S_ISFIFO(m))
        return "a FIFO";
    if (S_ISSOCK(m))
        return "a socket";
    if (S_ISCHR(m))
        return "a character device";
    if (S_ISBLK(m))
        return "a block device";
    if (S_ISLNK(m))
        return "a symbolic link";
    return "a special file";
}

/* fs.read(path [, {nofollow = false, max = bytes, any = false}])
 *   -> string | nil, "path: msg", code, raw
 * Only regular files are read (a FIFO would block forever, a device never
 * end): others give nil, "path: not a regular file (a FIFO)", "invalid",
 * "EINVAL" unless `any`. `nofollow`: a symbolic link is refused ("invalid",
 * "ELOOP") instead of followed. `max`: a larger file is refused
 * ("too_large", "EFBIG") before it is read. */
static int fs_read(lua_State *L)
{
    const char *path = check_path(L, 1);
    int nofollow = 0, any = 0;
    lua_Integer max = -1;
    guard *g;
    luaL_Buffer b;
    struct stat st;
    size_t total = 0;
    if (!lua_isnoneornil(L, 2)) {
        luaL_checktype(L, 2, LUA_TTABLE);
        nofollow = rollout_optfield_boolean(L, 2, "nofollow", 0);
        any = rollout_optfield_boolean(L, 2, "any", 0);
        lua_getfield(L, 2, "max");
        if (!lua_isnil(L, -1)) {
            if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 0)
                return luaL_error(L, "field 'max' must be an integer >= 0");
            max = lua_tointeger(L, -1);
        }
        lua_pop(L, 1);
    }
    g = new_guard(L);
    /* O_NONBLOCK: opening a FIFO without a writer must not hang */
    g->fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | (nofollow ? O_NOFOLLOW : 0));
    if (g->fd < 0) {
        if (errno == ELOOP && nofollow)
            return rollout_fail(L, ROLLOUT_E_INVALID, "ELOOP",
                                "%s: is a symbolic link (rollout does not follow links there)", path);
        return rollout_fail_errno(L, errno, "%s", path);
    }
    if (fstat(g->fd, &st) != 0) {
        int err = errno;
        guard_close(g);
        return rollout_fail_errno(L, err, "%s", path);
    }
    if (S_ISDIR(st.st_mode)) {
        guard_close(g);
        return rollout_fail_errno(L, EISDIR, "%s", path);
    }
    if (!S_ISREG(st.st_mode) && !any) {
        guard_close(g);
        return rollout_fail(L, ROLLOUT_E_INVALID, "EINVAL", "%s: not a regular file (%s)", path, file_kind(st.st_mode));
    }
    if (max >= 0 && S_ISREG(st.st_mode) && (lua_Integer)st.st_size > max) {
        char size[32], cap[32];
        snprintf(size, sizeof size, "%lld", (long long)st.st_size);
        snprintf(cap, sizeof cap, "%lld", (long long)max);
        guard_close(g);
        return rollout_fail(L, ROLLOUT_E_TOO_LARGE, "EFBIG", "%s: too large (%s bytes, at most %s)", path, size, cap);
    }
    /* back to blocking reads (a FIFO read with `any` waits for its data) */
    fcntl(g->fd, F_SETFL, fcntl(g->fd, F_GETFL) & ~O_NONBLOCK);
    luaL_buffinit(L, &b);
    for (;;) {
        char *p = luaL_prepbuffer(&b);
        ssize_t n = read(g->fd, p, LUAL_BUFFERSIZE);
        if (n > 0) {
            total += (size_t)n;
            if (max >= 0 && total > (size_t)max) { /* it grew while being read */
                char cap[32];
                snprintf(cap, sizeof cap, "%lld", (long long)max);
                guard_close(g);
                return rollout_fail(L, ROLLOUT_E_TOO_LARGE, "EFBIG", "%s: too large (more than %s bytes)", path, cap);
            }
            luaL_addsize(&b, (size_t)n);
            continue;
        }
        if (n == 0)
            break;
        if (errno == EINTR)
            continue;
        {
            int err = errno;
            guard_close(g);
            return rollout_fail_errno(L, err, "%s", path);
        }
    }
    guard_close(g);
    luaL_pushresult(&b);
    return 1;
}

/* fs.write_atomic(path, data [, {mode = 0644, fsync = true}]) -> true | nil, msg, code, raw */
static int fs_write_atomic(lua_State *L)
{
    const char *path = check_path(L, 1);
    size_t len;
    const char *data = luaL_checklstring(L, 2, &len);
    lua_Integer mode = 0644;
    int do_fsync = 1, err;
    if (!lua_isnoneornil(L, 3)) {
        luaL_checktype(L, 3, LUA_TTABLE);
        lua_getfield(L, 3, "mode");
        if (!lua_isnil(L, -1)) {
            if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 0 || lua_tointeger(L, -1) > 07777)
                return luaL_error(L, "field 'mode' must be an integer between 0 and 4095 (octal 07777)");
            mode = lua_tointeger(L, -1);
        }
        lua_pop(L, 1);
        do_fsync = rollout_optfield_boolean(L, 3, "fsync", 1);
    }
    err = rollout_write_atomic(path, data, len, (unsigned)mode, do_fsync);
    if (err != 0)
        return rollout_fail_errno(L, err, "%s", path);
    lua_pushboolean(L, 1);
    return 1;
}

/* ----------------------------------------------------------- inspection */

/* fs.exists(path) -> boolean (follows symlinks) */
static int fs_exists(lua_State *L)
{
    struct stat st;
    lua_pushboolean(L, stat(check_path(L, 1), &st) == 0);
    return 1;
}

/* fs.stat(path) -> {type=, size=, mtime=, mode=, uid=, gid=, kind=} | nil, msg, code, raw
 * (lstat: a symlink is type "link"; kind names it for messages: "a FIFO") */
static int fs_stat(lua_State *L)
{
    const char *path = check_path(L, 1);
    struct stat st;
    const char *type = "other";
    if (lstat(path, &st) != 0)
        return rollout_fail_errno(L, errno, "%s", path);
    if (S_ISREG(st.st_mode))
        type = "file";
    else if (S_ISDIR(st.st_mode))
        type = "directory";
    else if (S_ISLNK(st.st_mode))
        type = "link";
    lua_createtable(L, 0, 7);
    lua_pushstring(L, type);
    lua_setfield(L, -2, "type");
    lua_pushinteger(L, (lua_Integer)st.st_size);
    lua_setfield(L, -2, "size");
    lua_pushnumber(L, (lua_Number)st.st_mtim.tv_sec + (lua_Number)st.st_mtim.tv_nsec / 1e9);
    lua_setfield(L, -2, "mtime");
    lua_pushinteger(L, (lua_Integer)(st.st_mode & 07777));
    lua_setfield(L, -2, "mode");
    lua_pushinteger(L, (lua_Integer)st.st_uid);
    lua_setfield(L, -2, "uid");
    lua_pushinteger(L, (lua_Integer)st.st_gid);
    lua_setfield(L, -2, "gid");
    lua_pushstring(L, file_kind(st.st_mode));
    lua_setfield(L, -2, "kind");
    return 1;
}

/* fs.readlink(path) -> the link's target | nil, msg, code, raw */
static int fs_readlink(lua_State *L)
{
    const char *path = check_path(L, 1);
    char buf[PATH_MAX];
    ssize_t n = readlink(path, buf, sizeof buf - 1);
    if (n < 0)
        return rollout_fail_errno(L, errno, "%s", path);
    lua_pushlstring(L, buf, (size_t)n);
    return 1;
}

/* fs.append(path, data [, {mode = 0600}]) -> true | nil, msg, code, raw
 * One write(2) of data at the end of a regular file (created with mode),
 * never through a symlink (O_NOFOLLOW): journals in the state directory. */
static int fs_append(lua_State *L)
{
    const char *path = check_path(L, 1);
    size_t len, off = 0;
    const char *data = luaL_checklstring(L, 2, &len);
    lua_Integer mode = 0600;
    struct stat st;
    int fd, err;
    if (!lua_isnoneornil(L, 3)) {
        luaL_checktype(L, 3, LUA_TTABLE);
        mode = (lua_Integer)rollout_optfield_number(L, 3, "mode", 0600);
    }
    fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, (mode_t)mode);
    if (fd < 0)
        return rollout_fail_errno(L, errno, "%s", path);
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return rollout_fail(L, ROLLOUT_E_INVALID, "EINVAL", "%s: not a regular file", path);
    }
    while (off < len) {
        ssize_t n = write(fd, data + off, len - off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            err = errno;
            close(fd);
            return rollout_fail_errno(L, err, "%s", path);
        }
        off += (size_t)n;
    }
    if (close(fd) != 0)
        return rollout_fail_errno(L, errno, "%s", path);
    lua_pushboolean(L, 1);
    return 1;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* fs.list(dir) -> sorted names without . and .. | nil, msg, code, raw */
static int fs_list(lua_State *L)
{
    const char *path = check_path(L, 1);
    guard *g = new_guard(L);
    struct dirent *de;
    lua_Integer n = 0;
    const char **names;
    int t;
    g->dir = opendir(path);
    if (g->dir == NULL)
        return rollout_fail_errno(L, errno, "%s", path);
    lua_newtable(L); /* unsorted, anchors the names */
    t = lua_gettop(L);
    for (;;) {
        errno = 0;
        de = readdir(g->dir);
        if (de == NULL)
            break;
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        lua_pushstring(L, de->d_name);
        lua_rawseti(L, t, ++n);
    }
    if (errno != 0) {
        int err = errno;
        guard_close(g);
        return rollout_fail_errno(L, err, "%s", path);
    }
    guard_close(g);
    names = lua_newuserdatauv(L, sizeof(char *) * (size_t)(n + 1), 0);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, t, i);
        names[i - 1] = lua_tostring(L, -1); /* anchored by t */
        lua_pop(L, 1);
    }
    qsort(names, (size_t)n, sizeof *names, by_name);
    lua_createtable(L, (int)n, 0);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_pushstring(L, names[i - 1]);
        lua_rawseti(L, -2, i);
    }
    return 1;
}

/* fs.realpath(path) -> absolute path | nil, msg, code, raw */
static int fs_realpath(lua_State *L)
{
    const char *path = check_path(L, 1);
    char out[PATH_MAX];
    if (realpath(path, out) == NULL)
        return rollout_fail_errno(L, errno, "%s", path);
    lua_pushstring(L, out);
    return 1;
}

/* ------------------------------------------------------------- changes */

/* fs.mkdir_p(path [, mode = 0755]) -> true | nil, msg, code, raw */
static int fs_mkdir_p(lua_State *L)
{
    const char *path = check_path(L, 1);
    lua_Integer mode = luaL_optinteger(L, 2, 0755);
    char buf[PATH_MAX];
    size_t len = strlen(path);
    struct stat st;
    luaL_argcheck(L, mode >= 0 && mode <= 07777, 2, "mode must be between 0 and 07777");
    if (len == 0)
        return rollout_fail_errno(L, ENOENT, "%s", path);
    if (len >= sizeof buf)
        return rollout_fail_errno(L, ENAMETOOLONG, "%s", path);
    memcpy(buf, path, len + 1);
    for (size_t i = 1; i <= len; i++) {
        if (buf[i] != '/' && buf[i] != '\0')
            continue;
        if (buf[i - 1] == '/')
            continue; /* "a//b", or a trailing slash */
        buf[i] = '\0';
        if (mkdir(buf, (mode_t)mode) != 0) {
            int err = errno;
            if (err != EEXIST)
                return rollout_fail_errno(L, err, "%s", buf);
            if (stat(buf, &st) != 0)
                return rollout_fail_errno(L, errno, "%s", buf);
            if (!S_ISDIR(st.st_mode))
                return rollout_fail_errno(L, i == len ? EEXIST : ENOTDIR, "%s", buf);
        }
        if (i < len)
            buf[i] = '/';
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* fs.remove(path): a file, a symlink or an empty directory */
static int fs_remove(lua_State *L)
{
    const char *path = check_path(L, 1);
    struct stat st;
    if (lstat(path, &st) != 0)
        return rollout_fail_errno(L, errno, "%s", path);
    if ((S_ISDIR(st.st_mode) ? rmdir(path) : unlink(path)) != 0)
        return rollout_fail_errno(L, errno, "%s", path);
    lua_pushboolean(L, 1);
    return 1;
}

typedef struct tree_err {
    int err;
    char path[PATH_MAX];  /* of the entry being removed */
    char where[PATH_MAX]; /* of the first failure */
} tree_err;

static void tree_fail(tree_err *te, int err)
{
    if (te->err == 0) {
        te->err = err;
        memcpy(te->where, te->path, sizeof te->where);
    }
}

/* Removes `name` under dirfd without following symlinks; te->path is its
 * full name (for messages). Returns 0 or -1 (te holds the first error). */
static int remove_at(int dirfd, const char *name, int depth, tree_err *te)
{
    struct stat st;
    if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
        tree_fail(te, errno);
        return -1;
    }
    if (S_ISDIR(st.st_mode)) {
        size_t plen = strlen(te->path);
        int fd;
        DIR *d;
        struct dirent *de;
        if (depth >= MAX_TREE_DEPTH) {
            tree_fail(te, ELOOP);
            return -1;
        }
        fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0) {
            tree_fail(te, errno);
            return -1;
        }
        d = fdopendir(fd);
        if (d == NULL) {
            tree_fail(te, errno);
            close(fd);
            return -1;
        }
        while ((de = readdir(d)) != NULL) {
            int r;
            if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                continue;
            snprintf(te->path + plen, sizeof te->path - plen, "/%s", de->d_name);
            r = remove_at(fd, de->d_name, depth + 1, te);
            te->path[plen] = '\0';
            if (r != 0)
                break;
        }
        closedir(d);
        if (te->err != 0)
            return -1;
        if (unlinkat(dirfd, name, AT_REMOVEDIR) != 0) {
            tree_fail(te, errno);
            return -1;
        }
        return 0;
    }
    if (unlinkat(dirfd, name, 0) != 0) {
        tree_fail(te, errno);
        return -1;
    }
    return 0;
}

/* Is path "/" however it is spelled ("//", "/..", "/tmp/..")? */
static int is_root(const char *path)
{
    char real[PATH_MAX];
    if (path[strspn(path, "/")] == '\0')
        return 1;
    return realpath(path, real) != NULL && strcmp(real, "/") == 0;
}

/* fs.remove_tree(path) -> true | nil, msg, code, raw; refuses "/" and "" */
static int fs_remove_tree(lua_State *L)
{
    const char *path = check_path(L, 1);
    const char *base = strrchr(path, '/');
    struct stat st;
    tree_err *te;
    base = base ? base + 1 : path;
    if (*path == '\0')
        return luaL_argerror(L, 1, "refusing to remove an empty path");
    if (strcmp(base, ".") == 0 || strcmp(base, "..") == 0)
        return luaL_argerror(L, 1, lua_pushfstring(L, "refusing to remove '%s'", path));
    if (lstat(path, &st) == 0 && !S_ISLNK(st.st_mode) && is_root(path))
        return luaL_argerror(L, 1, lua_pushfstring(L, "refusing to remove '%s' (the root directory)", path));
    te = lua_newuserdatauv(L, sizeof *te, 0); /* too big for the C stack of a binding */
    te->err = 0;
    snprintf(te->path, sizeof te->path, "%s", path);
    if (remove_at(AT_FDCWD, path, 0, te) != 0)
        return rollout_fail_errno(L, te->err, "%s", te->where);
    lua_pushboolean(L, 1);
    return 1;
}

/* fs.mkdtemp([prefix]) -> new directory path | nil, msg, code, raw. A prefix
 * without '/' goes in $TMPDIR (or /tmp). */
static int fs_mkdtemp(lua_State *L)
{
    const char *prefix = luaL_optstring(L, 1, "rollout-");
    const char *tmpdir = getenv("TMPDIR");
    char tmpl[PATH_MAX];
    int n;
    if (tmpdir == NULL || *tmpdir == '\0')
        tmpdir = "/tmp";
    if (strchr(prefix, '/') != NULL)
        n = snprintf(tmpl, sizeof tmpl, "%sXXXXXX", prefix);
    else
        n = snprintf(tmpl, sizeof tmpl, "%s/%sXXXXXX", tmpdir, prefix);
    if (n < 0 || n >= (int)sizeof tmpl)
        return rollout_fail_errno(L, ENAMETOOLONG, "%s", prefix);
    if (mkdtemp(tmpl) == NULL)
        return rollout_fail_errno(L, errno, "%s", tmpl);
    lua_pushstring(L, tmpl);
    return 1;
}

/* ---------------------------------------------------------- path strings */

/* fs.join(a, b, ...): "a/b"; empty parts are skipped, separators merged */
static int fs_join(lua_State *L)
{
    int n = lua_gettop(L);
    luaL_Buffer b;
    int wrote = 0, ends_slash = 0;
    luaL_argcheck(L, n >= 1, 1, "at least one path part expected");
    for (int i = 1; i <= n; i++)
        luaL_checkstring(L, i);
    luaL_buffinit(L, &b);
    for (int i = 1; i <= n; i++) {
        size_t len;
        const char *s = lua_tolstring(L, i, &len);
        if (len == 0)
            continue;
        if (wrote) {
            while (len > 0 && *s == '/') {
                s++;
                len--;
            }
            if (len == 0)
                continue;
            if (!ends_slash)
                luaL_addchar(&b, '/');
        }
        while (len > 1 && s[len - 1] == '/') /* keep a lone "/" */
            len--;
        luaL_addlstring(&b, s, len);
        ends_slash = s[len - 1] == '/';
        wrote = 1;
    }
    luaL_pushresult(&b);
    return 1;
}

/* fs.dirname(p), POSIX style: "a/b" -> "a", "a" -> ".", "/a" -> "/" */
static int fs_dirname(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    while (len > 1 && s[len - 1] == '/') /* trailing slashes */
        len--;
    while (len > 0 && s[len - 1] != '/') /* the last component */
        len--;
    if (len == 0) {
        lua_pushliteral(L, ".");
        return 1;
    }
    while (len > 1 && s[len - 1] == '/') /* the separator */
        len--;
    lua_pushlstring(L, s, len);
    return 1;
}

/* fs.basename(p), POSIX style: "a/b/" -> "b", "/" -> "/", "" -> "." */
static int fs_basename(lua_State *L)
{
    size_t len, start;
    const char *s = luaL_checklstring(L, 1, &len);
    if (len == 0) {
        lua_pushliteral(L, ".");
        return 1;
    }
    while (len > 1 && s[len - 1] == '/')
        len--;
    if (len == 1 && s[0] == '/') {
        lua_pushliteral(L, "/");
        return 1;
    }
    start = len;
    while (start > 0 && s[start - 1] != '/')
        start--;
    lua_pushlstring(L, s + start, len - start);
    return 1;
}

/* ---------------------------------------------------------------- locks */

typedef struct fs_lock {
    int fd;   /* -1 once closed; the path is the user value */
    int held; /* flock acquired (else the file is someone else's to describe) */
} fs_lock;

/* Replaces the content of the lock file (best effort: the lock works
 * without it; it only tells others who holds it). */
static void set_holder(int fd, const char *text, size_t len)
{
    if (ftruncate(fd, 0) == 0 && len > 0)
        while (pwrite(fd, text, len, 0) < 0 && errno == EINTR)
            ;
}

static void lock_close(fs_lock *lk)
{
    if (lk->fd >= 0) {
        if (lk->held) {
            set_holder(lk->fd, "", 0); /* still ours until LOCK_UN */
            flock(lk->fd, LOCK_UN);
            lk->held = 0;
        }
        close(lk->fd);
        lk->fd = -1;
    }
}

static int lock_gc(lua_State *L)
{
    lock_close(luaL_checkudata(L, 1, LOCK_MT));
    return 0;
}

static fs_lock *check_open_lock(lua_State *L)
{
    fs_lock *lk = luaL_checkudata(L, 1, LOCK_MT);
    if (lk->fd < 0)
        luaL_error(L, "attempt to use a closed lock");
    return lk;
}

/* lock:unlock() -> true (idempotent) */
static int lock_unlock(lua_State *L)
{
    lock_close(luaL_checkudata(L, 1, LOCK_MT));
    lua_pushboolean(L, 1);
    return 1;
}

/* lock:path() -> the lock file */
static int lock_path(lua_State *L)
{
    check_open_lock(L);
    lua_getiuservalue(L, 1, 1);
    return 1;
}

static int lock_tostring(lua_State *L)
{
    fs_lock *lk = luaL_checkudata(L, 1, LOCK_MT);
    lua_getiuservalue(L, 1, 1);
    lua_pushfstring(L, "rollout.fs.lock(%s%s)", lua_tostring(L, -1), lk->fd < 0 ? ", closed" : "");
    return 1;
}

/* Reads "PID WHAT" left by the holder. */
static void read_holder(int fd, long *pid, char *what, size_t whatlen)
{
    char buf[256];
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    char *end, *nl;
    *pid = 0;
    what[0] = '\0';
    if (n <= 0)
        return;
    buf[n] = '\0';
    *pid = strtol(buf, &end, 10);
    if (end == buf || *pid <= 0) {
        *pid = 0;
        return;
    }
    if (*end == ' ')
        end++;
    nl = strchr(end, '\n');
    if (nl != NULL)
        *nl = '\0';
    snprintf(what, whatlen, "%s", end);
}

/* "another rollout is working on WHAT (pid N)" */
static void push_holder(lua_State *L, int fd, const char *what, const char *path)
{
    char held[200];
    long pid;
    read_holder(fd, &pid, held, sizeof held);
    int say_holder = what != NULL && held[0] != '\0' && strcmp(held, what) != 0;
    if (what == NULL)
        what = held[0] != '\0' ? held : path;
    /* "... on NAME (pid N: what the holder said it does)" */
    if (pid > 0 && say_holder)
        lua_pushfstring(L, "another rollout is working on %s (pid %d: %s)", what, (int)pid, held);
    else if (pid > 0)
        lua_pushfstring(L, "another rollout is working on %s (pid %d)", what, (int)pid);
    else
        lua_pushfstring(L, "another rollout is working on %s", what);
}

/* fs.lock(path [, {wait = false, timeout = seconds, what = "the locked thing",
 *                  holder = "what the holder does"}])
 *   -> lock | nil, msg, "locked", "EWOULDBLOCK" | nil, msg, "timeout", "timeout"
 *      | nil, msg, code, errno name
 * The holder's pid and description (holder, else what) are left in the
 * file, so a refused caller is told "another rollout is working on WHAT
 * (pid N: HOLDER)". */
static int fs_lock_open(lua_State *L)
{
    const char *path = check_path(L, 1);
    const char *what = NULL, *holder = NULL;
    int wait = 0;
    double timeout = -1, deadline = 0, step = 0.01;
    fs_lock *lk;
    if (!lua_isnoneornil(L, 2)) {
        luaL_checktype(L, 2, LUA_TTABLE);
        wait = rollout_optfield_boolean(L, 2, "wait", 0);
        timeout = rollout_optfield_number(L, 2, "timeout", -1);
        what = rollout_optfield_string(L, 2, "what", NULL);
        if (what != NULL && (strchr(what, '\n') != NULL || strlen(what) > 150))
            return luaL_error(L, "field 'what' must be one short line");
        holder = rollout_optfield_string(L, 2, "holder", NULL);
        if (holder != NULL && (strchr(holder, '\n') != NULL || strlen(holder) > 150))
            return luaL_error(L, "field 'holder' must be one short line");
    }
    lk = lua_newuserdatauv(L, sizeof *lk, 1);
    lk->fd = -1;
    lk->held = 0;
    luaL_setmetatable(L, LOCK_MT);
    lua_pushvalue(L, 1);
    lua_setiuservalue(L, -2, 1);

    lk->fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (lk->fd < 0)
        return rollout_fail_errno(L, errno, "%s", path);
    if (timeout >= 0)
        deadline = rollout_now() + timeout;
    for (;;) {
        if (flock(lk->fd, LOCK_EX | LOCK_NB) == 0) {
            lk->held = 1;
            break;
        }
        if (errno != EWOULDBLOCK && errno != EINTR) {
            int err = errno;
            lock_close(lk);
            return rollout_fail_errno(L, err, "%s", path);
        }
        if (!wait) {
            push_holder(L, lk->fd, what, path);
            lock_close(lk);
            return rollout_fail(L, ROLLOUT_E_LOCKED, "EWOULDBLOCK", "%s", lua_tostring(L, -1));
        }
        if (rollout_interrupted()) {
            lock_close(lk);
            rollout_check_interrupt(L);
        }
        if (timeout >= 0 && rollout_now() >= deadline) {
            char secs[64];
            snprintf(secs, sizeof secs, "%g", timeout);
            push_holder(L, lk->fd, what, path);
            lock_close(lk);
            return rollout_fail(L, ROLLOUT_E_TIMEOUT, NULL, "timed out waiting for %s after %ss: %s",
                                what ? what : path, secs, lua_tostring(L, -1));
        }
        rollout_nap(step);
        if (step < 0.1)
            step *= 2;
    }
    {
        char buf[256];
        const char *desc = holder ? holder : what;
        int n = desc ? snprintf(buf, sizeof buf, "%ld %s\n", (long)getpid(), desc)
                     : snprintf(buf, sizeof buf, "%ld\n", (long)getpid());
        set_holder(lk->fd, buf, (size_t)n);
    }
    return 1;
}

int luaopen_rollout_fs(lua_State *L)
{
    static const luaL_Reg funcs[] = {
        {"read", fs_read},
        {"write_atomic", fs_write_atomic},
        {"append", fs_append},
        {"exists", fs_exists},
        {"stat", fs_stat},
        {"mkdir_p", fs_mkdir_p},
        {"remove", fs_remove},
        {"remove_tree", fs_remove_tree},
        {"list", fs_list},
        {"realpath", fs_realpath},
        {"readlink", fs_readlink},
        {"mkdtemp", fs_mkdtemp},
        {"join", fs_join},
        {"dirname", fs_dirname},
        {"basename", fs_basename},
        {"lock", fs_lock_open},
        {NULL, NULL}};
    static const luaL_Reg lock_methods[] = {
        {"unlock", lock_unlock},
        {"path", lock_path},
        {NULL, NULL}};
    if (luaL_newmetatable(L, LOCK_MT)) {
        luaL_newlib(L, lock_methods);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, lock_gc);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, lock_gc);
        lua_setfield(L, -2, "__close");
        lua_pushcfunction(L, lock_tostring);
        lua_setfield(L, -2, "__tostring");
    }
    lua_pop(L, 1);
    luaL_newlib(L, funcs);
    return 1;
}
