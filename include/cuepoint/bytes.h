/*
 * bytes: copying a short run of bytes whose length is known only at run
 * time (ids, keys, names, a few numbers), for the hot path. Header only;
 * any thread.
 */
#ifndef CUEPOINT_BYTES_H
#define CUEPOINT_BYTES_H

#include <stddef.h>
#include <string.h>

/* Out of line, so the compiler knows nothing of n and calls the C library. */
__attribute__((noinline, unused)) static void cue_bytes_copy_long(void *d, const void *s, size_t n)
{
    memcpy(d, s, n);
}

/* Copies n bytes, n usually small. A memcpy of a length known only to be
 * under some bound (a byte's worth, say) is expanded inline into `rep
 * movsq`, whose start-up alone costs more than such a copy (a fifth of the
 * state image's load and save in the pipeline's profile); two overlapping
 * moves of a fixed size do not. */
static inline void cue_bytes_copy(void *dst, const void *src, size_t n)
{
    unsigned char *d = dst;
    const unsigned char *s = src;
    if (n >= 16) {
        if (n > 64) {
            cue_bytes_copy_long(d, s, n);
        } else if (n > 32) {
            memcpy(d, s, 32);
            memcpy(d + n - 32, s + n - 32, 32);
        } else {
            memcpy(d, s, 16);
            memcpy(d + n - 16, s + n - 16, 16);
        }
    } else if (n >= 8) {
        memcpy(d, s, 8);
        memcpy(d + n - 8, s + n - 8, 8);
    } else if (n >= 4) {
        memcpy(d, s, 4);
        memcpy(d + n - 4, s + n - 4, 4);
    } else if (n > 0) {
        d[0] = s[0];
        d[n / 2] = s[n / 2];
        d[n - 1] = s[n - 1];
    }
}

#endif
