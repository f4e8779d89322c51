/* cmocka tests for the statistics core (include/rollout/stats.h).
 *
 * Reference values were computed independently of this code: with mpmath
 * at 30-50 digits (incomplete gamma, normal, chi-square quantiles by
 * bisection, the noncentral chi-square by its full Poisson sum, plan_n by
 * bisection on that power), with exact rational arithmetic in Python
 * (exact binomial/multinomial p-values), or from published tables
 * (chi-square critical values; Newcombe 1998 for Wilson intervals;
 * Mendel's peas for Pearson's test; splitmix64's published output).
 *
 * Two-sample tests (runtime/core/stats_twosample.c): binomial tails,
 * Fisher p-values, exceedance tails and exact powers are exact rationals
 * from Python (fractions + math.comb, the power by enumerating every
 * table); the exceedance tail was also checked against its beta-binomial
 * form in exact rationals; Clopper-Pearson bounds by 200-step bisection on
 * mpmath.betainc at 40 digits; the pass probability by enumerating every
 * table with those mpmath bounds.  Published checks: Fisher's tea tasting
 * (p = 17/70), Clopper-Pearson 5/100 -> [0.0164, 0.1128] and 1/10 at 90%
 * -> [0.0051, 0.3942], and the order statistics (40, 61) of the 95%
 * distribution-free interval for the median of 100 values.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "rollout/stats.h"

/* |got - want| <= rel * |want| (or exact equality). */
static void check_rel(double got, double want, double rel, const char *what)
{
    double err = fabs(got - want);
    if (!(err <= rel * fabs(want)) && got != want) {
        print_error("%s: got %.17g want %.17g (rel err %.3g > %.3g)\n", what, got,
                    want, err / fabs(want), rel);
        fail();
    }
}

static void check_abs(double got, double want, double tol, const char *what)
{
    if (!(fabs(got - want) <= tol)) {
        print_error("%s: got %.17g want %.17g (abs err %.3g > %.3g)\n", what, got,
                    want, fabs(got - want), tol);
        fail();
    }
}

/* ------------------------------------------------------------------ */
/* incomplete gamma                                                    */

static void test_gamma_reference(void **state)
{
    (void)state;
    static const struct {
        double a, x, p, q;
    } t[] = {
        {0.5, 0.1, 0.34527915398142298, 0.65472084601857702},
        {1, 1, 0.63212055882855768, 0.36787944117144232},
        {2.5, 2, 0.45058404864721977, 0.54941595135278023},
        {5, 20, 0.99998305525606993, 1.6944743930067384e-5},
        {10, 9.5, 0.47817397776279259, 0.52182602223720741},
        {50, 45, 0.24680203440017027, 0.75319796559982973},
        {100, 150, 0.99999407545966452, 5.9245403354839158e-6},
        {1000, 1000, 0.50420524418021551, 0.49579475581978449},
        {1000, 1100, 0.99894067674607002, 0.0010593232539299773},
        {3, 80, 1.0, 5.9217174035208072e-32},
        {0.5, 600, 1.0, 6.0995688148084337e-263},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        char what[64];
        snprintf(what, sizeof what, "P(%g, %g)", t[i].a, t[i].x);
        check_rel(rs_gamma_p(t[i].a, t[i].x), t[i].p, 1e-12, what);
        snprintf(what, sizeof what, "Q(%g, %g)", t[i].a, t[i].x);
        check_rel(rs_gamma_q(t[i].a, t[i].x), t[i].q, 1e-12, what);
        check_abs(rs_gamma_p(t[i].a, t[i].x) + rs_gamma_q(t[i].a, t[i].x), 1.0,
                  4e-16, "P + Q");
    }
}

static void test_gamma_edges(void **state)
{
    (void)state;
    assert_true(rs_gamma_p(2.0, 0.0) == 0.0);
    assert_true(rs_gamma_q(2.0, 0.0) == 1.0);
    assert_true(rs_gamma_p(2.0, INFINITY) == 1.0);
    assert_true(rs_gamma_q(2.0, INFINITY) == 0.0);
    /* large a: Q(a, a) -> 1/2 from below (mpmath) */
    check_rel(rs_gamma_q(1e7, 1e7), 0.4999579477912763, 1e-11, "Q(1e7,1e7)");
    /* far tails stay positive, then underflow cleanly to 0 */
    double q = rs_gamma_q(0.5, 700.0);
    assert_true(q > 0.0 && q < 1e-300);
    assert_true(rs_gamma_q(0.5, 1e6) == 0.0);
    assert_true(rs_gamma_p(1000.0, 1.0) == 0.0);
    /* invalid */
    assert_true(isnan(rs_gamma_p(0.0, 1.0)));
    assert_true(isnan(rs_gamma_q(-1.0, 1.0)));
    assert_true(isnan(rs_gamma_p(1.0, -1.0)));
    assert_true(isnan(rs_gamma_q(NAN, 1.0)));
    assert_true(isnan(rs_gamma_q(1.0, NAN)));
    assert_true(isnan(rs_gamma_p(INFINITY, 1.0)));
}

/* ------------------------------------------------------------------ */
/* chi-square                                                          */

static void test_chi2_sf_known(void **state)
{
    (void)state;
    /* published critical values */
    check_rel(rs_chi2_sf(3.841458820694124, 1), 0.05, 1e-12, "sf(3.84,1)");
    check_rel(rs_chi2_sf(10.827566170662733, 1), 0.001, 1e-12, "sf(10.83,1)");
    check_rel(rs_chi2_sf(13.815510557964274, 2), 0.001, 1e-12, "sf(13.82,2)");
    check_rel(rs_chi2_sf(18.307038053275146, 10), 0.05, 1e-12, "sf(18.31,10)");
    /* df = 1..10 at x = 5 and x = 200 (mpmath) */
    static const double at5[] = {0.025347318677468264, 0.082084998623898795,
                                 0.17179714429673314, 0.28729749518364578,
                                 0.41588018699550792, 0.54381311588332952,
                                 0.65996322969428271, 0.75757613313306596,
                                 0.83430826019340755, 0.89117801891415124};
    static const double at200[] = {2.0884875837625448e-45, 3.720075976020836e-44,
                                   4.2185411071920423e-43, 3.7572767357810443e-42,
                                   2.8406228986415317e-41, 1.8976107553682284e-40,
                                   1.1477812240142598e-39, 6.3898877022382161e-39,
                                   3.3129923939095531e-38, 1.6139305336977305e-37};
    for (int df = 1; df <= 10; df++) {
        check_rel(rs_chi2_sf(5.0, df), at5[df - 1], 1e-12, "sf(5, df)");
        check_rel(rs_chi2_sf(200.0, df), at200[df - 1], 1e-12, "sf(200, df)");
        check_abs(rs_chi2_sf(5.0, df) + rs_chi2_cdf(5.0, df), 1.0, 4e-16, "sf+cdf");
        assert_true(rs_chi2_sf(0.0, df) == 1.0);
        assert_true(rs_chi2_sf(-3.0, df) == 1.0);
        assert_true(rs_chi2_cdf(0.0, df) == 0.0);
    }
    /* huge x: tiny but positive, no cancellation */
    check_rel(rs_chi2_sf(1400.0, 1), 2.1010145162642175e-306, 1e-12, "sf(1400,1)");
    assert_true(rs_chi2_sf(1e5, 3) == 0.0);
    assert_true(rs_chi2_sf(INFINITY, 3) == 0.0);
    /* invalid */
    assert_true(isnan(rs_chi2_sf(1.0, 0.0)));
    assert_true(isnan(rs_chi2_sf(1.0, -2.0)));
    assert_true(isnan(rs_chi2_sf(NAN, 2.0)));
    assert_true(isnan(rs_chi2_cdf(1.0, NAN)));
}

