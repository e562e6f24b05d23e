/*
** test_progressive.c — the progressive ring (mode = "progressive"), end to
** end through the C API on the injected clock: the first agent rings at
** once and every step one more joins from sb_tick while the earlier ones
** ring on; the first answer cancels the others; a busy agent does not end
** the ring while others are still to join; an agent who is not free when
** its turn comes is skipped; the steps keep their times through a late tick
** and a reopened engine; the end of the whole ring (or everyone failing with
** nobody left to join) goes back to the policy, with one no-answer per agent
** and ring; and the decisions the engine refuses, with file:line.
*/
#include "switchboard.h"
#include "tap.h"
#include "testkit.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[256];
static sb_engine *eng;
static sb_result *res;

/* Rings every available agent in position order, progressively; the
** call's attributes set the step and the timeout, and `once` makes it wait
** instead of ringing a second time (so the test sees the call come back). */
static const char *const prog_src =
    "local P = {}\n"
    "local function by_position(a, b) return a.position < b.position end\n"
    "function P.route(call, agents, ctx)\n"
    "  local attrs = call.attrs\n"
    "  if call.attempts > 0 and attrs.once then return { wait = 600 } end\n"
    "  if #agents == 0 then return {} end\n"
    "  table.sort(agents, by_position)\n"
    "  local ids = {}\n"
    "  for i, a in ipairs(agents) do ids[i] = a.id end\n"
    "  return { ring = ids, mode = 'progressive', step = attrs.step or 5,\n"
    "           timeout = attrs.timeout or 20 }\n"
    "end\n"
    "return P\n";

static sb_engine *open_engine(void)
{
    sb_config cfg;
    test_engine_config(&cfg, dir, NULL, 8 << 20);
    return test_open(&cfg, res);
}

#define ev(...) test_eventf(eng, res, "acme", __VA_ARGS__)

static int tick_at(int64_t t)
{
    now_ms = t;
    return sb_tick(eng, res);
}

static int count(sb_action_type type)
{
    return test_action_count(res, type);
}

static const sb_action *nth(sb_action_type type, int n)
{
    return test_action_nth(res, type, n);
}

/* The one action of a type, if there is exactly one, for this agent. */
static int only(sb_action_type type, const char *agent)
{
    const sb_action *a = nth(type, 0);
    return count(type) == 1 && a && a->agent_id && strcmp(a->agent_id, agent) == 0;
}

static json_t *get_json(int rc)
{
    return rc ? NULL : json_loads(sb_result_json(res, NULL), 0, NULL);
}

static const char *status_of(const char *agent)
{
    static char buf[32];
    json_t *o = get_json(sb_agent_get(eng, "acme", agent, res));
    snprintf(buf, sizeof buf, "%s", o ? json_string_value(json_object_get(o, "status")) : "?");
    json_decref(o);
    return buf;
}

static int no_answers_of(const char *agent)
{
    json_t *o = get_json(sb_agent_get(eng, "acme", agent, res));
    int n = o ? (int)json_integer_value(json_object_get(json_object_get(o, "stats"), "no_answers"))
              : -1;
    json_decref(o);
    return n;
}

/* The call (live, or its record once it ended); the caller frees it. */
static json_t *call_of(const char *call)
{
    return get_json(sb_call_get(eng, "acme", call, res));
}

static const char *state_of(const char *call)
{
    static char buf[32];
    json_t *o = call_of(call);
    const char *s = o ? json_string_value(json_object_get(o, "state")) : NULL;
    snprintf(buf, sizeof buf, "%s", s ? s : "?");
    json_decref(o);
    return buf;
}

static int decisions_of(const char *call)
{
    json_t *o = call_of(call);
    int n = o ? (int)json_integer_value(json_object_get(o, "decisions")) : -1;
    json_decref(o);
    return n;
}

