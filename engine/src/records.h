/*
** records.h — what a finished call leaves behind, and the personal data in
** it.
**
** A record is written in the same transaction as the call's final event:
** queue, numbers, times, wait, talk, outcome, the agent, every ring attempt,
** the policy versions that decided and the gateway's attributes. It updates
** the account's daily aggregates in that transaction too, so statistics
** never depend on records that retention later removes.
**
** Personal data is sealed at rest. Each account has a random data key; the
** caller and called numbers and the attributes the account marks personal
** ("personal_attrs") are sealed with it (XChaCha20-Poly1305, associated data
** account id NUL call id NUL offered time (8 bytes, big-endian)) the moment a
** call is offered, so neither the live call nor its record ever holds them in
** the clear. The offered time binds the sealed values to their record: a call
** id offered again gets records whose sealed values do not open in each
** other. (Version 2 records, and calls offered before version 3, were sealed
** with account id NUL call id alone: such a call says so (call_rec.sealed_v3
** 0) and its record, like a version 2 record rewritten, is marked
** RF_SEAL_V2; only those open the old way, so a value sealed the old way
** does not open in a record of the same call id offered since.) A keyed pseudonym of
** each number (BLAKE2b under a key derived from the data key) indexes the
** records, which is how erasure and access requests and caller history
** ("the agent this caller last spoke to") find them.
**
** Data keys live outside LMDB, in <data_dir>/data.keys: one 128-byte slot
** per account number, the key wrapped by the master key (cr_wrap, the
** account id as associated data) beside the master key's check value
** (cr_master_check): a slot another master key wrote is never replaced, and
** an engine whose master key opens none of the accounts' slots does not
** open. LMDB never overwrites a page in place —
** a deleted value stays in a free page until the page is reused — so a key
** deleted from LMDB could still be read from the file. A slot in a file of
** our own is overwritten with zeros and synced when the account is deleted,
** which is what makes deleting an account destroy its key (crypto-shredding:
** everything sealed with it becomes unreadable at once). Slots are created
** only inside an LMDB write transaction, which serialises creators across
** processes.
**
** Layout (engine.h): a record's key is acct(4) ended(8) call id — by time,
** the order sweeps meet records in — with an index by call id beside it; a
** call id offered again after its call ended gets a record of its own.
**
** A stored record (version 3) starts version(1) flags(1) epoch(4) review
** due(8), at fixed offsets so that they can be patched in place: the due is
** that of the record's entry in the review index (0: none), which is how a
** record deleted outside a sweep takes its entry with it. Version 2 lacks
** the due (REC_DUE_UNKNOWN); it is read as it is and written as version 3
** the next time the record is rewritten.
*/
#ifndef SB_RECORDS_H
#define SB_RECORDS_H

#include "engine.h"

#define REC_PERSONAL_MAX 16 /* attributes an account may mark personal */
#define REC_ATTR_NAME_MAX 64
#define REC_SL_DEFAULT 20 /* service level: answered within 20 s */
#define REC_KEY_MAX (4 + 8 + SB_ID_MAX + 1)

/* Record outcomes. */
enum { OUT_ANSWERED = 1, OUT_ABANDONED, OUT_REJECTED, OUT_OVERFLOWED, OUT_FAILED, OUT_COUNT };
const char *rec_outcome_name(int o);
int rec_outcome_parse(const char *s);

/* Record flags. */
/* RF_SEAL_V2: its numbers were sealed with the associated data of before
** version 3 (account id NUL call id): a version 2 record rewritten, or the
** record of a call offered before version 3. Only such a record opens them
** that way, so a value sealed the old way does not open in any other.
** RF_WITHHELD: the caller withheld the number, so the record has no caller
** pseudonym (its only one, if any, is the called number's) and its sealed
** caller is "" (data directories of format 5 and later). */
/* RF_TIDX: the record's index entries are in recidt and ridxt (records.c). */
enum { RF_ANONYMIZED = 1, RF_OVERRIDDEN = 2, RF_SEAL_V2 = 4, RF_WITHHELD = 8, RF_TIDX = 16 };

