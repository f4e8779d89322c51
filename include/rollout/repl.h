/* The interactive REPL (runtime/host/repl.c; completion and printing in
 * stdlib/rollout/repl.lua). */
#ifndef ROLLOUT_REPL_H
#define ROLLOUT_REPL_H

#include <lua.h>

/* Runs the REPL on the terminal until EOF; returns an exit code. */
int rollout_repl(lua_State *L, const char *progname);

#endif
