/* Statistics core, part 2: goodness-of-fit tests and Wilson intervals.
 *
 * Pearson chi-square and the exact multinomial test of observed counts
 * against expected shares; categories with share 0 are excluded (traffic
 * to a zero-weight version is judged by the caller).
 */
#include "rollout/stats.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>

/* Outcomes whose probability is within this relative amount of the
 * observed one count as "as extreme" (floating-point ties). */
#define TIE_LOG_TOL 1e-7

/* Validates the inputs and sums up the participating (share > 0)
 * categories: *m_out of them, share total *sum_out, count total *n_out. */
static int gof_prepare(const long *observed, const double *shares, int k,
                       int *m_out, double *sum_out, long *n_out)
{
    if (observed == NULL || shares == NULL || k < 1)
        return RS_EINVAL;
    int m = 0;
    double sum = 0.0;
    long n = 0;
    for (int i = 0; i < k; i++) {
        double s = shares[i];
        if (!(s >= 0.0) || !isfinite(s) || observed[i] < 0)
            return RS_EINVAL;
        if (s > 0.0) {
            m++;
            sum += s;
            if (observed[i] > LONG_MAX - n)
                return RS_ERANGE;
            n += observed[i];
        }
    }
    if (m == 0 || !isfinite(sum))
        return RS_EINVAL;
    *m_out = m;
    *sum_out = sum;
    *n_out = n;
    return RS_OK;
}

int rs_chi2_gof(const long *observed, const double *expected_shares, int k,
                double *stat_out, double *p_out, int *df_out)
{
    int m;
    double sum;
    long n;
    int rc = gof_prepare(observed, expected_shares, k, &m, &sum, &n);
    if (rc != RS_OK)
        return rc;
    double stat = 0.0, p = 1.0;
    if (m > 1 && n > 0) {
        for (int i = 0; i < k; i++) {
            if (expected_shares[i] > 0.0) {
                double e = (double)n * (expected_shares[i] / sum);
                double d = (double)observed[i] - e;
                stat += d * d / e;
            }
        }
        p = rs_chi2_sf(stat, (double)(m - 1));
    }
    if (stat_out)
        *stat_out = stat;
    if (p_out)
        *p_out = p;
    if (df_out)
        *df_out = m - 1;
    return RS_OK;
}

/* ------------------------------------------------------------------ */

/* Exact two-sided binomial p-value: sum of P(X = x) over all x with
 * P(X = x) <= P(X = x0) (1 + tol).  The pmf is unimodal, so those x form
 * two tails; their ends are found by bisection and each tail is summed
 * outward until the geometric bound on the rest is negligible. */
static double binom_exact(long x0, long n, double p)
{
    double q = 1.0 - p;
    double thr = rs_binom_logpmf(x0, n, p) + TIE_LOG_TOL;

    long mode = (long)floor(((double)n + 1.0) * p);
    if (mode > n)
        mode = n;
    if (mode < 0)
        mode = 0;
    for (long c = mode - 1; c <= mode + 1; c += 2)
        if (c >= 0 && c <= n && rs_binom_logpmf(c, n, p) > rs_binom_logpmf(mode, n, p))
            mode = c;
    if (rs_binom_logpmf(mode, n, p) <= thr)
        return 1.0;

    double total = 0.0;
    /* left tail: [0, L], L = largest x < mode with lp(x) <= thr */
    if (mode > 0 && rs_binom_logpmf(0, n, p) <= thr) {
        long lo = 0, hi = mode; /* lp(lo) <= thr < lp(hi) */
        while (hi - lo > 1) {
            long mid = lo + (hi - lo) / 2;
            if (rs_binom_logpmf(mid, n, p) <= thr)
                lo = mid;
            else
                hi = mid;
        }
        for (long x = lo; x >= 0; x--) {
            double t = exp(rs_binom_logpmf(x, n, p));
            total += t;
            /* pmf(x-1)/pmf(x), decreasing as x decreases */
            double r = ((double)x * q) / (((double)(n - x) + 1.0) * p);
            if (r < 1.0 && t * r / (1.0 - r) <= 1e-17 * total)
                break;
        }
    }
    /* right tail: [R, n], R = smallest x > mode with lp(x) <= thr */
    if (mode < n && rs_binom_logpmf(n, n, p) <= thr) {
        long lo = mode, hi = n; /* lp(lo) > thr >= lp(hi) */
        while (hi - lo > 1) {
            long mid = lo + (hi - lo) / 2;
            if (rs_binom_logpmf(mid, n, p) <= thr)
                hi = mid;
            else
                lo = mid;
        }
        for (long x = hi; x <= n; x++) {
            double t = exp(rs_binom_logpmf(x, n, p));
            total += t;
            /* pmf(x+1)/pmf(x), decreasing as x increases */
            double r = ((double)(n - x) * p) / (((double)x + 1.0) * q);
            if (r < 1.0 && t * r / (1.0 - r) <= 1e-17 * total)
                break;
        }
    }
    return fmin(1.0, total);
}

