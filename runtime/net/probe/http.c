/* HTTP/1.1 for the probe's own exchanges (see include/rollout/probe.h for
 * why the probe speaks HTTP itself on connections libcurl established):
 *
 *   - probe_http_request(): the request bytes, built once per run the way
 *     libcurl writes them (request line, Host, Basic credentials from the
 *     URL, Accept, the caller's headers), so a server sees the same request
 *     as from rollout.http;
 *   - probe_http_feed(): an incremental, strict response parser. It never
 *     copies the head (the caller's buffer holds it until the head is
 *     reported) and keeps the body only when asked, up to a cap.
 *
 * Lua-free and without I/O: tests/c/test_probe.c feeds it byte by byte. */
#include "rollout/probe.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- the request --------------------------------------------------- */

static void sb_base64(rbuf *b, const unsigned char *s, size_t n)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)s[i] << 16;
        char out[4];
        if (i + 1 < n)
            v |= (unsigned)s[i + 1] << 8;
        if (i + 2 < n)
            v |= s[i + 2];
        out[0] = tab[(v >> 18) & 63];
        out[1] = tab[(v >> 12) & 63];
        out[2] = i + 1 < n ? tab[(v >> 6) & 63] : '=';
        out[3] = i + 2 < n ? tab[v & 63] : '=';
        rbuf_add(b, out, 4);
    }
}

static int is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\v' || c == '\f';
}

/* Is one of the extra headers named name (any value, even blank)? */
static int has_header(const struct curl_slist *h, const char *name)
{
    size_t n = strlen(name);
    for (; h != NULL; h = h->next)
        if (strncasecmp(h->data, name, n) == 0 && (h->data[n] == ':' || h->data[n] == ';'))
            return 1;
    return 0;
}

/* The parts of the probe's URL, each from libcurl (curl_free) or NULL. */
typedef struct url_parts {
    char *scheme, *host, *port, *path, *query, *user, *pass;
} url_parts;

/* Parses url into p (an http or https URL, with its credentials decoded):
 * 0, or -1 with the message in err. p is freed by free_url_parts either way. */
static int split_url(CURLU *u, const char *url, url_parts *p, char *err, size_t errlen)
{
    unsigned host_flags = 0;
    CURLUcode uc;
#ifdef CURLU_PUNYCODE
    host_flags = CURLU_PUNYCODE; /* an IDN host as libcurl sends it */
#endif
    if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &p->scheme, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &p->host, host_flags) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_PORT, &p->port, CURLU_DEFAULT_PORT) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_PATH, &p->path, CURLU_URLENCODE) != CURLUE_OK) {
        snprintf(err, errlen, "not a URL libcurl can use");
        return -1;
    }
    if (strcmp(p->scheme, "http") != 0 && strcmp(p->scheme, "https") != 0) {
        snprintf(err, errlen, "not an http or https URL");
        return -1;
    }
    (void)curl_url_get(u, CURLUPART_QUERY, &p->query, 0);
    uc = curl_url_get(u, CURLUPART_USER, &p->user, CURLU_URLDECODE);
    if (uc != CURLUE_OK && uc != CURLUE_NO_USER) {
        snprintf(err, errlen, "bad user name in the URL");
        return -1;
    }
    uc = curl_url_get(u, CURLUPART_PASSWORD, &p->pass, CURLU_URLDECODE);
    if (uc != CURLUE_OK && uc != CURLUE_NO_PASSWORD) {
        snprintf(err, errlen, "bad password in the URL");
        return -1;
    }
    return 0;
}

/* Frees the parts, wiping the password first. */
static void free_url_parts(url_parts *p)
{
    curl_free(p->scheme);
    curl_free(p->host);
    curl_free(p->port);
    curl_free(p->path);
    curl_free(p->query);
    curl_free(p->user);
    if (p->pass != NULL)
        memset(p->pass, 0, strlen(p->pass));
    curl_free(p->pass);
}

/* "METHOD /path?query HTTP/1.1" */
static void add_request_line(rbuf *b, const char *method, const url_parts *p)
{
    rbuf_adds(b, method);
    rbuf_adds(b, " ");
    rbuf_adds(b, p->path[0] != '\0' ? p->path : "/");
    if (p->query != NULL) {
        rbuf_adds(b, "?");
        rbuf_adds(b, p->query);
    }
    rbuf_adds(b, " HTTP/1.1\r\n");
}

