/*
** test_batch.c — batches (sb_batch_begin/sb_batch_end): a thread's events
** in one write transaction, committed at the end. Events give their results
** at once and read each other's changes; another engine sees none of them
** until the end; an event that fails changes nothing, also when it had
** written before failing (its writes are undone: puts, deletes, deletes
** through an iterator), and the batch goes on; a write that is not an event
** commits the batch first; another thread can neither join nor end it;
** the owner's write through another engine of the directory is refused;
** sb_close commits a batch left open. And st_put_last (timers appended):
** a key that does not sort last is put all the same, also by an event of a
** batch that fails and is undone. And sb_result_changed: an event that
** finds the state as it asks changes nothing, in a batch too.
*/
#include "switchboard.h"
#include "tap.h"
#include "testkit.h"

#include "engine.h"

#include <jansson.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "callkit.h"

static sb_engine *other; /* a second engine on the same directory */

static const char *queue_q = "{\"id\":\"q\",\"members\":[{\"agent\":\"a\"},{\"agent\":\"b\"}]}";

/* Does the other engine, from a thread of its own, see call id? */
typedef struct seen_arg {
    const char *acct, *call;
    int rc;
} seen_arg;

static void *seen_main(void *p)
{
    seen_arg *a = p;
    sb_result *r = sb_result_new();
    a->rc = sb_call_get(other, a->acct, a->call, r);
    sb_result_free(r);
    return NULL;
}

static int seen_elsewhere(const char *acct, const char *call)
{
    seen_arg a = {acct, call, -1};
    pthread_t th;
    pthread_create(&th, NULL, seen_main, &a);
    pthread_join(th, NULL);
    return a.rc == 0;
}

static void test_events_in_a_batch(void)
{
    ok(account("b1") == 0 && put(sb_queue_put, "b1", queue_q) == 0, "b1: agents a, b in queue q");
    ok(sb_batch_begin(eng) == 0, "a batch begins");
    ok(sb_batch_begin(eng) == 0, "... and beginning it again is fine");
    ok(offer("b1", "c1", "q") == 0 && find(SB_ACT_RING, "c1", "a"), "c1 rings a");
    ok(ring_result("b1", "c1", "a", "answered") == 0 && find(SB_ACT_CONNECT, "c1", "a"),
       "a answers c1: its result comes at once");
    ok(offer("b1", "c2", "q") == 0 && find(SB_ACT_RING, "c2", "b"),
       "c2 rings b: the event saw a taken by the batch's earlier event");
    is_str(call_state("b1", "c1"), "connected", "the batch's thread reads its events");
    ok(!seen_elsewhere("b1", "c1"), "another engine does not see c1 before the end");
    int rc = ring_result("b1", "nope", "a", "answered");
    ok(rc == SB_ENOTFOUND, "an event that fails in the batch says why (%s)",
       sb_result_message(res));
    ok(offer("b1", "c3", "q") == 0 && find(SB_ACT_WAIT, "c3", NULL),
       "the batch goes on after it: c3 waits");
    rc = sb_batch_end(eng, res);
    ok(rc == 0, "the batch ends: committed (%s)", rc ? sb_result_message(res) : "ok");
    ok(seen_elsewhere("b1", "c1") && seen_elsewhere("b1", "c3"),
       "another engine sees the batch's calls now");
    is_str(call_state("b1", "c2"), "ringing", "c2 is ringing b");
    ok(sb_batch_end(eng, res) == 0, "ending with no batch open does nothing");
    evf("b1", "{\"type\":\"abandon\",\"call\":\"c2\"}");
    evf("b1", "{\"type\":\"abandon\",\"call\":\"c3\"}");
    evf("b1", "{\"type\":\"hangup\",\"call\":\"c1\"}");
}

/* Write functions that stand for events, through the engine's own store
** calls, to fail after writing. */
/* A key of table and what it holds ("" when absent). */
static int table_get(int table, const char *key, char *out, size_t cap)
{
    MDB_txn *txn;
    MDB_val v;
    out[0] = 0;
    if (eng_read_begin(eng, &txn)) return -1;
    int rc = st_get(txn, eng, table, key, strlen(key), &v);
    if (rc == 0) snprintf(out, cap, "%.*s", (int)v.mv_size, (const char *)v.mv_data);
    eng_read_end(eng, txn);
    return rc;
}

