/* Probe extraction: the "json:a.b" / "header:name" specs, version
 * validity, and the version field of a JSON body (cJSON). Lua-free. */
#include "rollout/probe.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

const char *const probe_kind_names[PROBE_NKINDS] = {
    "connect", "timeout", "http_4xx", "http_5xx", "parse", "other"};

int probe_parse_extract(probe_config *cfg, const char *spec, char *err, size_t errlen)
{
    if (strncmp(spec, "json:", 5) == 0) {
        const char *p = spec + 5;
        int depth = 0;
        memset(cfg->json_path, 0, sizeof cfg->json_path);
        if (*p == '\0') {
            snprintf(err, errlen, "extract \"json:\" needs a field name");
            return -1;
        }
        while (*p) {
            const char *dot = strchr(p, '.');
            size_t len = dot ? (size_t)(dot - p) : strlen(p);
            if (len == 0 || len >= sizeof cfg->json_path[0] || depth >= PROBE_JSON_DEPTH - 1) {
                snprintf(err, errlen, "extract \"%.80s\": bad JSON field path", spec);
                return -1;
            }
            memcpy(cfg->json_path[depth], p, len);
            cfg->json_path[depth][len] = '\0';
            depth++;
            p += len;
            if (*p == '.' && *++p == '\0') {
                snprintf(err, errlen, "extract \"%.80s\": bad JSON field path", spec);
                return -1;
            }
        }
        cfg->mode = PROBE_EXTRACT_JSON;
        return 0;
    }
    if (strncmp(spec, "header:", 7) == 0) {
        const char *name = spec + 7;
        size_t len = strlen(name);
        if (len == 0 || len >= sizeof cfg->header_name ||
            strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_!#$%&'*+.^`|~") != len) {
            snprintf(err, errlen, "extract \"%.80s\": bad header name", spec);
            return -1;
        }
        memcpy(cfg->header_name, name, len + 1);
        cfg->mode = PROBE_EXTRACT_HEADER;
        return 0;
    }
    snprintf(err, errlen, "extract \"%.80s\": expected \"json:FIELD\", \"header:NAME\" or a function", spec);
    return -1;
}

/* A version is 1..PROBE_VERSION_MAX bytes without control characters. */
int probe_valid_version(const char *s, size_t len)
{
    if (len == 0 || len > PROBE_VERSION_MAX)
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f)
            return 0;
    }
    return 1;
}

int probe_extract_json(const probe_config *c, const char *body, size_t len, char *out, size_t *outlen)
{
    cJSON *root, *it;
    int ok = 0;
    if (len == 0)
        return 0;
    root = cJSON_ParseWithLength(body, len);
    if (root == NULL)
        return 0;
    it = root;
    for (int i = 0; i < PROBE_JSON_DEPTH && c->json_path[i][0] != '\0' && it != NULL; i++)
        it = cJSON_IsObject(it) ? cJSON_GetObjectItemCaseSensitive(it, c->json_path[i]) : NULL;
    if (it != NULL && cJSON_IsString(it) && it->valuestring != NULL) {
        size_t n = strlen(it->valuestring);
        if (probe_valid_version(it->valuestring, n)) {
            memcpy(out, it->valuestring, n);
            *outlen = n;
            ok = 1;
        }
    }
    cJSON_Delete(root);
    return ok;
}

int probe_extract_header(const probe_config *c, const char *head, size_t len, char *out, size_t *outlen)
{
    size_t nlen = strlen(c->header_name);
    const char *p = head, *end = head + len;
    int got = 0;
    /* the first line is the status line */
    const char *nl = memchr(p, '\n', len);
    p = nl != NULL ? nl + 1 : end;
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        const char *le = eol != NULL ? eol : end;
        if ((size_t)(le - p) > nlen && p[nlen] == ':' && strncasecmp(p, c->header_name, nlen) == 0) {
            const char *v = p + nlen + 1, *ve = le;
            while (v < ve && (*v == ' ' || *v == '\t'))
                v++;
            while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ' || ve[-1] == '\t'))
                ve--;
            if (probe_valid_version(v, (size_t)(ve - v))) {
                memcpy(out, v, (size_t)(ve - v));
                *outlen = (size_t)(ve - v);
                got = 1;
            }
        }
        p = eol != NULL ? eol + 1 : end;
    }
    return got;
}
