/* Rewriting <application.id>-changelog from the offline commands that change
 * a partition's state behind the live pipeline's back (`replay --seed-state`,
 * `offsets reset`), so that an instance restoring from the changelog gets
 * their state and not the one they replaced.
 *
 * A partition's changelog is read to its end first: the users whose last
 * record is not a tombstone, and the last position record. Then, appended:
 * a tombstone for each of those users the new state does not have (a
 * compacted changelog must not bring them back), every user of the new
 * state, and last a position record. A restore reads the changelog in
 * order, so what it ends with is the new state, whatever came before; a
 * local copy in line with the old end restores just the new records.
 *
 * Under exactly-once the records go in one transaction, visible to the
 * read_committed restore all at once. Otherwise a write cut short (a broker
 * gone, a signal) leaves part of it in the changelog: the command fails,
 * and must be run again before the group starts (cli_int.h says so too). */
#include "cuepoint/hash.h"
#include "cuepoint/kafka.h"
#include "cuepoint/kafka_group.h"
#include "cuepoint/limits.h"
#include "cuepoint/log.h"
#include "cuepoint/restore.h"
#include "cuepoint/store.h"

#include "cli_int.h"

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Records served per turn of the read loop. */
#define READ_BATCH 10000
/* A key set starts with this many slots (a power of two). */
#define KEYSET_SLOTS_MIN 1024

/* The user ids a changelog partition holds: the last record of each says
 * whether the user is there (a state) or gone (a tombstone). Open
 * addressing, at most half full; the ids themselves back to back in `keys`. */
typedef struct key_slot {
    uint64_t hash;
    size_t off;
    uint32_t len;
    bool used, alive;
} key_slot;

typedef struct keyset {
    cue_buf keys;
    key_slot *slots;
    size_t cap, n;
} keyset;

typedef struct cl_part {
    bool selected, done;
    int64_t low, high;      /* the changelog's edges before the write */
    bool positioned;        /* a position record was read */
    int64_t input_offset;   /* the last position record's */
    int64_t stream_time_ms; /* ... INT64_MIN for null */
    int64_t end;            /* the high watermark after the write */
    uint64_t tombstones, users;
    keyset ks;
} cl_part;

struct cli_changelog {
    cue_config cfg; /* the caller's, reading the changelog as input.topic */
    /* The caller's input topics, which the position records name. */
    cue_position_topics topics;
    cue_kafka *k;
    int32_t n;
    cl_part *parts;
    int fatal_rc;
    char fatal[CUE_ERR_MSG_MAX];
    uint64_t read, skipped;
};

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- the key set ------------------------------------------------------- */

static key_slot *keyset_find(keyset *s, const char *key, size_t len, uint64_t h)
{
    for (size_t i = h & (s->cap - 1);; i = (i + 1) & (s->cap - 1)) {
        key_slot *sl = &s->slots[i];
        if (!sl->used ||
            (sl->hash == h && sl->len == len && memcmp(s->keys.data + sl->off, key, len) == 0))
            return sl;
    }
}

static int keyset_grow(keyset *s)
{
    size_t cap = s->cap ? s->cap * 2 : KEYSET_SLOTS_MIN;
    key_slot *old = s->slots, *slots = calloc(cap, sizeof *slots);
    if (slots == NULL) return CUE_ENOMEM;
    size_t old_cap = s->cap;
    s->slots = slots;
    s->cap = cap;
    for (size_t i = 0; i < old_cap; i++)
        if (old[i].used) {
            size_t j = old[i].hash & (cap - 1);
            while (slots[j].used)
                j = (j + 1) & (cap - 1);
            slots[j] = old[i];
        }
    free(old);
    return 0;
}

