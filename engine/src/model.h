/*
** model.h — the call-centre model as stored: accounts, agents, queues,
** memberships, live calls; and their binary encoding (model.c).
*/
#ifndef SB_MODEL_H
#define SB_MODEL_H

#include "codec.h"
#include "internal.h"

#define URI_MAX 255
#define MAX_RING 32     /* ringing at once, or in one sequence */
#define MAX_TRIED 32    /* distinct agents remembered per call */
#define MAX_TRACE 16    /* decisions kept per call (first 4, last 12) */
#define MAX_ATTEMPTS 32 /* ring attempts kept per call: the first 31 and the latest */
#define ATTRS_MAX 4096  /* gateway attributes per call, JSON bytes */
#define DOC_MAX 65536   /* stored agent/queue document, JSON bytes */

enum { FB_LONGEST_IDLE = 0, FB_RING_ALL, FB_WAIT, FB_REJECT };
const char *fallback_name(int fb);
int fallback_parse(const char *s);

/* Device slots: index 0 landline, 1 mobile, 2 softphone; bit = 1 << index. */
int dev_index(int bit);

/* An account's quotas, the document's "limits" (entities.c): what it may
** have at once. */
enum { LIM_AGENTS, LIM_QUEUES, LIM_LIVE_CALLS, LIM_POLICIES, LIM_COUNT };
#define LIM_NONE (-1)   /* no limit */
#define LIM_MAX 1000000 /* the highest limit a document may set */

typedef struct acct_rec {
    uint32_t num;
    char id[SB_ID_MAX + 1];
    char name[SB_ID_MAX + 1];
    uint8_t fallback;
    uint32_t next_agent, next_queue;
    uint64_t policy_gen; /* bumped when the account's policies change */
    int64_t created;
    int32_t limit[LIM_COUNT]; /* by LIM_*: LIM_NONE or 0..LIM_MAX */
    /* What the account has now, by LIM_*: its agents, queues, live calls
    ** (waiting, ringing or connected) and uploaded policies, kept by the
    ** writes that add or remove one, in their transaction. counted 0: not
    ** kept (an account stored before account format 2, until its next put
    ** counts them once). */
    uint8_t counted;
    uint32_t used[LIM_COUNT];
} acct_rec;

typedef struct agent_rec {
    uint32_t num;
    char id[SB_ID_MAX + 1];
    uint8_t status;
    int64_t status_since, idle_since, last_call;
    uint32_t calls_taken, no_answers;
    int64_t talk_ms;
    int64_t missed_at; /* when its last ring it did not answer (no answer,
                       ** busy, rejected; any call) ended; 0: none */
    char reason[SB_REASON_MAX + 1];
    char call[SB_ID_MAX + 1]; /* the call it rings for or is on */
    double weight;
    uint32_t wrapup_s;
    int64_t wrapup_due; /* timer key while in wrap-up */
    /* A status asked for while on a call (has_next 1): next_status,
    ** SB_AGENT_PAUSED or SB_AGENT_OFFLINE, with next_reason, taken instead
    ** of available once the call and its wrap-up are over (events.c,
    ** agent_back). 0, 0 and "" otherwise. */
    uint8_t has_next, next_status;
    char next_reason[SB_REASON_MAX + 1];
    char uri[3][URI_MAX + 1];
    /* 1: the document has no schedule or preferences, so the default device
    ** follows from the URIs alone (see pol_doc_picks_device). */
    uint8_t plain_devices;
    sb_buf doc; /* the JSON document: stored apart (agentdocs), loaded on demand */
} agent_rec;

typedef struct queue_rec {
    uint32_t num;
    char id[SB_ID_MAX + 1];
    char policy[SB_NAME_MAX + 1];
    char overflow[SB_ID_MAX + 1];
    uint32_t ring_timeout, max_wait, max_length, wrapup;
    uint32_t sl_seconds; /* its service level threshold; 0: the account's */
    uint8_t fallback;
    uint32_t waiting; /* calls waiting now */
    uint32_t members;
} queue_rec; /* its settings document is stored apart (queuedocs) */

typedef struct member_rec {
    int32_t tier, position, penalty;
    double weight;
    uint8_t paused; /* paused in this queue alone (app_queue's pause in one queue) */
} member_rec;
/* member_rec.paused as parsed when a document leaves it out: the stored
** membership's stands (0 for a new one). Never stored. */
#define MEMBER_PAUSED_KEEP 2

/* Value of the avail index: what a policy reads about a free member. */
/* avail_rec.devices: bits 0-2 the devices with a URI; this bit copies the
** agent's plain_devices. */
#define AV_PLAIN_DEVICES 8u

typedef struct avail_rec {
    int64_t idle_since, last_call, talk_ms, missed_at;
    uint32_t calls_taken, no_answers;
    double weight;
    member_rec m;
    uint8_t devices; /* device bits with a URI */
    char id[SB_ID_MAX + 1];
} avail_rec;

enum { CALL_WAITING = 1, CALL_RINGING, CALL_CONNECTED };