/* Host (with the port unless the scheme's default), unless the caller sets one. */
static void add_host(rbuf *b, const struct curl_slist *headers, const url_parts *p, int tls)
{
    if (has_header(headers, "Host"))
        return;
    rbuf_adds(b, "Host: ");
    rbuf_adds(b, p->host);
    if (strcmp(p->port, tls ? "443" : "80") != 0) {
        rbuf_adds(b, ":");
        rbuf_adds(b, p->port);
    }
    rbuf_adds(b, "\r\n");
}

/* Basic credentials from the URL, unless there are none or the caller sets
 * Authorization. */
static void add_basic_auth(rbuf *b, const struct curl_slist *headers, const url_parts *p)
{
    rbuf cred = RBUF_INIT;
    if ((p->user == NULL && p->pass == NULL) || has_header(headers, "Authorization"))
        return;
    rbuf_adds(&cred, p->user != NULL ? p->user : "");
    rbuf_adds(&cred, ":");
    rbuf_adds(&cred, p->pass != NULL ? p->pass : "");
    rbuf_adds(b, "Authorization: Basic ");
    if (cred.oom)
        b->oom = 1;
    else
        sb_base64(b, (const unsigned char *)cred.p, cred.len);
    rbuf_adds(b, "\r\n");
    rbuf_wipe(&cred); /* a secret */
}

/* The caller's headers as libcurl sends them: "Name;" as an empty value,
 * blank values and nameless lines left out. */
static void add_extra_headers(rbuf *b, const struct curl_slist *headers)
{
    for (const struct curl_slist *h = headers; h != NULL; h = h->next) {
        const char *colon = strchr(h->data, ':');
        if (colon == NULL) { /* "Name;": the name with an empty value */
            const char *semi = strchr(h->data, ';');
            if (semi != NULL && semi != h->data && semi[1] == '\0') {
                rbuf_add(b, h->data, (size_t)(semi - h->data));
                rbuf_adds(b, ":\r\n");
            }
            continue;
        }
        if (colon == h->data)
            continue;
        {
            const char *v = colon + 1;
            while (*v != '\0' && is_blank(*v))
                v++;
            if (*v == '\0')
                continue; /* blank: sent by no one */
        }
        rbuf_adds(b, h->data);
        rbuf_adds(b, "\r\n");
    }
}

int probe_http_request(const probe_config *cfg, char **out, size_t *outlen, int *tls, char *err,
                       size_t errlen)
{
    CURLU *u = curl_url();
    url_parts p = {NULL, NULL, NULL, NULL, NULL, NULL, NULL};
    const char *method = cfg->method != NULL ? cfg->method : "GET";
    rbuf b = RBUF_INIT;
    int rc = -1;

    *out = NULL;
    *outlen = 0;
    if (u == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (split_url(u, cfg->url, &p, err, errlen) != 0)
        goto out;
    *tls = strcmp(p.scheme, "https") == 0;

    add_request_line(&b, method, &p);
    add_host(&b, cfg->headers, &p, *tls);
    add_basic_auth(&b, cfg->headers, &p);
    if (!has_header(cfg->headers, "Accept"))
        rbuf_adds(&b, "Accept: */*\r\n");
    add_extra_headers(&b, cfg->headers);
    rbuf_adds(&b, "\r\n");
    if (b.oom) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    *out = b.p;
    *outlen = b.len;
    b = (rbuf)RBUF_INIT;
    rc = 0;
out:
    rbuf_wipe(&b); /* may hold credentials */
    free_url_parts(&p);
    curl_url_cleanup(u);
    return rc;
}

/* ---- the response -------------------------------------------------- */

enum {
    ST_HEAD = 0,     /* looking for the end of the head */
    ST_NO_BODY,      /* head reported; the response has no body */
    ST_LENGTH,       /* Content-Length body */
    ST_CLOSE,        /* body until the connection closes */
    ST_CHUNK_SIZE,   /* a chunk-size line */
    ST_CHUNK_DATA,
    ST_CHUNK_CRLF,   /* the line end after a chunk's data */
    ST_TRAILER,      /* trailer lines up to the empty line */
    ST_DONE,
    ST_FAILED
};

void probe_http_begin(probe_http *p, int head_request, size_t body_max)
{
    p->status = 0;
    p->minor = 0;
    p->head_off = p->head_len = 0;
    p->framing = PROBE_BODY_NONE;
    p->length = 0;
    p->close = 0;
    p->keep = 0;
    p->body_max = body_max;
    rbuf_clear(&p->body);
    p->state = ST_HEAD;
    p->head_request = head_request;
    p->left = 0;
    p->scan = 0;
    p->trailer = 0;
}

void probe_http_free(probe_http *p)
{
    rbuf_free(&p->body);
}

/* tchar of RFC 9110 */
static int is_tchar(unsigned char c)
{
    static const char extra[] = "!#$%&'*+-.^_`|~";
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c != '\0' && strchr(extra, c) != NULL);
}

