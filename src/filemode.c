/* The file mode: a source of JSON lines, one task, triggers and dead letters out. */
#include "cuepoint/filemode.h"

#include "cuepoint/buf.h"
#include "cuepoint/event.h"
#include "cuepoint/hash.h"
#include "cuepoint/log.h"
#include "cuepoint/store.h"
#include "cuepoint/utf8.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <time.h>

/* ---- the line source --------------------------------------------------- */

struct cue_line_source {
    FILE *in; /* borrowed */
    size_t line_max;
    char *buf; /* owned: line_max plus one read's worth */
    size_t cap, start, end;
    bool eof;
    bool skipping; /* the rest of an oversize line is still to be dropped */
    int64_t line;
};

#define READ_CHUNK (256 * 1024)

int cue_line_source_new(cue_line_source **out, FILE *in, size_t line_max, cue_err *err)
{
    cue_line_source *s = calloc(1, sizeof *s);
    if (s) {
        s->cap = line_max + READ_CHUNK;
        s->buf = malloc(s->cap);
    }
    if (s == NULL || s->buf == NULL) {
        free(s);
        return cue_err_set(err, CUE_ENOMEM, "out of memory for a %zu-byte line buffer", line_max);
    }
    s->in = in;
    s->line_max = line_max;
    *out = s;
    return 0;
}

void cue_line_source_free(cue_line_source *s)
{
    if (s == NULL) return;
    free(s->buf);
    free(s);
}

/* Moves the unread bytes to the front and reads more after them. */
static int refill(cue_line_source *s, cue_err *err)
{
    memmove(s->buf, s->buf + s->start, s->end - s->start);
    s->end -= s->start;
    s->start = 0;
    size_t n = fread(s->buf + s->end, 1, s->cap - s->end, s->in);
    s->end += n;
    if (n == 0) {
        if (ferror(s->in))
            return cue_err_set(err, CUE_EIO, "read error after line %lld: %s", (long long)s->line,
                               strerror(errno));
        s->eof = true;
    }
    return 0;
}

/* Drops the remainder of an oversize line, up to and including its newline. */
static int skip_rest(cue_line_source *s, cue_err *err)
{
    while (s->skipping) {
        char *nl = memchr(s->buf + s->start, '\n', s->end - s->start);
        if (nl) {
            s->start = (size_t)(nl - s->buf) + 1;
            s->skipping = false;
            return 0;
        }
        s->start = s->end;
        if (s->eof) {
            s->skipping = false;
            return 0;
        }
        if (refill(s, err) != 0) return CUE_EIO;
    }
    return 0;
}

static bool blank(const char *p, size_t n)
{
    for (size_t k = 0; k < n; k++)
        if (p[k] != ' ' && p[k] != '\t') return false;
    return true;
}

int cue_line_source_next(void *ctx, const char **rec, size_t *len, int64_t *line, bool *oversize,
                         cue_err *err)
{
    cue_line_source *s = ctx;
    if (skip_rest(s, err) != 0) return CUE_EIO;
    for (;;) {
        char *p = s->buf + s->start;
        size_t avail = s->end - s->start;
        char *nl = memchr(p, '\n', avail);
        size_t n = nl ? (size_t)(nl - p) : avail;
        if (!nl && avail <= s->line_max && !s->eof) {
            if (refill(s, err) != 0) return CUE_EIO;
            continue;
        }
        if (!nl && avail == 0) return 0; /* end of input */
        *oversize = n > s->line_max;
        if (*oversize) {
            n = s->line_max;
            s->skipping = !nl || (size_t)(nl - p) > n;
            s->start += n;
            if (!s->skipping) s->start++;
        } else {
            s->start += nl ? n + 1 : n;
        }
        s->line++;
        if (!*oversize && n && p[n - 1] == '\r') n--;
        if (!*oversize && blank(p, n)) continue;
        *rec = p;
        *len = n;
        *line = s->line;
        return 1;
    }
}

