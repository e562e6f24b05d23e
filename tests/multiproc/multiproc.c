/*
** multiproc.c — many processes, one data directory (TAP; run by multiproc.t).
**
** Forks --procs worker processes (default 8) that each open their own engine
** on one data directory and run call cycles at once on queues they share:
** offer; every ring the engine hands a process is answered and hung up by
** that process, whoever offered the call (with --hold, as multiproc.t runs
** it, one call a process talks on over its next offer, so that the calls
** overlap and offers must wait whatever the scheduler does: without, on two
** cores, runs came with no wait at all one time in ten); offers that must
** wait are abandoned
** by their owner a few cycles later if nobody rang them meanwhile. Halfway
** through, worker 0 stores version 2 of the account's policy (sb_policy_put).
**
** Ordering: the engines share one clock, a counter in shared memory that
** every read advances. The engine reads its clock right after it takes LMDB's
** write lock, so each transaction's "now" is unique and in commit order across
** all processes. Each worker logs, for every action it gets, the first clock
** value of the sb_submit that returned it. The parent then checks, from the
** workers' logs alone, that no agent was ever reserved by two calls at once,
** that every offered call ended exactly once; and, from the engine's records,
** that they say the same (attempt start times equal the logged ring times),
** and that every decision taken after the policy put used version 2 — in
** every process.
**
** usage: multiproc [--procs N] [--cycles N] [--agents N] [--queues N]
**                  [--sync none|group] [--hold] [--keep]
** Prints TAP, then "# multiproc: ..." summary lines (call cycles/s, double
** bookings).
*/
#include "switchboard.h"
#include "tap.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define BASE_MS 1767603600000LL
#define MAX_WAITING 64  /* a worker's own calls left waiting */
#define ABANDON_AFTER 3 /* cycles a waiting call gets before its owner gives up */

static int nprocs = 8, cycles = 2000, nagents = 6, nqueues = 2, keep = 0;
static int hold_calls; /* --hold: each worker talks on one call over its next offer */
static sb_sync_mode sync_mode = SB_SYNC_NONE;
static char dir[256], logdir[300];

/* ---- the shared clock --------------------------------------------------- */

typedef struct {
    _Atomic int64_t clock;    /* the engines' clock: every read advances it */
    _Atomic int ready;        /* workers with their engine open */
    _Atomic int put_done;     /* worker 0 stored version 2 */
    _Atomic int progress[64]; /* offers made, per worker */
} shared_state;

static shared_state *shared;
static int64_t first_stamp, last_stamp; /* this process's reads in one call */

static int64_t mp_clock(void *arg)
{
    int64_t v = BASE_MS + atomic_fetch_add(&shared->clock, 1) + 1;
    if (!first_stamp) first_stamp = v;
    last_stamp = v;
    return v;
}

static void quiet(void *arg, sb_log_level l, const char *line)
{
    if (l == SB_LOG_ERROR || getenv("SB_TEST_LOG")) fprintf(stderr, "engine: %s\n", line);
}

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static sb_engine *open_engine(sb_result *res)
{
    sb_config cfg;
    sb_config_init(&cfg);
    cfg.data_dir = dir;
    cfg.sync = sync_mode;
    cfg.clock = mp_clock;
    cfg.log = quiet;
    cfg.map_size = (size_t)64 << 20;
    sb_engine *e = NULL;
    if (sb_open(&e, &cfg, res)) {
        fprintf(stderr, "open %s: %s\n", dir, sb_result_message(res));
        return NULL;
    }
    return e;
}

static const char POLICY_V1[] = "-- mp: the agent idle longest (version 1)\n"
                                "local P = {}\n"
                                "function P.route(call, agents, ctx)\n"
                                "  local best\n"
                                "  for i = 1, #agents do\n"
                                "    local a = agents[i]\n"
                                "    if not best or a.idle_for > best.idle_for then best = a end\n"
                                "  end\n"
                                "  if not best then return { wait = 60 } end\n"
                                "  return { ring = best.id, timeout = 600 }\n"
                                "end\n"
                                "return P\n";

/* Version 2 decides the same way; only its source (so its version) differs. */
static const char POLICY_V2[] = "-- mp: the agent idle longest (version 2, stored mid-run)\n"
                                "local P = {}\n"
                                "function P.route(call, agents, ctx)\n"
                                "  local best\n"
                                "  for i = 1, #agents do\n"
                                "    local a = agents[i]\n"
                                "    if not best or a.idle_for > best.idle_for then best = a end\n"
                                "  end\n"
                                "  if not best then return { wait = 60 } end\n"
                                "  return { ring = best.id, timeout = 600 }\n"
                                "end\n"
                                "return P\n";

