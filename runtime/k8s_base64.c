/* base64 (RFC 4648, standard alphabet) for rollout.k8s: kubeconfig *-data
 * fields are base64 of PEM; exec plugins get the CA as base64 bytes. */
#include "k8s_internal.h"

#include <stdlib.h>

static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int value_of(unsigned char ch)
{
    if (ch >= 'A' && ch <= 'Z')
        return ch - 'A';
    if (ch >= 'a' && ch <= 'z')
        return ch - 'a' + 26;
    if (ch >= '0' && ch <= '9')
        return ch - '0' + 52;
    if (ch == '+')
        return 62;
    if (ch == '/')
        return 63;
    return -1;
}

int k8s_base64_decode(const char *in, size_t len, k8s_secret *out)
{
    char *buf = malloc(len / 4 * 3 + 4);
    size_t n = 0, quad = 0, pad = 0;
    unsigned acc = 0;
    if (buf == NULL)
        return -1;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)in[i];
        int v;
        if (ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n')
            continue;
        if (ch == '=') {
            pad++;
            continue;
        }
        v = value_of(ch);
        if (v < 0 || pad > 0) /* a bad character, or data after padding */
            goto bad;
        acc = (acc << 6) | (unsigned)v;
        if (++quad == 4) {
            buf[n++] = (char)(acc >> 16);
            buf[n++] = (char)(acc >> 8);
            buf[n++] = (char)acc;
            quad = 0;
            acc = 0;
        }
    }
    if (quad == 1 || pad > 2 || (pad > 0 && (quad + pad) != 4))
        goto bad;
    if (quad == 2) {
        buf[n++] = (char)(acc >> 4);
    } else if (quad == 3) {
        buf[n++] = (char)(acc >> 10);
        buf[n++] = (char)(acc >> 2);
    }
    k8s_secret_free(out);
    buf[n] = '\0';
    out->p = buf;
    out->len = n;
    return 0;
bad: {
    k8s_secret partial = {buf, n};
    k8s_secret_free(&partial); /* wiped: it may be part of a key */
    return -1;
}
}

void k8s_base64_push(lua_State *L, const char *p, size_t len)
{
    luaL_Buffer b;
    size_t i = 0;
    luaL_buffinit(L, &b);
    while (i + 3 <= len) {
        unsigned v = ((unsigned char)p[i] << 16) | ((unsigned char)p[i + 1] << 8) | (unsigned char)p[i + 2];
        luaL_addchar(&b, alphabet[(v >> 18) & 63]);
        luaL_addchar(&b, alphabet[(v >> 12) & 63]);
        luaL_addchar(&b, alphabet[(v >> 6) & 63]);
        luaL_addchar(&b, alphabet[v & 63]);
        i += 3;
    }
    if (len - i == 1) {
        unsigned v = (unsigned char)p[i] << 16;
        luaL_addchar(&b, alphabet[(v >> 18) & 63]);
        luaL_addchar(&b, alphabet[(v >> 12) & 63]);
        luaL_addstring(&b, "==");
    } else if (len - i == 2) {
        unsigned v = ((unsigned char)p[i] << 16) | ((unsigned char)p[i + 1] << 8);
        luaL_addchar(&b, alphabet[(v >> 18) & 63]);
        luaL_addchar(&b, alphabet[(v >> 12) & 63]);
        luaL_addchar(&b, alphabet[(v >> 6) & 63]);
        luaL_addchar(&b, '=');
    }
    luaL_pushresult(&b);
}