/* Records that `key`'s last record says it is `alive`. */
static int keyset_set(keyset *s, const char *key, size_t len, bool alive)
{
    if ((s->n + 1) * 2 > s->cap && keyset_grow(s) != 0) return CUE_ENOMEM;
    uint64_t h = cue_hash64(key, len, 0);
    key_slot *sl = keyset_find(s, key, len, h);
    if (!sl->used) {
        size_t off = s->keys.len;
        if (cue_buf_append(&s->keys, key, len) != 0) return CUE_ENOMEM;
        *sl = (key_slot){.hash = h, .off = off, .len = (uint32_t)len, .used = true};
        s->n++;
    }
    sl->alive = alive;
    return 0;
}

static void keyset_deinit(keyset *s)
{
    cue_buf_deinit(&s->keys);
    free(s->slots);
    memset(s, 0, sizeof *s);
}

/* ---- reading ----------------------------------------------------------- */

static void fail(cli_changelog *c, int rc, const char *why)
{
    if (c->fatal_rc) return;
    c->fatal_rc = rc;
    snprintf(c->fatal, sizeof c->fatal, "%s", why);
}

static void on_message(const cue_kafka_msg *m, void *ctx)
{
    cli_changelog *c = ctx;
    if (m->partition < 0 || m->partition >= c->n || c->fatal_rc) return;
    cl_part *p = &c->parts[m->partition];
    if (!p->selected || p->done) return;
    if (m->offset >= p->high) {
        p->done = true;
        return;
    }
    c->read++;
    if (m->key != NULL && m->key_len == 0) {
        int64_t in = 0, st = 0;
        if (cue_restore_position_parse(m->value, m->value_len, &in, &st, NULL, NULL, NULL) == 0) {
            p->positioned = true;
            p->input_offset = in;
            p->stream_time_ms = st;
        } else {
            c->skipped++;
        }
    } else if (m->key == NULL || m->key_len > CUE_USER_ID_BYTES_MAX) {
        c->skipped++; /* not the owner's: a restore skips it too */
    } else if (keyset_set(&p->ks, m->key, m->key_len, m->value_len > 0) != 0) {
        fail(c, CUE_ENOMEM, "out of memory reading the changelog's users");
    }
    if (m->offset + 1 >= p->high) p->done = true;
}

static void on_end(int32_t partition, int64_t offset, void *ctx)
{
    cli_changelog *c = ctx;
    if (partition >= 0 && partition < c->n && offset >= c->parts[partition].high)
        c->parts[partition].done = true;
}

static void on_fatal(const char *why, void *ctx)
{
    fail(ctx, CUE_EUNAVAILABLE, why);
}

/* The object without its clients; *out is set even on failure. */
static int changelog_new(cli_changelog **out, const cue_config *cfg, int32_t partitions,
                         cue_err *err)
{
    cli_changelog *c = calloc(1, sizeof *c);
    *out = c;
    if (c == NULL) return cue_err_set(err, CUE_ENOMEM, "out of memory");
    c->cfg = *cfg;
    c->topics.n = cfg->input_topic_count;
    c->topics.hash = c->topics.n ? cue_config_input_topics_hash(cfg, c->topics.n) : 0;
    c->n = partitions;
    snprintf(c->cfg.input_topic, sizeof c->cfg.input_topic, "%s", cue_config_changelog_topic(cfg));
    c->parts = calloc((size_t)partitions, sizeof *c->parts);
    if (c->parts == NULL) return cue_err_set(err, CUE_ENOMEM, "out of memory");
    return 0;
}

int cli_changelog_open(cli_changelog **out, const cue_config *cfg, int32_t partitions, cue_err *err)
{
    int rc = changelog_new(out, cfg, partitions, err);
    if (rc != 0) return rc;
    cli_changelog *c = *out;
    /* Its own transactional.id: the instances' are derived from their
     * state directories, and this writer must fence none of them. */
    if (cfg->exactly_once)
        snprintf(c->cfg.transactional_id, sizeof c->cfg.transactional_id, "%s-changelog-writer",
                 cfg->application_id);
    cue_kafka_handler h = {.message = on_message, .end = on_end, .fatal = on_fatal, .ctx = c};
    bool described = true;
    rc = cue_kafka_open_changelog_writer(&c->k, &c->cfg, &h, err);
    if (rc == 0)
        rc = cue_kafka_changelog_ensure(c->k, partitions, cfg->input_topic, &described, err);
    if (rc == 0) rc = cue_kafka_changelog_open(c->k, partitions, err);
    return rc;
}

