/*
** bench_cycle.c — the call-cycle benchmark (make bench).
**
** One queue of 50 available agents routed by the longest-idle Lua policy;
** each call a full cycle — offer (ring decision), answered, hangup, no
** wrap-up — each event its own transaction. Prints call cycles/s and the
** offer's p50/p99 for sync=none and sync=group, then the scale check:
** 2,000 queues, 10,000 agents, 75,000 memberships, where an event's cost
** must not grow with the queues an agent is not in.
**
** usage: bench_cycle [--cycles N] [--policy-dir DIR] [--budgets on|off]
**                    [--budgets-pair ROUNDS]  (sandbox overhead, paired runs)
*/
#include "switchboard.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "benchkit.h"

static int64_t fake_ms = 1767603600000;
static int64_t bench_clock(void *arg)
{
    return fake_ms;
}

static sb_engine *open_at(const char *dir, const char *policy_dir, sb_sync_mode sync, int budgets)
{
    sb_config cfg;
    sb_config_init(&cfg);
    cfg.data_dir = dir;
    cfg.policy_dir = policy_dir;
    cfg.sync = sync;
    cfg.map_size = (size_t)512 << 20;
    cfg.clock = bench_clock;
    cfg.log_level = SB_LOG_WARN;
    if (!budgets) {
        cfg.policy_instructions = 0;
        cfg.policy_wall_ms = 0;
        cfg.policy_memory = 0;
    }
    sb_result *res = sb_result_new();
    sb_engine *e = NULL;
    if (sb_open(&e, &cfg, res)) {
        fprintf(stderr, "open %s: %s\n", dir, sb_result_message(res));
        exit(1);
    }
    sb_result_free(res);
    return e;
}

static void must(int rc, sb_result *res, const char *what)
{
    if (rc) {
        fprintf(stderr, "%s: %s\n", what, sb_result_message(res));
        exit(1);
    }
}

static void add_agent(sb_engine *e, sb_result *res, const char *acct, int i)
{
    char json[256];
    snprintf(json, sizeof json,
             "{\"id\":\"a%d\",\"devices\":{\"softphone\":\"sip:a%d@pbx.example\"},"
             "\"status\":\"available\"}",
             i, i);
    must(sb_agent_put(e, acct, json, strlen(json), res), res, "agent");
}

/* Run n cycles on queue q; returns cycles/s and fills offer latencies (µs). */
static double run_cycles(sb_engine *e, const char *acct, const char *queue, int n, double *lat,
                         int *errors)
{
    sb_result *res = sb_result_new();
    char call[32], agent[64];
    double t0 = now_s();
    for (int i = 0; i < n; i++) {
        snprintf(call, sizeof call, "c%d", i);
        fake_ms += 7;
        sb_event ev = {.type = SB_EV_OFFER,
                       .account = acct,
                       .call_id = call,
                       .queue_id = queue,
                       .caller = "+442079460000"};
        double a = now_s();
        int rc = sb_submit(e, &ev, res);
        lat[i] = (now_s() - a) * 1e6;
        const sb_action *ring = NULL;
        for (size_t k = 0; !rc && k < sb_result_count(res); k++)
            if (sb_result_action(res, k)->type == SB_ACT_RING) ring = sb_result_action(res, k);
        if (!ring) {
            (*errors)++;
            continue;
        }
        snprintf(agent, sizeof agent, "%s", ring->agent_id);
        sb_event ans = {.type = SB_EV_RING_RESULT,
                        .account = acct,
                        .call_id = call,
                        .agent_id = agent,
                        .outcome = SB_RING_ANSWERED};
        sb_event hup = {.type = SB_EV_HANGUP, .account = acct, .call_id = call};
        if (sb_submit(e, &ans, res) || sb_submit(e, &hup, res)) (*errors)++;
    }
    double secs = now_s() - t0;
    sb_result_free(res);
    return n / secs;
}

