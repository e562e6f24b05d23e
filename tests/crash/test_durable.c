/*
** test_durable.c — what a power loss asks of the commits, seen at the
** system calls. This test defines the write and sync calls, so LMDB's land
** here first (then go on to the system's); a write to a data.mdb at offset
** below two pages is a meta page (it says where the tree is), any other is
** a page of the tree. Checked, for sync=group, sync and defer:
**  1. no meta page is written while a page written before it is unsynced
**     (else a sync under way when the power goes could leave a meta page on
**     disk that points at pages that are not: a broken database);
**  2. group and sync: when a write returns, a sync that began after its
**     commit wrote its meta page has ended: the write is on disk; also with
**     eight threads on two engines writing at once;
**  3. the same with two processes writing at once (either's commit can
**     make the other's durable);
**  4. defer: sb_sync makes every commit before it durable, and does not sync
**     again when nothing was committed since;
**  5. a sync that fails: in the commit (defer), the write fails, is not
**     there, and sb_sync reports that earlier commits may not be on disk
**     until a new write is synced; after the commit (group), the write
**     reports it; the engine goes on writing;
**  6. two commits the engine notes in the other order than they were made:
**     neither writer waits for a commit it takes to be under way;
**  7. a batch that another write of its thread committed, and that then
**     failed: sb_batch_end still syncs for the committed part;
**  8. after an sb_sync whose own sync fails, sb_sync fails until a new
**     write is synced;
** and all along, one sync of the data file at a time in the process, the
** commits' own included (else a failure reported to one could leave the
** other's success covering pages the failure dropped).
*/
#include "switchboard.h"
#include "tap.h"
#include "testkit.h"

#include <lmdb.h>

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "interpose.h"

#define META_END (2 * 4096) /* LMDB's two meta pages (this machine's page size) */

/* What the calls saw, shared with a child process (3.), and what the disk
** holds as Linux leaves it: a sync that succeeds puts on disk the meta
** pages written before it began; one that fails drops them (the pages are
** marked clean; no later sync writes them). A commit is on disk when a meta
** page written at or after its own is (the newest decides the tree, which
** holds every earlier commit). */
#define PENDING_MAX 4096
static struct seen {
    pthread_mutex_t mu;
    uint64_t seq;                  /* calls seen, in order */
    uint64_t last_page;            /* the last write of a tree page */
    uint64_t synced_from;          /* the latest start of a data file sync that succeeded */
    uint64_t disk_meta;            /* the newest meta page write on disk */
    uint64_t pending[PENDING_MAX]; /* meta page writes neither on disk nor lost */
    int npending;
    uint64_t metas, early, syncs;
    int skip_syncs, fail_syncs; /* after skip_syncs data file syncs, fail_syncs fail (EIO) */
    /* 3: the other process commits when asked (go), while the process
    ** whose pid is `hold` looks for a later commit (its next mdb_env_info). */
    int hold, go, quit;
    uint64_t other_commits;
} * S;
static __thread uint64_t last_meta;        /* this thread's last meta page write */
static uint64_t own_syncs;                 /* data file syncs of this process */
static int own_inflight, own_max_inflight; /* ... at once, and the most at once */

/* 6: with commit_pause_ms set, the thread of the next commit pauses that
** long at its next mutex unlock (the engine's, once LMDB has let go of the
** commit and before the engine notes it), and the thread of the commit
** after it waits unlock_pause_ms at its next unlock of an rwlock (the
** map's, after its commit). */
static int commit_pause_ms, unlock_pause_ms, commits_seen;
static __thread int pause_unlock, pause_mutex_unlock;

static __thread int in_write; /* this thread holds LMDB's write lock */

int mdb_txn_begin(MDB_env *env, MDB_txn *parent, unsigned flags, MDB_txn **txn)
{
    int rc = REAL(mdb_txn_begin)(env, parent, flags, txn);
    if (rc == 0 && !(flags & MDB_RDONLY)) in_write = 1;
    return rc;
}

void mdb_txn_abort(MDB_txn *txn)
{
    in_write = 0;
    REAL(mdb_txn_abort)(txn);
}

int mdb_txn_commit(MDB_txn *txn)
{
    in_write = 0;
    int rc = REAL(mdb_txn_commit)(txn);
    if (commit_pause_ms) {
        int c = __atomic_add_fetch(&commits_seen, 1, __ATOMIC_SEQ_CST);
        if (c == 1) pause_mutex_unlock = 1;
        if (c == 2) pause_unlock = 1;
    }
    return rc;
}

