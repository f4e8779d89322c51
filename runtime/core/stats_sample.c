/* Statistics core, part 6: a growing sample of values kept sorted on demand
 * (latencies accumulated over the looks of a rollout), and simulation
 * helpers for Monte Carlo validation: normal and exact binomial variates, and
 * a latency model (lognormal body, shift, a second mode, a coarse timer).
 *
 * Lua-free, libm only.  See include/rollout/stats.h.
 */
#include "rollout/stats.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

void rs_sample_init(rs_sample *s)
{
    if (s == NULL)
        return;
    s->v = NULL;
    s->n = 0;
    s->cap = 0;
    s->sorted = 0;
}

void rs_sample_free(rs_sample *s)
{
    if (s == NULL)
        return;
    free(s->v);
    rs_sample_init(s);
}

static int reserve(rs_sample *s, size_t more)
{
    if (more > ((size_t)-1) / sizeof(double) - s->n)
        return RS_ERANGE;
    size_t need = s->n + more;
    if (need <= s->cap)
        return RS_OK;
    size_t cap = s->cap ? s->cap : 64;
    while (cap < need)
        cap = cap > ((size_t)-1) / sizeof(double) / 2 ? need : cap * 2;
    double *v = realloc(s->v, cap * sizeof *v);
    if (v == NULL)
        return RS_ENOMEM;
    s->v = v;
    s->cap = cap;
    return RS_OK;
}

int rs_sample_add(rs_sample *s, const double *x, size_t n)
{
    if (s == NULL || (x == NULL && n > 0))
        return RS_EINVAL;
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i]))
            return RS_EINVAL;
    int rc = reserve(s, n);
    if (rc != RS_OK)
        return rc;
    if (n > 0)
        memcpy(s->v + s->n, x, n * sizeof *x);
    s->n += n;
    return RS_OK;
}

/* Sorts n doubles by an LSD radix sort on their bits (8-bit digits, passes
 * where every key shares the digit skipped): O(n), no worst case, ties
 * cost nothing.  A double maps to an unsigned key of the same order by
 * flipping the sign bit of non-negatives and every bit of negatives
 * (-0.0 sorts just before +0.0; NaN is refused on entry). */
static uint64_t key_of(double x)
{
    uint64_t u;
    memcpy(&u, &x, sizeof u);
    return (u >> 63) ? ~u : u | UINT64_C(0x8000000000000000);
}

static double double_of(uint64_t k)
{
    uint64_t u = (k >> 63) ? k & ~UINT64_C(0x8000000000000000) : ~k;
    double x;
    memcpy(&x, &u, sizeof x);
    return x;
}

static int radix_sort(double *v, size_t n)
{
    if (n < 2)
        return RS_OK;
    uint64_t *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b);
    if (a == NULL || b == NULL) {
        free(a);
        free(b);
        return RS_ENOMEM;
    }
    for (size_t i = 0; i < n; i++)
        a[i] = key_of(v[i]);
    for (int shift = 0; shift < 64; shift += 8) {
        size_t count[256] = {0};
        for (size_t i = 0; i < n; i++)
            count[(a[i] >> shift) & 0xff]++;
        if (count[(a[0] >> shift) & 0xff] == n)
            continue; /* every key has this digit: the pass changes nothing */
        size_t pos = 0;
        for (int d = 0; d < 256; d++) {
            size_t c = count[d];
            count[d] = pos;
            pos += c;
        }
        for (size_t i = 0; i < n; i++)
            b[count[(a[i] >> shift) & 0xff]++] = a[i];
        uint64_t *t = a;
        a = b;
        b = t;
    }
    for (size_t i = 0; i < n; i++)
        v[i] = double_of(a[i]);
    free(a);
    free(b);
    return RS_OK;
}

int rs_sample_sort(rs_sample *s)
{
    if (s == NULL)
        return RS_EINVAL;
    if (s->sorted == s->n)
        return RS_OK;
    size_t old = s->sorted, add = s->n - old;
    int rc = radix_sort(s->v + old, add);
    if (rc != RS_OK)
        return rc;
    if (old > 0 && s->v[old - 1] > s->v[old]) {
        /* merge the two sorted runs through a buffer of the smaller one's
         * size: the new run (usually the smaller) is merged from the back */
        double *tmp = malloc(add * sizeof *tmp);
        if (tmp == NULL)
            return RS_ENOMEM;
        memcpy(tmp, s->v + old, add * sizeof *tmp);
        size_t i = old, j = add, k = s->n;
        while (j > 0) {
            if (i > 0 && s->v[i - 1] > tmp[j - 1])
                s->v[--k] = s->v[--i];
            else
                s->v[--k] = tmp[--j];
        }
        free(tmp);
    }
    s->sorted = s->n;
    return RS_OK;
}

double rs_sample_order(rs_sample *s, size_t r)
{
    if (s == NULL || r < 1 || r > s->n || rs_sample_sort(s) != RS_OK)
        return NAN;
    return s->v[r - 1];
}

