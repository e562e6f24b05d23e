#!/usr/bin/env python3
# Resuming the event stream: every event carries an id; a subscriber that
# reconnects with Last-Event-ID gets the account's actions after that id,
# also those written to the connection that broke, in order and once, and
# nothing another subscriber is sent twice. A resume that cannot be whole
# (an id from before a restart, one older than the history holds, one not
# given yet) begins with a resync action. A malformed id is a 400.
import os, re, sys, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sbtest import TAP, Daemon, Stream, provision, ring_mover


t = TAP(deadline=120)
# The smallest stream_buffer: an account's history holds 2 KiB, ten or so rings.
d = t.owned(Daemon(conf={"stream_keepalive": 0, "stream_buffer": 4096})).start()
acme = provision(d, agents=("alice",))
calls = [0]


def stream_ring(acct=None, agent="alice"):
    """One action on the stream: the agent paused, a call waits, the agent
    back (its ring goes to the stream), the caller hangs up. Returns the
    call id."""
    acct = acct or acme
    calls[0] += 1
    c = "r%d" % calls[0]
    acct.post("/v1/agents/%s/status" % agent, {"status": "paused"})
    r = acct.post("/v1/calls", {"call": c, "queue": "support", "caller": "+4930100%03d" % calls[0]})
    assert [a["type"] for a in r.actions()] == ["wait"], r
    r = acct.post("/v1/agents/%s/status" % agent, {"status": "available"})
    assert not r.actions("ring"), r
    acct.post("/v1/calls/%s/abandon" % c)
    return c


def read(s, n, timeout=3):
    """n events as (id, call), None for one that did not come."""
    got = []
    for _ in range(n):
        ev = s.next(timeout=timeout)
        got.append((s.last_id, ev.get("call")) if ev else None)
    return got


# -- ids, and a resume after a broken connection -------------------------------------
s = Stream(d, acme.auth)
t.cleanups.append(s.close)
sent = [stream_ring() for _ in range(3)]
got = read(s, 3)
t.is_([g and g[1] for g in got], sent, "three rings on the stream, in order")
ids = [g[0] for g in got if g]
t.ok(len(ids) == 3 and all(i.isdigit() for i in ids) and
     [int(i) for i in ids] == sorted(set(int(i) for i in ids)),
     "each event has a decimal id, increasing (%s)" % ids)
s.close()  # as if the last two were lost with the connection
s = Stream(d, acme.auth, last_event_id=ids[0])
t.cleanups.append(s.close)
t.is_(read(s, 2), got[1:], "Last-Event-ID of the first: the two after it come again, same ids")
t.ok(s.next(timeout=1) is None, "... and nothing else")
t.ok(d.wait_log(r'msg="stream subscribed".* last_event_id=%s backlog=2 whole=yes' % ids[0],
                timeout=2) is not None, "the subscription logs the id it resumed after")
s.close()

# -- what happened while nobody listened, after the last id read ----------------------
c4 = stream_ring()
s = Stream(d, acme.auth, last_event_id=ids[2])
t.cleanups.append(s.close)
g = read(s, 1)[0]
t.ok(g and g[1] == c4 and int(g[0]) > int(ids[2]), "what was published meanwhile follows", g)
t.ok(s.next(timeout=1) is None, "... alone")
last = s.last_id
s.close()
s = Stream(d, acme.auth)
t.cleanups.append(s.close)
t.ok(s.next(timeout=1) is None,
     "without Last-Event-ID, a new subscriber gets only what no subscriber was sent")

# -- two subscribers: one resumes, the other is sent nothing twice ---------------------
b = Stream(d, acme.auth, last_event_id=ids[1])
t.cleanups.append(b.close)
t.is_([x and x[1] for x in read(b, 2)], [sent[2], c4], "b resumes after the second ring")
c5 = stream_ring()
t.is_([x and x[1] for x in read(s, 1)], [c5], "the next ring reaches the first subscriber once")
t.is_([x and x[1] for x in read(b, 1)], [c5], "... and b once")
t.ok(s.next(timeout=1) is None and b.next(timeout=0.2) is None, "no duplicates on either")
last = b.last_id
s.close()
b.close()

# -- ids are the account's own: another account's actions do not move them -------------
globex = provision(d, account="globex", agents=("gina",))
s = Stream(d, acme.auth)
t.cleanups.append(s.close)
c = stream_ring()
g1 = read(s, 1)[0]
for _ in range(5):
    stream_ring(globex, "gina")
