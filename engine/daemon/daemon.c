/*
** daemon.c — `switchboard serve`: start-up, the loop, group commit, timers,
** signals and shutdown.
**
** Group commit: the engine is opened with SB_SYNC_DEFER. The loop runs one
** libevent iteration at a time (EVLOOP_ONCE, a turn): every request that is
** ready is parsed; the events among them (offers, ring results, hangups,
** transfers, agent status) are left for the engine thread as one batch,
** anything else is applied at once, after the events before it (below,
** "Events"). A commit syncs the pages it wrote, then writes the meta page
** that points at them; each response is held, tagged with the open batch's
** number once its transaction committed. The sync thread then calls
** sb_sync() for the meta page while the loop goes on serving and the engine
** thread applies the next batch; when that sync is done the thread signals
** the loop (an eventfd), which releases exactly the responses and stream
** events tagged with a batch the sync covered. At most one sync is in
** flight. Nothing is acknowledged before it is durable.
** A daemon that cannot start its engine thread, or its sync thread under
** group commit, does not start: running without them would take paths
** that nothing else runs. (Without the engine thread, batches were left for
** the next turn's commit to make durable, its own sync covering every meta
** page written before it; that path went with the last use of it.)
**
** A batch's events share one engine transaction (sb_batch_begin and
** sb_batch_end): one commit, and one write of each page they touch, for all
** of them; an event that fails is undone inside it, so it still changes
** nothing. Their responses and actions are made once the batch is
** committed and tagged as any commit's are; a batch that cannot be stored
** has its requests answered with a 500 and its actions dropped. (Each
** event in a nested LMDB transaction instead was built and measured first:
** no gain, as LMDB allocates and copies for every nested transaction what
** the saved commits cost. The undo log costs a read per write.)
*/
#include "daemon.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "log.h"
#include "serve.h"

uint64_t sbd_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int64_t sbd_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ------------------------------------------------------------------------ */
/* Timers: the engine's next deadline, housekeeping, stream keep-alives. */

static void arm_deadline(sbd *d)
{
    if (!d->eng || !d->deadline_ev) return;
    /* Shutting down: timers wait for the next start, where what they cause
    ** reaches a stream (or the account's backlog) instead of a closing one. */
    if (d->draining) {
        event_del(d->deadline_ev);
        return;
    }
    int64_t dl = sb_next_deadline(d->eng);
    if (dl == d->armed_deadline && event_pending(d->deadline_ev, EV_TIMEOUT, NULL)) return;
    if (dl == INT64_MAX) {
        event_del(d->deadline_ev);
        d->armed_deadline = INT64_MAX;
        return;
    }
    /* +1 ms: libevent's monotonic clock and the engine's wall clock may
    ** round differently; waking a hair late beats spinning. */
    int64_t delay = dl - sbd_wall_ms() + 1;
    if (delay < 0) delay = 0;
    /* The last tick did not clear this deadline (an error, or timers it
    ** could not fire yet): retry soon, but do not spin. */
    if (dl == d->stuck_deadline && delay < 100) delay = 100;
    if (delay > 60000) delay = 60000; /* housekeeping re-arms anyway */
    struct timeval tv = {(time_t)(delay / 1000), (suseconds_t)((delay % 1000) * 1000)};
    event_add(d->deadline_ev, &tv);
    d->armed_deadline = dl;
}

static void do_tick(sbd *d)
{
    sbd_batch_close(d);
    int64_t due = sb_next_deadline(d->eng);
    /* A share of the loop at a time: timers still due fire at the next
    ** turn, requests and signals served in between. */
    int left = 0;
    int rc = sb_tick_for(d->eng, SBD_TICK_MS, &left, d->res);
    d->m.ticks++;
    if (rc != 0) {
        /* Retried every 100 ms while it fails (a full disk, a broken
        ** page): one line a second, with how many it stood for. */
        static sbd_log_limit limit;
        char more[48];
        const char *why =
            sb_result_message(d->res)[0] ? sb_result_message(d->res) : sb_strerror(rc);
        d->m.tick_errors++;
        snprintf(d->tick_error, sizeof d->tick_error, "%s", why);
        if (sbd_log_limit_take(&limit, rc, more, sizeof more))
            sbd_log(SB_LOG_ERROR, "tick failed", "error=%s%s", sbd_qn(why), more);
    } else {
        d->tick_error[0] = 0;
    }
    size_t n = sb_result_count(d->res);
    for (size_t i = 0; i < n; i++)
        sbd_stream_hold(d, sb_result_action(d->res, i), NULL);
    d->m.tick_actions += n;
    if (n || rc == 0) sbd_commit_tag(d);
    d->armed_deadline = INT64_MIN; /* re-arm in sbd_flush */
    int64_t next = sb_next_deadline(d->eng);
    d->stuck_deadline = !left && next == due && due <= sbd_wall_ms() ? due : INT64_MIN;
    if (left) d->m.tick_cuts++;
    if (n) sbd_log(SB_LOG_DEBUG, "tick", "actions=%zu", n);
}

static void deadline_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    do_tick(arg);
}

static void housekeeping_cb(evutil_socket_t fd, short what, void *arg)
{
    sbd *d = arg;
    (void)fd;
    (void)what;
    /* Other engines on the data directory may have added timers, or
    ** revoked the keys streams were opened with. */
    d->armed_deadline = INT64_MIN;
    arm_deadline(d);
    sbd_stream_recheck(d, 0);
}

void sbd_sweep_clock_turn(sbd_sweep_clock *c, uint64_t now_ns)
{
    if (!c->running) c->t0_ns = now_ns;
    c->turn_ns = now_ns;
    c->running = 1;
}

void sbd_sweep_clock_failed(sbd_sweep_clock *c, uint64_t now_ns)
{
    /* The next sweep, sweep_interval on, carries the run on: the wait
    ** until then is no part of its time. */
    if (c->running) c->before_ns += now_ns - c->t0_ns;
    c->running = 0;
}

double sbd_sweep_clock_done(sbd_sweep_clock *c, int resumed, int more, uint64_t now_ns)
{
    if (!resumed) { /* the run began with this turn */
        c->before_ns = 0;
        c->t0_ns = c->turn_ns;
    }
    if (more) return 0;
    double ms = (double)(c->before_ns + (now_ns - c->t0_ns)) / 1e6;
    *c = (sbd_sweep_clock){0};
    return ms;
}

/* Retention sweeps: one short transaction per turn of the loop (requests
** are served in between) until nothing is due, then wait sweep_interval.
** sb_sweep() reports the totals of the whole run, the turns before this one
** included (a run cut short, by a turn's budget, a failure or a crash, is
** carried on by the next call), and this_call, what the turn did: the
** counter adds the latter, so each record counts once, also beside another
** process's sweep. */
static sbd_sweep_clock sweep_clock; /* the run in progress in this process */

static void sweep_cb(evutil_socket_t fd, short what, void *arg)
{
    sbd *d = arg;
    (void)fd;
    (void)what;
    if (d->draining) return;
    sbd_sweep_clock_turn(&sweep_clock, sbd_now_ns());
    sbd_batch_close(d);
    int rc = sb_sweep(d->eng, 1, NULL, NULL, d->res);
    /* A start found the map full: the sweep's deletes may have made room,
    ** with no request to show it. */
    sbd_full_at_start_recheck(d);
    d->m.sweeps++;
    json_t *s = rc ? NULL : json_loads(sb_result_json(d->res, NULL), 0, NULL);
    int more = s && !json_is_true(json_object_get(s, "done"));
    if (rc) {
        sbd_sweep_clock_failed(&sweep_clock, sbd_now_ns());
        d->m.sweep_errors++;
        sbd_log(SB_LOG_ERROR, "sweep failed", "error=%s next_in=%us",
                sbd_qn(sb_result_message(d->res)), d->cfg->sweep_interval);
    } else {
        sbd_commit_tag(d); /* synced with the batch */
#define SWEPT(k) ((uint64_t)json_integer_value(json_object_get(s, k)))
        /* Reviews, purges, and records an erasure request reached once the
        ** hold that kept them was released. */
        uint64_t total =
            SWEPT("reviewed") + SWEPT("purged") + SWEPT("erased") + SWEPT("audit_expired");
        json_t *own = json_object_get(s, "this_call");
        d->m.swept += (uint64_t)json_integer_value(json_object_get(own, "reviewed")) +
                      (uint64_t)json_integer_value(json_object_get(own, "purged")) +
                      (uint64_t)json_integer_value(json_object_get(own, "erased"));
        double ms = sbd_sweep_clock_done(&sweep_clock, json_is_true(json_object_get(s, "resumed")),
                                         more, sbd_now_ns());
        /* Records whose retention hook failed were kept as they were: warn. */
        if (!more && total)
            sbd_log(SWEPT("failed") ? SB_LOG_WARN : SB_LOG_INFO, "sweep done",
                    "reviewed=%llu deleted=%llu anonymized=%llu kept=%llu overridden=%llu "
                    "failed=%llu purged=%llu erased=%llu audit_expired=%llu ms=%.1f next_in=%us",
                    (unsigned long long)SWEPT("reviewed"), (unsigned long long)SWEPT("deleted"),
                    (unsigned long long)SWEPT("anonymized"), (unsigned long long)SWEPT("kept"),
                    (unsigned long long)SWEPT("overridden"), (unsigned long long)SWEPT("failed"),
                    (unsigned long long)SWEPT("purged"), (unsigned long long)SWEPT("erased"),
                    (unsigned long long)SWEPT("audit_expired"), ms, d->cfg->sweep_interval);
#undef SWEPT
    }
    json_decref(s);
    struct timeval next = {more ? 0 : (time_t)d->cfg->sweep_interval, 0};
    event_add(d->sweep_ev, &next);
}