int pthread_mutex_unlock(pthread_mutex_t *m)
{
    int rc = REAL(pthread_mutex_unlock)(m);
    if (pause_mutex_unlock) {
        pause_mutex_unlock = 0;
        usleep((useconds_t)commit_pause_ms * 1000);
    }
    return rc;
}

int pthread_rwlock_unlock(pthread_rwlock_t *l)
{
    int rc = REAL(pthread_rwlock_unlock)(l);
    if (pause_unlock) {
        pause_unlock = 0;
        usleep((useconds_t)unlock_pause_ms * 1000);
    }
    return rc;
}

static int file_write_fails(int fd)
{
    (void)fd;
    return 0;
}

static void file_write(int fd, off_t off, ssize_t n)
{
    if (!S || n <= 0 || off < 0 || !is_data_file(fd)) return;
    pthread_mutex_lock(&S->mu);
    uint64_t s = ++S->seq;
    if (off >= META_END) {
        S->last_page = s;
    } else {
        S->metas++;
        S->early += S->last_page > S->synced_from;
        last_meta = s;
        if (S->npending < PENDING_MAX) S->pending[S->npending++] = s;
    }
    pthread_mutex_unlock(&S->mu);
}

ssize_t writev(int fd, const struct iovec *iov, int cnt)
{
    off_t off = lseek(fd, 0, SEEK_CUR);
    ssize_t r = REAL(writev)(fd, iov, cnt);
    file_write(fd, off, r);
    return r;
}

static int synced(int fd, int (*real)(int))
{
    int data = S && is_data_file(fd);
    if (!data) return real(fd);
    pthread_mutex_lock(&S->mu);
    uint64_t start = ++S->seq;
    int fail = 0;
    if (S->skip_syncs > 0)
        S->skip_syncs--;
    else if (S->fail_syncs > 0)
        fail = S->fail_syncs--;
    pthread_mutex_unlock(&S->mu);
    int now = __atomic_add_fetch(&own_inflight, 1, __ATOMIC_SEQ_CST);
    if (now > own_max_inflight) own_max_inflight = now;
    int r = fail ? (errno = EIO, -1) : real(fd);
    __atomic_sub_fetch(&own_inflight, 1, __ATOMIC_SEQ_CST);
    pthread_mutex_lock(&S->mu);
    S->syncs++;
    own_syncs++;
    if (r == 0 && start > S->synced_from) S->synced_from = start;
    /* The meta pages written before it: on disk, or lost. */
    int keep = 0;
    for (int i = 0; i < S->npending; i++) {
        if (S->pending[i] > start)
            S->pending[keep++] = S->pending[i];
        else if (r == 0 && S->pending[i] > S->disk_meta)
            S->disk_meta = S->pending[i];
    }
    S->npending = keep;
    pthread_mutex_unlock(&S->mu);
    return r;
}

int fdatasync(int fd)
{
    return synced(fd, REAL(fdatasync));
}

int fsync(int fd)
{
    return synced(fd, REAL(fsync));
}

/* Is this thread's last commit on disk (a meta page written at or after
** its own, in this process or the other, is)? */
static int mine_durable(void)
{
    pthread_mutex_lock(&S->mu);
    int ok_ = last_meta && S->disk_meta >= last_meta;
    pthread_mutex_unlock(&S->mu);
    return ok_;
}

static void counts(uint64_t *m, uint64_t *e, uint64_t *s)
{
    pthread_mutex_lock(&S->mu);
    *m = S->metas;
    *e = S->early;
    *s = S->syncs;
    pthread_mutex_unlock(&S->mu);
}

/* Set, read and wait on S's fields under its lock. */
static void set_int(int *f, int v)
{
    pthread_mutex_lock(&S->mu);
    *f = v;
    pthread_mutex_unlock(&S->mu);
}

static uint64_t get_u64(const uint64_t *f)
{
    pthread_mutex_lock(&S->mu);
    uint64_t v = *f;
    pthread_mutex_unlock(&S->mu);
    return v;
}

static int get_int(const int *f)
{
    pthread_mutex_lock(&S->mu);
    int v = *f;
    pthread_mutex_unlock(&S->mu);
    return v;
}

