/*
** serve.h — the running daemon, shared by its parts:
**   daemon.c   start-up, the data directory lock, the loop, group commit,
**              timers (sb_tick), signals, shutdown
**   http.c     connections and the HTTP/1.1 parser/writer
**   api.c      the routes: one library call each
**   stream.c   GET /v1/events subscribers (Server-Sent Events)
**   metrics.c  request counters and the Prometheus page
**   demo.c     the --demo account
** Everything runs on the one event loop thread, except sb_sync() in group
** mode, which runs on a dedicated sync thread (daemon.c) so the loop keeps
** serving while the disk syncs, and the call and agent events, which the
** engine thread applies and commits a batch at a time while the loop goes
** on reading requests and sending what is synced (daemon.c, "Events").
*/
#ifndef SBD_SERVE_H
#define SBD_SERVE_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <jansson.h>

#include "config.h"
#include "daemon.h"
#include "switchboard.h"

typedef struct sbd sbd;
typedef struct sbd_conn sbd_conn;
typedef struct sbd_sub sbd_sub;
typedef struct sbd_pub sbd_pub;
typedef struct sbd_backlog sbd_backlog;
typedef struct sbd_hent sbd_hent;

/* ------------------------------------------------------------------------ */
/* A connection's last successful Basic-auth check (api.c): the same
** Authorization header on the same connection skips sb_apikey_verify() while
** the daemon's key generation is unchanged and for at most
** SBD_AUTH_CACHE_TTL_NS. */
#define SBD_AUTH_CACHE_TTL_NS (5ull * 1000000000ull)
typedef struct sbd_auth_cache {
    int valid;
    unsigned char hash[32]; /* BLAKE2b of the Authorization header value */
    char account[136];
    uint64_t gen;        /* sbd.auth_gen when verified */
    uint64_t expires_ns; /* sbd_now_ns() deadline */
    unsigned failures;   /* credentials refused in a row on the connection */
} sbd_auth_cache;

/* Credentials refused this many times in a row on one connection: the last
** 401 closes it (api.c), so guessing costs a connection every few tries. */
#define SBD_AUTH_FAILURES_CLOSE 10

/* A parsed request, handed to the API layer. Strings live until the handler
** returns. */

enum { SBD_GET, SBD_PUT, SBD_POST, SBD_DELETE, SBD_HEAD, SBD_OTHER, SBD_NMETHODS };

typedef struct sbd_req {
    int method; /* SBD_GET ...                                  */
    const char *method_name;
    const char *path;          /* raw path, no query                           */
    const char *query;         /* raw query string after '?', or ""            */
    const char *authorization; /* header value or NULL                       */
    const char *content_type;  /* header value or NULL                       */
    const char *last_event_id; /* header value or NULL                       */
    const char *if_match;      /* header value or NULL                       */
    const char *if_none_match; /* header value or NULL                       */
    const char *fetch_site;    /* Sec-Fetch-Site (a browser's) or NULL        */
    const char *body;          /* NUL-terminated copy; body_len excludes the NUL */
    size_t body_len;
    sbd_auth_cache *auth_cache; /* the connection's, or NULL */
    const int *conn_closed;     /* set once an answer closed the connection, or NULL */
    const char *peer;           /* the client's address, for the log; NULL: unknown */
} sbd_req;

/* What the API layer answers. `body` is created by the HTTP layer; the handler
** appends to it. */
typedef struct sbd_reply {
    int status;
    struct evbuffer *body;
    const char *content_type; /* NULL: application/json                   */
    char headers[512];        /* extra header lines, each ending in \r\n   */
    int mutating;             /* committed a change (sb_result_changed; not
                              ** every success of a PUT, POST or DELETE):
                              ** the batch needs a sync, and a failed one
                              ** answers the error in its place            */
    int close;                /* storage failed: close after this answer   */
    int route;                /* route index for metrics, -1 if none        */
    int stream;               /* turn the connection into an event stream   */
    char stream_account[132];
    const char *stream_auth; /* its Authorization header, checked again later */
    struct sbd_job *job;     /* an event left for the engine thread (api.c, run_event) */
    int dropped;             /* not handled: an answer before it closed the connection */
    int stream_resume;       /* Last-Event-ID was given: */
    uint64_t stream_after;   /* ... its value */
} sbd_reply;

