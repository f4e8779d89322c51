/* The interactive REPL: libedit (its native <histedit.h> API) for line
 * editing, history and completion; evaluation like lua.c; printing and
 * completion logic in stdlib/rollout/repl.lua.
 *
 *   - prompt "> ", continuation prompt ">> " while a chunk is incomplete;
 *   - `expr` and `=expr` print their values (tried as `return expr;` first);
 *   - history in $ROLLOUT_HISTORY or ~/.rollout_history: loaded at start,
 *     each entered chunk appended at once, the file compacted to the last
 *     HISTORY_MAX entries at start and exit;
 *   - ^C while typing drops the line (and a pending chunk); ^C while a chunk
 *     runs raises the interrupt sentinel in it (runtime/lib/interrupt.c); ^D on an empty
 *     line leaves with 0.
 * Without a terminal on stdin it reads plain lines (no editing, no history).
 */
#include "rollout/host.h"
#include "rollout/repl.h"

#include <errno.h>
#include <limits.h>
#include <locale.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <histedit.h>

#define PROMPT1 "> "
#define PROMPT2 ">> "
#define HISTORY_MAX 1000
#define CHUNKNAME "=stdin"
#define EOFMARK "<eof>"
#define REPL_MT "rollout.repl.state"

enum { READ_OK, READ_EOF, READ_CANCEL };

typedef struct repl {
    lua_State *L;
    const char *progname;
    EditLine *el;       /* NULL without a terminal */
    History *hist;      /* NULL without a terminal */
    char *hist_path;    /* NULL: no history file */
    long hist_entries;  /* entries the history file holds (an estimate) */
    int hist_warned;    /* a write failure was reported */
    const char *prompt; /* read by prompt_fn */
    int module_ref;     /* rollout.repl in the registry, or LUA_NOREF */
    rbuf plain;         /* line buffer of the plain reader */
    char *old_locale;   /* LC_CTYPE before the REPL, restored on close */
    int closed;
} repl;

/* ^C while reading: the handler only records it; libedit's own handler
 * (EL_SIGNAL) restores the terminal and re-raises the signal to this one,
 * and the read returns EINTR. */
static volatile sig_atomic_t got_sigint;

static void on_sigint_reading(int sig)
{
    (void)sig;
    got_sigint = 1;
}

static void arm_reading(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint_reading;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; /* no SA_RESTART: the read must return */
    sigaction(SIGINT, &sa, NULL);
}

static void disarm_reading(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_DFL;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
}

/* ---- history ---------------------------------------------------------- */

static char *history_path(void)
{
    const char *env = getenv("ROLLOUT_HISTORY");
    const char *home;
    char *p;
    size_t n;
    if (env != NULL)
        return *env != '\0' ? strdup(env) : NULL; /* empty: no history file */
    home = getenv("HOME");
    if (home == NULL || *home == '\0')
        return NULL;
    n = strlen(home) + sizeof "/.rollout_history";
    p = malloc(n);
    if (p != NULL)
        snprintf(p, n, "%s/.rollout_history", home);
    return p;
}

/* Rewrites the history file with the last HISTORY_MAX entries, atomically
 * (a private temporary file in the same directory, then rename). Entries
 * appended by other sessions since we loaded are merged in by reloading the
 * file. */
static void history_compact(repl *r)
{
    History *h;
    HistEvent ev;
    FILE *f;
    char tmp[PATH_MAX];
    int fd, ok, loaded;
    if (r->hist_path == NULL)
        return;
    h = history_init();
    if (h == NULL)
        return;
    history(h, &ev, H_SETSIZE, HISTORY_MAX);
    loaded = history(h, &ev, H_LOAD, r->hist_path);
    if (loaded < 0) {
        history_end(h);
        return;
    }
    fd = rollout_tmpfile(r->hist_path, 0600, tmp, sizeof tmp);
    f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (f == NULL) {
        if (fd >= 0) {
            close(fd);
            unlink(tmp);
        }
        history_end(h);
        return;
    }
    ok = history(h, &ev, H_SAVE_FP, f) >= 0;
    ok = fflush(f) == 0 && ok;
    ok = fsync(fileno(f)) == 0 && ok;
    ok = fclose(f) == 0 && ok;
    if (!ok)
        unlink(tmp);
    else if (rollout_tmpfile_commit(tmp, r->hist_path, 1) == 0)
        r->hist_entries = loaded < HISTORY_MAX ? loaded : HISTORY_MAX;
    history_end(h);
}

