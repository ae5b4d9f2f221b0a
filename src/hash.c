#include "cuepoint/hash.h"

#include <xxhash.h>

uint32_t cue_hash32(const void *p, size_t n)
{
    return XXH32(p, n, 0);
}

uint64_t cue_hash64(const void *p, size_t n, uint64_t seed)
{
    return XXH3_64bits_withSeed(p, n, seed);
}

cue_hash128 cue_hash128_of(const void *p, size_t n)
{
    XXH128_hash_t h = XXH3_128bits(p, n);
    return (cue_hash128){.hi = h.high64, .lo = h.low64};
}

void cue_hash128_hex(cue_hash128 h, char out[CUE_HASH_HEX_LEN + 1])
{
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < 16; i++) {
        out[i] = digits[(h.hi >> (60 - 4 * i)) & 0xf];
        out[16 + i] = digits[(h.lo >> (60 - 4 * i)) & 0xf];
    }
    out[CUE_HASH_HEX_LEN] = '\0';
}