int cli_changelog_open_reader(cli_changelog **out, const cue_config *cfg, int32_t partitions,
                              bool *exists, cue_err *err)
{
    *exists = false;
    int rc = changelog_new(out, cfg, partitions, err);
    if (rc != 0) return rc;
    cli_changelog *c = *out;
    cue_kafka_handler h = {.message = on_message, .end = on_end, .fatal = on_fatal, .ctx = c};
    rc = cue_kafka_open_replay(&c->k, &c->cfg, &h, "changelog-reader", NULL, err);
    int32_t n = 0;
    if (rc == 0)
        rc = cue_kafka_topic_listed(c->k, c->cfg.input_topic, cfg->startup_timeout_ms, &n, err);
    if (rc == 0 && n > 0 && n != partitions)
        return cue_err_set(err, CUE_ECONFIG,
                           "changelog topic %s has %d partitions and input topic %s has %d: they "
                           "must be equal, and the reset refuses it too; create %s with %d "
                           "partitions",
                           c->cfg.input_topic, (int)n, cfg->input_topic, (int)partitions,
                           c->cfg.input_topic, (int)partitions);
    *exists = rc == 0 && n > 0;
    return rc;
}

void cli_changelog_close(cli_changelog *c)
{
    if (c == NULL) return;
    if (c->k) cue_kafka_close(c->k, 0);
    for (int32_t i = 0; c->parts && i < c->n; i++)
        keyset_deinit(&c->parts[i].ks);
    free(c->parts);
    free(c);
}

/* Assigns the selected partitions that hold records, from their log start. */
static int read_assign(cli_changelog *c, cue_err *err)
{
    int32_t *ids = calloc((size_t)c->n, sizeof *ids);
    int64_t *start = calloc((size_t)c->n, sizeof *start);
    int rc = ids && start ? 0 : cue_err_set(err, CUE_ENOMEM, "out of memory");
    size_t n = 0;
    for (int32_t i = 0; rc == 0 && i < c->n; i++) {
        cl_part *p = &c->parts[i];
        if (!p->selected) continue;
        rc = cue_kafka_watermarks(c->k, i, c->cfg.startup_timeout_ms, &p->low, &p->high, err);
        p->done = p->high <= p->low;
        if (rc == 0 && !p->done) {
            ids[n] = i;
            start[n++] = p->low;
        }
    }
    if (rc == 0 && n > 0) rc = cue_kafka_assign(c->k, ids, start, n, err);
    free(ids);
    free(start);
    return rc;
}

static bool read_done(const cli_changelog *c)
{
    for (int32_t i = 0; i < c->n; i++)
        if (c->parts[i].selected && !c->parts[i].done) return false;
    return true;
}

int cli_changelog_read(cli_changelog *c, const bool *selected, cue_err *err)
{
    for (int32_t i = 0; i < c->n; i++)
        c->parts[i].selected = selected == NULL || selected[i];
    int rc = read_assign(c, err);
    if (rc != 0) return rc;
    /* A partition that stops giving records before its end (a broker gone,
     * a transaction left open) must not hold the command for ever. */
    int64_t idle_ms = c->cfg.startup_timeout_ms, last = wall_ms();
    int fd = cue_kafka_consumer_fd(c->k);
    while (!read_done(c) && c->fatal_rc == 0 && wall_ms() - last < idle_ms) {
        uint64_t before = c->read;
        if (cue_kafka_consume(c->k, READ_BATCH) < READ_BATCH) {
            struct pollfd p = {.fd = fd, .events = POLLIN};
            poll(&p, 1, 100);
            cue_kafka_drain_fd(fd);
        }
        if (c->read != before) last = wall_ms();
    }
    if (c->fatal_rc) return cue_err_set(err, c->fatal_rc, "%s", c->fatal);
    for (int32_t i = 0; i < c->n; i++)
        if (c->parts[i].selected && !c->parts[i].done)
            return cue_err_set(err, CUE_EUNAVAILABLE,
                               "%s [%d]: not read to its end (%lld) within %lld ms of no progress",
                               c->cfg.input_topic, (int)i, (long long)c->parts[i].high,
                               (long long)idle_ms);
    if (c->skipped)
        cue_log(CUE_LOG_WARN, "changelog records that are not cuepoint's were skipped", "s:topic",
                c->cfg.input_topic, "u:records", c->skipped, NULL);
    return 0;
}

