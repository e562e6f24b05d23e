/*
** daemon.h — `switchboard serve`: the HTTP/JSON daemon over the engine library.
**
** The daemon is a thin transport: every route maps onto one library call
** (see engine/daemon/API.md). It runs one libevent loop thread, batches the
** requests that are ready in a loop iteration behind one sb_sync() (group
** commit), drives the engine's timers with sb_tick(), and streams actions to
** gateways as Server-Sent Events.
*/
#ifndef SB_DAEMON_H
#define SB_DAEMON_H

#include <jansson.h>

#include "switchboard.h"

/* Run the daemon. argv[0] is "serve"; the rest are its flags (see
** `switchboard serve --help`). Returns the process exit code: 0 after a clean
** shutdown (SIGTERM/SIGINT), 1 when the configuration, the data directory
** lock or the engine could not be set up, 2 for a usage error. */
int sb_daemon_main(int argc, char **argv);

/* The policy budgets `switchboard serve --config file` runs with
** (policy_instructions, policy_wall_ms, policy_memory_kib, quarantine_after)
** into cfg, which is sb_config_init'ed first. Returns 0, or an exit code
** after the error is printed on stderr (the file's FILE:LINE). */
int sbd_config_budgets(const char *file, sb_config *cfg);

/* A JSON error as the daemon and the other commands say it: jansson's text,
** except for a NUL, where its text names a flag of its API (the library
** says it the same way). */
const char *sbd_json_error(const json_error_t *e);

/* 3 when text (len bytes; len may run past a NUL) starts with the UTF-8
** byte-order mark some editors write first, else 0: what to skip. The
** engine skips one before a policy's code the same way (util.c). */
size_t sbd_bom(const char *text, size_t len);

#endif