static int meta_get(const char *key, char *out, size_t cap)
{
    return table_get(DB_META, key, out, cap);
}

static int put_kv(wtx *t, const char *k, const char *v)
{
    return st_put(t->txn, t->e, DB_META, k, strlen(k), v, strlen(v));
}

static int w_setup(wtx *t, void *arg)
{
    (void)arg;
    int rc = put_kv(t, "bt-keep", "before");
    if (!rc) rc = put_kv(t, "bt-gone", "there");
    if (!rc) rc = put_kv(t, "bt-it-1", "one");
    if (!rc) rc = put_kv(t, "bt-it-2", "two");
    return rc;
}

/* Overwrites, adds, deletes by key and through an iterator, then fails. */
static int w_fails(wtx *t, void *arg)
{
    int rc = put_kv(t, "bt-keep", "changed");
    if (!rc) rc = put_kv(t, "bt-new", "added");
    if (!rc) rc = st_del(t->txn, t->e, DB_META, "bt-gone", 7);
    st_iter it;
    int r;
    for (r = st_iter_open(&it, t->txn, t->e, DB_META, "bt-it-", 6); r == 0 && !rc;
         r = st_iter_del(&it))
        ;
    st_iter_close(&it);
    if (!rc && r != MDB_NOTFOUND) rc = r;
    if (!rc) rc = put_kv(t, "bt-keep", "changed twice");
    return rc ? rc : *(int *)arg;
}

static int w_after(wtx *t, void *arg)
{
    (void)arg;
    return put_kv(t, "bt-after", "yes");
}

static void test_failed_event_undone(void)
{
    sb_result *r = sb_result_new();
    char v[64];
    ok(eng_write(eng, w_setup, NULL, r) == 0, "undo: keys written outside any batch");
    ok(sb_batch_begin(eng) == 0, "undo: a batch begins");
    int why = SB_EINVAL;
    ok(eng_write_event(eng, w_fails, &why, r, 0) == SB_EINVAL,
       "undo: an event overwrites, adds, deletes (also through an iterator), then fails");
    ok(eng_write_event(eng, w_after, NULL, r, 0) == 0, "undo: the next event of the batch runs");
    ok(sb_batch_end(eng, r) == 0, "undo: the batch is committed");
    ok(meta_get("bt-keep", v, sizeof v) == 0 && !strcmp(v, "before"),
       "undo: the overwritten key holds its value from before (%s)", v);
    ok(meta_get("bt-new", v, sizeof v) == MDB_NOTFOUND, "undo: the added key is not there");
    ok(meta_get("bt-gone", v, sizeof v) == 0 && !strcmp(v, "there"),
       "undo: the deleted key is back");
    char v2[64];
    ok(meta_get("bt-it-1", v, sizeof v) == 0 && !strcmp(v, "one") &&
           meta_get("bt-it-2", v2, sizeof v2) == 0 && !strcmp(v2, "two"),
       "undo: the keys the iterator deleted are back");
    ok(meta_get("bt-after", v, sizeof v) == 0 && !strcmp(v, "yes"),
       "undo: the later event is stored");
    sb_result_free(r);
}

