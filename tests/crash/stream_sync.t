#!/usr/bin/env python3
# The event stream while syncs fail. The daemon (sync = group) runs with the
# synctrace.so shim preloaded, which fails every Nth sync (EIO) once set-up is
# done: every 3rd, then every 4th (a hangup's batch then fails at its commit,
# or after it). Round after round, a hangup frees the queue's only agent and a waiting
# call rings her: that ring is an action for another call, so it goes to the
# event stream, not to the hangup's response. Whatever a sync's failure did to
# the hangup (answered 200, or 500 SB_ESTORE with the connection closed), the
# stream and the state must agree: the subscriber is told the waiting call
# rings exactly when reading the call back says it rings. A batch whose
# commit failed changed nothing and is not told; one whose commit stood but
# whose sync failed is in the state the daemon serves from (the next sync
# that succeeds writes it), and is told (API.md, "Durability").
import os, sys, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from synckit import SHIM, traced  # noqa: E402
from sbtest import TAP, Stream, provision  # noqa: E402

t = TAP(deadline=180)
t.ok(os.path.exists(SHIM), "the shim is built (%s)" % SHIM)


def run(every):
    d, _ = traced(t, every, fail_after=40)
    acme = provision(d, agents=("alice",))  # set-up's syncs come before the failures
    sub = Stream(d, acme.auth)
    t.is_(sub.status, 200, "1 sync in %d failing: a subscriber on the event stream" % every)

    def req(method, path, body=None):
        """A request on a fresh connection (a 500 SB_ESTORE closes its own)."""
        for _ in range(20):
            c = d.conn()
            try:
                return acme.req(method, path, body, conn=c)
            except OSError:
                time.sleep(0.05)
            finally:
                c.close()
        raise RuntimeError("%s %s: no answer" % (method, path))

    def call_state(cid):
        r = req("GET", "/v1/calls/" + cid)
        return r.json if r.status == 200 else {}

    def until(method, path, body, cid, want):
        """Send until reading cid back shows state want (a 500 SB_ESTORE says
        the change may not have been made: read the state back before trying
        again)."""
        for _ in range(10):
            r = req(method, path, body)
            if call_state(cid).get("state") == want:
                return r
        raise RuntimeError("%s %s: call %s never reached %s" % (method, path, cid, want))

    rounds = hung_500 = told = told_500 = disagree = 0
    bad = []
    for i in range(40):
        a, b = "a%d" % i, "b%d" % i
        until("POST", "/v1/calls", {"call": a, "queue": "support", "caller": "+4930100%04d" % i},
              a, "ringing")
        until("POST", "/v1/calls/%s/ring_result" % a, {"agent": "alice", "outcome": "answered"},
              a, "connected")
        until("POST", "/v1/calls", {"call": b, "queue": "support", "caller": "+4930200%04d" % i},
              b, "waiting")
        sub.next_where(lambda e: False, timeout=0.1)  # what the set-up told
        for k in range(i % 3):  # move which sync of the hangup's batch fails
            req("PUT", "/v1/agents/spare", {"devices": {"softphone": "sip:spare@x"},
                                            "name": "s%d" % k})
        rounds += 1
        h = req("POST", "/v1/calls/%s/hangup" % a)
        if h.status == 500 and h.code == "SB_ESTORE":
            hung_500 += 1
        # What the stream says about b: a ring, if any, goes out with the
        # hangup's answer (when a sync covers its batch, failed or not). It
        # comes on another connection, so it may be read a moment after the
        # answer: for a call that rings, wait for it as long as it takes; for
        # one that does not, a moment shows none is coming.
        st = call_state(b).get("state")
        ev = sub.next_where(lambda e: e.get("call") == b, timeout=20 if st == "ringing" else 0.3)
        rang = ev is not None and ev.get("type") == "ring" and ev.get("agent") == "alice"
        told += rang
        told_500 += rang and h.status == 500
        if rang != (st == "ringing"):
            disagree += 1
            if len(bad) < 5:
                bad.append("round %d: hangup %d %s; stream %r; call %s reads %r" %
                           (i, h.status, h.code, ev, b, st))
        # End both calls, whatever they are now.
        until("POST", "/v1/calls/%s/hangup" % a, None, a, "ended")
        if call_state(b).get("state") == "ringing":
            until("POST", "/v1/calls/%s/ring_result" % b,
                  {"agent": "alice", "outcome": "answered"}, b, "connected")
        until("POST", "/v1/calls/%s/hangup" % b, None, b, "ended")

    failed = ((d.metric("switchboard_sync_errors_total") or 0) +
              (d.metric("switchboard_batch_errors_total") or 0))
    t.ok(rounds == 40 and failed > 0, "%d rounds where a hangup freed the agent a call was "
         "waiting for; %d syncs or commits failed meanwhile" % (rounds, failed))
    t.ok(disagree == 0, "... the stream told the waiting call's ring exactly when the call reads "
         "as ringing (%d told, %d hangups answered 500 SB_ESTORE, %d of them told)"
         % (told, hung_500, told_500), "\n".join(bad))
    sub.close()
    d.stop()
    return hung_500, told_500


h3, t3 = run(3)
h4, t4 = run(4)
t.ok(h3 + h4 > t3 + t4 > 0, "hangups answered 500 SB_ESTORE both ways: with nothing made and "
     "nothing told (%d), and, the sync failing after the commit stood, with the ring made and "
     "told (%d)" % (h3 + h4 - t3 - t4, t3 + t4))
t.done()