/* The kind of the call's second decision ("" if none): the test policy
** waits only once the call has rung, so "wait" there says the ring came
** back to it. (Agents the ring freed may ask it again after that.) */
static const char *second_decision(const char *call)
{
    static char buf[16];
    json_t *o = call_of(call);
    json_t *tr = json_array_get(json_object_get(o, "trace"), 1);
    const char *k = json_string_value(json_object_get(tr, "decision"));
    snprintf(buf, sizeof buf, "%s", k ? k : "");
    json_decref(o);
    return buf;
}

/* The agents ringing for the call now, as "a1,a2" in their order there,
** sorted (the engine keeps no order among them). */
static const char *ringing_of(const char *call)
{
    static char buf[64];
    char ids[8][16];
    int n = 0;
    json_t *o = call_of(call);
    size_t i;
    json_t *r;
    json_array_foreach(json_object_get(o, "ringing"), i, r)
    {
        if (n < 8)
            snprintf(ids[n++], sizeof ids[0], "%s", json_string_value(json_object_get(r, "agent")));
    }
    json_decref(o);
    for (int a = 0; a < n; a++)
        for (int b = a + 1; b < n; b++)
            if (strcmp(ids[b], ids[a]) < 0) {
                char tmp[16];
                memcpy(tmp, ids[a], sizeof tmp);
                memcpy(ids[a], ids[b], sizeof tmp);
                memcpy(ids[b], tmp, sizeof tmp);
            }
    buf[0] = 0;
    for (int a = 0; a < n; a++) {
        if (a) strcat(buf, ",");
        strcat(buf, ids[a]);
    }
    return buf;
}

/* How often `agent` appears among the call's ring attempts, and with
** which last outcome. */
static int attempts_of(const char *call, const char *agent, char *outcome, size_t cap)
{
    json_t *o = call_of(call);
    size_t i;
    json_t *a;
    int n = 0;
    if (outcome) outcome[0] = 0;
    json_array_foreach(json_object_get(o, "attempts_detail"), i, a)
    {
        if (strcmp(json_string_value(json_object_get(a, "agent")), agent)) continue;
        n++;
        if (outcome) snprintf(outcome, cap, "%s", json_string_value(json_object_get(a, "outcome")));
    }
    json_decref(o);
    return n;
}

/* A call into q with the policy's knobs in its attributes. */
static int offer(const char *call, const char *attrs)
{
    static int n;
    return ev("{\"type\":\"offer\",\"call\":\"%s\",\"queue\":\"q\",\"caller\":\"+1555010%04d\","
              "\"attrs\":%s}",
              call, ++n, attrs);
}

/* Every timer the tests left behind fires, on a clock an hour on. */
static void settle(void)
{
    tick_at(now_ms + 3600 * 1000);
}

static void setup(void)
{
    ok(sb_account_put(eng, "{\"id\":\"acme\"}", 13, res) == 0, "account");
    for (int i = 1; i <= 4; i++) {
        char a[160];
        snprintf(a, sizeof a,
                 "{\"id\":\"a%d\",\"devices\":{\"softphone\":\"sip:a%d@pbx\"},"
                 "\"status\":\"available\"}",
                 i, i);
        sb_agent_put(eng, "acme", a, strlen(a), res);
    }
    ok(sb_policy_put(eng, "acme", "prog", prog_src, strlen(prog_src), NULL, res) == 0,
       "upload a progressive policy (%s)", sb_result_message(res));
    const char *q = "{\"id\":\"q\",\"policy\":\"prog\",\"ring_timeout\":30,\"members\":["
                    "{\"agent\":\"a1\",\"position\":1},{\"agent\":\"a2\",\"position\":2},"
                    "{\"agent\":\"a3\",\"position\":3},{\"agent\":\"a4\",\"position\":4}]}";
    ok(test_put(eng, res, sb_queue_put, "acme", q) == 0, "queue q");
    /* Another queue a2 is in, whose calls ring everyone at once. */
    const char *all = "local P = {}\n"
                      "function P.route(call, agents, ctx)\n"
                      "  if #agents == 0 then return {} end\n"
                      "  return { ring = agents[1] }\n"
                      "end\nreturn P\n";
    sb_policy_put(eng, "acme", "one", all, strlen(all), NULL, res);
    const char *other = "{\"id\":\"other\",\"policy\":\"one\",\"members\":[{\"agent\":\"a2\"}]}";
    ok(test_put(eng, res, sb_queue_put, "acme", other) == 0, "queue other");
}

