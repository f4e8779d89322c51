/* Relative weights: validation, shares, largest-remainder percentages. */
#include "rollout/weights.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int rw_is_dns1123_label(const char *s)
{
    size_t n;
    if (s == NULL)
        return 0;
    n = strlen(s);
    if (n == 0 || n > RW_MAX_NAME)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        int alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        if (!alnum && !(c == '-' && i > 0 && i + 1 < n))
            return 0;
    }
    return 1;
}

/* Quotes a possibly hostile name for a message: printable ASCII only, cut. */
static void quote_name(const char *s, char *out, size_t outlen)
{
    size_t j = 0;
    if (outlen == 0)
        return;
    for (size_t i = 0; s && s[i] && j + 5 < outlen; i++) {
        unsigned char c = (unsigned char)s[i];
        if (i >= 40) {
            out[j++] = '.';
            out[j++] = '.';
            out[j++] = '.';
            break;
        }
        out[j++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    out[j] = '\0';
}

int rw_validate(const rw_entry *e, size_t n, char *err, size_t errlen)
{
    char q[64];
    int any_positive = 0;
    if (n == 0) {
        snprintf(err, errlen, "no versions given");
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        quote_name(e[i].name, q, sizeof q);
        if (!rw_is_dns1123_label(e[i].name)) {
            snprintf(err, errlen,
                     "version name \"%s\" is not a DNS-1123 label "
                     "(1-63 characters of a-z, 0-9 and '-', starting and ending "
                     "with a letter or digit)", q);
            return -1;
        }
        for (size_t j = 0; j < i; j++) {
            if (strcmp(e[i].name, e[j].name) == 0) {
                snprintf(err, errlen, "version %s is listed twice", q);
                return -1;
            }
        }
        if (e[i].weight < 0) {
            snprintf(err, errlen, "weight of %s must be >= 0 (got %lld)", q, e[i].weight);
            return -1;
        }
        if (e[i].weight > RW_MAX_WEIGHT) {
            snprintf(err, errlen, "weight of %s must be <= %lld (got %lld)", q,
                     RW_MAX_WEIGHT, e[i].weight);
            return -1;
        }
        if (e[i].weight > 0)
            any_positive = 1;
    }
    if (!any_positive) {
        snprintf(err, errlen, "all weights are 0: at least one version must receive traffic");
        return -1;
    }
    return 0;
}

void rw_shares(const rw_entry *e, size_t n, double *share)
{
    long long sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += e[i].weight;
    for (size_t i = 0; i < n; i++)
        share[i] = sum > 0 ? (double)e[i].weight / (double)sum : 0.0;
}

typedef struct rank {
    size_t index;
    long long remainder; /* (100 * w) mod sum: exact, no floating point */
    const char *name;
} rank;

static int by_remainder_then_name(const void *a, const void *b)
{
    const rank *x = a, *y = b;
    if (x->remainder != y->remainder)
        return x->remainder > y->remainder ? -1 : 1;
    return strcmp(x->name, y->name);
}

int rw_percentages(const rw_entry *e, size_t n, int *pct)
{
    rank ranks[4096];
    long long sum = 0, given = 0;
    if (n > sizeof ranks / sizeof ranks[0])
        return -1;
    for (size_t i = 0; i < n; i++)
        sum += e[i].weight;
    if (sum <= 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        long long scaled = 100LL * e[i].weight;
        pct[i] = (int)(scaled / sum);
        given += pct[i];
        ranks[i].index = i;
        ranks[i].remainder = scaled % sum;
        ranks[i].name = e[i].name;
    }
    qsort(ranks, n, sizeof ranks[0], by_remainder_then_name);
    for (size_t k = 0; given < 100 && k < n; k++) {
        if (ranks[k].remainder == 0)
            break;
        pct[ranks[k].index]++;
        given++;
    }
    return 0;
}