/* ---- sinks ------------------------------------------------------------- */

typedef struct run {
    const cue_filemode_opts *o;
    cue_filemode_result *res;
    int64_t line;   /* of the record being processed */
    bool truncated; /* the record being processed was cut at the size limit */
    cue_buf dl;     /* owned: one dead-letter line */
} run;

void cue_jsonl_put(FILE *f, const char *rec, size_t len)
{
    fwrite(rec, 1, len, f);
    fputc('\n', f);
}

int cue_jsonl_flush(FILE *f, const char *what, cue_err *err)
{
    if (f && (fflush(f) != 0 || ferror(f)))
        return cue_err_set(err, CUE_EIO, "cannot write %s: %s", what, strerror(errno));
    return 0;
}

static void sink_trigger(const cue_trigger *t, const char *rec, size_t len, void *ctx)
{
    run *r = ctx;
    cue_jsonl_put(r->o->out, rec, len);
    r->res->triggers++;
    r->res->by_trigger[t->machine_index][t->trigger_index]++;
    if (r->o->on_trigger) r->o->on_trigger(t, rec, len, r->o->on_trigger_ctx);
}

void cue_dead_letter_json(cue_buf *b, const cue_dead_letter *dl, const char *source, int64_t line,
                          bool truncated)
{
    cue_buf_reset(b);
    cue_buf_append_str(b, "{\"reason\":");
    const char *reason = cue_reason_name(dl->reason);
    cue_buf_append_json_str(b, reason, strlen(reason));
    cue_buf_append_str(b, ",\"error\":");
    cue_buf_append_json_str(b, dl->message, strlen(dl->message));
    cue_buf_append_str(b, ",\"source\":");
    cue_buf_append_json_str(b, source, strlen(source));
    if (line >= 0) cue_buf_printf(b, ",\"line\":%lld", (long long)line);
    cue_buf_printf(b, ",\"partition\":%u,\"offset\":%lld", dl->partition, (long long)dl->offset);
    if (truncated) cue_buf_append_str(b, ",\"truncated\":true");
    /* A record that is not UTF-8 would come back as other text from a JSON
     * string (each bad byte a \u00XX): its bytes go as base64 instead. */
    if (cue_utf8_valid(dl->raw, dl->raw_len)) {
        cue_buf_append_str(b, ",\"raw\":");
        cue_buf_append_json_str(b, dl->raw, dl->raw_len);
    } else {
        cue_buf_append_str(b, ",\"raw_base64\":");
        cue_buf_append_base64_str(b, dl->raw, dl->raw_len);
    }
    cue_buf_append_str(b, "}\n");
}

static void sink_dead(const cue_dead_letter *dl, void *ctx)
{
    run *r = ctx;
    cue_dead_letter_json(&r->dl, dl, r->o->source_name ? r->o->source_name : "-", r->line,
                         r->truncated);
    fwrite(r->dl.data, 1, r->dl.len, r->o->dead);
}

static void sink_decision(const char *key, size_t key_len, const char *rec, size_t len, void *ctx)
{
    run *r = ctx;
    (void)key;
    (void)key_len;
    if (r->o->decisions) cue_jsonl_put(r->o->decisions, rec, len);
}

static int sink_flush(void *ctx, cue_err *err)
{
    run *r = ctx;
    int rc = cue_jsonl_flush(r->o->decisions, "decisions", err);
    if (rc == 0) rc = cue_jsonl_flush(r->o->out, "triggers", err);
    if (rc == 0) rc = cue_jsonl_flush(r->o->dead, "dead letters", err);
    return rc;
}

/* ---- the run ----------------------------------------------------------- */

/* Where this source's first record sits: saved beside the state when a source
 * is first run, read back to resume it. One "first_offset source" line. */
static void source_path(const cue_filemode_opts *o, const char *file, char *path, size_t cap)
{
    snprintf(path, cap, "%s/%s", o->cfg->state_dir, file);
}