static void test_grows_and_answer(void)
{
    int64_t t0 = now_ms;
    ok(offer("p1", "{}") == 0, "offer p1");
    ok(only(SB_ACT_RING, "a1") && nth(SB_ACT_RING, 0)->timeout_s == 20,
       "t=0: only a1 rings, for the whole ring's 20 s");
    is_int((int)(sb_next_deadline(eng) - t0), 5000, "the next timer is the step, 5 s on");
    ok(tick_at(t0 + 4999) == 0 && sb_result_count(res) == 0, "nothing happens before the step");
    ok(tick_at(t0 + 5000) == 0 && only(SB_ACT_RING, "a2") && count(SB_ACT_CANCEL) == 0,
       "t=5: the tick rings a2 as well, and cancels nobody");
    ok(nth(SB_ACT_RING, 0) && nth(SB_ACT_RING, 0)->timeout_s == 15 &&
           strcmp(nth(SB_ACT_RING, 0)->call_id, "p1") == 0 &&
           strcmp(nth(SB_ACT_RING, 0)->uri, "sip:a2@pbx") == 0,
       "for what is left of the ring, 15 s, on its device");
    is_str(ringing_of("p1"), "a1,a2", "a1 rings on beside a2");
    is_str(status_of("a3"), "available", "a3, whose turn has not come, is not reserved");
    ok(ev("{\"type\":\"ring_result\",\"call\":\"p1\",\"agent\":\"a2\",\"outcome\":\"answered\"}") ==
           0,
       "a2 answers");
    ok(only(SB_ACT_CONNECT, "a2") && only(SB_ACT_CANCEL, "a1"),
       "the call connects to a2 and only a1's ring is cancelled");
    is_str(status_of("a1"), "available", "a1 is free again");
    is_int(no_answers_of("a1"), 0, "a cancelled ring is not a no-answer");
    ok(tick_at(t0 + 10000) == 0 && count(SB_ACT_RING) == 0, "the next step rings nobody");
    is_int(attempts_of("p1", "a3", NULL, 0), 0, "a3 never rang for p1");
    json_t *c = call_of("p1");
    is_int((int)json_integer_value(json_object_get(c, "attempts")), 1,
           "the whole ring is one attempt");
    is_int((int)json_integer_value(json_object_get(c, "decisions")), 1, "from one decision");
    const char *detail = json_string_value(
        json_object_get(json_array_get(json_object_get(c, "trace"), 0), "detail"));
    ok(detail && strncmp(detail, "ring progressive every 5s a1/softphone, a2/softphone, ", 54) == 0,
       "the trace names the mode and step (%s)", detail ? detail : "-");
    json_decref(c);
    ev("{\"type\":\"hangup\",\"call\":\"p1\"}");
    settle();
}

static void test_busy_before_next(void)
{
    int64_t t0 = now_ms;
    offer("p2", "{}");
    ok(only(SB_ACT_RING, "a1"), "p2: a1 rings");
    now_ms = t0 + 1000;
    ok(ev("{\"type\":\"ring_result\",\"call\":\"p2\",\"agent\":\"a1\",\"outcome\":\"busy\"}") == 0,
       "a1 is busy before a2 joins");
    ok(count(SB_ACT_RING) == 0 && count(SB_ACT_WAIT) == 0, "nothing rings, nothing waits");
    is_str(state_of("p2"), "ringing", "the ring goes on with nobody ringing yet");
    is_int(decisions_of("p2"), 1, "and the policy is not asked again");
    is_str(status_of("a1"), "available", "a1 is free for other calls");
    ok(tick_at(t0 + 6500) == 0 && only(SB_ACT_RING, "a2") && nth(SB_ACT_RING, 0)->timeout_s == 15,
       "at its step (the tick 1.5 s late) a2 rings, for the 15 s left");
    is_int((int)(sb_next_deadline(eng) - t0), 10000, "the next step keeps its time");
    ok(tick_at(t0 + 10000) == 0 && only(SB_ACT_RING, "a3"), "then a3");
    is_str(ringing_of("p2"), "a2,a3", "a1 is not rung again in this ring");
    ev("{\"type\":\"abandon\",\"call\":\"p2\"}");
    ok(count(SB_ACT_CANCEL) == 2, "the caller hangs up: both rings are cancelled");
    settle();
}