/* An event request between its parse and its answer (daemon.c, "Events"):
** made by api.c's run_event on the loop, applied by the engine thread (or
** the loop, in sbd_batch_close), answered on the loop again (sbd_http_finish).
** Owns copies of all it names: the request's buffers are gone by then. */
typedef struct sbd_job {
    struct sbd_job *next;
    sbd_conn *c; /* whose request; NULL once the connection is gone */
    /* The event, for sb_submit_json; its outcome. doc, path, call and agent
    ** lie in buf, kept with the job for the next (sbd_job_room). */
    char *buf;
    size_t cap, used; /* used: by this job (wiped as it is let go) */
    char *doc;
    size_t len;
    int skip; /* not applied: its connection was closed by an answer before it */
    char account[136];
    sb_result *res;
    int rc;
    /* What the answer needs: api.c's reply (sbd_api_finish) ... */
    const void *rt; /* the route (api.c's struct route) */
    int method;
    char method_name[8];
    char *path;
    int ok_status;
    char *call, *agent; /* the call or agent the answer names; NULL: none */
    sbd_reply rep;      /* as the handler left it (its body is taken anew) */
    /* ... and http.c's (sbd_http_finish). */
    int minor, keepalive, head;
    uint64_t t0;
} sbd_job;

/* ------------------------------------------------------------------------ */
/* Metrics kept by the daemon itself. */

#define SBD_MAX_ROUTES 32
/* A tick's share of the loop (sb_tick_for): the timers still due fire at
** the next turn. */
#define SBD_TICK_MS 10
#define SBD_NSTATUS 20
#define SBD_LAT_BUCKETS 16

typedef struct sbd_metrics {
    uint64_t requests[SBD_MAX_ROUTES + 1][SBD_NMETHODS][SBD_NSTATUS];
    uint64_t lat_counts[SBD_LAT_BUCKETS + 1]; /* per bucket; last is +Inf */
    double lat_sum;
    uint64_t lat_count;
    uint64_t conns_accepted, conns_rejected;
    uint64_t conns_rejected_per_peer; /* also in conns_rejected */
    uint64_t syncs, sync_errors;
    double sync_seconds;
    uint64_t batches;
    uint64_t ticks, tick_errors, tick_actions, tick_cuts;
    uint64_t stream_events, stream_dropped, stream_backlog_dropped;
    uint64_t stream_resumes, stream_resyncs;
    uint64_t stream_refused;     /* past stream_max_per_account: 429 */
    uint64_t batch_errors;       /* engine batches that could not be stored */
    uint64_t batch_commits;      /* engine batches committed (each syncs its pages) */
    double batch_commit_seconds; /* the loop's time in those commits */
    uint64_t reloads_ok, reloads_failed;
    uint64_t auth_failures_key, auth_failures_admin; /* credentials refused: 401 */
    uint64_t sweeps, sweep_errors, swept;            /* retention sweep transactions, records */
} sbd_metrics;

/* ------------------------------------------------------------------------ */

/* How long a retention sweep run took (daemon.c, sweep_cb; its `sweep done`
** line's ms=): from its first turn to its last, less the wait between a
** turn that failed and the next sweep, which carries the run on (its totals
** include the turns before the failure). Zeroed to start. */
typedef struct sbd_sweep_clock {
    int running;        /* a stretch of the run's turns is in progress */
    uint64_t t0_ns;     /* when that stretch began */
    uint64_t turn_ns;   /* when the turn in progress began */
    uint64_t before_ns; /* the run's stretches before failures, added up */
} sbd_sweep_clock;
/* A turn begins at now_ns. */
void sbd_sweep_clock_turn(sbd_sweep_clock *c, uint64_t now_ns);
/* The turn failed at now_ns: the run's stretch ends there. */
void sbd_sweep_clock_failed(sbd_sweep_clock *c, uint64_t now_ns);
/* The turn worked, at now_ns. resumed: it carried on a run begun before it
** (sb_sweep's "resumed"; not: the run began with it, and what failed before
** is no part of it); more: the run goes on. The run's time in ms once it is
** over (more 0), and the clock ready for the next; 0 before. */
double sbd_sweep_clock_done(sbd_sweep_clock *c, int resumed, int more, uint64_t now_ns);