/* field-vchar, SP and HTAB (obs-text included); no other control */
static int is_text(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return 0;
    }
    return 1;
}

/* Splits a header line [s, e) (no line end) into a name and a trimmed
 * value. 0, or -1 when it is not "token: value". */
static int field_line(const char *s, const char *e, const char **name, size_t *nlen, const char **v,
                      size_t *vlen)
{
    const char *p = s, *ve;
    while (p < e && is_tchar((unsigned char)*p))
        p++;
    if (p == s || p == e || *p != ':')
        return -1; /* no name, whitespace before the colon, obs-fold, ... */
    *name = s;
    *nlen = (size_t)(p - s);
    p++;
    while (p < e && (*p == ' ' || *p == '\t'))
        p++;
    ve = e;
    while (ve > p && (ve[-1] == ' ' || ve[-1] == '\t'))
        ve--;
    if (!is_text(p, (size_t)(ve - p)))
        return -1;
    *v = p;
    *vlen = (size_t)(ve - p);
    return 0;
}

static int name_is(const char *name, size_t nlen, const char *want)
{
    return strlen(want) == nlen && strncasecmp(name, want, nlen) == 0;
}

/* Calls fn for each element of a comma-separated list value (trimmed,
 * empty elements skipped). Stops at the first non-zero return. */
static int each_element(const char *v, size_t n, int (*fn)(void *, const char *, size_t), void *ud)
{
    size_t i = 0;
    while (i <= n) {
        size_t j = i, a, b;
        int rc;
        while (j < n && v[j] != ',')
            j++;
        a = i;
        b = j;
        while (a < b && (v[a] == ' ' || v[a] == '\t'))
            a++;
        while (b > a && (v[b - 1] == ' ' || v[b - 1] == '\t'))
            b--;
        if (b > a && (rc = fn(ud, v + a, b - a)) != 0)
            return rc;
        i = j + 1;
    }
    return 0;
}

typedef struct head_info {
    int has_length, te, te_chunked_seen, te_last_chunked, conn_close, conn_keepalive;
    uint64_t length;
} head_info;

static int te_element(void *ud, const char *s, size_t n)
{
    head_info *h = ud;
    size_t k = 0;
    while (k < n && is_tchar((unsigned char)s[k]))
        k++;
    if (k == 0)
        return -1;
    h->te = 1;
    if (k == 7 && strncasecmp(s, "chunked", 7) == 0) {
        if (h->te_chunked_seen)
            return -1; /* chunked twice */
        h->te_chunked_seen = 1;
        h->te_last_chunked = 1;
    } else {
        h->te_last_chunked = 0;
    }
    return 0;
}

static int conn_element(void *ud, const char *s, size_t n)
{
    head_info *h = ud;
    if (n == 5 && strncasecmp(s, "close", 5) == 0)
        h->conn_close = 1;
    else if (n == 10 && strncasecmp(s, "keep-alive", 10) == 0)
        h->conn_keepalive = 1;
    return 0;
}

