/* Statistics core, part 5: two-sample tests for judging a canary against a
 * baseline (rollout.judge).
 *
 *   - binomial tails, and one-sided Clopper-Pearson bounds;
 *   - the hypergeometric upper tail, on which rest
 *       * the one-sided Fisher exact test of two error rates, and
 *       * the exceedance ("control quantile", placement) test: how many
 *         canary values lie above the baseline's r-th order statistic;
 *   - distribution-free confidence bounds for a quantile (order statistics);
 *   - exact power / pass probabilities used to plan sample sizes.
 *
 * Lua-free, libm only.  See include/rollout/stats.h.
 */
#include "rollout/stats.h"

#include <math.h>
#include <stddef.h>

/* Terms are summed outward until the geometric bound on the rest is below
 * this fraction of the sum. */
#define TAIL_EPS 1e-17

static int prob_closed(double p)
{
    return p >= 0.0 && p <= 1.0; /* false for NaN */
}

static int prob_open(double p)
{
    return p > 0.0 && p < 1.0;
}

/* ------------------------------------------------------------------ */
/* binomial tails                                                      */

/* sum_{k <= x} pmf(k), x in [0, n), summed downward from x: the terms
 * shrink once k is below the mode.  Only called with x < mean + 1. */
static double binom_lower_sum(long x, long n, double p)
{
    double q = 1.0 - p;
    double t = exp(rs_binom_logpmf(x, n, p));
    double total = 0.0;
    for (long k = x; k >= 0; k--) {
        total += t;
        if (k == 0)
            break;
        /* pmf(k-1) / pmf(k) */
        double r = ((double)k * q) / (((double)(n - k) + 1.0) * p);
        t *= r;
        if (r < 1.0 && t / (1.0 - r) <= TAIL_EPS * total)
            break;
        if ((x - k) % 64 == 63) /* refresh: no drift from the recursion */
            t = exp(rs_binom_logpmf(k - 1, n, p));
    }
    return total;
}

/* sum_{k >= x} pmf(k), x in (0, n], summed upward from x. */
static double binom_upper_sum(long x, long n, double p)
{
    double q = 1.0 - p;
    double t = exp(rs_binom_logpmf(x, n, p));
    double total = 0.0;
    for (long k = x; k <= n; k++) {
        total += t;
        if (k == n)
            break;
        /* pmf(k+1) / pmf(k) */
        double r = ((double)(n - k) * p) / (((double)k + 1.0) * q);
        t *= r;
        if (r < 1.0 && t / (1.0 - r) <= TAIL_EPS * total)
            break;
        if ((k - x) % 64 == 63)
            t = exp(rs_binom_logpmf(k + 1, n, p));
    }
    return total;
}

double rs_binom_cdf(long x, long n, double p)
{
    if (n < 0 || !prob_closed(p))
        return NAN;
    if (x < 0)
        return 0.0;
    if (x >= n)
        return 1.0;
    if (p == 0.0)
        return 1.0;
    if (p == 1.0)
        return 0.0;
    if ((double)x < (double)n * p)
        return fmin(1.0, binom_lower_sum(x, n, p));
    return fmax(0.0, 1.0 - binom_upper_sum(x + 1, n, p));
}

double rs_binom_sf(long x, long n, double p)
{
    if (n < 0 || !prob_closed(p))
        return NAN;
    if (x <= 0)
        return 1.0;
    if (x > n)
        return 0.0;
    if (p == 0.0)
        return 0.0;
    if (p == 1.0)
        return 1.0;
    if ((double)x > (double)n * p)
        return fmin(1.0, binom_upper_sum(x, n, p));
    return fmax(0.0, 1.0 - binom_lower_sum(x - 1, n, p));
}

/* Solves f(p) = gamma for p in (0, 1) by bisection, where f is the upper
 * tail P(X >= x) (increasing in p) or the cdf P(X <= x) (decreasing in p).
 * Bisection halves geometrically towards a small root, so ~50 steps reach
 * it and ~50 more give a relative width of 1e-14. */
static double binom_solve_p(long x, long n, double gamma, int upper_tail)
{
    double lo = 0.0, hi = 1.0;
    for (int it = 0; it < 2000 && hi - lo > 1e-14 * hi; it++) {
        double mid = 0.5 * (lo + hi);
        double f = upper_tail ? rs_binom_sf(x, n, mid) : rs_binom_cdf(x, n, mid);
        /* the root lies above mid when the tail at mid is still too small
         * (upper tail) or still too large (cdf) */
        if (upper_tail ? f < gamma : f > gamma)
            lo = mid;
        else
            hi = mid;
    }
    return 0.5 * (lo + hi);
}