static void test_skip_late_and_reopen(void)
{
    int64_t t0 = now_ms;
    offer("p3", "{}");
    ok(only(SB_ACT_RING, "a1"), "p3: a1 rings");
    ev("{\"type\":\"agent_status\",\"agent\":\"a2\",\"status\":\"paused\"}");
    ok(tick_at(t0 + 5000) == 0 && only(SB_ACT_RING, "a3"),
       "a2 paused: at its turn it is skipped and a3 rings at once");
    ok(nth(SB_ACT_RING, 0) && nth(SB_ACT_RING, 0)->timeout_s == 15, "for the 15 s left");
    is_str(status_of("a2"), "paused", "a2 stays paused");
    is_int(attempts_of("p3", "a2", NULL, 0), 0, "and never rang for p3");
    /* The ring's state is all in LMDB: it carries on in a new engine. */
    sb_close(eng);
    eng = open_engine();
    ok(eng != NULL, "engine reopened mid-ring");
    is_int((int)(sb_next_deadline(eng) - t0), 10000, "the next step is 5 s after a3 joined");
    ok(tick_at(t0 + 12500) == 0 && only(SB_ACT_RING, "a4") && nth(SB_ACT_RING, 0)->timeout_s == 10,
       "a late tick rings a4, for what is left of the ring from its step, 10 s");
    is_str(ringing_of("p3"), "a1,a3,a4", "three ring together");
    ev("{\"type\":\"agent_status\",\"agent\":\"a2\",\"status\":\"available\"}");
    ok(count(SB_ACT_RING) == 0, "a2 available again does not join a ring that went past it");
    ev("{\"type\":\"abandon\",\"call\":\"p3\"}");
    settle();

    /* An agent who took another call in the meantime is skipped too. */
    t0 = now_ms;
    offer("p4", "{}");
    ok(only(SB_ACT_RING, "a1"), "p4: a1 rings");
    ev("{\"type\":\"offer\",\"call\":\"o1\",\"queue\":\"other\",\"caller\":\"+15550109999\"}");
    ok(only(SB_ACT_RING, "a2"), "a2 rings for a call of another queue");
    ok(tick_at(t0 + 5000) == 0 && only(SB_ACT_RING, "a3"), "so at its turn a3 rings instead");
    ev("{\"type\":\"abandon\",\"call\":\"o1\"}");
    ev("{\"type\":\"abandon\",\"call\":\"p4\"}");
    settle();
}