/* ---- a worker ------------------------------------------------------------- */

typedef struct {
    char call[48], agent[64];
} ring_item;

typedef struct {
    int id;
    FILE *log;
    sb_engine *e;
    sb_result *res;
    ring_item todo[256];
    int ntodo;
    struct {
        char call[48];
        int age;
    } waiting[MAX_WAITING];
    int nwaiting;
    char held[48]; /* a call this worker answered and talks on until its next offer */
    int errors;
} worker;

static void wlog(worker *w, int64_t stamp, const char *ev, const char *call, const char *agent)
{
    fprintf(w->log, "%lld %d %s %s %s\n", (long long)stamp, w->id, ev, call ? call : "-",
            agent ? agent : "-");
}

static void forget_waiting(worker *w, const char *call)
{
    for (int i = 0; i < w->nwaiting; i++)
        if (strcmp(w->waiting[i].call, call) == 0) {
            w->waiting[i] = w->waiting[--w->nwaiting];
            return;
        }
}

/* Log every action of the last call and queue the rings this worker must
** answer. stamp: the transaction's clock. */
static void take_actions(worker *w, int64_t stamp)
{
    for (size_t i = 0; i < sb_result_count(w->res); i++) {
        const sb_action *a = sb_result_action(w->res, i);
        switch (a->type) {
        case SB_ACT_RING:
            wlog(w, stamp, "RING", a->call_id, a->agent_id);
            if (w->ntodo < (int)(sizeof w->todo / sizeof *w->todo)) {
                snprintf(w->todo[w->ntodo].call, sizeof w->todo[0].call, "%s", a->call_id);
                snprintf(w->todo[w->ntodo].agent, sizeof w->todo[0].agent, "%s", a->agent_id);
                w->ntodo++;
            } else {
                w->errors++;
            }
            break;
        case SB_ACT_CANCEL:
            wlog(w, stamp, "CANCEL", a->call_id, a->agent_id);
            break;
        case SB_ACT_CONNECT:
            wlog(w, stamp, "CONNECT", a->call_id, a->agent_id);
            break;
        case SB_ACT_END:
            wlog(w, stamp, "END", a->call_id, a->reason);
            break;
        case SB_ACT_WAIT:
            wlog(w, stamp, "WAIT", a->call_id, NULL);
            break;
        case SB_ACT_REJECT:
            wlog(w, stamp, "REJECT", a->call_id, a->reason);
            break;
        case SB_ACT_OVERFLOW:
            wlog(w, stamp, "OVERFLOW", a->call_id, a->queue_id);
            break;
        case SB_ACT_AGENT:
            break;
        }
    }
}

static int submit(worker *w, const sb_event *ev, int64_t *stamp)
{
    first_stamp = 0;
    int rc = sb_submit(w->e, ev, w->res);
    *stamp = first_stamp;
    if (rc == 0) take_actions(w, *stamp);
    return rc;
}

static void hang_up(worker *w, const char *call)
{
    int64_t st;
    sb_event hup = {.type = SB_EV_HANGUP, .account = "mp", .call_id = call};
    int rc = submit(w, &hup, &st);
    if (rc) {
        wlog(w, st, "ERROR", call, sb_strerror(rc));
        w->errors++;
    }
}

/* Answer and hang up every ring handed to this worker (hangups may free an
** agent for a waiting call: that ring lands here too) — all but one when
** the worker holds no call: it talks on over the worker's next offer, so
** the processes' calls overlap (8 processes, 6 agents: offers must wait,
** whatever the scheduler does). */
static void drain(worker *w)
{
    while (w->ntodo > 0) {
        ring_item it = w->todo[--w->ntodo];
        int64_t st;
        sb_event ans = {.type = SB_EV_RING_RESULT,
                        .account = "mp",
                        .call_id = it.call,
                        .agent_id = it.agent,
                        .outcome = SB_RING_ANSWERED};
        int rc = submit(w, &ans, &st);
        if (rc == SB_ESTATE || rc == SB_ENOTFOUND) { /* abandoned by its owner meanwhile */
            wlog(w, st, "STALE", it.call, it.agent);
            continue;
        }
        if (rc) {
            wlog(w, st, "ERROR", it.call, sb_strerror(rc));
            w->errors++;
            continue;
        }
        if (hold_calls && !w->held[0]) { /* talks on: hung up after the next offer */
            snprintf(w->held, sizeof w->held, "%s", it.call);
            continue;
        }
        hang_up(w, it.call);
    }
}