int rs_binom_bounds(long x, long n, double gamma, double *lo, double *hi)
{
    if (lo == NULL || hi == NULL || n < 1 || x < 0 || x > n || !prob_open(gamma))
        return RS_EINVAL;
    double l, h;
    if (x == 0)
        l = 0.0;
    else if (x == n)
        l = exp(log(gamma) / (double)n);
    else /* P(Bin(n, l) >= x) = gamma, increasing in l */
        l = binom_solve_p(x, n, gamma, 1);
    if (x == n)
        h = 1.0;
    else if (x == 0)
        h = -expm1(log(gamma) / (double)n);
    else /* P(Bin(n, h) <= x) = gamma, decreasing in h */
        h = binom_solve_p(x, n, gamma, 0);
    *lo = l;
    *hi = h;
    return RS_OK;
}

/* ------------------------------------------------------------------ */
/* hypergeometric                                                      */

/* A hypergeometric law: population N with K marked, `draws` drawn without
 * replacement; X = the marked ones drawn, in [xmin, xmax]. */
typedef struct {
    long N, K, d, xmin, xmax;
} hyper;

static int hyper_set(hyper *h, long N, long K, long draws)
{
    if (N < 0 || K < 0 || K > N || draws < 0 || draws > N)
        return RS_EINVAL;
    h->N = N;
    h->K = K;
    h->d = draws;
    h->xmin = draws - (N - K) > 0 ? draws - (N - K) : 0;
    h->xmax = K < draws ? K : draws;
    return RS_OK;
}

/* Loader's form (as R's dhyper): pmf = b(x; K, p) b(d - x; N - K, p) /
 * b(d; N, p) with p = d / N, each binomial pmf from the saddle-point
 * rs_binom_logpmf, so there are no differences of large lgamma values. */
static double hyper_logpmf(const hyper *h, long x)
{
    if (x < h->xmin || x > h->xmax)
        return -INFINITY;
    if (h->N == 0 || h->d == 0 || h->d == h->N)
        return 0.0; /* a single outcome */
    double p = (double)h->d / (double)h->N;
    return rs_binom_logpmf(x, h->K, p) + rs_binom_logpmf(h->d - x, h->N - h->K, p) -
           rs_binom_logpmf(h->d, h->N, p);
}

double rs_hyper_logpmf(long x, long N, long K, long draws)
{
    hyper h;
    if (hyper_set(&h, N, K, draws) != RS_OK)
        return NAN;
    return hyper_logpmf(&h, x);
}

/* pmf(x + 1) / pmf(x) */
static double hyper_ratio_up(const hyper *h, long x)
{
    return ((double)(h->K - x) * (double)(h->d - x)) /
           (((double)x + 1.0) * ((double)(h->N - h->K - h->d + x) + 1.0));
}

/* sum_{k >= x} pmf(k), summed upward (x above the mode). */
static double hyper_upper_sum(const hyper *h, long x)
{
    double t = exp(hyper_logpmf(h, x)), total = 0.0;
    for (long k = x; k <= h->xmax; k++) {
        total += t;
        if (k == h->xmax)
            break;
        double r = hyper_ratio_up(h, k);
        t *= r;
        if (r < 1.0 && t / (1.0 - r) <= TAIL_EPS * total)
            break;
        if ((k - x) % 64 == 63)
            t = exp(hyper_logpmf(h, k + 1));
    }
    return total;
}

/* sum_{k <= x} pmf(k), summed downward (x below the mode). */
static double hyper_lower_sum(const hyper *h, long x)
{
    double t = exp(hyper_logpmf(h, x)), total = 0.0;
    for (long k = x; k >= h->xmin; k--) {
        total += t;
        if (k == h->xmin)
            break;
        double r = 1.0 / hyper_ratio_up(h, k - 1); /* pmf(k-1) / pmf(k) */
        t *= r;
        if (r < 1.0 && t / (1.0 - r) <= TAIL_EPS * total)
            break;
        if ((x - k) % 64 == 63)
            t = exp(hyper_logpmf(h, k - 1));
    }
    return total;
}

static double hyper_sf(const hyper *h, long x)
{
    if (x <= h->xmin)
        return 1.0;
    if (x > h->xmax)
        return 0.0;
    double mean = (double)h->d * (double)h->K / (double)h->N;
    if ((double)x > mean)
        return fmin(1.0, hyper_upper_sum(h, x));
    return fmax(0.0, 1.0 - hyper_lower_sum(h, x - 1));
}

double rs_hyper_sf(long x, long N, long K, long draws)
{
    hyper h;
    if (hyper_set(&h, N, K, draws) != RS_OK)
        return NAN;
    return hyper_sf(&h, x);
}

/* ------------------------------------------------------------------ */
/* two-sample tests                                                    */

double rs_fisher_greater(long xb, long nb, long xc, long nc)
{
    if (nb < 0 || nc < 0 || xb < 0 || xc < 0 || xb > nb || xc > nc)
        return NAN;
    if (nb == 0 || nc == 0 || xb + xc == 0)
        return 1.0;
    /* given the total number of errors, the canary's share of them */
    return rs_hyper_sf(xc, nb + nc, xb + xc, nc);
}