/* First index whose value is > t (strict) or >= t. */
static size_t bound(const double *v, size_t n, double t, int strict)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strict ? v[mid] <= t : v[mid] < t)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

long rs_sample_count_above(rs_sample *s, double t)
{
    if (s == NULL || isnan(t))
        return RS_EINVAL;
    int rc = rs_sample_sort(s);
    if (rc != RS_OK)
        return rc;
    return (long)(s->n - bound(s->v, s->n, t, 1));
}

long rs_sample_count_at_least(rs_sample *s, double t)
{
    if (s == NULL || isnan(t))
        return RS_EINVAL;
    int rc = rs_sample_sort(s);
    if (rc != RS_OK)
        return rc;
    return (long)(s->n - bound(s->v, s->n, t, 0));
}

/* ------------------------------------------------------------------ */
/* simulation                                                          */

double rs_rng_normal(rs_rng *rng)
{
    /* Box-Muller, one value per call (no hidden state); u1 in (0, 1] */
    double u1 = 1.0 - rs_rng_double(rng), u2 = rs_rng_double(rng);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586476925286766559 * u2);
}

long rs_rng_binomial(rs_rng *rng, long n, double p)
{
    if (rng == NULL || n < 0 || !(p >= 0.0 && p <= 1.0))
        return RS_EINVAL;
    if (n == 0 || p == 0.0)
        return 0;
    if (p == 1.0)
        return n;
    if (p > 0.5)
        return n - rs_rng_binomial(rng, n, 1.0 - p);
    /* inversion by a chop-down search from the mode outward: exact up to
     * rounding, O(sqrt(n p q)) steps */
    double q = 1.0 - p;
    long m = (long)floor(((double)n + 1.0) * p);
    if (m > n)
        m = n;
    double pm = exp(rs_binom_logpmf(m, n, p));
    double u = rs_rng_double(rng);
    if (u < pm)
        return m;
    u -= pm;
    double plo = pm, phi = pm;
    long lo = m - 1, hi = m + 1;
    while (lo >= 0 || hi <= n) {
        if (lo >= 0) {
            /* pmf(lo) = pmf(lo + 1) * (lo + 1) q / ((n - lo) p) */
            plo *= ((double)(lo + 1) * q) / ((double)(n - lo) * p);
            if (u < plo)
                return lo;
            u -= plo;
            lo--;
        }
        if (hi <= n) {
            /* pmf(hi) = pmf(hi - 1) * (n - hi + 1) p / (hi q) */
            phi *= ((double)(n - hi + 1) * p) / ((double)hi * q);
            if (u < phi)
                return hi;
            u -= phi;
            hi++;
        }
        if (plo < 1e-300 && phi < 1e-300)
            break; /* what is left is rounding */
    }
    return m;
}

static double latency_shape(rs_rng *rng, const rs_latency_model *m, double z)
{
    double x = m->median_ms * exp(m->sigma * z) + m->shift_ms;
    if (m->tail_share > 0.0 && rs_rng_double(rng) < m->tail_share)
        x += m->tail_ms;
    if (m->spike_share > 0.0 && rs_rng_double(rng) < m->spike_share)
        x += m->spike_ms * rs_rng_double(rng);
    if (x < 0.0)
        x = 0.0;
    if (m->resolution_ms > 0.0)
        x = floor(x / m->resolution_ms) * m->resolution_ms; /* a coarse timer */
    return x;
}

double rs_latency_draw(rs_rng *rng, const rs_latency_model *m)
{
    return latency_shape(rng, m, rs_rng_normal(rng));
}

int rs_sample_simulate(rs_sample *s, rs_rng *rng, size_t n, const rs_latency_model *m)
{
    if (s == NULL || rng == NULL || m == NULL || !(m->median_ms >= 0.0) ||
        !(m->sigma >= 0.0) || !isfinite(m->shift_ms) || !(m->tail_share >= 0.0) ||
        !(m->tail_share <= 1.0) || !isfinite(m->tail_ms) || !(m->resolution_ms >= 0.0) ||
        !(m->spike_share >= 0.0) || !(m->spike_share <= 1.0) || !isfinite(m->spike_ms) ||
        !isfinite(m->median_ms) || !isfinite(m->sigma) || !isfinite(m->resolution_ms))
        return RS_EINVAL;
    int rc = reserve(s, n);
    if (rc != RS_OK)
        return rc;
    double *out = s->v + s->n;
    for (size_t i = 0; i < n; i += 2) {
        /* Marsaglia's polar method: two normals per accepted point */
        double a, b, r2;
        do {
            a = 2.0 * rs_rng_double(rng) - 1.0;
            b = 2.0 * rs_rng_double(rng) - 1.0;
            r2 = a * a + b * b;
        } while (r2 >= 1.0 || r2 == 0.0);
        double f = sqrt(-2.0 * log(r2) / r2);
        out[i] = latency_shape(rng, m, a * f);
        if (i + 1 < n)
            out[i + 1] = latency_shape(rng, m, b * f);
    }
    s->n += n;
    return RS_OK;
}
