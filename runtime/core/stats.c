/* Statistics core, part 1: special functions and distributions.
 *
 * Incomplete gamma (series / Lentz continued fraction), chi-square
 * cdf/sf/quantiles, standard normal cdf/quantile, noncentral chi-square
 * upper tail.  Lua-free, libm only.  See include/rollout/stats.h.
 */
#include "rollout/stats.h"

#include <float.h>
#include <math.h>

#define LN_SQRT_2PI 0.91893853320467274178032973640562 /* ln sqrt(2 pi) */
#define SQRT_2PI 2.50662827463100050241576528481105
#define SQRT_HALF 0.70710678118654752440084436210485

#define GAMMA_EPS 1e-17      /* relative stopping criterion for series/CF */
#define GAMMA_MAX_ITER 2000000L

/* Remainder of Stirling's series:
 *   lgamma(a) = (a - 1/2) ln a - a + ln sqrt(2 pi) + stirlerr(a),
 * and equally ln(n!) = (n + 1/2) ln n - n + ln sqrt(2 pi) + stirlerr(n).
 * Asymptotic series (Bernoulli numbers) for a >= 10, where its truncation
 * error is below 1e-16; direct difference below (absolute error ~1e-15). */
static double stirlerr(double a)
{
    if (a >= 10.0) {
        double r = 1.0 / a, r2 = r * r;
        return r * (1.0 / 12 -
                    r2 * (1.0 / 360 -
                          r2 * (1.0 / 1260 -
                                r2 * (1.0 / 1680 -
                                      r2 * (1.0 / 1188 -
                                            r2 * (691.0 / 360360 -
                                                  r2 * (1.0 / 156)))))));
    }
    return lgamma(a) - (a - 0.5) * log(a) + a - LN_SQRT_2PI;
}

/* log(1 + u) - u without cancellation for small |u| (u > -1). */
static double log1pmx(double u)
{
    if (fabs(u) < 0.25) {
        /* -u^2/2 + u^3/3 - u^4/4 + ... */
        double term = u * u, sum = 0.0;
        for (int k = 2; k < 200; k++) {
            double t = term / k;
            sum += (k & 1) ? t : -t;
            if (fabs(t) <= 1e-18 * fabs(sum))
                break;
            term *= u;
        }
        return sum;
    }
    return log1p(u) - u;
}

/* x^a e^{-x} / Gamma(a), for a > 0, x > 0, computed so that its relative
 * error does not grow with a (no difference of large logarithms). */
static double gamma_prefactor(double a, double x)
{
    if (x <= 0.0)
        return 0.0;
    if (a < 10.0)
        return exp(a * log(x) - x - lgamma(a));
    /* a ln x - x - lgamma(a)
     *   = a (log(x/a) - u) + ln sqrt(a / 2pi) - stirlerr(a), u = (x - a)/a;
     * the series handles x near a; far from it, log(x/a) keeps its
     * accuracy where log1p(u) would not (x << a: 1 + u loses digits). */
    double u = (x - a) / a;
    double e = fabs(u) < 0.25 ? a * log1pmx(u) : a * log(x / a) - (x - a);
    return sqrt(a) / SQRT_2PI * exp(e - stirlerr(a));
}

/* P(a, x) by the power series, for x < a + 1. */
static double gamma_p_series(double a, double x)
{
    double term = 1.0, sum = 1.0;
    for (long n = 1; n < GAMMA_MAX_ITER; n++) {
        term *= x / (a + (double)n);
        sum += term;
        if (term <= sum * GAMMA_EPS)
            break;
    }
    return gamma_prefactor(a, x) / a * sum;
}

/* Q(a, x) by the continued fraction (modified Lentz), for x >= a + 1:
 *   Gamma(a,x) = x^a e^-x / (x+1-a - 1(1-a)/(x+3-a - 2(2-a)/(x+5-a - ...))) */
