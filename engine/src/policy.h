/*
** policy.h — the narrow interface between the engine core and the Lua policy
** runtime. The core never touches a lua_State: it hands the runtime plain C
** views (pol_call, pol_cand, pol_queue) and gets back a validated
** pol_decision. Everything Lua — sandboxed states (one per account), budgets,
** loading, quarantine, views, decision checking — lives behind this header
** (sandbox.c, views.c, polhost.c, policytest.c).
**
** Threading: the core calls pol_route()/pol_host_* only while it holds the
** LMDB write transaction, so one thread at a time per engine; the runtime
** needs no locks of its own for that. sb_policy_check/sb_policy_test use
** private states and may run on any thread.
*/
#ifndef SB_POLICY_H
#define SB_POLICY_H

#include "internal.h"

#define POL_MAX_RING 32  /* agents in one ring decision (any mode) */
#define POL_MAX_STEP 600 /* seconds between agents of a progressive ring */
#define POL_MAX_PAUSE 8  /* agents paused by one decision */
#define POL_MAX_MOVES 8  /* queue moves in a call's life (a policy's, an overflow's) */
/* The reason a move or a reject without one of its own is sent and stored
** with (events.c); the case runner shows the same (policytest.c). */
#define POL_MOVE_REASON "moved by policy"
#define POL_REJECT_REASON "rejected"

/* Devices, as bits (shared with schedule.h's DEV_*). */
enum { POL_DEV_LANDLINE = 1, POL_DEV_MOBILE = 2, POL_DEV_SOFTPHONE = 4 };

/* One eligible agent (a member of the call's queue, available now). */
typedef struct pol_cand {
    const char *id;
    uint32_t num;       /* the engine's number for the agent (opaque here) */
    int64_t idle_since; /* ms */
    int64_t last_call;  /* ms, 0 = never */
    int64_t missed_at;  /* ms: its last ring it did not answer ended; 0 = none */
    int64_t talk_ms;
    uint32_t calls_taken;
    uint32_t no_answers;
    double weight; /* the agent's weight */
    int32_t tier, position, penalty;
    double member_weight;
    unsigned devices; /* POL_DEV_* the agent has a URI for */
    /* 1: the document is known to hold nothing that picks a device (no
    ** schedule, no preferences), so choosing the default device skips it. */
    int plain_devices;
    /* The agent's stored JSON document (name, devices, skills, preferences,
    ** timezone, schedule...), read lazily: only when the policy asks for a
    ** field that needs it. Valid for the duration of the pol_route call. */
    const char *config;
    size_t config_len;
    json_t *doc; /* runtime's cache of the parsed config; NULL at entry,
                 ** the runtime frees it before pol_route returns */
    /* When config is NULL at entry, the runtime calls load(load_arg, c) the
    ** first time it needs the document; load fills config/config_len (valid
    ** until pol_route returns) and returns 0, or nonzero when unavailable
    ** (the lazy fields then read as empty). */
    int (*load)(void *load_arg, struct pol_cand *c);
    void *load_arg;
} pol_cand;

typedef struct pol_call {
    const char *id, *queue;
    const char *caller, *called; /* called may be NULL */
    int priority;
    double waited, queue_waited; /* seconds */
    double since_last_ring;      /* seconds since the last ring attempt ended; < 0: none has */
    int attempts;
    const char *last_agent;     /* may be NULL */
    const char *previous_agent; /* caller history; may be NULL */
    /* When previous_agent is NULL and history is set, the runtime calls
    ** history(history_arg) the first time the policy reads it: the id
    ** (valid until pol_route returns) or NULL. Most policies never ask, and
    ** the lookup reads the caller's record index. */
    const char *(*history)(void *history_arg);
    void *history_arg;
    const char *attrs; /* JSON object text; may be NULL */
    size_t attrs_len;
    size_t ntried;
    const char *const *tried_ids; /* ntried agent ids rung for this call */
    const int *tried_n;           /* how often each */
    int moves; /* queue moves so far: a move decision at POL_MAX_MOVES is invalid */
} pol_call;