/* Hang up the call this worker held over from its last cycle (if any), and
** take every ring handed to it. */
static void release_held(worker *w, const char *call)
{
    if (call[0]) hang_up(w, call);
    drain(w);
}

static void abandon(worker *w, const char *call)
{
    int64_t st;
    sb_event ab = {.type = SB_EV_ABANDON, .account = "mp", .call_id = call};
    int rc = submit(w, &ab, &st);
    if (rc == SB_ENOTFOUND || rc == SB_ESTATE)
        wlog(w, st, "GONE", call, NULL); /* ended already */
    else if (rc) {
        wlog(w, st, "ERROR", call, sb_strerror(rc));
        w->errors++;
    }
}

static int run_worker(int id)
{
    worker w = {.id = id};
    char path[400];
    snprintf(path, sizeof path, "%s/w%d.log", logdir, id);
    w.log = fopen(path, "w");
    w.res = sb_result_new();
    if (!w.log || !w.res || !(w.e = open_engine(w.res))) {
        atomic_fetch_add(&shared->ready, 1);
        return 2;
    }
    /* Start together, so the processes really run at once. */
    atomic_fetch_add(&shared->ready, 1);
    while (atomic_load(&shared->ready) < nprocs)
        usleep(100);
    for (int k = 0; k < cycles; k++) {
        atomic_store(&shared->progress[id], k);
        if (id == 0 && k == cycles / 2) {
            /* Version 2, stored while the other workers are busy routing —
            ** once each has routed a quarter of its calls on version 1. */
            for (int p = 1, spins = 0; p < nprocs && spins < 600000; spins++) {
                if (atomic_load(&shared->progress[p]) >= cycles / 4)
                    p++;
                else
                    usleep(50);
            }
            first_stamp = 0;
            int rc = sb_policy_put(w.e, "mp", "mp", POLICY_V2, sizeof POLICY_V2 - 1, NULL, w.res);
            fprintf(w.log, "%lld %d PUT %lld %s\n", (long long)first_stamp, id,
                    (long long)last_stamp, rc ? sb_strerror(rc) : "ok");
            if (rc) w.errors++;
            atomic_store(&shared->put_done, 1);
        } else if (k == cycles / 2) {
            /* A worker faster than worker 0 keeps its second half for after
            ** the put, so every process routes calls on both versions. */
            for (int spins = 0; !atomic_load(&shared->put_done) && spins < 600000; spins++)
                usleep(50);
        }
        char call[48], q[16], prev[48];
        snprintf(prev, sizeof prev, "%s", w.held);
        w.held[0] = 0;
        snprintf(call, sizeof call, "p%d-c%d", id, k);
        snprintf(q, sizeof q, "q%d", (k + id) % nqueues);
        sb_event offer = {.type = SB_EV_OFFER,
                          .account = "mp",
                          .call_id = call,
                          .queue_id = q,
                          .caller = "+442079460001"};
        int64_t st;
        int rc = submit(&w, &offer, &st);
        wlog(&w, st, rc ? "OFFERFAIL" : "OFFER", call, q);
        if (rc) {
            w.errors++;
            release_held(&w, prev);
            continue;
        }
        int rung = 0;
        for (size_t i = 0; i < sb_result_count(w.res); i++) {
            const sb_action *a = sb_result_action(w.res, i);
            if (a->type == SB_ACT_RING && strcmp(a->call_id, call) == 0) rung = 1;
        }
        if (!rung && w.nwaiting < MAX_WAITING) {
            snprintf(w.waiting[w.nwaiting].call, sizeof w.waiting[0].call, "%s", call);
            w.waiting[w.nwaiting++].age = 0;
        } else if (!rung) {
            abandon(&w, call);
        }
        release_held(&w, prev); /* after the offer: the calls overlap */
        for (int i = 0; i < w.nwaiting;) {
            if (++w.waiting[i].age > ABANDON_AFTER) {
                char c[48];
                snprintf(c, sizeof c, "%s", w.waiting[i].call);
                forget_waiting(&w, c);
                abandon(&w, c);
                drain(&w);
            } else {
                i++;
            }
        }
    }
    while (w.nwaiting > 0) {
        char c[48];
        snprintf(c, sizeof c, "%s", w.waiting[0].call);
        forget_waiting(&w, c);
        abandon(&w, c);
        drain(&w);
    }
    while (w.held[0]) {
        char last[48];
        snprintf(last, sizeof last, "%s", w.held);
        w.held[0] = 0;
        release_held(&w, last);
    }
    fclose(w.log);
    sb_result_free(w.res);
    sb_close(w.e);
    return w.errors ? 1 : 0;
}

