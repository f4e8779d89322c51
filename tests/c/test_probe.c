/* The Lua-free parts of the probe: extract specs, JSON and header
 * extraction, version validity, tallies, merging and percentiles
 * (runtime/net/probe/extract.c, runtime/net/probe/tally.c), the request bytes and
 * the HTTP/1.x response parser (runtime/net/probe/http.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "rollout/probe.h"

static void parses_extract_specs(void **state)
{
    probe_config c;
    char err[256];
    (void)state;
    memset(&c, 0, sizeof c);
    assert_int_equal(probe_parse_extract(&c, "json:version", err, sizeof err), 0);
    assert_int_equal(c.mode, PROBE_EXTRACT_JSON);
    assert_string_equal(c.json_path[0], "version");
    assert_string_equal(c.json_path[1], "");

    assert_int_equal(probe_parse_extract(&c, "json:meta.build.version", err, sizeof err), 0);
    assert_string_equal(c.json_path[0], "meta");
    assert_string_equal(c.json_path[1], "build");
    assert_string_equal(c.json_path[2], "version");
    assert_string_equal(c.json_path[3], "");

    assert_int_equal(probe_parse_extract(&c, "header:X-Served-By", err, sizeof err), 0);
    assert_int_equal(c.mode, PROBE_EXTRACT_HEADER);
    assert_string_equal(c.header_name, "X-Served-By");

    /* refused, with a message, and the mode is left alone */
    const char *bad[] = {"json:", "json:.a", "json:a..b", "json:a.", "header:", "header:x y",
                         "header:a:b", "xml:version", "version", "json:a.b.c.d.e.f.g.h.i"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        c.mode = PROBE_EXTRACT_CALLBACK;
        assert_int_equal(probe_parse_extract(&c, bad[i], err, sizeof err), -1);
        assert_true(strlen(err) > 0);
        assert_int_equal(c.mode, PROBE_EXTRACT_CALLBACK);
    }
}

static int extract(const char *spec, const char *body, char *out)
{
    probe_config c;
    char err[256];
    size_t len = 0;
    int got;
    memset(&c, 0, sizeof c);
    assert_int_equal(probe_parse_extract(&c, spec, err, sizeof err), 0);
    got = probe_extract_json(&c, body, strlen(body), out, &len);
    out[got ? len : 0] = '\0';
    return got;
}

static void extracts_json_fields(void **state)
{
    char out[PROBE_VERSION_MAX + 1];
    (void)state;
    assert_int_equal(extract("json:version", "{\"service\":\"s\",\"version\":\"v2\",\"pid\":1}", out), 1);
    assert_string_equal(out, "v2");
    assert_int_equal(extract("json:a.b", "{\"a\":{\"b\":\"canary\"}}", out), 1);
    assert_string_equal(out, "canary");
    /* not there, not a string, not JSON, not an object, empty, control chars */
    assert_int_equal(extract("json:version", "{\"other\":\"v1\"}", out), 0);
    assert_int_equal(extract("json:version", "{\"version\":2}", out), 0);
    assert_int_equal(extract("json:version", "hello", out), 0);
    assert_int_equal(extract("json:version", "[\"v1\"]", out), 0);
    assert_int_equal(extract("json:a.b", "{\"a\":\"v1\"}", out), 0);
    assert_int_equal(extract("json:version", "", out), 0);
    assert_int_equal(extract("json:version", "{\"version\":\"\"}", out), 0);
    assert_int_equal(extract("json:version", "{\"version\":\"v\\n1\"}", out), 0);
    /* the body need not be NUL-terminated: only len bytes are read */
    {
        probe_config c;
        char err[256];
        size_t len = 0;
        const char body[] = "{\"version\":\"v3\"}garbage";
        memset(&c, 0, sizeof c);
        assert_int_equal(probe_parse_extract(&c, "json:version", err, sizeof err), 0);
        assert_int_equal(probe_extract_json(&c, body, 13, out, &len), 0); /* cut short */
        assert_int_equal(probe_extract_json(&c, body, 16, out, &len), 1);
        assert_int_equal(len, 2);
        assert_memory_equal(out, "v3", 2);
    }
}