/* Number of compositions C(n + m - 1, m - 1), or limit + 1 if larger. */
static double count_outcomes(long n, int m, double limit)
{
    double N = (double)n + (double)m - 1.0;
    double r = fmin((double)n, (double)m - 1.0);
    double c = 1.0;
    for (double i = 1.0; i <= r; i += 1.0) {
        c = c * (N - r + i) / i;
        if (c > limit)
            return limit + 1.0;
    }
    return c;
}

/* Exact multinomial test for m >= 3 categories by enumerating every
 * composition of n.  t[i][j] = j ln p_i - ln j!, so ln P(x) = ln n! +
 * sum_i t[i][x_i].  The first m-1 parts run like an odometer (the last
 * part takes the rest).  A stack holds the non-zero parts in position
 * order with the running sum of t after each, so every step is O(1) and
 * the sum is always formed in the same order (t[i][0] = 0 adds nothing),
 * bit-identical to the observed outcome's. */
static int multinomial_exact(const long *obs, const double *p, int m, long n,
                             double *p_out)
{
    size_t row = (size_t)n + 1;
    double *lf = malloc(row * sizeof *lf);
    double *t = malloc((size_t)m * row * sizeof *t);
    long *x = calloc((size_t)m, sizeof *x);
    int *pos = malloc((size_t)m * sizeof *pos);
    double *after = malloc((size_t)m * sizeof *after);
    if (!lf || !t || !x || !pos || !after) {
        free(lf);
        free(t);
        free(x);
        free(pos);
        free(after);
        return RS_ENOMEM;
    }
    for (size_t j = 0; j < row; j++)
        lf[j] = lgamma((double)j + 1.0);
    for (int i = 0; i < m; i++) {
        double lp = log(p[i]);
        double *ti = t + (size_t)i * row;
        ti[0] = 0.0;
        for (size_t j = 1; j < row; j++)
            ti[j] = (double)j * lp - lf[j];
    }
    const double *tlast = t + (size_t)(m - 1) * row;

    /* observed, summed in the same order as the enumeration below */
    double obs_sum = 0.0;
    for (int i = 0; i < m - 1; i++)
        obs_sum += t[(size_t)i * row + (size_t)obs[i]];
    obs_sum += tlast[obs[m - 1]];
    const double thr = obs_sum + TIE_LOG_TOL;
    const double lnf = lf[n];

    int depth = 0; /* stack of non-zero parts among 0..m-2 */
    long rest = n;
    double total = 0.0;
    for (;;) {
        double v = (depth ? after[depth - 1] : 0.0) + tlast[rest];
        if (v <= thr)
            total += exp(lnf + v);
        int i;
        if (rest > 0) {
            i = m - 2; /* the deepest part takes one more */
            rest--;
        } else {
            /* everything sits in parts up to the top of the stack:
             * empty that part into the rest and carry into the one before */
            int top = pos[depth - 1];
            if (top == 0)
                break;
            rest = x[top] - 1;
            x[top] = 0;
            depth--;
            i = top - 1;
        }
        if (depth && pos[depth - 1] == i)
            depth--;
        x[i]++;
        pos[depth] = i;
        after[depth] = (depth ? after[depth - 1] : 0.0) + t[(size_t)i * row + (size_t)x[i]];
        depth++;
    }
    free(lf);
    free(t);
    free(x);
    free(pos);
    free(after);
    *p_out = fmin(1.0, total);
    return RS_OK;
}

