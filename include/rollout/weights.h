/* Relative weights: validation, shares and exact integer percentages.
 * Pure C, no Lua: tested directly by tests/c/test_weights.c. */
#ifndef ROLLOUT_WEIGHTS_H
#define ROLLOUT_WEIGHTS_H

#include <stddef.h>

/* The largest weight accepted (Istio's weights are int32; rollout keeps a
 * margin so sums of many versions never overflow). */
#define RW_MAX_WEIGHT 1000000LL
/* DNS-1123 label: 1..63 of [a-z0-9-], alphanumeric at both ends. */
#define RW_MAX_NAME 63

typedef struct rw_entry {
    const char *name;
    long long weight;
} rw_entry;

/* 1 when s is a DNS-1123 label. */
int rw_is_dns1123_label(const char *s);

/* 0 when the set is valid: names are DNS-1123 labels and unique, weights are
 * 0..RW_MAX_WEIGHT, at least one is positive. Otherwise -1 and a message that
 * names the offending version in err. */
int rw_validate(const rw_entry *e, size_t n, char *err, size_t errlen);

/* share[i] = weight[i] / sum(weights). The set must be valid. */
void rw_shares(const rw_entry *e, size_t n, double *share);

/* Integer percentages summing to exactly 100 by largest remainder; among
 * equal remainders the version whose name sorts first gets the extra point.
 * The set must be valid. Returns 0, or -1 when n is too large (> 4096). */
int rw_percentages(const rw_entry *e, size_t n, int *pct);

#endif