/* An account's record settings (DB_PRIVACY); absent means the defaults:
** no retention policy (keep forever), nothing personal beyond the numbers,
** a 20 s service level, an audit log kept as long as the account, daily
** aggregates by UTC days. */
#define REC_AUDIT_DAYS_MAX 36500 /* "audit_days": at most a hundred years */
#define REC_TZ_MAX 64            /* a zone name's bytes (schedule.h, tz_valid) */
typedef struct rec_settings {
    char retention[SB_NAME_MAX + 1];
    uint32_t epoch; /* bumped when the retention policy changes (reviews of
                    ** an older epoch are dropped: the rescan makes new ones) */
    uint32_t sl_seconds;
    int npersonal;
    char personal[REC_PERSONAL_MAX][REC_ATTR_NAME_MAX + 1];
    uint32_t audit_days;     /* sweeps remove audit entries older than this many
                             ** days (retention.c); 0: kept as long as the account */
    char tz[REC_TZ_MAX + 1]; /* "timezone": the IANA zone whose days the
                             ** aggregates count in; "": UTC */
} rec_settings;

void rec_settings_default(rec_settings *s);
int rec_settings_load(MDB_txn *txn, sb_engine *e, uint32_t acct, rec_settings *s);
/* Decode a stored value of the settings; SB_ESTORE (s the defaults) when it
** is not one. */
int rec_settings_decode(const MDB_val *v, rec_settings *s);
/* Read "retention", "personal_attrs", "service_level_seconds",
** "audit_days" and "timezone" of an account document over s (fields left out keep their
** value in s). SB_EINVAL naming the field when one is malformed. */
int rec_settings_parse(const json_t *doc, rec_settings *s, sb_result *res);
/* Store the settings (s->epoch is managed here); when the retention policy
** changed, every record of the account is queued for review by sweeps. */
int rec_settings_save(wtx *t, uint32_t acct, const rec_settings *s);
/* Add the settings' fields to an account's JSON. */
void rec_settings_json(const rec_settings *s, json_t *o);

/* Open/close the data key file and the module's state (sb_open/sb_close). */
int records_open(sb_engine *e, sb_result *res);
void records_close(sb_engine *e);
/* Copy the data key file (wrapped keys only) into out, a new file at path
** (for messages), synced and closed whatever happens. */
int rec_keys_copy(sb_engine *e, int out, const char *path, sb_result *res);
/* Write into out, a new empty file at path (for messages), the data key file
** as the master key newkey wraps it: each account's data key and the API-key
** hashing subkey (records.c says why it is kept there), each wrapped again
** under newkey with newkey's check value; slots no account has are left out
** (*dropped counts them). Synced and closed whatever happens. SB_ECRYPTO
** (nothing written that counts) when an account's key does not open with the
** engine's master key. The caller must hold the data directory alone: no
** other engine may create or delete an account meanwhile. */
/* Mark the directory (meta "apikey_check" in data.mdb) with the check value
** of the API-key hashing subkey in use (cr_apikey_check), in t: a rotation
** does, so that an open refuses a data.keys whose slot 0 was lost after it
** (records.c, apisub_load). */
int rec_apikey_mark(wtx *t);
/* After records_open took a new API-key hashing subkey because data.keys had
** lost the one the directory is marked with (allowed by LOST_KEYS_ENV): the
** mark is written again for it, so that it is said once. 0 when nothing to
** do. The engine must be open far enough for eng_write. */
int rec_apikey_settle(sb_engine *e, sb_result *res);
int rec_keys_rotate(sb_engine *e, const uint8_t newkey[32], int out, const char *path,
                    int *accounts, int *dropped, sb_result *res);