double rs_exceed_sf(long c, long nc, long r, long nb)
{
    if (nb < 1 || nc < 0 || r < 1 || r > nb || c < 0 || c > nc)
        return NAN;
    if (c == 0)
        return 1.0;
    /* C >= c  <=>  among the nb - r + c largest of the pooled values at
     * least c are canary values (exchangeable pooled sample). */
    return rs_hyper_sf(c, nb + nc, nc, nb - r + c);
}

long rs_exceed_crit(long nc, long r, long nb, double alpha)
{
    if (nb < 1 || nc < 0 || r < 1 || r > nb || !prob_open(alpha))
        return RS_EINVAL;
    /* the tail decreases in c: bisect for the smallest c with sf <= alpha */
    if (nc == 0 || rs_exceed_sf(nc, nc, r, nb) > alpha)
        return nc + 1;
    long lo = 0, hi = nc; /* sf(lo) > alpha >= sf(hi); sf(0) = 1 */
    while (hi - lo > 1) {
        long mid = lo + (hi - lo) / 2;
        if (rs_exceed_sf(mid, nc, r, nb) <= alpha)
            hi = mid;
        else
            lo = mid;
    }
    return hi;
}

long rs_order_upper(long n, double q, double gamma)
{
    if (n < 1 || !prob_open(q) || !prob_open(gamma))
        return RS_EINVAL;
    /* smallest u with P(Bin(n, q) >= u) <= gamma; the tail falls with u */
    if (rs_binom_sf(n, n, q) > gamma)
        return n + 1;
    long lo = 0, hi = n; /* sf(lo) > gamma >= sf(hi) */
    while (hi - lo > 1) {
        long mid = lo + (hi - lo) / 2;
        if (rs_binom_sf(mid, n, q) <= gamma)
            hi = mid;
        else
            lo = mid;
    }
    return hi;
}

long rs_order_lower(long n, double q, double gamma)
{
    if (n < 1 || !prob_open(q) || !prob_open(gamma))
        return RS_EINVAL;
    /* largest l with P(Bin(n, q) <= l - 1) <= gamma; the cdf grows with l */
    if (rs_binom_cdf(0, n, q) > gamma)
        return 0;
    long lo = 1, hi = n + 1; /* cdf(lo - 1) <= gamma < cdf(hi - 1) = 1 */
    while (hi - lo > 1) {
        long mid = lo + (hi - lo) / 2;
        if (rs_binom_cdf(mid - 1, n, q) <= gamma)
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

/* ------------------------------------------------------------------ */
/* power and pass probabilities (planning)                             */

/* The range [*a, *b] of a Binomial(n, p) holding all but ~1e-13 of it. */
static void binom_support(long n, double p, long *a, long *b)
{
    double mean = (double)n * p, sd = sqrt((double)n * p * (1.0 - p));
    double w = 9.0 * sd + 10.0;
    *a = mean - w > 0.0 ? (long)(mean - w) : 0;
    *b = mean + w < (double)n ? (long)ceil(mean + w) : n;
}

double rs_fisher_power(long nb, double pb, long nc, double pc, double alpha)
{
    if (nb < 1 || nc < 1 || !prob_closed(pb) || !prob_closed(pc) || !prob_open(alpha))
        return NAN;
    long a, b;
    binom_support(nb, pb, &a, &b);
    double power = 0.0;
    long crit = 0;
    for (long xb = a; xb <= b; xb++) {
        double w = exp(rs_binom_logpmf(xb, nb, pb));
        /* the critical canary count grows with xb: resume the search */
        while (crit <= nc && rs_fisher_greater(xb, nb, crit, nc) > alpha)
            crit++;
        if (crit > nc)
            break; /* no canary count rejects, nor for larger xb */
        power += w * rs_binom_sf(crit, nc, pc);
    }
    return fmin(1.0, power);
}

double rs_diff_pass_prob(long nb, double pb, long nc, double pc, double gamma, double margin)
{
    if (nb < 1 || nc < 1 || !prob_closed(pb) || !prob_closed(pc) || !prob_open(gamma) ||
        !(margin > 0.0 && margin < 1.0))
        return NAN;
    long a, b;
    binom_support(nb, pb, &a, &b);
    double prob = 0.0;
    long xmax = -1; /* largest canary count that passes, grows with xb */
    for (long xb = a; xb <= b; xb++) {
        double lb, ub;
        if (rs_binom_bounds(xb, nb, gamma, &lb, &ub) != RS_OK)
            return NAN;
        double t = lb + margin; /* pass <=> upper(xc) < t <=> cdf(xc; t) < gamma */
        if (t >= 1.0) {
            xmax = nc;
        } else {
            while (xmax < nc && rs_binom_cdf(xmax + 1, nc, t) < gamma)
                xmax++;
        }
        if (xmax >= 0)
            prob += exp(rs_binom_logpmf(xb, nb, pb)) * rs_binom_cdf(xmax, nc, pc);
    }
    return fmin(1.0, prob);
}
