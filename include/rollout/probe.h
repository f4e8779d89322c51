/* The probe engine (Lua-free): many HTTP/1.1 requests on kept-alive
 * connections, each request classified into exactly one bucket — a version
 * or an error kind — with per-status counts and latencies.
 * runtime/net/probe/probe.c is the Lua binding (rollout.probe) on top of it.
 *
 * Design (why not plain libcurl transfers): on a 2-CPU machine shared with
 * HAProxy and the backends, the client's CPU per request decides the
 * throughput. A libcurl transfer costs ~10 us of user CPU per request (multi
 * add/remove, header generation and parsing, many clock reads, mallocs)
 * where wrk spends ~1 us. So libcurl does what it is good at — establishing
 * connections (DNS, TCP, TLS with verification; CURLOPT_CONNECT_ONLY on the
 * multi interface) — and the probe runs the HTTP/1.1 exchanges on those
 * connections itself: prebuilt request bytes sent with curl_easy_send, the
 * response read with curl_easy_recv and parsed incrementally by the strict
 * parser below (runtime/net/probe/http.c), driven by the probe's own epoll
 * loop (runtime/net/probe/conn.c).
 *
 * runtime/net/probe/:
 *   probe.c    the Lua binding: options, callbacks, the result
 *   engine.c   probe_run: workers, threads, supervision, merging
 *   conn.c     one worker's connections: connect, send, receive
 *   rules.c    stop rules; how a finished request is counted
 *   http.c     request bytes and the HTTP/1.1 response parser
 *   extract.c  version extraction (JSON field, header)
 *   tally.c    counts, latencies, samples, merging, percentiles
 */
#ifndef ROLLOUT_PROBE_H
#define ROLLOUT_PROBE_H

#include <stddef.h>
#include <stdint.h>

#include <curl/curl.h>

#include "rollout/lib.h"

#define PROBE_VERSION_MAX 255     /* bytes of a version name */
#define PROBE_MAX_VERSIONS 1024   /* distinct versions per run */
#define PROBE_BODY_MAX (1 << 20)  /* bytes of a body kept for extraction */
#define PROBE_HEADERS_MAX 65536   /* bytes of headers kept for a callback */
#define PROBE_JSON_DEPTH 8        /* segments of a "json:a.b.c" path */
#define PROBE_MAX_THREADS 8
#define PROBE_STATUS_MAX 1000     /* HTTP status codes 0..999 */
#define PROBE_MAX_VARIANTS 16     /* request variants of one run */
#define PROBE_CYCLE_MAX 256       /* length of the variants' cycle (sum of their weights) */

/* Error kinds, in the order of result.errors. */
enum probe_kind {
    PROBE_CONNECT = 0, /* refused, unreachable, name did not resolve */
    PROBE_TIMEOUT,     /* the per-request timeout passed */
    PROBE_HTTP_4XX,    /* a 4xx response (whatever its body) */
    PROBE_HTTP_5XX,    /* a 5xx response (whatever its body) */
    PROBE_PARSE,       /* a 2xx response without a version (or a body over the cap) */
    PROBE_OTHER,       /* anything else: 1xx/3xx, reset, malformed, TLS, ... */
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
    const char *headers;  /* the status line and header lines of the response */
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
    int concurrency;         /* slots (connections) */
    int threads;             /* workers, 1..PROBE_MAX_THREADS */
    long timeout_ms;         /* per request; 0 = none */
    long connect_timeout_ms;
    struct curl_slist *headers; /* "Name: value" or "Name;" (empty value) */
    const char *method;      /* NULL or "GET" for GET */
    int keepalive;
    int record;              /* keep samples (single-threaded only) */
    enum probe_mode mode;
    char json_path[PROBE_JSON_DEPTH][64]; /* segments, "" terminated */
    char header_name[128];
    /* a header naming the version that answered, read from every response
     * (errors included) when the extraction gives none: "" = none */
    char served_by[128];
    /* request variants: request i is variant cycle[i % ncycle], sent with the
     * headers of variants[v] instead of `headers` (0 variants: `headers`) */
    int nvariants;
    struct curl_slist *variant_headers[PROBE_MAX_VARIANTS];
    int cycle[PROBE_CYCLE_MAX];
    int ncycle;
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

/* What the requests of one variant gave. */
typedef struct probe_variant_tally {
    uint64_t sent, completed, served;
    uint64_t errors[PROBE_NKINDS];
    uint32_t *lat; /* latencies of the served ones, sorted after the run */
    size_t nlat, caplat;
} probe_variant_tally;

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
    /* errors attributed to the version that answered (an error body or
     * the served_by header naming it); the rest are unattributed */
    uint64_t verrors[PROBE_MAX_VERSIONS][PROBE_NKINDS];
    /* latencies of the requests each version served, sorted after the run */
    uint32_t *vlat[PROBE_MAX_VERSIONS];
    size_t nvlat[PROBE_MAX_VERSIONS], capvlat[PROBE_MAX_VERSIONS];
    probe_variant_tally variants[PROBE_MAX_VARIANTS];
    uint32_t *latency_us;    /* completed requests, sorted after the run */
    size_t nlatency, cap_latency;
    probe_sample *samples;
    size_t nsamples, cap_samples;
    double duration;         /* seconds from start to the end of the run */
} probe_result;

