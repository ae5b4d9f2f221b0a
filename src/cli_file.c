/* `cuepoint file`: a JSON-lines file through the journeys, without Kafka. */
#include "cuepoint/cli.h"

#include "cuepoint/filemode.h"
#include "cuepoint/policy.h"

#include "cli_int.h"

#include <errno.h>
#include <string.h>
#include <sysexits.h>

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
    "after others: --resume continues one that was interrupted. An event whose\n"
    "event_id the user applied within allowed.lateness.ms is skipped as a\n"
    "duplicate. Bad lines go to the dead-letter file with their line number and\n"
    "reason; an event more than event.time.max.future.ms ahead of the clock\n"
    "(CUEPOINT_CLOCK, else now) is one.\n"
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
                           .read_ahead = true,
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

int cli_cmd_file(int argc, char **argv)
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
