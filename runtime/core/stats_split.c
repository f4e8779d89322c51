/* Planning a split verification so that the stated power holds for the test
 * rollout actually runs (rs_gof: exact for small expected counts, Pearson
 * chi-square otherwise), not only under the noncentral approximation.
 *
 * Monte Carlo showed the noncentral-chi-square plan to be slightly
 * optimistic (e.g. 98.8% instead of 99% for 25/75 shifted to 30/70, and far
 * off for small shares such as 1/99 → 6/94, where the exact test decides).
 * So:
 *   - two positive shares: the power is computed exactly, summing the
 *     binomial probabilities of the alternative over the rejection region of
 *     rs_gof, and n is the smallest with that power for every deviation of
 *     delta (up and down);
 *   - three or more: the larger of the noncentral plan for the least
 *     detectable deviation (one version off by delta, the others absorbing
 *     it in proportion) at half the allowed miss rate, and the exact
 *     two-category plan of each version against the rest. */
#include "rollout/stats.h"

#include <math.h>
#include <stddef.h>

/* Exact power of rs_gof on counts (x, n - x) with shares (p0, 1 - p0) when
 * the true share of the first category is p1. */
double rs_power_exact2(double p0, double p1, long n, double alpha)
{
    double shares[2] = {p0, 1.0 - p0};
    double power = 0.0;
    if (!(p0 > 0 && p0 < 1) || !(p1 >= 0 && p1 <= 1) || n < 1 || !(alpha > 0 && alpha < 1))
        return NAN;
    for (long x = 0; x <= n; x++) {
        long obs[2] = {x, n - x};
        double p;
        if (rs_gof(obs, shares, 2, &p, NULL) != RS_OK)
            return NAN;
        if (p < alpha)
            power += exp(rs_binom_logpmf(x, n, p1));
    }
    return power > 1.0 ? 1.0 : power;
}

/* The smallest power over the feasible deviations p0 ± delta. */
static double worst_power2(double p0, double delta, long n, double alpha)
{
    double worst = 1.0;
    int any = 0;
    for (int dir = -1; dir <= 1; dir += 2) {
        double p1 = p0 + dir * delta;
        if (p1 < 0 || p1 > 1)
            continue;
        double pw = rs_power_exact2(p0, p1, n, alpha);
        if (isnan(pw))
            return NAN;
        if (pw < worst)
            worst = pw;
        any = 1;
    }
    return any ? worst : NAN;
}

/* Smallest n with worst_power2 >= power; the normal approximation with the
 * alternative's variance gives the starting point. */
static long plan_exact2(double p0, double delta, double alpha, double power)
{
    double za = rs_norm_quantile(1 - alpha / 2), zb = rs_norm_quantile(power), guess = 1;
    long lo, hi, n;
    for (int dir = -1; dir <= 1; dir += 2) {
        double p1 = p0 + dir * delta;
        if (p1 < 0 || p1 > 1)
            continue;
        double g = (za * sqrt(p0 * (1 - p0)) + zb * sqrt(p1 * (1 - p1))) / delta;
        if (g * g > guess)
            guess = g * g;
    }
    if (guess > 1e8)
        return RS_ERANGE;
    /* bracket: lo fails, hi passes */
    lo = (long)(guess / 2);
    hi = (long)guess + 1;
    while (worst_power2(p0, delta, hi, alpha) < power) {
        lo = hi;
        hi *= 2;
        if (hi > 100000000L)
            return RS_ERANGE;
    }
    if (lo < 1)
        lo = 1;
    while (lo + 1 < hi) {
        long mid = lo + (hi - lo) / 2;
        if (worst_power2(p0, delta, mid, alpha) >= power)
            hi = mid;
        else
            lo = mid;
    }
    /* the exact power saw-tooths with n: make sure a few more requests (a
     * sample a little larger than planned) keep the power */
    n = hi;
    for (long extra = 1; extra <= 8; extra++) {
        if (worst_power2(p0, delta, n + extra, alpha) < power) {
            n = n + extra + 1;
            extra = 0;
        }
    }
    return n;
}

long rs_plan_split(const double *shares, int k, double delta, double alpha, double power)
{
    double total = 0, p[2];
    int m = 0;
    long best = 0;
    if (shares == NULL || k < 1 || !(delta > 0 && delta < 1) || !(alpha > 0 && alpha < 1) ||
        !(power > 0 && power < 1))
        return RS_EINVAL;
    for (int i = 0; i < k; i++) {
        if (!(shares[i] >= 0) || isinf(shares[i]))
            return RS_EINVAL;
        total += shares[i];
        if (shares[i] > 0) {
            if (m < 2)
                p[m] = shares[i];
            m++;
        }
    }
    if (m < 2)
        return RS_EINVAL;
    if (m == 2)
        return plan_exact2(p[0] / (p[0] + p[1]), delta, alpha, power);
    {
        double w2 = rs_gof_w2(shares, k, delta, RS_DEV_ONE_VS_REST);
        if (isnan(w2))
            return RS_EINVAL;
        best = rs_plan_n_w2(w2, m - 1, alpha, 1 - (1 - power) / 2);
        if (best < 0)
            return best;
    }
    for (int i = 0; i < k; i++) {
        if (shares[i] <= 0)
            continue;
        long n = plan_exact2(shares[i] / total, delta, alpha, power);
        if (n < 0)
            return n;
        if (n > best)
            best = n;
    }
    return best;
}