/* The account's data key into key. create: make one when the account has
** none (only inside a write transaction). REC_NO_KEY when it has none (so
** nothing of it was ever sealed), SB_ECRYPTO when its key does not open
** (a damaged data.keys, or a slot copied from elsewhere), SB_ESTORE on I/O
** errors. */
#define REC_NO_KEY (SB_ECRYPTO - 1002)
int rec_key(sb_engine *e, uint32_t acct, const char *account, int create, uint8_t key[32]);
/* Overwrite the account's key slot with zeros and sync it. */
/* Forget every cached data key (accounts were deleted, maybe by another
** engine: their keys must not outlive them here). */
void rec_keys_forget(sb_engine *e);
int rec_key_destroy(sb_engine *e, uint32_t acct);

/* A call being offered (caller, called and attrs filled in the clear): move
** the personal attributes out of attrs, seal the numbers and them into
** c->pii and compute the pseudonyms. A caller of "" withheld the number: the
** call has no caller pseudonym (c->withheld) and no caller history. */
int rec_seal_call(wtx *t, call_rec *c);
/* The agent the caller last spoke to (0: none), from the pseudonym index;
** looked up the first time it is asked for and then kept in the call. */
#define REC_PREV_UNKNOWN UINT32_MAX
uint32_t rec_prev_agent(wtx *t, call_rec *c);
/* Fill c's caller, called and pattrs from c->pii (once per load). */
int rec_open_call(sb_engine *e, uint32_t acct, const char *account, call_rec *c);
/* The attributes as the route policy sees them: attrs plus the personal
** ones (joined into tmp when there are any). */
const char *rec_call_attrs(const call_rec *c, sb_buf *tmp, size_t *len);

/* Write the record of call c (outcome: how it ended in its queue, answered,
** abandoned or rejected; the record says answered if it ever was),
** its pseudonym index entries and aggregates, and apply the account's
** retention policy to it. `known`: the call's agent when the caller has it
** loaded (its id is not looked up again), or NULL. `reason`: why a
** rejected call was turned away (kept when the record's outcome is
** rejected), or NULL; `by`: who ended it (sb_end_party, 0: not said). */
int record_write(wtx *t, const call_rec *c, const queue_rec *q, const char *outcome,
                 const agent_rec *known, const char *reason, int by);
/* The live call c leaves `queue` for another (moved, overflowing,
** transferred): that queue's aggregates count it now, answered if an agent
** answered it there, else overflowed, with its wait and talk there; c's
** queue figures (model.h) start afresh for the queue it goes to. */
int rec_aggr_leave(wtx *t, call_rec *c, const queue_rec *q);
/* Has the account a record of that call id, of a call that ended at `since`
** or later (or a little earlier: by period; since 0, any)? */
int record_exists(sb_engine *e, MDB_txn *txn, uint32_t acct, const char *call_id, int64_t since);
/* The same: when the latest such record's call ended, -1 for none (or a
** read that failed). */
int64_t record_latest_end(sb_engine *e, MDB_txn *txn, uint32_t acct, const char *call_id,
                          int64_t since);
/* Put the latest record of a finished call of account acct into res as JSON
** (numbers not included); SB_ENOTFOUND if none. */
int record_get(sb_engine *e, MDB_txn *txn, uint32_t acct, const char *call_id, sb_result *res);

/* --- a stored record, decoded (strings point into the value) ------------ */
/* What rec_encode writes; rec_decode reads 2 to 4. 3: the review due at
** REC_OFF_DUE and the offered time in the numbers' associated data
** (REC_V_DUE: what tests for those two compare with); 4: the reason a
** rejected call was turned away and who ended the call. */
#define REC_VERSION 4
#define REC_V_DUE 3
#define REC_OFF_FLAGS 1
#define REC_OFF_EPOCH 2
#define REC_OFF_DUE 6        /* version 3 and later */
#define REC_DUE_UNKNOWN (-1) /* a version 2 record's: its review due was not kept */
typedef struct rec_data {
    uint8_t version;    /* as stored (rec_decode); rec_encode writes REC_VERSION */
    uint8_t flags;      /* RF_* */
    uint32_t epoch;     /* the settings epoch its review entry belongs to */
    int64_t review_due; /* due time of its review entry; 0: none; < 0: unknown */
    const char *id, *queue, *first_queue, *agent;
    size_t idlen, queuelen, first_queuelen, agentlen;
    int outcome;
    const char *reason; /* why a rejected call was turned away; "" otherwise */
    size_t reasonlen;
    uint8_t ended_by; /* sb_end_party: who ended it; 0 when not said */
    int32_t priority;
    int64_t offered, answered, ended, wait_ms, talk_ms;
    int natt;
    const uint8_t *att; /* natt encoded attempts */
    size_t attlen;
    int nver;
    const uint8_t *ver; /* nver encoded (policy, version) pairs */
    size_t verlen;
    const char *attrs; /* JSON object text without the personal attributes */
    size_t attrs_len;
    const uint8_t *pii; /* sealed numbers and personal attributes; none once anonymized */
    size_t pii_len;
    int npseudo;
    uint8_t pseudo[2][16]; /* the caller's, then the called number's (RF_WITHHELD: none
                           ** for the caller): rec_role says which */
} rec_data;

