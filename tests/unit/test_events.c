/*
** test_events.c — the call and agent state machine (events.c) where calls
** move around: a queue's count of waiting calls through transfers and
** dispatches, max wait after a transfer that failed, waiting calls far back
** in a queue and agents in many queues, a transfer to an agent while the
** released agent is offered to other calls, what the record of a
** transferred call says, an agent re-sending its status, and stored calls
** and agents of earlier formats read by this version.
*/
#include "switchboard.h"
#include "tap.h"
#include "testkit.h"

#include "engine.h" /* the calls table, to store a call as an older version did */
#include "model.h"  /* the queue record, to make a count drift as older versions did */

#include <jansson.h>
#include <math.h>
#include <lmdb.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "callkit.h"

/* 1. A self-transfer of a waiting call: the count was decremented through
** one copy of the queue and incremented through another, loaded before. */
static void test_count_self_transfer(void)
{
    ok(account("cnt1") == 0 &&
           put(sb_queue_put, "cnt1",
               "{\"id\":\"q\",\"max_length\":2,\"members\":[{\"agent\":\"a\"}]}") == 0,
       "count: queue q of length 2, member a");
    ev("cnt1", "{\"type\":\"agent_status\",\"agent\":\"a\",\"status\":\"paused\"}");
    ev("cnt1", "{\"type\":\"offer\",\"call\":\"c1\",\"queue\":\"q\",\"caller\":\"+442079460001\"}");
    is_int(waiting("cnt1", "q"), 1, "count: one call waits");
    ok(ev("cnt1", "{\"type\":\"transfer\",\"call\":\"c1\",\"queue\":\"q\"}") == 0,
       "count: the waiting call is transferred to its own queue");
    is_int(waiting("cnt1", "q"), 1, "count: still one waiting");
    ev("cnt1", "{\"type\":\"transfer\",\"call\":\"c1\",\"queue\":\"q\"}");
    is_int(waiting("cnt1", "q"), 1, "count: still one after a second self-transfer");
    ev("cnt1", "{\"type\":\"abandon\",\"call\":\"c1\"}");
    is_int(waiting("cnt1", "q"), 0, "count: none once it is abandoned");
    ok(ev("cnt1",
          "{\"type\":\"offer\",\"call\":\"c2\",\"queue\":\"q\",\"caller\":\"+442079460002\"}") ==
               0 &&
           !find(SB_ACT_REJECT, "c2", NULL) && find(SB_ACT_WAIT, "c2", NULL),
       "count: the empty queue takes a new call");
    ev("cnt1", "{\"type\":\"abandon\",\"call\":\"c2\"}");
}

/* 1b. A transfer of a connected call into a queue: releasing its agent
** routes a call waiting in that queue, after the transfer loaded it. */
static void test_count_transfer_dispatch(void)
{
    ok(account("cnt2") == 0 &&
           put(sb_queue_put, "cnt2", "{\"id\":\"q\",\"members\":[{\"agent\":\"a\"}]}") == 0 &&
           put(sb_queue_put, "cnt2",
               "{\"id\":\"q2\",\"max_length\":1,\"members\":[{\"agent\":\"a\"}]}") == 0,
       "count: queues q and q2 (length 1), both served by a");
    ev("cnt2", "{\"type\":\"offer\",\"call\":\"c1\",\"queue\":\"q\",\"caller\":\"+442079460001\"}");
    ev("cnt2", "{\"type\":\"ring_result\",\"call\":\"c1\",\"agent\":\"a\",\"outcome\":"
               "\"answered\"}");
    ev("cnt2",
       "{\"type\":\"offer\",\"call\":\"c2\",\"queue\":\"q2\",\"caller\":\"+442079460002\"}");
    is_int(waiting("cnt2", "q2"), 1, "count: c2 waits in q2 while a talks");
    now_ms += 5000;
    ok(ev("cnt2", "{\"type\":\"transfer\",\"call\":\"c1\",\"queue\":\"q2\"}") == 0 &&
           find(SB_ACT_RING, "c2", "a"),
       "count: a transfers c1 to q2 and is rung for c2");
    is_int(waiting("cnt2", "q2"), 1, "count: c1 waits in q2, c2 no longer");
    ev("cnt2", "{\"type\":\"abandon\",\"call\":\"c1\"}");
    ev("cnt2", "{\"type\":\"hangup\",\"call\":\"c2\"}");
    is_int(waiting("cnt2", "q2"), 0, "count: none once both end");
    ok(ev("cnt2",
          "{\"type\":\"offer\",\"call\":\"c3\",\"queue\":\"q2\",\"caller\":\"+442079460003\"}") ==
               0 &&
           !find(SB_ACT_REJECT, "c3", NULL),
       "count: the empty queue takes a new call");
    ev("cnt2", "{\"type\":\"abandon\",\"call\":\"c3\"}");
}