static void test_ring_ends(void)
{
    int64_t t0 = now_ms;
    int na[5];
    for (int i = 1; i <= 4; i++)
        na[i] = no_answers_of(i == 1 ? "a1" : i == 2 ? "a2" : i == 3 ? "a3" : "a4");
    offer("p5", "{\"once\":true}");
    ok(only(SB_ACT_RING, "a1"), "p5: a1 rings");
    tick_at(t0 + 5000);
    tick_at(t0 + 10000);
    ok(tick_at(t0 + 15000) == 0 && only(SB_ACT_RING, "a4") && nth(SB_ACT_RING, 0)->timeout_s == 5,
       "the last agent joins 5 s before the end");
    is_str(ringing_of("p5"), "a1,a2,a3,a4", "all four ring");
    ok(tick_at(t0 + 19999) == 0 && sb_result_count(res) == 0, "until the end");
    ok(tick_at(t0 + 20000) == 0 && count(SB_ACT_CANCEL) == 4 && count(SB_ACT_RING) == 0,
       "at 20 s the whole ring ends: four cancels");
    is_str(state_of("p5"), "waiting", "the call is back in line");
    is_str(second_decision("p5"), "wait", "and its policy decided again (it waits)");
    int once = 1;
    for (int i = 1; i <= 4; i++) {
        const char *id = i == 1 ? "a1" : i == 2 ? "a2" : i == 3 ? "a3" : "a4";
        char outcome[32];
        once &= no_answers_of(id) == na[i] + 1 &&
                attempts_of("p5", id, outcome, sizeof outcome) == 1 &&
                strcmp(outcome, "no_answer") == 0;
    }
    ok(once, "each agent rang once and counts one no-answer, however long it rang");
    ev("{\"type\":\"abandon\",\"call\":\"p5\"}");
    settle();

    /* Everyone failed and nobody is left to join: back at once. */
    t0 = now_ms;
    offer("p6", "{\"once\":true,\"step\":5}");
    ev("{\"type\":\"agent_status\",\"agent\":\"a3\",\"status\":\"offline\"}");
    ev("{\"type\":\"agent_status\",\"agent\":\"a4\",\"status\":\"offline\"}");
    tick_at(t0 + 5000);
    ok(only(SB_ACT_RING, "a2"), "p6: a2 joins a1");
    now_ms = t0 + 6000;
    ev("{\"type\":\"ring_result\",\"call\":\"p6\",\"agent\":\"a1\",\"outcome\":\"rejected\"}");
    is_str(state_of("p6"), "ringing", "a1 rejects: a2 still rings");
    ok(tick_at(t0 + 10000) == 0 && count(SB_ACT_RING) == 0,
       "a3 and a4 went offline: their turn rings nobody");
    is_str(state_of("p6"), "ringing", "a2 rings on");
    now_ms = t0 + 11000;
    ev("{\"type\":\"ring_result\",\"call\":\"p6\",\"agent\":\"a2\",\"outcome\":\"busy\"}");
    ok(strcmp(state_of("p6"), "waiting") == 0 && strcmp(second_decision("p6"), "wait") == 0,
       "a2 busy with nobody left: back to the policy before the end");
    ev("{\"type\":\"abandon\",\"call\":\"p6\"}");
    ev("{\"type\":\"agent_status\",\"agent\":\"a3\",\"status\":\"available\"}");
    ev("{\"type\":\"agent_status\",\"agent\":\"a4\",\"status\":\"available\"}");
    settle();

    /* A step as long as the ring: nobody joins, so a busy first agent
    ** ends the ring at once. */
    offer("p7", "{\"once\":true,\"step\":20,\"timeout\":20}");
    ok(only(SB_ACT_RING, "a1"), "p7: a1 rings");
    ev("{\"type\":\"ring_result\",\"call\":\"p7\",\"agent\":\"a1\",\"outcome\":\"busy\"}");
    ok(strcmp(state_of("p7"), "waiting") == 0 && strcmp(second_decision("p7"), "wait") == 0,
       "with a step as long as the ring, a1 busy goes back to the policy");
    ev("{\"type\":\"abandon\",\"call\":\"p7\"}");
    settle();
}

/* A tick that comes only after the whole ring's end (the engine was down,
** say): the steps it missed would have come before the end, but the ring
** is over by now, so nobody joins it: no ring that is cancelled in the same
** breath, no no-answer for an agent who never rang. */
static void test_late_past_end(void)
{
    int64_t t0 = now_ms;
    int na1 = no_answers_of("a1"), na2 = no_answers_of("a2"), na4 = no_answers_of("a4");
    offer("p8", "{\"once\":true}");
    ok(only(SB_ACT_RING, "a1"), "p8: a1 rings");
    ok(tick_at(t0 + 25000) == 0, "the first tick comes 5 s after the ring's end");
    is_int(count(SB_ACT_RING), 0, "it rings nobody: the ring is over");
    ok(only(SB_ACT_CANCEL, "a1"), "it cancels a1's ring, the only one");
    is_int(no_answers_of("a1"), na1 + 1, "a1, who rang to the end, counts a no-answer");
    ok(no_answers_of("a2") == na2 && no_answers_of("a4") == na4,
       "a2 and a4, who never rang, count none");
    ok(attempts_of("p8", "a2", NULL, 0) == 0 && attempts_of("p8", "a4", NULL, 0) == 0,
       "and have no ring attempt in the call");
    ok(strcmp(state_of("p8"), "waiting") == 0 && strcmp(second_decision("p8"), "wait") == 0,
       "the call is back with its policy");
    ev("{\"type\":\"abandon\",\"call\":\"p8\"}");
    settle();
}