/* Decode a stored record; SB_ESTORE when corrupt. */
int rec_decode(const void *p, size_t n, rec_data *r);
/* Encode r (as rec_decode gave it, possibly changed) into w. */
void rec_encode(wbuf *w, const rec_data *r);
/* One ring attempt of r (i < natt): agent id copied into agent. */
int rec_attempt(const rec_data *r, int i, char *agent, size_t cap, int *dev, int *outcome,
                int64_t *start, int32_t *dur_ms);
/* The record as JSON (no personal data; export adds it). */
json_t *rec_json(const rec_data *r);
/* Set o's "held_by" (retention.c): the ids of the account's legal holds
** that cover r now. An MDB error or SB_ENOMEM. */
int rec_held_by(MDB_txn *txn, sb_engine *e, uint32_t acct, const rec_data *r, json_t *o);
/* Open r->pii: caller, called (may be "") and personal attributes (JSON
** object or NULL). A version 3 record's are sealed with its offered time in
** the associated data; those sealed before (version 2 records, calls that
** were live when version 3 came) open with account id NUL call id. */
int rec_open(const uint8_t key[32], const char *account, const rec_data *r,
             char caller[SB_E164_MAX + 1], char called[SB_E164_MAX + 1], json_t **pattrs);

/* The associated data the numbers of a call offered at `offered` are sealed
** with (account id NUL call id NUL offered); ad holds 2 * SB_ID_MAX + 11. */
#define REC_AD_MAX (2 * SB_ID_MAX + 11)
size_t rec_seal_ad(uint8_t *ad, const char *account, const char *id, size_t idlen, int64_t offered);

/* Keys: a record's (acct ended id) and its call-id index entry's (acct id
** NUL ended: recid's layout). */
size_t rec_key_of(uint8_t *k, uint32_t acct, const char *id, size_t idlen, int64_t ended);
size_t recid_key(uint8_t *k, uint32_t acct, const char *id, size_t idlen, int64_t ended);
/* Delete the record at rk, whose flags are flags, and its call-id index
** entry (not its pseudonym index entries: rec_ridx_del). */
int rec_delete(MDB_txn *txn, sb_engine *e, const uint8_t *rk, size_t rkl, int flags);
/* A pseudonym index entry's key as ridx lays it out, which callers see
** whichever table holds it (records.c: the index entries). REC_RIDX_MAX:
** room for one in either layout (ridxt's is 2 bytes longer), or for a
** call-id entry's. */
#define REC_RIDX_MAX (31 + SB_ID_MAX)
size_t ridx_key(uint8_t *k, uint32_t acct, const uint8_t pseudo[16], int role, int64_t ended,
                const char *id, size_t idlen);
enum { ROLE_CALLER = 'c', ROLE_CALLED = 'd' };
/* The role of r's i-th pseudonym (i < r->npseudo) in the index: the
** caller's comes first, unless the caller withheld the number. */
static inline int rec_role(const rec_data *r, int i)
{
    return i || (r->flags & RF_WITHHELD) ? ROLE_CALLED : ROLE_CALLER;
}
/* Write record r's call-id and pseudonym index entries (r->flags has
** RF_TIDX), each pseudonym's with the value val (agent, outcome). */
int rec_index_put(MDB_txn *txn, sb_engine *e, uint32_t acct, const rec_data *r,
                  const uint8_t val[5]);
