/* RFC 3629's table of well-formed sequences: the second byte's range
 * depends on the first, which is what rules out overlong forms, the
 * surrogates (ED A0..BF) and code points past U+10FFFF (F4 90..). */
#include "cuepoint/utf8.h"

size_t cue_utf8_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    if (c < 0x80) return 1;
    size_t k;
    unsigned char lo = 0x80, hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf) {
        k = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
        k = 3;
        if (c == 0xe0) lo = 0xa0;
        if (c == 0xed) hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        k = 4;
        if (c == 0xf0) lo = 0x90;
        if (c == 0xf4) hi = 0x8f;
    } else {
        return 0;
    }
    if (n < k || s[1] < lo || s[1] > hi) return 0;
    for (size_t j = 2; j < k; j++)
        if ((s[j] & 0xc0) != 0x80) return 0;
    return k;
}

bool cue_utf8_valid(const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        while (i < n && u[i] < 0x80)
            i++;
        if (i == n) break;
        size_t k = cue_utf8_len(u + i, n - i);
        if (k == 0) return false;
        i += k;
    }
    return true;
}
