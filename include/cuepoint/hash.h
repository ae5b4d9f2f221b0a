/*
 * hash: the stable hashes cuepoint's outputs depend on. They are part of the
 * data format (trigger ids, names in encoded state, experiment buckets), so the
 * algorithm never changes silently: XXH3 and XXH32 from Debian's libxxhash,
 * chosen over a hand-written hash for speed and a frozen, specified output.
 * Pure; any thread.
 */
#ifndef CUEPOINT_HASH_H
#define CUEPOINT_HASH_H

#include <stddef.h>
#include <stdint.h>

typedef struct cue_hash128 {
    uint64_t hi, lo;
} cue_hash128;

/* XXH32 with seed 0: names of machines, states, timers, counters and variables
 * in encoded state. */
uint32_t cue_hash32(const void *p, size_t n);

/* XXH3-64 with a seed. */
uint64_t cue_hash64(const void *p, size_t n, uint64_t seed);

/* XXH3-128 of one buffer. */
cue_hash128 cue_hash128_of(const void *p, size_t n);

/* Lower-case hex of a 128-bit hash: 32 characters and a NUL. */
#define CUE_HASH_HEX_LEN 32
void cue_hash128_hex(cue_hash128 h, char out[CUE_HASH_HEX_LEN + 1]);

#endif