/* The benchmark's account: 50 available agents in queue q (longest-idle). */
static void provision(sb_engine *e, sb_result *res)
{
    must(sb_account_put(e, "{\"id\":\"bench\"}", 14, res), res, "account");
    for (int i = 0; i < 50; i++)
        add_agent(e, res, "bench", i);
    char q[4096] = "{\"id\":\"q\",\"policy\":\"longest-idle\",\"members\":[";
    for (int i = 0; i < 50; i++)
        snprintf(q + strlen(q), sizeof q - strlen(q), "%s{\"agent\":\"a%d\"}", i ? "," : "", i);
    strcat(q, "]}");
    must(sb_queue_put(e, "bench", q, strlen(q), res), res, "queue");
}

static double thread_cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Sandbox overhead, paired: two engines, budgets armed and off, run in
** turn (the order alternating) `rounds` times; the medians of this
** thread's CPU time per cycle, which other processes on the machine
** disturb less than the wall clock, and their ratio. */
static int budgets_pair(const char *policy_dir, int rounds, int n)
{
    char dir[2][128];
    sb_engine *e[2];
    sb_result *res = sb_result_new();
    double *lat = malloc(sizeof *lat * (size_t)n), us[2][64];
    int errors = 0;
    if (rounds > 64) rounds = 64;
    for (int b = 0; b < 2; b++) {
        snprintf(dir[b], sizeof dir[b], "/tmp/sb-bench-%d-pair%d", (int)getpid(), b);
        e[b] = open_at(dir[b], policy_dir, SB_SYNC_NONE, b == 0);
        provision(e[b], res);
        run_cycles(e[b], "bench", "q", n / 10 + 1, lat, &errors); /* warm up */
    }
    for (int r = 0; r < rounds; r++)
        for (int k = 0; k < 2; k++) {
            int b = (r + k) % 2;
            double c0 = thread_cpu_s();
            run_cycles(e[b], "bench", "q", n, lat, &errors);
            us[b][r] = (thread_cpu_s() - c0) / n * 1e6;
        }
    qsort(us[0], (size_t)rounds, sizeof us[0][0], cmp_d);
    qsort(us[1], (size_t)rounds, sizeof us[1][0], cmp_d);
    double on = us[0][rounds / 2], off = us[1][rounds / 2];
    printf("budgets armed %.2f us CPU per cycle, off %.2f us (medians of %d paired runs of %d "
           "cycles): overhead %+.1f%% (target within 10%%), errors %d\n",
           on, off, rounds, n, (on / off - 1) * 100, errors);
    for (int b = 0; b < 2; b++) {
        sb_close(e[b]);
        char cmd[256];
        snprintf(cmd, sizeof cmd, "rm -rf %s", dir[b]);
        if (system(cmd)) return 1;
    }
    sb_result_free(res);
    free(lat);
    return errors != 0;
}

static void report(const char *label, double rate, double *lat, int n, int errors)
{
    qsort(lat, (size_t)n, sizeof *lat, cmp_d);
    printf("%-34s %9.0f cycles/s   offer p50 %6.1f us   p99 %6.1f us   errors %d\n", label, rate,
           lat[n / 2], lat[(int)(n * 0.99)], errors);
}