typedef struct pol_queue {
    const char *id;
    int waiting, members, available, position;
    double longest_wait; /* seconds */
    int ring_timeout;    /* the queue's default ring seconds */
    /* When set, position and longest_wait are worked out by line(line_arg)
    ** the first time a policy reads either (a walk of the line; 0 or an
    ** SB_* code), and the two fields above are not used. */
    int (*line)(void *arg, int *position, double *longest_wait);
    void *line_arg;
    /* Members not offline, and paused ones: logged_in and paused, or, when
    ** staff is set, worked out by staff(line_arg) the first time a policy
    ** reads either (a walk of the members: 0 or an SB_* code). */
    int logged_in, paused;
    int (*staff)(void *arg, int *logged_in, int *paused);
    /* When set, a move decision's queue is looked up with it (1 the account
    ** has it, 0 not, or an SB_* code): a missing one is an invalid decision. */
    int (*queue_exists)(void *arg, const char *id);
} pol_queue;

/* The policy's key-value store, implemented by the core inside the event's
** transaction. Values are typed: 's' string, 'n' number (double), 'i'
** integer, 'b' boolean. get returns 1 found, 0 missing, <0 error; set with
** type 0 deletes. The store keeps POL_KV_KEYS_MAX keys at most: room gives
** how many may still be added (<0 on error), and added(n) tells it a call's
** writes added n keys (removed -n); both may be NULL (no limit kept). */
#define POL_KV_KEYS_MAX 10000
typedef struct pol_kv {
    int (*get)(void *arg, const char *key, size_t klen, char *type, sb_buf *val);
    int (*set)(void *arg, const char *key, size_t klen, char type, const void *val, size_t vlen);
    long (*room)(void *arg);
    int (*added)(void *arg, long n);
    void *arg;
} pol_kv;

enum pol_kind { DEC_RING = 1, DEC_WAIT, DEC_MOVE, DEC_REJECT };

typedef struct pol_decision {
    int kind;
    int nring;
    struct {
        int cand; /* index into the cands array */
        int dev;  /* one POL_DEV_* bit, already defaulted */
    } ring[POL_MAX_RING];
    int sequence;                   /* 1: ring one after another */
    int step;                       /* > 0: progressive: one more agent joins every step
                                    ** seconds, the earlier ones ring on (sequence is 0) */
    int timeout;                    /* ring seconds (1..600), defaulted from the queue; for a
                                    ** progressive ring, the whole ring's */
    int wait;                       /* DEC_WAIT: seconds, 0 = until an agent frees up */
    char queue[SB_ID_MAX + 1];      /* DEC_MOVE */
    char reason[SB_REASON_MAX + 1]; /* DEC_MOVE, DEC_REJECT */
    int npause;
    struct {
        char agent[SB_ID_MAX + 1];
        char reason[SB_REASON_MAX + 1];
    } pause[POL_MAX_PAUSE];
    /* Provenance, filled in every case (also on failure). */
    char policy[SB_NAME_MAX + 1];
    char version[17];
    int failed;      /* 1: the policy failed; `error` says why */
    char error[512]; /* "file:line: message" or a validation message */
} pol_decision;

/* Budgets and switches, from sb_config. */
typedef struct pol_limits {
    uint64_t instructions; /* per hook call */
    uint32_t wall_ms;      /* per hook call */
    size_t memory;         /* per account state */
    uint32_t quarantine_after;
    uint64_t load_instructions; /* running a file's top level */
    /* Scenario cases one validation may run, and the wall clock they may
    ** take in all (checked before each case, so one hook's wall_ms more at
    ** most); 0: no limit. An account's upload sets them: its cases run on
    ** the caller's thread, the daemon's one event loop. */
    uint32_t cases_max;
    uint32_t cases_wall_ms;
} pol_limits;

/* The budgets an engine opened with cfg gives its policies (a top level
** loads under ten times policy_instructions, a budget past UINT64_MAX / 10
** taken as that, so the product cannot wrap round to a few instructions). */
pol_limits pol_limits_of(const sb_config *cfg);

/* Where the runtime gets policy sources: fill src and version (16 hex) for
** `name` as seen by account `acct` (the account's own first, then shared),
** and *stamp with when it was stored (0 when unknown): a source stored again
** is a new one to the failure counts, even with the same text.
** Returns 0, SB_ENOTFOUND, SB_EPOLICY (stored, but not to run: signatures
** are required and it has no valid one; version and stamp are filled), or
** another SB_E* code (unavailable for now: asked again at the next use). */
typedef int (*pol_source_fn)(void *arg, uint32_t acct, const char *name, sb_buf *src,
                             char version[17], int64_t *stamp);