/* ---- runtime/net/probe/extract.c ---- */

/* A version is 1..PROBE_VERSION_MAX bytes without control characters. */
int probe_valid_version(const char *s, size_t len);

/* The string at cfg's JSON path in body: 1 with the version in out
 * (*outlen bytes, room for PROBE_VERSION_MAX), else 0. */
int probe_extract_json(const probe_config *cfg, const char *body, size_t len, char *out, size_t *outlen);

/* The value of header cfg->header_name in a response head (status line and
 * header lines, as received): 1 with the last valid version among its
 * occurrences in out (*outlen bytes), else 0. Names match case-insensitively;
 * values are trimmed of spaces and tabs. */
int probe_extract_header(const probe_config *cfg, const char *head, size_t len, char *out, size_t *outlen);

/* Parses "json:a.b", "header:name" into cfg (mode, json_path or
 * header_name). Returns 0, or -1 with a message in err. */
int probe_parse_extract(probe_config *cfg, const char *spec, char *err, size_t errlen);

/* ---- runtime/net/probe/http.c ---- */

/* The bytes of the request cfg describes, sent unchanged on every
 * connection, as libcurl would write them for CURLOPT_URL/HTTPHEADER/
 * CUSTOMREQUEST: "METHOD /path?query HTTP/1.1", Host (without a default
 * port), Authorization: Basic for userinfo in the URL, "Accept" (any type), then the
 * extra headers ("Name: value"; "Name;" sends "Name:"; a blank value sends
 * nothing), then the empty line. An extra header named Host, Accept or
 * Authorization replaces (or, blank, removes) the built-in one. *tls is set
 * for https. Returns 0 with a malloc'd *out, or -1 with a message in err
 * (a URL curl cannot parse, out of memory). */
int probe_http_request(const probe_config *cfg, char **out, size_t *outlen, int *tls, char *err,
                       size_t errlen);

#define PROBE_HEAD_MAX 65536       /* bytes of a response head */
#define PROBE_CHUNK_LINE_MAX 4096  /* bytes of a chunk-size line, extensions included */
#define PROBE_TRAILER_MAX 65536    /* bytes of the trailer section */

enum probe_http_event {
    PROBE_HTTP_MORE = 0,  /* need more bytes */
    PROBE_HTTP_HEAD = 1,  /* the head of the (final) response is complete */
    PROBE_HTTP_DONE = 2,  /* the response is complete */
    PROBE_HTTP_BAD = -1,  /* not an HTTP/1.x response, malformed, or over a limit */
    PROBE_HTTP_OVER = -2  /* the kept body would be over body_max */
};

enum probe_http_framing {
    PROBE_BODY_NONE,     /* HEAD, 1xx, 204, 304 */
    PROBE_BODY_LENGTH,   /* Content-Length */
    PROBE_BODY_CHUNKED,  /* Transfer-Encoding: chunked */
    PROBE_BODY_CLOSE     /* until the server closes the connection */
};

