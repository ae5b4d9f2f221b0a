/* `cuepoint report`: reads a history (events, decisions, triggers: files or
 * topics) into the report module and writes its HTML and JSON; --compare
 * sets two runs over the same events side by side. */
#include "cuepoint/cli.h"

#include "cuepoint/buf.h"
#include "cuepoint/config.h"
#include "cuepoint/kafka.h"
#include "cuepoint/log.h"
#include "cuepoint/report.h"

#include "cli_int.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

/* Progress: a terminal line every second, a log line every ten (as replay). */
#define PROGRESS_TTY_NS 1000000000ull
#define PROGRESS_LOG_NS 10000000000ull
/* Records served per turn from a topic, and the wait on an empty queue. */
#define CONSUME_BATCH 4096
#define IDLE_WAIT_MS  200

static const char report_help[] =
    "Usage: cuepoint report --events FILE [--decisions FILE] [--triggers FILE] [options]\n"
    "       cuepoint report --events FILE --compare A B [options]\n"
    "\n"
    "Measures what the journeys did over a history: goal completion (onboarding\n"
    "within 7 days, ...) by sign-up cohort and user attribute, opt-outs after\n"
    "onboarding and the messages they follow, each experiment's lift over its\n"
    "holdout with a sample-ratio check, messages per user per week, retention by\n"
    "cohort. Writes a self-contained HTML page (no script, nothing fetched) and\n"
    "the same numbers as JSON. See docs/report.md.\n"
    "\n"
    "History (decisions and triggers as `cuepoint file` or `replay` wrote them):\n"
    "  --events FILE           the input events, JSON lines ('-' is stdin)\n"
    "  --events-topic          or input.topic, read from its start to its end\n"
    "                          (outside any group, like replay; needs --config)\n"
    "  --decisions FILE        the decision records (policies on): messages are\n"
    "                          their sends, experiments and holdouts come from them\n"
    "  --decisions-topic       or decisions.topic, read the same way\n"
    "  --triggers FILE         the trigger records; without decisions, the messages\n"
    "  --triggers-topic        or trigger.topic, read the same way\n"
    "  --until TIME            the history's end (default: the latest time read);\n"
    "                          records after it are left out\n"
    "\n"
    "What-if:\n"
    "  --compare A B           two runs over the same --events, each TRIGGERS or\n"
    "                          TRIGGERS,DECISIONS (e.g. two `cuepoint replay --input`\n"
    "                          with other --machines or --policies): what changes in\n"
    "                          messages per user-week, each trigger's count,\n"
    "                          suppressions by reason, and for which cohorts\n"
    "  --labels A,B            their names on the page (default: the file names)\n"
    "\n"
    "Output:\n"
    "  --html FILE             the page (default report.html; '-' is stdout)\n"
    "  --json FILE             the numbers ('-' is stdout)\n"
    "  --quiet                 no progress and no summary on stderr\n"
    "\n"
    "Settings:\n"
    "  --report-config FILE    goals, cohort attributes, windows\n"
    "                          (schemas/report.schema.json; deploy/report.json)\n"
    "  --policies FILE         the policy file, for each experiment's configured\n"
    "                          holdout share (default: the report config's, else\n"
    "                          the config's 'policies')\n"
    "  --config FILE, --set KEY=VALUE   where events keep their user, type and time\n"
    "                          (event.*), and the Kafka settings for the topics\n"
    "\n"
    "Memory grows with the number of users (about 100 bytes each) and nothing\n"
    "else; progress goes to stderr like replay's.\n"
    "\n"
    "Exit status: 0, 64 usage, 65 no usable record in an input, 66 an input\n"
    "missing, 69 no broker answered, 73 output not writable, 78 configuration.\n";

typedef struct report_args {
    const char *events, *decisions, *triggers, *html, *json, *rc_path, *policies, *labels;
    const char *cmp[2];
    bool events_topic, decisions_topic, triggers_topic, quiet, compare;
    int64_t until_ms;
} report_args;