/* Log sink for policy failures and ctx.log lines: a line as formatted, its
** counts the host's own (LOG_OWN), for the sink to redact. */
typedef void (*pol_log_fn)(void *arg, sb_log_level lvl, const log_text *line);

typedef struct pol_host pol_host;

pol_host *pol_host_new(const pol_limits *lim, pol_source_fn src, void *src_arg, pol_log_fn log,
                       void *log_arg);
void pol_host_free(pol_host *h);

/* The account's policies changed (gen differs from what its state was built
** with): its state is rebuilt on next use. Cheap to call on every event. */
void pol_host_sync_gen(pol_host *h, uint32_t acct, uint64_t gen);
/* The generation the account's state was last synced to: 1 and *gen, or 0
** when there is none (its status is then empty). */
int pol_host_gen(pol_host *h, uint32_t acct, uint64_t *gen);
/* Policy `name` of the account was uploaded or deleted: it starts afresh
** (no failures, no quarantine) while the account's other policies keep
** theirs across the rebuild pol_host_sync_gen makes. */
void pol_host_lift(pol_host *h, uint32_t acct, const char *name);
/* Drop every state (shared policies changed); rebuilt lazily. Lifts every
** quarantine. */
void pol_host_flush(pol_host *h);
/* Drop one account's state (account deleted). */
void pol_host_drop(pol_host *h, uint32_t acct);
/* Drop the state of every account keep() says is gone (deleted by another
** engine or process). */
int pol_host_prune(pol_host *h, int (*keep)(void *arg, uint32_t acct), void *arg);

/* Reset a decision: kind, counts, texts, failed (the arrays are read only
** up to their counts). pol_route starts with it. */
void pol_decision_clear(pol_decision *o);

/* Ask `policy`'s route hook for a decision. Always fills `out` with a valid
** decision or with failed=1 and error set (the caller applies the queue's
** fallback). `seed` seeds ctx.random. Returns 0, or SB_ENOMEM. */
int pol_route(pol_host *h, uint32_t acct, const char *account_id, const char *policy,
              const pol_call *call, pol_cand *cands, size_t ncands, const pol_queue *q,
              const pol_kv *kv, int64_t now_ms, uint64_t seed, pol_decision *out);

/* --- retention hooks --------------------------------------------------------
** retain(record, ctx) when a record is written and at each review date;
** erase(record, request, ctx) for each record of a number whose erasure was
** requested. The record view never holds personal data: no numbers, no
** attributes the account marks personal. */

typedef struct pol_attempt {
    const char *agent;   /* agent id */
    int dev;             /* POL_DEV_* */
    const char *outcome; /* "answered", "no_answer", "busy", "rejected", "cancelled" */
    int64_t start_ms;
    int32_t dur_ms;
} pol_attempt;

typedef struct pol_record {
    const char *id, *queue, *first_queue;
    const char *outcome;  /* answered, abandoned, failed or rejected */
    const char *agent;    /* the agent who answered; NULL if none */
    const char *reason;   /* why a rejected call was turned away; NULL if none */
    const char *ended_by; /* "caller", "agent", "system"; NULL when not said */
    int64_t offered_ms, answered_ms, ended_ms; /* answered_ms 0: never answered */
    int64_t wait_ms, talk_ms;
    int priority;
    int anonymized;    /* its sealed fields are gone already */
    int legal_hold;    /* a legal hold covers it: delete/anonymize will be overridden */
    int overridden;    /* its previous retention decision was overridden by a hold */
    const char *attrs; /* JSON object text (personal attributes removed); may be NULL */
    size_t attrs_len;
    int natt; /* ring attempts */
    /* Fill the i-th attempt (0 <= i < natt); strings valid until the next
    ** call. 0, or nonzero when unreadable. */
    int (*attempt)(void *arg, int i, pol_attempt *out);
    void *attempt_arg;
    int nversions; /* the routing policies (and versions) that decided */
    const char *const *policies;
    const char *const *versions;
} pol_record;

typedef struct pol_erasure {
    const char *role;    /* the number was this record's "caller" or "called" */
    int64_t received_ms; /* when the request was made */
} pol_erasure;

enum pol_ret { RET_NONE = 0, RET_KEEP, RET_ANONYMIZE, RET_DELETE };