uint64_t cue_filemode_fingerprint(FILE *f)
{
    struct stat st;
    if (f == NULL || fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) return 0;
    static char head[64 * 1024]; /* once per run, on the main thread */
    ssize_t n = pread(fileno(f), head, sizeof head, 0);
    if (n <= 0) return 0;
    uint64_t h = cue_hash64(head, (size_t)n, 0);
    return h ? h : 1;
}

/* Every input run over this state: "first_offset fingerprint source" lines,
 * the last SOURCES_KEPT of them, so that the same input run again is
 * recognised even after others. */
#define SOURCES_KEPT 1000

/* Whether an input with this fingerprint was run here and something of it
 * committed (the state moved past where it started); *first gets where. */
static bool source_seen(const cue_filemode_opts *o, uint64_t fp, int64_t next, char *name,
                        size_t cap, int64_t *first)
{
    char path[CUE_PATH_MAX + 32];
    source_path(o, "file-sources.txt", path, sizeof path);
    FILE *f = fopen(path, "r");
    if (f == NULL) return false;
    long long off;
    unsigned long long h;
    char n[CUE_PATH_MAX + 1];
    bool seen = false;
    while (!seen && fscanf(f, "%lld %llx %1024[^\n]", &off, &h, n) == 3) {
        seen = h == fp && off < next;
        if (seen) {
            snprintf(name, cap, "%s", n);
            *first = off;
        }
    }
    fclose(f);
    return seen;
}

/* Appends this run's line, keeping the last SOURCES_KEPT. */
static int source_note(const cue_filemode_opts *o, int64_t next, uint64_t fp, const char *name,
                       cue_err *err)
{
    char path[CUE_PATH_MAX + 32], tmp[CUE_PATH_MAX + 40];
    source_path(o, "file-sources.txt", path, sizeof path);
    snprintf(tmp, sizeof tmp, "%s.new", path);
    FILE *in = fopen(path, "r"), *out = fopen(tmp, "w");
    if (out == NULL) {
        if (in) fclose(in);
        return cue_err_set(err, CUE_EIO, "cannot write %s: %s", tmp, strerror(errno));
    }
    size_t lines = 0;
    char line[CUE_PATH_MAX + 64];
    while (in && fgets(line, sizeof line, in))
        lines++;
    if (in) rewind(in);
    for (size_t k = 0; in && fgets(line, sizeof line, in); k++)
        if (k + SOURCES_KEPT > lines) fputs(line, out);
    if (in) fclose(in);
    fprintf(out, "%lld %016llx %s\n", (long long)next, (unsigned long long)fp, name);
    if (fclose(out) != 0 || rename(tmp, path) != 0)
        return cue_err_set(err, CUE_EIO, "cannot write %s: %s", path, strerror(errno));
    return 0;
}

/* Where the positions of this run's records start: the saved base to resume
 * a source, else the state's next position, saved with the source. A run
 * without --resume over an input this state has consumed (the same
 * fingerprint: see cue_filemode_opts) is refused: applying it again would
 * count its events twice where they carry no event id, and dead-letter the
 * rest as late. */
static int source_base(const cue_filemode_opts *o, int64_t next, uint64_t fp, int64_t *base,
                       cue_err *err)
{
    const char *name = o->source_name ? o->source_name : "-";
    char path[CUE_PATH_MAX + 32];
    source_path(o, "file-source.txt", path, sizeof path);
    if (o->resume) {
        FILE *f = fopen(path, "r");
        char saved[CUE_PATH_MAX + 1] = "";
        long long first = -1;
        int n = f ? fscanf(f, "%lld %1024[^\n]", &first, saved) : 0;
        if (f) fclose(f);
        if (n != 2 || first < 0 || strcmp(saved, name) != 0)
            return cue_err_set(err, CUE_EUSAGE,
                               "nothing to resume: %s was not the last source run over %s%s%s%s",
                               name, o->cfg->state_dir, n == 2 ? " (that was " : "",
                               n == 2 ? saved : "", n == 2 ? ")" : "");
        *base = first;
        return 0;
    }
    char before[CUE_PATH_MAX + 1];
    int64_t at = 0;
    if (source_seen(o, fp, next, before, sizeof before, &at))
        return cue_err_set(err, CUE_EUSAGE,
                           "%s has already been run over %s (as %s, from position %lld): "
                           "--resume continues the last input where it stopped; a fresh "
                           "--state-dir runs it anew",
                           name, o->cfg->state_dir, before, (long long)at);
    FILE *f = fopen(path, "w");
    if (f == NULL || fprintf(f, "%lld %s\n", (long long)next, name) < 0 || fclose(f) != 0)
        return cue_err_set(err, CUE_EIO, "cannot write %s: %s", path, strerror(errno));
    *base = next;
    return source_note(o, next, fp, name, err);
}

