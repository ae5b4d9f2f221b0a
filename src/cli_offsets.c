/* `cuepoint offsets show|reset`: the live group's positions, and moving them
 * with the state stores kept consistent (offsets.h has the rules). */
#include "cuepoint/cli.h"

#include "cuepoint/config.h"
#include "cuepoint/kafka.h"
#include "cuepoint/kafka_group.h"
#include "cuepoint/log.h"
#include "cuepoint/offsets.h"
#include "cuepoint/store.h"

#include "cli_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sysexits.h>

/* Not an error code: the group is active, so the reset is refused (exit 75). */
#define GROUP_ACTIVE CLI_GROUP_ACTIVE
/* How long leaving the group may take at the end. */
#define LEAVE_TIMEOUT_MS 10000

static const char offsets_help[] =
    "Usage: cuepoint offsets show --config FILE [--json]\n"
    "       cuepoint offsets reset --config FILE (--to-earliest | --to-latest |\n"
    "                 --to-time TIME | --to-offset P:O[,P:O...]) [--partitions P[,P...]]\n"
    "                 [--dry-run]\n"
    "\n"
    "The positions of the live group application.id on its input topics.\n"
    "\n"
    "show: per partition (of each input topic, with input.topics), the log start\n"
    "offset, the high watermark, the group's committed offset, the local store's\n"
    "next offset (state.dir, read-only; works while an instance runs), the lag\n"
    "(high watermark minus the stored offset, or the committed one when there is\n"
    "no store) and the last reset. It never joins the group. --json prints one\n"
    "JSON object per partition per line.\n"
    "\n"
    "reset: moves the partitions (all, or --partitions) to their log start, their\n"
    "high watermark, the first record at or after TIME (RFC 3339 or epoch ms; no\n"
    "such record means the high watermark), or explicit offsets (only the\n"
    "partitions named). Offsets outside [log start, high watermark] are clamped,\n"
    "with a note. It refuses while the group is active: any member the cluster\n"
    "reports, or, where the cluster cannot describe groups (the dev broker), any\n"
    "other member found by joining the group briefly (which costs the group one\n"
    "rebalance, and waits up to session.timeout.ms: a member that stopped just\n"
    "before still counts in the group until then), or an instance holding the\n"
    "local state.dir. The new offsets are\n"
    "committed to the group as a member, with the commit metadata\n"
    "\"cuepoint-reset:ID:OFFSET\". Then the local store (if state.dir exists) moves\n"
    "too: forward, its users are kept; backward, the partition's state is dropped\n"
    "and rebuilt by the next run, which reprocesses from the new offset (a user's\n"
    "state skips records at or before the last it applied, so it cannot be kept).\n"
    "Instances with other state directories apply the same reset, the same way,\n"
    "when the group next assigns them the partition. With changelog.enabled (the\n"
    "default) the reset goes to <application.id>-changelog first, so that a\n"
    "restore from it, on any instance, starts from the reset: backward from the\n"
    "changelog's position, a tombstone for every user it holds and the new\n"
    "position; forward, the new position only. --dry-run prints the plan, the\n"
    "changelog's part included (read from it), and changes nothing. A reset is\n"
    "refused with several input topics (input.topics), for now (exit 78).\n"
    "\n"
    "Options:\n"
    "  --config FILE, --set KEY=VALUE, --state-dir DIR   as for `cuepoint run`\n"
    "  --json               (show) JSON lines instead of a table\n"
    "  -h, --help           this text\n"
    "\n"
    "Exit status: 0 done, 64 usage (also a partition the topic does not have),\n"
    "66 the input topic does not exist, 69 no broker answered within\n"
    "startup.timeout.ms or a commit failed, 74 state directory I/O, 75 refused:\n"
    "the group is active (stop its instances and try again), 78 configuration.\n";

typedef struct row {
    uint32_t topic;      /* its index in input.topics (0: input.topic) */
    cue_offsets_part bk; /* what the broker says */
    int64_t committed;   /* -1 when none */
    char meta[CUE_KAFKA_META_MAX];
    int64_t stored; /* -1 when no store or no meta */
    cue_offsets_target target;
    uint64_t users;
    /* With the changelog: its position before the reset (-1: none), and
     * what the reset wrote there (or, in a dry run, would write). */
    bool cl_written, cl_planned, cl_dropped;
    int64_t cl_from;
    uint64_t cl_tombstones;
} row;