static void test_chi2_quantile(void **state)
{
    (void)state;
    check_rel(rs_chi2_isf(0.001, 1), 10.827566170662732, 1e-13, "isf(.001,1)");
    check_rel(rs_chi2_isf(0.001, 2), 13.815510557964274, 1e-13, "isf(.001,2)");
    check_rel(rs_chi2_isf(0.05, 1), 3.841458820694126, 1e-13, "isf(.05,1)");
    check_rel(rs_chi2_isf(0.05, 10), 18.307038053275147, 1e-13, "isf(.05,10)");
    check_rel(rs_chi2_isf(1e-10, 3), 49.542155927523667, 1e-13, "isf(1e-10,3)");
    check_rel(rs_chi2_quantile(0.999, 1), 10.827566170662732, 1e-12, "q(.999,1)");
    check_rel(rs_chi2_quantile(0.2, 3), 1.0051740130523493, 1e-13, "q(.2,3)");
    check_rel(rs_chi2_quantile(1e-8, 1), 1.5707963267948967e-16, 1e-12, "q(1e-8,1)");
    check_rel(rs_chi2_quantile(0.999, 100), 149.44925277903871, 1e-13, "q(.999,100)");
    /* round trips */
    static const double ps[] = {1e-12, 1e-6, 0.001, 0.01, 0.1, 0.5, 0.9, 0.99, 0.999};
    for (int df = 1; df <= 10; df++) {
        for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++) {
            double x = rs_chi2_quantile(ps[i], df);
            check_rel(rs_chi2_cdf(x, df), ps[i], 1e-12, "cdf(quantile(p))");
            double y = rs_chi2_isf(ps[i], df);
            check_rel(rs_chi2_sf(y, df), ps[i], 1e-12, "sf(isf(q))");
        }
    }
    assert_true(rs_chi2_quantile(0.0, 3) == 0.0);
    assert_true(isinf(rs_chi2_quantile(1.0, 3)));
    assert_true(rs_chi2_isf(1.0, 3) == 0.0);
    assert_true(isinf(rs_chi2_isf(0.0, 3)));
    assert_true(isnan(rs_chi2_quantile(-0.1, 3)));
    assert_true(isnan(rs_chi2_quantile(1.5, 3)));
    assert_true(isnan(rs_chi2_isf(0.5, 0.0)));
    assert_true(isnan(rs_chi2_isf(NAN, 1.0)));
}

/* ------------------------------------------------------------------ */
/* normal                                                              */

static void test_normal(void **state)
{
    (void)state;
    static const struct {
        double p, z;
    } q[] = {
        /* references for the binary doubles nearest these decimals */
        {1e-12, -7.0344838253011319}, {0.001, -3.0902323061678135},
        {0.025, -1.9599639845400542}, {0.3, -0.52440051270804082},
        {0.8, 0.84162123357291436},   {0.975, 1.9599639845400539},
        {0.999999, 4.7534243088170878},
    };
    for (size_t i = 0; i < sizeof q / sizeof q[0]; i++)
        check_rel(rs_norm_quantile(q[i].p), q[i].z, 2e-15, "norm_quantile");
    assert_true(fabs(rs_norm_quantile(0.5)) < 1e-16);
    static const struct {
        double z, p;
    } c[] = {
        {-30, 4.9067139271481871e-198}, {-8, 6.2209605742717841e-16},
        {-1.5, 0.066807201268858066},   {0, 0.5},
        {1, 0.84134474606854295},       {3.5, 0.99976737092096447},
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++)
        /* erfc(-z/sqrt 2): rounding the argument costs ~z^2 eps relative */
        check_rel(rs_norm_cdf(c[i].z), c[i].p, 1e-13, "norm_cdf");
    /* round trip deep into the lower tail */
    static const double ps[] = {1e-300, 1e-100, 1e-20, 1e-5, 0.02, 0.0243, 0.0245, 0.4};
    for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++)
        check_rel(rs_norm_cdf(rs_norm_quantile(ps[i])), ps[i], 1e-13, "cdf(quantile)");
    assert_true(isinf(rs_norm_quantile(0.0)) && rs_norm_quantile(0.0) < 0);
    assert_true(isinf(rs_norm_quantile(1.0)) && rs_norm_quantile(1.0) > 0);
    assert_true(isnan(rs_norm_quantile(-0.01)));
    assert_true(isnan(rs_norm_quantile(1.01)));
    assert_true(isnan(rs_norm_quantile(NAN)));
    assert_true(isnan(rs_norm_cdf(NAN)));
}

/* ------------------------------------------------------------------ */
/* noncentral chi-square                                               */

