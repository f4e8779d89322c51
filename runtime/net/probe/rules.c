/* The rules every probe worker shares (Lua-free): whether a request may
 * start (the count, the duration, the deadline), how a failure stops all
 * workers, and how a finished request is counted: exactly one bucket (a
 * version or an error kind) per completed request. The workers'
 * connections are runtime/net/probe/conn.c; the run, its threads and the
 * merge of their tallies runtime/net/probe/engine.c. */
#include "internal.h"

#include <stdio.h>
#include <string.h>

void probe_fail(probe_worker *w, int status, const char *msg)
{
    if (w->status == PROBE_OK) {
        w->status = status;
        snprintf(w->err, sizeof w->err, "%s", msg);
    }
    atomic_store(&w->s->stop, PROBE_ABORT);
}

int probe_may_start(probe_worker *w, double now)
{
    probe_shared *s = w->s;
    const probe_config *c = s->cfg;
    if (atomic_load_explicit(&s->stop, memory_order_relaxed) != PROBE_GO)
        return 0;
    if (s->t_deadline > 0 && now >= s->t_deadline) {
        atomic_store(&s->hit_deadline, 1);
        atomic_store(&s->stop, PROBE_ABORT);
        return 0;
    }
    if (s->t_end > 0 && now >= s->t_end) {
        int expect = PROBE_GO;
        if (atomic_compare_exchange_strong(&s->stop, &expect, PROBE_NO_MORE))
            atomic_store(&s->hit_duration, 1);
        return 0;
    }
    if (c->n > 0 && atomic_fetch_add(&s->claimed, 1) >= c->n) {
        int expect = PROBE_GO;
        atomic_compare_exchange_strong(&s->stop, &expect, PROBE_NO_MORE);
        return 0;
    }
    return 1;
}

/* The version of a complete 2xx response: 1 (in sl->ver), 0 none, -1 abort. */
static int extract(probe_worker *w, probe_slot *sl)
{
    const probe_config *c = w->s->cfg;
    int got;
    if (c->mode == PROBE_EXTRACT_JSON)
        return probe_extract_json(c, sl->http.body.p, sl->http.body.len, sl->ver, &sl->verlen);
    if (c->mode == PROBE_EXTRACT_HEADER)
        return sl->have_ver;
    {
        probe_response resp = {sl->http.status, sl->http.body.p, sl->http.body.len, sl->hdr.p, sl->hdr.len};
        got = c->extract(c->extract_ud, &resp, sl->ver, &sl->verlen);
    }
    if (got < 0) {
        probe_fail(w, PROBE_ABORTED, "the extract function failed");
        return -1;
    }
    return got > 0 && probe_valid_version(sl->ver, sl->verlen);
}

/* The version an error response names (its body or header as the
 * extraction reads them, else the served_by header): its index in the
 * tally, or -1 when none (or the tally is full). */
static int error_version(probe_worker *w, probe_slot *sl, int outcome, int is_2xx)
{
    const probe_config *c = w->s->cfg;
    const char *v = NULL;
    size_t len = 0;
    if (outcome == PROBE_OUT_RESPONSE && !is_2xx) {
        if (c->mode == PROBE_EXTRACT_JSON &&
            probe_extract_json(c, sl->http.body.p, sl->http.body.len, sl->ver, &sl->verlen))
            v = sl->ver, len = sl->verlen;
        else if (c->mode == PROBE_EXTRACT_HEADER && sl->have_ver)
            v = sl->ver, len = sl->verlen;
    }
    if (v == NULL && outcome < 0 && sl->have_by)
        v = sl->by, len = sl->bylen;
    if (v == NULL)
        return -1;
    return probe_tally_version(w->r, v, len);
}

int probe_finish(probe_worker *w, probe_slot *sl, int outcome, double now)
{
    const probe_config *c = w->s->cfg;
    probe_result *r = w->r;
    double dt = (now - sl->t_start) * 1e6;
    uint32_t us = dt <= 0 ? 0 : dt >= (double)UINT32_MAX ? UINT32_MAX : (uint32_t)dt;
    int32_t what = 0;
    int kind = -1, vidx = -1;

    if (outcome < 0) {
        long status = sl->http.status;
        int is_2xx = status >= 200 && status <= 299;
        if (status > 0 && status < PROBE_STATUS_MAX)
            r->status_counts[status]++;
        if (is_2xx) {
            int got = 0;
            if (outcome == PROBE_OUT_RESPONSE && (got = extract(w, sl)) < 0)
                return -1;
            if (got) {
                int idx = probe_tally_version(r, sl->ver, sl->verlen);
                if (idx == -2) {
                    probe_fail(w, PROBE_FAILED, "out of memory");
                    return -1;
                }
                if (idx >= 0) {
                    what = idx;
                    r->counts[idx]++;
                    if (probe_tally_served(r, idx, us) != 0 ||
                        (c->nvariants > 0 && probe_tally_variant_served(r, sl->variant, us) != 0)) {
                        probe_fail(w, PROBE_FAILED, "out of memory");
                        return -1;
                    }
                } else {
                    kind = PROBE_PARSE; /* more distinct versions than we keep */
                }
            } else {
                kind = PROBE_PARSE; /* no version, or a body over the cap */
            }
        } else if (status >= 400 && status <= 499) {
            kind = PROBE_HTTP_4XX;
        } else if (status >= 500 && status <= 599) {
            kind = PROBE_HTTP_5XX;
        } else {
            kind = PROBE_OTHER;
        }
        if (kind >= 0)
            vidx = error_version(w, sl, outcome, is_2xx);
    } else {
        kind = outcome;
    }
    if (vidx == -2) {
        probe_fail(w, PROBE_FAILED, "out of memory");
        return -1;
    }
    if (kind >= 0) {
        r->errors[kind]++;
        if (vidx >= 0)
            r->verrors[vidx][kind]++;
        if (c->nvariants > 0)
            r->variants[sl->variant].errors[kind]++;
        what = -(kind + 1);
    }
    if (c->nvariants > 0)
        r->variants[sl->variant].completed++;
    r->completed++;
    atomic_fetch_add_explicit(&w->s->done, 1, memory_order_relaxed);
    if (probe_tally_latency(r, us) != 0 || (c->record && probe_tally_sample(r, what, us) != 0)) {
        probe_fail(w, PROBE_FAILED, "out of memory");
        return -1;
    }
    return 0;
}
