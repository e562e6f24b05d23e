#!/usr/bin/env python3
# A page of a list is bounded by bytes (max_page) as well as by count: the
# daemon's one event loop builds it while every other account waits. Agents,
# live calls, records, an access request's records and audit entries each
# page so: a page holds its items up to max_page bytes (one at least,
# however large), says where to go on from ("next") when more follow, and
# paging on gives every item once, in order. The pages of one turn of the
# loop share max_page: pipelined page requests, answered in the turn that
# reads them, get one item each once the first has it. Sizes and cursors
# only, no times.
import sys, os, json, socket
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sbtest import TAP, Daemon, provision, agent_doc, read_responses

MAX_PAGE = 4096
t = TAP()
d = t.owned(Daemon(conf={"max_page": "4K"})).start()
acme = provision(d, agents=())


def raw_items(body, key):
    """The items of a page as the daemon wrote them, byte for byte."""
    head = '{"%s":[' % key
    assert body.startswith(head), body[:80]
    items, depth, start, i, s = [], 0, None, len(head), body
    while i < len(s):
        ch = s[i]
        if ch == '"':
            i += 1
            while s[i] != '"':
                i += 2 if s[i] == "\\" else 1
        elif ch in "{[":
            if depth == 0:
                start = i
            depth += 1
        elif ch in "}]":
            if depth == 0:
                break
            depth -= 1
            if depth == 0:
                items.append(s[start:i + 1])
        i += 1
    return [x.encode() for x in items]


def walk(what, key, first, nxt):
    """Page through from path `first`; nxt(page json) is the next path or
    None. Checks each page's bound; returns every item and the pages."""
    pages, path = [], first
    while path is not None and len(pages) < 200:
        r = acme.get(path)
        if r.status != 200:
            t.ok(False, "%s: %s answers 200" % (what, path), r)
            return [], pages
        pages.append((r.json, raw_items(r.body, key)))
        path = nxt(r.json)
    over = [i for i, (_, raw) in enumerate(pages)
            if len(raw) > 1 and sum(map(len, raw)) + len(raw) - 1 > MAX_PAGE]
    t.ok(not over, "%s: every page of more than one item holds at most max_page bytes of them"
         % what, over)
    # Full: the next page's first item would not have fitted.
    short = [i for i in range(len(pages) - 1) if pages[i + 1][1] and
             sum(map(len, pages[i][1])) + len(pages[i][1]) + len(pages[i + 1][1][0]) <= MAX_PAGE]
    t.ok(not short, "%s: a page cut short is cut at max_page, not before" % what, short)
    return [json.loads(x) for _, raw in pages for x in raw], pages


# Agents of about 1 KB: four a page.
SKILLS = {"skill%02d_%s" % (i, "k" * 40): 50 for i in range(16)}
ids = ["ag%02d" % i for i in range(13)]
for a in ids:
    r = acme.put("/v1/agents/" + a, agent_doc(a, skills=SKILLS))
    assert r.status == 200, r
items, pages = walk("agents", "agents", "/v1/agents",
                    lambda j: "/v1/agents?after=" + j["next"] if "next" in j else None)
t.is_([a["id"] for a in items], ids, "agents: paging on gives each agent once, in id order")
t.ok(len(pages) > 3 and all(1 < len(raw) < 13 for _, raw in pages[:-1]),
     "agents: cut into pages by their bytes (%s a page), not all 13 in one"
     % [len(raw) for _, raw in pages])
t.ok(all(p["next"] == raw_ids for p, raw_ids in
         ((p, json.loads(raw[-1])["id"]) for p, raw in pages[:-1])) and "next" not in pages[-1][0],
     "agents: each page but the last says its last id as next")
r = acme.get("/v1/agents?limit=2")
t.is_(([a["id"] for a in r.json["agents"]], r.json.get("next")), (ids[:2], ids[1]),
      "agents: a limit under what fits is the page's count, with next")
r = acme.get("/v1/agents?after=%s" % ids[-2])
t.is_(([a["id"] for a in r.json["agents"]], "next" in r.json), ([ids[-1]], False),
      "agents: the last page says no next")
