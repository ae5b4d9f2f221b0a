/*
 * version: what this binary is. `cue_version` is the project's version
 * (CMakeLists.txt, project(VERSION)); `cue_commit` the git commit the build
 * was configured from (12 hex digits), "unknown" when it was configured
 * outside a git checkout, or what -DCUE_COMMIT=... named (a build from a
 * source archive). Written at configure time into the build tree, so both
 * are constants: `cuepoint version` prints them and /metrics exports them as
 * cuepoint_build_info{version,commit}.
 */
#ifndef CUEPOINT_VERSION_H
#define CUEPOINT_VERSION_H

extern const char cue_version[];
extern const char cue_commit[];

#endif
