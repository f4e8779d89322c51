/* Placeholder until the libedit REPL lands. */
#include "rollout/host.h"
#include "rollout/repl.h"

#include <stdio.h>
#include <string.h>

int rollout_repl(lua_State *L, const char *progname)
{
    char line[4096];
    while (fputs("> ", stdout), fflush(stdout), fgets(line, sizeof line, stdin) != NULL) {
        int status = luaL_loadbuffer(L, line, strlen(line), "=stdin");
        if (status == LUA_OK)
            status = rollout_docall(L, 0, 0);
        if (status != LUA_OK)
            rollout_report(L, status, progname);
    }
    return 0;
}
