/* libFuzzer harness: the probe's incremental HTTP/1.x response parser
 * (runtime/net/probe/http.c, probe_http_feed/probe_http_eof) and the version
 * extraction that reads what it parsed (runtime/net/probe/extract.c).
 *
 * Input: byte 0 = flags, byte 1 = seed of the split points, the rest = the
 * bytes a server sent. flags: bit 0 the request was HEAD, bit 1 keep the
 * body, bits 2-3 body_max (16, 1024, PROBE_BODY_MAX, 0), bits 5-7 the
 * largest piece of the random split (2 << n bytes).
 *
 * The response is fed three ways the way runtime/net/probe/conn.c feeds it
 * (unconsumed bytes are given again with the next bytes after them): all
 * at once, one byte at a time, and in pieces of random sizes. Each call
 * sees only the bytes received so far: the rest of the buffer is poisoned,
 * so reading past what it was given is an ASan report. Checked:
 *   - every call: used <= len; a head lies inside what was used; at most
 *     one head; status 100..999, not an interim 1xx; framing consistent
 *     with the status and the request;
 *   - a complete response: the bytes after the head are exactly the body
 *     for Content-Length and no-body framings, and the kept body has the
 *     length the framing says; never more than body_max; a body kept only
 *     when asked;
 *   - the three ways agree: the event, the head (where and what), status,
 *     framing, length, close, the kept body, the bytes left over, and
 *     probe_http_eof when the bytes ran out.
 * Then probe_extract_header / probe_extract_json run on exact-size copies
 * of the head and the body. */
#include "rollout/probe.h"

