/*
** test_callflow.c — the call state machine as a gateway drives it: callers
** who give up while agents ring or while they wait, ring results racing
** timeouts and each other, agents leaving while they ring or wrap up,
** transfers, overflow chains, calls of one account's ids sent with
** another's, events sent twice, and a clock that steps back. Each step
** checks the actions returned and what is left: agents' statuses, the
** queue's waiting count, the call's state or record.
*/
#include "switchboard.h"
#include "tap.h"
#include "testkit.h"

#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "callkit.h"

/* Ring everyone free at once. */
static const char *const ALL = "local P = {}\n"
                               "function P.route(call, agents, ctx)\n"
                               "  if #agents == 0 then return {} end\n"
                               "  local ids = {}\n"
                               "  for _, a in ipairs(agents) do ids[#ids + 1] = a.id end\n"
                               "  return { ring = ids }\n"
                               "end\nreturn P\n";

/* 1. Callers who give up: while one agent rings, while several do, while
** waiting; an abandon of an answered call, of an ended one, of none. */
static void test_abandon(void)
{
    ok(account("ab") == 0 && policy("ab", "lw", LW) == 0 && policy("ab", "all", ALL) == 0 &&
           put(sb_queue_put, "ab",
               "{\"id\":\"q\",\"policy\":\"lw\",\"members\":[{\"agent\":\"a\"},{\"agent\":"
               "\"b\"}]}") == 0 &&
           put(sb_queue_put, "ab",
               "{\"id\":\"all\",\"policy\":\"all\",\"members\":[{\"agent\":\"a\"},{\"agent\":"
               "\"b\"},{\"agent\":\"c\"}]}") == 0,
       "abandon: queue q (a, b; longest idle), queue all (a, b, c; ring all)");
    ok(offer("ab", "c1", "q") == 0 && find(SB_ACT_RING, "c1", "a"), "abandon: c1 rings a");
    now_ms += 3000;
    ok(evf("ab", "{\"type\":\"abandon\",\"call\":\"c1\"}") == 0 && find(SB_ACT_CANCEL, "c1", "a") &&
           find(SB_ACT_END, "c1", NULL),
       "abandon: the caller hangs up while a rings: a's ring cancelled, c1 ends");
    const sb_action *e = find(SB_ACT_END, "c1", NULL);
    is_str(e ? e->reason : "-", "abandoned", "abandon: as abandoned");
    is_str(agent_status("ab", "a"), "available", "abandon: a is available again");
    is_int(agent_stat("ab", "a", "no_answers"), 0, "abandon: a cancelled ring is no no-answer");
    is_int(waiting("ab", "q"), 0, "abandon: nothing waits in q");
    is_int(tick(), 0, "abandon: a tick later");
    now_ms += 60000;
    ok(tick() == 0 && sb_result_count(res) == 0, "abandon: its ring timeout fires nothing");

    ok(offer("ab", "c2", "all") == 0 && count(SB_ACT_RING) == 3, "abandon: c2 rings a, b and c");
    ok(evf("ab", "{\"type\":\"abandon\",\"call\":\"c2\"}") == 0 && count(SB_ACT_CANCEL) == 3 &&
           count(SB_ACT_END) == 1,
       "abandon: the caller hangs up: three cancels, one end");
    ok(!strcmp(agent_status("ab", "a"), "available") &&
           !strcmp(agent_status("ab", "b"), "available") &&
           !strcmp(agent_status("ab", "c"), "available"),
       "abandon: a, b and c are all available");

    status("ab", "a", "paused");
    status("ab", "b", "paused");
    ok(offer("ab", "c3", "q") == 0 && find(SB_ACT_WAIT, "c3", NULL), "abandon: c3 waits in q");
    is_int(waiting("ab", "q"), 1, "abandon: q counts one waiting");
    now_ms += 7000;
    ok(evf("ab", "{\"type\":\"abandon\",\"call\":\"c3\"}") == 0 && find(SB_ACT_END, "c3", NULL) &&
           !find(SB_ACT_CANCEL, NULL, NULL),
       "abandon: c3 given up while waiting: it ends, nobody cancelled");
    is_int(waiting("ab", "q"), 0, "abandon: q counts none");
    is_int(call_num("ab", "c3", "wait"), 7000, "abandon: its record waited 7 s");
    is_str(call_field("ab", "c3", "outcome"), "abandoned", "abandon: record says abandoned");

    status("ab", "a", "available");
    offer("ab", "c4", "q");
    ring_result("ab", "c4", "a", "answered");
    is_int(evf("ab", "{\"type\":\"abandon\",\"call\":\"c4\"}"), SB_ESTATE,
           "abandon: of an answered call is refused (%s)", sb_result_message(res));
    ok(!strcmp(call_state("ab", "c4"), "connected") && !strcmp(agent_status("ab", "a"), "on_call"),
       "abandon: and changes nothing");
    evf("ab", "{\"type\":\"hangup\",\"call\":\"c4\"}");
    is_int(evf("ab", "{\"type\":\"abandon\",\"call\":\"c4\"}"), SB_ESTATE,
           "abandon: of an ended call: SB_ESTATE (%s)", sb_result_message(res));
    is_int(evf("ab", "{\"type\":\"abandon\",\"call\":\"nope\"}"), SB_ENOTFOUND,
           "abandon: of an unknown call: SB_ENOTFOUND (%s)", sb_result_message(res));
    is_int(evf("ab", "{\"type\":\"hangup\",\"call\":\"c4\"}"), SB_ESTATE,
           "abandon: a second hangup: SB_ESTATE");
    ok(!strcmp(agent_status("ab", "a"), "available") && agent_stat("ab", "a", "calls_taken") == 1,
       "abandon: a is available, one call taken");
}

/* Pause whoever missed two rings in a row; ring the longest idle of the rest. */
static const char *const AUTOPAUSE =
    "local P = {}\n"
    "function P.route(call, agents, ctx)\n"
    "  local best, pause\n"
    "  for _, a in ipairs(agents) do\n"
    "    if a.no_answers >= 2 then\n"
    "      pause = pause or {}\n"
    "      pause[#pause + 1] = { agent = a.id, reason = 'missed' }\n"
    "    elseif not best or a.idle_for > best.idle_for then best = a end\n"
    "  end\n"
    "  if not best then return { pause = pause } end\n"
    "  return { ring = best.id, pause = pause }\n"
    "end\nreturn P\n";

/* 2. Ring results: a timeout racing an answer, an answer after the caller
** left, a second answer, busy and rejected rings, no-answers counted up to
** an automatic pause. */
static void test_ring_results(void)
{
    ok(account("rr") == 0 && policy("rr", "all", ALL) == 0 && policy("rr", "ap", AUTOPAUSE) == 0 &&
           put(sb_queue_put, "rr",
               "{\"id\":\"q\",\"ring_timeout\":15,\"members\":[{\"agent\":\"a\"},{\"agent\":"
               "\"b\"}]}") == 0 &&
           put(sb_queue_put, "rr",
               "{\"id\":\"all\",\"policy\":\"all\",\"members\":[{\"agent\":\"a\"},{\"agent\":"
               "\"b\"}]}") == 0 &&
           put(sb_queue_put, "rr",
               "{\"id\":\"ap\",\"policy\":\"ap\",\"ring_timeout\":10,\"members\":[{\"agent\":"
               "\"a\"},{\"agent\":\"b\"}]}") == 0,
       "ring: queues q (fallback longest idle), all (ring all), ap (auto-pause)");
    offer("rr", "r1", "q");
    now_ms += 5000;
    ok(ring_result("rr", "r1", "a", "answered") == 0 && find(SB_ACT_CONNECT, "r1", "a"),
       "ring: a answers r1 at 5 s");
    now_ms += 15000;
    ok(tick() == 0 && sb_result_count(res) == 0 && !strcmp(call_state("rr", "r1"), "connected"),
       "ring: the ring timeout due after the answer changes nothing");
    is_int(agent_stat("rr", "a", "no_answers"), 0, "ring: no no-answer counted");
    is_int(ring_result("rr", "r1", "a", "answered"), SB_ESTATE,
           "ring: a second answer by a: SB_ESTATE (%s)", sb_result_message(res));
    is_str(agent_status("rr", "a"), "on_call", "ring: a still on the call");
    evf("rr", "{\"type\":\"hangup\",\"call\":\"r1\"}");

    offer("rr", "r2", "q");
    ok(find(SB_ACT_RING, "r2", "b") != NULL, "ring: r2 rings b (a idle since its call)");
    now_ms += 15000;
    ok(tick() == 0 && find(SB_ACT_CANCEL, "r2", "b") && find(SB_ACT_RING, "r2", "a"),
       "ring: at 15 s the timeout cancels b and rings a");
    is_int(agent_stat("rr", "b", "no_answers"), 1, "ring: b counts a no-answer");
    is_int(ring_result("rr", "r2", "b", "answered"), SB_ESTATE,
           "ring: b's answer after the timeout is refused (%s)", sb_result_message(res));
    ok(!strcmp(agent_status("rr", "b"), "available") && !strcmp(call_state("rr", "r2"), "ringing"),
       "ring: b stays available, r2 still rings a");
    now_ms += 1000;
    ok(ring_result("rr", "r2", "a", "busy") == 0 && find(SB_ACT_RING, "r2", "b"),
       "ring: a is busy: r2 rings b again");
    is_int(agent_stat("rr", "a", "no_answers"), 0, "ring: busy is no no-answer");
    ok(ring_result("rr", "r2", "b", "rejected") == 0 && find(SB_ACT_RING, "r2", NULL),
       "ring: b rejects: r2 rings again");
    evf("rr", "{\"type\":\"abandon\",\"call\":\"r2\"}");
    is_int(ring_result("rr", "r2", "a", "answered"), SB_ESTATE,
           "ring: an answer after the caller left: SB_ESTATE (%s)", sb_result_message(res));
    ok(!strcmp(agent_status("rr", "a"), "available") &&
           !strcmp(agent_status("rr", "b"), "available"),
       "ring: a and b available");

    offer("rr", "r3", "all");
    ok(count(SB_ACT_RING) == 2, "ring: r3 rings a and b");
    ok(ring_result("rr", "r3", "b", "answered") == 0 && find(SB_ACT_CANCEL, "r3", "a") &&
           find(SB_ACT_CONNECT, "r3", "b"),
       "ring: b answers, a cancelled");
    is_int(ring_result("rr", "r3", "a", "answered"), SB_ESTATE,
           "ring: a's answer a moment later is refused (%s)", sb_result_message(res));
    ok(!strcmp(agent_status("rr", "a"), "available") &&
           !strcmp(agent_status("rr", "b"), "on_call") &&
           !strcmp(call_field("rr", "r3", "agent"), "b"),
       "ring: r3 stays with b, a available");
    evf("rr", "{\"type\":\"hangup\",\"call\":\"r3\"}");

    /* Auto-pause: a misses twice, then is paused by the next decision. */
    offer("rr", "r4", "ap");
    const sb_action *r = find(SB_ACT_RING, "r4", NULL);
    char first[8];
    snprintf(first, sizeof first, "%s", r ? r->agent_id : "?");
    now_ms += 10000;
    tick();
    now_ms += 10000;
    tick();
    now_ms += 10000;
    tick();
    now_ms += 10000;
    tick();
    ok(find(SB_ACT_AGENT, NULL, NULL) != NULL, "ring: after two misses each, an agent is paused");
    ok(!strcmp(agent_status("rr", "a"), "paused") && !strcmp(agent_status("rr", "b"), "paused"),
       "ring: both a and b are paused (%s, %s)", agent_status("rr", "a"), agent_status("rr", "b"));
    is_str(call_state("rr", "r4"), "waiting", "ring: r4 waits");
    is_int(waiting("rr", "ap"), 1, "ring: ap counts it");
    is_int(agent_stat("rr", "a", "no_answers"), 2, "ring: a missed two in a row");
    ok(status("rr", "a", "available") == 0 && find(SB_ACT_RING, "r4", "a") &&
           !find(SB_ACT_AGENT, NULL, "a"),
       "ring: a set available again: r4 rings a, not paused again");
    is_int(agent_stat("rr", "a", "no_answers"), 0, "ring: back from the pause, no misses");
    is_str(agent_status("rr", "a"), "reserved", "ring: a is reserved (first rung: %s)", first);
    now_ms += 10000;
    ok(tick() == 0 && find(SB_ACT_RING, "r4", "a") && !find(SB_ACT_AGENT, NULL, "a"),
       "ring: a misses once more: rung again, not paused at one miss");
    ring_result("rr", "r4", "a", "answered");
    is_int(agent_stat("rr", "a", "no_answers"), 0, "ring: an answer resets the misses");
    evf("rr", "{\"type\":\"hangup\",\"call\":\"r4\"}");
    is_int(agent_stat("rr", "b", "no_answers"), 2, "ring: b, still paused, missed two");
    ok(put(sb_agent_put, "rr", AGENT("b", "")) == 0 &&
           !strcmp(agent_status("rr", "b"), "available"),
       "ring: b's document put back with status available");
    is_int(agent_stat("rr", "b", "no_answers"), 0, "ring: back through its document, no misses");
}