/* The key in *table of the call-id index entry of the record at rk with
** flags (k: REC_KEY_MAX + 3 bytes), and of record r's i-th pseudonym's
** (k: REC_RIDX_MAX bytes), for deletes put off. */
size_t rec_recid_entry(uint8_t *k, const uint8_t *rk, size_t rkl, int flags, int *table);
size_t rec_ridx_entry(uint8_t *k, uint32_t acct, const rec_data *r, int i, int *table);
/* Delete the pseudonym index entries of record r (key acct). */
int rec_ridx_del(MDB_txn *txn, sb_engine *e, uint32_t acct, const rec_data *r);
/* Read and delete the pseudonym index entry with ridx's key k, in the
** table that has it. */
int rec_ridx_get(MDB_txn *txn, sb_engine *e, const uint8_t *k, size_t kl, MDB_val *v);
int rec_ridx_del_key(MDB_txn *txn, sb_engine *e, const uint8_t *k, size_t kl);

/* The number of the agent a caller with this pseudonym last spoke to in a
** call that ended at `since` or later (0: none); call.previous_agent looks
** back REC_HISTORY_MS. */
#define REC_HISTORY_MS (90 * 86400000LL)
uint32_t rec_history(MDB_txn *txn, sb_engine *e, uint32_t acct, const uint8_t pseudo[16],
                     int64_t since);

/* Note that the directory's records keep every index entry in recidt and
** ridxt (sh->tidx_only) when recid and ridx are empty in a directory marked
** format 11 or later: at open, and after each sweep run until then (the
** upgrade walk empties them). Lookups then leave the old tables alone. */
int rec_tidx_settle(MDB_txn *txn, sb_engine *e);
/* Whether recid and ridx are empty (*empty), as rec_tidx_settle asks (the
** open asks before e->sh is set). */
int rec_old_empty(MDB_txn *txn, sb_engine *e, int *empty);
/* Whether recid and ridx may still hold entries. */
int rec_old_layout(const sb_engine *e);

/* The record at rk, whose stored value is val, with its index entries moved
** from recid and ridx to recidt and ridxt (format 11's walk, retention.c):
** 1 if it moved them, 0 if it had them there already (or is unreadable). */
int rec_reindex(MDB_txn *txn, sb_engine *e, const uint8_t *rk, size_t rkl, const void *val,
                size_t vl);

/* A walk over one pseudonym's index entries in ridx's order (role, end, call
** id), both tables' merged: rec_walk_after stands on the first entry after
** `after` (ridx's layout, 29 bytes at least; afterlen 0: the first), and
** rec_walk_next on the next: 0 with key, klen (ridx's layout) and val, or
** MDB_NOTFOUND at the end. The key is good until the next step. */
typedef struct rec_walk {
    MDB_txn *txn;
    sb_engine *e;
    uint32_t acct;
    uint8_t pseudo[16];
    st_iter old, cur;   /* ridx's entries; ridxt's of one period and role */
    int old_rc, new_rc; /* 0: that one stands on an entry */
    MDB_cursor *pc;     /* finds ridxt's periods */
    int role;
    unsigned period;
    uint8_t kb[REC_RIDX_MAX]; /* ridxt's entry in ridx's layout */
    size_t nklen;
    MDB_val nv;
    const uint8_t *key;
    size_t klen;
    MDB_val val;
    int from_old;
} rec_walk;
int rec_walk_after(rec_walk *w, MDB_txn *txn, sb_engine *e, uint32_t acct, const uint8_t pseudo[16],
                   const uint8_t *after, size_t afterlen);
int rec_walk_next(rec_walk *w);
void rec_walk_close(rec_walk *w);