/* One request waiting in the batch for the sync (for the latency histogram). */
typedef struct sbd_pending_req {
    int route, method, status;
    int mutating; /* a change: answered with the error if its sync fails */
    uint64_t t0_ns;
    uint64_t seq; /* batch it was answered in */
} sbd_pending_req;

/* What one account's policy uploads took of the event loop lately
** (api.c, upload_share): ms owed, paid back at a tenth of the time passing. */
#define SBD_UPLOAD_SLOTS 64
typedef struct sbd_upload_debt {
    char account[136];
    double owed_ms;
    uint64_t at_ns;
} sbd_upload_debt;

/* A state of GET /healthz that a storage failure sets and a later write
** that worked ends, once that write is durable. */
typedef struct sbd_health {
    int on;
    int at_start;    /* set at start, no write having failed (storage_at_start) */
    uint64_t ok_seq; /* that write's batch, ended when released as synced (0: none yet) */
    int ok_batch;    /* that write is an event of the engine batch still open */
} sbd_health;

struct sbd {
    sbd_config *cfg;
    int argc;                     /* serve's arguments: SIGHUP reads the configuration again, */
    char **argv;                  /* to say what changed in it (it takes a restart) */
    unsigned max_connections_set; /* before fit_fd_limit lowered it */
    sb_engine *eng;
    sb_result *res;
    struct event_base *base;
    struct evconnlistener *listener;
    struct event *accept_pause; /* re-enables the listener after accept ran out of descriptors */
    uint64_t accept_failed;     /* failures since the last one logged */
    char listen_addr[96];
    unsigned char admin_hash[32]; /* BLAKE2b of the admin token */
    uint64_t auth_gen;            /* bumped by every admin change: drops auth caches */
    char admin_token_path[4096];

    /* connections */
    sbd_conn *conns;     /* all open connections (doubly linked) */
    unsigned nconns;     /* counted against max_connections */
    unsigned nrejecting; /* connections being sent a 503 */
    uint64_t next_conn_id;

    /* The batches: responses and stream events held until the sync that
    ** covers them. Everything held is tagged with open_seq, the batch being
    ** collected, read after the commit it answers. A batch closes (open_seq
    ** becomes N + 1) just before the sync thread's sync begins, so a sync
    ** covers every commit tagged <= N, and releases exactly what is tagged
    ** <= N. At most one sync in flight; the next batch collects meanwhile
    ** (sbd_seq(), sbd_commit_tag()).
    ** With the sync thread running, open_seq, dirty_seq, synced_seq,
    ** inflight_seq, the sync_* fields and sync_kick are guarded by sync_mu
    ** (open_seq is also read atomically, without it). */
    sbd_conn *batch;        /* connections with responses held */
    int batch_dirty;        /* something committed in the open batch (no sync thread) */
    size_t batch_len;       /* responses since the last flush */
    uint64_t open_seq;      /* the batch being collected (>= 1) */
    uint64_t dirty_seq;     /* the last batch something was committed in */
    uint64_t synced_seq;    /* the last batch a sync covered */
    uint64_t inflight_seq;  /* the batch the sync thread is syncing, 0: none */
    size_t turn_page_bytes; /* bytes of pages of lists built this turn (api.c, max_page) */
    sbd_pending_req *preq;
    size_t npreq, cappreq;
    /* Events (daemon.c): jobs collected this turn, not yet handed on; the
    ** batch the engine thread has (0 or 1); answered jobs kept for reuse. With the
    ** engine thread running, eng_run, eng_done, eng_rc and eng_quit are
    ** guarded by eng_mu. */
    int answering; /* answers to a committed batch's events are being made, not yet tagged */
    sbd_job *jobs, **jobs_tail;
    sbd_job *eng_run;       /* handed to the engine thread, not yet answered */
    int eng_done, eng_rc;   /* it has applied eng_run: the batch's commit code */
    sb_result *eng_res;     /* the engine thread's batch result */
    sbd_job *free_jobs;     /* answered, kept for reuse with their result and buffer */
    uint64_t eng_handed_ns; /* when the batch in hand was handed over */
    pthread_t eng_thread;
    int eng_thread_started, eng_quit;
    pthread_mutex_t eng_mu;
    pthread_cond_t eng_cv, eng_done_cv;
    int eng_efd; /* eventfd: the engine thread -> the loop */
    struct event *eng_ev;
    struct event *resume_ev; /* connections whose answer came take their next request */
    sbd_pub *pub_head, **pub_tail;
    uint64_t forget_serial; /* accounts deleted (stream.c, sbd_stream_forget) */

