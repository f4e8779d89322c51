/* main.c - microservice-1: start the HTTP daemon, wait for SIGTERM/SIGINT,
 * stop cleanly. */
#define _POSIX_C_SOURCE 200809L
#include "config.h"
#include "delay.h"
#include "endpoints.h"
#include "faults.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

/* Idle keep-alive connections are closed after this many seconds. */
#define IDLE_TIMEOUT_S 120u

static struct MHD_Daemon *start_daemon(const struct config *cfg)
{
    unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME |
                     MHD_USE_TURBO | MHD_USE_ERROR_LOG;

    if (cfg->addr.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    /* MHD_USE_EPOLL_INTERNAL_THREAD already implies an internal polling
     * thread; a pool of N > 1 gives N such threads sharing the listener. */
    return MHD_start_daemon(
        flags, (uint16_t)cfg->port /* for messages; bound from addr */,
        NULL, NULL,
        endpoints_handle, NULL,
        MHD_OPTION_SOCK_ADDR, (const struct sockaddr *)&cfg->addr,
        MHD_OPTION_THREAD_POOL_SIZE,
        (unsigned)(cfg->threads > 1 ? cfg->threads : 0),
        MHD_OPTION_CONNECTION_TIMEOUT, IDLE_TIMEOUT_S,
        MHD_OPTION_NOTIFY_COMPLETED, endpoints_completed, NULL,
        MHD_OPTION_END);
}

static void print_listening(const struct config *cfg, struct MHD_Daemon *d)
{
    const union MHD_DaemonInfo *info =
        MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    unsigned port = info != NULL ? info->port : cfg->port;

    if (cfg->addr.ss_family == AF_INET6)
        printf("listening on [%s]:%u\n", cfg->bind, port);
    else
        printf("listening on %s:%u\n", cfg->bind, port);
    fflush(stdout);
}

int main(int argc, char **argv)
{
    struct config cfg;
    struct MHD_Daemon *daemon;
    sigset_t stop_signals;
    int status, sig = 0;

    status = config_load(&cfg, argc, argv);
    if (status == CONFIG_HELP_PRINTED)
        return EXIT_OK;
    if (status != EXIT_OK)
        return status;

    /* Block the stop signals in every thread (threads inherit the mask)
     * and take them synchronously below.  A closed stdout must not kill
     * us; MHD itself sends with MSG_NOSIGNAL. */
    signal(SIGPIPE, SIG_IGN);
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGTERM);
    sigaddset(&stop_signals, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);

    faults_init(&cfg.faults);
    if (endpoints_init(&cfg) < 0) {
        fprintf(stderr, "microservice-1: out of memory\n");
        return EXIT_RUNTIME;
    }
    if (delay_start() < 0) {
        fprintf(stderr, "microservice-1: cannot start the timer thread\n");
        endpoints_free();
        return EXIT_RUNTIME;
    }
    daemon = start_daemon(&cfg);
    if (daemon == NULL) {
        fprintf(stderr, "microservice-1: cannot listen on %s:%u "
                        "(address in use or not available?)\n",
                cfg.bind, cfg.port);
        delay_stop();
        endpoints_free();
        return EXIT_RUNTIME;
    }
    print_listening(&cfg, daemon);

    while (sigwait(&stop_signals, &sig) != 0 && errno == EINTR)
        ;

    /* Suspended (delayed) requests must be resumed before MHD stops. */
    delay_stop();
    MHD_stop_daemon(daemon);
    endpoints_free();
    fprintf(stderr, "microservice-1 %s: stopped (%s)\n", cfg.version,
            sig == SIGINT ? "SIGINT" : "SIGTERM");
    return EXIT_OK;
}
