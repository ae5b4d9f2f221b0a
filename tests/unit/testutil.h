/* Helpers shared by the Criterion suites (header-only: each suite links only
 * its own module). */
#ifndef CUEPOINT_TESTUTIL_H
#define CUEPOINT_TESTUTIL_H

#include "cuepoint/machine.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Writes `text` to a fresh temporary file and returns its path (static buffer
 * per call site is not needed: the caller owns `path`, at least 64 bytes). */
static inline void write_temp(char *path, const char *suffix, const char *text)
{
    snprintf(path, 64, "/tmp/cue-test-XXXXXX%s", suffix);
    int fd = mkstemps(path, (int)strlen(suffix));
    cr_assert(fd >= 0, "cannot create a temporary file");
    size_t n = strlen(text);
    cr_assert(write(fd, text, n) == (ssize_t)n);
    close(fd);
}

/* Compiles a machine given as JSON text; fails the test, printing every
 * diagnostic, when it does not compile. The caller frees the set. */
static inline cue_machines *compile_text(const char *text)
{
    char path[64];
    write_temp(path, ".json", text);
    cue_diags d;
    cue_diags_init(&d);
    cue_machines *ms = NULL;
    int rc = cue_machines_compile_file(&ms, path, &d);
    for (size_t i = 0; i < d.n; i++)
        cr_log_error("%s: %s [%s]", d.items[i].path, d.items[i].msg, d.items[i].code);
    cue_diags_deinit(&d);
    unlink(path);
    cr_assert(rc == 0, "the test machine does not compile");
    return ms;
}

/* A fresh temporary directory; the caller removes it with remove_tree. */
static inline void temp_dir(char *path)
{
    snprintf(path, 64, "/tmp/cue-test-dir-XXXXXX");
    cr_assert(mkdtemp(path) != NULL);
}

static inline void remove_tree(const char *path)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
    cr_assert(system(cmd) == 0);
}

static inline bool test_holds(const char *hay, size_t n, const char *needle)
{
    size_t m = strlen(needle);
    for (size_t i = 0; i + m <= n; i++)
        if (memcmp(hay + i, needle, m) == 0) return true;
    return false;
}

/* Whether any file of `dir` holds the bytes of `needle` (erasure tests). */
static inline bool test_dir_holds(const char *dir, const char *needle)
{
    DIR *d = opendir(dir);
    cr_assert(d != NULL);
    bool found = false;
    struct dirent *e;
    while (!found && (e = readdir(d)) != NULL) {
        char path[512];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        FILE *f = fopen(path, "rb");
        if (f == NULL) continue;
        char *data = NULL;
        size_t len = 0, cap = 0, n;
        char chunk[65536];
        while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
            if (len + n > cap) {
                cap = (len + n) * 2;
                data = realloc(data, cap);
                cr_assert(data != NULL);
            }
            memcpy(data + len, chunk, n);
            len += n;
        }
        fclose(f);
        found = test_holds(data, len, needle);
        free(data);
    }
    closedir(d);
    return found;
}

#endif
