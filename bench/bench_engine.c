/*
 * bench_engine: events/s, triggers and peak RSS for one case per process.
 *
 *   decode   events decoded only (the tokenizer and pointer look-ups)
 *   engine   the engine alone: events already decoded, user state as images
 *            in the in-memory cache, as the task keeps them (load, step, save,
 *            put), each user prefetched 16 events ahead as the file mode
 *            does (and each decoded event 32 ahead, as it would be fresh
 *            from the decoder in the task); timers are armed but not fired
 *            (firing needs the timer index, which is the file case's job)
 *   wide     the engine case with every user kept as the engine's own
 *            structure (a cue_user each, ~114 KiB, in a hash table) instead
 *            of an image: the cost of stepping users where they live rather
 *            than in one hot scratch; the users are made before the clock
 *            starts and prefetched as the engine case's are. Takes a
 *            cue_user's size of memory per user (2.6 GB at 100k users)
 *   file     the whole file mode: read lines, decode, engine, cache, RocksDB,
 *            timer index, trigger encoding (to /dev/null); with --input FILE
 *            it reads that file, so the peak RSS is the file mode's alone
 *
 * Generated events (fixed seed) go to a file or memory before the clock starts.
 * Prints one line: "bench=engine case=... events=... users=... seconds=...
 * events_per_s=... triggers=... peak_rss_mb=...". bench/run.sh runs each case
 * in its own process several times and prints the medians.
 */
#include "cuepoint/cache.h"
#include "cuepoint/codec.h"
#include "cuepoint/config.h"
#include "cuepoint/engine.h"
#include "cuepoint/event.h"
#include "cuepoint/filemode.h"
#include "cuepoint/gen.h"
#include "cuepoint/hash.h"
#include "cuepoint/machine.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

typedef struct opts {
    const char *which;
    size_t events, users;
    uint64_t seed;
    size_t cache_bytes;
    const char *machines;
    const char *workdir;
    const char *input; /* file case: read this instead of generating in-process */
} opts;

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static double peak_rss_mb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / 1024.0;
}

static void report(const opts *o, double secs, uint64_t events, uint64_t triggers)
{
    const char *dir = strrchr(o->machines, '/');
    printf("bench=engine case=%s machines=%s events=%llu users=%zu seconds=%.3f "
           "events_per_s=%.0f triggers=%llu peak_rss_mb=%.1f cache_mb=%.1f\n",
           o->which, dir ? dir + 1 : o->machines, (unsigned long long)events, o->users, secs,
           (double)events / secs, (unsigned long long)triggers, peak_rss_mb(),
           (double)o->cache_bytes / 1048576.0);
}

/* All generated lines back to back, with their offsets. */
typedef struct corpus {
    char *text;
    size_t *off; /* n + 1 entries */
    size_t n;
} corpus;

static void corpus_make(const opts *o, corpus *c)
{
    cue_gen *g;
    cue_err err;
    if (cue_gen_new(&g,
                    &(cue_gen_opts){.seed = o->seed,
                                    .users = o->users,
                                    .events = o->events,
                                    .start_ms = 1767603600000LL},
                    &err) != 0) {
        fprintf(stderr, "bench: %s\n", err.msg);
        exit(1);
    }
    cue_buf b, all;
    cue_buf_init(&b, 512);
    cue_buf_init(&all, o->events * 200);
    c->off = malloc((o->events + 1) * sizeof *c->off);
    c->n = 0;
    int64_t ts;
    while (cue_gen_next(g, &b, &ts) == 1) {
        c->off[c->n++] = all.len;
        cue_buf_append(&all, b.data, b.len);
    }
    c->off[c->n] = all.len;
    c->text = all.data; /* taken from `all` */
    cue_buf_deinit(&b);
    cue_gen_free(g);
}

static void corpus_free(corpus *c)
{
    free(c->text);
    free(c->off);
}

typedef struct counter {
    uint64_t triggers;
    uint64_t ids; /* a sum of the triggers' ids' hashes: which triggers, in any order */
} counter;

