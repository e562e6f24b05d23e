/*
** engine.h — the engine handle, its LMDB layout and the write-transaction
** runner every event goes through.
**
** LMDB layout: one tree; each key starts with its table's byte (DB_* + 1),
** then (all integers big-endian so they sort):
**   meta      "schema" u32, "next_account" u32, "shared_gen" u64,
**             "deleted_gen" u64 (bumped by every account deletion)
**   names     kind(1) acct(4) id          -> num u32       id -> number maps
**   accounts  acct(4)                     -> account record
**   agents    acct(4) agent(4)            -> agent record
**   queues    acct(4) queue(4)            -> queue record
**   members   acct(4) queue(4) agent(4)   -> membership
**   agentq    acct(4) agent(4) queue(4)   -> membership     reverse of members
**   avail     acct(4) queue(4) agent(4)   -> avail record   available members
**   calls     acct(4) call id             -> call record     live calls
**   waiting   acct(4) queue(4) 100-prio(1) queued_ms(8) call id -> ""
**   timers    due_ms(8) kind(1) acct(4) ref -> ""
**   kv        acct(4) policy 0 key        -> typed value     policy stores
**   policies  acct(4) name                -> policy record  (acct 0: shared)
**   polhist   acct(4) 'h' name 0 ~seq(8)  -> a past upload or delete of it (own tree)
**             acct(4) 'o' seq(8)          -> name, bytes   (oldest first)
**             acct(4) 's'                 -> next seq, bytes kept
**   apikeys   acct(4) key_id              -> keyed hash
**   agentdocs acct(4) agent(4)            -> the agent's JSON document
**   queuedocs acct(4) queue(4)            -> the queue's JSON document
**   privacy   acct(4)                     -> retention settings (records.h)
**   holds     acct(4) hold id             -> a legal hold
**   records   acct(4) ended(8) call id    -> call record (finished calls, by time)
**   recid     acct(4) call id 0 ended(8)  -> ""   a call's records by call id
**   ridx      acct(4) pseudonym(16) role(1) ended(8) call id -> agent, outcome
**   recidt    acct(4) period(2) call id 0 ended(8) -> ""   (recid, ridx: before format 11)
**   ridxt     acct(4) period(2) pseudonym(16) role(1) ended(8) call id -> agent, outcome
**   aggr      acct(4) queue(4) day(4)     -> daily counters (queue 0: account)
**   review    due(8) acct(4) call id 0 ended(8) -> ""  retention reviews
**   jobs      kind(1) ...                 -> background work (purges, rescans)
**   audit     acct(4) seq(8)              -> retention action, no personal data
** Records, recid, ridx and aggr share the "records" tree (a call's end
** touches them all); review and jobs the "retention" tree; audit has its
** own, and so has polhist (an account's past policy sources, written only by
** its uploads and deletes). Records are keyed by time so that retention
** sweeps, which mostly meet records in the order they ended, read and write
** them in order; for the same reason a record's call-id and pseudonym index
** entries lead with the period it ended in (recidt, ridxt; records.c says
** more). Account data keys are not in LMDB at all (records.h says why).
**
** An agent's live state (status, statistics, dial URIs) is apart from its
** document (skills, schedule, preferences...), so the events that change
** the state every call never copy the document. agentq values hold the
** membership, so making an agent available reads one range.
**
** The avail index holds, for each queue, the members free to ring with the
** statistics a policy reads most, so an offer reads one contiguous range and
** an event's cost grows only with the queues the agent is in.
*/
#ifndef SB_ENGINE_H
/* The latest time the engine's clock reads: 9999-12-31T23:59:59.999Z (eng_now). */
#define SB_CLOCK_MAX 253402300799999LL
#define SB_ENGINE_H

#include "internal.h"
#include "model.h"
#include "policy.h"

#include <lmdb.h>
#include <pthread.h>

enum {
    DB_META,
    DB_NAMES,
    DB_ACCOUNTS,
    DB_AGENTS,
    DB_QUEUES,
    DB_MEMBERS,
    DB_AGENTQ,
    DB_AVAIL,
    DB_CALLS,
    DB_WAITING,
    DB_TIMERS,
    DB_KV,
    DB_POLICIES,
    DB_APIKEYS,
    DB_RECORDS,
    DB_AGENTDOCS,
    DB_QUEUEDOCS,
    DB_PRIVACY,
    DB_HOLDS,
    DB_RIDX,
    DB_RECID,
    DB_AGGR,
    DB_REVIEW,
    DB_JOBS,
    DB_AUDIT,
    DB_ERASURES, /* erasure requests a legal hold kept from records (retention.c) */
    DB_POLHIST,  /* accounts' past uploads and deletes of their policies (policies.c) */
    DB_RECIDT,   /* recid and ridx of records written since format 11 (records.c) */
    DB_RIDXT,
    DB_COUNT
};

