/*
 * rollout/stats.h — statistics core (Lua-free C11, libm only).
 *
 * Used to decide whether an observed traffic split matches the configured
 * weights, with a stated false-alarm rate, and to plan how many requests a
 * verification needs.  See "Verdicts you can trust" in README.md.
 *
 * Conventions
 *   - Functions returning int return RS_OK (0) on success and a negative
 *     rs_status on failure; output pointers are written only on success.
 *   - Functions returning double return NaN on invalid arguments.
 *   - Functions returning long (planning) return a negative rs_status on
 *     invalid arguments.
 *   - Nothing here aborts, prints, or keeps global state of its own (the
 *     PRNG state is caller-owned).  lgamma() is used, which in glibc also
 *     stores the sign in the global `signgam`: harmless, but not strictly
 *     data-race-free if threads call it concurrently.
 *
 * "Shares" arrays hold non-negative finite weights, not necessarily
 * normalized (they are divided by their sum); at least one must be > 0.
 * Categories whose share is 0 are EXCLUDED from the goodness-of-fit tests,
 * and so are the counts observed in them: traffic reaching a zero-weight
 * version is a separate, automatic failure decided by the caller.
 */
#ifndef ROLLOUT_STATS_H
#define ROLLOUT_STATS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum rs_status {
    RS_OK = 0,
    RS_EINVAL = -1,  /* invalid argument (NULL, out of range, NaN, k < 1...) */
    RS_ETOOBIG = -2, /* exact test infeasible: too many outcomes; use chi2  */
    RS_ERANGE = -3,  /* result not representable (e.g. n would overflow)   */
    RS_ENOMEM = -4   /* allocation failed                                   */
} rs_status;

/* Which test rs_gof() used. */
typedef enum rs_method {
    RS_METHOD_CHI2 = 1,  /* Pearson chi-square, asymptotic p-value */
    RS_METHOD_EXACT = 2  /* exact multinomial (binomial for 2 categories) */
} rs_method;

/* ---------------------------------------------------------------------
 * Special functions and distributions
 * ------------------------------------------------------------------- */

/* Regularized lower incomplete gamma P(a, x) = gamma(a, x) / Gamma(a),
 * a > 0 finite, x >= 0 (x = +inf allowed); NaN otherwise.  P + Q = 1.
 * Power series for x < a + 1, otherwise 1 - Q from the continued fraction.
 * Relative error ~1e-14 typically, <= ~3e-13 in far tails of a ~ 1e3-1e5
 * (the error of x^a e^-x itself grows like a * eps).  Cost O(sqrt(a)) for
 * x near a; meant for a up to ~1e7. */
double rs_gamma_p(double a, double x);

/* Regularized upper incomplete gamma Q(a, x) = 1 - P(a, x).  For
 * x >= a + 1 it comes straight from the continued fraction (modified
 * Lentz), so tiny tails keep full relative accuracy down to ~1e-308, then
 * underflow to 0.  For x < a + 1 it is 1 - P, which is >= 0.08 when
 * a >= 1/2 (every chi-square df >= 1); for a < 1/2 its relative accuracy
 * there degrades like eps / a. */
double rs_gamma_q(double a, double x);

/* Chi-square with df > 0 degrees of freedom (df need not be an integer).
 * cdf = P(X <= x), sf = P(X > x).  x <= 0 gives cdf 0, sf 1. */
double rs_chi2_cdf(double x, double df);
double rs_chi2_sf(double x, double df);

/* Chi-square quantiles: rs_chi2_quantile(p, df) is the x with cdf(x) = p
 * (p in [0,1]; p = 1 gives +inf); rs_chi2_isf(q, df) the x with sf(x) = q,
 * which is the accurate way to get critical values for tiny q (alpha).
 * Newton on the smaller tail inside a bisection bracket, from a
 * Wilson-Hilferty start; ~1e-15 relative.  0 if the answer underflows. */
double rs_chi2_quantile(double p, double df);
double rs_chi2_isf(double q, double df);

/* Standard normal cdf Phi(z) (via erfc: accurate in both tails) and its
 * inverse (p in [0,1]; 0 -> -inf, 1 -> +inf), ~1e-15 relative. */
double rs_norm_cdf(double z);
double rs_norm_quantile(double p);

/* log P(X = x) for X ~ Binomial(n, p), n >= 0, 0 <= p <= 1; -inf for x
 * outside [0, n]; NaN if invalid.  Absolute error ~1e-15 independent of n
 * (saddle-point form with Stirling remainders, not lgamma differences). */
double rs_binom_logpmf(long x, long n, double p);

/* Upper tail P(X > x) of the noncentral chi-square with df > 0 and
 * noncentrality lambda >= 0, as a Poisson(lambda/2)-weighted sum of central
 * chi-square tails summed outward from the Poisson mode until the
 * remainder is below 1e-16 of the sum.  Intended for lambda up to ~1e5. */