/* A policy returning `ret` fails with `msg`: the call gets the fallback and
** its trace has the message with the file and line. */
static void refused(const char *name, const char *ret, const char *msg)
{
    char src[400], call[32], want[300];
    snprintf(src, sizeof src,
             "local P = {}\n"
             "function P.route(call, agents, ctx)\n"
             "  return %s\n"
             "end\nreturn P\n",
             ret);
    sb_policy_put(eng, "acme", name, src, strlen(src), NULL, res);
    char q[200];
    snprintf(q, sizeof q, "{\"id\":\"bad\",\"policy\":\"%s\",\"members\":[{\"agent\":\"a3\"}]}",
             name);
    test_put(eng, res, sb_queue_put, "acme", q);
    snprintf(call, sizeof call, "c-%s", name);
    ev("{\"type\":\"offer\",\"call\":\"%s\",\"queue\":\"bad\",\"caller\":\"+15550100001\"}", call);
    int rang = only(SB_ACT_RING, "a3");
    json_t *c = call_of(call);
    json_t *tr = json_array_get(json_object_get(c, "trace"), 0);
    const char *detail = json_string_value(json_object_get(tr, "detail"));
    snprintf(want, sizeof want, "%s.lua:3: route returned invalid decision: %s", name, msg);
    ok(rang && json_is_true(json_object_get(tr, "fallback")) && detail &&
           strncmp(detail, want, strlen(want)) == 0,
       "%s is refused: %s", ret, detail ? detail : "-");
    if (!detail || strncmp(detail, want, strlen(want))) diag("  want %s", want);
    json_decref(c);
    ev("{\"type\":\"abandon\",\"call\":\"%s\"}", call);
}

static void test_bad_decisions(void)
{
    refused("bad1", "{ ring = agents[1], step = 5 }", "'step' goes only with mode 'progressive'");
    refused("bad2", "{ ring = agents[1], mode = 'sequence', step = 5 }",
            "'step' goes only with mode 'progressive'");
    refused("bad3", "{ ring = agents[1], mode = 'progressive', step = 0 }",
            "step: expected an integer 1..600, got 0");
    refused("bad4", "{ ring = agents[1], mode = 'progressive', step = 601 }",
            "step: expected an integer 1..600, got 601");
    refused("bad5", "{ ring = agents[1], mode = 'progressive', step = 2.5 }",
            "step: expected an integer 1..600, got 2.5");
    refused("bad6", "{ ring = agents[1], mode = 'progressive' }",
            "mode 'progressive' needs 'step' (seconds before each next agent joins, 1..600)");
    refused("bad7", "{ wait = 5, step = 5 }", "'step' goes only with 'ring'");
    refused("bad8", "{ ring = agents[1], mode = 'progresive', step = 5 }",
            "mode: expected 'all', 'sequence' or 'progressive', got 'progresive'");
    settle();
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/sb-test-progressive-%d", (int)getpid());
    res = sb_result_new();
    eng = open_engine();
    if (!ok(eng != NULL, "engine opened")) return done_testing();
    setup();
    test_grows_and_answer();
    test_busy_before_next();
    test_skip_late_and_reopen();
    test_ring_ends();
    test_late_past_end();
    test_bad_decisions();
    sb_close(eng);
    sb_result_free(res);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd)) diag("cleanup failed");
    return done_testing();
}
