/*
** switchboard.h — the one public header of the Switchboard routing engine.
**
** Switchboard decides, for every call that reaches a queue, which agent rings
** and on which device, by asking a Lua policy. All state lives in LMDB under a
** data directory; one LMDB write transaction per event (read state, ask the
** policy, apply, commit), so threads and separate processes sharing a data
** directory can never hand one agent two calls.
**
** Conventions (read these once; every function below follows them):
**
**  - Every public name starts with sb_ / SB_. Nothing else is exported.
**  - Functions that can fail return int: 0 on success, a negative SB_E* code
**    on failure. sb_strerror() turns any code into a message starting with
**    the code's name. Nothing fails only as a log line (but for a policy_dir
**    that does not load at sb_open: see sb_open).
**  - Functions that take an `sb_result *res` put the details of their outcome
**    there: on failure a message (with file:line for policy errors) and the
**    name of the offending field; on success the actions the call caused and,
**    for reads, a JSON document. `res` may be NULL when the caller wants only
**    the return code. A result is reused across calls: each call resets it.
**  - Strings and structs passed in are borrowed for the duration of the
**    call only, with one exception: sb_open copies the sb_config and its
**    strings (data_dir, policy_dir, key_file, policy_public_key), but keeps
**    the callbacks clock and log and their arguments clock_arg and log_arg
**    as given, and calls them until sb_close() returns (from the threads
**    that call the engine, several at once when several do): what
**    clock_arg and log_arg point to must stay valid until then. They run
**    inside the engine's calls, maybe in the write transaction of the call
**    that called them: from there, a call on an engine of the same data
**    directory that writes, or reads under the write lock (sb_stats), is
**    refused with SB_ESTATE rather than waiting for that transaction for
**    ever; reads work.
**    Strings and structs handed out by a result are owned by that result and
**    stay valid until the next call that uses the same result, or
**    sb_result_free().
**  - An engine handle may be used by several threads at once; an sb_result
**    may be used by one thread at a time.
**  - Times are milliseconds since the Unix epoch, from the engine's clock
**    (injectable, see sb_config.clock). Durations in JSON are seconds.
**  - Identifiers (accounts, agents, queues, calls) are 1..128 bytes of
**    [A-Za-z0-9._:@+-]. Policy names are 1..128 bytes of [A-Za-z0-9._-] in
**    parts separated by "/", none starting with "." ("asterisk/rrmemory"):
**    they name files under policy_dir. Phone numbers are E.164 ("+" then 2..15 digits),
**    which may be written with spaces, dashes, dots and parentheses, and
**    with the national trunk prefix as "(0)": "+44 (0)20 7946-0001" is
**    +442079460001.
**  - Everything an account owns is reached only through that account's id;
**    another account's ids behave exactly like ids that do not exist.
**  - An account id that is NULL, "" or not a valid identifier names no
**    account: SB_ENOTFOUND (field "account"), as an unknown id, from every
**    call that takes one, except sb_submit and sb_submit_json, which refuse
**    it with SB_EINVAL (field "account", "invalid account id"; an unknown
**    valid id is SB_ENOTFOUND there too), and sb_apikey_verify (SB_EAUTH,
**    as for any account). The puts check their document before the account.
**  - A policy name that is NULL, "" or not one a policy can have (see
**    sb_policy_get) is SB_EINVAL (field "name") from every sb_policy_* call
**    that takes an account's policy by name, before the account is looked
**    at: it is the caller's mistake, where a valid name the account has no
**    policy of is SB_ENOTFOUND to the calls that look one up. (sb_policy_check
**    and sb_policy_test take a file name for their messages instead: NULL or
**    "" is written "policy".)
*/
#ifndef SWITCHBOARD_H
#define SWITCHBOARD_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define SB_API __attribute__((visibility("default")))
#define SB_NODISCARD __attribute__((warn_unused_result))
#else
#define SB_API
#define SB_NODISCARD
#endif

#define SB_VERSION_MAJOR 0
#define SB_VERSION_MINOR 2
#define SB_VERSION_PATCH 0
#define SB_VERSION_STRING "0.2.0"

/* Version of the library actually linked (may differ from the header's). */
SB_API const char *sb_version(void);

/* ------------------------------------------------------------------------ */
/* Errors. Codes live in a reserved negative band, away from errno and LMDB. */

enum {
    SB_OK = 0,
    SB_EINVAL = -32000,    /* bad argument or malformed input; see field */
    SB_ENOTFOUND = -32001, /* no such account/agent/queue/call/policy */
    SB_EEXIST = -32002,    /* already exists (e.g. a call id offered twice) */
    SB_ESTATE = -32003,    /* event not valid in the current state */
    SB_EPOLICY = -32004,   /* a policy failed to compile, load or validate */
    SB_EFULL = -32005,     /* LMDB map or disk full; nothing was written */
    SB_ESTORE = -32006,    /* storage error (I/O, corrupt record) */
    SB_ENOMEM = -32007,    /* out of memory; nothing was written */
    SB_EBUSY = -32008,     /* busy: another backup is being written to the same place */
    SB_EAUTH = -32009,     /* credentials did not verify */
    SB_ELIMIT = -32010,    /* a configured limit was reached (keys, holds...) */
    SB_ECRYPTO = -32011,   /* key file or sealed data could not be used */
    SB_EVERSION = -32012,  /* data directory written by a newer format */
    SB_EHOLD = -32013,     /* legal hold prevents the operation */
};

/* A static message for any code, starting with the code's name, e.g.
** "SB_ENOTFOUND: not found". Unknown codes give "SB_E?: unknown error". */
SB_API const char *sb_strerror(int err);
/* The code's name, as the result JSON's "code" has it ("SB_EFULL"); "SB_E?"
** for a code that is none. Static; never NULL. */
SB_API const char *sb_code_name(int err);

/* ------------------------------------------------------------------------ */
/* Results: error details, actions and JSON documents handed back to callers. */

typedef struct sb_result sb_result;

typedef enum sb_action_type {
    SB_ACT_RING = 1, /* ring agent_id on device/uri for timeout_s seconds   */
    SB_ACT_CANCEL,   /* stop ringing agent_id for call_id                    */
    SB_ACT_CONNECT,  /* bridge call_id to agent_id (it answered on device,
                     ** at uri)                                          */
    SB_ACT_REJECT,   /* reject call_id with reason                           */
    SB_ACT_OVERFLOW, /* call_id moved to queue_id (reason says why)          */
    SB_ACT_WAIT,     /* call_id keeps waiting; taken up at due_ms at latest
                     ** (sent only when the call comes to its queue: an
                     ** offer or a transfer; see API.md) */
    SB_ACT_END,      /* call_id is finished (reason: its outcome)            */
    SB_ACT_AGENT,    /* agent_id changed status to `status` (reason) by the
                     ** engine: a policy's pause, a wrap-up's end, a status
                     ** event that took it from a ring (a status event
                     ** otherwise causes no AGENT action), or the end of a
                     ** call (or of its wrap-up) for an agent that asked on
                     ** the call to pause or go offline (reason: its own) */
} sb_action_type;

/* Fields an action's type does not list are NULL (or 0). The strings are
** owned by the result (see Conventions). */
typedef struct sb_action {
    sb_action_type type;
    const char *account;
    const char *call_id;  /* every type but SB_ACT_AGENT (NULL there)        */
    const char *agent_id; /* RING, CANCEL, CONNECT, AGENT                     */
    const char *device;   /* RING: "landline", "mobile" or "softphone";
                          ** CONNECT: the device of the ring answered     */
    const char *uri;      /* RING: the device's dial URI; CONNECT: the
                          ** agent's URI for that device                  */
    const char *queue_id; /* the call's queue (OVERFLOW: the new queue);
                          ** NULL for SB_ACT_AGENT                         */
    const char *reason;   /* REJECT/OVERFLOW/END/AGENT, may be NULL there;
                          ** CANCEL: always, why the ring ended, one of
                          ** "ring timeout" (its time or its step in a
                          ** sequence ran out), "answered elsewhere"
                          ** (another agent rung with it answered),
                          ** "caller hung up" (abandon or hangup while
                          ** it rang), "call failed" (the same by the
                          ** system), "transferred" (the call was
                          ** transferred while it rang), "agent left" (the
                          ** agent's own status event took it away), "max
                          ** wait" (the queue's max_wait passed while it
                          ** rang: the call overflows or is turned away).
                          ** A policy's or a gateway's free text here (a
                          ** move's, a reject's, a pause's, an agent
                          ** status's reason) is as stored: numbers as
                          ** [number] (with '+' and 7 digits or more, or
                          ** 9 digits or more without; sb_hold_place's
                          ** rule), control characters as spaces          */
    const char *status;   /* AGENT: new status name                           */
    int timeout_s;        /* RING: seconds to ring                            */
    int64_t due_ms;       /* WAIT: when the engine next takes up the call
                          ** by itself, the sooner of the policy's time to
                          ** decide again and the queue's max_wait (its
                          ** overflow or reject); 0 when neither is set
                          ** (decided again when an agent frees up)      */
    uint32_t attempt;     /* RING: the call's ring attempt it belongs to (1,
                          ** 2, ...; the agents rung together share one): a
                          ** ring_result may give it back (sb_event)       */
} sb_action;

/* One action as a JSON object, the same shape sb_result_json uses:
** {"type":"ring","account":..,"call":..,"agent":..,"device":..,"uri":..,
**  "queue":..,"reason":..,"status":..,"timeout":N,"attempt":N,"due_ms":N} (absent fields
** left out). Writes at most cap bytes into buf, always NUL-terminated when
** cap > 0 (cut short, as snprintf does, when it does not fit); returns the
** length needed, without the NUL (like snprintf: the text is whole when
** that is below cap), 0 for a NULL action. */
SB_API size_t sb_action_json(const sb_action *a, char *buf, size_t cap);

/* Create an empty result. Returns NULL only when out of memory. */
SB_API sb_result *sb_result_new(void);
/* Free a result and everything it owns, wiped first: an access request's
** answer holds the numbers it decrypted (so does reusing the result for the
** next call, for what it held before). NULL is a no-op. */
SB_API void sb_result_free(sb_result *res);

/* Outcome of the last call made with this result (SB_EINVAL for NULL). */
SB_API int sb_result_code(const sb_result *res);
/* Message for a failure ("" on success). Owned by res. */
SB_API const char *sb_result_message(const sb_result *res);
/* Name of the offending input field, e.g. "devices.mobile", or NULL. */
SB_API const char *sb_result_field(const sb_result *res);
/* 1 if the last call made with this result committed a change to the store,
** else 0 (also for NULL). In a batch, 1 when the event wrote something of
** its own, which sb_batch_end is to commit (and which that commit may yet
** fail to store: the batch's answers then all fail). A call that failed
** changed nothing (but for SB_ESTORE from a sync that failed after the
** commit, see sb_submit: 1 then, as the change stands), and neither did a
** read or a call that found the state already as asked: an agent's status
** set to the one it has, a policy's history forgotten when it has none. A
** call that only writes an entry in the audit log (an access request)
** changed something. For a caller that acknowledges only what is durable
** (SB_SYNC_DEFER, as the daemon's group commit does): a sync that fails may
** lose what a call that changed something did, and nothing of a call that
** changed nothing. */
SB_API int sb_result_changed(const sb_result *res);
/* Actions caused by the last call, in the order the gateway should apply them. */
SB_API size_t sb_result_count(const sb_result *res);
SB_API const sb_action *sb_result_action(const sb_result *res, size_t i);
/* JSON rendering of the whole result, always valid JSON:
**   success: {"actions":[...], ...document fields...}
**   failure: {"error":{"code":"SB_EINVAL","message":"...","field":"..."}}
** For reads (sb_agent_get, sb_call_get...) the document is the object read.
** Owned by res, valid until res is used again (a second sb_result_json
** included: it writes the text anew); length in *len when len is not NULL.
** A NULL res gives a static SB_EINVAL error ("no result"). */
SB_API const char *sb_result_json(sb_result *res, size_t *len);