/* sb_result_changed: did the call commit a change? An event that finds
** the state as it asks (a status the agent has) did not, also in a batch
** whose events before it did; one that failed did not, though it wrote
** before failing (undone); a read after a change says no more of it. */
static void test_changed(void)
{
    ok(account("b3") == 0 && sb_result_changed(res), "changed: an account made changed something");
    ok(status("b3", "a", "paused") == 0 && sb_result_changed(res), "changed: a paused");
    ok(status("b3", "a", "paused") == 0 && !sb_result_changed(res),
       "changed: a paused again, nothing to do: no change");
    ok(status("b3", "a", "available") == 0 && sb_result_changed(res), "changed: a available again");
    ok(sb_agent_get(eng, "b3", "a", res) == 0 && !sb_result_changed(res),
       "changed: a read after it changed nothing");
    ok(status("b3", "nobody", "paused") == SB_ENOTFOUND && !sb_result_changed(res),
       "changed: an event refused changed nothing");
    ok(sb_batch_begin(eng) == 0, "changed: a batch begins");
    ok(status("b3", "b", "paused") == 0 && sb_result_changed(res),
       "changed: in it, b paused: a change the batch commits");
    ok(status("b3", "b", "paused") == 0 && !sb_result_changed(res),
       "changed: b paused again: no change of its own, though the event before it made one");
    sb_result *r = sb_result_new();
    int why = SB_EINVAL;
    ok(eng_write_event(eng, w_fails, &why, r, 0) == SB_EINVAL && !sb_result_changed(r),
       "changed: an event that wrote, then failed (undone): no change");
    ok(status("b3", "b", "paused") == 0 && !sb_result_changed(res),
       "changed: b paused once more, after the undone writes: no change");
    ok(status("b3", "b", "available") == 0 && sb_result_changed(res),
       "changed: b available: a change");
    ok(sb_batch_end(eng, r) == 0, "changed: the batch is committed");
    is_str(agent_status("b3", "b"), "available", "changed: b is available");
    ok(eng_write(eng, w_after, NULL, r) == 0 && sb_result_changed(r),
       "changed: a write outside a batch that wrote");
    ok(sb_result_changed(NULL) == 0, "changed: NULL: 0");
    sb_result_free(r);
}

static void *begin_main(void *p)
{
    int *rc = p;
    rc[0] = sb_batch_begin(eng);
    sb_result *r = sb_result_new();
    rc[1] = sb_batch_end(eng, r);
    sb_result_free(r);
    return NULL;
}

