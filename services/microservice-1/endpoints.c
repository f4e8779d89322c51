/* endpoints.c - /api/version, /healthz, /admin/faults; 404 and 405.
 *
 * Every answer except /admin/faults is built once at start-up and shared
 * by all requests (MHD reference-counts responses).  A response is queued
 * on the handler's second call, never its first: in libmicrohttpd 0.9.75
 * an answer queued on the first call closes the connection (no keep-alive). */
#define _POSIX_C_SOURCE 200809L
#include "endpoints.h"

#include "delay.h"
#include "faults.h"
#include "json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum canned {
    R_VERSION_OK,
    R_VERSION_FAULT,
    R_HEALTH_OK,
    R_HEALTH_FAIL,
    R_NOT_FOUND,
    R_METHOD_GET,   /* 405, Allow: GET, HEAD */
    R_METHOD_ADMIN, /* 405, Allow: GET, HEAD, POST */
    R_COUNT
};

static struct MHD_Response *canned[R_COUNT];
static char *canned_body[R_COUNT];
static char version_name[CONFIG_NAME_MAX + 1];

/* Request context values besides a struct delayed * from delay.h. */
static char request_seen;

static const char json_type[] = "application/json";

static struct MHD_Response *make_response(const char *body, size_t len,
                                          enum MHD_ResponseMemoryMode mode)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(len, (void *)body, mode);

    if (r == NULL)
        return NULL;
    if (MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, json_type) !=
            MHD_YES ||
        MHD_add_response_header(r, "X-Served-By", version_name) != MHD_YES) {
        MHD_destroy_response(r);
        return NULL;
    }
    return r;
}

/* body = prefix + JSON string(value) + suffix, heap-allocated and kept for
 * the life of the response (MHD_RESPMEM_PERSISTENT). */
static int make_canned(enum canned which, const char *prefix,
                       const char *value, const char *suffix,
                       const char *allow)
{
    size_t cap = strlen(prefix) + 6 * strlen(value) + strlen(suffix) + 3;
    size_t len = strlen(prefix);
    char *body = malloc(cap);

    if (body == NULL)
        return -1;
    memcpy(body, prefix, len + 1);
    if (json_append_string(body, cap, &len, value) < 0) {
        free(body);
        return -1;
    }
    memcpy(body + len, suffix, strlen(suffix) + 1);
    len += strlen(suffix);

    canned_body[which] = body;
    canned[which] = make_response(body, len, MHD_RESPMEM_PERSISTENT);
    if (canned[which] == NULL)
        return -1;
    if (allow != NULL && MHD_add_response_header(canned[which],
                                                 MHD_HTTP_HEADER_ALLOW,
                                                 allow) != MHD_YES)
        return -1;
    return 0;
}

int endpoints_init(const struct config *cfg)
{
    char host[256] = "unknown";
    char prefix[512];
    size_t len = 0;
    int n;

    memcpy(version_name, cfg->version, sizeof version_name);
    if (gethostname(host, sizeof host) != 0)
        strcpy(host, "unknown");
    host[sizeof host - 1] = '\0';

    /* {"service":S,"version":V,"pid":P,"hostname":H} */
    n = snprintf(prefix, sizeof prefix, "{\"service\":");
    len = (size_t)n;
    if (json_append_string(prefix, sizeof prefix, &len, cfg->service) < 0)
        return -1;
    n = snprintf(prefix + len, sizeof prefix - len, ",\"version\":");
    len += (size_t)n;
    if (json_append_string(prefix, sizeof prefix, &len, cfg->version) < 0)
        return -1;
    n = snprintf(prefix + len, sizeof prefix - len,
                 ",\"pid\":%ld,\"hostname\":", (long)getpid());
    if (n < 0 || (size_t)n >= sizeof prefix - len)
        return -1;

    if (make_canned(R_VERSION_OK, prefix, host, "}", NULL) < 0 ||
        make_canned(R_VERSION_FAULT, "{\"error\":\"injected fault\",\"version\":",
                    cfg->version, "}", NULL) < 0 ||
        make_canned(R_HEALTH_OK, "{\"status\":\"ok\",\"version\":", cfg->version,
                    "}", NULL) < 0 ||
        make_canned(R_HEALTH_FAIL, "{\"status\":\"failing\",\"version\":",
                    cfg->version, "}", NULL) < 0 ||
        make_canned(R_NOT_FOUND, "{\"error\":\"not found\",\"version\":",
                    cfg->version, "}", NULL) < 0 ||
        make_canned(R_METHOD_GET,
                    "{\"error\":\"method not allowed\",\"version\":",
                    cfg->version, "}", "GET, HEAD") < 0 ||
        make_canned(R_METHOD_ADMIN,
                    "{\"error\":\"method not allowed\",\"version\":",
                    cfg->version, "}", "GET, HEAD, POST") < 0) {
        endpoints_free();
        return -1;
    }
    return 0;
}

