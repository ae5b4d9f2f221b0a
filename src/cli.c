/* The command line: option parsing, help texts, exit codes, subcommands. */
/* nftw() is an X/Open interface; the rest of cuepoint needs POSIX only. */
#define _XOPEN_SOURCE 700
#include "cuepoint/cli.h"

#include "cuepoint/buf.h"
#include "cuepoint/check.h"
#include "cuepoint/codec.h"
#include "cuepoint/config.h"
#include "cuepoint/filemode.h"
#include "cuepoint/gen.h"
#include "cuepoint/log.h"
#include "cuepoint/machine.h"
#include "cuepoint/migrate.h"
#include "cuepoint/policy.h"
#include "cuepoint/store.h"
#include "cuepoint/timefmt.h"
#include "cuepoint/trigger.h"
#include "cuepoint/version.h"

#include "cli_int.h"
#include "embedded.h"

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <string.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <unistd.h>

/* ---- options ----------------------------------------------------------- */

static bool is_opt(const char *a, const char *name, const char **inline_val)
{
    size_t n = strlen(name);
    if (strncmp(a, name, n) != 0) return false;
    if (a[n] == '\0') {
        *inline_val = NULL;
        return true;
    }
    if (a[n] == '=') {
        *inline_val = a + n + 1;
        return true;
    }
    return false;
}

/* The value of option `name` if argv[i] is it, advancing past it. */
bool cli_opt_value(args *a, const char *name, const char **out)
{
    const char *inl;
    if (!is_opt(a->argv[a->i], name, &inl)) return false;
    if (inl) {
        *out = inl;
        return true;
    }
    if (a->i + 1 >= a->argc) {
        cli_error(a->cmd, "EUSAGE", "%s needs a value (see 'cuepoint %s --help')", name, a->cmd);
        a->bad = true;
        return true;
    }
    *out = a->argv[++a->i];
    return true;
}

const char *cli_err_name(const cue_err *err)
{
    return err->code != 0 ? cue_err_name(err->code) : NULL;
}

void cli_error(const char *cmd, const char *code, const char *fmt, ...)
{
    char msg[CUE_ERR_MSG_MAX + 256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (cue_log_is_text()) {
        /* One line whatever the message holds (a user's argument may). */
        for (char *c = msg; *c; c++)
            if ((unsigned char)*c < ' ' || *c == 0x7f) *c = '?';
        fprintf(stderr, "cuepoint%s%s: %s\n", cmd ? " " : "", cmd ? cmd : "", msg);
    } else if (cmd) {
        cue_log(CUE_LOG_ERROR, msg, "s:command", cmd, code ? "s:error" : NULL, code, NULL);
    } else {
        cue_log(CUE_LOG_ERROR, msg, code ? "s:error" : NULL, code, NULL);
    }
}

int cli_usage_error(const char *cmd, const char *fmt, const char *what)
{
    char msg[CUE_ERR_MSG_MAX];
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
    snprintf(msg, sizeof msg, fmt, what);
#pragma GCC diagnostic pop
    cli_error(cmd, "EUSAGE", "%s (see 'cuepoint %s --help')", msg, cmd);
    return EX_USAGE;
}

bool cli_wants_help(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) return true;
    return false;
}

int cli_parse_time(const char *s, int64_t *ms)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (*s && *end == '\0' && errno == 0) {
        *ms = v;
        return 0;
    }
    return cue_time_parse_rfc3339(s, strlen(s), ms);
}

