/*
 * cli_int: what the command-line files share (cli.c has the offline
 * commands, cli_kafka.c the Kafka ones): option parsing, exit codes, the
 * generator's options and the demo's trigger sample. Private to the cli module.
 */
#ifndef CUEPOINT_CLI_INT_H
#define CUEPOINT_CLI_INT_H

#include "cuepoint/buf.h"
#include "cuepoint/config.h"
#include "cuepoint/engine.h"
#include "cuepoint/err.h"
#include "cuepoint/kafka_group.h"
#include "cuepoint/store.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A tiny parser: "--name value", "--name=value", flags, and positionals. */
typedef struct args {
    int argc;
    char **argv;
    int i;
    const char *cmd;
    bool bad;
    bool config_seen; /* a --config was given */
} args;

/* The value of option `name` if argv[i] is it, advancing past it. */
bool cli_opt_value(args *a, const char *name, const char **out);
int cli_usage_error(const char *cmd, const char *fmt, const char *what);
/* The name of err's code ("ECONFIG"), NULL when it has none. */
const char *cli_err_name(const cue_err *err);
/* An error of command `cmd` (NULL: of none, such as an unknown command) on
 * stderr in the log's format: as text "cuepoint CMD: MESSAGE" on one line,
 * as JSON an error line with "command" and, when
 * `code` is not NULL, "error" (an error code's name such as "ECONFIG"), so
 * one command's errors all read alike whichever way they arise. */
