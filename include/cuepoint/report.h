/*
 * report: what the journeys do, measured over history. `cuepoint report`
 * reads the input events, the decision records and the trigger records a
 * run or a replay wrote, and answers a product manager's and an analyst's
 * questions: goal completion (e.g. onboarding completed within 7 days) by
 * sign-up cohort and by user attribute, the opt-out rate after onboarding
 * and which messages opt-outs follow, each experiment's lift over its
 * holdout with a sample-ratio check, messages per user per week, and
 * retention by cohort. `--compare` sets two runs over the same history
 * side by side: what a journey or policy change would send.
 *
 * The caller feeds records in three passes, in this order: every event,
 * then every decision record, then every trigger record (each pass in the
 * order the run wrote them, which is each user's time order). Then finish,
 * then write JSON or HTML. Nothing is kept per record: each user has one
 * fixed-size aggregate (112 bytes with the default config and one
 * experiment; 48 plus 8 a goal, 5 an experiment, 1 an attribute and 24 for
 * the classes and journeys of a week's messages), found by a 64-bit hash of
 * the user id, so memory grows with the number of users and with nothing
 * else; the other tables are bounded by the limits below.
 * Times are kept to the minute.
 *
 * What the passes rely on: a user's sign-up event comes before the user's
 * other events in the input (an event read before it counts to no week),
 * and a user's decisions (or, without decisions, triggers) come in the
 * order they were made, as every file and topic cuepoint writes has them
 * (a user's records are one partition's, in stream time). A message read
 * out of that order is counted in the week being counted and reported as
 * `out_of_order`.
 *
 * One thread; the report owns its tables and borrows nothing after new.
 * Pure: no clock, no I/O (the caller reads the records and writes the
 * output).
 */
#ifndef CUEPOINT_REPORT_H
#define CUEPOINT_REPORT_H

#include "cuepoint/buf.h"
#include "cuepoint/config.h"
#include "cuepoint/err.h"
#include "cuepoint/json.h"
#include "cuepoint/limits.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Bounds, each with its reason. A config past one is refused at load. */
/* Goals: a dashboard of a handful of outcomes; each costs 8 bytes a user. */
#define CUE_REPORT_GOALS_MAX 8
/* Cohort attributes (role, region, work mode, ...): one byte a user each. */
#define CUE_REPORT_ATTRS_MAX 8
/* Distinct values one attribute keeps (more go to "(other)"): a breakdown
 * wider than this is not read as a table anyway, and it fits one byte. */
#define CUE_REPORT_VALUES_MAX 64
/* Experiments followed: each costs 5 bytes a user. */
#define CUE_REPORT_EXPERIMENTS_MAX 8
/* Variants of one experiment, the holdout apart. */
#define CUE_REPORT_VARIANTS_MAX 16
/* Distinct (journey, trigger) names: 64 journeys of a few triggers each. */
#define CUE_REPORT_TRIGGERS_MAX 512
/* Classes and journeys counted per user-week (one byte a user each): the
 * messages' breakdown. More go to the last, "(other)". */
#define CUE_REPORT_DIMS_MAX 24
/* Weeks of a retention curve: one bit a user each, in one word. */
#define CUE_REPORT_WEEKS_MAX 64
/* Opt-out event kinds the config may declare. */
#define CUE_REPORT_OPTOUT_KINDS_MAX 4
/* Sign-up cohorts (weeks): ten years of them. */
#define CUE_REPORT_COHORTS_MAX 520

/* A goal: a trigger the journeys made (any decision record or trigger
 * record of that name; "journey.trigger" or just the name) or an input
 * event type, reached (or, `absent`, not reached) within `within_ms` of the
 * user's sign-up, or of the user's first decision in an experiment
 * (`from_exposure`, measured only in experiments). */
typedef struct cue_report_goal {
    char name[CUE_NAME_BYTES_MAX];
    char source[2 * CUE_NAME_BYTES_MAX]; /* trigger or event name */
    bool is_event;                       /* source is an input event type */
    bool absent;
    bool from_exposure;
    int64_t within_ms;
} cue_report_goal;

/* An opt-out: an event of `type` whose field at `ptr` is the boolean `equals`
 * (consent_changed with granted false, channel_muted with muted true). */
typedef struct cue_report_optout {
    char type[CUE_NAME_BYTES_MAX];
    cue_json_ptr ptr;
    bool equals;
} cue_report_optout;

/* An experiment as the policy file declares it: for the sample-ratio check. */
typedef struct cue_report_experiment {
    char name[CUE_NAME_BYTES_MAX];
    double holdout; /* configured holdout share; < 0 when not known */
} cue_report_experiment;

