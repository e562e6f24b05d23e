/*
** simulate.c — `switchboard simulate`: a working day of calls through the
** stock policies, on an injected clock, with a summary at the end.
**
** Callers arrive through the day (busier mid-morning and mid-afternoon),
** agents answer most rings after a few seconds, talk for a few minutes and
** take a short wrap-up; impatient callers hang up. Everything the gateway
** would do is driven by the engine's actions, and the engine's own timers
** (ring timeouts, wrap-ups, wake-ups) are fired by sb_tick as the clock
** moves. The same seed gives the same day. The calls themselves (when
** each arrives, its queue, caller, patience and talk time) are drawn before
** the day starts, and how agents answer rings from a generator of their
** own, so that another policy on the same seed meets the same calls: only
** what routing changes changes. --policy FILE puts a policy author's own
** policy in place of the stock ones, on every queue or on those --queue
** names.
*/
#include "switchboard.h"

#include "cli.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int64_t now_ms;
static int64_t sim_clock(void *arg)
{
    return now_ms;
}

/* A small deterministic generator (splitmix64), in [0, 1). Two streams:
** the calls, drawn before the day starts, and the rings' outcomes, drawn as
** agents are rung (their number depends on the policy). */
static uint64_t calls_rng, rings_rng;
static double rnd(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    z ^= z >> 31;
    return (double)(z >> 11) / 9007199254740992.0;
}
static double expo(uint64_t *state, double mean)
{
    return -mean * log(1.0 - rnd(state));
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
    const char *policy; /* the policy the queue routes with */
    int offered, answered, abandoned, rejected, moved;
    double wait_sum;
} qstat;

#define NQ 4
static qstat qs[NQ] = {{.id = "support", .policy = "longest-idle"},
                       {.id = "sales", .policy = "freeswitch/round-robin"},
                       {.id = "billing", .policy = "switchboard/skills-escalation"},
                       {.id = "vip", .policy = "switchboard/caller-priority"}};

/* --policy FILE: its path, source and the name it is uploaded under (the
** file's name without .lua, as `policy test` and replay name a policy), and
** which queues route with it (all of them unless --queue says). */
static const char *own_path;
static char *own_src;
static size_t own_len;
static char own_name[160];
static int own_queue[NQ];

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
    int q, caller;                /* drawn before the day, with the arrival */
    int64_t patience_ms, talk_ms; /* hangs up unanswered after; talks for, once answered */
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
    free(own_src);
    own_src = NULL;
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
            if (rnd(&rings_rng) < 0.88) {
                e.kind = S_ANSWER;
                e.t = now_ms + (int64_t)(2000 + rnd(&rings_rng) * 9000);
            } else {
                e.kind = S_NOANSWER;
                e.t = now_ms + (int64_t)(rnd(&rings_rng) * 4000) + 1000;
                if (rnd(&rings_rng) < 0.5) break; /* some rings just time out */
            }
            push(&h, e);
            break;
        case SB_ACT_CONNECT:
            calls[cn].connected = 1;
            qs[calls[cn].q].answered++;
            qs[calls[cn].q].wait_sum += (double)(now_ms - calls[cn].offered) / 1000.0;
            e.kind = S_HANGUP;
            e.call = cn;
            e.t = now_ms + calls[cn].talk_ms;
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

