/*
** test_cands.c — a queue with more agents free to ring than the candidate
** arrays first hold (64): the arrays grow while the walk fills them, and
** the candidates already filled must keep valid ids (each points into the
** array of decoded records, which growing may move). The policy reads every
** id; the sanitizer build reports a read of freed memory if one dangles.
**
** Then the candidates an offer keeps for the next (events.c, cands_update:
** brought up to date from the range cache's edits instead of read again):
** agents going on and off, answering calls, in a random order, with the
** candidates the policy sees checked against what they must be after each
** few events.
*/
#include "switchboard.h"
#include "tap.h"
#include "testkit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char dir[64] = "/tmp/sb-cands-XXXXXX";

#define NK 8 /* agents in the queue of kept candidates */

/* The policy rings the agent a call's attrs name; otherwise it rejects the
** call, giving the candidates it sees as "id:calls_taken:weight,...". */
static const char SNAP[] = "local P = {}\n"
                           "function P.route(c, a, ctx)\n"
                           "  local want = c.attrs.ring\n"
                           "  local t = {}\n"
                           "  for i = 1, #a do\n"
                           "    if want and a[i].id == want then return { ring = want } end\n"
                           "    t[#t + 1] = a[i].id .. ':' .. a[i].calls_taken .. ':' .. "
                           "math.floor(a[i].weight)\n"
                           "  end\n"
                           "  return { reject = table.concat(t, ',') }\n"
                           "end\n"
                           "return P\n";

static void kept_candidates(sb_engine *e, sb_result *res)
{
    int bad = sb_policy_put(e, "acme", "snap", SNAP, strlen(SNAP), NULL, res) != 0;
    char q[1024];
    int n = snprintf(q, sizeof q, "{\"id\":\"k\",\"policy\":\"snap\",\"members\":[");
    for (int i = 0; i < NK && !bad; i++) {
        char d[160];
        snprintf(d, sizeof d, "{\"id\":\"k%d\",\"devices\":{\"softphone\":\"sip:k%d@x\"}}", i, i);
        bad = test_put(e, res, sb_agent_put, "acme", d);
        n += snprintf(q + n, sizeof q - (size_t)n, "%s{\"agent\":\"k%d\"}", i ? "," : "", i);
    }
    snprintf(q + n, sizeof q - (size_t)n, "]}");
    /* Another queue: an offer to it takes the kept candidates' place. */
    if (!bad) bad = test_put(e, res, sb_queue_put, "acme", q);
    if (!bad)
        bad = test_put(e, res, sb_queue_put, "acme",
                       "{\"id\":\"k2\",\"policy\":\"snap\",\"members\":[{\"agent\":\"k3\"}]}");
    int avail[NK] = {0}, taken[NK] = {0}, weight[NK], checks = 0, calls = 0, wrong = 0;
    for (int i = 0; i < NK; i++)
        weight[i] = 1;
    srand(11);
    for (int step = 0; step < 600 && !bad && !wrong; step++) {
        int k = rand() % NK, op = rand() % 9;
        char id[8], ev[256];
        snprintf(id, sizeof id, "k%d", k);
        if (op == 8) { /* another weight: its entries rewritten where it is free */
            weight[k] = 1 + rand() % 9;
            snprintf(ev, sizeof ev,
                     "{\"id\":\"%s\",\"weight\":%d,\"devices\":{\"softphone\":\"sip:%s@x\"}}", id,
                     weight[k], id);
            bad = test_put(e, res, sb_agent_put, "acme", ev);
        } else if (op < 3) { /* on or off */
            avail[k] = !avail[k];
            snprintf(ev, sizeof ev,
                     "{\"type\":\"agent_status\",\"agent\":\"%s\",\"status\":\"%s\"}", id,
                     avail[k] ? "available" : "paused");
            bad = test_event(e, res, "acme", ev);
        } else if (op < 6 && avail[k]) { /* a call it answers */
            calls++;
            snprintf(ev, sizeof ev,
                     "{\"type\":\"offer\",\"call\":\"r%d\",\"queue\":\"k\",\"caller\":"
                     "\"+44207946%04d\",\"attrs\":{\"ring\":\"%s\"}}",
                     calls, calls, id);
            bad = test_event(e, res, "acme", ev);
            const sb_action *ring = bad ? NULL : test_action_nth(res, SB_ACT_RING, 0);
            if (!ring || !ring->agent_id || strcmp(ring->agent_id, id)) {
                diag("step %d: %s was not rung", step, id);
                wrong = 1;
                break;
            }
            snprintf(ev, sizeof ev,
                     "{\"type\":\"ring_result\",\"agent\":\"%s\",\"call\":\"r%d\","
                     "\"outcome\":\"answered\"}",
                     id, calls);
            bad = test_event(e, res, "acme", ev);
            if (!bad && rand() % 2) { /* another queue's offer in between, sometimes */
                snprintf(ev, sizeof ev,
                         "{\"type\":\"offer\",\"call\":\"o%d\",\"queue\":\"k2\","
                         "\"caller\":\"+44207947%04d\"}",
                         calls, calls);
                bad = test_event(e, res, "acme", ev);
            }
            snprintf(ev, sizeof ev, "{\"type\":\"hangup\",\"call\":\"r%d\"}", calls);
            if (!bad) bad = test_event(e, res, "acme", ev);
            taken[k]++;
        } else if (op >= 6) { /* what the policy sees */
            char want[256] = "";
            size_t o = 0;
            for (int i = 0; i < NK; i++)
                if (avail[i])
                    o += (size_t)snprintf(want + o, sizeof want - o, "%sk%d:%d:%d", o ? "," : "", i,
                                          taken[i], weight[i]);
            if (!o) snprintf(want, sizeof want, "rejected"); /* an empty reason's stand-in */
            calls++;
            snprintf(ev, sizeof ev,
                     "{\"type\":\"offer\",\"call\":\"s%d\",\"queue\":\"k\",\"caller\":"
                     "\"+44207948%04d\"}",
                     calls, calls);
            bad = test_event(e, res, "acme", ev);
            const sb_action *rej = bad ? NULL : test_action_nth(res, SB_ACT_REJECT, 0);
            const char *got = rej && rej->reason ? rej->reason : "?";
            if (!bad && strcmp(got, want)) {
                diag("step %d: the policy saw '%s', not '%s'", step, got, want);
                wrong = 1;
            }
            checks++;
        }
    }
    if (bad) diag("%s", sb_result_message(res));
    ok(!bad && !wrong && checks > 100,
       "an offer's candidates, kept from the one before and brought up to date, are those "
       "free to ring (%d checks over %d calls)",
       checks, calls);
}