    /* stream subscribers, by account */
    sbd_sub *subs;
    unsigned nsubs;
    /* each account's recent actions, sent or kept for the next subscriber
    ** (stream.c), and its last event id; event_id_base: where this start's
    ** ids begin */
    sbd_backlog **acct_tab; /* by account id: a hash table of acct_cap buckets */
    size_t acct_cap, acct_n;
    size_t backlog_bytes; /* every account's history, JSON bytes */
    size_t backlog_n;     /* entries of it no subscriber was sent yet */
    sbd_hent *sent_head, *sent_tail;
    int lag_check;        /* the history dropped entries a lagging subscriber may need */
    char tick_error[256]; /* the last tick's failure, "" after one that worked (/healthz) */
    /* GET /healthz's storage_full: a write failed for lack of room (SB_EFULL),
    ** ended by a write that needed room; storage_failing: a request, a
    ** turn's commit or a sync failed for another storage error (an I/O
    ** error, a broken page; storage_error says which), ended by any write */
    sbd_health full, failing;
    char storage_error[256];
    sbd_upload_debt uploads[SBD_UPLOAD_SLOTS];
    uint64_t event_id_base;

    /* timers and signals */
    struct event *deadline_ev, *housekeeping_ev, *keepalive_ev, *drain_ev, *sweep_ev;
    struct event *sig_hup, *sig_term, *sig_int, *sig_usr1, *sig_usr2;
    int64_t armed_deadline;
    int64_t stuck_deadline; /* a deadline a tick left due: back off */
    int draining, stop;

    /* The sync thread (group mode). */
    pthread_t sync_thread;
    int sync_thread_started;
    pthread_mutex_t sync_mu;
    pthread_cond_t sync_cv;
    int sync_kick, sync_quit;
    uint64_t sync_failed; /* a batch whose sync failed, until the loop answered for it */
    int sync_rc;          /* ... and why */
    uint64_t sync_count, sync_errs, sync_ns; /* totals, for the metrics */
    int sync_efd;                            /* eventfd: the sync thread -> the loop */
    struct event *sync_ev;

    sbd_metrics m;
};

/* The tag of what answers an event of the open engine batch: it is not
** committed yet, so no sync releases it; sbd_batch_close tags it with the
** batch it was committed in (or answers it with a 500). */
#define SBD_SEQ_UNCOMMITTED UINT64_MAX
/* For release(): everything held that is committed. */
#define SBD_SEQ_ALL (UINT64_MAX - 1)

