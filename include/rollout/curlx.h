/* curlx: what every libcurl user in rollout shares (rollout.http,
 * rollout.probe, and the Kubernetes client):
 *
 *   - curlx_init(): curl_global_init exactly once per process, thread-safe;
 *   - curlx_common(): the options every handle gets (no signals, http/https
 *     only, also on redirects);
 *   - curlx_ms() / curlx_timeouts(): seconds -> milliseconds, with "no limit";
 *   - curlx_guard: ^C and an absolute deadline, checked by an xferinfo
 *     callback (for any easy or multi transfer) and by curlx_perform(), a
 *     curl_easy_perform that wakes every 100 ms to look at the guard;
 *   - curlx_code(): CURLcode -> the error codes (include/rollout/host.h);
 *   - curlx_redact_url() / curlx_fail(): error messages that name the URL
 *     without userinfo, query or fragment (they may hold credentials).
 *
 * Error codes (the `code` of `nil, message, code, raw`; raw is "curl N",
 * the CURLcode):
 *   connect     refused, unreachable, the host name did not resolve, or
 *               the connection failed
 *   timeout     a timeout or the caller's deadline passed
 *   tls         TLS handshake or certificate verification failed
 *   too_large   the body is over the caller's limit
 *   invalid     a malformed or unsupported URL
 *   interrupted ^C (callers raise the interrupt sentinel instead, after
 *               cleanup)
 *   other       anything else (the message has curl's text)
 */
#ifndef ROLLOUT_CURLX_H
#define ROLLOUT_CURLX_H

#include <stddef.h>

#include <curl/curl.h>
#include <lua.h>

#include "rollout/lib.h"

/* curl_global_init(CURL_GLOBAL_DEFAULT) once; later calls return its result. */
CURLcode curlx_init(void);

/* Options for every handle: CURLOPT_NOSIGNAL, protocols and redirect
 * protocols limited to http and https. */
CURLcode curlx_common(CURL *e);

/* Seconds -> milliseconds for curl: 0 for "no limit" (s is +inf), else at
 * least 1 ms. Callers validate s > 0 first. */
long curlx_ms(double s);

/* CURLOPT_TIMEOUT_MS and CURLOPT_CONNECTTIMEOUT_MS from seconds. */
void curlx_timeouts(CURL *e, double total_s, double connect_s);

/* Why a transfer was stopped by rollout rather than by curl. */
enum curlx_stop {
    CURLX_GO = 0,          /* not stopped */
    CURLX_INTERRUPTED = 1, /* ^C: rollout_interrupted() */
    CURLX_EXPIRED = 2      /* the guard's deadline passed */
};

typedef struct curlx_guard {
    double deadline;  /* rollout_now() seconds; 0 = none */
    int stop;         /* an enum curlx_stop, set by curlx_guard_check */
} curlx_guard;

/* Looks at ^C and the deadline; records and returns the reason to stop. */
int curlx_guard_check(curlx_guard *g);

/* Installs a progress callback (CURLOPT_XFERINFOFUNCTION) that aborts the
 * transfer (CURLE_ABORTED_BY_CALLBACK) when curlx_guard_check(g) says stop. */
void curlx_guard_attach(CURL *e, curlx_guard *g);

/* Runs one transfer on a private multi handle, waking at least every
 * 100 ms to check the guard; on stop the transfer is abandoned and
 * CURLE_ABORTED_BY_CALLBACK is returned with g->stop set. The easy handle
 * is left reusable. */
CURLcode curlx_perform(CURL *e, curlx_guard *g);

/* The error code for a failed transfer. g may be NULL; too_large is true
 * when the caller's write callback refused the body for its size. */
rollout_code curlx_code(CURLcode rc, const curlx_guard *g, int too_large);

/* "scheme://host[:port]/path" of url, without userinfo, query and
 * fragment; "(invalid URL)" when curl cannot parse it. Always terminated. */
void curlx_redact_url(const char *url, char *out, size_t outlen);

/* Pushes a table of the header lines in raw, as curl hands them over
 * ("HTTP/1.1 200 OK\r\nName: value\r\n..."): names lower-cased, values
 * trimmed, a repeated name's values joined with ", ". A status line starts
 * over, so only the last response's headers remain. May raise (memory). */
void curlx_push_headers(lua_State *L, const char *raw, size_t len);

/* A body callback's append: adds n bytes of data to b unless that would
 * pass max (then sets *too_large). n when added, 0 to make curl stop. */
size_t curlx_add_capped(rbuf *b, size_t max, int *too_large, const char *data, size_t n);

/* Pushes {status=, headers=, body=} of e's finished transfer, with the
 * header bytes and the body it received, and room for `extra` more fields.
 * May raise (memory). */
void curlx_push_response(lua_State *L, CURL *e, const rbuf *head, const rbuf *body, int extra);

/* Is s an HTTP token (a method or header name), 1..63 characters? */
int curlx_is_token(const char *s);

/* Appends the headers of the Lua table at idx ({Name = "value", ...};
 * nil: none) to *list as "Name: value" ("Name;" for an empty value).
 * Names must be tokens, values strings or numbers without CR, LF or NUL:
 * misuse raises, and the message never shows a value (it may be a
 * secret). *list must be owned by a userdata, so a raise frees it. */
void curlx_read_headers(lua_State *L, int idx, struct curl_slist **list);

/* Pushes nil, message, code (curlx_code), raw ("curl N") and returns 4.
 * The message is "<method> <redacted url>: <what>": for too_large with a
 * limit ("16 MiB"), "the response is over the limit of <limit>"; else
 * errbuf when it is set (and g's deadline did not stop the transfer), else
 * curl_easy_strerror. g may be NULL. */
int curlx_fail(lua_State *L, const char *method, const char *url, CURLcode rc, const char *errbuf,
               const curlx_guard *g, int too_large, const char *limit);

#endif