/* A queue whose stored count drifted (as older versions let it) is put
** right when it would turn a call away as full. The count is changed in
** the queue's record with LMDB directly, the engine closed. */
static int set_waiting(uint32_t acct, uint32_t queue, uint32_t waiting)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    unsigned char k[9] = {5}; /* the queues table: acct, queue */
    for (int i = 0; i < 4; i++) {
        k[1 + i] = (unsigned char)(acct >> (24 - 8 * i));
        k[5 + i] = (unsigned char)(queue >> (24 - 8 * i));
    }
    MDB_val key = {sizeof k, k}, v;
    int done = 0;
    if (mdb_env_create(&env)) return 0;
    mdb_env_set_mapsize(env, 64 << 20);
    if (mdb_env_open(env, dir, 0, 0600) == 0 && mdb_txn_begin(env, NULL, 0, &txn) == 0) {
        queue_rec q = {0};
        wbuf w = {0};
        if (mdb_dbi_open(txn, NULL, 0, &dbi) == 0 && mdb_get(txn, dbi, &key, &v) == 0 &&
            dec_queue(v.mv_data, v.mv_size, &q) == 0) {
            q.waiting = waiting;
            enc_queue(&w, &q);
            v = (MDB_val){w.b.len, w.b.p};
            done = !w.err && mdb_put(txn, dbi, &key, &v, 0) == 0;
        }
        buf_free(&w.b);
        mdb_txn_commit(txn);
    }
    mdb_env_close(env);
    return done;
}

static void test_count_repaired(void)
{
    ok(sb_account_put(eng, "{\"id\":\"cnt0\"}", 13, res) == 0 &&
           put(sb_queue_put, "cnt0", "{\"id\":\"q\",\"max_length\":2}") == 0,
       "drift: account cnt0 (the first, number 1) with queue q of length 2 (number 1)");
    ev("cnt0", "{\"type\":\"offer\",\"call\":\"c1\",\"queue\":\"q\",\"caller\":\"+442079460001\"}");
    sb_close(eng);
    ok(set_waiting(1, 1, 7), "drift: its stored count set to 7, one call waiting");
    eng = open_engine();
    ok(ev("cnt0",
          "{\"type\":\"offer\",\"call\":\"c2\",\"queue\":\"q\",\"caller\":\"+442079460002\"}") ==
               0 &&
           !find(SB_ACT_REJECT, "c2", NULL),
       "drift: the queue takes a second call");
    is_int(waiting("cnt0", "q"), 2, "drift: and counts two");
    /* (Ended before c4 is turned away: the first record an engine writes
    ** with neither decisions nor attempts trips a sanitizer in records.c.) */
    ev("cnt0", "{\"type\":\"abandon\",\"call\":\"c1\"}");
    ev("cnt0", "{\"type\":\"offer\",\"call\":\"c3\",\"queue\":\"q\",\"caller\":\"+442079460003\"}");
    ok(ev("cnt0",
          "{\"type\":\"offer\",\"call\":\"c4\",\"queue\":\"q\",\"caller\":\"+442079460004\"}") ==
               0 &&
           find(SB_ACT_REJECT, "c4", NULL),
       "drift: with two waiting again, a call is turned away: full");
    ev("cnt0", "{\"type\":\"abandon\",\"call\":\"c2\"}");
    ev("cnt0", "{\"type\":\"abandon\",\"call\":\"c3\"}");
    is_int(waiting("cnt0", "q"), 0, "drift: none waiting at the end");
}

/* 2. A transfer to an agent clears the call's max wait; when that agent
** does not take it the call is back in its queue, held to max wait again. */
static void test_maxwait_after_agent_transfer(void)
{
    ok(account("mw") == 0 && policy("mw", "lw", LW) == 0 &&
           put(sb_queue_put, "mw",
               "{\"id\":\"q\",\"policy\":\"lw\",\"max_wait\":60,\"wrapup\":600,"
               "\"members\":[{\"agent\":\"a\"}]}") == 0,
       "maxwait: queue q, max wait 60 s, 600 s wrap-up, member a");
    ev("mw", "{\"type\":\"offer\",\"call\":\"c1\",\"queue\":\"q\",\"caller\":\"+442079460001\"}");
    now_ms += 2000;
    ev("mw", "{\"type\":\"ring_result\",\"call\":\"c1\",\"agent\":\"a\",\"outcome\":\"answered\"}");
    now_ms += 300000; /* five minutes' talk: longer than the max wait */
    int64_t t0 = now_ms;
    ok(ev("mw", "{\"type\":\"transfer\",\"call\":\"c1\",\"agent\":\"b\"}") == 0 &&
           find(SB_ACT_RING, "c1", "b"),
       "maxwait: a transfers c1 to b");
    now_ms += 1000;
    ev("mw", "{\"type\":\"ring_result\",\"call\":\"c1\",\"agent\":\"b\",\"outcome\":\"rejected\"}");
    is_str(call_state("mw", "c1"), "waiting", "maxwait: b rejects; c1 waits in q (a in wrap-up)");
    now_ms = t0 + 59000;
    ok(sb_tick(eng, res) == 0 && !find(SB_ACT_REJECT, "c1", NULL),
       "maxwait: its wait counts from the transfer, not from the offer before the talk");
    now_ms = t0 + 60000;
    ok(sb_tick(eng, res) == 0 && find(SB_ACT_REJECT, "c1", NULL),
       "maxwait: at max wait the call is turned away");
    const sb_action *r = find(SB_ACT_REJECT, "c1", NULL);
    is_str(r ? r->reason : "-", "max wait exceeded", "maxwait: saying why");
    ok(find(SB_ACT_END, "c1", NULL) != NULL, "maxwait: and ends");
}