/* Upload --policy's FILE to the day's account, as the daemon takes an
** author's policy: what stops it from loading ends the command (exit 1), with
** its line in FILE; what `policy check` finds in a policy that loads is
** shown as warnings, and the day runs. */
static void upload_own(void)
{
    if (sb_policy_put(eng, demo_account, own_name, own_src, own_len, NULL, res)) {
        /* The engine names the chunk NAME.lua: say FILE, where the line is. */
        const char *m = sb_result_message(res);
        size_t n = strlen(own_name);
        if (!strncmp(m, own_name, n) && !strncmp(m + n, ".lua:", 5))
            fprintf(stderr, "switchboard simulate: --policy does not load: %s%s\n", own_path,
                    m + n + 4);
        else
            fprintf(stderr, "switchboard simulate: --policy %s: %s\n", own_path, m);
        finish();
        exit(1);
    }
    sb_result *r = sb_result_new();
    if (sb_policy_check(own_path, own_src, own_len, r)) {
        /* "FILE:LINE: message", a line each. */
        const char *m = sb_result_message(r);
        while (*m) {
            size_t n = strcspn(m, "\n");
            fprintf(stderr, "switchboard simulate: warning: %.*s\n", (int)n, m);
            m += n + (m[n] == '\n');
        }
    }
    sb_result_free(r);
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
    if (own_src) upload_own();
    /* A queue another overflows into must be there first: sales before
    ** support. Each is qs[q], with its policy, then the rest of its
    ** document. */
    static const struct {
        int q;
        const char *rest;
    } queues[] = {
        {1, "\"ring_timeout\":20,\"members\":[{\"agent\":\"dave\"},{\"agent\":\"erin\"},"
            "{\"agent\":\"frank\",\"tier\":2}]"},
        {2, "\"ring_timeout\":20,\"members\":[{\"agent\":\"alice\"},{\"agent\":\"bob\"},"
            "{\"agent\":\"erin\"},{\"agent\":\"grace\"}]"},
        {3, "\"ring_timeout\":20,\"members\":[{\"agent\":\"alice\",\"tier\":1},"
            "{\"agent\":\"grace\",\"tier\":1},{\"agent\":\"dave\",\"tier\":2}]"},
        {0, "\"ring_timeout\":15,\"max_wait\":600,\"overflow\":\"sales\",\"members\":["
            "{\"agent\":\"alice\"},{\"agent\":\"bob\"},{\"agent\":\"carol\"},"
            "{\"agent\":\"frank\"},{\"agent\":\"heidi\"}]"},
    };
    for (size_t i = 0; i < sizeof queues / sizeof *queues; i++) {
        char doc[512];
        int q = queues[i].q;
        snprintf(doc, sizeof doc, "{\"id\":\"%s\",\"policy\":\"%s\",%s}", qs[q].id, qs[q].policy,
                 queues[i].rest);
        if (sb_queue_put(eng, demo_account, doc, strlen(doc), res) == 0) continue;
        if (own_queue[q]) /* no route hook, say: the author's policy is why */
            fprintf(stderr,
                    "switchboard simulate: --policy %s: queue %s cannot route with it: %s\n",
                    own_path, qs[q].id, sb_result_message(res));
        else
            fprintf(stderr, "switchboard simulate: queue: %s\n", sb_result_message(res));
        finish();
        exit(1);
    }
}

/* The policies quarantined during the day, each said on stderr with the
** queues it was to route; how many (1 when that cannot be read). Their calls went to the queue's
** fallback from then on, so the day shown is not the policy's. */
static int quarantined(void)
{
    if (sb_policy_list(eng, demo_account, res)) {
        /* Not known: not said to be fine. */
        fprintf(stderr,
                "switchboard simulate: cannot tell whether a policy was quarantined during "
                "the day: %s\n",
                sb_result_message(res));
        return 1;
    }
    json_t *doc = json_loads(sb_result_json(res, NULL), 0, NULL);
    size_t i;
    json_t *p;
    int n = 0;
    json_array_foreach(json_object_get(doc, "policies"), i, p)
    {
        const char *name = json_string_value(json_object_get(p, "name"));
        const char *state = json_string_value(json_object_get(p, "state"));
        if (!name || !state || strcmp(state, "quarantined")) continue;
        char queues[64] = ""; /* "support, sales, billing, vip" at most */
        for (int q = 0; q < NQ; q++)
            if (!strcmp(qs[q].policy, name))
                snprintf(queues + strlen(queues), sizeof queues - strlen(queues), "%s%s",
                         *queues ? ", " : "", qs[q].id);
        fprintf(stderr,
                "switchboard simulate: policy '%s' was quarantined during the day (too many "
                "failures in a row, logged above): from then on its queues' calls (%s) got "
                "their fallback, so the summary is not that policy's routing\n",
                name, queues);
        n++;
    }
    json_decref(doc);
    return n;
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

/* The queues --queue names (a comma-separated list of qs' ids; NULL: all)
** into own_queue: 0, or 2 (said why). */
static int own_queues(const char *arg)
{
    for (int q = 0; q < NQ; q++)
        own_queue[q] = !arg;
    for (const char *p = arg; p && *p;) {
        size_t n = strcspn(p, ",");
        int q = 0;
        while (q < NQ && (strlen(qs[q].id) != n || strncmp(qs[q].id, p, n) != 0))
            q++;
        if (q == NQ) {
            fprintf(stderr,
                    "switchboard simulate: --queue '%.*s': the simulated queues are support, "
                    "sales, billing and vip (several: --queue support,sales)\n",
                    (int)n, p);
            return 2;
        }
        own_queue[q] = 1;
        p += n;
        if (*p == ',' && !*++p) { /* "support," */
            fprintf(stderr, "switchboard simulate: --queue '%s': a queue name after the ','\n",
                    arg);
            return 2;
        }
    }
    return 0;
}

/* --policy own_path: read it, name it, and give it to the queues --queue
** names (queue_arg, NULL: all of them); upload_own loads it. 0, or 2 (said
** why): a usage error, or a file that cannot be read. */
static int own_policy(const char *queue_arg)
{
    if (own_queues(queue_arg)) return 2;
    FILE *f = fopen(own_path, "rb");
    if (!f) {
        fprintf(stderr, "switchboard simulate: --policy %s: %s\n", own_path, strerror(errno));
        return 2;
    }
    struct stat st;
    int dir = fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode);
    fclose(f);
    if (dir) {
        fprintf(stderr,
                "switchboard simulate: --policy %s: a directory: give the policy's .lua file\n",
                own_path);
        return 2;
    }
    if (!(own_src = cli_read_file(own_path, &own_len))) return 2; /* said why */
    const char *base = strrchr(own_path, '/');
    snprintf(own_name, sizeof own_name, "%s", base ? base + 1 : own_path);
    size_t n = strlen(own_name);
    if (n > 4 && strcmp(own_name + n - 4, ".lua") == 0) own_name[n - 4] = 0;
    /* An upload stands in for the shared policy of its name: one a queue
    ** that keeps its stock policy routes with would change that queue. */
    for (int q = 0; q < NQ; q++) {
        if (own_queue[q] || strcmp(qs[q].policy, own_name) != 0) continue;
        fprintf(stderr,
                "switchboard simulate: --policy %s: it would be uploaded as '%s', the stock "
                "policy queue %s keeps, and route that queue too: give the file another name, "
                "or --queue %s as well\n",
                own_path, own_name, qs[q].id, qs[q].id);
        return 2;
    }
    for (int q = 0; q < NQ; q++)
        if (own_queue[q]) qs[q].policy = own_name;
    return 0;
}