/* An attempt's outcome when the engine stopped the ring (the call was
** answered elsewhere, ended, moved): after the sb_ring_outcome values, which
** a gateway reports. */
enum { ATT_CANCELLED = SB_RING_REJECTED + 1 };

typedef struct ring_target {
    uint32_t agent;
    uint8_t dev; /* device bit */
} ring_target;

typedef struct attempt_rec {
    uint32_t agent;
    uint8_t dev, outcome; /* sb_ring_outcome or ATT_CANCELLED; 0 = still ringing */
    int64_t start;
    int32_t dur_ms;
} attempt_rec;

enum { TR_RING = 1, TR_WAIT, TR_MOVE, TR_REJECT, TR_ERROR };

typedef struct trace_rec {
    int64_t t;
    uint8_t kind, fallback;
    char version[17];
    char policy[SB_NAME_MAX + 1];
    char detail[256];
} trace_rec;

typedef struct call_rec {
    /* Scalars first: an offer clears everything up to `ring`; the arrays
    ** after it are read only up to their counts. */
    char id[SB_ID_MAX + 1];
    uint32_t queue, first_queue;
    uint8_t state;
    char caller[SB_E164_MAX + 1], called[SB_E164_MAX + 1];
    int32_t priority;
    int64_t offered, queued, answered; /* answered: the first answer */
    int64_t connected;                 /* the current agent's answer; 0: none */
    int64_t talked;                    /* talk (ms) of agents before it (transfers) */
    uint32_t attempts;
    uint32_t agent;      /* connected agent */
    uint32_t last_agent; /* agent of the previous ring attempt */
    uint8_t nring;
    int64_t ring_start;
    int32_t ring_timeout;
    uint8_t nseq, seqpos;
    int64_t ring_due, wake_due, maxwait_due; /* timer keys, 0 = none */
    uint8_t ntried;
    uint8_t natt;
    uint8_t ntrace;
    uint32_t ntrace_total;
    uint8_t moves;
    /* Caller history: the agent this caller last spoke to (0: none), found
    ** through the pseudonym index when the call is offered (records.c). */
    uint32_t prev_agent;
    /* Keyed pseudonyms of the caller and the called number, in that order,
    ** of those the call has (CR_PSEUDONYM_BYTES each): a caller who
    ** withheld the number has none, and then pseudo[0] is the called
    ** number's, if any. */
    uint8_t npseudo;
    uint8_t pseudo[2][16];
    uint8_t withheld; /* the caller's number was withheld (caller is "") */
    /* caller, called and pattrs hold plaintext only in memory: the stored
    ** call keeps them sealed in `pii` (records.c). pii_open says whether
    ** they have been filled since the call was loaded. */
    uint8_t pii_open;
    /* pii sealed with the associated data of version 3 (the offered time in
    ** it); 0 for a call offered before (stored before call format 4). */
    uint8_t sealed_v3;
    /* The queue the call is in, as its aggregates count it (records.c,
    ** rec_aggr_leave): when the call came to it (offered or moved there),
    ** its first answer there (0: none) and the call's talk before it came
    ** (ms). Leaving a queue for another adds the left queue's row at once
    ** and starts these afresh, so a call keeps one queue's figures, never a
    ** list. q_owed: a call stored before call format 6 that had moved by
    ** then; its first queue's row, never added, is added when it ends. */
    int64_t q_entered, q_answered, q_talked;
    uint8_t q_owed;
    ring_target ring[MAX_RING];
    ring_target seq[MAX_RING];
    struct {
        uint32_t agent;
        uint16_t n;
    } tried[MAX_TRIED];
    attempt_rec att[MAX_ATTEMPTS];
    trace_rec trace[MAX_TRACE];
    sb_buf attrs;  /* gateway attributes, minus those the account marks personal */
    sb_buf pii;    /* sealed: caller NUL called NUL personal-attributes JSON */
    sb_buf pattrs; /* in memory only: the personal attributes (JSON object or empty) */
} call_rec;

/* Encoders append to w; decoders return 0 or SB_ESTORE (corrupt value). */
void enc_account(wbuf *w, const acct_rec *a);
int dec_account(const void *p, size_t n, acct_rec *a);
void enc_agent(wbuf *w, const agent_rec *a);
int dec_agent(const void *p, size_t n, agent_rec *a);
void enc_queue(wbuf *w, const queue_rec *q);
int dec_queue(const void *p, size_t n, queue_rec *q);
void enc_member(wbuf *w, const member_rec *m);
int dec_member(const void *p, size_t n, member_rec *m);
void enc_avail(wbuf *w, const avail_rec *a);
int dec_avail(const void *p, size_t n, avail_rec *a);
void enc_call(wbuf *w, const call_rec *c);
int dec_call(const void *p, size_t n, call_rec *c);

/* Add a decision to the call's trace (keeps the first 4 and the last 12). */
void call_trace(call_rec *c, int64_t t, int kind, int fallback, const char *policy,
                const char *version, const char *detail);
/* Count a ring to agent in the call's tried list. */
void call_tried(call_rec *c, uint32_t agent);
void call_free(call_rec *c);
void agent_free(agent_rec *a);
void queue_free(queue_rec *q);

#endif
