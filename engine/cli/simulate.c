/*
** simulate.c — `switchboard simulate`: a working day of calls through the
** stock policies, on an injected clock, with a summary at the end.
**
** Callers arrive through the day (busier mid-morning and mid-afternoon),
** agents answer most rings after a few seconds, talk for a few minutes and
** take a short wrap-up; impatient callers hang up. Everything the gateway
** would do is driven by the engine's actions, and the engine's own timers
** (ring timeouts, wrap-ups, wake-ups) are fired by sb_tick as the clock
** moves. The same seed gives the same day.
*/
#include "switchboard.h"

#include "cli.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int64_t now_ms;
static int64_t sim_clock(void *arg)
{
    return now_ms;
}

/* A small deterministic generator (splitmix64). */
static uint64_t rng_state;
static double rnd(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    z ^= z >> 31;
    return (double)(z >> 11) / 9007199254740992.0;
}
static double expo(double mean)
{
    return -mean * log(1.0 - rnd());
}

enum { S_ARRIVE, S_ANSWER, S_NOANSWER, S_HANGUP, S_ABANDON };

typedef struct sim_ev {
    int64_t t;
    int kind;
    int call; /* call number */
    char agent[32];
} sim_ev;

typedef struct heap {
    sim_ev *v;
    size_t n, cap;
} heap;

