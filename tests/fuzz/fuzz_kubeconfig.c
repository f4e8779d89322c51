/* libFuzzer harness: kubeconfig parsing and resolution: rollout.k8s.config
 * (stdlib/rollout/k8s/config.lua). The checks are in tests/fuzz/kubeconfig.lua;
 * see tests/fuzz/fuzz_lua.h. */
#include "fuzz_lua.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_lua_init(argc, argv, "kubeconfig.lua", FUZZ_LUA_COVERAGE);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_lua_run(data, size);
    return 0;
}