/* 3. Waiting calls the free agent cannot take are passed over, however
** many: one further back that it can take rings. */
static const char *const LANG = "local P = {}\n"
                                "function P.route(call, agents, ctx)\n"
                                "  local lang = call.attrs.language\n"
                                "  local best\n"
                                "  for _, a in ipairs(agents) do\n"
                                "    if a.skills[lang] and (not best or a.idle_for > "
                                "best.idle_for) then best = a end\n"
                                "  end\n"
                                "  if not best then return {} end\n"
                                "  return { ring = best.id }\n"
                                "end\nreturn P\n";

static void dispatch_behind(const char *acct, int nfr)
{
    char json[512];
    snprintf(json, sizeof json, "{\"id\":\"%s\"}", acct);
    ok(sb_account_put(eng, json, strlen(json), res) == 0 && policy(acct, "lang", LANG) == 0 &&
           put(sb_agent_put, acct, AGENT("en1", ",\"skills\":{\"en\":5}")) == 0 &&
           put(sb_queue_put, acct,
               "{\"id\":\"q\",\"policy\":\"lang\",\"members\":[{\"agent\":\"en1\"}]}") == 0,
       "behind %d: queue q, an English speaker en1", nfr);
    evf(acct, "{\"type\":\"offer\",\"call\":\"e0\",\"queue\":\"q\",\"caller\":\"+442079460001\","
              "\"attrs\":{\"language\":\"en\"}}");
    evf(acct, "{\"type\":\"ring_result\",\"call\":\"e0\",\"agent\":\"en1\",\"outcome\":"
              "\"answered\"}");
    int queued = 0;
    for (int i = 1; i <= nfr; i++) {
        now_ms += 1000;
        queued += evf(acct,
                      "{\"type\":\"offer\",\"call\":\"f%d\",\"queue\":\"q\",\"caller\":"
                      "\"+442079460001\",\"attrs\":{\"language\":\"fr\"}}",
                      i) == 0 &&
                  find(SB_ACT_WAIT, NULL, NULL);
    }
    now_ms += 1000;
    evf(acct, "{\"type\":\"offer\",\"call\":\"e1\",\"queue\":\"q\",\"caller\":\"+442079460001\","
              "\"attrs\":{\"language\":\"en\"}}");
    is_int(queued, nfr, "behind %d: %d French calls wait, then an English one", nfr, nfr);
    now_ms += 5000;
    ok(evf(acct, "{\"type\":\"hangup\",\"call\":\"e0\"}") == 0 && find(SB_ACT_RING, "e1", "en1"),
       "behind %d: when en1 hangs up it rings for the English call, %d in line", nfr, nfr + 1);
    is_int(waiting(acct, "q"), nfr, "behind %d: the French calls still wait", nfr);
}

/* An agent in more queues than a batch of them: each is served. */
static void test_many_queues(void)
{
    ok(account("many") == 0, "many: account");
    int made = 0;
    for (int i = 0; i < 70; i++) {
        char json[128];
        snprintf(json, sizeof json, "{\"id\":\"q%02d\",\"members\":[{\"agent\":\"a\"}]}", i);
        made += put(sb_queue_put, "many", json) == 0;
    }
    is_int(made, 70, "many: a serves 70 queues");
    ev("many", "{\"type\":\"agent_status\",\"agent\":\"a\",\"status\":\"paused\"}");
    ok(ev("many", "{\"type\":\"offer\",\"call\":\"c1\",\"queue\":\"q69\","
                  "\"caller\":\"+442079460001\"}") == 0 &&
           find(SB_ACT_WAIT, "c1", NULL),
       "many: a call in the last queue waits");
    ok(ev("many", "{\"type\":\"agent_status\",\"agent\":\"a\",\"status\":\"available\"}") == 0 &&
           find(SB_ACT_RING, "c1", "a"),
       "many: a comes back and rings for it");
}

/* 4. A transfer to an agent: the agent who hands the call over is offered
** to other waiting calls only after the target rings, so they cannot take
** it first. The policy of q2 rings everyone free, once two are. */
static void test_transfer_target_kept(void)
{
    ok(account("tt") == 0 &&
           policy("tt", "pair",
                  "local P = {}\n"
                  "function P.route(call, agents, ctx)\n"
                  "  if #agents < 2 then return {} end\n"
                  "  local ids = {}\n"
                  "  for _, a in ipairs(agents) do ids[#ids + 1] = a.id end\n"
                  "  return { ring = ids }\n"
                  "end\nreturn P\n") == 0 &&
           put(sb_queue_put, "tt", "{\"id\":\"q\",\"members\":[{\"agent\":\"a\"}]}") == 0 &&
           put(sb_queue_put, "tt",
               "{\"id\":\"q2\",\"policy\":\"pair\",\"members\":[{\"agent\":\"a\"},"
               "{\"agent\":\"c\"}]}") == 0,
       "target: queue q (a), queue q2 (a and c, rings once two are free)");
    ev("tt", "{\"type\":\"offer\",\"call\":\"c1\",\"queue\":\"q\",\"caller\":\"+442079460001\"}");
    ev("tt", "{\"type\":\"ring_result\",\"call\":\"c1\",\"agent\":\"a\",\"outcome\":\"answered\"}");
    ev("tt", "{\"type\":\"offer\",\"call\":\"w\",\"queue\":\"q2\",\"caller\":\"+442079460002\"}");
    ok(find(SB_ACT_WAIT, "w", NULL) != NULL, "target: w waits in q2 (only c free)");
    now_ms += 5000;
    int rc = ev("tt", "{\"type\":\"transfer\",\"call\":\"c1\",\"agent\":\"c\"}");
    ok(rc == 0, "target: a transfers c1 to c (%s)", rc ? sb_result_message(res) : "ok");
    ok(find(SB_ACT_RING, "c1", "c") != NULL, "target: c rings for c1");
    ok(!find(SB_ACT_RING, "w", NULL), "target: w is not rung (one free agent, a)");
    is_str(agent_status("tt", "c"), "reserved", "target: c is reserved");
    is_str(call_state("tt", "c1"), "ringing", "target: c1 rings");
    is_str(agent_status("tt", "a"), "available", "target: a is free");
}