/* 3. Agents leaving: while ringing alone or beside others, on a call, in
** wrap-up; wrap-up ending by the clock; a status sent twice. */
static void test_agent_leaves(void)
{
    ok(account("al") == 0 && policy("al", "lw", LW) == 0 && policy("al", "all", ALL) == 0 &&
           put(sb_queue_put, "al",
               "{\"id\":\"q\",\"policy\":\"lw\",\"wrapup\":30,\"members\":[{\"agent\":\"a\"},"
               "{\"agent\":\"b\"}]}") == 0 &&
           put(sb_queue_put, "al",
               "{\"id\":\"all\",\"policy\":\"all\",\"members\":[{\"agent\":\"a\"},{\"agent\":"
               "\"b\"},{\"agent\":\"c\"}]}") == 0,
       "leave: queue q (a, b; 30 s wrap-up), queue all (a, b, c)");
    ok(offer("al", "l1", "q") == 0 && find(SB_ACT_RING, "l1", "a"), "leave: l1 rings a");
    ok(status("al", "a", "paused") == 0 && find(SB_ACT_CANCEL, "l1", "a") &&
           find(SB_ACT_RING, "l1", "b"),
       "leave: a pauses while ringing: its ring cancelled, l1 rings b");
    ok(!strcmp(agent_status("al", "a"), "paused") && !strcmp(agent_status("al", "b"), "reserved"),
       "leave: a paused, b reserved");
    ok(status("al", "b", "offline") == 0 && find(SB_ACT_CANCEL, "l1", "b") &&
           find(SB_ACT_WAIT, "l1", NULL) == NULL && !find(SB_ACT_RING, NULL, NULL),
       "leave: b goes offline too: l1 waits");
    is_str(call_state("al", "l1"), "waiting", "leave: l1 waiting");
    is_int(waiting("al", "q"), 1, "leave: q counts it");
    ok(status("al", "b", "available") == 0 && find(SB_ACT_RING, "l1", "b"),
       "leave: b back: l1 rings b");
    is_int(waiting("al", "q"), 0, "leave: q counts none");
    ring_result("al", "l1", "b", "answered");
    ok(status("al", "b", "paused") == 0 && sb_result_count(res) == 0 &&
           !strcmp(agent_status("al", "b"), "on_call"),
       "leave: b on the call asks to pause: it stays on the call (test_after_call)");
    status("al", "b", "available");
    now_ms += 60000;
    ok(evf("al", "{\"type\":\"hangup\",\"call\":\"l1\"}") == 0 &&
           !strcmp(agent_status("al", "b"), "wrap_up"),
       "leave: l1 ends; b wraps up");
    ok(status("al", "b", "paused") == 0 && !strcmp(agent_status("al", "b"), "paused"),
       "leave: b pauses during wrap-up");
    now_ms += 30000;
    ok(tick() == 0 && sb_result_count(res) == 0 && !strcmp(agent_status("al", "b"), "paused"),
       "leave: the wrap-up's end finds b paused and changes nothing");
    status("al", "a", "available");
    status("al", "b", "available");

    offer("al", "l2", "q");
    ok(find(SB_ACT_RING, "l2", NULL) != NULL, "leave: l2 rings");
    const sb_action *r = find(SB_ACT_RING, "l2", NULL);
    char who[8];
    snprintf(who, sizeof who, "%s", r ? r->agent_id : "?");
    ring_result("al", "l2", who, "answered");
    offer("al", "l3", "q");
    r = find(SB_ACT_RING, "l3", NULL);
    char other[8];
    snprintf(other, sizeof other, "%s", r ? r->agent_id : "?");
    status("al", other, "paused");
    is_str(call_state("al", "l3"), "waiting", "leave: l3 waits, %s talking, %s paused", who, other);
    evf("al", "{\"type\":\"hangup\",\"call\":\"l2\"}");
    ok(!find(SB_ACT_RING, "l3", NULL) && !strcmp(agent_status("al", who), "wrap_up"),
       "leave: %s hangs up and wraps up; l3 still waits", who);
    now_ms += 29999;
    ok(tick() == 0 && sb_result_count(res) == 0, "leave: nothing before the wrap-up ends");
    now_ms += 1;
    ok(tick() == 0 && find(SB_ACT_AGENT, NULL, who) && find(SB_ACT_RING, "l3", who),
       "leave: at 30 s %s is available again and rings for l3", who);
    const sb_action *ag = find(SB_ACT_AGENT, NULL, who);
    is_str(ag ? ag->status : "-", "available", "leave: the agent action says available");
    evf("al", "{\"type\":\"abandon\",\"call\":\"l3\"}");
    status("al", other, "available");

    /* Ring all: one leaves, the others ring on. */
    offer("al", "l4", "all");
    ok(count(SB_ACT_RING) == 3, "leave: l4 rings a, b and c");
    ok(status("al", "c", "offline") == 0 && count(SB_ACT_CANCEL) == 1 &&
           find(SB_ACT_CANCEL, "l4", "c") && !find(SB_ACT_RING, NULL, NULL),
       "leave: c goes offline: only c's ring is cancelled");
    is_str(call_state("al", "l4"), "ringing", "leave: l4 rings on");
    ok(ring_result("al", "l4", "a", "answered") == 0 && find(SB_ACT_CANCEL, "l4", "b"),
       "leave: a answers, b cancelled");
    evf("al", "{\"type\":\"hangup\",\"call\":\"l4\"}");
    status("al", "c", "available");

    /* "available" from an agent who rings: it is available for calls, and
    ** this one rings on. */
    offer("al", "l5", "q");
    r = find(SB_ACT_RING, "l5", NULL);
    snprintf(who, sizeof who, "%s", r ? r->agent_id : "?");
    ok(status("al", who, "available") == 0 && sb_result_count(res) == 0,
       "leave: %s, ringing, says available: nothing cancelled, nothing rung", who);
    ok(!strcmp(agent_status("al", who), "reserved") && !strcmp(call_state("al", "l5"), "ringing"),
       "leave: %s still rings for l5", who);
    evf("al", "{\"type\":\"abandon\",\"call\":\"l5\"}");

    /* The same status again changes nothing, and says nothing. */
    long long since = agent_stat("al", "c", "status_since_ms");
    now_ms += 1000;
    ok(status("al", "c", "available") == 0 && sb_result_count(res) == 0 &&
           agent_stat("al", "c", "status_since_ms") == since,
       "leave: available again: nothing changes");
    status("al", "c", "offline");
    since = agent_stat("al", "c", "status_since_ms");
    now_ms += 1000;
    ok(status("al", "c", "offline") == 0 && agent_stat("al", "c", "status_since_ms") == since,
       "leave: offline again: nothing changes");
    status("al", "c", "available");
}

/* An agent status event with a reason. */
static int status_why(const char *acct, const char *agent, const char *st, const char *why)
{
    return evf(acct,
               "{\"type\":\"agent_status\",\"agent\":\"%s\",\"status\":\"%s\",\"reason\":\"%s\"}",
               agent, st, why);
}

/* The agent's status after its call ("?": none), and that status's reason. */
static const char *next_status(const char *acct, const char *agent)
{
    return field(sb_agent_get(eng, acct, agent, res), "next_status");
}

static const char *next_reason(const char *acct, const char *agent)
{
    return field(sb_agent_get(eng, acct, agent, res), "next_reason");
}

/* Pause c, whatever the call (and leave the call waiting). */
static const char *const PAUSE_C = "local P = {}\n"
                                   "function P.route(call, agents, ctx)\n"
                                   "  return { pause = { agent = 'c', reason = 'policy' } }\n"
                                   "end\nreturn P\n";

/* 3b. A pause or offline asked for on a call: kept for after the call,
** taken at its end (no wrap-up) or at its wrap-up's end, also when the call
** is transferred away; "available" drops it, a new pause replaces its
** reason, the same again changes nothing; a status sent in wrap-up, or an
** agent put, and a policy's pause, and reads. */
static void test_after_call(void)
{
    ok(account("nx") == 0 && policy("nx", "lw", LW) == 0 && policy("nx", "pc", PAUSE_C) == 0 &&
           put(sb_queue_put, "nx",
               "{\"id\":\"q\",\"policy\":\"lw\",\"members\":[{\"agent\":\"a\"},{\"agent\":"
               "\"b\"}]}") == 0 &&
           put(sb_queue_put, "nx",
               "{\"id\":\"w\",\"policy\":\"lw\",\"wrapup\":30,\"members\":[{\"agent\":\"c\"}]}") ==
               0 &&
           put(sb_queue_put, "nx", "{\"id\":\"p\",\"policy\":\"pc\"}") == 0,
       "next: queue q (a, b), queue w (c; 30 s wrap-up), queue p (its policy pauses c)");

    /* No wrap-up: the pause comes with the call's end. */
    ok(offer("nx", "x1", "q") == 0 && ring_result("nx", "x1", "a", "answered") == 0,
       "next: a answers x1");
    long long since = agent_stat("nx", "a", "status_since_ms");
    now_ms += 5000;
    ok(status_why("nx", "a", "paused", "lunch") == 0 && sb_result_count(res) == 0,
       "next: a on the call pauses for lunch: accepted, no action (%s)", sb_result_message(res));
    ok(!strcmp(agent_status("nx", "a"), "on_call") &&
           agent_stat("nx", "a", "status_since_ms") == since,
       "next: a is still on the call, since the answer");
    ok(!strcmp(next_status("nx", "a"), "paused") && !strcmp(next_reason("nx", "a"), "lunch"),
       "next: a's next status: paused, lunch");
    json_t *l = get_json(sb_agent_list(eng, "nx", res));
    json_t *la = NULL, *lb = NULL, *v;
    size_t i;
    json_array_foreach(json_object_get(l, "agents"), i, v)
    {
        const char *id = json_string_value(json_object_get(v, "id"));
        if (id && !strcmp(id, "a")) la = v;
        if (id && !strcmp(id, "b")) lb = v;
    }
    const char *ls = json_string_value(json_object_get(la, "next_status"));
    const char *lr = json_string_value(json_object_get(la, "next_reason"));
    ok(la && lb && ls && !strcmp(ls, "paused") && lr && !strcmp(lr, "lunch") &&
           !json_object_get(lb, "next_status") && !json_object_get(lb, "next_reason"),
       "next: the agent list shows it for a, nothing for b");
    json_decref(l);
    ok(status_why("nx", "a", "paused", "lunch") == 0 && sb_result_count(res) == 0 &&
           !strcmp(next_reason("nx", "a"), "lunch"),
       "next: the same again changes nothing");
    ok(status_why("nx", "a", "paused", "coffee") == 0 &&
           !strcmp(next_status("nx", "a"), "paused") && !strcmp(next_reason("nx", "a"), "coffee"),
       "next: paused again for coffee: the reason is replaced");
    ok(status("nx", "a", "available") == 0 && sb_result_count(res) == 0 &&
           !strcmp(next_status("nx", "a"), "?") && !strcmp(next_reason("nx", "a"), "?") &&
           !strcmp(agent_status("nx", "a"), "on_call"),
       "next: available drops it (none to show)");
    ok(status("nx", "a", "offline") == 0 && !strcmp(next_status("nx", "a"), "offline") &&
           !strcmp(next_reason("nx", "a"), "?"),
       "next: offline, no reason");
    ok(status_why("nx", "a", "paused", "lunch") == 0 && !strcmp(next_status("nx", "a"), "paused"),
       "next: paused for lunch after all");
    ok(put(sb_agent_put, "nx", AGENT("a", ",\"weight\":2")) == 0 &&
           !strcmp(agent_status("nx", "a"), "on_call") &&
           !strcmp(next_status("nx", "a"), "paused") && !strcmp(next_reason("nx", "a"), "lunch"),
       "next: a's document put again (status available in it): on the call, still paused next");
    status("nx", "b", "paused");
    ok(offer("nx", "x2", "q") == 0 && find(SB_ACT_WAIT, "x2", NULL), "next: x2 waits in q");
    now_ms += 5000;
    ok(evf("nx", "{\"type\":\"hangup\",\"call\":\"x1\"}") == 0 && find(SB_ACT_END, "x1", NULL) &&
           !find(SB_ACT_RING, NULL, NULL),
       "next: x1 ends: a does not ring for x2");
    const sb_action *ag = find(SB_ACT_AGENT, NULL, "a");
    ok(ag && !strcmp(ag->status, "paused") && ag->reason && !strcmp(ag->reason, "lunch"),
       "next: the agent action says a is paused, for lunch");
    ok(!strcmp(agent_status("nx", "a"), "paused") &&
           !strcmp(field(sb_agent_get(eng, "nx", "a", res), "reason"), "lunch") &&
           !strcmp(next_status("nx", "a"), "?") &&
           agent_stat("nx", "a", "status_since_ms") == now_ms,
       "next: a is paused for lunch from now, nothing next");
    is_int(agent_stat("nx", "a", "talk_time"), 10000, "next: a's talk counts to the end");
    ok(status("nx", "a", "available") == 0 && find(SB_ACT_RING, "x2", "a"),
       "next: a back: x2 rings a");
    evf("nx", "{\"type\":\"abandon\",\"call\":\"x2\"}");
    status("nx", "b", "available");

    /* Wrap-up: first the wrap-up, then the status asked for. */
    ok(offer("nx", "y1", "w") == 0 && ring_result("nx", "y1", "c", "answered") == 0,
       "next: c answers y1 in w");
    ok(status_why("nx", "c", "offline", "end of shift") == 0, "next: c asks to go offline");
    ok(evf("nx", "{\"type\":\"hangup\",\"call\":\"y1\"}") == 0 && !find(SB_ACT_AGENT, NULL, "c") &&
           !strcmp(agent_status("nx", "c"), "wrap_up") &&
           !strcmp(next_status("nx", "c"), "offline") &&
           !strcmp(next_reason("nx", "c"), "end of shift"),
       "next: y1 ends: c wraps up first, offline next");
    ok(offer("nx", "y2", "w") == 0 && find(SB_ACT_WAIT, "y2", NULL), "next: y2 waits in w");
    ok(offer("nx", "y3", "p") == 0 && !find(SB_ACT_AGENT, NULL, "c") &&
           !strcmp(agent_status("nx", "c"), "wrap_up") &&
           !strcmp(next_status("nx", "c"), "offline"),
       "next: a policy's pause leaves c in wrap-up, offline next");
    evf("nx", "{\"type\":\"abandon\",\"call\":\"y3\"}");
    now_ms += 29999;
    ok(tick() == 0 && sb_result_count(res) == 0, "next: nothing before the wrap-up ends");
    now_ms += 1;
    ok(tick() == 0 && !find(SB_ACT_RING, NULL, NULL), "next: at 30 s c does not ring for y2");
    ag = find(SB_ACT_AGENT, NULL, "c");
    ok(ag && !strcmp(ag->status, "offline") && ag->reason && !strcmp(ag->reason, "end of shift"),
       "next: the agent action says c is offline: end of shift");
    ok(!strcmp(agent_status("nx", "c"), "offline") && !strcmp(next_status("nx", "c"), "?"),
       "next: c is offline, nothing next");
    ok(status("nx", "c", "available") == 0 && find(SB_ACT_RING, "y2", "c"),
       "next: c back: y2 rings c");

    /* A status sent in wrap-up applies at once, in place of the one asked
    ** for on the call. */
    ring_result("nx", "y2", "c", "answered");
    status_why("nx", "c", "paused", "lunch");
    evf("nx", "{\"type\":\"hangup\",\"call\":\"y2\"}");
    ok(status("nx", "c", "available") == 0 && !strcmp(agent_status("nx", "c"), "available") &&
           !strcmp(next_status("nx", "c"), "?"),
       "next: c, paused next, says available in wrap-up: available now, nothing next");
    now_ms += 30000;
    ok(tick() == 0 && sb_result_count(res) == 0 && !strcmp(agent_status("nx", "c"), "available"),
       "next: the wrap-up's end changes nothing");
    offer("nx", "y4", "w");
    ring_result("nx", "y4", "c", "answered");
    status("nx", "c", "offline");
    evf("nx", "{\"type\":\"hangup\",\"call\":\"y4\"}");
    ok(status_why("nx", "c", "paused", "meeting") == 0 &&
           !strcmp(agent_status("nx", "c"), "paused") &&
           !strcmp(field(sb_agent_get(eng, "nx", "c", res), "reason"), "meeting") &&
           !strcmp(next_status("nx", "c"), "?"),
       "next: c, offline next, pauses in wrap-up: paused now (meeting), nothing next");
    now_ms += 30000;
    ok(tick() == 0 && sb_result_count(res) == 0 && !strcmp(agent_status("nx", "c"), "paused"),
       "next: the wrap-up's end leaves c paused");
    ok(offer("nx", "y5", "p") == 0 && !strcmp(agent_status("nx", "c"), "paused"),
       "next: (a policy's pause of c, paused already, changes nothing)");
    evf("nx", "{\"type\":\"abandon\",\"call\":\"y5\"}");
    status("nx", "c", "available");
    offer("nx", "y6", "w");
    ring_result("nx", "y6", "c", "answered");
    evf("nx", "{\"type\":\"hangup\",\"call\":\"y6\"}");
    ok(offer("nx", "y7", "p") == 0 && find(SB_ACT_AGENT, NULL, "c") &&
           !strcmp(agent_status("nx", "c"), "paused"),
       "next: c in wrap-up with nothing next: a policy's pause pauses it");
    evf("nx", "{\"type\":\"abandon\",\"call\":\"y7\"}");
    status("nx", "c", "available");

    /* Transfers: the agent who lets the call go takes its status. */
    offer("nx", "t1", "q");
    const sb_action *r = find(SB_ACT_RING, "t1", NULL);
    char who[8];
    snprintf(who, sizeof who, "%s", r ? r->agent_id : "?");
    const char *other = strcmp(who, "a") ? "a" : "b";
    ring_result("nx", "t1", who, "answered");
    status_why("nx", who, "paused", "training");
    ok(evf("nx", "{\"type\":\"transfer\",\"call\":\"t1\",\"agent\":\"%s\"}", other) == 0 &&
           find(SB_ACT_RING, "t1", other),
       "next: %s, paused next, transfers t1 to %s, who rings", who, other);
    ag = find(SB_ACT_AGENT, NULL, who);
    ok(ag && !strcmp(ag->status, "paused") && ag->reason && !strcmp(ag->reason, "training") &&
           !strcmp(agent_status("nx", who), "paused") && !strcmp(next_status("nx", who), "?"),
       "next: %s is paused (training), the agent action says so", who);
    ring_result("nx", "t1", other, "answered");
    status_why("nx", other, "offline", "home");
    ok(evf("nx", "{\"type\":\"transfer\",\"call\":\"t1\",\"queue\":\"w\"}") == 0 &&
           find(SB_ACT_RING, "t1", "c"),
       "next: %s, offline next, transfers t1 to queue w: c rings", other);
    ag = find(SB_ACT_AGENT, NULL, other);
    ok(ag && !strcmp(ag->status, "offline") && ag->reason && !strcmp(ag->reason, "home") &&
           !strcmp(agent_status("nx", other), "offline"),
       "next: %s is offline (home), the agent action says so", other);
    ring_result("nx", "t1", "c", "answered");
    status("nx", "c", "offline");
    ok(offer("nx", "t2", "w") == 0 && find(SB_ACT_WAIT, "t2", NULL), "next: t2 waits in w");
    ok(evf("nx", "{\"type\":\"hangup\",\"call\":\"t1\"}") == 0 && !find(SB_ACT_RING, NULL, NULL) &&
           !find(SB_ACT_AGENT, NULL, NULL) && !strcmp(agent_status("nx", "c"), "wrap_up") &&
           !strcmp(next_status("nx", "c"), "offline"),
       "next: c hangs up t1 (in w now): wraps up, offline next");
    now_ms += 30000;
    ok(tick() == 0 && find(SB_ACT_AGENT, NULL, "c") && !find(SB_ACT_RING, NULL, NULL) &&
           !strcmp(agent_status("nx", "c"), "offline"),
       "next: c's wrap-up ends: offline, t2 not rung");
    evf("nx", "{\"type\":\"abandon\",\"call\":\"t2\"}");

    /* Deleting: refused on the call; in wrap-up the agent goes, and what
    ** it asked for with it. */
    status("nx", "c", "available");
    offer("nx", "d1", "w");
    ring_result("nx", "d1", "c", "answered");
    status("nx", "c", "offline");
    is_int(sb_agent_delete(eng, "nx", "c", res), SB_ESTATE,
           "next: c, on the call, offline next: not deleted (%s)", sb_result_message(res));
    evf("nx", "{\"type\":\"hangup\",\"call\":\"d1\"}");
    ok(sb_agent_delete(eng, "nx", "c", res) == 0 && put(sb_agent_put, "nx", AGENT("c", "")) == 0 &&
           !strcmp(agent_status("nx", "c"), "available") && !strcmp(next_status("nx", "c"), "?"),
       "next: deleted in wrap-up; a new c has nothing next");
    now_ms += 30000;
    ok(tick() == 0 && sb_result_count(res) == 0, "next: the old c's wrap-up end finds nobody");
    status("nx", "a", "available");
    status("nx", "b", "available");
}

