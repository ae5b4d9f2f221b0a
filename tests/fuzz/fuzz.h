/* Helpers shared by the libFuzzer targets (tests/fuzz/fuzz_*.c): a reader
 * that cuts one fuzz input into records, and the example machines. Header
 * only; each target includes it once. */
#ifndef CUEPOINT_FUZZ_H
#define CUEPOINT_FUZZ_H

#include "cuepoint/machine.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* An input read front to back. Records are framed as
 *   u16 length (big-endian; 0xffff: none, a NULL pointer) | bytes
 * so that a seed is easy to write by hand (tests/fuzz/seeds.c writes them)
 * and a mutation keeps most of the records whole. */
typedef struct fuzz_in {
    const uint8_t *p;
    size_t left;
} fuzz_in;

#define FUZZ_NULL 0xffffu

static inline bool fuzz_u8(fuzz_in *in, uint8_t *out)
{
    if (in->left < 1) return false;
    *out = *in->p++;
    in->left--;
    return true;
}

static inline bool fuzz_u16(fuzz_in *in, uint16_t *out)
{
    if (in->left < 2) return false;
    *out = (uint16_t)(in->p[0] << 8 | in->p[1]);
    in->p += 2;
    in->left -= 2;
    return true;
}

static inline bool fuzz_i64(fuzz_in *in, int64_t *out)
{
    if (in->left < 8) return false;
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | in->p[i];
    *out = (int64_t)v;
    in->p += 8;
    in->left -= 8;
    return true;
}

/* One framed record: *out is NULL for a NULL one (and then *len is 0), else
 * it points into the input. Records are copied by the targets that need a
 * buffer of the exact size, so ASan sees a read past the end. */
static inline bool fuzz_bytes(fuzz_in *in, const uint8_t **out, size_t *len)
{
    uint16_t n;
    if (!fuzz_u16(in, &n)) return false;
    if (n == FUZZ_NULL) {
        *out = NULL;
        *len = 0;
        return true;
    }
    if (n > in->left) n = (uint16_t)in->left;
    *out = in->p;
    *len = n;
    in->p += n;
    in->left -= n;
    return true;
}

/* A heap copy of exactly `len` bytes (one more would hide overreads); NULL
 * stays NULL. The caller frees it. */
static inline char *fuzz_dup(const void *p, size_t len)
{
    if (p == NULL) return NULL;
    char *c = malloc(len ? len : 1);
    if (c == NULL) abort();
    for (size_t i = 0; i < len; i++)
        c[i] = ((const char *)p)[i];
    return c;
}

/* The example journeys (deploy/machines), compiled once per process. */
static inline cue_machines *fuzz_example_machines(void)
{
    static cue_machines *ms;
    if (ms) return ms;
    cue_err err = {0};
    if (cue_machines_load(&ms, CUE_SOURCE_DIR "/deploy/machines", NULL, &err) != 0) {
        fprintf(stderr, "fuzz: cannot load the example machines: %s\n", err.msg);
        abort();
    }
    return ms;
}

#endif