#include <sanitizer/asan_interface.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond, ...)                                                                              \
    do {                                                                                              \
        if (!(cond)) {                                                                                \
            fprintf(stderr, "fuzz: FINDING (%s:%d): %s: ", __FILE__, __LINE__, #cond);                \
            fprintf(stderr, __VA_ARGS__);                                                             \
            fprintf(stderr, "\n");                                                                    \
            abort();                                                                                  \
        }                                                                                             \
    } while (0)

typedef struct outcome {
    int ev;              /* the last event: DONE, BAD, OVER, or MORE (ran out of bytes) */
    int eof_ev;          /* probe_http_eof when ev is MORE */
    int heads;
    size_t head_at, head_len; /* in the stream */
    int status, minor, close;
    enum probe_http_framing framing;
    uint64_t length;
    size_t consumed;     /* bytes of the stream taken when it ended (DONE) */
    char *body;
    size_t body_len;
} outcome;

enum { SPLIT_WHOLE, SPLIT_BYTES, SPLIT_RANDOM };

static uint32_t next_rand(uint32_t *s)
{
    uint32_t x = *s;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *s = x;
}

static void check_head(const probe_http *p, int head_request)
{
    CHECK(p->status >= 100 && p->status <= 999, "status %d", p->status);
    CHECK(p->status / 100 != 1 || p->status == 101, "an interim response %d was reported", p->status);
    CHECK(p->minor >= 0 && p->minor <= 9, "minor %d", p->minor);
    if (head_request || p->status / 100 == 1 || p->status == 204 || p->status == 304)
        CHECK(p->framing == PROBE_BODY_NONE, "framing %d for status %d (HEAD %d)", p->framing, p->status,
              head_request);
    if (p->framing == PROBE_BODY_CLOSE || p->status == 101)
        CHECK(p->close, "a close-delimited body or an upgrade on a connection kept open");
    if (p->framing == PROBE_BODY_LENGTH)
        CHECK(p->length > 0, "framing LENGTH with length 0");
}

/* Feeds stream[0..len) in pieces; buf is the stream's own (exact-size)
 * allocation, poisoned beyond what has arrived. */
static outcome run(const char *stream, size_t len, int head_request, int keep, size_t body_max, int split,
                   uint32_t seed, size_t max_piece)
{
    outcome o;
    probe_http p;
    size_t consumed = 0, arrived = 0, head_end = 0;
    memset(&o, 0, sizeof o);
    memset(&p, 0, sizeof p);
    probe_http_begin(&p, head_request, body_max);
    p.keep = keep;
    o.ev = PROBE_HTTP_MORE;
    seed = seed * 2654435761u + 1u;
    for (;;) {
        size_t piece;
        int ev = PROBE_HTTP_MORE;
        if (arrived == len)
            break;
        piece = split == SPLIT_WHOLE ? len : split == SPLIT_BYTES ? 1 : 1 + next_rand(&seed) % max_piece;
        if (piece > len - arrived)
            piece = len - arrived;
        arrived += piece;
        for (;;) { /* what runtime/net/probe/conn.c's slot_parse does with what arrived */
            size_t have = arrived - consumed, used = (size_t)-1;
            ASAN_POISON_MEMORY_REGION(stream + arrived, len - arrived);
            ev = probe_http_feed(&p, stream + consumed, have, &used);
            ASAN_UNPOISON_MEMORY_REGION(stream + arrived, len - arrived);
            CHECK(used <= have, "used %zu of %zu", used, have);
            if (ev == PROBE_HTTP_HEAD) {
                CHECK(o.heads == 0, "a second head");
                CHECK(p.head_len > 0 && p.head_off + p.head_len <= used, "head at %zu+%zu, used %zu", p.head_off,
                      p.head_len, used);
                check_head(&p, head_request);
                o.heads++;
                o.head_at = consumed + p.head_off;
                o.head_len = p.head_len;
                head_end = o.head_at + o.head_len;
            } else {
                CHECK(ev == PROBE_HTTP_MORE || ev == PROBE_HTTP_DONE || ev == PROBE_HTTP_BAD || ev == PROBE_HTTP_OVER,
                      "event %d", ev);
            }
            consumed += used;
            if (ev != PROBE_HTTP_HEAD)
                break;
        }
        o.ev = ev;
        if (ev != PROBE_HTTP_MORE)
            break;
    }
    o.consumed = consumed;
    if (o.ev == PROBE_HTTP_MORE)
        o.eof_ev = probe_http_eof(&p);
    if (o.ev == PROBE_HTTP_DONE || o.eof_ev == PROBE_HTTP_DONE)
        CHECK(o.heads == 1, "a complete response without a head");
    if (o.ev == PROBE_HTTP_DONE) {
        size_t after = consumed - head_end;
        CHECK(consumed >= head_end, "consumed %zu, head ends at %zu", consumed, head_end);
        CHECK(p.framing != PROBE_BODY_CLOSE, "a close-delimited body completed before the close");
        if (p.framing == PROBE_BODY_NONE)
            CHECK(after == 0, "%zu bytes taken after a head without a body", after);
        if (p.framing == PROBE_BODY_LENGTH)
            CHECK(after == p.length, "%zu bytes taken for Content-Length %llu", after,
                  (unsigned long long)p.length);
        if (keep && p.framing == PROBE_BODY_LENGTH)
            CHECK(p.body.len == p.length, "kept %zu bytes of a %llu-byte body", p.body.len,
                  (unsigned long long)p.length);
        if (p.framing == PROBE_BODY_CHUNKED)
            CHECK(p.body.len < after, "kept %zu body bytes of %zu chunked bytes", p.body.len, after);
    }
    if (o.eof_ev == PROBE_HTTP_DONE && keep && p.framing == PROBE_BODY_CLOSE)
        CHECK(p.body.len == len - head_end, "kept %zu of %zu bytes before the close", p.body.len, len - head_end);
    if (o.eof_ev == PROBE_HTTP_DONE && p.framing != PROBE_BODY_CLOSE)
        CHECK(p.framing == PROBE_BODY_NONE, "eof completed a response framed %d", p.framing);
    if (o.ev == PROBE_HTTP_OVER)
        CHECK(keep, "OVER without keeping the body");
    CHECK(keep || p.body.len == 0, "a body kept when not asked");
    CHECK(p.body.len <= body_max, "kept %zu bytes, body_max %zu", p.body.len, body_max);
    o.status = p.status;
    o.minor = p.minor;
    o.close = p.close;
    o.framing = p.framing;
    o.length = p.length;
    o.body_len = p.body.len;
    o.body = p.body.p; /* owned by o now */
    return o;
}

static void same(const outcome *a, const outcome *b, const char *how)
{
    CHECK(a->ev == b->ev, "%s: event %d vs %d", how, a->ev, b->ev);
    CHECK(a->heads == b->heads, "%s: heads %d vs %d", how, a->heads, b->heads);
    if (a->ev == PROBE_HTTP_MORE)
        CHECK(a->eof_ev == b->eof_ev, "%s: eof %d vs %d", how, a->eof_ev, b->eof_ev);
    if (a->heads == 0 || a->ev == PROBE_HTTP_BAD || a->ev == PROBE_HTTP_OVER)
        return;
    CHECK(a->head_at == b->head_at && a->head_len == b->head_len, "%s: head %zu+%zu vs %zu+%zu", how, a->head_at,
          a->head_len, b->head_at, b->head_len);
    CHECK(a->status == b->status && a->minor == b->minor && a->close == b->close && a->framing == b->framing &&
              a->length == b->length,
          "%s: head fields differ", how);
    if (a->ev == PROBE_HTTP_DONE)
        CHECK(a->consumed == b->consumed, "%s: consumed %zu vs %zu", how, a->consumed, b->consumed);
    if (a->ev == PROBE_HTTP_DONE || a->eof_ev == PROBE_HTTP_DONE)
        CHECK(a->body_len == b->body_len && (a->body_len == 0 || memcmp(a->body, b->body, a->body_len) == 0),
              "%s: kept bodies differ (%zu vs %zu bytes)", how, a->body_len, b->body_len);
}

/* The probe's extraction on what the parser delimited, in exact-size
 * copies (so that reading past them is an ASan report). */
static void extract(const char *stream, const outcome *o)
{
    probe_config cfg;
    char out[PROBE_VERSION_MAX + 1], err[128];
    size_t outlen = 0;
    memset(&cfg, 0, sizeof cfg);
    if (o->heads == 1) {
        char *head = malloc(o->head_len);
        CHECK(head != NULL, "out of memory");
        memcpy(head, stream + o->head_at, o->head_len);
        CHECK(probe_parse_extract(&cfg, "header:x-version", err, sizeof err) == 0, "%s", err);
        if (probe_extract_header(&cfg, head, o->head_len, out, &outlen))
            CHECK(probe_valid_version(out, outlen), "header: an invalid version of %zu bytes", outlen);
        free(head);
    }
    if ((o->ev == PROBE_HTTP_DONE || o->eof_ev == PROBE_HTTP_DONE) && o->body_len > 0) {
        char *body = malloc(o->body_len);
        CHECK(body != NULL, "out of memory");
        memcpy(body, o->body, o->body_len);
        CHECK(probe_parse_extract(&cfg, "json:version", err, sizeof err) == 0, "%s", err);
        if (probe_extract_json(&cfg, body, o->body_len, out, &outlen))
            CHECK(probe_valid_version(out, outlen), "json: an invalid version of %zu bytes", outlen);
        CHECK(probe_parse_extract(&cfg, "json:a.b.c", err, sizeof err) == 0, "%s", err);
        if (probe_extract_json(&cfg, body, o->body_len, out, &outlen))
            CHECK(probe_valid_version(out, outlen), "json: an invalid version of %zu bytes", outlen);
        free(body);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const size_t body_maxes[4] = {16, 1024, PROBE_BODY_MAX, 0};
    int flags, head_request, keep;
    size_t body_max, max_piece, len;
    uint32_t seed;
    char *stream;
    outcome whole, bytes, pieces;

    if (size < 2)
        return 0;
    flags = data[0];
    seed = data[1];
    head_request = flags & 1;
    keep = (flags >> 1) & 1;
    body_max = body_maxes[(flags >> 2) & 3];
    max_piece = (size_t)2 << ((flags >> 5) & 7);
    len = size - 2;
    stream = malloc(len ? len : 1);
    if (stream == NULL)
        return 0;
    memcpy(stream, data + 2, len);

    whole = run(stream, len, head_request, keep, body_max, SPLIT_WHOLE, seed, max_piece);
    bytes = run(stream, len, head_request, keep, body_max, SPLIT_BYTES, seed, max_piece);
    pieces = run(stream, len, head_request, keep, body_max, SPLIT_RANDOM, seed, max_piece);
    same(&whole, &bytes, "whole vs byte by byte");
    same(&whole, &pieces, "whole vs random pieces");
    extract(stream, &whole);

    free(whole.body);
    free(bytes.body);
    free(pieces.body);
    free(stream);
    return 0;
}