static void test_ncchi2(void **state)
{
    (void)state;
    static const struct {
        double x, df, lambda, sf;
    } t[] = {
        {10, 3, 5, 0.29335135222254826},
        {13.815510557964274, 2, 40, 0.99663924260548578},
        {100, 4, 50, 0.0029699707374937756},
        {3000, 10, 3000, 0.53274142878980207},
        {1, 1, 1e-3, 0.31755243826301177},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        check_rel(rs_ncchi2_sf(t[i].x, t[i].df, t[i].lambda), t[i].sf, 1e-12,
                  "ncchi2_sf");
    check_rel(rs_ncchi2_sf(5, 1, 200), 1.0, 1e-15, "ncchi2_sf far");
    for (int df = 1; df <= 10; df++)
        check_rel(rs_ncchi2_sf(7.5, df, 0.0), rs_chi2_sf(7.5, df), 1e-15, "lambda 0");
    /* increasing in lambda, for lambda up to a few thousand */
    double prev = 0.0;
    for (double lam = 0.0; lam <= 5000.0; lam += 250.0) {
        double v = rs_ncchi2_sf(4000.0, 4, lam);
        assert_true(v >= prev && v <= 1.0);
        prev = v;
    }
    assert_true(prev > 0.99);
    assert_true(rs_ncchi2_sf(0.0, 2, 10) == 1.0);
    assert_true(rs_ncchi2_sf(INFINITY, 2, 10) == 0.0);
    assert_true(isnan(rs_ncchi2_sf(1, 2, -1)));
    assert_true(isnan(rs_ncchi2_sf(1, 0, 1)));
    assert_true(isnan(rs_ncchi2_sf(1, 2, NAN)));
}

/* ------------------------------------------------------------------ */
/* goodness of fit                                                     */

static void test_chi2_gof(void **state)
{
    (void)state;
    double stat, p;
    int df;
    /* Mendel's peas, 9:3:3:1 */
    long peas[] = {315, 108, 101, 32};
    double ratio[] = {9, 3, 3, 1};
    assert_int_equal(rs_chi2_gof(peas, ratio, 4, &stat, &p, &df), RS_OK);
    check_rel(stat, 0.47002398081534774, 1e-13, "mendel stat");
    check_rel(p, 0.92542589510361597, 1e-12, "mendel p");
    assert_int_equal(df, 3);

    long c[] = {48, 52};
    double half[] = {50, 50};
    assert_int_equal(rs_chi2_gof(c, half, 2, &stat, &p, &df), RS_OK);
    check_rel(stat, 0.16, 1e-14, "48/52 stat");
    check_rel(p, 0.68915651677935166, 1e-12, "48/52 p");
    assert_int_equal(df, 1);

    /* a zero-share category (and its counts) is left out */
    long c3[] = {48, 7, 52};
    double s3[] = {1, 0, 1};
    double stat3, p3;
    assert_int_equal(rs_chi2_gof(c3, s3, 3, &stat3, &p3, &df), RS_OK);
    assert_true(stat3 == stat && p3 == p);
    assert_int_equal(df, 1);

    /* one positive category: df 0, p 1 */
    long one[] = {0, 30, 4};
    double sone[] = {0, 100, 0};
    assert_int_equal(rs_chi2_gof(one, sone, 3, &stat, &p, &df), RS_OK);
    assert_int_equal(df, 0);
    assert_true(p == 1.0 && stat == 0.0);
    /* n = 0: no evidence */
    long none[] = {0, 0};
    assert_int_equal(rs_chi2_gof(none, half, 2, &stat, &p, &df), RS_OK);
    assert_true(p == 1.0);
    /* NULL outputs allowed */
    assert_int_equal(rs_chi2_gof(c, half, 2, NULL, NULL, NULL), RS_OK);

    /* invalid arguments */
    long neg[] = {-1, 5};
    double bad1[] = {-1, 2}, bad2[] = {0, 0}, bad3[] = {NAN, 1}, bad4[] = {INFINITY, 1};
    assert_true(rs_chi2_gof(NULL, half, 2, &stat, &p, &df) < 0);
    assert_true(rs_chi2_gof(c, NULL, 2, &stat, &p, &df) < 0);
    assert_true(rs_chi2_gof(c, half, 0, &stat, &p, &df) < 0);
    assert_true(rs_chi2_gof(neg, half, 2, &stat, &p, &df) < 0);
    assert_true(rs_chi2_gof(c, bad1, 2, &stat, &p, &df) < 0);
    assert_true(rs_chi2_gof(c, bad2, 2, &stat, &p, &df) < 0);
    assert_true(rs_chi2_gof(c, bad3, 2, &stat, &p, &df) < 0);
    assert_true(rs_chi2_gof(c, bad4, 2, &stat, &p, &df) < 0);
}

/* Exact two-sided binomial p-value straight from the definition. */
static double brute_binom(long x0, long n, double p)
{
    double lp0 = lgamma(n + 1.0) - lgamma(x0 + 1.0) - lgamma(n - x0 + 1.0) +
                 x0 * log(p) + (n - x0) * log1p(-p);
    double total = 0.0;
    for (long x = 0; x <= n; x++) {
        double lp = lgamma(n + 1.0) - lgamma(x + 1.0) - lgamma(n - x + 1.0) +
                    x * log(p) + (n - x) * log1p(-p);
        if (lp <= lp0 + 1e-7)
            total += exp(lp);
    }
    return fmin(1.0, total);
}

static void test_exact_binomial(void **state)
{
    (void)state;
    double p;
    /* exact rational references */
    static const struct {
        long x, n;
        double s0, s1, p;
    } t[] = {
        {3, 10, 3, 7, 1.0},
        {0, 10, 3, 7, 0.0388396033},
        {10, 10, 3, 7, 5.9049e-06},
        {5, 10, 1, 1, 1.0},
        {1, 20, 1, 1, 4.00543212890625e-05},
        {280, 1000, 3, 7, 0.17836385237631908},
        {330, 1000, 3, 7, 0.04170835251950983},
        {2, 100, 1, 99, 0.26423802107704375},
        {7, 100, 1, 99, 7.108366137124742e-05},
        {0, 1, 1, 1, 1.0},
        {50500, 100000, 1, 1, 0.0015823598788515956},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        long obs[] = {t[i].x, t[i].n - t[i].x};
        double sh[] = {t[i].s0, t[i].s1};
        assert_int_equal(rs_exact_multinomial(obs, sh, 2, &p), RS_OK);
        check_rel(p, t[i].p, 1e-10, "exact binomial");
        /* category order does not matter */
        long obs2[] = {obs[1], obs[0]};
        double sh2[] = {sh[1], sh[0]};
        assert_int_equal(rs_exact_multinomial(obs2, sh2, 2, &p), RS_OK);
        check_rel(p, t[i].p, 1e-10, "exact binomial swapped");
    }
    /* every outcome for small n against the definition */
    static const double shares[] = {0.5, 0.3, 0.1, 0.01, 0.77};
    for (size_t s = 0; s < sizeof shares / sizeof shares[0]; s++) {
        for (long n = 1; n <= 30; n++) {
            for (long x = 0; x <= n; x++) {
                long obs[] = {x, n - x};
                double sh[] = {shares[s], 1.0 - shares[s]};
                assert_int_equal(rs_exact_multinomial(obs, sh, 2, &p), RS_OK);
                check_rel(p, brute_binom(x, n, shares[s]), 1e-9, "binomial vs brute");
            }
        }
    }
    /* big n: fast and sane */
    long big[] = {5005000, 4995000};
    double half[] = {1, 1};
    assert_int_equal(rs_exact_multinomial(big, half, 2, &p), RS_OK);
    assert_true(p > 0.0015 && p < 0.0016);
    /* binomial log-pmf */
    check_abs(rs_binom_logpmf(3, 10, 0.3), log(0.26682793199999998), 1e-14, "logpmf");
    assert_true(isinf(rs_binom_logpmf(11, 10, 0.3)));
    assert_true(rs_binom_logpmf(0, 10, 0.0) == 0.0);
    assert_true(isnan(rs_binom_logpmf(1, 10, 1.5)));
}

/* Exact multinomial p-value over 3 categories from the definition. */
static double brute_multi3(const long *o, const double *s)
{
    long n = o[0] + o[1] + o[2];
    double lf = lgamma(n + 1.0), l0 = lf;
    for (int i = 0; i < 3; i++)
        l0 += o[i] * log(s[i]) - lgamma(o[i] + 1.0);
    double total = 0.0;
    for (long a = 0; a <= n; a++) {
        for (long b = 0; a + b <= n; b++) {
            long c = n - a - b;
            double l = lf + a * log(s[0]) - lgamma(a + 1.0) + b * log(s[1]) -
                       lgamma(b + 1.0) + c * log(s[2]) - lgamma(c + 1.0);
            if (l <= l0 + 1e-7)
                total += exp(l);
        }
    }
    return fmin(1.0, total);
}

static void test_exact_multinomial(void **state)
{
    (void)state;
    double p;
    static const struct {
        int k;
        long o[4];
        double s[4];
        double p;
    } t[] = {
        {3, {4, 4, 2}, {5, 3, 2}, 0.7732},
        {3, {1, 1, 8}, {5, 3, 2}, 8.38313e-05},
        {3, {10, 0, 0}, {5, 3, 2}, 0.0057567825},
        {3, {8, 2, 2}, {1, 1, 1}, 0.07043303019526156},
        {3, {4, 4, 4}, {1, 1, 1}, 1.0},
        {4, {3, 0, 1, 6}, {1, 2, 3, 4}, 0.0347886976},
        {3, {0, 0, 5}, {1, 1, 1}, 0.012345679012345678},
        {4, {2, 7, 1, 0}, {1, 1, 1, 1}, 0.0151214599609375},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        assert_int_equal(rs_exact_multinomial(t[i].o, t[i].s, t[i].k, &p), RS_OK);
        check_rel(p, t[i].p, 1e-10, "exact multinomial");
    }
    /* zero-share categories are dropped: {8, x, 2, 2} vs {1, 0, 1, 1} */
    long o5[] = {8, 9, 2, 2};
    double s5[] = {1, 0, 1, 1};
    assert_int_equal(rs_exact_multinomial(o5, s5, 4, &p), RS_OK);
    check_rel(p, 0.07043303019526156, 1e-10, "exact with zero share");

    /* random small cases against the definition */
    rs_rng rng;
    rs_rng_seed(&rng, 7);
    for (int rep = 0; rep < 40; rep++) {
        double s[3];
        long o[3];
        for (int i = 0; i < 3; i++)
            s[i] = 0.05 + rs_rng_double(&rng);
        double tot = s[0] + s[1] + s[2];
        for (int i = 0; i < 3; i++)
            s[i] /= tot;
        for (int i = 0; i < 3; i++)
            o[i] = (long)(rs_rng_next(&rng) % 9);
        assert_int_equal(rs_exact_multinomial(o, s, 3, &p), RS_OK);
        check_rel(p, brute_multi3(o, s), 1e-9, "multinomial vs brute");
    }
    /* the largest feasible three-way test stays quick */
    long mid[] = {480, 470, 462};
    double eq3[] = {1, 1, 1};
    assert_int_equal(rs_exact_multinomial(mid, eq3, 3, &p), RS_OK);
    assert_true(p > 0.8 && p < 0.9);

    /* many categories, few requests: the enumeration is O(1) per outcome */
    {
        enum { M = 1000 };
        static long om[M];
        static double sm[M];
        for (int i = 0; i < M; i++) {
            om[i] = 0;
            sm[i] = 1.0;
        }
        om[3] = 2; /* both requests to the same version: P = 1/M */
        assert_int_equal(rs_exact_multinomial(om, sm, M, &p), RS_OK);
        check_rel(p, 1.0 / M, 1e-9, "m=1000 n=2");
        om[3] = 1;
        om[7] = 1; /* two different versions: every outcome is as likely or less */
        assert_int_equal(rs_exact_multinomial(om, sm, M, &p), RS_OK);
        check_rel(p, 1.0, 1e-9, "m=1000 n=2 distinct");
    }

    /* too many outcomes: distinct code */
    long big3[] = {2000, 2000, 2000};
    assert_int_equal(rs_exact_multinomial(big3, eq3, 3, &p), RS_ETOOBIG);
    long big6[] = {40, 40, 40, 40, 40, 40};
    double eq6[] = {1, 1, 1, 1, 1, 1};
    assert_int_equal(rs_exact_multinomial(big6, eq6, 6, &p), RS_ETOOBIG);
    /* trivial cases */
    long z3[] = {0, 0, 0};
    assert_int_equal(rs_exact_multinomial(z3, eq3, 3, &p), RS_OK);
    assert_true(p == 1.0);
    long only[] = {0, 17};
    double sonly[] = {0, 1};
    assert_int_equal(rs_exact_multinomial(only, sonly, 2, &p), RS_OK);
    assert_true(p == 1.0);
    /* invalid */
    assert_true(rs_exact_multinomial(mid, eq3, 3, NULL) < 0);
    assert_true(rs_exact_multinomial(NULL, eq3, 3, &p) < 0);
    double negs[] = {1, -1, 1};
    assert_true(rs_exact_multinomial(mid, negs, 3, &p) < 0);
    assert_true(rs_exact_multinomial(mid, eq3, -3, &p) < 0);
}

static void test_gof_method_choice(void **state)
{
    (void)state;
    double p, pc;
    int method = 0;
    double half[] = {1, 1};
    long small[] = {1, 7}; /* expected 4 < 5 -> exact */
    assert_int_equal(rs_gof(small, half, 2, &p, &method), RS_OK);
    assert_int_equal(method, RS_METHOD_EXACT);
    check_rel(p, 0.0703125, 1e-12, "gof exact"); /* 2 * 9 / 256 */

    long large[] = {520, 480}; /* -> chi2 */
    assert_int_equal(rs_gof(large, half, 2, &p, &method), RS_OK);
    assert_int_equal(method, RS_METHOD_CHI2);
    assert_int_equal(rs_chi2_gof(large, half, 2, NULL, &pc, NULL), RS_OK);
    assert_true(p == pc);

    /* small expected count but exact infeasible -> chi2 fallback */
    double skew[] = {1000, 1, 1, 1, 1, 1};
    long sk[] = {1990, 2, 3, 1, 2, 2};
    assert_int_equal(rs_gof(sk, skew, 6, &p, &method), RS_OK);
    assert_int_equal(method, RS_METHOD_CHI2);
    assert_true(p > 0.0 && p <= 1.0);

    /* the zero-share leak is not the GOF test's business */
    long leak[] = {10, 3, 9};
    double s0[] = {1, 0, 1};
    assert_int_equal(rs_gof(leak, s0, 3, &p, NULL), RS_OK);
    assert_true(p > 0.5);

    assert_true(rs_gof(small, half, 2, NULL, &method) < 0);
    assert_true(rs_gof(small, half, 0, &p, &method) < 0);
}

/* ------------------------------------------------------------------ */
/* Wilson                                                              */

static void test_wilson(void **state)
{
    (void)state;
    /* Newcombe (1998), Stat Med 17:857, Table II, method 3 (score) */
    static const struct {
        long s, n;
        double lo, hi;
    } t[] = {
        {81, 263, 0.2553, 0.3662},
        {15, 148, 0.0624, 0.1605},
        {0, 20, 0.0, 0.1611},
        {1, 29, 0.0061, 0.1718},
    };
    double lo, hi;
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        assert_int_equal(rs_wilson(t[i].s, t[i].n, 0.95, &lo, &hi), RS_OK);
        check_abs(lo, t[i].lo, 5e-5, "wilson lo");
        check_abs(hi, t[i].hi, 5e-5, "wilson hi");
    }
    assert_int_equal(rs_wilson(0, 20, 0.95, &lo, &hi), RS_OK);
    assert_true(lo == 0.0);
    assert_int_equal(rs_wilson(29, 29, 0.95, &lo, &hi), RS_OK);
    assert_true(hi == 1.0 && lo > 0.85);
    assert_int_equal(rs_wilson(0, 0, 0.95, &lo, &hi), RS_OK);
    assert_true(lo == 0.0 && hi == 1.0);
    /* higher confidence, wider interval; symmetric about 1/2 */
    double lo99, hi99;
    assert_int_equal(rs_wilson(500, 1000, 0.99, &lo99, &hi99), RS_OK);
    assert_int_equal(rs_wilson(500, 1000, 0.95, &lo, &hi), RS_OK);
    assert_true(lo99 < lo && hi99 > hi);
    check_abs(lo + hi, 1.0, 1e-15, "symmetry");
    /* invalid */
    assert_true(rs_wilson(5, 4, 0.95, &lo, &hi) < 0);
    assert_true(rs_wilson(-1, 4, 0.95, &lo, &hi) < 0);
    assert_true(rs_wilson(1, -4, 0.95, &lo, &hi) < 0);
    assert_true(rs_wilson(1, 4, 1.0, &lo, &hi) < 0);
    assert_true(rs_wilson(1, 4, 0.0, &lo, &hi) < 0);
    assert_true(rs_wilson(1, 4, NAN, &lo, &hi) < 0);
    assert_true(rs_wilson(1, 4, 0.95, NULL, &hi) < 0);
}

