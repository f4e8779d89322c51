/* rollout.probe: many requests against a gateway, counted per version.
 *
 *   probe.run{url=, n=, duration=, concurrency=50, timeout=2,
 *             connect_timeout=timeout, headers={Name="v"}, method="GET",
 *             extract="json:version" | "json:a.b" | "header:NAME"
 *                     | function(status, body, headers) -> version | nil,
 *             served_by="X-Served-By" (a header naming who answered),
 *             deadline=, on_progress=function(done, total, elapsed),
 *             keepalive=true, record=false, latencies=false, threads=2,
 *             variants = {{name=, headers={...}, weight=1}, ...}}
 *     -> { sent, completed, served, counts = {v1 = N, ...},
 *          errors = {connect, timeout, http_4xx, http_5xx, parse, other},
 *          error_total, status = {[200] = N, ...},
 *          by_version = {v1 = {served, errors = {kind = N}, error_total,
 *                              latency_ms = {p50, p90, p99, max, mean}}},
 *          errors_by_version = {v3 = {http_5xx = N, ...}} (versions with errors),
 *          errors_unattributed = N (errors no version was named for),
 *          latencies = {v1 = {ms, ...} sorted} (latencies = true),
 *          by_variant = {name = {sent, completed, served, errors = {kind = N},
 *                                error_total, latency_ms, latencies}} (variants),
 *          latency_ms = {p50, p90, p99, max, mean} (empty when none completed),
 *          duration, rate, stopped = nil | "deadline" | "duration",
 *          samples = {{"v1" | kind, latency_ms}, ...} (record = true) }
 *     -> nil, message, "invalid", "invalid" for a URL that is not http(s);
 *        nil, message, "other", "other" when the probe cannot be set up
 *
 * n and/or duration (seconds) say when to stop sending; in-flight requests
 * then finish (each bounded by timeout). deadline (seconds from the start)
 * is a hard stop: requests in flight are abandoned (sent - completed).
 * A 2xx response is asked for a version (else it is a parse error); other
 * statuses are http_4xx, http_5xx or other, and each error is attributed to
 * the version its body (the same JSON field) or header names, or else the
 * served_by header, when one does: a version's errors are its own. extract functions run on the calling thread, so they
 * (and record = true) force threads = 1; otherwise the work is split over
 * `threads` worker threads, each with its own multi handle. Misuse raises;
 * ^C raises the interrupt sentinel and an error in extract / on_progress is re-raised
 * as is, both after every handle is freed.
 *
 * Variants interleave kinds of requests in one run, so that they see the
 * same moments of the machine (a canary and its baseline, each through
 * its version header): request i is sent with the headers of a variant
 * (instead of `headers`), the variants taking turns in proportion to their
 * weights (integers, summing to at most 256), and each variant's requests
 * are tallied on their own as well.
 *
 * Requests are HTTP/1.1 on kept-alive connections (a new one when the
 * server closes or says "Connection: close", after an error or a timeout,
 * and per request with keepalive = false); a kept-alive connection the
 * server closed before answering gets the request once more on a new one,
 * uncounted. Bodies are kept up to 1 MiB (a 2xx over it counts as parse);
 * chunked, HTTP/1.0 and close-delimited responses are read like any other.
 *
 * The engine is Lua-free (runtime/net/probe/: engine.c, conn.c, rules.c,
 * http.c; see include/rollout/probe.h for why it speaks HTTP/1.1 itself on
 * connections libcurl makes); this file reads options, calls the
 * Lua functions under lua_pcall and builds the result. Every C resource is
 * held by a userdata whose __gc/__close frees it, and is freed explicitly
 * before any error is raised. */
#include "rollout/curlx.h"
#include "rollout/host.h"
#include "rollout/probe.h"

#include <math.h>
#include <string.h>
#include <unistd.h>