/* What one read goes through: the report and how to call it, progress. */
typedef struct feed {
    cue_report *r;
    int (*fn)(cue_report *r, const char *rec, size_t len);
    const char *what, *name;
    /* Progress in bytes of a file, or in records of a topic. */
    uint64_t records, bad, started_ns, last_ns, total, done;
    bool by_records;
    bool tty, quiet, shown;
    int fatal;
    int32_t active; /* topic partitions not at their end */
    int64_t *ends;  /* topic: each partition's end offset */
    int32_t n_parts;
} feed;

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void progress(feed *f, bool final)
{
    if (f->quiet) return;
    uint64_t now = mono_ns();
    if (!final && now - f->last_ns < (f->tty ? PROGRESS_TTY_NS : PROGRESS_LOG_NS)) return;
    if (final && !f->shown) return;
    f->last_ns = now;
    f->shown = true;
    double secs = (double)(now - f->started_ns) / 1e9,
           rate = secs > 0 ? (double)f->records / secs : 0;
    double done = f->total ? (double)f->done / (double)f->total : -1;
    size_t users = cue_report_users(f->r), mb = cue_report_bytes(f->r) >> 20;
    if (f->tty) {
        fprintf(stderr, "\rreport: %s %llu", f->what, (unsigned long long)f->records);
        if (done >= 0) fprintf(stderr, " (%.0f%%)", 100 * done);
        fprintf(stderr, ", %.0f/s, %zu users, %zu MiB   %s", rate, users, mb, final ? "\n" : "");
        return;
    }
    cue_log(CUE_LOG_INFO, final ? "report read everything" : "report progress", "s:input", f->what,
            "u:records", f->records, "d:records_per_second", rate, "d:done", done, "u:users",
            (uint64_t)users, "u:bytes", (uint64_t)cue_report_bytes(f->r), NULL);
}

static void take(feed *f, const char *rec, size_t len)
{
    f->records++;
    f->done += f->by_records ? 1 : len + 1;
    int rc = f->fn(f->r, rec, len);
    if (rc == CUE_ENOMEM || rc == CUE_ELIMIT) f->fatal = rc;
    if (rc != 0) f->bad++;
    if ((f->records & 0xfff) == 0) progress(f, false);
}

static int read_file(feed *f, cue_err *err)
{
    FILE *in = strcmp(f->name, "-") == 0 ? stdin : fopen(f->name, "r");
    if (in == NULL)
        return cue_err_set(err, CUE_ENOTFOUND, "cannot open %s '%s': %s", f->what, f->name,
                           strerror(errno));
    struct stat st;
    if (fstat(fileno(in), &st) == 0 && S_ISREG(st.st_mode)) f->total = (uint64_t)st.st_size;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    f->started_ns = f->last_ns = mono_ns();
    while ((n = getline(&line, &cap, in)) > 0 && f->fatal == 0) {
        size_t len = (size_t)n;
        while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            len--;
        if (len) take(f, line, len);
    }
    int rc = ferror(in) ? cue_err_set(err, CUE_EIO, "cannot read %s '%s': %s", f->what, f->name,
                                      strerror(errno))
                        : 0;
    free(line);
    if (in != stdin) fclose(in);
    progress(f, true);
    return rc;
}

/* ---- topics -------------------------------------------------------------- */

static void on_message(const cue_kafka_msg *m, void *ctx)
{
    feed *f = ctx;
    if (m->partition < 0 || m->partition >= f->n_parts || m->offset >= f->ends[m->partition])
        return;
    take(f, m->value, m->value_len);
    if (m->offset + 1 >= f->ends[m->partition]) {
        f->ends[m->partition] = -1; /* done */
        f->active--;
    }
}

static void on_end(int32_t partition, int64_t offset, void *ctx)
{
    feed *f = ctx;
    if (partition >= 0 && partition < f->n_parts && f->ends[partition] >= 0 &&
        offset >= f->ends[partition]) {
        f->ends[partition] = -1;
        f->active--;
    }
}

static void on_fatal(const char *why, void *ctx)
{
    feed *f = ctx;
    f->fatal = CUE_EUNAVAILABLE;
    cue_log(CUE_LOG_ERROR, why, "s:input", f->what, NULL);
}

/* Assigns every partition of the topic from its start; sets the ends. */
static int topic_plan(feed *f, cue_kafka *k, const cue_config *cfg, cue_err *err)
{
    int32_t n = 0;
    int rc = cue_kafka_wait_ready(k, cfg->startup_timeout_ms, &n, err);
    if (rc != 0) return rc;
    int32_t *ids = calloc((size_t)n + 1, sizeof *ids);
    int64_t *start = calloc((size_t)n + 1, sizeof *start);
    f->ends = calloc((size_t)n + 1, sizeof *f->ends);
    f->n_parts = n;
    if (ids == NULL || start == NULL || f->ends == NULL)
        rc = cue_err_set(err, CUE_ENOMEM, "out of memory");
    size_t used = 0;
    for (int32_t p = 0; rc == 0 && p < n; p++) {
        int64_t low, high;
        rc = cue_kafka_watermarks(k, p, cfg->startup_timeout_ms, &low, &high, err);
        f->ends[p] = high > low ? high : -1;
        f->total += high > low ? (uint64_t)(high - low) : 0;
        if (rc != 0 || high <= low) continue;
        ids[used] = p;
        start[used++] = low;
        f->active++;
    }
    if (rc == 0 && used) rc = cue_kafka_assign(k, ids, start, used, err);
    free(ids);
    free(start);
    return rc;
}

