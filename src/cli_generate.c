/* `cuepoint generate`: synthetic event streams, plain or with planted effects. */
#include "cuepoint/cli.h"

#include "cuepoint/gen.h"
#include "cuepoint/policy.h"

#include "cli_int.h"

#include <stdio.h>
#include <string.h>
#include <sysexits.h>

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

int cli_cmd_generate(int argc, char **argv)
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
