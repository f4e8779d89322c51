/* json.h - tiny helpers for writing JSON text into fixed buffers. */
#ifndef MICROSERVICE1_JSON_H
#define MICROSERVICE1_JSON_H

#include <stddef.h>

/* Appends `s` to `dst` (capacity `cap`, currently `*len` bytes used) as a
 * JSON string literal, quotes included.  Returns 0, or -1 when it does not
 * fit (then `dst` is left NUL-terminated at its old length). */
int json_append_string(char *dst, size_t cap, size_t *len, const char *s);

/* Writes `v` with the fewest significant digits that read back as exactly
 * the same double (e.g. 0.2, not 0.20000000000000001).  `v` must be finite.
 * Returns the length written, or -1 when `cap` is too small. */
int json_format_double(char *dst, size_t cap, double v);

#endif