/* The data directory's format. 2: agent records carry plain_devices (format
** 1 records still read). The first write of an engine marks the directory
** with this version (store.c, schema_settle), so an older Switchboard
** refuses it with a clear error rather than failing on the records written
** since; an open that writes nothing (a backup, a read) leaves it as it was. */
#define SCHEMA_VERSION                                                                             \
    12 /* 3: live calls keep their talk across transfers; 4: call records of                       \
       ** version 3 (records.h); 5: agent records keep a status asked for on a                     \
       ** call (model.c, agent format 3), and calls from withheld numbers (call                    \
       ** format 5, records flagged RF_WITHHELD, whose one pseudonym is the                        \
       ** called number's); 6: live calls keep the figures of the queue they                       \
       ** are in (call format 6); 7: agents keep when they last missed a ring                      \
       ** (agent format 4, availability format 2), API keys when they were                         \
       ** made (a longer value, which an earlier version does not verify);                         \
       ** 8: call records of version 4 (a rejected call's reason); 9: accounts'                    \
       ** policy histories (polhist), which an account's deletion by an earlier                    \
       ** version would leave behind; 10: accounts keep their limits and what                      \
       ** they have (account format 2), which an earlier version would not                         \
       ** count; 11: records' call-id and pseudonym index entries lead with                        \
       ** the period the call ended in (recidt, ridxt), which an earlier                           \
       ** version would not find; 12: audit values of version 2 (retention.c,                      \
       ** the strings their entries share written once), which an earlier                          \
       ** version would skip */

/* Name kinds in the names table. NK_QUEUE_GONE: a deleted queue's id,
** keyed by its number (its aggregates outlive it; numbers are never used
** again), kept until its account is deleted. */
/* NK_*_GONE: number -> id of a deleted queue or agent, kept for the records
** and live calls that name it by number. */
enum { NK_ACCOUNT = 'A', NK_AGENT = 'a', NK_QUEUE = 'q', NK_QUEUE_GONE = 'Q', NK_AGENT_GONE = 'G' };

/* Timer kinds. */
enum { TM_RING = 1, TM_WRAPUP, TM_WAKE, TM_MAXWAIT };

#define LAT_BUCKETS 12

typedef struct eng_stats {
    uint64_t events[8]; /* by sb_event_type; [0] tick, [7] errors */
    uint64_t dec_ring, dec_wait, dec_move, dec_reject, dec_fallback;
    uint64_t reloads;
    uint64_t lat_counts[LAT_BUCKETS + 1];
    uint64_t lat_sum_us, lat_n;
} eng_stats;

/* The LMDB environment of one data directory. LMDB forbids opening an
** environment twice in one process (POSIX record locks belong to the
** process: closing one handle's lock file drops the lock of every other), so
** all engines of a process on a data directory share one, refcounted
** (engine.c keeps the list). What belongs to the environment is here; what
** belongs to one engine stays in sb_engine. */
typedef struct eng_env {
    MDB_env *env;
    MDB_dbi dbi[DB_COUNT];    /* per table: the main tree, or a tree of its own */
    pthread_rwlock_t maplock; /* readers: every txn of every engine; writer: map growth */
    size_t map_size;
    /* The batch transaction open on the environment (one at most: LMDB has
    ** one writer), and its engine and thread: a write of that thread
    ** through another engine would wait for itself (store.c, txn_begin). */
    const void *batch_engine; /* NULL: none; set and read under the write lock's owner */
    pthread_t batch_thread;

    /* Syncs across every engine on the environment (store.c: "What is
    ** durable"). Commit numbers: commits by this process, numbered under the
    ** write lock. */
    pthread_mutex_t sync_mu;
    pthread_cond_t sync_cv;
    pthread_mutex_t fsync_mu; /* one sync of the file at a time, commits' included */
    int ordered;              /* commits sync their pages (not MDB_NOSYNC) */
    /* The format the directory had at open, when older than this version's:
    ** marked with this one by the first write (store.c, schema_settle), not
    ** by the open, so that a backup or a read taken with this version beside
    ** a running older one leaves the directory as that one can open it. */
    uint64_t schema_from;
    int schema_pending;
    /* Every record's index entries are in recidt and ridxt: recid and ridx
    ** were empty in a directory of format 11 or later (records.c,
    ** rec_tidx_settle), so lookups leave them alone. Read relaxed; once set
    ** it stays (only a version before format 11 writes those tables, and
    ** such a version does not open the directory). */
    int tidx_only;
    uint64_t meta_written; /* fsync_mu: the last commit that wrote its meta page */
    uint64_t lost_upto;    /* fsync_mu: meta pages up to this one a failed sync may have lost */
    int64_t sync_said_s;   /* fsync_mu: the second (monotonic) a failed sync was last logged */
    uint64_t sync_unsaid;  /* fsync_mu: failed syncs not logged since */
    uint64_t commit_seq;   /* commits begun */
    uint64_t commit_ended; /* the last commit that ended, well or not */
    uint64_t written;      /* the last commit that wrote something */
    uint64_t durable;      /* every commit up to this one is on disk */
    uint64_t sync_err;     /* lost_upto, as the waiters read it */
    int syncing;           /* a sync_upto is running */

    /* Zeros written ahead of the pages in use (store.c, zero_ahead): under
    ** the write lock. */
    size_t psize;  /* LMDB's page size */
    size_t zeroed; /* the file is written (not just reserved) up to here */
    int zero_off;  /* a write of zeros failed: no more tried */
    /* Free pages overwritten with zeros (store.c, "clearing free pages"):
    ** those LMDB lists under transaction ids up to here. */
    uint64_t scrubbed;
    /* With MDB_WRITEMAP a write transaction that did not commit may have
    ** written into free pages listed under ids already cleared: the next
    ** clearing reads every entry again (under the write lock). */
    int scrub_rescan;
    /* The map in use (store.c, eng_map_in_use: past_max, sb_stats): the
    ** bytes, and when they were counted (monotonic ns); read and written
    ** atomically. */
    int64_t inuse_bytes, inuse_at;
} eng_env;