static void keepalive_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    sbd_stream_keepalive(arg);
}

/* ------------------------------------------------------------------------ */
/* The batch. */

/* A helper thread's reports to the loop: an eventfd it writes, read first
** in the loop's turn (priority 0) by cb. 0, or -1 with *efd or *ev unmade. */
static int report_event(sbd *d, int *efd, struct event **ev, event_callback_fn cb)
{
    *efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (*efd < 0) return errno;
    *ev = event_new(d->base, *efd, EV_READ | EV_PERSIST, cb, d);
    return *ev && event_priority_set(*ev, 0) == 0 && event_add(*ev, NULL) == 0 ? 0 : ENOMEM;
}

/* report_event's eventfd and event, gone. */
static void report_close(int *efd, struct event **ev)
{
    if (*ev) event_free(*ev);
    *ev = NULL;
    if (*efd >= 0) close(*efd);
    *efd = -1;
}

/* Tell a helper thread to quit (the flag under its mutex, its condition
** signalled), and wait for it to end. */
static void helper_quit(pthread_t th, pthread_mutex_t *mu, pthread_cond_t *cv, int *quit)
{
    pthread_mutex_lock(mu);
    *quit = 1;
    pthread_cond_signal(cv);
    pthread_mutex_unlock(mu);
    pthread_join(th, NULL);
}

/* Report to the loop, from a helper thread. */
static void report_send(int efd)
{
    uint64_t one = 1;
    while (write(efd, &one, sizeof one) < 0 && errno == EINTR) {
    }
}

/* Take a report off the eventfd (any number count as one). */
static void report_taken(evutil_socket_t fd)
{
    uint64_t v;
    while (read(fd, &v, sizeof v) < 0 && errno == EINTR) {
    }
}

static void lock(sbd *d)
{
    if (d->sync_thread_started) pthread_mutex_lock(&d->sync_mu);
}

static void unlock(sbd *d)
{
    if (d->sync_thread_started) pthread_mutex_unlock(&d->sync_mu);
}

uint64_t sbd_seq(sbd *d)
{
    return __atomic_load_n(&d->open_seq, __ATOMIC_ACQUIRE);
}

uint64_t sbd_commit_tag(sbd *d)
{
    lock(d);
    uint64_t seq = d->open_seq;
    d->dirty_seq = seq;
    d->batch_dirty = 1;
    unlock(d);
    return seq;
}

/* The sync thread: kicked by the loop when a turn ends with something
** committed in the open batch and no sync in flight; closes the open batch
** if it committed anything, syncs, and reports through the eventfd. The
** loop takes the report first in its next turn (the eventfd's event has the
** highest priority): it hands the synced responses to the sockets and, at
** the end of that turn, kicks what was committed meanwhile.
** (Going straight on from one sync to the next without the loop was tried:
** more, smaller syncs cost more CPU per request than the shorter wait
** saved.) After a failed sync nothing is synced until the loop has answered
** for it. */
static void *sync_main(void *arg)
{
    sbd *d = arg;
    pthread_mutex_lock(&d->sync_mu);
    for (;;) {
        while (!d->sync_kick && !d->sync_quit)
            pthread_cond_wait(&d->sync_cv, &d->sync_mu);
        if (!d->sync_kick) break; /* quit, nothing asked */
        d->sync_kick = 0;
        if (d->dirty_seq == d->open_seq && !d->sync_failed) {
            /* The open batch closes here. */
            uint64_t seq = d->open_seq;
            __atomic_store_n(&d->open_seq, seq + 1, __ATOMIC_RELEASE);
            d->inflight_seq = seq;
            pthread_mutex_unlock(&d->sync_mu);
            uint64_t t = sbd_now_ns();
            int rc = sb_sync(d->eng);
            uint64_t ns = sbd_now_ns() - t;
            pthread_mutex_lock(&d->sync_mu);
            d->inflight_seq = 0;
            d->sync_count++;
            d->sync_ns += ns;
            if (rc == 0) {
                d->synced_seq = seq;
            } else {
                d->sync_errs++;
                d->sync_failed = seq;
                d->sync_rc = rc;
            }
            report_send(d->sync_efd);
        }
    }
    pthread_mutex_unlock(&d->sync_mu);
    return NULL;
}

/* Metrics for the requests answered in batches <= upto. */
static void account_requests(sbd *d, uint64_t upto)
{
    uint64_t now = sbd_now_ns();
    size_t i = 0;
    while (i < d->npreq && d->preq[i].seq <= upto) {
        const sbd_pending_req *p = &d->preq[i];
        sbd_metrics_request(d, p->route, p->method, p->status, (double)(now - p->t0_ns) / 1e9);
        i++;
    }
    if (i) {
        memmove(d->preq, d->preq + i, (d->npreq - i) * sizeof *d->preq);
        d->npreq -= i;
    }
}

/* A write that worked while h is on: h ends once that write is durable. */
static void health_wrote(sbd *d, sbd_health *h)
{
    if (!h->on) return;
    if (d->answering)
        h->ok_batch = 1; /* its batch: once it is tagged (batch_answer) */
    else if (!h->ok_seq)
        h->ok_seq = sbd_seq(d); /* committed: a sync from now covers it */
}

/* The engine batch closed, as batch seq (failed: not stored). */
static void health_batch(sbd_health *h, uint64_t seq, int failed)
{
    if (h->ok_batch && !failed && !h->ok_seq) h->ok_seq = seq;
    h->ok_batch = 0;
}

/* Batches to upto are durable: does that end h? */
static int health_released(sbd_health *h, uint64_t upto)
{
    if (!h->on || !h->ok_seq || upto < h->ok_seq) return 0;
    memset(h, 0, sizeof *h);
    return 1;
}

/* Send what is held up to batch `upto` (SBD_SEQ_ALL: everything committed);
** sync_rc: the code of the sync that failed for them (0: none). */
static void release(sbd *d, uint64_t upto, int sync_rc)
{
    /* The write that succeeded after a storage failure is durable now. */
    if (!sync_rc) {
        health_released(&d->full, upto);
        if (health_released(&d->failing, upto)) d->storage_error[0] = 0;
    }
    sbd_http_release(d, upto, sync_rc);
    d->m.batches++;
    account_requests(d, upto);
    sbd_stream_publish(d, upto);
}

/* A sync failed with rc: the log and /healthz say so. */
static void sync_failed(sbd *d, int rc)
{
    char why[160];
    snprintf(why, sizeof why, "sync: %s", sb_strerror(rc));
    sbd_log(SB_LOG_ERROR, "sync failed; unsynced changes answered with an error", "error=%s",
            sbd_q(sb_strerror(rc)));
    sbd_storage_failed(d, rc, why);
}

/* What the sync thread has done since we last looked: answer for a failed
** sync, release what the syncs covered. */
static void collect_syncs(sbd *d)
{
    pthread_mutex_lock(&d->sync_mu);
    uint64_t synced = d->synced_seq, failed = d->sync_failed;
    int rc = d->sync_rc, all_synced = d->dirty_seq <= d->synced_seq;
    d->m.syncs = d->sync_count;
    d->m.sync_errors = d->sync_errs;
    d->m.sync_seconds = (double)d->sync_ns / 1e9;
    pthread_mutex_unlock(&d->sync_mu);
    if (failed) {
        sync_failed(d, rc);
        release(d, failed, rc);
        /* Answered for: the failed batch counts as settled, as if synced. */
        pthread_mutex_lock(&d->sync_mu);
        d->sync_failed = 0;
        if (d->synced_seq < failed) d->synced_seq = failed;
        synced = d->synced_seq;
        all_synced = d->dirty_seq <= d->synced_seq;
        pthread_mutex_unlock(&d->sync_mu);
    }
    /* Nothing committed since the last sync: what is held read only synced
    ** state, so it all goes out. */
    release(d, all_synced ? SBD_SEQ_ALL : synced, 0);
}

/* The sync thread reported: release what it covered, start the next. */
static void sync_done_cb(evutil_socket_t fd, short what, void *arg)
{
    sbd *d = arg;
    (void)what;
    report_taken(fd);
    collect_syncs(d);
    sbd_flush(d);
}