int cli_simulate(int argc, char **argv)
{
    const char *policy_dir = "policies", *data_dir = NULL, *queue_arg = NULL;
    int ncalls = 1000, policy_dir_given = 0;
    unsigned long long seed = 1;
    static const char *const once[] = {"--policy-dir", "--data-dir", "--calls", "--seed",
                                       "--policy",     "--queue",    NULL};
    if (cli_twice("simulate", argc, argv, once)) return 2;
    for (int i = 0; i < argc; i++) {
        const char *v = NULL;
        int at = i; /* argv[at] is the flag, for a message */
        if (cli_flag("--policy-dir", argc, argv, &i, &v) && v && *v)
            policy_dir = v, policy_dir_given = 1;
        else if (i == at && cli_flag("--data-dir", argc, argv, &i, &v) && v && *v)
            data_dir = v;
        else if (i == at && cli_flag("--policy", argc, argv, &i, &v) && v && *v)
            own_path = v;
        else if (i == at && cli_flag("--queue", argc, argv, &i, &v) && v && *v)
            queue_arg = v;
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
                    "                            [--policy FILE [--queue Q[,Q...]]]\n"
                    "A working day of N calls (default 1000) through the stock policies in DIR\n"
                    "(default ./policies, not needed when --policy routes every queue) on an\n"
                    "injected clock, with a summary; the same seed gives the same day, and\n"
                    "the same calls whatever the policy (arrivals, queues, callers, patience\n"
                    "and talk times are drawn first), so policies are compared on one set. Its\n"
                    "queues: support (longest-idle, overflowing to sales after 10 minutes),\n"
                    "sales (freeswitch/round-robin), billing (switchboard/skills-escalation;\n"
                    "its calls ask for the skill billing 4) and vip\n"
                    "(switchboard/caller-priority; its calls have priority 60).\n"
                    "--policy FILE routes every queue with your policy instead, uploaded to the\n"
                    "day's account as the daemon takes one, under FILE's name without .lua\n"
                    "(its cases are `policy test`'s to run); --queue support,billing routes\n"
                    "only those queues with it, the others keep theirs. A FILE that does not\n"
                    "load is refused with its file:line and no day runs; what `policy check`\n"
                    "finds in one that loads is shown as warnings; the policy's failures during\n"
                    "the day are logged on stderr and counted in the summary, and a day with\n"
                    "any (a routing decision that failed got its queue's fallback) counts as\n"
                    "failed, said after the summary with how many decisions fell back; a policy\n"
                    "quarantined (too many failures in a row: its queues' calls got their\n"
                    "fallback from then on) is said too.\n"
                    "--data-dir keeps the engine's data there (default: a temporary directory\n"
                    "in $TMPDIR, removed at the end); one a running `switchboard serve` holds\n"
                    "is refused. Exit status: 0 done with no policy failure, 1 an error (a\n"
                    "policy that does not load included), a policy that failed (a routing\n"
                    "decision that fell back included) or was quarantined during the day, 2 a\n"
                    "usage error (a FILE that cannot be read included).\n");
            return help ? 0 : 2;
        }
    }
    if (ncalls < 1 || ncalls > 1000000) {
        fprintf(stderr, "switchboard simulate: --calls must be 1..1000000\n");
        return 2;
    }
    if (queue_arg && !own_path) {
        fprintf(stderr, "switchboard simulate: --queue says which queues route with --policy FILE: "
                        "give --policy too\n");
        return 2;
    }
    if (own_path && own_policy(queue_arg)) return 2;
    /* Every queue on the author's policy needs no stock one: run outside
    ** the source tree (no ./policies) without a policy directory. */
    struct stat pd;
    if (!policy_dir_given && own_path && !queue_arg &&
        (stat(policy_dir, &pd) || !S_ISDIR(pd.st_mode)))
        policy_dir = NULL;
    if (cli_refuse_served_dir("simulate", data_dir)) return 1;
    calls_rng = seed;
    rings_rng = seed ^ 0x5deece66dULL; /* another stream of the same seed */
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
    cfg.log_level = SB_LOG_WARN; /* a policy's failures, not its upload's "policy loaded" */
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
        t += (int64_t)expo(&calls_rng, mean_gap * 0.6);
        if (t >= day_end) t = now_ms + (int64_t)(rnd(&calls_rng) * (double)(day_end - now_ms));
        if (rnd(&calls_rng) * 1.6 > busyness(t)) continue;
        callinfo *c = &calls[n];
        double r = rnd(&calls_rng);
        c->q = r < 0.5 ? 0 : r < 0.75 ? 1 : r < 0.93 ? 2 : 3;
        c->caller = (int)(rnd(&calls_rng) * 9999);
        c->patience_ms = (int64_t)(20000 + expo(&calls_rng, 240000));
        c->talk_ms = (int64_t)(20000 + expo(&calls_rng, 130000));
        sim_ev e = {.t = t, .kind = S_ARRIVE, .call = n++};
        push(&h, e);
    }
    printf("Switchboard: a simulated day, %d calls, 8 agents, 4 queues (seed %llu)\n", ncalls,
           (unsigned long long)seed);
    printf("policies:");
    for (int q = 0; q < NQ; q++)
        printf("%s%s=%s", q ? "  " : " ", qs[q].id, qs[q].policy);
    if (own_path) printf("  (%s: %s)", own_name, own_path);
    printf("\n\n");
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
            int q = c->q;
            c->offered = now_ms;
            qs[q].offered++;
            const char *attrs = q == 2 ? ",\"attrs\":{\"skills\":{\"billing\":4}}" : "";
            snprintf(json, sizeof json,
                     "{\"type\":\"offer\",\"call\":\"c%d\",\"queue\":\"%s\","
                     "\"caller\":\"+44207946%04d\",\"priority\":%d%s}",
                     e.call, qs[q].id, c->caller, q == 3 ? 60 : 0, attrs);
            submit(json);
            sim_ev ab = {.t = now_ms + c->patience_ms, .kind = S_ABANDON, .call = e.call};
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
    printf("answered: the calls answered in that hour, whichever hour they were offered in\n");
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
    printf("a call counts in the queue it was first offered to, its outcome too when it "
           "moved on;\nmoved: the calls that left a queue, by a policy's move (the 'move' "
           "decisions below) or its max_wait\n");
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
    /* Decisions that failed (a policy's errors: the call got its queue's
    ** fallback) or any other failure of a policy: the day is not the
    ** policy's, and a run that checks one must not pass on it (replay's
    ** exit status is 1 for the same). Not known: not said to be fine. */
    int status = 1;
    json_t *doc = sb_stats(eng, res) == 0 ? json_loads(sb_result_json(res, NULL), 0, NULL) : NULL;
    long long ring = cli_stat(doc, "decisions", "ring"), wait = cli_stat(doc, "decisions", "wait"),
              move = cli_stat(doc, "decisions", "move"),
              reject = cli_stat(doc, "decisions", "reject"),
              failures = cli_stat(doc, "policy", "failures"),
              fallbacks = cli_stat(doc, "decisions", "fallback");
    if (doc)
        printf("\ndecisions: %lld ring, %lld wait, %lld move, %lld reject; policy failures %lld, "
               "fallbacks %lld\n",
               ring, wait, move, reject, failures, fallbacks);
    printf("%d of %d calls answered (%.1f%%)\n", ta, to, to ? 100.0 * ta / to : 0);
    /* What follows on stderr comes after the summary also when both go to
    ** one file or pipe (stdout is then buffered until the exit). */
    fflush(stdout);
    if (!doc)
        fprintf(stderr, "switchboard simulate: cannot tell whether a policy failed: %s\n",
                sb_result_message(res));
    else if (failures || fallbacks)
        fprintf(stderr,
                "switchboard simulate: %lld of %lld routing decisions got their queue's "
                "fallback, the policy having failed %lld time%s (logged above): the day counts "
                "as failed\n",
                fallbacks, ring + wait + move + reject, failures, failures == 1 ? "" : "s");
    else
        status = 0;
    json_decref(doc);
    if (quarantined()) status = 1;
    finish();
    free(calls);
    free(h.v);
    return status;
}
