/* rollout.stats: goodness of fit, confidence intervals, power and planning,
 * two-sample tests for judging a canary (exact tails, bounds, a growing
 * sample of latencies), and a seeded PRNG for simulations. The mathematics
 * is runtime/core/stats*.c (Lua-free, cmocka-tested); this file converts
 * arguments and results. */
#include "rollout/host.h"
#include "rollout/stats.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_CATEGORIES 256
#define RNG_META "rollout.stats.rng"
#define SAMPLE_META "rollout.stats.sample"

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

/* ------------------------------------------------------------------ */
/* two samples (rollout.judge)                                         */

static long check_count(lua_State *L, int idx, const char *what)
{
    lua_Integer v = luaL_checkinteger(L, idx);
    if (v < 0 || v > (lua_Integer)1e15)
        luaL_error(L, "%s must be a whole number >= 0", what);
    return (long)v;
}

static double check_open01(lua_State *L, int idx, const char *what)
{
    double v = luaL_checknumber(L, idx);
    if (!(v > 0 && v < 1))
        luaL_error(L, "%s must be between 0 and 1 (got %f)", what, v);
    return v;
}

static double check_closed01(lua_State *L, int idx, const char *what)
{
    double v = luaL_checknumber(L, idx);
    if (!(v >= 0 && v <= 1))
        luaL_error(L, "%s must be in [0, 1] (got %f)", what, v);
    return v;
}

/* stats.binom_cdf(x, n, p) -> P(X <= x); stats.binom_sf(x, n, p) -> P(X >= x) */
static int s_binom_cdf(lua_State *L)
{
    lua_Integer x = luaL_checkinteger(L, 1);
    long n = check_count(L, 2, "n");
    lua_pushnumber(L, rs_binom_cdf((long)x, n, check_closed01(L, 3, "p")));
    return 1;
}

static int s_binom_sf(lua_State *L)
{
    lua_Integer x = luaL_checkinteger(L, 1);
    long n = check_count(L, 2, "n");
    lua_pushnumber(L, rs_binom_sf((long)x, n, check_closed01(L, 3, "p")));
    return 1;
}

/* stats.binom_bounds(x, n, gamma) -> lo, hi: one-sided Clopper-Pearson
 * bounds, each holding with probability >= 1 - gamma */
static int s_binom_bounds(lua_State *L)
{
    long x = check_count(L, 1, "x"), n = check_count(L, 2, "n");
    double gamma = check_open01(L, 3, "gamma"), lo, hi;
    luaL_argcheck(L, n >= 1 && x <= n, 2, "need 0 <= x <= n and n >= 1");
    rs_binom_bounds(x, n, gamma, &lo, &hi);
    lua_pushnumber(L, lo);
    lua_pushnumber(L, hi);
    return 2;
}

/* stats.fisher_greater(xb, nb, xc, nc) -> one-sided p that the canary's
 * failure rate xc/nc is higher than the baseline's xb/nb */
static int s_fisher_greater(lua_State *L)
{
    long xb = check_count(L, 1, "xb"), nb = check_count(L, 2, "nb");
    long xc = check_count(L, 3, "xc"), nc = check_count(L, 4, "nc");
    luaL_argcheck(L, xb <= nb, 1, "more failures than requests");
    luaL_argcheck(L, xc <= nc, 3, "more failures than requests");
    lua_pushnumber(L, rs_fisher_greater(xb, nb, xc, nc));
    return 1;
}

/* stats.exceedance(c, nc, r, nb) -> P(C >= c): c of nc canary values above
 * the r-th smallest of nb baseline values */
static int s_exceedance(lua_State *L)
{
    long c = check_count(L, 1, "c"), nc = check_count(L, 2, "nc");
    long r = check_count(L, 3, "r"), nb = check_count(L, 4, "nb");
    luaL_argcheck(L, nb >= 1 && r >= 1 && r <= nb, 3, "need 1 <= r <= nb");
    luaL_argcheck(L, c <= nc, 1, "need c <= nc");
    lua_pushnumber(L, rs_exceed_sf(c, nc, r, nb));
    return 1;
}

/* stats.exceed_crit(nc, r, nb, alpha) -> the smallest count that rejects */
static int s_exceed_crit(lua_State *L)
{
    long nc = check_count(L, 1, "nc"), r = check_count(L, 2, "r");
    long nb = check_count(L, 3, "nb");
    double alpha = check_open01(L, 4, "alpha");
    luaL_argcheck(L, nb >= 1 && r >= 1 && r <= nb, 2, "need 1 <= r <= nb");
    lua_pushinteger(L, rs_exceed_crit(nc, r, nb, alpha));
    return 1;
}

/* stats.order_bounds(n, q, gamma) -> l, u: X_(l) <= Q(q) <= X_(u), each with
 * probability >= 1 - gamma; l = 0 / u = n + 1 when there is none */
static int s_order_bounds(lua_State *L)
{
    long n = check_count(L, 1, "n");
    double q = check_open01(L, 2, "q"), gamma = check_open01(L, 3, "gamma");
    luaL_argcheck(L, n >= 1, 1, "need n >= 1");
    lua_pushinteger(L, rs_order_lower(n, q, gamma));
    lua_pushinteger(L, rs_order_upper(n, q, gamma));
    return 2;
}

