#!/usr/bin/env python3
# Writes the seed corpora of tests/fuzz/corpus/{json,http,decision}: valid and
# nearly valid inputs for each target, so the fuzzers start deep. The
# records and store seeds are the values of a real data file, written by the
# target itself:  FUZZ_DUMP_SEEDS=DIR build/fuzz/fuzz_store -runs=0
# Run from anywhere: python3 tests/fuzz/seeds.py
import json, os

HERE = os.path.dirname(os.path.abspath(__file__))


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def j(o):
    return json.dumps(o, separators=(",", ":")).encode()


AGENT = {"id": "dave", "name": "Dave", "weight": 2,
         "devices": {"softphone": "sip:dave@pbx.example", "mobile": "tel:+447700900002",
                     "landline": "tel:+442079460002"},
         "skills": {"english": 5, "billing": 3}, "preferences": {"device": "softphone"},
         "timezone": "Europe/London",
         "schedule": [{"days": ["mon", "tue", "wed", "thu", "fri"], "from": "09:00", "to": "17:00",
                       "devices": ["landline", "softphone"]},
                      {"days": ["weekdays"], "from": "17:00", "to": "24:00", "devices": ["mobile"]}],
         "wrapup": 10, "status": "available"}
QUEUE = {"id": "sales", "policy": "first", "ring_timeout": 20, "max_wait": 300, "max_length": 100,
         "overflow": "backup", "wrapup": 0, "fallback": "ring_all",
         "members": [{"agent": "alice", "tier": 1, "position": 1, "weight": 1, "penalty": 0},
                     {"agent": "bob", "tier": 2}]}
EVENTS = [
    {"type": "offer", "call": "c2", "queue": "support", "caller": "+4930123456",
     "called": "+4930999000", "priority": 10, "attrs": {"language": "de", "skills": {"billing": 2}}},
    {"type": "ring_result", "call": "c1", "agent": "alice", "outcome": "answered"},
    {"type": "ring_result", "call": "c1", "agent": "alice", "outcome": "no_answer"},
    {"type": "hangup", "call": "c1"},
    {"type": "abandon", "call": "c1"},
    {"type": "transfer", "call": "c1", "queue": "backup"},
    {"type": "transfer", "call": "c1", "agent": "bob"},
    {"type": "agent_status", "agent": "alice", "status": "paused", "reason": "lunch"},
    {"type": "agent_status", "agent": "bob", "status": "offline"},
    {"type": "offer", "call": "c3", "queue": "support", "caller": None, "called": "+4930999000"},
]
CASE = {"name": "rings", "now": 1767261600, "seed": 1,
        "queue": {"id": "support", "waiting": 1, "longest_wait": 0, "members": 3, "available": 2,
                  "ring_timeout": 20},
        "call": {"id": "c1", "queue": "support", "priority": 0, "waited": 0, "attempts": 1,
                 "tried": {"b": 1}, "attrs": {"skills": {"billing": 2}}},
        "agents": [{"id": "a", "idle_for": 10, "tier": 1, "position": 1, "skills": {"billing": 3},
                    "devices": {"softphone": "sip:a@pbx.example", "mobile": "tel:+447700900001"},
                    "schedule": [{"days": ["mon"], "from": "09:00", "to": "17:00",
                                  "devices": ["landline"]}]},
                   {"id": "b", "calls_taken": 3, "talk_time": 60.5, "last_call": 1767261000}],
        "store": {"support": 1}, "expect": {"action": "ring", "agents": ["a"]},
        "expect_store": {"support": 1}}

# fuzz_json: selector byte (see fuzz_json.c), then the document.
for i, ev in enumerate(EVENTS):
    write("json", "event-%02d" % i, bytes([i % 4 | (0x80 if i % 3 == 0 else 0)]) + j(ev))
write("json", "agent", bytes([4]) + j(AGENT))
write("json", "agent-min", bytes([4]) + j({"id": "erin", "devices": {"mobile": "tel:+4912345"}}))
write("json", "queue", bytes([5]) + j(QUEUE))
write("json", "member", bytes([6]) + j({"tier": 1, "position": 2, "weight": 1.5, "penalty": 3}))
write("json", "account", bytes([7]) + j({"id": "globex", "name": "Globex", "fallback": "wait"}))
write("json", "cases", bytes([8]) + j([CASE]))
write("json", "policy", bytes([9]) + b"local P = {}\nfunction P.route(call, agents, ctx)\n"
      b"  return { ring = agents[1], timeout = 30 }\nend\nreturn P\n\x00" + j([CASE]))