/* ------------------------------------------------------------------ */
/* power and planning                                                  */

static void test_plan(void **state)
{
    (void)state;
    double half[] = {50, 50}, eq3[] = {50, 50, 50}, zero_mid[] = {50, 0, 50};
    double four[] = {10, 20, 30, 40};

    /* effect sizes */
    check_rel(rs_gof_w2(half, 2, 0.05, RS_DEV_PAIR), 0.01, 1e-14, "w2 pair 2");
    check_rel(rs_gof_w2(eq3, 3, 0.05, RS_DEV_PAIR), 0.015, 1e-14, "w2 pair 3");
    check_rel(rs_gof_w2(eq3, 3, 0.05, RS_DEV_ONE_VS_REST), 0.01125, 1e-14, "w2 1vr 3");
    check_rel(rs_gof_w2(half, 2, 0.05, RS_DEV_ONE_VS_REST), 0.01, 1e-14, "w2 1vr 2");

    /* sample sizes: sanity ranges, and the exact values from mpmath */
    long n2 = rs_plan_n(half, 2, 0.05, 0.001, 0.99);
    assert_true(n2 >= 3100 && n2 <= 3300);
    assert_int_equal(n2, 3155);
    long n3 = rs_plan_n(eq3, 3, 0.05, 0.001, 0.99);
    assert_true(n3 >= 2300 && n3 <= 2700);
    assert_int_equal(n3, 2350);
    assert_int_equal(rs_plan_n(zero_mid, 3, 0.05, 0.001, 0.99), 3155);
    assert_int_equal(rs_plan_n(four, 4, 0.05, 0.001, 0.99), 2602);
    assert_int_equal(
        rs_plan_n_w2(rs_gof_w2(eq3, 3, 0.05, RS_DEV_ONE_VS_REST), 2, 0.001, 0.99), 3134);

    /* the returned n is the smallest with enough power */
    assert_true(rs_gof_power(half, 2, 0.05, n2, 0.001) >= 0.99);
    assert_true(rs_gof_power(half, 2, 0.05, n2 - 1, 0.001) < 0.99);
    check_rel(rs_gof_power(half, 2, 0.05, 3200, 0.001), 0.99101722832639158, 1e-11,
              "power at 3200");
    assert_true(rs_gof_power(half, 2, 0.05, 0, 0.001) <= 0.001 + 1e-12);

    /* monotonicity */
    assert_true(rs_plan_n(half, 2, 0.03, 0.001, 0.99) > n2);
    assert_true(rs_plan_n(half, 2, 0.10, 0.001, 0.99) < n2);
    assert_true(rs_plan_n(half, 2, 0.05, 0.001, 0.999) > n2);
    assert_true(rs_plan_n(half, 2, 0.05, 0.001, 0.9) < n2);
    assert_true(rs_plan_n(half, 2, 0.05, 1e-6, 0.99) > n2);
    long n_small = rs_plan_n(half, 2, 0.001, 0.001, 0.99);
    assert_true(n_small > 7000000 && n_small < 9000000);

    /* one positive share: the leak plan */
    double single[] = {0, 100, 0};
    assert_int_equal(rs_plan_n(single, 3, 0.05, 0.001, 0.99), 90);
    check_rel(rs_gof_power(single, 3, 0.05, 90, 0.001), 1.0 - pow(0.95, 90), 1e-12,
              "leak power");
    assert_int_equal(rs_plan_leak_n(0.05, 0.99), 90); /* 0.95^90 <= 0.01 < 0.95^89 */
    assert_int_equal(rs_plan_leak_n(0.01, 0.99), 459);
    assert_int_equal(rs_plan_leak_n(1.0, 0.99), 1);
    assert_int_equal(rs_plan_leak_n(0.5, 0.7), 2);
    assert_true(rs_plan_leak_n(0.001, 0.999) > rs_plan_leak_n(0.001, 0.99));

    /* impossible deviation: no share as large as delta */
    double ten[] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
    assert_true(rs_plan_n(ten, 10, 0.15, 0.001, 0.99) < 0);
    assert_true(isnan(rs_gof_power(ten, 10, 0.15, 100, 0.001)));
    assert_true(isnan(rs_gof_w2(ten, 10, 0.15, RS_DEV_PAIR)));
    assert_true(rs_plan_n(ten, 10, 0.05, 0.001, 0.99) > 0);

    /* invalid */
    assert_true(rs_plan_n(half, 2, 0.0, 0.001, 0.99) < 0);
    assert_true(rs_plan_n(half, 2, 1.0, 0.001, 0.99) < 0);
    assert_true(rs_plan_n(half, 2, 0.05, 0.0, 0.99) < 0);
    assert_true(rs_plan_n(half, 2, 0.05, 0.001, 1.0) < 0);
    assert_true(rs_plan_n(NULL, 2, 0.05, 0.001, 0.99) < 0);
    assert_true(rs_plan_n(half, 0, 0.05, 0.001, 0.99) < 0);
    assert_true(rs_plan_leak_n(0.0, 0.99) < 0);
    assert_true(rs_plan_leak_n(0.1, 1.0) < 0);
    assert_true(rs_plan_n_w2(0.0, 1, 0.001, 0.99) < 0);
    assert_true(rs_plan_n_w2(0.01, 0, 0.001, 0.99) < 0);
    assert_true(isnan(rs_gof_power(half, 2, 0.05, -1, 0.001)));
    assert_true(isnan(rs_power_w2(0.01, 0, 100, 0.001)));
    assert_true(isnan(rs_gof_w2(half, 2, 0.05, 99)));
    assert_true(isnan(rs_gof_w2(single, 3, 0.05, RS_DEV_PAIR)));
}

