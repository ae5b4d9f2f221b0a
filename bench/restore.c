/*
 * restore: how fast cuepoint applies a partition's changelog to its store,
 * for a partition of --users users (default 1M).
 *
 * The state comes first: generated events (six per user, fixed seed) for a
 * sample of up to 50,000 users run through the file mode into one partition;
 * their state records are read back and copied, each under a new user id
 * (decoded, renamed, encoded and sealed again), until the partition holds
 * --users users: real journey states at the size asked for, without running
 * millions of events first. With the partition's position record, that is
 * the changelog in memory (key = user id, value = the sealed record). Then, --runs
 * times, into a fresh state directory: the records through cue_restore_apply,
 * the batch committed every 20,000 records as the runtime does, then
 * cue_restore_finish and the last commit. The clock covers exactly that.
 *
 * Then, as a partition's task does when it opens after a restore, the live
 * journey counts are recounted from the restored store (journey_counts.h):
 * "case=recount" gives that time beside the apply's, the cost the recount
 * adds to a restore.
 *
 * What it does not cover: fetching the changelog from a broker. librdkafka's
 * mock cluster keeps about 5 MB per partition, so a 1M-user partition (about
 * 200 MB) cannot be served by it; on a real cluster the fetch runs on
 * librdkafka's threads beside this apply.
 *
 * Prints "bench=restore case=apply run=N records=... bytes=... seconds=...
 * records_per_s=... mb_per_s=..." per run, then "case=summary" with medians.
 */
#include "cuepoint/codec.h"
#include "cuepoint/config.h"
#include "cuepoint/filemode.h"
#include "cuepoint/gen.h"
#include "cuepoint/journey_counts.h"
#include "cuepoint/machine.h"
#include "cuepoint/restore.h"
#include "cuepoint/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Records per batch commit, as the runtime's restore. */
#define RESTORE_BATCH 20000

typedef struct rec {
    uint32_t key_off, key_len, val_off, val_len;
} rec;

typedef struct corpus {
    char *bytes; /* owned: keys and values back to back */
    size_t len, cap;
    rec *recs; /* owned */
    size_t n, recs_cap;
} corpus;

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int add(corpus *c, const char *key, size_t klen, const void *val, size_t vlen)
{
    if (c->len + klen + vlen > c->cap) {
        size_t cap = (c->cap ? c->cap * 2 : 1 << 24) + klen + vlen;
        char *b = realloc(c->bytes, cap);
        if (b == NULL) return -1;
        c->bytes = b;
        c->cap = cap;
    }
    if (c->n == c->recs_cap) {
        size_t cap = c->recs_cap ? c->recs_cap * 2 : 1 << 16;
        rec *r = realloc(c->recs, cap * sizeof *r);
        if (r == NULL) return -1;
        c->recs = r;
        c->recs_cap = cap;
    }
    rec *r = &c->recs[c->n++];
    r->key_off = (uint32_t)c->len;
    r->key_len = (uint32_t)klen;
    memcpy(c->bytes + c->len, key, klen);
    c->len += klen;
    r->val_off = (uint32_t)c->len;
    r->val_len = (uint32_t)vlen;
    memcpy(c->bytes + c->len, val, vlen);
    c->len += vlen;
    return 0;
}

static int collect(uint32_t partition, const char *uid, size_t len, const void *val, size_t vlen,
                   void *ctx)
{
    (void)partition;
    return add(ctx, uid, len, val, vlen);
}

typedef struct gen_source {
    cue_gen *g;
    cue_buf line;
    int64_t n;
} gen_source;

static int gen_next(void *ctx, const char **rec_out, size_t *len, int64_t *line, bool *oversize,
                    cue_err *err)
{
    gen_source *s = ctx;
    int64_t ts;
    (void)err;
    if (!cue_gen_next(s->g, &s->line, &ts)) return 0;
    *rec_out = s->line.data;
    *len = s->line.len;
    *line = ++s->n;
    *oversize = false;
    return 1;
}

