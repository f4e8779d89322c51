/* rollout.stats: goodness of fit, confidence intervals, power and planning,
 * and a seeded PRNG for simulations. The mathematics is runtime/core/stats*.c
 * (Lua-free, cmocka-tested); this file converts arguments and results. */
#include "rollout/host.h"
#include "rollout/stats.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_CATEGORIES 256
#define RNG_META "rollout.stats.rng"

/* Reads a list of non-negative numbers (1..n) at idx into out. */
static int read_numbers(lua_State *L, int idx, double *out, const char *what)
{
    int n;
    luaL_checktype(L, idx, LUA_TTABLE);
    n = (int)lua_rawlen(L, idx);
    luaL_argcheck(L, n >= 1 && n <= MAX_CATEGORIES, idx, "expected a list of 1 to 256 numbers");
    for (int i = 0; i < n; i++) {
        int ok;
        lua_rawgeti(L, idx, i + 1);
        out[i] = lua_tonumberx(L, -1, &ok);
        if (!ok || !(out[i] >= 0) || isinf(out[i]))
            luaL_error(L, "%s[%d] must be a finite number >= 0", what, i + 1);
        lua_pop(L, 1);
    }
    return n;
}

static int read_counts(lua_State *L, int idx, long *out)
{
    double tmp[MAX_CATEGORIES];
    int n = read_numbers(L, idx, tmp, "counts");
    for (int i = 0; i < n; i++) {
        if (tmp[i] != floor(tmp[i]) || tmp[i] > 1e15)
            luaL_error(L, "counts[%d] must be a whole number", i + 1);
        out[i] = (long)tmp[i];
    }
    return n;
}

static double check_prob(lua_State *L, int idx, const char *field, double def, int open_interval)
{
    double v = rollout_optfield_number(L, idx, field, def);
    if (!(v > 0 && (open_interval ? v < 1 : v <= 1)))
        luaL_error(L, "'%s' must be between 0 and 1 (got %f)", field, v);
    return v;
}

/* stats.gof(counts, shares) -> p, method ("exact" | "chi-square"), statistic, df */
static int s_gof(lua_State *L)
{
    long obs[MAX_CATEGORIES];
    double shares[MAX_CATEGORIES], p, stat = 0;
    int method, df = 0;
    int k = read_counts(L, 1, obs);
    int k2 = read_numbers(L, 2, shares, "shares");
    luaL_argcheck(L, k == k2, 2, "counts and shares differ in length");
    if (rs_gof(obs, shares, k, &p, &method) != RS_OK)
        return luaL_error(L, "invalid goodness-of-fit input (no positive share?)");
    rs_chi2_gof(obs, shares, k, &stat, NULL, &df);
    lua_pushnumber(L, p);
    lua_pushstring(L, method == RS_METHOD_EXACT ? "exact" : "chi-square");
    lua_pushnumber(L, stat);
    lua_pushinteger(L, df);
    return 4;
}

/* stats.wilson(successes, n [, confidence = 0.95]) -> lo, hi */
static int s_wilson(lua_State *L)
{
    lua_Integer x = luaL_checkinteger(L, 1);
    lua_Integer n = luaL_checkinteger(L, 2);
    double conf = luaL_optnumber(L, 3, 0.95), lo, hi;
    luaL_argcheck(L, n >= 0 && x >= 0 && x <= n, 1, "need 0 <= successes <= n");
    luaL_argcheck(L, conf > 0 && conf < 1, 3, "confidence must be in (0, 1)");
    rs_wilson((long)x, (long)n, conf, &lo, &hi);
    lua_pushnumber(L, lo);
    lua_pushnumber(L, hi);
    return 2;
}

/* Makes the optional options table at idx a table (empty when absent). */
static void opt_table(lua_State *L, int idx)
{
    lua_settop(L, idx);
    if (lua_isnil(L, idx)) {
        lua_newtable(L);
        lua_replace(L, idx);
    }
    luaL_checktype(L, idx, LUA_TTABLE);
}

#define RS_DEV_EXACT_PLAN 0

static int deviation_opt(lua_State *L, int idx)
{
    const char *d = rollout_optfield_string(L, idx, "deviation", "any");
    if (strcmp(d, "any") == 0)
        return RS_DEV_EXACT_PLAN;
    if (strcmp(d, "pair") == 0)
        return RS_DEV_PAIR;
    if (strcmp(d, "one_vs_rest") == 0)
        return RS_DEV_ONE_VS_REST;
    return luaL_error(L, "'deviation' must be \"any\", \"one_vs_rest\" or \"pair\"");
}

static int positive_count(const double *shares, int k)
{
    int m = 0;
    for (int i = 0; i < k; i++)
        m += shares[i] > 0;
    return m;
}

/* stats.plan(shares [, {delta = 0.05, alpha = 0.001, power = 0.99,
 *   deviation = "any" | "one_vs_rest" | "pair"}]) -> n
 * The requests needed so that the goodness-of-fit test at alpha catches a
 * deviation of `delta` in any version's share with the given power
 * ("any": rs_plan_split, exact where it matters; the others: the noncentral
 * approximation for that deviation). With one positive share there is
 * nothing to fit: returns 0 (leaks are planned by plan_leak). */