void endpoints_free(void)
{
    for (int i = 0; i < R_COUNT; i++) {
        if (canned[i] != NULL)
            MHD_destroy_response(canned[i]);
        free(canned_body[i]);
        canned[i] = NULL;
        canned_body[i] = NULL;
    }
}

static enum MHD_Result answer(struct MHD_Connection *conn, unsigned status,
                              enum canned which)
{
    return MHD_queue_response(conn, status, canned[which]);
}

static enum MHD_Result answer_json(struct MHD_Connection *conn,
                                   unsigned status, const char *body,
                                   size_t len)
{
    struct MHD_Response *r = make_response(body, len, MHD_RESPMEM_MUST_COPY);
    enum MHD_Result ret;

    if (r == NULL)
        return MHD_NO; /* closes the connection */
    ret = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result answer_faults(struct MHD_Connection *conn,
                                     const struct faults *f)
{
    char body[256];
    int n = faults_to_json(f, version_name, body, sizeof body);

    if (n < 0)
        return MHD_NO;
    return answer_json(conn, MHD_HTTP_OK, body, (size_t)n);
}

/* ---- POST /admin/faults?error_rate=F&latency_ms=N&fail_health=B */

struct faults_update {
    struct faults values;
    unsigned which;
    char error[160];
};

static enum MHD_Result collect_fault_arg(void *cls, enum MHD_ValueKind kind,
                                         const char *key, const char *value)
{
    struct faults_update *u = cls;
    unsigned bit;
    int rc;

    (void)kind;
    if (!strcmp(key, "error_rate")) {
        bit = FAULT_ERROR_RATE;
        rc = faults_parse_error_rate(value, &u->values.error_rate);
    } else if (!strcmp(key, "latency_ms")) {
        bit = FAULT_LATENCY;
        rc = faults_parse_latency_ms(value, &u->values.latency_ms);
    } else if (!strcmp(key, "fail_health")) {
        bit = FAULT_FAIL_HEALTH;
        rc = faults_parse_bool(value, &u->values.fail_health);
    } else {
        char shown[41];
        size_t i;
        for (i = 0; key[i] != '\0' && i < sizeof shown - 1; i++)
            shown[i] = (key[i] >= 0x20 && key[i] < 0x7f) ? key[i] : '?';
        shown[i] = '\0';
        snprintf(u->error, sizeof u->error,
                 "unknown parameter '%s' (known: error_rate, latency_ms, "
                 "fail_health)",
                 shown);
        return MHD_NO;
    }
    if (u->which & bit) {
        snprintf(u->error, sizeof u->error, "parameter %s given twice", key);
        return MHD_NO;
    }
    if (rc < 0) {
        snprintf(u->error, sizeof u->error, "invalid %s: expected %s", key,
                 bit == FAULT_ERROR_RATE ? "a decimal number from 0 to 1"
                 : bit == FAULT_LATENCY  ? "an integer 0..60000"
                                         : "1/0, true/false, yes/no, on/off");
        return MHD_NO;
    }
    u->which |= bit;
    return MHD_YES;
}

static enum MHD_Result update_faults(struct MHD_Connection *conn)
{
    struct faults_update u;
    struct faults now;

    memset(&u, 0, sizeof u);
    MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, collect_fault_arg,
                              &u);
    if (u.error[0] != '\0') {
        char body[1024];
        size_t len = sizeof "{\"error\":" - 1;

        memcpy(body, "{\"error\":", len + 1);
        json_append_string(body, sizeof body, &len, u.error);
        len += (size_t)snprintf(body + len, sizeof body - len, ",\"version\":");
        json_append_string(body, sizeof body, &len, version_name);
        body[len++] = '}';
        return answer_json(conn, MHD_HTTP_BAD_REQUEST, body, len);
    }
    faults_apply(&u.values, u.which, &now);
    if (u.which != 0)
        fprintf(stderr,
                "microservice-1 %s: faults now error_rate=%g latency_ms=%u "
                "fail_health=%d\n",
                version_name, now.error_rate, now.latency_ms,
                (int)now.fail_health);
    return answer_faults(conn, &now);
}