#define PROBE_STATE "rollout.probe.state"
#define PROBE_MAX_CONCURRENCY 1000
/* Worker threads when nothing forces one (a Lua extract function or
 * record = true run on the calling thread): 2 on a machine with 2 or more
 * CPUs. Measured with tests/bench/probe on 2 CPUs shared with HAProxy and
 * the backends (median of 5 rounds): one thread about 1.07x wrk, two about
 * 1.04x — the same there; two help where the client has CPUs to itself. */
#define PROBE_DEFAULT_THREADS 2

typedef struct probe_state {
    probe_config cfg;
    probe_result res;
    struct curl_slist *headers;
    char vnames[PROBE_MAX_VARIANTS][64];
    int closed;
    /* Lua side of the callbacks */
    lua_State *L;
    int extract_idx, progress_idx, err_idx;
    const char *bad_return; /* a type name when extract returned a bad value */
} probe_state;

/* The one idempotent close, for __gc, __close and the explicit frees. */
static void state_free(probe_state *st)
{
    if (!st->closed) {
        st->closed = 1;
        probe_result_free(&st->res);
        curl_slist_free_all(st->headers);
        st->headers = NULL;
        for (int v = 0; v < PROBE_MAX_VARIANTS; v++) {
            curl_slist_free_all(st->cfg.variant_headers[v]);
            st->cfg.variant_headers[v] = NULL;
        }
    }
}

static int state_close(lua_State *L)
{
    state_free(luaL_checkudata(L, 1, PROBE_STATE));
    return 0;
}

/* ---- callbacks (run inside probe_run, never raise) ------------------ */

/* [1] = the extract function, [2] = lightuserdata probe_response */
static int call_extract(lua_State *L)
{
    const probe_response *r = lua_touserdata(L, 2);
    lua_settop(L, 1);
    lua_pushinteger(L, r->status);
    lua_pushlstring(L, r->body ? r->body : "", r->body_len);
    curlx_push_headers(L, r->headers ? r->headers : "", r->headers_len);
    lua_call(L, 3, 1);
    return 1;
}

static int lua_extract(void *ud, const probe_response *r, char *out, size_t *len)
{
    probe_state *st = ud;
    lua_State *L = st->L;
    int ok = 0;
    if (!lua_checkstack(L, 6))
        return -1;
    lua_pushcfunction(L, call_extract);
    lua_pushvalue(L, st->extract_idx);
    lua_pushlightuserdata(L, (void *)r);
    if (lua_pcall(L, 2, 1, 0) != LUA_OK) {
        lua_replace(L, st->err_idx);
        return -1;
    }
    if (lua_type(L, -1) == LUA_TSTRING) {
        size_t n;
        const char *s = lua_tolstring(L, -1, &n);
        if (n <= PROBE_VERSION_MAX) {
            memcpy(out, s, n);
            *len = n;
            ok = 1;
        }
    } else if (!lua_isnil(L, -1)) {
        st->bad_return = luaL_typename(L, -1);
        lua_pop(L, 1);
        return -1;
    }
    lua_pop(L, 1);
    return ok;
}

static int lua_progress(void *ud, uint64_t done, uint64_t total, double elapsed)
{
    probe_state *st = ud;
    lua_State *L = st->L;
    if (!lua_checkstack(L, 5))
        return -1;
    lua_pushvalue(L, st->progress_idx);
    lua_pushinteger(L, (lua_Integer)done);
    if (total > 0)
        lua_pushinteger(L, (lua_Integer)total);
    else
        lua_pushnil(L);
    lua_pushnumber(L, elapsed);
    if (lua_pcall(L, 3, 0, 0) != LUA_OK) {
        lua_replace(L, st->err_idx);
        return -1;
    }
    return 0;
}

/* ---- options ------------------------------------------------------- */

/* An optional field of seconds: absent -> def; present -> a number > 0. */
static double opt_seconds(lua_State *L, int opts, const char *field, double def)
{
    double v;
    lua_getfield(L, opts, field);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        return def;
    }
    lua_pop(L, 1);
    v = rollout_optfield_number(L, opts, field, def);
    if (!(v > 0))
        luaL_error(L, "field '%s' must be a number of seconds > 0", field);
    return v;
}