typedef struct cue_report_config {
    char signup_event[CUE_NAME_BYTES_MAX]; /* "signed_up" */
    size_t n_attrs;
    char attr_name[CUE_REPORT_ATTRS_MAX][CUE_NAME_BYTES_MAX];
    cue_json_ptr attr_ptr[CUE_REPORT_ATTRS_MAX];
    size_t n_goals;
    cue_report_goal goals[CUE_REPORT_GOALS_MAX];
    int onboarding_goal; /* index in goals, or -1 */
    size_t n_optouts;
    cue_report_optout optouts[CUE_REPORT_OPTOUT_KINDS_MAX];
    int64_t optout_window_ms; /* attribution: an opt-out this soon after a message follows it */
    int64_t optout_after_ms;  /* "after onboarding": this long after completing */
    int retention_weeks;
    size_t n_experiments; /* from the policy file; 0: found in the decisions */
    cue_report_experiment experiments[CUE_REPORT_EXPERIMENTS_MAX];
    char policies[CUE_PATH_MAX]; /* the policy file named by the config, or "" */
} cue_report_config;

/* The defaults: sign-up event signed_up; attributes role, region (the
 * engine's) and work_mode at /user/work_mode; goals onboarding_completed
 * within 7 days (the onboarding goal), fifth_project_delivered within 30,
 * user_reactivated within 30 and no user_dormant within 30; opt-outs are
 * consent_changed granted=false and channel_muted muted=true, attributed
 * within 48 h, counted 30 days after onboarding; 8 weeks of retention. */
void cue_report_config_defaults(cue_report_config *c);

/* Reads a report config (schemas/report.schema.json) over the defaults: a
 * key given replaces that default whole. CUE_ECONFIG naming the file and the
 * JSON path, with the nearest known key for a misspelt one. */
int cue_report_config_load(cue_report_config *c, const char *path, cue_err *err);
int cue_report_config_parse(cue_report_config *c, const char *text, const char *name, cue_err *err);

/* Reads the experiments (names, holdout shares) of a policy file
 * (schemas/policy.schema.json), replacing the config's. CUE_ECONFIG. */
int cue_report_policies_load(cue_report_config *c, const char *path, cue_err *err);

typedef struct cue_report cue_report;

typedef struct cue_report_opts {
    const cue_report_config *rc; /* copied */
    const cue_config *cfg;       /* where events keep user, type and time; copied */
    /* Decision records will be given: messages are their sends (at the time
     * they went out), goals and experiments come from them. Otherwise
     * messages are the trigger records, at their time. */
    bool decisions;
    int64_t until_ms; /* the history's end; INT64_MIN: the latest time read */
} cue_report_opts;

int cue_report_new(cue_report **out, const cue_report_opts *o, cue_err *err);
/* A copy of `base` as it stands (after its events), to read another run's
 * decisions and triggers over the same history (--compare). */
int cue_report_fork(cue_report **out, const cue_report *base, cue_err *err);
void cue_report_free(cue_report *r);

/* One record each (borrowed for the call). A record that does not read is
 * counted as bad and skipped: CUE_EPARSE. CUE_ENOMEM when the user table
 * cannot grow. */
int cue_report_event(cue_report *r, const char *rec, size_t len);
int cue_report_decision(cue_report *r, const char *rec, size_t len);
int cue_report_trigger(cue_report *r, const char *rec, size_t len);

/* After the last record: computes every table. CUE_ENOMEM. */
int cue_report_finish(cue_report *r, cue_err *err);

/* Users known so far, and the bytes the report holds (for progress and the
 * memory figure). */
size_t cue_report_users(const cue_report *r);
size_t cue_report_bytes(const cue_report *r);

/* Names for the output: the input files (or topic), shown in the report. */
void cue_report_set_sources(cue_report *r, const char *events, const char *decisions,
                            const char *triggers);

/* The finished report as one JSON object (a newline at the end), or as a
 * self-contained HTML page (inline CSS and SVG, no script, nothing fetched). */
int cue_report_json(const cue_report *r, cue_buf *out);
int cue_report_html(const cue_report *r, cue_buf *out);

/* Two finished reports over the same events (one forked from the other):
 * what changes from `a` to `b`, labelled `la` and `lb`. */
int cue_report_compare_json(const cue_report *a, const cue_report *b, const char *la,
                            const char *lb, cue_buf *out);
int cue_report_compare_html(const cue_report *a, const cue_report *b, const char *la,
                            const char *lb, cue_buf *out);

/* ---- statistics (exposed for tests) ----------------------------------- */

typedef struct cue_interval {
    double lo, hi;
} cue_interval;

/* z for a two-sided 95% interval. */
#define CUE_Z95 1.959963984540054

/* Wilson's score interval for k successes in n trials; [0, 1] for n = 0. */
cue_interval cue_stat_wilson(uint64_t k, uint64_t n, double z);

/* Newcombe's hybrid score interval (his method 10, from the two Wilson
 * intervals) for p1 - p2, p1 = k1/n1 and p2 = k2/n2. */
cue_interval cue_stat_diff(uint64_t k1, uint64_t n1, uint64_t k2, uint64_t n2, double z);

/* Pearson's chi-square statistic of observed counts against expected shares
 * (which sum to 1), and its upper tail probability with `df` degrees of
 * freedom (df = 1 or 2 in closed form, else the Wilson-Hilferty normal
 * approximation). */
double cue_stat_chi2(const uint64_t *observed, const double *share, size_t k);
double cue_stat_chi2_p(double x, int df);

/* The two-sided p-value of the pooled two-proportion z-test. */
double cue_stat_diff_p(uint64_t k1, uint64_t n1, uint64_t k2, uint64_t n2);

#endif