/* ------------------------------------------------------------------------ */
/* Opening an engine. */

typedef struct sb_engine sb_engine;

/* In every mode but SB_SYNC_NONE a commit syncs the pages it wrote before
** it writes the page that points at them: a power loss loses at most the
** events not yet durable, never the data directory. SB_SYNC_NONE leaves
** that order to the kernel: after a power loss the directory may not open.
** (A crash of the process loses nothing in any mode.) */
typedef enum sb_sync_mode {
    SB_SYNC_GROUP = 0, /* each event returns once durable; concurrent events
                       ** share the syncs that make them so             */
    SB_SYNC_SYNC,      /* every event synced on its own before it returns */
    SB_SYNC_NONE,      /* never synced by the engine (tests, simulation)  */
    SB_SYNC_DEFER,     /* commit (its pages synced, not the page pointing
                       ** at them); the caller calls sb_sync() before it
                       ** acknowledges (a daemon batching a loop
                       ** iteration's requests behind one sync)          */
} sb_sync_mode;

typedef enum sb_log_level {
    SB_LOG_ERROR = 0,
    SB_LOG_WARN,
    SB_LOG_INFO,
    SB_LOG_DEBUG,
} sb_log_level;

/* Clock: returns milliseconds since the Unix epoch. The engine reads a
** value before 1970 as 1970 and one past 9999-12-31T23:59:59.999Z
** (253402300799999) as that time: later times and durations are added to
** it. */
typedef int64_t (*sb_clock_fn)(void *arg);
/* Log sink: one line, no trailing newline; `line` is valid during the call.
** Lines hold no phone number: each reads [number] (sb_redact), but the
** counts the engine made itself (records deleted, decisions overridden, a
** journal's sequence numbers) are kept as written, whatever their size;
** digits a caller's id puts right against one read [number]. Without one
** (sb_config.log NULL) each line goes to stderr after its time, in UTC to
** the millisecond, and level: "2026-01-05T08:00:00.000Z warn <line>". The
** time is the engine's clock's, an injected clock's reading too (a replay
** or a test on its own clock logs the same times at every run); a line
** logged from inside the clock function itself carries the system time. */
typedef void (*sb_log_fn)(void *arg, sb_log_level level, const char *line);

/* `text` with every phone number in it replaced by "[number]", into out
** (size n; NUL-terminated when n > 0, cut when it does not fit; out NULL
** and n 0 only count). A number: '+' and 2 or more digits; without '+',
** 7 to 15 digits standing as a word, grouped the ways numbers are written
** ("030 1234567", "(212) 555-0123", "01 23 45 67 89", "sip:0301234567@pbx").
** Also written to slip past: '_' between digit groups ("+44_7911_000666"),
** single digits spaced out after a '+' ("+4 4 7 9 ..."), "%2B" for the '+' and "%20" or
** a tab for a space, fullwidth digits (U+FF10..U+FF19) and plus; what is
** kept is kept as written.
** Kept: shorter and longer digit runs, digits inside a word (c1234567),
** dates, clock times, IPv4 addresses, Unix time stamps, decimals, and the
** values of account=, policy= and version=. The engine passes its log
** lines, audit reasons (a policy's or a customer's; the counts it writes
** itself in an access or erasure request's entry are kept as written) and
** hold reasons through it; a gateway can do the
** same with its own. Returns how many numbers it found; text NULL reads as
** "". */
SB_API int sb_redact(const char *text, char *out, size_t n);

/* The one of names[0..n) that `word` is most likely a misspelling of, by the
** rule of every "did you mean" the engine's messages give, or NULL when none
** is close (or word is NULL). The pointer is one of names. */
SB_API const char *sb_suggest(const char *word, const char *const *names, size_t n);

/* Does the engine read `json` (len bytes, any JSON value) as JSON? SB_OK if
** so; else SB_EINVAL, and res says why in the words the engine's own calls
** use: a number too big or too small for it named by its field ("'weight'
** is 1e400: too big a number ..."; sb_result_field "weight"), anything else
** by its line and column. For a gateway that parses a body itself before
** handing it over, as the daemon does. res may be NULL. */
SB_API int sb_json_check(const char *json, size_t len, sb_result *res);

#define SB_CONFIG_VERSION 1

typedef struct sb_config {
    unsigned version;     /* SB_CONFIG_VERSION; set by sb_config_init   */
    const char *data_dir; /* created if missing (mode 0700)             */
    sb_sync_mode sync;
    size_t map_size;        /* initial LMDB map size in bytes (0: 64 MiB,
                               else at least 64 KiB); grows. In the
                               synced modes an existing data file on
                               a disk without room for it opens at
                               its own size (logged), to end calls
                               and free space                        */
    size_t map_max;         /* never grow the map past this (0: 64 GiB,
                               else at least 64 KiB and map_size)    */
    const char *policy_dir; /* stock/shared policies (*.lua); may be NULL */
    const char *key_file;   /* master key; NULL: <data_dir>/master.key    */
    sb_clock_fn clock;      /* NULL: the system clock                      */
    void *clock_arg;        /* kept, not copied: valid until sb_close()    */
    sb_log_fn log;          /* NULL: log to stderr (see sb_log_fn)         */
    void *log_arg;          /* kept, not copied: valid until sb_close()    */
    sb_log_level log_level; /* SB_LOG_ERROR..SB_LOG_DEBUG; others refused */
    uint64_t seed;          /* seeds ctx.random (with call id and attempt) */
    /* Budgets for every policy hook call; 0: no limit. A policy's top level
    ** loads under ten times policy_instructions (a budget past
    ** UINT64_MAX / 10 counts as that). */
    uint64_t policy_instructions; /* Lua VM instructions per hook call     */
    uint32_t policy_wall_ms;      /* wall-clock limit per hook call        */
    /* (In the 4 bytes after policy_wall_ms, which were padding: sb_config
    ** kept its size and layout, and a program built before it has 0 there.)
    ** Days after an erasure request came that its number's keyed pseudonym
    ** stays in the erasure journal (sb_erase): sb_sweep then takes it out,
    ** once data.mdb has applied the request, so that no pseudonym of a
    ** number that asked to be erased is kept for good. A data.mdb restored
    ** from a backup older than such a request can no longer have it applied
    ** again, and sb_open refuses it when it has the request's account: keep
    ** this longer than the oldest backup you keep. 0 (sb_config_init's): kept for good;
    ** at most 36,600. switchboard serve's default is 400. */
    uint32_t erasure_journal_days;
    size_t policy_memory;          /* bytes per account's Lua state         */
    uint32_t quarantine_after;     /* consecutive failures before quarantine
                                      (0: never quarantined)              */
    int require_signed_policies;   /* 1: policies need a valid signature    */
    const char *policy_public_key; /* hex Ed25519 key used when signed     */
} sb_config;

/* Fill cfg with defaults: group sync, 64 MiB map (map_max 0: 64 GiB),
** 1,000,000 instructions, 50 ms, 8 MiB per account, quarantine after 5
** failures, SB_LOG_INFO; every pointer NULL, seed 0, unsigned policies,
** erasure requests journaled for good. NULL is a no-op. */
SB_API void sb_config_init(sb_config *cfg);

/* on 1: from each write transaction that starts after this call, in every
** thread of the process, to its end, the thread runs with SIGTSTP, SIGTTIN
** and SIGTTOU blocked (pthread_sigmask; its mask is put back as the
** transaction ends, and a stop that came meanwhile takes effect then).
** A process stopped inside a write transaction (Ctrl-Z) holds the data
** directory's one writer, and every other process's writes there wait
** until it is continued: for a command-line tool run beside a daemon, as
** the `switchboard` command is, Ctrl-Z then stops it between transactions.
** A stop sent to the process goes to a thread that has it unblocked, as
** ever, and stops every thread, one in a write transaction too: in a
** program of several threads, block the three in the threads that do not
** write; two writing threads still leave a stop to the one outside its
** transaction while the other is in one (the command has one thread).
** 0 (the default): masks are left alone. Costs two pthread_sigmask calls
** a write transaction when on. */
SB_API void sb_defer_stop_signals(int on);

/* Open (creating if needed) the engine on cfg->data_dir. On success *out is
** a handle to release with sb_close(); on failure *out is NULL, nothing needs
** freeing, and res (if given) says why. Several engines — in one process or
** many — may open the same data directory. The engines of one process on a
** directory share its LMDB environment (opened by the first, closed by the
** last sb_close): a later one must use the same master key and map_max, or
** fails with SB_EINVAL naming the field; its map_size is not used (the map
** is open already); its sync mode, policies, clock and budgets are its own.
** Engines opened before fork() belong to the parent: the child opens its own.
** (In the child, every call on the parent's engine is refused with
** SB_ESTATE, "opened by another process", and sb_close leaves it alone.)
** A policy_dir whose files do not all load (one does not compile, say)
** does not fail the open, so
** that a bad file put there cannot keep the engine from starting: none of
** the directory is stored, the versions its last good load stored keep
** deciding (none on a new data directory: queues naming them are refused
** until it loads), the log says which file failed and why at error level,
** and sb_stats' "policy.dir_loaded" is 0 until an sb_reload loads it; an
** embedder that must not run without it checks that after sb_open, or
** calls sb_reload, which fails saying why.
** Refused with SB_EINVAL naming the field: a config not from sb_config_init
** ("version"),
** an unknown sync mode or log level, map sizes out of range, a data_dir
** that is a file, a policy_dir that is not a directory, a missing
** policy_public_key when signatures are required. A data directory that
** cannot be created or written in is SB_ESTORE on "data_dir"; a key file
** that cannot be read or created, SB_ECRYPTO on "key_file". A data.mdb
** restored from before an erasure request whose pseudonym the erasure
** journal has taken out (erasure_journal_days), that has the request's
** account, is SB_ESTORE on "data_dir": it cannot be applied again
** (sb_erase). The first sb_open of a process sets jansson's allocator
** (json_set_alloc_funcs; jansson has one a process): malloc, and a free
** that wipes each block whole before freeing it, as jansson's blocks hold
** the numbers and keys of the documents it parses and writes. An embedder's
** own jansson documents go through it too; a string from json_dumps is the
** caller's to wipe and free(). It replaces an allocator set before it, so
** documents made before the first sb_open must come from malloc (jansson's
** default); one set after it stops the wiping (and the engine's count of
** jansson's allocations that fail). */
SB_API SB_NODISCARD int sb_open(sb_engine **out, const sb_config *cfg, sb_result *res);
/* Close the engine: syncs, then frees everything. NULL is a no-op. Call it
** once per handle, when no other thread is using the handle; the handle is
** gone afterwards (using or closing it again is undefined, as with free()).
** A batch open in a thread is that thread using it: close on the batch's
** thread (which commits the batch) or after its sb_batch_end, never from
** another thread while it is open (its write transaction is the batch
** thread's, and it would be left open). The engine's own clock, log and
** sweep progress functions are that thread using it too: sb_close called
** from inside one of them (or from inside the clock or log function of
** another engine on the same data directory), on the thread running it,
** closes nothing and logs an error ("sb_close: called from inside a clock,
** log or sweep progress function ..."); the engine goes on working, and the
** call that ran the function returns as it would have. Close it once that
** call has returned. */
SB_API void sb_close(sb_engine *eng);

