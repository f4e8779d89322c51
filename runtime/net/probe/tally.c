/* Probe tallies: versions interned per run, latencies, samples; merging
 * the tallies of worker threads; percentiles. Lua-free. */
#include "rollout/probe.h"

#include <stdlib.h>
#include <string.h>

int probe_tally_version(probe_result *r, const char *v, size_t len)
{
    char *copy;
    for (size_t i = r->nversions; i-- > 0;)
        if (strncmp(r->versions[i], v, len) == 0 && r->versions[i][len] == '\0')
            return (int)i;
    if (r->nversions >= PROBE_MAX_VERSIONS)
        return -1;
    copy = malloc(len + 1);
    if (copy == NULL)
        return -2;
    memcpy(copy, v, len);
    copy[len] = '\0';
    r->versions[r->nversions] = copy;
    return (int)r->nversions++;
}

/* Appends v to the array *a of *n values (capacity *cap). 0 or -1. */
static int append_u32(uint32_t **a, size_t *n, size_t *cap, uint32_t v)
{
    if (*n == *cap) {
        size_t c = *cap ? *cap * 2 : 256;
        uint32_t *p = realloc(*a, c * sizeof *p);
        if (p == NULL)
            return -1;
        *a = p;
        *cap = c;
    }
    (*a)[(*n)++] = v;
    return 0;
}

/* Appends the bn values of b to the array *a of *n values. 0 or -1. */
static int concat_u32(uint32_t **a, size_t *n, size_t *cap, const uint32_t *b, size_t bn)
{
    uint32_t *p;
    if (bn == 0)
        return 0;
    p = realloc(*a, (*n + bn) * sizeof *p);
    if (p == NULL)
        return -1;
    memcpy(p + *n, b, bn * sizeof *p);
    *a = p;
    *n += bn;
    *cap = *n;
    return 0;
}

int probe_tally_latency(probe_result *r, uint32_t us)
{
    return append_u32(&r->latency_us, &r->nlatency, &r->cap_latency, us);
}

int probe_tally_served(probe_result *r, int idx, uint32_t us)
{
    return append_u32(&r->vlat[idx], &r->nvlat[idx], &r->capvlat[idx], us);
}

int probe_tally_variant_served(probe_result *r, int v, uint32_t us)
{
    probe_variant_tally *t = &r->variants[v];
    t->served++;
    return append_u32(&t->lat, &t->nlat, &t->caplat, us);
}

int probe_tally_sample(probe_result *r, int32_t what, uint32_t us)
{
    if (r->nsamples == r->cap_samples) {
        size_t cap = r->cap_samples ? r->cap_samples * 2 : 1024;
        probe_sample *p = realloc(r->samples, cap * sizeof *p);
        if (p == NULL)
            return -1;
        r->samples = p;
        r->cap_samples = cap;
    }
    r->samples[r->nsamples].what = what;
    r->samples[r->nsamples].latency_us = us;
    r->nsamples++;
    return 0;
}

static int by_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

int probe_result_merge(probe_result *res, const probe_result *r)
{
    res->sent += r->sent;
    res->completed += r->completed;
    for (int k = 0; k < PROBE_NKINDS; k++)
        res->errors[k] += r->errors[k];
    for (int st = 0; st < PROBE_STATUS_MAX; st++)
        res->status_counts[st] += r->status_counts[st];
    for (size_t i = 0; i < r->nversions; i++) {
        int idx = probe_tally_version(res, r->versions[i], strlen(r->versions[i]));
        if (idx < 0)
            return -1;
        res->counts[idx] += r->counts[i];
        for (int k = 0; k < PROBE_NKINDS; k++)
            res->verrors[idx][k] += r->verrors[i][k];
        if (concat_u32(&res->vlat[idx], &res->nvlat[idx], &res->capvlat[idx], r->vlat[i], r->nvlat[i]) != 0)
            return -1;
    }
    for (int v = 0; v < PROBE_MAX_VARIANTS; v++) {
        probe_variant_tally *a = &res->variants[v];
        const probe_variant_tally *b = &r->variants[v];
        a->sent += b->sent;
        a->completed += b->completed;
        a->served += b->served;
        for (int k = 0; k < PROBE_NKINDS; k++)
            a->errors[k] += b->errors[k];
        if (concat_u32(&a->lat, &a->nlat, &a->caplat, b->lat, b->nlat) != 0)
            return -1;
    }
    return concat_u32(&res->latency_us, &res->nlatency, &res->cap_latency, r->latency_us, r->nlatency);
}

void probe_result_move(probe_result *res, probe_result *r)
{
    res->sent = r->sent;
    res->completed = r->completed;
    memcpy(res->errors, r->errors, sizeof res->errors);
    memcpy(res->status_counts, r->status_counts, sizeof res->status_counts);
    res->nversions = r->nversions;
    memcpy(res->versions, r->versions, r->nversions * sizeof r->versions[0]);
    memcpy(res->counts, r->counts, r->nversions * sizeof r->counts[0]);
    memcpy(res->verrors, r->verrors, r->nversions * sizeof r->verrors[0]);
    memcpy(res->vlat, r->vlat, r->nversions * sizeof r->vlat[0]);
    memcpy(res->nvlat, r->nvlat, r->nversions * sizeof r->nvlat[0]);
    memcpy(res->capvlat, r->capvlat, r->nversions * sizeof r->capvlat[0]);
    memcpy(res->variants, r->variants, sizeof res->variants);
    res->latency_us = r->latency_us;
    res->nlatency = r->nlatency;
    res->cap_latency = r->cap_latency;
    res->samples = r->samples;
    res->nsamples = r->nsamples;
    res->cap_samples = r->cap_samples;
    memset(r, 0, sizeof *r);
}

void probe_result_free(probe_result *res)
{
    for (size_t i = 0; i < res->nversions; i++) {
        free(res->versions[i]);
        free(res->vlat[i]);
        res->vlat[i] = NULL;
        res->nvlat[i] = res->capvlat[i] = 0;
    }
    res->nversions = 0;
    for (int v = 0; v < PROBE_MAX_VARIANTS; v++) {
        free(res->variants[v].lat);
        memset(&res->variants[v], 0, sizeof res->variants[v]);
    }
    free(res->latency_us);
    res->latency_us = NULL;
    res->nlatency = res->cap_latency = 0;
    free(res->samples);
    res->samples = NULL;
    res->nsamples = res->cap_samples = 0;
}

double probe_rank_ms(const uint32_t *a, size_t n, double p)
{
    size_t rank;
    if (n == 0)
        return 0;
    rank = (size_t)((double)n * p + 0.999999999);
    if (rank < 1)
        rank = 1;
    if (rank > n)
        rank = n;
    return a[rank - 1] / 1000.0;
}

double probe_percentile_ms(const probe_result *res, double p)
{
    return probe_rank_ms(res->latency_us, res->nlatency, p);
}

void probe_result_sort(probe_result *res)
{
    if (res->nlatency > 1)
        qsort(res->latency_us, res->nlatency, sizeof res->latency_us[0], by_u32);
    for (size_t i = 0; i < res->nversions; i++)
        if (res->nvlat[i] > 1)
            qsort(res->vlat[i], res->nvlat[i], sizeof res->vlat[i][0], by_u32);
    for (int v = 0; v < PROBE_MAX_VARIANTS; v++)
        if (res->variants[v].nlat > 1)
            qsort(res->variants[v].lat, res->variants[v].nlat, sizeof res->variants[v].lat[0], by_u32);
}