struct sb_engine {
    sb_config cfg;
    char *data_dir, *policy_dir, *key_file, *pubkey;
    eng_env *sh;           /* shared with the process's other engines on data_dir */
    MDB_env *env;          /* sh->env and sh->dbi, copied for brevity */
    MDB_dbi dbi[DB_COUNT]; /* per table: the main tree, or a tree of its own */

    /* id -> number hints (see store.c); numbers are never reused, so a hint
    ** is checked by loading the record it names and comparing its id. */
    struct name_hint *hints;
    pthread_mutex_t hints_mu;

    pol_host *pol;
    uint64_t shared_gen;  /* shared policies generation this process loaded */
    uint64_t deleted_gen; /* account deletions seen (another engine's drop our
                          ** policy states of the accounts it deleted) */
    int gen_stale;        /* a commit of this engine changed shared_gen: the next
                          ** write transaction reads it (else only after someone
                          ** else's commit: txn_catch_up) */
    int dir_loaded;       /* the last load of policy_dir (at sb_open, sb_reload)
                          ** succeeded; 1 without one */
    char dir_error[384];  /* stats_mu: why it failed, "" if it did not */
    int txn_dirty;        /* the write transaction running now has changed
                          ** something through st_put/st_del (an empty commit
                          ** takes no transaction id); under the write lock */
    uint8_t master[32];
    uint8_t apisub[32]; /* the API-key hashing subkey (records.c, apisub_load) */

    pthread_mutex_t stats_mu;
    eng_stats st;

    /* A batch (sb_batch_begin): the owner thread's events share batch_txn,
    ** committed by sb_batch_end. batch_on is read by other threads (are
    ** they the owner?); the rest is the owner's. */
    int batch_on; /* 0 off, 2 being claimed (sb_batch_begin), 1 on */
    pthread_t batch_owner;
    MDB_txn *batch_txn;   /* open while the batch has events not committed */
    size_t batch_id;      /* its transaction id */
    uint64_t batch_num;   /* its last commit's number (store.c: commit_numbered) */
    size_t batch_done_id; /* ... and transaction id */
    int batch_committed;  /* some of it committed: sb_batch_end syncs for it */
    int batch_wrote_gen;  /* an event in it changed shared_gen */
    int batch_err;        /* a commit or an undo failed: the batch is void */
    /* An event's writes in a batch, undone if it fails (store.c): each
    ** entry the key and the value before (or none), undo_at[i] where
    ** entry i starts in undo. */
    int undo_on;
    sb_buf undo;
    int64_t timer_top; /* the latest due this engine appended to the timers (events.c) */
    size_t *undo_at, undo_n, undo_cap;