int main(void)
{
    if (!mkdtemp(dir)) return 1;
    sb_result *res = sb_result_new();
    sb_config cfg;
    test_engine_config(&cfg, dir, NULL, 8u << 20);
    sb_engine *e = test_open(&cfg, res);
    const char *src = "local P = {}\nfunction P.route(c, a, ctx)\n"
                      "  local last\n"
                      "  for i = 1, #a do last = a[i].id end\n"
                      "  return { ring = last }\nend\nreturn P\n";
    int bad = !e || sb_account_put(e, "{\"id\":\"acme\"}", 13, res) ||
              sb_policy_put(e, "acme", "all", src, strlen(src), NULL, res);
    char q[8192];
    int n = snprintf(q, sizeof q, "{\"id\":\"q\",\"policy\":\"all\",\"members\":[");
    for (int i = 0; i < 70 && !bad; i++) {
        char d[160];
        snprintf(d, sizeof d, "{\"id\":\"agent-%03d\",\"devices\":{\"softphone\":\"sip:a%d@x\"}}",
                 i, i);
        bad = test_put(e, res, sb_agent_put, "acme", d);
        n += snprintf(q + n, sizeof q - (size_t)n, "%s{\"agent\":\"agent-%03d\"}", i ? "," : "", i);
    }
    snprintf(q + n, sizeof q - (size_t)n, "]}");
    if (!bad) bad = test_put(e, res, sb_queue_put, "acme", q);
    for (int i = 0; i < 70 && !bad; i++) {
        char ev[160];
        snprintf(ev, sizeof ev,
                 "{\"type\":\"agent_status\",\"agent\":\"agent-%03d\",\"status\":\"available\"}",
                 i);
        bad = test_event(e, res, "acme", ev);
    }
    if (!ok(!bad, "70 agents free to ring in one queue")) return 1;
    int rc = test_event(e, res, "acme",
                        "{\"type\":\"offer\",\"call\":\"c1\",\"queue\":\"q\",\"caller\":"
                        "\"+442079460001\"}");
    const sb_action *ring =
        test_action_count(res, SB_ACT_RING) == 1 ? sb_result_action(res, 0) : NULL;
    ok(rc == 0 && ring && ring->agent_id && !strcmp(ring->agent_id, "agent-069"),
       "the policy read all 70 ids and rang the last (%s)",
       rc                       ? sb_result_message(res)
       : ring && ring->agent_id ? ring->agent_id
                                : "no ring");
    kept_candidates(e, res);
    sb_close(e);
    sb_result_free(res);
    rmtree(dir);
    return done_testing();
}
