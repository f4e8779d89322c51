/* config.c - defaults, environment variables and flags, validated. */
#define _POSIX_C_SOURCE 200809L
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage_text[] =
    "usage: microservice-1 [options]\n"
    "\n"
    "A small HTTP demo service with fault injection.\n"
    "\n"
    "options (flags win over the environment variable in brackets):\n"
    "  --port N          TCP port, 0 picks a free one    [PORT, 8080]\n"
    "  --bind ADDR       numeric IPv4/IPv6 address  [BIND_ADDRESS, 127.0.0.1]\n"
    "  --version NAME    version reported            [SERVICE_VERSION, v1]\n"
    "  --service NAME    service reported  [SERVICE_NAME, microservice-1]\n"
    "  --error-rate F    share 0..1 of /api/version answered 500\n"
    "                                                    [ERROR_RATE, 0]\n"
    "  --latency-ms N    delay added to /api/version, 0..60000 [LATENCY_MS, 0]\n"
    "  --fail-health     /healthz answers 503          [FAIL_HEALTH=1, off]\n"
    "  --threads N       worker threads, 1..64                         [2]\n"
    "  --help            print this help and exit\n"
    "\n"
    "On start one line \"listening on ADDR:PORT\" is printed to stdout.\n"
    "Endpoints: GET /api/version, GET /healthz, GET|POST /admin/faults\n"
    "           (POST /admin/faults?error_rate=F&latency_ms=N&fail_health=0|1)\n"
    "SIGTERM or SIGINT stops the service (exit 0).\n";

static int bad(const char *what, const char *value, const char *expected)
{
    fprintf(stderr, "microservice-1: invalid %s '%s': expected %s\n", what,
            value, expected);
    return EXIT_USAGE;
}

static int parse_port(const char *s, unsigned *out)
{
    char *end;
    unsigned long v;

    if (s == NULL || *s < '0' || *s > '9')
        return -1;
    errno = 0;
    v = strtoul(s, &end, 10);
    if (errno != 0 || *end != '\0' || v > 65535)
        return -1;
    *out = (unsigned)v;
    return 0;
}

static int parse_threads(const char *s, unsigned *out)
{
    unsigned v;

    if (parse_port(s, &v) < 0 || v < 1 || v > CONFIG_MAX_THREADS)
        return -1;
    *out = v;
    return 0;
}

/* Names go into JSON bodies and the X-Served-By header: keep them to
 * letters, digits, '.', '_' and '-' (1..63 characters). */
static int parse_name(const char *s, char *out)
{
    size_t n = s ? strlen(s) : 0;

    if (n == 0 || n > CONFIG_NAME_MAX ||
        strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                  "0123456789._-") != n)
        return -1;
    memcpy(out, s, n + 1);
    return 0;
}

static int parse_bind(const char *s, char *out, size_t cap)
{
    struct in_addr a4;
    struct in6_addr a6;

    if (s == NULL || strlen(s) >= cap)
        return -1;
    if (inet_pton(AF_INET, s, &a4) != 1 && inet_pton(AF_INET6, s, &a6) != 1)
        return -1;
    memcpy(out, s, strlen(s) + 1);
    return 0;
}

static const char expect_port[] = "an integer 0..65535";
static const char expect_bind[] = "a numeric IPv4 or IPv6 address";
static const char expect_name[] = "1..63 characters of [A-Za-z0-9._-]";
static const char expect_rate[] = "a decimal number from 0 to 1";
static const char expect_latency[] = "an integer 0..60000 (milliseconds)";
static const char expect_bool[] = "1/0, true/false, yes/no or on/off";
static const char expect_threads[] = "an integer 1..64";

/* Settings that a flag has given; the environment does not override them
 * (and is not even looked at for them). */
enum {
    SET_PORT = 1 << 0,
    SET_BIND = 1 << 1,
    SET_VERSION = 1 << 2,
    SET_SERVICE = 1 << 3,
    SET_ERROR_RATE = 1 << 4,
    SET_LATENCY = 1 << 5,
    SET_FAIL_HEALTH = 1 << 6,
};

