/*
** records.h — the record a finished call leaves behind.
**
** A record is written in the same transaction as the call's final event:
** queue, times, wait, talk, outcome, the agent, every ring attempt and the
** policy versions that decided. Phone numbers are not stored in the clear.
*/
#ifndef SB_RECORDS_H
#define SB_RECORDS_H

#include "engine.h"

/* Write the record of call c (outcome: answered, abandoned, rejected...). */
int record_write(wtx *t, const call_rec *c, const queue_rec *q, const char *outcome);
/* Put the record of a finished call into res as JSON; SB_ENOTFOUND if none. */
int record_get(sb_engine *e, MDB_txn *txn, const char *account, const char *call_id,
               sb_result *res);

#endif
