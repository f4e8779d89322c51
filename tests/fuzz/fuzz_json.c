/* libFuzzer harness: rollout.json (runtime/bindings/json.c): decode, encode of what decoded, decode again.
 * The checks are in tests/fuzz/json.lua; see tests/fuzz/fuzz_lua.h. */
#include "fuzz_lua.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_lua_init(argc, argv, "json.lua", FUZZ_LUA_NO_COVERAGE);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_lua_run(data, size);
    return 0;
}