# fuzz_http: chunk size byte, then raw requests (@A@ credentials, @T@ admin).
def req(method, path, body=None, headers=(), auth="@A@"):
    h = "%s %s HTTP/1.1\r\nHost: x\r\n" % (method, path)
    if auth:
        h += "Authorization: %s\r\n" % auth
    for x in headers:
        h += x + "\r\n"
    b = b""
    if body is not None:
        b = body if isinstance(body, bytes) else j(body)
        h += "Content-Length: %d\r\n" % len(b)
    return h.encode() + b"\r\n" + b


HTTP = {
    "get-agents": req("GET", "/v1/agents"),
    "get-agent": req("GET", "/v1/agents/alice"),
    "put-agent": req("PUT", "/v1/agents/dave", AGENT),
    "put-queue": req("PUT", "/v1/queues/sales", QUEUE),
    "member": req("PUT", "/v1/queues/support/members/bob", {"tier": 2}),
    "offer": req("POST", "/v1/calls", EVENTS[0]),
    "answer": req("POST", "/v1/calls/c1/ring_result", {"agent": "alice", "outcome": "answered"}),
    "hangup": req("POST", "/v1/calls/c1/hangup"),
    "transfer": req("POST", "/v1/calls/c1/transfer", {"queue": "backup"}),
    "status": req("POST", "/v1/agents/bob/status", {"status": "paused", "reason": "lunch"}),
    "policy": req("PUT", "/v1/policies/p", b"return { route = function() return {} end }\n",
                  ("Content-Type: text/x-lua",)),
    "policy-json": req("PUT", "/v1/policies/team/p", {"source": "return {route=function() return "
                                                       "{wait=5} end}", "cases": [CASE]},
                       ("Content-Type: application/json",)),
    "accounts": req("POST", "/v1/accounts", {"id": "globex", "name": "Globex"}, auth="@T@"),
    "keys": req("POST", "/v1/accounts/acme/keys", auth="@T@"),
    "metrics": req("GET", "/metrics", auth="@T@"),
    "events": req("GET", "/v1/events"),
    "health": b"GET /healthz HTTP/1.0\r\n\r\n",
    "chunked": b"POST /v1/calls HTTP/1.1\r\nHost: x\r\nAuthorization: @A@\r\n"
               b"Transfer-Encoding: chunked\r\n\r\n"
               + b"".join(b"%x%s\r\n%s\r\n" % (len(p), b";x=y" if i == 1 else b"", p) for i, p in
                          enumerate([b'{"call":"c3","qu', b'eue":"support","caller":"+4912', b'345"',
                                     b'}']))
               + b"0\r\nTrailer: x\r\n\r\n",
    "expect": b"PUT /v1/agents/erin HTTP/1.1\r\nHost: x\r\nAuthorization: @A@\r\n"
              b"Expect: 100-continue\r\n"
              b"Content-Length: 40\r\n\r\n{\"devices\":{\"mobile\":\"tel:+4912345678\"}}",
    "head": req("HEAD", "/v1/agents/alice") + req("GET", "/v1/agents/alice"),
    "pipeline": req("GET", "/v1/queues") + req("GET", "/v1/calls/c1") + req("DELETE", "/v1/agents/bob")
                + req("GET", "/v1/policies", headers=("Connection: close",)),
}
for i, (name, data) in enumerate(sorted(HTTP.items())):
    write("http", name, bytes([0 if i % 3 else 1 + i * 7 % 40]) + data)

# fuzz_decision: the bytes are choices (see fuzz_decision.c). A few that build
# a ring, a pause list and a move.
write("decision", "ring", bytes([0, 12, 2, 0, 0, 4, 0, 0, 5, 2]))
write("decision", "ring-list", bytes([0, 15, 5, 4, 0, 4, 1, 7, 1, 21, 4, 0, 0, 5, 2]))
write("decision", "pause", bytes([1, 4, 0, 2, 2, 12, 1, 0, 5, 15, 2, 21, 4, 0, 1, 4, 1]))
write("decision", "move", bytes([0, 12, 2, 0, 2, 4, 11, 0, 4, 6, 4, 65, 66, 67, 68]))
write("decision", "deep", bytes([0, 16, 40, 0, 12, 3, 0, 0, 4, 0]))
write("decision", "meta", bytes([0, 17, 2, 0, 0, 4, 0, 0, 7, 1, 5]))
