/* `cuepoint state` and `cuepoint erase`: users' state in a state directory, offline. */
#include "cuepoint/cli.h"

#include "cuepoint/store.h"

#include "cli_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sysexits.h>

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

int cli_cmd_erase(int argc, char **argv)
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

int cli_cmd_state(int argc, char **argv)
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