/* Records read ahead of the one processed, so that each one's user is
 * fetched into the CPU's caches while the records before it are processed
 * (cue_task_prefetch): a random user among many costs a DRAM miss or more.
 * Records longer than AHEAD_BYTES are not held (the ring stays small), nor
 * any from a source that did not ask for it (cue_filemode_opts.read_ahead). */
#define AHEAD       16
#define AHEAD_BYTES 4096

typedef struct held {
    char *text; /* owned by the ring: AHEAD_BYTES */
    size_t len;
    int64_t line, offset;
    bool oversize;
    const char *uid; /* the user id peeked from text, or NULL */
    size_t uid_len;
} held;

typedef struct ring {
    held h[AHEAD];
    size_t first, n;
} ring;

static int feed_one(run *r, cue_task *task, const char *rec, size_t len, int64_t line,
                    int64_t offset, bool oversize, cue_err *err)
{
    if (offset < cue_task_next_offset(task)) {
        r->res->resumed++; /* committed by the interrupted run */
        return 0;
    }
    r->line = line;
    r->truncated = oversize;
    cue_record one = {
        .value = rec, .value_len = len, .offset = offset, .timestamp_ms = CUE_NO_TIMESTAMP};
    return oversize
               ? cue_task_reject(task, &one, CUE_REASON_TOO_LARGE,
                                 "line is longer than event.max.bytes (raw is its beginning)", err)
               : cue_task_process(task, &one, err);
}

static int ring_pop(run *r, cue_task *task, ring *q, cue_err *err)
{
    held *h = &q->h[q->first];
    q->first = (q->first + 1) % AHEAD;
    q->n--;
    return feed_one(r, task, h->text, h->len, h->line, h->offset, h->oversize, err);
}

static int ring_drain(run *r, cue_task *task, ring *q, cue_err *err)
{
    int rc = 0;
    while (q->n > 0 && rc == 0)
        rc = ring_pop(r, task, q, err);
    return rc;
}

/* Holds a record: its user's slot is fetched now (stage 0), and the entry
 * of the one held half a ring before it (stage 1), as the Kafka loop does. */
static void ring_push(run *r, cue_task *task, ring *q, const char *rec, size_t len, int64_t line,
                      int64_t offset, bool oversize)
{
    held *h = &q->h[(q->first + q->n++) % AHEAD];
    memcpy(h->text, rec, len);
    *h = (held){.text = h->text, .len = len, .line = line, .offset = offset, .oversize = oversize};
    /* Peeked in the source's bytes, not the copy's: reading the copy right
     * after it was written waited for the copy's stores (most of the peek's
     * time in perf). */
    const char *uid;
    if (!oversize && cue_event_peek_user_id(r->o->cfg, rec, len, &uid, &h->uid_len)) {
        h->uid = h->text + (uid - rec);
        cue_task_prefetch(task, uid, h->uid_len, 0);
    }
    if (q->n > AHEAD / 2) {
        const held *near = &q->h[(q->first + q->n - 1 - AHEAD / 2) % AHEAD];
        if (near->uid) cue_task_prefetch(task, near->uid, near->uid_len, 1);
    }
}