/* 5. The record of a call answered, then transferred: answered, with its
** first answer, its wait up to then and the agent it last spoke to. */
/* The ended call's record says answered by `agent`, first at answered_ms,
** after wait_ms of waiting, with talk_ms of talk. */
static void record_is(const char *acct, const char *call, const char *agent, long long answered_ms,
                      long long wait_ms, long long talk_ms)
{
    json_t *r = get_json(sb_call_get(eng, acct, call, res));
    is_str(json_string_value(json_object_get(r, "state")), "ended", "answer: %s has ended", call);
    is_str(json_string_value(json_object_get(r, "outcome")), "answered",
           "answer: %s's record says answered", call);
    is_str(json_string_value(json_object_get(r, "agent")), agent, "answer: by %s, the last", agent);
    is_int(json_integer_value(json_object_get(r, "answered_ms")), answered_ms,
           "answer: at its first answer");
    is_int(llround(json_real_value(json_object_get(r, "wait")) * 1000), wait_ms,
           "answer: after %lld ms of waiting", wait_ms);
    is_int(llround(json_real_value(json_object_get(r, "talk")) * 1000), talk_ms,
           "answer: %lld ms of talk, every agent's", talk_ms);
    json_decref(r);
}

static long long day_count(const char *acct, const char *queue, const char *key)
{
    json_t *d = get_json(sb_aggregates(eng, acct, queue, 0, 0, res));
    json_t *days = json_object_get(d, "days");
    long long n = 0;
    for (size_t i = 0; i < json_array_size(days); i++) {
        json_t *row = json_array_get(days, i);
        if (queue || json_is_null(json_object_get(row, "queue")))
            n += llround(json_number_value(json_object_get(row, key)));
    }
    json_decref(d);
    return n;
}

static void test_transfer_keeps_answer(void)
{
    ok(account("ans") == 0 &&
           put(sb_queue_put, "ans", "{\"id\":\"q\",\"members\":[{\"agent\":\"a\"}]}") == 0 &&
           put(sb_queue_put, "ans", "{\"id\":\"q2\",\"members\":[{\"agent\":\"c\"}]}") == 0,
       "answer: queues q (a) and q2 (c)");
    ev("ans", "{\"type\":\"agent_status\",\"agent\":\"c\",\"status\":\"paused\"}");
    int64_t t0 = now_ms;
    ev("ans", "{\"type\":\"offer\",\"call\":\"c1\",\"queue\":\"q\",\"caller\":\"+442079460001\"}");
    now_ms += 3000;
    ev("ans",
       "{\"type\":\"ring_result\",\"call\":\"c1\",\"agent\":\"a\",\"outcome\":\"answered\"}");
    now_ms += 120000;
    ok(ev("ans", "{\"type\":\"transfer\",\"call\":\"c1\",\"queue\":\"q2\"}") == 0 &&
           find(SB_ACT_WAIT, "c1", NULL),
       "answer: after 120 s a transfers c1 to q2, where it waits");
    now_ms += 5000;
    ok(ev("ans", "{\"type\":\"hangup\",\"call\":\"c1\"}") == 0, "answer: the caller hangs up");
    const sb_action *e = find(SB_ACT_END, "c1", NULL);
    is_str(e ? e->reason : "-", "answered", "answer: c1 ends as answered");
    record_is("ans", "c1", "a", t0 + 3000, 3000, 120000);
    is_int(day_count("ans", NULL, "answered"), 1, "answer: the account's day counts it answered");
    is_int(day_count("ans", NULL, "abandoned"), 0, "answer: not abandoned");
    is_int(agent_stat("ans", "a", "talk_time"), 120000, "answer: a talked 120 s");

    /* To an agent who answers: the record names the last, each agent's talk is its own. */
    t0 = now_ms;
    ev("ans", "{\"type\":\"offer\",\"call\":\"c2\",\"queue\":\"q\",\"caller\":\"+442079460002\"}");
    now_ms += 4000;
    ev("ans",
       "{\"type\":\"ring_result\",\"call\":\"c2\",\"agent\":\"a\",\"outcome\":\"answered\"}");
    now_ms += 30000;
    ok(ev("ans", "{\"type\":\"transfer\",\"call\":\"c2\",\"agent\":\"b\"}") == 0,
       "answer: after 30 s a transfers c2 to b");
    now_ms += 2000;
    ev("ans",
       "{\"type\":\"ring_result\",\"call\":\"c2\",\"agent\":\"b\",\"outcome\":\"answered\"}");
    json_t *live = get_json(sb_call_get(eng, "ans", "c2", res));
    is_str(json_string_value(json_object_get(live, "agent")), "b", "answer: c2 is with b");
    json_decref(live);
    now_ms += 50000;
    ev("ans", "{\"type\":\"hangup\",\"call\":\"c2\"}");
    record_is("ans", "c2", "b", t0 + 4000, 4000, 30000 + 50000); /* the 2 s ringing b: no talk */
    is_int(agent_stat("ans", "a", "talk_time"), 150000, "answer: a talked 120 + 30 s");
    is_int(agent_stat("ans", "b", "talk_time"), 50000, "answer: b talked 50 s");
}

