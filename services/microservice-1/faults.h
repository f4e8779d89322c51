/* faults.h - the runtime fault knobs (error rate, latency, failing health),
 * their validation, and the per-thread random draw used for error injection. */
#ifndef MICROSERVICE1_FAULTS_H
#define MICROSERVICE1_FAULTS_H

#include <stdbool.h>
#include <stddef.h>

#define FAULTS_MAX_LATENCY_MS 60000u

struct faults {
    double error_rate;   /* share of /api/version answered 500, 0..1 */
    unsigned latency_ms; /* added to each /api/version request */
    bool fail_health;    /* /healthz answers 503 */
};

/* Parsers shared by the command line, the environment and /admin/faults.
 * Each returns 0 and stores the value, or -1 (and leaves *out alone). */
int faults_parse_error_rate(const char *s, double *out);
int faults_parse_latency_ms(const char *s, unsigned *out);
int faults_parse_bool(const char *s, bool *out);

/* Which knobs faults_apply() changes. */
enum {
    FAULT_ERROR_RATE = 1 << 0,
    FAULT_LATENCY = 1 << 1,
    FAULT_FAIL_HEALTH = 1 << 2,
};

/* Knob storage: lock-free reads on the request path; writers are
 * serialised so that concurrent partial updates do not undo each other
 * and the echoed state is the one just written. */
void faults_init(const struct faults *initial);
void faults_apply(const struct faults *values, unsigned which,
                  struct faults *now_out);
void faults_snapshot(struct faults *out);
unsigned faults_latency_ms(void);
bool faults_fail_health(void);

/* True for the injected share of requests (xorshift64* per thread). */
bool faults_should_fail(void);

/* {"error_rate":0.2,"latency_ms":50,"fail_health":false,"version":"v1"} */
int faults_to_json(const struct faults *f, const char *version, char *dst,
                   size_t cap);

#endif