static int read_topic(feed *f, const cue_config *base, const char *topic, cue_err *err)
{
    cue_config *cfg = malloc(sizeof *cfg);
    if (cfg == NULL) return cue_err_set(err, CUE_ENOMEM, "out of memory");
    *cfg = *base;
    cue_config_set_input_topic(cfg, topic);
    char id[64];
    snprintf(id, sizeof id, "report-%ld", (long)getpid());
    cue_kafka_handler h = {.message = on_message, .fatal = on_fatal, .end = on_end, .ctx = f};
    cue_kafka *k = NULL;
    int rc = cue_kafka_open_replay(&k, cfg, &h, id, NULL, err);
    if (rc == 0) rc = topic_plan(f, k, cfg, err);
    f->started_ns = f->last_ns = mono_ns();
    f->by_records = true; /* the offsets say how many, not how large */
    while (rc == 0 && f->active > 0 && f->fatal == 0) {
        if (cue_kafka_consume(k, CONSUME_BATCH) < CONSUME_BATCH) {
            struct pollfd p = {.fd = cue_kafka_consumer_fd(k), .events = POLLIN};
            poll(&p, 1, IDLE_WAIT_MS);
            cue_kafka_drain_fd(p.fd);
        }
        progress(f, false);
    }
    if (rc == 0 && f->fatal == CUE_EUNAVAILABLE)
        rc = cue_err_set(err, CUE_EUNAVAILABLE, "reading topic %s failed (see the log)", topic);
    if (k) cue_kafka_close(k, 1000);
    progress(f, true);
    free(f->ends);
    f->ends = NULL;
    free(cfg);
    return rc;
}

/* ---- the command ----------------------------------------------------------- */

/* One input into the report: a file, a topic or nothing. */
static int feed_one(cue_report *r, int (*fn)(cue_report *, const char *, size_t), const char *what,
                    const char *file, const char *topic, const cue_config *cfg,
                    const report_args *ra, cue_err *err)
{
    if (file == NULL && topic == NULL) return 0;
    feed f = {.r = r,
              .fn = fn,
              .what = what,
              .name = file ? file : topic,
              .tty = isatty(2),
              .quiet = ra->quiet};
    int rc = file ? read_file(&f, err) : read_topic(&f, cfg, topic, err);
    if (rc == 0 && f.fatal == CUE_ELIMIT)
        rc = cue_err_set(err, CUE_ELIMIT, "%s: more than %d distinct journey and trigger names",
                         what, CUE_REPORT_TRIGGERS_MAX);
    else if (rc == 0 && f.fatal)
        rc = cue_err_set(err, f.fatal, "%s: out of memory after %zu users", what,
                         cue_report_users(r));
    if (rc == 0 && f.records == 0 && fn == cue_report_event)
        rc = cue_err_set(err, CUE_ENOTFOUND, "%s '%s': no record: no history to report on", what,
                         f.name);
    if (rc == 0 && f.records > 0 && f.bad == f.records)
        rc = cue_err_set(err, CUE_EPARSE, "%s '%s': none of its %llu records reads as one", what,
                         f.name, (unsigned long long)f.records);
    if (rc == 0 && f.bad && !ra->quiet)
        cue_log(CUE_LOG_WARN, "records that do not read were left out", "s:input", what,
                "u:records", f.records, "u:left_out", f.bad, NULL);
    return rc;
}