/* daemon.c */
uint64_t sbd_now_ns(void); /* monotonic */
/* Storage failed with rc (why: what failed): SB_EFULL, /healthz says
** storage_full until a write that needed room works; another code,
** storage_failing until any write works. */
void sbd_storage_failed(sbd *d, int rc, const char *why);
/* A write request succeeded (room: not one that a full map or disk lets
** through, see api.c's uses_reserve): the states it ends end once it is
** committed and durable (with sync = group, once its sync has worked). */
void sbd_storage_wrote(sbd *d, int room);
/* storage_full found at start (the map past map_max) and nothing written
** since: ended, said at info, once the engine says there is room again (a
** sweep's or a delete's). */
void sbd_full_at_start_recheck(sbd *d);
/* Events (POST /v1/calls..., agent status) run in one engine transaction
** per batch: api.c leaves each as a job (sbd_job_new, then sbd_job_add),
** which the engine thread applies with the rest of the turn's, and the loop
** answers once that batch is committed. sbd_batch_close, before anything
** else that uses the engine: every job applied, committed and answered
** (their responses tagged for its sync, or, when the commit failed, answered
** with a 500 and their actions dropped). */
sbd_job *sbd_job_new(sbd *d);
/* j's buffer, at least n bytes; NULL when out of memory. */
char *sbd_job_room(sbd_job *j, size_t n);
void sbd_job_free(sbd *d, sbd_job *j);
void sbd_job_add(sbd *d, sbd_job *j);
void sbd_batch_close(sbd *d);
/* Every job applied and answered; what holds them freed (the engine thread
** stopped first, if it ran). */
void sbd_events_free(sbd *d);
/* The open batch: the tag for what is held now (read after the commit it
** answers, if any). */
uint64_t sbd_seq(sbd *d);
/* After a commit: the tag for what answers it; the open batch needs a sync. */
uint64_t sbd_commit_tag(sbd *d);
int64_t sbd_wall_ms(void);
/* free() and realloc() for blocks that may hold a number, a personal
** attribute or a key: a block is wiped whole (its usable size) as it is
** freed, and one that grows moves by a copy, the block left wiped.
** libevent's in the daemon (daemon.c). */
void sbd_free_wiped(void *p);
void *sbd_realloc_wiped(void *p, size_t n);
/* End of a batch: in group mode, have the sync thread sync the open batch if
** something was committed and no sync is in flight (the responses wait for
** it), or release everything held when nothing is left unsynced.
** Other modes: release at once. Re-arms the timer for the next deadline.
** Never blocks on the disk. */
void sbd_flush(sbd *d);
/* A connection went away; during shutdown, stop when none are left. */
void sbd_conn_gone(sbd *d);

/* http.c */
int sbd_http_listen(sbd *d);
/* Can the listen address be bound now? Tried and let go before anything is
** made on disk; -1 after saying why not. */
int sbd_http_can_listen(sbd *d);
/* Hand the held responses tagged <= upto to the connections. sync_rc, the
** code of a sync that failed (0: none): each of them that answers a
** mutating request is replaced by its error (503 SB_EFULL for want of room,
** else 500 SB_ESTORE); the responses held after them wait for their own
** sync, on the connection, which stays open. */
void sbd_http_release(sbd *d, uint64_t upto, int sync_rc);
/* The responses tagged SBD_SEQ_UNCOMMITTED take tag seq; rc, nonzero: the
** engine batch they answer was not stored, and their connections get its
** error instead (and close), as for a failed sync. */
void sbd_http_settle(sbd *d, uint64_t seq, int rc);
/* An applied job: its response held on its connection (untagged, as
** sbd_http_settle then tags), which takes its next request after. */
void sbd_http_finish(sbd *d, sbd_job *j);
/* Does c still have responses held for a sync? */
int sbd_conn_held(const sbd_conn *c);
/* Stop accepting; close idle connections; let in-flight requests finish. */
void sbd_http_drain(sbd *d);
/* Are all the connections left event streams (or lingering closes)? */
int sbd_http_only_streams(const sbd *d);
/* Close the event streams once they have sent what they hold. */
void sbd_http_end_streams(sbd *d);
/* The streams whose connection still holds unsent events, and those bytes. */
unsigned sbd_http_unsent(const sbd *d, size_t *bytes);
void sbd_http_close_all(sbd *d);
struct bufferevent *sbd_conn_bev(sbd_conn *c);
uint64_t sbd_conn_id(const sbd_conn *c);
const char *sbd_conn_peer(const sbd_conn *c);
void sbd_conn_close(sbd_conn *c);
/* An event stream's connection closes once it has sent what it holds. */
void sbd_conn_end_stream(sbd_conn *c);
void sbd_conn_set_sub(sbd_conn *c, sbd_sub *s);