static int feed(run *r, cue_task *task, ring *q, cue_err *err)
{
    const char *rec;
    size_t len;
    bool oversize;
    int64_t base = 0, seq = 0, line;
    int rc;
    bool first = true;
    while ((rc = r->o->source(r->o->source_ctx, &rec, &len, &line, &oversize, err)) > 0) {
        if (first) {
            uint64_t fp = r->o->fingerprint ? r->o->fingerprint : cue_hash64(rec, len, 0);
            rc = source_base(r->o, cue_task_next_offset(task), fp, &base, err);
            if (rc != 0) return rc;
            first = false;
        }
        int64_t offset = base + seq++;
        if (len > AHEAD_BYTES || !r->o->read_ahead) {
            /* In order: what is held goes first. */
            rc = ring_drain(r, task, q, err);
            if (rc == 0) rc = feed_one(r, task, rec, len, line, offset, oversize, err);
        } else {
            rc = q->n == AHEAD ? ring_pop(r, task, q, err) : 0;
            if (rc == 0) ring_push(r, task, q, rec, len, line, offset, oversize);
        }
        if (rc != 0) return rc;
    }
    /* The records read before the end (or a read error) are processed; if
     * one of them fails after a read error, the message names both. */
    cue_err derr = {0};
    int drc = ring_drain(r, task, q, &derr);
    if (rc == 0 && drc != 0) {
        rc = drc;
        *err = derr;
    } else if (drc != 0) {
        char read_msg[CUE_ERR_MSG_MAX];
        snprintf(read_msg, sizeof read_msg, "%s", err->msg);
        cue_err_set(err, rc, "%s; and a record read before it failed: %s", read_msg, derr.msg);
    }
    /* An empty input is checked like any other (a resume of nothing). */
    if (rc == 0 && first && r->o->resume) rc = source_base(r->o, 0, 0, &base, err);
    return rc;
}

int cue_filemode_run(const cue_filemode_opts *o, cue_filemode_result *res, cue_err *err)
{
    memset(res, 0, sizeof *res);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    run r = {.o = o, .res = res};
    cue_store *store = NULL;
    cue_task *task = NULL;
    cue_task_sink sink = {.trigger = sink_trigger,
                          .dead_letter = sink_dead,
                          .decision = sink_decision,
                          .flush = sink_flush,
                          .ctx = &r};
    int rc = cue_buf_init(&r.dl, 4096) ? cue_err_set(err, CUE_ENOMEM, "out of memory") : 0;
    if (rc == 0) rc = cue_store_open(&store, o->cfg->state_dir, &(cue_store_opts){0}, err);
    if (rc == 0) rc = cue_task_new(&task, o->cfg, o->ms, store, 0, &sink, err);
    if (rc == 0) rc = cue_task_set_policy(task, o->policy, err);
    /* The reader's clock for the future-time check. A stream time past it is
     * left alone here: --until may have put it there on purpose. */
    if (rc == 0 && o->clock_ms > 0) cue_task_set_clock(task, o->clock_ms);
    ring q = {0};
    for (size_t i = 0; i < AHEAD && rc == 0; i++)
        if ((q.h[i].text = malloc(AHEAD_BYTES)) == NULL)
            rc = cue_err_set(err, CUE_ENOMEM, "out of memory");
    if (rc == 0) rc = feed(&r, task, &q, err);
    if (rc == 0 && o->until_ms != INT64_MIN) rc = cue_task_advance(task, o->until_ms, err);
    if (rc == 0 && o->linger_ms > 0 && cue_task_stream_time(task) != INT64_MIN)
        rc = cue_task_advance(task, cue_task_stream_time(task) + o->linger_ms, err);
    if (rc == 0) rc = cue_task_commit(task, err);
    if (task) {
        res->task = *cue_task_stats_get(task);
        res->stream_ms = cue_task_stream_time(task);
    }
    cue_task_free(task);
    cue_store_close(store);
    cue_buf_deinit(&r.dl);
    for (size_t i = 0; i < AHEAD; i++)
        free(q.h[i].text);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    res->seconds = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    return rc;
}

