/* Private to rollout.k8s (runtime/k8s*.c): the client userdata, the
 * request engine, kinds, credentials.
 *
 *   k8s.c          the module, the client userdata and its small methods
 *   k8s_config.c   kubeconfig and in-cluster configuration
 *   k8s_auth.c     credentials: token files, exec credential plugins
 *   k8s_base64.c   base64 for kubeconfig *-data fields and exec cluster info
 *   k8s_http.c     one API request on the client's handle, Status errors
 *   k8s_kinds.c    kind names -> resources (built-in table, discovery)
 *   k8s_ops.c      get, list, apply, patch, create, replace, delete, request
 *   k8s_watch.c    watch streams
 *   k8s_rollout.c  pods, logs, wait_rollout
 *
 * Secrets (tokens, keys, certificates) live in k8s_secret buffers that are
 * wiped when freed; no message, error or __tostring ever shows them. */
#ifndef ROLLOUT_K8S_INTERNAL_H
#define ROLLOUT_K8S_INTERNAL_H

#include "rollout/curlx.h"
#include "rollout/host.h"

#include <stddef.h>

#define K8S_CLIENT_MT "rollout.k8s.client"
#define K8S_LIB_KEY "rollout.k8s.lib" /* registry: {decode=, encode=, yaml_load=} */
#define K8S_USER_AGENT "rollout/" ROLLOUT_VERSION
#define K8S_MAX_BODY ((size_t)256 << 20)
#define K8S_DEFAULT_TIMEOUT 30.0
#define K8S_DEFAULT_EXEC_TIMEOUT 10.0
#define K8S_TOKEN_FILE_TTL 60.0 /* seconds between re-reads of a token file */

/* Uservalue 1 of a client: a table with
 *   exec      = {command=, name=, args={}, env={NAME=value}, api_version=,
 *                install_hint=, interactive=, info=<KUBERNETES_EXEC_INFO>}
 *   disco     = {["apps/v1"] = {resources...} | false}, groups = {...}  */

typedef struct k8s_secret {
    char *p;
    size_t len;
} k8s_secret;

/* A byte buffer with a limit (response bodies, headers, stream lines). */
typedef struct k8s_buf {
    char *p;
    size_t len, cap;
} k8s_buf;

/* Appends n bytes (keeping a terminating NUL), growing the buffer from
 * `initial` bytes by doubling. Returns 0, or -1 when out of memory. */
int k8s_buf_append(k8s_buf *b, const char *data, size_t n, size_t initial);

/* Pushes the strings list[1..n] (the table at index `list`) joined by sep. */
void k8s_push_joined(lua_State *L, int list, int n, char sep);

typedef struct k8s_client {
    int closed;
    CURL *e;
    CURLSH *share;           /* connection and TLS session cache */
    struct curl_slist *hdrs; /* the current request's headers */
    k8s_buf body, head;
    int too_large;
    char errbuf[CURL_ERROR_SIZE];
    curlx_guard guard;

    char *server;  /* https://host:port[/prefix], no trailing slash */
    char *context; /* NULL in-cluster */
    char *ns;
    char *source;  /* the kubeconfig path, or the service-account dir */
    char *proxy;   /* proxy-url, or NULL */
    int in_cluster;
    int insecure;
    double timeout, exec_timeout;

    k8s_secret ca;          /* PEM; empty: the system's CAs */
    k8s_secret token;       /* static token, or the token file's content */
    char *token_file;       /* re-read every K8S_TOKEN_FILE_TTL s and on 401 */
    double token_read_at;   /* rollout_now() of the last read */
    k8s_secret cert, key;   /* static client certificate and key (PEM) */

    int has_exec;
    int cred_valid;         /* the exec credential below may be used */
    double cred_expiry;     /* wall-clock seconds; 0: no expiry given */
    double cred_margin;     /* refresh this many seconds before expiry */
    k8s_secret exec_token, exec_cert, exec_key;
} k8s_client;

/* ---- k8s.c ---------------------------------------------------------- */

/* The client at idx; raises on a wrong type or a closed client. */
k8s_client *k8s_check(lua_State *L, int idx);
/* Pushes the client's uservalue table (the exec spec, the discovery cache). */
void k8s_uservalue(lua_State *L, int client_idx);
/* Pushes registry lib field (decode, encode, yaml_load). */
void k8s_lib(lua_State *L, const char *field);
/* json.decode(text): pushes the value and returns 1, or pushes nil,
 * message, code and returns 3. */
int k8s_json_decode(lua_State *L, const char *text, size_t len);
/* Pushes json.encode(value at idx) (raises on values JSON cannot hold). */
void k8s_json_encode(lua_State *L, int idx);
/* free() after wiping */
void k8s_secret_free(k8s_secret *s);
int k8s_secret_set(k8s_secret *s, const char *p, size_t len);
char *k8s_strdup(const char *s);
/* Can p be sent in an Authorization header (no CR, LF, NUL; not empty)? */
int k8s_token_ok(const char *p, size_t len);
/* The callbacks of the client's own handle (set again after each reset). */
void k8s_client_callbacks(k8s_client *c);

/* ---- k8s_base64.c ----------------------------------------------------- */

/* Decodes standard base64 (whitespace ignored, padding optional) into a new
 * buffer. Returns 0, or -1 when the text is not base64 (or memory). */
int k8s_base64_decode(const char *in, size_t len, k8s_secret *out);
/* Pushes the base64 encoding of p. */
void k8s_base64_push(lua_State *L, const char *p, size_t len);

/* ---- k8s_config.c ----------------------------------------------------- */

