/*
 * cli: the `cuepoint` command line: subcommands, their options and --help
 * texts, and the mapping from error codes to sysexits.h exit codes
 * (64 usage, 65 bad data, 66 no input, 70 internal, 73 cannot create output,
 * 74 I/O, 78 configuration). main() is only a call to cue_cli_main.
 */
#ifndef CUEPOINT_CLI_H
#define CUEPOINT_CLI_H

int cue_cli_main(int argc, char **argv);

#endif
