/*
 * check: `cuepoint check` and `cuepoint graph`, the tools a journey author
 * runs before deploying. Checking compiles a file (every error, with its JSON
 * path and nearest-name suggestion, from the compiler) and then lints the
 * compiled machine for mistakes that are legal but almost surely unintended
 * (warnings), or that make a journey do other than its author wrote (errors):
 *   unreachable-state    no path from the initial state (or start) leads there
 *   no-way-out           a non-final state with no transition out of it
 *   final-has-transitions a final state lists transitions that can never run
 *   timer-never-handled  (error) a timer is started but no reachable state has
 *                        an `on timer` for it
 *   timer-never-started  (error) a timer is handled but only started where
 *                        nothing runs (unreachable or final states)
 *   trigger-never-emitted a trigger is named by data only, never emitted
 *   shadowed-transition  a transition can never run: an earlier one in the same
 *                        state has the same trigger and no guards
 *   start-in-final       the initial state is final: the journey ends at once
 * Graph writes the machine as Graphviz DOT: states as nodes (final ones double
 * circled), transitions as edges labelled with their event or timer, guards
 * and emitted triggers. Start-up tools; one thread; no outside state.
 */
#ifndef CUEPOINT_CHECK_H
#define CUEPOINT_CHECK_H

#include "cuepoint/buf.h"
#include "cuepoint/machine.h"

/* Compiles and lints `file`, adding to `d`. Returns 0 when no error was found
 * (warnings allowed). */
int cue_check_file(const char *file, cue_diags *d);

/* Lints an already compiled machine `mi` of `ms`, adding to `d`. */
void cue_check_lint(const cue_machines *ms, size_t mi, cue_diags *d);

/* Writes machine `mi` of `ms` as DOT into `out`. */
int cue_check_graph(const cue_machines *ms, size_t mi, cue_buf *out);

#endif
