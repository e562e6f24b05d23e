#!/usr/bin/env python3
# What the daemon lets go of is wiped: the daemon runs under the freewatch.so
# shim, which searches every block handed to free or realloc for given texts.
# An access request's page (GET /v1/records?number=..., JSON or CSV) has
# numbers and personal attributes in the clear; libevent frees the buffers a
# response is written from as they are, so the page is added to the reply by
# reference and wiped when libevent lets it go (written, drained for a HEAD,
# dropped with its connection). Requests bring API keys, callers' numbers and
# access requests' queries: libevent's blocks in the daemon, jansson's
# (the engine's allocator for it) and the daemon's own copies of a request
# are wiped as they are freed.
import json, os, subprocess, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sbtest import ROOT, TAP, Daemon, binary, provision  # noqa: E402

_build = os.environ.get("SB_BUILD", "build")
SHIM = os.path.join(_build if os.path.isabs(_build) else os.path.join(ROOT, _build),
                    "tests", "daemon", "freewatch.so")
ldd = subprocess.run(["ldd", binary()], capture_output=True, text=True, check=False).stdout
if "libasan" in ldd:
    print("1..0 # SKIP the sanitizer's runtime has its own allocator")
    sys.exit(0)

# The JSON page's start, a CSV line's start, and, to show the shim sees what
# is freed as it is, an answer that is no page (an error, from no record);
# then a record in a page far larger than one write to the socket takes,
# in JSON and in CSV (as a record is in a page alone), which any copy of
# the part left to send would hold.
TEXTS = ['{"number":"+442079460005"', 'c1,caller,+442079460005,',
         "no such agent 'watchdog7'", '"role":"caller","caller":"+442079460006"',
         ',caller,+442079460006,']
