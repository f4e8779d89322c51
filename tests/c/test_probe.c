/* The Lua-free parts of the probe: extract specs, JSON extraction, version
 * validity, tallies, merging and percentiles (runtime/probe_extract.c,
 * runtime/probe_tally.c). */
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parses_extract_specs),
        cmocka_unit_test(extracts_json_fields),
        cmocka_unit_test(validates_versions),
        cmocka_unit_test(tallies_merge_and_rank),
        cmocka_unit_test(moves_a_single_tally),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