static void validates_versions(void **state)
{
    char big[PROBE_VERSION_MAX + 2];
    (void)state;
    assert_true(probe_valid_version("v1", 2));
    assert_true(probe_valid_version("release 2.0 (blue)", 18));
    assert_false(probe_valid_version("", 0));
    assert_false(probe_valid_version("v\0" "1", 3));
    assert_false(probe_valid_version("v\x7f", 2));
    memset(big, 'a', sizeof big);
    assert_true(probe_valid_version(big, PROBE_VERSION_MAX));
    assert_false(probe_valid_version(big, PROBE_VERSION_MAX + 1));
}

static void tallies_merge_and_rank(void **state)
{
    probe_result *a = calloc(1, sizeof *a), *b = calloc(1, sizeof *b), *all = calloc(1, sizeof *all);
    (void)state;
    assert_non_null(a);
    assert_non_null(b);
    assert_non_null(all);
    assert_int_equal(probe_tally_version(a, "v1", 2), 0);
    assert_int_equal(probe_tally_version(a, "v2", 2), 1);
    assert_int_equal(probe_tally_version(a, "v1", 2), 0);
    assert_int_equal(probe_tally_version(a, "v10", 3), 2); /* not a prefix match */
    assert_int_equal(probe_tally_version(a, "v", 1), 3);
    a->counts[0] = 3;
    a->counts[1] = 1;
    a->errors[PROBE_TIMEOUT] = 2;
    a->status_counts[200] = 4;
    a->sent = a->completed = 6;
    for (uint32_t us = 1000; us <= 6000; us += 1000)
        assert_int_equal(probe_tally_latency(a, us), 0);

    assert_int_equal(probe_tally_version(b, "v2", 2), 0);
    b->counts[0] = 5;
    b->errors[PROBE_TIMEOUT] = 1;
    b->status_counts[200] = 5;
    b->sent = 7;
    b->completed = 6;
    for (uint32_t us = 7000; us <= 10000; us += 1000)
        assert_int_equal(probe_tally_latency(b, us), 0);
    assert_int_equal(probe_tally_latency(b, 500), 0);
    assert_int_equal(probe_tally_latency(b, 100), 0);

    assert_int_equal(probe_result_merge(all, a), 0);
    assert_int_equal(probe_result_merge(all, b), 0);
    assert_int_equal(all->sent, 13);
    assert_int_equal(all->completed, 12);
    assert_int_equal(all->nversions, 4);
    assert_string_equal(all->versions[0], "v1");
    assert_int_equal(all->counts[0], 3);
    assert_string_equal(all->versions[1], "v2");
    assert_int_equal(all->counts[1], 6);
    assert_int_equal(all->errors[PROBE_TIMEOUT], 3);
    assert_int_equal(all->status_counts[200], 9);
    assert_int_equal(all->nlatency, 12);

    probe_result_sort(all);
    assert_int_equal(all->latency_us[0], 100);
    assert_int_equal(all->latency_us[11], 10000);
    /* nearest rank over 100, 500, 1000 ... 10000 */
    assert_true(probe_percentile_ms(all, 0.5) == 4.0);
    assert_true(probe_percentile_ms(all, 0.9) == 9.0);
    assert_true(probe_percentile_ms(all, 0.99) == 10.0);
    assert_true(probe_percentile_ms(all, 0.01) == 0.1);

    probe_result_free(a);
    probe_result_free(b);
    probe_result_free(all);
    assert_int_equal(all->nversions, 0);
    assert_null(all->latency_us);
    assert_true(probe_percentile_ms(all, 0.5) == 0.0);
    free(a);
    free(b);
    free(all);
}

static void moves_a_single_tally(void **state)
{
    probe_result *from = calloc(1, sizeof *from), *to = calloc(1, sizeof *to);
    (void)state;
    assert_int_equal(probe_tally_version(from, "v1", 2), 0);
    from->counts[0] = 1;
    assert_int_equal(probe_tally_latency(from, 42), 0);
    assert_int_equal(probe_tally_sample(from, 0, 42), 0);
    assert_int_equal(probe_tally_sample(from, -(PROBE_PARSE + 1), 7), 0);
    probe_result_move(to, from);
    assert_int_equal(from->nversions, 0);
    assert_null(from->samples);
    assert_int_equal(to->nsamples, 2);
    assert_int_equal(to->samples[1].what, -(PROBE_PARSE + 1));
    assert_string_equal(to->versions[0], "v1");
    assert_string_equal(probe_kind_names[PROBE_PARSE], "parse");
    probe_result_free(from);
    probe_result_free(to);
    free(from);
    free(to);
}