static int parse_args(int argc, char **argv, report_args *ra, cue_config *cfg, cue_err *err)
{
    args a = {.argc = argc, .argv = argv, .cmd = "report"};
    for (a.i = 2; a.i < argc && !a.bad; a.i++) {
        const char *v = NULL, *arg = argv[a.i];
        int rc = cli_common_opt(&a, cfg, err);
        if (rc < 0) return -rc;
        if (rc > 0) {
            if (strcmp(arg, "--policies") == 0 || strncmp(arg, "--policies=", 11) == 0)
                ra->policies = cfg->policies;
            continue;
        }
        if (cli_opt_value(&a, "--events", &ra->events) ||
            cli_opt_value(&a, "--decisions", &ra->decisions) ||
            cli_opt_value(&a, "--triggers", &ra->triggers) ||
            cli_opt_value(&a, "--html", &ra->html) || cli_opt_value(&a, "--json", &ra->json) ||
            cli_opt_value(&a, "--report-config", &ra->rc_path) ||
            cli_opt_value(&a, "--labels", &ra->labels))
            continue;
        if (cli_opt_value(&a, "--until", &v)) {
            if (!a.bad && cli_parse_time(v, &ra->until_ms) != 0)
                return cli_usage_error("report",
                                       "--until: '%s' is not an RFC 3339 time or epoch ms", v);
            continue;
        }
        if (strcmp(arg, "--compare") == 0) {
            if (a.i + 2 >= argc)
                return cli_usage_error("report", "%s needs two runs, A and B", arg);
            ra->compare = true;
            ra->cmp[0] = argv[++a.i];
            ra->cmp[1] = argv[++a.i];
            continue;
        }
        bool *flag = strcmp(arg, "--quiet") == 0             ? &ra->quiet
                     : strcmp(arg, "--events-topic") == 0    ? &ra->events_topic
                     : strcmp(arg, "--decisions-topic") == 0 ? &ra->decisions_topic
                     : strcmp(arg, "--triggers-topic") == 0  ? &ra->triggers_topic
                                                             : NULL;
        if (flag == NULL) return cli_usage_error("report", "unknown option '%s'", arg);
        *flag = true;
    }
    if (a.bad) return EX_USAGE;
    if ((ra->events != NULL) == ra->events_topic)
        return cli_usage_error("report", "%s", "give the events: --events FILE or --events-topic");
    if (ra->compare && (ra->decisions || ra->triggers || ra->decisions_topic || ra->triggers_topic))
        return cli_usage_error("report", "%s", "--compare takes the runs' files itself (A and B)");
    if ((ra->decisions && ra->decisions_topic) || (ra->triggers && ra->triggers_topic))
        return cli_usage_error("report", "%s", "a file or a topic, not both");
    return 0;
}

/* The report config, then the policy file's experiments. */
static int settings(const report_args *ra, const cue_config *cfg, cue_report_config *rc,
                    cue_err *err)
{
    cue_report_config_defaults(rc);
    if (ra->rc_path && cue_report_config_load(rc, ra->rc_path, err) != 0) return CUE_ECONFIG;
    const char *pol = ra->policies ? ra->policies : rc->policies[0] ? rc->policies : cfg->policies;
    if (pol && pol[0] && cue_report_policies_load(rc, pol, err) != 0) return CUE_ECONFIG;
    return 0;
}

static int write_out(const char *path, const cue_buf *b, const char *what, cue_err *err)
{
    FILE *f = strcmp(path, "-") == 0 ? stdout : fopen(path, "w");
    if (f == NULL)
        return cue_err_set(err, CUE_EIO, "cannot write %s '%s': %s", what, path, strerror(errno));
    fwrite(b->data, 1, b->len, f);
    int bad = f == stdout ? fflush(f) != 0 : fclose(f) != 0;
    return bad ? cue_err_set(err, CUE_EIO, "cannot write %s '%s': %s", what, path, strerror(errno))
               : 0;
}

/* "TRIGGERS[,DECISIONS]" into its two paths (the buffer holds them). */
static void split_run(const char *spec, char *buf, size_t cap, const char **trig, const char **dec)
{
    snprintf(buf, cap, "%s", spec);
    char *comma = strchr(buf, ',');
    *dec = NULL;
    if (comma) {
        *comma = '\0';
        *dec = comma + 1;
    }
    *trig = buf;
}

static void label_of(const char *path, char *out, size_t cap)
{
    const char *base = strrchr(path, '/');
    snprintf(out, cap, "%s", base ? base + 1 : path);
    char *dot = strstr(out, ".jsonl");
    if (dot) *dot = '\0';
}

static int feed_run(cue_report *r, const char *trig, const char *dec, const cue_config *cfg,
                    const report_args *ra, bool dec_topic, bool trig_topic, cue_err *err)
{
    cue_report_set_sources(r, ra->events ? ra->events : cfg->input_topic,
                           dec         ? dec
                           : dec_topic ? cue_config_decisions_topic(cfg)
                                       : NULL,
                           trig         ? trig
                           : trig_topic ? cfg->trigger_topic
                                        : NULL);
    int rc = feed_one(r, cue_report_decision, "decisions", dec,
                      dec_topic ? cue_config_decisions_topic(cfg) : NULL, cfg, ra, err);
    if (rc == 0)
        rc = feed_one(r, cue_report_trigger, "triggers", trig,
                      trig_topic ? cfg->trigger_topic : NULL, cfg, ra, err);
    return rc == 0 ? cue_report_finish(r, err) : rc;
}