/* 4. Transfers: to a queue, to an agent who is busy, offline or ringing,
** to the queue the call is in, of a call not answered yet. */
static void test_transfers(void)
{
    ok(account("tr") == 0 && policy("tr", "lw", LW) == 0 &&
           put(sb_queue_put, "tr",
               "{\"id\":\"q\",\"policy\":\"lw\",\"members\":[{\"agent\":\"a\"},{\"agent\":"
               "\"b\"}]}") == 0 &&
           put(sb_queue_put, "tr",
               "{\"id\":\"q2\",\"policy\":\"lw\",\"members\":[{\"agent\":\"c\"}]}") == 0,
       "transfer: queue q (a, b), queue q2 (c)");
    offer("tr", "t1", "q");
    ok(ring_result("tr", "t1", "a", "answered") == 0, "transfer: a answers t1");
    now_ms += 10000;
    ok(evf("tr", "{\"type\":\"transfer\",\"call\":\"t1\",\"queue\":\"q2\"}") == 0 &&
           find(SB_ACT_OVERFLOW, "t1", NULL) && find(SB_ACT_RING, "t1", "c"),
       "transfer: to q2: t1 rings c");
    is_str(agent_status("tr", "a"), "available", "transfer: a is free");
    is_int(waiting("tr", "q2"), 0, "transfer: q2 counts none waiting");
    ring_result("tr", "t1", "c", "answered");

    /* To agents who cannot take it: refused, nothing changes. */
    status("tr", "b", "offline");
    offer("tr", "t2", "q");
    ok(ring_result("tr", "t2", "a", "answered") == 0, "transfer: b offline, a answers t2");
    is_int(evf("tr", "{\"type\":\"transfer\",\"call\":\"t2\",\"agent\":\"c\"}"), SB_ESTATE,
           "transfer: to c, on a call: SB_ESTATE (%s)", sb_result_message(res));
    is_int(evf("tr", "{\"type\":\"transfer\",\"call\":\"t2\",\"agent\":\"b\"}"), SB_ESTATE,
           "transfer: to b, offline: SB_ESTATE (%s)", sb_result_message(res));
    is_int(evf("tr", "{\"type\":\"transfer\",\"call\":\"t2\",\"agent\":\"a\"}"), SB_ESTATE,
           "transfer: to a, who has it: SB_ESTATE (%s)", sb_result_message(res));
    is_int(evf("tr", "{\"type\":\"transfer\",\"call\":\"t2\",\"agent\":\"zz\"}"), SB_ENOTFOUND,
           "transfer: to an unknown agent: SB_ENOTFOUND (%s)", sb_result_message(res));
    is_int(evf("tr", "{\"type\":\"transfer\",\"call\":\"t2\",\"queue\":\"zz\"}"), SB_ENOTFOUND,
           "transfer: to an unknown queue: SB_ENOTFOUND (%s)", sb_result_message(res));
    ok(!strcmp(call_state("tr", "t2"), "connected") &&
           !strcmp(call_field("tr", "t2", "agent"), "a") &&
           !strcmp(agent_status("tr", "a"), "on_call") &&
           agent_stat("tr", "a", "talk_time") == 10000,
       "transfer: after the refusals t2 is still with a, a on the call");

    /* To its own queue: back in line there, a free to serve others. */
    now_ms += 5000;
    ok(evf("tr", "{\"type\":\"transfer\",\"call\":\"t2\",\"queue\":\"q\"}") == 0,
       "transfer: t2 to its own queue q (%s)", sb_result_message(res));
    ok(find(SB_ACT_RING, "t2", "a") != NULL, "transfer: t2 rings a, the only one free in q");
    is_int(waiting("tr", "q"), 0, "transfer: q counts none");
    ok(ring_result("tr", "t2", "a", "rejected") == 0 && !strcmp(call_state("tr", "t2"), "ringing"),
       "transfer: a rejects it: it rings again (%s)", call_state("tr", "t2"));
    evf("tr", "{\"type\":\"abandon\",\"call\":\"t2\"}");
    /* With another agent free, not back to the one who transferred it,
    ** though the policy would pick it (the first by id). */
    ok(policy("tr", "first",
              "local P = {}\nfunction P.route(call, agents, ctx)\n"
              "  local ids = {}\n"
              "  for _, a in ipairs(agents) do ids[#ids + 1] = a.id end\n"
              "  table.sort(ids)\n"
              "  if #ids == 0 then return {} end\n"
              "  return { ring = ids[1] }\nend\nreturn P\n") == 0 &&
           put(sb_queue_put, "tr",
               "{\"id\":\"qf\",\"policy\":\"first\",\"members\":[{\"agent\":\"a\"},"
               "{\"agent\":\"b\"}]}") == 0,
       "transfer: queue qf (a, b) rings the first by id");
    status("tr", "b", "available");
    ok(offer("tr", "t5", "qf") == 0 && ring_result("tr", "t5", "a", "answered") == 0,
       "transfer: a answers t5 in qf");
    now_ms += 5000;
    ok(evf("tr", "{\"type\":\"transfer\",\"call\":\"t5\",\"queue\":\"qf\"}") == 0 &&
           find(SB_ACT_RING, "t5", "b") && !find(SB_ACT_RING, "t5", "a"),
       "transfer: a transfers t5 to qf with b free: b rings, not a");
    evf("tr", "{\"type\":\"abandon\",\"call\":\"t5\"}");
    /* Another agent free, but one the policy does not ring: decided again
    ** with the agent who transferred it, not left waiting beside it. */
    ok(policy("tr", "onlya",
              "local P = {}\nfunction P.route(call, agents, ctx)\n"
              "  for _, a in ipairs(agents) do\n"
              "    if a.id == 'a' then return { ring = 'a' } end\n"
              "  end\n"
              "  return {}\nend\nreturn P\n") == 0 &&
           put(sb_queue_put, "tr",
               "{\"id\":\"qa\",\"policy\":\"onlya\",\"members\":[{\"agent\":\"a\"},"
               "{\"agent\":\"b\"}]}") == 0,
       "transfer: queue qa (a, b) rings a alone");
    ok(offer("tr", "t6", "qa") == 0 && ring_result("tr", "t6", "a", "answered") == 0,
       "transfer: a answers t6 in qa");
    now_ms += 5000;
    ok(evf("tr", "{\"type\":\"transfer\",\"call\":\"t6\",\"queue\":\"qa\"}") == 0 &&
           find(SB_ACT_RING, "t6", "a") && !find(SB_ACT_WAIT, "t6", NULL),
       "transfer: a transfers t6 to qa, b free but not one qa rings: a rings, no wait sent");
    json_t *cg = get_json(sb_call_get(eng, "tr", "t6", res));
    int waits = 0;
    size_t ti;
    json_t *te;
    json_array_foreach(json_object_get(cg, "trace"), ti, te) waits +=
        !strcmp(json_string_value(json_object_get(te, "decision")) ?: "", "wait");
    json_decref(cg);
    is_int(waits, 0, "transfer: ... and its trace has no wait decided without a");
    evf("tr", "{\"type\":\"abandon\",\"call\":\"t6\"}");
    status("tr", "b", "offline");
    is_str(call_field("tr", "t2", "outcome"), "answered", "transfer: t2's record: answered");
    is_int(waiting("tr", "q"), 0, "transfer: q counts none at the end");

    /* A call not answered yet: its ring cancelled, moved on. */
    status("tr", "b", "available");
    offer("tr", "t3", "q");
    const sb_action *r = find(SB_ACT_RING, "t3", NULL);
    char who[8];
    snprintf(who, sizeof who, "%s", r ? r->agent_id : "?");
    ok(evf("tr", "{\"type\":\"transfer\",\"call\":\"t3\",\"agent\":\"%s\"}", who) == SB_ESTATE,
       "transfer: a ringing call to the agent it rings: SB_ESTATE (%s)", sb_result_message(res));
    is_str(agent_status("tr", who), "reserved", "transfer: %s still rings", who);
    const char *to = strcmp(who, "a") ? "a" : "b";
    ok(evf("tr", "{\"type\":\"transfer\",\"call\":\"t3\",\"agent\":\"%s\"}", to) == 0 &&
           find(SB_ACT_CANCEL, "t3", who) && find(SB_ACT_RING, "t3", to),
       "transfer: the ringing call to %s: %s cancelled, %s rings", to, who, to);
    is_str(agent_status("tr", who), "available", "transfer: %s is free", who);
    evf("tr", "{\"type\":\"transfer\",\"call\":\"t3\",\"queue\":\"q2\"}");
    ok(find(SB_ACT_CANCEL, "t3", to) && find(SB_ACT_OVERFLOW, "t3", NULL) &&
           !strcmp(call_state("tr", "t3"), "waiting"),
       "transfer: then to q2: %s cancelled, it waits there (c is busy)", to);
    is_int(waiting("tr", "q2"), 1, "transfer: q2 counts it");
    evf("tr", "{\"type\":\"hangup\",\"call\":\"t1\"}");
    ok(find(SB_ACT_RING, "t3", "c") != NULL, "transfer: c hangs up t1 and rings for t3");
    evf("tr", "{\"type\":\"abandon\",\"call\":\"t3\"}");
    is_str(call_field("tr", "t3", "outcome"), "abandoned", "transfer: t3 abandoned");
    is_int(waiting("tr", "q2"), 0, "transfer: q2 counts none");
    ok(!strcmp(agent_status("tr", "a"), "available") &&
           !strcmp(agent_status("tr", "b"), "available") &&
           !strcmp(agent_status("tr", "c"), "available"),
       "transfer: everyone free at the end");
}

/* Queue id of acct, routed by policy pol, a call waiting there at most
** max_wait seconds, then moved to queue overflow (none when NULL). */
static int wait_queue(const char *acct, const char *id, const char *pol, int max_wait,
                      const char *overflow)
{
    char json[256];
    snprintf(json, sizeof json, "{\"id\":\"%s\",\"policy\":\"%s\",\"max_wait\":%d%s%s%s}", id, pol,
             max_wait, overflow ? ",\"overflow\":\"" : "", overflow ? overflow : "",
             overflow ? "\"" : "");
    return put(sb_queue_put, acct, json);
}

/* 5. Max wait and max length with overflow queues, overflows in a loop. */
/* sb_stats' decisions of a kind. */
static long long decisions(const char *kind)
{
    if (sb_stats(eng, res)) return -1;
    json_t *o = json_loads(sb_result_json(res, NULL), 0, NULL);
    long long n = json_integer_value(json_object_get(json_object_get(o, "decisions"), kind));
    json_decref(o);
    return n;
}

static void test_overflow(void)
{
    ok(account("ov") == 0 && policy("ov", "lw", LW) == 0 &&
           wait_queue("ov", "b", "lw", 30, NULL) == 0 &&
           wait_queue("ov", "a", "lw", 30, "b") == 0 && wait_queue("ov", "b", "lw", 30, "a") == 0,
       "overflow: queues a and b (no members), 30 s max wait, each overflowing to the other");
    long long moved = decisions("move"), waited = decisions("wait");
    ok(offer("ov", "o1", "a") == 0 && find(SB_ACT_WAIT, "o1", NULL), "overflow: o1 waits in a");
    int moves = 0, ended = 0;
    const char *why = "-";
    static char whybuf[64];
    for (int i = 0; i < 20 && !ended; i++) {
        now_ms += 30000;
        tick();
        moves += count(SB_ACT_OVERFLOW);
        const sb_action *r = find(SB_ACT_REJECT, "o1", NULL);
        if (r) {
            snprintf(whybuf, sizeof whybuf, "%s", r->reason ? r->reason : "-");
            why = whybuf;
        }
        ended = find(SB_ACT_END, "o1", NULL) != NULL;
    }
    ok(ended, "overflow: the loop ends: o1 is turned away after %d moves (%s)", moves, why);
    ok(decisions("move") == moved && decisions("wait") == waited + 1 + moves,
       "overflow: max wait's overflows are no policy decisions (decisions.move as before); "
       "the wait decided in each queue reached is one (API.md, /metrics)");
    ok(waiting("ov", "a") == 0 && waiting("ov", "b") == 0, "overflow: neither queue counts it");
    ok(tick() == 0 && sb_next_deadline(eng) == INT64_MAX, "overflow: no timer left");

    /* Full queues overflowing into each other. */
    ok(put(sb_queue_put, "ov",
           "{\"id\":\"b\",\"policy\":\"lw\",\"max_length\":1,\"overflow\":\"a\"}") == 0 &&
           put(sb_queue_put, "ov",
               "{\"id\":\"a\",\"policy\":\"lw\",\"max_length\":1,\"overflow\":\"b\"}") == 0,
       "overflow: a and b now hold one call each, overflowing to each other");
    offer("ov", "o2", "a");
    offer("ov", "o3", "a");
    ok(waiting("ov", "a") == 1 && waiting("ov", "b") == 1, "overflow: o2 waits in a, o3 in b");
    ok(offer("ov", "o4", "a") == 0 && find(SB_ACT_REJECT, "o4", NULL) &&
           find(SB_ACT_END, "o4", NULL),
       "overflow: o4 finds both full and is turned away");
    const sb_action *r = find(SB_ACT_REJECT, "o4", NULL);
    is_str(r ? r->reason : "-", "queue full", "overflow: as full, the reason of every queue");
    is_int(count(SB_ACT_OVERFLOW), 0, "overflow: not sent round the loop of full queues");
    ok(waiting("ov", "a") == 1 && waiting("ov", "b") == 1, "overflow: a and b still hold one each");
    is_int(sb_queue_delete(eng, "ov", "b", res), SB_ESTATE,
           "overflow: b cannot be deleted while a overflows into it (%s)", sb_result_message(res));
    evf("ov", "{\"type\":\"abandon\",\"call\":\"o2\"}");
    evf("ov", "{\"type\":\"abandon\",\"call\":\"o3\"}");
    ok(waiting("ov", "a") == 0 && waiting("ov", "b") == 0, "overflow: none waiting at the end");

    /* Max wait in a into a full b, whose overflow is a again: the caller
    ** has had a, and is turned away, not sent back to wait there again. */
    ok(put(sb_queue_put, "ov",
           "{\"id\":\"a\",\"policy\":\"lw\",\"max_wait\":20,\"max_length\":1,"
           "\"overflow\":\"b\"}") == 0,
       "overflow: a now has a 20 s max wait");
    offer("ov", "o5", "a");
    offer("ov", "o6", "a");
    ok(waiting("ov", "a") == 1 && waiting("ov", "b") == 1, "overflow: o5 waits in a, o6 in b");
    now_ms += 20000;
    int trc = tick();
    r = find(SB_ACT_REJECT, "o5", NULL);
    ok(trc == 0 && find(SB_ACT_OVERFLOW, "o5", NULL) && r && find(SB_ACT_END, "o5", NULL) &&
           !strcmp(r->reason, "queue full (overflow queue 'a' had the call already)"),
       "overflow: at 20 s o5 goes on to b, full, and is turned away (%s)", r ? r->reason : "-");
    is_int(waiting("ov", "a"), 0, "overflow: o5 does not wait in a again");
    evf("ov", "{\"type\":\"abandon\",\"call\":\"o6\"}");
    ok(waiting("ov", "a") == 0 && waiting("ov", "b") == 0, "overflow: none waiting at the end");
}

