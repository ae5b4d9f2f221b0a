/* `cuepoint replay`: options, the safety rules around the live pipeline, the
 * summary. The replay itself is the replay module. */
/* realpath() is an X/Open interface. */
#define _XOPEN_SOURCE 700
#include "cuepoint/cli.h"

#include "cuepoint/config.h"
#include "cuepoint/kafka.h"
#include "cuepoint/kafka_group.h"
#include "cuepoint/log.h"
#include "cuepoint/machine.h"
#include "cuepoint/policy.h"
#include "cuepoint/replay.h"
#include "cuepoint/store.h"

#include "cli_int.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

/* How long a file replay waits for the broker to learn the topic's
 * partition count before it falls back to one partition. */
#define FILE_PARTITIONS_WAIT_MS 5000

static const char replay_help[] =
    "Usage: cuepoint replay --config FILE [options]\n"
    "\n"
    "Runs history again through the journeys, into a state directory of its own,\n"
    "and writes the triggers it makes, with the same trigger ids the live run\n"
    "gave. It never disturbs the live pipeline: it reads the input topic outside\n"
    "the consumer group (nothing joins, nothing is committed), keeps its state\n"
    "apart, and writes triggers to stdout unless told otherwise. Each partition\n"
    "keeps its own stream time, as in the live run; time moves only with the\n"
    "records (no wall clock) unless --advance-to says so.\n"
    "\n"
    "Source (default: every partition of input.topic, from its beginning to the\n"
    "high watermark at start):\n"
    "  --from-beginning        start at each partition's first record (default)\n"
    "  --from-offset O|P:O,..  start at offset O (every partition) or per partition;\n"
    "                          a list of P:O replays only the partitions it names\n"
    "  --from-time TIME        start at the first record whose Kafka timestamp is at\n"
    "                          or after TIME (the broker's offsets-for-times)\n"
    "  --to-end                stop at the high watermark seen at start (default)\n"
    "  --to-offset O|P:O,..    stop before offset O\n"
    "  --to-time TIME          stop before the first record at or after TIME\n"
    "  --partitions P[,P..]    only these partitions\n"
    "  --input FILE            JSON lines instead of the topic ('-' is stdin); records\n"
    "                          are placed in partitions by user id as a producer\n"
    "                          keyed by user id would have placed them\n"
    "  --file-partitions N     partitions for --input (default: input.topic's count if\n"
    "                          a broker answers within 5 s, else 1)\n"
    "  --partitioner NAME      how --input places records: consistent_random\n"
    "                          (librdkafka's and kcat's default; the default here),\n"
    "                          murmur2_random (the Java client's default), fnv1a_random\n"
    "\n"
    "Output:\n"
    "  --output FILE           triggers as JSON lines, '-' is stdout (default -)\n"
    "  --output-topic TOPIC    produce triggers to TOPIC instead, each with a\n"
    "                          cuepoint-replay header carrying the replay id\n"
    "  --allow-live-topic      needed for --output-topic to be trigger.topic: the\n"
    "                          live senders would deliver the replay's triggers\n"
    "  --decisions FILE        with policies, each trigger's decision as JSON lines\n"
    "                          (default <replay state dir>/decisions.jsonl); never\n"
    "                          the live decisions topic\n"
    "  --dead-letters FILE     bad records as JSON lines (default\n"
    "                          <replay state dir>/dead-letters.jsonl); never the live\n"
    "                          dead-letter topic\n"
    "  --replay-id ID          the replay's id (default replay-<UTC time>-<pid>)\n"
    "  --stats FILE            also write the summary as JSON to FILE\n"
    "  --quiet                 no progress and no summary on stderr\n"
    "\n"
    "Journeys and time:\n"
    "  --machines DIR          journey files to replay with (default machines.dir)\n"
    "  --only NAME             run just the machine called NAME\n"
    "  --policies FILE         the message policies to decide with (default: the\n"
    "                          config's 'policies', like the live run)\n"
    "  --since-trigger-time T  replay everything (state is rebuilt from all of it)\n"
    "                          but write only triggers whose time is at or after T\n"
    "  --advance-to TIME|now   at the end, move every partition's time to TIME so\n"
    "                          timers due by then fire\n"
    "\n"
    "State:\n"
    "  --state-dir DIR         the replay's state directory, kept; must be new or\n"
    "                          empty (default <state.dir>-<replay id>, whose store\n"
    "                          is removed at the end, its dead letters and\n"
    "                          decisions files kept when not empty)\n"
    "  --seed-state DIR        replay every partition of the topic into DIR, for a\n"
    "                          live instance to start from (state.dir=DIR): after a\n"
    "                          bad deploy, the state rebuilt with fixed journeys.\n"
    "                          With changelog.enabled the seeded state is also\n"
    "                          written to the changelog (users it no longer has\n"
    "                          tombstoned), so instances restoring from it get it;\n"
    "                          refused while the live group is active\n"
    "  --config FILE, --set KEY=VALUE   as for 'cuepoint run'\n"
    "\n"
    "Times are RFC 3339 or epoch ms. A progress line goes to stderr when it is a\n"
    "terminal, JSON log lines otherwise; a summary at the end.\n"
    "\n"
    "Exit status: 0 done (dead letters included), 64 usage (also a state dir that\n"
    "is not empty, or the live trigger topic without --allow-live-topic), 66 input\n"
    "missing, 69 no broker answered or a delivery failed, 73/74 state or output\n"
    "not writable, 75 --seed-state refused: the live group is active, 78\n"
    "configuration or machines, 130/143 stopped by a signal\n"
    "(what was replayed so far is committed in the state directory).\n";