typedef struct session {
    cue_config cfg;
    cue_kafka *k; /* owned: a consumer that does not join */
    cue_store *store;
    /* owned: one per partition of each input topic, topic by topic; a reset
     * reads only the first topic's (it refuses several topics) */
    row *rows;
    int32_t n;       /* partitions of each topic */
    uint32_t topics; /* input topics (show reads every one) */
    bool cl_absent;  /* a dry run found no changelog topic */
} session;

static int noop_assigned(const int32_t *p, int64_t *s, size_t n, void *ctx)
{
    return 0;
}
static void noop_revoked(const int32_t *p, size_t n, bool lost, void *ctx) {}
static void noop_message(const cue_kafka_msg *m, void *ctx) {}

static void session_close(session *s)
{
    if (s->k) cue_kafka_close(s->k, LEAVE_TIMEOUT_MS);
    if (s->store) cue_store_close(s->store);
    free(s->rows);
}

/* Opens the store if state.dir exists. A lock held by another process is
 * GROUP_ACTIVE: an instance is running on it. */
static int open_store(session *s, bool read_only, cue_err *err)
{
    struct stat st;
    if (stat(s->cfg.state_dir, &st) != 0) return 0;
    int rc =
        cue_store_open(&s->store, s->cfg.state_dir, &(cue_store_opts){.read_only = read_only}, err);
    if (rc != 0 && strstr(err->msg, "lock") != NULL)
        return cue_err_set(err, GROUP_ACTIVE,
                           "state.dir %s is in use by a running instance (its lock is held)",
                           s->cfg.state_dir);
    char topics[CUE_OWNER_NAME_MAX];
    cue_config_input_topics_join(&s->cfg, topics, sizeof topics);
    if (rc == 0 &&
        (rc = cue_store_owner_check(s->store, s->cfg.application_id, topics, err)) != 0) {
        cue_err_prefix(err, "%s", s->cfg.state_dir);
        if (!read_only) return rc;
        /* Showing the group's offsets is harmless; the store's positions are
         * another pipeline's and are left out. A reset is refused. */
        cue_log(CUE_LOG_WARN, "the state.dir's positions are not shown", "s:reason", err->msg,
                NULL);
        cue_store_close(s->store);
        s->store = NULL;
        cue_err_clear(err);
        rc = 0;
    }
    return rc;
}

/* Connects, and reads every partition's watermarks and committed offset, of
 * each input topic, and the store's positions. A reset refuses several
 * topics. */