/* Max wait in queues overflowing into each other: a call goes on to each
** queue of the loop once, waiting there its max wait, and is turned away,
** saying why, when the next would be one that had it already (not sent
** round and round until it has moved too often). The moves and the
** reason of `call`, offered to `queue`, one max wait at a time. */
static int loop_moves(const char *call, const char *queue, char *path, size_t cap, char *why,
                      size_t wcap, int step_s)
{
    int moves = 0, ended = 0;
    snprintf(path, cap, "%s", queue);
    snprintf(why, wcap, "-");
    if (offer("ml", call, queue) || !find(SB_ACT_WAIT, call, NULL)) return -1;
    for (int i = 0; i < 600 / step_s && !ended; i++) {
        now_ms += step_s * 1000;
        tick();
        const sb_action *o = find(SB_ACT_OVERFLOW, call, NULL);
        if (o) {
            size_t n = strlen(path);
            snprintf(path + n, cap - n, ">%s", o->queue_id);
            moves++;
        }
        const sb_action *r = find(SB_ACT_REJECT, call, NULL);
        if (r) snprintf(why, wcap, "%s", r->reason ? r->reason : "-");
        ended = find(SB_ACT_END, call, NULL) != NULL;
    }
    return ended ? moves : -1;
}

static void test_maxwait_loop(void)
{
    ok(account("ml") == 0 && policy("ml", "lw", LW) == 0 &&
           wait_queue("ml", "c", "lw", 30, NULL) == 0 &&
           wait_queue("ml", "b", "lw", 30, "c") == 0 && wait_queue("ml", "a", "lw", 30, "b") == 0 &&
           wait_queue("ml", "c", "lw", 30, "a") == 0 && wait_queue("ml", "x", "lw", 30, "a") == 0,
       "maxwait loop: a > b > c > a, and x > a; 30 s max wait each, no members");
    char path[128], why[128];
    int moves = loop_moves("l1", "a", path, sizeof path, why, sizeof why, 30);
    is_str(path, "a>b>c", "maxwait loop: offered to a, the call waits in a, b and c once each");
    is_int(moves, 2, "maxwait loop: two moves");
    is_str(why, "max wait exceeded (overflow queue 'a' had the call already)",
           "maxwait loop: then turned away, saying why");
    moves = loop_moves("l2", "x", path, sizeof path, why, sizeof why, 30);
    is_str(path, "x>a>b>c", "maxwait loop: offered to x, into the loop and round it once");
    is_str(why, "max wait exceeded (overflow queue 'a' had the call already)",
           "maxwait loop: turned away when it would go back to a");
    moves = loop_moves("l3", "c", path, sizeof path, why, sizeof why, 30);
    is_str(path, "c>a>b", "maxwait loop: offered to c, on to a and b");
    is_str(why, "max wait exceeded (overflow queue 'c' had the call already)",
           "maxwait loop: and not back to c");
    /* A policy deciding again every 5 s: more decisions than the call's
    ** trace keeps, the same way round. */
    ok(policy("ml", "w5",
              "local P = {}\nfunction P.route(call, agents, ctx) return { wait = 5 } end\n"
              "return P\n") == 0 &&
           wait_queue("ml", "e", "w5", 60, NULL) == 0 &&
           wait_queue("ml", "d", "w5", 60, "e") == 0 && wait_queue("ml", "e", "w5", 60, "d") == 0,
       "maxwait loop: d > e > d, 60 s max wait, a policy waiting 5 s at a time");
    moves = loop_moves("l4", "d", path, sizeof path, why, sizeof why, 5);
    is_str(path, "d>e", "maxwait loop: re-decided every 5 s, the call still goes round once");
    is_str(why, "max wait exceeded (overflow queue 'd' had the call already)",
           "maxwait loop: and is turned away saying why");
    ok(waiting("ml", "a") == 0 && waiting("ml", "b") == 0 && waiting("ml", "c") == 0 &&
           waiting("ml", "x") == 0 && waiting("ml", "d") == 0 && waiting("ml", "e") == 0,
       "maxwait loop: no queue counts a call");
    ok(tick() == 0 && sb_next_deadline(eng) == INT64_MAX, "maxwait loop: no timer left");
}

/* Policy wake-ups due in the same millisecond (an agent's no-answer delay
** ends for every waiting call at once) fire in line order, not by call id:
** the caller at the head gets the agent. */
static const char *const HOLD10 = "local P = {}\n"
                                  "function P.route(call, agents, ctx)\n"
                                  "  local t = math.floor(ctx.now)\n"
                                  "  if #agents == 0 or t % 10 ~= 0 then\n"
                                  "    return { wait = 10 - t % 10 }\n"
                                  "  end\n"
                                  "  return { ring = agents[1].id }\n"
                                  "end\nreturn P\n";

static void test_wake_order(void)
{
    ok(account("wo") == 0 && policy("wo", "h", HOLD10) == 0 &&
           put(sb_queue_put, "wo",
               "{\"id\":\"q\",\"policy\":\"h\",\"members\":[{\"agent\":\"a\"}]}") == 0 &&
           status("wo", "b", "offline") == 0 && status("wo", "c", "offline") == 0,
       "wake order: queue q (a), its policy rings only on whole ten seconds");
    now_ms += 10000 - now_ms % 10000 + 1000;
    ok(offer("wo", "zz", "q") == 0 && find(SB_ACT_WAIT, "zz", NULL), "wake order: zz waits");
    now_ms += 1000;
    ok(offer("wo", "aa", "q") == 0 && find(SB_ACT_WAIT, "aa", NULL),
       "wake order: aa waits behind it, both until the same second");
    now_ms += 8000;
    ok(tick() == 0 && find(SB_ACT_RING, "zz", "a") && !find(SB_ACT_RING, "aa", NULL),
       "wake order: both wake at once: a rings for zz, first in line, not aa (first by id)");
    evf("wo", "{\"type\":\"abandon\",\"call\":\"zz\"}");
    evf("wo", "{\"type\":\"abandon\",\"call\":\"aa\"}");
    is_int(waiting("wo", "q"), 0, "wake order: none waiting at the end");
}

/* ctx.queue.logged_in and paused: the members not offline, and those
** paused, whatever the call (a queue app_queue would call empty). */
static const char *const STAFF = "local P = {}\n"
                                 "function P.route(call, agents, ctx)\n"
                                 "  local q = ctx.queue\n"
                                 "  return { reject = 'in ' .. q.logged_in .. ' paused ' .. "
                                 "q.paused }\n"
                                 "end\nreturn P\n";

static const char *staff_of(const char *call)
{
    static char why[64];
    const sb_action *r = offer("sf", call, "q") == 0 ? find(SB_ACT_REJECT, call, NULL) : NULL;
    snprintf(why, sizeof why, "%s", r && r->reason ? r->reason : "-");
    return why;
}

static void test_queue_staff(void)
{
    ok(account("sf") == 0 && policy("sf", "staff", STAFF) == 0 &&
           put(sb_queue_put, "sf",
               "{\"id\":\"q\",\"policy\":\"staff\",\"members\":[{\"agent\":\"a\"},{"
               "\"agent\":\"b\"},{\"agent\":\"c\"}]}") == 0,
       "staff: queue q (a, b, c), its policy says what it sees");
    is_str(staff_of("f1"), "in 3 paused 0", "staff: all three free");
    ok(status("sf", "b", "paused") == 0 && status("sf", "c", "offline") == 0,
       "staff: b pauses, c goes offline");
    is_str(staff_of("f2"), "in 2 paused 1", "staff: two logged in, one of them paused");
    ok(status("sf", "a", "offline") == 0 && status("sf", "b", "offline") == 0,
       "staff: a and b go offline too");
    is_str(staff_of("f3"), "in 0 paused 0", "staff: nobody logged in");
}

/* A queue left with nobody to take its calls: its waiting calls are decided
** again at once, whichever way the last one went (a status event, a pause
** the policy made, a status after a call, an agent document, a member
** removed, an agent deleted), so a policy can turn them away the moment the
** queue empties (app_queue's leavewhenempty). Calls keep their wake-ups
** while someone can take them. */
static const char *const EMPTY =
    "local P = {}\n"
    "function P.route(call, agents, ctx)\n"
    "  local q = ctx.queue\n"
    "  if q.logged_in - q.paused == 0 then return { reject = 'nobody to answer' } end\n"
    "  if call.attrs.pause then\n"
    "    return { wait = 600, pause = { { agent = call.attrs.pause, reason = 'told' } } }\n"
    "  end\n"
    "  return { wait = 600 }\n"
    "end\nreturn P\n";

static int emptied_rejects(const char *call)
{
    const sb_action *r = find(SB_ACT_REJECT, call, NULL);
    return r && r->reason && !strcmp(r->reason, "nobody to answer");
}

static void test_queue_emptied(void)
{
    ok(account("em") == 0 && policy("em", "empty", EMPTY) == 0 &&
           put(sb_queue_put, "em",
               "{\"id\":\"q\",\"policy\":\"empty\",\"members\":[{\"agent\":\"a\"},{\"agent\":"
               "\"b\"}]}") == 0 &&
           status("em", "c", "offline") == 0,
       "emptied: queue q (a, b); its calls wait 600 s, turned away when nobody can answer");
    ok(offer("em", "e1", "q") == 0 && find(SB_ACT_WAIT, "e1", NULL), "emptied: e1 waits");
    now_ms += 1000;
    ok(offer("em", "e2", "q") == 0 && find(SB_ACT_WAIT, "e2", NULL), "emptied: e2 waits behind");
    ok(status("em", "a", "offline") == 0 && tick() == 0 && !find(SB_ACT_REJECT, "e1", NULL) &&
           !find(SB_ACT_REJECT, "e2", NULL),
       "emptied: a goes offline: b is there, both keep waiting");
    ok(status("em", "b", "paused") == 0 && sb_next_deadline(eng) <= now_ms,
       "emptied: b pauses: nobody left to answer, a timer is due now");
    ok(tick() == 0 && emptied_rejects("e1") && emptied_rejects("e2"),
       "emptied: the tick decides both again: turned away");
    ok(find(SB_ACT_REJECT, "e1", NULL) < find(SB_ACT_REJECT, "e2", NULL),
       "emptied: in line order, e1 first");
    is_str(call_field("em", "e2", "reason"), "nobody to answer", "emptied: e2's record says why");
    is_int(waiting("em", "q"), 0, "emptied: nothing waits");

    /* The last agent paused by the policy, deciding another call. */
    status("em", "a", "available");
    status("em", "b", "available");
    ok(offer("em", "e3", "q") == 0 && find(SB_ACT_WAIT, "e3", NULL), "emptied: e3 waits again");
    status("em", "b", "offline");
    ok(evf("em",
           "{\"type\":\"offer\",\"call\":\"e4\",\"queue\":\"q\",\"attrs\":{\"pause\":\"a\"}}") ==
               0 &&
           find(SB_ACT_WAIT, "e4", NULL) && find(SB_ACT_AGENT, NULL, NULL),
       "emptied: e4's decision pauses a, the last one there");
    ok(tick() == 0 && emptied_rejects("e3") && !find(SB_ACT_REJECT, "e4", NULL),
       "emptied: e3 is decided again at once and turned away; e4 keeps what its own "
       "decision, which made the pause, said");
    evf("em", "{\"type\":\"abandon\",\"call\":\"e4\"}");

    /* After a call: the status asked for on it comes with its end. */
    status("em", "a", "available");
    ok(policy("em", "lw", LW) == 0 &&
           put(sb_queue_put, "em",
               "{\"id\":\"r\",\"policy\":\"lw\",\"members\":[{\"agent\":\"a\"}]}") == 0,
       "emptied: queue r (a), longest idle");
    ok(offer("em", "r1", "r") == 0 && find(SB_ACT_RING, "r1", "a") &&
           ring_result("em", "r1", "a", "answered") == 0,
       "emptied: a answers r1");
    ok(offer("em", "e5", "q") == 0 && find(SB_ACT_WAIT, "e5", NULL),
       "emptied: e5 waits in q: a, on a call, could still take it");
    ok(status("em", "a", "offline") == 0 && tick() == 0 && !find(SB_ACT_REJECT, "e5", NULL),
       "emptied: a asks to go offline after the call: e5 keeps waiting");
    ok(evf("em", "{\"type\":\"hangup\",\"call\":\"r1\"}") == 0 &&
           !strcmp(agent_status("em", "a"), "offline"),
       "emptied: r1 ends, a goes offline");
    ok(tick() == 0 && emptied_rejects("e5"), "emptied: e5 is decided again and turned away");

    /* An agent document, a member removed, an agent deleted. */
    status("em", "a", "available");
    ok(offer("em", "e6", "q") == 0 && find(SB_ACT_WAIT, "e6", NULL), "emptied: e6 waits");
    ok(put(sb_agent_put, "em",
           "{\"id\":\"a\",\"devices\":{\"softphone\":\"sip:a@x\"},\"status\":\"offline\"}") == 0,
       "emptied: a's document puts it offline");
    ok(tick() == 0 && emptied_rejects("e6"), "emptied: e6 is turned away");
    status("em", "a", "available");
    ok(offer("em", "e7", "q") == 0 && find(SB_ACT_WAIT, "e7", NULL), "emptied: e7 waits");
    ok(sb_member_delete(eng, "em", "q", "a", res) == 0 && tick() == 0 && emptied_rejects("e7"),
       "emptied: a leaves q: e7 is turned away");
    sb_member_put(eng, "em", "q", "a", NULL, 0, res);
    ok(offer("em", "e8", "q") == 0 && find(SB_ACT_WAIT, "e8", NULL),
       "emptied: a back in q, e8 waits");
    ok(put(sb_queue_put, "em",
           "{\"id\":\"q\",\"policy\":\"empty\",\"members\":[{\"agent\":\"b\"}]}") == 0 &&
           tick() == 0 && emptied_rejects("e8"),
       "emptied: q's members now b alone, offline: e8 is turned away");
    put(sb_queue_put, "em", "{\"id\":\"q\",\"policy\":\"empty\",\"members\":[{\"agent\":\"a\"}]}");
    ok(offer("em", "e9", "q") == 0 && find(SB_ACT_WAIT, "e9", NULL), "emptied: e9 waits");
    ok(sb_agent_delete(eng, "em", "a", res) == 0 && tick() == 0 && emptied_rejects("e9"),
       "emptied: a deleted: e9 is turned away");
    is_int(waiting("em", "q"), 0, "emptied: nothing waits at the end");

    /* Forty in line, their ids against their order: decided in line order,
    ** 32 a millisecond. */
    ok(put(sb_agent_put, "em", AGENT("a", "")) == 0 &&
           put(sb_queue_put, "em",
               "{\"id\":\"q\",\"policy\":\"empty\",\"members\":[{\"agent\":\"a\"}]}") == 0 &&
           status("em", "a", "available") == 0,
       "emptied: a again, q's only member");
    int lined = 0;
    for (int i = 40; i >= 1; i--) {
        char id[8];
        snprintf(id, sizeof id, "k%02d", i);
        now_ms += 10;
        lined += offer("em", id, "q") == 0 && find(SB_ACT_WAIT, id, NULL);
    }
    is_int(lined, 40, "emptied: forty wait, k40 first, k01 last");
    status("em", "a", "paused");
    char order[256] = "";
    size_t o = 0;
    for (int round = 0; round < 2; round++, now_ms += 1) {
        tick();
        for (size_t i = 0; i < sb_result_count(res); i++) {
            const sb_action *x = sb_result_action(res, i);
            if (x->type == SB_ACT_REJECT && o + 4 < sizeof order)
                o += (size_t)snprintf(order + o, sizeof order - o, "%s ", x->call_id + 1);
        }
    }
    char want[256] = "";
    size_t w = 0;
    for (int i = 40; i >= 1; i--)
        w += (size_t)snprintf(want + w, sizeof want - w, "%02d ", i);
    is_str(order, want, "emptied: all forty turned away in line order, over two milliseconds");
}