# Three page requests pipelined in one write are read, and answered, in one
# turn of the loop: the first takes its max_page, the others one item each,
# each saying where to go on from.
s = socket.create_connection((d.host, d.port), timeout=10)
get = ("GET /v1/agents?after=%s HTTP/1.1\r\nHost: x\r\nAuthorization: %s\r\n\r\n")
s.sendall("".join(get % (a, acme.auth) for a in ("", ids[5], ids[8])).encode())
resps, _ = read_responses(s, 3)
s.close()
got = [json.loads(b) if st == 200 else None for st, _, b in resps]
t.is_([[a["id"] for a in j["agents"]] if j else None for j in got],
      [[a["id"] for a in pages[0][0]["agents"]], [ids[6]], [ids[9]]],
      "pipelined pages: the first as a page alone, the next two one agent each")
t.is_([j.get("next") if j else None for j in got], [pages[0][0]["next"], ids[6], ids[9]],
      "... each with its next")
# One agent larger than max_page alone: a page holds it.
big = agent_doc("big", skills={"s%02d_%s" % (i, "x" * 60): 1 for i in range(64)})
r = acme.put("/v1/agents/ag05a", big)
assert r.status == 200, r
r = acme.get("/v1/agents?after=ag05")
t.ok(r.status == 200 and [a["id"] for a in r.json["agents"]] == ["ag05a"] and
     r.json.get("next") == "ag05a" and len(r.body) > MAX_PAGE,
     "agents: an item larger than max_page is a page of its own, with next", r.body[:200])
acme.delete("/v1/agents/ag05a")

# Live calls (small items, so many a page) in a queue with nobody in it.
calls = ["c%03d" % i for i in range(60)]
for c in calls:
    r = acme.post("/v1/calls", {"call": c, "queue": "support", "caller": "+442079460001",
                                "attrs": {"note": "n" * 200}})
    assert r.status == 201, r
items, pages = walk("calls", "calls", "/v1/calls?queue=support",
                    lambda j: "/v1/calls?queue=support&after=" + j["next"] if "next" in j else None)
t.is_([c["id"] for c in items], calls, "calls: paging on gives each live call once, in id order")
t.ok(len(pages) > 1, "calls: cut into %d pages by their bytes" % len(pages))

# Records: the calls ended, with 300 bytes of attributes each.
for c in calls:
    r = acme.post("/v1/calls/%s/abandon" % c, {})
    assert r.status == 200, r


def rec_next(j):
    n = j.get("next")
    return None if n is None else "/v1/records?limit=10000&before_ms=%d&before_id=%s" % (
        n["before_ms"], n["before_id"])


items, pages = walk("records", "records", "/v1/records?limit=10000", rec_next)
t.is_(sorted(r["id"] for r in items), calls, "records: paging on gives each record once")
t.is_(len(items), len(set(r["id"] for r in items)), "... none twice")
t.ok(items == sorted(items, key=lambda r: (r["ended_ms"], r["id"]), reverse=True),
     "records: newest first across the pages")
t.ok(all(p["next"] == {"before_ms": json.loads(raw[-1])["ended_ms"],
                       "before_id": json.loads(raw[-1])["id"]} for p, raw in pages[:-1])
     and "next" not in pages[-1][0],
     "records: each page but the last says next: its last record's ended_ms and id")
r = acme.get("/v1/records?limit=3")
t.ok(len(r.json["records"]) == 3 and r.json.get("next") == {
    "before_ms": r.json["records"][2]["ended_ms"], "before_id": r.json["records"][2]["id"]},
     "records: a page full by its limit with more to follow says next", r.body[:300])
last = pages[-1][0]["records"]
r = acme.get(rec_next(pages[-2][0]).replace("limit=10000", "limit=%d" % len(last)))
t.ok(r.json["records"] == last and "next" not in r.json,
     "records: a page full by its limit with nothing after it says no next", r.body[-200:])
for q, field in (("limit=0", "limit"), ("limit=10001", "limit")):
    r = acme.get("/v1/records?" + q)
    t.is_((r.status, r.code, r.field), (400, "SB_EINVAL", field), "records: ?%s is 400" % q)

# An access request of the number on every call: paged the same way, "next"
# the next page's after (CSV: the Switchboard-Next header).
NUM = "/v1/records?number=%2B442079460001"


def export_walk(fmt):
    pages, path = [], NUM + fmt
    while path is not None and len(pages) < 200:
        r = acme.get(path)
        if r.status != 200:
            t.ok(False, "access request: %s answers 200" % path, r)
            break
        pages.append(r)
        nx = r.json.get("next") if fmt == "" else r.headers.get("switchboard-next")
        path = None if nx is None else NUM + fmt + "&after=" + nx
    return pages