/* The partition's state, built by the file mode, read back as a changelog. */
static int build(corpus *c, size_t users, const char *machines, const char *dir)
{
    cue_config cfg;
    cue_config_defaults(&cfg);
    cue_err err = {0};
    cue_machines *ms = NULL;
    if (cue_config_set(&cfg, "state.dir", dir, &err) != 0 ||
        cue_machines_load(&ms, machines, NULL, &err) != 0) {
        fprintf(stderr, "restore: %s\n", err.msg);
        return -1;
    }
    size_t sample = users < 50000 ? users : 50000;
    cue_gen_opts go = {
        .seed = 42, .users = sample, .events = sample * 6, .start_ms = 1767603600000};
    gen_source src = {0};
    cue_buf_init(&src.line, 1024);
    FILE *null = fopen("/dev/null", "w");
    int rc = cue_gen_new(&src.g, &go, &err);
    cue_filemode_opts fo = {.cfg = &cfg,
                            .ms = ms,
                            .source = gen_next,
                            .source_ctx = &src,
                            .source_name = "generated",
                            .out = null,
                            .dead = null,
                            .until_ms = INT64_MIN};
    cue_filemode_result fr;
    if (rc == 0) rc = cue_filemode_run(&fo, &fr, &err);
    cue_gen_free(src.g);
    cue_buf_deinit(&src.line);
    fclose(null);
    cue_store *s = NULL;
    corpus base = {0};
    if (rc == 0) rc = cue_store_open(&s, dir, &(cue_store_opts){.read_only = true}, &err);
    if (rc == 0) rc = cue_store_users_scan(s, 0, collect, &base);
    if (rc == 0 && base.n == 0) rc = -1;
    /* Copies of the sample under new ids, up to `users`. */
    static cue_user u;
    cue_buf enc;
    cue_buf_init(&enc, 4096);
    for (size_t i = 0; rc == 0 && i < users; i++) {
        const rec *x = &base.recs[i % base.n];
        rc = cue_codec_decode(base.bytes + x->val_off, x->val_len, ms, &u, NULL, &err);
        char id[32];
        int n = snprintf(id, sizeof id, "r%09zu", i);
        memcpy(u.id, id, (size_t)n);
        u.id_len = (uint8_t)n;
        if (rc == 0) rc = cue_codec_encode(&u, ms, &enc);
        if (rc == 0) rc = add(c, id, (size_t)n, enc.data, enc.len);
    }
    cue_buf_deinit(&enc);
    free(base.bytes);
    free(base.recs);
    cue_store_meta meta;
    if (rc == 0 && cue_store_meta_get(s, 0, &meta, &err) == 0) {
        char pos[96];
        int n = snprintf(pos, sizeof pos, "{\"input_offset\":%lld,\"stream_time_ms\":%lld}",
                         (long long)meta.input_offset, (long long)meta.stream_time_ms);
        rc = add(c, "", 0, pos, (size_t)n);
    }
    cue_store_close(s);
    cue_machines_free(ms);
    if (rc != 0) fprintf(stderr, "restore: building the state failed: %s\n", err.msg);
    return rc;
}