/* Daily aggregates (DB_AGGR): counters of calls by the day they were offered
** in the account's time zone, per account (queue 0) and per queue, as
** sb_aggregates documents them: the account's row and the last queue's at
** the call's end (record_write), each queue it left when it left
** (rec_aggr_leave). A call ends as OUT_FAILED when the system ended it
** before an answer (a hangup or abandon by SB_END_SYSTEM).
** Key: acct(4) queue(4) day(4) then, for a zone other than UTC, the zone's
** name: day is the date's day number (days since 1970-01-01) on the wall
** clock of the account's "timezone" as it was when the figures were added.
** UTC rows, every row written before accounts had zones among them, are
** the 12 bytes alone; a day counted in two zones (the account's zone
** changed that day) has a row in each, which the answer tells apart. */
enum {
    AG_OFFERED,
    AG_ANSWERED,
    AG_ABANDONED,
    AG_REJECTED,
    AG_OVERFLOWED,
    AG_FAILED,
    AG_ANSWERED_SL,
    AG_WAIT_MS,
    AG_ANSWER_WAIT_MS,
    AG_TALK_MS,
    AG_MAX_WAIT_MS,
    AG_COUNT
};
int rec_aggr_decode(const MDB_val *val, uint64_t *v);
#define REC_DAY_MS 86400000LL
#define REC_AGGR_KEY_MAX (12 + REC_TZ_MAX)
/* Is tz UTC: NULL, "" (no zone set), "UTC" or "Etc/UTC"? */
int rec_tz_utc(const char *tz);
/* *day: the day number of the date at t_ms on zone tz's wall clock (a day of
** a change of offset is 23 or 25 hours long). -1 when the zone cannot be
** loaded, *day then the UTC one. */
int rec_day_in(const char *tz, int64_t t_ms, int64_t *day);

/* The module's state in the engine (e->rec). */
typedef struct rec_keyc {
    uint32_t acct;
    char id[SB_ID_MAX + 1];
    uint8_t key[32];
    uint8_t psub[32]; /* its pseudonyms' subkey (cr_pseudonym_subkey) */
} rec_keyc;

/* retention.c: decisions legal holds overrode, counted per hold for the
** log, which has one line per hold and sweep, erasure request or minute of
** records written, not one per record (the audit log has each). */
struct held_count;
typedef struct held_tally {
    struct held_count *v;
    int n, cap;
} held_tally;

typedef struct rec_state {
    pthread_mutex_t mu; /* the key cache (reads may run on any thread) */
    int keyfd;          /* data.keys */
    rec_keyc kc[64];
    uint64_t kc_epoch; /* key_epoch when kc was last known good */
    sb_buf tmp;        /* scratch, only under the write lock */
    /* retention.c: what a sweep run counted so far (its calls may be many,
    ** on any thread) and the records written since each hold's last line */
    pthread_mutex_t held_mu;
    held_tally held;
    int64_t tz_warned_ms; /* when a zone that cannot be loaded was last logged
                          ** (aggregates, under the write lock) */
    int apisub_lost;      /* the open took a new API-key hashing subkey (LOST_KEYS_ENV):
                          ** rec_apikey_settle marks the directory with it */
} rec_state;

/* --- retention.c ----------------------------------------------------------- */
/* Apply the account's retention policy to a record just written at rk
** (val, n: the value written, not read back). */
int ret_on_write(wtx *t, const uint8_t *rk, size_t rkl, const rec_settings *s, const void *val,
                 size_t n);
/* Erasure requests remembered for the record's pseudonyms that came while
** its call was live (offered at or before them) decide about the record
** just written at rk; a request is forgotten once no live call it covers
** is left (and no hold keeps a record from it). */
int ret_erase_on_write(wtx *t, const uint8_t *rk, size_t rkl, const char *call_id, int64_t offered,
                       const uint8_t pseudo[][16], int npseudo);