static int session_open(session *s, bool read_only, bool reset, cue_err *err)
{
    cue_kafka_handler h = {
        .assigned = noop_assigned, .revoked = noop_revoked, .message = noop_message, .ctx = s};
    /* A reset moves one topic's positions: never the first topic's alone,
     * as if they were the whole input. Showing reads every topic. */
    int rc = reset ? cue_config_one_input(&s->cfg, "cuepoint offsets reset", err) : 0;
    if (rc == 0) rc = cue_kafka_open_consumer(&s->k, &s->cfg, &h, err);
    int32_t n = 0;
    if (rc == 0) rc = cue_kafka_wait_ready(s->k, s->cfg.startup_timeout_ms, &n, err);
    if (rc != 0) return rc;
    uint32_t topics = s->cfg.input_topic_count > 1 ? s->cfg.input_topic_count : 1;
    size_t rows = (size_t)n * topics;
    s->rows = calloc(rows ? rows : 1, sizeof *s->rows);
    int32_t *ids = calloc((size_t)n, sizeof *ids);
    int64_t *committed = calloc((size_t)n, sizeof *committed);
    char(*meta)[CUE_KAFKA_META_MAX] = calloc((size_t)n, sizeof *meta);
    if (!s->rows || !ids || !committed || !meta) rc = cue_err_set(err, CUE_ENOMEM, "out of memory");
    s->n = n;
    s->topics = topics;
    for (int32_t i = 0; i < n && rc == 0; i++)
        ids[i] = i;
    for (uint32_t t = 0; t < topics && rc == 0; t++) {
        row *tr = s->rows + (size_t)t * (size_t)n;
        for (int32_t i = 0; i < n && rc == 0; i++) {
            tr[i].topic = t;
            tr[i].bk.partition = i;
            rc = cue_kafka_group_watermarks(s->k, t, i, &tr[i].bk.log_start, &tr[i].bk.high,
                                            s->cfg.startup_timeout_ms, err);
        }
        if (rc == 0)
            rc = cue_kafka_group_committed(s->k, t, ids, (size_t)n, committed, meta,
                                           s->cfg.startup_timeout_ms, err);
        for (int32_t i = 0; i < n && rc == 0; i++) {
            tr[i].committed = committed[i];
            memcpy(tr[i].meta, meta[i], sizeof meta[i]);
        }
    }
    free(ids);
    free(committed);
    free(meta);
    if (rc == 0) rc = open_store(s, read_only, err);
    for (int32_t i = 0; i < n && rc == 0; i++) {
        cue_store_meta m;
        for (uint32_t t = 0; t < topics; t++)
            s->rows[(size_t)t * (size_t)n + (size_t)i].stored = -1;
        if (s->store == NULL) continue;
        rc = cue_store_meta_get(s->store, (uint32_t)i, &m, err);
        if (rc == CUE_ENOTFOUND) {
            rc = 0;
            continue;
        }
        if (rc != 0) break;
        s->rows[i].stored = m.input_offset;
        /* Topics after the first: their own positions, none for one the
         * store has not read yet (it starts from the topic's start). */
        for (uint32_t t = 1; t < topics && t - 1 < m.n_more; t++)
            s->rows[(size_t)t * (size_t)n + (size_t)i].stored = m.more_offsets[t - 1];
    }
    return rc;
}

static void print_num(const char *fmt, int64_t v)
{
    char b[24];
    if (v < 0)
        snprintf(b, sizeof b, "-");
    else
        snprintf(b, sizeof b, "%lld", (long long)v);
    printf(fmt, b);
}

/* The marker as a JSON string (or null): only our own markers are shown, and
 * they are escaped all the same. */
static void print_json_marker(const char *meta)
{
    int64_t o;
    if (!cue_offsets_marker_parse(meta, strlen(meta), &o)) {
        fputs("null", stdout);
        return;
    }
    putchar('"');
    for (const char *c = meta; *c; c++)
        if (*c == '"' || *c == '\\')
            printf("\\%c", *c);
        else if ((unsigned char)*c < 0x20)
            printf("\\u%04x", (unsigned)*c);
        else
            putchar(*c);
    putchar('"');
}

static int64_t lag_of(const row *r)
{
    int64_t pos = r->stored >= 0 ? r->stored : r->committed >= 0 ? r->committed : r->bk.log_start;
    return r->bk.high > pos ? r->bk.high - pos : 0;
}

static void show_print(const session *s, bool json)
{
    bool several = s->topics > 1;
    if (!json) {
        char list[CUE_INPUT_TOPICS_MAX * (CUE_TOPIC_BYTES_MAX + 1)];
        cue_config_input_topics_join(&s->cfg, list, sizeof list);
        printf("group %s, topic%s %s, state.dir %s%s\n", s->cfg.application_id, several ? "s" : "",
               several ? list : s->cfg.input_topic, s->cfg.state_dir,
               s->store ? "" : " (none here)");
        if (several) printf("%-24s ", "TOPIC");
        printf("%-10s %12s %15s %12s %12s %10s  %s\n", "PARTITION", "LOG-START", "HIGH-WATERMARK",
               "COMMITTED", "STORED", "LAG", "RESET");
    }
    for (size_t k = 0; k < (size_t)s->n * s->topics; k++) {
        const row *r = &s->rows[k];
        int i = (int)r->bk.partition;
        int64_t o;
        bool marked = cue_offsets_marker_parse(r->meta, strlen(r->meta), &o);
        if (json) {
            printf("{\"topic\":\"%s\",\"partition\":%d,\"log_start\":%lld,\"high_watermark\":%lld,"
                   "\"committed\":",
                   cue_config_input_topic_name(&s->cfg, r->topic), i, (long long)r->bk.log_start,
                   (long long)r->bk.high);
            r->committed >= 0 ? printf("%lld", (long long)r->committed) : printf("null");
            printf(",\"stored\":");
            r->stored >= 0 ? printf("%lld", (long long)r->stored) : printf("null");
            printf(",\"lag\":%lld,\"reset\":", (long long)lag_of(r));
            print_json_marker(r->meta);
            printf("}\n");
            continue;
        }
        if (several) printf("%-24s ", cue_config_input_topic_name(&s->cfg, r->topic));
        printf("%-10d %12lld %15lld ", i, (long long)r->bk.log_start, (long long)r->bk.high);
        print_num("%12s ", r->committed);
        print_num("%12s ", r->stored);
        printf("%10lld  %s\n", (long long)lag_of(r), marked ? r->meta : "-");
    }
}

