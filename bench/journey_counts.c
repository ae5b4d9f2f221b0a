/*
 * journey_counts: what live journey counts cost a task (journey_counts.h).
 * The same generated events (fixed seed, in memory) run through one task
 * over a fresh store, with the counts off and on, alternately, --runs times
 * each; the clock is the process's CPU time over the processing and the
 * final commit, so other work on a shared machine moves it less than a wall
 * clock. The pipeline benchmark (bench/pipeline.sh) measures the whole; this
 * isolates the part the counts add (the out/in walk per step and the
 * engine's transition callback).
 *
 * Prints "bench=journey_counts case=off|on run=N events=... cpu_seconds=...
 * events_per_cpu_s=..." per run, then "case=summary" with the medians and
 * the overhead in percent.
 */
#include "cuepoint/config.h"
#include "cuepoint/gen.h"
#include "cuepoint/machine.h"
#include "cuepoint/store.h"
#include "cuepoint/task.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void no_trigger(const cue_trigger *t, const char *rec, size_t len, void *ctx) {}
static void no_dead(const cue_dead_letter *dl, void *ctx) {}

static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double median(double *v, int n)
{
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && v[j] < v[j - 1]; j--) {
            double t = v[j];
            v[j] = v[j - 1];
            v[j - 1] = t;
        }
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* One run over `lines` (NUL-separated, n of them) into a fresh `dir`:
 * CPU seconds, or a negative value on failure. */
static double run(const cue_config *cfg, const cue_machines *ms, const char *lines, size_t n,
                  const char *dir, bool counts)
{
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) return -1;
    cue_err err = {0};
    cue_store *s = NULL;
    cue_task *t = NULL;
    cue_task_sink sink = {.trigger = no_trigger, .dead_letter = no_dead};
    if (cue_store_dir_create(dir, &err) != 0 ||
        cue_store_open(&s, dir, &(cue_store_opts){0}, &err) != 0 ||
        cue_task_new(&t, cfg, ms, s, 0, &sink, &err) != 0) {
        fprintf(stderr, "journey_counts: %s\n", err.msg);
        return -1;
    }
    double t0 = cpu_s();
    int rc = counts ? cue_task_count_journeys(t, &err) : 0;
    const char *p = lines;
    for (size_t i = 0; i < n && rc == 0; i++) {
        size_t len = strlen(p);
        cue_record rec = {
            .value = p, .value_len = len, .offset = (int64_t)i, .timestamp_ms = CUE_NO_TIMESTAMP};
        rc = cue_task_process(t, &rec, &err);
        p += len + 1;
    }
    if (rc == 0) rc = cue_task_commit(t, &err);
    double secs = cpu_s() - t0;
    if (rc != 0) fprintf(stderr, "journey_counts: %s\n", err.msg);
    cue_task_free(t);
    cue_store_close(s);
    return rc == 0 ? secs : -1;
}

int main(int argc, char **argv)
{
    size_t events = 300000, users = 30000;
    int runs = 3;
    const char *machines = "deploy/machines", *workdir = "/tmp";
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--events") == 0)
            events = strtoull(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--users") == 0)
            users = strtoull(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--runs") == 0)
            runs = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--machines") == 0)
            machines = argv[i + 1];
        else if (strcmp(argv[i], "--workdir") == 0)
            workdir = argv[i + 1];
        else {
            fprintf(stderr, "usage: journey_counts [--events N] [--users N] [--runs N] "
                            "[--machines DIR] [--workdir DIR]\n");
            return 64;
        }
    }
    if (runs < 1 || runs > 20 || events == 0 || users == 0) return 64;
    cue_config cfg;
    cue_config_defaults(&cfg);
    cue_err err = {0};
    cue_machines *ms = NULL;
    cue_gen *g = NULL;
    cue_buf line, all;
    cue_buf_init(&line, 1024);
    cue_buf_init(&all, events * 200);
    if (cue_machines_load(&ms, machines, NULL, &err) != 0 ||
        cue_gen_new(&g,
                    &(cue_gen_opts){
                        .seed = 42, .users = users, .events = events, .start_ms = 1767603600000},
                    &err) != 0) {
        fprintf(stderr, "journey_counts: %s\n", err.msg);
        return 1;
    }
    int64_t ts;
    size_t n = 0;
    while (cue_gen_next(g, &line, &ts) == 1) {
        cue_buf_append(&all, line.data, line.len);
        cue_buf_append_char(&all, '\0');
        n++;
    }
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/journey-counts-%ld", workdir, (long)getpid());
    double off[20], on[20];
    for (int r = 0; r < runs; r++) {
        off[r] = run(&cfg, ms, all.data, n, dir, false);
        on[r] = run(&cfg, ms, all.data, n, dir, true);
        if (off[r] < 0 || on[r] < 0) return 1;
        printf("bench=journey_counts case=off run=%d events=%zu cpu_seconds=%.3f "
               "events_per_cpu_s=%.0f\n",
               r + 1, n, off[r], (double)n / off[r]);
        printf("bench=journey_counts case=on run=%d events=%zu cpu_seconds=%.3f "
               "events_per_cpu_s=%.0f\n",
               r + 1, n, on[r], (double)n / on[r]);
    }
    double mo = median(off, runs), mn = median(on, runs);
    printf("bench=journey_counts case=summary events=%zu users=%zu runs=%d off_cpu_s_median=%.3f "
           "on_cpu_s_median=%.3f overhead_pct=%.1f\n",
           n, users, runs, mo, mn, (mn - mo) / mo * 100);
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    int rc = system(cmd);
    cue_gen_free(g);
    cue_buf_deinit(&line);
    cue_buf_deinit(&all);
    cue_machines_free(ms);
    return rc == 0 ? 0 : 1;
}