static lua_Integer check_int(lua_State *L, int opts, const char *field, lua_Integer def,
                             lua_Integer lo, lua_Integer hi)
{
    lua_Integer v = def;
    lua_getfield(L, opts, field);
    if (!lua_isnil(L, -1)) {
        int ok;
        v = lua_tointegerx(L, -1, &ok);
        if (!ok)
            luaL_error(L, "field '%s' must be an integer", field);
    }
    lua_pop(L, 1);
    if (v < lo || v > hi)
        luaL_error(L, "field '%s' must be between %d and %d", field, (int)lo, (int)hi);
    return v;
}

/* ---- result -------------------------------------------------------- */

/* {p50, p90, p99, max, mean} of n sorted latencies (empty when n = 0). */
static void push_latency(lua_State *L, const uint32_t *a, size_t n)
{
    lua_createtable(L, 0, 5);
    if (n > 0) {
        double sum = 0;
        for (size_t i = 0; i < n; i++)
            sum += a[i];
        lua_pushnumber(L, probe_rank_ms(a, n, 0.50));
        lua_setfield(L, -2, "p50");
        lua_pushnumber(L, probe_rank_ms(a, n, 0.90));
        lua_setfield(L, -2, "p90");
        lua_pushnumber(L, probe_rank_ms(a, n, 0.99));
        lua_setfield(L, -2, "p99");
        lua_pushnumber(L, a[n - 1] / 1000.0);
        lua_setfield(L, -2, "max");
        lua_pushnumber(L, sum / (double)n / 1000.0);
        lua_setfield(L, -2, "mean");
    }
}