static void test_threads_and_other_writes(void)
{
    ok(account("b2") == 0 && put(sb_queue_put, "b2", queue_q) == 0, "b2: agents a, b in q");
    ok(sb_batch_begin(eng) == 0, "a batch begins");
    int rc[2] = {-1, -1};
    pthread_t th;
    pthread_create(&th, NULL, begin_main, rc);
    pthread_join(th, NULL);
    ok(rc[0] == SB_ESTATE && rc[1] == SB_ESTATE,
       "another thread can neither begin a batch nor end this one (%d, %d)", rc[0], rc[1]);
    ok(offer("b2", "d1", "q") == 0, "d1 offered in the batch");
    ok(!seen_elsewhere("b2", "d1"), "not seen elsewhere yet");
    ok(put(sb_agent_put, "b2", "{\"id\":\"z\",\"devices\":{\"softphone\":\"sip:z@x\"}}") == 0,
       "a put of an agent in the middle of the batch");
    ok(seen_elsewhere("b2", "d1"), "committed the batch's events first");
    ok(offer("b2", "d2", "q") == 0 && !seen_elsewhere("b2", "d2"),
       "the batch goes on in a new transaction");
    ok(sb_batch_end(eng, res) == 0 && seen_elsewhere("b2", "d2"), "and ends");
    evf("b2", "{\"type\":\"abandon\",\"call\":\"d1\"}");
    evf("b2", "{\"type\":\"abandon\",\"call\":\"d2\"}");

    /* The owner writing through another engine of the directory: refused
    ** at once (LMDB's one writer is this thread's batch), nothing written. */
    /* A write that waits for its own thread's batch hangs for ever: the
    ** alarm (its default action ends the process) makes that a failure. */
    alarm(30);
    ok(sb_batch_begin(eng) == 0 && offer("b2", "d4", "q") == 0, "a batch with d4");
    const char *d5 = "{\"type\":\"offer\",\"call\":\"d5\",\"queue\":\"q\"}";
    int orc = sb_submit_json(other, "b2", d5, strlen(d5), res);
    ok(orc == SB_ESTATE && strstr(sb_result_message(res), "batch open on another engine"),
       "an event through the other engine from the batch's thread: SB_ESTATE (%s)",
       sb_result_message(res));
    ok(sb_batch_end(eng, res) == 0 && seen_elsewhere("b2", "d4") && !seen_elsewhere("b2", "d5"),
       "the batch ends with d4; d5 was not offered");
    ok(sb_submit_json(other, "b2", d5, strlen(d5), res) == 0 && seen_elsewhere("b2", "d5"),
       "after the batch, the other engine writes from this thread");
    evf("b2", "{\"type\":\"abandon\",\"call\":\"d4\"}");
    evf("b2", "{\"type\":\"abandon\",\"call\":\"d5\"}");
    /* The same while this thread also has a batch open on an engine of
    ** another data directory, and after that one ends. */
    char dir2[300];
    snprintf(dir2, sizeof dir2, "%s-2", dir);
    rmtree(dir2);
    sb_config c2;
    test_engine_config(&c2, dir2, NULL, 8 << 20);
    sb_engine *third = test_open(&c2, res);
    ok(third && sb_account_put(third, "{\"id\":\"b2\"}", 11, res) == 0,
       "a third engine, on another data directory");
    ok(sb_batch_begin(eng) == 0 && offer("b2", "d6", "q") == 0 && third &&
           sb_batch_begin(third) == 0 && sb_agent_get(third, "b2", "nobody", res) == SB_ENOTFOUND,
       "batches open on this directory (d6) and on the other");
    const char *d7 = "{\"type\":\"offer\",\"call\":\"d7\",\"queue\":\"q\"}";
    ok(sb_submit_json(other, "b2", d7, strlen(d7), res) == SB_ESTATE,
       "an event through the other engine of this directory: SB_ESTATE (%s)",
       sb_result_message(res));
    ok(third && sb_batch_end(third, res) == 0 &&
           sb_submit_json(other, "b2", d7, strlen(d7), res) == SB_ESTATE,
       "still, once the other directory's batch ended (%s)", sb_result_message(res));
    ok(sb_batch_end(eng, res) == 0 && sb_submit_json(other, "b2", d7, strlen(d7), res) == 0,
       "and taken once this directory's batch ended");
    evf("b2", "{\"type\":\"abandon\",\"call\":\"d6\"}");
    evf("b2", "{\"type\":\"abandon\",\"call\":\"d7\"}");
    if (third) sb_close(third);
    rmtree(dir2);
    alarm(0);

    ok(sb_batch_begin(eng) == 0 && offer("b2", "d3", "q") == 0, "a batch left open with d3");
    sb_close(eng);
    eng = open_engine();
    ok(eng && call_state("b2", "d3") && !strcmp(call_state("b2", "d3"), "ringing"),
       "sb_close committed it: d3 rings after a reopen");
    evf("b2", "{\"type\":\"abandon\",\"call\":\"d3\"}");
    ok(sb_batch_end(NULL, res) == SB_EINVAL && sb_batch_begin(NULL) == SB_EINVAL,
       "no engine: SB_EINVAL");
}

/* The timers' tree: a key and what it holds ("" when absent). */
static int timer_get(const char *key, char *out, size_t cap)
{
    return table_get(DB_TIMERS, key, out, cap);
}

/* Keys led by byte 0xfe (\376) sort after any timer's (a due time's first byte). */
static int w_last(wtx *t, void *arg)
{
    const char *const *kv = arg;
    int rc = 0;
    for (; !rc && kv[0]; kv += 2)
        rc = st_put_last(t->txn, t->e, DB_TIMERS, kv[0], strlen(kv[0]), kv[1], strlen(kv[1]));
    return rc;
}

static int w_last_fails(wtx *t, void *arg)
{
    int rc = w_last(t, arg);
    return rc ? rc : SB_EINVAL;
}