/* A member paused in one queue (app_queue's pause in one queue): not rung
** for that queue's calls, rung for its others'; counted in that queue's
** ctx.queue.paused; kept when a document leaves the flag out; lifting it
** lets a waiting call ring; pausing the last one there wakes the line. */
static int member_paused(const char *acct, const char *queue, const char *agent, int paused)
{
    const char *json = paused ? "{\"paused\":true}" : "{\"paused\":false}";
    return sb_member_put(eng, acct, queue, agent, json, strlen(json), res);
}

static void test_member_pause(void)
{
    ok(account("mp") == 0 && policy("mp", "lw", LW) == 0 && policy("mp", "staff", STAFF) == 0 &&
           put(sb_queue_put, "mp",
               "{\"id\":\"q\",\"policy\":\"lw\",\"members\":[{\"agent\":\"a\"},{\"agent\":\"b\","
               "\"paused\":true}]}") == 0 &&
           put(sb_queue_put, "mp",
               "{\"id\":\"r\",\"policy\":\"lw\",\"members\":[{\"agent\":\"b\"}]}") == 0 &&
           put(sb_queue_put, "mp",
               "{\"id\":\"s\",\"policy\":\"staff\",\"members\":[{\"agent\":\"a\"},{\"agent\":"
               "\"b\"},{\"agent\":\"c\"}]}") == 0,
       "member pause: q (a, b paused there), r (b), s (a, b, c; says what it sees)");
    is_int(member_paused("mp", "q", "a", 1), 0, "member pause: a paused in q too");
    is_str(agent_status("mp", "a"), "available", "member pause: a is still available");
    ok(offer("mp", "p1", "q") == 0 && find(SB_ACT_WAIT, "p1", NULL),
       "member pause: p1 in q waits: nobody unpaused there");
    ok(offer("mp", "p2", "r") == 0 && find(SB_ACT_RING, "p2", "b"),
       "member pause: p2 in r rings b, paused in q only");
    evf("mp", "{\"type\":\"abandon\",\"call\":\"p2\"}");
    json_t *q = get_json(sb_queue_get(eng, "mp", "q", res));
    json_t *m0 = json_array_get(json_object_get(q, "members"), 0);
    ok(json_is_true(json_object_get(m0, "paused")), "member pause: GET q shows a paused");
    json_decref(q);
    ok(put(sb_queue_put, "mp",
           "{\"id\":\"q\",\"policy\":\"lw\",\"members\":[{\"agent\":\"a\",\"tier\":2},{\"agent\":"
           "\"b\"}]}") == 0 &&
           !find(SB_ACT_RING, "p1", NULL),
       "member pause: q's document put again without the flag: both stay paused there");
    ok(member_paused("mp", "q", "a", 0) == 0 && find(SB_ACT_RING, "p1", "a"),
       "member pause: a's pause in q lifted: p1 rings a at once");
    ring_result("mp", "p1", "a", "answered");
    evf("mp", "{\"type\":\"hangup\",\"call\":\"p1\"}");
    ok(put(sb_queue_put, "mp",
           "{\"id\":\"s\",\"policy\":\"staff\",\"members\":[{\"agent\":\"a\",\"paused\":true},{"
           "\"agent\":\"b\"},{\"agent\":\"c\"}]}") == 0,
       "member pause: a paused in s by s's document");
    const sb_action *r = offer("mp", "p3", "s") == 0 ? find(SB_ACT_REJECT, "p3", NULL) : NULL;
    is_str(r ? r->reason : "-", "in 3 paused 1", "member pause: s's policy counts a as paused");

    ok(policy("mp", "empty", EMPTY) == 0 &&
           put(sb_queue_put, "mp",
               "{\"id\":\"e\",\"policy\":\"empty\",\"members\":[{\"agent\":\"c\"}]}") == 0,
       "member pause: e (c), turning callers away when nobody can answer");
    ok(offer("mp", "p4", "e") == 0 && find(SB_ACT_WAIT, "p4", NULL), "member pause: p4 waits");
    ok(member_paused("mp", "e", "c", 1) == 0 && tick() == 0 && emptied_rejects("p4"),
       "member pause: c paused in e, its last: p4 is decided again and turned away");

    is_int(sb_member_put(eng, "mp", "q", "a", "{\"paused\":\"yes\"}", 16, res), SB_EINVAL,
           "member pause: a paused that is not a boolean is refused (%s)", sb_result_message(res));
    is_str(sb_result_field(res), "paused", "member pause: naming the field");
    is_int(put(sb_queue_put, "mp",
               "{\"id\":\"q\",\"policy\":\"lw\",\"members\":[{\"agent\":\"a\",\"paused\":1}]}"),
           SB_EINVAL, "member pause: in a queue's document too (%s)", sb_result_message(res));
    is_str(sb_result_field(res), "members[0].paused", "member pause: naming the member");
}

/* 6. Deleting agents and queues with calls on them. */
static void test_deletes(void)
{
    ok(account("del") == 0 && policy("del", "lw", LW) == 0 &&
           put(sb_queue_put, "del",
               "{\"id\":\"q\",\"policy\":\"lw\",\"wrapup\":30,\"members\":[{\"agent\":\"a\"}]}") ==
               0,
       "delete: queue q (a, 30 s wrap-up)");
    offer("del", "d1", "q");
    is_int(sb_agent_delete(eng, "del", "a", res), SB_ESTATE, "delete: a, ringing: SB_ESTATE (%s)",
           sb_result_message(res));
    is_int(sb_queue_delete(eng, "del", "q", res), SB_ESTATE,
           "delete: q, with a call ringing: SB_ESTATE (%s)", sb_result_message(res));
    ring_result("del", "d1", "a", "answered");
    is_int(sb_agent_delete(eng, "del", "a", res), SB_ESTATE,
           "delete: a, on the call: SB_ESTATE (%s)", sb_result_message(res));
    evf("del", "{\"type\":\"hangup\",\"call\":\"d1\"}");
    is_str(agent_status("del", "a"), "wrap_up", "delete: a wraps up");
    offer("del", "d2", "q");
    is_str(call_state("del", "d2"), "waiting", "delete: d2 waits");
    is_int(sb_queue_delete(eng, "del", "q", res), SB_ESTATE,
           "delete: q, with a call waiting: SB_ESTATE (%s)", sb_result_message(res));
    ok(sb_agent_delete(eng, "del", "a", res) == 0, "delete: a, in wrap-up: deleted (%s)",
       sb_result_message(res));
    is_int(queue_num("del", "q", "members"), 0, "delete: q has no member");
    now_ms += 30000;
    ok(tick() == 0 && sb_result_count(res) == 0, "delete: a's wrap-up end finds nobody");
    ok(put(sb_agent_put, "del", AGENT("a", "")) == 0, "delete: a new agent a");
    ok(put(sb_queue_put, "del",
           "{\"id\":\"q\",\"policy\":\"lw\",\"members\":[{\"agent\":\"a\"}]}") == 0 &&
           find(SB_ACT_RING, "d2", "a"),
       "delete: made a member of q again, the new a rings for d2");
    evf("del", "{\"type\":\"abandon\",\"call\":\"d2\"}");
    ok(sb_queue_delete(eng, "del", "q", res) == 0, "delete: q, with no call: deleted");
}

/* 7. An agent of several queues frees up: the waiting calls it can take. */
static void test_many_queues(void)
{
    ok(account("mq") == 0 && policy("mq", "lw", LW) == 0 &&
           put(sb_queue_put, "mq",
               "{\"id\":\"q1\",\"policy\":\"lw\",\"members\":[{\"agent\":"
               "\"a\"}]}") == 0 &&
           put(sb_queue_put, "mq",
               "{\"id\":\"q2\",\"policy\":\"lw\",\"members\":[{\"agent\":"
               "\"a\"}]}") == 0,
       "queues: a serves q1 and q2");
    status("mq", "a", "paused");
    evf("mq", "{\"type\":\"offer\",\"call\":\"m1\",\"queue\":\"q2\",\"caller\":\"+442079460001\"}");
    now_ms += 1000;
    evf("mq", "{\"type\":\"offer\",\"call\":\"m2\",\"queue\":\"q1\",\"caller\":\"+442079460001\"}");
    now_ms += 1000;
    evf("mq", "{\"type\":\"offer\",\"call\":\"m3\",\"queue\":\"q1\",\"caller\":\"+442079460001\","
              "\"priority\":50}");
    ok(waiting("mq", "q1") == 2 && waiting("mq", "q2") == 1,
       "queues: m1 waits in q2, m2, m3 in q1");
    status("mq", "a", "available");
    const sb_action *r = find(SB_ACT_RING, NULL, "a");
    diag("a back: rings for %s (m1 waited longest in q2; m3 has priority 50 in q1)",
         r ? r->call_id : "-");
    ok(r && strcmp(r->call_id, "m2") != 0, "queues: not m2, behind a higher priority in q1");
    evf("mq", "{\"type\":\"abandon\",\"call\":\"m1\"}");
    evf("mq", "{\"type\":\"abandon\",\"call\":\"m2\"}");
    evf("mq", "{\"type\":\"abandon\",\"call\":\"m3\"}");
    ok(waiting("mq", "q1") == 0 && waiting("mq", "q2") == 0, "queues: none waiting");
}

/* 8. Another account's ids, events sent twice, a clock stepping back. */
static void test_isolation_and_replay(void)
{
    ok(account("x1") == 0 && account("x2") == 0 &&
           put(sb_queue_put, "x1", "{\"id\":\"q\",\"members\":[{\"agent\":\"a\"}]}") == 0 &&
           put(sb_queue_put, "x2", "{\"id\":\"q\",\"members\":[{\"agent\":\"a\"}]}") == 0,
       "cross: accounts x1 and x2, each with queue q and agent a");
    ok(offer("x1", "k1", "q") == 0 && find(SB_ACT_RING, "k1", "a"), "cross: k1 rings x1's a");
    is_int(ring_result("x2", "k1", "a", "answered"), SB_ENOTFOUND,
           "cross: x2 answering x1's call: SB_ENOTFOUND (%s)", sb_result_message(res));
    is_int(evf("x2", "{\"type\":\"abandon\",\"call\":\"k1\"}"), SB_ENOTFOUND,
           "cross: x2 abandoning it: SB_ENOTFOUND");
    is_int(evf("x2", "{\"type\":\"transfer\",\"call\":\"k1\",\"queue\":\"q\"}"), SB_ENOTFOUND,
           "cross: x2 transferring it: SB_ENOTFOUND");
    ok(!strcmp(call_state("x1", "k1"), "ringing") && !strcmp(agent_status("x1", "a"), "reserved") &&
           !strcmp(agent_status("x2", "a"), "available"),
       "cross: k1 still rings x1's a; x2's a is free");
    ok(offer("x2", "k1", "q") == 0 && find(SB_ACT_RING, "k1", "a"),
       "cross: x2's own k1 rings x2's a");
    ok(status("x2", "a", "paused") == 0 && find(SB_ACT_CANCEL, "k1", "a") &&
           !strcmp(agent_status("x1", "a"), "reserved"),
       "cross: x2's a pausing cancels x2's ring only");
    ok(ring_result("x1", "k1", "a", "answered") == 0 && find(SB_ACT_CONNECT, "k1", "a"),
       "cross: x1's a answers x1's k1");

    /* Events sent twice. */
    is_int(offer("x1", "k1", "q"), SB_EEXIST, "replay: the offer again: SB_EEXIST (%s)",
           sb_result_message(res));
    is_int(ring_result("x1", "k1", "a", "answered"), SB_ESTATE, "replay: the answer again");
    now_ms += 10000;
    evf("x1", "{\"type\":\"hangup\",\"call\":\"k1\"}");
    is_int(evf("x1", "{\"type\":\"hangup\",\"call\":\"k1\"}"), SB_ESTATE,
           "replay: the hangup again: SB_ESTATE (%s)", sb_result_message(res));
    is_int(agent_stat("x1", "a", "calls_taken"), 1, "replay: a took one call");
    is_int(agent_stat("x1", "a", "talk_time"), 10000, "replay: and talked 10 s");
    evf("x2", "{\"type\":\"abandon\",\"call\":\"k1\"}");
    status("x2", "a", "available");

    /* The clock steps back by a minute between events. */
    offer("x1", "k2", "q");
    now_ms -= 60000;
    ring_result("x1", "k2", "a", "answered");
    now_ms -= 60000;
    evf("x1", "{\"type\":\"hangup\",\"call\":\"k2\"}");
    ok(call_num("x1", "k2", "wait") >= 0 && call_num("x1", "k2", "talk") >= 0,
       "clock back: k2's record has no negative wait (%lld) or talk (%lld)",
       call_num("x1", "k2", "wait"), call_num("x1", "k2", "talk"));
    is_int(agent_stat("x1", "a", "talk_time"), 10000, "clock back: a's talk time does not shrink");
    now_ms += 120000;
}

/* A clock that steps back while a call waits: the hangup of a call taken
** before the step keeps that call's later time (time_floor), and the agent
** it frees then takes the waiting call; its max wait is judged by the
** clock, not by the hangup's time, and so it is not exceeded. A wait that
** truly passes max wait after the step is still cut. */
static void test_clock_back_maxwait(void)
{
    ok(account("cb") == 0 && policy("cb", "lw", LW) == 0 &&
           put(sb_queue_put, "cb",
               "{\"id\":\"q\",\"policy\":\"lw\",\"max_wait\":60,"
               "\"members\":[{\"agent\":\"a\"}]}") == 0,
       "clock back: queue q (a alone; max wait 60 s)");
    ok(offer("cb", "t1", "q") == 0 && ring_result("cb", "t1", "a", "answered") == 0,
       "clock back: a takes t1");
    now_ms += 30000;
    int64_t before = now_ms;
    now_ms -= 3600000; /* the clock steps back an hour */
    ok(offer("cb", "w1", "q") == 0 && !strcmp(call_state("cb", "w1"), "waiting"),
       "clock back: an hour back, w1 waits for a");
    now_ms += 5000;
    int rc = evf("cb", "{\"type\":\"hangup\",\"call\":\"t1\"}");
    ok(rc == 0 && find(SB_ACT_RING, "w1", "a") && !find(SB_ACT_REJECT, "w1", NULL),
       "clock back: t1 hung up 5 s later, a rings w1: no max wait exceeded (%s)",
       call_state("cb", "w1"));
    ok(call_num("cb", "t1", "talk") >= 0, "clock back: t1's talk is not negative (%lld)",
       call_num("cb", "t1", "talk"));
    ok(ring_result("cb", "w1", "a", "answered") == 0 &&
           evf("cb", "{\"type\":\"hangup\",\"call\":\"w1\"}") == 0 &&
           call_num("cb", "w1", "wait") == 5000,
       "clock back: a answers w1, whose record waited 5 s (%lld)", call_num("cb", "w1", "wait"));
    /* Again, with a's call ended 61 s of the clock after w2 came. */
    ok(offer("cb", "t2", "q") == 0 && ring_result("cb", "t2", "a", "answered") == 0,
       "clock back: a takes t2");
    now_ms -= 3600000;
    ok(offer("cb", "w2", "q") == 0, "clock back: an hour back again, w2 waits");
    now_ms += 61000;
    ok(tick() == 0 && find(SB_ACT_REJECT, "w2", NULL),
       "clock back: 61 s later by the clock its max wait is exceeded");
    evf("cb", "{\"type\":\"hangup\",\"call\":\"t2\"}");
    now_ms = before + 3600000;
}

/* Ring a, b and c in turn, 10 s each. */
static const char *const SEQ = "local P = {}\n"
                               "function P.route(call, agents, ctx)\n"
                               "  if #agents == 0 then return {} end\n"
                               "  local ids = {}\n"
                               "  for _, a in ipairs(agents) do ids[#ids + 1] = a.id end\n"
                               "  table.sort(ids)\n"
                               "  return { ring = ids, mode = 'sequence', timeout = 10 }\n"
                               "end\nreturn P\n";