/* {ms, ...}: n latencies in milliseconds. */
static void push_ms_list(lua_State *L, const uint32_t *a, size_t n)
{
    lua_createtable(L, (int)(n > 0x7fffffff ? 0x7fffffff : n), 0);
    for (size_t i = 0; i < n; i++) {
        lua_pushnumber(L, a[i] / 1000.0);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
}

/* {kind = N} of the non-zero counts; returns their sum. */
static uint64_t push_kinds(lua_State *L, const uint64_t *counts, int all)
{
    uint64_t total = 0;
    lua_createtable(L, 0, PROBE_NKINDS);
    for (int k = 0; k < PROBE_NKINDS; k++) {
        if (all || counts[k] > 0) {
            lua_pushinteger(L, (lua_Integer)counts[k]);
            lua_setfield(L, -2, probe_kind_names[k]);
        }
        total += counts[k];
    }
    return total;
}

static void push_by_version(lua_State *L, const probe_result *r, int latencies)
{
    uint64_t attributed = 0, all = 0;
    luaL_checkstack(L, 8, "probe result");
    for (int k = 0; k < PROBE_NKINDS; k++)
        all += r->errors[k];
    lua_createtable(L, 0, (int)r->nversions); /* by_version */
    lua_newtable(L);                          /* errors_by_version */
    for (size_t i = 0; i < r->nversions; i++) {
        uint64_t e;
        lua_createtable(L, 0, 4);
        lua_pushinteger(L, (lua_Integer)r->counts[i]);
        lua_setfield(L, -2, "served");
        e = push_kinds(L, r->verrors[i], 0);
        lua_setfield(L, -2, "errors");
        lua_pushinteger(L, (lua_Integer)e);
        lua_setfield(L, -2, "error_total");
        push_latency(L, r->vlat[i], r->nvlat[i]);
        lua_setfield(L, -2, "latency_ms");
        lua_setfield(L, -3, r->versions[i]);
        if (e > 0) {
            push_kinds(L, r->verrors[i], 0);
            lua_setfield(L, -2, r->versions[i]);
        }
        attributed += e;
    }
    lua_setfield(L, -3, "errors_by_version");
    lua_setfield(L, -2, "by_version");
    lua_pushinteger(L, (lua_Integer)(all - attributed));
    lua_setfield(L, -2, "errors_unattributed");
    if (latencies) {
        lua_createtable(L, 0, (int)r->nversions);
        for (size_t i = 0; i < r->nversions; i++) {
            push_ms_list(L, r->vlat[i], r->nvlat[i]);
            lua_setfield(L, -2, r->versions[i]);
        }
        lua_setfield(L, -2, "latencies");
    }
}

/* Reads opts.variants (stack index opts) into the state: names, header
 * lists, and the cycle (smooth weighted round-robin, so the variants
 * alternate as evenly as their weights allow). Misuse raises; the lists
 * are freed by the state. */
static void read_variants(lua_State *L, int opts, probe_state *st)
{
    probe_config *c = &st->cfg;
    int weights[PROBE_MAX_VARIANTS], total = 0, current[PROBE_MAX_VARIANTS];
    lua_getfield(L, opts, "variants");
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        return;
    }
    luaL_checktype(L, -1, LUA_TTABLE);
    c->nvariants = (int)lua_rawlen(L, -1);
    if (c->nvariants < 1 || c->nvariants > PROBE_MAX_VARIANTS)
        luaL_error(L, "field 'variants' must be a list of 1 to %d variants", PROBE_MAX_VARIANTS);
    for (int v = 0; v < c->nvariants; v++) {
        const char *name;
        size_t len;
        lua_Integer w = 1;
        lua_rawgeti(L, -1, v + 1);
        if (!lua_istable(L, -1))
            luaL_error(L, "variants[%d] must be {name=, headers=, weight=}", v + 1);
        lua_getfield(L, -1, "name");
        name = lua_tolstring(L, -1, &len);
        if (name == NULL || len == 0 || len >= sizeof st->vnames[v])
            luaL_error(L, "variants[%d].name must be a string of 1 to 63 bytes", v + 1);
        for (int j = 0; j < v; j++)
            if (strcmp(st->vnames[j], name) == 0)
                luaL_error(L, "variants[%d].name: %s is given twice", v + 1, name);
        memcpy(st->vnames[v], name, len + 1);
        lua_pop(L, 1);
        lua_getfield(L, -1, "weight");
        if (!lua_isnil(L, -1)) {
            int ok;
            w = lua_tointegerx(L, -1, &ok);
            if (!ok || w < 1 || w > PROBE_CYCLE_MAX)
                luaL_error(L, "variants[%d].weight must be an integer from 1 to %d", v + 1, PROBE_CYCLE_MAX);
        }
        lua_pop(L, 1);
        weights[v] = (int)w;
        total += (int)w;
        lua_getfield(L, -1, "headers");
        curlx_read_headers(L, -1, &c->variant_headers[v]);
        lua_pop(L, 2);
    }
    lua_pop(L, 1);
    if (total > PROBE_CYCLE_MAX)
        luaL_error(L, "field 'variants': the weights sum to %d, more than %d", total, PROBE_CYCLE_MAX);
    memset(current, 0, sizeof current);
    for (int i = 0; i < total; i++) {
        int best = 0;
        for (int v = 0; v < c->nvariants; v++) {
            current[v] += weights[v];
            if (current[v] > current[best])
                best = v;
        }
        current[best] -= total;
        c->cycle[i] = best;
    }
    c->ncycle = total;
}

static void push_variants(lua_State *L, const probe_state *st, int latencies)
{
    const probe_result *r = &st->res;
    if (st->cfg.nvariants == 0)
        return;
    luaL_checkstack(L, 8, "probe result");
    lua_createtable(L, 0, st->cfg.nvariants);
    for (int v = 0; v < st->cfg.nvariants; v++) {
        const probe_variant_tally *t = &r->variants[v];
        uint64_t e;
        lua_createtable(L, 0, 8);
        lua_pushinteger(L, (lua_Integer)t->sent);
        lua_setfield(L, -2, "sent");
        lua_pushinteger(L, (lua_Integer)t->completed);
        lua_setfield(L, -2, "completed");
        lua_pushinteger(L, (lua_Integer)t->served);
        lua_setfield(L, -2, "served");
        e = push_kinds(L, t->errors, 0);
        lua_setfield(L, -2, "errors");
        lua_pushinteger(L, (lua_Integer)e);
        lua_setfield(L, -2, "error_total");
        push_latency(L, t->lat, t->nlat);
        lua_setfield(L, -2, "latency_ms");
        if (latencies) {
            push_ms_list(L, t->lat, t->nlat);
            lua_setfield(L, -2, "latencies");
        }
        lua_setfield(L, -2, st->vnames[v]);
    }
    lua_setfield(L, -2, "by_variant");
}

