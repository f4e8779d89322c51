/* What the Lua-driven harnesses (yaml, json, traffic, service_config)
 * share: a lua_State set up by the host as rollout sets it up (bindings in
 * package.preload, the stdlib on package.path), a check script per target
 * (tests/fuzz/<target>.lua returns function(data)), and an optional
 * coverage signal from the Lua code itself.
 *
 * A finding is any error the check function raises (a crash in the code
 * under test, or a broken invariant the script asserts): the harness prints
 * it with its traceback and aborts, so libFuzzer keeps the reproducer. */
#ifndef ROLLOUT_FUZZ_LUA_H
#define ROLLOUT_FUZZ_LUA_H

#include <stddef.h>
#include <stdint.h>

/* Lua line coverage as libFuzzer extra counters: on for targets whose logic
 * is Lua (the schema checks), where libFuzzer would otherwise see only the
 * C it instrumented. */
enum { FUZZ_LUA_NO_COVERAGE = 0, FUZZ_LUA_COVERAGE = 1 };

/* Creates the state and loads tests/fuzz/<script>. Exits on failure. */
void fuzz_lua_init(int *argc, char ***argv, const char *script, int coverage);

/* Calls the script's function with the input as a string. Aborts on a
 * finding. */
void fuzz_lua_run(const uint8_t *data, size_t size);

#endif