static int s_plan(lua_State *L)
{
    double shares[MAX_CATEGORIES], delta, alpha, power, w2;
    int k = read_numbers(L, 1, shares, "shares"), m, dev = RS_DEV_ONE_VS_REST;
    long n;
    opt_table(L, 2);
    delta = check_prob(L, 2, "delta", 0.05, 1);
    alpha = check_prob(L, 2, "alpha", 0.001, 1);
    power = check_prob(L, 2, "power", 0.99, 1);
    dev = deviation_opt(L, 2);
    m = positive_count(shares, k);
    if (m == 0)
        return luaL_error(L, "no positive share");
    if (m == 1) {
        lua_pushinteger(L, 0);
        return 1;
    }
    if (dev == RS_DEV_EXACT_PLAN) {
        n = rs_plan_split(shares, k, delta, alpha, power);
    } else {
        w2 = rs_gof_w2(shares, k, delta, dev);
        if (isnan(w2))
            return luaL_error(L, "a deviation of %f is not possible for these shares", delta);
        n = rs_plan_n_w2(w2, m - 1, alpha, power);
    }
    if (n < 0)
        return luaL_error(L, "cannot plan a sample for these arguments");
    lua_pushinteger(L, n);
    return 1;
}

/* stats.power(shares, n [, {delta, alpha, deviation}]) -> power */
static int s_power(lua_State *L)
{
    double shares[MAX_CATEGORIES], delta, alpha, w2;
    int k = read_numbers(L, 1, shares, "shares"), m, dev;
    lua_Integer n = luaL_checkinteger(L, 2);
    opt_table(L, 3);
    delta = check_prob(L, 3, "delta", 0.05, 1);
    alpha = check_prob(L, 3, "alpha", 0.001, 1);
    dev = deviation_opt(L, 3);
    if (dev == RS_DEV_EXACT_PLAN)
        dev = RS_DEV_ONE_VS_REST;
    m = positive_count(shares, k);
    luaL_argcheck(L, m >= 2, 1, "need at least two positive shares");
    w2 = rs_gof_w2(shares, k, delta, dev);
    lua_pushnumber(L, isnan(w2) ? NAN : rs_power_w2(w2, m - 1, (long)n, alpha));
    return 1;
}

/* stats.plan_leak(rate, power) -> n: requests to see at least one request
 * of a leak of the given rate with that probability */
static int s_plan_leak(lua_State *L)
{
    double rate = luaL_checknumber(L, 1), power = luaL_checknumber(L, 2);
    long n = rs_plan_leak_n(rate, power);
    luaL_argcheck(L, n >= 0, 1, "need 0 < rate <= 1 and 0 < power < 1");
    lua_pushinteger(L, n);
    return 1;
}

static int s_chi2_sf(lua_State *L)
{
    lua_pushnumber(L, rs_chi2_sf(luaL_checknumber(L, 1), luaL_checknumber(L, 2)));
    return 1;
}

static int s_norm_quantile(lua_State *L)
{
    lua_pushnumber(L, rs_norm_quantile(luaL_checknumber(L, 1)));
    return 1;
}

/* stats.rng(seed) -> a deterministic generator (xoshiro256**) */
static rs_rng *check_rng(lua_State *L)
{
    return luaL_checkudata(L, 1, RNG_META);
}

static int s_rng(lua_State *L)
{
    lua_Integer seed = luaL_checkinteger(L, 1);
    rs_rng *r = lua_newuserdatauv(L, sizeof *r, 0);
    luaL_setmetatable(L, RNG_META);
    rs_rng_seed(r, (uint64_t)seed);
    return 1;
}

/* rng:random() -> uniform in [0, 1) */
static int rng_random(lua_State *L)
{
    lua_pushnumber(L, rs_rng_double(check_rng(L)));
    return 1;
}

/* rng:multinomial(n, shares) -> counts: n independent draws, one per request */
static int rng_multinomial(lua_State *L)
{
    rs_rng *r = check_rng(L);
    lua_Integer n = luaL_checkinteger(L, 2);
    double shares[MAX_CATEGORIES], cum[MAX_CATEGORIES], total = 0;
    long counts[MAX_CATEGORIES] = {0};
    int k = read_numbers(L, 3, shares, "shares");
    luaL_argcheck(L, n >= 0 && n <= 100000000, 2, "n must be 0..1e8");
    for (int i = 0; i < k; i++)
        cum[i] = (total += shares[i]);
    luaL_argcheck(L, total > 0, 3, "no positive share");
    for (lua_Integer j = 0; j < n; j++) {
        double u = rs_rng_double(r) * total;
        int i = 0;
        while (i < k - 1 && u >= cum[i])
            i++;
        counts[i]++;
    }
    lua_createtable(L, k, 0);
    for (int i = 0; i < k; i++) {
        lua_pushinteger(L, counts[i]);
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

int luaopen_rollout_stats(lua_State *L)
{
    static const luaL_Reg funcs[] = {
        {"gof", s_gof},
        {"wilson", s_wilson},
        {"plan", s_plan},
        {"power", s_power},
        {"plan_leak", s_plan_leak},
        {"chi2_sf", s_chi2_sf},
        {"norm_quantile", s_norm_quantile},
        {"rng", s_rng},
        {NULL, NULL}};
    static const luaL_Reg rng_methods[] = {
        {"random", rng_random},
        {"multinomial", rng_multinomial},
        {NULL, NULL}};
    if (luaL_newmetatable(L, RNG_META)) {
        luaL_newlib(L, rng_methods);
        lua_setfield(L, -2, "__index");
    }
    lua_pop(L, 1);
    luaL_newlib(L, funcs);
    return 1;
}