/* 6. Re-sending "available" keeps the agent's idle time (longest idle). */
static void test_available_again(void)
{
    ok(account("idle") == 0 &&
           put(sb_queue_put, "idle",
               "{\"id\":\"q\",\"members\":[{\"agent\":\"a\"},{\"agent\":\"b\"}]}") == 0,
       "idle: queue q with a (idle longest) and b");
    long long since = agent_stat("idle", "a", "idle_since_ms");
    long long status_since = agent_stat("idle", "a", "status_since_ms");
    now_ms += 1000;
    ok(ev("idle", "{\"type\":\"agent_status\",\"agent\":\"a\",\"status\":\"available\"}") == 0,
       "idle: a says available again");
    is_int(agent_stat("idle", "a", "idle_since_ms"), since, "idle: a's idle time goes on");
    is_int(agent_stat("idle", "a", "status_since_ms"), status_since, "idle: and its status time");
    ok(ev("idle", "{\"type\":\"offer\",\"call\":\"c1\",\"queue\":\"q\",\"caller\":"
                  "\"+442079460001\"}") == 0 &&
           find(SB_ACT_RING, "c1", "a"),
       "idle: a call rings a, still idle longest");
    ev("idle", "{\"type\":\"abandon\",\"call\":\"c1\"}");
    ev("idle",
       "{\"type\":\"agent_status\",\"agent\":\"b\",\"status\":\"paused\",\"reason\":\"x\"}");
    status_since = agent_stat("idle", "b", "status_since_ms");
    now_ms += 1000;
    ev("idle",
       "{\"type\":\"agent_status\",\"agent\":\"b\",\"status\":\"paused\",\"reason\":\"x\"}");
    is_int(agent_stat("idle", "b", "status_since_ms"), status_since,
           "idle: pausing a paused agent changes nothing");
}

/* A queue at its max length takes no call moved or transferred into it:
** an overflow into it goes on to its own overflow or is turned away, a
** transfer into it is refused and changes nothing. */
static void test_full_targets(void)
{
    ok(account("full") == 0 && put(sb_agent_put, "full", AGENT("a", "")) == 0 &&
           put(sb_agent_put, "full", AGENT("b", "")) == 0 &&
           put(sb_queue_put, "full", "{\"id\":\"c\",\"members\":[{\"agent\":\"b\"}]}") == 0 &&
           put(sb_queue_put, "full",
               "{\"id\":\"b\",\"max_length\":1,\"members\":[{\"agent\":\"b\"}]}") == 0 &&
           put(sb_queue_put, "full",
               "{\"id\":\"a\",\"max_length\":1,\"overflow\":\"b\","
               "\"members\":[{\"agent\":\"b\"}]}") == 0 &&
           put(sb_queue_put, "full", "{\"id\":\"t\",\"members\":[{\"agent\":\"a\"}]}") == 0,
       "full: queue a (length 1) overflows to b (length 1), b's agent busy");
    ok(evf("full", "{\"type\":\"agent_status\",\"agent\":\"b\",\"status\":\"paused\"}") == 0,
       "full: b paused, so calls wait");
    for (int i = 1; i <= 2; i++)
        evf("full",
            "{\"type\":\"offer\",\"call\":\"f%d\",\"queue\":\"a\",\"caller\":\"+4420794600%02d\"}",
            i, i);
    ok(waiting("full", "a") == 1 && waiting("full", "b") == 1,
       "full: f1 waits in a, f2 overflowed into b");
    ok(evf("full",
           "{\"type\":\"offer\",\"call\":\"f3\",\"queue\":\"a\",\"caller\":\"+442079460003\"}") ==
               0 &&
           find(SB_ACT_REJECT, "f3", NULL) && find(SB_ACT_END, "f3", NULL),
       "full: f3 overflows into b, full too, and is turned away");
    const sb_action *r = find(SB_ACT_REJECT, "f3", NULL);
    is_str(r ? r->reason : "-", "queue full", "full: saying why");
    is_int(waiting("full", "b"), 1, "full: b still holds one call");
    ok(put(sb_queue_put, "full",
           "{\"id\":\"b\",\"max_length\":1,\"overflow\":\"c\",\"members\":[{\"agent\":\"b\"}]}") ==
               0 &&
           evf("full", "{\"type\":\"offer\",\"call\":\"f4\",\"queue\":\"a\",\"caller\":\"+"
                       "442079460004\"}") == 0 &&
           waiting("full", "c") == 1,
       "full: with b overflowing to c, f4 goes on to c");
    evf("full",
        "{\"type\":\"offer\",\"call\":\"x1\",\"queue\":\"t\",\"caller\":\"+442079460009\"}");
    evf("full",
        "{\"type\":\"ring_result\",\"call\":\"x1\",\"agent\":\"a\",\"outcome\":\"answered\"}");
    is_int(evf("full", "{\"type\":\"transfer\",\"call\":\"x1\",\"queue\":\"b\"}"), SB_ESTATE,
           "full: a transfer into full b is refused (%s)", sb_result_message(res));
    ok(!strcmp(call_state("full", "x1"), "connected") &&
           !strcmp(agent_status("full", "a"), "on_call") && waiting("full", "b") == 1,
       "full: and changes nothing: x1 still with a, b still holds one call");
}