static void push(heap *h, sim_ev e)
{
    if (h->n == h->cap) {
        h->cap = h->cap ? h->cap * 2 : 256;
        h->v = realloc(h->v, h->cap * sizeof *h->v);
        if (!h->v) abort();
    }
    size_t i = h->n++;
    while (i && h->v[(i - 1) / 2].t > e.t) {
        h->v[i] = h->v[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    h->v[i] = e;
}

static sim_ev pop(heap *h)
{
    sim_ev top = h->v[0], last = h->v[--h->n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n) break;
        if (c + 1 < h->n && h->v[c + 1].t < h->v[c].t) c++;
        if (h->v[c].t >= last.t) break;
        h->v[i] = h->v[c];
        i = c;
    }
    if (h->n) h->v[i] = last;
    return top;
}

typedef struct qstat {
    const char *id;
    int offered, answered, abandoned, rejected, moved;
    double wait_sum;
} qstat;

#define NQ 4
static qstat qs[NQ] = {{.id = "support"}, {.id = "sales"}, {.id = "billing"}, {.id = "vip"}};

/* Calls offered and answered so far, over every queue. */
static int to_offered(void)
{
    int n = 0;
    for (int i = 0; i < NQ; i++)
        n += qs[i].offered;
    return n;
}

static int to_answered(void)
{
    int n = 0;
    for (int i = 0; i < NQ; i++)
        n += qs[i].answered;
    return n;
}

typedef struct callinfo {
    int q;
    int64_t offered;
    int connected, ended;
} callinfo;

static sb_engine *eng;
static sb_result *res;
static heap h;
static callinfo *calls;
static const char *const demo_account = "demo";

/* A temporary data directory is in use (not when --data-dir was given). */
static int tmpdir;

/* Close the engine and remove the temporary data directory. */
static void finish(void)
{
    sb_close(eng);
    eng = NULL;
    sb_result_free(res);
    res = NULL;
    if (tmpdir) cli_tmpdir_remove();
    tmpdir = 0;
}

static void must(int rc, const char *what)
{
    if (rc) {
        fprintf(stderr, "switchboard simulate: %s: %s\n", what, sb_result_message(res));
        finish();
        exit(1);
    }
}

/* React to the actions the engine hands back, as a gateway would. */
static void handle_actions(void)
{
    for (size_t i = 0; i < sb_result_count(res); i++) {
        const sb_action *a = sb_result_action(res, i);
        int cn = a->call_id ? atoi(a->call_id + 1) : -1;
        sim_ev e = {0};
        switch (a->type) {
        case SB_ACT_RING:
            e.call = cn;
            snprintf(e.agent, sizeof e.agent, "%s", a->agent_id);
            if (rnd() < 0.88) {
                e.kind = S_ANSWER;
                e.t = now_ms + (int64_t)(2000 + rnd() * 9000);
            } else {
                e.kind = S_NOANSWER;
                e.t = now_ms + (int64_t)(rnd() * 4000) + 1000;
                if (rnd() < 0.5) break; /* some rings just time out */
            }
            push(&h, e);
            break;
        case SB_ACT_CONNECT:
            calls[cn].connected = 1;
            qs[calls[cn].q].answered++;
            qs[calls[cn].q].wait_sum += (double)(now_ms - calls[cn].offered) / 1000.0;
            e.kind = S_HANGUP;
            e.call = cn;
            e.t = now_ms + (int64_t)(20000 + expo(130000));
            push(&h, e);
            break;
        case SB_ACT_REJECT:
            qs[calls[cn].q].rejected++;
            break;
        case SB_ACT_OVERFLOW:
            if (a->reason && strcmp(a->reason, "transferred") != 0) qs[calls[cn].q].moved++;
            break;
        case SB_ACT_END:
            calls[cn].ended = 1;
            if (strcmp(a->reason, "abandoned") == 0) qs[calls[cn].q].abandoned++;
            break;
        default:
            break;
        }
    }
}

static void submit(const char *json)
{
    int rc = sb_submit_json(eng, demo_account, json, strlen(json), res);
    if (rc == 0) handle_actions();
    /* Stale gateway events (a ring already cancelled) are refused: fine. */
}

static void setup(void)
{
    const char *account = "{\"id\":\"demo\",\"name\":\"Demo Ltd\"}";
    must(sb_account_put(eng, account, strlen(account), res), "account");
    static const char *const agents[] = {
        "{\"id\":\"alice\",\"name\":\"Alice\",\"devices\":{\"softphone\":\"sip:alice@pbx.example\","
        "\"mobile\":\"tel:+447700900101\"},\"skills\":{\"billing\":5,\"english\":5},"
        "\"timezone\":\"Europe/London\",\"wrapup\":10,\"status\":\"available\"}",
        "{\"id\":\"bob\",\"name\":\"Bob\",\"devices\":{\"softphone\":\"sip:bob@pbx.example\"},"
        "\"skills\":{\"billing\":2,\"english\":4},\"status\":\"available\"}",
        "{\"id\":\"carol\",\"name\":\"Carol\",\"devices\":{\"landline\":\"sip:desk-12@pbx."
        "example\","
        "\"mobile\":\"tel:+447700900103\"},\"timezone\":\"Europe/London\",\"schedule\":["
        "{\"days\":[\"weekdays\"],\"from\":\"08:00\",\"to\":\"13:00\",\"devices\":[\"landline\"]},"
        "{\"days\":[\"weekdays\"],\"from\":\"13:00\",\"to\":\"18:00\",\"devices\":[\"mobile\"]}],"
        "\"status\":\"available\"}",
        "{\"id\":\"dave\",\"name\":\"Dave\",\"devices\":{\"softphone\":\"sip:dave@pbx.example\"},"
        "\"skills\":{\"sales\":5},\"status\":\"available\"}",
        "{\"id\":\"erin\",\"name\":\"Erin\",\"devices\":{\"softphone\":\"sip:erin@pbx.example\"},"
        "\"skills\":{\"sales\":3,\"billing\":3},\"status\":\"available\"}",
        "{\"id\":\"frank\",\"name\":\"Frank\",\"devices\":{\"landline\":\"sip:desk-14@pbx."
        "example\","
        "\"softphone\":\"sip:frank@pbx.example\"},\"preferences\":{\"device\":\"landline\"},"
        "\"status\":\"available\"}",
        "{\"id\":\"grace\",\"name\":\"Grace\",\"devices\":{\"softphone\":\"sip:grace@pbx.example\"}"
        ","
        "\"skills\":{\"billing\":4},\"status\":\"available\"}",
        "{\"id\":\"heidi\",\"name\":\"Heidi\",\"devices\":{\"mobile\":\"tel:+447700900108\"},"
        "\"status\":\"available\"}",
    };
    for (size_t i = 0; i < sizeof agents / sizeof *agents; i++)
        must(sb_agent_put(eng, demo_account, agents[i], strlen(agents[i]), res), "agent");
    /* A queue another overflows into must be there first: sales before
    ** support. */
    static const char *const queues[] = {
        "{\"id\":\"sales\",\"policy\":\"freeswitch/round-robin\",\"ring_timeout\":20,"
        "\"members\":[{\"agent\":\"dave\"},{\"agent\":\"erin\"},{\"agent\":\"frank\",\"tier\":2}]}",
        "{\"id\":\"billing\",\"policy\":\"switchboard/skills-escalation\",\"ring_timeout\":20,"
        "\"members\":[{\"agent\":\"alice\"},{\"agent\":\"bob\"},{\"agent\":\"erin\"},"
        "{\"agent\":\"grace\"}]}",
        "{\"id\":\"vip\",\"policy\":\"switchboard/caller-priority\",\"ring_timeout\":20,"
        "\"members\":[{\"agent\":\"alice\",\"tier\":1},{\"agent\":\"grace\",\"tier\":1},"
        "{\"agent\":\"dave\",\"tier\":2}]}",
        "{\"id\":\"support\",\"policy\":\"longest-idle\",\"ring_timeout\":15,\"max_wait\":600,"
        "\"overflow\":\"sales\",\"members\":[{\"agent\":\"alice\"},{\"agent\":\"bob\"},"
        "{\"agent\":\"carol\"},{\"agent\":\"frank\"},{\"agent\":\"heidi\"}]}",
    };
    for (size_t i = 0; i < sizeof queues / sizeof *queues; i++)
        must(sb_queue_put(eng, demo_account, queues[i], strlen(queues[i]), res), "queue");
}

/* Arrival intensity over the day: peaks at 10:30 and 15:00. */
static double busyness(int64_t ms)
{
    double hour = (double)((ms / 1000) % 86400) / 3600.0;
    return 0.4 + exp(-pow(hour - 10.5, 2) / 2.0) + 0.8 * exp(-pow(hour - 15.0, 2) / 2.0);
}

/* A whole number, all of s: 0, or -1. */
static int whole(const char *s, unsigned long long *out)
{
    char *e;
    errno = 0;
    unsigned long long n = strtoull(s, &e, 10);
    if (*s < '0' || *s > '9' || *e || errno) return -1;
    *out = n;
    return 0;
}

int cli_simulate(int argc, char **argv)
{
    const char *policy_dir = "policies", *data_dir = NULL;
    int ncalls = 1000;
    unsigned long long seed = 1;
    static const char *const once[] = {"--policy-dir", "--data-dir", "--calls", "--seed", NULL};
    if (cli_twice("simulate", argc, argv, once)) return 2;
    for (int i = 0; i < argc; i++) {
        const char *v = NULL;
        int at = i; /* argv[at] is the flag, for a message */
        if (cli_flag("--policy-dir", argc, argv, &i, &v) && v && *v)
            policy_dir = v;
        else if (i == at && cli_flag("--data-dir", argc, argv, &i, &v) && v && *v)
            data_dir = v;
        else if (i == at && cli_flag("--calls", argc, argv, &i, &v) && v) {
            unsigned long long n;
            ncalls = whole(v, &n) || n > 1000000 ? 0 : (int)n; /* 0: refused below */
        } else if (i == at && cli_flag("--seed", argc, argv, &i, &v) && v) {
            if (whole(v, &seed)) {
                fprintf(stderr, "switchboard simulate: --seed '%s': expected a whole number\n", v);
                return 2;
            }
        } else {
            i = at;
            int help = cli_is_help(argv[i], 0);
            if (!help)
                fprintf(stderr, "switchboard simulate: unknown or incomplete '%s'\n", argv[i]);
            fprintf(help ? stdout : stderr,
                    "usage: switchboard simulate [--policy-dir DIR] [--calls N] [--seed N] "
                    "[--data-dir DIR]\n"
                    "A working day of N calls (default 1000) through the stock policies in DIR\n"
                    "(default ./policies) on an injected clock, with a summary; the same seed\n"
                    "gives the same day. --data-dir keeps the engine's data there (default: a\n"
                    "temporary directory in $TMPDIR, removed at the end); one a running\n"
                    "`switchboard serve` holds is refused. Exit status: 0 done, 1 an error, 2 a\n"
                    "usage error.\n");
            return help ? 0 : 2;
        }
    }
    if (ncalls < 1 || ncalls > 1000000) {
        fprintf(stderr, "switchboard simulate: --calls must be 1..1000000\n");
        return 2;
    }
    if (cli_refuse_served_dir("simulate", data_dir)) return 1;
    rng_state = seed;
    if (!data_dir) {
        if (!(data_dir = cli_tmpdir_make("sim"))) return 1;
        tmpdir = 1;
    }
    now_ms = 1767600000000; /* Monday 2026-01-05 08:00 UTC */
    int64_t day_end = now_ms + 10 * 3600 * 1000LL;
    sb_config cfg;
    sb_config_init(&cfg);
    cfg.data_dir = data_dir;
    cfg.policy_dir = policy_dir;
    cfg.sync = SB_SYNC_NONE;
    cfg.clock = sim_clock;
    cfg.seed = seed;
    cfg.map_size = 32 << 20;
    res = sb_result_new();
    if (sb_open(&eng, &cfg, res)) {
        fprintf(stderr, "switchboard simulate: %s\n", sb_result_message(res));
        finish();
        return 1;
    }
    setup();
    calls = calloc((size_t)ncalls, sizeof *calls);
    if (!calls) {
        fprintf(stderr, "switchboard simulate: out of memory\n");
        finish();
        return 1;
    }
    /* Arrivals by thinning a Poisson process. */
    double mean_gap = 36000.0 * 1000.0 / ncalls / 1.2;
    int64_t t = now_ms;
    for (int n = 0; n < ncalls;) {
        t += (int64_t)expo(mean_gap * 0.6);
        if (t >= day_end) t = now_ms + (int64_t)(rnd() * (double)(day_end - now_ms));
        if (rnd() * 1.6 > busyness(t)) continue;
        sim_ev e = {.t = t, .kind = S_ARRIVE, .call = n++};
        push(&h, e);
    }
    printf("Switchboard: a simulated day, %d calls, 8 agents, 4 queues (seed %llu)\n", ncalls,
           (unsigned long long)seed);
    printf("policies: support=longest-idle  sales=freeswitch/round-robin  "
           "billing=switchboard/skills-escalation  vip=switchboard/caller-priority\n\n");
    /* Each hour's own figures, printed once the clock has passed the hour
    ** (everything due before its end handled), and the last hour's after
    ** the day: the lines add up to the summary's. */
    int64_t next_report = now_ms + 3600 * 1000LL;
    int rep_o = 0, rep_a = 0;
    printf("%-13s %8s %9s\n", "hour", "offered", "answered");
    for (int last = 0; !last;) {
        int64_t due = sb_next_deadline(eng), at = h.n ? h.v[0].t : INT64_MAX;
        last = due == INT64_MAX && !h.n;
        if (due < at) at = due;
        while (last ? rep_o < to_offered() || rep_a < to_answered() : at >= next_report) {
            int o = to_offered(), a = to_answered();
            printf("%02lld:00-%02lld:00   %8d %9d\n",
                   (long long)((next_report / 3600000 + 23) % 24),
                   (long long)((next_report / 3600000) % 24), o - rep_o, a - rep_a);
            rep_o = o, rep_a = a;
            next_report += 3600 * 1000LL;
        }
        if (last) break;
        if (due != INT64_MAX && (!h.n || due <= h.v[0].t)) {
            now_ms = due > now_ms ? due : now_ms;
            if (sb_tick(eng, res) == 0) handle_actions();
            continue;
        }
        sim_ev e = pop(&h);
        now_ms = e.t > now_ms ? e.t : now_ms;
        char json[512];
        callinfo *c = &calls[e.call];
        switch (e.kind) {
        case S_ARRIVE: {
            double r = rnd();
            int q = r < 0.5 ? 0 : r < 0.75 ? 1 : r < 0.93 ? 2 : 3;
            c->q = q;
            c->offered = now_ms;
            qs[q].offered++;
            const char *attrs = q == 2 ? ",\"attrs\":{\"skills\":{\"billing\":4}}" : "";
            snprintf(json, sizeof json,
                     "{\"type\":\"offer\",\"call\":\"c%d\",\"queue\":\"%s\","
                     "\"caller\":\"+44207946%04d\",\"priority\":%d%s}",
                     e.call, qs[q].id, (int)(rnd() * 9999), q == 3 ? 60 : 0, attrs);
            submit(json);
            sim_ev ab = {
                .t = now_ms + (int64_t)(20000 + expo(240000)), .kind = S_ABANDON, .call = e.call};
            push(&h, ab);
            break;
        }
        case S_ANSWER:
        case S_NOANSWER:
            snprintf(json, sizeof json,
                     "{\"type\":\"ring_result\",\"call\":\"c%d\",\"agent\":\"%s\","
                     "\"outcome\":\"%s\"}",
                     e.call, e.agent, e.kind == S_ANSWER ? "answered" : "no_answer");
            submit(json);
            break;
        case S_HANGUP:
            snprintf(json, sizeof json, "{\"type\":\"hangup\",\"call\":\"c%d\"}", e.call);
            submit(json);
            break;
        case S_ABANDON:
            if (c->connected || c->ended) break;
            snprintf(json, sizeof json, "{\"type\":\"abandon\",\"call\":\"c%d\"}", e.call);
            submit(json);
            break;
        }
    }
    printf("\n%-10s %8s %9s %10s %9s %6s %9s\n", "queue", "offered", "answered", "abandoned",
           "rejected", "moved", "ans. wait");
    int to = 0, ta = 0;
    for (int i = 0; i < NQ; i++) {
        qstat *q = &qs[i];
        printf("%-10s %8d %9d %10d %9d %6d %8.1fs\n", q->id, q->offered, q->answered, q->abandoned,
               q->rejected, q->moved, q->answered ? q->wait_sum / q->answered : 0);
        to += q->offered, ta += q->answered;
    }
    printf("ans. wait: the average wait of the answered calls (`records stats`' avg wait "
           "counts every offered call)\n");
    printf("\nagents:\n");
    if (sb_agent_list(eng, demo_account, res) == 0) {
        json_t *doc = json_loads(sb_result_json(res, NULL), 0, NULL);
        size_t i;
        json_t *a;
        json_array_foreach(json_object_get(doc, "agents"), i, a)
        {
            json_t *st = json_object_get(a, "stats");
            printf("  %-6s %4lld calls  %7.0fs talk  now %s\n",
                   json_string_value(json_object_get(a, "id")),
                   (long long)json_integer_value(json_object_get(st, "calls_taken")),
                   json_number_value(json_object_get(st, "talk_time")),
                   json_string_value(json_object_get(a, "status")));
        }
        json_decref(doc);
    }
    if (sb_stats(eng, res) == 0) {
        json_t *doc = json_loads(sb_result_json(res, NULL), 0, NULL);
        json_t *d = json_object_get(doc, "decisions"), *p = json_object_get(doc, "policy");
        printf("\ndecisions: %lld ring, %lld wait, %lld move, %lld reject; policy failures %lld, "
               "fallbacks %lld\n",
               (long long)json_integer_value(json_object_get(d, "ring")),
               (long long)json_integer_value(json_object_get(d, "wait")),
               (long long)json_integer_value(json_object_get(d, "move")),
               (long long)json_integer_value(json_object_get(d, "reject")),
               (long long)json_integer_value(json_object_get(p, "failures")),
               (long long)json_integer_value(json_object_get(d, "fallback")));
        json_decref(doc);
    }
    printf("%d of %d calls answered (%.1f%%)\n", ta, to, to ? 100.0 * ta / to : 0);
    finish();
    free(calls);
    free(h.v);
    return 0;
}