int rs_exact_multinomial(const long *observed, const double *shares, int k,
                         double *p_out)
{
    int m;
    double sum;
    long n;
    int rc = gof_prepare(observed, shares, k, &m, &sum, &n);
    if (rc != RS_OK)
        return rc;
    if (p_out == NULL)
        return RS_EINVAL;
    if (m == 1 || n == 0) {
        *p_out = 1.0;
        return RS_OK;
    }
    if (m == 2) {
        int i0 = -1, i1 = -1;
        for (int i = 0; i < k; i++) {
            if (shares[i] > 0.0) {
                if (i0 < 0)
                    i0 = i;
                else
                    i1 = i;
            }
        }
        /* the binomial variable is the category with the smaller share,
         * so that q = 1 - p is computed exactly */
        int c = shares[i0] <= shares[i1] ? i0 : i1;
        *p_out = binom_exact(observed[c], n, shares[c] / sum);
        return RS_OK;
    }
    if (count_outcomes(n, m, (double)RS_EXACT_MAX_OUTCOMES) > (double)RS_EXACT_MAX_OUTCOMES)
        return RS_ETOOBIG;

    long *obs = malloc((size_t)m * sizeof *obs);
    double *p = malloc((size_t)m * sizeof *p);
    if (!obs || !p) {
        free(obs);
        free(p);
        return RS_ENOMEM;
    }
    for (int i = 0, j = 0; i < k; i++) {
        if (shares[i] > 0.0) {
            obs[j] = observed[i];
            p[j] = shares[i] / sum;
            j++;
        }
    }
    rc = multinomial_exact(obs, p, m, n, p_out);
    free(obs);
    free(p);
    return rc;
}

int rs_gof(const long *observed, const double *shares, int k, double *p_out,
           int *method_out)
{
    int m;
    double sum;
    long n;
    int rc = gof_prepare(observed, shares, k, &m, &sum, &n);
    if (rc != RS_OK)
        return rc;
    if (p_out == NULL)
        return RS_EINVAL;
    int small = 0;
    for (int i = 0; i < k; i++)
        if (shares[i] > 0.0 && (double)n * (shares[i] / sum) < 5.0)
            small = 1;
    if (small) {
        double p;
        rc = rs_exact_multinomial(observed, shares, k, &p);
        if (rc == RS_OK) {
            *p_out = p;
            if (method_out)
                *method_out = RS_METHOD_EXACT;
            return RS_OK;
        }
        if (rc != RS_ETOOBIG)
            return rc;
    }
    double p;
    rc = rs_chi2_gof(observed, shares, k, NULL, &p, NULL);
    if (rc != RS_OK)
        return rc;
    *p_out = p;
    if (method_out)
        *method_out = RS_METHOD_CHI2;
    return RS_OK;
}

/* ------------------------------------------------------------------ */

int rs_wilson(long successes, long n, double confidence, double *lo, double *hi)
{
    if (lo == NULL || hi == NULL || n < 0 || successes < 0 || successes > n ||
        !(confidence > 0.0 && confidence < 1.0))
        return RS_EINVAL;
    if (n == 0) {
        *lo = 0.0;
        *hi = 1.0;
        return RS_OK;
    }
    double z = -rs_norm_quantile((1.0 - confidence) / 2.0);
    double dn = (double)n, ph = (double)successes / dn;
    double z2n = z * z / dn;
    double denom = 1.0 + z2n;
    double center = (ph + z2n / 2.0) / denom;
    double half = z * sqrt(ph * (1.0 - ph) / dn + z2n / (4.0 * dn)) / denom;
    double l = center - half, h = center + half;
    *lo = successes == 0 ? 0.0 : fmax(0.0, l);
    *hi = successes == n ? 1.0 : fmin(1.0, h);
    return RS_OK;
}