typedef struct replay_args {
    const char *input, *output, *output_topic, *dead, *only, *stats, *replay_id, *seed, *decisions;
    const char *partitioner;
    bool allow_live, quiet, state_dir_set, file_partitions_set;
    bool temp_state; /* the default state directory: its store goes at the end */
    size_t file_partitions;
    int64_t since_ms, advance_ms;
    cue_replay_range range;
} replay_args;

/* "O" or "P:O,P:O..." into points. */
static int parse_points(const char *v, cue_replay_point *pts, size_t *n)
{
    *n = 0;
    const char *p = v;
    while (*p) {
        if (*n == CUE_REPLAY_POINTS_MAX) return -1;
        char *end;
        errno = 0;
        long long a = strtoll(p, &end, 10);
        if (end == p || errno || a < 0) return -1;
        cue_replay_point pt = {.partition = -1, .offset = a};
        if (*end == ':') {
            const char *q = end + 1;
            long long b = strtoll(q, &end, 10);
            if (end == q || errno || b < 0 || a > INT32_MAX) return -1;
            pt = (cue_replay_point){.partition = (int32_t)a, .offset = b};
        }
        pts[(*n)++] = pt;
        if (*end == ',')
            end++;
        else if (*end != '\0')
            return -1;
        p = end;
    }
    return *n > 0 ? 0 : -1;
}

static int parse_partitions(const char *v, int32_t *out, size_t *n)
{
    cue_replay_point pts[CUE_REPLAY_POINTS_MAX];
    if (parse_points(v, pts, n) != 0) return -1;
    for (size_t i = 0; i < *n; i++) {
        if (pts[i].partition >= 0 || pts[i].offset > INT32_MAX) return -1;
        out[i] = (int32_t)pts[i].offset;
    }
    return 0;
}

static int now_ms(int64_t *ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    *ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    return 0;
}

static int time_opt(args *a, const char *name, int64_t *out, bool allow_now, bool *matched)
{
    const char *v = NULL;
    *matched = cli_opt_value(a, name, &v);
    if (!*matched || a->bad) return 0;
    if (allow_now && strcmp(v, "now") == 0) return now_ms(out);
    if (cli_parse_time(v, out) != 0) {
        cli_error("replay", "EUSAGE", "%s: '%s' is not an RFC 3339 time or epoch ms%s", name, v,
                  allow_now ? " or 'now'" : "");
        return EX_USAGE;
    }
    return 0;
}