    /* Records read or written by this engine's write transactions, kept
    ** across them while nobody else writes (store.c: the record cache).
    ** vc_txn is the write transaction that may use it (read atomically: other
    ** threads compare their own transactions with it); vc_next the id the
    ** next transaction has if nobody else commits after this engine's last
    ** commit; vc_seq numbers those commits (under the write lock), and vc_ok,
    ** stored once one has succeeded, says the cache matches the store. */
    struct vc_slot *vc;
    MDB_txn *vc_txn;
    size_t vc_next;
    uint64_t vc_seq, vc_ok;
    uint64_t vc_gen; /* a slot of another generation is empty */
    /* The same for whole ranges read often (store.c: the range cache). */
    struct rc_slot *rc;
    uint64_t rc_writes; /* writes to the ranges' tables, counted */
    uint64_t rc_ver;    /* the last version given a kept range */

    /* Scratch used only under the LMDB write lock (one writer at a time). */
    MDB_txn *cur_txn; /* the write transaction running now, for callbacks */
    wbuf wb;
    wbuf wb2; /* records.c */
    call_rec call;
    struct cand_set *cands; /* events.c: candidates of the call being routed */
    pol_decision dec;
    struct rec_state *rec; /* records.c: data keys and per-transaction caches */
    int live_events;       /* events.c: sb_submit/sb_tick calls in flight; a
                           ** sweep ends its transaction early when one waits */
    unsigned forks;        /* eng_forks() when opened: another in a child of fork() */
    /* retention.c: the erasure journal as it was when this engine last
    ** caught up with it (size and modification time): a sweep catches up
    ** again when it changed. */
    long long ejr_size;
    struct timespec ejr_mtim;
    /* When the journal's first erasure request passes the horizon
    ** (INT64_MAX: none, or no horizon): a sweep reads it again then, the
    ** file unchanged or not; while a sighting stands (horizon_sighting), a
    ** day after it. Set with ejr_size, as is
    ** ejr_checked, the clock then: a sweep earlier by the clock reads it
    ** again, to reset the sighting. */
    int64_t ejr_prune_at, ejr_checked;
    /* events.c, sb_tick_for: a timer that fails is logged one line a second
    ** of the engine's clock; the others in between are counted into the
    ** next line. */
    int64_t timer_log_ms;
    unsigned timer_log_quiet;
};

/* fork(): an engine is its opening process's (LMDB forbids using an
** environment after fork()). eng_forks() counts the forks this process is
** the child of (pthread_atfork, watched from the first sb_open); an engine
** whose count differs refuses every transaction with ENG_EFORKED, which
** eng_mdb_err reports as SB_ESTATE, and sb_close leaves it alone. */
unsigned eng_forks(void);
#define eng_forked(e) ((e)->forks != eng_forks())
#define ENG_EFORKED (-30600) /* not an LMDB code (MDB_KEYEXIST..MDB_LAST_ERRCODE) */
/* A write through an engine while this thread holds another engine's batch
** transaction on the same data directory (store.c): SB_ESTATE. */
#define ENG_EOTHERBATCH (-30601)
/* A write from inside the clock or log function of an engine on the same
** data directory (store.c): SB_ESTATE. The function may run inside the
** write transaction of the call that called it, and a write there would
** wait for that transaction, held by its own thread, for ever. */
#define ENG_ECALLBACK (-30602)
/* Whether this thread is running the clock or log function of an engine on
** e's data directory (engine.c). */
int eng_in_callback(const sb_engine *e);
/* A function of the caller's that engine e runs on this thread, from
** eng_cb_enter before the call to eng_cb_leave after it. Writes on e's data
** directory are refused from inside its clock and log functions, not from
** a sweep's progress; sb_close of e is refused inside any. */
enum { ENG_CB_CLOCK, ENG_CB_LOG, ENG_CB_PROGRESS };
typedef struct eng_cb {
    const sb_engine *e;
    int kind; /* ENG_CB_* */
    struct eng_cb *up;
} eng_cb;
void eng_cb_enter(eng_cb *f, const sb_engine *e, int kind);
void eng_cb_leave(eng_cb *f);

/* One write transaction in progress. */
typedef struct wtx {
    sb_engine *e;
    MDB_txn *txn;
    sb_result *res;
    int64_t now;
    /* An event's: the clock when it came, before its time was raised to
    ** that of the call or agent it changes (events.c, time_floor); 0: now
    ** as it was read. */
    int64_t clock;
    uint32_t acct;     /* account of the event, once resolved */
    acct_rec *account; /* loaded account, when resolved */
    acct_rec account_buf;
    int depth;     /* dispatch recursion guard */
    int wrote_gen; /* the transaction changes shared_gen (policies.c) */
    /* fn's SB_EFULL is a file outside the map that could not grow (data.keys
    ** on a full disk): final, where another SB_EFULL is a full map to grow. */
    int no_room;
} wtx;