bool cli_changelog_position(const cli_changelog *c, int32_t partition, int64_t *input_offset,
                            int64_t *stream_time_ms)
{
    const cl_part *p = &c->parts[partition];
    if (!p->positioned) return false;
    *input_offset = p->input_offset;
    *stream_time_ms = p->stream_time_ms;
    return true;
}

/* ---- writing ----------------------------------------------------------- */

typedef struct put_ctx {
    cli_changelog *c;
    cl_part *p;
    int rc;
} put_ctx;

static int put_user(uint32_t partition, const char *uid, size_t uid_len, const void *val,
                    size_t val_len, void *ctx)
{
    put_ctx *pc = ctx;
    /* The store's record is the sealed one a restore writes as it is. */
    pc->rc = cue_kafka_produce_changelog(pc->c->k, (int32_t)partition, uid, uid_len, val, val_len);
    if (pc->rc == 0) pc->p->users++;
    return pc->rc;
}

/* Tombstones for the users read that the new state does not hold. */
static int put_tombstones(cli_changelog *c, int32_t id, cli_changelog_users users, cue_store *store,
                          cue_err *err)
{
    cl_part *p = &c->parts[id];
    cue_buf val = {0};
    int rc = 0;
    for (size_t i = 0; i < p->ks.cap && rc == 0 && users != CLI_CHANGELOG_KEEP; i++) {
        const key_slot *sl = &p->ks.slots[i];
        if (!sl->used || !sl->alive) continue;
        const char *uid = p->ks.keys.data + sl->off;
        if (users == CLI_CHANGELOG_STORE) {
            rc = cue_store_user_get(store, (uint32_t)id, uid, sl->len, &val, err);
            if (rc == 0) continue; /* written with the store's users */
            if (rc != CUE_ENOTFOUND) break;
            cue_err_clear(err);
        }
        rc = cue_kafka_produce_changelog(c->k, id, uid, sl->len, NULL, 0);
        if (rc == 0) p->tombstones++;
    }
    cue_buf_deinit(&val);
    if (rc == CUE_EIO)
        cue_err_set(err, rc, "%s [%d]: producing a tombstone failed", c->cfg.input_topic, (int)id);
    return rc;
}

int cli_changelog_put(cli_changelog *c, int32_t id, cli_changelog_users users, cue_store *store,
                      int64_t input_offset, int64_t stream_time_ms, cue_err *err)
{
    CUE_ASSERT(id >= 0 && id < c->n && c->parts[id].selected);
    CUE_ASSERT(users != CLI_CHANGELOG_STORE || store != NULL);
    int rc = put_tombstones(c, id, users, store, err);
    if (rc == 0 && users == CLI_CHANGELOG_STORE) {
        put_ctx pc = {.c = c, .p = &c->parts[id]};
        rc = cue_store_users_scan(store, id, put_user, &pc);
        if (rc != 0)
            return cue_err_set(err, pc.rc ? pc.rc : CUE_ESTORE,
                               "%s [%d]: writing the state's users failed", c->cfg.input_topic,
                               (int)id);
    }
    if (rc != 0) return rc;
    /* Last: a restore that reads it has every user before it. */
    char pos[CUE_POSITION_TEXT_BYTES_MAX];
    int n = cue_restore_position_format(pos, sizeof pos, input_offset, stream_time_ms, NULL, 0,
                                        &c->topics);
    rc = cue_kafka_produce_changelog(c->k, id, "", 0, pos, (size_t)n);
    if (rc != 0)
        return cue_err_set(err, rc, "%s [%d]: producing the position failed", c->cfg.input_topic,
                           (int)id);
    cue_log(CUE_LOG_INFO, "changelog rewritten", "s:topic", c->cfg.input_topic, "i:partition",
            (int64_t)id, "u:tombstones", c->parts[id].tombstones, "u:users", c->parts[id].users,
            "i:input_offset", input_offset, NULL);
    return 0;
}

