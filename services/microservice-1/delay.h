/* delay.h - latency injection without blocking worker threads: a request
 * is suspended (MHD_suspend_connection) and a timer thread resumes it when
 * its deadline has passed. */
#ifndef MICROSERVICE1_DELAY_H
#define MICROSERVICE1_DELAY_H

#include <stdbool.h>

struct MHD_Connection;
struct delayed;

int delay_start(void);

/* Suspends `conn` for `ms` milliseconds.  Must be called from the access
 * handler of `conn`.  Returns the ticket to keep in the request context,
 * or NULL when the request should be answered now (shutting down, or out
 * of memory).  After the resume MHD calls the handler again. */
struct delayed *delay_suspend(struct MHD_Connection *conn, unsigned ms);

/* Frees a ticket once its request is complete. */
void delay_release(struct delayed *d);

/* Resumes every suspended request at once, refuses new suspensions and
 * joins the timer thread.  Call before MHD_stop_daemon(). */
void delay_stop(void);

#endif
