/* The hashes are part of the data format: pin their values. */
#include "cuepoint/hash.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

Test(hash, values_are_frozen)
{
    /* XXH32 and XXH3 reference values for the empty input (seed 0). */
    cr_assert_eq(cue_hash32("", 0), 0x02CC5D05u);
    cr_assert_eq(cue_hash64("", 0, 0), 0x2D06800538D394C2ull);
    cue_hash128 h = cue_hash128_of("", 0);
    cr_assert_eq(h.hi, 0x99AA06D3014798D8ull);
    cr_assert_eq(h.lo, 0x6001C324468D497Full);
    char hex[CUE_HASH_HEX_LEN + 1];
    cue_hash128_hex(h, hex);
    cr_assert_str_eq(hex, "99aa06d3014798d86001c324468d497f");
    cr_assert_neq(cue_hash64("a", 1, 0), cue_hash64("a", 1, 1), "the seed matters");
}

Test(hash, hex_writes_every_byte_value_in_place)
{
    /* Each byte value at each of the sixteen places, against printf. */
    for (int b = 0; b < 256; b++) {
        for (int at = 0; at < 8; at++) {
            cue_hash128 h = {.hi = (uint64_t)b << (8 * at), .lo = ~((uint64_t)b << (8 * (7 - at)))};
            char hex[CUE_HASH_HEX_LEN + 1], want[CUE_HASH_HEX_LEN + 1];
            memset(hex, 'x', sizeof hex);
            cue_hash128_hex(h, hex);
            snprintf(want, sizeof want, "%016llx%016llx", (unsigned long long)h.hi,
                     (unsigned long long)h.lo);
            cr_assert_str_eq(hex, want, "byte 0x%02x at %d", b, at);
        }
    }
}
