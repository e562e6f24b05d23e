#!/usr/bin/env python3
"""sipagent.py — just enough SIP over UDP (stdlib only) for tests/multiproc/kamailio.t.

  python3 sipagent.py uas NAME PORT MODE LOGFILE
      An agent's softphone on 127.0.0.1:PORT. MODE: answer (100, 180, 200 and
      then ACK/BYE), busy (486) or noanswer (180, then 487 when cancelled).
      Appends one JSON line per request it gets to LOGFILE.

  import sipagent; sipagent.Uac(proxy_port).call(...)
      A caller: INVITE through the proxy, ACK, BYE; returns what happened.

Loopback only. Every wait is bounded.
"""
import json
import os
import random
import re
import signal
import socket
import sys
import time

HOST = "127.0.0.1"


def parse(data):
    """(first line, [(name, value)...]) of a SIP message; names lower-case."""
    text = data.decode("utf-8", "replace")
    head = text.split("\r\n\r\n", 1)[0]
    lines = head.split("\r\n")
    compact = {"v": "via", "f": "from", "t": "to", "i": "call-id", "m": "contact",
               "l": "content-length"}
    headers = []
    for line in lines[1:]:
        if ":" not in line:
            continue
        name, value = line.split(":", 1)
        name = name.strip().lower()
        headers.append((compact.get(name, name), value.strip()))
    return lines[0], headers


def hget(headers, name):
    for n, v in headers:
        if n == name:
            return v
    return None


def hall(headers, name):
    return [v for n, v in headers if n == name]


def tag_of(value):
    m = re.search(r";\s*tag=([^;>\s]+)", value or "")
    return m.group(1) if m else None


def uri_of(value):
    m = re.search(r"<([^>]+)>", value or "")
    return m.group(1) if m else (value or "").split(";")[0].strip()


def hostport(uri):
    m = re.match(r"sips?:(?:[^@]+@)?([^;:>]+)(?::(\d+))?", uri)
    return m.group(1), int(m.group(2) or 5060)


def branch():
    return "z9hG4bK-%016x" % random.getrandbits(64)


# --- the agent (UAS) ---------------------------------------------------------

def response(req_headers, code, reason, to_tag=None, contact=None, rr=False):
    out = ["SIP/2.0 %d %s" % (code, reason)]
    for v in hall(req_headers, "via"):
        out.append("Via: " + v)
    if rr:
        for v in hall(req_headers, "record-route"):
            out.append("Record-Route: " + v)
    out.append("From: " + hget(req_headers, "from"))
    to = hget(req_headers, "to")
    if to_tag and not tag_of(to):
        to += ";tag=" + to_tag
    out.append("To: " + to)
    out.append("Call-ID: " + hget(req_headers, "call-id"))
    out.append("CSeq: " + hget(req_headers, "cseq"))
    if contact:
        out.append("Contact: <%s>" % contact)
    out.append("Content-Length: 0")
    return ("\r\n".join(out) + "\r\n\r\n").encode()


def uas(name, port, mode, logfile):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((HOST, port))
    contact = "sip:%s@%s:%d" % (name, HOST, port)
    invites = {}  # call-id -> (headers, to_tag, source)
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
    log = open(logfile, "a", buffering=1)

    def note(**kw):
        kw.update(agent=name, pid=os.getpid(), t=time.time())
        log.write(json.dumps(kw) + "\n")

    while True:
        data, src = sock.recvfrom(65535)
        first, hs = parse(data)
        if first.startswith("SIP/2.0"):
            continue
        method = first.split(" ", 1)[0]
        cid = hget(hs, "call-id")
        if method == "INVITE":
            if cid in invites:  # a retransmission: the last answer again
                continue
            to_tag = "%08x" % random.getrandbits(32)
            invites[cid] = (hs, to_tag, src)
            note(event="invite", call_id=cid, sb_call=hget(hs, "x-switchboard-call"),
                 ruri=first.split(" ")[1], mode=mode)
            sock.sendto(response(hs, 100, "Trying"), src)
            if mode == "busy":
                sock.sendto(response(hs, 486, "Busy Here", to_tag), src)
                continue
            sock.sendto(response(hs, 180, "Ringing", to_tag, contact, rr=True), src)
            if mode == "answer":
                sock.sendto(response(hs, 200, "OK", to_tag, contact, rr=True), src)
        elif method == "CANCEL":
            sock.sendto(response(hs, 200, "OK"), src)
            if cid in invites:
                ihs, to_tag, isrc = invites[cid]
                sock.sendto(response(ihs, 487, "Request Terminated", to_tag), isrc)
            note(event="cancel", call_id=cid)
        elif method == "ACK":
            note(event="ack", call_id=cid)
        elif method == "BYE":
            sock.sendto(response(hs, 200, "OK"), src)
            note(event="bye", call_id=cid)
        else:
            sock.sendto(response(hs, 405, "Method Not Allowed"), src)