/* stats.fisher_power(nb, pb, nc, pc, alpha) -> exact power */
static int s_fisher_power(lua_State *L)
{
    long nb = check_count(L, 1, "nb"), nc = check_count(L, 3, "nc");
    double pb = check_closed01(L, 2, "pb"), pc = check_closed01(L, 4, "pc");
    double alpha = check_open01(L, 5, "alpha");
    luaL_argcheck(L, nb >= 1 && nc >= 1, 1, "need nb, nc >= 1");
    lua_pushnumber(L, rs_fisher_power(nb, pb, nc, pc, alpha));
    return 1;
}

/* stats.diff_pass_prob(nb, pb, nc, pc, gamma, margin) */
static int s_diff_pass_prob(lua_State *L)
{
    long nb = check_count(L, 1, "nb"), nc = check_count(L, 3, "nc");
    double pb = check_closed01(L, 2, "pb"), pc = check_closed01(L, 4, "pc");
    double gamma = check_open01(L, 5, "gamma"), margin = check_open01(L, 6, "margin");
    luaL_argcheck(L, nb >= 1 && nc >= 1, 1, "need nb, nc >= 1");
    lua_pushnumber(L, rs_diff_pass_prob(nb, pb, nc, pc, gamma, margin));
    return 1;
}

/* stats.sample([list]) -> a growing sample, sorted on demand */
static rs_sample *check_sample(lua_State *L, int idx)
{
    return luaL_checkudata(L, idx, SAMPLE_META);
}

/* Appends the number or list of numbers at idx; on a bad element nothing
 * is added and an error is raised. */
static void sample_append(lua_State *L, rs_sample *s, int idx)
{
    size_t old = s->n;
    if (lua_type(L, idx) == LUA_TNUMBER) {
        double v = lua_tonumber(L, idx);
        if (rs_sample_add(s, &v, 1) != RS_OK)
            luaL_error(L, "sample values must be finite numbers");
        return;
    }
    luaL_checktype(L, idx, LUA_TTABLE);
    lua_Integer len = (lua_Integer)lua_rawlen(L, idx);
    double buf[512];
    size_t k = 0;
    for (lua_Integer i = 1; i <= len; i++) {
        int ok, rc = RS_OK;
        lua_rawgeti(L, idx, i);
        double v = lua_tonumberx(L, -1, &ok);
        lua_pop(L, 1);
        if (ok && isfinite(v)) {
            buf[k++] = v;
            if (k == sizeof buf / sizeof buf[0] || i == len) {
                rc = rs_sample_add(s, buf, k);
                k = 0;
            }
        }
        if (!ok || !isfinite(v) || rc != RS_OK) {
            s->n = old; /* what was added of this list is unsorted: drop it */
            if (s->sorted > old)
                s->sorted = old;
            if (rc == RS_ENOMEM)
                luaL_error(L, "out of memory");
            luaL_error(L, "sample value [%d] must be a finite number", (int)i);
        }
    }
}

static int s_sample(lua_State *L)
{
    int has_values = !lua_isnoneornil(L, 1);
    rs_sample *s = lua_newuserdatauv(L, sizeof *s, 0);
    rs_sample_init(s);
    luaL_setmetatable(L, SAMPLE_META);
    if (has_values)
        sample_append(L, s, 1);
    return 1;
}

static int sample_gc(lua_State *L)
{
    rs_sample_free(check_sample(L, 1));
    return 0;
}

/* sample:add(x | {x, ...}) -> sample */
static int sample_add(lua_State *L)
{
    rs_sample *s = check_sample(L, 1);
    luaL_checkany(L, 2);
    sample_append(L, s, 2);
    lua_settop(L, 1);
    return 1;
}

static int sample_len(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)check_sample(L, 1)->n);
    return 1;
}

static void sample_sorted(lua_State *L, rs_sample *s)
{
    if (rs_sample_sort(s) != RS_OK)
        luaL_error(L, "out of memory");
}

/* sample:order(r) -> the r-th smallest value (1 <= r <= #sample) */
static int sample_order(lua_State *L)
{
    rs_sample *s = check_sample(L, 1);
    lua_Integer r = luaL_checkinteger(L, 2);
    luaL_argcheck(L, r >= 1 && (size_t)r <= s->n, 2, "order statistic out of range");
    sample_sorted(L, s);
    lua_pushnumber(L, rs_sample_order(s, (size_t)r));
    return 1;
}

/* sample:quantile(q) -> the ceil(q n)-th smallest value (the inverse of the
 * empirical distribution function); nil when empty */
static int sample_quantile(lua_State *L)
{
    rs_sample *s = check_sample(L, 1);
    double q = luaL_checknumber(L, 2);
    luaL_argcheck(L, q >= 0 && q <= 1, 2, "q must be in [0, 1]");
    if (s->n == 0) {
        lua_pushnil(L);
        return 1;
    }
    double r = ceil(q * (double)s->n - 1e-9 * (double)s->n);
    if (r < 1)
        r = 1;
    if (r > (double)s->n)
        r = (double)s->n;
    sample_sorted(L, s);
    lua_pushnumber(L, rs_sample_order(s, (size_t)r));
    return 1;
}