/* The engine asks the environment for its last transaction id (among other
** things): in the process S->hold names, the other process commits first. */
int mdb_env_info(MDB_env *env, MDB_envinfo *info)
{
    /* (not while this thread holds the write lock: the other could not commit) */
    if (S && !in_write && get_int(&S->hold) == (int)getpid()) {
        set_int(&S->hold, 0);
        uint64_t before = get_u64(&S->other_commits);
        set_int(&S->go, 1);
        for (int i = 0; i < 10000 && get_u64(&S->other_commits) == before; i++)
            usleep(1000);
    }
    return REAL(mdb_env_info)(env, info);
}

static void fail_next(int skip, int fail)
{
    pthread_mutex_lock(&S->mu);
    S->skip_syncs = skip;
    S->fail_syncs = fail;
    pthread_mutex_unlock(&S->mu);
}

static char dir[64] = "/tmp/sb-durable-XXXXXX";

static sb_engine *open_mode(const char *name, sb_sync_mode mode, sb_result *res)
{
    char path[128];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    sb_config cfg;
    test_engine_config(&cfg, path, NULL, 1 << 20);
    cfg.sync = mode;
    return test_open(&cfg, res);
}

static int put_agent(sb_engine *e, const char *id, sb_result *res)
{
    char doc[160];
    snprintf(doc, sizeof doc, "{\"id\":\"%s\",\"devices\":{\"softphone\":\"sip:%s@pbx\"}}", id, id);
    return sb_agent_put(e, "acme", doc, strlen(doc), res);
}

/* 1 and 2 for one mode: 40 writes one after another (after a tick that
** writes nothing, before anything was written). */
static void one_by_one(const char *name, sb_sync_mode mode, sb_result *res)
{
    sb_engine *e = open_mode(name, mode, res);
    int tick = e ? sb_tick(e, res) : -1;
    ok(tick == 0, "%s: a tick with nothing due, first on a new directory (%s)", name,
       tick ? sb_result_message(res) : "ok");
    if (!ok(e && sb_account_put(e, "{\"id\":\"acme\"}", 13, res) == 0, "%s: opened", name)) return;
    uint64_t m0, e0, s0, m1, e1, s1;
    counts(&m0, &e0, &s0);
    int failed = 0, lagging = 0;
    for (int i = 0; i < 40; i++) {
        char id[16];
        snprintf(id, sizeof id, "a%d", i);
        failed += put_agent(e, id, res) != 0;
        if (mode == SB_SYNC_DEFER && sb_sync(e)) failed++;
        lagging += !mine_durable();
    }
    counts(&m1, &e1, &s1);
    ok(failed == 0 && m1 - m0 >= 40, "%s: 40 writes, %llu meta page writes", name,
       (unsigned long long)(m1 - m0));
    ok(e1 == e0, "%s: none written while earlier pages were unsynced (%llu were)", name,
       (unsigned long long)(e1 - e0));
    ok(lagging == 0, "%s: every write on disk when it returned (%d were not)", name, lagging);
    diag("%s: %.1f syncs per write", name, (double)(s1 - s0) / 40);
    sb_close(e);
}

typedef struct writer {
    sb_engine *e;
    int id, failed, lagging;
} writer;

static void *write_main(void *arg)
{
    writer *w = arg;
    sb_result *r = sb_result_new();
    for (int i = 0; i < 50; i++) {
        char id[24];
        snprintf(id, sizeof id, "t%d-%d", w->id, i);
        w->failed += put_agent(w->e, id, r) != 0;
        w->lagging += !mine_durable();
    }
    sb_result_free(r);
    return NULL;
}

/* 2 with threads: eight writers on two engines of one environment. */
static void together(sb_result *res)
{
    sb_engine *e1 = open_mode("together", SB_SYNC_GROUP, res);
    sb_engine *e2 = open_mode("together", SB_SYNC_GROUP, res);
    if (!ok(e1 && e2 && sb_account_put(e1, "{\"id\":\"acme\"}", 13, res) == 0,
            "group: two engines on one directory"))
        return;
    uint64_t m0, e0, s0, m1, e1n, s1;
    counts(&m0, &e0, &s0);
    pthread_t th[8];
    writer w[8];
    for (int i = 0; i < 8; i++) {
        w[i] = (writer){.e = i % 2 ? e2 : e1, .id = i};
        pthread_create(&th[i], NULL, write_main, &w[i]);
    }
    int failed = 0, lagging = 0;
    for (int i = 0; i < 8; i++) {
        pthread_join(th[i], NULL);
        failed += w[i].failed;
        lagging += w[i].lagging;
    }
    counts(&m1, &e1n, &s1);
    ok(failed == 0, "group: eight threads wrote 400 agents (%d failed)", failed);
    ok(e1n == e0 && lagging == 0,
       "group: no meta page ahead of its pages (%llu), every write on disk when it returned "
       "(%d were not)",
       (unsigned long long)(e1n - e0), lagging);
    diag("group, eight threads: %.2f syncs per write", (double)(s1 - s0) / 400);
    sb_close(e1);
    sb_close(e2);
}