/* A connected call stored by a version before transfers kept the talk (call
** format 2: no connected/talked) reads as connected since its answer; one
** stored before calls from withheld numbers (format 4) reads as having a
** caller; one stored before calls kept their queue's figures (format 5)
** reads as in its queue since it was offered, or, having moved, since it
** was queued there, with its first queue's aggregates row still owed. */
static void test_call_format_2(void)
{
    call_rec c;
    memset(&c, 0, sizeof c);
    strcpy(c.id, "old");
    c.state = CALL_CONNECTED;
    c.offered = 1000;
    c.queued = 1000;
    c.answered = 5000;
    c.connected = 5000;
    c.queue = c.first_queue = 1;
    wbuf w = {{0}, 0};
    enc_call(&w, &c);
    /* Format 6 added q_entered, q_answered, q_talked (8 bytes each) and
    ** q_owed (1) at the end. */
    const size_t v6 = 25;
    ok(!w.err && w.b.len > 18 + v6, "a connected call encoded");
    /* As version 2 wrote it: that version byte, without the last fields
    ** (connected, talked: 16 bytes; sealed_v3, format 4, and withheld, format
    ** 5: 1 byte each; format 6's). */
    w.b.p[0] = 2;
    call_rec d;
    memset(&d, 0, sizeof d);
    d.talked = 7;
    d.sealed_v3 = 1;
    d.withheld = 1;
    int rc = dec_call(w.b.p, w.b.len - 18 - v6, &d);
    ok(rc == 0 && d.connected == 5000 && d.talked == 0,
       "format 2 reads as connected since its answer, no talk before (rc %d, connected %lld)", rc,
       (long long)d.connected);
    ok(rc == 0 && d.sealed_v3 == 0, "and as sealed the old way (before format 4)");
    ok(rc == 0 && d.withheld == 0, "and with a caller (before format 5)");
    w.b.p[0] = 4;
    d.withheld = 1;
    rc = dec_call(w.b.p, w.b.len - 1 - v6, &d);
    ok(rc == 0 && d.connected == 5000 && d.withheld == 0,
       "format 4 reads as it was stored, with a caller (rc %d)", rc);
    w.b.p[0] = 5;
    w.b.p[w.b.len - 1 - v6] = 1;
    ok(dec_call(w.b.p, w.b.len - v6, &d) == 0 && d.withheld == 1,
       "format 5 keeps a withheld caller");
    ok(d.q_entered == 1000 && d.q_answered == 5000 && d.q_talked == 0 && d.q_owed == 0,
       "format 5, never moved: in its queue since its offer, answered there");
    w.b.p[w.b.len - 1 - v6] = 2;
    ok(dec_call(w.b.p, w.b.len - v6, &d) != 0, "and refuses a withheld byte that is not 0 or 1");
    w.b.p[w.b.len - 1 - v6] = 0;
    w.b.p[0] = 7;
    ok(dec_call(w.b.p, w.b.len, &d) != 0, "a format newer than this version's is refused");
    w.b.p[0] = 6;
    w.b.p[w.b.len - 1] = 2;
    ok(dec_call(w.b.p, w.b.len, &d) != 0, "format 6 refuses a q_owed byte that is not 0 or 1");
    buf_free(&w.b);

    /* Moved from queue 1 to queue 2 at 9000, answered there at 12000. */
    c.queue = 2;
    c.queued = 9000;
    c.answered = c.connected = 12000;
    memset(&w, 0, sizeof w);
    enc_call(&w, &c);
    w.b.p[0] = 5;
    ok(dec_call(w.b.p, w.b.len - v6, &d) == 0 && d.q_entered == 9000 && d.q_answered == 12000 &&
           d.q_owed == 1,
       "format 5, moved: in its queue since queued there, answered there, its first queue owed");
    /* Answered at 5000 in queue 1, 3 s of talk, transferred to queue 2 at 8000. */
    c.state = CALL_WAITING;
    c.queued = 8000;
    c.answered = 5000;
    c.connected = 0;
    c.talked = 3000;
    buf_free(&w.b);
    memset(&w, 0, sizeof w);
    enc_call(&w, &c);
    w.b.p[0] = 5;
    ok(dec_call(w.b.p, w.b.len - v6, &d) == 0 && d.q_entered == 8000 && d.q_answered == 0 &&
           d.q_talked == 3000 && d.q_owed == 1,
       "format 5, answered and transferred: not answered where it is, its talk before it came");
    call_free(&d);
    buf_free(&w.b);
}

