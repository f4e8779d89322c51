/* The rollout command line: compatible with lua(1), plus --version, --help
 * and --target. */
#include "rollout/host.h"
#include "rollout/repl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lualib.h>

static const char *progname = "rollout";

static void print_usage(FILE *out)
{
    fprintf(out,
            "usage: %s [options] [script [args]]\n"
            "Runs Lua 5.4 scripts with rollout's bindings (rollout.weights, rollout.yaml, ...).\n"
            "\n"
            "Options:\n"
            "  -e stat          execute string 'stat'\n"
            "  -i               enter interactive mode after running the rest\n"
            "  -l mod           require library 'mod' into global 'mod'\n"
            "  -l g=mod         require library 'mod' into global 'g'\n"
            "  -v, --version    show version information\n"
            "  -E               ignore environment variables (LUA_INIT, LUA_PATH...)\n"
            "  -W               turn warnings on\n"
            "  --target NAME    where versions run: local (default) or kubernetes;\n"
            "                   also ROLLOUT_TARGET or 'target:' in service.yaml\n"
            "  -h, --help       show this help\n"
            "  --               stop handling options\n"
            "  -                run stdin and stop handling options\n"
            "\n"
            "With no script and no -e, a terminal on stdin opens the REPL; otherwise\n"
            "stdin is run as a script.\n"
            "\n"
            "Environment: ROLLOUT_PATH (directories searched before the stdlib),\n"
            "ROLLOUT_TARGET, ROLLOUT_DEPLOYMENTS (where deployments/<service> are),\n"
            "ROLLOUT_STATE_DIR (pids, ports, the gateway; default .rollout/),\n"
            "ROLLOUT_GATEWAY_PORT, GATEWAY_ENDPOINT (the URL checks probe),\n"
            "KUBECONFIG, NO_COLOR, LUA_INIT, LUA_PATH.\n"
            "\n"
            "The release workflow: rollout scripts/run_all.lua SERVICE [ENDPOINT];\n"
            "the ops commands: rollout scripts/ops.lua --help.\n"
            "\n"
            "Exit codes:\n"
            "  0  success\n"
            "  1  failure: an uncaught error, a failed check\n"
            "  2  usage error, or invalid input refused before any change\n"
            "  os.exit(n) from a script exits with n.\n",
            progname);
}

static void print_version(void)
{
    printf("rollout %s (%s)\n", ROLLOUT_VERSION, LUA_RELEASE);
    fflush(stdout);
}

/* What the command line asks for. */
typedef struct cli {
    int argc;
    char **argv;
    int script;       /* index of the script in argv, 0 when none */
    int interactive;  /* -i */
    int version;      /* -v / --version */
    int has_exec;     /* -e given */
    int ignore_env;   /* -E */
    int warnings;     /* -W */
    int stdin_script; /* "-" */
    const char *target;
    int exit_code;
} cli;

enum { PARSE_OK, PARSE_USAGE, PARSE_HELP };

/* Scans options the way lua.c does; -e/-l are run later, in order. */
static int parse_args(cli *c)
{
    char **argv = c->argv;
    int i;
    for (i = 1; argv[i] != NULL; i++) {
        const char *a = argv[i];
        if (a[0] != '-') {
            c->script = i;
            return PARSE_OK;
        }
        if (strcmp(a, "-") == 0) {
            c->script = i;
            c->stdin_script = 1;
            return PARSE_OK;
        }
        if (strcmp(a, "--") == 0) {
            if (argv[i + 1] != NULL)
                c->script = i + 1;
            return PARSE_OK;
        }
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)
            return PARSE_HELP;
        if (strcmp(a, "--version") == 0 || strcmp(a, "-v") == 0) {
            c->version = 1;
        } else if (strcmp(a, "--target") == 0) {
            if (argv[i + 1] == NULL) {
                fprintf(stderr, "%s: '--target' needs a name\n", progname);
                return PARSE_USAGE;
            }
            c->target = argv[++i];
        } else if (strncmp(a, "--target=", 9) == 0) {
            c->target = a + 9;
        } else if (strcmp(a, "-i") == 0) {
            c->interactive = 1;
            c->version = 1;
        } else if (strcmp(a, "-E") == 0) {
            c->ignore_env = 1;
        } else if (strcmp(a, "-W") == 0) {
            c->warnings = 1;
        } else if (a[1] == 'e' || a[1] == 'l') {
            if (a[1] == 'e')
                c->has_exec = 1;
            if (a[2] == '\0') {
                i++;
                if (argv[i] == NULL || argv[i][0] == '-') {
                    fprintf(stderr, "%s: '%s' needs argument\n", progname, a);
                    return PARSE_USAGE;
                }
            }
        } else {
            fprintf(stderr, "%s: unrecognized option '%s'\n", progname, a);
            return PARSE_USAGE;
        }
    }
    return PARSE_OK;
}

/* arg = { [negative] = interpreter and options, [0] = script, ... = args } */
static void create_arg_table(lua_State *L, cli *c)
{
    int script = c->script; /* no script: arg[0] is the interpreter, like lua */
    int narg = c->argc - (script + 1);
    lua_createtable(L, narg, script + 1);
    for (int i = 0; i < c->argc; i++) {
        lua_pushstring(L, c->argv[i]);
        lua_rawseti(L, -2, i - script);
    }
    lua_setglobal(L, "arg");
}

