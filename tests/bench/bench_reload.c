/*
** bench_reload.c — policy reload at scale (make bench).
**
** 1,000 accounts, each with a queue routed by the shared longest-idle
** policy and one routed call (so every account has a live Lua state).
** Prints the idle policy memory per account, then reloads a changed policy
** directory while a second thread keeps routing calls across all accounts,
** and prints the time to swap, the time until every account has decided on
** the new version, and how many decisions failed or fell back meanwhile
** (target: none).
*/
#include "switchboard.h"

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "benchkit.h"

#define ACCOUNTS 1000

static sb_engine *eng;
static atomic_int stop, routed, failed;
static char pdir[256];

static void write_policy(const char *reason)
{
    char path[300], src[512];
    snprintf(path, sizeof path, "%s/router.lua", pdir);
    snprintf(src, sizeof src,
             "local P = {}\n"
             "function P.route(call, agents, ctx)\n"
             "  local best, most = nil, -1\n"
             "  for i = 1, #agents do\n"
             "    local a = agents[i]\n"
             "    if a.idle_for > most then best, most = a, a.idle_for end\n"
             "  end\n"
             "  if not best then return { reject = '%s' } end\n"
             "  return { reject = '%s' }\n"
             "end\n"
             "return P\n",
             reason, reason);
    FILE *f = fopen(path, "w");
    if (!f || fputs(src, f) < 0) exit(1);
    fclose(f);
}

/* Offer a call in account i; returns the reject reason's first char or 0. */
static char route_one(sb_result *res, int i, int n)
{
    char acct[32], call[48];
    snprintf(acct, sizeof acct, "acct%d", i);
    snprintf(call, sizeof call, "c%d", n);
    sb_event ev = {.type = SB_EV_OFFER,
                   .account = acct,
                   .call_id = call,
                   .queue_id = "q",
                   .caller = "+442079460000"};
    if (sb_submit(eng, &ev, res)) return 0;
    for (size_t k = 0; k < sb_result_count(res); k++)
        if (sb_result_action(res, k)->type == SB_ACT_REJECT)
            return sb_result_action(res, k)->reason[0];
    return 0;
}

static void *router(void *arg)
{
    sb_result *res = sb_result_new();
    int n = 1000000;
    while (!atomic_load(&stop)) {
        char r = route_one(res, n % ACCOUNTS, n);
        n++;
        atomic_fetch_add(&routed, 1);
        if (r != 'A' && r != 'B') atomic_fetch_add(&failed, 1);
    }
    sb_result_free(res);
    return NULL;
}

static long long stat_of(const char *section, const char *key)
{
    sb_result *res = sb_result_new();
    sb_stats(eng, res);
    json_t *o = json_loads(sb_result_json(res, NULL), 0, NULL);
    long long v = json_integer_value(json_object_get(json_object_get(o, section), key));
    json_decref(o);
    sb_result_free(res);
    return v;
}

int main(void)
{
    char dir[256];
    snprintf(dir, sizeof dir, "/tmp/sb-bench-reload-%d", (int)getpid());
    snprintf(pdir, sizeof pdir, "%s-policies", dir);
    mkdir(pdir, 0700);
    write_policy("A");
    sb_config cfg;
    sb_config_init(&cfg);
    cfg.data_dir = dir;
    cfg.policy_dir = pdir;
    cfg.sync = SB_SYNC_NONE;
    cfg.map_size = (size_t)256 << 20;
    cfg.log_level = SB_LOG_WARN;
    sb_result *res = sb_result_new();
    if (sb_open(&eng, &cfg, res)) {
        fprintf(stderr, "open: %s\n", sb_result_message(res));
        return 1;
    }
    for (int i = 0; i < ACCOUNTS; i++) {
        char json[256];
        snprintf(json, sizeof json, "{\"id\":\"acct%d\"}", i);
        sb_account_put(eng, json, strlen(json), res);
        snprintf(json, sizeof json,
                 "{\"id\":\"a\",\"devices\":{\"softphone\":\"sip:a@x\"},\"status\":\"paused\"}");
        char acct[32];
        snprintf(acct, sizeof acct, "acct%d", i);
        sb_agent_put(eng, acct, json, strlen(json), res);
        const char *q = "{\"id\":\"q\",\"policy\":\"router\",\"members\":[{\"agent\":\"a\"}]}";
        if (sb_queue_put(eng, acct, q, strlen(q), res)) {
            fprintf(stderr, "queue: %s\n", sb_result_message(res));
            return 1;
        }
        route_one(res, i, i);
    }
    long long mem = stat_of("policy", "memory_bytes");
    printf("policy reload benchmark: %d accounts, each with a live Lua state\n", ACCOUNTS);
    printf("idle policy state: %.1f KiB per account (target <= 64 KiB)\n",
           (double)mem / ACCOUNTS / 1024.0);

    pthread_t th;
    pthread_create(&th, NULL, router, NULL);
    usleep(200000);
    long long fb0 = stat_of("decisions", "fallback");
    int failed0 = atomic_load(&failed), routed0 = atomic_load(&routed);
    write_policy("B");
    double t0 = now_s();
    int rc = sb_reload(eng, res);
    double swap = now_s() - t0;
    /* Until every account has decided with the new version. */
    int seen[ACCOUNTS] = {0}, nseen = 0, n = 2000000;
    sb_result *r2 = sb_result_new();
    while (nseen < ACCOUNTS) {
        int i = n % ACCOUNTS;
        if (route_one(r2, i, n++) == 'B' && !seen[i]) seen[i] = 1, nseen++;
    }
    double all = now_s() - t0;
    usleep(200000);
    atomic_store(&stop, 1);
    pthread_join(th, NULL);
    long long fb = stat_of("decisions", "fallback") - fb0;
    printf("reload: %s; swap %.1f ms (target <= 200 ms); every account on the new version after "
           "%.1f ms\n",
           rc ? sb_result_message(res) : "ok", swap * 1e3, all * 1e3);
    printf("decisions routed meanwhile: %d; failed %d, fallbacks %lld (target 0)\n",
           atomic_load(&routed) - routed0, atomic_load(&failed) - failed0, fb);
    sb_result_free(r2);
    sb_result_free(res);
    sb_close(eng);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf %s %s", dir, pdir);
    return system(cmd) ? 1 : 0;
}