/* ------------------------------------------------------------------ */
/* PRNG and Monte Carlo                                                */

static void test_rng(void **state)
{
    (void)state;
    rs_rng a, b;
    rs_rng_seed(&a, 0);
    /* splitmix64 from 0: published first outputs */
    assert_true(a.s[0] == UINT64_C(0xe220a8397b1dcdaf));
    assert_true(a.s[1] == UINT64_C(0x6e789e6aa1b965f4));
    assert_true(a.s[2] == UINT64_C(0x06c45d188009454f));
    assert_true(a.s[3] == UINT64_C(0xf88bb8a8724c81ec));
    assert_true(rs_rng_next(&a) == UINT64_C(0x99ec5f36cb75f2b4));
    assert_true(rs_rng_next(&a) == UINT64_C(0xbf6e1f784956452a));
    assert_true(rs_rng_next(&a) == UINT64_C(0x1a5f849d4933e6e0));

    rs_rng_seed(&a, 42);
    rs_rng_seed(&b, 42);
    for (int i = 0; i < 100; i++)
        assert_true(rs_rng_next(&a) == rs_rng_next(&b));
    rs_rng_seed(&b, 43);
    assert_true(rs_rng_next(&a) != rs_rng_next(&b));

    double sum = 0.0;
    for (int i = 0; i < 100000; i++) {
        double u = rs_rng_double(&a);
        assert_true(u >= 0.0 && u < 1.0);
        sum += u;
    }
    assert_true(fabs(sum / 100000 - 0.5) < 0.005);
}

/* n draws from the categorical distribution `cum` (cumulative shares). */
static void draw(rs_rng *rng, const double *cum, int k, long n, long *out)
{
    for (int i = 0; i < k; i++)
        out[i] = 0;
    for (long j = 0; j < n; j++) {
        double u = rs_rng_double(rng);
        int i = 0;
        while (i < k - 1 && u >= cum[i])
            i++;
        out[i]++;
    }
}