int main(int argc, char **argv)
{
    int cycles = 100000, scale = 1, budgets = 1, pair = 0;
    const char *policy_dir = "policies", *only = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--cycles") && i + 1 < argc)
            cycles = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--policy-dir") && i + 1 < argc)
            policy_dir = argv[++i];
        else if (!strcmp(argv[i], "--no-scale"))
            scale = 0;
        else if (!strcmp(argv[i], "--budgets") && i + 1 < argc)
            budgets = strcmp(argv[++i], "off");
        else if (!strcmp(argv[i], "--only") && i + 1 < argc)
            only = argv[++i];
        else if (!strcmp(argv[i], "--budgets-pair") && i + 1 < argc)
            pair = atoi(argv[++i]);
    }
    if (pair > 0) return budgets_pair(policy_dir, pair, cycles);
    double *lat = malloc(sizeof *lat * (size_t)cycles);
    double none_rate = 0;
    char dir[128];
    static const struct {
        const char *name;
        sb_sync_mode mode;
    } modes[] = {{"none", SB_SYNC_NONE}, {"group", SB_SYNC_GROUP}};
    printf("call-cycle benchmark: 50 agents, longest-idle Lua policy, offer+answered+hangup, "
           "one transaction per event, budgets %s\n",
           budgets ? "armed" : "off");
    for (size_t m = 0; m < 2; m++) {
        if (only && strcmp(only, modes[m].name)) continue;
        snprintf(dir, sizeof dir, "/tmp/sb-bench-%d-%s", (int)getpid(), modes[m].name);
        sb_engine *e = open_at(dir, policy_dir, modes[m].mode, budgets);
        sb_result *res = sb_result_new();
        provision(e, res);
        int n = modes[m].mode == SB_SYNC_NONE ? cycles : cycles / 20;
        int errors = 0;
        run_cycles(e, "bench", "q", n / 10 > 1000 ? 1000 : n / 10, lat, &errors); /* warm up */
        fake_ms += 100000;
        errors = 0;
        /* fresh call ids: offset the counter by running on a second queue name */
        double rate = run_cycles(e, "bench", "q", n, lat, &errors);
        char label[64];
        snprintf(label, sizeof label, "sync=%s (%d cycles)", modes[m].name, n);
        report(label, rate, lat, n, errors);
        if (modes[m].mode == SB_SYNC_NONE) none_rate = rate;
        sb_result_free(res);
        sb_close(e);
        char cmd[256];
        snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
        if (system(cmd)) return 1;
    }
    if (scale) {
        /* 2,000 queues, 10,000 agents, ~74,000 memberships (37 a queue). "q0" has 50 agents
        ** in no other queue: its cycle must cost what the one-queue run's
        ** does (an event's cost must not grow with the queues its agent is
        ** not in). "q1" has 50 agents that are each in ~8 queues, as a
        ** deployment's agents are: reserving and freeing one updates the
        ** available-agents index of every queue it is in, which is the cost
        ** that may grow. */
        snprintf(dir, sizeof dir, "/tmp/sb-bench-%d-scale", (int)getpid());
        sb_engine *e = open_at(dir, policy_dir, SB_SYNC_NONE, budgets);
        sb_result *res = sb_result_new();
        must(sb_account_put(e, "{\"id\":\"big\"}", 12, res), res, "account");
        double t0 = now_s();
        for (int i = 0; i < 10000; i++)
            add_agent(e, res, "big", i);
        static char qj[1 << 16];
        int members = 0;
        srand(7);
        for (int qn = 0; qn < 2000; qn++) {
            snprintf(qj, sizeof qj, "{\"id\":\"q%d\",\"policy\":\"longest-idle\",\"members\":[",
                     qn);
            int k = qn < 2 ? 50 : (75000 - 100) / 1998;
            for (int j = 0; j < k; j++) {
                int agent = qn < 2 ? qn * 50 + j : 50 + (qn * 37 + j * 101 + rand() % 7) % 9950;
                snprintf(qj + strlen(qj), sizeof qj - strlen(qj), "%s{\"agent\":\"a%d\"}",
                         j ? "," : "", agent);
            }
            strcat(qj, "]}");
            int rc = sb_queue_put(e, "big", qj, strlen(qj), res);
            if (rc && sb_result_code(res) == SB_EINVAL) continue;
            must(rc, res, "queue");
            members += k;
        }
        printf("scale: 10,000 agents, 2,000 queues, ~%d memberships provisioned in %.1f s\n",
               members, now_s() - t0);
        int n = cycles / 2, errors = 0;
        run_cycles(e, "big", "q0", 1000, lat, &errors);
        run_cycles(e, "big", "q1", 1000, lat, &errors);
        errors = 0;
        double rate = run_cycles(e, "big", "q0", n, lat, &errors);
        report("scale: q0, 50 agents in no other q", rate, lat, n, errors);
        if (none_rate > 0)
            printf("  against the one-queue run: %.2fx (target: independent of other queues)\n",
                   rate / none_rate);
        errors = 0;
        double rate1 = run_cycles(e, "big", "q1", n, lat, &errors);
        report("scale: q1, its agents in ~8 queues", rate1, lat, n, errors);
        sb_result_free(res);
        sb_close(e);
        char cmd[256];
        snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
        if (system(cmd)) return 1;
    }
    free(lat);
    return 0;
}