/* ---- summaries --------------------------------------------------------- */

void cue_filemode_summary(FILE *f, const cue_filemode_opts *o, const cue_filemode_result *r)
{
    const cue_task_stats *s = &r->task;
    double rate = r->seconds > 0 ? (double)s->records / r->seconds : 0;
    fprintf(f,
            "cuepoint: %llu events read, %llu applied, %llu dead-lettered, %llu duplicates "
            "skipped, %llu late applied; %llu triggers; %.2f s (%.0f events/s)\n",
            (unsigned long long)s->records, (unsigned long long)s->applied,
            (unsigned long long)s->dead_letters, (unsigned long long)s->duplicates,
            (unsigned long long)s->late_applied, (unsigned long long)r->triggers, r->seconds, rate);
    if (r->resumed)
        fprintf(f, "  resumed: skipped the first %llu records, committed by the earlier run\n",
                (unsigned long long)r->resumed);
    for (int k = 1; k < CUE_REASON_COUNT; k++)
        if (s->dead_by_reason[k])
            fprintf(f, "  dead letters %-22s %llu\n", cue_reason_name((cue_reason)k),
                    (unsigned long long)s->dead_by_reason[k]);
    for (size_t mi = 0; mi < cue_machines_count(o->ms); mi++) {
        const cue_machine *m = cue_machines_get(o->ms, mi);
        for (uint16_t t = 0; t < m->n_triggers; t++)
            fprintf(f, "  %-12s %-28s %llu\n", m->name, m->triggers[t].name,
                    (unsigned long long)r->by_trigger[mi][t]);
    }
    if (s->decisions[CUE_OUTCOME_SENT] + s->decisions[CUE_OUTCOME_SUPPRESSED] +
        s->decisions[CUE_OUTCOME_DEFERRED] + s->decisions[CUE_OUTCOME_CANCELLED] + s->erasures)
        fprintf(f,
                "  policy: %llu sent, %llu deferred, %llu suppressed, %llu cancelled, %llu users "
                "erased\n",
                (unsigned long long)s->decisions[CUE_OUTCOME_SENT],
                (unsigned long long)s->decisions[CUE_OUTCOME_DEFERRED],
                (unsigned long long)s->decisions[CUE_OUTCOME_SUPPRESSED],
                (unsigned long long)s->decisions[CUE_OUTCOME_CANCELLED],
                (unsigned long long)s->erasures);
    if (s->expired_users || s->engine.instances_expired)
        fprintf(f, "  state TTL: %llu users expired, %llu journey instances expired\n",
                (unsigned long long)s->expired_users,
                (unsigned long long)s->engine.instances_expired);
    if (s->ttl_indexed_users)
        fprintf(f, "  state TTL: %llu users stored before it was set given an expiry\n",
                (unsigned long long)s->ttl_indexed_users);
    if (s->corrupt_states)
        fprintf(f, "  %llu stored states did not decode (their events are dead letters)\n",
                (unsigned long long)s->corrupt_states);
    const cue_codec_stats *c = &s->codec;
    if (c->migrated || c->stranded || c->dropped_instances || c->timers_dropped || c->timers_moved)
        fprintf(f,
                "  migration: %llu instances migrated, %llu moved, %llu finished, %llu stranded, "
                "%llu dropped; timers: %llu moved, %llu dropped (%llu users rewritten at start)\n",
                (unsigned long long)c->migrated, (unsigned long long)c->moved,
                (unsigned long long)c->finished, (unsigned long long)c->stranded,
                (unsigned long long)c->dropped_instances, (unsigned long long)c->timers_moved,
                (unsigned long long)c->timers_dropped, (unsigned long long)s->migrated_users);
    const cue_step_stats *e = &s->engine;
    if (e->timers_past || e->timers_past_skipped || e->timers_refused)
        fprintf(f,
                "  timers: %llu started at a time already past (fired at once), %llu not started "
                "(if_past: skip), %llu refused (a timer's transition starting one at or before "
                "its own time)\n",
                (unsigned long long)e->timers_past, (unsigned long long)e->timers_past_skipped,
                (unsigned long long)e->timers_refused);
    if (e->instance_limit || e->bad_key || e->bad_timer_value || e->value_truncated)
        fprintf(f,
                "  warnings: %llu starts refused at max_instances, %llu bad instance keys, "
                "%llu timer times unreadable, %llu values truncated\n",
                (unsigned long long)e->instance_limit, (unsigned long long)e->bad_key,
                (unsigned long long)e->bad_timer_value, (unsigned long long)e->value_truncated);
}

