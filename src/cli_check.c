/* `cuepoint check` and `cuepoint graph`: journey files validated, linted, drawn. */
#include "cuepoint/cli.h"

#include "cuepoint/check.h"
#include "cuepoint/migrate.h"
#include "cuepoint/policy.h"

#include "cli_int.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <unistd.h>

/* ---- cuepoint check / graph -------------------------------------------- */

static const char check_help[] =
    "Usage: cuepoint check FILE... [--policies FILE [--machines DIR]]\n"
    "       cuepoint check FILE... --against STATE_DIR [--previous DIR]\n"
    "\n"
    "Validates and lints journey files. Prints one line per finding:\n"
    "  FILE: JSON-PATH: error|warning: MESSAGE [code]\n"
    "Errors stop a machine from loading; warnings (unreachable states, ...) do\n"
    "not. A directory checks every *.json file in it.\n"
    "\n"
    "With --against, the files are also the journeys of a deploy, and the plan\n"
    "of what loading STATE_DIR under them would do is printed: per journey, the\n"
    "instances stored under another version in each old state and where each\n"
    "goes (kept, moved, finished, restarted, stranded), pending timers kept,\n"
    "moved or dropped, and timers that would be due at once. Read-only; give\n"
    "every journey of the deploy (instances of others count as dropped).\n"
    "\n"
    "Options:\n"
    "  --policies FILE    also check a policy file (schemas/policy.schema.json)\n"
    "                     against the journeys in --machines DIR (default\n"
    "                     deploy/machines): names, durations, zones, classes\n"
    "  --machines DIR     the journeys a policy file refers to\n"
    "  --against DIR      plan the migration of this state directory\n"
    "  --previous DIR     the journeys as deployed now, to name old states and\n"
    "                     timers the new files no longer mention\n"
    "  --strict           exit 65 on warnings too\n"
    "  -h, --help         this text\n"
    "\n"
    "Exit status: 0 no errors, 65 errors found (or warnings with --strict, or\n"
    "stored instances the change would strand without a rule), 66 a file or\n"
    "the state directory could not be read, 64 usage.\n";

/* The journey files a command line names, directories expanded. */
typedef struct file_list {
    char *v[CUE_MACHINES_MAX * 4];
    size_t n;
} file_list;

static void file_list_add(file_list *l, const char *path)
{
    if (l && l->n < sizeof l->v / sizeof *l->v) l->v[l->n++] = strdup(path);
}

static void file_list_free(file_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
}