static void push_result(lua_State *L, const probe_result *r, int latencies)
{
    uint64_t served = 0, err_total = 0;
    lua_createtable(L, 0, 16);
    lua_pushinteger(L, (lua_Integer)r->sent);
    lua_setfield(L, -2, "sent");
    lua_pushinteger(L, (lua_Integer)r->completed);
    lua_setfield(L, -2, "completed");

    lua_createtable(L, 0, (int)r->nversions);
    for (size_t i = 0; i < r->nversions; i++) {
        if (r->counts[i] == 0)
            continue; /* a version that only answered errors served nothing */
        lua_pushinteger(L, (lua_Integer)r->counts[i]);
        lua_setfield(L, -2, r->versions[i]);
        served += r->counts[i];
    }
    lua_setfield(L, -2, "counts");
    lua_pushinteger(L, (lua_Integer)served);
    lua_setfield(L, -2, "served");

    lua_createtable(L, 0, PROBE_NKINDS);
    for (int k = 0; k < PROBE_NKINDS; k++) {
        lua_pushinteger(L, (lua_Integer)r->errors[k]);
        lua_setfield(L, -2, probe_kind_names[k]);
        err_total += r->errors[k];
    }
    lua_setfield(L, -2, "errors");
    lua_pushinteger(L, (lua_Integer)err_total);
    lua_setfield(L, -2, "error_total");

    lua_newtable(L);
    for (int s = 0; s < PROBE_STATUS_MAX; s++) {
        if (r->status_counts[s] > 0) {
            lua_pushinteger(L, (lua_Integer)r->status_counts[s]);
            lua_rawseti(L, -2, s);
        }
    }
    lua_setfield(L, -2, "status");

    push_by_version(L, r, latencies);

    push_latency(L, r->latency_us, r->nlatency);
    lua_setfield(L, -2, "latency_ms");

    lua_pushnumber(L, r->duration);
    lua_setfield(L, -2, "duration");
    lua_pushnumber(L, r->duration > 0 ? (double)r->completed / r->duration : 0);
    lua_setfield(L, -2, "rate");
    if (r->stopped == PROBE_STOPPED_DEADLINE)
        lua_pushliteral(L, "deadline");
    else if (r->stopped == PROBE_STOPPED_DURATION)
        lua_pushliteral(L, "duration");
    else
        lua_pushnil(L);
    lua_setfield(L, -2, "stopped");

    if (r->samples != NULL || r->nsamples > 0) {
        luaL_checkstack(L, 4, "probe samples");
        lua_createtable(L, (int)(r->nsamples > 0x7fffffff ? 0x7fffffff : r->nsamples), 0);
        for (size_t i = 0; i < r->nsamples; i++) {
            const probe_sample *s = &r->samples[i];
            lua_createtable(L, 2, 0);
            if (s->what >= 0)
                lua_pushstring(L, r->versions[s->what]);
            else
                lua_pushstring(L, probe_kind_names[-(s->what + 1)]);
            lua_rawseti(L, -2, 1);
            lua_pushnumber(L, s->latency_us / 1000.0);
            lua_rawseti(L, -2, 2);
            lua_rawseti(L, -2, (lua_Integer)i + 1);
        }
        lua_setfield(L, -2, "samples");
    }
}

/* ---- probe.run ----------------------------------------------------- */

/* Reads url, n, duration, timeout, connect_timeout and deadline: what to
 * send and when to stop. Misuse raises. */