int cli_reader_clock(int64_t *ms, cue_err *err)
{
    const char *fixed = getenv("CUEPOINT_CLOCK");
    if (fixed && *fixed) {
        if (cli_parse_time(fixed, ms) == 0) return 0;
        return cue_err_set(err, CUE_EUSAGE, "CUEPOINT_CLOCK: '%.64s' is not a time", fixed);
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    *ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    return 0;
}

int cli_parse_size(const char *s, size_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (*s == '\0' || *end != '\0' || errno != 0 || s[0] == '-') return CUE_EPARSE;
    *out = (size_t)v;
    return 0;
}

/* Exit code for a failure, by its error code. */
int cli_exit_for(int code)
{
    switch (code) {
    case CUE_ECONFIG:
    case CUE_EMACHINE: return EX_CONFIG;
    case CUE_EIO: return EX_IOERR;
    case CUE_ESTORE: return EX_IOERR;
    case CUE_EUSAGE: return EX_USAGE;
    case CUE_EUNAVAILABLE: return EX_UNAVAILABLE;
    case CUE_EFENCED: return EX_TEMPFAIL; /* another instance took over: see runtime.c */
    case CUE_EPARSE:
    case CUE_ECORRUPT:
    case CUE_EVERSION: return EX_DATAERR;
    case CUE_ENOTFOUND: return EX_NOINPUT;
    default: return EX_SOFTWARE;
    }
}

int cli_fail(const char *cmd, int code, const cue_err *err)
{
    cli_error(cmd, cue_err_name(code), "%s", err->msg);
    return cli_exit_for(code);
}

/* ---- shared set-up ----------------------------------------------------- */

/* Options that every command reading a config takes. Returns 1 when argv[i]
 * was one of them, 0 when not, and a negative exit code on a bad value. */
/* The outcome of one config option: 1, or the logged error's exit code
 * (66 for a config file that is not there, 78 for a bad value), negated. The
 * log level and format follow the config as soon as it is read, so what
 * comes next already logs as asked. */
static int config_applied(args *a, cue_config *cfg, int rc, const cue_err *err)
{
    if (rc != 0) return -cli_fail(a->cmd, rc, err);
    cue_log_set_level(cfg->log_level);
    cue_log_set_format(cfg->log_format);
    return 1;
}

int cli_common_opt(args *a, cue_config *cfg, cue_err *err)
{
    const char *v = NULL;
    if (cli_opt_value(a, "--config", &v)) {
        if (a->bad) return -EX_USAGE;
        a->config_seen = true;
        return config_applied(a, cfg, cue_config_load(cfg, v, err), err);
    }
    if (cli_opt_value(a, "--set", &v)) {
        if (a->bad) return -EX_USAGE;
        const char *eq = strchr(v, '=');
        if (eq == NULL || eq == v) {
            cli_usage_error(a->cmd, "--set takes KEY=VALUE, not '%s'", v);
            return -EX_USAGE;
        }
        char key[128];
        snprintf(key, sizeof key, "%.*s", (int)(eq - v), v);
        return config_applied(a, cfg, cue_config_set(cfg, key, eq + 1, err), err);
    }
    static const struct {
        const char *opt, *key;
    } shorthands[] = {
        {"--state-dir", "state.dir"}, {"--machines", "machines.dir"}, {"--policies", "policies"}};
    for (size_t i = 0; i < sizeof shorthands / sizeof *shorthands; i++)
        if (cli_opt_value(a, shorthands[i].opt, &v)) {
            if (a->bad) return -EX_USAGE;
            return config_applied(a, cfg, cue_config_set(cfg, shorthands[i].key, v, err), err);
        }
    return 0;
}

static FILE *open_out(const char *path, const char *mode, const char *what, cue_err *err)
{
    if (strcmp(path, "-") == 0) return stdout;
    FILE *f = fopen(path, mode);
    if (f == NULL)
        cue_err_set(err, CUE_EIO, "cannot open %s '%s': %s", what, path, strerror(errno));
    return f;
}

/* ---- cuepoint file ----------------------------------------------------- */

static const char file_help[] =
    "Usage: cuepoint file [options]\n"
    "\n"
    "Runs events from a JSON-lines file (or stdin) through the journeys, keeping\n"
    "state in a state directory, and writes triggers as JSON lines (CloudEvents).\n"
    "Another input over the same --state-dir continues from that state; the same\n"
    "input again (its first 64 KiB, or of a pipe its first line) is refused, even\n"
    "after others: --resume continues one that was interrupted. An event whose event_id the user "
    "applied within\n"
    "allowed.lateness.ms is skipped as a duplicate. Bad lines go to the\n"
    "dead-letter file with their line number and reason; an event more than\n"
    "event.time.max.future.ms ahead of the clock (CUEPOINT_CLOCK, else now) is one.\n"
    "\n"
    "Options:\n"
    "  --input FILE         events, one JSON object per line; '-' is stdin (default -)\n"
    "  --output FILE        triggers, one per line; '-' is stdout (default -)\n"
    "  --dead-letters FILE  where bad lines go, appended\n"
    "                       (default <state-dir>/dead-letters.jsonl)\n"
    "  --machines DIR       journey files (default deploy/machines, or machines.dir)\n"
    "  --only NAME          run just the machine called NAME\n"
    "  --policies FILE      apply the message policies in FILE (caps, quiet hours,\n"
    "                       consent, experiments; see docs/policies.md)\n"
    "  --decisions FILE     with policies, where each trigger's decision goes, appended\n"
    "                       (default <state-dir>/decisions.jsonl)\n"
    "  --state-dir DIR      state directory (default ./state, or state.dir)\n"
    "  --until TIME         at the end, advance time to TIME (RFC 3339 or epoch ms)\n"
    "                       so that timers due by then fire\n"
    "  --config FILE        configuration file (see docs/configuration.md)\n"
    "  --set KEY=VALUE      override one configuration setting (repeatable)\n"
    "  --resume             continue the same --input after an interruption: its\n"
    "                       lines already committed are skipped\n"
    "  --stats FILE         also write the summary as JSON to FILE\n"
    "  --quiet              no summary on stderr\n"
    "  -h, --help           this text\n"
    "\n"
    "Exit status: 0 done (dead letters included), 64 usage (also --resume with\n"
    "nothing to resume, and the same input again), 66 input missing,\n"
    "73/74 output or state directory not writable, 78 configuration or machines.\n";

typedef struct file_args {
    const char *input, *output, *dead, *only, *stats, *decisions;
    int64_t until_ms;
    bool quiet, resume;
} file_args;

static int file_parse(args *a, cue_config *cfg, file_args *fa, cue_err *err)
{
    for (a->i = 2; a->i < a->argc && !a->bad; a->i++) {
        const char *v = NULL;
        int rc = cli_common_opt(a, cfg, err);
        if (rc < 0) return -rc;
        if (rc > 0) continue;
        if (cli_opt_value(a, "--input", &fa->input) || cli_opt_value(a, "--output", &fa->output) ||
            cli_opt_value(a, "--dead-letters", &fa->dead) ||
            cli_opt_value(a, "--only", &fa->only) || cli_opt_value(a, "--stats", &fa->stats) ||
            cli_opt_value(a, "--decisions", &fa->decisions))
            continue;
        if (cli_opt_value(a, "--until", &v)) {
            if (!a->bad && cli_parse_time(v, &fa->until_ms) != 0)
                return cli_usage_error(a->cmd, "--until: '%s' is not an RFC 3339 time or epoch ms",
                                       v);
            continue;
        }
        if (strcmp(a->argv[a->i], "--quiet") == 0 || strcmp(a->argv[a->i], "--resume") == 0) {
            *(a->argv[a->i][2] == 'q' ? &fa->quiet : &fa->resume) = true;
            continue;
        }
        return cli_usage_error(a->cmd, "unknown option '%s'", a->argv[a->i]);
    }
    return a->bad ? EX_USAGE : 0;
}

/* The files a file-mode run reads and writes. */
typedef struct file_files {
    FILE *in, *out, *dead, *decisions;
    char dead_path[CUE_PATH_MAX + 32], dec_path[CUE_PATH_MAX + 32];
} file_files;

/* The input, the state directory, the output, the dead letters and, with a
 * policy, the decisions; an exit status on failure. */
static int open_files(const cue_config *cfg, const file_args *fa, bool policy, file_files *f,
                      cue_err *err)
{
    f->in = stdin;
    if (strcmp(fa->input, "-") != 0 && (f->in = fopen(fa->input, "r")) == NULL) {
        cue_err_set(err, CUE_ENOTFOUND, "cannot open input '%s': %s", fa->input, strerror(errno));
        return EX_NOINPUT;
    }
    if (cue_store_dir_create(cfg->state_dir, err) != 0) return EX_CANTCREAT;
    snprintf(f->dead_path, sizeof f->dead_path, "%s/dead-letters.jsonl", cfg->state_dir);
    f->out = open_out(fa->output, "w", "output", err);
    f->dead =
        f->out ? open_out(fa->dead ? fa->dead : f->dead_path, "a", "dead-letter file", err) : NULL;
    snprintf(f->dec_path, sizeof f->dec_path, "%s/decisions.jsonl", cfg->state_dir);
    if (f->out && f->dead && policy)
        f->decisions =
            open_out(fa->decisions ? fa->decisions : f->dec_path, "a", "decisions file", err);
    if (f->out == NULL || f->dead == NULL || (policy && f->decisions == NULL)) return EX_CANTCREAT;
    return 0;
}

static void close_files(file_files *f)
{
    if (f->decisions && f->decisions != stdout) fclose(f->decisions);
    if (f->dead && f->dead != stdout) fclose(f->dead);
    if (f->out && f->out != stdout)
        fclose(f->out);
    else if (f->out)
        fflush(f->out);
    if (f->in && f->in != stdin) fclose(f->in);
}

/* The run itself, its files open: runs it, says how it went (summary,
 * --stats) and returns the exit status. */
static int file_files_run(const cue_config *cfg, const file_args *fa, const cue_machines *ms,
                          const cue_policy *pol, const file_files *f, cue_err *err)
{
    cue_line_source *src = NULL;
    int rc = cue_line_source_new(&src, f->in, cfg->event_bytes_max, err);
    if (rc != 0) return EX_SOFTWARE;
    cue_filemode_opts o = {.cfg = cfg,
                           .ms = ms,
                           .source = cue_line_source_next,
                           .source_ctx = src,
                           .source_name = fa->input,
                           .fingerprint = cue_filemode_fingerprint(f->in),
                           .out = f->out,
                           .dead = f->dead,
                           .policy = pol,
                           .decisions = f->decisions,
                           .until_ms = fa->until_ms,
                           .resume = fa->resume};
    rc = cli_reader_clock(&o.clock_ms, err);
    if (rc != 0) {
        cue_line_source_free(src);
        return EX_USAGE;
    }
    cue_filemode_result res;
    rc = cue_filemode_run(&o, &res, err);
    if (!fa->quiet) cue_filemode_summary(stderr, &o, &res);
    if (fa->stats) {
        FILE *sf = fopen(fa->stats, "w");
        if (sf) {
            cue_filemode_summary_json(sf, &o, &res);
            fclose(sf);
        }
    }
    if (res.task.dead_letters && !fa->quiet)
        fprintf(stderr, "  dead letters written to %s\n", fa->dead ? fa->dead : f->dead_path);
    cue_line_source_free(src);
    return rc == 0 ? 0 : cli_exit_for(rc);
}

static int file_run(const cue_config *cfg, const file_args *fa, cue_err *err)
{
    cue_machines *ms = NULL;
    cue_policy *pol = NULL;
    file_files f = {0};
    int rc = cue_machines_load(&ms, cfg->machines_dir, fa->only, err);
    if (rc != 0) return cli_exit_for(rc);
    if (cfg->policies[0] && (rc = cue_policy_load(&pol, cfg->policies, ms, err)) != 0) {
        rc = cli_exit_for(rc);
        goto free_machines;
    }
    rc = open_files(cfg, fa, pol != NULL, &f, err);
    if (rc == 0) rc = file_files_run(cfg, fa, ms, pol, &f, err);
    close_files(&f);
free_machines:
    cue_policy_free(pol);
    cue_machines_free(ms);
    return rc;
}

static int cmd_file(int argc, char **argv)
{
    if (cli_wants_help(argc, argv)) {
        fputs(file_help, stdout);
        return 0;
    }
    cue_config cfg;
    cue_config_defaults(&cfg);
    cue_err err = {0};
    args a = {.argc = argc, .argv = argv, .cmd = "file"};
    file_args fa = {.input = "-", .output = "-", .until_ms = INT64_MIN};
    int rc = file_parse(&a, &cfg, &fa, &err);
    if (rc != 0) return rc;
    rc = file_run(&cfg, &fa, &err);
    if (rc != 0 && err.msg[0]) cli_error("file", cli_err_name(&err), "%s", err.msg);
    return rc;
}

/* ---- cuepoint check / graph -------------------------------------------- */

static const char check_help[] =
    "Usage: cuepoint check FILE... [--policies FILE [--machines DIR]]\n"
    "       cuepoint check FILE... --against STATE_DIR [--previous DIR]\n"
    "\n"
    "Validates and lints journey files. Prints one line per finding:\n"
    "  FILE: JSON-PATH: error|warning: MESSAGE [code]\n"
    "Errors stop a machine from loading; warnings (unreachable states, ...) do\n"
    "not. A directory checks every *.json file in it.\n"
    "\n"
    "With --against, the files are also the journeys of a deploy, and the plan\n"
    "of what loading STATE_DIR under them would do is printed: per journey, the\n"
    "instances stored under another version in each old state and where each\n"
    "goes (kept, moved, finished, restarted, stranded), pending timers kept,\n"
    "moved or dropped, and timers that would be due at once. Read-only; give\n"
    "every journey of the deploy (instances of others count as dropped).\n"
    "\n"
    "Options:\n"
    "  --policies FILE    also check a policy file (schemas/policy.schema.json)\n"
    "                     against the journeys in --machines DIR (default\n"
    "                     deploy/machines): names, durations, zones, classes\n"
    "  --machines DIR     the journeys a policy file refers to\n"
    "  --against DIR      plan the migration of this state directory\n"
    "  --previous DIR     the journeys as deployed now, to name old states and\n"
    "                     timers the new files no longer mention\n"
    "  --strict           exit 65 on warnings too\n"
    "  -h, --help         this text\n"
    "\n"
    "Exit status: 0 no errors, 65 errors found (or warnings with --strict, or\n"
    "stored instances the change would strand without a rule), 66 a file or\n"
    "the state directory could not be read, 64 usage.\n";

/* The journey files a command line names, directories expanded. */
typedef struct file_list {
    char *v[CUE_MACHINES_MAX * 4];
    size_t n;
} file_list;

static void file_list_add(file_list *l, const char *path)
{
    if (l && l->n < sizeof l->v / sizeof *l->v) l->v[l->n++] = strdup(path);
}

static void file_list_free(file_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
}

static int check_one(const char *file, bool *missing, size_t *errors, size_t *warnings)
{
    if (access(file, R_OK) != 0) {
        printf("%s: cannot read: %s\n", file, strerror(errno));
        *missing = true;
        return 0;
    }
    cue_diags d;
    cue_diags_init(&d);
    cue_check_file(file, &d);
    for (size_t i = 0; i < d.n; i++)
        printf("%s: %s: %s: %s [%s]\n", file, d.items[i].path,
               d.items[i].level == CUE_DIAG_ERROR ? "error" : "warning", d.items[i].msg,
               d.items[i].code);
    *errors += d.errors;
    *warnings += d.warnings;
    cue_diags_deinit(&d);
    return 0;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Checks every *.json in `dir`, in name order; returns how many. */
static size_t check_dir(const char *dir, bool *missing, size_t *errors, size_t *warnings,
                        file_list *files)
{
    DIR *dh = opendir(dir);
    if (dh == NULL) {
        printf("%s: cannot read: %s\n", dir, strerror(errno));
        *missing = true;
        return 0;
    }
    char *names[CUE_MACHINES_MAX * 4];
    size_t n = 0;
    for (struct dirent *de; (de = readdir(dh)) != NULL && n < sizeof names / sizeof *names;) {
        size_t len = strlen(de->d_name);
        if (len > 5 && strcmp(de->d_name + len - 5, ".json") == 0 && de->d_name[0] != '.')
            names[n++] = strdup(de->d_name);
    }
    closedir(dh);
    qsort(names, n, sizeof *names, cmp_names);
    for (size_t i = 0; i < n; i++) {
        char path[CUE_PATH_MAX];
        snprintf(path, sizeof path, "%.700s/%.200s", dir, names[i]);
        check_one(path, missing, errors, warnings);
        file_list_add(files, path);
        free(names[i]);
    }
    return n;
}

/* Checks a policy file against the journeys it names; prints each error in
 * the same "FILE: PATH: error: MESSAGE [code]" shape. Returns how many. */
static size_t check_policies(const char *file, const char *machines, bool *missing)
{
    if (access(file, R_OK) != 0) {
        printf("%s: cannot read: %s\n", file, strerror(errno));
        *missing = true;
        return 0;
    }
    cue_machines *ms = NULL;
    cue_err err = {0};
    if (cue_machines_load(&ms, machines, NULL, &err) != 0) {
        printf("%s: $: error: the journeys it refers to do not load: %s [policy-machines]\n", file,
               err.msg);
        return 1;
    }
    cue_diags d;
    cue_diags_init(&d);
    size_t errors = cue_policy_check(file, ms, &d);
    for (size_t i = 0; i < d.n; i++)
        printf("%s: %s: error: %s [%s]\n", file, d.items[i].path, d.items[i].msg, d.items[i].code);
    if (errors > d.n)
        printf("%s: $: error: %zu more errors not shown (the first %zu are above) [policy]\n", file,
               errors - d.n, d.n);
    cue_diags_deinit(&d);
    cue_machines_free(ms);
    return errors;
}

/* The plan of a deploy: what loading `state_dir` under `files` would do. */
static int check_against(const file_list *files, const char *state_dir, const char *previous)
{
    cue_err err = {0};
    cue_machines *ms = NULL, *prev = NULL;
    cue_store *store = NULL;
    cue_plan *plan = NULL;
    struct stat st;
    int rc = EX_OK;
    if (stat(state_dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        printf("%s: cannot read: no state directory\n", state_dir);
        return EX_NOINPUT;
    }
    if (cue_machines_load_files(&ms, (const char *const *)files->v, files->n, &err) != 0 ||
        (previous && cue_machines_load(&prev, previous, NULL, &err) != 0) ||
        cue_store_open(&store, state_dir, &(cue_store_opts){.read_only = true}, &err) != 0 ||
        cue_plan_new(&plan, ms, prev, &err) != 0 || cue_plan_scan(plan, store, &err) != 0) {
        printf("%s: $: error: no plan: %s [plan]\n", state_dir, err.msg);
        rc = err.code == CUE_ESTORE ? EX_NOINPUT : EX_DATAERR;
        goto done;
    }
    cue_buf out;
    cue_buf_init(&out, 4096);
    cue_plan_write(plan, &out);
    fputs(out.data, stdout);
    cue_buf_deinit(&out);
    uint64_t stranded = cue_plan_stranded(plan);
    if (stranded) {
        printf("%s: $.migrate.states: error: %llu stored instance(s) would be stranded: their "
               "state is gone and no rule says where they go [stranded]\n",
               state_dir, (unsigned long long)stranded);
        rc = EX_DATAERR;
    }
done:
    cue_plan_free(plan);
    if (store) cue_store_close(store);
    cue_machines_free(prev);
    cue_machines_free(ms);
    return rc;
}

static int cmd_check(int argc, char **argv)
{
    if (cli_wants_help(argc, argv)) {
        fputs(check_help, stdout);
        return 0;
    }
    bool strict = false, missing = false;
    size_t errors = 0, warnings = 0, n_files = 0;
    const char *policies = NULL, *machines = "deploy/machines", *against = NULL, *previous = NULL;
    static file_list files; /* every journey file named: the deploy, for --against */
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--strict") == 0) {
            strict = true;
            continue;
        }
        const char **opt = strcmp(argv[i], "--policies") == 0   ? &policies
                           : strcmp(argv[i], "--machines") == 0 ? &machines
                           : strcmp(argv[i], "--against") == 0  ? &against
                           : strcmp(argv[i], "--previous") == 0 ? &previous
                                                                : NULL;
        if (opt) {
            if (i + 1 >= argc) return cli_usage_error("check", "%s needs a value", argv[i]);
            *opt = argv[++i];
            continue;
        }
        if (argv[i][0] == '-' && argv[i][1])
            return cli_usage_error("check", "unknown option '%s'", argv[i]);
        struct stat st;
        if (stat(argv[i], &st) == 0 && S_ISDIR(st.st_mode)) {
            n_files += check_dir(argv[i], &missing, &errors, &warnings, &files);
            continue;
        }
        n_files++;
        check_one(argv[i], &missing, &errors, &warnings);
        file_list_add(&files, argv[i]);
    }
    if (previous && !against)
        return cli_usage_error("check", "%s", "--previous goes with --against");
    if (policies) {
        n_files++;
        errors += check_policies(policies, machines, &missing);
    }
    if (n_files == 0) return cli_usage_error("check", "%s", "no files given");
    printf("%zu file(s): %zu error(s), %zu warning(s)\n", n_files, errors, warnings);
    int rc = missing ? EX_NOINPUT : errors || (strict && warnings) ? EX_DATAERR : 0;
    if (against && rc == 0)
        rc = check_against(&files, against, previous);
    else if (against)
        printf("%s: no plan: the journeys must check clean first\n", against);
    file_list_free(&files);
    return rc;
}

static const char graph_help[] = "Usage: cuepoint graph FILE\n"
                                 "\n"
                                 "Prints the journey in FILE as Graphviz DOT, e.g.\n"
                                 "  cuepoint graph deploy/machines/onboarding.json | dot -Tsvg > "
                                 "onboarding.svg\n"
                                 "\n"
                                 "Exit status: 0, 65 the file has errors (see cuepoint check), "
                                 "66 unreadable, 64 usage.\n";

static int cmd_graph(int argc, char **argv)
{
    if (cli_wants_help(argc, argv)) {
        fputs(graph_help, stdout);
        return 0;
    }
    if (argc != 3) return cli_usage_error("graph", "%s", "takes exactly one FILE");
    if (access(argv[2], R_OK) != 0) {
        cli_error("graph", "ENOTFOUND", "cannot read %s: %s", argv[2], strerror(errno));
        return EX_NOINPUT;
    }
    cue_diags d;
    cue_diags_init(&d);
    cue_machines *ms = NULL;
    int rc = cue_machines_compile_file(&ms, argv[2], &d);
    for (size_t i = 0; rc != 0 && i < d.n; i++)
        fprintf(stderr, "%s: %s: error: %s [%s]\n", argv[2], d.items[i].path, d.items[i].msg,
                d.items[i].code);
    cue_diags_deinit(&d);
    if (rc != 0) return EX_DATAERR;
    cue_buf out;
    cue_buf_init(&out, 4096);
    cue_check_graph(ms, 0, &out);
    fwrite(out.data, 1, out.len, stdout);
    cue_buf_deinit(&out);
    cue_machines_free(ms);
    return 0;
}

/* ---- cuepoint state ---------------------------------------------------- */

static const char state_help[] =
    "Usage: cuepoint state get USER [options]\n"
    "       cuepoint state dump [options]\n"
    "\n"
    "Reads users' state from a state directory, offline (read-only; works while\n"
    "no other process holds the directory). `get` prints one user as JSON, `dump`\n"
    "prints every user as JSON lines, in key order.\n"
    "\n"
    "Options:\n"
    "  --state-dir DIR   state directory (default ./state, or state.dir)\n"
    "  --machines DIR    journeys, to name states and timers (default deploy/machines)\n"
    "  --partition N     only this input partition\n"
    "  --config FILE, --set KEY=VALUE   as for `cuepoint file`\n"
    "\n"
    "Exit status: 0, 1 user not found, 64 usage, 65 a corrupt record, 66 no state\n"
    "directory, 78 configuration.\n";

typedef struct state_ctx {
    const cue_machines *ms;
    const char *uid; /* NULL: dump all */
    cue_user *user;  /* owned by the command */
    cue_buf out;
    size_t found, corrupt;
} state_ctx;

static int state_visit(uint32_t partition, const char *uid, size_t len, const void *val,
                       size_t vlen, void *ctx)
{
    state_ctx *s = ctx;
    if (s->uid && (strlen(s->uid) != len || memcmp(s->uid, uid, len) != 0)) return 0;
    cue_err err = {0};
    cue_buf_reset(&s->out);
    if (cue_codec_decode(val, vlen, s->ms, s->user, NULL, &err) != 0) {
        fprintf(stderr, "partition %u, user %.*s: %s\n", partition, (int)len, uid, err.msg);
        s->corrupt++;
        return 0;
    }
    cue_user_to_json(s->user, s->ms, &s->out);
    printf("%s\n", s->out.data);
    s->found++;
    return 0;
}

static int state_run(const cue_config *cfg, const char *uid, int64_t partition, cue_err *err)
{
    cue_machines *ms = NULL;
    cue_store *store = NULL;
    int rc = cue_machines_load(&ms, cfg->machines_dir, NULL, err);
    if (rc != 0) return cli_exit_for(rc);
    struct stat st;
    if (stat(cfg->state_dir, &st) != 0) {
        cue_err_set(err, CUE_ENOTFOUND, "no state directory '%s'", cfg->state_dir);
        cue_machines_free(ms);
        return EX_NOINPUT;
    }
    rc = cue_store_open(&store, cfg->state_dir, &(cue_store_opts){.read_only = true}, err);
    if (rc != 0) {
        cue_machines_free(ms);
        return cli_exit_for(rc);
    }
    state_ctx s = {.ms = ms, .uid = uid, .user = malloc(sizeof(cue_user))};
    cue_buf_init(&s.out, 4096);
    if (s.user) rc = cue_store_users_scan(store, partition, state_visit, &s);
    free(s.user);
    cue_buf_deinit(&s.out);
    cue_store_close(store);
    cue_machines_free(ms);
    if (s.user == NULL || rc < 0) return EX_SOFTWARE;
    if (s.corrupt) return EX_DATAERR;
    if (uid && s.found == 0) {
        cli_error("state", "ENOTFOUND", "no user '%s' in %s", uid, cfg->state_dir);
        return 1;
    }
    return 0;
}

/* ---- cuepoint erase ---------------------------------------------------- */

static const char erase_help[] =
    "Usage: cuepoint erase USER [--state-dir DIR] [--config FILE] [--set KEY=VALUE]\n"
    "\n"
    "Deletes a user's state from a state directory, offline: journeys, consent,\n"
    "sent and deferred triggers, decisions, in every partition that holds the user\n"
    "(the whole directory is scanned, so this takes a few seconds per million\n"
    "users). Erasure is physical: afterwards no file of the directory holds the\n"
    "id (a flush and a compaction of RocksDB; see docs/operations.md for the\n"
    "copies outside cuepoint). Prints one record per partition erased, without\n"
    "the user id:\n"
    "  {\"outcome\":\"erased\",\"partition\":N,\"offline\":true}\n"
    "A running instance holds its state directory: erase through the input topic\n"
    "instead, with the policy file's erasure event (e.g. user_erased), which\n"
    "also reaches every instance and every replay.\n"
    "\n"
    "Exit status: 0 erased, 1 no such user, 64 usage, 66 no state directory,\n"
    "74 the directory is in use or cannot be written, 78 configuration.\n";

typedef struct erase_ctx {
    const char *uid;
    uint32_t parts[256];
    size_t n;
} erase_ctx;

static int erase_visit(uint32_t partition, const char *uid, size_t len, const void *val,
                       size_t vlen, void *ctx)
{
    erase_ctx *e = ctx;
    (void)val;
    (void)vlen;
    if (strlen(e->uid) == len && memcmp(e->uid, uid, len) == 0 &&
        e->n < sizeof e->parts / sizeof *e->parts)
        e->parts[e->n++] = partition;
    return 0;
}

static int cmd_erase(int argc, char **argv)
{
    if (cli_wants_help(argc, argv)) {
        fputs(erase_help, stdout);
        return 0;
    }
    cue_config cfg;
    cue_config_defaults(&cfg);
    cue_err err = {0};
    args a = {.argc = argc, .argv = argv, .cmd = "erase"};
    const char *uid = NULL;
    for (a.i = 2; a.i < argc && !a.bad; a.i++) {
        int rc = cli_common_opt(&a, &cfg, &err);
        if (rc < 0) return -rc;
        if (rc > 0) continue;
        if (uid == NULL && argv[a.i][0] != '-') {
            uid = argv[a.i];
            continue;
        }
        return cli_usage_error("erase", "unexpected argument '%s'", argv[a.i]);
    }
    if (a.bad) return EX_USAGE;
    if (uid == NULL || uid[0] == '\0') return cli_usage_error("erase", "%s", "give a USER");
    struct stat st;
    if (stat(cfg.state_dir, &st) != 0) {
        cli_error("erase", "ENOTFOUND", "no state directory '%s'", cfg.state_dir);
        return EX_NOINPUT;
    }
    cue_store *store = NULL;
    if (cue_store_open(&store, cfg.state_dir, &(cue_store_opts){0}, &err) != 0)
        return cli_fail("erase", CUE_EIO, &err);
    erase_ctx e = {.uid = uid};
    int rc = cue_store_users_scan(store, -1, erase_visit, &e);
    /* Its timer index entries go too, and the commit leaves the id and the
     * state in no file of the directory (cue_store_batch_users_erase). */
    cue_buf ids = {0};
    size_t n = strlen(uid);
    if (rc >= 0 && e.n &&
        (n > CUE_USER_ID_BYTES_MAX || cue_buf_append_char(&ids, (char)n) != 0 ||
         cue_buf_append(&ids, uid, n) != 0))
        rc = cue_err_set(&err, CUE_ENOMEM, "out of memory erasing a user");
    for (size_t i = 0; rc >= 0 && i < e.n; i++)
        rc = cue_store_batch_users_erase(store, e.parts[i], &ids, &err);
    if (rc >= 0 && e.n) rc = cue_store_batch_commit(store, true, &err);
    cue_buf_deinit(&ids);
    cue_store_close(store);
    if (rc < 0) return cli_fail("erase", CUE_EIO, &err);
    for (size_t i = 0; i < e.n; i++)
        printf("{\"outcome\":\"erased\",\"partition\":%u,\"offline\":true}\n", e.parts[i]);
    if (e.n == 0) {
        cli_error("erase", "ENOTFOUND", "no such user in %s", cfg.state_dir);
        return 1;
    }
    return 0;
}

static int cmd_state(int argc, char **argv)
{
    if (cli_wants_help(argc, argv) || argc < 3) {
        fputs(state_help, argc < 3 ? stderr : stdout);
        return argc < 3 ? EX_USAGE : 0;
    }
    bool get = strcmp(argv[2], "get") == 0;
    if (!get && strcmp(argv[2], "dump") != 0)
        return cli_usage_error("state", "unknown action '%s' (get or dump)", argv[2]);
    cue_config cfg;
    cue_config_defaults(&cfg);
    cue_err err = {0};
    args a = {.argc = argc, .argv = argv, .cmd = "state"};
    const char *uid = NULL, *v = NULL;
    int64_t partition = -1;
    for (a.i = 3; a.i < argc && !a.bad; a.i++) {
        int rc = cli_common_opt(&a, &cfg, &err);
        if (rc < 0) return -rc;
        if (rc > 0) continue;
        if (cli_opt_value(&a, "--partition", &v)) {
            size_t p = 0;
            if (!a.bad && (cli_parse_size(v, &p) != 0 || p > UINT32_MAX))
                return cli_usage_error("state", "--partition: '%s' is not a partition number", v);
            partition = (int64_t)p;
            continue;
        }
        if (get && uid == NULL && argv[a.i][0] != '-') {
            uid = argv[a.i];
            continue;
        }
        return cli_usage_error("state", "unexpected argument '%s'", argv[a.i]);
    }
    if (a.bad) return EX_USAGE;
    if (get && uid == NULL) return cli_usage_error("state", "%s", "get needs a USER");
    int rc = state_run(&cfg, uid, partition, &err);
    if (rc != 0 && rc != 1 && err.msg[0]) cli_error("state", cli_err_name(&err), "%s", err.msg);
    return rc;
}

/* ---- cuepoint generate ------------------------------------------------- */

static const char generate_help[] =
    "Usage: cuepoint generate [--users N] [--events N] [--seed S] [--start TIME] [--consent]\n"
    "       cuepoint generate --planted [--users N] [--seed S] [--start TIME] [--weeks N]\n"
    "                         [--policies FILE] [--machines DIR] [--truth FILE]\n"
    "\n"
    "Writes a synthetic stream of product events as JSON lines on stdout: users\n"
    "sign up, onboard (some stall), set and move project deadlines (some miss\n"
    "them), deliver projects (some five or more) and sometimes go quiet for weeks.\n"
    "The same options give the same bytes.\n"
    "\n"
    "Options:\n"
    "  --users N     users (default 1000)\n"
    "  --events N    events (default 10 per user)\n"
    "  --seed S      random seed (default 42)\n"
    "  --start TIME  first sign-up, RFC 3339 or epoch ms (default 2026-01-05T09:00:00Z)\n"
    "  --consent     also consent events, as deploy/policies.json reads them: in the\n"
    "                opt-in region (\"EU\") some users grant push (60%) and email (80%)\n"
    "                right after signing up; anyone push reaches may later withdraw it\n"
    "                (5%) or mute it (3%). The product events stay the same; without\n"
    "                it the output is what it always was.\n"
    "\n"
    "A history with planted effects, to check `cuepoint report` against (see\n"
    "include/cuepoint/gen.h for the script): onboarding completion that differs by\n"
    "work mode and sign-up week, a holdout of the stall nudge's experiment with a\n"
    "planted lift (the nudged complete 40%, the holdout 20%), push withdrawn after\n"
    "8% of the nudges, and mutes after 5% of completed onboardings:\n"
    "  --planted       write that history instead (every user to the end of it)\n"
    "  --start TIME    its first sign-up week (default 2026-01-05T00:00:00Z, a Monday)\n"
    "  --weeks N       weeks of sign-ups (default 4)\n"
    "  --policies FILE the policy file the history will run with: its experiment that\n"
    "                  covers onboarding_stalled decides who is in the holdout\n"
    "                  (default deploy/policies.json)\n"
    "  --machines DIR  the journeys that policy file names (default deploy/machines)\n"
    "  --truth FILE    write what was planted (expected rates, exact counts) as JSON\n";

int cli_size_opt(args *a, const char *name, size_t *out, bool *matched)
{
    const char *v = NULL;
    *matched = cli_opt_value(a, name, &v);
    if (!*matched || a->bad) return 0;
    if (cli_parse_size(v, out) != 0)
        return cli_usage_error(a->cmd, "'%s' is not a whole number", v);
    return 0;
}

/* Parses the generator's options from argv[first]; -1 at the first option
 * that is not one of them (argv[a->i]), so callers can add their own. */
int cli_gen_parse(args *a, gen_args *g, int first)
{
    for (a->i = first; a->i < a->argc && !a->bad; a->i++) {
        bool m = false;
        size_t seed = 0;
        int rc = cli_size_opt(a, "--users", &g->users, &m);
        if (!m) rc = cli_size_opt(a, "--events", &g->events, &m);
        if (!m) {
            rc = cli_size_opt(a, "--seed", &seed, &m);
            if (m) g->seed = seed;
        }
        if (rc != 0) return rc;
        if (m) continue;
        const char *v = NULL;
        if (cli_opt_value(a, "--start", &v)) {
            if (!a->bad && cli_parse_time(v, &g->start_ms) != 0)
                return cli_usage_error(a->cmd, "--start: '%s' is not a time", v);
            continue;
        }
        return -1;
    }
    if (g->events == 0) g->events = g->users * 10;
    return a->bad ? EX_USAGE : 0;
}

typedef struct plant_args {
    bool on, start_set;
    const char *truth, *policies, *machines;
    size_t weeks;
} plant_args;

/* Options of generate beyond the generator's: 1 when argv[a->i] was one. */
static int generate_opt(args *a, gen_args *g, plant_args *pa)
{
    const char *arg = a->argv[a->i];
    bool m = false;
    if (strcmp(arg, "--consent") == 0 || strcmp(arg, "--planted") == 0) {
        *(arg[2] == 'c' ? &g->consent : &pa->on) = true;
        return 1;
    }
    if (cli_opt_value(a, "--truth", &pa->truth) || cli_opt_value(a, "--policies", &pa->policies) ||
        cli_opt_value(a, "--machines", &pa->machines))
        return a->bad ? -EX_USAGE : 1;
    int rc = cli_size_opt(a, "--weeks", &pa->weeks, &m);
    if (rc != 0) return -rc;
    if (m) return a->bad ? -EX_USAGE : 1;
    return 0;
}

typedef struct holdout_ctx {
    const cue_policy *pol;
    int exp;
} holdout_ctx;

static bool in_holdout(const char *user, size_t len, void *ctx)
{
    holdout_ctx *h = ctx;
    return h->exp >= 0 && cue_policy_assign(h->pol, (size_t)h->exp, user, len) < 0;
}

/* The experiment that covers onboarding.onboarding_stalled, or -1. */
static int stall_experiment(const cue_machines *ms, const cue_policy *pol)
{
    for (size_t i = 0; i < cue_machines_count(ms); i++) {
        const cue_machine *m = cue_machines_get(ms, i);
        if (strcmp(m->name, "onboarding") != 0) continue;
        for (uint16_t t = 0; t < m->n_triggers; t++)
            if (strcmp(m->triggers[t].name, "onboarding_stalled") == 0)
                return cue_policy_experiment_of(pol, (uint16_t)i, (uint8_t)t);
    }
    return -1;
}

static int generate_planted(const gen_args *g, const plant_args *pa)
{
    cue_err err = {0};
    cue_machines *ms = NULL;
    cue_policy *pol = NULL;
    cue_gen_plant *gen = NULL;
    int rc = cue_machines_load(&ms, pa->machines ? pa->machines : "deploy/machines", NULL, &err);
    if (rc == 0)
        rc = cue_policy_load(&pol, pa->policies ? pa->policies : "deploy/policies.json", ms, &err);
    if (rc != 0) {
        cue_machines_free(ms);
        return cli_fail("generate", rc, &err);
    }
    holdout_ctx h = {.pol = pol, .exp = stall_experiment(ms, pol)};
    cue_gen_plant_opts o;
    cue_gen_plant_defaults(&o);
    o.seed = g->seed;
    o.users = g->users;
    if (pa->start_set) o.start_ms = g->start_ms;
    if (pa->weeks) o.weeks = (int)(pa->weeks > 1000 ? 1000 : pa->weeks);
    o.holdout = in_holdout;
    o.holdout_ctx = &h;
    rc = cue_gen_plant_new(&gen, &o, &err);
    cue_buf b;
    cue_buf_init(&b, 512);
    int64_t ts;
    while (rc == 0 && cue_gen_plant_next(gen, &b, &ts) == 1) {
        fwrite(b.data, 1, b.len, stdout);
        putchar('\n');
    }
    if (rc == 0 && pa->truth) {
        cue_buf_reset(&b);
        cue_gen_plant_truth(gen, h.exp >= 0 ? cue_policy_experiment_name(pol, (size_t)h.exp) : NULL,
                            &b);
        FILE *f = fopen(pa->truth, "w");
        rc = f && fprintf(f, "%s\n", b.data) > 0 && fclose(f) == 0
                 ? 0
                 : cue_err_set(&err, CUE_EIO, "cannot write the truth to '%s'", pa->truth);
    }
    cue_buf_deinit(&b);
    cue_gen_plant_free(gen);
    cue_policy_free(pol);
    cue_machines_free(ms);
    if (rc != 0)
        return rc == CUE_EINVAL ? cli_usage_error("generate", "%s", err.msg)
                                : cli_fail("generate", rc, &err);
    return fflush(stdout) == 0 ? 0 : EX_IOERR;
}

static int cmd_generate(int argc, char **argv)
{
    if (cli_wants_help(argc, argv)) {
        fputs(generate_help, stdout);
        return 0;
    }
    args a = {.argc = argc, .argv = argv, .cmd = "generate"};
    gen_args g = {.users = 1000, .seed = 42, .start_ms = 1767603600000LL};
    plant_args pa = {0};
    for (int first = 2;;) {
        int64_t start = g.start_ms;
        int rc = cli_gen_parse(&a, &g, first);
        pa.start_set |= g.start_ms != start;
        if (rc >= 0) {
            if (rc != 0) return rc;
            break;
        }
        rc = generate_opt(&a, &g, &pa);
        if (rc < 0) return -rc;
        if (rc == 0) return cli_usage_error("generate", "unknown option '%s'", argv[a.i]);
        first = a.i + 1;
    }
    if (pa.on) return generate_planted(&g, &pa);
    if (pa.truth || pa.policies || pa.machines || pa.weeks)
        return cli_usage_error("generate", "%s",
                               "--truth, --policies, --machines and --weeks "
                               "go with --planted");
    cue_gen *gen;
    cue_err err = {0};
    if (cue_gen_new(&gen,
                    &(cue_gen_opts){.seed = g.seed,
                                    .users = g.users,
                                    .events = g.events,
                                    .start_ms = g.start_ms,
                                    .consent = g.consent},
                    &err) != 0)
        return cli_usage_error("generate", "%s", err.msg);
    cue_buf b;
    cue_buf_init(&b, 512);
    int64_t ts;
    while (cue_gen_next(gen, &b, &ts) == 1) {
        fwrite(b.data, 1, b.len, stdout);
        putchar('\n');
    }
    cue_buf_deinit(&b);
    cue_gen_free(gen);
    return fflush(stdout) == 0 ? 0 : EX_IOERR;
}

/* ---- cuepoint demo ----------------------------------------------------- */

typedef struct gen_source {
    cue_gen *gen;
    cue_buf buf;
    int64_t n;
} gen_source;

static int gen_source_next(void *ctx, const char **rec, size_t *len, int64_t *line, bool *oversize,
                           cue_err *err)
{
    gen_source *g = ctx;
    int64_t ts;
    if (cue_gen_next(g->gen, &g->buf, &ts) != 1) return 0;
    *rec = g->buf.data;
    *len = g->buf.len;
    *line = ++g->n;
    *oversize = false;
    return 1;
}

/* Prints the first few triggers of each name, so every kind shows up. */
void cli_demo_trigger(const cue_trigger *t, const char *rec, size_t len, void *ctx)
{
    demo_ctx *d = ctx;
    uint32_t *shown = &d->shown[t->machine_index][t->trigger_index];
    if (d->printed >= d->sample_max || *shown >= 3) return;
    (*shown)++;
    d->printed++;
    char when[CUE_TIME_TEXT_MAX];
    cue_time_format_rfc3339(t->time_ms, when);
    cue_buf_reset(&d->line);
    for (uint16_t i = 0; i < t->n_fields; i++) {
        cue_buf_printf(&d->line, "%s%s=", i ? " " : "", t->fields[i].name);
        cue_trigger_append_value(&d->line, &t->values[i]);
    }
    printf("  %s  %-9.*s %-26s %s\n", when, (int)t->user->id_len, t->user->id, t->name,
           d->line.data);
}

int cli_write_embedded(const char *dir)
{
    if (cue_store_dir_create(dir, NULL) != 0) return -1;
    for (size_t i = 0; i < cue_embedded_machines_count; i++) {
        char path[CUE_PATH_MAX];
        snprintf(path, sizeof path, "%.900s/%.100s", dir, cue_embedded_machines[i].name);
        FILE *f = fopen(path, "w");
        if (f == NULL) return -1;
        fputs(cue_embedded_machines[i].text, f);
        if (fclose(f) != 0) return -1;
    }
    return 0;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

void cli_remove_tree(const char *dir)
{
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* The records a run writes beside its store, kept when they hold any. */
static int rm_store_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    const char *base = path + ftw->base;
    if (ftw->level == 1 && flag == FTW_F && sb->st_size > 0 &&
        (strcmp(base, "dead-letters.jsonl") == 0 || strcmp(base, "decisions.jsonl") == 0))
        return 0;
    if (ftw->level > 0) remove(path); /* the directory itself: rmdir below, if empty */
    return 0;
}

void cli_remove_store(const char *dir)
{
    nftw(dir, rm_store_entry, 16, FTW_DEPTH | FTW_PHYS);
    rmdir(dir); /* fails, as it should, when records were kept */
}

static int demo_run(const char *dir, const char *machines, const gen_args *g, demo_ctx *d,
                    cue_err *err)
{
    cue_config cfg;
    cue_config_defaults(&cfg);
    snprintf(cfg.state_dir, sizeof cfg.state_dir, "%.900s/state", dir);
    if (machines)
        snprintf(cfg.machines_dir, sizeof cfg.machines_dir, "%s", machines);
    else
        snprintf(cfg.machines_dir, sizeof cfg.machines_dir, "%.900s/machines", dir);
    if (machines == NULL && cli_write_embedded(cfg.machines_dir) != 0)
        return cue_err_set(err, CUE_EIO, "cannot write the example machines to %s", dir);
    cue_machines *ms = NULL;
    int rc = cue_machines_load(&ms, cfg.machines_dir, NULL, err);
    if (rc != 0) return rc;
    gen_source src = {0};
    char path[CUE_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/triggers.jsonl", dir);
    FILE *out = fopen(path, "w");
    snprintf(path, sizeof path, "%s/dead-letters.jsonl", dir);
    FILE *dead = fopen(path, "w");
    rc = out && dead ? 0 : cue_err_set(err, CUE_EIO, "cannot write in %s", dir);
    if (rc == 0)
        rc = cue_gen_new(
            &src.gen,
            &(cue_gen_opts){
                .seed = g->seed, .users = g->users, .events = g->events, .start_ms = g->start_ms},
            err);
    if (rc == 0) {
        cue_buf_init(&src.buf, 512);
        printf("cuepoint demo: %zu users, %zu generated events, %zu journeys from %s\n\n"
               "A sample of the triggers, as they are made:\n",
               g->users, g->events, cue_machines_count(ms),
               machines ? machines : "the built-in examples");
        cue_filemode_opts o = {.cfg = &cfg,
                               .ms = ms,
                               .source = gen_source_next,
                               .source_ctx = &src,
                               .source_name = "generator",
                               .out = out,
                               .dead = dead,
                               .on_trigger = cli_demo_trigger,
                               .on_trigger_ctx = d};
        /* After the last event, let 15 days pass so pending deadlines and
         * dormancy timers fire too. */
        o.until_ms = INT64_MIN;
        o.linger_ms = (int64_t)15 * 86400000;
        cue_filemode_result res;
        rc = cue_filemode_run(&o, &res, err);
        printf("\nSummary:\n");
        fflush(stdout);
        cue_filemode_summary(stdout, &o, &res);
        cue_buf_deinit(&src.buf);
        cue_gen_free(src.gen);
    }
    if (out) fclose(out);
    if (dead) fclose(dead);
    cue_machines_free(ms);
    return rc;
}

int cli_demo_file(int argc, char **argv)
{
    args a = {.argc = argc, .argv = argv, .cmd = "demo"};
    gen_args g = {.users = 2000, .seed = 42, .start_ms = 1767603600000LL};
    const char *machines = NULL;
    bool keep = false;
    size_t sample = 24;
    for (int first = 2;;) {
        int rc = cli_gen_parse(&a, &g, first);
        if (rc >= 0) {
            if (rc != 0) return rc;
            break;
        }
        bool m = false;
        rc = cli_size_opt(&a, "--sample", &sample, &m);
        if (rc != 0) return rc;
        if (!m && cli_opt_value(&a, "--machines", &machines)) m = true;
        if (!m && strcmp(argv[a.i], "--keep") == 0) m = keep = true;
        if (!m && strcmp(argv[a.i], "--file") == 0) m = true;
        if (!m) return cli_usage_error("demo", "unknown option '%s'", argv[a.i]);
        if (a.bad) return EX_USAGE;
        first = a.i + 1;
    }
    const char *tmp = getenv("TMPDIR");
    char dir[CUE_PATH_MAX];
    snprintf(dir, sizeof dir, "%s/cuepoint-demo-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (mkdtemp(dir) == NULL) {
        cli_error("demo", "EIO", "cannot create a temporary directory: %s", strerror(errno));
        return EX_CANTCREAT;
    }
    demo_ctx d = {.sample_max = sample};
    cue_buf_init(&d.line, 256);
    cue_err err = {0};
    int rc = demo_run(dir, machines, &g, &d, &err);
    cue_buf_deinit(&d.line);
    if (rc != 0) cli_error("demo", cli_err_name(&err), "%s", err.msg);
    if (keep)
        printf("\nState, triggers.jsonl and dead-letters.jsonl are in %s\n", dir);
    else
        cli_remove_tree(dir);
    return rc == 0 ? 0 : cli_exit_for(rc);
}

/* ---- dispatch ---------------------------------------------------------- */

static const char main_help[] =
    "Usage: cuepoint COMMAND [options]\n"
    "\n"
    "cuepoint turns product events into well-timed trigger events through per-user\n"
    "journeys declared in JSON.\n"
    "\n"
    "Commands:\n"
    "  demo        the example journeys over generated events, through an embedded\n"
    "              Kafka broker (needs nothing but this binary)\n"
    "  run         the Kafka pipeline: consume events, produce triggers (--config FILE)\n"
    "  replay      run history again (topic or file) without touching the live\n"
    "              pipeline: the same triggers with the same ids\n"
    "  offsets     show or reset the live group's input offsets (show | reset)\n"
    "  dev-broker  run librdkafka's mock Kafka cluster for trying and testing\n"
    "  file        run events from a JSON-lines file through the journeys\n"
    "  check       validate and lint journey files\n"
    "  graph       print a journey as Graphviz DOT\n"
    "  state       read users' state from a state directory (get USER | dump)\n"
    "  erase       delete a user's state from a state directory, offline\n"
    "  report      measure what the journeys did over a history (cohorts, opt-outs,\n"
    "              holdout lift, messages per user-week, retention), or --compare\n"
    "              two runs: an HTML page and JSON\n"
    "  generate    write a synthetic event stream as JSON lines\n"
    "  version     print the version\n"
    "\n"
    "`cuepoint COMMAND --help` describes each command. Documentation: README.md and docs/.\n";

int cue_cli_main(int argc, char **argv)
{
    static const struct {
        const char *name;
        int (*fn)(int, char **);
    } cmds[] = {{"file", cmd_file},         {"check", cmd_check},
                {"graph", cmd_graph},       {"state", cmd_state},
                {"demo", cli_cmd_demo},     {"generate", cmd_generate},
                {"run", cli_cmd_run},       {"dev-broker", cli_cmd_dev_broker},
                {"replay", cli_cmd_replay}, {"offsets", cli_cmd_offsets},
                {"erase", cmd_erase},       {"report", cli_cmd_report}};
    cue_log_set_format(CUE_LOG_FORMAT_AUTO); /* before any thread logs */
    if (argc < 2) {
        fputs(main_help, stderr);
        return EX_USAGE;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        fputs(main_help, stdout);
        return 0;
    }
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
        printf("cuepoint %s (commit %s)\n", cue_version, cue_commit);
        return 0;
    }
    for (size_t i = 0; i < sizeof cmds / sizeof *cmds; i++)
        if (strcmp(cmd, cmds[i].name) == 0) return cmds[i].fn(argc, argv);
    const char *names[] = {"file",     "check",   "graph", "state",      "demo",
                           "generate", "version", "run",   "dev-broker", "replay",
                           "offsets",  "erase",   "report"};
    const char *near = cue_nearest_name(cmd, names, sizeof names / sizeof *names);
    cli_error(NULL, "EUSAGE", "unknown command '%s'%s%s%s; see 'cuepoint --help'", cmd,
              near ? " (did you mean '" : "", near ? near : "", near ? "'?)" : "");
    return EX_USAGE;
}