static int discard_dirty(const char *uid, size_t len, const void *val, size_t vlen, void *ctx)
{
    return 0;
}

static void count_trigger(const cue_trigger *t, void *ctx)
{
    counter *n = ctx;
    n->triggers++;
    n->ids += cue_hash64(t->id, strlen(t->id), 0);
}

/* Decoded events kept whole: the event struct and a private copy of its
 * fields' tokens. */
typedef struct decoded {
    cue_event ev;
    cue_json_tok *fields;
} decoded;

static decoded *decode_all(const corpus *c, cue_event_decoder *dec)
{
    decoded *d = malloc(c->n * sizeof *d);
    for (size_t i = 0; i < c->n; i++) {
        cue_reason reason;
        cue_err err;
        if (cue_event_decode(dec, c->text + c->off[i], c->off[i + 1] - c->off[i], &d[i].ev, &reason,
                             &err) != 0) {
            fprintf(stderr, "bench: event %zu: %s\n", i, err.msg);
            exit(1);
        }
        size_t bytes = d[i].ev.n_fields * sizeof(cue_json_tok);
        d[i].fields = malloc(bytes ? bytes : 1);
        memcpy(d[i].fields, d[i].ev.fields, bytes);
        d[i].ev.fields = d[i].fields;
        d[i].ev.offset = (int64_t)i;
    }
    return d;
}

/* A decoder that finds the journeys' fields in its pass, as a task's does. */
static cue_event_decoder *decoder_new(const cue_config *cfg, const cue_machines *ms)
{
    cue_event_decoder *dec;
    cue_err err;
    if (cue_event_decoder_new(&dec, cfg, &err) != 0) {
        fprintf(stderr, "bench: %s\n", err.msg);
        exit(1);
    }
    for (uint16_t i = 0; i < cue_machines_ptr_count(ms); i++)
        (void)cue_event_decoder_want(dec, cue_machines_ptr(ms, i));
    return dec;
}

static int run_decode(const opts *o, const cue_config *cfg, const cue_machines *ms)
{
    corpus c;
    corpus_make(o, &c);
    cue_err err;
    cue_event_decoder *dec = decoder_new(cfg, ms);
    double t0 = now_s();
    uint64_t ok = 0;
    for (size_t i = 0; i < c.n; i++) {
        cue_event ev;
        cue_reason reason;
        ok += cue_event_decode(dec, c.text + c.off[i], c.off[i + 1] - c.off[i], &ev, &reason,
                               &err) == 0;
    }
    report(o, now_s() - t0, ok, 0);
    cue_event_decoder_free(dec);
    corpus_free(&c);
    return ok == c.n ? 0 : 1;
}

/* The events were decoded long before, not just now as in the task: the
 * event `i` steps on has its tokens and text fetched first (the id's bytes
 * are hashed at the next stage), or each would be a miss the pipeline does
 * not have. */
static void prefetch_event(const decoded *d, size_t n, size_t i)
{
    if (i >= n) return;
    __builtin_prefetch(d[i].fields);
    __builtin_prefetch(d[i].ev.user_id);
}

/* How far ahead the engine case prefetches users (the file mode's ring). */
#define AHEAD 16

