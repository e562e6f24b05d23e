/*
** test_stopsig.c — sb_defer_stop_signals: with it on, a write transaction
** runs with SIGTSTP, SIGTTIN and SIGTTOU blocked, so that a stop (Ctrl-Z)
** sent while one is open takes effect only once it has ended; a process
** stopped inside one would hold the data directory's one writer, and every
** other process's writes (a daemon's) would wait until it was continued.
**
** The engine reads its clock inside each write transaction, so the test's
** clock looks at the thread's signal mask there, and raises SIGTSTP (with
** a handler in place of the stop) from inside one: the handler must run
** after the call that wrote has returned, not inside it. With the setting
** off, nothing is blocked; a mask the program had is put back as it was;
** a batch holds the signals from its first event to its end; a write that
** fails puts the mask back too; reads leave it alone.
*/
#include "switchboard.h"
#include "tap.h"
#include "testkit.h"

#include <signal.h>
#include <string.h>

static char dir[128];
static sb_result *res;

static volatile sig_atomic_t stops;    /* SIGTSTPs handled */
static int seen_blocked, raise_in_txn; /* what the clock saw */
static int stops_at_raise = -1;        /* stops handled right after the raise */

static void on_tstp(int sig)
{
    (void)sig;
    stops++;
}

static int blocked(int sig)
{
    sigset_t cur;
    pthread_sigmask(SIG_BLOCK, NULL, &cur);
    return sigismember(&cur, sig) == 1;
}

static int64_t probe_clock(void *arg)
{
    (void)arg;
    if (blocked(SIGTSTP) && blocked(SIGTTIN) && blocked(SIGTTOU)) {
        seen_blocked = 1;
        if (raise_in_txn) {
            raise_in_txn = 0;
            raise(SIGTSTP);
            stops_at_raise = stops;
        }
    }
    return now_ms;
}

static void reset_probe(void)
{
    seen_blocked = 0;
    stops = 0;
    stops_at_raise = -1;
}

static void put_agent(sb_engine *e, const char *id)
{
    char json[128];
    snprintf(json, sizeof json,
             "{\"id\":\"%s\",\"status\":\"available\",\"devices\":{\"softphone\":\"sip:%s@pbx\"}}",
             id, id);
    test_put(e, res, sb_agent_put, "acme", json);
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/sb-test-stopsig-%d", (int)getpid());
    rmtree(dir);
    res = sb_result_new();
    sb_config cfg;
    test_engine_config(&cfg, dir, NULL, 4 << 20);
    cfg.clock = probe_clock;
    sb_engine *e = test_open(&cfg, res);
    ok(e != NULL, "engine open on %s", dir);
    if (!e) return done_testing();
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_tstp;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTSTP, &sa, NULL);
    ok(sb_account_put(e, "{\"id\":\"acme\"}", 13, res) == 0, "an account");

    /* Off (the default): masks left alone. */
    reset_probe();
    put_agent(e, "a1");
    ok(!seen_blocked, "off: a write transaction leaves the signal mask alone");

    /* On: the stop waits for the transaction's end. */
    sb_defer_stop_signals(1);
    reset_probe();
    raise_in_txn = 1;
    put_agent(e, "a2");
    ok(seen_blocked, "on: inside a write transaction SIGTSTP, SIGTTIN and SIGTTOU are blocked");
    is_int(stops_at_raise, 0, "... a SIGTSTP raised there is not taken inside it");
    is_int((int)stops, 1,
           "... it is taken once the transaction has ended, before the call returns");
    ok(!blocked(SIGTSTP) && !blocked(SIGTTIN) && !blocked(SIGTTOU),
       "... and the mask is as it was after the call");

    /* A mask of the program's own is put back as it was. */
    sigset_t ttin, old;
    sigemptyset(&ttin);
    sigaddset(&ttin, SIGTTIN);
    pthread_sigmask(SIG_BLOCK, &ttin, &old);
    reset_probe();
    put_agent(e, "a3");
    ok(seen_blocked && blocked(SIGTTIN) && !blocked(SIGTSTP),
       "a signal the program blocked itself stays blocked after a write, the others not");
    pthread_sigmask(SIG_SETMASK, &old, NULL);

    /* A write that fails (the account has no such queue) puts it back too. */
    reset_probe();
    int rc = test_event(
        e, res, "acme",
        "{\"type\":\"offer\",\"call\":\"c1\",\"queue\":\"nope\",\"caller\":\"+4930100001\"}");
    ok(rc != 0 && !blocked(SIGTSTP), "a refused event leaves the mask as it was (%s)",
       sb_strerror(rc));

    /* Reads leave it alone. */
    reset_probe();
    ok(sb_agent_get(e, "acme", "a1", res) == 0 && !seen_blocked && !blocked(SIGTSTP),
       "a read runs with the mask as it is");

    /* A batch: held from its first event to its end. */
    test_put(e, res, sb_queue_put, "acme", "{\"id\":\"q\",\"members\":[{\"agent\":\"a1\"}]}");
    ok(sb_batch_begin(e) == 0, "a batch begins");
    reset_probe();
    raise_in_txn = 1;
    ok(test_event(
           e, res, "acme",
           "{\"type\":\"offer\",\"call\":\"b1\",\"queue\":\"q\",\"caller\":\"+4930100001\"}") ==
               0 &&
           blocked(SIGTSTP),
       "... after its first event returns, its transaction still open, SIGTSTP is blocked");
    is_int((int)stops, 0, "... and a SIGTSTP raised in it has not been taken");
    test_event(e, res, "acme",
               "{\"type\":\"offer\",\"call\":\"b2\",\"queue\":\"q\",\"caller\":\"+4930100002\"}");
    ok(sb_batch_end(e, res) == 0, "... the batch ends (committed)");
    is_int((int)stops, 1, "... and the stop is taken then");
    ok(!blocked(SIGTSTP), "... with the mask as it was");

    /* Off again. */
    sb_defer_stop_signals(0);
    reset_probe();
    put_agent(e, "a4");
    ok(!seen_blocked, "switched off: write transactions leave the mask alone again");

    sb_close(e);
    sb_result_free(res);
    rmtree(dir);
    return done_testing();
}