static double median(double *v, int n)
{
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && v[j] < v[j - 1]; j--) {
            double t = v[j];
            v[j] = v[j - 1];
            v[j - 1] = t;
        }
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int main(int argc, char **argv)
{
    size_t users = 1000000;
    int runs = 3;
    const char *machines = "deploy/machines", *workdir = "/tmp";
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--users") == 0)
            users = strtoull(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--runs") == 0)
            runs = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--machines") == 0)
            machines = argv[i + 1];
        else if (strcmp(argv[i], "--workdir") == 0)
            workdir = argv[i + 1];
        else {
            fprintf(stderr,
                    "usage: restore [--users N] [--runs N] [--machines DIR] [--workdir DIR]\n");
            return 64;
        }
    }
    if (runs < 1 || runs > 20 || users == 0) return 64;
    char src[4096], dst[4096];
    snprintf(src, sizeof src, "%s/restore-src-%ld", workdir, (long)getpid());
    snprintf(dst, sizeof dst, "%s/restore-dst-%ld", workdir, (long)getpid());
    corpus c = {0};
    if (build(&c, users, machines, src) != 0) return 1;
    cue_machines *ms = NULL;
    cue_journey_counts *jc = NULL;
    static cue_user scratch;
    if (cue_machines_load(&ms, machines, NULL, NULL) != 0 ||
        cue_journey_counts_new(&jc, ms, NULL) != 0)
        return 1;
    double recount[20];
    printf("bench=restore case=setup users=%zu records=%zu bytes=%zu runs=%d\n", users, c.n, c.len,
           runs);
    double rate[20], mbps[20];
    int rc = 0;
    for (int run = 0; run < runs && rc == 0; run++) {
        char cmd[8300];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dst);
        if (system(cmd) != 0) return 1;
        cue_err err = {0};
        cue_store *s = NULL;
        if (cue_store_dir_create(dst, &err) != 0 ||
            cue_store_open(&s, dst, &(cue_store_opts){0}, &err) != 0) {
            fprintf(stderr, "restore: %s\n", err.msg);
            return 1;
        }
        cue_restore r = {0};
        cue_restore_init(&r, 0, NULL, true); /* as a runtime restore */
        double t0 = now_s();
        for (size_t i = 0; i < c.n && rc == 0; i++) {
            const rec *x = &c.recs[i];
            rc = cue_restore_apply(&r, s, c.bytes + x->key_off, x->key_len, c.bytes + x->val_off,
                                   x->val_len, &err);
            if (cue_store_batch_count(s) >= RESTORE_BATCH)
                rc = cue_store_batch_commit(s, false, &err);
        }
        cue_restore_finish(&r, s, (int64_t)c.n, 0);
        if (rc == 0) rc = cue_store_batch_commit(s, false, &err);
        double secs = now_s() - t0;
        double t1 = now_s();
        if (rc == 0) rc = cue_journey_counts_recount(jc, s, 0, &scratch, &err);
        recount[run] = now_s() - t1;
        cue_restore_deinit(&r);
        cue_store_close(s);
        if (rc != 0) {
            fprintf(stderr, "restore: %s\n", err.msg);
            break;
        }
        rate[run] = (double)r.records / secs;
        mbps[run] = (double)r.bytes / secs / 1e6;
        printf("bench=restore case=apply run=%d records=%llu bytes=%llu seconds=%.3f "
               "records_per_s=%.0f mb_per_s=%.1f input_offset=%lld\n",
               run + 1, (unsigned long long)r.records, (unsigned long long)r.bytes, secs, rate[run],
               mbps[run], (long long)r.input_offset);
        printf("bench=restore case=recount run=%d users=%zu seconds=%.3f users_per_s=%.0f "
               "of_apply=%.3f\n",
               run + 1, users, recount[run], (double)users / recount[run], recount[run] / secs);
    }
    if (rc == 0) {
        double mb = median(mbps, runs);
        printf(
            "bench=restore case=summary users=%zu records_per_s_median=%.0f mb_per_s_median=%.1f "
            "target_mb_per_s=100 meets_target=%s\n",
            users, median(rate, runs), mb, mb >= 100 ? "yes" : "no");
        printf("bench=restore case=recount_summary users=%zu recount_seconds_median=%.3f\n", users,
               median(recount, runs));
    }
    cue_journey_counts_free(jc);
    cue_machines_free(ms);
    char cmd[8300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s'", src, dst);
    if (system(cmd) != 0) rc = 1;
    free(c.bytes);
    free(c.recs);
    return rc == 0 ? 0 : 1;
}
