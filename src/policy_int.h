/*
 * policy_int.h: the compiled policy's layout, shared by the compiler
 * (policy_compile.c) and the decisions (policy.c). Private to the policy
 * module.
 */
#ifndef CUEPOINT_POLICY_INT_H
#define CUEPOINT_POLICY_INT_H

#include "cuepoint/policy.h"
#include "cuepoint/tz.h"

#include <stdbool.h>
#include <stdint.h>

#define CLASSES_MAX       8
#define CAPS_MAX          32
#define EXPERIMENTS_MAX   16
#define VARIANTS_MAX      8
#define SCOPE_MAX         32
#define REGIONS_MAX       128
#define CONSENT_RULES_MAX 8
#define NAME_MAX_BYTES    64
/* Zones one task may meet (more than tzdata has); past that, users fall back
 * to their region's or the default zone. */
#define TZ_ZONES_MAX CUE_TZ_ZONES_MAX

typedef struct scope {
    uint32_t machines[SCOPE_MAX], triggers[SCOPE_MAX]; /* name hashes */
    uint8_t n_machines, n_triggers;
    uint16_t classes; /* bit per class; 0 with no other list: everything */
} scope;

typedef enum { CAP_ROLLING, CAP_DAY, CAP_COOLDOWN } cap_kind;

typedef struct cap_rule {
    char name[NAME_MAX_BYTES + 1];
    cap_kind kind;
    int64_t window_ms; /* ROLLING, COOLDOWN */
    int max;           /* ROLLING, DAY */
    bool defer;        /* on_cap: defer, else drop */
    scope sc;
} cap_rule;

typedef struct trig_rule {
    uint8_t cls;
    uint8_t channels[CUE_CHANNELS_MAX];
    uint8_t n_channels;
    int64_t max_age_ms; /* INT64_MAX: none */
    uint8_t late;       /* LATE_* */
} trig_rule;

enum { LATE_SEND = 0, LATE_MARK, LATE_DROP };

typedef struct experiment {
    char name[NAME_MAX_BYTES + 1];
    scope sc;
    uint32_t holdout_bp; /* basis points of 10000 */
    char variants[VARIANTS_MAX][NAME_MAX_BYTES + 1];
    uint64_t cum[VARIANTS_MAX]; /* cumulative weights, in thousandths */
    uint8_t n_variants;
} experiment;

typedef struct region_zone {
    char region[NAME_MAX_BYTES + 1];
    char zone[NAME_MAX_BYTES + 1];
} region_zone;

typedef struct consent_rule {
    char regions[REGIONS_MAX][16];
    uint16_t n_regions;
    bool any;    /* "*" */
    bool opt_in; /* consent needed before sending; else sent until withdrawn */
} consent_rule;

struct cue_policy {
    const cue_machines *ms; /* borrowed */
    char classes[CLASSES_MAX][NAME_MAX_BYTES + 1];
    bool bypass[CLASSES_MAX];
    uint8_t n_classes;
    trig_rule rules[CUE_MACHINES_MAX][CUE_MACHINE_TRIGGERS_MAX];
    /* time zones */
    char default_zone[NAME_MAX_BYTES + 1];
    region_zone region_zones[REGIONS_MAX];
    uint16_t n_region_zones;
    /* quiet hours */
    bool quiet;
    int quiet_start, quiet_end; /* minutes of the local day */
    int64_t spread_ms;
    cap_rule caps[CAPS_MAX];
    uint8_t n_caps;
    /* consent */
    char consent_event[NAME_MAX_BYTES + 1], mute_event[NAME_MAX_BYTES + 1];
    cue_json_ptr consent_channel, consent_granted, mute_channel, mute_muted;
    consent_rule consent_rules[CONSENT_RULES_MAX];
    uint8_t n_consent_rules;
    experiment exps[EXPERIMENTS_MAX];
    uint8_t n_exps;
    char erase_event[NAME_MAX_BYTES + 1];
};

/* The index of a channel name in cue_channel_names, or -1. */
int cue_policy_channel_find(const char *name, size_t len);

#endif
