/* The growable byte buffer (include/rollout/lib.h). */
#include "rollout/lib.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define FIRST_CAP 256

int rbuf_reserve(rbuf *b, size_t n)
{
    size_t need, cap;
    char *p;
    if (b->oom)
        return -1;
    if (n > SIZE_MAX - 1 - b->len) {
        b->oom = 1;
        return -1;
    }
    need = b->len + n + 1; /* the NUL */
    if (need <= b->cap)
        return 0;
    cap = b->cap ? b->cap : FIRST_CAP;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    p = realloc(b->p, cap);
    if (p == NULL) {
        b->oom = 1;
        return -1;
    }
    b->p = p;
    b->cap = cap;
    return 0;
}

size_t rbuf_room(const rbuf *b)
{
    return b->cap > b->len ? b->cap - b->len - 1 : 0;
}

void rbuf_grew(rbuf *b, size_t n)
{
    b->len += n;
    b->p[b->len] = '\0';
}

int rbuf_add(rbuf *b, const void *data, size_t n)
{
    if (rbuf_reserve(b, n) != 0)
        return -1;
    if (n > 0)
        memcpy(b->p + b->len, data, n);
    rbuf_grew(b, n);
    return 0;
}

int rbuf_adds(rbuf *b, const char *s)
{
    return rbuf_add(b, s, strlen(s));
}

void rbuf_consume(rbuf *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
    } else if (n > 0) {
        memmove(b->p, b->p + n, b->len - n);
        b->len -= n;
    }
    if (b->p != NULL)
        b->p[b->len] = '\0';
}

void rbuf_clear(rbuf *b)
{
    b->len = 0;
    b->oom = 0;
    if (b->p != NULL)
        b->p[0] = '\0';
}

void rbuf_free(rbuf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
    b->oom = 0;
}

void rbuf_wipe(rbuf *b)
{
    if (b->p != NULL) {
        volatile unsigned char *v = (volatile unsigned char *)b->p;
        for (size_t i = 0; i < b->cap; i++)
            v[i] = 0;
    }
    rbuf_free(b);
}