/* ---- routing */

static int is_get(const char *method)
{
    return !strcmp(method, MHD_HTTP_METHOD_GET) ||
           !strcmp(method, MHD_HTTP_METHOD_HEAD);
}

enum MHD_Result endpoints_handle(void *cls, struct MHD_Connection *conn,
                                 const char *url, const char *method,
                                 const char *http_version,
                                 const char *upload_data,
                                 size_t *upload_data_size, void **req_cls)
{
    (void)cls;
    (void)http_version;
    (void)upload_data;

    if (*req_cls == NULL) {
        *req_cls = &request_seen; /* answer on a later call: see top */
        return MHD_YES;
    }
    if (*upload_data_size != 0) {
        *upload_data_size = 0; /* bodies are ignored */
        return MHD_YES;
    }

    if (!strcmp(url, "/api/version")) {
        if (!is_get(method))
            return answer(conn, MHD_HTTP_METHOD_NOT_ALLOWED, R_METHOD_GET);
        if (*req_cls == &request_seen) {
            unsigned ms = faults_latency_ms();
            struct delayed *d;
            if (ms > 0 && (d = delay_suspend(conn, ms)) != NULL) {
                *req_cls = d; /* called again once resumed */
                return MHD_YES;
            }
        }
        if (faults_should_fail())
            return answer(conn, MHD_HTTP_INTERNAL_SERVER_ERROR,
                          R_VERSION_FAULT);
        return answer(conn, MHD_HTTP_OK, R_VERSION_OK);
    }
    if (!strcmp(url, "/healthz")) {
        if (!is_get(method))
            return answer(conn, MHD_HTTP_METHOD_NOT_ALLOWED, R_METHOD_GET);
        if (faults_fail_health())
            return answer(conn, MHD_HTTP_SERVICE_UNAVAILABLE, R_HEALTH_FAIL);
        return answer(conn, MHD_HTTP_OK, R_HEALTH_OK);
    }
    if (!strcmp(url, "/admin/faults")) {
        if (is_get(method)) {
            struct faults now;
            faults_snapshot(&now);
            return answer_faults(conn, &now);
        }
        if (!strcmp(method, MHD_HTTP_METHOD_POST))
            return update_faults(conn);
        return answer(conn, MHD_HTTP_METHOD_NOT_ALLOWED, R_METHOD_ADMIN);
    }
    return answer(conn, MHD_HTTP_NOT_FOUND, R_NOT_FOUND);
}

void endpoints_completed(void *cls, struct MHD_Connection *conn,
                         void **req_cls, enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)conn;
    (void)toe;
    if (*req_cls != NULL && *req_cls != &request_seen)
        delay_release(*req_cls);
    *req_cls = NULL;
}
