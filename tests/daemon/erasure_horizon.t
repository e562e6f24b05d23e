#!/usr/bin/env python3
# The erasure journal's horizon through the daemon (erasure_journal_days):
# the setting's range is checked at start; a request older than it is found
# by the daemon's sweep and kept until a sweep a day later; a data directory whose journal has
# taken the pseudonym out of an erasure request of an account its data.mdb
# has, which data.mdb has not seen (a backup restored from before it, made
# here by writing the journal's 'x' line as a sweep would)
# is refused at start, naming the request and the backup to restore, and
# nothing is served; a new data directory beside the same journal starts.
import sys, os, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sbtest import TAP, Daemon, provision

t = TAP()


def fnv(b):
    h = 0xcbf29ce484222325
    for c in b:
        h = ((h ^ c) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h


def pruned_line(seq, acct_num, account, received):
    body = "x %d %d %s %d" % (seq, acct_num, account, received)
    return "%s %016x\n" % (body, fnv(body.encode()))


bad = t.owned(Daemon(conf={"erasure_journal_days": 36601}))
bad.start(expect_listen=False)
t.ok(bad.proc.wait(timeout=20) != 0 and
     bad.wait_log(r"erasure_journal_days must be at most 36600 days", timeout=5),
     "erasure_journal_days = 36601: the daemon does not start, saying the range",
     "\n".join(bad.lines))

d = t.owned(Daemon(conf={"erasure_journal_days": 30})).start()
acme = provision(d)
r = acme.post("/v1/erasure", {"number": "+442079460999"})
t.is_(r.status, 200, "an erasure request")
t.is_(d.stop(), 0, "stopped")
jpath = os.path.join(d.data_dir, "erasures.journal")
with open(jpath) as f:
    text = f.read()
t.ok("\ne 1 " in text, "... the request is the journal's entry 1")

# The request made 40 days old: the first sweep (a second after the start)
# finds it past the horizon and keeps it, the pseudonym taken out only by a
# sweep a day later by the clock (test_journal_horizon has that, its clock
# moved): a clock set ahead for one sweep takes nothing out.
lines = text.split("\n")
for i, line in enumerate(lines):
    if line.startswith("e 1 "):
        parts = line.split(" ")
        pseudonym = parts[4]
        parts[5] = str(int(parts[5]) - 40 * 86400 * 1000)
        body = " ".join(parts[:6])
        lines[i] = "%s %016x" % (body, fnv(body.encode()))
with open(jpath, "w") as f:
    f.write("\n".join(lines))
d.start()
t.ok(d.wait_log(r"erasure requests received more than 30 days ago \(erasure_journal_days\) "
                r"found; their pseudonyms are taken out by a sweep a day from now", timeout=30),
     "a request 40 days old: the daemon finds it past the horizon (at its start or first "
     "sweep), saying when it goes")
time.sleep(2.5)  # a sweep or two more
with open(jpath) as f:
    text = f.read()
t.ok(pseudonym in text and "\nx 1 " not in text,
     "... its pseudonym stays in the journal for now")
t.is_(d.stop(), 0, "... and the daemon stops")

# As if a sweep had taken the pseudonym out of request 7 of acme, received
# after the account was made, which this data.mdb (it has seen 1) never
# applied: a backup from before it.
received = int(time.time() * 1000) + 1000
with open(jpath, "a") as f:
    f.write(pruned_line(7, 1, "acme", received))
d.start(expect_listen=False)
t.ok(d.proc.wait(timeout=20) != 0, "the daemon does not start on a data.mdb behind the horizon")
t.ok(d.wait_log(r"data\.mdb has not seen erasure request 7 of account 'acme'", timeout=5) and
     d.wait_log(r"whose data\.mdb has seen request 7", timeout=5),
     "... saying which request and what to restore", "\n".join(d.lines))

# A new data.mdb (no account made before those requests) starts.
for f in ("data.mdb", "data.keys", "lock.mdb"):
    try:
        os.unlink(os.path.join(d.data_dir, f))
    except FileNotFoundError:
        pass
d.start()
t.is_(d.request("GET", "/healthz").status, 200, "a new data.mdb beside that journal starts")
t.is_(d.stop(), 0, "... and stops")
t.done()