/* 5b. Max wait comes while the call rings: the ring is cut, and the call
** goes to the overflow queue at once; a sequence does not ring on past it. */
static void test_maxwait_ringing(void)
{
    ok(account("mr") == 0 && policy("mr", "lw", LW) == 0 &&
           put(sb_queue_put, "mr",
               "{\"id\":\"q2\",\"policy\":\"lw\",\"members\":[{\"agent\":"
               "\"c\"}]}") == 0 &&
           put(sb_queue_put, "mr",
               "{\"id\":\"q\",\"policy\":\"lw\",\"max_wait\":30,\"ring_timeout\":40,"
               "\"overflow\":\"q2\",\"members\":[{\"agent\":\"a\"}]}") == 0,
       "maxwait: queue q (a; max wait 30 s, rings 40 s; overflow q2 with c)");
    offer("mr", "w1", "q");
    now_ms += 29000;
    ok(tick() == 0 && sb_result_count(res) == 0 && !strcmp(call_state("mr", "w1"), "ringing"),
       "maxwait: at 29 s w1 still rings a");
    now_ms += 1000;
    int trc = tick();
    const sb_action *x = find(SB_ACT_CANCEL, "w1", "a");
    const char *why = x && x->reason ? x->reason : "none";
    ok(trc == 0 && !strcmp(why, "max wait") && find(SB_ACT_OVERFLOW, "w1", NULL) &&
           find(SB_ACT_RING, "w1", "c"),
       "maxwait: at 30 s a's ring is cut (cancel: %s), w1 goes on to q2, where c rings", why);
    is_str(agent_status("mr", "a"), "available", "maxwait: a is free again");
    is_int(agent_stat("mr", "a", "no_answers"), 0, "maxwait: a cut ring is no no-answer of a's");
    is_int(waiting("mr", "q"), 0, "maxwait: q counts none");
    evf("mr", "{\"type\":\"abandon\",\"call\":\"w1\"}");
    /* A sequence of two 10 s rings in a queue of 15 s max wait: the
    ** second is cut at 15 s, not rung to its end at 20 s. */
    ok(policy("mr", "seq", SEQ) == 0 &&
           put(sb_queue_put, "mr",
               "{\"id\":\"s\",\"policy\":\"seq\",\"max_wait\":15,\"overflow\":\"q2\","
               "\"members\":[{\"agent\":\"a\"},{\"agent\":\"b\"}]}") == 0,
       "maxwait: queue s rings a and b in turn, 10 s each, max wait 15 s");
    ok(offer("mr", "w2", "s") == 0 && find(SB_ACT_RING, "w2", "a"), "maxwait: w2 rings a");
    now_ms += 10000;
    ok(tick() == 0 && find(SB_ACT_RING, "w2", "b"), "maxwait: at 10 s b rings");
    now_ms += 5000;
    ok(tick() == 0 && find(SB_ACT_CANCEL, "w2", "b") && find(SB_ACT_OVERFLOW, "w2", NULL) &&
           find(SB_ACT_RING, "w2", "c"),
       "maxwait: at 15 s b's ring is cut, and w2 goes on to q2, where c rings");
    evf("mr", "{\"type\":\"abandon\",\"call\":\"w2\"}");
    /* Max wait raised while the call rings: it holds at its new time. */
    ok(offer("mr", "w3", "s") == 0 && find(SB_ACT_RING, "w3", "a"), "maxwait: w3 rings a in s");
    now_ms += 5000;
    ok(put(sb_queue_put, "mr",
           "{\"id\":\"s\",\"policy\":\"seq\",\"max_wait\":18,\"overflow\":\"q2\","
           "\"members\":[{\"agent\":\"a\"},{\"agent\":\"b\"}]}") == 0,
       "maxwait: at 5 s s's max wait is raised to 18 s");
    now_ms += 10000;
    ok(tick() == 0 && find(SB_ACT_RING, "w3", "b") && !find(SB_ACT_OVERFLOW, "w3", NULL),
       "maxwait: at 15 s b rings, nothing cut");
    now_ms += 3000;
    ok(tick() == 0 && find(SB_ACT_CANCEL, "w3", "b") && find(SB_ACT_OVERFLOW, "w3", NULL),
       "maxwait: at 18 s, the new max wait, b's ring is cut and w3 overflows");
    evf("mr", "{\"type\":\"abandon\",\"call\":\"w3\"}");
    ok(!strcmp(agent_status("mr", "a"), "available") &&
           !strcmp(agent_status("mr", "c"), "available") && sb_next_deadline(eng) >= now_ms,
       "maxwait: a and c free, no timer overdue");
}

/* 5c. An agent freed in several queues takes the call first in line across
** them (priority, then time in line), not that of the queue made first. */
static void test_across_queues(void)
{
    ok(account("xq") == 0 && policy("xq", "lw", LW) == 0 &&
           put(sb_queue_put, "xq",
               "{\"id\":\"sales\",\"policy\":\"lw\",\"members\":[{\"agent\":\"a\"}]}") == 0 &&
           put(sb_queue_put, "xq",
               "{\"id\":\"vip\",\"policy\":\"lw\",\"members\":[{\"agent\":\"a\"},"
               "{\"agent\":\"b\"}]}") == 0 &&
           put(sb_queue_put, "xq",
               "{\"id\":\"misc\",\"policy\":\"lw\",\"members\":[{\"agent\":\"a\"}]}") == 0,
       "across queues: sales (a), then vip (a, b), then misc (a)");
    status("xq", "c", "offline");
    ok(offer("xq", "x0", "sales") == 0 && ring_result("xq", "x0", "a", "answered") == 0,
       "across queues: a answers x0");
    ok(offer("xq", "x1", "vip") == 0 && ring_result("xq", "x1", "b", "answered") == 0,
       "across queues: b answers x1");
    ok(offer("xq", "v1", "vip") == 0 && !strcmp(call_state("xq", "v1"), "waiting"),
       "across queues: v1 waits in vip");
    now_ms += 120000;
    ok(offer("xq", "s1", "sales") == 0 && !strcmp(call_state("xq", "s1"), "waiting"),
       "across queues: two minutes later s1 waits in sales");
    now_ms += 5000;
    evf("xq", "{\"type\":\"hangup\",\"call\":\"x0\"}");
    ok(find(SB_ACT_RING, "v1", "a") && !find(SB_ACT_RING, "s1", "a"),
       "across queues: a, freed, rings for v1 (in line longer), not s1 of sales, made first");
    ok(ring_result("xq", "v1", "a", "answered") == 0, "across queues: a answers v1");
    ok(evf("xq", "{\"type\":\"offer\",\"call\":\"m1\",\"queue\":\"misc\","
                 "\"caller\":\"+442079460001\",\"priority\":50}") == 0 &&
           !strcmp(call_state("xq", "m1"), "waiting"),
       "across queues: m1, priority 50, waits in misc");
    now_ms += 5000;
    evf("xq", "{\"type\":\"hangup\",\"call\":\"v1\"}");
    ok(find(SB_ACT_RING, "m1", "a") && !find(SB_ACT_RING, "s1", "a"),
       "across queues: a, freed again, rings for m1 (priority 50), not s1 (in line longer)");
    evf("xq", "{\"type\":\"abandon\",\"call\":\"s1\"}");
    evf("xq", "{\"type\":\"abandon\",\"call\":\"m1\"}");
    evf("xq", "{\"type\":\"hangup\",\"call\":\"x1\"}");
}

/* 5d. An agent's missed ring counts across calls: agent.missed_for, the
** seconds since its last ring it did not answer (no answer, busy, rejected)
** ended, lets a policy hold an agent back from every call for a while, as
** mod_callcenter's busy-delay-time does. */
static const char *const HOLD_MISSED = "local P = {}\n"
                                       "function P.route(call, agents, ctx)\n"
                                       "  local ids = {}\n"
                                       "  for _, a in ipairs(agents) do\n"
                                       "    if a.missed_for == nil or a.missed_for >= 10 then\n"
                                       "      ids[#ids + 1] = a.id\n"
                                       "    end\n"
                                       "  end\n"
                                       "  table.sort(ids)\n"
                                       "  if #ids == 0 then return { wait = 1 } end\n"
                                       "  return { ring = ids[1] }\n"
                                       "end\nreturn P\n";

static void test_missed_for(void)
{
    ok(account("ms") == 0 && policy("ms", "hold", HOLD_MISSED) == 0 &&
           put(sb_queue_put, "ms",
               "{\"id\":\"q\",\"policy\":\"hold\",\"members\":[{\"agent\":\"a\"},"
               "{\"agent\":\"b\"}]}") == 0,
       "missed: queue q (a, b), a policy holding back agents who missed a ring in the last 10 s");
    is_int(agent_stat("ms", "a", "last_missed_ms"), -1, "missed: a has missed no ring");
    ok(offer("ms", "m1", "q") == 0 && find(SB_ACT_RING, "m1", "a"), "missed: m1 rings a");
    now_ms += 2000;
    int64_t busy_at = now_ms;
    ok(ring_result("ms", "m1", "a", "busy") == 0 && find(SB_ACT_RING, "m1", "b"),
       "missed: a busy: m1 rings b");
    is_int(agent_stat("ms", "a", "last_missed_ms"), busy_at, "missed: a's last missed ring: then");
    ok(ring_result("ms", "m1", "b", "answered") == 0, "missed: b answers m1");
    now_ms += 3000;
    ok(offer("ms", "m2", "q") == 0 && !find(SB_ACT_RING, "m2", "a") &&
           !strcmp(call_state("ms", "m2"), "waiting"),
       "missed: m2, another call, 3 s later: a is held back, m2 waits");
    now_ms += 7000;
    ok(tick() == 0 && find(SB_ACT_RING, "m2", "a"), "missed: 10 s after the busy, m2 rings a");
    ok(ring_result("ms", "m2", "a", "answered") == 0, "missed: a answers m2");
    is_int(agent_stat("ms", "a", "last_missed_ms"), busy_at,
           "missed: an answer leaves the time of the last missed ring");
    evf("ms", "{\"type\":\"hangup\",\"call\":\"m1\"}");
    evf("ms", "{\"type\":\"hangup\",\"call\":\"m2\"}");
}

/* 5e. An agent in more queues than one batch of memberships (64): every
** queue's availability entry follows its status, and one changed by a
** membership update still routes. */
static void test_queues_past_a_batch(void)
{
    ok(account("mb") == 0 && policy("mb", "lw", LW) == 0, "past a batch: an account");
    int bad = 0;
    for (int i = 0; i < 200; i++) {
        char json[128];
        snprintf(json, sizeof json,
                 "{\"id\":\"q%d\",\"policy\":\"lw\",\"members\":[{\"agent\":\"a\"}]}", i);
        bad += put(sb_queue_put, "mb", json) != 0;
    }
    is_int(bad, 0, "past a batch: a in 200 queues");
    status("mb", "a", "paused");
    status("mb", "a", "available");
    int rang = 0;
    for (int i = 0; i < 200; i += 13) {
        char call[16], queue[16];
        snprintf(call, sizeof call, "m%d", i);
        snprintf(queue, sizeof queue, "q%d", i);
        rang += offer("mb", call, queue) == 0 && find(SB_ACT_RING, call, "a") != NULL;
        evf("mb", "{\"type\":\"abandon\",\"call\":\"%s\"}", call);
    }
    is_int(rang, 16, "past a batch: paused and back, a rings for a call of every 13th queue");
    /* A policy that rings tier 3 alone: a rings only if q7's entry has the
    ** membership the update wrote. */
    ok(policy("mb", "t3",
              "local P = {}\nfunction P.route(call, agents, ctx)\n"
              "  for _, a in ipairs(agents) do\n"
              "    if a.tier == 3 then return { ring = a.id } end\n"
              "  end\n"
              "  return { wait = 1 }\nend\nreturn P\n") == 0 &&
           put(sb_queue_put, "mb",
               "{\"id\":\"q7\",\"policy\":\"t3\",\"members\":[{\"agent\":\"a\"}]}") == 0,
       "past a batch: q7 rings tier 3 alone");
    ok(offer("mb", "m6", "q7") == 0 && !find(SB_ACT_RING, "m6", "a"),
       "past a batch: a, tier 1 in q7, is not rung");
    evf("mb", "{\"type\":\"abandon\",\"call\":\"m6\"}");
    ok(sb_member_put(eng, "mb", "q7", "a", "{\"tier\":3}", 10, res) == 0,
       "past a batch: a's tier in q7 made 3");
    ok(offer("mb", "m7", "q7") == 0 && find(SB_ACT_RING, "m7", "a"),
       "past a batch: a rings in q7, its entry there rewritten with the tier");
    evf("mb", "{\"type\":\"abandon\",\"call\":\"m7\"}");
}

/* 2b. A sequence: a busy ring moves on; an agent further down who pauses
** is skipped; ring all: one busy, the others ring on. */
static void test_sequence(void)
{
    ok(account("sq") == 0 && policy("sq", "seq", SEQ) == 0 && policy("sq", "all", ALL) == 0 &&
           put(sb_queue_put, "sq",
               "{\"id\":\"q\",\"policy\":\"seq\",\"members\":[{\"agent\":\"a\"},{\"agent\":"
               "\"b\"},{\"agent\":\"c\"}]}") == 0 &&
           put(sb_queue_put, "sq",
               "{\"id\":\"all\",\"policy\":\"all\",\"members\":[{\"agent\":\"a\"},{\"agent\":"
               "\"b\"},{\"agent\":\"c\"}]}") == 0,
       "sequence: queue q (a, b, c in turn), queue all");
    ok(offer("sq", "s1", "q") == 0 && count(SB_ACT_RING) == 1 && find(SB_ACT_RING, "s1", "a"),
       "sequence: s1 rings a only");
    ok(status("sq", "b", "paused") == 0 && sb_result_count(res) == 0,
       "sequence: b, next in line but not ringing, pauses: nothing to cancel");
    ok(ring_result("sq", "s1", "a", "busy") == 0 && find(SB_ACT_RING, "s1", "c") &&
           !find(SB_ACT_RING, "s1", "b"),
       "sequence: a busy: b is skipped, c rings");
    is_str(agent_status("sq", "a"), "available", "sequence: a free");
    now_ms += 10000;
    ok(tick() == 0 && find(SB_ACT_CANCEL, "s1", "c") && find(SB_ACT_RING, "s1", "a"),
       "sequence: c does not answer: the policy decides again, a rings");
    is_int(agent_stat("sq", "c", "no_answers"), 1, "sequence: c counts a no-answer");
    ok(ring_result("sq", "s1", "a", "answered") == 0 && find(SB_ACT_CONNECT, "s1", "a") &&
           !find(SB_ACT_CANCEL, NULL, NULL),
       "sequence: a answers; nobody else rang");
    evf("sq", "{\"type\":\"hangup\",\"call\":\"s1\"}");
    status("sq", "b", "available");

    offer("sq", "s2", "all");
    ok(count(SB_ACT_RING) == 3, "sequence: s2 rings a, b and c at once");
    ok(ring_result("sq", "s2", "b", "busy") == 0 && sb_result_count(res) == 0 &&
           !strcmp(call_state("sq", "s2"), "ringing"),
       "sequence: b busy: a and c ring on, no action");
    ok(ring_result("sq", "s2", "a", "rejected") == 0 && !strcmp(call_state("sq", "s2"), "ringing"),
       "sequence: a rejects: c rings on");
    ok(ring_result("sq", "s2", "c", "no_answer") == 0 && count(SB_ACT_RING) == 3,
       "sequence: c does not answer: everyone failed, all three ring again");
    evf("sq", "{\"type\":\"abandon\",\"call\":\"s2\"}");
    ok(count(SB_ACT_CANCEL) == 3 && !strcmp(agent_status("sq", "a"), "available") &&
           !strcmp(agent_status("sq", "b"), "available") &&
           !strcmp(agent_status("sq", "c"), "available"),
       "sequence: the caller leaves: three cancels, everyone free");

    /* An agent taken out of the queue while the call rings the one before
    ** it is not rung: the list was the policy's when it decided. */
    ok(offer("sq", "s3", "q") == 0 && find(SB_ACT_RING, "s3", "a"), "sequence: s3 rings a");
    ok(put(sb_queue_put, "sq",
           "{\"id\":\"q\",\"policy\":\"seq\",\"members\":[{\"agent\":\"a\"},{\"agent\":"
           "\"c\"}]}") == 0,
       "sequence: b leaves queue q");
    now_ms += 10000;
    ok(tick() == 0 && find(SB_ACT_RING, "s3", "c") && !find(SB_ACT_RING, "s3", "b"),
       "sequence: a does not answer: c rings, not b, no longer a member");
    evf("sq", "{\"type\":\"abandon\",\"call\":\"s3\"}");
    is_str(agent_status("sq", "b"), "available", "sequence: b was never reserved");
}