/* Make every event committed so far by this process durable (fdatasync,
** unless a later commit's own sync already has). Needed with SB_SYNC_DEFER
** before acknowledging; harmless in other modes. SB_ESTORE when that is not
** so: the sync failed, or an earlier one (a commit's own included) did and
** may have dropped what was waiting to be synced, which no sync writes
** again. Then it fails until an event committed after the failure is
** synced: its tree holds every earlier event, and puts them back on disk. */
SB_API int sb_sync(sb_engine *eng);
/* Where syncs stand, for a caller that acknowledges only what is durable
** and would rather not sync when it need not (SB_SYNC_DEFER): *written is the
** number of this process's newest commit on the data directory that changed
** something, *durable the newest number known to be on disk. A commit's own
** sync makes every commit written before it durable (unless a sync failed
** since, which may have dropped them: then only a later commit's meta page,
** synced, puts them back, and *durable stays put until then). So under
** steady writes the next commit often makes a sb_sync() unnecessary: read
** *written after a commit; once *durable reaches it, that commit and all
** before it are on disk. Numbers only grow; 0 is before any. SB_ESTATE
** where commits do not sync in order (an engine with SB_SYNC_NONE opened the
** directory first in this process): commits are not numbered then (both
** stay 0), and only sb_sync() makes anything durable; SB_ESTATE also, with
** nothing set, for an engine opened by another process before fork().
** Either pointer may be NULL. */
SB_API int sb_sync_progress(sb_engine *eng, uint64_t *written, uint64_t *durable);

/* ------------------------------------------------------------------------ */
/* Accounts, agents, queues: JSON documents in, JSON documents out.
**
** Account:  {"id":"acme","name":"Acme Ltd","fallback":"longest_idle",
**            "retention":"retention/keep-90-days-then-delete",
**            "personal_attrs":["name","email"],"service_level_seconds":20,
**            "audit_days":400,"timezone":"America/New_York",
**            "limits":{"agents":200,"queues":20,"live_calls":100,"policies":10}}
**            ("retention" to "timezone": see "Call records and retention"
**            below; "limits": below)
** Agent:    {"id":"alice","name":"Alice","weight":1,"status":"available",
**            "devices":{"softphone":"sip:alice@pbx.example","mobile":"tel:+447700900001"},
**            "skills":{"english":5,"billing":3},
**            "preferences":{"device":"softphone"},
**            "timezone":"Europe/London",
**            "schedule":[{"days":["mon","tue","wed","thu","fri"],"from":"09:00",
**                         "to":"17:00","devices":["landline","softphone"]}],
**            "wrapup":10}
**           (An optional object or list given as null is as if left out:
**           "skills":null is no skills, a window's "devices":null every
**           device; the document read back leaves it out.)
**           ("timezone": an IANA zone, UTC when left out or null; "schedule":
**           windows on the agent's wall clock, "from" > "to" crossing
**           midnight: engine/daemon/API.md, "Schedules", has the rules.)
**           ("status": available, paused or offline: the agent's status on
**           creation, or a change when it is not ringing, on a call or in
**           wrap-up; live state, not kept in the document. Omitted: a new
**           agent starts offline, an existing one keeps its status.)
**           Reads add the live state: "status" (and "reason", "call" when
**           it has them), "next_status" and "next_reason" while a status
**           asked for on a call waits for its end (see SB_EV_AGENT_STATUS;
**           absent when none waits, or it has no reason), "stats" and
**           "queues" (the queues it is a member of), "on_schedule" and
**           "devices_now" at the engine's clock (as a policy reads them).
**           "stats", totals since
**           the agent was made (a put keeps them), times in Unix ms:
**           status_since_ms (its status taken, reserved for a ring too),
**           idle_since_ms (when it last became available from a call, at its
**           wrap-up's end, from a pause or offline; a ring it let go does
**           not move it), calls_taken (rings answered), talk_time (seconds on
**           calls it has left; not the one it is on), no_answers (no_answer
**           results and timed-out rings in a row, since it last answered or
**           came back from a pause or offline), last_call_ms (when it last
**           left a call; absent before one), last_missed_ms (when its last
**           ring it did not answer ended: no_answer, busy, rejected or timed
**           out, on any call; absent before one). See API.md's GET
**           /v1/agents/{id}.
** Device dial URIs: not empty, no spaces or control characters; a tel: URI
**           holds an E.164 number; a sip:/sips: URI names a host, and a user
**           before it if it has an @; other forms pass as given.
** Queue:    {"id":"support","policy":"longest-idle","ring_timeout":20,
**            "max_wait":300,"max_length":100,"overflow":"backup",
**            "wrapup":0,"fallback":"longest_idle",
**            "members":[{"agent":"alice","tier":1,"position":1,"weight":1,"penalty":0}]}
** A queue's policy, when named, must be one the account uploaded or one of
** policy_dir's, define `route`, and run: with require_signed_policies, one
** stored before it was on and not signed since (or signed with another
** key) is refused, SB_EINVAL naming the field and saying which version and
** why, as a policy that is not there is, unless the queue names it already
** (its other fields may change meanwhile) (omitted: longest-idle, or the fallback
** when there is none: logged once, counted as failures in sb_stats, and
** never quarantined, as nothing runs); its overflow must name a queue of
** the account; an agent is a member once.
** A queue's "fallback" (longest_idle, ring_all, wait or reject) decides its
** calls when the policy fails; a queue that gives none takes its account's
** "fallback" as it is when the queue is put (longest_idle by default).
** longest_idle and ring_all ring among the agents the call has rung least,
** of the lowest tier, then the lowest penalty.
** max_wait (seconds, 0: none) bounds a call's time in the queue, from its
** offer, move, overflow or transfer into it: when it passes, a ring in
** progress is cut (CANCEL "max wait"), and the call goes on to the
** queue's overflow, or is rejected ("max wait exceeded"; also when the
** overflow queue had the call already: queues overflowing into each other
** in a loop pass the caller round once, unless a policy moved the call
** off the chain of overflows on its way).
** wrapup (seconds, 0..3600, 0 when left out; an agent's and a queue's): how
** long an agent stays in SB_AGENT_WRAP_UP after it leaves a call (a hangup,
** a transfer) before it is available again. The agent's wins when it is not
** 0; an agent's 0 means "the queue's": the wrapup of the queue the call is in
** when the agent leaves it (on a hangup the queue it ended in, on a transfer
** the one it was in before). Both 0: no wrap-up.
** max_length bounds the calls waiting: an offer, a policy's move or an
** overflow into a full queue goes on to that queue's overflow, or is
** rejected ("queue full"; "queue full (overflow queue 'A' had the call
** already)" when that overflow would send it back to a queue it was in);
** a transfer into it is refused (SB_ESTATE).
** An account's retention policy must be there too, define `retain`, and run.
** Unknown fields are rejected with SB_EINVAL naming the field, and so is a
** value past its limit: "name" (account, agent, queue) at most 128 bytes.
** Account: "personal_attrs" at most 16 names of 1..64 printable bytes,
** "service_level_seconds" 1..3600, "audit_days" 1..36500 or null; an
** account holds at most 64 API keys
** and 1,000 legal holds (SB_ELIMIT past them).
** An account's "limits" (a platform operator's quotas on a tenant; left
** out or null: none, as each of its fields left out or null) caps what it
** has at once: "agents", "queues", "policies" (its own uploads, not
** policy_dir's) and "live_calls" (waiting, ringing or connected), each a
** whole number 0..1000000; another name, or another value, is SB_EINVAL
** naming "limits.<name>". Past a limit, a put of a new agent or queue, or
** an upload of a policy name the account does not have, is refused with
** SB_ELIMIT, field "limits.<name>", a message saying what the account has
** and the limit, and nothing changes; replacing one it has (an agent, a
** queue, a new version of an upload) is not one more. An offer past
** live_calls is not an error: the call is rejected as a full queue's is,
** a REJECT action with reason "account live call limit
** (limits.live_calls N)", its END, and a record (outcome rejected). A
** limit may be set below what the account has: what it has stays, and
** new ones are refused until it has fewer. Reads answer the limits set
** (null when none), and sb_account_get adds "usage":
** what the account has now, by the same names (kept by the writes that
** change it, so a check costs no scan; live calls only while "live_calls"
** is set, so that an offer and a call's end write no more than they did
** without limits: without it, a read counts them). An account stored by a version
** before 0.2.0's data directory format 10 has no "usage" until it is put
** again (that put counts it once); until then it has no limits. Agent: "devices" one or
** more of landline, mobile, softphone, each dial URI 1..255 bytes; at most
** 64 "skills", names 1..64 bytes, levels 0..100; "weight" 0.000001..1000000;
** "wrapup" 0..3600; at most 64 "schedule" windows. Queue: "ring_timeout"
** 1..600, "max_wait" 0..86400, "max_length" 0..1000000, "wrapup" 0..3600,
** "service_level_seconds" 1..3600 (left out: the account's),
** at most 10,000 "members" (in the document, or by sb_member_put); a member's "tier" and
** "penalty" 0..1000, "position" 0..1000000, "weight" 0.000001..1000000,
** "paused" true or false (paused in that queue alone; left out: as it was).
** engine/daemon/API.md's "Limits" lists them all, the events' too.
** *_put creates or replaces; replacing keeps live state (an agent on a call
** stays on the call, with its next status; a "status" in the document does
** not change it there). Reads place the stored document, plus live state,
** in res's JSON. A queue's: "waiting" (calls in its line, not those ringing
** or connected), each member's agent "status", and in sb_queue_get
** "longest_wait_since_ms" (when the call longest in line came to the
** queue, Unix ms; absent when none waits; a walk of the line).
** What a read answers can be put back: *_put ignores the fields reads add
** (an account's "created_ms" and "usage"; an agent's "on_schedule", "devices_now",
** "reason", "call", "next_status", "next_reason", "stats", "queues"; a
** queue's "waiting", "longest_wait_since_ms", a member's "status"), and an
** agent's "status" reserved, on_call or wrap_up is the live state a replace
** keeps (SB_EINVAL for a new agent).
*/
SB_API int sb_account_put(sb_engine *eng, const char *json, size_t len, sb_result *res);
SB_API int sb_account_get(sb_engine *eng, const char *account, sb_result *res);
SB_API int sb_account_list(sb_engine *eng, sb_result *res);
/* Deletes the account and everything it owns. Its data key is destroyed in
** this call (everything sealed with it becomes unreadable at once); its
** call records, indexes, aggregates and audit log are purged by sweeps (see
** sb_sweep). SB_EHOLD while the account has legal holds; SB_ESTATE while
** it has live calls (waiting, ringing or connected: end them first).
** Before it changes anything the deletion is appended to the data
** directory's erasure journal (erasures.journal: the account's id, its
** internal number and creation time, when it was deleted; nothing
** personal), which no backup holds: sb_open deletes again an account the
** journal says was deleted after what data.mdb has seen (one restored from
** an earlier backup; a deletion cut short by a crash), data key slot and
** all, logging it at warn, so a restore never brings a deleted account
** back. There its live calls end with it (sb_account_evict: the deletion
** came after them); legal holds keep it, as here: it stays, said at warn
** and audited ("account_delete_held"), and is not tried again. An account
** made again under the same id after the deletion is another (its number
** or creation time differ) and stays. A journal that cannot be written (a
** full disk: SB_EFULL) refuses the deletion, deleting nothing. */
SB_API int sb_account_delete(sb_engine *eng, const char *account, sb_result *res);
/* sb_account_delete, the account's live calls too: each ends at once, with
** an END action in res (reason "account deleted", the call's queue) for the
** gateway that had it, and no call record (the account's go anyway). For
** an operator removing a tenant whose calls would otherwise hold it.
** SB_EHOLD while the account has legal holds, as sb_account_delete; journaled
** as sb_account_delete is. */
SB_API int sb_account_evict(sb_engine *eng, const char *account, sb_result *res);

