/*
** cli.h — subcommands of the `switchboard` command.
*/
#ifndef SB_CLI_H
#define SB_CLI_H

#include <stddef.h>

/* Read a whole file ("-" is stdin); NUL-terminated, free() it. NULL on error
** (already reported on stderr). */
char *cli_read_file(const char *path, size_t *len);
int cli_replay(int argc, char **argv);
int cli_simulate(int argc, char **argv);
int cli_records(int argc, char **argv); /* records.c */
int cli_sweep(int argc, char **argv);

#endif