/* ctx.queue.position, longest_wait and waiting: the call's place in line
** (priority first, then time queued), the longest wait of all calls in line
** and how many wait, the call being decided counted in each, whether it is
** decided as it comes (alone, it is not put in line first) or again later. */
#define PROBE                                                                                      \
    "{\"type\":\"offer\",\"call\":\"%s\",\"queue\":\"q\",\"caller\":\"+442079460001\","            \
    "\"priority\":%d,\"attrs\":{\"probe\":true}}"

static void test_queue_line(void)
{
    static const char *const LINE =
        "local P = {}\n"
        "function P.route(call, agents, ctx)\n"
        "  local q = ctx.queue\n"
        "  local seen = q.position .. '/' .. q.longest_wait .. '/' .. q.waiting\n"
        "  if call.attrs.probe then return { reject = seen } end\n"
        "  if call.attrs.later then\n"
        "    if call.waited > 0 then return { reject = seen } end\n"
        "    return { wait = 10 }\n"
        "  end\n"
        "  return { wait = 600 }\n"
        "end\nreturn P\n";
    const char *acct = "line";
    ok(account(acct) == 0 && policy(acct, "line", LINE) == 0 &&
           put(sb_queue_put, acct, "{\"id\":\"q\",\"policy\":\"line\"}") == 0,
       "line: a queue whose policy reports the line");
    const sb_action *r = (evf(acct, PROBE, "p0", 0), find(SB_ACT_REJECT, "p0", NULL));
    is_str(r ? r->reason : "-", "1/0.0/1",
           "line: alone, first in line, nobody waited, one waiting");
    offer(acct, "w1", "q");
    now_ms += 60000;
    offer(acct, "w2", "q");
    now_ms += 30000;
    is_int(waiting(acct, "q"), 2, "line: two calls wait");
    is_int(now_ms - queue_num(acct, "q", "longest_wait_since_ms"), 90000,
           "line: the queue's read gives when the longest wait in line began, 90 s ago");
    r = (evf(acct, PROBE, "p1", 0), find(SB_ACT_REJECT, "p1", NULL));
    is_str(r ? r->reason : "-", "3/90.0/3",
           "line: behind two, the first waiting 90 s, three waiting");
    r = (evf(acct, PROBE, "p2", 10), find(SB_ACT_REJECT, "p2", NULL));
    is_str(r ? r->reason : "-", "1/90.0/3", "line: a higher priority goes first");
    evf(acct, "{\"type\":\"offer\",\"call\":\"l1\",\"queue\":\"q\",\"caller\":\"+442079460001\","
              "\"attrs\":{\"later\":true}}");
    now_ms += 10000;
    tick();
    r = find(SB_ACT_REJECT, "l1", NULL);
    is_str(r ? r->reason : "-", "3/100.0/3", "line: decided again 10 s later, the same count");
}

/* An agent's stats and a queue's live figures, as API.md says them: stats
** are lifetime totals; idle_since moves when the agent comes back from a
** call, a pause or offline, never on a ring it let go; no_answers counts
** misses in a row (an answer, or coming back from a pause, starts them
** again); talk_time leaves out the call going on; a queue's waiting and
** longest_wait_since_ms count calls in line, not those ringing. */
static void test_live_stats(void)
{
    const char *acct = "ls";
    int64_t made = now_ms;
    ok(account(acct) == 0 && policy(acct, "lw", LW) == 0 &&
           put(sb_queue_put, acct,
               "{\"id\":\"q\",\"policy\":\"lw\",\"members\":[{\"agent\":\"a\"}]}") == 0,
       "stats: queue q, agent a only");
    is_int(agent_stat(acct, "a", "idle_since_ms"), made, "stats: a idle since she was made");
    is_int(agent_stat(acct, "a", "last_call_ms"), -1, "stats: no last_call_ms before a call");
    is_int(queue_num(acct, "q", "longest_wait_since_ms"), -1,
           "stats: nobody waits: no longest_wait_since_ms");
    now_ms += 5000;
    int64_t rang = now_ms;
    ok(offer(acct, "s1", "q") == 0 && find(SB_ACT_RING, "s1", "a"), "stats: s1 rings a");
    is_int(agent_stat(acct, "a", "status_since_ms"), rang, "stats: status_since is the ring");
    is_int(waiting(acct, "q"), 0, "stats: a ringing call is not waiting");
    is_int(queue_num(acct, "q", "longest_wait_since_ms"), -1, "stats: nor a longest wait");
    now_ms += 20000;
    ok(ring_result(acct, "s1", "a", "no_answer") == 0 && find(SB_ACT_RING, "s1", "a"),
       "stats: a lets it ring; it rings her again");
    now_ms += 20000;
    ring_result(acct, "s1", "a", "no_answer");
    is_int(agent_stat(acct, "a", "no_answers"), 2, "stats: two misses in a row");
    is_int(agent_stat(acct, "a", "idle_since_ms"), made,
           "stats: idle_since did not move on the rings she let go");
    now_ms += 3000;
    ring_result(acct, "s1", "a", "answered");
    is_int(agent_stat(acct, "a", "no_answers"), 0, "stats: an answer starts the misses again");
    is_int(agent_stat(acct, "a", "calls_taken"), 1, "stats: one call taken");
    int64_t answered = now_ms;
    now_ms += 60000;
    is_int(agent_stat(acct, "a", "talk_time"), 0, "stats: talk_time leaves out the call going on");
    offer(acct, "s2", "q");
    int64_t queued = now_ms;
    now_ms += 30000;
    is_int(waiting(acct, "q"), 1, "stats: s2 waits while a talks");
    is_int(queue_num(acct, "q", "longest_wait_since_ms"), queued,
           "stats: the longest wait began with its offer");
    int64_t hung = now_ms;
    ok(evf(acct, "{\"type\":\"hangup\",\"call\":\"s1\"}") == 0 && find(SB_ACT_RING, "s2", "a"),
       "stats: s1 ends; s2 rings a");
    is_int(agent_stat(acct, "a", "talk_time"), hung - answered,
           "stats: 90 s of talk, once it ended");
    is_int(agent_stat(acct, "a", "last_call_ms"), hung, "stats: last_call_ms: when it ended");
    is_int(agent_stat(acct, "a", "idle_since_ms"), hung, "stats: idle since the call ended");
    now_ms += 20000;
    ring_result(acct, "s2", "a", "no_answer");
    ok(status(acct, "a", "paused") == 0 && agent_stat(acct, "a", "no_answers") == 1,
       "stats: a misses s2 once and pauses: one miss");
    now_ms += 10000;
    ok(status(acct, "a", "available") == 0 && agent_stat(acct, "a", "no_answers") == 0,
       "stats: back from the pause: no misses");
    is_int(agent_stat(acct, "a", "idle_since_ms"), now_ms, "stats: idle since back");
    ok(put(sb_agent_put, acct, AGENT("a", ",\"name\":\"A\"")) == 0 &&
           agent_stat(acct, "a", "calls_taken") == 1 &&
           agent_stat(acct, "a", "talk_time") == hung - answered,
       "stats: replacing her document keeps the totals");
    evf(acct, "{\"type\":\"abandon\",\"call\":\"s2\"}");
}

/* The stock longest-idle policy with one agent who lets a call ring: the
** call waits RETRY (5) seconds from the end of that ring before ringing her
** again (call.since_last_ring), instead of ringing her again at once. */
static void test_retry_gap(void)
{
    static char src[8192];
    FILE *f = fopen("policies/longest-idle.lua", "r");
    size_t n = f ? fread(src, 1, sizeof src - 1, f) : 0;
    if (f) fclose(f);
    src[n] = 0;
    ok(n > 0 && account("rg") == 0 && policy("rg", "longest-idle", src) == 0 &&
           put(sb_queue_put, "rg",
               "{\"id\":\"q\",\"policy\":\"longest-idle\",\"members\":[{\"agent\":\"a\"}]}") == 0,
       "retry: queue q, agent a only, the stock longest-idle policy");
    ok(offer("rg", "r1", "q") == 0 && find(SB_ACT_RING, "r1", "a"), "retry: r1 rings a");
    now_ms += 20000;
    ok(ring_result("rg", "r1", "a", "no_answer") == 0 && !find(SB_ACT_RING, "r1", "a") &&
           !strcmp(call_state("rg", "r1"), "waiting"),
       "retry: a lets it ring: r1 waits instead of ringing her again at once");
    now_ms += 4000;
    ok(tick() == 0 && !find(SB_ACT_RING, "r1", "a"), "retry: 4 s later, not yet");
    now_ms += 1000;
    ok(tick() == 0 && find(SB_ACT_RING, "r1", "a"), "retry: 5 s after her ring ended, a again");
    ok(ring_result("rg", "r1", "a", "answered") == 0 && find(SB_ACT_CONNECT, "r1", "a"),
       "retry: and she answers");
    /* A call keeps 32 attempts: past them, her rings stay 5 s apart (the
    ** latest attempt is kept, the one since_last_ring measures from). */
    ok(evf("rg", "{\"type\":\"hangup\",\"call\":\"r1\"}") == 0 && offer("rg", "r2", "q") == 0 &&
           find(SB_ACT_RING, "r2", "a"),
       "retry: r2 rings a");
    int i, back_to_back = 0, late = 0;
    for (i = 0; i < 40; i++) {
        now_ms += 1000;
        if (ring_result("rg", "r2", "a", "busy") || find(SB_ACT_RING, "r2", "a")) back_to_back++;
        now_ms += 4000;
        if (tick() || find(SB_ACT_RING, "r2", "a")) back_to_back++;
        now_ms += 1000;
        if (tick() || !find(SB_ACT_RING, "r2", "a")) late++;
    }
    ok(back_to_back == 0 && late == 0,
       "retry: 40 busy rings in a row, each next ring 5 s after the last (%d at once, %d late)",
       back_to_back, late);
    /* Each failed ring asks the policy once: the queue's line is decided
    ** again with the agent free, and that same agent is not offered to the
    ** same line a second time (it was, and every trace held each wait twice). */
    ok(ring_result("rg", "r2", "a", "answered") == 0 &&
           evf("rg", "{\"type\":\"hangup\",\"call\":\"r2\"}") == 0 && offer("rg", "r3", "q") == 0,
       "retry: r3 rings a");
    long long d = call_num("rg", "r3", "decisions");
    now_ms += 2000;
    ring_result("rg", "r3", "a", "no_answer");
    is_int(call_num("rg", "r3", "decisions"), d + 1, "retry: her no answer asks the policy once");
    now_ms += 5000;
    ok(tick() == 0 && find(SB_ACT_RING, "r3", "a"), "retry: 5 s later she rings again");
    d = call_num("rg", "r3", "decisions");
    now_ms += 30000;
    ok(tick() == 0 && find(SB_ACT_CANCEL, "r3", "a"), "retry: her ring times out");
    is_int(call_num("rg", "r3", "decisions"), d + 1, "retry: the timeout asks the policy once");
}

/* 13. A ring result sent as the ring timed out: the timeout rang the agent
** again, and the late no_answer was taken for the new ring's (the call got
** a third attempt, her no-answers counted twice; found when tried as a
** gateway developer would). Ring actions carry their attempt; a result that
** gives one that is over is refused and changes nothing. */
/* ring_result of t1 (account ra, agent a) giving attempt, refused with
** code on field attempt, its message holding says. */
static void refused_attempt(const char *outcome, int attempt, int code, const char *says,
                            const char *what)
{
    is_int(evf("ra",
               "{\"type\":\"ring_result\",\"call\":\"t1\",\"agent\":\"a\","
               "\"outcome\":\"%s\",\"attempt\":%d}",
               outcome, attempt),
           code, "attempts: %s: %s", what, sb_strerror(code));
    ok(sb_result_field(res) && !strcmp(sb_result_field(res), "attempt") &&
           strstr(sb_result_message(res), says),
       "attempts: ... naming attempt, saying so: %s", sb_result_message(res));
}

static void test_ring_attempts(void)
{
    ok(account("ra") == 0 &&
           put(sb_queue_put, "ra",
               "{\"id\":\"q\",\"ring_timeout\":4,\"members\":[{\"agent\":\"a\"}]}") == 0,
       "attempts: queue q, agent a only, ring timeout 4 s");
    ok(offer("ra", "t1", "q") == 0, "attempts: t1 offered");
    const sb_action *r = find(SB_ACT_RING, "t1", "a");
    ok(r && r->attempt == 1, "attempts: its first ring is attempt 1 (%u)", r ? r->attempt : 0);
    char js[512];
    if (r) sb_action_json(r, js, sizeof js);
    ok(r && strstr(js, "\"attempt\":1"), "attempts: ... in the action's JSON: %s", js);
    now_ms += 4100;
    ok(tick() == 0 && find(SB_ACT_CANCEL, "t1", "a") && (r = find(SB_ACT_RING, "t1", "a")) &&
           r->attempt == 2,
       "attempts: the timeout cancels it and rings a again, attempt 2");
    long long na = agent_stat("ra", "a", "no_answers");
    refused_attempt("no_answer", 1, SB_ESTATE,
                    "ring attempt 1 of call 't1' is over; agent 'a' rings for it as attempt 2 now",
                    "the gateway's no_answer for attempt 1, late");
    is_int(agent_stat("ra", "a", "no_answers"), na, "attempts: ... and no no-answer counted");
    is_str(call_state("ra", "t1"), "ringing", "attempts: t1 still rings a");
    /* An attempt never made is no late result: a gateway's own count, or
    ** another call's ring. */
    refused_attempt("answered", 7, SB_EINVAL,
                    "call 't1' has had 2 ring attempts: attempt 7 was never made",
                    "a result for attempt 7, never made");
    ok(!find(SB_ACT_CONNECT, "t1", "a") && !strcmp(call_state("ra", "t1"), "ringing"),
       "attempts: ... and t1 still rings a, not connected");
    is_int(evf("ra", "{\"type\":\"ring_result\",\"call\":\"t1\",\"agent\":\"a\","
                     "\"outcome\":\"answered\",\"attempt\":2}"),
           0, "attempts: her answer to attempt 2 is taken");
    ok(find(SB_ACT_CONNECT, "t1", "a") != NULL, "attempts: ... t1 connects");
    is_int(evf("ra", "{\"type\":\"ring_result\",\"call\":\"t1\",\"agent\":\"a\","
                     "\"outcome\":\"answered\",\"attempt\":2}"),
           SB_ESTATE, "attempts: the same again: SB_ESTATE, she rings no more");
    is_int(evf("ra", "{\"type\":\"ring_result\",\"call\":\"t1\",\"agent\":\"a\","
                     "\"outcome\":\"busy\",\"attempt\":0}"),
           SB_EINVAL, "attempts: attempt 0 is refused (1 or more)");
    is_int(evf("ra", "{\"type\":\"hangup\",\"call\":\"t1\",\"attempt\":2}"), SB_EINVAL,
           "attempts: a hangup takes no attempt");
    sb_event ev = {.type = SB_EV_HANGUP, .account = "ra", .call_id = "t1", .attempt = 2};
    is_int(sb_submit(eng, &ev, res), SB_EINVAL, "attempts: nor in the C struct");
    is_int(evf("ra", "{\"type\":\"hangup\",\"call\":\"t1\"}"), 0, "attempts: t1 hangs up");
    /* Without attempt, as before: the result is for the ring going on. */
    ok(offer("ra", "t2", "q") == 0 && (r = find(SB_ACT_RING, "t2", "a")) && r->attempt == 1,
       "attempts: t2 rings a, attempt 1 (counted per call)");
    ok(ring_result("ra", "t2", "a", "answered") == 0 && find(SB_ACT_CONNECT, "t2", "a"),
       "attempts: a result without attempt is for the ring going on");
    evf("ra", "{\"type\":\"hangup\",\"call\":\"t2\"}");
}