typedef int (*write_fn)(wtx *t, void *arg);

/* Run fn inside one write transaction: begin, fn, commit, and sync per the
** engine's mode. On MDB_MAP_FULL the map grows (if allowed) and fn runs
** again from scratch. Returns fn's code or a storage error. */
int eng_write(sb_engine *e, write_fn fn, void *arg, sb_result *res);
/* The same for writes that free space (deletes) or finish work in progress
** (the events of calls already taken, timers): they may grow the map into a
** reserve past map_max, so a full map can still be emptied, and the calls
** it holds can end while new ones are refused. */
int eng_write_ex(sb_engine *e, write_fn fn, void *arg, sb_result *res, int freeing);
/* An event's write: inside the calling thread's batch when it has one open
** (sb_batch_begin), else as eng_write_ex (freeing: as there). */
int eng_write_event(sb_engine *e, write_fn fn, void *arg, sb_result *res, int freeing);
/* Commit the calling thread's open batch transaction, if any (before what
** needs the write lock or a transaction of its own: LMDB allows a thread
** one); a failure voids the batch (sb_batch_end reports it). */
void eng_batch_settle(sb_engine *e);
/* The batch's undo log and memory (sb_close). */
void eng_batch_free(sb_engine *e);
void st_cache_free(sb_engine *e);
void st_cache_forget(sb_engine *e, int table);

/* The request's account in txn; SB_ENOTFOUND ("no such account 'id'") or a
** storage error, with res set. */
int eng_account(MDB_txn *txn, sb_engine *e, const char *account, acct_rec *a, sb_result *res);
/* A read transaction and the account in it; on success the caller ends the
** transaction with eng_read_end, on failure it is ended and res says why. */
int eng_read_account(sb_engine *e, const char *account, MDB_txn **txn, acct_rec *a, sb_result *res);
/* Run fn holding the write lock, writing nothing: for what only writes may
** otherwise touch (the policy host: a read beside a routing event on another
** thread could meet what that event frees). Not from inside a write (a log
** callback): the lock is not recursive. */
int eng_write_locked(sb_engine *e, void (*fn)(sb_engine *e, void *arg), void *arg);
/* Run fn in a write transaction that is always aborted and does not mark
** the directory's format: a read under the write lock from a thread that
** may hold a read transaction already (LMDB gives a thread one). */
int eng_write_peek(sb_engine *e, write_fn fn, void *arg, sb_result *res);
/* Around a write transaction begun other than by txn_begin (sb_open's):
** the stop signals held back while it runs (sb_defer_stop_signals). */
void eng_stops_hold(void);
void eng_stops_release(void);
/* A read transaction; release with eng_read_end. */
int eng_read_begin(sb_engine *e, MDB_txn **txn);
void eng_read_end(sb_engine *e, MDB_txn *txn);

/* Map an LMDB error to an SB_E* code with a message in res, which says
** what to do next where there is something to do (make room, restore). */
int eng_mdb_err(sb_result *res, int rc, const char *what);
/* What a message about a data file that is not whole tells to do. */
#define ENG_RESTORE_HINT                                                                           \
    "restore the data directory from a backup (made by switchboard backup; switchboard(1), "       \
    "backup, says how)"

int64_t eng_now(sb_engine *e);
/* A size for a log line in the largest unit it reaches: "512 KiB", "1.5 GiB". */
const char *eng_size_str(char *buf, size_t cap, size_t bytes);
/* The largest the map grows: map_max, 64 GiB when it is 0. */
size_t effective_map_max(const sb_config *cfg);
/* The bytes of the map in use (store.c): its pages up to the last one used
** less the free pages LMDB may hand out again, a walk of its free list; a
** count taken less than max_age_ns ago (by any engine on the environment)
** is taken as it is. -1 when it cannot be read. Not inside a transaction
** of the calling thread's (it takes the map lock and a read transaction). */
int64_t eng_map_in_use(sb_engine *e, int64_t max_age_ns);
/* Is the map past map_max, in its reserve, with too little below map_max
** free for a write that may not use the reserve (store.c, past_max: a new
** call or document is refused so, SB_EFULL "map_max reached")? The count
** of pages in use as eng_map_in_use takes it, max_age_ns. */
int eng_map_max_reached(sb_engine *e, int64_t max_age_ns);
/* Count an event of type (sb_event_type, 0 a tick, -1 none: counted only when it
** failed) and its latency. */
void eng_count_event(sb_engine *e, int type, int failed, uint64_t us);

