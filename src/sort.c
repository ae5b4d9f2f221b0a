/* LSD radix sort of 64-bit keys, one byte per pass. */
#include "cuepoint/sort.h"

#include <string.h>

void cue_sort_items(cue_sort_item *items, cue_sort_item *scratch, size_t n)
{
    if (n < 2) return;
    cue_sort_item *from = items, *to = scratch;
    for (int shift = 0; shift < 64; shift += 8) {
        size_t count[256] = {0};
        for (size_t i = 0; i < n; i++)
            count[(from[i].key >> shift) & 0xff]++;
        /* A byte that is the same in every key orders nothing: skip the pass. */
        if (count[(from[0].key >> shift) & 0xff] == n) continue;
        size_t pos = 0;
        for (int b = 0; b < 256; b++) {
            size_t c = count[b];
            count[b] = pos;
            pos += c;
        }
        for (size_t i = 0; i < n; i++)
            to[count[(from[i].key >> shift) & 0xff]++] = from[i];
        cue_sort_item *tmp = from;
        from = to;
        to = tmp;
    }
    if (from != items) memcpy(items, from, n * sizeof *items);
}

uint64_t cue_sort_prefix(const char *s, size_t len)
{
    uint64_t p = 0;
    for (size_t i = 0; i < 8; i++)
        p = p << 8 | (i < len ? (uint8_t)s[i] : 0);
    return p;
}