/* The reason of the cancel for agent of call among res's actions, or "-". */
static const char *cancel_why(const char *call, const char *agent)
{
    const sb_action *x = find(SB_ACT_CANCEL, call, agent);
    return x && x->reason ? x->reason : "-";
}

/* 9. Every cancel says why the ring ended, one of switchboard.h's reasons:
** a timeout, another agent's answer, the caller
** gone (abandon and hangup), a transfer (to an agent and to a queue), the
** agent's own status event. */
static void test_cancel_reasons(void)
{
    ok(account("cr") == 0 && policy("cr", "lw", LW) == 0 && policy("cr", "all", ALL) == 0 &&
           put(sb_queue_put, "cr",
               "{\"id\":\"q\",\"policy\":\"lw\",\"ring_timeout\":10,\"members\":[{\"agent\":"
               "\"a\"},{\"agent\":\"b\"}]}") == 0 &&
           put(sb_queue_put, "cr",
               "{\"id\":\"all\",\"policy\":\"all\",\"members\":[{\"agent\":\"a\"},{\"agent\":"
               "\"b\"},{\"agent\":\"c\"}]}") == 0,
       "cancel why: queue q (a, b; longest idle, 10 s rings), queue all (a, b, c; ring all)");
    offer("cr", "x1", "q");
    now_ms += 10000;
    ok(tick() == 0, "cancel why: x1's ring of a times out");
    is_str(cancel_why("x1", "a"), "ring timeout", "cancel why: a ring that timed out");
    evf("cr", "{\"type\":\"abandon\",\"call\":\"x1\"}");
    is_str(cancel_why("x1", NULL), "caller hung up", "cancel why: the caller abandoned");

    offer("cr", "x2", "all");
    ok(ring_result("cr", "x2", "b", "answered") == 0 && count(SB_ACT_CANCEL) == 2,
       "cancel why: x2 rings a, b and c, b answers: two cancels");
    ok(!strcmp(cancel_why("x2", "a"), "answered elsewhere") &&
           !strcmp(cancel_why("x2", "c"), "answered elsewhere"),
       "cancel why: a's and c's: answered elsewhere (%s, %s)", cancel_why("x2", "a"),
       cancel_why("x2", "c"));

    offer("cr", "x3", "q");
    evf("cr", "{\"type\":\"hangup\",\"call\":\"x3\"}");
    is_str(cancel_why("x3", "a"), "caller hung up", "cancel why: a hangup before the answer");

    offer("cr", "x4", "q");
    evf("cr", "{\"type\":\"transfer\",\"call\":\"x4\",\"agent\":\"c\"}");
    is_str(cancel_why("x4", "a"), "transferred", "cancel why: transferred to an agent");
    evf("cr", "{\"type\":\"transfer\",\"call\":\"x4\",\"queue\":\"all\"}");
    is_str(cancel_why("x4", "c"), "transferred", "cancel why: transferred to a queue");
    status("cr", "a", "paused");
    is_str(cancel_why("x4", "a"), "agent left", "cancel why: the agent paused");
    evf("cr", "{\"type\":\"abandon\",\"call\":\"x4\"}");
    evf("cr", "{\"type\":\"hangup\",\"call\":\"x2\"}");
    ok(!strcmp(agent_status("cr", "b"), "available") &&
           !strcmp(agent_status("cr", "c"), "available"),
       "cancel why: b and c free at the end");
}

/* 10. A connect names the device of the ring answered and its URI: a ring
** on a mobile, a ring-all's answer, a transfer to an agent answered. */
static void test_connect_device(void)
{
    ok(account("cd") == 0 && policy("cd", "all", ALL) == 0 &&
           policy("cd", "mob",
                  "local P = {}\n"
                  "function P.route(call, agents, ctx)\n"
                  "  if #agents == 0 then return {} end\n"
                  "  return { ring = agents[1].id, device = 'mobile' }\n"
                  "end\nreturn P\n") == 0 &&
           put(sb_agent_put, "cd",
               "{\"id\":\"m\",\"devices\":{\"softphone\":\"sip:m@pbx.example\",\"mobile\":"
               "\"tel:+447700900123\"},\"status\":\"available\"}") == 0 &&
           put(sb_queue_put, "cd",
               "{\"id\":\"mq\",\"policy\":\"mob\",\"members\":[{\"agent\":\"m\"}]}") == 0 &&
           put(sb_queue_put, "cd",
               "{\"id\":\"all\",\"policy\":\"all\",\"members\":[{\"agent\":\"a\"},{\"agent\":"
               "\"b\"}]}") == 0,
       "connect: agent m (softphone and mobile), queue mq ringing mobiles, queue all (a, b)");
    offer("cd", "d1", "mq");
    ring_result("cd", "d1", "m", "answered");
    const sb_action *x = find(SB_ACT_CONNECT, "d1", "m");
    ok(x && x->device && !strcmp(x->device, "mobile") && x->uri &&
           !strcmp(x->uri, "tel:+447700900123"),
       "connect: m answered on the mobile: device mobile, its URI (%s, %s)",
       x && x->device ? x->device : "-", x && x->uri ? x->uri : "-");
    offer("cd", "d2", "all");
    ring_result("cd", "d2", "b", "answered");
    x = find(SB_ACT_CONNECT, "d2", "b");
    ok(x && x->device && !strcmp(x->device, "softphone") && x->uri &&
           !strcmp(x->uri, "sip:b@pbx.example"),
       "connect: b answered a ring-all: softphone, sip:b@pbx.example");
    evf("cd", "{\"type\":\"transfer\",\"call\":\"d2\",\"agent\":\"a\"}");
    ring_result("cd", "d2", "a", "answered");
    x = find(SB_ACT_CONNECT, "d2", "a");
    ok(x && x->device && !strcmp(x->device, "softphone") && x->uri &&
           !strcmp(x->uri, "sip:a@pbx.example"),
       "connect: a answered d2 transferred to her: softphone, sip:a@pbx.example");
    char buf[512];
    sb_action_json(x, buf, sizeof buf);
    ok(strstr(buf, "\"device\":\"softphone\",\"uri\":\"sip:a@pbx.example\"") != NULL,
       "connect: and in its JSON: %s", buf);
    evf("cd", "{\"type\":\"hangup\",\"call\":\"d1\"}");
    evf("cd", "{\"type\":\"hangup\",\"call\":\"d2\"}");
}

/* Wait 10 s, or as the call's attrs.wait says. */
static const char *const WAIT10 = "local P = {}\n"
                                  "function P.route(call, agents, ctx)\n"
                                  "  return { wait = call.attrs.wait or 10 }\n"
                                  "end\nreturn P\n";

/* 11. A wait's due_ms is when the engine next takes the call up by itself:
** the policy's wake-up or the queue's max wait, the sooner, at an offer
** and at a transfer to a queue; and the call is taken up then. */
static void test_wait_due(void)
{
    ok(account("wd") == 0 && policy("wd", "w", WAIT10) == 0 &&
           wait_queue("wd", "back", "w", 0, NULL) == 0 &&
           wait_queue("wd", "short", "w", 3, "back") == 0 &&
           wait_queue("wd", "long", "w", 30, NULL) == 0,
       "due: queues short (max wait 3 s, overflow to back), long (30 s), back; policy waits");
    int64_t t0 = now_ms;
    offer("wd", "w1", "short");
    const sb_action *x = find(SB_ACT_WAIT, "w1", NULL);
    is_int(x ? x->due_ms - t0 : -1, 3000, "due: a 10 s wait in a 3 s max wait: due at 3 s");
    evf("wd", "{\"type\":\"offer\",\"call\":\"w2\",\"queue\":\"long\",\"attrs\":{\"wait\":5}}");
    x = find(SB_ACT_WAIT, "w2", NULL);
    is_int(x ? x->due_ms - t0 : -1, 5000, "due: a 5 s wait in a 30 s max wait: due at 5 s");
    evf("wd", "{\"type\":\"offer\",\"call\":\"w3\",\"queue\":\"long\",\"attrs\":{\"wait\":0}}");
    x = find(SB_ACT_WAIT, "w3", NULL);
    is_int(x ? x->due_ms - t0 : -1, 30000, "due: no wake-up in a 30 s max wait: due at 30 s");
    evf("wd", "{\"type\":\"offer\",\"call\":\"w4\",\"queue\":\"back\",\"attrs\":{\"wait\":0}}");
    x = find(SB_ACT_WAIT, "w4", NULL);
    ok(x && x->due_ms == 0, "due: no wake-up, no max wait: no due_ms");
    now_ms += 1000;
    evf("wd", "{\"type\":\"transfer\",\"call\":\"w2\",\"queue\":\"short\"}");
    x = find(SB_ACT_WAIT, "w2", NULL);
    is_int(x ? x->due_ms - now_ms : -1, 3000, "due: transferred to short: due at its 3 s max wait");
    now_ms = t0 + 3000;
    ok(tick() == 0 && find(SB_ACT_OVERFLOW, "w1", NULL), "due: at 3 s w1 overflows to back");
    const char *calls[] = {"w1", "w2", "w3", "w4"};
    for (int i = 0; i < 4; i++)
        evf("wd", "{\"type\":\"abandon\",\"call\":\"%s\"}", calls[i]);
}

/* Has the live call's trace an entry of this decision and detail, made by
** the engine (no policy, version or fallback)? Its place, or -1. */
static int engine_entry(const char *acct, const char *call, const char *decision,
                        const char *detail)
{
    json_t *d = get_json(sb_call_get(eng, acct, call, res)), *e;
    size_t i;
    int at = -1;
    json_array_foreach(json_object_get(d, "trace"), i, e)
    {
        const char *dec = json_string_value(json_object_get(e, "decision"));
        const char *det = json_string_value(json_object_get(e, "detail"));
        const char *pol = json_string_value(json_object_get(e, "policy"));
        const char *ver = json_string_value(json_object_get(e, "version"));
        if (at < 0 && dec && !strcmp(dec, decision) && det && !strcmp(det, detail) && pol &&
            !*pol && ver && !*ver && json_is_false(json_object_get(e, "fallback")))
            at = (int)i;
    }
    json_decref(d);
    return at;
}

/* 12. The trace has what the engine did to the call besides its policies'
** decisions: a transfer to a queue and to an agent, an overflow at max
** wait or at a full queue; the record's policy versions name policies
** only. */
static void test_trace_entries(void)
{
    ok(account("te") == 0 && policy("te", "w", WAIT10) == 0 && policy("te", "all", ALL) == 0 &&
           wait_queue("te", "back", "w", 0, NULL) == 0 &&
           wait_queue("te", "short", "w", 3, "back") == 0 &&
           put(sb_queue_put, "te",
               "{\"id\":\"one\",\"policy\":\"w\",\"max_length\":1,\"overflow\":\"back\"}") == 0 &&
           put(sb_queue_put, "te",
               "{\"id\":\"all\",\"policy\":\"all\",\"members\":[{\"agent\":\"a\"},{\"agent\":"
               "\"b\"}]}") == 0,
       "trace: queues back, short (3 s max wait, overflow to back), one (one call, overflow to "
       "back), all (a, b)");
    offer("te", "e1", "short");
    now_ms += 3000;
    tick();
    int at = engine_entry("te", "e1", "move", "max wait 3 s: overflow to back");
    ok(at == 1, "trace: e1's max wait: a move, \"max wait 3 s: overflow to back\", at %d", at);
    is_int(call_num("te", "e1", "decisions"), 3, "trace: e1 has had three entries");
    evf("te", "{\"type\":\"transfer\",\"call\":\"e1\",\"queue\":\"all\"}");
    ok(find(SB_ACT_RING, "e1", NULL) != NULL, "trace: e1 transferred to all rings a and b");
    at = engine_entry("te", "e1", "move", "transfer to queue all");
    ok(at == 3, "trace: a move, \"transfer to queue all\", at %d, before all's ring", at);
    ring_result("te", "e1", "a", "answered");
    evf("te", "{\"type\":\"transfer\",\"call\":\"e1\",\"agent\":\"b\"}");
    at = engine_entry("te", "e1", "ring", "transfer to agent b");
    ok(at == 5, "trace: a ring, \"transfer to agent b\", at %d", at);

    offer("te", "e2", "one");
    offer("te", "e3", "one");
    at = engine_entry("te", "e3", "move", "queue full: overflow to back");
    ok(at == 0, "trace: e3 at a full queue: a move, \"queue full: overflow to back\", at %d", at);
    const char *calls[] = {"e1", "e2", "e3"};
    for (int i = 0; i < 3; i++)
        evf("te", "{\"type\":\"abandon\",\"call\":\"%s\"}", calls[i]);
    evf("te", "{\"type\":\"hangup\",\"call\":\"e1\"}");
    json_t *d = get_json(sb_call_get(eng, "te", "e1", res)), *e;
    size_t i;
    int named = 0, blank = 0;
    json_array_foreach(json_object_get(d, "policy_versions"), i, e)
    {
        const char *pol = json_string_value(json_object_get(e, "policy"));
        named += pol && (!strcmp(pol, "w") || !strcmp(pol, "all"));
        blank += !pol || !*pol;
    }
    json_decref(d);
    ok(named == 2 && blank == 0, "trace: e1's record names w and all, no blank policy (%d, %d)",
       named, blank);
}

/* 14. sb_tick_for: a tick with a share of time. Calls that each cost their
** policy a millisecond or more and all wake at once held sb_tick (and so
** the daemon's loop, /healthz and SIGTERM) until every one was decided
** again, and while they woke again meanwhile, for ever (found when tried as
** a security auditor: a tenant's 800 calls froze the daemon). */
static const char *const SLOW_WAIT = "local P = {}\n"
                                     "function P.route(call, agents, ctx)\n"
                                     "  local x = 0\n"
                                     "  for i = 1, 150000 do x = x + i end\n"
                                     "  return { wait = 1 }\n"
                                     "end\nreturn P\n";

static void test_tick_share(void)
{
    ok(account("ts") == 0 && policy("ts", "slow", SLOW_WAIT) == 0 &&
           wait_queue("ts", "q", "slow", 0, NULL) == 0,
       "share: queue q, no agents, a policy that spins, then waits 1 s");
    char id[16];
    for (int i = 0; i < 8; i++) {
        snprintf(id, sizeof id, "s%d", i);
        offer("ts", id, "q");
    }
    now_ms += 1000;
    int more = 0, calls = 0;
    is_int(sb_tick_for(eng, 1, &more, res), 0, "share: a tick of 1 ms works");
    ok(more == 1 && sb_next_deadline(eng) <= now_ms,
       "share: ... and ends with timers still due (more %d)", more);
    int idle = 0; /* calls that said more with nothing due */
    while (more && calls++ < 20) {
        sb_tick_for(eng, 1, &more, res);
        idle += more && sb_next_deadline(eng) > now_ms;
    }
    ok(!more && sb_next_deadline(eng) > now_ms,
       "share: called again, %d more times, it fires the rest", calls);
    is_int(idle, 0, "share: more is set only while a timer is due");
    now_ms += 1000;
    is_int(sb_tick_for(eng, 0, &more, res), 0, "share: 0 ms: no limit");
    ok(!more && sb_next_deadline(eng) > now_ms, "share: ... every due timer fired at once");
    for (int i = 0; i < 8; i++)
        evf("ts", "{\"type\":\"abandon\",\"call\":\"s%d\"}", i);
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/sb-test-callflow-%d", (int)getpid());
    rmtree(dir);
    res = sb_result_new();
    eng = open_engine();
    ok(eng != NULL, "engine opened on %s", dir);
    if (!eng) return done_testing();
    test_abandon();
    test_ring_results();
    test_sequence();
    test_agent_leaves();
    test_after_call();
    test_transfers();
    test_overflow();
    test_maxwait_loop();
    test_maxwait_ringing();
    test_across_queues();
    test_missed_for();
    test_queues_past_a_batch();
    test_deletes();
    test_many_queues();
    test_isolation_and_replay();
    test_clock_back_maxwait();
    test_queue_line();
    test_live_stats();
    test_retry_gap();
    test_ring_attempts();
    test_tick_share();
    test_cancel_reasons();
    test_connect_device();
    test_wait_due();
    test_trace_entries();
    test_wake_order();
    test_queue_staff();
    test_queue_emptied();
    test_member_pause();
    sb_close(eng);
    sb_result_free(res);
    rmtree(dir);
    return done_testing();
}