static void history_open(repl *r)
{
    HistEvent ev;
    int n;
    r->hist = history_init();
    if (r->hist == NULL)
        return;
    history(r->hist, &ev, H_SETSIZE, HISTORY_MAX);
    history(r->hist, &ev, H_SETUNIQUE, 1);
    r->hist_path = history_path();
    if (r->hist_path == NULL)
        return;
    n = history(r->hist, &ev, H_LOAD, r->hist_path);
    r->hist_entries = n > 0 ? n : 0;
    if (r->hist_entries > HISTORY_MAX)
        history_compact(r);
}

static int is_blank(const char *s)
{
    for (; *s; s++)
        if (*s != ' ' && *s != '\t' && *s != '\n' && *s != '\r')
            return 0;
    return 1;
}

/* Keeps a chunk (one entry, even when it spans lines): in memory, and
 * appended to the file at once so that a crash loses nothing. */
static void history_keep(repl *r, const char *chunk)
{
    HistEvent ev;
    History *one;
    FILE *f;
    if (r->hist == NULL || is_blank(chunk))
        return;
    if (history(r->hist, &ev, H_FIRST) == 0 && strcmp(ev.str, chunk) == 0)
        return; /* same as the previous entry */
    if (history(r->hist, &ev, H_ENTER, chunk) < 0 || r->hist_path == NULL)
        return;
    /* libedit writes its "_HiStOrY_V2_" header only at offset 0; a history
     * holding just this entry encodes it as H_LOAD expects */
    one = history_init();
    if (one == NULL)
        return;
    history(one, &ev, H_SETSIZE, 1);
    f = fopen(r->hist_path, "a");
    if (f != NULL) {
        fseek(f, 0, SEEK_END);
        if (history(one, &ev, H_ENTER, chunk) >= 0)
            history(one, &ev, H_SAVE_FP, f);
        if (fclose(f) != 0 && !r->hist_warned) {
            r->hist_warned = 1;
            fprintf(stderr, "%s: cannot write the history file %s: %s\n", r->progname,
                    r->hist_path, strerror(errno));
        }
    } else if (!r->hist_warned) {
        r->hist_warned = 1; /* once: the REPL works without it */
        fprintf(stderr, "%s: cannot write the history file %s: %s\n", r->progname, r->hist_path,
                strerror(errno));
    }
    history_end(one);
    if (++r->hist_entries > 2 * HISTORY_MAX)
        history_compact(r);
}

/* libedit decodes multibyte input in the user's locale (LC_CTYPE); chunks
 * run in the "C" locale like scripts do, so it is set only around libedit. */
static void locale_user(repl *r)
{
    if (r->old_locale != NULL)
        setlocale(LC_CTYPE, "");
}

static void locale_host(repl *r)
{
    if (r->old_locale != NULL)
        setlocale(LC_CTYPE, r->old_locale);
}

/* ---- completion --------------------------------------------------------- */

typedef struct completion_args {
    repl *r;
    const char *line;
    size_t len;
    int width;
} completion_args;

/* Protected: insert, listing = require("rollout.repl").tab(line, width) */
static int completion_call(lua_State *L)
{
    completion_args *a = lua_touserdata(L, 1);
    lua_rawgeti(L, LUA_REGISTRYINDEX, a->r->module_ref);
    lua_getfield(L, -1, "tab");
    lua_pushlstring(L, a->line, a->len);
    lua_pushinteger(L, a->width);
    lua_call(L, 2, 2);
    return 2;
}

/* Bound to TAB: inserts the common part of the candidates, or lists them.
 * Runs Lua in a protected call; an error only beeps. */