c = stream_ring()
g2 = read(s, 1)[0]
t.ok(g1 and g2 and g2[1] == c and int(g2[0]) == int(g1[0]) + 1,
     "five actions of another account between two of acme's: acme's ids still go up by one "
     "(%s, %s)" % (g1, g2))
s.close()
last = g2[0]

# -- a subscriber that falls behind catches up from the history, not dropped -----------
slow = Stream(d, acme.auth, rcvbuf=2048)
t.cleanups.append(slow.close)
behind = [stream_ring() for _ in range(60)]  # far more than its connection holds
got = [x and x[1] for x in read(slow, 60)]
t.is_(got, behind, "a subscriber that did not read while 60 rings went out gets them all, "
      "in order, once it reads")
t.ok(slow.next(timeout=0.5) is None, "... once each")
t.ok(d.wait_log(r"slow consumer", timeout=0.5) is None, "... and was not dropped as slow")
slow.close()

# -- a subscriber that came for a backlog and fell behind while catching up ------------
# A call ringing for 600 s: pausing the agent it rings moves it to the other, a
# cancel and a ring on the stream, small ones, so that the history (2 KiB here)
# holds more of them than the connection takes. Actions published after it
# subscribed that the history dropped before it read them were skipped
# without a word (the stream went on, a gap in its ids; 353 of 467 in one
# run): it is dropped as slow, as one that had caught up is, and what it was
# sent has no gap.
lt, flip = ring_mover(d, "latecomer")
flip(20)  # nobody subscribed: a backlog, the history full
mark = len(d.lines)
late = Stream(d, lt.auth, rcvbuf=1024)
t.cleanups.append(late.close)
t.ok(d.wait_log(r'msg="stream subscribed".* account="latecomer" backlog=[1-9]', after=mark,
                timeout=2) is not None, "a subscriber takes the backlog")
flip(100)  # far more than the history holds, while it reads nothing
got = []
while True:
    ev = late.next(timeout=1)
    if not ev:
        break
    got.append(int(late.last_id))
t.ok(d.wait_log(r'stream subscriber dropped: slow consumer.* account="latecomer"', after=mark,
                timeout=2) is not None,
     "... and, behind further than the history while catching up, is dropped as slow "
     "(%d events read)" % len(got))
t.ok(got and all(b == a + 1 for a, b in zip(got, got[1:])),
     "... what it read has no gap in its ids (%s)" %
     ([(a, b) for a, b in zip(got, got[1:]) if b != a + 1][:3]))
t.ok(not [l for l in d.lines[mark:] if 'msg="stream closed"' in l and '"latecomer"' in l],
     "... one line says why it closed: no 'stream closed' after the drop")
late.close()

# -- bad ids ----------------------------------------------------------------------------
for bad in ("abc", "-1", "12x", "99999999999999999999999"):
    r = Stream(d, acme.auth, last_event_id=bad)
    t.ok(r.status == 400 and '"field":"Last-Event-ID"' in (r.body or "").replace(" ", ""),
         "Last-Event-ID %r: 400 naming the header (%s)" % (bad, r.body))
    r.close()

# -- not whole: an id older than the history holds ---------------------------------------
older = [stream_ring() for _ in range(70)]  # 8 KiB of history holds fewer than this
s = Stream(d, acme.auth, last_event_id=last)
t.cleanups.append(s.close)
ev = s.next(timeout=3)
t.ok(ev and ev.get("type") == "resync" and ev.get("account") == "acme" and "reason" in ev,
     "an id older than the history: a resync action comes first", ev)
rest = []
while True:
    ev = s.next(timeout=1)
    if not ev:
        break
    rest.append(ev.get("call"))
t.ok(0 < len(rest) < 70 and rest == older[-len(rest):],
     "then the newest rings the history still holds, in order (%d of 70)" % len(rest))
t.ok(d.wait_log(r'msg="stream subscribed".* whole=no', timeout=2) is not None,
     "the subscription logs that the resume is not whole")
newest = s.last_id
s.close()

