#!/usr/bin/env python3
# GET /v1/aggregates in an account's time zone, over HTTP: "timezone" set,
# shown and refused in the account document (400 naming it, nothing
# changed), the answer and each row saying the zone its days are in, today's
# calls on Sydney's date, from_ms/to_ms of local midnights picking that day
# alone, an account without a zone on UTC days as before, and a change of
# zone keeping the rows already written. The daemon's clock is the real
# one: the checks use the dates Python's zoneinfo gives for now (a run
# that straddles a midnight in Sydney or UTC is told, not failed).
import sys, os, time, datetime
from zoneinfo import ZoneInfo
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sbtest import TAP, Daemon, provision

SYD = "Australia/Sydney"
t = TAP()
d = t.owned(Daemon()).start()
syd = provision(d, account="syd", agents=("alice",))
plain = provision(d, account="plain", agents=("bob",))


def today(zone):
    return datetime.datetime.now(ZoneInfo(zone)).date()


def midnight_ms(day, zone):
    """Unix ms of the midnight that starts `day` on the zone's wall clock."""
    return int(datetime.datetime(day.year, day.month, day.day,
                                 tzinfo=ZoneInfo(zone)).timestamp() * 1000)


def calls(acct, prefix, n):
    for i in range(n):
        r = acct.post("/v1/calls", {"call": "%s%d" % (prefix, i), "queue": "support"})
        assert r.status == 201, r
        r = acct.post("/v1/calls/%s%d/abandon" % (prefix, i))
        assert r.status == 200, r


def account_rows(r):
    return [(x["day"], x["timezone"], x["offered"]) for x in r.json["days"] if x["queue"] is None]


r = d.admin("PUT", "/v1/accounts/syd", {"name": "Syd", "timezone": SYD})
t.is_((r.status, r.json.get("timezone")), (200, SYD), "PUT with timezone Australia/Sydney", r)
t.is_(d.admin("GET", "/v1/accounts/syd").json.get("timezone"), SYD, "GET shows it")
for bad in ("Australia/Sydneyy", "localtime", "", 10, "right/Australia/Sydney"):
    r = d.admin("PUT", "/v1/accounts/syd", {"name": "Syd", "timezone": bad})
    t.ok(r.status == 400 and r.field == "timezone" and "IANA" in r.body,
         "timezone %r: 400 naming it" % (bad,), r)
t.is_(d.admin("GET", "/v1/accounts/syd").json.get("timezone"), SYD, "... and nothing changed")
r = d.admin("GET", "/v1/accounts/plain")
t.ok("timezone" in r.json and r.json["timezone"] is None, "an account without one: null", r.json)

before = (today(SYD), today("UTC"))
calls(syd, "s", 3)
calls(plain, "p", 2)
after = (today(SYD), today("UTC"))
day = before[0]
if before != after:
    t.diag("the run straddled a midnight: the date checks are left out")

r = syd.get("/v1/aggregates")
t.is_((r.status, r.json.get("timezone")), (200, SYD), "the answer says its days are Sydney's")
if before == after:
    t.is_(account_rows(r), [(day.isoformat(), SYD, 3)], "today's three calls on Sydney's date")
    r = syd.get("/v1/aggregates?queue=support")
    t.is_([(x["day"], x["timezone"], x["offered"]) for x in r.json["days"]],
          [(day.isoformat(), SYD, 3)], "... and the queue's row")
    nxt = day + datetime.timedelta(days=1)
    r = syd.get("/v1/aggregates?from_ms=%d&to_ms=%d" % (midnight_ms(day, SYD), midnight_ms(nxt, SYD)))
    t.is_(account_rows(r), [(day.isoformat(), SYD, 3)], "[midnight, midnight) in Sydney: that day")
    r = syd.get("/v1/aggregates?from_ms=%d&to_ms=%d" % (midnight_ms(day, SYD) - 3600000,
                                                       midnight_ms(day, SYD)))
    t.is_(account_rows(r), [], "the hour before Sydney's midnight: the day before, no call")

r = plain.get("/v1/aggregates")
t.is_(r.json.get("timezone"), "UTC", "without a zone the days are UTC's")
if before == after:
    t.is_(account_rows(r), [(after[1].isoformat(), "UTC", 2)], "... today's on the UTC date")

# A change of zone: what was counted stays, later calls go to the new zone.
r = d.admin("PUT", "/v1/accounts/syd", {"name": "Syd", "timezone": None})
t.is_((r.status, r.json.get("timezone", "absent")), (200, None), "timezone null: back to UTC")
calls(syd, "u", 1)
r = syd.get("/v1/aggregates")
t.is_(r.json.get("timezone"), "UTC", "the answer is in UTC")
if before == after == (today(SYD), today("UTC")):
    t.is_(sorted(account_rows(r)), sorted([(day.isoformat(), SYD, 3), (after[1].isoformat(), "UTC", 1)]),
          "Sydney's row kept, the new call in a UTC row")
t.done()
