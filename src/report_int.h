/*
 * report_int: the report's tables, shared by its reading and aggregation
 * (report.c), its configuration (report_config.c), its statistics
 * (report_stats.c), its JSON (report_json.c) and its HTML (report_html.c).
 * Private to the report module.
 */
#ifndef CUEPOINT_REPORT_INT_H
#define CUEPOINT_REPORT_INT_H

#include "cuepoint/event.h"
#include "cuepoint/report.h"

#include <stdint.h>

/* Times in a user's aggregate are minutes since the epoch (int32 reaches
 * the year 6053); NO_MIN is "never". */
#define NO_MIN   INT32_MIN
#define NO_MS    INT64_MIN
#define DAY_MIN  1440
#define WEEK_MIN (7 * DAY_MIN)
/* 1970-01-05, the first Monday: cohorts are weeks from a Monday, UTC. */
#define MONDAY0_MIN (4 * DAY_MIN)

/* Index 0 of an attribute is "(none)", the last "(other)". */
#define VAL_NONE  0
#define VAL_OTHER (CUE_REPORT_VALUES_MAX - 1)

/* An arm byte: 0 not in the experiment, 1 its holdout, 2 + v variant v. */
#define ARM_NONE    0
#define ARM_HOLDOUT 1

/* Decision outcomes and reasons as the decision schema names them. */
enum { OUT_SENT, OUT_DEFERRED, OUT_SUPPRESSED, OUT_CANCELLED, OUT_COUNT };
extern const char *const report_outcomes[OUT_COUNT];
#define REASON_COUNT 13 /* the schema's 11, erased, and anything else */
extern const char *const report_reasons[REASON_COUNT];

/* One user's aggregate; the config's part follows it (see the offsets in
 * cue_report). 48 bytes. */
typedef struct ruser {
    uint64_t key;      /* XXH3-64 of the user id, never 0 */
    int32_t signup;    /* the sign-up event's minute */
    int32_t first;     /* the first event's (or message's) minute */
    int64_t optout[2]; /* the first two opt-outs (epoch ms, to tell them from a
                        * message they caused), in order; NO_MS: none */
    uint64_t active;   /* bit k: an event in week k after sign-up */
    uint32_t messages; /* messages in the weeks counted so far */
    uint16_t week;     /* the week whose messages are being counted */
    uint8_t week_all;  /* messages in it (at most 255) */
    uint8_t pad_;
} ruser;

/* A (journey, trigger) name and what was read of it. */
typedef struct rtrig {
    char machine[CUE_NAME_BYTES_MAX], name[CUE_NAME_BYTES_MAX];
    uint64_t hash;
    uint64_t records;            /* trigger records */
    uint64_t outcome[OUT_COUNT]; /* decision records by outcome */
    uint64_t reason[REASON_COUNT];
    uint64_t sent, followed; /* messages, and those an opt-out followed */
    uint32_t goals;          /* bit g: goal g is this trigger */
} rtrig;

/* A class or a journey, counted per user-week. */
typedef struct rdim {
    char name[CUE_NAME_BYTES_MAX];
    bool journey;
} rdim;

typedef struct rcount {
    uint64_t n, k;
} rcount;

/* A rate over users (a goal, an opt-out rate): overall and by cohort and
 * attribute. */
typedef struct rmetric {
    char name[CUE_NAME_BYTES_MAX + 32];
    char what[256]; /* what it counts, for the page */
    rcount all;
    uint64_t undetermined; /* see reached() in report.c */
    rcount *by;            /* [dims][values] (see by_index) */
} rmetric;

/* Messages per user-week over a group. */
typedef struct rsum {
    uint64_t weeks, messages;
} rsum;

/* A distribution of messages per user-week: how many user-weeks had 0, 1,
 * ... 255 (and more) messages. */
typedef struct rhist {
    uint64_t n[256];
    uint64_t nonzero;
} rhist;

typedef struct rexp {
    char name[CUE_NAME_BYTES_MAX];
    double holdout; /* configured share, < 0 unknown */
    size_t n_variants;
    char variants[CUE_REPORT_VARIANTS_MAX][CUE_NAME_BYTES_MAX];
    uint64_t records, conflicts; /* records naming it; users seen in two arms */
    /* finished: */
    uint64_t arm_users[CUE_REPORT_VARIANTS_MAX + 1]; /* [0] holdout, [1 + v] */
    rcount goal[CUE_REPORT_GOALS_MAX][CUE_REPORT_VARIANTS_MAX + 1];
    uint64_t undetermined[CUE_REPORT_GOALS_MAX];
} rexp;

struct cue_report {
    cue_report_config rc;
    cue_config cfg;
    cue_event_decoder *dec;
    bool decisions_given;
    int64_t until_ms;
    char src_events[CUE_PATH_MAX], src_decisions[CUE_PATH_MAX], src_triggers[CUE_PATH_MAX];

    /* Users: one array of `stride`-byte aggregates, and an open-addressing
     * index of (position + 1) by key, at most half full. */
    uint8_t *users;
    size_t n_users, cap_users, stride;
    uint32_t *index;
    size_t index_cap;
    size_t off_goal_first, off_goal_last, off_exposed, off_arm, off_attr, off_dim;
    size_t n_exp_slots;