/* --- keyed access helpers (store.c) -------------------------------------- */
/* LMDB's order of two keys of a table without a comparator of its own. */
int st_key_cmp(const MDB_val *a, const MDB_val *b);
int st_get(MDB_txn *txn, sb_engine *e, int table, const void *k, size_t kl, MDB_val *v);
/* st_get through the write transaction's record cache (store.c): v is valid
** until the next call into the store. */
int st_get_hot(MDB_txn *txn, sb_engine *e, int table, const void *k, size_t kl, MDB_val *v);
int st_put(MDB_txn *txn, sb_engine *e, int table, const void *k, size_t kl, const void *v,
           size_t vl);
/* st_put of a key expected to sort after every key of its table, whose tree
** is its own (DB_TIMERS): appended without a search (MDB_APPEND), or, when
** it does not sort last, put as st_put does. */
int st_put_last(MDB_txn *txn, sb_engine *e, int table, const void *k, size_t kl, const void *v,
                size_t vl);
/* Put only if the key is new: MDB_KEYEXIST otherwise, nothing written. */
int st_put_new(MDB_txn *txn, sb_engine *e, int table, const void *k, size_t kl, const void *v,
               size_t vl);
/* Delete; a missing key is not an error (st_del_exact reports MDB_NOTFOUND). */
int st_del(MDB_txn *txn, sb_engine *e, int table, const void *k, size_t kl);
int st_del_exact(MDB_txn *txn, sb_engine *e, int table, const void *k, size_t kl);

/* Walk the records of a table whose keys start with a prefix:
**   for (rc = st_iter_open(&it, txn, e, DB_X, p, n); rc == 0; rc = st_iter_next(&it))
**       ... it.key / it.klen (without the table byte), it.v ...
**   st_iter_close(&it);   -- rc ends as MDB_NOTFOUND, or an error
** st_iter_del deletes the current record and moves to the next. */
typedef struct st_iter {
    MDB_cursor *c;
    sb_engine *e;
    uint8_t pre[256];
    size_t plen;
    MDB_val k, v;
    const uint8_t *key;
    size_t klen;
    /* st_iter_hot (store.c: the range cache): the copy read (rs, at entry
    ** ri), or the copy being taken as the cursor walks (build). */
    struct rc_slot *rs, *build;
    size_t ri;
    uint64_t build_writes;
} st_iter;
int st_iter_open(st_iter *it, MDB_txn *txn, sb_engine *e, int table, const void *prefix,
                 size_t plen);
/* The same, starting just after the key `after` (without the table byte;
** all of them when afterlen is 0): a cursor kept between transactions, or
** between batches of one, carries on where it stopped without walking what
** it did. */
int st_iter_after(st_iter *it, MDB_txn *txn, sb_engine *e, int table, const void *prefix,
                  size_t plen, const uint8_t *after, size_t afterlen);
/* The same, starting at the last key at or before `at` (without the table
** byte) within the prefix, or at the prefix's first key when there is none:
** for values keyed by the first of the numbered entries they hold, the one
** holding entry `at`. */
int st_iter_floor(st_iter *it, MDB_txn *txn, sb_engine *e, int table, const void *prefix,
                  size_t plen, const uint8_t *at, size_t atlen);
/* st_iter_open for reading the entries of one agent's memberships, one
** queue's available agents or its line (DB_AGENTQ, DB_AVAIL, DB_WAITING;
** plen 8) in a write
** transaction: from the range cache when it holds them (store.c), which the
** walk fills otherwise. Nothing may be written before the walk ends, and
** st_iter_del is not for it. */
int st_iter_hot(st_iter *it, MDB_txn *txn, sb_engine *e, int table, const void *prefix,
                size_t plen);
/* What a caller keeping something made from a kept range needs to keep it
** up to date (events.c: a queue's candidates) instead of reading the range
** again: the copy's version (0: not kept), which every change moves on,
** and the edits that led from version `since` to now, oldest first. The
** same conditions as st_iter_hot's; nothing is written meanwhile. */
enum { ST_EDIT_INS = 1, ST_EDIT_SET, ST_EDIT_DEL, ST_EDITS_MAX = 8 };
typedef struct st_edit {
    uint32_t at; /* the entry's index in the range, as of the edit */
    uint8_t op;  /* ST_EDIT_*: a new entry at, entry at rewritten, removed */
} st_edit;
uint64_t st_range_version(MDB_txn *txn, sb_engine *e, int table, const void *prefix);
/* The edits since (at most ST_EDITS_MAX), with the version (*now) and the
** number of entries (*n) now: their count, or -1 when the copy is not
** kept or they are not known (too many, or the copy was taken again). */
int st_range_edits(MDB_txn *txn, sb_engine *e, int table, const void *prefix, uint64_t since,
                   st_edit *out, uint64_t *now, size_t *n);
