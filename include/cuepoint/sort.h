/*
 * sort: a radix sort of (64-bit key, payload) pairs, for the commit path.
 *
 * A commit writes its users and timer index entries to RocksDB sorted, which
 * makes the memtable inserts several times cheaper; sorting them with qsort
 * was ~7% of the file mode in perf (comparator calls, and glibc's merge sort
 * copying). An LSD radix sort over the key bytes is linear, skips bytes that
 * are equal across the whole input (the high bytes of times and ids), and
 * allocates nothing: the caller lends a scratch array as long as the input.
 * Stable, so ties keep their order. Pure; any thread.
 */
#ifndef CUEPOINT_SORT_H
#define CUEPOINT_SORT_H

#include <stddef.h>
#include <stdint.h>

typedef struct cue_sort_item {
    uint64_t key;
    uint64_t val;
} cue_sort_item;

/* Sorts `items` by key, ascending, using `scratch` (n items, borrowed). */
void cue_sort_items(cue_sort_item *items, cue_sort_item *scratch, size_t n);

/* The first eight bytes of `s` (zero-padded) as a big-endian number: sorting
 * by it is sorting by the bytes, up to ties on longer strings. */
uint64_t cue_sort_prefix(const char *s, size_t len);

#endif
