/* The probe engine (runtime/probe_engine.c, Lua-free): many HTTP requests on
 * libcurl's multi interface, one reused easy handle per concurrency slot,
 * each request classified into exactly one bucket — a version or an error
 * kind — with per-status counts and latencies. runtime/probe.c is the Lua
 * binding (rollout.probe) on top of it. */
#ifndef ROLLOUT_PROBE_H
#define ROLLOUT_PROBE_H

#include <stddef.h>
#include <stdint.h>

#include <curl/curl.h>

#define PROBE_VERSION_MAX 255     /* bytes of a version name */
#define PROBE_MAX_VERSIONS 1024   /* distinct versions per run */
#define PROBE_BODY_MAX (1 << 20)  /* bytes of a body kept for extraction */
#define PROBE_HEADERS_MAX 65536   /* bytes of headers kept for a callback */
#define PROBE_JSON_DEPTH 8        /* segments of a "json:a.b.c" path */
#define PROBE_MAX_THREADS 8
#define PROBE_STATUS_MAX 1000     /* HTTP status codes 0..999 */

/* Error kinds, in the order of result.errors. */
enum probe_kind {
    PROBE_CONNECT = 0, /* refused, unreachable, name did not resolve */
    PROBE_TIMEOUT,     /* the per-request timeout passed */
    PROBE_HTTP_4XX,    /* a 4xx response (whatever its body) */
    PROBE_HTTP_5XX,    /* a 5xx response (whatever its body) */
    PROBE_PARSE,       /* a 2xx response without a version */
    PROBE_OTHER,       /* anything else: 1xx/3xx, reset, TLS, ... */
    PROBE_NKINDS
};
extern const char *const probe_kind_names[PROBE_NKINDS];

enum probe_mode {
    PROBE_EXTRACT_JSON,     /* a string field of the JSON body */
    PROBE_EXTRACT_HEADER,   /* a response header */
    PROBE_EXTRACT_CALLBACK  /* the caller's function (single-threaded) */
};

enum probe_stopped { PROBE_STOPPED_NONE, PROBE_STOPPED_DEADLINE, PROBE_STOPPED_DURATION };

enum probe_status {
    PROBE_OK = 0,
    PROBE_INTERRUPTED, /* ^C: everything cleaned up, caller raises */
    PROBE_ABORTED,     /* a callback returned -1: caller re-raises its error */
    PROBE_FAILED       /* set-up failure or out of memory: see err */
};

/* A 2xx response handed to the extract callback. */
typedef struct probe_response {
    long status;
    const char *body;     /* not NUL-terminated */
    size_t body_len;
    const char *headers;  /* the raw header lines of the last response */
    size_t headers_len;
} probe_response;

/* Returns 1 with the version in out (*len bytes, at most PROBE_VERSION_MAX),
 * 0 when the response has no version, -1 to abort the run. */
typedef int (*probe_extract_fn)(void *ud, const probe_response *r, char *out, size_t *len);
/* Progress: done requests of total (0 = no count limit), seconds elapsed.
 * Returns 0, or -1 to abort the run. Called on the calling thread only. */
typedef int (*probe_progress_fn)(void *ud, uint64_t done, uint64_t total, double elapsed);

typedef struct probe_config {
    const char *url;
    uint64_t n;              /* requests to send; 0 = no count limit */
    double duration;         /* seconds to keep sending; 0 = no limit */
    double deadline;         /* seconds: hard stop, in-flight aborted; 0 = none */
    int concurrency;         /* slots (easy handles, connections) */
    int threads;             /* workers, 1..PROBE_MAX_THREADS */
    long timeout_ms;         /* per request */
    long connect_timeout_ms;
    struct curl_slist *headers;
    const char *method;      /* NULL or "GET" for GET */
    int keepalive;
    int record;              /* keep samples (single-threaded only) */
    enum probe_mode mode;
    char json_path[PROBE_JSON_DEPTH][64]; /* segments, "" terminated */
    char header_name[128];
    probe_extract_fn extract;
    void *extract_ud;
    probe_progress_fn progress;
    void *progress_ud;
    double progress_interval; /* seconds between progress calls */
} probe_config;

/* One recorded request: what >= 0 is a version index, what < 0 is the
 * error kind -(what + 1). */
typedef struct probe_sample {
    int32_t what;
    uint32_t latency_us;
} probe_sample;

typedef struct probe_result {
    enum probe_status status;
    enum probe_stopped stopped;
    char err[256];
    uint64_t sent, completed;
    size_t nversions;
    char *versions[PROBE_MAX_VERSIONS];
    uint64_t counts[PROBE_MAX_VERSIONS];
    uint64_t errors[PROBE_NKINDS];
    uint64_t status_counts[PROBE_STATUS_MAX];
    uint32_t *latency_us;    /* completed requests, sorted after the run */
    size_t nlatency, cap_latency;
    probe_sample *samples;
    size_t nsamples, cap_samples;
    double duration;         /* seconds from start to the end of the run */
} probe_result;

/* ---- runtime/probe_extract.c ---- */

/* A version is 1..PROBE_VERSION_MAX bytes without control characters. */
int probe_valid_version(const char *s, size_t len);

/* The string at cfg's JSON path in body: 1 with the version in out
 * (*outlen bytes, room for PROBE_VERSION_MAX), else 0. */
int probe_extract_json(const probe_config *cfg, const char *body, size_t len, char *out, size_t *outlen);

/* Parses "json:a.b", "header:name" into cfg (mode, json_path or
 * header_name). Returns 0, or -1 with a message in err. */
int probe_parse_extract(probe_config *cfg, const char *spec, char *err, size_t errlen);

/* ---- runtime/probe_tally.c ---- */

/* The index of version v in r (added on first sight); -1 when r already
 * holds PROBE_MAX_VERSIONS versions, -2 when out of memory. */
int probe_tally_version(probe_result *r, const char *v, size_t len);
/* Appends a latency / a sample; -1 when out of memory. */
int probe_tally_latency(probe_result *r, uint32_t us);
int probe_tally_sample(probe_result *r, int32_t what, uint32_t us);
/* Adds from's counts, errors, statuses, versions and latencies to into
 * (not samples: version indexes differ). -1 when out of memory. */
int probe_result_merge(probe_result *into, const probe_result *from);
/* Moves everything of from into an empty into; from is left empty. */
void probe_result_move(probe_result *into, probe_result *from);
/* Sorts the latencies (for probe_percentile_ms). */
void probe_result_sort(probe_result *res);

/* ---- runtime/probe_engine.c ---- */

/* Runs the probe. res must be zeroed by the caller; it is filled even on
 * failure (free it with probe_result_free). Returns res->status. */
int probe_run(const probe_config *cfg, probe_result *res);

void probe_result_free(probe_result *res);

/* The nearest-rank percentile (0 < p <= 1) of the sorted latencies, in
 * milliseconds. */
double probe_percentile_ms(const probe_result *res, double p);

#endif