/* 3 and 4, defer: the daemon's mode. */
static void deferred(sb_result *res)
{
    sb_engine *e = open_mode("defer", SB_SYNC_DEFER, res);
    if (!ok(e && sb_account_put(e, "{\"id\":\"acme\"}", 13, res) == 0, "defer: opened")) return;
    uint64_t m, x, s0, s1, s2;
    ok(put_agent(e, "d1", res) == 0 && put_agent(e, "d2", res) == 0 && sb_sync(e) == 0 &&
           mine_durable(),
       "defer: two writes, then sb_sync: on disk");
    counts(&m, &x, &s0);
    ok(sb_sync(e) == 0, "defer: sb_sync again");
    counts(&m, &x, &s1);
    is_int((int)(s1 - s0), 0, "defer: ... does not sync again when nothing was committed since");

    ok(put_agent(e, "d3", res) == 0, "defer: a write committed, not yet synced");
    fail_next(0, 1);
    int rc = put_agent(e, "d4", res);
    ok(rc == SB_ESTORE, "defer: a write whose commit's sync fails reports SB_ESTORE (%s)",
       sb_result_message(res));
    ok(sb_agent_get(e, "acme", "d4", res) == SB_ENOTFOUND, "defer: ... and is not there");
    rc = sb_sync(e);
    ok(rc == SB_ESTORE,
       "defer: the next sb_sync reports that the write before it may not be on "
       "disk (%s)",
       sb_strerror(rc));
    counts(&m, &x, &s1);
    ok(sb_sync(e) == SB_ESTORE,
       "defer: ... and so does the one after: no sync writes again the page the failed one "
       "dropped");
    counts(&m, &x, &s2);
    (void)s2;
    ok(put_agent(e, "d5", res) == 0 && sb_sync(e) == 0 && mine_durable() &&
           sb_agent_get(e, "acme", "d3", res) == 0,
       "defer: a new write and its sync put everything on disk again, the earlier write too");
    sb_close(e);
}

/* 4, group: the sync after the commit fails. */
static void group_failure(sb_result *res)
{
    sb_engine *e = open_mode("gfail", SB_SYNC_GROUP, res);
    if (!ok(e && sb_account_put(e, "{\"id\":\"acme\"}", 13, res) == 0, "group: opened")) return;
    fail_next(1, 1); /* the commit's own sync works; the one for its meta page fails */
    int rc = put_agent(e, "g1", res);
    ok(rc == SB_ESTORE, "group: a write committed whose sync then fails reports SB_ESTORE (%s)",
       sb_result_message(res));
    ok(sb_agent_get(e, "acme", "g1", res) == 0, "group: ... committed, it is there");
    ok(put_agent(e, "g2", res) == 0 && mine_durable(), "group: the next write works, on disk");
    sb_close(e);
}