double rs_ncchi2_sf(double x, double df, double lambda);

/* ---------------------------------------------------------------------
 * Goodness of fit: do observed counts match the expected shares?
 * ------------------------------------------------------------------- */

/* Pearson chi-square goodness of fit over the k categories.  Only the
 * categories with share > 0 take part; with m of them, df = m - 1 and
 * the expected count of category i is n * share_i / sum(shares), n being
 * the total observed in those m categories.
 * If m == 1 (df == 0) or n == 0 there is no evidence against the
 * hypothesis: *stat_out = 0, *p_out = 1.
 * Any of stat_out, p_out, df_out may be NULL. */
int rs_chi2_gof(const long *observed, const double *expected_shares, int k,
                double *stat_out, double *p_out, int *df_out);

/* Exact multinomial test: p = total probability, under the shares, of all
 * outcomes (with the same n) whose probability is <= that of the observed
 * one (ties within a relative 1e-7 count as <=).  Same exclusion of
 * zero-share categories as rs_chi2_gof.
 *   m == 1 or n == 0 : p = 1.
 *   m == 2           : exact binomial, O(log n + sqrt n) pmf evaluations —
 *                      fine for n in the millions.
 *   m >= 3           : enumerates all C(n+m-1, m-1) outcomes if that count
 *                      is <= RS_EXACT_MAX_OUTCOMES (n <= ~1400 for m = 3,
 *                      ~180 for m = 4, ~65 for m = 5); otherwise returns
 *                      RS_ETOOBIG and the caller should use chi-square. */
#define RS_EXACT_MAX_OUTCOMES 1000000L
int rs_exact_multinomial(const long *observed, const double *shares, int k,
                         double *p_out);

/* Picks the test: exact when some participating category has expected
 * count < 5 and the exact test is feasible, chi-square otherwise.
 * *method_out (may be NULL) receives the rs_method used. */
int rs_gof(const long *observed, const double *shares, int k,
           double *p_out, int *method_out);

/* Wilson score interval for a binomial proportion at the given two-sided
 * confidence (0 < confidence < 1, e.g. 0.95).  n == 0 gives [0, 1];
 * successes == 0 gives lo = 0 exactly, successes == n gives hi = 1. */
int rs_wilson(long successes, long n, double confidence,
              double *lo, double *hi);

/* ---------------------------------------------------------------------
 * Power and sample-size planning
 *
 * The chi-square GOF test with m categories under an alternative whose
 * shares differ from p by Delta has approximately a noncentral chi-square
 * distribution with df = m - 1 and lambda = n * w2, where the effect size
 * w2 = sum_i Delta_i^2 / p_i (Cohen's w squared).
 * ------------------------------------------------------------------- */

/* The deviation an effect size is computed against. */
typedef enum rs_deviation {
    /* delta of share moves from one positive category (the donor, share
     * >= delta) to another.  Minimum over pairs of delta^2 (1/pa + 1/pb),
     * attained by the two largest shares.  This is what rs_gof_power and
     * rs_plan_n use. */
    RS_DEV_PAIR = 1,
    /* one category is off by delta and the others absorb it in proportion
     * to their shares: delta^2 / (pa (1 - pa)), minimized by the share
     * closest to 1/2.  This is the least detectable deviation in which
     * some version's share is off by delta; it equals RS_DEV_PAIR for two
     * categories and is smaller (needs larger n) for three or more, e.g.
     * 4.5 delta^2 instead of 6 delta^2 for three equal shares. */
    RS_DEV_ONE_VS_REST = 2
} rs_deviation;

/* Effect size w2 of the least detectable deviation of size delta
 * (0 < delta < 1) among the positive shares, for the given rs_deviation.
 * NaN if invalid, if fewer than 2 shares are positive, or if no
 * deviation of that size is possible (RS_DEV_PAIR: largest share < delta;
 * RS_DEV_ONE_VS_REST: no share p with p >= delta or p + delta <= 1, which
 * needs delta > 1/2). */
double rs_gof_w2(const double *shares, int k, double delta, int deviation);

/* Power of the level-alpha chi-square test with df >= 1 and n requests
 * against an alternative of effect size w2 >= 0:
 *   ncchi2_sf(chi2_isf(alpha, df), df, n * w2). */
double rs_power_w2(double w2, int df, long n, double alpha);

/* Smallest n >= 1 with rs_power_w2(w2, df, n, alpha) >= power
 * (0 < alpha < 1, 0 < power < 1, w2 > 0).  Exponential search then
 * bisection.  Negative rs_status if invalid or n would exceed LONG_MAX/4. */