/* api.c */
void sbd_api_handle(sbd *d, const sbd_req *req, sbd_reply *rep);
/* The answer to an applied job, in rep (its body empty): what
** sbd_api_handle would have made of it. */
void sbd_api_finish(sbd *d, sbd_job *j, sbd_reply *rep);
/* A request whose body is still to come, refused on its head alone (no
** route, a method the route does not take, credentials refused, a query
** parameter it does not take): 1 with
** rep filled as sbd_api_handle would fill it; 0 when it may go on. For an
** Expect: 100-continue, answered without inviting the body. */
int sbd_api_refuse_head(sbd *d, const sbd_req *req, sbd_reply *rep);
/* Verify an Authorization header "Basic base64(account:key)": 0 with the
** account in acct, SB_EAUTH, or another SB_E* (storage). */
int sbd_auth_basic(sbd *d, const char *header, char *acct, size_t cap);
int sbd_api_route_count(void);
const char *sbd_api_route_name(int route);
/* The route a request's target names (its index, -1 for none): for
** requests refused before they are handled, such as a body too large. */
int sbd_api_route_of(const char *target);
/* Append {"error":{...}} to rep and set its status. code is a SB_E* name or
** one of the daemon's HTTP_* codes. */
void sbd_api_error(sbd_reply *rep, int status, const char *code, const char *message,
                   const char *field);
int sbd_api_status(int sb_code);

/* stream.c */
/* account: whose actions; auth: the Authorization header the stream was
** opened with (copied), verified again while it is open. resume: the
** request gave Last-Event-ID `after`; the account's actions after it go
** first, else those no subscriber was sent. */
int sbd_stream_subscribe(sbd *d, sbd_conn *c, const char *account, const char *auth, int resume,
                         uint64_t after);
/* Close the streams whose credentials no longer verify (a key revoked, an
** account deleted, here or by another process): every stream when force,
** else those not checked for SBD_AUTH_CACHE_TTL_NS. */
void sbd_stream_recheck(sbd *d, int force);
void sbd_stream_unsubscribe(sbd *d, sbd_sub *s);
/* The streams account has open (against stream_max_per_account). */
unsigned sbd_stream_count(sbd *d, const char *account);
/* Hold an action for the account's subscribers until the batch is synced. */
void sbd_stream_hold(sbd *d, const sb_action *a, const char *account);
/* The open engine batch was committed in batch seq (failed: it was not):
** its actions take that tag (or are dropped). */
void sbd_stream_settle(sbd *d, uint64_t seq, int failed);
/* s's connection drained: a subscriber catching up goes on. 1 when it was
** dropped instead (s and its connection are freed). */
int sbd_stream_drained(sbd *d, sbd_sub *s);
/* Publish the held stream events tagged <= upto. */
void sbd_stream_publish(sbd *d, uint64_t upto);
void sbd_stream_keepalive(sbd *d);
void sbd_stream_close_all(sbd *d);
/* A subscriber whose connection took idle_timeout to accept any of what
** waits for it: dropped and logged like a slow one. */
void sbd_stream_stalled(sbd *d, sbd_sub *s);
/* Free the actions kept for accounts without a subscriber. */
void sbd_stream_free_backlogs(sbd *d);
/* The account was deleted: what is kept for it is dropped; its subscribers
** are sent what its last requests caused and the actions in res (the end
** of each live call it had), once synced, and their streams then close.
** Nothing of it reaches an account made again under its id. */
void sbd_stream_forget(sbd *d, const char *account, const sb_result *res);
/* The action as JSON, byte for byte as the library's result JSON renders
** it (sb_action_json), the account filled in if the action has none. */
int sbd_action_write(struct evbuffer *out, const sb_action *a, const char *account,
                     const char *sep);
char *sbd_action_json(const sb_action *a, const char *account);

/* metrics.c */
void sbd_metrics_request(sbd *d, int route, int method, int status, double seconds);
void sbd_metrics_render(sbd *d, struct evbuffer *out);
int sbd_status_index(int status);

/* demo.c */
int sbd_demo_setup(sbd *d);

#endif