void sbd_storage_failed(sbd *d, int rc, const char *why)
{
    sbd_health *h = rc == SB_EFULL ? &d->full : &d->failing;
    /* A write before this one no longer says storage works. */
    memset(h, 0, sizeof *h);
    h->on = 1;
    /* /healthz answers anyone, without a key: what the library's message
    ** quotes of an account's data, the id of a call ("record of call
    ** 'c-7@pbx.acme.example' is corrupt"), reads '...' there, and a number
    ** [number] as in the log, which has the rest. */
    if (rc == SB_EFULL) return;
    const char *s = why && *why ? why : "storage error";
    char elided[sizeof d->storage_error];
    char *o = elided, *end = o + sizeof elided - 1;
    for (const char *p = s; *p && o < end; p++) {
        const char *close = *p == '\'' && (p == s || p[-1] == ' ') ? strchr(p + 1, '\'') : NULL;
        if (close && end - o >= 5) {
            memcpy(o, "'...'", 5);
            o += 5;
            p = close;
        } else {
            *o++ = *p;
        }
    }
    *o = 0;
    sb_redact(elided, d->storage_error, sizeof d->storage_error);
}

void sbd_storage_wrote(sbd *d, int room)
{
    health_wrote(d, &d->failing);
    if (room) health_wrote(d, &d->full);
}

/* ------------------------------------------------------------------------ */
static void maybe_stop(sbd *d);

/* Events: the engine thread.
**
** An event request (api.c, run_event) is parsed and checked on the loop,
** then left as a job. At the end of the turn the turn's jobs go to the
** engine thread as one batch: it applies each in one engine transaction
** (sb_batch_begin; an event that fails is undone inside it) and commits,
** with the commit's sync of its pages, while the loop goes on reading
** requests (the next batch collects meanwhile) and sending what earlier
** syncs made durable. When it is done the loop hands it the next batch,
** then answers this one's requests (their responses held untagged, then
** tagged as any commit's are, or answered with a 500 when the commit
** failed). A connection's requests are answered in order: its jobs are in
** its batches in order, and a request of another kind, or one refused
** before it became a job, first has its jobs applied and answered. So does
** anything else that uses the engine on the loop (sbd_batch_close: it waits
** for the batch in hand and applies what has collected), so it sees them
** committed, as before. A connection with JOBS_PER_CONN jobs in hand (http.c)
** takes no more requests until some are answered.
** (The commit's sync held the loop for about 40% of its time: the HTTP
** call cycle ran at 16,200 requests/s with sync = group and 48,700 with
** sync = none, the loop's CPU the bound; see engine/PERFORMANCE.md.) */

sbd_job *sbd_job_new(sbd *d)
{
    sbd_job *j = d->free_jobs;
    if (j) {
        d->free_jobs = j->next;
        sb_result *res = j->res;
        char *buf = j->buf;
        size_t cap = j->cap;
        memset(j, 0, sizeof *j);
        j->res = res;
        j->buf = buf;
        j->cap = cap;
        return j;
    }
    if (!(j = calloc(1, sizeof *j))) return NULL;
    if (!(j->res = sb_result_new())) {
        free(j);
        return NULL;
    }
    return j;
}

char *sbd_job_room(sbd_job *j, size_t n)
{
    if (n > j->cap) {
        char *p = sbd_realloc_wiped(j->buf, n);
        if (!p) return NULL;
        j->buf = p;
        j->cap = n;
    }
    j->used = n;
    return j->buf;
}

void sbd_job_free(sbd *d, sbd_job *j)
{
    /* Kept for the next job: its request's document wiped meanwhile. */
    if (j->buf) sodium_memzero(j->buf, j->used);
    j->used = 0;
    j->next = d->free_jobs;
    d->free_jobs = j;
}

void sbd_job_add(sbd *d, sbd_job *j)
{
    j->next = NULL;
    if (!d->jobs) d->jobs_tail = &d->jobs;
    *d->jobs_tail = j;
    d->jobs_tail = &j->next;
}

/* Apply a batch of jobs in one engine transaction: the commit's code. */
static int apply_jobs(sb_engine *eng, sbd_job *jobs, sb_result *res)
{
    /* Without a batch (it could not begin: another engine's is open on
    ** this thread, or storage) each event is its own transaction. */
    int batched = sb_batch_begin(eng) == 0;
    for (sbd_job *j = jobs; j; j = j->next)
        if (!j->skip) j->rc = sb_submit_json(eng, j->account, j->doc, j->len, j->res);
    return batched ? sb_batch_end(eng, res) : 0;
}

static void *eng_main(void *arg)
{
    sbd *d = arg;
    pthread_mutex_lock(&d->eng_mu);
    for (;;) {
        while (!(d->eng_run && !d->eng_done) && !d->eng_quit)
            pthread_cond_wait(&d->eng_cv, &d->eng_mu);
        if (!(d->eng_run && !d->eng_done)) break; /* quit, nothing in hand */
        sbd_job *jobs = d->eng_run;
        pthread_mutex_unlock(&d->eng_mu);
        int rc = apply_jobs(d->eng, jobs, d->eng_res);
        pthread_mutex_lock(&d->eng_mu);
        d->eng_rc = rc;
        d->eng_done = 1;
        pthread_cond_broadcast(&d->eng_done_cv);
        report_send(d->eng_efd);
    }
    pthread_mutex_unlock(&d->eng_mu);
    return NULL;
}

/* The jobs applied, rc their commit's code (res says why it failed): answer
** each, then tag the answers with the commit's batch, or fail them. */
static void batch_answer(sbd *d, sbd_job *jobs, int rc, const char *why, uint64_t t)
{
    d->m.batch_commits++;
    d->m.batch_commit_seconds += (double)(sbd_now_ns() - t) / 1e9;
    d->answering = 1;
    for (sbd_job *j = jobs, *next; j; j = next) {
        next = j->next;
        sbd_http_finish(d, j);
        sbd_job_free(d, j);
    }
    d->answering = 0;
    if (rc) {
        d->m.batch_errors++;
        sbd_log(SB_LOG_ERROR, "events not stored; their requests answered with an error",
                "error=%s", sbd_qn(why));
        sbd_storage_failed(d, rc, why);
    }
    /* Tagged after the commit, as every response that answers one is. */
    uint64_t seq = rc ? sbd_seq(d) : sbd_commit_tag(d);
    health_batch(&d->full, seq, rc != 0);
    health_batch(&d->failing, seq, rc != 0);
    sbd_http_settle(d, seq, rc);
    sbd_stream_settle(d, seq, rc != 0);
}

static void eng_hand(sbd *d);

/* Why a batch's commit failed (rc), from res: copied into buf. */
static const char *commit_why(int rc, const sb_result *res, char *buf, size_t n)
{
    if (!rc) return "";
    snprintf(buf, n, "%s", sb_result_message(res)[0] ? sb_result_message(res) : sb_strerror(rc));
    return buf;
}

/* The engine thread's batch, once it is applied (wait: until it is): 1 if
** there was one, answered. Not waiting, the jobs collected meanwhile are
** handed over before it is answered, so the thread does not wait for that. */
static int eng_collect(sbd *d, int wait)
{
    if (!d->eng_run) return 0;
    pthread_mutex_lock(&d->eng_mu);
    while (wait && !d->eng_done)
        pthread_cond_wait(&d->eng_done_cv, &d->eng_mu);
    int done = d->eng_done, rc = d->eng_rc;
    sbd_job *jobs = d->eng_run;
    if (done) {
        d->eng_run = NULL;
        d->eng_done = 0;
    }
    pthread_mutex_unlock(&d->eng_mu);
    if (!done) return 0;
    char why[512];
    commit_why(rc, d->eng_res, why, sizeof why);
    uint64_t t = d->eng_handed_ns;
    /* A failed commit closes its connections as it is answered: the next
    ** batch is handed over after that (eng_done_cb's sbd_flush), so their
    ** later events are not applied. (A failed sync, reported while later
    ** events may be applied already, closes none: it answers the changes
    ** it covered with its error, and the later ones are answered as their
    ** own sync has it, sbd_http_release.) */
    if (!wait && !rc) eng_hand(d);
    batch_answer(d, jobs, rc, why, t);
    return 1;
}

/* Hand the collected jobs to the engine thread, if it is free. */
static void eng_hand(sbd *d)
{
    if (!d->jobs || d->eng_run) return;
    d->eng_handed_ns = sbd_now_ns();
    pthread_mutex_lock(&d->eng_mu);
    d->eng_run = d->jobs;
    d->eng_done = 0;
    pthread_cond_signal(&d->eng_cv);
    pthread_mutex_unlock(&d->eng_mu);
    d->jobs = NULL;
}

void sbd_batch_close(sbd *d)
{
    eng_collect(d, 1);
    if (!d->jobs) return;
    /* Applied here, on the loop, with the engine thread idle. */
    sbd_job *jobs = d->jobs;
    d->jobs = NULL;
    uint64_t t = sbd_now_ns();
    int rc = apply_jobs(d->eng, jobs, d->res);
    char why[512];
    batch_answer(d, jobs, rc, commit_why(rc, d->res, why, sizeof why), t);
}

