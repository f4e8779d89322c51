/* delay.c - a timer thread with a min-heap of suspended requests. */
#define _POSIX_C_SOURCE 200809L
#include "delay.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include <sys/types.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <stdarg.h>
#include <microhttpd.h>

struct delayed {
    uint64_t deadline_ns; /* CLOCK_MONOTONIC */
    struct MHD_Connection *conn;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake;
static pthread_t thread;
static bool started, stopping;
static struct delayed **heap; /* min-heap on deadline_ns */
static size_t heap_len, heap_cap;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void heap_swap(size_t a, size_t b)
{
    struct delayed *t = heap[a];
    heap[a] = heap[b];
    heap[b] = t;
}

/* Makes room for one more entry. */
static int heap_reserve(void)
{
    size_t cap;
    struct delayed **h;

    if (heap_len < heap_cap)
        return 0;
    if (heap_cap > SIZE_MAX / 2 / sizeof *h)
        return -1;
    cap = heap_cap ? heap_cap * 2 : 64;
    h = realloc(heap, cap * sizeof *h);
    if (h == NULL)
        return -1;
    heap = h;
    heap_cap = cap;
    return 0;
}

/* Needs room reserved by heap_reserve(). */
static void heap_push(struct delayed *d)
{
    size_t i = heap_len++;

    heap[i] = d;
    while (i > 0 && heap[(i - 1) / 2]->deadline_ns > heap[i]->deadline_ns) {
        heap_swap(i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
}

static struct delayed *heap_pop(void)
{
    struct delayed *top = heap[0];
    size_t i = 0;

    heap[0] = heap[--heap_len];
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < heap_len && heap[l]->deadline_ns < heap[m]->deadline_ns)
            m = l;
        if (r < heap_len && heap[r]->deadline_ns < heap[m]->deadline_ns)
            m = r;
        if (m == i)
            break;
        heap_swap(i, m);
        i = m;
    }
    return top;
}

/* Resumes outside the lock: MHD takes its own mutex in resume, and the
 * handler takes ours before MHD's in delay_suspend. */
static void *timer_main(void *arg)
{
    enum { BATCH = 64 };
    struct MHD_Connection *due[BATCH];

    (void)arg;
    pthread_mutex_lock(&lock);
    for (;;) {
        size_t n = 0;
        uint64_t now = now_ns();

        while (heap_len > 0 && n < BATCH &&
               (stopping || heap[0]->deadline_ns <= now))
            due[n++] = heap_pop()->conn;
        if (n > 0) {
            /* after this a ticket belongs to its connection again */
            pthread_mutex_unlock(&lock);
            for (size_t i = 0; i < n; i++)
                MHD_resume_connection(due[i]);
            pthread_mutex_lock(&lock);
            continue;
        }
        if (stopping)
            break;
        if (heap_len == 0) {
            pthread_cond_wait(&wake, &lock);
        } else {
            uint64_t t = heap[0]->deadline_ns;
            struct timespec ts = {.tv_sec = (time_t)(t / 1000000000u),
                                  .tv_nsec = (long)(t % 1000000000u)};
            pthread_cond_timedwait(&wake, &lock, &ts);
        }
    }
    pthread_mutex_unlock(&lock);
    return NULL;
}

int delay_start(void)
{
    pthread_condattr_t attr;
    int rc;

    if (pthread_condattr_init(&attr) != 0)
        return -1;
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    rc = pthread_cond_init(&wake, &attr);
    pthread_condattr_destroy(&attr);
    if (rc != 0)
        return -1;
    if (pthread_create(&thread, NULL, timer_main, NULL) != 0) {
        pthread_cond_destroy(&wake);
        return -1;
    }
    started = true;
    return 0;
}

struct delayed *delay_suspend(struct MHD_Connection *conn, unsigned ms)
{
    struct delayed *d = malloc(sizeof *d);

    if (d == NULL)
        return NULL;
    d->conn = conn;
    d->deadline_ns = now_ns() + (uint64_t)ms * 1000000u;

    pthread_mutex_lock(&lock);
    if (stopping || heap_reserve() < 0) {
        pthread_mutex_unlock(&lock);
        free(d);
        return NULL;
    }
    /* Suspend before the ticket becomes visible to the timer thread:
     * resuming a connection that is not suspended is undefined. */
    MHD_suspend_connection(conn);
    heap_push(d);
    if (heap[0] == d)
        pthread_cond_signal(&wake);
    pthread_mutex_unlock(&lock);
    return d;
}

void delay_release(struct delayed *d)
{
    free(d);
}

void delay_stop(void)
{
    if (!started)
        return;
    pthread_mutex_lock(&lock);
    stopping = true;
    pthread_cond_signal(&wake);
    pthread_mutex_unlock(&lock);
    pthread_join(thread, NULL);
    pthread_cond_destroy(&wake);
    free(heap);
    heap = NULL;
    heap_len = heap_cap = 0;
    started = false;
}