/* Rewrite the live call `id` (of whichever account) as call format 5
** stored it, without format 6's queue figures, the engine closed: 1 if done. */
static int call_to_format_5(const char *id)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    MDB_cursor *cur;
    MDB_val k, v;
    size_t n = strlen(id);
    int done = 0;
    if (mdb_env_create(&env)) return 0;
    mdb_env_set_mapsize(env, 64 << 20);
    if (mdb_env_open(env, dir, 0, 0600) == 0 && mdb_txn_begin(env, NULL, 0, &txn) == 0) {
        unsigned char first = DB_CALLS + 1; /* the calls table: acct, id */
        k = (MDB_val){1, &first};
        if (mdb_dbi_open(txn, NULL, 0, &dbi) == 0 && mdb_cursor_open(txn, dbi, &cur) == 0) {
            for (int rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
                 rc == 0 && ((unsigned char *)k.mv_data)[0] == first;
                 rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
                if (k.mv_size != 5 + n || memcmp((char *)k.mv_data + 5, id, n)) continue;
                call_rec c;
                memset(&c, 0, sizeof c);
                wbuf w = {0};
                if (dec_call(v.mv_data, v.mv_size, &c) == 0) {
                    enc_call(&w, &c);
                    w.b.p[0] = 5;
                    v = (MDB_val){w.b.len - 25, w.b.p};
                    done = !w.err && mdb_cursor_put(cur, &k, &v, MDB_CURRENT) == 0;
                }
                call_free(&c);
                buf_free(&w.b);
                break;
            }
            mdb_cursor_close(cur);
        }
        mdb_txn_commit(txn);
    }
    mdb_env_close(env);
    return done;
}

/* A call that moved before calls kept their queue's figures (stored as
** call format 5, live across the upgrade): the queue it left had no row
** for it, so its first queue's row is added when it ends, as it was
** counted then (overflowed, its wait until it was queued where it is); the
** queue it is in counts it from when it was queued there. */
static void test_moved_format_5(void)
{
    ok(account("old5") == 0 && put(sb_queue_put, "old5", "{\"id\":\"q2\"}") == 0 &&
           put(sb_queue_put, "old5", "{\"id\":\"q1\",\"max_wait\":10,\"overflow\":\"q2\"}") == 0,
       "format 5: queue q1 (no members, max wait 10 s) overflows to q2 (none either)");
    ev("old5", "{\"type\":\"offer\",\"call\":\"old5c\",\"queue\":\"q1\",\"caller\":"
               "\"+442079460001\"}");
    now_ms += 10000;
    sb_tick(eng, res);
    is_int(day_count("old5", "q1", "offered"), 1, "format 5: q1 counted the call when it left");
    sb_close(eng);
    ok(call_to_format_5("old5c"), "format 5: old5c stored as format 5 stored it");
    eng = open_engine();
    now_ms += 4000;
    ev("old5", "{\"type\":\"abandon\",\"call\":\"old5c\"}");
    is_int(day_count("old5", "q1", "offered"), 2,
           "format 5: q1 counts it again, the row format 5 left owed (here counted already)");
    is_int(day_count("old5", "q1", "overflowed"), 2, "format 5: as overflowed");
    is_int(day_count("old5", "q1", "max_wait"), 10, "format 5: after 10 s");
    is_int(day_count("old5", "q2", "abandoned"), 1, "format 5: abandoned in q2");
    is_int(day_count("old5", "q2", "max_wait"), 4, "format 5: after 4 s there");
    is_int(day_count("old5", NULL, "offered"), 1, "format 5: the account counts it once");
}

/* An agent record keeps the status asked for on a call (agent format 3);
** one stored before (format 2: no such fields; format 1: no plain_devices
** either) reads as having none, and a value no encoder writes is refused. */
static void test_agent_format(void)
{
    agent_rec a, d;
    memset(&a, 0, sizeof a);
    strcpy(a.id, "old");
    a.status = SB_AGENT_ON_CALL;
    strcpy(a.call, "c1");
    a.plain_devices = 1;
    a.has_next = 1;
    a.next_status = SB_AGENT_PAUSED;
    strcpy(a.next_reason, "lunch");
    a.missed_at = 1767603599000;
    wbuf w = {{0}, 0};
    enc_agent(&w, &a);
    memset(&d, 0, sizeof d);
    int rc = dec_agent(w.b.p, w.b.len, &d);
    ok(rc == 0 && d.has_next == 1 && d.next_status == SB_AGENT_PAUSED &&
           !strcmp(d.next_reason, "lunch") && d.status == SB_AGENT_ON_CALL &&
           d.missed_at == a.missed_at,
       "format 4 keeps the status after the call (paused, lunch) and the last missed ring "
       "(rc %d)",
       rc);
    /* Format 3: without missed_at, the record's last 8 bytes. */
    w.b.len -= 8;
    w.b.p[0] = 3;
    memset(&d, 0xff, offsetof(agent_rec, doc));
    rc = dec_agent(w.b.p, w.b.len, &d);
    ok(rc == 0 && d.missed_at == 0 && d.has_next == 1, "format 3 reads, no ring missed (rc %d)",
       rc);
    /* Without a status after the call: the three fields (1 + 1 + 4 bytes for
    ** an empty reason) are format 3's last. */
    a.has_next = a.next_status = 0;
    a.next_reason[0] = 0;
    wb_reset(&w);
    enc_agent(&w, &a);
    w.b.len -= 8;
    w.b.p[0] = 2;
    memset(&d, 0xff, offsetof(agent_rec, doc));
    rc = dec_agent(w.b.p, w.b.len - 6, &d);
    ok(rc == 0 && d.has_next == 0 && d.next_status == 0 && !d.next_reason[0] &&
           d.plain_devices == 1 && !strcmp(d.call, "c1"),
       "format 2 reads with no status after the call (rc %d)", rc);
    w.b.p[0] = 1;
    memset(&d, 0xff, offsetof(agent_rec, doc));
    rc = dec_agent(w.b.p, w.b.len - 7, &d);
    ok(rc == 0 && d.has_next == 0 && !d.next_reason[0] && d.plain_devices == 0,
       "format 1 too, plain_devices unknown (rc %d)", rc);
    w.b.p[0] = 3;
    ok(dec_agent(w.b.p, w.b.len - 6, &d) != 0, "format 3 cut short is refused");
    w.b.p[0] = 5;
    ok(dec_agent(w.b.p, w.b.len + 8, &d) != 0, "a format newer than this version's is refused");
    w.b.p[0] = 3;
    w.b.p[w.b.len - 5] = SB_AGENT_PAUSED; /* next_status without has_next */
    ok(dec_agent(w.b.p, w.b.len, &d) != 0, "a status after the call not marked as one: refused");
    w.b.p[w.b.len - 6] = 1;
    w.b.p[w.b.len - 5] = SB_AGENT_AVAILABLE;
    ok(dec_agent(w.b.p, w.b.len, &d) != 0, "available as the status after the call: refused");
    w.b.p[w.b.len - 5] = SB_AGENT_OFFLINE;
    ok(dec_agent(w.b.p, w.b.len, &d) == 0 && d.has_next && d.next_status == SB_AGENT_OFFLINE,
       "offline as the status after the call: read");
    agent_free(&d);
    buf_free(&w.b);
}