/* Fills the client at client_idx from the options table at opts_idx (the
 * kubeconfig or the in-cluster configuration). Returns 0, or pushes nil,
 * message, "config" and returns 3. */
int k8s_configure(lua_State *L, int client_idx, int opts_idx);
/* Does the PEM text hold a block of that type ("CERTIFICATE", "PRIVATE KEY"
 * matches any "... PRIVATE KEY")? */
int k8s_pem_has(const char *p, size_t len, const char *type);

/* ---- k8s_auth.c ------------------------------------------------------- */

/* Makes sure the credentials are fresh before a request: re-reads the token
 * file when due, runs the exec plugin when there is no valid credential.
 * Returns 0, or pushes nil, message, "auth" and returns 3. */
int k8s_auth_prepare(lua_State *L, int client_idx);
/* After a 401: forgets the exec credential / token file content. Returns 1
 * when a retry may help (there is something to refresh). */
int k8s_auth_invalidate(k8s_client *c);
/* Appends the Authorization header, and sets the client certificate. */
int k8s_auth_apply(k8s_client *c, CURL *e, struct curl_slist **hdrs);

/* ---- k8s_http.c ------------------------------------------------------- */

typedef struct k8s_req {
    const char *method;
    const char *path;         /* starts with '/', escaped */
    const char *query;        /* "a=b&c=d", escaped; NULL or "" for none */
    const char *body;         /* NULL: none */
    size_t body_len;
    const char *content_type; /* NULL: application/json when there is a body */
    const char *accept;       /* NULL: application/json */
    double timeout;           /* seconds, > 0 */
} k8s_req;

/* Appends s percent-encoded (RFC 3986 unreserved characters kept). */
void k8s_add_escaped(luaL_Buffer *b, const char *s);
/* Appends "&key=value" (or "key=value" when first) with value escaped. */
void k8s_add_query(luaL_Buffer *b, int *first, const char *key, const char *value);

/* Sets up e for one request with the client's TLS settings, credentials,
 * headers (into *hdrs, owned by the caller's userdata) and timeouts.
 * Returns 0, or -1 when curl refuses an option (raise). */
int k8s_setup_handle(k8s_client *c, CURL *e, struct curl_slist **hdrs, const char *method,
                     const char *url, const char *content_type, const char *accept,
                     const char *body, size_t body_len, double timeout, int stream);

/* Performs rq on the client's handle (credentials first, one retry after a
 * 401 when a credential can be refreshed). On success returns 0 with the
 * response in c->body / c->head and the HTTP status in *status. Transport
 * failures push nil, message, code and return 3; ^C raises "interrupted". */
int k8s_perform(lua_State *L, int client_idx, const k8s_req *rq, long *status);

/* The usual result of a request: 2xx -> the decoded JSON object (1 value);
 * else nil, Status message, Status reason, Status table (4 values), or nil,
 * "METHOD url: HTTP nnn: ...", reason (3). */
int k8s_push_result(lua_State *L, k8s_client *c, const k8s_req *rq, long status);
/* The error for a non-2xx answer with body text/len (see above). */
int k8s_push_status_error(lua_State *L, k8s_client *c, const char *method, const char *path,
                          long status, const char *body, size_t len);
/* "NotFound" for 404... (k8s.io/apimachinery reasonForCode). */
const char *k8s_reason_for_code(long code);

/* ---- k8s_kinds.c ------------------------------------------------------ */

typedef struct k8s_res {
    const char *group; /* "" for the core group */
    const char *version;
    const char *resource; /* plural */
    const char *kind;
    int namespaced;
} k8s_res;

/* Resolves a kind argument (Kind, plural, singular, short name, or
 * "group/version/resource"); the strings are anchored by a table pushed on
 * the stack. Returns 0, or pushes nil, message, code and returns 3. */
int k8s_resolve_kind(lua_State *L, int client_idx, const char *arg, k8s_res *r);
/* Same from a manifest's apiVersion and kind. */
int k8s_resolve_gvk(lua_State *L, int client_idx, const char *api_version, const char *kind, k8s_res *r);
/* Pushes "/api/v1[/namespaces/NS]/RES[/NAME[/SUB]]" (or /apis/G/V/...);
 * ns is ignored for cluster-scoped resources, NULL for all namespaces. */
void k8s_push_path(lua_State *L, const k8s_res *r, const char *ns, const char *name, const char *sub);

/* ---- k8s_ops.c / k8s_watch.c / k8s_rollout.c ---------------------------- */

int k8s_op_get(lua_State *L);
int k8s_op_list(lua_State *L);
int k8s_op_apply(lua_State *L);
int k8s_op_patch(lua_State *L);
int k8s_op_create(lua_State *L);
int k8s_op_replace(lua_State *L);
int k8s_op_delete(lua_State *L);
int k8s_op_request(lua_State *L);
int k8s_op_watch(lua_State *L);
int k8s_op_pods(lua_State *L);
int k8s_op_logs(lua_State *L);
int k8s_op_wait_rollout(lua_State *L);

/* Options shared by the operations: the options table at idx (nil/none
 * allowed; other types raise). */
void k8s_check_opts(lua_State *L, int idx);
/* opts.namespace, else the client's. */
const char *k8s_opt_namespace(lua_State *L, k8s_client *c, int opts);
/* opts.timeout (> 0), else the client's. */
double k8s_opt_timeout(lua_State *L, k8s_client *c, int opts);

/* Runs the watch on the client at client_idx for resource r with the
 * (escaped) query, calling the function at fn_idx for each event.
 * Returns what client:watch returns. */
int k8s_watch_run(lua_State *L, int client_idx, const k8s_res *r, const char *ns,
                  const char *query, double timeout, const char *rv, int fn_idx);

#endif