/* The engine thread reported: answer its batch, hand it the next. */
static void eng_done_cb(evutil_socket_t fd, short what, void *arg)
{
    sbd *d = arg;
    (void)what;
    report_taken(fd);
    if (!eng_collect(d, 0)) return;
    sbd_flush(d);
    maybe_stop(d); /* draining: that batch may have been the last thing in flight */
}

/* 0, or why not (an errno value). */
static int eng_thread_start(sbd *d)
{
    if (!(d->eng_res = sb_result_new())) return ENOMEM;
    int rc = report_event(d, &d->eng_efd, &d->eng_ev, eng_done_cb);
    if (rc) return rc;
    pthread_mutex_init(&d->eng_mu, NULL);
    pthread_cond_init(&d->eng_cv, NULL);
    pthread_cond_init(&d->eng_done_cv, NULL);
    if ((rc = pthread_create(&d->eng_thread, NULL, eng_main, d)) != 0) {
        pthread_mutex_destroy(&d->eng_mu);
        pthread_cond_destroy(&d->eng_cv);
        pthread_cond_destroy(&d->eng_done_cv);
        return rc;
    }
    d->eng_thread_started = 1;
    return 0;
}

/* Every job applied and answered, then the thread stopped. */
static void eng_thread_stop(sbd *d)
{
    if (d->eng_thread_started) {
        sbd_batch_close(d);
        helper_quit(d->eng_thread, &d->eng_mu, &d->eng_cv, &d->eng_quit);
        pthread_mutex_destroy(&d->eng_mu);
        pthread_cond_destroy(&d->eng_cv);
        pthread_cond_destroy(&d->eng_done_cv);
        d->eng_thread_started = 0;
    }
    report_close(&d->eng_efd, &d->eng_ev);
    sbd_events_free(d);
}

void sbd_events_free(sbd *d)
{
    sbd_batch_close(d);
    if (d->resume_ev) event_free(d->resume_ev);
    d->resume_ev = NULL;
    sb_result_free(d->eng_res);
    d->eng_res = NULL;
    while (d->free_jobs) {
        sbd_job *j = d->free_jobs;
        d->free_jobs = j->next;
        sb_result_free(j->res);
        sbd_free_wiped(j->buf);
        free(j);
    }
}

void sbd_flush(sbd *d)
{
    /* The turn's events go to the engine thread; once it has stopped (the
    ** daemon is stopping) they are applied here. */
    if (d->eng_thread_started && !d->stop)
        eng_hand(d);
    else
        sbd_batch_close(d);
    d->batch_len = 0;
    if (d->cfg->sync == SBD_SYNC_GROUP && d->sync_thread_started) {
        pthread_mutex_lock(&d->sync_mu);
        /* A batch is not left for the next one's commit to make durable
        ** (its own sync covers every meta page written before it): the
        ** sync thread syncs it at once, while the engine thread applies
        ** the next. Left to the next commit, each request waited for two,
        ** the batches held a third of the connections, and the HTTP call
        ** cycle ran at 0.7-0.85x the requests/s; the engine thread syncing
        ** the meta page itself before it took the next batch, at
        ** 0.85-0.93x (paired runs). */
        if (d->dirty_seq == d->open_seq && !d->inflight_seq && !d->sync_failed) {
            d->sync_kick = 1; /* the responses wait for sync_done_cb */
            pthread_cond_signal(&d->sync_cv);
        }
        int unsynced = d->dirty_seq > d->synced_seq || d->sync_failed;
        if (!unsynced && (d->batch || d->pub_head || d->npreq)) {
            /* Nothing unsynced anywhere: release at once. */
            __atomic_store_n(&d->open_seq, d->open_seq + 1, __ATOMIC_RELEASE);
            pthread_mutex_unlock(&d->sync_mu);
            release(d, SBD_SEQ_ALL, 0);
        } else {
            pthread_mutex_unlock(&d->sync_mu);
        }
        arm_deadline(d);
        return;
    }
    if (!d->batch && !d->pub_head && !d->batch_dirty && !d->npreq) return;
    int failed = 0;
    if (d->batch_dirty && d->cfg->sync == SBD_SYNC_GROUP) {
        /* No sync thread (stopped: the daemon is stopping): sync here. */
        uint64_t t = sbd_now_ns();
        failed = sb_sync(d->eng);
        d->m.syncs++;
        d->m.sync_seconds += (double)(sbd_now_ns() - t) / 1e9;
        if (failed) {
            d->m.sync_errors++;
            sync_failed(d, failed);
        }
    }
    d->batch_dirty = 0;
    release(d, SBD_SEQ_ALL, failed);
    d->open_seq++;
    arm_deadline(d);
}

static void turn_begin(sbd *d)
{
    d->turn_page_bytes = 0; /* the turn's pages share max_page (api.c, page_reply) */
}

/* 0, or why not (an errno value). */
static int sync_thread_start(sbd *d)
{
    /* First in its turn of the loop: held responses go out before new
    ** requests are read. */
    int rc = report_event(d, &d->sync_efd, &d->sync_ev, sync_done_cb);
    if (rc) return rc;
    pthread_mutex_init(&d->sync_mu, NULL);
    pthread_cond_init(&d->sync_cv, NULL);
    if ((rc = pthread_create(&d->sync_thread, NULL, sync_main, d)) != 0) {
        pthread_mutex_destroy(&d->sync_mu);
        pthread_cond_destroy(&d->sync_cv);
        return rc;
    }
    d->synced_seq = d->dirty_seq = d->open_seq - 1;
    d->sync_thread_started = 1;
    return 0;
}

/* Let the sync thread finish what it was asked (its results released, for
** the connections still open), then stop it. */
static void sync_thread_stop(sbd *d)
{
    if (d->sync_thread_started) {
        helper_quit(d->sync_thread, &d->sync_mu, &d->sync_cv, &d->sync_quit);
        collect_syncs(d);
        pthread_mutex_destroy(&d->sync_mu);
        pthread_cond_destroy(&d->sync_cv);
        d->sync_thread_started = 0;
    }
    report_close(&d->sync_efd, &d->sync_ev);
}

/* ------------------------------------------------------------------------ */
/* Signals and shutdown. */

/* Draining: once no request is left in flight and nothing waits for a sync
** (so the stream events they caused are out), the streams close after
** sending what they hold; then the loop stops. */
static void maybe_stop(sbd *d)
{
    if (!d->draining || d->stop) return;
    if (d->conns && !d->batch && !d->pub_head && !d->npreq && !d->jobs && !d->eng_run &&
        sbd_http_only_streams(d))
        sbd_http_end_streams(d);
    if (!d->conns) {
        d->stop = 1;
        event_base_loopbreak(d->base);
    }
}

void sbd_conn_gone(sbd *d)
{
    maybe_stop(d);
}

static void drain_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    sbd *d = arg;
    (void)fd;
    (void)what;
    /* A subscriber that stopped reading holds its stream open to the end:
    ** said so, not taken for a request that hung. */
    size_t unsent = 0;
    unsigned streams = sbd_http_unsent(d, &unsent);
    sbd_log(SB_LOG_WARN, "shutdown timeout: closing remaining connections",
            "connections=%u streams_not_reading=%u unsent_bytes=%zu shutdown_timeout=%u", d->nconns,
            streams, unsent, d->cfg->shutdown_timeout);
    sbd_flush(d);
    sbd_http_close_all(d);
    maybe_stop(d);
}

static const char *sig_name(int sig)
{
    return sig == SIGTERM   ? "TERM"
           : sig == SIGINT  ? "INT"
           : sig == SIGUSR1 ? "USR1"
           : sig == SIGUSR2 ? "USR2"
                            : "other";
}

/* SIGUSR1 and SIGUSR2 mean nothing to the daemon: their default action
** would end it, and an operator who sent one in place of SIGHUP (other
** daemons reopen their logs or dump their state on them) would lose the
** service. Ignored, and the log says which signals do something. */
static void usr_cb(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    (void)arg;
    sbd_log(SB_LOG_WARN, "signal ignored", "signal=%s note=%s", sig_name((int)sig),
            sbd_q("SIGHUP reloads the policies and the admin token, SIGTERM or SIGINT stops"));
}

static void term_cb(evutil_socket_t sig, short what, void *arg)
{
    sbd *d = arg;
    (void)what;
    if (d->draining) {
        sbd_log(SB_LOG_WARN, "second signal: closing now", "signal=%s connections=%u",
                sig_name((int)sig), d->nconns);
        sbd_flush(d);
        sbd_http_close_all(d);
        maybe_stop(d);
        return;
    }
    sbd_log(SB_LOG_INFO, "shutting down: finishing in-flight requests", "signal=%s connections=%u",
            sig_name((int)sig), d->nconns);
    d->draining = 1;
    arm_deadline(d); /* disarms: no timer fires during the drain */
    sbd_http_drain(d);
    struct timeval tv = {d->cfg->shutdown_timeout, 0};
    event_add(d->drain_ev, &tv);
    maybe_stop(d);
}