/* ---- reset ------------------------------------------------------------- */

typedef struct reset_args {
    cue_reset_spec *spec; /* owned by the caller */
    bool dry_run, json;
    int kinds; /* how many --to-* were given */
} reset_args;

static int parse_opts(args *a, session *s, reset_args *ra, bool reset, cue_err *err)
{
    const char *v = NULL;
    for (a->i = 3; a->i < a->argc; a->i++) {
        int rc = cli_common_opt(a, &s->cfg, err);
        if (rc < 0) return -rc;
        if (rc > 0) continue;
        const char *arg = a->argv[a->i];
        if (!reset && strcmp(arg, "--json") == 0) {
            ra->json = true;
        } else if (reset && strcmp(arg, "--dry-run") == 0) {
            ra->dry_run = true;
        } else if (reset && strcmp(arg, "--to-earliest") == 0) {
            ra->spec->kind = CUE_RESET_EARLIEST, ra->kinds++;
        } else if (reset && strcmp(arg, "--to-latest") == 0) {
            ra->spec->kind = CUE_RESET_LATEST, ra->kinds++;
        } else if (reset && cli_opt_value(a, "--to-time", &v)) {
            if (a->bad) return EX_USAGE;
            if (cli_parse_time(v, &ra->spec->time_ms) != 0)
                return cli_usage_error("offsets", "--to-time: '%s' is not a time", v);
            ra->spec->kind = CUE_RESET_TIME, ra->kinds++;
        } else if (reset && cli_opt_value(a, "--to-offset", &v)) {
            if (a->bad) return EX_USAGE;
            if (cue_offsets_parse_list(v, ra->spec, err) != 0)
                return cli_usage_error("offsets", "--to-offset: %s", err->msg);
            ra->spec->kind = CUE_RESET_OFFSET, ra->kinds++;
        } else if (reset && cli_opt_value(a, "--partitions", &v)) {
            if (a->bad) return EX_USAGE;
            if (cue_offsets_parse_partitions(v, ra->spec, err) != 0)
                return cli_usage_error("offsets", "--partitions: %s", err->msg);
        } else {
            return cli_usage_error("offsets", "unknown option '%s'", arg);
        }
    }
    if (reset && ra->kinds != 1)
        return cli_usage_error("offsets", "%s",
                               "reset needs exactly one of --to-earliest, --to-latest, --to-time, "
                               "--to-offset");
    return 0;
}

/* Every partition named must exist. */
static int check_named(const session *s, const cue_reset_spec *spec)
{
    for (size_t i = 0; i < spec->n_offsets; i++)
        if (spec->offset_parts[i] >= s->n) {
            char b[64];
            snprintf(b, sizeof b, "%d", (int)spec->offset_parts[i]);
            cli_error("offsets", "EUSAGE", "%s has %d partitions, not partition %s",
                      s->cfg.input_topic, (int)s->n, b);
            return EX_USAGE;
        }
    for (size_t i = 0; i < spec->n_only; i++)
        if (spec->only[i] >= s->n) {
            cli_error("offsets", "EUSAGE", "%s has %d partitions, not partition %d",
                      s->cfg.input_topic, (int)s->n, (int)spec->only[i]);
            return EX_USAGE;
        }
    return 0;
}

