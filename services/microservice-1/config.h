/* config.h - command line and environment settings of the service. */
#ifndef MICROSERVICE1_CONFIG_H
#define MICROSERVICE1_CONFIG_H

#include "faults.h"

#include <netinet/in.h>
#include <sys/socket.h>

/* Exit statuses (like jq's named codes). */
enum exit_code {
    EXIT_OK = 0,      /* clean shutdown, or --help */
    EXIT_RUNTIME = 1, /* could not start (bind failed, out of memory...) */
    EXIT_USAGE = 2,   /* invalid flag or environment value */
};

#define CONFIG_NAME_MAX 63
#define CONFIG_MAX_THREADS 64

struct config {
    unsigned port;                      /* 0 = pick a free port */
    char bind[64];                      /* numeric IPv4 or IPv6 address */
    struct sockaddr_storage addr;       /* bind + port, ready for bind(2) */
    socklen_t addr_len;
    char version[CONFIG_NAME_MAX + 1];  /* SERVICE_VERSION */
    char service[CONFIG_NAME_MAX + 1];  /* SERVICE_NAME */
    struct faults faults;               /* initial fault knobs */
    unsigned threads;                   /* worker threads */
};

/* Fills `cfg` from argv; settings no flag gave come from the environment,
 * then from the defaults (flags win; an environment variable that a flag
 * overrides is not read).  Returns EXIT_OK to run, CONFIG_HELP_PRINTED
 * after --help (exit 0), or EXIT_USAGE after printing why to stderr. */
int config_load(struct config *cfg, int argc, char **argv);

#define CONFIG_HELP_PRINTED (-1)

#endif