/* "SB_EPOLICY" from sb_strerror()'s "SB_EPOLICY: policy failed". */
static const char *code_name(int rc, char *buf, size_t n)
{
    const char *m = sb_strerror(rc);
    snprintf(buf, n, "%.*s", (int)strcspn(m, ":"), m);
    return buf;
}

static void reload_admin_token(sbd *d);

/* The policies quarantined now in this process (sb_stats' policy.quarantined):
** a reload that succeeds lifts them all, which its line says. */
static long long quarantined_now(sbd *d)
{
    if (sb_stats(d->eng, d->res) != 0) return 0;
    json_t *o = json_loads(sb_result_json(d->res, NULL), 0, NULL);
    long long n =
        (long long)json_integer_value(json_object_get(json_object_get(o, "policy"), "quarantined"));
    json_decref(o);
    return n;
}

/* SIGHUP reloads the policies and the admin token, not the configuration:
** its file (and the flags) read again, a warning names the settings that
** differ from those in use, which take a restart, or the file's error. */
static void config_check(sbd *d)
{
    if (!d->cfg->config_file || !d->argv) return;
    sbd_config now;
    char err[1024];
    sbd_errorf_capture(err, sizeof err);
    int rc = sbd_config_load(&now, d->argc, d->argv);
    sbd_errorf_capture(NULL, 0);
    if (rc) {
        const char *e = err;
        if (!strncmp(e, "switchboard: ", 13)) e += 13;
        sbd_log(SB_LOG_WARN,
                "configuration file has an error: a restart would fail (SIGHUP does not apply "
                "it)",
                "config=%s error=%s", sbd_q(d->cfg->config_file), sbd_q(e));
    } else {
        sbd_config in_use = *d->cfg;
        in_use.max_connections = d->max_connections_set;
        char names[1024];
        if (sbd_config_differs(&in_use, &now, names, sizeof names))
            sbd_log(SB_LOG_WARN,
                    "configuration changed: its settings take a restart (SIGHUP does not apply "
                    "them)",
                    "config=%s keys=%s", sbd_q(d->cfg->config_file), sbd_q(names));
    }
    sbd_config_free(&now);
}

static void hup_cb(evutil_socket_t sig, short what, void *arg)
{
    sbd *d = arg;
    (void)sig;
    (void)what;
    config_check(d);
    reload_admin_token(d);
    if (d->cfg->policy_dir_absent) {
        d->m.reloads_failed++;
        sbd_log(SB_LOG_ERROR, "reload failed; policies unchanged",
                "policy_dir=none error=%s note=%s",
                sbd_q("no policy directory in use: " SBD_DEFAULT_POLICY_DIR
                      " was missing when the daemon started"),
                sbd_q("create it (or set policy_dir) and restart the daemon"));
        return;
    }
    sbd_batch_close(d);
    long long quarantined = quarantined_now(d);
    uint64_t t = sbd_now_ns();
    int rc = sb_reload(d->eng, d->res);
    double ms = (double)(sbd_now_ns() - t) / 1e6;
    if (rc == 0) {
        d->m.reloads_ok++;
        /* Answers that read the new versions wait for its sync, as any
        ** change's (the reload committed them). */
        sbd_commit_tag(d);
        json_t *o = json_loads(sb_result_json(d->res, NULL), 0, NULL);
        long long changed = o ? (long long)json_integer_value(json_object_get(o, "changed")) : 0;
        size_t warnings = json_array_size(json_object_get(o, "warnings"));
        /* Which version of each shared policy decides from now on, and which
        ** it replaced: one line each, before the reload's own. A removed
        ** one's line says in how many accounts its store (ctx.set) went. */
        size_t i;
        json_t *p;
        json_array_foreach(json_object_get(o, "policies"), i, p)
        {
            const char *v = json_string_value(json_object_get(p, "version")),
                       *pv = json_string_value(json_object_get(p, "previous"));
            const char *name = sbd_q(json_string_value(json_object_get(p, "name")));
            if (v)
                sbd_log(SB_LOG_INFO, "shared policy changed", "policy=%s version=%s previous=%s",
                        name, v, pv ? pv : "none");
            else
                sbd_log(SB_LOG_INFO, "shared policy removed",
                        "policy=%s version=none previous=%s stores_dropped=%lld", name,
                        pv ? pv : "none",
                        (long long)json_integer_value(json_object_get(p, "stores_dropped")));
        }
        json_decref(o);
        /* Each warning is a line of the engine's before this one. The
        ** quarantines the reload lifted: the operator told "until the policy
        ** is reloaded" sees that it was. */
        sbd_log(warnings ? SB_LOG_WARN : SB_LOG_INFO, "reload ok",
                "policy_dir=%s changed=%lld warnings=%zu quarantines_lifted=%lld ms=%.1f",
                sbd_q(d->cfg->policy_dir), changed, warnings, quarantined, ms);
    } else {
        d->m.reloads_failed++;
        char code[32];
        const char *field = sb_result_field(d->res);
        sbd_log(SB_LOG_ERROR, "reload failed; policies unchanged",
                "policy_dir=%s code=%s error=%s%s%s", sbd_q(d->cfg->policy_dir),
                code_name(rc, code, sizeof code), sbd_qn(sb_result_message(d->res)),
                field ? " field=" : "", field ? sbd_q(field) : "");
    }
}

/* ------------------------------------------------------------------------ */
/* Start-up. */

static int mkdirs(const char *path, mode_t mode)
{
    char buf[PATH_MAX];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) return -1;
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(buf, mode) != 0 && errno != EEXIST) return -1;
        *p = '/';
    }
    if (mkdir(buf, mode) != 0 && errno != EEXIST) return -1;
    return 0;
}

/* Hold <data_dir>/serve.lock for the life of the process: one daemon per
** data directory. Returns the fd, or -1 after telling the user why; *made
** says whether this call created the file. */
static int lock_data_dir(const char *dir, int *made)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/serve.lock", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    *made = fd >= 0;
    if (fd < 0 && errno == EEXIST) fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        sbd_errorf("switchboard: cannot open %s: %s\n", path, strerror(errno));
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        if (e == EWOULDBLOCK) {
            char pid[32] = "";
            ssize_t n = pread(fd, pid, sizeof pid - 1, 0);
            if (n > 0) pid[n] = 0;
            pid[strcspn(pid, "\r\n")] = 0;
            sbd_errorf("switchboard: data directory %s is in use by another `switchboard serve`"
                       "%s%s%s; stop it first or use another --data-dir\n",
                       dir, *pid ? " (pid " : "", pid, *pid ? ")" : "");
        } else {
            sbd_errorf("switchboard: cannot lock %s: %s\n", path, strerror(e));
        }
        close(fd); /* in use, or not lockable: left as it is, made here or not */
        *made = 0;
        return -1;
    }
    char pid[32];
    int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)n, 0) != n)
        sbd_log(SB_LOG_WARN, "could not record pid in lock file", "path=%s", sbd_q(path));
    return fd;
}

/* Is directory dir (or the one file `path` is in, when dir is NULL) one only
** this process's user (or root) may change? Another user who may create,
** rename or remove entries in it can put their own file in place of the
** admin token, the master key or data.mdb between the checks on them and
** their use. sticky_ok: a sticky directory (/tmp's 1777) is taken, as its
** other users cannot rename over or remove what they do not own (the owner
** checks of the token and the key refuse a file they made first); the data
** directory's other files are not checked that way. Returns NULL or why not
** (in buf). */
static const char *dir_unsafe(const char *dir, const char *path, int sticky_ok, char *buf, size_t n)
{
    char d[PATH_MAX];
    if (!dir) {
        const char *slash = strrchr(path, '/');
        if (!slash)
            snprintf(d, sizeof d, ".");
        else if (slash == path)
            snprintf(d, sizeof d, "/");
        else
            snprintf(d, sizeof d, "%.*s", (int)(slash - path), path);
        dir = d;
    }
    struct stat st;
    if (stat(dir, &st) != 0)
        snprintf(buf, n, "directory %s: %s", dir, strerror(errno));
    else if (st.st_uid != geteuid() && st.st_uid != 0)
        snprintf(buf, n,
                 "directory %s is owned by uid %u, not by the user the daemon runs as (uid %u) "
                 "or root: that user may replace the files in it (chown it)",
                 dir, (unsigned)st.st_uid, (unsigned)geteuid());
    else if ((st.st_mode & (S_IWGRP | S_IWOTH)) && !(sticky_ok && (st.st_mode & S_ISVTX)))
        snprintf(buf, n,
                 "directory %s has mode %04o: group or others may replace the files in it "
                 "(chmod go-w it; the daemon makes its data directory 0700)",
                 dir, (unsigned)(st.st_mode & 07777));
    else
        return NULL;
    return buf;
}

/* Where the admin token is: admin_token_file, else <data_dir>/admin.token. */
static void admin_token_path(const sbd *d, char *path, size_t n)
{
    if (d->cfg->admin_token_file)
        snprintf(path, n, "%s", d->cfg->admin_token_file);
    else
        snprintf(path, n, "%s/admin.token", d->cfg->data_dir);
}