static int plan(session *s, const cue_reset_spec *spec, cue_err *err)
{
    if (spec->kind == CUE_RESET_TIME) {
        int32_t *ids = calloc((size_t)s->n, sizeof *ids);
        int64_t *ans = calloc((size_t)s->n, sizeof *ans);
        int rc = ids && ans ? 0 : cue_err_set(err, CUE_ENOMEM, "out of memory");
        for (int32_t i = 0; i < s->n && ids; i++)
            ids[i] = i;
        if (rc == 0)
            rc = cue_kafka_group_offsets_for_time(s->k, ids, (size_t)s->n, spec->time_ms, ans,
                                                  s->cfg.startup_timeout_ms, err);
        bool any = false, all = true;
        for (int32_t i = 0; i < s->n && rc == 0; i++) {
            s->rows[i].bk.time_answer = ans[i];
            if (s->rows[i].bk.high <= s->rows[i].bk.log_start) continue;
            any = true;
            all &= ans[i] < 0;
        }
        if (rc == 0 && any && all)
            cue_log(CUE_LOG_WARN, CUE_KAFKA_NO_TIME_HINT, "s:topic", s->cfg.input_topic, NULL);
        free(ids);
        free(ans);
        if (rc != 0) return rc;
    }
    for (int32_t i = 0; i < s->n; i++) {
        row *r = &s->rows[i];
        r->target = cue_offsets_target_for(spec, &r->bk);
        if (!r->target.selected || s->store == NULL) continue;
        int rc = cue_offsets_count_users(s->store, (uint32_t)i, &r->users, err);
        if (rc != 0) return rc;
    }
    return 0;
}

static void plan_print(const session *s, bool dry_run)
{
    printf("%s group %s, topic %s:\n", dry_run ? "Plan (dry run, nothing changed) for" : "Reset of",
           s->cfg.application_id, s->cfg.input_topic);
    for (int32_t i = 0; i < s->n; i++) {
        const row *r = &s->rows[i];
        if (!r->target.selected) continue;
        printf("  partition %d: committed ", (int)i);
        print_num("%s", r->committed);
        printf(" -> %lld", (long long)r->target.offset);
        if (r->target.clamped)
            printf(" (asked %lld; clamped to the retained range [%lld, %lld])",
                   (long long)r->target.requested, (long long)r->bk.log_start,
                   (long long)r->bk.high);
        if (s->cl_absent) {
            printf("; no changelog yet (the reset creates it with the new position)");
        } else if (r->cl_written || r->cl_planned) {
            printf("; changelog at ");
            print_num("%s", r->cl_from);
            if (r->cl_dropped)
                printf(": backward, %llu users %s", (unsigned long long)r->cl_tombstones,
                       dry_run ? "to tombstone" : "tombstoned");
            else
                printf(": %s, users kept",
                       r->cl_from == r->target.offset ? "unchanged" : "forward");
        }
        if (s->store == NULL) {
            printf("; no local store\n");
            continue;
        }
        printf("; local store at ");
        print_num("%s", r->stored);
        if (cue_offsets_decide(r->stored, r->target.offset) == CUE_OFFSETS_DROP)
            printf(": backward, %llu users %s, rebuilt from %lld by the next run\n",
                   (unsigned long long)r->users, dry_run ? "to drop" : "dropped",
                   (long long)r->target.offset);
        else
            printf(": %s, %llu users kept\n",
                   r->stored == r->target.offset ? "unchanged" : "forward",
                   (unsigned long long)r->users);
    }
}

/* The stream time a partition's position keeps when the changelog has no
 * position record: the local store's, else none. */
static int64_t local_stream_time(session *s, int32_t id)
{
    cue_store_meta m = {.stream_time_ms = INT64_MIN};
    cue_err err = {0};
    if (s->store == NULL || cue_store_meta_get(s->store, (uint32_t)id, &m, &err) != 0)
        return INT64_MIN;
    return m.stream_time_ms;
}