static int report(lua_State *L, cli *c, int status)
{
    if (status != LUA_OK) {
        int code = rollout_report(L, status, progname);
        if (c->exit_code == ROLLOUT_EXIT_OK)
            c->exit_code = code;
        return 0;
    }
    return 1;
}

static int dochunk(lua_State *L, cli *c, int status)
{
    if (status == LUA_OK)
        status = rollout_docall(L, 0, 0);
    return report(L, c, status);
}

static int dostring(lua_State *L, cli *c, const char *s, const char *name)
{
    return dochunk(L, c, luaL_loadbuffer(L, s, strlen(s), name));
}

static int dolibrary(lua_State *L, cli *c, char *spec)
{
    char *eq = strchr(spec, '=');
    const char *global = spec;
    const char *mod = spec;
    int status;
    if (eq != NULL) {
        *eq = '\0';
        mod = eq + 1;
    }
    lua_getglobal(L, "require");
    lua_pushstring(L, mod);
    status = rollout_docall(L, 1, 1);
    if (status == LUA_OK)
        lua_setglobal(L, global);
    return report(L, c, status);
}

/* Runs -e and -l in command-line order. */
static int run_args(lua_State *L, cli *c)
{
    int last = c->script ? c->script : c->argc;
    for (int i = 1; i < last; i++) {
        char *a = c->argv[i], *extra;
        if (strcmp(a, "--target") == 0) {
            i++; /* its value is not an option */
            continue;
        }
        if (a[0] != '-' || (a[1] != 'e' && a[1] != 'l'))
            continue;
        extra = a + 2;
        if (*extra == '\0')
            extra = c->argv[++i];
        if (a[1] == 'e' ? !dostring(L, c, extra, "=(command line)") : !dolibrary(L, c, extra))
            return 0;
    }
    return 1;
}

static int handle_luainit(lua_State *L, cli *c)
{
    const char *name = "=LUA_INIT_5_4";
    const char *init = getenv("LUA_INIT_5_4");
    if (init == NULL) {
        name = "=LUA_INIT";
        init = getenv("LUA_INIT");
    }
    if (init == NULL)
        return 1;
    if (init[0] == '@') {
        return dochunk(L, c, luaL_loadfile(L, init + 1));
    }
    return dostring(L, c, init, name);
}

static int handle_script(lua_State *L, cli *c)
{
    const char *fname = c->stdin_script ? NULL : c->argv[c->script];
    int status = luaL_loadfile(L, fname);
    int n;
    if (status == LUA_ERRFILE) {
        /* a missing or unreadable script is a usage error */
        rollout_report(L, status, progname);
        c->exit_code = ROLLOUT_EXIT_USAGE;
        return 0;
    }
    if (status != LUA_OK)
        return report(L, c, status);
    n = c->script > 0 ? c->argc - c->script - 1 : 0;
    luaL_checkstack(L, n + 3, "too many arguments to script");
    for (int i = 0; i < n; i++)
        lua_pushstring(L, c->argv[c->script + 1 + i]);
    return report(L, c, rollout_docall(L, n, 0));
}

static int pmain(lua_State *L)
{
    cli *c = lua_touserdata(L, 1);
    rollout_options opts = {c->argv[0], c->target};
    luaL_checkversion(L);
    if (c->ignore_env) {
        lua_pushboolean(L, 1);
        lua_setfield(L, LUA_REGISTRYINDEX, "LUA_NOENV");
    }
    luaL_openlibs(L);
    rollout_host_open(L, &opts);
    create_arg_table(L, c);
    lua_gc(L, LUA_GCRESTART);
    lua_gc(L, LUA_GCGEN, 0, 0);
    if (c->warnings)
        lua_warning(L, "@on", 0);
    if (c->version && !c->interactive)
        print_version();
    if (!c->ignore_env && !handle_luainit(L, c))
        return 0;
    if (!run_args(L, c))
        return 0;
    if (c->script > 0 && !handle_script(L, c))
        return 0;
    if (c->interactive) {
        print_version();
        c->exit_code = rollout_repl(L, progname);
    } else if (c->script == 0 && !c->has_exec && !c->version) {
        if (isatty(STDIN_FILENO)) {
            print_version();
            c->exit_code = rollout_repl(L, progname);
        } else {
            c->stdin_script = 1;
            handle_script(L, c);
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    cli c;
    lua_State *L;
    int status;
    memset(&c, 0, sizeof c);
    c.argc = argc;
    c.argv = argv;
    switch (parse_args(&c)) {
    case PARSE_HELP:
        print_usage(stdout);
        return ROLLOUT_EXIT_OK;
    case PARSE_USAGE:
        print_usage(stderr);
        return ROLLOUT_EXIT_USAGE;
    default:
        break;
    }
    L = luaL_newstate();
    if (L == NULL) {
        fprintf(stderr, "%s: cannot create state: not enough memory\n", progname);
        return ROLLOUT_EXIT_FAILURE;
    }
    lua_gc(L, LUA_GCSTOP);
    lua_pushcfunction(L, pmain);
    lua_pushlightuserdata(L, &c);
    status = lua_pcall(L, 1, 0, 0);
    if (status != LUA_OK) {
        int code = rollout_report(L, status, progname);
        if (c.exit_code == ROLLOUT_EXIT_OK)
            c.exit_code = code;
    }
    lua_close(L);
    return c.exit_code;
}