typedef struct pol_retention {
    int action;        /* RET_*: RET_NONE (with failed 0) when the policy has no such hook */
    int64_t review_ms; /* next review (absolute), 0: none (keep as is for good) */
    char reason[SB_REASON_MAX + 1];
    /* Provenance, filled in every case. */
    char policy[SB_NAME_MAX + 1];
    char version[17];
    int failed; /* 1: the policy failed; `error` says why */
    char error[512];
} pol_retention;

/* Ask `policy`'s retain hook what to do with a record. Decisions:
**   { keep = true? , review_in_days = N | keep_until = unix_s, reason = s }
**   { anonymize = true, review_in_days = N | keep_until = unix_s, reason = s }
**   { delete = true, reason = s }
** (exactly one of keep/anonymize/delete, or none = keep; review_in_days in
** (0, 36600], keep_until later than now). Always fills out; failures count
** towards the policy's quarantine like route's. Returns 0 or SB_ENOMEM. */
/* What a policy without the hook decides, when d holds no decision: a
** review (retain) fails, so the record is kept and retried; an erasure
** request (erase) deletes. The engine and the case runner both use it.
** Returns 1 when it decided. */
int pol_retention_default(pol_retention *d, const char *policy, int erase);
int pol_retain(pol_host *h, uint32_t acct, const char *account_id, const char *policy,
               const pol_record *rec, int64_t now_ms, pol_retention *out);
/* Ask `policy`'s erase hook: { delete = true } | { anonymize = true } |
** { keep = true, reason = s } (reason optional on every decision). */
int pol_erase(pol_host *h, uint32_t acct, const char *account_id, const char *policy,
              const pol_record *rec, const pol_erasure *req, int64_t now_ms, pol_retention *out);

/* Validate a policy source as pol_route would load it (compile as text in the
** sandbox, run the top level under the load budget, check hooks and their
** types), then run cases (JSON array text, may be NULL). 0 when all pass;
** else SB_EPOLICY with the problems in res. */
int pol_validate(const pol_limits *lim, const char *name, const char *src, size_t len,
                 const char *cases, size_t cases_len, sb_result *res);
/* The same, and *hooks: the POL_HOOK_* bits of the hooks it defines. */
enum { POL_HOOK_ROUTE = 1, POL_HOOK_RETAIN = 2, POL_HOOK_ERASE = 4 };
/* A policy source's size and encoding, the same for uploads, the policy
** directory and `policy check`: 0, or -1 with "FILE[:LINE]: why" in err. */
int pol_source_check(const char *file, const char *src, size_t len, char *err, size_t errlen);
/* Load the n sources srcs (named names) into one policy state under lim,
** then src (named name), as an account's state would hold them: 0 when all
** load, 1 when the n do not load together already, 2 when src does not load
** beside them (its error, "file:line: message", in err). */
int pol_load_beside(const pol_limits *lim, const char (*names)[SB_NAME_MAX + 1], const sb_buf *srcs,
                    size_t n, const char *name, const char *src, size_t len, char *err,
                    size_t errlen);
int pol_validate_hooks(const pol_limits *lim, const char *name, const char *src, size_t len,
                       const char *cases, size_t cases_len, sb_result *res, unsigned *hooks);

/* Per-account policy status for sb_policy_list: fills a JSON array of
** {"name","version","state":"ok"|"quarantined","failures":N,"calls":N}. */
json_t *pol_host_status(pol_host *h, uint32_t acct);
/* Totals for sb_stats. */
void pol_host_totals(pol_host *h, uint64_t *failures, uint64_t *quarantined, size_t *memory);

/* Default device for a candidate when the policy names none: its
** preferences.device when the schedule allows it now, else the first device
** the schedule allows, else the first of softphone, landline, mobile it has.
** 0 if it has no device at all. */
int pol_default_device(pol_cand *c, int64_t now_ms);
/* Whether an agent document (JSON text) can change the default device: it
** mentions a schedule or preferences. */
int pol_doc_picks_device(const char *doc, size_t len);

/* The devices an agent document's schedule allows at now_ms (POL_DEV_*
** bits; every one without a schedule; a zone that cannot be loaded: none),
** what a policy reads as on_schedule (not 0) and, with the agent's own
** devices, devices_now. */
unsigned pol_doc_allowed(json_t *doc, int64_t now_ms);
/* The devices of mask in the order a ring tries them (softphone, landline,
** mobile): their bits in out, how many returned. */
int pol_dev_ordered(unsigned mask, int out[3]);

/* Device names. */
const char *pol_dev_name(int bit);
int pol_dev_parse(const char *name);

#endif
