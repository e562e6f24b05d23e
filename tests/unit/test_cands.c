/*
** test_cands.c — a queue with more agents free to ring than the candidate
** arrays first hold (64): the arrays grow while the walk fills them, and
** the candidates already filled must keep valid ids (each points into the
** array of decoded records, which growing may move). The policy reads every
** id; the sanitizer build reports a read of freed memory if one dangles.
*/
#include "switchboard.h"
#include "tap.h"
#include "testkit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char dir[64] = "/tmp/sb-cands-XXXXXX";

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
    sb_close(e);
    sb_result_free(res);
    rmtree(dir);
    return done_testing();
}