static int w_last_clear(wtx *t, void *arg)
{
    (void)arg;
    st_iter it;
    int rc;
    for (rc = st_iter_open(&it, t->txn, t->e, DB_TIMERS, "\376", 1); rc == 0; rc = st_iter_del(&it))
        ;
    st_iter_close(&it);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

static void test_put_last(void)
{
    sb_result *r = sb_result_new();
    char v[64], w[64], x[64];
    const char *in_order[] = {"\376b", "1", "\376c", "2", NULL};
    const char *not_last[] = {"\376a", "3", "\376c", "4", "\376d", "5", NULL};
    ok(eng_write(eng, w_last, in_order, r) == 0 && timer_get("\376b", v, sizeof v) == 0 &&
           timer_get("\376c", w, sizeof w) == 0 && !strcmp(v, "1") && !strcmp(w, "2"),
       "put last: keys in order are appended (%s, %s)", v, w);
    ok(eng_write(eng, w_last, not_last, r) == 0 && timer_get("\376a", v, sizeof v) == 0 &&
           timer_get("\376c", w, sizeof w) == 0 && timer_get("\376d", x, sizeof x) == 0 &&
           !strcmp(v, "3") && !strcmp(w, "4") && !strcmp(x, "5"),
       "put last: a key before the last, and the last again, are put all the same (%s, %s, %s)", v,
       w, x);
    const char *undone[] = {"\3760", "6", "\376d", "7", "\376e", "8", NULL};
    ok(sb_batch_begin(eng) == 0 &&
           eng_write_event(eng, w_last_fails, (void *)undone, r, 0) == SB_EINVAL &&
           sb_batch_end(eng, r) == 0,
       "put last: an event of a batch puts three timers that way, then fails");
    ok(timer_get("\3760", v, sizeof v) == MDB_NOTFOUND && timer_get("\376d", w, sizeof w) == 0 &&
           !strcmp(w, "5") && timer_get("\376e", x, sizeof x) == MDB_NOTFOUND,
       "put last: its writes are undone (the key before gone, the last holds '%s' again, the "
       "new last gone)",
       w);
    ok(eng_write(eng, w_last_clear, NULL, r) == 0, "put last: the test's keys removed");
    sb_result_free(r);
}

/* Two threads beginning a batch at the same moment: one gets it, the other
** SB_ESTATE, every time (both got it, in about one round in twenty, before
** sb_batch_begin claimed it in one step). */
static pthread_barrier_t race_bar;
static int race_spin, race_got[2], race_rounds = 4000;

static void *race_thread(void *arg)
{
    long k = (long)arg;
    sb_result *r = sb_result_new();
    for (int i = 0; i < race_rounds; i++) {
        pthread_barrier_wait(&race_bar);
        __atomic_add_fetch(&race_spin, 1, __ATOMIC_SEQ_CST);
        while (__atomic_load_n(&race_spin, __ATOMIC_SEQ_CST) < 2 * (i + 1))
            ;
        int b = sb_batch_begin(eng);
        pthread_barrier_wait(&race_bar);
        if (b == 0) {
            race_got[k]++;
            (void)sb_batch_end(eng, r);
        }
        pthread_barrier_wait(&race_bar);
    }
    sb_result_free(r);
    return NULL;
}

static void test_begin_race(void)
{
    pthread_t t[2];
    pthread_barrier_init(&race_bar, NULL, 2);
    for (long k = 0; k < 2; k++)
        pthread_create(&t[k], NULL, race_thread, (void *)k);
    for (int k = 0; k < 2; k++)
        pthread_join(t[k], NULL);
    pthread_barrier_destroy(&race_bar);
    is_int(race_got[0] + race_got[1], race_rounds,
           "two threads beginning a batch at once, %d times: one batch each time (%d and %d)",
           race_rounds, race_got[0], race_got[1]);
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/sb-test-batch-%d", (int)getpid());
    rmtree(dir);
    res = sb_result_new();
    eng = open_engine();
    other = open_engine();
    ok(eng && other, "two engines on %s", dir);
    if (!eng || !other) return done_testing();
    test_events_in_a_batch();
    test_failed_event_undone();
    test_changed();
    test_threads_and_other_writes();
    test_put_last();
    test_begin_race();
    sb_close(other);
    sb_close(eng);
    sb_result_free(res);
    rmtree(dir);
    return done_testing();
}