/* Entry i of the kept copy (key with its table byte, as st_iter's k): 0, or -1. */
int st_range_entry(MDB_txn *txn, sb_engine *e, int table, const void *prefix, size_t i, MDB_val *k,
                   MDB_val *v);
int st_iter_next(st_iter *it);
int st_iter_del(st_iter *it);
void st_iter_close(st_iter *it);

/* A key of a policy's store (DB_KV): acct, policy name, 0, key (klen 0:
** the prefix of the whole store). k holds 5 + SB_NAME_MAX + klen bytes. */
size_t st_kv_key(uint8_t *k, uint32_t acct, const char *policy, const char *key, size_t klen);
/* Delete the whole store of a policy of an account; *dropped (when not
** NULL): the entries it held, 0 when it had none. */
int st_kv_drop(MDB_txn *txn, sb_engine *e, uint32_t acct, const char *policy, size_t *dropped);

/* Resolve an id to its number (0 when missing). */
int st_name_get(MDB_txn *txn, sb_engine *e, int kind, uint32_t acct, const char *id, uint32_t *num);
int st_name_put(MDB_txn *txn, sb_engine *e, int kind, uint32_t acct, const char *id, uint32_t num);
int st_name_del(MDB_txn *txn, sb_engine *e, int kind, uint32_t acct, const char *id);
/* A deleted queue's id by its number: put when it is deleted; read into
** id (SB_ID_MAX + 1 bytes), MDB_NOTFOUND for none. */
int st_gone_put(MDB_txn *txn, sb_engine *e, int kind, uint32_t acct, uint32_t num, const char *id);
int st_gone_id(MDB_txn *txn, sb_engine *e, int kind, uint32_t acct, uint32_t num, char *id);
/* An agent's id by number: the agent's, or the one a deleted agent had
** (NK_AGENT_GONE); "" when neither. Fills a (loaded, or just its id). */
const char *st_agent_id_of(MDB_txn *txn, sb_engine *e, uint32_t acct, uint32_t num, agent_rec *a);

/* Load an account by id (SB_ENOTFOUND when missing). */
int st_account_by_id(MDB_txn *txn, sb_engine *e, const char *id, acct_rec *out);
int st_account_load(MDB_txn *txn, sb_engine *e, uint32_t num, acct_rec *out);
int st_account_save(MDB_txn *txn, sb_engine *e, const acct_rec *a);
int st_agent_load(MDB_txn *txn, sb_engine *e, uint32_t acct, uint32_t num, agent_rec *out);
int st_agent_by_id(MDB_txn *txn, sb_engine *e, uint32_t acct, const char *id, agent_rec *out);
int st_agent_save(MDB_txn *txn, sb_engine *e, uint32_t acct, const agent_rec *a);
int st_agent_doc_load(MDB_txn *txn, sb_engine *e, uint32_t acct, uint32_t num, sb_buf *out);
int st_agent_doc_save(MDB_txn *txn, sb_engine *e, uint32_t acct, uint32_t num, const sb_buf *doc);
/* Documents of agents (DB_AGENTDOCS) and queues (DB_QUEUEDOCS). */
int st_doc_load(MDB_txn *txn, sb_engine *e, int table, uint32_t acct, uint32_t num, sb_buf *out);
int st_doc_save(MDB_txn *txn, sb_engine *e, int table, uint32_t acct, uint32_t num, const char *doc,
                size_t len);
int st_queue_load(MDB_txn *txn, sb_engine *e, uint32_t acct, uint32_t num, queue_rec *out);
int st_queue_by_id(MDB_txn *txn, sb_engine *e, uint32_t acct, const char *id, queue_rec *out);
int st_queue_save(MDB_txn *txn, sb_engine *e, uint32_t acct, const queue_rec *q);
int st_call_load(MDB_txn *txn, sb_engine *e, uint32_t acct, const char *id, call_rec *out);
/* Is a call of that id live (its record not written yet)? */
int st_call_exists(MDB_txn *txn, sb_engine *e, uint32_t acct, const char *id);
int st_call_save(MDB_txn *txn, sb_engine *e, uint32_t acct, const call_rec *c);
int st_call_del(MDB_txn *txn, sb_engine *e, uint32_t acct, const char *id);