/* sample:above(t) -> how many values are > t; sample:at_least(t) -> >= t */
static int sample_above(lua_State *L)
{
    rs_sample *s = check_sample(L, 1);
    long c = rs_sample_count_above(s, luaL_checknumber(L, 2));
    if (c < 0)
        return luaL_error(L, "invalid threshold or out of memory");
    lua_pushinteger(L, c);
    return 1;
}

static int sample_at_least(lua_State *L)
{
    rs_sample *s = check_sample(L, 1);
    long c = rs_sample_count_at_least(s, luaL_checknumber(L, 2));
    if (c < 0)
        return luaL_error(L, "invalid threshold or out of memory");
    lua_pushinteger(L, c);
    return 1;
}

/* sample:values() -> the values, sorted */
static int sample_values(lua_State *L)
{
    rs_sample *s = check_sample(L, 1);
    sample_sorted(L, s);
    lua_createtable(L, (int)s->n, 0);
    for (size_t i = 0; i < s->n; i++) {
        lua_pushnumber(L, s->v[i]);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    return 1;
}

/* sample:simulate(rng, n, {median_ms, sigma, shift_ms, tail_share, tail_ms,
 * spike_share, spike_ms, resolution_ms}) -> sample: appends n draws of the latency model (for
 * Monte Carlo validation; see rs_latency_model) */
static int sample_simulate(lua_State *L)
{
    rs_sample *s = check_sample(L, 1);
    rs_rng *r = luaL_checkudata(L, 2, RNG_META);
    lua_Integer n = luaL_checkinteger(L, 3);
    rs_latency_model m;
    luaL_argcheck(L, n >= 0 && n <= 100000000, 3, "n must be 0..1e8");
    luaL_checktype(L, 4, LUA_TTABLE);
    m.median_ms = rollout_optfield_number(L, 4, "median_ms", 1);
    m.sigma = rollout_optfield_number(L, 4, "sigma", 0.5);
    m.shift_ms = rollout_optfield_number(L, 4, "shift_ms", 0);
    m.tail_share = rollout_optfield_number(L, 4, "tail_share", 0);
    m.tail_ms = rollout_optfield_number(L, 4, "tail_ms", 0);
    m.spike_share = rollout_optfield_number(L, 4, "spike_share", 0);
    m.spike_ms = rollout_optfield_number(L, 4, "spike_ms", 0);
    m.resolution_ms = rollout_optfield_number(L, 4, "resolution_ms", 0);
    int rc = rs_sample_simulate(s, r, (size_t)n, &m);
    if (rc == RS_ENOMEM)
        return luaL_error(L, "out of memory");
    if (rc != RS_OK)
        return luaL_error(L, "invalid latency model");
    lua_settop(L, 1);
    return 1;
}

/* rng:binomial(n, p) -> an exact Binomial(n, p) draw; rng:normal() */
static int rng_binomial(lua_State *L)
{
    rs_rng *r = check_rng(L);
    long n = check_count(L, 2, "n");
    double p = check_closed01(L, 3, "p");
    lua_pushinteger(L, rs_rng_binomial(r, n, p));
    return 1;
}

static int rng_normal(lua_State *L)
{
    lua_pushnumber(L, rs_rng_normal(check_rng(L)));
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
        {"binom_cdf", s_binom_cdf},
        {"binom_sf", s_binom_sf},
        {"binom_bounds", s_binom_bounds},
        {"fisher_greater", s_fisher_greater},
        {"exceedance", s_exceedance},
        {"exceed_crit", s_exceed_crit},
        {"order_bounds", s_order_bounds},
        {"fisher_power", s_fisher_power},
        {"diff_pass_prob", s_diff_pass_prob},
        {"sample", s_sample},
        {NULL, NULL}};
    static const luaL_Reg rng_methods[] = {
        {"random", rng_random},
        {"multinomial", rng_multinomial},
        {"binomial", rng_binomial},
        {"normal", rng_normal},
        {NULL, NULL}};
    static const luaL_Reg sample_methods[] = {
        {"add", sample_add},
        {"n", sample_len},
        {"order", sample_order},
        {"quantile", sample_quantile},
        {"above", sample_above},
        {"at_least", sample_at_least},
        {"values", sample_values},
        {"simulate", sample_simulate},
        {NULL, NULL}};
    if (luaL_newmetatable(L, RNG_META)) {
        luaL_newlib(L, rng_methods);
        lua_setfield(L, -2, "__index");
    }
    lua_pop(L, 1);
    if (luaL_newmetatable(L, SAMPLE_META)) {
        luaL_newlib(L, sample_methods);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, sample_gc);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, sample_len);
        lua_setfield(L, -2, "__len");
    }
    lua_pop(L, 1);
    luaL_newlib(L, funcs);
    return 1;
}