/* The retention policy changed: queue a job that reviews every record of the
** account (records written from now on carry epoch; older review entries
** are dropped). Returns 1 when queued, 0 when the account has no records. */
int ret_rescan(wtx *t, uint32_t acct, uint32_t epoch);
/* Account deleted (in its transaction): refuse while legal holds exist
** (SB_EHOLD), drop the settings and holds, and queue the purge of its
** records. The caller destroys the data key once this has committed. */
int ret_account_deleted(wtx *t, uint32_t acct);
/* SB_EHOLD (naming the first five) while the account has legal holds,
** which no deletion goes past; ret_account_deleted checks it first. */
int ret_account_holds(wtx *t, uint32_t acct);
/* A data directory of an earlier version is opened (in the transaction
** that marks it with this one's): queue the walk that gives each record
** stored as version 2 its review due (sweeps run it). Nothing is queued
** when the review index is empty, nor again while a walk is queued. */
int ret_upgrade_queue(MDB_txn *txn, sb_engine *e);
/* Queue the walk that moves the index entries of records written before
** format 11 to where this version writes them (records.c), if any has. */
int ret_reindex_queue(MDB_txn *txn, sb_engine *e);
/* Log what retention.c counted and has not said yet, and free it (sb_close). */
/* The counts of decisions holds overrode not said yet, said (sb_close, while
** the engine can still be read: the clock may read it). */
void ret_flush(sb_engine *e);
void ret_free(sb_engine *e);
/* Apply again the erasure requests and account deletions of the journal
** that data.mdb has not seen (restored from a backup taken before them; one
** cut short by a crash), in the journal's order: each logged at warn, an
** erasure request audited as one. Nothing to do without a journal, nor
** when it has not changed since this engine last read it to its end.
** sb_open runs it (to its end: budget_ms 0), and sb_sweep, so that a
** request another process left cut short is finished by a running
** daemon's sweeps, each going on with it for about budget_ms. */
int ret_erasures_catch_up(sb_engine *e, uint32_t budget_ms, sb_result *res);
/* SB_ESTORE, *refused set, when data.mdb has not seen an erasure request
** whose pseudonym the journal no longer holds and may hold records it
** erased (sb_open refuses it); other errors leave *refused 0. Reads the
** journal without its lock (and logs nothing of it); reads data.mdb only
** when the journal has such a request. */
int ret_journal_check(sb_engine *e, int *refused, sb_result *res);

/* --- journal.c: the erasure journal ---------------------------------------- */
/* EJR_PRUNED: an erasure request whose pseudonym was taken out at the
** journal's horizon (ejr_prune): its account and time stay. */
enum { EJR_ERASURE = 'e', EJR_DELETION = 'd', EJR_PRUNED = 'x' };

typedef struct ejr_entry {
    int kind; /* EJR_ERASURE or EJR_DELETION */
    uint64_t seq;
    uint32_t acct;
    char account[SB_ID_MAX + 1];
    uint8_t pseudo[16]; /* an erasure: the number's pseudonym */
    int64_t received;   /* an erasure: when received; a deletion: when deleted */
    int64_t created;    /* a deletion: when the account was created */
} ejr_entry;

typedef struct ejr {
    int fd; /* -1: no journal (opened without create) */
    char path[4096];
    ejr_entry *v; /* the whole entries, in order */
    size_t n, cap;
    uint64_t last;  /* the last entry's seq (0: none) */
    int64_t oldest; /* when its first whole erasure request was received
                       (INT64_MAX: none) */
    size_t good;    /* bytes of whole lines */
    size_t prev;    /* good before the last append */
    int torn;       /* bytes past good: an append cut short */
    int busy;       /* EJR_TRY, and another holds the lock: not opened */
} ejr;

/* EJR_PEEK: read only, no lock, nothing logged (what a crash or an append
** leaves half-written is ignored as at any open); ejr_close after. */
enum { EJR_CREATE = 1, EJR_TRY = 2, EJR_PEEK = 4 };

