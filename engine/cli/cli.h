/*
** cli.h — subcommands of the `switchboard` command.
*/
#ifndef SB_CLI_H
#define SB_CLI_H

#include <stddef.h>
#include <stdint.h>

/* json_dumps flags for reals: 12 significant digits, as the library writes
** its own JSON (3.95, not jansson's default 3.9500000000000002). */
#define CLI_JSON_REALS JSON_REAL_PRECISION(12)

/* Read a whole file ("-" is stdin); NUL-terminated, free() it. NULL on error
** (already reported on stderr). */
char *cli_read_file(const char *path, size_t *len);
/* A time as the commands take it, in Unix milliseconds: YYYY-MM-DD,
** YYYY-MM-DDTHH:MM:SS[Z] (UTC) or Unix seconds (12 digits or more: Unix
** milliseconds). -1 when malformed or past 9999. */
int64_t cli_parse_time(const char *s);
/* The end of a range, as cli_parse_time, but a day (YYYY-MM-DD) means up to
** its end: "--to 2026-11-21" takes in the 21st. */
int64_t cli_parse_until(const char *s);
/* ms as YYYY-MM-DDTHH:MM:SSZ in buf (at least 21 bytes); returns buf. */
const char *cli_iso_time(int64_t ms, char *buf, size_t cap);
/* a asks for usage: --help or -h, or (word: where a command is expected)
** help. */
int cli_is_help(const char *a, int word);
/* 1 (said why on stderr, naming cmd) when a running `switchboard serve`
** holds dir's serve.lock: replay and simulate, which run their own clock,
** must not write into a live daemon's data. 0 otherwise; creates nothing. */
int cli_refuse_served_dir(const char *cmd, const char *dir);
/* 1 when a running `switchboard serve` holds dir's serve.lock, its pid (as
** the lock file says it, "" if not) in pid; 0 otherwise. */
int cli_served(const char *dir, char *pid, size_t cap);
/* A temporary data directory for replay or simulate (name), under $TMPDIR
** (default /tmp), removed by cli_tmpdir_remove() or, should a signal end the
** command first (SIGPIPE, SIGINT, SIGTERM, SIGHUP), by the signal's handler
** before the command dies of it. Its path, or NULL (said why). One at a
** time. */
char *cli_tmpdir_make(const char *name);
/* Remove the directory cli_tmpdir_make made (0; -1 said why). */
int cli_tmpdir_remove(void);
/* argv[*i] is flag with its value: `flag VALUE` (*i moves on to it) or
** `flag=VALUE`. 1 with *val set (NULL: flag came last, without one), or 0
** when argv[*i] is another argument. */
int cli_flag(const char *flag, int argc, char **argv, int *i, const char **val);
/* A flag of flags (NULL-terminated) that argv gives twice (`flag`, or
** `flag=`): said on stderr for command cmd, and 1 (a usage error: which
** value was meant?); else 0. */
int cli_twice(const char *cmd, int argc, char **argv, const char *const *flags);
/* The integer at doc[group][key] of sb_stats' JSON, 0 when none. */
struct json_t;
long long cli_stat(struct json_t *doc, const char *group, const char *key);
int cli_replay(int argc, char **argv);
int cli_simulate(int argc, char **argv);
int cli_records(int argc, char **argv); /* records.c */
int cli_sweep(int argc, char **argv);
int cli_backup(int argc, char **argv);
int cli_key(int argc, char **argv); /* key rotate (records.c) */

#endif