/* With the changelog the reset goes there too, before the group's offsets:
 * a restore, here or on any instance, must give the state the reset leaves,
 * not undo it. The changelog's own position says backward or forward (it
 * is at or ahead of every store's, the cycle writes it first): backward,
 * every user it holds is tombstoned and the position starts again at the
 * new offset with no stream time, as a store's drop does; forward, the
 * users stay and only the position moves. */
static int reset_changelog(session *s, cue_err *err)
{
    cli_changelog *c = NULL;
    bool *sel = calloc((size_t)s->n, sizeof *sel);
    int rc = sel ? cli_changelog_open(&c, &s->cfg, s->n, err)
                 : cue_err_set(err, CUE_ENOMEM, "out of memory");
    for (int32_t i = 0; sel && i < s->n; i++)
        sel[i] = s->rows[i].target.selected;
    if (rc == 0) rc = cli_changelog_read(c, sel, err);
    for (int32_t i = 0; i < s->n && rc == 0; i++) {
        row *r = &s->rows[i];
        if (!r->target.selected) continue;
        int64_t stream = INT64_MIN;
        r->cl_from = r->stored;
        if (!cli_changelog_position(c, i, &r->cl_from, &stream)) stream = local_stream_time(s, i);
        r->cl_dropped = cue_offsets_decide(r->cl_from, r->target.offset) == CUE_OFFSETS_DROP;
        rc = cli_changelog_put(c, i, r->cl_dropped ? CLI_CHANGELOG_EMPTY : CLI_CHANGELOG_KEEP, NULL,
                               r->target.offset, r->cl_dropped ? INT64_MIN : stream, err);
        r->cl_tombstones = cli_changelog_tombstones(c, i);
    }
    if (rc == 0) rc = cli_changelog_commit(c, err);
    for (int32_t i = 0; i < s->n && rc == 0; i++)
        s->rows[i].cl_written = s->rows[i].target.selected;
    cli_changelog_close(c);
    free(sel);
    if (rc != 0 && rc != GROUP_ACTIVE)
        cue_err_prefix(err, "%s: the group's offsets were not moved (run the reset again)",
                       cue_config_changelog_topic(&s->cfg));
    return rc;
}

/* A dry run's view of reset_changelog: the changelog read, nothing written
 * or created. What it finds may change before the reset runs (an instance
 * committing meanwhile): the reset decides again from what it reads then. */
static int plan_changelog(session *s, cue_err *err)
{
    cli_changelog *c = NULL;
    bool exists = false;
    bool *sel = calloc((size_t)s->n, sizeof *sel);
    int rc = sel ? cli_changelog_open_reader(&c, &s->cfg, s->n, &exists, err)
                 : cue_err_set(err, CUE_ENOMEM, "out of memory");
    for (int32_t i = 0; sel && i < s->n; i++)
        sel[i] = s->rows[i].target.selected;
    if (rc == 0 && exists) rc = cli_changelog_read(c, sel, err);
    for (int32_t i = 0; i < s->n && rc == 0 && exists; i++) {
        row *r = &s->rows[i];
        if (!r->target.selected) continue;
        int64_t stream;
        r->cl_from = r->stored;
        (void)cli_changelog_position(c, i, &r->cl_from, &stream);
        r->cl_dropped = cue_offsets_decide(r->cl_from, r->target.offset) == CUE_OFFSETS_DROP;
        r->cl_tombstones = r->cl_dropped ? cli_changelog_users_held(c, i) : 0;
        r->cl_planned = true;
    }
    s->cl_absent = rc == 0 && !exists;
    cli_changelog_close(c);
    free(sel);
    if (rc != 0) cue_err_prefix(err, "%s", cue_config_changelog_topic(&s->cfg));
    return rc;
}

/* Joins as a member; with the changelog, writes the reset there; then
 * commits the selected partitions' new offsets with the reset's marker,
 * all only if no other member holds any partition. */
static int commit_as_member(session *s, const char *id, cue_err *err)
{
    cue_kafka_probe p;
    int rc = cli_group_hold(&p, &s->cfg, NULL, err);
    if (rc == 0 && s->cfg.changelog) rc = reset_changelog(s, err);
    for (int32_t i = 0; i < s->n && rc == 0; i++) {
        row *r = &s->rows[i];
        if (!r->target.selected) continue;
        char marker[CUE_KAFKA_META_MAX];
        rc = cue_offsets_marker_format(marker, sizeof marker, id, r->target.offset);
        if (rc == 0) rc = cue_kafka_group_commit(p.k, i, r->target.offset, marker, true, err);
        if (rc == 0) snprintf(r->meta, sizeof r->meta, "%s", marker);
    }
    if (p.k) cue_kafka_probe_leave(&p, LEAVE_TIMEOUT_MS);
    return rc;
}