void cue_filemode_summary_json(FILE *f, const cue_filemode_opts *o, const cue_filemode_result *r)
{
    const cue_task_stats *s = &r->task;
    fprintf(f,
            "{\"records\":%llu,\"applied\":%llu,\"dead_letters\":%llu,\"duplicates\":%llu,"
            "\"late_applied\":%llu,\"triggers\":%llu,\"seconds\":%.6f,\"timers_fired\":%llu,"
            "\"commits\":%llu,\"decisions\":{\"sent\":%llu,\"deferred\":%llu,\"suppressed\":%llu,"
            "\"cancelled\":%llu},\"erasures\":%llu,\"expired\":{\"users\":%llu,"
            "\"instances\":%llu},\"migration\":{\"migrated\":%llu,"
            "\"moved\":%llu,\"finished\":%llu,\"stranded\":%llu,\"dropped\":%llu,"
            "\"timers_moved\":%llu,\"timers_dropped\":%llu,\"users_rewritten\":%llu},"
            "\"timers_past\":%llu,\"dead_by_reason\":{",
            (unsigned long long)s->records, (unsigned long long)s->applied,
            (unsigned long long)s->dead_letters, (unsigned long long)s->duplicates,
            (unsigned long long)s->late_applied, (unsigned long long)r->triggers, r->seconds,
            (unsigned long long)s->engine.timers_fired, (unsigned long long)s->commits,
            (unsigned long long)s->decisions[CUE_OUTCOME_SENT],
            (unsigned long long)s->decisions[CUE_OUTCOME_DEFERRED],
            (unsigned long long)s->decisions[CUE_OUTCOME_SUPPRESSED],
            (unsigned long long)s->decisions[CUE_OUTCOME_CANCELLED],
            (unsigned long long)s->erasures, (unsigned long long)s->expired_users,
            (unsigned long long)s->engine.instances_expired, (unsigned long long)s->codec.migrated,
            (unsigned long long)s->codec.moved, (unsigned long long)s->codec.finished,
            (unsigned long long)s->codec.stranded, (unsigned long long)s->codec.dropped_instances,
            (unsigned long long)s->codec.timers_moved, (unsigned long long)s->codec.timers_dropped,
            (unsigned long long)s->migrated_users, (unsigned long long)s->engine.timers_past);
    for (int k = 1, first = 1; k < CUE_REASON_COUNT; k++) {
        if (!s->dead_by_reason[k]) continue;
        fprintf(f, "%s\"%s\":%llu", first ? "" : ",", cue_reason_name((cue_reason)k),
                (unsigned long long)s->dead_by_reason[k]);
        first = 0;
    }
    fprintf(f, "},\"by_trigger\":{");
    int first = 1;
    for (size_t mi = 0; mi < cue_machines_count(o->ms); mi++) {
        const cue_machine *m = cue_machines_get(o->ms, mi);
        for (uint16_t t = 0; t < m->n_triggers; t++) {
            fprintf(f, "%s\"%s.%s\":%llu", first ? "" : ",", m->name, m->triggers[t].name,
                    (unsigned long long)r->by_trigger[mi][t]);
            first = 0;
        }
    }
    fprintf(f, "}}\n");
}