static double gamma_q_cf(double a, double x)
{
    const double tiny = DBL_MIN / DBL_EPSILON;
    double b = x + 1.0 - a;
    double c = 1.0 / tiny;
    double d = 1.0 / b;
    double h = d;
    for (long i = 1; i < GAMMA_MAX_ITER; i++) {
        double an = -(double)i * ((double)i - a);
        b += 2.0;
        d = an * d + b;
        if (fabs(d) < tiny)
            d = tiny;
        c = b + an / c;
        if (fabs(c) < tiny)
            c = tiny;
        d = 1.0 / d;
        double del = d * c;
        h *= del;
        if (fabs(del - 1.0) <= GAMMA_EPS * 4)
            break;
    }
    return gamma_prefactor(a, x) * h;
}

static int gamma_args_bad(double a, double x)
{
    return !(a > 0.0) || !isfinite(a) || !(x >= 0.0); /* NaN fails too */
}

double rs_gamma_p(double a, double x)
{
    if (gamma_args_bad(a, x))
        return NAN;
    if (x == 0.0)
        return 0.0;
    if (isinf(x))
        return 1.0;
    if (x < a + 1.0)
        return fmin(1.0, gamma_p_series(a, x));
    return 1.0 - fmin(1.0, gamma_q_cf(a, x));
}

double rs_gamma_q(double a, double x)
{
    if (gamma_args_bad(a, x))
        return NAN;
    if (x == 0.0)
        return 1.0;
    if (isinf(x))
        return 0.0;
    if (x < a + 1.0)
        return 1.0 - fmin(1.0, gamma_p_series(a, x));
    return fmin(1.0, gamma_q_cf(a, x));
}

/* ------------------------------------------------------------------ */

static int df_bad(double df)
{
    return !(df > 0.0) || !isfinite(df);
}

double rs_chi2_cdf(double x, double df)
{
    if (df_bad(df) || isnan(x))
        return NAN;
    if (x <= 0.0)
        return 0.0;
    return rs_gamma_p(df / 2.0, x / 2.0);
}

double rs_chi2_sf(double x, double df)
{
    if (df_bad(df) || isnan(x))
        return NAN;
    if (x <= 0.0)
        return 1.0;
    return rs_gamma_q(df / 2.0, x / 2.0);
}

/* Chi-square density, x > 0. */
static double chi2_pdf(double x, double df)
{
    return gamma_prefactor(df / 2.0, x / 2.0) / x;
}

/* Solves for x > 0: cdf(x) = target (upper == 0) or sf(x) = target
 * (upper == 1), 0 < target < 1.  Callers pass the smaller tail so the
 * target carries full relative precision.  Newton steps inside a bracket
 * that always holds the root; bisection when Newton leaves it. */
static double chi2_solve(double target, double df, int upper)
{
    /* h(x) increasing in x, root where h = 0. */
#define CHI2_H(xx) (upper ? target - rs_chi2_sf((xx), df) \
                          : rs_chi2_cdf((xx), df) - target)
    double a = df / 2.0;
    double lower_p = upper ? 1.0 - target : target;
    double z = upper ? -rs_norm_quantile(target) : rs_norm_quantile(target);
    /* Wilson-Hilferty start, or the small-x form P ~ y^a / Gamma(a+1). */
    double c = 2.0 / (9.0 * df);
    double wh = 1.0 - c + z * sqrt(c);
    double x = df * wh * wh * wh;
    if (!(x > 0.0) || lower_p < 0.05) {
        double small = 2.0 * exp((log(lower_p) + lgamma(a + 1.0)) / a);
        if (!(x > 0.0) || (small > 0.0 && small < x))
            x = small;
    }
    if (!(x > 0.0) || !isfinite(x))
        x = df;

    double lo = 0.0, hi = INFINITY;
    double hx = CHI2_H(x);
    if (hx < 0.0) {
        lo = x;
        hi = x * 2.0 + 1.0;
        while (CHI2_H(hi) < 0.0) {
            lo = hi;
            hi *= 2.0;
            if (!isfinite(hi))
                return INFINITY;
        }
    } else {
        hi = x;
        lo = x / 2.0;
        while (lo > DBL_MIN && CHI2_H(lo) > 0.0) {
            hi = lo;
            lo /= 2.0;
        }
        if (!(lo > DBL_MIN))
            return 0.0; /* the root is below DBL_MIN: underflows */
    }
    if (!(x > lo && x < hi))
        x = 0.5 * (lo + hi);
    for (int it = 0; it < 300; it++) {
        hx = CHI2_H(x);
        if (hx == 0.0)
            return x;
        if (hx < 0.0)
            lo = x;
        else
            hi = x;
        double pdf = chi2_pdf(x, df);
        double nx = (pdf > 0.0 && isfinite(pdf)) ? x - hx / pdf : NAN;
        if (!(nx > lo && nx < hi))
            nx = 0.5 * (lo + hi);
        if (fabs(nx - x) <= 4.0 * DBL_EPSILON * nx || hi - lo <= 4.0 * DBL_EPSILON * hi)
            return nx;
        x = nx;
    }
    return x;
