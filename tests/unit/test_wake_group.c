/*
** test_wake_group.c — policy wake-ups due in the same millisecond fire in
** line order, and one of them that cannot fire (its call's sealed numbers
** no longer open: the data keys were lost) is put off alone, as any timer
** that fails is, while the others of its group fire: a tick run again up to
** the failed timer must fire the same timers in the same order, not pick
** the failed one again and fail the whole tick for ever.
*/
#include "switchboard.h"
#include "tap.h"
#define TESTKIT_LOG_KEEP
#include "testkit.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const WAIT10 = "local P = {}\n"
                                  "function P.route(call, agents, ctx) return { wait = 10 } end\n"
                                  "return P\n";

static int offer(sb_engine *e, sb_result *res, const char *call, int priority)
{
    char json[256];
    snprintf(json, sizeof json,
             "{\"type\":\"offer\",\"call\":\"%s\",\"queue\":\"q\",\"priority\":%d,"
             "\"caller\":\"+44207946000%d\"}",
             call, priority, priority % 10);
    return test_event(e, res, "acme", json);
}

int main(void)
{
    char dir[300], keys[340];
    snprintf(dir, sizeof dir, "/tmp/sb-test-wake-group-%d", (int)getpid());
    snprintf(keys, sizeof keys, "%s/data.keys", dir);
    rmtree(dir);
    sb_result *res = sb_result_new();
    sb_config cfg;
    test_engine_config(&cfg, dir, NULL, 8 << 20);
    cfg.log = log_keep;
    sb_engine *e = test_open(&cfg, res);
    if (!e) return done_testing();
    ok(sb_account_put(e, "{\"id\":\"acme\"}", 13, res) == 0 &&
           sb_policy_put(e, "acme", "w", WAIT10, strlen(WAIT10), NULL, res) == 0 &&
           test_put(e, res, sb_agent_put, "acme",
                    "{\"id\":\"alice\",\"devices\":{\"softphone\":\"sip:a@x\"}}") == 0 &&
           test_put(e, res, sb_queue_put, "acme",
                    "{\"id\":\"q\",\"policy\":\"w\",\"members\":[{\"agent\":\"alice\"}]}") == 0,
       "acme: queue q, whose policy waits 10 s at a time; alice not available");
    ok(offer(e, res, "c1", 0) == 0, "c1 waits");
    sb_close(e);
    /* The data keys lost: c1's numbers no longer open, so its wake-up fails. */
    unlink(keys);
    setenv("SWITCHBOARD_DATA_KEYS_LOST", "1", 1);
    e = test_open(&cfg, res);
    unsetenv("SWITCHBOARD_DATA_KEYS_LOST");
    if (!ok(e != NULL, "opened again without the data keys")) return done_testing();
    ok(offer(e, res, "c2", 10) == 0 && offer(e, res, "c3", 10) == 0,
       "c2 and c3, of priority 10, wait ahead of c1, all three waking in the same millisecond");
    now_ms += 10000;
    log_clear();
    int rc = sb_tick(e, res);
    ok(rc == 0, "the tick works (%s)", rc ? sb_result_message(res) : "ok");
    ok(strstr(logbuf, "call 'c1'") && strstr(logbuf, "tried again in 60 s") &&
           !strstr(logbuf, "call 'c2'") && !strstr(logbuf, "call 'c3'"),
       "c1's wake-up alone is put off, and logged:\n%s", logbuf);
    ok(sb_next_deadline(e) > now_ms, "no timer is left overdue: c2 and c3 were decided again");
    now_ms += 10000;
    ok(sb_tick(e, res) == 0, "the next tick works too");
    sb_close(e);
    sb_result_free(res);
    rmtree(dir);
    return done_testing();
}
