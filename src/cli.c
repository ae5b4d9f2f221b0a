/* The command line: option parsing, errors and exit codes, and the dispatch
 * to the commands (each in a cli_*.c of its own). */
#include "cuepoint/cli.h"

#include "cuepoint/timefmt.h"
#include "cuepoint/version.h"

#include "cli_int.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <string.h>
#include <sysexits.h>

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

int cli_size_opt(args *a, const char *name, size_t *out, bool *matched)
{
    const char *v = NULL;
    *matched = cli_opt_value(a, name, &v);
    if (!*matched || a->bad) return 0;
    if (cli_parse_size(v, out) != 0)
        return cli_usage_error(a->cmd, "'%s' is not a whole number", v);
    return 0;
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
    } cmds[] = {{"file", cli_cmd_file},     {"check", cli_cmd_check},
                {"graph", cli_cmd_graph},   {"state", cli_cmd_state},
                {"demo", cli_cmd_demo},     {"generate", cli_cmd_generate},
                {"run", cli_cmd_run},       {"dev-broker", cli_cmd_dev_broker},
                {"replay", cli_cmd_replay}, {"offsets", cli_cmd_offsets},
                {"erase", cli_cmd_erase},   {"report", cli_cmd_report}};
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