/* Read the token in the file open on fd (path names it) and hash it into
** hash. Returns 0, or -1 with why in err. The file must be its owner's alone,
** a regular file or (at start) a FIFO a secrets manager writes the token
** into, read as it comes; on SIGHUP a FIFO is -2 (not read: it would hold
** the loop until something wrote to it). Closes fd. */
static int read_admin_token(int fd, const char *path, int at_start, unsigned char hash[32],
                            char *err, size_t errlen)
{
    char tok[1024], owner[128], dir[PATH_MAX + 200];
    struct stat st;
    const char *why = fstat(fd, &st) ? strerror(errno)
                      : !S_ISREG(st.st_mode) && !S_ISFIFO(st.st_mode)
                          ? "not a regular file (nor a FIFO)"
                      : (st.st_mode & 077) != 0 ? "group or others may read or write it "
                                                  "(chmod 600 it)"
                                                : NULL;
    /* Another user's token is one that user knows: not taken (root's is). */
    if (!why && st.st_uid != geteuid() && st.st_uid != 0) {
        snprintf(owner, sizeof owner,
                 "owned by uid %u, not by the user the daemon runs as (uid %u) or root "
                 "(chown it)",
                 (unsigned)st.st_uid, (unsigned)geteuid());
        why = owner;
    }
    if (!why) why = dir_unsafe(NULL, path, 1, dir, sizeof dir);
    if (why || (S_ISFIFO(st.st_mode) && !at_start)) {
        close(fd);
        if (!why) return -2;
        snprintf(err, errlen, "admin token file %s: %s", path, why);
        return -1;
    }
    ssize_t n = read(fd, tok, sizeof tok - 1);
    int e = errno;
    close(fd);
    if (n < 0) {
        snprintf(err, errlen, "cannot read admin token file %s: %s", path, strerror(e));
        return -1;
    }
    tok[n] = 0;
    /* The token is the file's one line, without the blanks around it: what
    ** an Authorization: Bearer header carries whole. A blank inside it, a
    ** byte such a header cannot carry or a second line is refused, not cut
    ** off: the old token would stop working and the text written there
    ** would not work. */
    const char *t = tok + strspn(tok, " \t");
    size_t line = strcspn(t, "\r\n"), len = line;
    while (len && (t[len - 1] == ' ' || t[len - 1] == '\t'))
        len--;
    const char *rest = t + line + strspn(t + line, " \t\r\n");
    char bad[96] = "";
    for (size_t i = 0; i < len && !bad[0]; i++) {
        unsigned char c = (unsigned char)t[i];
        if (c == ' ' || c == '\t')
            snprintf(bad, sizeof bad, "holds a blank (a %s at character %zu)",
                     c == ' ' ? "space" : "tab", i + 1);
        else if (c < 0x21 || c > 0x7e)
            snprintf(bad, sizeof bad,
                     "holds a byte a Bearer header cannot carry (0x%02x at character %zu)", c,
                     i + 1);
    }
    if (!bad[0] && *rest) snprintf(bad, sizeof bad, "holds more than one line");
    if (bad[0] || len < 16) {
        if (bad[0])
            snprintf(err, errlen,
                     "admin token file %s: the file %s; the token is one line of printable "
                     "ASCII without blanks, 16 characters or more",
                     path, bad);
        else
            snprintf(err, errlen,
                     "admin token file %s: the token is %s; it needs 16 characters or more%s", path,
                     len ? "too short" : "empty",
                     at_start ? " (remove the file and a random one is made)" : "");
        sodium_memzero(tok, sizeof tok);
        return -1;
    }
    crypto_generichash(hash, 32, (const unsigned char *)t, len, NULL, 0);
    sodium_memzero(tok, sizeof tok);
    return 0;
}

/* Read the admin token, or create one (mode 0600) when the file is missing.
** Only its hash stays in memory. */
static int admin_token(sbd *d)
{
    char path[PATH_MAX], err[PATH_MAX + 200];
    admin_token_path(d, path, sizeof path);
    /* Checked before the token is made in it too. */
    if (dir_unsafe(NULL, path, 1, err, sizeof err)) {
        sbd_errorf("switchboard: admin token file %s: %s\n", path, err);
        return -1;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT) {
        char tok[65];
        unsigned char raw[32];
        randombytes_buf(raw, sizeof raw);
        sodium_bin2hex(tok, sizeof tok, raw, sizeof raw);
        sodium_memzero(raw, sizeof raw);
        size_t len = strlen(tok);
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        int ok = fd >= 0 && write(fd, tok, len) == (ssize_t)len && write(fd, "\n", 1) == 1 &&
                 fsync(fd) == 0;
        int e = errno;
        if (fd >= 0) close(fd);
        if (!ok) {
            sbd_errorf("switchboard: cannot create admin token file %s: %s\n", path, strerror(e));
            sodium_memzero(tok, sizeof tok);
            return -1;
        }
        sbd_log(SB_LOG_INFO, "admin token created", "path=%s mode=0600", sbd_q(path));
        crypto_generichash(d->admin_hash, sizeof d->admin_hash, (const unsigned char *)tok, len,
                           NULL, 0);
        sodium_memzero(tok, sizeof tok);
    } else if (fd < 0) {
        sbd_errorf("switchboard: cannot read admin token file %s: %s\n", path, strerror(errno));
        return -1;
    } else if (read_admin_token(fd, path, 1, d->admin_hash, err, sizeof err) != 0) {
        sbd_errorf("switchboard: %s\n", err);
        return -1;
    }
    snprintf(d->admin_token_path, sizeof d->admin_token_path, "%s", path);
    return 0;
}

/* SIGHUP: the admin token file again, with the checks of the start, so a
** token is rotated without a restart (the new one written into the file,
** then SIGHUP). A file that fails them changes nothing: the token in use
** stays, and the log says why. A missing file is not made again here (a
** token nobody was given would lock every admin out). Admin requests are
** checked against the hash on every request, with no cache (api.c), so the
** next one sees the change. */
static void reload_admin_token(sbd *d)
{
    char path[PATH_MAX], err[PATH_MAX + 200];
    admin_token_path(d, path, sizeof path);
    unsigned char hash[32];
    /* O_NONBLOCK: opening a FIFO with no writer must not block the loop. */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    int rc = -1;
    if (fd < 0)
        snprintf(err, sizeof err, "cannot read admin token file %s: %s", path, strerror(errno));
    else
        rc = read_admin_token(fd, path, 0, hash, err, sizeof err);
    if (rc == -2) {
        sbd_log(SB_LOG_INFO, "admin token kept: its file is a FIFO, read at start only", "path=%s",
                sbd_q(path));
        return;
    }
    if (rc != 0) {
        sbd_log(SB_LOG_ERROR, "admin token file refused; the token in use stays",
                "path=%s error=%s", sbd_q(path), sbd_q(err));
        return;
    }
    int changed = sodium_memcmp(hash, d->admin_hash, sizeof hash) != 0;
    memcpy(d->admin_hash, hash, sizeof hash);
    sodium_memzero(hash, sizeof hash);
    sbd_log(changed ? SB_LOG_INFO : SB_LOG_DEBUG,
            changed ? "admin token changed: the old one no longer works" : "admin token unchanged",
            "path=%s", sbd_q(path));
}

static int open_engine(sbd *d)
{
    sbd_config *c = d->cfg;
    sb_config lc;
    sb_config_init(&lc);
    lc.data_dir = c->data_dir;
    lc.sync = c->sync == SBD_SYNC_GROUP  ? SB_SYNC_DEFER
              : c->sync == SBD_SYNC_SYNC ? SB_SYNC_SYNC
                                         : SB_SYNC_NONE;
    if (c->map_size) lc.map_size = c->map_size;
    if (c->map_max) lc.map_max = c->map_max;
    lc.policy_dir = c->policy_dir;
    /* The default directory may well be absent (a daemon serving uploaded
    ** policies only); one named in the config or a flag must be there. */
    struct stat pst;
    if (!strcmp(c->policy_dir, SBD_DEFAULT_POLICY_DIR) && stat(c->policy_dir, &pst) != 0) {
        sbd_log(SB_LOG_WARN, "no policy directory",
                "policy_dir=%s note=\"only uploaded policies; set policy_dir to use files\"",
                sbd_q(c->policy_dir));
        lc.policy_dir = NULL;
        c->policy_dir_absent = 1;
    }
    lc.key_file = c->key_file;
    lc.log = sbd_log_engine;
    lc.log_arg = d;
    lc.log_level = c->log_level;
    lc.seed = c->seed;
    lc.policy_instructions = c->policy_instructions;
    lc.policy_wall_ms = c->policy_wall_ms;
    lc.policy_memory = (size_t)c->policy_memory_kib * 1024;
    lc.quarantine_after = c->quarantine_after;
    lc.erasure_journal_days = c->erasure_journal_days;
    lc.require_signed_policies = c->require_signed_policies;
    lc.policy_public_key = c->policy_public_key;
    /* The engine makes the master key when its file is missing, and does not
    ** say so: a key there after the open and not before was made by it. */
    char key[PATH_MAX];
    if (c->key_file)
        snprintf(key, sizeof key, "%s", c->key_file);
    else
        snprintf(key, sizeof key, "%s/master.key", c->data_dir);
    struct stat kst;
    char why[PATH_MAX + 200];
    if (c->key_file && dir_unsafe(NULL, key, 1, why, sizeof why)) {
        sbd_errorf("switchboard: key_file %s: %s\n", key, why);
        return -1;
    }
    int key_was = lstat(key, &kst) == 0;
    int rc = sb_open(&d->eng, &lc, d->res);
    /* Also when the open then failed: the key stays (removing a key file
    ** is what must never go wrong), the next start takes it as found and
    ** would not say it was made. */
    if (!key_was && lstat(key, &kst) == 0)
        sbd_log(SB_LOG_WARN, "master key created", "path=%s mode=0600 note=%s", sbd_q(key),
                sbd_q(rc ? "this start then failed; the next one uses this key. It seals every "
                           "account's data: keep a copy of it, apart from the data directory's "
                           "backups (switchboard backup does not copy it); without it the data "
                           "cannot be read"
                         : "it seals every account's data: keep a copy of it, apart from the "
                           "data directory's backups (switchboard backup does not copy it); "
                           "without it the data cannot be read"));
    if (rc != 0) {
        const char *msg = sb_result_message(d->res);
        sbd_errorf("switchboard: cannot open the engine on %s: %s\n", c->data_dir,
                   msg && *msg ? msg : sb_strerror(rc));
        return -1;
    }
    return 0;
}