#undef CHI2_H
}

double rs_chi2_quantile(double p, double df)
{
    if (df_bad(df) || !(p >= 0.0 && p <= 1.0))
        return NAN;
    if (p == 0.0)
        return 0.0;
    if (p == 1.0)
        return INFINITY;
    if (p <= 0.5)
        return chi2_solve(p, df, 0);
    return chi2_solve(1.0 - p, df, 1); /* 1 - p exact for p >= 0.5 */
}

double rs_chi2_isf(double q, double df)
{
    if (df_bad(df) || !(q >= 0.0 && q <= 1.0))
        return NAN;
    if (q == 0.0)
        return INFINITY;
    if (q == 1.0)
        return 0.0;
    if (q <= 0.5)
        return chi2_solve(q, df, 1);
    return chi2_solve(1.0 - q, df, 0);
}

/* ------------------------------------------------------------------ */

double rs_norm_cdf(double z)
{
    if (isnan(z))
        return NAN;
    return 0.5 * erfc(-z * SQRT_HALF);
}

/* Acklam's rational approximation (relative error < 1.2e-9) of the lower
 * half, p <= 0.5, refined by Halley steps on Phi(x) - p. */
static double norm_quantile_lower(double p)
{
    static const double a[] = {-3.969683028665376e+01, 2.209460984245205e+02,
                               -2.759285104469687e+02, 1.383577518672690e+02,
                               -3.066479806614716e+01, 2.506628277459239e+00};
    static const double b[] = {-5.447609879822406e+01, 1.615858368580409e+02,
                               -1.556989798598866e+02, 6.680131188771972e+01,
                               -1.328068155288572e+01};
    static const double c[] = {-7.784894002430293e-03, -3.223964580411365e-01,
                               -2.400758277161838e+00, -2.549732539343734e+00,
                               4.374664141464968e+00, 2.938163982698783e+00};
    static const double d[] = {7.784695709041462e-03, 3.224671290700398e-01,
                               2.445134137142996e+00, 3.754408661907416e+00};
    double x;
    if (p < 0.02425) {
        double q = sqrt(-2.0 * log(p));
        x = (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
            ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1.0);
    } else {
        double q = p - 0.5, r = q * q;
        x = (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q /
            (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1.0);
    }
    if (p < 1e-300)
        return x; /* Phi(x) would be subnormal: no precision to refine with */
    for (int it = 0; it < 3; it++) {
        /* u = (Phi(x) - p) / phi(x), scaled through logs: phi underflows
         * long before p does. */
        double rel = rs_norm_cdf(x) / p - 1.0;
        double u = rel * exp(log(p) + 0.5 * x * x + LN_SQRT_2PI);
        double step = u / (1.0 + 0.5 * x * u);
        x -= step;
        if (fabs(step) <= 1e-16 * fabs(x))
            break;
    }
    return x;
}

double rs_norm_quantile(double p)
{
    if (!(p >= 0.0 && p <= 1.0))
        return NAN;
    if (p == 0.0)
        return -INFINITY;
    if (p == 1.0)
        return INFINITY;
    if (p <= 0.5)
        return norm_quantile_lower(p);
    return -norm_quantile_lower(1.0 - p); /* 1 - p exact for p >= 0.5 */
}

/* ------------------------------------------------------------------ */

/* Deviance term x ln(x/M) + M - x, stable for x close to M. */
static double bd0(double x, double M)
{
    if (fabs(x - M) < 0.1 * (x + M)) {
        double v = (x - M) / (x + M);
        double s = (x - M) * v;
        double ej = 2.0 * x * v, v2 = v * v;
        for (int j = 1; j < 1000; j++) {
            ej *= v2;
            double s1 = s + ej / (2 * j + 1);
            if (s1 == s)
                return s1;
            s = s1;
        }
        return s;
    }
    return x * log(x / M) + M - x;
}

double rs_binom_logpmf(long x, long n, double p)
{
    if (n < 0 || !(p >= 0.0 && p <= 1.0))
        return NAN;
    if (x < 0 || x > n)
        return -INFINITY;
    if (p == 0.0)
        return x == 0 ? 0.0 : -INFINITY;
    if (p == 1.0)
        return x == n ? 0.0 : -INFINITY;
    double q = 1.0 - p; /* exact for p >= 1/2, relative eps otherwise */
    if (x == 0)
        return (double)n * log1p(-p);
    if (x == n)
        return (double)n * log(p);
    /* Loader's saddle-point form: no difference of large lgamma values. */
    double dn = (double)n, dx = (double)x, dy = (double)(n - x);
    double lc = stirlerr(dn) - stirlerr(dx) - stirlerr(dy) - bd0(dx, dn * p) -
                bd0(dy, dn * q);
    return lc + 0.5 * log(dn / (dx * dy)) - LN_SQRT_2PI;
}

/* ------------------------------------------------------------------ */

double rs_ncchi2_sf(double x, double df, double lambda)
{
    if (df_bad(df) || isnan(x) || !(lambda >= 0.0) || !isfinite(lambda))
        return NAN;
    if (x <= 0.0)
        return 1.0;
    if (isinf(x))
        return 0.0;
    if (lambda == 0.0)
        return rs_chi2_sf(x, df);

    /* sf = sum_j w_j Q(df/2 + j, x/2), w_j = Poisson(j; mu), mu = lambda/2.
     * Q(df/2 + j, .) grows with j; w_j falls off both ways from the mode. */
    const double mu = lambda / 2.0, y = x / 2.0, a0 = df / 2.0;
    const double eps = 1e-16;
    double j0 = floor(mu);
    /* w_j = mu^j e^-mu / j! = prefactor(j + 1, mu) / mu */
    double w0 = gamma_prefactor(j0 + 1.0, mu) / mu;
    double sum = w0 * rs_gamma_q(a0 + j0, y);

    /* upward: remainder <= sum_{i > j} w_i <= w_j r / (1 - r),
     * r = mu / (j + 1) < 1 (Q <= 1). */
    double w = w0;
    for (double j = j0 + 1.0; j < j0 + 1e7; j += 1.0) {
        w *= mu / j;
        if (w == 0.0)
            break;
        double t = w * rs_gamma_q(a0 + j, y);
        sum += t;
        double r = mu / (j + 1.0);
        if (w * r / (1.0 - r) <= eps * sum || w < DBL_MIN)
            break;
    }
    /* downward: remainder <= Q_j * sum_{i < j} w_i
     *                     <= Q_j * w_j s / (1 - s), s = j / mu < 1. */
    w = w0;
    for (double j = j0 - 1.0; j >= 0.0; j -= 1.0) {
        w *= (j + 1.0) / mu;
        if (w == 0.0)
            break;
        double q = rs_gamma_q(a0 + j, y);
        sum += w * q;
        double s = j / mu;
        if (q * w * s / (1.0 - s) <= eps * sum || q * w < DBL_MIN)
            break;
    }
    return fmin(1.0, sum);
}