/* 4, group, for an event: committed, its sync failing, it stands, and res
** keeps its actions for the caller to apply (switchboard.h, sb_submit). */
static void group_failure_event(sb_result *res)
{
    sb_engine *e = open_mode("gfailev", SB_SYNC_GROUP, res);
    static const char pol[] = "return { route = function(call, agents) "
                              "return { ring = agents[1].id } end }\n";
    static const char agent[] =
        "{\"id\":\"g1\",\"status\":\"available\",\"devices\":{\"softphone\":\"sip:g1@pbx\"}}";
    static const char queue[] =
        "{\"id\":\"q\",\"policy\":\"first\",\"members\":[{\"agent\":\"g1\"}]}";
    if (!ok(e && sb_account_put(e, "{\"id\":\"acme\"}", 13, res) == 0 &&
                sb_policy_put(e, "acme", "first", pol, strlen(pol), NULL, res) == 0 &&
                sb_agent_put(e, "acme", agent, strlen(agent), res) == 0 &&
                sb_queue_put(e, "acme", queue, strlen(queue), res) == 0,
            "group: an account with an agent and a queue (%s)", sb_result_message(res))) {
        sb_close(e);
        return;
    }
    fail_next(1, 1); /* the commit's own sync works; the one for its meta page fails */
    static const char offer[] = "{\"type\":\"offer\",\"call\":\"c1\",\"queue\":\"q\"}";
    int rc = sb_submit_json(e, "acme", offer, strlen(offer), res);
    const sb_action *a = sb_result_count(res) == 1 ? sb_result_action(res, 0) : NULL;
    ok(rc == SB_ESTORE && a && a->type == SB_ACT_RING && !strcmp(a->agent_id, "g1"),
       "group: an offer committed whose sync then fails reports SB_ESTORE (%s) and keeps its ring "
       "action (%zu actions)",
       sb_result_message(res), sb_result_count(res));
    ok(sb_call_get(e, "acme", "c1", res) == 0 && strstr(sb_result_json(res, NULL), "\"ringing\""),
       "group: ... and the call is there, ringing g1, as the action says");
    sb_close(e);
}

/* 2 with two processes: each write on disk when it returns, also when
** the other process's commit is what made it so (the engine sees that by
** the transaction id; the check sees the other's syncs through S). */
static int procs_writes(sb_engine *e, const char *who, int *lagging)
{
    sb_result *r = sb_result_new();
    int failed = 0;
    for (int i = 0; i < 100; i++) {
        char id[24];
        snprintf(id, sizeof id, "%s-%d", who, i);
        failed += put_agent(e, id, r) != 0;
        *lagging += !mine_durable();
    }
    sb_result_free(r);
    return failed;
}

/* The other process: writes when asked (S->go) until S->quit. */
static void other_process(void)
{
    sb_result *r = sb_result_new();
    sb_engine *c = open_mode("procs", SB_SYNC_GROUP, r);
    for (int i = 0; c && !get_int(&S->quit); i++) {
        if (!get_int(&S->go)) {
            usleep(500);
            continue;
        }
        char id[24];
        snprintf(id, sizeof id, "asked-%d", i);
        if (put_agent(c, id, r) == 0) {
            pthread_mutex_lock(&S->mu);
            S->other_commits++;
            S->go = 0;
            pthread_mutex_unlock(&S->mu);
        }
    }
    sb_close(c);
    sb_result_free(r);
    _exit(0);
}

/* A write whose meta page another process's commit put on disk: it needs
** no sync beyond its commit's own. */
static void covered_by_other(sb_result *res)
{
    pid_t pid = fork();
    if (pid == 0) other_process();
    sb_engine *e = open_mode("procs", SB_SYNC_GROUP, res);
    uint64_t before = get_u64(&own_syncs);
    set_int(&S->hold, (int)getpid());
    int rc = e ? put_agent(e, "covered", res) : -1;
    uint64_t mine = get_u64(&own_syncs) - before;
    int durable = mine_durable();
    uint64_t other = get_u64(&S->other_commits);
    set_int(&S->quit, 1);
    waitpid(pid, NULL, 0);
    ok(rc == 0 && other == 1 && durable,
       "group: a write the other process committed after returns on disk (%s; %llu commits by "
       "the other)",
       durable ? "on disk" : "not on disk", (unsigned long long)other);
    is_int((int)mine, 1, "... with its commit's own sync only: the other's covered it");
    sb_close(e);
}

