/* Writes the fuzz seeds that are made rather than copied: encoded user
 * states (corpus/codec), changelog record sequences (corpus/restore) and
 * members record sequences (corpus/members). The states are the example
 * journeys' own, from the golden tests' events, with their timers fired.
 *
 *   cue_fuzz_seeds SOURCE_DIR OUT_DIR     (scripts/fuzz.sh --seeds)
 */
#include "cuepoint/codec.h"
#include "cuepoint/engine.h"
#include "cuepoint/standby.h"

#include "fuzz.h"

#include <string.h>
#include <sys/stat.h>

#define USERS_MAX 16

static cue_machines *ms;
static cue_user *users[USERS_MAX];
static size_t n_users;
static const char *out_dir;

static void no_trigger(const cue_trigger *t, void *ctx)
{
    (void)t;
    (void)ctx;
}

static cue_user *user_of(const char *id, size_t len)
{
    for (size_t i = 0; i < n_users; i++)
        if (users[i]->id_len == len && memcmp(users[i]->id, id, len) == 0) return users[i];
    if (n_users == USERS_MAX) return NULL;
    cue_user *u = malloc(sizeof *u);
    if (u == NULL) abort();
    cue_user_init(u, id, len);
    return users[n_users++] = u;
}

/* Every event of a golden case through the example journeys. */
static void run_events(const char *path, cue_event_decoder *dec)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) return;
    char line[4096];
    int64_t offset = 0;
    cue_step_stats st = {0};
    while (fgets(line, sizeof line, f)) {
        size_t n = strcspn(line, "\n");
        cue_event ev;
        cue_reason reason;
        cue_err err = {0};
        if (cue_event_decode(dec, line, n, &ev, &reason, &err) != 0) continue;
        cue_user *u = user_of(ev.user_id, ev.user_id_len);
        if (u == NULL) continue;
        ev.offset = offset++;
        cue_engine_apply(ms, u, &ev, NULL, no_trigger, NULL, &st);
        u->indexed_due = cue_user_next_due(u);
    }
    fclose(f);
}

static FILE *out(const char *sub, const char *name)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", out_dir, sub);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/%s/%s", out_dir, sub, name);
    FILE *f = fopen(path, "wb");
    if (f == NULL) {
        perror(path);
        exit(1);
    }
    return f;
}

/* A framed record (fuzz.h): NULL as 0xffff. */
static void framed(FILE *f, const void *p, size_t len)
{
    uint16_t n = p ? (uint16_t)len : FUZZ_NULL;
    fputc(n >> 8, f);
    fputc(n & 0xff, f);
    if (p) fwrite(p, 1, len, f);
}

static void be64(FILE *f, int64_t v)
{
    for (int i = 7; i >= 0; i--)
        fputc((int)(((uint64_t)v >> (8 * i)) & 0xff), f);
}

static void write_states(void)
{
    cue_buf rec;
    cue_buf_init(&rec, 4096);
    FILE *restore = out("restore", "golden-users"), *standby = out("restore", "golden-standby");
    fputc(0, restore);
    fputc(1, standby);
    for (size_t i = 0; i < n_users; i++) {
        cue_user *u = users[i];
        if (cue_codec_encode(u, ms, &rec) != 0) abort();
        char name[160];
        snprintf(name, sizeof name, "state-%.*s", (int)u->id_len, u->id);
        FILE *f = out("codec", name);
        fwrite(rec.data, 1, rec.len, f);
        fclose(f);
        for (FILE *g = restore; g; g = g == restore ? standby : NULL) {
            framed(g, u->id, u->id_len);
            framed(g, rec.data, rec.len);
            if (i % 3 == 2) { /* a position record now and then, as each commit writes */
                char pos[96];
                int n = snprintf(pos, sizeof pos, "{\"input_offset\":%zu,\"stream_time_ms\":%s}",
                                 i * 10, i % 2 ? "null" : "1772442000000");
                framed(g, "", 0);
                framed(g, pos, (size_t)n);
            }
        }
    }
    /* A tombstone for the first user, last. */
    for (FILE *g = restore; g; g = g == restore ? standby : NULL) {
        framed(g, users[0]->id, users[0]->id_len);
        framed(g, NULL, 0);
        fclose(g);
    }
    cue_buf_deinit(&rec);
}

static void write_members(void)
{
    cue_buf rec;
    cue_buf_init(&rec, 256);
    FILE *f = out("members", "three-members");
    fputc(7, f); /* 8 partitions */
    const char *names[] = {"self", "i1", "i2"};
    int32_t owned[3][3] = {{0, 3, 6}, {1, 4, 7}, {2, 5, -1}};
    int64_t now = 1772442000000;
    for (int round = 0; round < 2; round++)
        for (int i = 0; i < 3; i++) {
            cue_members_encode(names[i], owned[i], i == 2 ? 2 : 3, now + round * 2000, 10000, &rec);
            framed(f, names[i], strlen(names[i]));
            framed(f, rec.data, rec.len);
            be64(f, now + round * 2000 + i);
        }
    framed(f, "i1", 2); /* i1 leaves */
    framed(f, NULL, 0);
    be64(f, now + 5000);
    fclose(f);
    cue_buf_deinit(&rec);
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: cue_fuzz_seeds SOURCE_DIR OUT_DIR\n");
        return 64;
    }
    out_dir = argv[2];
    cue_err err = {0};
    char path[1024];
    snprintf(path, sizeof path, "%s/deploy/machines", argv[1]);
    if (cue_machines_load(&ms, path, NULL, &err) != 0) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    cue_config cfg;
    cue_config_defaults(&cfg);
    cue_event_decoder *dec;
    if (cue_event_decoder_new(&dec, &cfg, &err) != 0) return 1;
    static const char *const cases[] = {"onboarding", "deadlines", "milestones", "lifecycle"};
    for (size_t i = 0; i < 4; i++) {
        snprintf(path, sizeof path, "%s/tests/golden/%s/events.jsonl", argv[1], cases[i]);
        run_events(path, dec);
    }
    /* Fire each user's timers a few times, so some states are past them. */
    cue_step_stats st = {0};
    for (size_t i = 0; i < n_users; i++)
        for (int k = 0; k < (int)(i % 3); k++) {
            int64_t due = cue_user_next_due(users[i]);
            if (due == CUE_TIMER_NONE) break;
            cue_engine_fire(ms, users[i], due, NULL, no_trigger, NULL, &st);
            users[i]->indexed_due = cue_user_next_due(users[i]);
        }
    write_states();
    write_members();
    for (size_t i = 0; i < n_users; i++)
        free(users[i]);
    cue_event_decoder_free(dec);
    cue_machines_free(ms);
    return 0;
}