/* A data directory left where the engine refuses new calls and documents
** before it tries them (its map grown past map_max into the reserve, too
** little of it free: a restart that did not raise map_max): /healthz says
** storage_full from the start, as the first new call refused would have it
** say, instead of ok until then. What ends it is what ends it after a
** failed write. A full disk is not known so: writes go into the data file's free
** pages whatever room the disk has, and the room for the map to grow is
** found when it grows (an open "at its current size" had no room for
** map_size, but may have for the smaller steps a growth takes), so there
** the first write that cannot be made says so. */
/* sb_stats' lmdb.map_max_reached (0 when it cannot be read), with the
** map's size and what is in use. */
static int map_max_reached(sbd *d, long long *size, long long *used)
{
    if (sb_stats(d->eng, d->res) != 0) return 0;
    json_t *o = json_loads(sb_result_json(d->res, NULL), 0, NULL);
    json_t *l = json_object_get(o, "lmdb");
    int reached = json_integer_value(json_object_get(l, "map_max_reached")) == 1;
    *size = (long long)json_integer_value(json_object_get(l, "map_size"));
    *used = (long long)json_integer_value(json_object_get(l, "used_bytes"));
    json_decref(o);
    return reached;
}

void sbd_full_at_start_recheck(sbd *d)
{
    long long size, used;
    if (!d->full.on || !d->full.at_start || map_max_reached(d, &size, &used)) return;
    d->full.on = d->full.at_start = 0;
    sbd_log(SB_LOG_INFO, "storage full at start: room made, new calls taken again",
            "map_size=%lld used_bytes=%lld", size, used);
}

static void storage_at_start(sbd *d)
{
    long long size, used;
    if (!map_max_reached(d, &size, &used)) return;
    d->full.on = d->full.at_start = 1;
    unsigned long long max = d->cfg->map_max ? (unsigned long long)d->cfg->map_max
                                             : (unsigned long long)SBD_DEFAULT_MAP_MAX;
    sbd_log(SB_LOG_WARN, "storage full at start: new calls and documents are refused",
            "map_size=%lld used_bytes=%lld map_max=%llu note=%s", size, used, max,
            sbd_q("the map has grown past map_max into the reserve kept for calls in progress "
                  "to end; make room (deletes, a sweep, an erasure request) or raise map_max "
                  "and restart"));
}

static const char *sync_name(sbd_sync s)
{
    return s == SBD_SYNC_GROUP ? "group" : s == SBD_SYNC_SYNC ? "sync" : "none";
}

static void teardown(sbd *d)
{
    struct event **evs[] = {&d->deadline_ev, &d->housekeeping_ev, &d->keepalive_ev, &d->drain_ev,
                            &d->sig_hup,     &d->sig_term,        &d->sig_int,      &d->sig_usr1,
                            &d->sig_usr2,    &d->sweep_ev};
    for (size_t i = 0; i < sizeof evs / sizeof evs[0]; i++)
        if (*evs[i]) {
            event_free(*evs[i]);
            *evs[i] = NULL;
        }
    if (d->listener) evconnlistener_free(d->listener);
    d->listener = NULL;
    sbd_stream_free_backlogs(d);
    if (d->base) event_base_free(d->base);
    d->base = NULL;
    free(d->preq);
    d->preq = NULL;
}

/* Descriptors the daemon needs besides one per counted connection: the 503s
** being sent past max_connections (http.c keeps at most 64), and its own
** (stdio, LMDB, the lock, the loop, policy files while reloading...). */
#define SBD_FD_RESERVE 128

/* Each connection takes a descriptor: when accept() runs out of them the
** listener can neither take the connection nor answer it (it retries at
** once, and the client waits), so max_connections must fit the open-file
** limit for its documented 503 to happen. Raise the soft limit as far as
** needed (the hard limit allowing), else lower max_connections and say so. */
static void fit_fd_limit(sbd_config *cfg)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY) return;
    rlim_t want = (rlim_t)cfg->max_connections + SBD_FD_RESERVE;
    if (rl.rlim_cur >= want) return;
    struct rlimit raised = {
        rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= want ? want : rl.rlim_max, rl.rlim_max};
    if (raised.rlim_cur > rl.rlim_cur && setrlimit(RLIMIT_NOFILE, &raised) == 0)
        rl.rlim_cur = raised.rlim_cur;
    if (rl.rlim_cur >= want) return;
    unsigned fit = rl.rlim_cur > SBD_FD_RESERVE ? (unsigned)(rl.rlim_cur - SBD_FD_RESERVE) : 1;
    sbd_log(SB_LOG_WARN, "max_connections lowered to fit the open-file limit",
            "max_connections=%u configured=%u fd_limit=%llu reserve=%d "
            "note=\"raise the limit (ulimit -n, LimitNOFILE) for more\"",
            fit, cfg->max_connections, (unsigned long long)rl.rlim_cur, SBD_FD_RESERVE);
    cfg->max_connections = fit;
}

/* The directory of a file named by a setting: 1 when it is the data
** directory (not made yet on a first start). */
static int in_data_dir(const char *path, const char *data_dir)
{
    const char *slash = strrchr(path, '/');
    size_t n = slash ? (size_t)(slash - path) : 0, m = strlen(data_dir);
    while (n > 1 && path[n - 1] == '/')
        n--;
    while (m > 1 && data_dir[m - 1] == '/')
        m--;
    if (!slash) return m == 1 && data_dir[0] == '.';
    return n == m && !strncmp(path, data_dir, n);
}

/* key_file and admin_token_file set apart from the data directory: their
** directories are checked before anything is made (the data directory, an
** admin token in it), as the data directory's is; the same checks run
** again where the files are read. */
static int files_apart_unsafe(const sbd_config *cfg, int data_dir_there)
{
    const char *files[2] = {cfg->key_file, cfg->admin_token_file};
    const char *names[2] = {"key_file", "admin token file"};
    char why[PATH_MAX + 200];
    for (int i = 0; i < 2; i++) {
        if (!files[i] || (!data_dir_there && in_data_dir(files[i], cfg->data_dir))) continue;
        if (dir_unsafe(NULL, files[i], 1, why, sizeof why)) {
            sbd_errorf("switchboard: %s %s: %s\n", names[i], files[i], why);
            return 1;
        }
    }
    return 0;
}

/* --- the memory the daemon lets go ----------------------------------------
** Requests bring callers' numbers and personal attributes in their bodies
** and API keys in their headers; answers carry numbers back (a call read
** with its numbers, an access request's page). libevent reads and writes
** them through buffers it frees as they are, and what a process frees is
** what a later allocation, a core dump or a read of its memory finds: every
** block libevent frees in the daemon is wiped first, as are the daemon's
** own copies of a request (its head, its body, an event's document waiting
** for the engine thread) and of an answer. jansson's are wiped by the
** engine's allocator for it (set at sb_open, for the whole process). The
** size is the block's usable size (glibc's malloc_usable_size, the
** sanitizers' too): libevent does not say it. Cost: a memset of each block
** as it is freed, a few KiB a request. */
void sbd_free_wiped(void *p)
{
    if (!p) return;
    sodium_memzero(p, malloc_usable_size(p));
    free(p);
}

