/* The members records (standby.c): records of <application.id>-members, as
 * anything that can write the topic can make them, applied to a view, which
 * is asked after each one who is live, who owns each partition and where the
 * standbys go, at a time the input gives.
 *
 * Input: one byte (partitions, 1 to 64), then records, each a framed key, a
 * framed value (fuzz.h; 0xffff: NULL) and 8 bytes of "now" (big-endian ms). */
#include "cuepoint/standby.h"

#include "fuzz.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_in in = {data, size};
    uint8_t np = 0;
    fuzz_u8(&in, &np);
    int32_t parts = np % 64 + 1;
    cue_members *m = NULL;
    cue_err err = {0};
    if (cue_members_new(&m, parts, "self", &err) != 0) abort();
    const uint8_t *k, *v;
    size_t klen, vlen;
    int64_t now, offset = 0;
    bool want[64];
    while (fuzz_bytes(&in, &k, &klen) && fuzz_bytes(&in, &v, &vlen) && fuzz_i64(&in, &now)) {
        char *key = fuzz_dup(k, klen), *val = fuzz_dup(v, vlen);
        err.msg[0] = '\0';
        int rc = cue_members_apply(m, key, klen, val, vlen, offset++, &err);
        if (rc != 0 && err.msg[0] == '\0') abort();
        free(key);
        free(val);
        size_t live = cue_members_live(m, now);
        if (live > CUE_MEMBERS_MAX) abort();
        for (int32_t p = 0; p < parts; p++) {
            const char *o = cue_members_owner(m, p, now);
            if (o && (strlen(o) == 0 || strlen(o) >= CUE_MEMBER_NAME_BYTES_MAX)) abort();
        }
        size_t set = cue_members_standbys(m, now, (int)(now & 3), want);
        size_t n = 0;
        for (int32_t p = 0; p < parts; p++)
            n += want[p];
        if (n != set) abort();
    }
    cue_members_free(m);
    return 0;
}