static void two_processes(sb_result *res)
{
    sb_engine *e = open_mode("procs", SB_SYNC_GROUP, res);
    if (!ok(e && sb_account_put(e, "{\"id\":\"acme\"}", 13, res) == 0, "group: two processes"))
        return;
    sb_close(e);
    uint64_t m0, e0, s0, m1, e1, s1;
    counts(&m0, &e0, &s0);
    pid_t pid = fork();
    if (pid == 0) {
        sb_result *r = sb_result_new();
        sb_engine *c = open_mode("procs", SB_SYNC_GROUP, r);
        int lagging = 0, failed = c ? procs_writes(c, "child", &lagging) : 100;
        sb_close(c);
        sb_result_free(r);
        _exit(failed || lagging ? 1 : 0);
    }
    e = open_mode("procs", SB_SYNC_GROUP, res);
    int lagging = 0, failed = e ? procs_writes(e, "parent", &lagging) : 100, status = -1;
    waitpid(pid, &status, 0);
    counts(&m1, &e1, &s1);
    ok(failed == 0 && lagging == 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0,
       "group, two processes writing at once: every write worked and was on disk when it "
       "returned (this one: %d failed, %d not on disk; the other exited %d)",
       failed, lagging, WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    ok(e1 == e0, "group, two processes: no meta page ahead of its pages (%llu)",
       (unsigned long long)(e1 - e0));
    diag("group, two processes: %.2f syncs per write", (double)(s1 - s0) / 200);
    sb_close(e);
}

/* 6. Two commits that the engine notes in the other order: the later
** one's writer must not wait for ever for a commit it takes to be under
** way. A commits first but is noted 300 ms late; B, committed meanwhile,
** reaches its wait after A's note. */
static sb_engine *order_eng;
static volatile int order_done[2];

static void *order_writer(void *arg)
{
    int i = (int)(intptr_t)arg;
    if (i) usleep(100 * 1000);
    sb_result *r = sb_result_new();
    order_done[i] = put_agent(order_eng, i ? "late-b" : "late-a", r) == 0 ? 1 : 2;
    sb_result_free(r);
    return NULL;
}

static void noted_out_of_order(sb_result *res)
{
    order_eng = open_mode("order", SB_SYNC_GROUP, res);
    if (!ok(order_eng && sb_account_put(order_eng, "{\"id\":\"acme\"}", 13, res) == 0,
            "group: opened for commits noted out of order"))
        return;
    commits_seen = 0;
    unlock_pause_ms = 600;
    commit_pause_ms = 300;
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&th[i], NULL, order_writer, (void *)(intptr_t)i);
    for (int i = 0; i < 50 && !(order_done[0] && order_done[1]); i++)
        usleep(100 * 1000);
    int stuck = !order_done[1];
    commit_pause_ms = 0;
    if (stuck) put_agent(order_eng, "unstick", res); /* a later commit wakes it */
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    ok(!stuck && order_done[0] == 1 && order_done[1] == 1,
       "group: the writer whose commit was noted before an earlier one's returned, on disk, "
       "without waiting for another commit");
    sb_close(order_eng);
}

/* 7. A batch part of which another write of the thread committed, the
** rest nothing: sb_batch_end still syncs for what was committed. */
static void batch_settled(sb_result *res)
{
    sb_engine *e = open_mode("settled", SB_SYNC_GROUP, res);
    const char *ev = "{\"type\":\"agent_status\",\"agent\":\"s1\",\"status\":\"paused\"}";
    if (!ok(e && sb_account_put(e, "{\"id\":\"acme\"}", 13, res) == 0 &&
                put_agent(e, "s1", res) == 0,
            "group: opened for a batch"))
        return;
    int rc = sb_batch_begin(e);
    if (!rc) rc = sb_submit_json(e, "acme", ev, strlen(ev), res);
    char doc[128];
    snprintf(doc, sizeof doc, "{\"id\":\"x\",\"devices\":{\"softphone\":\"sip:x@pbx\"}}");
    /* Commits the batch first, then fails: no such account. */
    int other = sb_agent_put(e, "nobody", doc, strlen(doc), res);
    int end = sb_batch_end(e, res);
    ok(rc == 0 && other == SB_ENOTFOUND && end == 0 && mine_durable(),
       "group: a batch committed by another write of the thread, which then failed: on disk when "
       "sb_batch_end returns");
    sb_close(e);
}

/* 8. After an sb_sync whose own sync fails, sb_sync fails until a new
** write's meta page is synced (only that puts the lost one's tree on disk). */
static void failed_once(sb_result *res)
{
    sb_engine *e = open_mode("once", SB_SYNC_DEFER, res);
    if (!ok(e && sb_account_put(e, "{\"id\":\"acme\"}", 13, res) == 0 &&
                put_agent(e, "o1", res) == 0,
            "defer: opened, a write committed"))
        return;
    fail_next(0, 1);
    int r1 = sb_sync(e), r2 = sb_sync(e);
    ok(r1 == SB_ESTORE && r2 == SB_ESTORE && !mine_durable(),
       "defer: after a failing sb_sync the write may be lost, and sb_sync says so until "
       "another write (%d, %d)",
       r1, r2);
    int r3 = put_agent(e, "o2", res) == 0 ? sb_sync(e) : -1;
    ok(r3 == 0 && mine_durable(), "defer: ... which puts it on disk again (%d)", r3);
    sb_close(e);
}