static void read_limits(lua_State *L, probe_config *c)
{
    lua_Integer n = 0;
    double duration, timeout, connect_timeout, deadline;

    lua_getfield(L, 1, "url");
    if (lua_type(L, -1) != LUA_TSTRING)
        luaL_error(L, "field 'url' must be a string (got %s)", luaL_typename(L, -1));
    lua_pop(L, 1);
    c->url = rollout_optfield_string(L, 1, "url", NULL);

    lua_getfield(L, 1, "n");
    if (!lua_isnil(L, -1)) {
        int ok;
        n = lua_tointegerx(L, -1, &ok);
        if (!ok || n < 1)
            luaL_error(L, "field 'n' must be an integer >= 1");
    }
    lua_pop(L, 1);
    duration = opt_seconds(L, 1, "duration", 0);
    if (isinf(duration))
        duration = 0;
    if (n == 0 && duration == 0)
        luaL_error(L, "probe.run needs n or duration");
    timeout = opt_seconds(L, 1, "timeout", 2.0);
    connect_timeout = opt_seconds(L, 1, "connect_timeout", timeout);
    deadline = opt_seconds(L, 1, "deadline", 0);

    c->n = (uint64_t)n;
    c->duration = duration;
    c->deadline = isinf(deadline) ? 0 : deadline;
    c->timeout_ms = curlx_ms(timeout);
    c->connect_timeout_ms = curlx_ms(connect_timeout);
}

