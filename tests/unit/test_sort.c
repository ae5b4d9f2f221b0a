/* The radix sort against qsort, on keys that share high bytes (as times and
 * ids do) and on random ones; ties keep their order (stability). */
#include "cuepoint/sort.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

static int by_key_then_val(const void *a, const void *b)
{
    const cue_sort_item *x = a, *y = b;
    if (x->key != y->key) return x->key < y->key ? -1 : 1;
    return (x->val > y->val) - (x->val < y->val);
}

Test(sort, agrees_with_qsort_and_is_stable)
{
    static cue_sort_item a[5000], b[5000], tmp[5000];
    uint64_t seed = 17;
    for (int shape = 0; shape < 3; shape++) {
        for (size_t n = 0; n <= 5000; n = n < 20 ? n + 1 : n * 2) {
            for (size_t i = 0; i < n; i++) {
                seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
                uint64_t k = seed >> 11;
                if (shape == 1)
                    k = 0x0000019c00000000ULL | (k % 1000); /* times: high bytes equal */
                if (shape == 2) k %= 7;                     /* many ties */
                a[i] = (cue_sort_item){.key = k, .val = i};
            }
            memcpy(b, a, n * sizeof *a);
            cue_sort_items(a, tmp, n);
            qsort(b, n, sizeof *b, by_key_then_val); /* val = input order: stability */
            cr_assert(memcmp(a, b, n * sizeof *a) == 0, "shape %d, n = %zu", shape, n);
        }
    }
}

Test(sort, prefixes_order_like_bytes)
{
    cr_assert_lt(cue_sort_prefix("a", 1), cue_sort_prefix("ab", 2));
    cr_assert_lt(cue_sort_prefix("ab", 2), cue_sort_prefix("b", 1));
    cr_assert_eq(cue_sort_prefix("abcdefgh1", 9), cue_sort_prefix("abcdefgh2", 9), "8 bytes only");
    cr_assert_lt(cue_sort_prefix("\x01", 1), cue_sort_prefix("\xff", 1), "bytes are unsigned");
}