/* 9. sb_sync_progress: a commit's own sync makes the commits before it
** durable, and says so; a failed one does not, until a later meta page is
** synced. Where a sync=none engine opened the directory: SB_ESTATE. */
static int disk_has(uint64_t meta)
{
    pthread_mutex_lock(&S->mu);
    int on = meta && S->disk_meta >= meta;
    pthread_mutex_unlock(&S->mu);
    return on;
}

static void progress(sb_result *res)
{
    sb_engine *e = open_mode("progress", SB_SYNC_DEFER, res);
    if (!ok(e && sb_account_put(e, "{\"id\":\"acme\"}", 13, res) == 0 && sb_sync(e) == 0,
            "progress: opened, synced"))
        return;
    uint64_t w0 = 0, d0 = 0, w1 = 0, d1 = 0, w2 = 0, d2 = 0, w3 = 0, d3 = 0, w4 = 0, d4 = 0;
    int rc = sb_sync_progress(e, &w0, &d0);
    ok(rc == 0 && w0 > 0 && d0 >= w0, "progress: after sb_sync, durable %llu reaches written %llu",
       (unsigned long long)d0, (unsigned long long)w0);
    rc = put_agent(e, "p1", res) || sb_sync_progress(e, &w1, &d1);
    uint64_t meta1 = last_meta;
    ok(rc == 0 && w1 > w0 && d1 < w1 && !mine_durable(),
       "progress: a commit: written %llu, durable %llu, and it is not on disk",
       (unsigned long long)w1, (unsigned long long)d1);
    rc = put_agent(e, "p2", res) || sb_sync_progress(e, &w2, &d2);
    ok(rc == 0 && w2 > w1 && d2 >= w1 && d2 < w2 && disk_has(meta1) && !mine_durable(),
       "progress: the next commit's own sync put the one before on disk, and says so "
       "(written %llu, durable %llu)",
       (unsigned long long)w2, (unsigned long long)d2);
    fail_next(0, 1);
    rc = put_agent(e, "p3", res);
    int rc2 = sb_sync_progress(e, &w3, &d3);
    ok(rc == SB_ESTORE && rc2 == 0 && w3 == w2 && d3 < w2,
       "progress: a commit whose sync fails: not written, and the one before it not durable "
       "(written %llu, durable %llu)",
       (unsigned long long)w3, (unsigned long long)d3);
    rc = put_agent(e, "p4", res) || sb_sync_progress(e, &w4, &d4);
    ok(rc == 0 && w4 > w3 && d4 < w2,
       "progress: ... nor after the next commit, whose sync cannot bring back the page the "
       "failed one may have dropped (written %llu, durable %llu)",
       (unsigned long long)w4, (unsigned long long)d4);
    uint64_t meta4 = last_meta, w5 = 0, d5 = 0;
    rc = put_agent(e, "p5", res) || sb_sync_progress(e, &w5, &d5);
    ok(rc == 0 && w5 > w4 && d5 >= w4 && d5 < w5 && disk_has(meta4),
       "progress: a commit after that one: its own sync puts the meta page before it on disk, "
       "and with it every earlier commit (written %llu, durable %llu)",
       (unsigned long long)w5, (unsigned long long)d5);
    rc = sb_sync(e) || sb_sync_progress(e, &w4, &d4);
    ok(rc == 0 && d4 >= w4 && w4 == w5 && mine_durable(),
       "progress: sb_sync: durable %llu reaches written %llu", (unsigned long long)d4,
       (unsigned long long)w4);
    ok(sb_sync_progress(e, NULL, NULL) == 0 && sb_sync_progress(NULL, &w4, &d4) == SB_EINVAL,
       "progress: NULL pointers are fine; a NULL engine is SB_EINVAL");
    sb_close(e);
    sb_engine *none = open_mode("unordered", SB_SYNC_NONE, res);
    sb_engine *def = none ? open_mode("unordered", SB_SYNC_DEFER, res) : NULL;
    uint64_t w = 1, d = 1;
    rc = def ? sb_account_put(def, "{\"id\":\"acme\"}", 13, res) : -1;
    rc2 = rc == 0 ? sb_sync_progress(def, &w, &d) : -1;
    ok(rc2 == SB_ESTATE && d == 0,
       "progress: where a sync=none engine opened the directory first: SB_ESTATE, durable 0");
    sb_close(def);
    sb_close(none);
}

