#!/usr/bin/env python3
# Group commit keeps answering: a batch closed without a sync waits for the
# next turn of the loop's commit or, failing that, for a sync the loop asks
# for as soon as a turn changes nothing. Neither may depend on the load:
#  - a lone change on an idle daemon is answered by the sync it needs, not
#    by some later timer (the loop may not block in its poll while a batch
#    waits: housekeeping's 1 s tick would release it, one change a second);
#  - a client that keeps sending, even junk the daemon only drains, may not
#    keep a turn from ending, and so hold every other client's answer.
# Bounds are tens of times what the work takes, so a slow machine passes;
# each failure mode they catch costs a second or more per change.
import sys, os, socket, threading, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sbtest import TAP, Daemon, provision, agent_doc

t = TAP()
d = t.owned(Daemon(conf={"sync": "group"})).start()
acme = provision(d, agents=("alice",))

# 1. Idle daemon, one change at a time.
c = d.conn()
t0 = time.monotonic()
statuses = [acme.put("/v1/agents/lone%d" % i, agent_doc("lone%d" % i), conn=c).status
            for i in range(20)]
took = time.monotonic() - t0
c.close()
t.ok(statuses == [200] * 20 and took < 10,
     "20 changes one after the other on an idle daemon: answered in %.2f s, not one a "
     "second" % took, statuses)

# 2. Two clients keep sending: a malformed request, then junk the daemon
# drains until it closes the connection; again, for 4 s.
stop = time.monotonic() + 4
junk = b"x" * 65536


def flood():
    while time.monotonic() < stop:
        s = None
        try:
            s = socket.create_connection((d.host, d.port))
            s.sendall(b"BAD REQUEST LINE\r\n\r\n")
            while time.monotonic() < stop:
                s.sendall(junk)
        except OSError:
            pass
        finally:
            if s:
                s.close()


floods = [threading.Thread(target=flood) for _ in range(2)]
for f in floods:
    f.start()
time.sleep(0.3)
c = d.conn()
done, bad = 0, []
while time.monotonic() < stop - 0.5:
    r = acme.put("/v1/agents/busy%d" % done, agent_doc("busy%d" % done), conn=c)
    if r.status != 200:
        bad.append(r.status)
        break
    done += 1
during = done
for f in floods:
    f.join()
c.close()
t.ok(not bad and during >= 10,
     "changes made while two clients keep sending junk: %d answered during it, not held "
     "until it ends" % during, bad)
r = acme.get("/v1/agents/busy%d" % (during - 1)) if during else None
t.ok(r is not None and r.status == 200, "... and the last of them is there")
t.is_(d.stop(), 0, "the daemon stops cleanly")
t.done()