/* The per-account policy generation and the shared one. */
int st_meta_u64(MDB_txn *txn, sb_engine *e, const char *key, uint64_t *v);
int st_meta_put_u64(MDB_txn *txn, sb_engine *e, const char *key, uint64_t v);
/* This transaction removes personal data: the free pages it and those
** before it leave are to be cleared (eng_scrub). */
void eng_scrub_want(MDB_txn *txn, sb_engine *e);
/* Overwrite with zeros the free pages that may hold what was removed. */
int eng_scrub(sb_engine *e); /* a failure is logged */

/* Key builders. */
size_t key_acct(uint8_t *k, uint32_t acct);
size_t key_acct2(uint8_t *k, uint32_t acct, uint32_t a);
size_t key_acct3(uint8_t *k, uint32_t acct, uint32_t a, uint32_t b);

/* --- entities.c ------------------------------------------------------------ */
/* Resolve the event's account into t (SB_ENOTFOUND if unknown). */
int tx_account(wtx *t, const char *account);
/* Quotas: the account document's "limits" (entities.c), by LIM_*, checked
** against the counts the account record keeps (acct_rec.used), so a check
** costs nothing but the account read every write does. acct_take: one more
** for t's account, SB_ELIMIT naming "limits.<name>" (and nothing counted)
** when it has its limit already; acct_give one fewer. Neither saves the
** account: the caller does, in its transaction (acct_give_save gives and
** saves). An account whose counts are not kept yet (stored before account
** format 2, until its next put) has no limits: both do nothing. */
const char *lim_name(int lim);
int acct_at_limit(const acct_rec *a, int lim);
int acct_take(wtx *t, int lim);
void acct_give(wtx *t, int lim);
int acct_give_save(wtx *t, int lim);
/* Whether a's live calls are counted: only while it has a limit on them,
** so that an offer and a call's end write the account then alone. */
int acct_live_kept(const acct_rec *a);

/* --- events.c ---------------------------------------------------------------- */
/* The agent's status changed to/from available: keep the avail index right. */
int agent_set_avail(wtx *t, agent_rec *a, int available);
/* An available agent's entry in one queue it is a member of (with m): what
** a membership added or changed needs (nothing for an agent not available). */
int agent_avail_in(wtx *t, const agent_rec *a, uint32_t queue, const member_rec *m);
/* Try to route waiting calls of the agent's queues (an agent freed up). */
int dispatch_agent(wtx *t, const agent_rec *a);
/* Try to route waiting calls of one queue. */
int dispatch_queue(wtx *t, uint32_t queue);
/* A queue with calls waiting whose members can take none any more (each
** offline or paused, or none): its waiting calls are decided again at the
** next tick. */
int queue_emptied(wtx *t, uint32_t queue);
/* The same for each queue of agent a, whose status was `old`, when it went
** from one that can take calls to offline or paused. */
int agent_left(wtx *t, const agent_rec *a, int old);
/* Free what events.c keeps in the engine. */
void events_free(sb_engine *e);

/* --- policy sources (policies.c) --------------------------------------------- */
int policies_source(void *arg, uint32_t acct, const char *name, sb_buf *src, char version[17],
                    int64_t *stamp);
/* 0 when the engine runs unsigned policies or src (named name) is signed
** with its key; else SB_EPOLICY naming "signature". */
int policy_signature_check(sb_engine *e, const char *name, const char *src, size_t len,
                           sb_result *res);
/* The same through txn (a read or write transaction of the caller's). */
int policies_source_at(MDB_txn *txn, sb_engine *e, uint32_t acct, const char *name, sb_buf *src,
                       char version[17], int64_t *stamp);
/* SB_EINVAL naming field when neither the account nor policy_dir has the
** policy `name` (a typo would otherwise show only when calls arrive). */
int policy_must_exist(wtx *t, uint32_t acct, const char *name, const char *field);
/* The same, and SB_EINVAL when the policy does not define `hook`
** (POL_HOOK_*): a queue needs route, a retention setting retain, or when
** it is stored and does not run (signatures; `kept`, the name the queue or
** setting holds already, is left to the logs). by_default: NULL for a name
** the document gave; for a default it left unnamed (a queue's
** longest-idle), where the name came from: a policy not stored is then no
** error (its calls take the fallback, as for an engine without a
** policy_dir), and a refusal's message ends with it in brackets. */
int policy_must_have(wtx *t, uint32_t acct, const char *name, const char *kept, const char *field,
                     unsigned hook, const char *by_default);
int policies_reload_dir(sb_engine *e, sb_result *res, int *changed);
/* With require_signed_policies, log the queues and retention settings whose
** policy is stored but does not run (one line a policy and account). */
void policies_report_unrun(sb_engine *e);

#endif
