/* libFuzzer harness: rollout.yaml (runtime/bindings/yaml.c): load with positions, load_all, dump and load again.
 * The checks are in tests/fuzz/yaml.lua; see tests/fuzz/fuzz_lua.h. */
#include "fuzz_lua.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_lua_init(argc, argv, "yaml.lua", FUZZ_LUA_NO_COVERAGE);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_lua_run(data, size);
    return 0;
}