/* ---- the checker ------------------------------------------------------------- */

typedef struct {
    int64_t stamp;
    int proc;
    char ev[12], call[48], arg[64];
} logline;

typedef struct {
    char call[48], agent[64];
    int64_t start, end; /* end 0: still open */
    int connected, proc;
} reservation;

static logline *lines;
static size_t nlines, caplines;

static int cmp_line(const void *a, const void *b)
{
    const logline *x = a, *y = b;
    return x->stamp < y->stamp ? -1 : x->stamp > y->stamp;
}

static int cmp_res(const void *a, const void *b)
{
    const reservation *x = a, *y = b;
    int c = strcmp(x->agent, y->agent);
    if (c) return c;
    return x->start < y->start ? -1 : x->start > y->start;
}

static int64_t put_first, put_last;

static int read_logs(void)
{
    for (int p = 0; p < nprocs; p++) {
        char path[400], buf[512];
        snprintf(path, sizeof path, "%s/w%d.log", logdir, p);
        FILE *f = fopen(path, "r");
        if (!f) return -1;
        while (fgets(buf, sizeof buf, f)) {
            logline l = {0};
            long long st, a2;
            char s2[64];
            if (sscanf(buf, "%lld %d PUT %lld %63s", &st, &l.proc, &a2, s2) == 4) {
                put_first = st;
                put_last = a2;
                continue;
            }
            if (sscanf(buf, "%lld %d %11s %47s %63s", &st, &l.proc, l.ev, l.call, l.arg) != 5)
                continue;
            l.stamp = st;
            if (nlines == caplines) {
                caplines = caplines ? caplines * 2 : 4096;
                lines = realloc(lines, caplines * sizeof *lines);
            }
            lines[nlines++] = l;
        }
        fclose(f);
    }
    qsort(lines, nlines, sizeof *lines, cmp_line);
    return 0;
}

/* A tiny map from call id to index, for the checker. */
typedef struct {
    char call[48];
    int offered, ends, rings, connects, proc;
    int64_t offer_stamp;
    char outcome[16];
} callinfo;

static callinfo *calls;
static size_t ncalls;
static size_t *slots;
static size_t nslots;

static size_t hash(const char *s)
{
    size_t h = 1469598103934665603ULL;
    while (*s)
        h = (h ^ (unsigned char)*s++) * 1099511628211ULL;
    return h;
}