/* An availability entry (read once per available agent at every routing
** decision, at fixed offsets when well formed) reads back as written; a
** damaged one is refused, never read past its end. */
static void test_avail_codec(void)
{
    avail_rec a = {.idle_since = 1767603600123,
                   .last_call = -5,
                   .talk_ms = 987654321,
                   .calls_taken = 42,
                   .no_answers = 3,
                   .missed_at = 1767603599000,
                   .weight = 2.5,
                   .devices = 5};
    a.m.tier = 2, a.m.position = -7, a.m.penalty = 9, a.m.weight = 0.25;
    snprintf(a.id, sizeof a.id, "agent-%s", "alice");
    wbuf w = {0};
    enc_avail(&w, &a);
    avail_rec b;
    memset(&b, 0x55, sizeof b);
    ok(!w.err && dec_avail(w.b.p, w.b.len, &b) == 0 && b.idle_since == a.idle_since &&
           b.last_call == a.last_call && b.talk_ms == a.talk_ms && b.calls_taken == 42 &&
           b.no_answers == 3 && b.weight == 2.5 && b.m.tier == 2 && b.m.position == -7 &&
           b.m.penalty == 9 && b.m.weight == 0.25 && b.devices == 5 && b.missed_at == a.missed_at &&
           !strcmp(b.id, a.id),
       "an availability entry reads back as written");
    /* Format 1, before missed_at (the 8 bytes after the devices' byte). */
    uint8_t *v1 = malloc(w.b.len);
    memcpy(v1, w.b.p, 62);
    memcpy(v1 + 62, (const uint8_t *)w.b.p + 70, w.b.len - 70);
    v1[0] = 1;
    memset(&b, 0x55, sizeof b);
    ok(dec_avail(v1, w.b.len - 8, &b) == 0 && b.missed_at == 0 && b.devices == 5 &&
           b.no_answers == 3 && !strcmp(b.id, a.id),
       "a format 1 entry reads, missed_at 0");
    ok(dec_avail(v1, w.b.len - 9, &b) == SB_ESTORE, "format 1, one byte short: refused");
    free(v1);
    ok(dec_avail(w.b.p, w.b.len - 1, &b) == SB_ESTORE, "one byte short: refused");
    char *longer = malloc(w.b.len + 1);
    memcpy(longer, w.b.p, w.b.len);
    longer[w.b.len] = 'x';
    ok(dec_avail(longer, w.b.len + 1, &b) == SB_ESTORE, "one byte more: refused");
    longer[w.b.len - 2] = 0; /* a NUL inside the id */
    ok(dec_avail(longer, w.b.len, &b) == SB_ESTORE, "an id holding a NUL byte: refused");
    memcpy(longer, w.b.p, w.b.len);
    longer[0]++;
    ok(dec_avail(longer, w.b.len, &b) == SB_ESTORE, "another version byte: refused");
    free(longer);
    buf_free(&w.b);
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/sb-test-events-%d", (int)getpid());
    rmtree(dir);
    res = sb_result_new();
    eng = open_engine();
    ok(eng != NULL, "engine opened on %s", dir);
    test_avail_codec();
    if (!eng) return done_testing();
    test_count_repaired(); /* first: its account is number 1 */
    test_count_self_transfer();
    test_count_transfer_dispatch();
    test_maxwait_after_agent_transfer();
    dispatch_behind("lang15", 15);
    dispatch_behind("lang16", 16);
    dispatch_behind("lang300", 300);
    test_many_queues();
    test_transfer_target_kept();
    test_transfer_keeps_answer();
    test_available_again();
    test_full_targets();
    test_call_format_2();
    test_moved_format_5();
    test_agent_format();
    sb_close(eng);
    sb_result_free(res);
    rmtree(dir);
    return done_testing();
}