static unsigned char complete_fn(EditLine *el, int ch)
{
    repl *r = NULL;
    const LineInfo *li;
    completion_args a;
    lua_State *L;
    int top, status, width = 80;
    unsigned char ret = CC_ERROR;
    (void)ch;
    if (el_get(el, EL_CLIENTDATA, (void **)&r) != 0 || r == NULL || r->module_ref == LUA_NOREF)
        return CC_ERROR;
    L = r->L;
    li = el_line(el);
    if (el_get(el, EL_GETTC, "co", &width, (void *)NULL) != 0 || width <= 0)
        width = 80;
    a.r = r;
    a.line = li->buffer;
    a.len = (size_t)(li->cursor - li->buffer);
    a.width = width;
    top = lua_gettop(L);
    if (!lua_checkstack(L, 8))
        return CC_ERROR;
    locale_host(r);
    lua_pushcfunction(L, completion_call);
    lua_pushlightuserdata(L, &a);
    status = lua_pcall(L, 1, 2, 0);
    locale_user(r);
    if (status == LUA_OK) {
        const char *insert = lua_tostring(L, -2);
        const char *listing = lua_tostring(L, -1);
        if (insert != NULL && *insert != '\0') {
            if (el_insertstr(el, insert) == 0)
                ret = CC_REFRESH;
        } else if (listing != NULL && *listing != '\0') {
            fputc('\n', stdout);
            fputs(listing, stdout);
            fflush(stdout);
            ret = CC_REDISPLAY;
        }
    }
    lua_settop(L, top);
    return ret;
}

static char *prompt_fn(EditLine *el)
{
    repl *r = NULL;
    el_get(el, EL_CLIENTDATA, (void **)&r);
    return (char *)(r != NULL && r->prompt != NULL ? r->prompt : PROMPT1);
}

/* ---- the state, held in a userdata so that it is freed on any exit ------ */

static void repl_close(repl *r)
{
    if (r->closed)
        return;
    r->closed = 1;
    if (r->hist != NULL && r->hist_entries > HISTORY_MAX)
        history_compact(r);
    if (r->el != NULL)
        el_end(r->el); /* restores the terminal */
    r->el = NULL;
    if (r->hist != NULL)
        history_end(r->hist);
    r->hist = NULL;
    free(r->hist_path);
    r->hist_path = NULL;
    rbuf_free(&r->plain);
    if (r->module_ref != LUA_NOREF)
        luaL_unref(r->L, LUA_REGISTRYINDEX, r->module_ref);
    r->module_ref = LUA_NOREF;
    if (r->old_locale != NULL) {
        locale_host(r);
        free(r->old_locale);
        r->old_locale = NULL;
    }
    disarm_reading();
}

static int repl_gc(lua_State *L)
{
    repl_close(luaL_checkudata(L, 1, REPL_MT));
    return 0;
}

static repl *repl_new(lua_State *L, const char *progname)
{
    repl *r = lua_newuserdatauv(L, sizeof *r, 0);
    memset(r, 0, sizeof *r);
    r->L = L;
    r->progname = progname;
    r->module_ref = LUA_NOREF;
    r->closed = 1; /* nothing to release until set up */
    if (luaL_newmetatable(L, REPL_MT)) {
        lua_pushcfunction(L, repl_gc);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, repl_gc);
        lua_setfield(L, -2, "__close");
    }
    lua_setmetatable(L, -2);
    r->closed = 0;
    return r;
}

static void editor_open(repl *r)
{
    const char *loc = setlocale(LC_CTYPE, NULL);
    if (loc != NULL)
        r->old_locale = strdup(loc);
    locale_user(r);
    r->el = el_init(r->progname, stdin, stdout, stderr);
    if (r->el == NULL) {
        locale_host(r);
        return;
    }
    el_set(r->el, EL_CLIENTDATA, (void *)r);
    el_set(r->el, EL_PROMPT, prompt_fn);
    el_set(r->el, EL_EDITOR, "emacs");
    el_set(r->el, EL_SIGNAL, 1);
    history_open(r);
    if (r->hist != NULL)
        el_set(r->el, EL_HIST, history, r->hist);
    /* the wide form: the narrow el_set(EL_ADDFN) converts the name and help
     * with wcsdup and never frees them (LeakSanitizer: 144 bytes at exit) */
    el_wset(r->el, EL_ADDFN, L"rollout-complete", L"complete Lua names", complete_fn);
    el_set(r->el, EL_BIND, "^I", "rollout-complete", NULL);
    el_source(r->el, NULL); /* ~/.editrc, as other libedit programs */
    locale_host(r);
}

/* ---- reading ------------------------------------------------------------ */