static callinfo *call_of(const char *id)
{
    size_t h = hash(id) & (nslots - 1);
    while (slots[h]) {
        if (strcmp(calls[slots[h] - 1].call, id) == 0) return &calls[slots[h] - 1];
        h = (h + 1) & (nslots - 1);
    }
    callinfo *c = &calls[ncalls++];
    memset(c, 0, sizeof *c);
    snprintf(c->call, sizeof c->call, "%s", id);
    slots[h] = ncalls;
    return c;
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--procs") && i + 1 < argc)
            nprocs = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--cycles") && i + 1 < argc)
            cycles = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--agents") && i + 1 < argc)
            nagents = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--queues") && i + 1 < argc)
            nqueues = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--sync") && i + 1 < argc)
            sync_mode = strcmp(argv[++i], "group") ? SB_SYNC_NONE : SB_SYNC_GROUP;
        else if (!strcmp(argv[i], "--hold"))
            hold_calls = 1;
        else if (!strcmp(argv[i], "--keep"))
            keep = 1;
        else {
            fprintf(stderr, "usage: multiproc [--procs N] [--cycles N] [--agents N] "
                            "[--queues N] [--sync none|group] [--hold] [--keep]\n");
            return 2;
        }
    }
    if (nprocs < 1 || nprocs > 64 || cycles < 2 || nagents < 1 || nqueues < 1) return 2;
    const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    snprintf(logdir, sizeof logdir, "%s/sb-multiproc-%d", tmp, (int)getpid());
    snprintf(dir, sizeof dir, "%s/data", logdir);
    if (mkdir(logdir, 0700)) {
        perror(logdir);
        return 2;
    }
    shared = mmap(NULL, sizeof *shared, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (shared == MAP_FAILED) return 2;
    atomic_store(&shared->clock, 0);
    atomic_store(&shared->ready, 0);
    atomic_store(&shared->put_done, 0);
    for (int p = 0; p < 64; p++)
        atomic_store(&shared->progress[p], 0);

    /* Provision, then close: no LMDB environment may cross a fork. */
    sb_result *res = sb_result_new();
    sb_engine *e = open_engine(res);
    if (!ok(e != NULL, "engine opened on %s", dir)) return 1;
    int prc = sb_account_put(e, "{\"id\":\"mp\"}", 11, res);
    char json[4096];
    for (int a = 0; a < nagents && !prc; a++) {
        snprintf(json, sizeof json,
                 "{\"id\":\"a%d\",\"status\":\"available\",\"devices\":{\"softphone\":"
                 "\"sip:a%d@127.0.0.1\"}}",
                 a, a);
        prc = sb_agent_put(e, "mp", json, strlen(json), res);
    }
    if (!prc) prc = sb_policy_put(e, "mp", "mp", POLICY_V1, sizeof POLICY_V1 - 1, NULL, res);
    char v1[17] = "", v2[17] = "";
    if (!prc) {
        json_t *o = json_loads(sb_result_json(res, NULL), 0, NULL);
        snprintf(v1, sizeof v1, "%s", json_string_value(json_object_get(o, "version")));
        json_decref(o);
    }
    for (int q = 0; q < nqueues && !prc; q++) {
        int n = snprintf(json, sizeof json, "{\"id\":\"q%d\",\"policy\":\"mp\",\"members\":[", q);
        for (int a = 0; a < nagents; a++)
            n += snprintf(json + n, sizeof json - (size_t)n, "%s{\"agent\":\"a%d\"}", a ? "," : "",
                          a);
        snprintf(json + n, sizeof json - (size_t)n, "]}");
        prc = sb_queue_put(e, "mp", json, strlen(json), res);
    }
    if (!ok(prc == 0, "provisioned: %d agents in %d shared queues, account policy version %s",
            nagents, nqueues, v1))
        diag("%s", sb_result_message(res));
    sb_close(e);
    e = NULL;

    /* The run. */
    double t0 = mono();
    pid_t pids[64];
    for (int p = 0; p < nprocs; p++) {
        fflush(stdout);
        pids[p] = fork();
        if (pids[p] == 0) _exit(run_worker(p));
        if (pids[p] < 0) {
            perror("fork");
            return 1;
        }
    }
    int clean = 0;
    for (int p = 0; p < nprocs; p++) {
        int st;
        if (waitpid(pids[p], &st, 0) == pids[p] && WIFEXITED(st) && WEXITSTATUS(st) == 0)
            clean++;
        else
            diag("worker %d: status %d", p, st);
    }
    double secs = mono() - t0;
    ok(clean == nprocs,
       "%d processes each opened the engine and ran %d offers, no errors "
       "(%d clean)",
       nprocs, cycles, clean);

    /* Check the workers' logs. */
    int logs_rc = read_logs();
    ok(logs_rc == 0 && nlines > 0, "read %zu log lines of %d workers", nlines, nprocs);
    nslots = 1;
    while (nslots < (size_t)nprocs * (size_t)cycles * 2 + 16)
        nslots <<= 1;
    slots = calloc(nslots, sizeof *slots);
    calls = calloc(nslots, sizeof *calls);
    reservation *rs = calloc(nlines + 1, sizeof *rs);
    size_t nrs = 0;
    int dup_stamps = 0;
    for (size_t i = 1; i < nlines; i++)
        if (lines[i].stamp == lines[i - 1].stamp && lines[i].proc != lines[i - 1].proc)
            dup_stamps++;
    size_t answered = 0, abandoned = 0, other_end = 0, stale = 0, waits = 0, errors = 0;
    for (size_t i = 0; i < nlines; i++) {
        logline *l = &lines[i];
        callinfo *c = call_of(l->call);
        if (!strcmp(l->ev, "OFFER")) {
            c->offered++;
            c->proc = l->proc;
            c->offer_stamp = l->stamp;
        } else if (!strcmp(l->ev, "RING")) {
            c->rings++;
            reservation *r = &rs[nrs++];
            snprintf(r->call, sizeof r->call, "%s", l->call);
            snprintf(r->agent, sizeof r->agent, "%s", l->arg);
            r->start = l->stamp;
            r->proc = l->proc;
        } else if (!strcmp(l->ev, "CANCEL") || !strcmp(l->ev, "CONNECT") || !strcmp(l->ev, "END")) {
            if (!strcmp(l->ev, "CONNECT")) c->connects++;
            if (!strcmp(l->ev, "END")) {
                c->ends++;
                snprintf(c->outcome, sizeof c->outcome, "%s", l->arg);
                if (!strcmp(l->arg, "answered"))
                    answered++;
                else if (!strcmp(l->arg, "abandoned"))
                    abandoned++;
                else
                    other_end++;
            }
            /* close this call's open reservations: CANCEL for that agent; END
            ** for the connected agent (and any still ringing). */
            for (size_t k = nrs; k-- > 0;) {
                reservation *r = &rs[k];
                if (r->end || strcmp(r->call, l->call)) continue;
                if (!strcmp(l->ev, "CANCEL") && strcmp(r->agent, l->arg)) continue;
                if (!strcmp(l->ev, "CONNECT")) {
                    if (!strcmp(r->agent, l->arg)) r->connected = 1;
                    continue;
                }
                r->end = l->stamp;
            }
        } else if (!strcmp(l->ev, "STALE"))
            stale++;
        else if (!strcmp(l->ev, "WAIT"))
            waits++;
        else if (!strcmp(l->ev, "ERROR") || !strcmp(l->ev, "OFFERFAIL"))
            errors++;
    }
    ok(dup_stamps == 0, "every transaction of every process has its own clock value (%d shared)",
       dup_stamps);
    ok(errors == 0, "no unexpected engine errors (%zu)", errors);

    /* No agent reserved by two calls: per agent, reservations in clock order
    ** never overlap (a release and the next ring may share a transaction). */
    qsort(rs, nrs, sizeof *rs, cmp_res);
    size_t doubles = 0, open_left = 0;
    for (size_t i = 0; i < nrs; i++) {
        if (!rs[i].end) open_left++;
        if (i && !strcmp(rs[i].agent, rs[i - 1].agent) &&
            (!rs[i - 1].end || rs[i].start < rs[i - 1].end)) {
            if (doubles++ < 5)
                diag("double booking: %s rung for %s at %lld while held by %s (%lld..%lld)",
                     rs[i].agent, rs[i].call, (long long)rs[i].start, rs[i - 1].call,
                     (long long)rs[i - 1].start, (long long)rs[i - 1].end);
        }
    }
    ok(nrs > 0 && doubles == 0,
       "no agent was ever reserved by two calls: %zu reservations, "
       "%zu double bookings",
       nrs, doubles);
    ok(open_left == 0, "every reservation ended (%zu left open)", open_left);

    size_t offered = 0, bad_ends = 0;
    for (size_t i = 0; i < ncalls; i++) {
        if (calls[i].offered) offered++;
        if (calls[i].offered != 1 || calls[i].ends != 1) {
            if (bad_ends++ < 5)
                diag("call %s: offered %d, ended %d", calls[i].call, calls[i].offered,
                     calls[i].ends);
        }
    }
    ok(offered == (size_t)nprocs * (size_t)cycles && bad_ends == 0,
       "every call accounted for: %zu offered, each ended exactly once "
       "(%zu answered, %zu abandoned, %zu other)",
       offered, answered, abandoned, other_end);
    ok(waits > 0,
       "the queues were contended: %zu decisions to wait, %zu rings reached a "
       "call already abandoned",
       waits, stale);

    /* The engine's records say the same, and the policy reload reached every
    ** process. */
    e = open_engine(res);
    int rec_ok = e != NULL, rec_mismatch = 0, pol_bad = 0;
    int *v1_seen = calloc((size_t)nprocs, sizeof(int)),
        *v2_seen = calloc((size_t)nprocs, sizeof(int));
    for (size_t i = 0; e && i < ncalls; i++) {
        callinfo *c = &calls[i];
        if (!c->offered) continue;
        if (sb_call_get(e, "mp", c->call, res)) {
            rec_ok = 0;
            continue;
        }
        json_t *o = json_loads(sb_result_json(res, NULL), 0, NULL);
        const char *outcome = json_string_value(json_object_get(o, "outcome"));
        if (!outcome || strcmp(outcome, c->outcome)) rec_mismatch++;
        /* attempts: each start equals a logged ring of that agent for this call */
        json_t *att = json_object_get(o, "attempts_detail"), *x;
        size_t k;
        int starts_match = (int)json_array_size(att) == c->rings;
        json_array_foreach(att, k, x)
        {
            int64_t st = json_integer_value(json_object_get(x, "start_ms"));
            const char *ag = json_string_value(json_object_get(x, "agent"));
            int found = 0;
            for (size_t r = 0; r < nrs && !found; r++)
                found = rs[r].start == st && !strcmp(rs[r].call, c->call) && ag &&
                        !strcmp(rs[r].agent, ag);
            starts_match &= found;
        }
        if (!starts_match) {
            if (rec_mismatch++ < 5) diag("record of %s disagrees with the logs", c->call);
        }
        /* policy versions: offers decided before the put used v1; after it, v2 */
        json_t *vs = json_object_get(o, "policy_versions");
        int has1 = 0, has2 = 0;
        json_array_foreach(vs, k, x)
        {
            const char *ver = json_string_value(json_object_get(x, "version"));
            if (ver && !strcmp(ver, v1))
                has1 = 1;
            else if (ver) {
                has2 = 1;
                if (!v2[0])
                    snprintf(v2, sizeof v2, "%s", ver);
                else if (strcmp(v2, ver))
                    pol_bad++;
            }
        }
        if (c->offer_stamp < put_first && (!has1 || json_array_size(vs) == 0)) pol_bad++;
        if (c->offer_stamp > put_last) {
            if (has1 || !has2) {
                if (pol_bad++ < 5)
                    diag("call %s offered at %lld after the put (%lld) decided by the old version",
                         c->call, (long long)c->offer_stamp, (long long)put_last);
            } else {
                v2_seen[c->proc]++;
            }
        } else if (c->offer_stamp < put_first && has1) {
            v1_seen[c->proc]++;
        }
        json_decref(o);
    }
    ok(rec_ok && rec_mismatch == 0,
       "the engine's records agree with the logs: outcomes, and "
       "every attempt's start is a logged ring (%d disagree)",
       rec_mismatch);
    int all_procs = 1;
    for (int p = 0; p < nprocs; p++)
        all_procs &= v1_seen[p] > 0 && v2_seen[p] > 0;
    ok(put_first > 0 && v2[0] && pol_bad == 0 && all_procs,
       "policy put mid-run (clock %lld..%lld): every decision before it used %s, every one "
       "after it %s, in each of the %d processes",
       (long long)put_first, (long long)put_last, v1, v2[0] ? v2 : "?", nprocs);
    if (!all_procs)
        for (int p = 0; p < nprocs; p++)
            diag("process %d: %d calls on v1, %d on v2", p, v1_seen[p], v2_seen[p]);
    /* Nothing left over: every agent free. */
    int busy = 0;
    for (int a = 0; e && a < nagents; a++) {
        char id[16];
        snprintf(id, sizeof id, "a%d", a);
        if (sb_agent_get(e, "mp", id, res) == 0) {
            json_t *o = json_loads(sb_result_json(res, NULL), 0, NULL);
            if (strcmp(json_string_value(json_object_get(o, "status")), "available")) busy++;
            json_decref(o);
        }
    }
    ok(e && busy == 0, "afterwards every agent is available (%d not)", busy);
    sb_close(e);
    sb_result_free(res);

    double rate = (double)answered / secs;
    diag("multiproc: %d processes, %d agents, %d queues, sync %s: %zu call cycles answered in "
         "%.2f s = %.0f call cycles/s aggregate (%zu offers, %zu events logged)",
         nprocs, nagents, nqueues, sync_mode == SB_SYNC_NONE ? "none" : "group", answered, secs,
         rate, offered, nlines);
    diag("multiproc: double bookings %zu", doubles);
    if (!keep) {
        char cmd[400];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", logdir);
        if (system(cmd) != 0) diag("could not remove %s", logdir);
    } else {
        diag("kept %s", logdir);
    }
    free(rs);
    free(calls);
    free(slots);
    free(lines);
    free(v1_seen);
    free(v2_seen);
    return done_testing();
}