t = TAP()
t.ok(os.path.exists(SHIM), "the shim is built (%s)" % SHIM)
d = t.owned(Daemon())
log = os.path.join(d.tmp, "freewatch.log")
d.env = {"LD_PRELOAD": SHIM, "SB_FREEWATCH": "|".join(TEXTS), "SB_FREEWATCH_LOG": log}
d.start()
acme = provision(d, agents=("alice",))
r = acme.post("/v1/calls", {"call": "c1", "queue": "support", "caller": "+442079460005"})
ring = r.actions("ring")
t.ok(ring, "a call of +442079460005 rings alice", r)
acme.post("/v1/calls/c1/ring_result", {"agent": ring[0]["agent"], "outcome": "answered"})
t.is_(acme.post("/v1/calls/c1/hangup").status, 200, "... is answered and hung up: a record")
BIG = 60
for i in range(BIG):  # attrs of about 4,000 bytes each: a page of some 250 KB
    acme.post("/v1/calls", {"call": "b%d" % i, "queue": "support", "caller": "+442079460006",
                            "attrs": {"note": "%d" % i * (3900 // len(str(i)))}})
    acme.post("/v1/calls/b%d/abandon" % i)


def found():
    """How many blocks were freed holding each text so far."""
    try:
        with open(log) as f:
            got = [int(x) for x in f.read().split()]
    except OSError:
        got = []
    return [got.count(i) for i in range(len(TEXTS))]


before = found()
t.is_(before, [0] * len(TEXTS), "none of the texts freed before they are asked for", before)
r = acme.get("/v1/records?number=%2B442079460005")
t.ok(r.status == 200 and r.body.startswith(TEXTS[0]) and
     [x["id"] for x in r.json["records"]] == ["c1"], "the JSON page: the number's record", r)
r = acme.get("/v1/records?number=%2B442079460005&limit=1")
t.ok(r.status == 200 and r.body.startswith(TEXTS[0]), "... and a page of one", r)
r = acme.get("/v1/records?number=%2B442079460005&format=csv")
lines = r.body.split("\r\n")
t.ok(r.status == 200 and len(lines) == 3 and lines[1].startswith(TEXTS[1]) and
     r.headers.get("switchboard-live-calls") == "0",
     "the CSV page: the header and the record's line", r)
r = acme.req("HEAD", "/v1/records?number=%2B442079460005")
t.ok(r.status == 200 and int(r.headers.get("content-length", "0")) > len(TEXTS[0]),
     "a HEAD of the JSON page: its length, no body", r)
r = acme.get("/v1/records?number=%2B442079460006")
t.ok(r.status == 200 and len(r.body) > 200000 and len(r.json["records"]) == BIG,
     "a JSON page of %d records (%d bytes)" % (BIG, len(r.body)), r)
r = acme.get("/v1/records?number=%2B442079460006&format=csv")
t.ok(r.status == 200 and len(r.body) > 200000 and r.body.count(TEXTS[4]) == BIG,
     "... and as CSV (%d bytes)" % len(r.body), r)
# The CSV page is taken out of the engine's answer (JSON, ASCII only) by
# the daemon's own decoder: non-ASCII, a character past U+FFFF (a pair of
# escapes), quotes, a backslash, a tab and a control character come out as
# they went in.
ATTRS = {"note": "Zo\u00eb \u540d\u524d \U0001F600 \"q\" \\ tab\t/ ctl\u0001"}
acme.post("/v1/calls", {"call": "u1", "queue": "support", "caller": "+442079460007",
                        "attrs": ATTRS})
acme.post("/v1/calls/u1/abandon")
r = acme.get("/v1/records?number=%2B442079460007&format=csv")
col = json.dumps(ATTRS, ensure_ascii=False, separators=(",", ":"))
t.ok(r.status == 200 and ('"%s"' % col.replace('"', '""')) in r.body,
     "a CSV page's attrs decoded whole: %s" % col, r)
r = acme.get("/v1/agents/watchdog7")
t.ok(r.status == 404 and TEXTS[2] in r.body, "an agent that is not there: 404", r)
d.stop()
got = found()
t.is_(got[:2], [0, 0], "no block freed holding the JSON page or the CSV page", got)
t.is_(got[3:], [0, 0], "... nor the large pages, written in many writes", got)
t.is_(got[2], 0, "... nor the 404's answer, which quotes the request's path", got)

# The rest of what a request brings and its answer takes back: the daemon
# reads and writes through libevent's buffers and parses and builds
# documents with jansson, both of which free their blocks as they are; in
# the daemon they free them wiped, as the daemon does its own copies of a
# request. Restarted with new texts to watch (the key is known now): the
# account's key as its Basic header has it, a caller's number as an offer's
# body has it, an access request's query, a number an offer is refused for
# (a request the engine never takes), and,
# to show the shim sees what the daemon frees, the data directory's path,
# which the daemon's configuration holds and frees plainly at exit.
auth = acme.auth.split(" ", 1)[1]
TEXTS = [auth, '"+442079460009"', "number=%2B442079460005", "+4420794600099999999",
         d.data_dir]
os.unlink(log)
d.env = {"LD_PRELOAD": SHIM, "SB_FREEWATCH": "|".join(TEXTS), "SB_FREEWATCH_LOG": log}
d.start()
r = acme.post("/v1/calls", {"call": "w1", "queue": "support", "caller": "+442079460009"})
t.ok(r.status == 201 and r.actions("ring"), "a call of +442079460009 rings", r)
r = acme.get("/v1/calls/w1")
t.ok(r.status == 200 and "+442079460009" in r.body, "... read back with its number", r)
acme.post("/v1/calls/w1/abandon")
r = acme.get("/v1/records?number=%2B442079460005")
t.is_(r.status, 200, "an access request", r)
r = acme.post("/v1/calls", {"call": "w2", "queue": "support", "caller": TEXTS[3]})
t.ok(r.status == 400 and r.json["error"]["field"] == "caller", "an offer of a number too long "
     "refused", r)
d.stop()
got = found()
t.is_(got[:4], [0] * 4, "no block freed holding the key, the caller's number, the query or the "
      "refused number", got)
t.ok(got[4] > 0, "... where the data directory's path, freed as it is, was seen freed", got)
t.done()