SB_API int sb_agent_put(sb_engine *eng, const char *account, const char *json, size_t len,
                        sb_result *res);
SB_API int sb_agent_get(sb_engine *eng, const char *account, const char *agent, sb_result *res);
/* Lists are in id order: {"agents":[...]} (sb_agent_list: all of them). A
** page: those after the id `after` (NULL or "": from the first), `limit` at
** most (0: all), and "next" (the last id given, the next page's `after`)
** when more follow. The same for queues. */
SB_API int sb_agent_list(sb_engine *eng, const char *account, sb_result *res);
SB_API int sb_agent_list_page(sb_engine *eng, const char *account, const char *after, size_t limit,
                              sb_result *res);
/* Fails with SB_ESTATE while the agent is ringing or on a call. */
SB_API int sb_agent_delete(sb_engine *eng, const char *account, const char *agent, sb_result *res);

SB_API int sb_queue_put(sb_engine *eng, const char *account, const char *json, size_t len,
                        sb_result *res);
SB_API int sb_queue_get(sb_engine *eng, const char *account, const char *queue, sb_result *res);
SB_API int sb_queue_list(sb_engine *eng, const char *account, sb_result *res);
SB_API int sb_queue_list_page(sb_engine *eng, const char *account, const char *after, size_t limit,
                              sb_result *res);
/* Fails with SB_ESTATE while a call is in the queue: waiting, ringing or
** connected. */
SB_API int sb_queue_delete(sb_engine *eng, const char *account, const char *queue, sb_result *res);

/* Add or replace one membership: {"tier":1,"position":2,"weight":1,"penalty":0}
** (json may be NULL for defaults: tier 1, weight 1, penalty 0). Without a
** position a member keeps its own, and a new one goes after the last.
** {"paused":true} pauses the member in this queue alone (app_queue's pause
** in one queue): its agent keeps its status and is rung for its other
** queues, not this one's calls (a ring in progress goes on); the queue's
** ctx.queue.paused counts it. {"paused":false} lifts it, and a call waiting
** may ring the agent at once. Left out (here or in a queue's document), the
** membership stays as paused as it was; a new one is not. */
SB_API int sb_member_put(sb_engine *eng, const char *account, const char *queue, const char *agent,
                         const char *json, size_t len, sb_result *res);
SB_API int sb_member_delete(sb_engine *eng, const char *account, const char *queue,
                            const char *agent, sb_result *res);

/* ------------------------------------------------------------------------ */
/* Events. Each is one LMDB write transaction; its actions come back in res. */

typedef enum sb_event_type {
    SB_EV_OFFER = 1,    /* a call arrives in queue_id                       */
    SB_EV_RING_RESULT,  /* agent_id's ring for call_id ended with `outcome` */
    SB_EV_HANGUP,       /* a connected call ended                           */
    SB_EV_ABANDON,      /* the caller hung up before being connected        */
    SB_EV_TRANSFER,     /* move call_id to queue_id (waiting again), or
                        ** to agent_id directly (rings that agent)         */
    SB_EV_AGENT_STATUS, /* agent_id becomes `status` (with reason): see below */
} sb_event_type;

/* A queue with calls waiting that is left with no member who could take one
** (each offline or paused, or none: a status event, an agent document, a
** policy's pause, a status taken after a call, a membership removed or an
** agent deleted) has its waiting calls decided again: their policy
** wake-ups move to the time of that change, so the next sb_tick decides
** them, in line order (the line's first 32, then the next 32 a millisecond
** later...), and a policy reading ctx.queue.logged_in can turn them away
** (app_queue's leavewhenempty). */
/* SB_EV_AGENT_STATUS sets the agent's status at once when it is available,
** paused, offline, ringing (the ring ends as rejected, the call moves on;
** "available" leaves the ring alone) or in wrap-up (which it ends). The
** status the agent has already (a pause with the same reason) changes
** nothing.
** On a call, the agent stays on it, and "paused" (with its reason) or
** "offline" waits for the call's end as the agent's next status: reads show
** it as "next_status" and "next_reason". When the agent leaves the call (a
** hangup, or a transfer to a queue or another agent) it does its wrap-up
** as it would have, and then, where it would have become available, takes
** that status instead: an SB_ACT_AGENT action says so, with the reason it
** gave. "available" sent on a call drops a next status (available is what
** the end brings); another pause replaces it, reason included; the next
** status sent again changes nothing. A status sent during the wrap-up
** applies at once and drops the next status; a policy's pause leaves an
** agent in wrap-up with a next status as it is. */

typedef enum sb_ring_outcome {
    SB_RING_ANSWERED = 1,
    SB_RING_NO_ANSWER,
    SB_RING_BUSY,
    SB_RING_REJECTED,
} sb_ring_outcome;

/* Who ended a call (SB_EV_HANGUP, SB_EV_ABANDON; optional, 0: not said).
** SB_END_SYSTEM: neither party, the gateway or the network (a failure, a
** lost leg, a shutdown): a call never answered then ends as "failed". */
typedef enum sb_end_party {
    SB_END_CALLER = 1,
    SB_END_AGENT,
    SB_END_SYSTEM,
} sb_end_party;

typedef enum sb_agent_status {
    SB_AGENT_OFFLINE = 0,
    SB_AGENT_AVAILABLE,
    SB_AGENT_PAUSED,
    /* Set by the engine only: */
    SB_AGENT_RESERVED, /* ringing for a call   */
    SB_AGENT_ON_CALL,
    SB_AGENT_WRAP_UP, /* timed, after a call  */
} sb_agent_status;

typedef struct sb_event {
    sb_event_type type;
    const char *account;
    const char *call_id;     /* OFFER: never holding caller or called
                             ** (SB_EINVAL): ids outlive erasure       */
    const char *queue_id;    /* OFFER; TRANSFER to a queue              */
    const char *agent_id;    /* RING_RESULT, AGENT_STATUS; TRANSFER to agent */
    const char *caller;      /* OFFER: E.164 caller number; NULL or "":
                             ** withheld (see sb_submit)               */
    const char *called;      /* OFFER: E.164 number dialled; NULL or "":
                             ** none                                   */
    int priority;            /* OFFER: higher is served first (0..100)  */
    sb_ring_outcome outcome; /* RING_RESULT                            */
    sb_agent_status status;  /* AGENT_STATUS: OFFLINE/AVAILABLE/PAUSED  */
    const char *reason;      /* AGENT_STATUS (pause reason); optional,
                             ** at most 128 bytes of UTF-8 (SB_EINVAL
                             ** otherwise, as in JSON); stored and shown
                             ** with numbers as [number]
                             ** and control characters as spaces (see
                             ** sb_action's reason)                     */
    const char *attrs_json;  /* OFFER: JSON object of gateway attributes,
                             ** e.g. {"language":"de","skills":{"billing":2}},
                             ** at most 4096 bytes ("skills" levels
                             ** 0..100); may be NULL                    */
    uint32_t attempt;        /* RING_RESULT, optional (0: not given): the
                             ** attempt of the ring action it answers; a
                             ** result for an attempt that is over (the
                             ** ring timed out and the agent rings again
                             ** as a later one) is refused, SB_ESTATE
                             ** field "attempt", and changes nothing;
                             ** one past the call's attempts, never
                             ** made, SB_EINVAL field "attempt"       */
    sb_end_party by;         /* HANGUP, ABANDON, optional (0: not said):
                             ** who ended it, kept in its record as
                             ** "ended_by". A hangup of a connected call
                             ** takes any; of a call not connected (and
                             ** an abandon), the caller (abandoned, as
                             ** without it) or the system (failed); the
                             ** agent is refused: SB_ESTATE on a hangup
                             ** (an agent who lets a ring go sends a
                             ** ring_result), SB_EINVAL on an abandon */
} sb_event;

/* Apply one event. Returns 0 and the actions in res, or an error code with
** nothing changed, but for one case: in the synced modes, SB_ESTORE from a
** sync that failed after the event committed (message "sync: ..."). The
** event then stands (reads show it; a later sync that succeeds writes it
** to disk whole, see sb_sync) and res keeps the actions it caused
** (sb_result_count, sb_result_action; sb_result_json shows the error
** alone): apply them as on success. (A commit that fails leaves no
** actions in res: nothing of the event was made.) */
/* Batches: from sb_batch_begin to sb_batch_end, the calling thread's
** sb_submit calls share one write transaction, committed (and synced as the
** engine's mode says) by sb_batch_end: one commit for many events, which is
** what a server answering a turn of its event loop at once wants. Each
** event still changes all or nothing: one that fails is undone in the
** transaction and the batch goes on without it. The thread's reads see the
** batch's events; its other writes (a put, a tick, a sweep...) commit the
** batch first. Other threads and processes that write wait while a batch is
** open, so keep it short. The thread's writes through another engine on the
** same data directory are refused (SB_ESTATE) while its batch is open: the
** batch holds the directory's one writer. An event's result is given at once, but nothing
** of the batch is stored until sb_batch_end returns 0: when it returns an
** error the batch's events did not happen (its result says why), whatever
** their calls returned; after a failed commit or undo inside the batch its
** further events are refused (SB_ESTORE). sb_batch_begin returns 0 (also
** when the thread's batch is open already), SB_ESTATE when another thread's
** is; sb_batch_end returns 0 when no batch is open. sb_close commits a
** batch left open. res may be NULL. */
SB_API int sb_batch_begin(sb_engine *eng);
SB_API int sb_batch_end(sb_engine *eng, sb_result *res);

/* ev->account NULL, "" or not a valid id: SB_EINVAL (field "account"),
** where the other calls taking an account answer SB_ENOTFOUND.
** An offer without a caller (NULL or "") is a call from a withheld number
** (CLIR, SIP "anonymous"): it is routed like any other; its policy sees
** call.caller nil and no previous agent (no two withheld calls are taken
** for one caller); sb_call_get shows no caller; its record has no caller
** pseudonym, so caller history never reaches it and access and erasure
** requests find it by its called number alone (as "called", "caller":
** null). A caller that is given but is not an E.164 number (SIP's
** "anonymous" too) is refused (SB_EINVAL, field "caller"): leave it out.
** A field the event's type does not take (see sb_event), given (a string
** not NULL, a number not 0; caller "" counts as none), is refused as in
** JSON: SB_EINVAL, "unknown field 'called' for a ring_result event
** (expected call, agent, outcome)". (status is not checked: 0 is
** SB_AGENT_OFFLINE, a value other events leave as it is.) */
SB_API int sb_submit(sb_engine *eng, const sb_event *ev, sb_result *res);

