/* faults.c - fault knobs held in C11 atomics, and their parsers. */
#define _POSIX_C_SOURCE 200809L
#include "faults.h"

#include "json.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The error rate is kept as the bits of a double so that a plain 64-bit
 * atomic suffices (no libatomic needed). */
static atomic_uint_fast64_t error_rate_bits;
static atomic_uint latency_ms;
static atomic_bool fail_health;
static pthread_mutex_t write_lock = PTHREAD_MUTEX_INITIALIZER;

static uint64_t double_bits(double d)
{
    uint64_t u;
    memcpy(&u, &d, sizeof u);
    return u;
}

static double bits_double(uint64_t u)
{
    double d;
    memcpy(&d, &u, sizeof d);
    return d;
}

int faults_parse_error_rate(const char *s, double *out)
{
    char *end;
    double v;

    /* digits and a dot only: no sign, blanks, "nan", "inf" or hex */
    if (s == NULL || *s == '\0' || strspn(s, "0123456789.") != strlen(s))
        return -1;
    errno = 0;
    v = strtod(s, &end);
    if (errno != 0 || *end != '\0' || !isfinite(v) || v < 0.0 || v > 1.0)
        return -1;
    *out = v + 0.0; /* turns -0 into 0 */
    return 0;
}

int faults_parse_latency_ms(const char *s, unsigned *out)
{
    char *end;
    unsigned long v;

    if (s == NULL || *s < '0' || *s > '9')
        return -1;
    errno = 0;
    v = strtoul(s, &end, 10);
    if (errno != 0 || *end != '\0' || v > FAULTS_MAX_LATENCY_MS)
        return -1;
    *out = (unsigned)v;
    return 0;
}

int faults_parse_bool(const char *s, bool *out)
{
    if (s == NULL)
        return -1;
    if (!strcmp(s, "1") || !strcmp(s, "true") || !strcmp(s, "yes") ||
        !strcmp(s, "on")) {
        *out = true;
        return 0;
    }
    if (!strcmp(s, "0") || !strcmp(s, "false") || !strcmp(s, "no") ||
        !strcmp(s, "off")) {
        *out = false;
        return 0;
    }
    return -1;
}

static void store(const struct faults *f)
{
    atomic_store_explicit(&error_rate_bits, double_bits(f->error_rate),
                          memory_order_relaxed);
    atomic_store_explicit(&latency_ms, f->latency_ms, memory_order_relaxed);
    atomic_store_explicit(&fail_health, f->fail_health, memory_order_relaxed);
}

void faults_init(const struct faults *initial)
{
    store(initial);
}

void faults_snapshot(struct faults *out)
{
    out->error_rate = bits_double(
        atomic_load_explicit(&error_rate_bits, memory_order_relaxed));
    out->latency_ms = atomic_load_explicit(&latency_ms, memory_order_relaxed);
    out->fail_health =
        atomic_load_explicit(&fail_health, memory_order_relaxed);
}

void faults_apply(const struct faults *values, unsigned which,
                  struct faults *now_out)
{
    struct faults f;

    pthread_mutex_lock(&write_lock);
    faults_snapshot(&f);
    if (which & FAULT_ERROR_RATE)
        f.error_rate = values->error_rate;
    if (which & FAULT_LATENCY)
        f.latency_ms = values->latency_ms;
    if (which & FAULT_FAIL_HEALTH)
        f.fail_health = values->fail_health;
    store(&f);
    pthread_mutex_unlock(&write_lock);
    *now_out = f;
}

unsigned faults_latency_ms(void)
{
    return atomic_load_explicit(&latency_ms, memory_order_relaxed);
}

bool faults_fail_health(void)
{
    return atomic_load_explicit(&fail_health, memory_order_relaxed);
}

/* ---- per-thread PRNG: xorshift64*, seeded once per thread by splitmix64 */

static _Thread_local uint64_t rng_state;
static atomic_uint_fast64_t rng_seed_counter;

static uint64_t splitmix64(uint64_t x)
{
    x += UINT64_C(0x9e3779b97f4a7c15);
    x = (x ^ (x >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    x = (x ^ (x >> 27)) * UINT64_C(0x94d049bb133111eb);
    return x ^ (x >> 31);
}

static uint64_t rng_next(void)
{
    uint64_t x = rng_state;

    if (x == 0) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        x = splitmix64((uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 30) ^
                       (uint64_t)(uintptr_t)&rng_state ^
                       atomic_fetch_add(&rng_seed_counter, 1) << 48);
        if (x == 0)
            x = UINT64_C(0x2545f4914f6cdd1d);
    }
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    rng_state = x;
    return x * UINT64_C(0x2545f4914f6cdd1d);
}

bool faults_should_fail(void)
{
    double rate = bits_double(
        atomic_load_explicit(&error_rate_bits, memory_order_relaxed));

    if (rate <= 0.0)
        return false;
    if (rate >= 1.0)
        return true;
    /* top 53 bits -> uniform double in [0, 1) */
    return (double)(rng_next() >> 11) * 0x1.0p-53 < rate;
}

int faults_to_json(const struct faults *f, const char *version, char *dst,
                   size_t cap)
{
    char rate[32];
    size_t len;
    int n;

    if (json_format_double(rate, sizeof rate, f->error_rate) < 0)
        return -1;
    n = snprintf(dst, cap,
                 "{\"error_rate\":%s,\"latency_ms\":%u,\"fail_health\":%s,"
                 "\"version\":",
                 rate, f->latency_ms, f->fail_health ? "true" : "false");
    if (n < 0 || (size_t)n >= cap)
        return -1;
    len = (size_t)n;
    if (json_append_string(dst, cap, &len, version) < 0 || len + 2 > cap)
        return -1;
    dst[len++] = '}';
    dst[len] = '\0';
    return (int)len;
}
