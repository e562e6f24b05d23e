/*
** log.h — the daemon's log: one line per event worth logging, on stderr:
**   2025-01-31T12:00:00.123Z level=info msg="listening" addr=127.0.0.1:8470
** Values that may hold spaces or quotes go through sbd_q(), which quotes and
** escapes them.
*/
#ifndef SBD_LOG_H
#define SBD_LOG_H

#include <stddef.h>
#include <stdint.h>

#include "switchboard.h"

void sbd_log_set_level(sb_log_level level);
sb_log_level sbd_log_level(void);
int sbd_log_enabled(sb_log_level level);

/* An error that stops the daemon or a command, as a sentence on stderr for
** a person ("switchboard: cannot ..."); under the journal it carries the
** error priority, so `journalctl -p warning` shows it with the log's errors. */
void sbd_errorf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* While buf is set (NULL ends it), sbd_errorf writes its message into buf
** (size n, the first message kept) instead of stderr: the daemon's log
** says it in a line of its own. */
void sbd_errorf_capture(char *buf, size_t n);
/* Log `msg` at `level`, then the key=value pairs printf-formatted from fmt
** (may be NULL). */
__attribute__((format(printf, 3, 4))) void sbd_log(sb_log_level level, const char *msg,
                                                   const char *fmt, ...);

/* A line a flood would repeat (a full disk failing every write, connections
** refused past max_connections): one a second for a run of lines of the same
** kind, the next written saying how many were left out. Zeroed to start. */
typedef struct sbd_log_limit {
    uint64_t last_ns; /* CLOCK_MONOTONIC when the last line was written */
    int last_kind;
    unsigned long quiet; /* left out since */
} sbd_log_limit;

/* Whether a line of `kind` is to be written now: 1, with " not_logged_before=N"
** (N lines left out since the last one written) or "" in more, to end the
** line with; 0 when it is left out (and counted). */
int sbd_log_limit_take(sbd_log_limit *l, int kind, char *more, size_t n);

/* s quoted for a log line ("..." with \" \\ \n escaped, a byte that is not
** UTF-8 as \xHH), in one of a few rotating static buffers: valid until a few
** more sbd_q() calls. */
const char *sbd_q(const char *s);

/* sbd_q() of s with its phone numbers redacted (sb_redact): for text that may echo
** input (a library error message, a policy's). */
const char *sbd_qn(const char *s);

/* sbd_q() of an account id, a phone number in it redacted as the engine's
** lines redact the value of their account= key (sb_redact): one written with
** '+' reads [number], other digits are kept. */
const char *sbd_qacct(const char *id);

/* sbd_qn() of a request's path, its percent-escapes read (log.c says why). */
const char *sbd_qpath(const char *path);

/* The engine's log sink (sb_config.log): tags engine lines src=engine. */
void sbd_log_engine(void *arg, sb_log_level level, const char *line);

/* Parse "error|warn|info|debug"; -1 if unknown. */
int sbd_log_parse_level(const char *s);

#endif
