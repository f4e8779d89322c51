/* runtime/lib/interrupt.c: ^C stops every tracked child, however many (the
 * table grows), and raises the one sentinel value. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <lualib.h>

#include "rollout/host.h"

enum { NCHILDREN = 150 }; /* well beyond the first tables */

static void stops_every_tracked_child(void **state)
{
    pid_t pids[NCHILDREN];
    lua_State *L = luaL_newstate();
    (void)state;
    assert_non_null(L);
    for (int i = 0; i < NCHILDREN; i++) {
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            setpgid(0, 0);
            for (;;)
                pause(); /* until SIGTERM */
        }
        setpgid(pid, pid);
        pids[i] = pid;
        assert_int_equal(rollout_child_track(pid), 0);
    }
    /* one untracked in the middle is left alone */
    rollout_child_untrack(pids[70]);
    rollout_interrupt_arm(L);
    raise(SIGINT);
    assert_true(rollout_interrupted());
    for (int i = 0; i < NCHILDREN; i++) {
        int ws = 0;
        if (i == 70) {
            assert_int_equal(waitpid(pids[i], &ws, WNOHANG), 0); /* still running */
            kill(pids[i], SIGKILL);
            waitpid(pids[i], &ws, 0);
            continue;
        }
        assert_int_equal(waitpid(pids[i], &ws, 0), pids[i]);
        assert_true(WIFSIGNALED(ws));
        assert_int_equal(WTERMSIG(ws), SIGTERM);
        rollout_child_untrack(pids[i]);
    }
    rollout_interrupt_disarm();
    lua_close(L);
}

static int raise_it(lua_State *L)
{
    return rollout_raise_interrupt(L);
}

static void raises_the_sentinel(void **state)
{
    lua_State *L = luaL_newstate();
    (void)state;
    luaL_openlibs(L);
    lua_pushcfunction(L, raise_it);
    assert_int_equal(lua_pcall(L, 0, 0, 0), LUA_ERRRUN);
    assert_true(rollout_is_interrupt(L, -1));
    assert_string_equal(luaL_tolstring(L, -1, NULL), "interrupted");
    lua_pop(L, 1);
    rollout_push_interrupt(L); /* the same value every time */
    assert_true(lua_rawequal(L, -1, -2));
    lua_pushliteral(L, "interrupted"); /* a message is not the sentinel */
    assert_false(rollout_is_interrupt(L, -1));
    lua_close(L);
    rollout_interrupt_disarm();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(stops_every_tracked_child),
        cmocka_unit_test(raises_the_sentinel),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
