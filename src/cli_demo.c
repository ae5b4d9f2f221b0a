/* The demo's file half: generated events through the embedded journeys, and
 * the directories it leaves to clean up. */
/* nftw() is an X/Open interface; the rest of cuepoint needs POSIX only. */
#define _XOPEN_SOURCE 700
#include "cuepoint/cli.h"

#include "cuepoint/filemode.h"
#include "cuepoint/gen.h"
#include "cuepoint/timefmt.h"
#include "cuepoint/trigger.h"

#include "cli_int.h"
#include "embedded.h"

#include <errno.h>
#include <ftw.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

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

int cli_demo_dir(char *dir, size_t cap)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, cap, "%s/cuepoint-demo-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (mkdtemp(dir) != NULL) return 0;
    cli_error("demo", "EIO", "cannot create a temporary directory: %s", strerror(errno));
    return -1;
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
                               .read_ahead = true,
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
    char dir[CUE_PATH_MAX];
    if (cli_demo_dir(dir, sizeof dir) != 0) return EX_CANTCREAT;
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