/* The head h[0..n): the status line, header lines, the empty line. */
static int parse_head(probe_http *p, const char *h, size_t n)
{
    const char *end = h + n, *line = h, *nl, *le;
    head_info hi;
    int status;
    enum { F_NONE, F_OTHER, F_FRAMING, F_CONNECTION } last = F_NONE; /* the field a fold continues */

    memset(&hi, 0, sizeof hi);
    nl = memchr(line, '\n', n);
    le = nl > line && nl[-1] == '\r' ? nl - 1 : nl;
    /* HTTP/1.x SP 3DIGIT [SP reason] */
    if (le - line < 12 || memcmp(line, "HTTP/1.", 7) != 0 || line[7] < '0' || line[7] > '9' ||
        line[8] != ' ' || line[9] < '1' || line[9] > '9' || line[10] < '0' || line[10] > '9' ||
        line[11] < '0' || line[11] > '9' || (le - line > 12 && line[12] != ' ') ||
        !is_text(line + 12, (size_t)(le - line - 12)))
        return -1;
    p->minor = line[7] - '0';
    status = (line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0');
    p->status = status;

    for (line = nl + 1; line < end; line = nl + 1) {
        const char *name, *v;
        size_t nlen, vlen;
        nl = memchr(line, '\n', (size_t)(end - line));
        le = nl > line && nl[-1] == '\r' ? nl - 1 : nl;
        if (le == line)
            break; /* the empty line */
        if (*line == ' ' || *line == '\t') {
            /* obs-fold: a user agent must accept it (RFC 9112 5.2), but
             * never in a field that frames the message */
            if (last == F_NONE || last == F_FRAMING || !is_text(line, (size_t)(le - line)))
                return -1;
            if (last == F_CONNECTION)
                each_element(line, (size_t)(le - line), conn_element, &hi);
            continue;
        }
        if (field_line(line, le, &name, &nlen, &v, &vlen) != 0)
            return -1;
        last = name_is(name, nlen, "content-length") || name_is(name, nlen, "transfer-encoding") ? F_FRAMING
               : name_is(name, nlen, "connection")                                               ? F_CONNECTION
                                                                                                 : F_OTHER;
        if (name_is(name, nlen, "content-length")) {
            uint64_t len = 0;
            if (vlen == 0 || vlen > 18)
                return -1;
            for (size_t i = 0; i < vlen; i++) {
                if (v[i] < '0' || v[i] > '9')
                    return -1;
                len = len * 10 + (uint64_t)(v[i] - '0');
            }
            if (hi.has_length && hi.length != len)
                return -1; /* conflicting lengths */
            hi.has_length = 1;
            hi.length = len;
        } else if (name_is(name, nlen, "transfer-encoding")) {
            if (each_element(v, vlen, te_element, &hi) != 0)
                return -1;
        } else if (name_is(name, nlen, "connection")) {
            each_element(v, vlen, conn_element, &hi);
        }
    }
    if (hi.te_chunked_seen && !hi.te_last_chunked)
        return -1; /* chunked must be the last coding */

    p->close = p->minor == 0 ? !hi.conn_keepalive : hi.conn_close;
    if (status / 100 == 1) {
        p->framing = PROBE_BODY_NONE;
        if (status == 101)
            p->close = 1; /* another protocol follows: not ours */
    } else if (p->head_request || status == 204 || status == 304) {
        p->framing = PROBE_BODY_NONE;
    } else if (hi.te) {
        /* Transfer-Encoding overrides Content-Length; both is suspect:
         * the connection is not reused after it */
        p->framing = hi.te_last_chunked ? PROBE_BODY_CHUNKED : PROBE_BODY_CLOSE;
        if (hi.has_length || !hi.te_last_chunked)
            p->close = 1;
    } else if (hi.has_length) {
        p->framing = hi.length > 0 ? PROBE_BODY_LENGTH : PROBE_BODY_NONE;
        p->length = hi.length;
    } else {
        p->framing = PROBE_BODY_CLOSE;
        p->close = 1;
    }
    return 0;
}

/* Keeps n body bytes when asked: 0, -1 over body_max, -2 out of memory. */
static int sink(probe_http *p, const char *d, size_t n)
{
    if (!p->keep || n == 0)
        return 0;
    if (n > p->body_max - p->body.len)
        return -1;
    return rbuf_add(&p->body, d, n) == 0 ? 0 : -2;
}

static int failed(probe_http *p, int ev, size_t pos, size_t *used)
{
    p->state = ST_FAILED;
    *used = pos;
    return ev;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* A chunk-size line [s, s+n) without its LF: 0 with the size, or -1. */
static int chunk_size(const char *s, size_t n, uint64_t *size)
{
    size_t i = 0;
    uint64_t v = 0;
    int d;
    if (n > 0 && s[n - 1] == '\r')
        n--;
    while (i < n && (d = hexval(s[i])) >= 0) {
        if (i >= 15)
            return -1; /* over 2^60 */
        v = v * 16 + (uint64_t)d;
        i++;
    }
    if (i == 0)
        return -1;
    while (i < n && (s[i] == ' ' || s[i] == '\t'))
        i++;
    if (i < n && (s[i] != ';' || !is_text(s + i, n - i)))
        return -1; /* only chunk extensions may follow */
    *size = v;
    return 0;
}

/* The steps of probe_http_feed, one per state. Each consumes from buf at
 * *pos and either returns an event (with *used set) or FEED_ON: the state
 * changed, go on with the bytes after *pos. */
#define FEED_ON 100

static int need_more(size_t pos, size_t *used)
{
    *used = pos;
    return PROBE_HTTP_MORE;
}

/* The state after a head, from its framing. */
static int body_state(const probe_http *p)
{
    switch (p->framing) {
    case PROBE_BODY_LENGTH:
        return ST_LENGTH;
    case PROBE_BODY_CHUNKED:
        return ST_CHUNK_SIZE;
    case PROBE_BODY_CLOSE:
        return ST_CLOSE;
    default:
        return ST_NO_BODY;
    }
}

/* ST_HEAD: finds the empty line that ends the head (scanning only what is
 * new since the last call), parses it, skips interim responses. */
static int feed_head(probe_http *p, const char *buf, size_t len, size_t *pos, size_t *used)
{
    const char *h = buf + *pos;
    size_t avail = len - *pos, s = p->scan, end = 0;
    while (s < avail) {
        const char *nl = memchr(h + s, '\n', avail - s);
        size_t ls = s, le;
        if (nl == NULL)
            break;
        le = (size_t)(nl - h);
        s = le + 1;
        if (le > ls && h[le - 1] == '\r')
            le--;
        if (le == ls) {
            if (ls == 0)
                return failed(p, PROBE_HTTP_BAD, *pos, used); /* no status line */
            end = s;
            break;
        }
    }
    if (end == 0) {
        if (avail > PROBE_HEAD_MAX)
            return failed(p, PROBE_HTTP_BAD, *pos, used);
        p->scan = s;
        return need_more(*pos, used);
    }
    if (end > PROBE_HEAD_MAX || parse_head(p, h, end) != 0)
        return failed(p, PROBE_HTTP_BAD, *pos, used);
    p->scan = 0;
    if (p->status / 100 == 1 && p->status != 101) {
        *pos += end; /* an interim response: the final one follows */
        return FEED_ON;
    }
    p->head_off = *pos;
    p->head_len = end;
    *pos += end;
    p->state = body_state(p);
    if (p->state == ST_LENGTH)
        p->left = p->length;
    *used = *pos;
    return PROBE_HTTP_HEAD;
}

/* ST_LENGTH, ST_CHUNK_DATA, ST_CLOSE: body bytes, kept when asked. */
static int feed_body(probe_http *p, const char *buf, size_t len, size_t *pos, size_t *used)
{
    size_t take = len - *pos;
    int rc;
    if (p->state != ST_CLOSE && take > p->left)
        take = (size_t)p->left;
    rc = sink(p, buf + *pos, take);
    if (rc != 0)
        return failed(p, rc == -1 ? PROBE_HTTP_OVER : PROBE_HTTP_BAD, *pos, used);
    *pos += take;
    if (p->state == ST_CLOSE)
        return need_more(*pos, used);
    p->left -= take;
    if (p->left > 0)
        return need_more(*pos, used);
    if (p->state == ST_LENGTH) {
        p->state = ST_DONE;
        *used = *pos;
        return PROBE_HTTP_DONE;
    }
    p->state = ST_CHUNK_CRLF;
    return FEED_ON;
}

/* ST_CHUNK_SIZE: a chunk-size line; size 0 starts the trailer. */
static int feed_chunk_size(probe_http *p, const char *buf, size_t len, size_t *pos, size_t *used)
{
    const char *nl = memchr(buf + *pos, '\n', len - *pos);
    uint64_t size;
    size_t n;
    if (nl == NULL) {
        if (len - *pos > PROBE_CHUNK_LINE_MAX)
            return failed(p, PROBE_HTTP_BAD, *pos, used);
        return need_more(*pos, used);
    }
    n = (size_t)(nl - (buf + *pos));
    if (n > PROBE_CHUNK_LINE_MAX || chunk_size(buf + *pos, n, &size) != 0)
        return failed(p, PROBE_HTTP_BAD, *pos, used);
    *pos += n + 1;
    if (size == 0) {
        p->state = ST_TRAILER;
        p->trailer = 0;
    } else {
        p->state = ST_CHUNK_DATA;
        p->left = size;
    }
    return FEED_ON;
}

/* ST_CHUNK_CRLF: the line end after a chunk's data (CRLF or LF). */
static int feed_chunk_crlf(probe_http *p, const char *buf, size_t len, size_t *pos, size_t *used)
{
    if (*pos >= len)
        return need_more(*pos, used);
    if (buf[*pos] == '\n') {
        *pos += 1;
    } else if (buf[*pos] == '\r') {
        if (*pos + 1 >= len)
            return need_more(*pos, used);
        if (buf[*pos + 1] != '\n')
            return failed(p, PROBE_HTTP_BAD, *pos, used);
        *pos += 2;
    } else {
        return failed(p, PROBE_HTTP_BAD, *pos, used);
    }
    p->state = ST_CHUNK_SIZE;
    return FEED_ON;
}

/* ST_TRAILER: trailer lines (checked, not kept) up to the empty line. */
static int feed_trailer(probe_http *p, const char *buf, size_t len, size_t *pos, size_t *used)
{
    const char *nl = memchr(buf + *pos, '\n', len - *pos);
    const char *s = buf + *pos, *e, *name, *v;
    size_t nlen, vlen;
    if (nl == NULL) {
        if (p->trailer + (len - *pos) > PROBE_TRAILER_MAX)
            return failed(p, PROBE_HTTP_BAD, *pos, used);
        return need_more(*pos, used);
    }
    e = nl > s && nl[-1] == '\r' ? nl - 1 : nl;
    *pos = (size_t)(nl - buf) + 1;
    if (e == s) {
        p->state = ST_DONE;
        *used = *pos;
        return PROBE_HTTP_DONE;
    }
    p->trailer += (size_t)(nl - s) + 1;
    if (p->trailer > PROBE_TRAILER_MAX || field_line(s, e, &name, &nlen, &v, &vlen) != 0)
        return failed(p, PROBE_HTTP_BAD, *pos, used);
    return FEED_ON;
}

int probe_http_feed(probe_http *p, const char *buf, size_t len, size_t *used)
{
    size_t pos = 0;
    for (;;) {
        int ev;
        switch (p->state) {
        case ST_HEAD:
            ev = feed_head(p, buf, len, &pos, used);
            break;
        case ST_NO_BODY:
            p->state = ST_DONE;
            *used = pos;
            return PROBE_HTTP_DONE;
        case ST_LENGTH:
        case ST_CHUNK_DATA:
        case ST_CLOSE:
            ev = feed_body(p, buf, len, &pos, used);
            break;
        case ST_CHUNK_SIZE:
            ev = feed_chunk_size(p, buf, len, &pos, used);
            break;
        case ST_CHUNK_CRLF:
            ev = feed_chunk_crlf(p, buf, len, &pos, used);
            break;
        case ST_TRAILER:
            ev = feed_trailer(p, buf, len, &pos, used);
            break;
        default:
            *used = pos;
            return PROBE_HTTP_BAD;
        }
        if (ev != FEED_ON)
            return ev;
    }
}

int probe_http_eof(probe_http *p)
{
    if (p->state == ST_CLOSE || p->state == ST_NO_BODY || p->state == ST_DONE) {
        p->state = ST_DONE;
        return PROBE_HTTP_DONE;
    }
    p->state = ST_FAILED;
    return PROBE_HTTP_BAD;
}
