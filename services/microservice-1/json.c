/* json.c - JSON string escaping and shortest round-trip number formatting. */
#include "json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int json_append_string(char *dst, size_t cap, size_t *len, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    size_t n = *len;

#define PUT(ch)                                                                \
    do {                                                                       \
        if (n + 1 >= cap)                                                      \
            goto overflow;                                                     \
        dst[n++] = (ch);                                                       \
    } while (0)

    PUT('"');
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        unsigned char c = *p;
        switch (c) {
        case '"':  PUT('\\'); PUT('"'); break;
        case '\\': PUT('\\'); PUT('\\'); break;
        case '\n': PUT('\\'); PUT('n'); break;
        case '\r': PUT('\\'); PUT('r'); break;
        case '\t': PUT('\\'); PUT('t'); break;
        default:
            if (c < 0x20 || c == 0x7f) {
                PUT('\\'); PUT('u'); PUT('0'); PUT('0');
                PUT(hex[c >> 4]); PUT(hex[c & 15]);
            } else {
                PUT((char)c);
            }
        }
    }
    PUT('"');
#undef PUT
    dst[n] = '\0';
    *len = n;
    return 0;

overflow:
    if (*len < cap)
        dst[*len] = '\0';
    return -1;
}

int json_format_double(char *dst, size_t cap, double v)
{
    for (int prec = 1; prec <= 17; prec++) {
        int n = snprintf(dst, cap, "%.*g", prec, v);
        if (n < 0 || (size_t)n >= cap)
            return -1;
        if (strtod(dst, NULL) == v)
            return n;
    }
    return -1; /* not reached for finite values */
}