static int outputs(const report_args *ra, cue_report *a, cue_report *b, const char *la,
                   const char *lb, cue_err *err)
{
    cue_buf out;
    cue_buf_init(&out, 1 << 16);
    int rc = 0;
    if (ra->json) {
        rc = b ? cue_report_compare_json(a, b, la, lb, &out) : cue_report_json(a, &out);
        if (rc == 0) rc = write_out(ra->json, &out, "the JSON", err);
    }
    const char *html = ra->html ? ra->html : ra->json ? NULL : "report.html";
    if (rc == 0 && html) {
        rc = b ? cue_report_compare_html(a, b, la, lb, &out) : cue_report_html(a, &out);
        if (rc == 0) rc = write_out(html, &out, "the page", err);
    }
    if (rc == 0 && !ra->quiet)
        fprintf(stderr, "report: %zu users, %zu MiB held%s%s%s%s\n", cue_report_users(a),
                (cue_report_bytes(a) + (b ? cue_report_bytes(b) : 0)) >> 20,
                html ? "; page in " : "", html ? html : "", ra->json ? "; JSON in " : "",
                ra->json ? ra->json : "");
    cue_buf_deinit(&out);
    return rc;
}

static int report_run(const report_args *ra, const cue_config *cfg, cue_err *err)
{
    cue_report_config *rcfg = malloc(sizeof *rcfg);
    cue_report *a = NULL, *b = NULL;
    if (rcfg == NULL) return cue_err_set(err, CUE_ENOMEM, "out of memory");
    int rc = settings(ra, cfg, rcfg, err);
    char buf[2][2 * CUE_PATH_MAX], la[128], lb[128];
    const char *trig[2] = {ra->triggers, NULL}, *dec[2] = {ra->decisions, NULL};
    for (int i = 0; ra->compare && i < 2; i++)
        split_run(ra->cmp[i], buf[i], sizeof buf[i], &trig[i], &dec[i]);
    bool decisions = dec[0] || ra->decisions_topic;
    if (rc == 0 && ra->compare && (dec[0] == NULL) != (dec[1] == NULL))
        rc = cue_err_set(err, CUE_EUSAGE, "--compare: give decisions for both runs or neither");
    cue_report_opts o = {.rc = rcfg, .cfg = cfg, .decisions = decisions, .until_ms = ra->until_ms};
    if (rc == 0) rc = cue_report_new(&a, &o, err);
    if (rc == 0)
        rc = feed_one(a, cue_report_event, "events", ra->events,
                      ra->events_topic ? cfg->input_topic : NULL, cfg, ra, err);
    if (rc == 0 && ra->compare) rc = cue_report_fork(&b, a, err);
    if (rc == 0)
        rc = feed_run(a, trig[0], dec[0], cfg, ra, ra->decisions_topic, ra->triggers_topic, err);
    if (rc == 0 && b) rc = feed_run(b, trig[1], dec[1], cfg, ra, false, false, err);
    if (rc == 0 && ra->compare) {
        label_of(trig[0], la, sizeof la);
        label_of(trig[1], lb, sizeof lb);
        const char *comma = ra->labels ? strchr(ra->labels, ',') : NULL;
        if (comma) {
            snprintf(la, sizeof la, "%.*s", (int)(comma - ra->labels), ra->labels);
            snprintf(lb, sizeof lb, "%s", comma + 1);
        }
    }
    if (rc == 0) rc = outputs(ra, a, b, la, lb, err);
    cue_report_free(a);
    cue_report_free(b);
    free(rcfg);
    return rc;
}

int cli_cmd_report(int argc, char **argv)
{
    if (cli_wants_help(argc, argv)) {
        fputs(report_help, stdout);
        return 0;
    }
    cue_config *cfg = malloc(sizeof *cfg);
    if (cfg == NULL) return EX_OSERR;
    cue_config_defaults(cfg);
    cfg->policies[0] = '\0';
    cue_err err = {0};
    report_args ra = {.until_ms = INT64_MIN};
    int rc = parse_args(argc, argv, &ra, cfg, &err);
    if (rc == EX_CONFIG) {
        free(cfg);
        return cli_fail("report", CUE_ECONFIG, &err);
    }
    if (rc == 0) {
        rc = report_run(&ra, cfg, &err);
        if (rc != 0) {
            cli_error("report", cue_err_name(rc), "%s", err.msg);
            rc = rc == CUE_EIO ? EX_CANTCREAT : cli_exit_for(rc);
        }
    }
    free(cfg);
    return rc;
}