int cli_changelog_commit(cli_changelog *c, cue_err *err)
{
    int rc = c->cfg.exactly_once ? cue_kafka_txn_commit(c->k, NULL, NULL, NULL, NULL, 0,
                                                        c->cfg.delivery_timeout_ms, err)
                                 : cue_kafka_flush(c->k, c->cfg.delivery_timeout_ms, err);
    if (rc != 0) {
        cue_err_prefix(err, "%s", c->cfg.input_topic);
        return rc;
    }
    for (int32_t i = 0; i < c->n && rc == 0; i++) {
        cl_part *p = &c->parts[i];
        int64_t low = 0;
        if (p->selected)
            rc = cue_kafka_watermarks(c->k, i, c->cfg.startup_timeout_ms, &low, &p->end, err);
    }
    return rc;
}

int64_t cli_changelog_end(const cli_changelog *c, int32_t partition)
{
    return c->parts[partition].end;
}

uint64_t cli_changelog_tombstones(const cli_changelog *c, int32_t partition)
{
    return c->parts[partition].tombstones;
}

uint64_t cli_changelog_users_held(const cli_changelog *c, int32_t partition)
{
    const keyset *ks = &c->parts[partition].ks;
    uint64_t n = 0;
    for (size_t i = 0; i < ks->cap; i++)
        n += ks->slots[i].used && ks->slots[i].alive;
    return n;
}

/* ---- the group --------------------------------------------------------- */

/* Members named in a refusal; the rest are counted. */
#define MEMBERS_SHOWN 16

int cli_group_members_check(cue_kafka *k, const cue_config *cfg, cue_err *err)
{
    cue_kafka_member m[MEMBERS_SHOWN];
    size_t n = 0;
    int rc = cue_kafka_group_members(k, m, MEMBERS_SHOWN, &n, cfg->startup_timeout_ms, err);
    if (rc != 0 || n == 0) return rc;
    char list[CUE_ERR_MSG_MAX / 2] = "";
    size_t used = 0;
    for (size_t i = 0; i < n && i < MEMBERS_SHOWN && used < sizeof list; i++)
        used += (size_t)snprintf(list + used, sizeof list - used, "%s%s@%s", i ? ", " : "",
                                 m[i].client_id, m[i].host);
    return cue_err_set(err, CLI_GROUP_ACTIVE,
                       "group %s is active with %zu member(s): %s; stop them and try again",
                       cfg->application_id, n, list);
}

int cli_group_hold(cue_kafka_probe *p, const cue_config *cfg, int32_t *partitions, cue_err *err)
{
    int rc = cue_kafka_probe_join(p, cfg, cfg->startup_timeout_ms, err);
    if (rc == CUE_EUNAVAILABLE && p->k != NULL) rc = CLI_GROUP_ACTIVE;
    int32_t n = 0;
    if (rc == 0) rc = cue_kafka_wait_ready(p->k, cfg->startup_timeout_ms, &n, err);
    if (rc == 0 && p->assigned < (size_t)n)
        rc = cue_err_set(err, CLI_GROUP_ACTIVE,
                         "group %s is active: other members hold %zu of %s's %d partitions; stop "
                         "them and try again (this check joined the group, which cost it one "
                         "rebalance)",
                         cfg->application_id, (size_t)n - p->assigned, cfg->input_topic, (int)n);
    if (partitions) *partitions = n;
    return rc;
}
