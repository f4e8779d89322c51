/* rollout.time: a monotonic clock and a sleep that ^C interrupts. */
#include "rollout/host.h"

#include <errno.h>
#include <time.h>

/* time.now() -> seconds on the monotonic clock (for durations) */
static int t_now(lua_State *L)
{
    lua_pushnumber(L, rollout_now());
    return 1;
}

/* time.wall() -> seconds since the epoch (for timestamps) */
static int t_wall(lua_State *L)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    lua_pushnumber(L, (double)ts.tv_sec + (double)ts.tv_nsec / 1e9);
    return 1;
}

/* time.sleep(seconds): returns early only by raising the interrupt sentinel */
static int t_sleep(lua_State *L)
{
    double secs = luaL_checknumber(L, 1);
    double deadline;
    luaL_argcheck(L, secs >= 0 && secs <= 86400.0 * 365, 1, "must be between 0 and a year");
    deadline = rollout_now() + secs;
    for (;;) {
        double left = deadline - rollout_now();
        struct timespec ts;
        rollout_check_interrupt(L);
        if (left <= 0)
            break;
        if (left > 0.1)
            left = 0.1; /* wake up to notice ^C even if the signal hit elsewhere */
        ts.tv_sec = (time_t)left;
        ts.tv_nsec = (long)((left - (double)ts.tv_sec) * 1e9);
        if (nanosleep(&ts, NULL) != 0 && errno != EINTR)
            break;
    }
    return 0;
}

int luaopen_rollout_time(lua_State *L)
{
    static const luaL_Reg funcs[] = {
        {"now", t_now},
        {"wall", t_wall},
        {"sleep", t_sleep},
        {NULL, NULL}};
    luaL_newlib(L, funcs);
    return 1;
}