/* Reads a line with the terminal editor. */
static int read_edited(repl *r, const char **line, size_t *len)
{
    for (;;) {
        int count = 0;
        const char *s;
        got_sigint = 0;
        arm_reading();
        locale_user(r);
        s = el_gets(r->el, &count);
        locale_host(r);
        if (got_sigint) {
            got_sigint = 0;
            fputs("^C\n", stdout);
            fflush(stdout);
            return READ_CANCEL;
        }
        if (s != NULL && count > 0) {
            *line = s;
            *len = (size_t)count;
            return READ_OK;
        }
        if (count < 0 && errno == EINTR)
            continue; /* another signal: read again */
        return READ_EOF;
    }
}

/* Reads a line from a non-terminal stdin, printing the prompt like lua.c. */
static int read_plain(repl *r, const char **line, size_t *len)
{
    rbuf_clear(&r->plain);
    fputs(r->prompt, stdout);
    fflush(stdout);
    got_sigint = 0;
    arm_reading();
    for (;;) {
        int c = getc(stdin);
        char ch = (char)c;
        if (c == EOF) {
            if (got_sigint || (ferror(stdin) && errno == EINTR)) {
                clearerr(stdin);
                if (!got_sigint)
                    continue;
                got_sigint = 0;
                fputc('\n', stdout);
                return READ_CANCEL;
            }
            if (r->plain.len == 0)
                return READ_EOF;
            break;
        }
        if (rbuf_add(&r->plain, &ch, 1) != 0)
            return READ_EOF;
        if (c == '\n')
            break;
    }
    *line = r->plain.p;
    *len = r->plain.len;
    return READ_OK;
}

/* Pushes the next line (without its newline; "=expr" becomes "return expr").
 * Returns READ_OK, READ_EOF or READ_CANCEL (nothing pushed for the last two). */
static int pushline(repl *r, int first)
{
    const char *line;
    size_t len;
    int rc;
    r->prompt = first ? PROMPT1 : PROMPT2;
    rc = r->el != NULL ? read_edited(r, &line, &len) : read_plain(r, &line, &len);
    if (rc != READ_OK)
        return rc;
    if (len > 0 && line[len - 1] == '\n')
        len--;
    if (len > 0 && line[len - 1] == '\r')
        len--;
    if (first && len > 0 && line[0] == '=') {
        lua_pushliteral(r->L, "return ");
        lua_pushlstring(r->L, line + 1, len - 1);
        lua_concat(r->L, 2);
    } else {
        lua_pushlstring(r->L, line, len);
    }
    return READ_OK;
}

/* ---- evaluating --------------------------------------------------------- */

static int incomplete(lua_State *L, int status)
{
    if (status == LUA_ERRSYNTAX) {
        size_t lmsg;
        const char *msg = lua_tolstring(L, -1, &lmsg);
        size_t mark = sizeof(EOFMARK) - 1;
        if (msg != NULL && lmsg >= mark && strcmp(msg + lmsg - mark, EOFMARK) == 0)
            return 1;
    }
    return 0;
}

/* Line on top: tries "return <line>;". On success replaces the line with the
 * function; otherwise leaves the line alone. */
static int addreturn(repl *r)
{
    lua_State *L = r->L;
    const char *line = lua_tostring(L, -1);
    const char *retline = lua_pushfstring(L, "return %s;", line);
    int status = luaL_loadbuffer(L, retline, strlen(retline), CHUNKNAME);
    if (status == LUA_OK) {
        lua_remove(L, -2); /* the "return" line */
        history_keep(r, line);
        lua_remove(L, -2); /* the line */
    } else {
        lua_pop(L, 2); /* the error and the "return" line */
    }
    return status;
}

/* Chunk text on top: loads it, reading continuation lines while it is
 * incomplete. Replaces the text by the function or the error message.
 * Returns the load status, or -1 when ^C dropped the chunk (nothing left). */
static int multiline(repl *r)
{
    lua_State *L = r->L;
    for (;;) {
        size_t len;
        const char *chunk = lua_tolstring(L, -1, &len);
        int status = luaL_loadbuffer(L, chunk, len, CHUNKNAME);
        int rc;
        if (!incomplete(L, status)) {
            history_keep(r, chunk);
            lua_remove(L, -2);
            return status;
        }
        lua_pop(L, 1); /* the "<eof>" message */
        rc = pushline(r, 0);
        if (rc == READ_CANCEL) {
            lua_pop(L, 1);
            return -1;
        }
        if (rc == READ_EOF) {
            /* no more input: report the incomplete chunk */
            chunk = lua_tolstring(L, -1, &len);
            status = luaL_loadbuffer(L, chunk, len, CHUNKNAME);
            history_keep(r, chunk);
            lua_remove(L, -2);
            fputc('\n', stdout);
            return status;
        }
        lua_pushliteral(L, "\n");
        lua_insert(L, -2);
        lua_concat(L, 3);
    }
}