void cli_error(const char *cmd, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
bool cli_wants_help(int argc, char **argv);
int cli_parse_time(const char *s, int64_t *ms);
/* The reader's clock (task.h: the reference for records without a Kafka
 * timestamp): CUEPOINT_CLOCK when it is set (tests fix it), else the wall
 * clock. CUE_EUSAGE when CUEPOINT_CLOCK is not a time. */
int cli_reader_clock(int64_t *ms, cue_err *err);
int cli_parse_size(const char *s, size_t *out);
int cli_size_opt(args *a, const char *name, size_t *out, bool *matched);
/* Exit code (sysexits.h) for an error code. */
int cli_exit_for(int code);
/* Logs the error and returns its exit code. */
int cli_fail(const char *cmd, int code, const cue_err *err);
/* --config, --set, --state-dir, --machines, --policies: 1 when argv[i] was
 * one, 0 when not, a negative exit code on a bad value (the error logged:
 * 66 for a missing config file, 78 for a bad setting, 64 for usage). Sets
 * the log level from the config as it goes. */
int cli_common_opt(args *a, cue_config *cfg, cue_err *err);

typedef struct gen_args {
    size_t users, events;
    uint64_t seed;
    int64_t start_ms;
    bool consent; /* generate --consent */
} gen_args;
/* The generator's options from argv[first]; -1 at the first that is not one. */
int cli_gen_parse(args *a, gen_args *g, int first);

typedef struct demo_ctx {
    size_t sample_max, printed;
    uint32_t shown[CUE_MACHINES_MAX][CUE_MACHINE_TRIGGERS_MAX];
    cue_buf line;
} demo_ctx;
/* Prints the first few triggers of each name (ctx is a demo_ctx). */
void cli_demo_trigger(const cue_trigger *t, const char *rec, size_t len, void *ctx);
/* Writes the built-in example machines into `dir`. */
/* A fresh directory for the demo's files under $TMPDIR (or /tmp), into
 * `dir`; -1, the error logged, when none can be made. */
int cli_demo_dir(char *dir, size_t cap);
int cli_write_embedded(const char *dir);
void cli_remove_tree(const char *dir);
/* Removes a store from `dir` but keeps its dead-letters.jsonl and
 * decisions.jsonl when they hold anything; the directory goes when empty. */
void cli_remove_store(const char *dir);
/* The file-mode demo (`cuepoint demo --file`). */
int cli_demo_file(int argc, char **argv);

int cli_cmd_file(int argc, char **argv);     /* cli_file.c */
int cli_cmd_check(int argc, char **argv);    /* cli_check.c */
int cli_cmd_graph(int argc, char **argv);    /* cli_check.c */
int cli_cmd_state(int argc, char **argv);    /* cli_state.c */
int cli_cmd_erase(int argc, char **argv);    /* cli_state.c */
int cli_cmd_generate(int argc, char **argv); /* cli_generate.c */
int cli_cmd_run(int argc, char **argv);
int cli_cmd_dev_broker(int argc, char **argv);
int cli_cmd_demo(int argc, char **argv);
int cli_cmd_replay(int argc, char **argv);
int cli_cmd_offsets(int argc, char **argv);
int cli_cmd_report(int argc, char **argv);

/* ---- the changelog behind offline commands (cli_changelog.c) ---------- */

/* Rewrites <application.id>-changelog so that a restore gives the state an
 * offline command made (replay --seed-state, offsets reset). Only while the
 * group is inactive: cli_group_hold keeps it so meanwhile. Under
 * exactly-once the rewrite is one transaction; otherwise a rewrite cut
 * short leaves part of it in the changelog, and the command, which then
 * fails, must be run again before the group starts. */
typedef struct cli_changelog cli_changelog;

/* What becomes of the users a partition's changelog holds: kept as they
 * are, all tombstoned, or replaced by the users of a store's partition
 * (tombstones for the others). */
typedef enum { CLI_CHANGELOG_KEEP, CLI_CHANGELOG_EMPTY, CLI_CHANGELOG_STORE } cli_changelog_users;

/* Connects, and creates the topic when missing (as `run` does). `cfg` is
 * copied; `partitions` is the input's count. Close even on failure. */
int cli_changelog_open(cli_changelog **out, const cue_config *cfg, int32_t partitions,
                       cue_err *err);
/* For reading only (`offsets reset --dry-run`): a consumer, no producer,
 * and nothing created; *exists is false when the topic is not there (then
 * there is nothing to read). Close even on failure. */
int cli_changelog_open_reader(cli_changelog **out, const cue_config *cfg, int32_t partitions,
                              bool *exists, cue_err *err);
void cli_changelog_close(cli_changelog *c);
/* Reads the partitions `selected` (NULL: all) to their ends: the users each
 * holds and its last position. */
int cli_changelog_read(cli_changelog *c, const bool *selected, cue_err *err);
/* The last position record read in `partition`; false when there was none. */
bool cli_changelog_position(const cli_changelog *c, int32_t partition, int64_t *input_offset,
                            int64_t *stream_time_ms);
/* Produces the partition's new state after what was read: the users as
 * `users` says (`store`, borrowed, for CLI_CHANGELOG_STORE), then a position
 * record (input offset, stream time or INT64_MIN). */
int cli_changelog_put(cli_changelog *c, int32_t partition, cli_changelog_users users,
                      cue_store *store, int64_t input_offset, int64_t stream_time_ms, cue_err *err);
/* Waits until everything put is acknowledged (committed, under
 * exactly-once), then asks each partition read for its new end. */
int cli_changelog_commit(cli_changelog *c, cue_err *err);
/* After the commit: the changelog's end (the offset a store in line with it
 * records), and the tombstones written. */
int64_t cli_changelog_end(const cli_changelog *c, int32_t partition);
uint64_t cli_changelog_tombstones(const cli_changelog *c, int32_t partition);
/* After the read: the users `partition` holds (their last record is a
 * state, not a tombstone), which a backward rewrite tombstones. */
uint64_t cli_changelog_users_held(const cli_changelog *c, int32_t partition);

/* Not an error code: the group is active, so a command is refused (exit 75). */
#define CLI_GROUP_ACTIVE 1
/* CLI_GROUP_ACTIVE (naming them) while the group has members the cluster
 * can name, without joining; CUE_EVERSION when it cannot describe groups
 * (the mock). `k` is a consumer that never subscribed. */
int cli_group_members_check(cue_kafka *k, const cue_config *cfg, cue_err *err);
/* Joins the live group as a probe and keeps it: CLI_GROUP_ACTIVE (with the
 * reason) unless the probe was assigned every partition of input.topic,
 * whose count goes in *partitions (may be NULL). While the probe holds them,
 * no instance of the group can start processing. Leave the probe
 * (cue_kafka_probe_leave) whatever this returns. */
int cli_group_hold(cue_kafka_probe *p, const cue_config *cfg, int32_t *partitions, cue_err *err);

#endif