static void test_monte_carlo_size(void **state)
{
    (void)state;
    rs_rng rng;
    rs_rng_seed(&rng, 20240501);
    double half[] = {0.5, 0.5}, cum[] = {0.5, 1.0};
    long obs[2];
    int reject = 0;
    const int reps = 2000;
    for (int r = 0; r < reps; r++) {
        double p;
        draw(&rng, cum, 2, 1000, obs);
        assert_int_equal(rs_chi2_gof(obs, half, 2, NULL, &p, NULL), RS_OK);
        if (p < 0.01)
            reject++;
    }
    double rate = (double)reject / reps;
    /* expected 0.01; binomial sd over 2000 runs is 0.0022 */
    if (!(rate > 0.003 && rate < 0.02)) {
        print_error("false rejection rate %.4f outside [0.003, 0.02]\n", rate);
        fail();
    }
}

static void test_monte_carlo_power(void **state)
{
    (void)state;
    rs_rng rng;
    rs_rng_seed(&rng, 99);
    long obs[3];

    /* 50/50 configured, 55/45 served, at the planned n */
    double half[] = {0.5, 0.5}, cum2[] = {0.55, 1.0};
    long n2 = rs_plan_n(half, 2, 0.05, 0.001, 0.99);
    int hit = 0, reps = 400;
    for (int r = 0; r < reps; r++) {
        double p;
        draw(&rng, cum2, 2, n2, obs);
        assert_int_equal(rs_gof(obs, half, 2, &p, NULL), RS_OK);
        hit += p < 0.001;
    }
    double rate = (double)hit / reps;
    if (!(rate >= 0.97)) {
        print_error("2-way detection %.4f < 0.97 at n=%ld\n", rate, n2);
        fail();
    }

    /* three equal shares, 5 points moved from one version to another */
    double eq3[] = {1, 1, 1};
    double cum3[] = {1.0 / 3 + 0.05, 2.0 / 3, 1.0};
    long n3 = rs_plan_n(eq3, 3, 0.05, 0.001, 0.99);
    hit = 0;
    reps = 300;
    for (int r = 0; r < reps; r++) {
        double p;
        draw(&rng, cum3, 3, n3, obs);
        assert_int_equal(rs_gof(obs, eq3, 3, &p, NULL), RS_OK);
        hit += p < 0.001;
    }
    rate = (double)hit / reps;
    if (!(rate >= 0.97)) {
        print_error("3-way detection %.4f < 0.97 at n=%ld\n", rate, n3);
        fail();
    }
}

/* ------------------------------------------------------------------ */
/* two samples: binomial tails and bounds                              */

static void test_binom_tails(void **state)
{
    (void)state;
    static const struct {
        long x, n;
        double p, cdf, sf_next; /* P(X <= x), P(X >= x + 1) */
    } t[] = {
        {3, 10, 0.3, 0.6496107184, 0.3503892816},
        {10, 1000, 0.005, 0.98653099067106831, 0.013469009328931743},
        {30, 1000, 0.01, 0.999999935800714, 6.419928603137664e-08},
        {2, 3864, 0.005, 8.096189347968986e-07, 0.9999991903810652},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        check_rel(rs_binom_cdf(t[i].x, t[i].n, t[i].p), t[i].cdf, 1e-12, "binom cdf");
        check_rel(rs_binom_sf(t[i].x + 1, t[i].n, t[i].p), t[i].sf_next, 1e-12, "binom sf");
    }
    /* far tails keep their relative precision */
    check_rel(rs_binom_sf(60, 1000, 0.01), 1.8438279840122010917e-27, 1e-12, "sf far");
    check_rel(rs_binom_sf(150, 3000, 0.01), 6.5763744221354353221e-56, 1e-12, "sf far 2");
    check_rel(rs_binom_cdf(0, 1000, 0.05), 5.2918227477450476383e-23, 1e-12, "cdf far");
    check_rel(rs_binom_cdf(5, 2000, 0.05), 3.1492254882405458635e-37, 1e-12, "cdf far 2");
    /* edges */
    assert_true(rs_binom_cdf(-1, 10, 0.3) == 0.0);
    assert_true(rs_binom_cdf(10, 10, 0.3) == 1.0);
    assert_true(rs_binom_sf(0, 10, 0.3) == 1.0);
    assert_true(rs_binom_sf(11, 10, 0.3) == 0.0);
    assert_true(rs_binom_cdf(0, 10, 0.0) == 1.0);
    assert_true(rs_binom_sf(1, 10, 0.0) == 0.0);
    assert_true(rs_binom_sf(10, 10, 1.0) == 1.0);
    assert_true(isnan(rs_binom_cdf(1, -1, 0.5)));
    assert_true(isnan(rs_binom_sf(1, 10, 1.5)));
    assert_true(isnan(rs_binom_sf(1, 10, NAN)));
    /* cdf(x) + sf(x + 1) = 1 across the range */
    for (long x = 0; x < 200; x += 7)
        check_abs(rs_binom_cdf(x, 200, 0.3) + rs_binom_sf(x + 1, 200, 0.3), 1.0, 1e-14, "cdf + sf");
}

static void test_binom_bounds(void **state)
{
    (void)state;
    static const struct {
        long x, n;
        double gamma, lo, hi;
    } t[] = {
        {5, 100, 0.025, 0.016431879182052159, 0.11283491110546277},
        {0, 100, 0.025, 0.0, 0.036216692645176419},
        {100, 100, 0.025, 0.96378330735482358, 1.0},
        {7, 3864, 0.0025, 0.00046376512323938681, 0.0047105088302740471},
        {56, 1288, 0.00075, 0.027561418812106341, 0.064523316566403026},
        {1, 10, 0.05, 0.0051161968918237011, 0.39416330243650478},
        {19, 3864, 0.0025, 0.0023384118671459865, 0.009000542284631941},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        double lo = -1, hi = -1;
        assert_int_equal(rs_binom_bounds(t[i].x, t[i].n, t[i].gamma, &lo, &hi), RS_OK);
        if (t[i].lo == 0.0)
            assert_true(lo == 0.0);
        else
            check_rel(lo, t[i].lo, 1e-12, "CP lower");
        check_rel(hi, t[i].hi, 1e-12, "CP upper");
    }
    double lo, hi;
    assert_int_equal(rs_binom_bounds(1, 0, 0.05, &lo, &hi), RS_EINVAL);
    assert_int_equal(rs_binom_bounds(11, 10, 0.05, &lo, &hi), RS_EINVAL);
    assert_int_equal(rs_binom_bounds(1, 10, 0.0, &lo, &hi), RS_EINVAL);
    assert_int_equal(rs_binom_bounds(1, 10, 0.05, NULL, &hi), RS_EINVAL);
}

/* ------------------------------------------------------------------ */
/* two samples: Fisher, exceedance, order statistics                   */