pages = export_walk("")
got = [x for p in pages for x in p.json["records"]]
t.is_(sorted(x["id"] for x in got), calls, "access request: paging on gives each record once")
t.is_(len(got), len(set(x["id"] for x in got)), "... none twice")
t.ok(all(x["caller"] == "+442079460001" for x in got), "... decrypted")
sizes = [[len(json.dumps(x, separators=(",", ":"))) for x in p.json["records"]] for p in pages]
t.ok(len(pages) > 3 and all(len(z) == 1 or sum(z) <= MAX_PAGE for z in sizes),
     "access request: cut into pages of at most max_page bytes of records (%s a page)"
     % [len(z) for z in sizes])
t.ok(all(sum(z) + sizes[i + 1][0] > MAX_PAGE for i, z in enumerate(sizes[:-1])),
     "access request: a page is cut at max_page, not before")
t.ok(all(p.json.get("next") == "caller:%d:%s" % (p.json["records"][-1]["ended_ms"],
                                                 p.json["records"][-1]["id"]) for p in pages[:-1])
     and "next" not in pages[-1].json and all(p.json.get("live") == 0 for p in pages),
     "access request: each page but the last says next (caller:<ended_ms>:<id>); each its live")
csv_pages = export_walk("&format=csv")
body = "".join(p.body for p in csv_pages)
lines = body.strip().split("\r\n")
t.ok(len(csv_pages) > 3 and len(lines) == 61 and lines[0].startswith("id,role,caller,called,")
     and sorted(x.split(",")[0] for x in lines[1:]) == calls,
     "access request as CSV: %d pages, together a header and each record once"
     % len(csv_pages))
t.ok(all(len(p.body) <= MAX_PAGE + 600 for p in csv_pages) and
     all(p.headers.get("switchboard-live-calls") == "0" for p in csv_pages) and
     "switchboard-next" not in csv_pages[-1].headers,
     "... each at most max_page bytes and a record; the last without Switchboard-Next")
r = acme.get(NUM + "&limit=2")
t.ok(len(r.json["records"]) == 2 and r.json.get("next", "").endswith(":" + got[1]["id"]),
     "access request: limit=2 (under what fits) is two records and next", r.body[:200])
for q, field in (("&limit=0", "limit"), ("&limit=10001", "limit"), ("&after=x", "after"),
                 ("&after=caller:1", "after"), ("&before_id=c1", "before_id")):
    r = acme.get(NUM + q)
    t.is_((r.status, r.code, r.field), (400, "SB_EINVAL", field), "access request: %s is 400" % q)
r = acme.get("/v1/records?after=caller:1:c1")
t.is_((r.status, r.code, r.field), (400, "SB_EINVAL", "after"),
      "the list: after, which is the access request's, is 400")
# Each page answered is in the audit log (the 400s disclosed nothing).
exports = len(pages) + len(csv_pages) + 1

# The audit log: an erasure request deletes the records, an entry each,
# after the access requests' entries, one a page.
r = acme.post("/v1/erasure", {"number": "+442079460001"})
t.is_((r.status, r.json and r.json.get("deleted")), (200, 60), "an erasure request deletes them")
items, pages = walk("audit", "entries", "/v1/audit?after=0&limit=100000",
                    lambda j: ("/v1/audit?limit=100000&after=%d" % j["next"]) if j["entries"]
                    else None)
seqs = [e["seq"] for e in items]
t.ok(len(items) == 61 + exports and seqs == sorted(set(seqs)) and
     [e["action"] for e in items].count("access_request") == exports,
     "audit: paging on gives each entry once, in order (%d: %d of access request pages, "
     "60 deletes, the erasure request)" % (len(items), exports))
t.ok(len(pages) > 3 and all(p["next"] == json.loads(raw[-1])["seq"] for p, raw in pages[:-1]),
     "audit: cut into pages by their bytes, each saying its last seq as next")
t.is_(pages[-1][0], {"entries": [], "next": seqs[-1]}, "audit: the page past the end is empty")
r = acme.get("/v1/audit")
t.is_(len(r.json["entries"]), len(pages[0][0]["entries"]),
      "audit: without a limit, bounded by max_page too")

t.is_(d.stop(), 0, "exit 0")
t.done()