/* The same event as JSON, e.g.
**   {"type":"offer","call":"c1","queue":"support","caller":"+4930123456"}
**   {"type":"ring_result","call":"c1","agent":"alice","outcome":"answered"}
**   {"type":"hangup","call":"c1"}   {"type":"abandon","call":"c1"}
**   {"type":"hangup","call":"c1","by":"agent"}   (by: caller, agent, system)
**   {"type":"transfer","call":"c1","queue":"billing"}
**   {"type":"agent_status","agent":"alice","status":"paused","reason":"lunch"}
** Types: offer, ring_result, hangup, abandon, transfer, agent_status. Each
** takes the fields shown for it (an offer also "called", "priority" and
** "attrs", and leaves "caller" out, or null or "", for a withheld number;
** a transfer "queue" or "agent"; a hangup or an abandon "by") and no other: a field of another
** type is refused as unknown (SB_EINVAL naming it), as is any field no type
** takes. Limits as sb_event's; "caller" and "called" at most 63 bytes as
** written, "attrs" at most 4096 bytes written compactly (no spaces between
** tokens). */
SB_API int sb_submit_json(sb_engine *eng, const char *account, const char *json, size_t len,
                          sb_result *res);

/* Fire every timer due at the clock's current time (ring timeouts, wrap-up
** ends, policy wake-ups, max-wait overflows) and return their actions.
** When it fails, res still holds the actions of the timers that fired (in
** transactions committed before the failure, or one whose sync failed, as
** for sb_submit): apply them too. The timers not fired stay due, and
** sb_next_deadline in the past: try again a little later, not at once.
** Timers fire in the order they are due; policy wake-ups of one account due
** in the same millisecond (32 at a time), in line order: priority, then
** time in line, as a freed agent takes calls, so the caller at the head is
** decided first. */
SB_API int sb_tick(sb_engine *eng, sb_result *res);
/* sb_tick for about max_ms milliseconds of work at most (0: no limit): one
** timer fires at least, and when timers are still due as the time runs out
** it returns with *more (if given) 1, those timers' actions not yet in res
** (sb_next_deadline gives a time already passed): call it again, letting a
** server's other work in between. A server loop calls this, so that a
** tenant whose thousands of calls wake at once cannot hold it. */
SB_API int sb_tick_for(sb_engine *eng, uint32_t max_ms, int *more, sb_result *res);
/* Time of the earliest pending timer, or INT64_MAX when there is none (or
** for a NULL engine). It may be in the past: a timer whose call has since
** moved on (a ring timeout after the answer, say) is dropped when it comes
** due, so a tick at that time returns nothing for it and the next deadline
** moves on. Timers go by the clock's value: a clock set back fires nothing
** until it reaches them again, and the deadline stays where it was. */
SB_API int64_t sb_next_deadline(sb_engine *eng);

/* The call with its state and decision trace (time, policy, version,
** outcome, error of its first 4 decisions and its last 12; "decisions"
** counts them all); its numbers and attributes are decrypted for
** the owning account ("caller" and "called" left out when the call has no
** such number: a withheld caller, none dialled); a waiting call has its
** "position" in line (1: next; priority, then time in line), for a gateway
** that announces it. Once the call has ended:
** its record (the latest, if the call id was used again), without numbers
** or personal attributes. */
SB_API int sb_call_get(sb_engine *eng, const char *account, const char *call_id, sb_result *res);
/* The account's live calls (waiting, ringing or connected), all or those in
** `queue` (may be NULL; an unknown queue is SB_ENOTFOUND, field "queue",
** and "" SB_EINVAL):
** {"calls":[{"id","state","queue","priority","offered_ms","queued_ms",
** "attempts","ringing":[{"agent","device","uri","attempt"}] (each ring as
** its RING action gave it, the device's URI as the agent has it now; empty
** once connected), and
** "agent","device","answered_ms" once connected}, ...]} in call id order;
** no numbers, attributes or history (sb_call_get has those). For a gateway
** that lost track of its calls. */
SB_API int sb_call_list(sb_engine *eng, const char *account, const char *queue, sb_result *res);
/* A page of it: the calls after the call id `after` (NULL or "": from the
** first), `limit` at most (0: all), and "next" (the last id given, the next
** page's `after`) when more follow. */
SB_API int sb_call_list_page(sb_engine *eng, const char *account, const char *queue,
                             const char *after, size_t limit, sb_result *res);

/* ------------------------------------------------------------------------ */
/* Policies. A policy is a Lua 5.4 chunk returning a table of hooks; see
** policies/README.md for the contract. Its version is the hex SHA-256 prefix
** of its source. Policies named by queues are looked up first among the
** account's own policies, then among the shared ones in cfg->policy_dir. */

/* Validate then store an account policy: compile in the sandbox, run the top
** level under the load budget, check the hooks, run `cases_json` (a JSON
** array of scenario cases, may be NULL), and load it beside the account's
** other policies (its other uploads, the shared ones its queues and
** retention setting name), which share one policy state and its memory
** budget: SB_EPOLICY when it loads alone but not beside them (when they do
** not fit together already, the upload is not to blame and goes through).
** Only if all pass is it stored and
** every engine on the data directory moves to it; otherwise nothing changes
** and res says what failed. The cases run on the caller's thread, so they
** are bounded: SB_EINVAL (field "cases") for more than 100 of them,
** SB_EPOLICY (field "cases") when they run for more than 500 ms in all
** (checked before each case: one hook's policy_wall_ms more at most); the
** policy directory's case files have no such limit. SB_ESTATE when a
** queue routes with the policy and this version has no route hook, or an
** account's retention setting names it and this version has no retain hook
** (a reload refuses such a shared file too). res's JSON: {"name":..,
** "version":..}, with "previous": the version of the account's upload it
** replaced (left out when there was none; equal to "version" when the same
** text was uploaded again), and "warnings":["file:line: ...",...] when
** sb_policy_check finds something (stored all the same). */
SB_API int sb_policy_put(sb_engine *eng, const char *account, const char *name, const char *source,
                         size_t len, const char *cases_json, sb_result *res);
/* sb_policy_put only when the account's upload of that name is the one the
** caller expects, for a release tool that read a version, changed it, and
** must not overwrite an upload made since: if_version is a version (16 hex
** digits, as "version" gives it: the upload must have it), "*" (there must
** be an upload of it) or "" (there must be none). NULL: no condition, as
** sb_policy_put. Checked in the transaction that stores the upload; when it
** does not hold, SB_ESTATE with field "if_version", the version there is (or
** that there is none) in the message, and nothing changed. A malformed
** if_version is SB_EINVAL (field "if_version"). */
SB_API int sb_policy_put_if(sb_engine *eng, const char *account, const char *name,
                            const char *source, size_t len, const char *cases_json,
                            const char *if_version, sb_result *res);
/* {"policies":[{"name","version","source":"account"|"shared","state":"ok"|
** "quarantined","failures":N}...]}: the policies the account's queues can
** name; an upload of the same name as a shared one stands in its place (and
** carries "shadows_shared":true). Each has "loaded_version" as sb_policy_get
** says. */
SB_API int sb_policy_list(sb_engine *eng, const char *account, sb_result *res);
/* The policy of that name the account runs, with its source:
** {"name","version","source":"account"|"shared","state":"ok"|"quarantined",
**  "failures":N,"shadows_shared":bool,"code":"..."}, and "loaded_version":
** the version loaded in this engine's current policy state of the account,
** there once the policy has run in that state (routed a call, reviewed a
** record) and absent before. The state starts afresh, without it, after any
** upload or delete of one of the account's policies (of any name) and any
** sb_reload on the data directory, so right after an upload it is absent
** until the policy runs again. SB_ENOTFOUND when there is none; SB_EINVAL (field "name") when no
** policy can have that name, NULL included (sb_policy_delete likewise). */
SB_API int sb_policy_get(sb_engine *eng, const char *account, const char *name, sb_result *res);
/* Delete the account's upload of that name; a shared policy of the same
** name (policy_dir) decides from then on, with the policy's store (ctx.set)
** as it was; when none stands in, the store is deleted too. res's JSON:
** {"name","deleted":true,"now":"shared"|null}. SB_ENOTFOUND when the account
** uploaded none (shared policies change in policy_dir); SB_ESTATE when a
** queue or the account's retention setting names it and no shared one
** stands in, or the shared one that would has no route hook (a queue names
** it) or no retain hook (the retention setting does), or does not run
** (require_signed_policies, and it is not signed with policy_public_key). */
SB_API int sb_policy_delete(sb_engine *eng, const char *account, const char *name, sb_result *res);
/* sb_policy_delete only when the account's upload has the version
** if_version ("*": any), as sb_policy_put_if; "" is SB_EINVAL. */
SB_API int sb_policy_delete_if(sb_engine *eng, const char *account, const char *name,
                               const char *if_version, sb_result *res);
/* Version history. The library keeps the account's past uploads and deletes
** of each policy name, written in the transaction of the upload or delete:
** the last 50 of a name, and 16 MiB of them an account (each counting its
** source and 64 bytes), the oldest dropped first, but never a name's newest
** (what it is now). An upload of the text the history ends with adds
** nothing; a delete is an entry of its own, and the history stays after it
** (an upload of the name again carries on with it). It goes with the
** account. Shared policies (policy_dir) have none: their history is the
** operator's files'. A policy uploaded by a version before format 9 has its
** history from its next upload or delete, which first records the upload it
** replaces (with the time that one was stored).
** sb_policy_versions: res's JSON {"name",..,"versions":[{"seq":N,"change":
** "upload"|"delete","version":..|null (a delete),"previous":.. (the version
** it replaced or deleted; left out for none),"at_ms":N (the engine's clock
** when it was stored),"bytes":N (an upload's source),"current":bool (the
** upload in use now)}...],"next":N}, newest first: the entries whose seq is
** below `before` (0: from the newest; past INT64_MAX SB_EINVAL, field
** "before"), `limit` at most (0, or past 50: 50), and "next", the last seq given, when
** more follow (the next page's `before`). Seqs count the account's entries
** of every name, so a name's have gaps. An upload stored before histories
** were kept and not changed since is one entry with seq 0. SB_ENOTFOUND when
** the account has neither an upload of the name nor a history of it (a
** shared policy's name included); SB_EINVAL (field "name") as sb_policy_get.
** Another account's policy reads as none. */
SB_API int sb_policy_versions(sb_engine *eng, const char *account, const char *name,
                              uint64_t before, size_t limit, sb_result *res);
/* One version of the account's policy name, with its code, from its history
** (the newest upload of that version) or the upload in use: as an entry of
** sb_policy_versions with "name" and "code". A rollback uploads that code
** again (sb_policy_put_if with the version in use as if_version). SB_EINVAL
** (field "version") when version is not 16 lowercase hex digits;
** SB_ENOTFOUND (field "version") when the history has no upload of it (never
** uploaded, or dropped as above). */
SB_API int sb_policy_version_get(sb_engine *eng, const char *account, const char *name,
                                 const char *version, sb_result *res);