static int run_engine(const opts *o, const cue_config *cfg, const cue_machines *ms)
{
    corpus c;
    corpus_make(o, &c);
    cue_cache *cache;
    cue_err err;
    cue_event_decoder *dec = decoder_new(cfg, ms);
    decoded *d = decode_all(&c, dec);
    if (cue_cache_new(&cache, o->cache_bytes, &err) != 0) {
        fprintf(stderr, "bench: %s\n", err.msg);
        return 1;
    }
    cue_user *u = malloc(sizeof *u);
    cue_buf enc;
    cue_buf_init(&enc, 4096);
    counter n = {0};
    cue_step_stats st = {0};
    double t0 = now_s();
    for (size_t i = 0; i < c.n; i++) {
        /* As the file mode's ring does: the user AHEAD events on has its
         * cache slot fetched, the one half as far its entry. */
        prefetch_event(d, c.n, i + 2 * AHEAD);
        if (i + AHEAD < c.n)
            cue_cache_prefetch(cache, d[i + AHEAD].ev.user_id, d[i + AHEAD].ev.user_id_len, 0);
        if (i + AHEAD / 2 < c.n)
            cue_cache_prefetch(cache, d[i + AHEAD / 2].ev.user_id, d[i + AHEAD / 2].ev.user_id_len,
                               1);
        const cue_event *ev = &d[i].ev;
        const void *val;
        size_t len;
        if (cue_cache_get(cache, ev->user_id, ev->user_id_len, &val, &len, NULL) == 0)
            cue_codec_image_load(val, len, ms, u);
        else
            cue_user_init(u, ev->user_id, ev->user_id_len);
        cue_engine_apply(ms, u, ev, NULL, count_trigger, &n, &st);
        cue_codec_image_save(u, ms, &enc);
        /* As in the task: states are put dirty, and the dirty set is flushed
         * (here to nowhere) when the cache asks or every commit.records. */
        if (cue_cache_put(cache, ev->user_id, ev->user_id_len, enc.data, enc.len, 0, true) ==
                CUE_EFULL ||
            cue_cache_should_flush(cache) || (i + 1) % (size_t)cfg->commit_records == 0) {
            cue_cache_flush(cache, discard_dirty, NULL);
            cue_cache_put(cache, ev->user_id, ev->user_id_len, enc.data, enc.len, 0, true);
        }
    }
    report(o, now_s() - t0, c.n, n.triggers);
    fprintf(stderr, "engine: trigger ids' digest %016llx\n", (unsigned long long)n.ids);
    cue_cache_stats cs;
    cue_cache_stats_get(cache, &cs);
    fprintf(stderr, "engine: cache hits %llu misses %llu evictions %llu, %zu users in %zu bytes\n",
            (unsigned long long)cs.hits, (unsigned long long)cs.misses,
            (unsigned long long)cs.evictions, cs.entries, cs.bytes);
    for (size_t i = 0; i < c.n; i++)
        free(d[i].fields);
    free(d);
    free(u);
    cue_buf_deinit(&enc);
    cue_cache_free(cache);
    cue_event_decoder_free(dec);
    corpus_free(&c);
    return 0;
}

/* A user kept as the engine's own structure, by id (the wide case). */
typedef struct wide_slot {
    cue_user *u; /* owned; NULL: an empty slot */
    uint64_t hash;
} wide_slot;

static wide_slot *wide_find(wide_slot *tab, size_t cap, const cue_event *ev)
{
    uint64_t h = cue_hash64(ev->user_id, ev->user_id_len, 0);
    size_t k = h & (cap - 1);
    while (tab[k].u && !(tab[k].hash == h && tab[k].u->id_len == ev->user_id_len &&
                         memcmp(tab[k].u->id, ev->user_id, ev->user_id_len) == 0))
        k = (k + 1) & (cap - 1);
    tab[k].hash = h;
    return &tab[k];
}