/* ---- the HTTP/1.x response parser ------------------------------------ */

/* What a caller of probe_http_feed saw for one response. */
typedef struct feed_result {
    int ev;          /* the last event: DONE, BAD, OVER, or MORE (ran out of input) */
    int heads;       /* PROBE_HTTP_HEAD events */
    char head[512];  /* the head reported */
    size_t left;     /* bytes given but not part of the response */
} feed_result;

/* Feeds data in pieces of step bytes the way runtime/net/probe/conn.c does:
 * unconsumed bytes are kept and given again with the next piece. */
static feed_result feed(probe_http *p, const char *data, size_t len, size_t step)
{
    feed_result fr;
    char *buf = malloc(len + 1);
    size_t have = 0, off = 0;
    memset(&fr, 0, sizeof fr);
    assert_non_null(buf);
    fr.ev = PROBE_HTTP_MORE;
    while (off < len || have > 0) {
        size_t n = len - off < step ? len - off : step, used = 0;
        int ev;
        memcpy(buf + have, data + off, n);
        have += n;
        off += n;
        for (;;) {
            ev = probe_http_feed(p, buf, have, &used);
            assert_true(used <= have);
            if (ev == PROBE_HTTP_HEAD) {
                fr.heads++;
                assert_true(p->head_off + p->head_len <= used);
                assert_true(p->head_len < sizeof fr.head);
                memcpy(fr.head, buf + p->head_off, p->head_len);
                fr.head[p->head_len] = '\0';
            }
            memmove(buf, buf + used, have - used);
            have -= used;
            if (ev != PROBE_HTTP_HEAD)
                break;
        }
        fr.ev = ev;
        if (ev != PROBE_HTTP_MORE) {
            fr.left = have + (len - off);
            break;
        }
        if (n == 0)
            break; /* no progress: the rest is a partial line */
    }
    free(buf);
    return fr;
}

/* Parses a response given at once and byte by byte; both must agree. */
static feed_result parse(probe_http *p, const char *resp, int head_request, int keep, size_t max)
{
    feed_result a, b;
    size_t len = strlen(resp);
    char *body1;
    size_t blen1;
    probe_http_begin(p, head_request, max);
    p->keep = keep;
    a = feed(p, resp, len, len);
    body1 = p->body.len ? malloc(p->body.len) : NULL;
    blen1 = p->body.len;
    if (blen1)
        memcpy(body1, p->body.p, blen1);
    probe_http_begin(p, head_request, max);
    p->keep = keep;
    b = feed(p, resp, len, 1);
    assert_int_equal(a.ev, b.ev);
    assert_int_equal(a.heads, b.heads);
    assert_string_equal(a.head, b.head);
    if (a.ev == PROBE_HTTP_DONE) { /* what was left and kept */
        assert_int_equal(a.left, b.left);
        assert_int_equal(blen1, p->body.len);
        if (blen1)
            assert_memory_equal(body1, p->body.p, blen1);
    }
    free(body1);
    return a;
}