/* An incremental, strict HTTP/1.x response parser. Feed it the bytes of a
 * connection; it reports the head once (interim 1xx responses other than
 * 101 are skipped), then the end of the response, and keeps the body when
 * asked to. Accepts CRLF or bare LF line ends and obs-folded lines (as a
 * user agent must; a fold is not part of the value probe_extract_header
 * reads); refuses folds of Content-Length or Transfer-Encoding, whitespace
 * before a colon, control characters in values, conflicting
 * Content-Lengths and a chunked coding that is not the last one. */
typedef struct probe_http {
    /* the head, valid from PROBE_HTTP_HEAD on */
    int status;                /* 100..999 */
    int minor;                 /* HTTP/1.minor */
    size_t head_off, head_len; /* where the head lies in the bytes given to the call
                                  that returned PROBE_HTTP_HEAD (blank line included) */
    enum probe_http_framing framing;
    uint64_t length;           /* Content-Length, when framing is LENGTH */
    int close;                 /* the connection cannot carry another request */
    /* the body: kept when keep is set (at PROBE_HTTP_HEAD) */
    int keep;
    size_t body_max;
    rbuf body;
    /* private */
    int state;
    int head_request;
    uint64_t left;
    size_t scan, trailer;
} probe_http;

/* Prepares p for the next response (keeps the body buffer). head_request:
 * the request was HEAD (the response has no body). */
void probe_http_begin(probe_http *p, int head_request, size_t body_max);

/* Consumes buf[0..len): *used bytes were taken (the caller drops them; the
 * rest, a partial line, must be given again with more bytes after it).
 * Returns PROBE_HTTP_MORE, PROBE_HTTP_HEAD (the head is at buf + head_off;
 * call again with the rest), PROBE_HTTP_DONE (bytes after *used are not
 * part of the response), PROBE_HTTP_BAD or PROBE_HTTP_OVER. After DONE,
 * BAD or OVER only probe_http_begin is valid. */
int probe_http_feed(probe_http *p, const char *buf, size_t len, size_t *used);

/* The server closed the connection: PROBE_HTTP_DONE when the body ends at
 * the close, else PROBE_HTTP_BAD (a partial response). */
int probe_http_eof(probe_http *p);

void probe_http_free(probe_http *p);

/* ---- runtime/net/probe/tally.c ---- */

/* The index of version v in r (added on first sight); -1 when r already
 * holds PROBE_MAX_VERSIONS versions, -2 when out of memory. */
int probe_tally_version(probe_result *r, const char *v, size_t len);
/* Appends a latency / a sample; -1 when out of memory. */
int probe_tally_latency(probe_result *r, uint32_t us);
/* Appends the latency of a request version idx served; -1 when out of memory. */
int probe_tally_served(probe_result *r, int idx, uint32_t us);
/* The same for variant v (counted as served). */
int probe_tally_variant_served(probe_result *r, int v, uint32_t us);
int probe_tally_sample(probe_result *r, int32_t what, uint32_t us);
/* Adds from's counts, errors, statuses, versions and latencies to into
 * (not samples: version indexes differ). -1 when out of memory. */
int probe_result_merge(probe_result *into, const probe_result *from);
/* Moves everything of from into an empty into; from is left empty. */
void probe_result_move(probe_result *into, probe_result *from);
/* Sorts the latencies (for the percentiles below). */
void probe_result_sort(probe_result *res);
void probe_result_free(probe_result *res);

/* The nearest-rank percentile (0 < p <= 1) of n sorted latencies (us), in
 * milliseconds; 0 when n = 0. */
double probe_rank_ms(const uint32_t *sorted, size_t n, double p);
/* The same over all the completed requests of res. */
double probe_percentile_ms(const probe_result *res, double p);

/* ---- runtime/net/probe/engine.c ---- */

/* Runs the probe. res must be zeroed by the caller; it is filled even on
 * failure (free it with probe_result_free). Returns res->status. */
int probe_run(const probe_config *cfg, probe_result *res);

#endif