/* 10. A commit that fails takes no transaction id, and another engine on
** the directory may then commit with that very id: the first engine's next
** transaction looks like the one after its own last commit, and must not
** trust the records it kept from the failed one (its record cache). */
static void cache_after_failed_commit(sb_result *res)
{
    sb_engine *e1 = open_mode("vcfail", SB_SYNC_GROUP, res);
    sb_engine *e2 = e1 ? open_mode("vcfail", SB_SYNC_GROUP, res) : NULL;
    const char *src = "local P = {}\nfunction P.route(c, a, ctx)\n"
                      "  if #a > 0 then return { ring = a[1].id } end\n"
                      "  return { wait = 1 }\nend\nreturn P\n";
    if (!ok(e2 && sb_account_put(e1, "{\"id\":\"acme\"}", 13, res) == 0 &&
                sb_policy_put(e1, "acme", "first", src, strlen(src), NULL, res) == 0 &&
                put_agent(e1, "alice", res) == 0 &&
                test_put(
                    e1, res, sb_queue_put, "acme",
                    "{\"id\":\"q\",\"policy\":\"first\",\"members\":[{\"agent\":\"alice\"}]}") ==
                    0 &&
                test_event(e1, res, "acme",
                           "{\"type\":\"agent_status\",\"agent\":\"alice\",\"status\":"
                           "\"available\"}") == 0,
            "cache: two engines on one directory, alice available in q")) {
        sb_close(e2);
        sb_close(e1);
        return;
    }
    ok(test_event(
           e1, res, "acme",
           "{\"type\":\"offer\",\"call\":\"c0\",\"queue\":\"q\",\"caller\":\"+442079460001\"}") ==
               0 &&
           test_action_count(res, SB_ACT_RING) == 1 &&
           test_event(e1, res, "acme", "{\"type\":\"abandon\",\"call\":\"c0\"}") == 0,
       "cache: e1 offers c0 (alice rings) and it is abandoned: its records kept");
    fail_next(0, 1);
    int rc = test_event(e1, res, "acme",
                        "{\"type\":\"offer\",\"call\":\"c1\",\"queue\":\"q\",\"caller\":"
                        "\"+442079460002\"}");
    ok(rc == SB_ESTORE, "cache: e1's offer of c1, ringing alice, fails at its commit (%s)",
       sb_strerror(rc));
    rc = test_event(e2, res, "acme",
                    "{\"type\":\"offer\",\"call\":\"c2\",\"queue\":\"q\",\"caller\":"
                    "\"+442079460003\"}");
    ok(rc == 0 && test_action_count(res, SB_ACT_RING) == 1,
       "cache: e2 offers c2, committed with the id e1's failed commit left, and alice rings");
    rc = test_event(e1, res, "acme",
                    "{\"type\":\"ring_result\",\"call\":\"c1\",\"agent\":\"alice\",\"outcome\":"
                    "\"answered\"}");
    ok(rc == SB_ENOTFOUND,
       "cache: e1 then refuses an answer for c1, which was never stored (%s: %s)", sb_strerror(rc),
       rc ? sb_result_message(res) : "accepted");
    ok(sb_call_get(e2, "acme", "c1", res) == SB_ENOTFOUND, "cache: ... and c1 is not there");
    sb_close(e2);
    sb_close(e1);
}

int main(void)
{
    if (!mkdtemp(dir)) return 1;
    S = mmap(NULL, sizeof *S, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (S == MAP_FAILED) return 1;
    pthread_mutexattr_t ma;
    pthread_mutexattr_init(&ma);
    pthread_mutexattr_setpshared(&ma, PTHREAD_PROCESS_SHARED);
    pthread_mutex_init(&S->mu, &ma);
    sb_result *res = sb_result_new();
    one_by_one("group", SB_SYNC_GROUP, res);
    one_by_one("sync", SB_SYNC_SYNC, res);
    one_by_one("defer", SB_SYNC_DEFER, res);
    together(res);
    two_processes(res);
    covered_by_other(res);
    deferred(res);
    group_failure(res);
    group_failure_event(res);
    noted_out_of_order(res);
    batch_settled(res);
    failed_once(res);
    progress(res);
    cache_after_failed_commit(res);
    ok(own_max_inflight == 1,
       "one sync of the data file at a time in this process, commits' own "
       "included (%d at most)",
       own_max_inflight);
    sb_result_free(res);
    rmtree(dir);
    return done_testing();
}