# --- the caller (UAC) ----------------------------------------------------------

class Uac:
    def __init__(self, proxy_port, timeout=20.0):
        self.proxy = (HOST, proxy_port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((HOST, 0))
        self.port = self.sock.getsockname()[1]
        self.timeout = timeout

    def _send(self, lines):
        self.sock.sendto(("\r\n".join(lines) + "\r\n\r\n").encode(), self.proxy)

    def _recv(self, deadline):
        while True:
            left = deadline - time.time()
            if left <= 0:
                return None, None
            self.sock.settimeout(left)
            try:
                data, _ = self.sock.recvfrom(65535)
            except socket.timeout:
                return None, None
            first, hs = parse(data)
            if first.startswith("SIP/2.0"):
                return first, hs

    def options(self, wait=1.0):
        """Any answer to an OPTIONS: the proxy is up."""
        cid = "opt-%x@%s" % (random.getrandbits(48), HOST)
        self._send(["OPTIONS sip:ping@%s:%d SIP/2.0" % self.proxy,
                    "Via: SIP/2.0/UDP %s:%d;branch=%s;rport" % (HOST, self.port, branch()),
                    "Max-Forwards: 70", "From: <sip:+15550000000@%s>;tag=o1" % HOST,
                    "To: <sip:ping@%s>" % HOST, "Call-ID: " + cid, "CSeq: 1 OPTIONS",
                    "Content-Length: 0"])
        first, _ = self._recv(time.time() + wait)
        return first is not None

    def call(self, queue, caller, language=None, hold=0.3, call_id=None, answered=None,
             release=None):
        """INVITE sip:QUEUE@proxy; on 200 ACK, hold, BYE. Returns a dict.
        answered: a threading.Event set once the 200 is ACKed; release: an
        Event the call holds until (hold seconds at most), where it holds for
        hold seconds without one."""
        cid = call_id or "call-%x@%s" % (random.getrandbits(48), HOST)
        ftag = "%08x" % random.getrandbits(32)
        ruri = "sip:%s@%s:%d" % (queue, self.proxy[0], self.proxy[1])
        b = branch()
        frm = "<sip:%s@%s>;tag=%s" % (caller, HOST, ftag)
        to = "<sip:%s@%s>" % (queue, HOST)
        invite = ["INVITE %s SIP/2.0" % ruri,
                  "Via: SIP/2.0/UDP %s:%d;branch=%s;rport" % (HOST, self.port, b),
                  "Max-Forwards: 70", "From: " + frm, "To: " + to, "Call-ID: " + cid,
                  "CSeq: 1 INVITE", "Contact: <sip:caller@%s:%d>" % (HOST, self.port)]
        if language:
            invite.append("X-Language: " + language)
        invite.append("Content-Length: 0")
        self._send(invite)
        out = {"call_id": cid, "codes": []}
        deadline = time.time() + self.timeout
        while True:
            first, hs = self._recv(deadline)
            if first is None:
                out["final"] = None
                return out
            if not hget(hs, "cseq").endswith("INVITE"):
                continue
            code = int(first.split(" ")[1])
            out["codes"].append(code)
            if code >= 200:
                break
        out["final"] = code
        to_hdr = hget(hs, "to")
        if code >= 300:  # hop-by-hop ACK, same branch
            self._send(["ACK %s SIP/2.0" % ruri,
                        "Via: SIP/2.0/UDP %s:%d;branch=%s;rport" % (HOST, self.port, b),
                        "Max-Forwards: 70", "From: " + frm, "To: " + to_hdr, "Call-ID: " + cid,
                        "CSeq: 1 ACK", "Content-Length: 0"])
            return out
        remote = uri_of(hget(hs, "contact"))
        out["contact"] = remote
        routes = []
        for v in hall(hs, "record-route"):
            routes += [r.strip() for r in v.split(",")]
        routes.reverse()
        route_hdrs = ["Route: " + r for r in routes]

        def in_dialog(method, cseq):
            return (["%s %s SIP/2.0" % (method, remote),
                     "Via: SIP/2.0/UDP %s:%d;branch=%s;rport" % (HOST, self.port, branch()),
                     "Max-Forwards: 70"] + route_hdrs +
                    ["From: " + frm, "To: " + to_hdr, "Call-ID: " + cid,
                     "CSeq: %d %s" % (cseq, method), "Content-Length: 0"])

        self._send(in_dialog("ACK", 1))
        if answered is not None:
            answered.set()
        if release is not None:
            release.wait(hold)
        else:
            time.sleep(hold)
        self._send(in_dialog("BYE", 2))
        deadline = time.time() + 5
        out["bye"] = None
        while True:
            first, hs = self._recv(deadline)
            if first is None:
                break
            if hget(hs, "cseq").endswith("BYE"):
                out["bye"] = int(first.split(" ")[1])
                break
        return out


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "uas":
        uas(sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5])
    else:
        sys.exit(__doc__)