void *sbd_realloc_wiped(void *p, size_t n)
{
    if (!p) return malloc(n);
    if (!n) { /* as realloc: freed */
        sbd_free_wiped(p);
        return NULL;
    }
    size_t had = malloc_usable_size(p);
    if (n <= had) return p; /* fits where it is */
    void *q = malloc(n);
    if (!q) return NULL;
    memcpy(q, p, had);
    sbd_free_wiped(p);
    return q;
}

int sb_daemon_main(int argc, char **argv)
{
    /* Before any libevent call allocates (libevent asks so). */
    event_set_mem_functions(malloc, sbd_realloc_wiped, sbd_free_wiped);
    /* SIGHUP's default action ends the process: until the loop handles it,
    ** hold one that arrives (a reload asked for while starting) and take it
    ** once the daemon is up. SIGUSR1 and SIGUSR2 likewise, to be logged and
    ** ignored (usr_cb). */
    sigset_t hup;
    sigemptyset(&hup);
    sigaddset(&hup, SIGHUP);
    sigaddset(&hup, SIGUSR1);
    sigaddset(&hup, SIGUSR2);
    pthread_sigmask(SIG_BLOCK, &hup, NULL);
    sbd_config cfg;
    int rc = sbd_config_load(&cfg, argc, argv);
    if (rc) {
        sbd_config_free(&cfg);
        return rc == 1 ? 0 : rc == 2 ? 2 : 1;
    }
    sbd_log_set_level(cfg.log_level);
    if (sodium_init() < 0) {
        sbd_errorf("switchboard: libsodium failed to initialise\n");
        sbd_config_free(&cfg);
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    /* Past a file size limit (RLIMIT_FSIZE, systemd's LimitFSIZE) a write
    ** fails with EFBIG, a full disk to the engine (503 SB_EFULL, /healthz
    ** storage_full), instead of SIGXFSZ killing the daemon. */
    signal(SIGXFSZ, SIG_IGN);
    unsigned max_connections_set = cfg.max_connections;
    fit_fd_limit(&cfg);

    sbd d;
    memset(&d, 0, sizeof d);
    d.cfg = &cfg;
    d.argc = argc;
    d.argv = argv;
    d.max_connections_set = max_connections_set;
    d.pub_tail = &d.pub_head;
    /* Event ids go on from where an earlier start's left off, while the
    ** clock does: a Last-Event-ID from before the start is told apart. */
    d.event_id_base = (uint64_t)sbd_wall_ms() * 1000;
    d.armed_deadline = INT64_MIN;
    d.stuck_deadline = INT64_MIN;
    d.open_seq = 1;
    d.sync_efd = -1;
    d.eng_efd = -1;
    int lockfd = -1, lock_made = 0, started = 0, exit_code = 1;

    /* A data directory that is there already is locked first: a second
    ** serve on it (its address taken by the first) says the directory is in
    ** use, and by which pid, not just that the address is. */
    struct stat dst;
    char why[PATH_MAX + 200];
    int dir_there = stat(cfg.data_dir, &dst) == 0 && S_ISDIR(dst.st_mode);
    /* One another user may write into (made by someone else before the
    ** first start, say) is refused before anything is made in it. */
    if (dir_there && dir_unsafe(cfg.data_dir, NULL, 0, why, sizeof why)) {
        sbd_errorf("switchboard: data_dir: %s\n", why);
        goto out;
    }
    if (files_apart_unsafe(&cfg, dir_there)) goto out;
    if (dir_there && (lockfd = lock_data_dir(cfg.data_dir, &lock_made)) < 0) goto out;
    /* The address before anything is made: a daemon that cannot listen
    ** leaves no data directory behind (a bind tried and let go;
    ** sbd_http_listen binds for good once the engine is open). */
    if (sbd_http_can_listen(&d) != 0) goto out;
    if (mkdirs(cfg.data_dir, 0700) != 0) {
        sbd_errorf("switchboard: cannot create data directory %s: %s\n", cfg.data_dir,
                   strerror(errno));
        goto out;
    }
    if (lockfd < 0 && (lockfd = lock_data_dir(cfg.data_dir, &lock_made)) < 0) goto out;
    if (admin_token(&d) != 0) goto out;
    if (!(d.res = sb_result_new())) goto out;
    if (open_engine(&d) != 0) goto out;
    storage_at_start(&d);

    if (!(d.base = event_base_new()) || event_base_priority_init(d.base, 3) != 0) {
        sbd_errorf("switchboard: cannot create the event loop\n");
        goto out;
    }
    /* The helper threads, before the socket listens: without them the
    ** daemon would be another one, with paths no test runs, so a start that
    ** cannot make them fails, no client having connected. */
    int trc = cfg.sync == SBD_SYNC_GROUP ? sync_thread_start(&d) : 0;
    if (trc) {
        sbd_errorf("switchboard: cannot start the sync thread: %s\n", strerror(trc));
        goto out;
    }
    if ((trc = eng_thread_start(&d)) != 0) {
        sbd_errorf("switchboard: cannot start the engine thread: %s\n", strerror(trc));
        goto out;
    }
    if (sbd_http_listen(&d) != 0) goto out;
    d.deadline_ev = evtimer_new(d.base, deadline_cb, &d);
    d.housekeeping_ev = event_new(d.base, -1, EV_PERSIST, housekeeping_cb, &d);
    d.keepalive_ev = event_new(d.base, -1, EV_PERSIST, keepalive_cb, &d);
    d.drain_ev = evtimer_new(d.base, drain_timeout_cb, &d);
    d.sweep_ev = evtimer_new(d.base, sweep_cb, &d);
    d.sig_hup = evsignal_new(d.base, SIGHUP, hup_cb, &d);
    d.sig_term = evsignal_new(d.base, SIGTERM, term_cb, &d);
    d.sig_int = evsignal_new(d.base, SIGINT, term_cb, &d);
    d.sig_usr1 = evsignal_new(d.base, SIGUSR1, usr_cb, &d);
    d.sig_usr2 = evsignal_new(d.base, SIGUSR2, usr_cb, &d);
    if (!d.deadline_ev || !d.housekeeping_ev || !d.keepalive_ev || !d.drain_ev || !d.sweep_ev ||
        !d.sig_hup || !d.sig_term || !d.sig_int || !d.sig_usr1 || !d.sig_usr2) {
        sbd_errorf("switchboard: cannot create events\n");
        goto out;
    }
    struct timeval one = {1, 0}, ka = {cfg.stream_keepalive, 0};
    event_add(d.housekeeping_ev, &one);
    if (cfg.stream_keepalive) event_add(d.keepalive_ev, &ka);
    struct timeval first_sweep = {1, 0}; /* soon after start: what fell due while down */
    if (cfg.sweep_interval) event_add(d.sweep_ev, &first_sweep);
    event_add(d.sig_hup, NULL);
    event_add(d.sig_term, NULL);
    event_add(d.sig_int, NULL);
    event_add(d.sig_usr1, NULL);
    event_add(d.sig_usr2, NULL);
    pthread_sigmask(SIG_UNBLOCK, &hup, NULL); /* a held SIGHUP: a reload in the loop */

    started = 1;
    sbd_log(SB_LOG_INFO, "listening",
            "addr=%s data_dir=%s policy_dir=%s sync=%s sweep_interval=%u version=%s pid=%ld",
            d.listen_addr, sbd_q(cfg.data_dir),
            cfg.policy_dir_absent ? "none" : sbd_q(cfg.policy_dir), sync_name(cfg.sync),
            cfg.sweep_interval, sb_version(), (long)getpid());
    if (cfg.demo) sbd_demo_setup(&d);
    arm_deadline(&d);

    while (!d.stop) {
        turn_begin(&d);
        int r = event_base_loop(d.base, EVLOOP_ONCE);
        sbd_flush(&d);
        if (r < 0) {
            sbd_log(SB_LOG_ERROR, "event loop failed", NULL);
            break;
        }
        if (r == 1) break;
    }
    eng_thread_stop(&d); /* every event applied and answered */
    sbd_flush(&d);
    sync_thread_stop(&d); /* waits for the last sync; releases what it covered */
    sbd_flush(&d);        /* whatever is left: synced here, without the thread */
    sbd_http_close_all(&d);
    exit_code = 0;
    if (d.eng && sb_sync(d.eng) != 0) {
        sbd_log(SB_LOG_ERROR, "final sync failed", NULL);
        exit_code = 1;
    }

out:
    eng_thread_stop(&d);
    sync_thread_stop(&d);
    if (d.base) sbd_http_close_all(&d);
    teardown(&d);
    if (d.eng) {
        sb_close(d.eng);
        if (exit_code == 0) sbd_log(SB_LOG_INFO, "stopped", NULL);
    }
    sb_result_free(d.res);
    /* A start that failed leaves no lock file it made (the data directory
    ** and what else it made stay). Removed before it is let go: a serve
    ** starting meanwhile finds it in use and stops (only one that opened it
    ** before the removal and locked it after could hold the removed file). */
    if (lockfd >= 0 && lock_made && !started) {
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/serve.lock", cfg.data_dir);
        unlink(path);
    }
    if (lockfd >= 0) close(lockfd);
    sbd_config_free(&cfg);
    return exit_code;
}