static int replay_opt(args *a, replay_args *ra)
{
    const char *arg = a->argv[a->i], *v = NULL;
    bool m = false;
    cue_replay_range *r = &ra->range;
    static const struct {
        const char *name;
        size_t off;
    } strs[] = {{"--input", offsetof(replay_args, input)},
                {"--output", offsetof(replay_args, output)},
                {"--output-topic", offsetof(replay_args, output_topic)},
                {"--dead-letters", offsetof(replay_args, dead)},
                {"--only", offsetof(replay_args, only)},
                {"--stats", offsetof(replay_args, stats)},
                {"--replay-id", offsetof(replay_args, replay_id)},
                {"--seed-state", offsetof(replay_args, seed)},
                {"--partitioner", offsetof(replay_args, partitioner)},
                {"--decisions", offsetof(replay_args, decisions)}};
    for (size_t i = 0; i < sizeof strs / sizeof *strs; i++)
        if (cli_opt_value(a, strs[i].name, (const char **)((char *)ra + strs[i].off)))
            return a->bad ? EX_USAGE : 0;
    if (strcmp(arg, "--from-beginning") == 0) {
        r->from = CUE_REPLAY_BEGINNING;
        return 0;
    }
    if (strcmp(arg, "--to-end") == 0) {
        r->to = CUE_REPLAY_END;
        return 0;
    }
    if (strcmp(arg, "--allow-live-topic") == 0 || strcmp(arg, "--quiet") == 0) {
        *(arg[2] == 'a' ? &ra->allow_live : &ra->quiet) = true;
        return 0;
    }
    if (cli_opt_value(a, "--from-offset", &v) || cli_opt_value(a, "--to-offset", &v)) {
        bool from = strncmp(arg, "--from", 6) == 0;
        if (a->bad) return EX_USAGE;
        if (parse_points(v, from ? r->from_points : r->to_points,
                         from ? &r->n_from_points : &r->n_to_points) != 0)
            return cli_usage_error("replay", "'%s' is not O or P:O[,P:O...]", v);
        *(from ? &r->from : &r->to) = CUE_REPLAY_OFFSET;
        return 0;
    }
    if (cli_opt_value(a, "--partitions", &v)) {
        if (a->bad) return EX_USAGE;
        if (parse_partitions(v, r->only, &r->n_only) != 0)
            return cli_usage_error("replay", "--partitions: '%s' is not P[,P...]", v);
        return 0;
    }
    int rc = cli_size_opt(a, "--file-partitions", &ra->file_partitions, &m);
    if (m) {
        ra->file_partitions_set = true;
        if (rc == 0 && !a->bad && (ra->file_partitions < 1 || ra->file_partitions > 100000))
            return cli_usage_error("replay", "--file-partitions: '%s' is not 1..100000",
                                   a->argv[a->i]);
        return rc ? rc : a->bad ? EX_USAGE : 0;
    }
    if ((rc = time_opt(a, "--from-time", &r->from_time_ms, false, &m)) != 0 || m) {
        if (m) r->from = CUE_REPLAY_TIME;
        return rc ? rc : a->bad ? EX_USAGE : 0;
    }
    if ((rc = time_opt(a, "--to-time", &r->to_time_ms, false, &m)) != 0 || m) {
        if (m) r->to = CUE_REPLAY_TIME;
        return rc ? rc : a->bad ? EX_USAGE : 0;
    }
    if ((rc = time_opt(a, "--since-trigger-time", &ra->since_ms, false, &m)) != 0 || m)
        return rc ? rc : a->bad ? EX_USAGE : 0;
    if ((rc = time_opt(a, "--advance-to", &ra->advance_ms, true, &m)) != 0 || m)
        return rc ? rc : a->bad ? EX_USAGE : 0;
    return cli_usage_error("replay", "unknown option '%s'", arg);
}

/* A replay must start from empty state: an existing store holds positions
 * and users of another run, and replaying over them would skip records. */