static int run_wide(const opts *o, const cue_config *cfg, const cue_machines *ms)
{
    corpus c;
    corpus_make(o, &c);
    cue_event_decoder *dec = decoder_new(cfg, ms);
    decoded *d = decode_all(&c, dec);
    size_t cap = 1024;
    while (cap < 2 * o->users)
        cap *= 2;
    wide_slot *tab = calloc(cap, sizeof *tab);
    if (tab == NULL) return 1;
    /* Every user made first, so that the clock sees steps, not page faults
     * (the image case's users are made inside its loop, a hundred-odd bytes
     * each). */
    for (size_t i = 0; i < c.n; i++) {
        wide_slot *w = wide_find(tab, cap, &d[i].ev);
        if (w->u) continue;
        if ((w->u = malloc(sizeof *w->u)) == NULL) return 1;
        /* Its head and first instances touched now: what a step of the
         * generated users writes (four journeys), faulted in here. */
        memset(w->u, 0, offsetof(cue_user, inst) + 4 * sizeof w->u->inst[0]);
        cue_user_init(w->u, d[i].ev.user_id, d[i].ev.user_id_len);
    }
    counter n = {0};
    cue_step_stats st = {0};
    double t0 = now_s();
    for (size_t i = 0; i < c.n; i++) {
        /* The engine case's prefetches: the event ahead, the user's slot,
         * then its head and first three instances, where a step reads. */
        prefetch_event(d, c.n, i + 2 * AHEAD);
        if (i + AHEAD < c.n) {
            const cue_event *e = &d[i + AHEAD].ev;
            __builtin_prefetch(&tab[cue_hash64(e->user_id, e->user_id_len, 0) & (cap - 1)]);
        }
        if (i + AHEAD / 2 < c.n) {
            /* The slot was fetched AHEAD / 2 events ago; its user's lines
             * are fetched without comparing ids (a compare would wait for
             * the very line being fetched): usually its user's home slot. */
            const cue_event *e = &d[i + AHEAD / 2].ev;
            const cue_user *u = tab[cue_hash64(e->user_id, e->user_id_len, 0) & (cap - 1)].u;
            /* Not every line of a 1.5 KiB instance: a prefetch waits once
             * the CPU's few fill buffers are busy. Its head (state, key,
             * counters) and its timers, which a step reads. */
            for (int k = 0; u && k < 3; k++) {
                const cue_instance *in = &u->inst[k];
                for (size_t off = 0; off < offsetof(cue_instance, vars); off += 64)
                    __builtin_prefetch((const char *)in + off);
                __builtin_prefetch(in->timers);
            }
            if (u) __builtin_prefetch(u);
        }
        cue_engine_apply(ms, wide_find(tab, cap, &d[i].ev)->u, &d[i].ev, NULL, count_trigger, &n,
                         &st);
    }
    report(o, now_s() - t0, c.n, n.triggers);
    fprintf(stderr, "wide: trigger ids' digest %016llx\n", (unsigned long long)n.ids);
    for (size_t k = 0; k < cap; k++)
        free(tab[k].u);
    free(tab);
    for (size_t i = 0; i < c.n; i++)
        free(d[i].fields);
    free(d);
    cue_event_decoder_free(dec);
    corpus_free(&c);
    return 0;
}

static int run_file(const opts *o, cue_config *cfg, const cue_machines *ms)
{
    char path[1024];
    snprintf(path, sizeof path, "%s", o->input ? o->input : "");
    if (o->input == NULL) {
        /* Generated here only for smoke runs: the corpus then counts in the
         * peak RSS. bench/run.sh generates the file in another process. */
        snprintf(path, sizeof path, "%s/events.jsonl", o->workdir);
        corpus c;
        corpus_make(o, &c);
        FILE *f = fopen(path, "w");
        for (size_t i = 0; i < c.n; i++) {
            fwrite(c.text + c.off[i], 1, c.off[i + 1] - c.off[i], f);
            fputc('\n', f);
        }
        fclose(f);
        corpus_free(&c);
    }
    snprintf(cfg->state_dir, sizeof cfg->state_dir, "%s/state", o->workdir);
    struct stat st;
    if (stat(cfg->state_dir, &st) == 0) {
        /* A run over it would resume where it ended and measure nothing. */
        fprintf(stderr,
                "bench_engine: %s exists (an earlier run's state): remove it or pass another "
                "--workdir\n",
                cfg->state_dir);
        return 1;
    }
    FILE *in = fopen(path, "r"), *out = fopen("/dev/null", "w"), *dead = fopen("/dev/null", "w");
    cue_line_source *src;
    cue_err err;
    cue_line_source_new(&src, in, cfg->event_bytes_max, &err);
    cue_filemode_opts fo = {.cfg = cfg,
                            .ms = ms,
                            .source = cue_line_source_next,
                            .read_ahead = true,
                            .source_ctx = src,
                            .source_name = path,
                            .out = out,
                            .dead = dead,
                            .until_ms = INT64_MIN};
    cue_filemode_result res;
    int rc = cue_filemode_run(&fo, &res, &err);
    if (rc != 0) fprintf(stderr, "bench: %s\n", err.msg);
    report(o, res.seconds, res.task.records, res.triggers);
    fprintf(stderr,
            "file: state writes %llu timer writes %llu (superseded, not written %llu) timer "
            "checks %llu (stale %llu)\n",
            (unsigned long long)res.task.state_writes, (unsigned long long)res.task.timer_writes,
            (unsigned long long)res.task.timer_dropped, (unsigned long long)res.task.timer_checks,
            (unsigned long long)res.task.timer_stale);
    fprintf(stderr,
            "file: applied %llu dead %llu timers fired %llu commits %llu timer loads %llu\n",
            (unsigned long long)res.task.applied, (unsigned long long)res.task.dead_letters,
            (unsigned long long)res.task.engine.timers_fired, (unsigned long long)res.task.commits,
            (unsigned long long)res.task.timer_loads);
    cue_line_source_free(src);
    fclose(in);
    fclose(out);
    fclose(dead);
    return rc;
}