static void http_content_length(void **state)
{
    probe_http p;
    feed_result r;
    const char *resp = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 16\r\n\r\n"
                       "{\"version\":\"v1\"}";
    (void)state;
    memset(&p, 0, sizeof p);
    r = parse(&p, resp, 0, 1, PROBE_BODY_MAX);
    assert_int_equal(r.ev, PROBE_HTTP_DONE);
    assert_int_equal(r.heads, 1);
    assert_int_equal(p.status, 200);
    assert_int_equal(p.minor, 1);
    assert_int_equal(p.framing, PROBE_BODY_LENGTH);
    assert_int_equal(p.close, 0);
    assert_int_equal(r.left, 0);
    assert_string_equal(r.head, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 16\r\n\r\n");
    assert_int_equal(p.body.len, 16);
    assert_memory_equal(p.body.p, "{\"version\":\"v1\"}", 16);

    /* not kept when not asked; bytes after the response are left over */
    r = parse(&p, "HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\nabcHTTP/1.1", 0, 0, PROBE_BODY_MAX);
    assert_int_equal(r.ev, PROBE_HTTP_DONE);
    assert_int_equal(p.status, 404);
    assert_int_equal(p.body.len, 0);
    assert_int_equal(r.left, 8);

    /* an empty body, identical repeated lengths, no reason phrase */
    r = parse(&p, "HTTP/1.1 200\r\nContent-Length: 0\r\ncontent-length: 0\r\n\r\n", 0, 1, PROBE_BODY_MAX);
    assert_int_equal(r.ev, PROBE_HTTP_DONE);
    assert_int_equal(p.status, 200);
    assert_int_equal(p.body.len, 0);
    probe_http_free(&p);
    assert_null(p.body.p);
}

static void http_chunked(void **state)
{
    probe_http p;
    feed_result r;
    (void)state;
    memset(&p, 0, sizeof p);
    r = parse(&p,
              "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
              "5;ext=1;q=\"a b\"\r\n{\"ver\r\n"
              "B \r\nsion\":\"v2\"}\r\n"
              "0\r\nX-Trailer: yes\r\nX-Other: 1\r\n\r\n",
              0, 1, PROBE_BODY_MAX);
    assert_int_equal(r.ev, PROBE_HTTP_DONE);
    assert_int_equal(p.framing, PROBE_BODY_CHUNKED);
    assert_int_equal(p.close, 0);
    assert_int_equal(r.left, 0);
    assert_int_equal(p.body.len, 16);
    assert_memory_equal(p.body.p, "{\"version\":\"v2\"}", 16);

    /* bare LF line ends everywhere; upper-case hex; gzip, chunked */
    r = parse(&p,
              "HTTP/1.1 200 OK\nTransfer-Encoding: gzip, Chunked\n\n"
              "A\n0123456789\n1\nx\n0\n\n",
              0, 1, PROBE_BODY_MAX);
    assert_int_equal(r.ev, PROBE_HTTP_DONE);
    assert_int_equal(p.body.len, 11);
    assert_memory_equal(p.body.p, "0123456789x", 11);

    /* Transfer-Encoding wins over Content-Length, and the connection is not reused */
    r = parse(&p, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
              0, 1, PROBE_BODY_MAX);
    assert_int_equal(r.ev, PROBE_HTTP_DONE);
    assert_int_equal(p.close, 1);
    assert_int_equal(p.body.len, 2);

    /* a partial chunked body is not a response */
    probe_http_begin(&p, 0, PROBE_BODY_MAX);
    r = feed(&p, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab", 52, 52);
    assert_int_equal(r.ev, PROBE_HTTP_MORE);
    assert_int_equal(probe_http_eof(&p), PROBE_HTTP_BAD);
    probe_http_free(&p);
}

static void http_close_and_versions(void **state)
{
    probe_http p;
    feed_result r;
    (void)state;
    memset(&p, 0, sizeof p);
    /* HTTP/1.0 without a length: the body ends when the server closes */
    probe_http_begin(&p, 0, PROBE_BODY_MAX);
    p.keep = 1;
    r = feed(&p, "HTTP/1.0 200 OK\r\n\r\n{\"version\":\"v1\"}", 35, 7);
    assert_int_equal(r.ev, PROBE_HTTP_MORE);
    assert_int_equal(r.heads, 1);
    assert_int_equal(p.framing, PROBE_BODY_CLOSE);
    assert_int_equal(p.minor, 0);
    assert_int_equal(p.close, 1);
    assert_int_equal(probe_http_eof(&p), PROBE_HTTP_DONE);
    assert_int_equal(p.body.len, 16);

    /* HTTP/1.0 keep-alive with a length */
    r = parse(&p, "HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 2\r\n\r\nok", 0, 1, PROBE_BODY_MAX);
    assert_int_equal(r.ev, PROBE_HTTP_DONE);
    assert_int_equal(p.close, 0);
    /* HTTP/1.0 with a length but no keep-alive: closed after */
    r = parse(&p, "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", 0, 1, PROBE_BODY_MAX);
    assert_int_equal(r.ev, PROBE_HTTP_DONE);
    assert_int_equal(p.close, 1);
    /* HTTP/1.1 Connection: close (among other tokens) */
    r = parse(&p, "HTTP/1.1 200 OK\r\nConnection: upgrade, Close\r\nContent-Length: 2\r\n\r\nok", 0, 1,
              PROBE_BODY_MAX);
    assert_int_equal(r.ev, PROBE_HTTP_DONE);
    assert_int_equal(p.close, 1);
    /* a partial length-delimited body at the close */
    probe_http_begin(&p, 0, PROBE_BODY_MAX);
    r = feed(&p, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", 42, 42);
    assert_int_equal(r.ev, PROBE_HTTP_MORE);
    assert_int_equal(probe_http_eof(&p), PROBE_HTTP_BAD);
    /* nothing at all */
    probe_http_begin(&p, 0, PROBE_BODY_MAX);
    assert_int_equal(probe_http_eof(&p), PROBE_HTTP_BAD);
    probe_http_free(&p);
}

static void http_bodiless_and_interim(void **state)
{
    probe_http p;
    feed_result r;
    (void)state;
    memset(&p, 0, sizeof p);
    /* HEAD: a length but no body; the next bytes are not part of it */
    r = parse(&p, "HTTP/1.1 200 OK\r\nContent-Length: 16\r\n\r\nnext", 1, 1, PROBE_BODY_MAX);
    assert_int_equal(r.ev, PROBE_HTTP_DONE);
    assert_int_equal(p.framing, PROBE_BODY_NONE);
    assert_int_equal(r.left, 4);
    r = parse(&p, "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n", 0, 1, PROBE_BODY_MAX);
    assert_int_equal(r.ev, PROBE_HTTP_DONE);
    assert_int_equal(p.status, 204);
    r = parse(&p, "HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n", 0, 1, PROBE_BODY_MAX);
    assert_int_equal(r.ev, PROBE_HTTP_DONE);
    assert_int_equal(p.status, 304);
    /* interim responses are skipped; the head reported is the final one */
    r = parse(&p,
              "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
              "HTTP/1.1 200 OK\r\nX-Version: v3\r\nContent-Length: 2\r\n\r\nok",
              0, 1, PROBE_BODY_MAX);
    assert_int_equal(r.ev, PROBE_HTTP_DONE);
    assert_int_equal(r.heads, 1);
    assert_int_equal(p.status, 200);
    assert_string_equal(r.head, "HTTP/1.1 200 OK\r\nX-Version: v3\r\nContent-Length: 2\r\n\r\n");
    assert_memory_equal(p.body.p, "ok", 2);
    /* obs-fold: accepted (a Connection fold counts) */
    r = parse(&p, "HTTP/1.1 200 OK\r\nX-A: 1\r\n folded\r\nConnection: x,\r\n\tclose\r\nContent-Length: 2\r\n\r\nok",
              0, 1, PROBE_BODY_MAX);
    assert_int_equal(r.ev, PROBE_HTTP_DONE);
    assert_int_equal(p.close, 1);
    assert_memory_equal(p.body.p, "ok", 2);
    /* 101 is final and ends the connection's HTTP */
    r = parse(&p, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n", 0, 1, PROBE_BODY_MAX);
    assert_int_equal(r.ev, PROBE_HTTP_DONE);
    assert_int_equal(p.status, 101);
    assert_int_equal(p.close, 1);
    probe_http_free(&p);
}

static void http_body_cap(void **state)
{
    probe_http p;
    feed_result r;
    (void)state;
    memset(&p, 0, sizeof p);
    r = parse(&p, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789", 0, 1, 10);
    assert_int_equal(r.ev, PROBE_HTTP_DONE);
    assert_int_equal(p.body.len, 10);
    r = parse(&p, "HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n0123456789a", 0, 1, 10);
    assert_int_equal(r.ev, PROBE_HTTP_OVER);
    assert_true(p.body.len <= 10);
    r = parse(&p, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n6\r\n012345\r\n6\r\n6789ab\r\n0\r\n\r\n", 0, 1,
              10);
    assert_int_equal(r.ev, PROBE_HTTP_OVER);
    r = parse(&p, "HTTP/1.0 200 OK\r\n\r\n0123456789ab", 0, 1, 10);
    assert_int_equal(r.ev, PROBE_HTTP_OVER);
    /* a body that is not kept has no cap */
    r = parse(&p, "HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n0123456789a", 0, 0, 10);
    assert_int_equal(r.ev, PROBE_HTTP_DONE);
    assert_int_equal(p.body.len, 0);
    probe_http_free(&p);
}

static void http_refuses_malformed(void **state)
{
    static const char *const bad[] = {
        "HTTP/2 200 OK\r\n\r\n",
        "HTTP/1.1 20 OK\r\n\r\n",
        "HTTP/1.1 2000 OK\r\n\r\n",
        "HTTP/1.1 099 OK\r\n\r\n",
        "HTTP/1.1 2x0 OK\r\n\r\n",
        "HTTP/1.1  200 OK\r\n\r\n",
        "HTTP/1.x 200 OK\r\n\r\n",
        "http/1.1 200 OK\r\n\r\n",
        "ICY 200 OK\r\n\r\n",
        "\r\nHTTP/1.1 200 OK\r\n\r\n",
        "HTTP/1.1 200 OK\r\n folded\r\nContent-Length: 0\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length:\r\n 0\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip,\r\n\tchunked\r\n\r\n0\r\n\r\n",
        "HTTP/1.1 200 OK\r\nX-A: 1\r\n fol\x01" "ded\r\nContent-Length: 0\r\n\r\n",
        "HTTP/1.1 200 OK\r\nX-A : 1\r\nContent-Length: 0\r\n\r\n",
        "HTTP/1.1 200 OK\r\nX A: 1\r\nContent-Length: 0\r\n\r\n",
        "HTTP/1.1 200 OK\r\n: 1\r\nContent-Length: 0\r\n\r\n",
        "HTTP/1.1 200 OK\r\nno colon\r\nContent-Length: 0\r\n\r\n",
        "HTTP/1.1 200 OK\r\nX-A: a\x01" "b\r\nContent-Length: 0\r\n\r\n",
        "HTTP/1.1 200 OK\r\nX-A: a\rb\r\nContent-Length: 0\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
        "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 1, 1\r\n\r\na",
        "HTTP/1.1 200 OK\r\nContent-Length: \r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2 x\r\nok\r\n0\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nokX\r\n0\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1000000000000000\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nbad trailer\r\n\r\n",
    };
    probe_http p;
    (void)state;
    memset(&p, 0, sizeof p);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        feed_result r = parse(&p, bad[i], 0, 1, PROBE_BODY_MAX);
        if (r.ev != PROBE_HTTP_BAD)
            fail_msg("accepted bad response %zu: %s", i, bad[i]);
        /* and stays failed */
        {
            size_t used;
            assert_int_equal(probe_http_feed(&p, "x", 1, &used), PROBE_HTTP_BAD);
        }
    }
    probe_http_free(&p);
}

static void http_limits(void **state)
{
    probe_http p;
    size_t n = PROBE_HEAD_MAX + 100, used = 0;
    char *big = malloc(n);
    (void)state;
    assert_non_null(big);
    memset(&p, 0, sizeof p);
    /* a head that never ends */
    memcpy(big, "HTTP/1.1 200 OK\r\n", 17);
    for (size_t i = 17; i < n; i++)
        big[i] = (i % 80 == 79) ? '\n' : 'a';
    probe_http_begin(&p, 0, PROBE_BODY_MAX);
    assert_int_equal(probe_http_feed(&p, big, PROBE_HEAD_MAX, &used), PROBE_HTTP_MORE);
    assert_int_equal(used, 0);
    probe_http_begin(&p, 0, PROBE_BODY_MAX);
    assert_int_equal(probe_http_feed(&p, big, n, &used), PROBE_HTTP_BAD);
    /* a chunk-size line that never ends */
    {
        const char *h = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1;";
        size_t hl = strlen(h);
        memcpy(big, h, hl);
        memset(big + hl, 'e', n - hl);
        probe_http_begin(&p, 0, PROBE_BODY_MAX);
        assert_int_equal(probe_http_feed(&p, big, hl + 100, &used), PROBE_HTTP_HEAD);
        assert_int_equal(probe_http_feed(&p, big + used, hl + 100 - used, &used), PROBE_HTTP_MORE);
        assert_int_equal(used, 0);
        probe_http_begin(&p, 0, PROBE_BODY_MAX);
        assert_int_equal(probe_http_feed(&p, big, n, &used), PROBE_HTTP_HEAD);
        assert_int_equal(probe_http_feed(&p, big + used, n - used, &used), PROBE_HTTP_BAD);
    }
    free(big);
    probe_http_free(&p);
}

static void extracts_headers(void **state)
{
    probe_config c;
    char err[256], out[PROBE_VERSION_MAX + 1];
    size_t len = 0;
    const char *head = "HTTP/1.1 200 OK\r\nX-Served-By-Other: no\r\nx-served-by:  v1 \r\n"
                       "X-SERVED-BY:\t\r\nContent-Length: 0\r\n\r\n";
    (void)state;
    memset(&c, 0, sizeof c);
    assert_int_equal(probe_parse_extract(&c, "header:X-Served-By", err, sizeof err), 0);
    /* the last valid occurrence; an empty one is not a version */
    assert_int_equal(probe_extract_header(&c, head, strlen(head), out, &len), 1);
    assert_int_equal(len, 2);
    assert_memory_equal(out, "v1", 2);
    head = "HTTP/1.1 200 OK\nx-served-by: a\nX-Served-By: b\n\n";
    assert_int_equal(probe_extract_header(&c, head, strlen(head), out, &len), 1);
    assert_memory_equal(out, "b", 1);
    head = "HTTP/1.1 200 OK\r\nX-Served: v1\r\n\r\n";
    assert_int_equal(probe_extract_header(&c, head, strlen(head), out, &len), 0);
    /* the status line is not a header */
    head = "X-Served-By: v9\r\n\r\n";
    assert_int_equal(probe_extract_header(&c, head, strlen(head), out, &len), 0);
}

static char *request(const char *url, const char *method, struct curl_slist *h, int *tls)
{
    probe_config c;
    char err[256], *out = NULL;
    size_t len = 0;
    memset(&c, 0, sizeof c);
    c.url = url;
    c.method = method;
    c.headers = h;
    if (probe_http_request(&c, &out, &len, tls, err, sizeof err) != 0)
        return NULL;
    assert_int_equal(strlen(out), len);
    return out;
}

static void builds_requests(void **state)
{
    struct curl_slist *h = NULL;
    int tls = -1;
    char *r;
    (void)state;
    r = request("http://127.0.0.1:8080/api/version?a=1&b=2#frag", NULL, NULL, &tls);
    assert_non_null(r);
    assert_int_equal(tls, 0);
    assert_string_equal(r, "GET /api/version?a=1&b=2 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nAccept: */*\r\n\r\n");
    free(r);
    /* default ports are not written; no path is "/" */
    r = request("https://example.test:443", "HEAD", NULL, &tls);
    assert_int_equal(tls, 1);
    assert_string_equal(r, "HEAD / HTTP/1.1\r\nHost: example.test\r\nAccept: */*\r\n\r\n");
    free(r);
    r = request("http://[::1]:80/x", "DELETE", NULL, &tls);
    assert_string_equal(r, "DELETE /x HTTP/1.1\r\nHost: [::1]\r\nAccept: */*\r\n\r\n");
    free(r);
    /* credentials in the URL: Basic, decoded ("Aladdin:open sesame") */
    r = request("http://Aladdin:open%20sesame@h:81/", NULL, NULL, &tls);
    assert_string_equal(r, "GET / HTTP/1.1\r\nHost: h:81\r\nAuthorization: Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==\r\n"
                           "Accept: */*\r\n\r\n");
    free(r);
    /* extra headers: in order; an empty one; a blank one is not sent; Host and
     * Accept of the caller replace the built-in ones */
    h = curl_slist_append(h, "x-version: v2");
    h = curl_slist_append(h, "X-Empty;");
    h = curl_slist_append(h, "X-Blank:   ");
    h = curl_slist_append(h, "host: gw.test");
    h = curl_slist_append(h, "Accept:  ");
    r = request("http://u@127.0.0.1:9/p", NULL, h, &tls);
    assert_string_equal(r, "GET /p HTTP/1.1\r\nAuthorization: Basic dTo=\r\nx-version: v2\r\nX-Empty:\r\n"
                           "host: gw.test\r\n\r\n");
    free(r);
    curl_slist_free_all(h);
    /* not a URL */
    assert_null(request("http://", NULL, NULL, &tls));
    assert_null(request("ftp://127.0.0.1/x", NULL, NULL, &tls));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parses_extract_specs),
        cmocka_unit_test(extracts_json_fields),
        cmocka_unit_test(validates_versions),
        cmocka_unit_test(tallies_merge_and_rank),
        cmocka_unit_test(moves_a_single_tally),
        cmocka_unit_test(http_content_length),
        cmocka_unit_test(http_chunked),
        cmocka_unit_test(http_close_and_versions),
        cmocka_unit_test(http_bodiless_and_interim),
        cmocka_unit_test(http_body_cap),
        cmocka_unit_test(http_refuses_malformed),
        cmocka_unit_test(http_limits),
        cmocka_unit_test(extracts_headers),
        cmocka_unit_test(builds_requests),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