static int apply_local(session *s, cue_err *err)
{
    for (int32_t i = 0; i < s->n; i++) {
        row *r = &s->rows[i];
        if (!r->target.selected) continue;
        cue_offsets_applied a;
        int rc = cue_offsets_apply(s->store, (uint32_t)i, r->meta, &a, err);
        if (rc != 0) {
            cue_err_prefix(err,
                           "%s partition %d: the group moved, the local store did not (the "
                           "next run applies it)",
                           s->cfg.input_topic, (int)i);
            return rc;
        }
    }
    return 0;
}

static int reset_run(session *s, reset_args *ra, cue_err *err)
{
    int rc = check_named(s, ra->spec);
    if (rc != 0) return rc;
    rc = plan(s, ra->spec, err);
    if (rc != 0) return cli_fail("offsets", rc, err);
    if (ra->dry_run) {
        if (s->cfg.changelog && (rc = plan_changelog(s, err)) != 0)
            return cli_fail("offsets", rc, err);
        plan_print(s, true);
        return 0;
    }
    rc = cli_group_members_check(s->k, &s->cfg, err);
    if (rc == CUE_EVERSION) {
        /* The probe below finds out, at the cost of a rebalance. */
        cue_log(CUE_LOG_INFO, "joining the group to check that no other member is in it", "s:group",
                s->cfg.application_id, "s:why", err->msg, NULL);
        rc = 0;
    }
    if (rc == 0) {
        char id[CUE_OFFSETS_ID_MAX];
        cue_offsets_new_id(id);
        rc = commit_as_member(s, id, err);
        if (rc == 0 && s->store) rc = apply_local(s, err);
        if (rc == 0) {
            plan_print(s, false);
            printf("Committed to group %s with metadata cuepoint-reset:%s:<offset>. Instances "
                   "with other state directories apply it when next assigned each partition.\n",
                   s->cfg.application_id, id);
        }
    }
    if (rc == GROUP_ACTIVE) {
        cli_error("offsets", "EUNAVAILABLE", "refused: %s", err->msg);
        return EX_TEMPFAIL;
    }
    return rc == 0 ? 0 : cli_fail("offsets", rc, err);
}

int cli_cmd_offsets(int argc, char **argv)
{
    if (cli_wants_help(argc, argv) || argc < 3) {
        fputs(offsets_help, argc < 3 ? stderr : stdout);
        return argc < 3 ? EX_USAGE : 0;
    }
    bool reset = strcmp(argv[2], "reset") == 0;
    if (!reset && strcmp(argv[2], "show") != 0)
        return cli_usage_error("offsets", "unknown action '%s' (show or reset)", argv[2]);
    session s = {0};
    cue_config_defaults(&s.cfg);
    cue_err err = {0};
    reset_args ra = {.spec = calloc(1, sizeof(cue_reset_spec))};
    if (ra.spec == NULL) return EX_OSERR;
    args a = {.argc = argc, .argv = argv, .cmd = "offsets"};
    int rc = parse_opts(&a, &s, &ra, reset, &err);
    if (rc == 0) {
        /* A dry run or show only reads the store; a reset locks it, which
         * also tells whether an instance is running on it. */
        int orc = session_open(&s, !reset || ra.dry_run, reset, &err);
        if (orc == GROUP_ACTIVE) {
            cli_error("offsets", "EUNAVAILABLE", "refused: %s", err.msg);
            rc = EX_TEMPFAIL;
        } else if (orc != 0) {
            rc = cli_fail("offsets", orc, &err);
        } else if (reset) {
            rc = reset_run(&s, &ra, &err);
        } else {
            show_print(&s, ra.json);
        }
    }
    session_close(&s);
    free(ra.spec);
    return rc;
}