static int check_one(const char *file, bool *missing, size_t *errors, size_t *warnings)
{
    if (access(file, R_OK) != 0) {
        printf("%s: cannot read: %s\n", file, strerror(errno));
        *missing = true;
        return 0;
    }
    cue_diags d;
    cue_diags_init(&d);
    cue_check_file(file, &d);
    for (size_t i = 0; i < d.n; i++)
        printf("%s: %s: %s: %s [%s]\n", file, d.items[i].path,
               d.items[i].level == CUE_DIAG_ERROR ? "error" : "warning", d.items[i].msg,
               d.items[i].code);
    *errors += d.errors;
    *warnings += d.warnings;
    cue_diags_deinit(&d);
    return 0;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Checks every *.json in `dir`, in name order; returns how many. */
static size_t check_dir(const char *dir, bool *missing, size_t *errors, size_t *warnings,
                        file_list *files)
{
    DIR *dh = opendir(dir);
    if (dh == NULL) {
        printf("%s: cannot read: %s\n", dir, strerror(errno));
        *missing = true;
        return 0;
    }
    char *names[CUE_MACHINES_MAX * 4];
    size_t n = 0;
    for (struct dirent *de; (de = readdir(dh)) != NULL && n < sizeof names / sizeof *names;) {
        size_t len = strlen(de->d_name);
        if (len > 5 && strcmp(de->d_name + len - 5, ".json") == 0 && de->d_name[0] != '.')
            names[n++] = strdup(de->d_name);
    }
    closedir(dh);
    qsort(names, n, sizeof *names, cmp_names);
    for (size_t i = 0; i < n; i++) {
        char path[CUE_PATH_MAX];
        snprintf(path, sizeof path, "%.700s/%.200s", dir, names[i]);
        check_one(path, missing, errors, warnings);
        file_list_add(files, path);
        free(names[i]);
    }
    return n;
}

/* Checks a policy file against the journeys it names; prints each error in
 * the same "FILE: PATH: error: MESSAGE [code]" shape. Returns how many. */
static size_t check_policies(const char *file, const char *machines, bool *missing)
{
    if (access(file, R_OK) != 0) {
        printf("%s: cannot read: %s\n", file, strerror(errno));
        *missing = true;
        return 0;
    }
    cue_machines *ms = NULL;
    cue_err err = {0};
    if (cue_machines_load(&ms, machines, NULL, &err) != 0) {
        printf("%s: $: error: the journeys it refers to do not load: %s [policy-machines]\n", file,
               err.msg);
        return 1;
    }
    cue_diags d;
    cue_diags_init(&d);
    size_t errors = cue_policy_check(file, ms, &d);
    for (size_t i = 0; i < d.n; i++)
        printf("%s: %s: error: %s [%s]\n", file, d.items[i].path, d.items[i].msg, d.items[i].code);
    if (errors > d.n)
        printf("%s: $: error: %zu more errors not shown (the first %zu are above) [policy]\n", file,
               errors - d.n, d.n);
    cue_diags_deinit(&d);
    cue_machines_free(ms);
    return errors;
}

/* The plan of a deploy: what loading `state_dir` under `files` would do. */
static int check_against(const file_list *files, const char *state_dir, const char *previous)
{
    cue_err err = {0};
    cue_machines *ms = NULL, *prev = NULL;
    cue_store *store = NULL;
    cue_plan *plan = NULL;
    struct stat st;
    int rc = EX_OK;
    if (stat(state_dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        printf("%s: cannot read: no state directory\n", state_dir);
        return EX_NOINPUT;
    }
    if (cue_machines_load_files(&ms, (const char *const *)files->v, files->n, &err) != 0 ||
        (previous && cue_machines_load(&prev, previous, NULL, &err) != 0) ||
        cue_store_open(&store, state_dir, &(cue_store_opts){.read_only = true}, &err) != 0 ||
        cue_plan_new(&plan, ms, prev, &err) != 0 || cue_plan_scan(plan, store, &err) != 0) {
        printf("%s: $: error: no plan: %s [plan]\n", state_dir, err.msg);
        rc = err.code == CUE_ESTORE ? EX_NOINPUT : EX_DATAERR;
        goto done;
    }
    cue_buf out;
    cue_buf_init(&out, 4096);
    cue_plan_write(plan, &out);
    fputs(out.data, stdout);
    cue_buf_deinit(&out);
    uint64_t stranded = cue_plan_stranded(plan);
    if (stranded) {
        printf("%s: $.migrate.states: error: %llu stored instance(s) would be stranded: their "
               "state is gone and no rule says where they go [stranded]\n",
               state_dir, (unsigned long long)stranded);
        rc = EX_DATAERR;
    }
done:
    cue_plan_free(plan);
    if (store) cue_store_close(store);
    cue_machines_free(prev);
    cue_machines_free(ms);
    return rc;
}

int cli_cmd_check(int argc, char **argv)
{
    if (cli_wants_help(argc, argv)) {
        fputs(check_help, stdout);
        return 0;
    }
    bool strict = false, missing = false;
    size_t errors = 0, warnings = 0, n_files = 0;
    const char *policies = NULL, *machines = "deploy/machines", *against = NULL, *previous = NULL;
    static file_list files; /* every journey file named: the deploy, for --against */
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--strict") == 0) {
            strict = true;
            continue;
        }
        const char **opt = strcmp(argv[i], "--policies") == 0   ? &policies
                           : strcmp(argv[i], "--machines") == 0 ? &machines
                           : strcmp(argv[i], "--against") == 0  ? &against
                           : strcmp(argv[i], "--previous") == 0 ? &previous
                                                                : NULL;
        if (opt) {
            if (i + 1 >= argc) return cli_usage_error("check", "%s needs a value", argv[i]);
            *opt = argv[++i];
            continue;
        }
        if (argv[i][0] == '-' && argv[i][1])
            return cli_usage_error("check", "unknown option '%s'", argv[i]);
        struct stat st;
        if (stat(argv[i], &st) == 0 && S_ISDIR(st.st_mode)) {
            n_files += check_dir(argv[i], &missing, &errors, &warnings, &files);
            continue;
        }
        n_files++;
        check_one(argv[i], &missing, &errors, &warnings);
        file_list_add(&files, argv[i]);
    }
    if (previous && !against)
        return cli_usage_error("check", "%s", "--previous goes with --against");
    if (policies) {
        n_files++;
        errors += check_policies(policies, machines, &missing);
    }
    if (n_files == 0) return cli_usage_error("check", "%s", "no files given");
    printf("%zu file(s): %zu error(s), %zu warning(s)\n", n_files, errors, warnings);
    int rc = missing ? EX_NOINPUT : errors || (strict && warnings) ? EX_DATAERR : 0;
    if (against && rc == 0)
        rc = check_against(&files, against, previous);
    else if (against)
        printf("%s: no plan: the journeys must check clean first\n", against);
    file_list_free(&files);
    return rc;
}

static const char graph_help[] = "Usage: cuepoint graph FILE\n"
                                 "\n"
                                 "Prints the journey in FILE as Graphviz DOT, e.g.\n"
                                 "  cuepoint graph deploy/machines/onboarding.json | dot -Tsvg > "
                                 "onboarding.svg\n"
                                 "\n"
                                 "Exit status: 0, 65 the file has errors (see cuepoint check), "
                                 "66 unreadable, 64 usage.\n";

int cli_cmd_graph(int argc, char **argv)
{
    if (cli_wants_help(argc, argv)) {
        fputs(graph_help, stdout);
        return 0;
    }
    if (argc != 3) return cli_usage_error("graph", "%s", "takes exactly one FILE");
    if (access(argv[2], R_OK) != 0) {
        cli_error("graph", "ENOTFOUND", "cannot read %s: %s", argv[2], strerror(errno));
        return EX_NOINPUT;
    }
    cue_diags d;
    cue_diags_init(&d);
    cue_machines *ms = NULL;
    int rc = cue_machines_compile_file(&ms, argv[2], &d);
    for (size_t i = 0; rc != 0 && i < d.n; i++)
        fprintf(stderr, "%s: %s: error: %s [%s]\n", argv[2], d.items[i].path, d.items[i].msg,
                d.items[i].code);
    cue_diags_deinit(&d);
    if (rc != 0) return EX_DATAERR;
    cue_buf out;
    cue_buf_init(&out, 4096);
    cue_check_graph(ms, 0, &out);
    fwrite(out.data, 1, out.len, stdout);
    cue_buf_deinit(&out);
    cue_machines_free(ms);
    return 0;
}