/* Prints the n values on top through rollout.repl.show (pops them). */
static void print_results(repl *r, int n)
{
    lua_State *L = r->L;
    int status;
    if (n <= 0)
        return;
    if (r->module_ref != LUA_NOREF) {
        luaL_checkstack(L, 2, "too many results to print");
        lua_rawgeti(L, LUA_REGISTRYINDEX, r->module_ref);
        lua_getfield(L, -1, "show");
        lua_remove(L, -2);
        lua_insert(L, -(n + 1));
        status = rollout_docall(L, n, 1);
    } else {
        /* no rollout.repl: plain tostring, tab-separated */
        luaL_Buffer b;
        int first = lua_gettop(L) - n + 1;
        luaL_checkstack(L, 4, "too many results to print");
        luaL_buffinit(L, &b);
        for (int i = first; i < first + n; i++) {
            if (i > first)
                luaL_addchar(&b, '\t');
            luaL_tolstring(L, i, NULL);
            luaL_addvalue(&b);
        }
        luaL_pushresult(&b);
        lua_replace(L, first);
        lua_settop(L, first);
        status = LUA_OK;
    }
    if (status == LUA_OK) {
        size_t len;
        const char *s = lua_tolstring(L, -1, &len);
        if (s != NULL) {
            fwrite(s, 1, len, stdout);
            fputc('\n', stdout);
            fflush(stdout);
        }
        lua_pop(L, 1);
    } else {
        rollout_report(L, status, r->progname);
    }
}

/* Requires a module through rollout_docall; leaves it (or nothing) on top. */
static int require_module(repl *r, const char *name)
{
    int status;
    lua_getglobal(r->L, "require");
    lua_pushstring(r->L, name);
    status = rollout_docall(r->L, 1, 1);
    if (status != LUA_OK) {
        rollout_report(r->L, status, r->progname);
        return 0;
    }
    return 1;
}

static void run_loop(repl *r)
{
    lua_State *L = r->L;
    int base = lua_gettop(L);
    for (;;) {
        int status, rc;
        lua_settop(L, base);
        rc = pushline(r, 1);
        if (rc == READ_EOF)
            break;
        if (rc == READ_CANCEL)
            continue;
        status = addreturn(r);
        if (status != LUA_OK) {
            status = multiline(r);
            if (status == -1)
                continue; /* ^C dropped the chunk */
        }
        if (status == LUA_OK)
            status = rollout_docall(L, 0, LUA_MULTRET);
        if (status == LUA_OK) {
            print_results(r, lua_gettop(L) - base);
        } else {
            if (rollout_is_interrupt(L, -1))
                fputc('\n', stderr); /* after the terminal's "^C" */
            rollout_report(L, status, r->progname);
        }
    }
    lua_settop(L, base);
    fputc('\n', stdout); /* EOF leaves the cursor after the prompt */
    fflush(stdout);
}

int rollout_repl(lua_State *L, const char *progname)
{
    repl *r;
    int slot;
    luaL_checkstack(L, 20, "no room for the REPL");
    r = repl_new(L, progname);
    slot = lua_gettop(L);

    /* the globals the REPL adds: rollout.repl's setup(_G) decides */
    if (require_module(r, "rollout.repl")) {
        if (lua_istable(L, -1)) {
            lua_getfield(L, -1, "setup");
            if (lua_isfunction(L, -1)) {
                int status;
                lua_pushglobaltable(L);
                status = rollout_docall(L, 1, 0);
                if (status != LUA_OK)
                    rollout_report(L, status, r->progname);
            } else {
                lua_pop(L, 1);
            }
            r->module_ref = luaL_ref(L, LUA_REGISTRYINDEX);
        } else {
            lua_pop(L, 1);
        }
    }

    if (isatty(STDIN_FILENO))
        editor_open(r);
    run_loop(r);
    repl_close(r);
    lua_settop(L, slot - 1);
    return ROLLOUT_EXIT_OK;
}