/* --set KEY=VALUE: any configuration setting, as on the command line. */
static void set_config(cue_config *cfg, const char *v)
{
    char key[128];
    const char *eq = strchr(v, '=');
    cue_err err = {0};
    snprintf(key, sizeof key, "%.*s", eq ? (int)(eq - v) : 0, v);
    if (eq == NULL || cue_config_set(cfg, key, eq + 1, &err) != 0) {
        fprintf(stderr, "bench_engine: --set %s: %s\n", v, eq ? err.msg : "needs KEY=VALUE");
        exit(64);
    }
}

static void parse(int argc, char **argv, opts *o, cue_config *cfg)
{
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        if (strcmp(k, "--case") == 0)
            o->which = v;
        else if (strcmp(k, "--events") == 0)
            o->events = strtoull(v, NULL, 10);
        else if (strcmp(k, "--users") == 0)
            o->users = strtoull(v, NULL, 10);
        else if (strcmp(k, "--seed") == 0)
            o->seed = strtoull(v, NULL, 10);
        else if (strcmp(k, "--cache-bytes") == 0)
            o->cache_bytes = strtoull(v, NULL, 10);
        else if (strcmp(k, "--machines") == 0)
            o->machines = v;
        else if (strcmp(k, "--workdir") == 0)
            o->workdir = v;
        else if (strcmp(k, "--input") == 0)
            o->input = v;
        else if (strcmp(k, "--set") == 0)
            set_config(cfg, v);
        else {
            fprintf(stderr, "bench_engine: unknown option %s\n", k);
            exit(64);
        }
    }
}

int main(int argc, char **argv)
{
    opts o = {.which = "engine",
              .events = 100000,
              .users = 10000,
              .seed = 42,
              .cache_bytes = 64u << 20,
              .machines = CUE_SOURCE_DIR "/deploy/machines",
              .workdir = "/tmp"};
    cue_config cfg;
    cue_config_defaults(&cfg);
    parse(argc, argv, &o, &cfg);
    cfg.cache_max_bytes = o.cache_bytes;
    cue_machines *ms;
    cue_err err;
    if (cue_machines_load(&ms, o.machines, NULL, &err) != 0) {
        fprintf(stderr, "bench: %s\n", err.msg);
        return 1;
    }
    int rc;
    if (strcmp(o.which, "decode") == 0)
        rc = run_decode(&o, &cfg, ms);
    else if (strcmp(o.which, "engine") == 0)
        rc = run_engine(&o, &cfg, ms);
    else if (strcmp(o.which, "wide") == 0)
        rc = run_wide(&o, &cfg, ms);
    else if (strcmp(o.which, "file") == 0)
        rc = run_file(&o, &cfg, ms);
    else {
        fprintf(stderr, "bench_engine: unknown case %s\n", o.which);
        rc = 64;
    }
    cue_machines_free(ms);
    return rc;
}