# -- not whole: an id not given yet ------------------------------------------------------
# The resync carries the account's last id, not the one given: ids go on
# from it, and the next actions are sent (their ids are below the one given).
s = Stream(d, acme.auth, last_event_id=str(int(newest) + 1000))
t.cleanups.append(s.close)
ev = s.next(timeout=3)
t.ok(ev and ev.get("type") == "resync", "an id this daemon has not given: resync", ev)
t.is_(s.last_id, newest, "... with the account's last id, not the one given")
nxt = stream_ring()
t.is_(read(s, 1), [(str(int(newest) + 1), nxt)], "... and the next action follows, the id after it")
newest = s.last_id or newest
s.close()
m = d.admin("GET", "/metrics").body
t.ok(re.search(r"^switchboard_stream_resumes_total [1-9]", m, re.M), "resumes are counted")
t.ok(re.search(r"^switchboard_stream_resyncs_total 2$", m, re.M), "so are the two resyncs")

# -- whole: a resume after the account's history was taken by others' backlogs ------------
# Its entry keeps its last id when its history empties: the resume is whole,
# not a resync (the ids of a new entry would start at the clock).
s = Stream(d, acme.auth)
t.cleanups.append(s.close)
mine = stream_ring()
g = read(s, 1)[0]
t.ok(g and g[1] == mine, "acme's ring read", g)
s.close()
others = [provision(d, account="o%02d" % i, agents=("oa",)) for i in range(40)]
for _ in range(30):   # unsent backlogs of 40 accounts fill the 32 halves of 4 KiB; sent go first
    for o in others:
        stream_ring(o, "oa")
mark = len(d.lines)
s = Stream(d, acme.auth, last_event_id=g[0])
t.cleanups.append(s.close)
after = stream_ring()
ev = s.next(timeout=3)
t.ok(ev and ev.get("type") != "resync" and ev.get("call") == after,
     "a resume with the last id read, once others' backlogs took acme's history: whole, no "
     "resync", ev)
t.ok(d.wait_log(r'msg="stream subscribed".* account=\W?acme\b.*whole=yes', after=mark, timeout=2),
     "... and logged whole")
s.close()
newest = s.last_id or newest

# -- not whole: an id from before a restart ------------------------------------------------
# The first action after the start goes out while no one is subscribed: the
# account's history is made by it, and a resume finds it after the resync
# (the history once began at that action's id, and the resume skipped it).
t.is_(d.stop(), 0, "the daemon stops")
d.start()
c5 = stream_ring()
s = Stream(d, acme.auth, last_event_id=newest)
t.cleanups.append(s.close)
ev = s.next(timeout=3)
t.ok(ev and ev.get("type") == "resync", "after a restart, the last id read before it: resync", ev)
rid = s.last_id
t.ok(rid and rid != newest and rid.isdigit(),
     "the resync has an id of its own to resume from (%s)" % rid)
ev = s.next(timeout=3)
t.ok(ev and ev.get("call") == c5 and int(s.last_id) > int(rid),
     "then the action sent while no one was subscribed", (ev, s.last_id))
c6 = stream_ring()
ev = s.next(timeout=3)
t.ok(ev and ev.get("call") == c6 and int(s.last_id) > int(newest),
     "the new start's ids go on above the old ones", (ev, s.last_id, newest))
s.close()
s = Stream(d, acme.auth, last_event_id=rid)
t.cleanups.append(s.close)
t.is_([g and g[1] for g in read(s, 2)], [c5, c6],
      "a resume from the resync's id is whole: no resync, both actions after it")
s.close()

# -- a quiet account: its resync's id is kept ------------------------------------------------
# After a restart, an account whose stream has given no id yet is resynced;
# a client that reconnects with the resync's id, nothing having happened, is
# not resynced again (the account's entry, which gave no other id, was
# dropped when the client left, and made anew at a later start).
t.is_(d.stop(), 0, "the daemon stops again")
d.start()
s = Stream(d, acme.auth, last_event_id=newest)
ev = s.next(timeout=3)
qid = s.last_id
t.ok(ev and ev.get("type") == "resync" and qid, "a quiet account after a restart: resync", ev)
s.close()
time.sleep(0.3)
s = Stream(d, acme.auth, last_event_id=qid)
t.cleanups.append(s.close)
ev = s.next(timeout=1)
t.ok(not (ev and ev.get("type") == "resync"),
     "reconnecting with the resync's id: no second resync (%s)" % (ev,))
s.close()
t.done()
