/* The changelog apply path (restore.c, and the key builders of store.c): a
 * sequence of changelog records, as anything that can write
 * <application.id>-changelog can make them, applied to a store the way a
 * restore does (timer entries held for one sorted run) or a standby does
 * (meta moved at every position record), then committed and read back.
 *
 * Input: one byte of mode (bit 0: standby), then records, each a framed key
 * and a framed value (fuzz.h; 0xffff: NULL). Each process has its own
 * state directory under $TMPDIR, emptied between inputs. */
#include "cuepoint/restore.h"

#include "fuzz.h"

#include <string.h>
#include <unistd.h>

/* The deletes after each input leave tombstones that a scan walks past, and
 * runs slowed from 500 inputs a second to under 100; reopening a fresh store
 * from time to time made RocksDB start threads inside an input, which LSan
 * then took for leaks. So each 512 inputs use a partition of their own: a
 * scan seeks past the others' tombstones. */
static uint32_t partition = 3;

static cue_store *store;
static char dir[256];

static void remove_dir(void)
{
    if (store) cue_store_close(store);
    store = NULL;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "fuzz: could not remove %s\n", dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/cue-fuzz-restore-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (mkdtemp(dir) == NULL) abort();
    cue_err err = {0};
    if (cue_store_open(&store, dir, &(cue_store_opts){0}, &err) != 0) {
        fprintf(stderr, "fuzz: %s\n", err.msg);
        abort();
    }
    atexit(remove_dir);
    return 0;
}

/* Checks each user read back and deletes it (in the next batch), so that
 * the store stays small from one input to the next. */
static int check_user(uint32_t p, const char *uid, size_t len, const void *v, size_t vlen,
                      void *ctx)
{
    if (p != partition || len == 0 || len > CUE_USER_ID_BYTES_MAX || vlen == 0) abort();
    if (cue_store_batch_user_delete(store, p, uid, len) != 0) abort();
    return 0;
}

static int check_timer(int64_t due, const char *uid, size_t len, void *ctx)
{
    if (len == 0 || len > CUE_USER_ID_BYTES_MAX || due == INT64_MIN) abort();
    if (cue_store_batch_timer_delete(store, partition, due, uid, len) != 0) abort();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static unsigned inputs;
    if (++inputs % 512 == 0) partition++;
    fuzz_in in = {data, size};
    uint8_t mode = 0;
    fuzz_u8(&in, &mode);
    bool standby = mode & 1;
    cue_restore r = {0};
    cue_restore_init(&r, partition, NULL, !standby);
    cue_err err = {0};
    const uint8_t *k, *v;
    size_t klen, vlen;
    int64_t offset = 0;
    while (fuzz_bytes(&in, &k, &klen) && fuzz_bytes(&in, &v, &vlen)) {
        char *key = fuzz_dup(k, klen), *val = fuzz_dup(v, vlen);
        int rc = cue_restore_apply(&r, store, key, klen, vlen ? val : NULL, vlen, &err);
        offset++;
        if (rc == 0 && standby && key != NULL && klen == 0)
            cue_restore_finish(&r, store, offset, 1);
        if (rc != 0 && err.msg[0] == '\0') abort(); /* a skipped record is named */
        free(key);
        free(val);
    }
    if (r.skipped > r.records) abort();
    cue_restore_finish(&r, store, offset, 1);
    if (cue_store_batch_commit(store, false, &err) != 0) abort();
    cue_restore_deinit(&r);
    if (cue_store_users_scan(store, partition, check_user, NULL) != 0) abort();
    if (cue_store_timers_scan(store, partition, INT64_MIN, "", 0, check_timer, NULL) != 0) abort();
    cue_store_meta meta;
    if (cue_store_meta_get(store, partition, &meta, &err) != 0 || meta.input_offset < 0) abort();
    /* Empty again for the next input, one key at a time: a partition reset
     * writes with fsync, and range deletes pile up in the memtable, where
     * every later scan pays for them. */
    if (cue_store_batch_commit(store, false, &err) != 0) abort();
    return 0;
}