    /* Names met. */
    size_t n_vals[CUE_REPORT_ATTRS_MAX];
    char vals[CUE_REPORT_ATTRS_MAX][CUE_REPORT_VALUES_MAX][CUE_ATTR_BYTES_MAX];
    size_t n_trigs;
    rtrig *trigs;        /* CUE_REPORT_TRIGGERS_MAX */
    uint16_t *trig_slot; /* 2 * CUE_REPORT_TRIGGERS_MAX: (index + 1) by hash */
    size_t n_dims;
    rdim dims[CUE_REPORT_DIMS_MAX];
    size_t n_exps;
    rexp exps[CUE_REPORT_EXPERIMENTS_MAX];

    /* Counts of what was read. */
    uint64_t events, bad_events, decisions, bad_decisions, triggers, bad_triggers;
    uint64_t outcome[OUT_COUNT], reason[REASON_COUNT], erasures;
    uint64_t optout_events, optout_dropped, out_of_order, late_records, unknown_experiment;
    int64_t min_ms, max_ms;

    /* Messages per user-week, filled as each user's weeks close. */
    rhist hist_all;
    rhist hist_dim[CUE_REPORT_DIMS_MAX];

    /* Scratch for one decision or trigger record. */
    cue_json_tok *toks;

    /* After finish. */
    bool finished;
    int64_t end_ms;
    uint64_t signups, user_weeks;
    int64_t cohort0; /* the first cohort's week number (weeks since MONDAY0) */
    size_t n_cohorts;
    size_t n_metrics;
    rmetric metrics[CUE_REPORT_GOALS_MAX + 2];
    size_t ret_weeks;
    rcount *ret;  /* [(n_cohorts + 1) * ret_weeks]: the last row is every cohort */
    rsum *msg_by; /* [dims][values] */
    uint8_t order[CUE_REPORT_ATTRS_MAX][CUE_REPORT_VALUES_MAX]; /* see report_value_at */
    uint64_t optout_signups_n, optout_signups_k;
};

static inline ruser *user_at(const cue_report *r, size_t i)
{
    return (ruser *)(r->users + i * r->stride);
}
static inline int32_t *goal_first(const cue_report *r, const ruser *u)
{
    return (int32_t *)((uint8_t *)u + r->off_goal_first);
}
static inline int32_t *goal_last(const cue_report *r, const ruser *u)
{
    return (int32_t *)((uint8_t *)u + r->off_goal_last);
}
static inline int32_t *exposed(const cue_report *r, const ruser *u)
{
    return (int32_t *)((uint8_t *)u + r->off_exposed);
}
static inline uint8_t *arm(const cue_report *r, const ruser *u)
{
    return (uint8_t *)u + r->off_arm;
}
static inline uint8_t *attrs(const cue_report *r, const ruser *u)
{
    return (uint8_t *)u + r->off_attr;
}
static inline uint8_t *week_dims(const cue_report *r, const ruser *u)
{
    return (uint8_t *)u + r->off_dim;
}

/* The breakdowns: dimension 0 is the sign-up cohort (n_cohorts values and
 * a last one for users whose sign-up is not in the history), then one per
 * attribute (CUE_REPORT_VALUES_MAX values each). */
static inline size_t by_dims(const cue_report *r)
{
    return 1 + r->rc.n_attrs;
}
static inline size_t by_values(const cue_report *r, size_t dim)
{
    return dim == 0 ? r->n_cohorts + 1 : CUE_REPORT_VALUES_MAX;
}
/* The i-th value of a breakdown in the order the output lists them: cohorts
 * by week, an attribute's values by name, then "(none)" and "(other)". */
size_t report_value_at(const cue_report *r, size_t dim, size_t i);
/* The position of (dim, value) in a [dims][values] table. */
size_t report_by_index(const cue_report *r, size_t dim, size_t value);
/* Entries in a table over every breakdown: the cohorts, "(none)", then each
 * attribute's values. Sized by report.c, filled by report_finish.c. */
static inline size_t report_by_len(const cue_report *r)
{
    return r->n_cohorts + 1 + r->rc.n_attrs * CUE_REPORT_VALUES_MAX;
}
/* The name of a breakdown and of one of its values ("2026-01-05" for a
 * cohort: its Monday), into `out`. */
const char *report_dim_name(const cue_report *r, size_t dim);
void report_value_name(const cue_report *r, size_t dim, size_t value, char *out, size_t cap);

/* Closes the user's counted week of messages into the distributions. */
void report_week_close(cue_report *r, ruser *u);

/* The nearest-rank percentile of a histogram whose zero bucket is filled. */
unsigned report_percentile(const rhist *h, uint64_t total, double p);
double report_mean(const rhist *h, uint64_t total);
/* The user-weeks without a message of dimension d (or all: d < 0). */
uint64_t report_zero_weeks(const cue_report *r, int d);

/* JSON number helpers shared by the writers: NaN and infinities as null. */
void report_put_num(cue_buf *b, double x);
void report_put_interval(cue_buf *b, cue_interval ci);
void report_put_time(cue_buf *b, int64_t ms);

/* Config parsing (report_config.c). */
int report_config_from_json(cue_report_config *c, void *root, const char *name, cue_err *err);

#endif