static int load_env(struct config *cfg, unsigned set)
{
    const char *v;

#define ENV(bit, name, parse, expected)                                        \
    if (!(set & (bit)) && (v = getenv(name)) != NULL && *v != '\0' &&         \
        (parse) < 0)                                                           \
        return bad("environment variable " name, v, expected);

    ENV(SET_PORT, "PORT", parse_port(v, &cfg->port), expect_port)
    ENV(SET_BIND, "BIND_ADDRESS", parse_bind(v, cfg->bind, sizeof cfg->bind),
        expect_bind)
    ENV(SET_VERSION, "SERVICE_VERSION", parse_name(v, cfg->version),
        expect_name)
    ENV(SET_SERVICE, "SERVICE_NAME", parse_name(v, cfg->service), expect_name)
    ENV(SET_ERROR_RATE, "ERROR_RATE",
        faults_parse_error_rate(v, &cfg->faults.error_rate), expect_rate)
    ENV(SET_LATENCY, "LATENCY_MS",
        faults_parse_latency_ms(v, &cfg->faults.latency_ms), expect_latency)
    ENV(SET_FAIL_HEALTH, "FAIL_HEALTH",
        faults_parse_bool(v, &cfg->faults.fail_health), expect_bool)
#undef ENV
    return EXIT_OK;
}

/* Matches "--name VALUE" and "--name=VALUE"; advances *i past the value. */
static int flag_value(const char *name, int argc, char **argv, int *i,
                      const char **value, int *status)
{
    const char *arg = argv[*i];
    size_t n = strlen(name);

    if (strncmp(arg, name, n) != 0)
        return 0;
    if (arg[n] == '=') {
        *value = arg + n + 1;
        return 1;
    }
    if (arg[n] != '\0')
        return 0;
    if (*i + 1 >= argc) {
        fprintf(stderr, "microservice-1: %s needs a value (see --help)\n",
                name);
        *status = EXIT_USAGE;
        return 1;
    }
    *value = argv[++*i];
    return 1;
}

static int load_flags(struct config *cfg, int argc, char **argv,
                      unsigned *set)
{
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i], *v = NULL;
        int status = EXIT_OK;

        if (!strcmp(arg, "--help") || !strcmp(arg, "-h")) {
            fputs(usage_text, stdout);
            return CONFIG_HELP_PRINTED;
        }
        if (!strcmp(arg, "--fail-health")) {
            cfg->faults.fail_health = true;
            *set |= SET_FAIL_HEALTH;
            continue;
        }

#define FLAG(bit, name, parse, expected)                                       \
    if (flag_value(name, argc, argv, &i, &v, &status)) {                       \
        if (status != EXIT_OK)                                                 \
            return status;                                                     \
        if ((parse) < 0)                                                       \
            return bad("value for " name, v, expected);                        \
        *set |= (bit);                                                         \
        continue;                                                              \
    }
        FLAG(SET_PORT, "--port", parse_port(v, &cfg->port), expect_port)
        FLAG(SET_BIND, "--bind", parse_bind(v, cfg->bind, sizeof cfg->bind),
             expect_bind)
        FLAG(SET_VERSION, "--version", parse_name(v, cfg->version),
             expect_name)
        FLAG(SET_SERVICE, "--service", parse_name(v, cfg->service),
             expect_name)
        FLAG(SET_ERROR_RATE, "--error-rate",
             faults_parse_error_rate(v, &cfg->faults.error_rate), expect_rate)
        FLAG(SET_LATENCY, "--latency-ms",
             faults_parse_latency_ms(v, &cfg->faults.latency_ms),
             expect_latency)
        FLAG(0, "--threads", parse_threads(v, &cfg->threads), expect_threads)
#undef FLAG

        fprintf(stderr,
                "microservice-1: unknown argument '%s' (see --help)\n", arg);
        fputs(usage_text, stderr);
        return EXIT_USAGE;
    }
    return EXIT_OK;
}

static void build_addr(struct config *cfg)
{
    memset(&cfg->addr, 0, sizeof cfg->addr);
    if (strchr(cfg->bind, ':') != NULL) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&cfg->addr;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)cfg->port);
        inet_pton(AF_INET6, cfg->bind, &a->sin6_addr);
        cfg->addr_len = sizeof *a;
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&cfg->addr;
        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)cfg->port);
        inet_pton(AF_INET, cfg->bind, &a->sin_addr);
        cfg->addr_len = sizeof *a;
    }
}

int config_load(struct config *cfg, int argc, char **argv)
{
    unsigned set = 0;
    int status;

    memset(cfg, 0, sizeof *cfg);
    cfg->port = 8080;
    strcpy(cfg->bind, "127.0.0.1");
    strcpy(cfg->version, "v1");
    strcpy(cfg->service, "microservice-1");
    cfg->threads = 2;

    if ((status = load_flags(cfg, argc, argv, &set)) != EXIT_OK)
        return status;
    if ((status = load_env(cfg, set)) != EXIT_OK)
        return status;
    build_addr(cfg);
    return EXIT_OK;
}