static void test_fisher_greater(void **state)
{
    (void)state;
    static const struct {
        long xb, nb, xc, nc;
        double p;
    } t[] = {
        {1, 4, 3, 4, 17.0 / 70.0}, /* Fisher's tea tasting, one-sided */
        {1, 20, 7, 20, 0.021798021798021798022},
        {0, 1000, 10, 1000, 0.00095473258267080745004},
        {5, 3864, 40, 3864, 3.6435672732285832712e-8},
        {20, 2576, 45, 2576, 0.0012341654755648129859},
        {0, 1288, 56, 1288, 7.5326757532053749651e-18},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        check_rel(rs_fisher_greater(t[i].xb, t[i].nb, t[i].xc, t[i].nc), t[i].p, 1e-12, "fisher");
    /* no failure, no evidence; fewer canary failures: p = 1 */
    assert_true(rs_fisher_greater(0, 1000, 0, 1000) == 1.0);
    assert_true(rs_fisher_greater(3, 500, 0, 700) == 1.0);
    assert_true(rs_fisher_greater(0, 0, 5, 10) == 1.0);
    /* p falls as the canary fails more */
    for (long xc = 1; xc < 30; xc++)
        assert_true(rs_fisher_greater(2, 500, xc, 500) <= rs_fisher_greater(2, 500, xc - 1, 500));
    assert_true(isnan(rs_fisher_greater(5, 4, 0, 4)));
    assert_true(isnan(rs_fisher_greater(-1, 4, 0, 4)));
    /* the hypergeometric itself */
    check_rel(exp(rs_hyper_logpmf(3, 8, 4, 4)), 16.0 / 70.0, 1e-13, "hyper pmf");
    assert_true(rs_hyper_logpmf(5, 8, 4, 4) == -INFINITY);
    assert_true(rs_hyper_sf(0, 8, 4, 4) == 1.0);
    assert_true(isnan(rs_hyper_sf(1, 8, 9, 4)));
}

static void test_exceedance(void **state)
{
    (void)state;
    static const struct {
        long c, nc, r, nb;
        double p;
    } t[] = {
        {3, 10, 1, 1, 8.0 / 11.0}, /* the rank of one value among 11 is uniform */
        {5, 20, 10, 20, 0.97581396747136457926},
        {4, 30, 30, 30, 0.056199821587867975022},
        {12, 100, 99, 100, 0.0012697487279323505594},
        {30, 200, 100, 200, 0.99999999999999482768},
        {30, 1288, 1276, 1288, 0.0037130307636281855876},
        {1288, 1288, 644, 1288, 5.0860788248995310929e-242},
        {150, 3864, 3826, 3864, 1.3362681122004731791e-17},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        check_rel(rs_exceed_sf(t[i].c, t[i].nc, t[i].r, t[i].nb), t[i].p, 1e-12, "exceedance");
    assert_true(rs_exceed_sf(0, 5, 2, 5) == 1.0);
    assert_true(isnan(rs_exceed_sf(1, 5, 0, 5)));
    assert_true(isnan(rs_exceed_sf(1, 5, 6, 5)));
    assert_true(isnan(rs_exceed_sf(6, 5, 2, 5)));
    /* the critical count is the first that rejects */
    long crit = rs_exceed_crit(1288, 1276, 1288, 1e-4);
    assert_true(crit > 0 && crit <= 1288);
    assert_true(rs_exceed_sf(crit, 1288, 1276, 1288) <= 1e-4);
    assert_true(rs_exceed_sf(crit - 1, 1288, 1276, 1288) > 1e-4);
    assert_int_equal(rs_exceed_crit(3, 1, 1, 0.01), 4); /* P(C >= 3) = 1/4 */
    assert_true(rs_exceed_crit(3, 1, 1, 0.0) < 0);
}

/* Size of the exceedance test: identical continuous samples reject at
 * about alpha (it is exact up to the discreteness of C); coarse ties and a
 * faster canary only lower it. */
static void test_exceedance_size(void **state)
{
    (void)state;
    rs_rng rng;
    rs_rng_seed(&rng, 424242);
    rs_latency_model body = {0.4, 0.5, 0, 0, 0, 0, 0, 0};
    rs_latency_model coarse = body, faster = body;
    coarse.resolution_ms = 0.1;
    faster.median_ms = 0.35;
    const int reps = 3000;
    const long n = 200;
    const double alpha = 0.05, qs[] = {0.5, 0.9, 0.99};
    int reject[3][3] = {{0}};
    for (int rep = 0; rep < reps; rep++) {
        for (int m = 0; m < 3; m++) {
            rs_sample b, c;
            rs_sample_init(&b);
            rs_sample_init(&c);
            const rs_latency_model *bm = m == 1 ? &coarse : &body;
            const rs_latency_model *cm = m == 1 ? &coarse : m == 2 ? &faster : &body;
            assert_int_equal(rs_sample_simulate(&b, &rng, (size_t)n, bm), RS_OK);
            assert_int_equal(rs_sample_simulate(&c, &rng, (size_t)n, cm), RS_OK);
            for (int k = 0; k < 3; k++) {
                long r = (long)ceil(qs[k] * (double)n);
                long above = rs_sample_count_above(&c, rs_sample_order(&b, (size_t)r));
                reject[m][k] += rs_exceed_sf(above, n, r, n) <= alpha;
            }
            rs_sample_free(&b);
            rs_sample_free(&c);
        }
    }
    for (int k = 0; k < 3; k++) {
        double same = (double)reject[0][k] / reps, ties = (double)reject[1][k] / reps;
        double fast = (double)reject[2][k] / reps;
        /* exact size at the largest attainable level <= alpha; 3 sigma */
        double lo = k == 2 ? 0.01 : 0.03;
        if (!(same <= alpha + 0.012 && same >= lo && ties <= alpha + 0.012 && fast <= same + 0.012)) {
            print_error("q=%.2f: rejection %.4f (same) %.4f (ties) %.4f (faster), alpha %.2f\n",
                        qs[k], same, ties, fast, alpha);
            fail();
        }
    }
}

static void test_order_bounds(void **state)
{
    (void)state;
    /* the 95% distribution-free interval for the median of 100 values */
    assert_int_equal(rs_order_lower(100, 0.5, 0.025), 40);
    assert_int_equal(rs_order_upper(100, 0.5, 0.025), 61);
    /* no upper bound for p99 from 100 values at 0.001: 0.99^100 > 0.001 */
    assert_int_equal(rs_order_upper(100, 0.99, 0.001), 101);
    assert_int_equal(rs_order_lower(5, 0.5, 0.01), 0); /* 0.5^5 > 0.01 */
    /* definitions, over a range of n */
    for (long n = 50; n <= 5000; n = n * 3 / 2) {
        for (int k = 0; k < 3; k++) {
            double q = k == 0 ? 0.5 : k == 1 ? 0.9 : 0.99, g = 0.001;
            long u = rs_order_upper(n, q, g), l = rs_order_lower(n, q, g);
            if (u <= n) {
                assert_true(rs_binom_sf(u, n, q) <= g);
                assert_true(rs_binom_sf(u - 1, n, q) > g);
            }
            if (l >= 1) {
                assert_true(rs_binom_cdf(l - 1, n, q) <= g);
                assert_true(l == n || rs_binom_cdf(l, n, q) > g);
            }
            assert_true(l < u);
        }
    }
    assert_true(rs_order_upper(0, 0.5, 0.01) < 0);
    assert_true(rs_order_lower(10, 1.0, 0.01) < 0);
}

static void test_twosample_power(void **state)
{
    (void)state;
    /* exact power: every table enumerated with exact Fisher p-values */
    check_rel(rs_fisher_power(30, 0.02, 30, 0.2, 0.05), 0.56237842212703462, 1e-10, "power 1");
    check_rel(rs_fisher_power(40, 0.0, 40, 0.1, 0.01), 0.099516423965551095, 1e-10, "power 2");
    check_rel(rs_fisher_power(25, 0.1, 35, 0.3, 0.001), 0.04438903933820348, 1e-10, "power 3");
    /* the test's size is at most alpha when the rates are equal */
    for (int i = 0; i < 4; i++) {
        double p0 = i == 0 ? 0.001 : i == 1 ? 0.01 : i == 2 ? 0.05 : 0.3;
        assert_true(rs_fisher_power(500, p0, 500, p0, 0.01) <= 0.01);
    }
    check_rel(rs_diff_pass_prob(60, 0.02, 60, 0.02, 0.025, 0.2), 0.99885738442736234, 1e-9, "pass 1");
    check_rel(rs_diff_pass_prob(80, 0.0, 80, 0.05, 0.01, 0.15), 0.62887977126521259, 1e-9, "pass 2");
    /* at the margin a pass happens at most 2 gamma of the time */
    assert_true(rs_diff_pass_prob(2000, 0.01, 2000, 0.02, 0.01, 0.01) <= 0.02);
    assert_true(isnan(rs_fisher_power(0, 0.1, 10, 0.1, 0.05)));
    assert_true(isnan(rs_diff_pass_prob(10, 0.1, 10, 0.1, 0.05, 0.0)));
}

/* ------------------------------------------------------------------ */
/* the sample store and the simulation helpers                         */

static int cmp_dbl(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void test_sample(void **state)
{
    (void)state;
    rs_rng rng;
    rs_rng_seed(&rng, 7);
    rs_sample s;
    rs_sample_init(&s);
    static double all[20000];
    size_t total = 0;
    /* batches of varied sizes, with ties, negatives and both zeros */
    for (int batch = 0; batch < 12; batch++) {
        double x[1500];
        size_t n = (size_t)(batch * 131 % 1500) + 1;
        for (size_t i = 0; i < n; i++) {
            double u = rs_rng_double(&rng);
            x[i] = batch % 3 == 0 ? floor(u * 10) - 3 : (u - 0.3) * 1e3;
            if (i % 97 == 0)
                x[i] = (i % 2) ? -0.0 : 0.0;
            all[total + i] = x[i];
        }
        total += n;
        assert_int_equal(rs_sample_add(&s, x, n), RS_OK);
        if (batch % 4 != 1) { /* sometimes two batches before a query */
            qsort(all, total, sizeof all[0], cmp_dbl);
            assert_int_equal(rs_sample_sort(&s), RS_OK);
            assert_true(s.n == total);
            for (size_t i = 0; i < total; i++)
                assert_true(s.v[i] == all[i]);
            for (int k = 0; k < 20; k++) {
                double t = all[(size_t)(rs_rng_double(&rng) * (double)total)];
                long above = 0, atl = 0;
                for (size_t i = 0; i < total; i++) {
                    above += all[i] > t;
                    atl += all[i] >= t;
                }
                assert_int_equal(rs_sample_count_above(&s, t), above);
                assert_int_equal(rs_sample_count_at_least(&s, t), atl);
            }
            assert_true(rs_sample_order(&s, 1) == all[0]);
            assert_true(rs_sample_order(&s, total) == all[total - 1]);
        }
    }
    assert_true(isnan(rs_sample_order(&s, 0)));
    assert_true(isnan(rs_sample_order(&s, total + 1)));
    double bad[2] = {1.0, NAN};
    size_t before = s.n;
    assert_int_equal(rs_sample_add(&s, bad, 2), RS_EINVAL);
    assert_true(s.n == before);
    assert_true(rs_sample_count_above(&s, NAN) < 0);
    rs_sample_free(&s);
    assert_true(s.v == NULL && s.n == 0);
}

static void test_rng_binomial(void **state)
{
    (void)state;
    rs_rng rng;
    rs_rng_seed(&rng, 11);
    /* chi-square goodness of fit of 20000 draws against the exact pmf */
    static const struct {
        long n;
        double p;
    } t[] = {{1288, 0.005}, {1288, 0.05}, {40, 0.7}, {100000, 0.3}};
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        long n = t[i].n;
        double p = t[i].p, mean = (double)n * p, sd = sqrt(mean * (1 - p));
        long lo = (long)fmax(0, floor(mean - 4 * sd)), hi = (long)fmin((double)n, ceil(mean + 4 * sd));
        long cells = hi - lo + 1, counts[4096] = {0};
        const int draws = 20000;
        assert_true(cells + 2 <= 4096);
        for (int d = 0; d < draws; d++) {
            long x = rs_rng_binomial(&rng, n, p);
            assert_true(x >= 0 && x <= n);
            counts[x < lo ? 0 : x > hi ? cells + 1 : x - lo + 1]++;
        }
        /* cells merged until each expects >= 5 */
        double stat = 0, exp_acc = 0, obs_acc = 0;
        int df = -1;
        for (long c = 0; c < cells + 2; c++) {
            double e = c == 0 ? rs_binom_cdf(lo - 1, n, p)
                     : c == cells + 1 ? rs_binom_sf(hi + 1, n, p)
                     : exp(rs_binom_logpmf(lo + c - 1, n, p));
            exp_acc += e * draws;
            obs_acc += (double)counts[c];
            if (exp_acc >= 5 || c == cells + 1) {
                stat += (obs_acc - exp_acc) * (obs_acc - exp_acc) / fmax(exp_acc, 1e-300);
                df++;
                exp_acc = obs_acc = 0;
            }
        }
        double pv = rs_chi2_sf(stat, df);
        if (!(pv > 1e-4)) {
            print_error("binomial(%ld, %g): chi2 %.1f df %d p %.2g\n", n, p, stat, df, pv);
            fail();
        }
    }
    assert_int_equal(rs_rng_binomial(&rng, 10, 0.0), 0);
    assert_int_equal(rs_rng_binomial(&rng, 10, 1.0), 10);
    assert_true(rs_rng_binomial(&rng, -1, 0.5) < 0);
    assert_true(rs_rng_binomial(&rng, 10, 1.5) < 0);
    /* normal: mean and variance */
    double s1 = 0, s2 = 0;
    for (int i = 0; i < 100000; i++) {
        double z = rs_rng_normal(&rng);
        s1 += z;
        s2 += z * z;
    }
    check_abs(s1 / 100000, 0.0, 0.015, "normal mean");
    check_abs(s2 / 100000, 1.0, 0.02, "normal variance");
    /* the latency model: shift, coarse timer, second mode */
    rs_latency_model m = {1.0, 0.0, 2.0, 0.25, 10.0, 0, 0, 0.5};
    int tail = 0;
    for (int i = 0; i < 4000; i++) {
        double x = rs_latency_draw(&rng, &m);
        assert_true(x == 3.0 || x == 13.0);
        tail += x == 13.0;
    }
    check_abs(tail / 4000.0, 0.25, 0.03, "second mode share");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gamma_reference),
        cmocka_unit_test(test_gamma_edges),
        cmocka_unit_test(test_chi2_sf_known),
        cmocka_unit_test(test_chi2_quantile),
        cmocka_unit_test(test_normal),
        cmocka_unit_test(test_ncchi2),
        cmocka_unit_test(test_chi2_gof),
        cmocka_unit_test(test_exact_binomial),
        cmocka_unit_test(test_exact_multinomial),
        cmocka_unit_test(test_gof_method_choice),
        cmocka_unit_test(test_wilson),
        cmocka_unit_test(test_plan),
        cmocka_unit_test(test_rng),
        cmocka_unit_test(test_monte_carlo_size),
        cmocka_unit_test(test_monte_carlo_power),
        cmocka_unit_test(test_binom_tails),
        cmocka_unit_test(test_binom_bounds),
        cmocka_unit_test(test_fisher_greater),
        cmocka_unit_test(test_exceedance),
        cmocka_unit_test(test_exceedance_size),
        cmocka_unit_test(test_order_bounds),
        cmocka_unit_test(test_twosample_power),
        cmocka_unit_test(test_sample),
        cmocka_unit_test(test_rng_binomial),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
