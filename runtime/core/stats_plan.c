/* Statistics core, part 3: power of the chi-square goodness-of-fit test and
 * sample-size planning (noncentral chi-square approximation, lambda = n w2).
 */
#include "rollout/stats.h"

#include <limits.h>
#include <math.h>
#include <stddef.h>

#define PLAN_N_MAX (LONG_MAX / 4)

static int prob_open(double x)
{
    return x > 0.0 && x < 1.0; /* false for NaN */
}

/* Number and total of the positive shares; RS_EINVAL if any share is
 * negative or not finite, or none is positive. */
typedef struct {
    int m;
    double sum;
} share_info;

static int share_scan(const double *shares, int k, share_info *si)
{
    if (shares == NULL || k < 1)
        return RS_EINVAL;
    si->m = 0;
    si->sum = 0.0;
    for (int i = 0; i < k; i++) {
        if (!(shares[i] >= 0.0) || !isfinite(shares[i]))
            return RS_EINVAL;
        if (shares[i] > 0.0) {
            si->m++;
            si->sum += shares[i];
        }
    }
    if (si->m == 0 || !isfinite(si->sum))
        return RS_EINVAL;
    return RS_OK;
}

double rs_gof_w2(const double *shares, int k, double delta, int deviation)
{
    share_info si;
    if (share_scan(shares, k, &si) != RS_OK || !prob_open(delta) || si.m < 2)
        return NAN;
    if (deviation == RS_DEV_PAIR) {
        /* min over donor a (p_a >= delta), receiver b != a of
         * delta^2 (1/p_a + 1/p_b): the unconstrained minimum is the two
         * largest shares, and it is feasible iff the largest >= delta. */
        double p1 = 0.0, p2 = 0.0;
        for (int i = 0; i < k; i++) {
            double p = shares[i] / si.sum;
            if (shares[i] <= 0.0)
                continue;
            if (p > p1) {
                p2 = p1;
                p1 = p;
            } else if (p > p2) {
                p2 = p;
            }
        }
        if (p1 < delta)
            return NAN;
        return delta * delta * (1.0 / p1 + 1.0 / p2);
    }
    if (deviation == RS_DEV_ONE_VS_REST) {
        /* category a moves by -delta (needs p_a >= delta) or +delta (needs
         * p_a + delta <= 1); the others absorb it in proportion, which
         * minimizes sum Delta_i^2 / p_i: w2 = delta^2 / (p_a (1 - p_a)). */
        double best = INFINITY;
        for (int i = 0; i < k; i++) {
            if (shares[i] <= 0.0)
                continue;
            double p = shares[i] / si.sum;
            if (!(p >= delta || p + delta <= 1.0))
                continue;
            double w2 = delta * delta / (p * (1.0 - p));
            if (w2 < best)
                best = w2;
        }
        return isfinite(best) ? best : NAN;
    }
    return NAN;
}

double rs_power_w2(double w2, int df, long n, double alpha)
{
    if (!(w2 >= 0.0) || !isfinite(w2) || df < 1 || n < 0 || !prob_open(alpha))
        return NAN;
    double crit = rs_chi2_isf(alpha, (double)df);
    return rs_ncchi2_sf(crit, (double)df, (double)n * w2);
}

long rs_plan_n_w2(double w2, int df, double alpha, double power)
{
    if (!(w2 > 0.0) || !isfinite(w2) || df < 1 || !prob_open(alpha) ||
        !prob_open(power))
        return RS_EINVAL;
    const double crit = rs_chi2_isf(alpha, (double)df);
#define POWER_AT(nn) rs_ncchi2_sf(crit, (double)df, (double)(nn) * w2)
    if (POWER_AT(1) >= power)
        return 1;
    long lo = 1, hi = 2; /* power(lo) < target */
    while (POWER_AT(hi) < power) {
        lo = hi;
        if (hi > PLAN_N_MAX / 2)
            return RS_ERANGE;
        hi *= 2;
    }
    while (hi - lo > 1) { /* power(lo) < target <= power(hi) */
        long mid = lo + (hi - lo) / 2;
        if (POWER_AT(mid) >= power)
            hi = mid;
        else
            lo = mid;
    }
    return hi;
#undef POWER_AT
}

/* 1 - (1 - rate)^n without cancellation */
static double leak_power(double rate, long n)
{
    if (rate >= 1.0)
        return n > 0 ? 1.0 : 0.0;
    return -expm1((double)n * log1p(-rate));
}

long rs_plan_leak_n(double leak_rate, double power)
{
    if (!(leak_rate > 0.0 && leak_rate <= 1.0) || !prob_open(power))
        return RS_EINVAL;
    if (leak_rate >= 1.0)
        return 1;
    double est = ceil(log1p(-power) / log1p(-leak_rate));
    if (!(est < (double)PLAN_N_MAX))
        return RS_ERANGE;
    long n = est < 1.0 ? 1 : (long)est;
    /* settle rounding either way */
    while (n > 1 && leak_power(leak_rate, n - 1) >= power)
        n--;
    while (leak_power(leak_rate, n) < power)
        n++;
    return n;
}

double rs_gof_power(const double *shares, int k, double delta, long n, double alpha)
{
    share_info si;
    if (share_scan(shares, k, &si) != RS_OK || !prob_open(delta) || n < 0 ||
        !prob_open(alpha))
        return NAN;
    if (si.m == 1)
        return leak_power(delta, n);
    double w2 = rs_gof_w2(shares, k, delta, RS_DEV_PAIR);
    if (isnan(w2))
        return NAN;
    return rs_power_w2(w2, si.m - 1, n, alpha);
}

long rs_plan_n(const double *shares, int k, double delta, double alpha, double power)
{
    share_info si;
    if (share_scan(shares, k, &si) != RS_OK || !prob_open(delta) ||
        !prob_open(alpha) || !prob_open(power))
        return RS_EINVAL;
    if (si.m == 1)
        return rs_plan_leak_n(delta, power);
    double w2 = rs_gof_w2(shares, k, delta, RS_DEV_PAIR);
    if (isnan(w2))
        return RS_EINVAL;
    return rs_plan_n_w2(w2, si.m - 1, alpha, power);
}