/* Drop entries of the account's history of name, for code that must not be
** kept (a secret or personal data uploaded by mistake): with version (16
** lowercase hex digits), every earlier upload of that version; NULL, every
** entry but the newest (what the name is now: the upload in use, or its
** delete). res's JSON: {"name":..,"forgotten":N}. SB_ESTATE (field
** "version") when version is the upload in use (upload another, or delete
** the policy, first); SB_ENOTFOUND when the history has no upload of it
** (field "version"), or the account has neither an upload nor a history of
** name (field "name"); SB_EINVAL as sb_policy_version_get. Nothing is
** recorded in the history; the engine's log says it at info. */
SB_API int sb_policy_versions_forget(sb_engine *eng, const char *account, const char *name,
                                     const char *version, sb_result *res);
/* Re-read cfg->policy_dir, validate every file, and swap all at once, or
** change nothing and say which file failed and why. A file removed while a
** queue or retention setting of an account without an upload of that name
** still names it fails the reload too (SB_EPOLICY naming the user). A
** reload that succeeds lifts every quarantine, in every engine on the data
** directory, also when no file changed. Its document: {"changed":N},
** "policies":[{"name","version","previous"}...] when N is not 0 (each
** policy stored, "previous" the version it replaced or left out for a new
** one; each removed, "version" null and "stores_dropped" the accounts whose
** store of it (ctx.set) went with it, in the reload's transaction: each
** without an upload of that name, which keeps its own), and,
** when sb_policy_check faults a policy this reload stored (new or changed)
** that loads all the same, "warnings":["<policy_dir>/<name>.lua:<line>:
** ..."], each also logged as a warning (as at sb_open). */
SB_API int sb_reload(sb_engine *eng, sb_result *res);

/* Compile and lint a policy without an engine. res's message lists each
** problem as "file:line: message", one per line. */
SB_API int sb_policy_check(const char *name, const char *source, size_t len, sb_result *res);
/* Run scenario cases (JSON array) against a policy without a data directory.
** res's JSON: {"passed":N,"failed":N,"cases":[{"name","ok","got","expected"}]}.
** Returns 0 when every case passes, SB_EPOLICY otherwise. */
SB_API int sb_policy_test(const char *name, const char *source, size_t len, const char *cases_json,
                          size_t cases_len, sb_result *res);
/* sb_policy_check and sb_policy_test under cfg's budgets (policy_instructions,
** policy_wall_ms, policy_memory, as sb_open takes them) instead of the
** defaults: what a reload or an upload on an engine opened with cfg would
** find. Only those fields are read; cfg NULL: the defaults. */
SB_API int sb_policy_check_cfg(const sb_config *cfg, const char *name, const char *source,
                               size_t len, sb_result *res);
SB_API int sb_policy_test_cfg(const sb_config *cfg, const char *name, const char *source,
                              size_t len, const char *cases_json, size_t cases_len, sb_result *res);

/* Signed policies. A signed policy ends with a line "--@signature <hex>":
** an Ed25519 signature of everything before that line. With
** sb_config.require_signed_policies only sources whose signature verifies
** with policy_public_key load.
** sb_policy_keygen: res's JSON {"public_key":hex,"secret_key":hex}.
** sb_policy_sign: res's JSON {"source":signed source} (an existing signature
** line is replaced; a last line without a newline is given one, which the
** signature covers). secret_hex: the 128-hex secret key. */
SB_API int sb_policy_keygen(sb_result *res);
SB_API int sb_policy_sign(const char *source, size_t len, const char *secret_hex, sb_result *res);
/* Verify a signed policy's source (its last line "--@signature <hex>")
** against public_hex, as an engine with require_signed_policies does: 0, or
** SB_EPOLICY saying why (unsigned, or it does not verify), SB_EINVAL for a
** key that is not 64 hex characters. */
SB_API int sb_policy_verify(const char *source, size_t len, const char *public_hex, sb_result *res);

/* ------------------------------------------------------------------------ */
/* API keys (the daemon's HTTP Basic auth is account_id:key). A key is random
** (libsodium), shown once, and stored only as a keyed hash. */

/* Create a key. res's JSON: {"account":"acme","key_id":"1226fe98de5628c0",
** "key":"sbk_...","created_ms":...}; the key cannot be read back later. An
** account holds 64 keys at most: the 65th is SB_ELIMIT (revoke one first). */
SB_API int sb_apikey_create(sb_engine *eng, const char *account, sb_result *res);
/* The account's keys by id (the keys themselves are not stored), in key id
** order, each with when it was made (Unix ms; absent for a key made before
** keys kept it, data directory format 7):
** {"keys":[{"key_id":"1226fe98de5628c0","created_ms":...},...]} */
SB_API int sb_apikey_list(sb_engine *eng, const char *account, sb_result *res);
/* 0 when `key` is a current key of `account`; SB_EAUTH otherwise, also for
** unknown accounts. Compares in constant time. */
SB_API SB_NODISCARD int sb_apikey_verify(sb_engine *eng, const char *account, const char *key,
                                         size_t len);
/* Revoke one key by its key_id. */
SB_API int sb_apikey_revoke(sb_engine *eng, const char *account, const char *key_id,
                            sb_result *res);

/* ------------------------------------------------------------------------ */
/* Call records and retention.
**
** Every finished call leaves a record, written in the transaction of its
** final event: queue, numbers, times, wait, talk, outcome, agent, every ring
** attempt, the policy versions that decided and the gateway's attributes.
** sb_call_get() reads it once the call is over (without the numbers).
** Its outcome is "answered" (an agent answered it, however it ended after
** a transfer), "abandoned" (the caller hung up before any answer),
** "failed" (the system ended it before any answer: a hangup or abandon
** with by SB_END_SYSTEM) or "rejected" (turned away: a policy's reject,
** max wait or max length with no overflow queue to go to, too many moves),
** whose record has the "reason" its REJECT action gave (no other record
** has one); "ended_by" says who ended it, when its hangup or abandon said
** ("caller", "agent", "system"); its wait runs from the offer
** to the first answer (or the end), its talk is every agent's. A call that
** moves ends in one record, in the queue it ended in ("queue"; the one it
** was offered to is "first_queue"); "overflowed" is a queue's count in
** sb_aggregates, never a record's outcome. A record's document says where
** its retention stands: "anonymized", "review_ms" (Unix ms: when the
** retention policy looks at it again, as its last decision asked, or daily
** under a hold or after a failure; null: never, a keep with no date or no
** policy; absent for a record written before 0.2.0 until a sweep writes it;
** a change of the account's "retention" has the next sweep review it
** sooner), "overridden" (a legal hold overrode its last decision) and
** "held_by" (the ids of the legal holds that cover it now; [] for none).
**
** Personal data is sealed at rest with the account's data key: the caller
** and called numbers, and the attributes named in the account's
** "personal_attrs" (see the account document). A keyed pseudonym of each
** number indexes the records, so erasure and access requests and caller
** history work without storing any number in the clear. A withheld caller
** has no number and so no pseudonym.
**
** Account settings (in the account document given to sb_account_put):
**   "retention": "retention/keep-90-days-then-delete"   the retention policy
**                (a policy name, looked up like a queue's; null: keep forever)
**   "personal_attrs": ["name","email"]   attributes sealed like the numbers
**   "service_level_seconds": 20          answered after a wait of at most
**                                        this counts as within the service
**                                        level (sb_aggregates)
**   "audit_days": 400                    sweeps remove audit log entries
**                (sb_audit_list) older than this many days, 1..36500; null,
**                the default: kept as long as the account. The log is the
**                trace left of each record deleted or anonymized, of each
**                erasure request and of each decision a hold overrode (a
**                held record's, at every daily review), which is what shows
**                retention was done, and of each access request (what was
**                disclosed: sb_records_export); how long that must be kept
**                is the account holder's decision, not the engine's: it
**                holds no personal data, so nothing is removed unless asked.
**                It costs about 100-130 bytes of the data file an entry: a
**                policy that deletes every record adds one per call ever
**                made, and each access request (each page of one) one.
**                400 keeps a year of it (what PCI DSS asks of audit trails)
**                and a month to export it in.
**   "timezone": "America/New_York"       the IANA zone whose days the daily
**                aggregates count in (sb_aggregates), as an agent's
**                "timezone" is read; null or left out, the default: UTC.
**                An unknown zone is SB_EINVAL naming "timezone".
**
** The retention policy's `retain` hook decides when a record is written and
** at each review date it asks for (keep until a date, anonymize — drop the
** sealed fields and pseudonyms, keep the rest — or delete, each with a
** reason); its `erase` hook decides for each record an erasure request
** reaches. A record under a legal hold is never deleted or anonymized: the
** hook sees legal_hold = true and a decision to delete or anonymize is
** overridden (the audit log says so, record by record; the engine's log at
** info says it once per hold with a count: at the end of a sweep run, of an
** erasure request, and for records as they are written, a hold's first at
** once and then at most one line a minute of the engine's clock, those in
** between counted into its next line or said at the next sweep run's end).
** Every retention action lands in the
** account's audit log, which holds no personal data. Daily aggregates are
** counted when records are written and never change when records go.
** policies/README.md documents the hooks. */

/* Every record of `number` (E.164) in the account, decrypted, for an access
** request. res's JSON:
**   SB_EXPORT_JSON: {"number":"+44...","records":[{record..., "role":"caller"|
**                   "called","caller":..,"called":..,"personal_attrs":{..}}],
**                   "live":N}
**                   ("caller" null for a withheld one, "called" null when
**                   none was given; empty fields in CSV)
**   SB_EXPORT_CSV:  {"number":..,"count":N,"live":N,"csv":"id,role,caller,called,
**                   queue,...\r\n..."} (RFC 4180,
**                   a header line, one line per record; the record's fields,
**                   times in Unix ms, then offered_at, answered_at, ended_at:
**                   the times as ISO 8601 UTC, 2026-01-05T09:00:03.311Z;
**                   numbers E.164 with their +; a field a spreadsheet
**                   would evaluate, starting with = + - @ tab CR and not a plain
**                   number such as an E.164 one, starts with ')
** live: calls of the number in progress, which are in no record yet.
** Anonymized records no longer carry the number and are not found.
** Records come in the order of the number's index: those where it is the
** caller, then those where it is the called one, each by when they ended,
** then id.
** Every access request is in the account's audit log (sb_audit_list): one
** entry, action "access_request", source "access", no call, and as its
** reason how many records it disclosed and in which format ("access
** request: 3 records disclosed as JSON"), never the number or its
** pseudonym. It is written after the records are read and before res holds
** any of them: when it cannot be (storage full, SB_EFULL: the disk, or the
** map at map_max, whose reserve for calls in progress it does not take; a
** storage error, SB_ESTORE), the request fails with that code and res holds
** no record ("access request refused, nothing disclosed: ..."), for a
** disclosure the log does not have must not happen. So it is a write: from
** the engine's clock or log function it is SB_ESTATE, as writes are, and
** with SB_SYNC_DEFER the entry is durable only after sb_sync(), which a
** caller makes before handing the records out (the daemon does). The
** engine also logs at info the account and the count, never the number. */
typedef enum sb_export_format { SB_EXPORT_JSON = 0, SB_EXPORT_CSV = 1 } sb_export_format;
SB_API int sb_records_export(sb_engine *eng, const char *account, const char *number,
                             sb_export_format format, sb_result *res);
