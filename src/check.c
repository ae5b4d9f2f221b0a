/* Temporary: replaced by the check module being written. */
#include "cuepoint/check.h"

int cue_check_file(const char *file, cue_diags *d)
{
    cue_machines *ms = NULL;
    int rc = cue_machines_compile_file(&ms, file, d);
    if (rc == 0) cue_check_lint(ms, 0, d);
    cue_machines_free(ms);
    return rc;
}

void cue_check_lint(const cue_machines *ms, size_t mi, cue_diags *d)
{
    (void)ms;
    (void)mi;
    (void)d;
}

int cue_check_graph(const cue_machines *ms, size_t mi, cue_buf *out)
{
    const cue_machine *m = cue_machines_get(ms, mi);
    cue_buf_printf(out, "digraph \"%s\" {\n", m->name);
    for (uint16_t s = 0; s < m->n_states; s++)
        cue_buf_printf(out, "  \"%s\";\n", m->states[s].name);
    return cue_buf_append_str(out, "}\n");
}