long rs_plan_n_w2(double w2, int df, double alpha, double power);

/* Power of the chi-square GOF test at level alpha with n requests
 * against the RS_DEV_PAIR deviation of size delta (absolute share, e.g.
 * 0.05).  NaN when that deviation is impossible (largest share < delta).
 * With a single positive share the GOF test has nothing to test; the
 * only detectable failure is traffic to zero-weight versions, so this
 * returns the probability of seeing at least one request of a leak of
 * rate delta: 1 - (1 - delta)^n (consistent with rs_plan_n). */
double rs_gof_power(const double *shares, int k, double delta, long n,
                    double alpha);

/* Smallest n with rs_gof_power(shares, k, delta, n, alpha) >= power.
 * With a single positive share: rs_plan_leak_n(delta, power).
 * Negative rs_status on invalid arguments / impossible deviation. */
long rs_plan_n(const double *shares, int k, double delta, double alpha,
               double power);

/* Smallest n with 1 - (1 - leak_rate)^n >= power: requests needed to see
 * at least one request of a leak of rate leak_rate (0 < rate <= 1) with
 * probability power (0 < power < 1).  Negative rs_status if invalid. */
long rs_plan_leak_n(double leak_rate, double power);

/* Exact power of rs_gof for two categories with expected shares
 * (p0, 1 - p0) and true shares (p1, 1 - p1) at n requests: the binomial
 * probability of the alternative summed over the test's rejection region.
 * NaN if invalid. (runtime/core/stats_split.c) */
double rs_power_exact2(double p0, double p1, long n, double alpha);

/* The requests a split verification needs so that a deviation of delta in
 * any version's share is caught with probability >= power by the test
 * rollout runs (rs_gof at level alpha). Two positive shares: exact power.
 * Three or more: the larger of the noncentral plan for the
 * RS_DEV_ONE_VS_REST deviation at half the allowed miss rate and each
 * version's exact two-category plan against the rest. Needs >= 2 positive
 * shares; negative rs_status otherwise. (runtime/core/stats_split.c) */
long rs_plan_split(const double *shares, int k, double delta, double alpha, double power);

/* ---------------------------------------------------------------------
 * Two samples: judging a canary against a baseline (rollout.judge).
 * runtime/core/stats_twosample.c
 * ------------------------------------------------------------------- */

/* Binomial(n, p) tails: cdf = P(X <= x), sf = P(X >= x) (note: >=, the
 * upper tail *including* x, as a p-value needs it).  Summed outward from x
 * with a geometric bound on the rest, so far tails keep full relative
 * precision; the tail nearer the mean is 1 - the other.  NaN if invalid. */
double rs_binom_cdf(long x, long n, double p);
double rs_binom_sf(long x, long n, double p);

/* One-sided Clopper-Pearson bounds for a proportion from x successes in
 * n >= 1 trials: lo with P(Bin(n, lo) >= x) = gamma (0 when x = 0) and hi
 * with P(Bin(n, hi) <= x) = gamma (1 when x = n), 0 < gamma < 1.  Each is
 * an exact one-sided (1 - gamma) bound: P(p < lo) <= gamma and
 * P(p > hi) <= gamma, whatever p.  Bisection to ~1e-14 relative. */
int rs_binom_bounds(long x, long n, double gamma, double *lo, double *hi);

/* Hypergeometric: population N with K marked, `draws` drawn without
 * replacement, X = marked ones drawn.  log P(X = x) (Loader's form from
 * binomial saddle points, no lgamma differences; -inf outside the
 * support) and the upper tail P(X >= x).  NaN if invalid. */
double rs_hyper_logpmf(long x, long N, long K, long draws);
double rs_hyper_sf(long x, long N, long K, long draws);

/* One-sided Fisher exact test that the canary's failure rate is higher
 * than the baseline's: xb of nb baseline requests and xc of nc canary
 * requests failed.  p = P(X >= xc) for X ~ Hypergeometric(N = nb + nc,
 * K = xb + xc, draws = nc): conditional on the total failures, the
 * canary's share of them.  Valid (size <= alpha) for every pair of rates
 * with p_canary <= p_baseline, for any n; 1 when there is no failure or a
 * side is empty.  NaN if invalid. */
double rs_fisher_greater(long xb, long nb, long xc, long nc);

/* Exceedance (control-quantile, placement) test: C = how many of nc canary
 * values exceed X_(r), the r-th smallest of nb baseline values
 * (1 <= r <= nb).  If both samples come from one continuous distribution,
 * C is beta-binomial (nc, nb - r + 1, r), and
 *   P(C >= c) = P(H >= c), H ~ Hypergeometric(nb + nc, nc, nb - r + c)
 * (C >= c iff at least c of the nb - r + c largest pooled values are
 * canary values), which is what this returns.  Ties and a canary that is
 * stochastically faster only make C smaller, so the test stays valid for
 * any distribution when C counts values strictly above X_(r).  NaN if
 * invalid. */