/* A page of it, for a caller that must not build every record at once (the
** daemon, whose one event loop waits for it): the records after `after`
** (NULL or "": from the first), at most `limit` of them (0: no bound) and
** at most `max_bytes` bytes of them (0: no bound; one record at least
** however large), counted as the answer has them: a JSON record written
** compactly, a CSV record's line. res's JSON is sb_records_export's (CSV:
** "count" the page's records, the header line only on the first page, so
** the pages' "csv" one after another are the whole export), with "next"
** when more follow: the next page's `after`, "caller:" or "called:", when
** the last record ended (Unix ms), ':' and its id ("caller:1767603603311:c7").
** An `after` that is not one is SB_EINVAL naming "after". Each page is read
** on its own: a record written, deleted or anonymized between pages may be
** found or not, every other is found once. Each page is an access request
** of its own in the audit log, as sb_records_export's, with that page's
** count (", more to follow" after it when "next" is given, ", a later page"
** when `after` is): a client may read one page and stop, or the rest much
** later, so each disclosure is on record with what it gave, and one refused
** for want of room gives nothing. */
SB_API int sb_records_export_page(sb_engine *eng, const char *account, const char *number,
                                  sb_export_format format, const char *after, size_t limit,
                                  size_t max_bytes, sb_result *res);

/* An erasure request: every record of `number` in the account goes through
** the retention policy's `erase` hook (no policy or no hook: deleted).
** res's JSON: {"deleted":N,"anonymized":N,"kept":N,"failed":N,"held":N,
**              "live":N,"reasons":{"keep: legal hold h1: litigation":1,...},
**              "earlier":[{"received_ms":N,"deleted":N,"anonymized":N,
**                          "kept":N,"failed":N,"held":N,"live":N,
**                          "applied_again":bool},...]}
** (kept counts every record left, those of failed included: the hook failed
** for them, and running the request again retries them). held: the kept
** records whose deletion or anonymization a legal hold prevented. The
** request is remembered for them (by the number's pseudonym, no number):
** when a hold of the account is released, the next sweep runs it again,
** and it is forgotten once no hold keeps a record from it. A call of the
** number in progress when the request comes is decided by `erase` when it
** ends: live counts those calls (their records are not in the other
** counts). The request covers calls offered up to
** when it is received, never later ones. The records' audit reasons show
** numbers as [number]; the request's own audit entry ("erasure_request",
** its counts as the engine wrote them) follows its records'. A request has
** no id: one made again (its answer lost, or after a restore had the first
** applied again) is a request of its own, whose counts are what was left,
** often nothing; "earlier" says what the account's requests of the same
** number before it did (the latest 10, oldest first, while the journal has
** their pseudonym; applied_again: the counts of one applied again from the
** journal; received_ms alone for one whose counts were not kept, made by an
** earlier version; [] when none; null when they cannot be read, logged).
** Runs in short transactions; a request
*cut short (crash) is
** finished by running it again, at the next sb_open, or by the next
** sb_sweep of an engine open on the directory (a daemon's); its audit entry
** and log line then count the whole request, what it did before it was cut
** short too. Before it changes
** anything the request is appended to the data directory's erasure journal
** (erasures.journal: the number's pseudonym, no number), which no backup
** holds: sb_open applies again each request of the journal that data.mdb
** has not seen (one restored from an earlier backup), logging it at warn and
** auditing it. A journal that cannot be written (a full disk: SB_EFULL)
** refuses the request, erasing nothing. With sb_config.erasure_journal_days
** set, sb_sweep (and sb_open) take the pseudonym out of each request
** received that long ago which data.mdb has applied (its number in the
** journal, account and time stay); sb_open then refuses a data.mdb from
** before such a request that has its account. */
SB_API int sb_erase(sb_engine *eng, const char *account, const char *number, sb_result *res);

/* Records of the account without their sealed data (numbers, personal
** attributes; other attributes as the gateway sent them), newest first:
** query {"from_ms":N,"to_ms":N,"queue":"support","limit":100} (all optional;
** times are when calls ended, to_ms excluded; to_ms before from_ms: SB_EINVAL
** naming to_ms; limit 1..10000, 100 when not given). The next page:
** "before_ms" and "before_id", the last record's ended_ms and id (both or
** neither): the records after it, none twice or left out (records ending in
** the same millisecond included). "queue" is the id of a queue of the
** account, or of one deleted since (its records, those of every queue that
** had the id, stay listed by it, as in sb_aggregates); an id no queue has
** or had is SB_ENOTFOUND naming "queue", one that is no id ("") SB_EINVAL.
** res's JSON: {"records":[record...]}. */
SB_API int sb_records_list(sb_engine *eng, const char *account, const char *query_json, size_t len,
                           sb_result *res);

/* Legal holds. A hold covers one call's records {"call":"c1"}, every record
** of a number {"number":"+44..."} (also records written later), or every
** record of a call in progress at any time in [from_ms, to_ms) — offered
** before to_ms and ended at or after from_ms — {"from_ms":N,"to_ms":N};
** "reason" is required (at most 128 bytes), "id" optional (generated: "h"
** and 8 hex digits);
** SB_EINVAL if either holds a phone number: holds are listed and audited
** by them. Control characters in the reason (line breaks, escapes, C1) are
** stored as spaces, as the audit log's reasons are.
** res's JSON: the hold {"id","kind":"call"|"number"|"range","reason",
** "created_ms",...}; a number hold shows no number. SB_EEXIST for a taken
** id; SB_ENOTFOUND (field "call") for a call id the account has neither
** live nor recorded. Released holds no longer protect anything: a record whose deletion
** or anonymization a hold prevented at a review is reviewed again within a
** day. An erasure request a hold kept from a record runs again at the next
** sweep after a hold of the account is released (sb_erase). */
SB_API int sb_hold_place(sb_engine *eng, const char *account, const char *json, size_t len,
                         sb_result *res);
SB_API int sb_hold_release(sb_engine *eng, const char *account, const char *hold_id,
                           sb_result *res);
/* {"holds":[hold...]}, in id order. */
SB_API int sb_hold_list(sb_engine *eng, const char *account, sb_result *res);
/* One hold of the account, as sb_hold_list gives it (a number hold shows no
** number). SB_ENOTFOUND (field "hold") for an id the account has no hold
** of, another account's too. */
SB_API int sb_hold_get(sb_engine *eng, const char *account, const char *hold_id, sb_result *res);

/* Daily aggregates, for one queue or (queue NULL) the account and each of
** its queues. res's JSON:
** {"timezone":"America/New_York",
**  "days":[{"day":"2026-01-05","timezone":"America/New_York",
**   "queue":"support"|null,"offered":N,
**   "answered":N,"abandoned":N,"rejected":N,"overflowed":N,"failed":N,
**   "wait_total":s,"answer_wait_total":s,"talk_total":s,"max_wait":s,
**   "answered_within_sl":N,"service_level":0.95}]}
** Days are those of the account's "timezone" (UTC without one): a call
** counts on the date its offer had on that zone's wall clock (a day the
** clocks change is 23 or 25 hours long, the repeated hour of a fall-back
** day is that day's), in every row it
** counts in, also where it reached a queue or ended after midnight. Its
** figures are added when it leaves a queue (for that queue) and when it
** ends (for the queue it ends in and the account's row): a live call is in
** no row but those of the queues it left, and a day's rows go on changing
** after midnight while calls offered that day are live. from_ms and to_ms
** choose whole days: every day [from_ms, to_ms) touches (0, 0: all), so
** from_ms at noon gives that whole day, and to_ms at (local) midnight stops
** before the day it starts.
**
** The answer's "timezone" is the account's zone now ("UTC" without one),
** and each row's "timezone" the zone its day is in. Rows stay on the days
** they were counted on: after a change of the account's zone, calls count
** on the new zone's days and those before stay where they were, so the day
** of the change can have a row in each zone (each in the one it says, the
** calls of neither counted twice), and from_ms and to_ms pick each row's
** days in the row's own zone. A call live across the change has the
** figures added after it on its offer's day in the new zone. A zone whose
** tzdata can no longer be loaded counts calls on their UTC days, in UTC
** rows, and the engine logs it (at warn, at most once a minute).
**
** The account's row (queue null) counts each call once: its outcome
** answered if an agent ever answered it, else abandoned, failed or
** rejected (never overflowed); its wait from the offer to its first answer (or
** to its end); all its talk. A queue's row counts each call that came to
** that queue (offered to it, overflowed or moved there by max wait, max
** length or a policy, transferred there), once for each time it came:
** answered if an agent answered it while there (also if it was then
** transferred away), abandoned, failed or rejected if it ended there so,
** overflowed if it left unanswered (max wait, max length, a policy's
** move, a transfer to another queue before an answer). Its wait there runs
** from when it came to its first answer there, or to when it left or
** ended; its talk there from that answer to the transfer away or the end
** (transfers to an agent stay in the queue, as does one to the queue
** itself). So an answered call transferred from sales to backup is
** answered in both, with the wait and talk of each, and a call that
** overflowed q1 -> q2 -> q3 is offered once in each.
**
** wait_total sums the waits of every call counted (abandoned ones too),
** answer_wait_total those of the answered ones, and max_wait is the longest
** of them; times in seconds, kept to the millisecond. failed counts the
** calls the system ended before an answer (a hangup or abandon with "by":
** "system"), in the account's row and the queue's they ended in.
** answered_within_sl counts the calls answered after a wait (as above, the
** row's own) of at most the service level: a queue's row its queue's
** service_level_seconds when the queue sets one, else the account's, as set
** when the figures were added; service_level is answered_within_sl / offered,
** offered including those abandoned, rejected and overflowed away (null
** for no call).
**
** A deleted queue's rows keep its id, with "queue_deleted":true, and
** `queue` finds them by that id (beside the rows of a queue made again with
** it); a queue id no queue has or had is SB_ENOTFOUND, "" SB_EINVAL (NULL:
** every queue). Deleting or
** anonymizing records changes no row. */
SB_API int sb_aggregates(sb_engine *eng, const char *account, const char *queue, int64_t from_ms,
                         int64_t to_ms, sb_result *res);

/* The account's audit log (retention decisions, erasure and access
** requests, legal holds), oldest first, entries after sequence number
** `after` (0: from the start; past INT64_MAX, which "next" could not give
** back, SB_EINVAL naming "after"), at most `limit` (0: 1000). res's JSON:
** {"entries":[{"seq":N,"t_ms":N,"call":"c1","ended_ms":N,"action":"delete"|
**   "anonymize"|"keep"|"error"|"hold_placed"|"hold_released"|
**   "erasure_request" (one per sb_erase, after its records' entries, with
**   what it did as its reason), "account_delete_held" (source "hold": an
**   account deletion of the erasure journal, applied again at sb_open, that
**   the account's legal holds kept from it; see sb_account_delete),
**   "access_request" (source "access": one per sb_records_export and per
**   page of sb_records_export_page, with how many records it disclosed as
**   its reason),
**   "decision":..,"overridden":bool,"reason":..,"source":"write"|"review"|
**   "erasure"|"hold"|"access","policy":..,"version":..}],"next":N}
** Entries older than the account's "audit_days" are removed by sweeps,
** oldest first; sequence numbers go on after them and are never given
** twice, so a reader paging with `after` misses only what expired before it
** read, and a page from the start begins with the oldest entry left. */
SB_API int sb_audit_list(sb_engine *eng, const char *account, uint64_t after, size_t limit,
                         sb_result *res);