static bool dir_empty(const char *path)
{
    DIR *d = opendir(path);
    if (d == NULL) return errno == ENOENT;
    struct dirent *e;
    bool empty = true;
    while (empty && (e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) empty = false;
    closedir(d);
    return empty;
}

static bool same_dir(const char *a, const char *b)
{
    char ra[PATH_MAX], rb[PATH_MAX];
    if (realpath(a, ra) == NULL || realpath(b, rb) == NULL) return strcmp(a, b) == 0;
    return strcmp(ra, rb) == 0;
}

/* The rules that keep a replay away from the live pipeline and its state. */
static int check_safety(const cue_config *live, const cue_config *cfg, const replay_args *ra)
{
    if (ra->output_topic) {
        if (strcmp(ra->output_topic, live->input_topic) == 0)
            return cli_usage_error("replay", "--output-topic %s is the input topic",
                                   ra->output_topic);
        if (strcmp(ra->output_topic, live->trigger_topic) == 0 && !ra->allow_live)
            return cli_usage_error("replay",
                                   "--output-topic %s is the live trigger.topic: its senders "
                                   "would deliver these triggers; add --allow-live-topic if that "
                                   "is meant",
                                   ra->output_topic);
        if (ra->output && strcmp(ra->output, "-") != 0)
            return cli_usage_error("replay", "%s",
                                   "--output and --output-topic exclude each other");
    }
    if (same_dir(cfg->state_dir, live->state_dir))
        return cli_usage_error("replay",
                               "the replay's state directory %s is the live state.dir; give "
                               "--state-dir or --seed-state another one",
                               cfg->state_dir);
    if (!dir_empty(cfg->state_dir))
        return cli_usage_error("replay",
                               "state directory %s is not empty: a replay starts from empty "
                               "state (remove it or choose another)",
                               cfg->state_dir);
    if (ra->seed) {
        if (ra->input)
            return cli_usage_error("replay", "%s",
                                   "--seed-state needs the topic as source: a live instance "
                                   "resumes at the topic's offsets, which a file does not have");
        if (ra->range.n_only || ra->range.from != CUE_REPLAY_BEGINNING || ra->only)
            return cli_usage_error("replay", "%s",
                                   "--seed-state rebuilds every partition from the beginning "
                                   "with every machine: drop --partitions, --from-* and --only");
    }
    return 0;
}

/* How long leaving the group after a check may take. */
#define LEAVE_TIMEOUT_MS 10000

/* Refused (EX_TEMPFAIL) while the live group is active: a seed written to
 * the changelog under a running instance would be mixed with its records.
 * Asked before the replay, so that a long one is not wasted, of a cluster
 * that can describe groups (joining here would make the join that holds
 * the group while the changelog is written wait for this member's
 * departure on the mock); checked for sure by that join (seed_changelog). */
static int seed_group_check(const cue_config *cfg, cue_err *err)
{
    cue_kafka *k = NULL;
    cue_kafka_handler h = {0};
    int rc = cue_kafka_open_consumer(&k, cfg, &h, err);
    if (rc == 0) rc = cli_group_members_check(k, cfg, err);
    cue_kafka_close(k, 0);
    if (rc == CUE_EVERSION) {
        cue_log(CUE_LOG_INFO, "the group's members are checked when the changelog is written",
                "s:group", cfg->application_id, "s:why", err->msg, NULL);
        return 0;
    }
    if (rc == CLI_GROUP_ACTIVE) {
        cli_error("replay", "EUNAVAILABLE", "refused: --seed-state rewrites the changelog: %s",
                  err->msg);
        return EX_TEMPFAIL;
    }
    return rc == 0 ? 0 : cli_fail("replay", rc, err);
}

/* Puts each partition's changelog position in the seeded store: in line
 * with the changelog's new end, an instance on it restores nothing. */
static int seed_meta(cue_store *store, const cli_changelog *c, int32_t n, cue_err *err)
{
    int64_t now;
    now_ms(&now);
    for (int32_t i = 0; i < n; i++) {
        cue_store_meta m = {.input_offset = 0, .changelog_offset = -1, .stream_time_ms = INT64_MIN};
        int rc = cue_store_meta_get(store, (uint32_t)i, &m, err);
        if (rc != 0 && rc != CUE_ENOTFOUND) return rc;
        m.changelog_offset = cli_changelog_end(c, i);
        m.synced_ms = now;
        cue_store_batch_meta_put(store, (uint32_t)i, &m);
    }
    cue_err_clear(err);
    return cue_store_batch_commit(store, true, err);
}

/* Writes the seeded state to the changelog (cli_changelog.c) with the group
 * held, so that an instance restoring from it, on any machine, gets the
 * seeded state and not the one it replaces. An exit status. */
static int seed_changelog(const cue_config *cfg, bool quiet, cue_err *err)
{
    cue_kafka_probe probe = {0};
    cli_changelog *c = NULL;
    cue_store *store = NULL;
    int32_t n = 0;
    uint64_t tombstones = 0;
    int rc = cli_group_hold(&probe, cfg, &n, err);
    if (rc == 0) rc = cue_store_open(&store, cfg->state_dir, &(cue_store_opts){0}, err);
    if (rc == 0) rc = cli_changelog_open(&c, cfg, n, err);
    if (rc == 0) rc = cli_changelog_read(c, NULL, err);
    for (int32_t i = 0; i < n && rc == 0; i++) {
        cue_store_meta m = {.input_offset = 0, .changelog_offset = -1, .stream_time_ms = INT64_MIN};
        rc = cue_store_meta_get(store, (uint32_t)i, &m, err);
        if (rc == CUE_ENOTFOUND) rc = 0;
        if (rc == 0)
            rc = cli_changelog_put(c, i, CLI_CHANGELOG_STORE, store, m.input_offset,
                                   m.stream_time_ms, err);
        if (rc == 0) tombstones += cli_changelog_tombstones(c, i);
    }
    if (rc == 0) rc = cli_changelog_commit(c, err);
    if (rc == 0) rc = seed_meta(store, c, n, err);
    cli_changelog_close(c);
    cue_store_close(store);
    if (probe.k) cue_kafka_probe_leave(&probe, LEAVE_TIMEOUT_MS);
    if (rc == CLI_GROUP_ACTIVE) {
        cli_error("replay", "EUNAVAILABLE",
                  "refused: %s; the seeded state directory is kept, but the changelog is not "
                  "written: run the seed again with the group stopped",
                  err->msg);
        return EX_TEMPFAIL;
    }
    if (rc != 0) {
        cue_err_prefix(err,
                       "writing the seeded state to %s (run the seed again before starting "
                       "the group)",
                       cue_config_changelog_topic(cfg));
        return cli_fail("replay", rc, err);
    }
    if (!quiet)
        fprintf(stderr,
                "  changelog %s rewritten with the seeded state (%llu users removed from it): "
                "instances restoring from it get the seeded state\n",
                cue_config_changelog_topic(cfg), (unsigned long long)tombstones);
    return 0;
}

static volatile sig_atomic_t replay_signal;
static void on_replay_signal(int sig)
{
    replay_signal = sig;
}

/* The input topic's partition count for a file replay, when a broker says. */
static int32_t topic_partitions(const cue_config *cfg)
{
    cue_kafka *k = NULL;
    cue_err err = {0};
    int32_t n = 0;
    cue_kafka_handler h = {0};
    int64_t wait = cfg->startup_timeout_ms < FILE_PARTITIONS_WAIT_MS ? cfg->startup_timeout_ms
                                                                     : FILE_PARTITIONS_WAIT_MS;
    if (cue_kafka_open_replay(&k, cfg, &h, "partition-count", NULL, &err) == 0 &&
        cue_kafka_wait_ready(k, wait, &n, &err) == 0) {
        cue_kafka_close(k, 0);
        cue_log(CUE_LOG_INFO, "placing the file's records like the input topic", "s:topic",
                cfg->input_topic, "i:partitions", (int64_t)n, NULL);
        return n;
    }
    cue_kafka_close(k, 0);
    cue_log(CUE_LOG_WARN,
            "the input topic's partition count is unknown: replaying the file as one partition "
            "(give --file-partitions N to match a live run over N partitions)",
            "s:error", err.msg, NULL);
    return 1;
}

static void summary(const replay_args *ra, const cue_config *cfg, const cue_machines *ms,
                    const cue_replay_result *res, const char *replay_id, const char *dead_path)
{
    cue_filemode_opts fo = {.cfg = cfg, .ms = ms};
    cue_filemode_summary(stderr, &fo, &res->sum);
    fprintf(stderr, "  replay %s: %d partitions of %s%s; state in %s%s\n", replay_id,
            (int)res->partitions, ra->input ? ra->input : cfg->input_topic,
            ra->input ? " (file)" : "", cfg->state_dir,
            ra->temp_state ? " (removed now: --state-dir keeps one)" : "");
    if (res->before_since)
        fprintf(stderr, "  %llu triggers before --since-trigger-time not written\n",
                (unsigned long long)res->before_since);
    if (ra->output_topic)
        fprintf(stderr, "  triggers produced to %s with header cuepoint-replay=%s\n",
                ra->output_topic, replay_id);
    if (res->sum.task.dead_letters) fprintf(stderr, "  dead letters written to %s\n", dead_path);
    if (res->stopped) fprintf(stderr, "  stopped early by a signal\n");
    if (ra->seed && !res->stopped)
        fprintf(stderr,
                "  seeded %s: with the live group stopped, start 'cuepoint run' with "
                "state.dir=%s\n",
                cfg->state_dir, cfg->state_dir);
}

/* The files a replay reads and writes. */
typedef struct replay_files {
    FILE *in, *out, *dead, *decisions;
    char dead_path[CUE_PATH_MAX + 32], dec_path[CUE_PATH_MAX + 32];
} replay_files;

/* The input file, when the replay reads one; an exit status on failure. */
static int open_input(const cue_config *cfg, replay_args *ra, replay_files *f, cue_err *err)
{
    if (ra->input == NULL) return 0;
    f->in = strcmp(ra->input, "-") == 0 ? stdin : fopen(ra->input, "r");
    if (f->in == NULL) {
        cue_err_set(err, CUE_ENOTFOUND, "cannot open input '%s': %s", ra->input, strerror(errno));
        return cli_fail("replay", CUE_ENOTFOUND, err);
    }
    if (!ra->file_partitions_set) ra->file_partitions = (size_t)topic_partitions(cfg);
    return 0;
}

/* The state directory, the output, the dead letters and, with a policy,
 * the decisions; an exit status on failure. */
static int open_outputs(const cue_config *cfg, const replay_args *ra, bool policy, replay_files *f,
                        cue_err *err)
{
    if (cue_store_dir_create(cfg->state_dir, err) != 0) {
        cli_fail("replay", CUE_EIO, err);
        return EX_CANTCREAT;
    }
    snprintf(f->dead_path, sizeof f->dead_path, "%s/dead-letters.jsonl", cfg->state_dir);
    if (ra->dead) snprintf(f->dead_path, sizeof f->dead_path, "%s", ra->dead);
    f->out = ra->output_topic || strcmp(ra->output ? ra->output : "-", "-") == 0
                 ? stdout
                 : fopen(ra->output, "w");
    f->dead = fopen(f->dead_path, "a");
    snprintf(f->dec_path, sizeof f->dec_path, "%s/decisions.jsonl", cfg->state_dir);
    if (ra->decisions) snprintf(f->dec_path, sizeof f->dec_path, "%s", ra->decisions);
    if (policy && f->out && f->dead && (f->decisions = fopen(f->dec_path, "a")) == NULL) {
        cue_err_set(err, CUE_EIO, "cannot open %s: %s", f->dec_path, strerror(errno));
        cli_fail("replay", CUE_EIO, err);
        return EX_CANTCREAT;
    }
    if (f->out == NULL || f->dead == NULL) {
        cue_err_set(err, CUE_EIO, "cannot open %s: %s", f->out ? f->dead_path : ra->output,
                    strerror(errno));
        cli_fail("replay", CUE_EIO, err);
        return EX_CANTCREAT;
    }
    return 0;
}

static void close_files(replay_files *f)
{
    if (f->decisions) fclose(f->decisions);
    if (f->dead) fclose(f->dead);
    if (f->out && f->out != stdout)
        fclose(f->out);
    else if (f->out)
        fflush(f->out);
    if (f->in && f->in != stdin) fclose(f->in);
}

/* The replay itself, its files open: runs it, says how it went (summary,
 * --stats) and returns the exit status. */
static int replay_files_run(cue_config *cfg, const replay_args *ra, const char *replay_id,
                            const cue_machines *ms, const cue_policy *pol, int partitioner,
                            const replay_files *f, cue_err *err)
{
    struct sigaction sa = {.sa_handler = on_replay_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    cue_replay_opts o = {.cfg = cfg,
                         .ms = ms,
                         .policy = pol,
                         .decisions = f->decisions,
                         .replay_id = replay_id,
                         .in = f->in,
                         .input_name = ra->input,
                         .file_partitions = (int32_t)ra->file_partitions,
                         .partitioner = partitioner,
                         .range = ra->range,
                         .out = f->out,
                         .output_topic = ra->output_topic,
                         .dead = f->dead,
                         .since_ms = ra->since_ms,
                         .advance_to_ms = ra->advance_ms,
                         .progress_tty = !ra->quiet && isatty(2),
                         .quiet = ra->quiet,
                         .stop = &replay_signal};
    int rc = cli_reader_clock(&o.clock_ms, err);
    if (rc != 0) return cli_fail("replay", rc, err);
    cue_replay_result res;
    rc = cue_replay_run(&o, &res, err);
    if (!ra->quiet) summary(ra, cfg, ms, &res, replay_id, f->dead_path);
    if (ra->stats) {
        cue_filemode_opts fo = {.cfg = cfg, .ms = ms};
        FILE *sf = fopen(ra->stats, "w");
        if (sf) {
            cue_filemode_summary_json(sf, &fo, &res.sum);
            fclose(sf);
        }
    }
    if (rc != 0) return cli_fail("replay", rc, err);
    return res.stopped ? 128 + (int)replay_signal : 0;
}

static int replay_run(const cue_config *live, cue_config *cfg, replay_args *ra,
                      const char *replay_id, cue_err *err)
{
    cue_machines *ms = NULL;
    cue_policy *pol = NULL;
    replay_files f = {0};
    int rc = check_safety(live, cfg, ra);
    if (rc == 0 && ra->seed && cfg->changelog) rc = seed_group_check(cfg, err);
    if (rc != 0) return rc;
    rc = cue_machines_load(&ms, cfg->machines_dir, ra->only, err);
    if (rc != 0) return cli_fail("replay", rc, err);
    if (cfg->policies[0] && (rc = cue_policy_load(&pol, cfg->policies, ms, err)) != 0) {
        rc = cli_fail("replay", rc, err);
        goto free_machines;
    }
    int partitioner =
        cue_kafka_partitioner_find(ra->partitioner ? ra->partitioner : "consistent_random");
    if (partitioner < 0) {
        rc = cli_usage_error("replay", "--partitioner: unknown '%s'", ra->partitioner);
        goto free_machines;
    }
    rc = open_input(cfg, ra, &f, err);
    if (rc == 0) rc = open_outputs(cfg, ra, pol != NULL, &f, err);
    if (rc == 0) rc = replay_files_run(cfg, ra, replay_id, ms, pol, partitioner, &f, err);
    close_files(&f);
    if (rc == 0 && ra->seed && cfg->changelog) rc = seed_changelog(cfg, ra->quiet, err);
free_machines:
    cue_policy_free(pol);
    cue_machines_free(ms);
    /* Past check_safety the directory is this replay's own. */
    if (ra->temp_state) cli_remove_store(cfg->state_dir);
    return rc;
}

int cli_cmd_replay(int argc, char **argv)
{
    if (cli_wants_help(argc, argv)) {
        fputs(replay_help, stdout);
        return 0;
    }
    cue_config cfg;
    cue_config_defaults(&cfg);
    cue_err err = {0};
    args a = {.argc = argc, .argv = argv, .cmd = "replay"};
    replay_args ra = {.since_ms = INT64_MIN, .advance_ms = INT64_MIN};
    const char *state_dir = NULL;
    for (a.i = 2; a.i < argc; a.i++) {
        /* --state-dir names the replay's directory, not the live one. */
        if (cli_opt_value(&a, "--state-dir", &state_dir)) {
            if (a.bad) return EX_USAGE;
            continue;
        }
        int rc = cli_common_opt(&a, &cfg, &err);
        if (rc < 0) return -rc;
        if (rc == 1) continue;
        rc = replay_opt(&a, &ra);
        if (rc != 0) return rc;
    }
    if (state_dir && ra.seed)
        return cli_usage_error("replay", "%s", "--state-dir and --seed-state exclude each other");
    char id[96];
    if (ra.replay_id == NULL) {
        time_t t = time(NULL);
        struct tm tm;
        gmtime_r(&t, &tm);
        char ts[32];
        strftime(ts, sizeof ts, "%Y%m%dT%H%M%SZ", &tm);
        snprintf(id, sizeof id, "replay-%s-%ld", ts, (long)getpid());
    } else {
        snprintf(id, sizeof id, "%s", ra.replay_id);
    }
    cue_config live = cfg;
    char dir[CUE_PATH_MAX];
    if (ra.seed)
        snprintf(dir, sizeof dir, "%s", ra.seed);
    else if (state_dir)
        snprintf(dir, sizeof dir, "%s", state_dir);
    else
        snprintf(dir, sizeof dir, "%.900s-%.100s", live.state_dir, id);
    ra.temp_state = !ra.seed && !state_dir;
    if (cue_config_set(&cfg, "state.dir", dir, &err) != 0)
        return cli_fail("replay", CUE_ECONFIG, &err);
    return replay_run(&live, &cfg, &ra, id, &err);
}