/* Open the data directory's journal (EJR_CREATE: make it when missing;
** else fd -1 when there is none), lock it (flock, exclusive; EJR_TRY: fd -1
** and busy when another holds it) and read its whole entries; a torn end
** is logged and left for ejr_append to write over. */
int ejr_open(sb_engine *e, int flags, ejr *j, sb_result *res);
/* Append x (its seq set by the caller) and sync it: on any failure
** nothing of it stays, SB_EFULL on a full disk, SB_ESTORE otherwise. */
int ejr_append(sb_engine *e, ejr *j, ejr_entry *x, sb_result *res);
/* Take back the entry the last ejr_append wrote (its request was refused). */
void ejr_unappend(sb_engine *e, ejr *j);
/* The pseudonyms of the erasure requests data.mdb has seen (seq up to
** seen) that were received before `before`, out of the journal: each such
** line becomes an EJR_PRUNED one, in a copy renamed over the file (synced,
** then its directory; its owner and mode the old one's), every other line
** as it was. *removed: how many; j as the file is now. */
int ejr_prune(sb_engine *e, ejr *j, uint64_t seen, int64_t before, size_t *removed, sb_result *res);
/* Unlock, close and free. */
void ejr_close(ejr *j);

/* ret_erasures_catch_up with the journal open and locked: sb_erase and
** sb_account_delete run it before they append their own entry. *applied
** (applied not NULL): set when an entry was unseen. */
int ret_journal_catch_up(sb_engine *e, const ejr *j, int *applied, sb_result *res);
/* In t: the seq the next entry of j takes (past both the journal's last and
** data.mdb's: a journal lost or begun again); data.mdb has seen the
** journal up to seq (in the entry's last transaction); the seq it has seen,
** read in a write transaction of its own (a thread may hold a read one). */
int ret_journal_next(wtx *t, const ejr *j, uint64_t *seq);
int ret_journal_seen_put(wtx *t, uint64_t seq);
int ret_journal_seen(sb_engine *e, uint64_t *seen, sb_result *res);
/* An entry in the audit log of t's account, for no call (source "hold":
** the account's legal holds decided it). */
int ret_audit_hold_note(wtx *t, const char *action, const char *reason);
/* An access request's entry in the account's audit log (acct: the number
** of `account` its records were read from): `taken` records disclosed as
** `format`, of a later page (later), more to follow (more); once written,
** the log line saying the same. Not 0: refused, res saying why. */
int ret_access_audit(sb_engine *e, const char *account, uint32_t acct, size_t taken,
                     sb_export_format format, int later, int more, sb_result *res);

/* The log lines of retention that print counts, made apart so that their
** counts, the engine's own (LOG_OWN), can be seen kept at any size. That a
** legal hold hold_id of `account` overrode deletes + anonymizes decisions
** (scope: HELD_*, where): */
enum { HELD_WRITE, HELD_SWEEP, HELD_ERASURE };
void ret_held_line(log_text *t, const char *account, const char *hold_id, int scope,
                   uint64_t deletes, uint64_t anonymizes);
/* That erasure request seq of the journal, for `account`, was applied again:
** all: records deleted, anonymized, kept, held and failed in all; before:
** deleted and anonymized before it was cut short (said if either is not 0). */
void ret_replay_line(log_text *t, uint64_t seq, const char *account, const uint64_t all[5],
                     const uint64_t before[2]);

/* entities.c: delete again the account a deletion entry x of the journal
** names, as data.mdb has not seen x; its live calls end with it (they are
** from before the deletion, which they could not have outlived). outcome:
** ACCT_AGAIN_DELETED (its data key slot overwritten too); ACCT_AGAIN_GONE:
** data.mdb has no account of that id, or another (its number or creation
** time differ: made again since); ACCT_AGAIN_HELD: legal holds keep it, as
** they keep sb_account_delete from it (why says which; audited). ended: its
** live calls ended. data.mdb has seen x after it, whichever. */
enum { ACCT_AGAIN_DELETED, ACCT_AGAIN_GONE, ACCT_AGAIN_HELD };
int acct_delete_again(sb_engine *e, const ejr_entry *x, int *outcome, uint32_t *ended, char *why,
                      size_t cap, sb_result *res);

#endif