/* Sweeps: review every record whose review date has come, purge the records
** of deleted accounts, queue reviews after a retention policy changed; first,
** when the erasure journal changed since this engine last read it, go on
** with an erasure request another process left cut short (for about
** budget_ms, then again at the next call; see sb_erase). Each
** transaction handles at most 1,000 records or 1 ms of work, so events are
** never held up for long (those of other processes on the data directory
** included, which cannot make it yield early); a sweep stopped half way (crash, kill) loses
** nothing and repeats nothing: the next one carries on.
** budget_ms: stop after about this long (0: until nothing is due); a budget
** of 1 ms also shortens each transaction to it (a daemon sweeping in its
** event loop passes 1: one short transaction per turn). In-process events
** waiting for the write lock end a sweep transaction early. progress
** (may be NULL) is called after each transaction with the records handled
** so far and an estimate of the total, outside any transaction: it may call
** the engine, writes too, but not close it (sb_close). res's JSON:
** {"reviewed":N,"kept":N,"anonymized":N,"deleted":N,"overridden":N,
** "failed":N,"purged":N,"erased":N,"audit_expired":N,"transactions":N,
** "yields":N,"seconds":s,"done":bool,"resumed":bool,"this_call":{...}}
** — yields: the times it ended a transaction early and waited for events
** of this engine that were waiting for the write lock
** — erased: records reached by erasure requests run again because a legal
** hold that kept them was released (their decisions are counted too)
** — audit_expired: audit log entries older than their account's audit_days,
** removed after the reviews: a run reads each account's settings once, and
** the log of one that sets audit_days no further than its first entry young
** enough
** — resumed: an interrupted sweep was carried on, and the counts include
** its work (one sweep's run is shared: a sweep started beside another, in
** this process or another, carries on the same run). this_call: the same
** nine counts for the work of this call alone: what to add up across calls,
** as a daemon sweeping one transaction a turn does. */
typedef void (*sb_sweep_progress_fn)(void *arg, uint64_t done, uint64_t total);
SB_API int sb_sweep(sb_engine *eng, uint32_t budget_ms, sb_sweep_progress_fn progress, void *arg,
                    sb_result *res);

/* A retention preview (a dry run): what a sweep would do to the account's
** records, decided and counted, nothing applied or written (no record, review
** date, audit entry, job or policy state of the engine's changes). The
** account's retention hook, or another policy's, runs over the records as
** a sweep's reviews run it: with the same record view (legal_hold,
** overridden, anonymized), at the preview's now, its decisions to delete or
** anonymize a held record overridden, a failure (an error, a budget run
** out, a decision the engine refuses, a policy without retain) kept and
** counted as failed. The hook runs in a policy state of the preview's own,
** fresh (failures counted and quarantine after quarantine_after in a row,
** as in a sweep, but none of the engine's counts or quarantines touched;
** ctx.log lines and failures go to the engine's log at debug).
** The records are read in short read transactions, so a preview of a large
** account holds no snapshot for long and blocks no writer; records written
** or changed meanwhile are seen as they are when their turn comes. It only
** reads: any thread may call it beside events and sweeps. account and opts
** are read during the call and not kept; the answer is in res, the
** caller's. An unknown account is SB_ENOTFOUND naming account.
** opts (JSON, all optional; NULL or "" for none):
**   "now_ms": N     the time the sweep runs at (default: the engine's clock)
**   "in_days": N    or that many days (0..36600) after the engine's clock
**                   (not both: SB_EINVAL naming in_days)
**   "policy": name  the policy to preview instead of the account's
**                   "retention" (stored: the account's own or a shared one,
**                   SB_ENOTFOUND naming policy when there is none)
**   "source": "..." a Lua source, not stored, previewed under "policy" (or
**                   the account's retention name when "policy" is not
**                   given; neither: SB_EINVAL naming policy)
**   "scope": "due"  the records a sweep at now would review: those whose
**                   review date has come by then, and those a pending change
**                   of the account's retention has still to reach (the
**                   default without "policy" or "source"). One sweep at now,
**                   none between: a record a daily sweep would review
**                   earlier is reviewed once, at now.
**            "all"  every record of the account, as the sweep after a change
**                   of the account's "retention" to the policy would review
**                   them (the default with "policy" or "source"; uploading a
**                   new version under the same name keeps the records'
**                   review dates, which "due" previews)
**   "sample": N     ids shown per count, 0..1000 (default 10)
**   "budget_ms": N  stop after about N ms (1..3600000; default: none), at a
**                   record's end: the answer has "done":false and "next"
**   "next": "..."   carry on where the answer that gave it stopped (give its
**                   now_ms and the same options: the counts are this call's,
**                   to add up; a "next" that is no answer's to this
**                   account, or changed: SB_EINVAL). It is opaque, sealed
**                   with the account's data key: another account's records
**                   near it in the review index show nowhere in it
** A policy named or given must load and define retain, as the account's
** "retention" requires: SB_EPOLICY (what is wrong, file:line) or SB_EINVAL
** naming source (too large, not UTF-8, no retain hook) otherwise; with
** require_signed_policies, a source given must be signed as an upload must
** (SB_EPOLICY naming signature).
** res's JSON: {"account":"acme","policy":"retention/x"|null,"version":..|null,
**   "source":"stored"|"given","now_ms":N,"scope":"due"|"all","reviewed":N,
**   "kept":N,"anonymized":N,"deleted":N,"overridden":N,"failed":N,
**   "reasons":{"delete: older than 90 days":N,"keep: legal hold h1: ...":N,
**              "failed: retention.lua:3: ...":N,...},
**   "samples":{"kept":["c1",...],"anonymized":[..],"deleted":[..],
**              "overridden":[..],"failed":[..]},"done":true}
** counted as sb_sweep counts: kept includes the overridden and the failed;
** reasons as sb_erase's (numbers shown as [number]). The erasure requests a
** released hold would have a sweep run again, the purge of deleted accounts
** and the audit log's expiry are not previewed. */
SB_API int sb_retention_preview(sb_engine *eng, const char *account, const char *opts, size_t len,
                                sb_result *res);

/* ------------------------------------------------------------------------ */
/* Introspection. */

/* Counters and gauges of this engine handle (this process) as JSON:
** {"events":{"offer":N,"ring_result":N,"hangup":N,"abandon":N,"transfer":N,
**            "agent_status":N,"tick":N,"errors":N} (each event submitted
**            under its type, failed ones too, also those sb_submit_json
**            refuses for their JSON; "tick" the sb_tick and sb_tick_for
**            calls that fired timers, once a call however many fired: a
**            tick that found none due is not counted (API.md's
**            switchboard_events_total has the details); "errors" the
**            failed ones, also those of no known type, which no type
**            counts),
**  "decisions":{"ring":N,"wait":N,"move":N,"reject":N,"fallback":N},
**  "policy":{"failures":N,"quarantined":N,"reloads":N (sb_reload calls that
**            succeeded),"generation":N,
**            "memory_bytes":N (the Lua states' memory, all accounts),
**            "dir_loaded":0|1 (the last load of policy_dir, at sb_open or
**            sb_reload, succeeded: 0 when what the directory holds is not
**            what decides)},
**  "latency_us":{"le":[10,20,50,...],"counts":[...],"sum":N,"count":N},
**  "lmdb":{"map_size":N,"used_bytes":N,"high_water_bytes":N,"readers":N,
**          "max_readers":N,"map_max_reached":0|1}}
** (lmdb: used_bytes, the map's bytes in use: its pages less the free pages
** LMDB hands out again, those no reader's snapshot still needs; what a
** write past map_max is weighed against, and it goes down as records are
** deleted and accounts purged (the pages the last commit freed count until
** the next commit). high_water_bytes, the map up to the last page it ever
** used: free pages below it are reused and never given back, so it only
** grows. used_bytes was that figure before 0.2.0. map_max_reached: 1 while
** new calls and documents are refused for want of room (SB_EFULL, "map_max
** reached") before they are tried: the map has grown past map_max into the
** reserve kept for the calls in progress to end, and used_bytes is not a
** sixteenth of map_max (256 KiB at least, half of it at most) below it,
** also right after sb_open on a data directory left so; deletes, sweeps and
** erasure requests make room, or a larger map_max.) */
SB_API int sb_stats(sb_engine *eng, sb_result *res);

/* A consistent copy of the data directory into dest (created, or an empty
** directory), while the engine and others keep working: data.mdb as one
** transaction saw it, compacted (free pages, and with them the old
** versions of records since anonymized or deleted, are left behind), and
** the wrapped data keys. The master key is not copied: the backup opens
** with the data directory's key (key_file). The files are written under
** temporary names (data.mdb.partial, data.keys.partial) and renamed when
** both are written and synced, data.mdb last: a backup is whole when dest
** holds data.mdb, and a failed one leaves nothing. A dest holding only what
** an interrupted backup left is taken, those files removed. To restore,
** stop every engine on the data directory and put the backup's files in
** its place.
** res's JSON: {"dir":"...","bytes":N,"master_key":"not copied: ..."}.
** SB_EEXIST if dest is not empty; SB_EINVAL if it is the data directory or
** inside it (through symbolic links too: the copy would be lost with it), or
** not UTF-8 text (the answer names it);
** SB_EBUSY if another backup is being written into it; SB_EFULL if the disk
** is full. */
SB_API int sb_backup(sb_engine *eng, const char *dest, sb_result *res);

/* Rotate the master key of cfg's data directory (cfg->key_file, or
** DATA_DIR/master.key): every account's data key and the key API keys are
** hashed with are wrapped again under the key in new_key_file, which is made
** (32 random bytes, 64 hex digits, mode 0600, as sb_open makes a key) when it
** is not there. From then on the directory opens only with the new key;
** every record and API key stays readable and valid. The old key file is
** left as it was: backups made before the rotation still open only with the
** old key, so keep it as long as them (then destroy it).
**
** The directory changes keys at one rename (data.keys put in place): a crash
** at any point leaves it opening with the old key or the new one, both on
** disk. cfg->policy_dir is not used.
**
** Refused, nothing changed: SB_EBUSY while any other process (the daemon,
** an embedding program, a command) or another engine of this process has the
** directory open (the rotation holds it alone while it runs; an open tried
** meanwhile waits, then is refused with the old key); SB_ECRYPTO (field
** "key_file") when the old key does not open the directory's data keys;
** SB_EINVAL when there is no data directory or old key, when new_key_file
** exists and is not a valid key (the message says why: its mode, size or
** content), or is the old key (the same file or the same key), or is named
** as one of the files the data directory holds for the engine or the daemon
** (data.keys.rotate, admin.token, ...), which would be replaced or removed
** with the key in it, or when its path is not UTF-8 text (the answer names
** it, for the opens after); SB_EFULL (no room: the disk, a quota) or SB_ESTORE
** when the new key file or the new data.keys cannot be made or written.
** Once the new data.keys is in place the directory has changed keys: should
** the directory then not sync, SB_EFULL or SB_ESTORE is returned although
** the rotation took effect, the message saying that the data keys are
** wrapped under the new key now and that a power loss may bring back the old
** ones (keep both keys). The document on success (the result's, freed with
** it): data_dir, key_file (the new), old_key_file (these two as given but
** for bytes that are not UTF-8, each shown '?'), new_key_made, accounts
** (data keys wrapped again), slots_dropped (data key slots no account had:
** unreadable, left out), backups (a reminder). */
SB_API int sb_master_key_rotate(const sb_config *cfg, const char *new_key_file, sb_result *res);

#ifdef __cplusplus
}
#endif
#endif /* SWITCHBOARD_H */
