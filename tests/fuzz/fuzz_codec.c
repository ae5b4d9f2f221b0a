/* The state codec (codec.c, codec_image.c): a stored user record as RocksDB
 * or a changelog would hand it over, decoded against the example journeys.
 * The input is a record without a valid checksum, so it is sealed first. A
 * record that decodes must survive a round trip: encoding what was decoded,
 * decoding that and encoding again gives the same bytes; and so must the
 * cache's image of the user: loaded back, it encodes to the same bytes. */
#include "cuepoint/codec.h"

#include "fuzz.h"

#include <string.h>

static cue_user a, b;
static cue_buf rec1, rec2, img, json;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_example_machines();
    cue_buf_init(&rec1, 4096);
    cue_buf_init(&rec2, 4096);
    cue_buf_init(&img, 4096);
    cue_buf_init(&json, 4096);
    return 0;
}

static void round_trip(const cue_machines *ms)
{
    cue_err err = {0};
    if (cue_codec_encode(&a, ms, &rec1) != 0) abort();
    if (cue_codec_decode(rec1.data, rec1.len, ms, &b, NULL, &err) != 0) {
        fprintf(stderr, "fuzz: re-encoded state does not decode: %s\n", err.msg);
        abort();
    }
    if (cue_codec_encode(&b, ms, &rec2) != 0) abort();
    if (rec1.len != rec2.len || memcmp(rec1.data, rec2.data, rec1.len) != 0) {
        fprintf(stderr, "fuzz: encode(decode(encode(x))) differs from encode(x)\n");
        abort();
    }
    int64_t due;
    if (cue_codec_peek_indexed_due(rec1.data, rec1.len, &due) != 0 || due != b.indexed_due) abort();
    if (cue_codec_image_save(&a, ms, &img) != 0) abort();
    if (cue_codec_image_indexed_due(img.data) != a.indexed_due) abort();
    cue_codec_image_load(img.data, img.len, ms, &b);
    if (cue_codec_encode(&b, ms, &rec2) != 0) abort();
    if (rec1.len != rec2.len || memcmp(rec1.data, rec2.data, rec1.len) != 0) {
        fprintf(stderr, "fuzz: the user loaded from its image encodes differently\n");
        abort();
    }
    cue_buf_reset(&json);
    if (cue_user_to_json(&b, ms, &json) != 0) abort();
    (void)cue_user_next_due(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cue_machines *ms = fuzz_example_machines();
    char *rec = fuzz_dup(data, size);
    int64_t due;
    (void)cue_codec_peek_indexed_due(rec, size, &due);
    cue_err err = {0};
    if (size >= 7) cue_codec_seal(rec, size);
    cue_codec_stats st = {0};
    if (cue_codec_decode(rec, size, ms, &a, &st, &err) == 0) round_trip(ms);
    free(rec);
    return 0;
}