/* Reads the served_by header name into the config. Misuse raises. */
static void read_served_by(lua_State *L, probe_config *c)
{
    const char *by = rollout_optfield_string(L, 1, "served_by", "");
    size_t blen = strlen(by);
    if (blen >= sizeof c->served_by ||
        (blen > 0 && strspn(by, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_!#$%&'*+.^`|~") != blen))
        luaL_error(L, "field 'served_by' must be a header name");
    memcpy(c->served_by, by, blen + 1);
}

/* Reads how requests are sent: concurrency, threads, keepalive, record.
 * Misuse raises. */
static void read_sending(lua_State *L, probe_config *c)
{
    long cpus;
    int def;

    c->concurrency = (int)check_int(L, 1, "concurrency", 50, 1, PROBE_MAX_CONCURRENCY);
    cpus = sysconf(_SC_NPROCESSORS_ONLN);
    def = cpus >= PROBE_DEFAULT_THREADS ? PROBE_DEFAULT_THREADS : 1;
    c->threads = (int)check_int(L, 1, "threads", def, 1, PROBE_MAX_THREADS);
    c->keepalive = rollout_optfield_boolean(L, 1, "keepalive", 1);
    c->record = rollout_optfield_boolean(L, 1, "record", 0);
}

/* Reads the request itself: served_by, method, headers and variants.
 * Misuse raises. */
static void read_request(lua_State *L, probe_state *st)
{
    probe_config *c = &st->cfg;
    read_served_by(L, c);
    c->method = rollout_optfield_string(L, 1, "method", "GET");
    if (!curlx_is_token(c->method))
        luaL_error(L, "field 'method' must be an HTTP method name");
    c->progress_interval = 0.1;
    lua_getfield(L, 1, "headers");
    curlx_read_headers(L, -1, &st->headers);
    lua_pop(L, 1);
    c->headers = st->headers;
    read_variants(L, 1, st);
}

/* Pushes the extract function (or nil), on_progress (or nil) and the error
 * slot (stack 3, 4, 5) and hooks the callbacks up. Misuse raises. */
static void read_callbacks(lua_State *L, probe_state *st)
{
    probe_config *c = &st->cfg;
    char err[256];

    lua_getfield(L, 1, "extract");
    if (lua_isfunction(L, -1)) {
        c->mode = PROBE_EXTRACT_CALLBACK;
        c->extract = lua_extract;
        c->extract_ud = st;
    } else if (lua_isnil(L, -1) || lua_type(L, -1) == LUA_TSTRING) {
        const char *extract_spec = lua_isnil(L, -1) ? "json:version" : lua_tostring(L, -1);
        if (probe_parse_extract(c, extract_spec, err, sizeof err) != 0)
            luaL_error(L, "%s", err);
    } else {
        luaL_error(L, "field 'extract' must be a string or a function (got %s)", luaL_typename(L, -1));
    }
    st->extract_idx = lua_gettop(L);
    lua_getfield(L, 1, "on_progress");
    if (lua_isfunction(L, -1)) {
        c->progress = lua_progress;
        c->progress_ud = st;
    } else if (!lua_isnil(L, -1)) {
        luaL_error(L, "field 'on_progress' must be a function (got %s)", luaL_typename(L, -1));
    }
    st->progress_idx = lua_gettop(L);
    lua_pushnil(L);
    st->err_idx = lua_gettop(L);
}

/* 1 when curl can parse url and its scheme is http or https. */
static int is_http_url(const char *url)
{
    CURLU *u = curl_url();
    char *scheme = NULL;
    int good = !(u == NULL || curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
                 curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
                 (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0));
    curl_free(scheme);
    curl_url_cleanup(u);
    return good;
}

/* After a failed run (the state already freed): raises ^C or the callback's
 * error, or returns nil, message, "other", "other". */
static int report_failure(lua_State *L, probe_state *st, int status)
{
    switch (status) {
    case PROBE_INTERRUPTED:
        return rollout_raise_interrupt(L);
    case PROBE_ABORTED:
        if (st->bad_return != NULL)
            return luaL_error(L, "extract function must return a string or nil (got %s)", st->bad_return);
        if (lua_isnil(L, st->err_idx))
            return luaL_error(L, "probe: a callback failed (Lua stack overflow)");
        lua_pushvalue(L, st->err_idx);
        return lua_error(L);
    default:
        {
            char where[512];
            curlx_redact_url(st->cfg.url, where, sizeof where);
            return rollout_fail(L, ROLLOUT_E_OTHER, NULL, "probe %s: %s", where, st->res.err);
        }
    }
}

static int p_run(lua_State *L)
{
    probe_state *st;
    int status, latencies;

    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    luaL_checkstack(L, 40, "probe.run");

    st = lua_newuserdatauv(L, sizeof *st, 0);
    memset(st, 0, sizeof *st);
    luaL_setmetatable(L, PROBE_STATE); /* stack index 2 until the end */
    st->L = L;

    read_limits(L, &st->cfg);
    read_sending(L, &st->cfg);
    latencies = rollout_optfield_boolean(L, 1, "latencies", 0);
    read_request(L, st);
    /* stack: 1 opts, 2 state, 3 extract function, 4 progress, 5 error */
    read_callbacks(L, st);

    /* a URL curl cannot use is invalid input, not n failed requests */
    if (!is_http_url(st->cfg.url)) {
        char where[512];
        curlx_redact_url(st->cfg.url, where, sizeof where);
        state_free(st);
        return rollout_fail(L, ROLLOUT_E_INVALID, NULL, "probe %s: not an http or https URL", where);
    }

    status = probe_run(&st->cfg, &st->res);

    if (status == PROBE_OK) {
        if (st->cfg.progress != NULL && lua_progress(st, st->res.completed, st->cfg.n, st->res.duration) != 0)
            status = PROBE_ABORTED;
    }
    if (status == PROBE_OK) {
        push_result(L, &st->res, latencies);
        push_variants(L, st, latencies);
        state_free(st);
        return 1;
    }

    /* failure: free everything, then raise or return */
    state_free(st);
    return report_failure(L, st, status);
}

int luaopen_rollout_probe(lua_State *L)
{
    static const luaL_Reg funcs[] = {
        {"run", p_run},
        {NULL, NULL}};
    static const luaL_Reg meta[] = {
        {"__gc", state_close},
        {"__close", state_close},
        {NULL, NULL}};
    if (luaL_newmetatable(L, PROBE_STATE))
        luaL_setfuncs(L, meta, 0);
    lua_pop(L, 1);
    curlx_init();
    luaL_newlib(L, funcs);
    return 1;
}
