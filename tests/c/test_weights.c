/* runtime/core/weights.c: validation, shares, largest-remainder percentages. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "rollout/weights.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

static void dns_labels(void **state)
{
    (void)state;
    assert_true(rw_is_dns1123_label("v1"));
    assert_true(rw_is_dns1123_label("a"));
    assert_true(rw_is_dns1123_label("canary-2"));
    assert_true(rw_is_dns1123_label("0abc"));
    assert_false(rw_is_dns1123_label(""));
    assert_false(rw_is_dns1123_label("-v1"));
    assert_false(rw_is_dns1123_label("v1-"));
    assert_false(rw_is_dns1123_label("V1"));
    assert_false(rw_is_dns1123_label("v1;rm"));
    assert_false(rw_is_dns1123_label("../v1"));
    assert_false(rw_is_dns1123_label("v_1"));
    assert_false(rw_is_dns1123_label("v.1"));
    assert_false(rw_is_dns1123_label(NULL));
    char long_name[65];
    memset(long_name, 'a', 64);
    long_name[64] = '\0';
    assert_false(rw_is_dns1123_label(long_name));
    long_name[63] = '\0';
    assert_true(rw_is_dns1123_label(long_name));
}

static void validation_names_the_version(void **state)
{
    char err[256];
    (void)state;
    rw_entry neg[] = {{"v1", 50}, {"v2", -5}};
    assert_int_equal(rw_validate(neg, N(neg), err, sizeof err), -1);
    assert_non_null(strstr(err, "v2"));
    assert_non_null(strstr(err, "-5"));

    rw_entry zero[] = {{"v1", 0}, {"v2", 0}};
    assert_int_equal(rw_validate(zero, N(zero), err, sizeof err), -1);
    assert_non_null(strstr(err, "all weights are 0"));

    rw_entry bad[] = {{"v1", 1}, {"v;2", 1}};
    assert_int_equal(rw_validate(bad, N(bad), err, sizeof err), -1);
    assert_non_null(strstr(err, "v;2"));
    assert_non_null(strstr(err, "DNS-1123"));

    rw_entry dup[] = {{"v1", 1}, {"v1", 2}};
    assert_int_equal(rw_validate(dup, N(dup), err, sizeof err), -1);
    assert_non_null(strstr(err, "twice"));

    rw_entry big[] = {{"v1", RW_MAX_WEIGHT + 1}};
    assert_int_equal(rw_validate(big, N(big), err, sizeof err), -1);
    assert_non_null(strstr(err, "v1"));

    assert_int_equal(rw_validate(NULL, 0, err, sizeof err), -1);

    rw_entry ok[] = {{"v1", 50}, {"v2", 0}, {"v3", 50}};
    assert_int_equal(rw_validate(ok, N(ok), err, sizeof err), 0);
}

static void shares_are_relative(void **state)
{
    double s[3];
    (void)state;
    rw_entry e[] = {{"v1", 50}, {"v2", 50}, {"v3", 50}};
    rw_shares(e, N(e), s);
    for (int i = 0; i < 3; i++)
        assert_float_equal(s[i], 1.0 / 3.0, 1e-15);
    rw_entry f[] = {{"v1", 1}, {"v2", 0}, {"v3", 3}};
    rw_shares(f, N(f), s);
    assert_float_equal(s[0], 0.25, 1e-15);
    assert_float_equal(s[1], 0.0, 0);
    assert_float_equal(s[2], 0.75, 1e-15);
}

static int sum(const int *p, size_t n)
{
    int t = 0;
    for (size_t i = 0; i < n; i++)
        t += p[i];
    return t;
}

static void percentages_sum_to_100(void **state)
{
    int p[4];
    (void)state;
    rw_entry thirds[] = {{"v1", 50}, {"v2", 50}, {"v3", 50}};
    assert_int_equal(rw_percentages(thirds, 3, p), 0);
    /* tie on the remainder: the name that sorts first gets the point */
    assert_int_equal(p[0], 34);
    assert_int_equal(p[1], 33);
    assert_int_equal(p[2], 33);

    rw_entry rev[] = {{"v3", 50}, {"v2", 50}, {"v1", 50}};
    assert_int_equal(rw_percentages(rev, 3, p), 0);
    assert_int_equal(p[2], 34); /* still v1, whatever the order given */
    assert_int_equal(p[0], 33);

    rw_entry sixths[] = {{"a", 1}, {"b", 1}, {"c", 1}, {"d", 3}};
    assert_int_equal(rw_percentages(sixths, 4, p), 0);
    assert_int_equal(sum(p, 4), 100);
    assert_int_equal(p[3], 50);

    rw_entry zero[] = {{"v1", 50}, {"v2", 0}, {"v3", 50}};
    assert_int_equal(rw_percentages(zero, 3, p), 0);
    assert_int_equal(p[0], 50);
    assert_int_equal(p[1], 0);
    assert_int_equal(p[2], 50);

    rw_entry tiny[] = {{"v1", 1}, {"v2", 999}};
    assert_int_equal(rw_percentages(tiny, 2, p), 0);
    assert_int_equal(p[0], 0);
    assert_int_equal(p[1], 100);

    rw_entry seven[] = {{"a", 1}, {"b", 1}, {"c", 1}, {"d", 1}};
    for (long long w = 1; w < 200; w += 7) {
        seven[2].weight = w;
        assert_int_equal(rw_percentages(seven, 4, p), 0);
        assert_int_equal(sum(p, 4), 100);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(dns_labels),
        cmocka_unit_test(validation_names_the_version),
        cmocka_unit_test(shares_are_relative),
        cmocka_unit_test(percentages_sum_to_100),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