double rs_exceed_sf(long c, long nc, long r, long nb);

/* Smallest c with rs_exceed_sf(c, nc, r, nb) <= alpha, nc + 1 if none;
 * negative rs_status if invalid. */
long rs_exceed_crit(long nc, long r, long nb, double alpha);

/* Distribution-free bounds for the q-quantile Q of any distribution (ties
 * allowed) from the order statistics of n >= 1 values, 0 < q < 1,
 * 0 < gamma < 1:
 *   rs_order_upper: the smallest u with P(Bin(n, q) >= u) <= gamma; then
 *     P(X_(u) < Q) <= gamma.  n + 1 when no order statistic is an upper
 *     bound at that level (q^n > gamma).
 *   rs_order_lower: the largest l with P(Bin(n, q) <= l - 1) <= gamma;
 *     then P(X_(l) > Q) <= gamma.  0 when none is ((1 - q)^n > gamma).
 * Negative rs_status if invalid. */
long rs_order_upper(long n, double q, double gamma);
long rs_order_lower(long n, double q, double gamma);

/* Exact power of rs_fisher_greater at level alpha (p <= alpha rejects)
 * with nb baseline and nc canary requests failing with rates pb and pc:
 * the binomial probability of the rejection region.  NaN if invalid. */
double rs_fisher_power(long nb, double pb, long nc, double pc, double alpha);

/* Probability that the one-sided bounds at gamma show the increase small:
 * P(hi_canary - lo_baseline < margin), with rs_binom_bounds on each side,
 * when the true rates are pb and pc.  NaN if invalid. */
double rs_diff_pass_prob(long nb, double pb, long nc, double pc, double gamma,
                         double margin);

/* ---------------------------------------------------------------------
 * A sample of values accumulated over time and sorted on demand (new
 * values are sorted and merged in: O(n) per query after an addition).
 * Caller-owned; initialize with rs_sample_init, release with
 * rs_sample_free.  runtime/core/stats_sample.c
 * ------------------------------------------------------------------- */
typedef struct {
    double *v;     /* values; v[0 .. sorted) is sorted */
    size_t n, cap, sorted;
} rs_sample;

void rs_sample_init(rs_sample *s);
void rs_sample_free(rs_sample *s);
/* Appends n finite values (RS_EINVAL, nothing added, if any is not). */
int rs_sample_add(rs_sample *s, const double *x, size_t n);
int rs_sample_sort(rs_sample *s);
/* The r-th smallest value, 1 <= r <= n; NaN if out of range. */
double rs_sample_order(rs_sample *s, size_t r);
/* How many values are > t, or >= t; negative rs_status on error. */
long rs_sample_count_above(rs_sample *s, double t);
long rs_sample_count_at_least(rs_sample *s, double t);

/* ---------------------------------------------------------------------
 * Deterministic PRNG for tests and simulations (not cryptographic):
 * xoshiro256** seeded through splitmix64.
 * ------------------------------------------------------------------- */
typedef struct {
    uint64_t s[4];
} rs_rng;

void rs_rng_seed(rs_rng *rng, uint64_t seed);
uint64_t rs_rng_next(rs_rng *rng);
double rs_rng_double(rs_rng *rng); /* uniform in [0, 1), 53 bits */

/* Simulation helpers (runtime/core/stats_sample.c).  Standard normal
 * (Box-Muller, one value per call); Binomial(n, p) by exact inversion
 * searching outward from the mode (O(sqrt(npq))), negative rs_status if
 * invalid. */
double rs_rng_normal(rs_rng *rng);
long rs_rng_binomial(rs_rng *rng, long n, double p);

/* A latency model for simulations: median_ms * exp(sigma * Z) + shift_ms
 * (a lognormal body, shifted), plus tail_ms with probability tail_share (a
 * second mode), plus a hiccup uniform in [0, spike_ms) with probability
 * spike_share (scheduler and timer stalls: a flat, heavy tail), clamped at
 * 0, then rounded down to a multiple of resolution_ms when > 0 (a coarse
 * timer: ties, and zeros when resolution exceeds most values). */
typedef struct {
    double median_ms, sigma, shift_ms, tail_share, tail_ms, spike_share, spike_ms,
        resolution_ms;
} rs_latency_model;

double rs_latency_draw(rs_rng *rng, const rs_latency_model *m);
/* Appends n draws of the model to the sample. */
int rs_sample_simulate(rs_sample *s, rs_rng *rng, size_t n, const rs_latency_model *m);

#ifdef __cplusplus
}
#endif

#endif /* ROLLOUT_STATS_H */
