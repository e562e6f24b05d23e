/*
** test_oom.c — out of memory is a tested path, not a crash.
**
** malloc, calloc and realloc are interposed (dlsym(RTLD_NEXT) wrappers) with
** a countdown: armed with N, the Nth allocation from then on fails — and,
** in the persistent sweep, every one after it too; in the one-shot sweep
** only that one. For N = 1, 2, ... until a run completes without reaching
** N, a whole call cycle runs through the library (offer, read, answer,
** hangup, an agent document, reads, a tick, sb_policy_test) and:
**   - every operation returns 0 or SB_ENOMEM / SB_ESTORE (never crashes);
**   - a failed operation committed nothing (LMDB's last transaction id);
**   - with allocation allowed again, agents and the call agree (reserved
**     exactly when rung, on a call exactly when connected), the call can be
**     finished, and a fresh call cycle works.
** Also sb_open under the same countdown (fails cleanly or works), and the
** Lua allocator's cap: policies that allocate until refused — directly and
** inside pcall — fail the hook, the call gets the fallback, the failure is
** counted, and the engine and the policy keep working.
**
** The lib's memory from this allocator is the libc heap's: free() is only
** wrapped to recognise the few bytes handed out while dlsym resolves.
*/
#include "engine.h"
#include "tap.h"
#include "testkit.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ------------------------------------------------------------------------ */
/* The failing allocator. */

static void *(*real_malloc)(size_t);
static void *(*real_calloc)(size_t, size_t);
static void *(*real_realloc)(void *, size_t);
static void (*real_free)(void *);
static int resolving;
static _Alignas(16) char boot[8192];
static size_t bootpos;

static long countdown = -1; /* <0: never fail */
static int persistent;      /* keep failing after the first failure */
static int tripped;         /* an allocation failed since arming */
static long armed_allocs;   /* allocations seen since arming */

static void resolve(void)
{
    if (real_malloc || resolving) return;
    resolving = 1;
    real_malloc = (void *(*)(size_t))dlsym(RTLD_NEXT, "malloc");
    real_calloc = (void *(*)(size_t, size_t))dlsym(RTLD_NEXT, "calloc");
    real_realloc = (void *(*)(void *, size_t))dlsym(RTLD_NEXT, "realloc");
    real_free = (void (*)(void *))dlsym(RTLD_NEXT, "free");
    resolving = 0;
}

static void *boot_alloc(size_t n)
{
    n = (n + 15) & ~(size_t)15;
    if (bootpos + n > sizeof boot) abort();
    void *p = boot + bootpos;
    bootpos += n;
    return p;
}

static int is_boot(const void *p)
{
    return (const char *)p >= boot && (const char *)p < boot + sizeof boot;
}

static int fail_now(void)
{
    if (countdown < 0) return 0;
    armed_allocs++;
    if (tripped) return persistent;
    if (--countdown == 0) {
        tripped = 1;
        return 1;
    }
    return 0;
}

void *malloc(size_t n)
{
    resolve();
    if (!real_malloc) return boot_alloc(n);
    if (fail_now()) {
        errno = ENOMEM;
        return NULL;
    }
    return real_malloc(n);
}

void *calloc(size_t a, size_t b)
{
    resolve();
    if (!real_calloc) return boot_alloc(a * b); /* static, so zeroed */
    if (fail_now()) {
        errno = ENOMEM;
        return NULL;
    }
    return real_calloc(a, b);
}

void *realloc(void *p, size_t n)
{
    resolve();
    if (is_boot(p)) {
        void *q = malloc(n);
        if (q) memcpy(q, p, n < 64 ? n : 64);
        return q;
    }
    if (!real_realloc) return boot_alloc(n);
    if (n && fail_now()) {
        errno = ENOMEM;
        return NULL;
    }
    return real_realloc(p, n);
}

void free(void *p)
{
    if (!p || is_boot(p)) return;
    resolve();
    real_free(p);
}

static void arm(long n, int persist)
{
    armed_allocs = 0;
    tripped = 0;
    persistent = persist;
    countdown = n;
}

static void disarm(void)
{
    countdown = -1;
}

/* ------------------------------------------------------------------------ */
/* The engine under test. */

static char dir[256];
static sb_engine *eng;
static sb_result *res;

static void config(sb_config *cfg, const char *data)
{
    sb_config_init(cfg);
    cfg->data_dir = data;
    cfg->sync = SB_SYNC_NONE;
    cfg->clock = test_clock;
    cfg->log = quiet;
    cfg->map_size = (size_t)1 << 20;
    cfg->policy_memory = (size_t)1 << 20;
    cfg->policy_wall_ms = 2000;
}

static const char first_policy[] =
    "local P = {}\n"
    "function P.route(call, agents, ctx)\n"
    "  local best\n"
    "  for _, a in ipairs(agents) do\n"
    "    if not best or a.id < best.id then best = a end\n"
    "  end\n"
    "  if not best then return { wait = 60 } end\n"
    "  ctx.set('last', best.id)\n"
    "  return { ring = best.id, device = 'softphone', timeout = 20 }\n"
    "end\n"
    "return P\n";

#define AGENT(id)                                                                                  \
    "{\"id\":\"" id "\",\"devices\":{\"softphone\":\"sip:" id "@pbx.example\"},"                   \
    "\"skills\":{\"english\":3},\"status\":\"available\"}"

static int must(int rc, const char *what)
{
    if (rc) diag("%s: %s", what, sb_result_message(res));
    return rc;
}

static int setup(void)
{
    char data[300];
    snprintf(data, sizeof data, "%s/data", dir);
    sb_config cfg;
    config(&cfg, data);
    if (must(sb_open(&eng, &cfg, res), "open")) return -1;
    static const char acct[] = "{\"id\":\"acme\"}";
    static const char queue[] =
        "{\"id\":\"support\",\"policy\":\"first\",\"members\":[{\"agent\":\"alice\"},"
        "{\"agent\":\"bob\"}]}";
    if (must(sb_account_put(eng, acct, strlen(acct), res), "account") ||
        must(sb_policy_put(eng, "acme", "first", first_policy, strlen(first_policy), NULL, res),
             "policy") ||
        must(sb_agent_put(eng, "acme", AGENT("alice"), strlen(AGENT("alice")), res), "alice") ||
        must(sb_agent_put(eng, "acme", AGENT("bob"), strlen(AGENT("bob")), res), "bob") ||
        must(sb_queue_put(eng, "acme", queue, strlen(queue), res), "queue"))
        return -1;
    return 0;
}

static size_t last_txnid(void)
{
    MDB_envinfo info;
    mdb_env_info(eng->env, &info);
    return info.me_last_txnid;
}

__attribute__((format(printf, 1, 2))) static int ev(const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    return sb_submit_json(eng, "acme", buf, strlen(buf), res);
}

/* The agent the result rings for call, copied to out (may be ""). */
static void ring_of(const char *call, char *out, size_t cap)
{
    out[0] = 0;
    for (size_t i = 0; i < sb_result_count(res); i++) {
        const sb_action *a = sb_result_action(res, i);
        if (a->type == SB_ACT_RING && a->call_id && !strcmp(a->call_id, call))
            snprintf(out, cap, "%s", a->agent_id);
    }
}

/* What one armed run saw. */
typedef struct run {
    int failed_op; /* index of the first operation that failed, or -1 */
    int rc;        /* its code */
    int bad;       /* an operation broke the contract */
    char why[300];
} run;

static int allowed(int rc)
{
    return rc == 0 || rc == SB_ENOMEM || rc == SB_ESTORE;
}

/* One operation of the cycle: returns nonzero to stop the cycle. */
static int op(run *r, int idx, const char *name, int rc, size_t txn_before, int writes)
{
    if (rc == 0) return 0;
    if (!allowed(rc)) {
        r->bad = 1;
        snprintf(r->why, sizeof r->why, "%s: %s (%s)", name, sb_strerror(rc),
                 sb_result_message(res));
    } else if (writes && last_txnid() != txn_before) {
        r->bad = 1;
        snprintf(r->why, sizeof r->why, "%s failed with %s but committed", name, sb_strerror(rc));
    }
    if (r->failed_op < 0) {
        r->failed_op = idx;
        r->rc = rc;
    }
    return 1;
}

#define OFFER                                                                                      \
    "{\"type\":\"offer\",\"call\":\"%s\",\"queue\":\"support\",\"caller\":\"+4930100001\"}"
#define ANSWER                                                                                     \
    "{\"type\":\"ring_result\",\"call\":\"%s\",\"agent\":\"%s\",\"outcome\":\"answered\"}"
#define HANGUP "{\"type\":\"hangup\",\"call\":\"%s\"}"
#define ABANDON "{\"type\":\"abandon\",\"call\":\"%s\"}"

/* The call cycle, armed by the caller. */
static void cycle(run *r, const char *call)
{
    char agent[SB_ID_MAX + 1] = "";
    size_t tx;
    r->failed_op = -1;
    r->bad = 0;
    tx = last_txnid();
    if (op(r, 0, "offer", ev(OFFER, call), tx, 1)) return;
    ring_of(call, agent, sizeof agent);
    if (op(r, 1, "call_get", sb_call_get(eng, "acme", call, res), 0, 0)) return;
    now_ms += 1000;
    tx = last_txnid();
    if (agent[0] && op(r, 2, "answer", ev(ANSWER, call, agent), tx, 1)) return;
    if (op(r, 3, "agent_get", sb_agent_get(eng, "acme", "alice", res), 0, 0)) return;
    now_ms += 5000;
    tx = last_txnid();
    if (op(r, 4, agent[0] ? "hangup" : "abandon", (agent[0] ? ev(HANGUP, call) : ev(ABANDON, call)),
           tx, 1))
        return;
    tx = last_txnid();
    if (op(r, 5, "agent_put",
           sb_agent_put(eng, "acme", AGENT("carol"), strlen(AGENT("carol")), res), tx, 1))
        return;
    if (op(r, 6, "agent_list", sb_agent_list(eng, "acme", res), 0, 0)) return;
    if (op(r, 7, "queue_get", sb_queue_get(eng, "acme", "support", res), 0, 0)) return;
    if (op(r, 8, "call_get (record)", sb_call_get(eng, "acme", call, res), 0, 0)) return;
    now_ms += 1000;
    tx = last_txnid();
    if (op(r, 9, "tick", sb_tick(eng, res), tx, 0)) return;
    static const char cases[] = "[{\"agents\":[{\"id\":\"a\"}],\"expect\":{\"action\":\"ring\"}}]";
    int rc =
        sb_policy_test("first.lua", first_policy, strlen(first_policy), cases, strlen(cases), res);
    if (rc == SB_EPOLICY) rc = 0; /* its policy may fail for want of memory: a result */
    if (op(r, 10, "policy_test", rc, 0, 0)) return;
    (void)op(r, 11, "stats", sb_stats(eng, res), 0, 0);
}

static json_t *read_json(int rc)
{
    return rc ? NULL : json_loads(sb_result_json(res, NULL), 0, NULL);
}

/* With allocation allowed: agents and the call agree, then finish the call. */
static int settle(const char *call, char *why, size_t cap)
{
    json_t *c = read_json(sb_call_get(eng, "acme", call, res));
    const char *state = c ? json_string_value(json_object_get(c, "state")) : "none";
    const char *ringing = NULL, *connected = NULL;
    if (c && !strcmp(state, "ringing"))
        ringing = json_string_value(
            json_object_get(json_array_get(json_object_get(c, "ringing"), 0), "agent"));
    if (c && !strcmp(state, "connected"))
        connected = json_string_value(json_object_get(c, "agent"));
    int ok_ = 1;
    static const char *const agents[] = {"alice", "bob"};
    for (int i = 0; i < 2 && ok_; i++) {
        json_t *a = read_json(sb_agent_get(eng, "acme", agents[i], res));
        const char *st = a ? json_string_value(json_object_get(a, "status")) : "?";
        const char *on = a ? json_string_value(json_object_get(a, "call")) : NULL;
        const char *want = ringing && !strcmp(ringing, agents[i])       ? "reserved"
                           : connected && !strcmp(connected, agents[i]) ? "on_call"
                                                                        : "available";
        if (!st || strcmp(st, want) ||
            (strcmp(want, "available") ? !on || strcmp(on, call) : on != NULL)) {
            snprintf(why, cap, "call %s %s (ringing %s, connected %s) but %s is %s (call %s)", call,
                     state, ringing ? ringing : "-", connected ? connected : "-", agents[i],
                     st ? st : "?", on ? on : "-");
            ok_ = 0;
        }
        json_decref(a);
    }
    int rc = 0;
    if (ok_ && ringing) rc = ev(ANSWER, call, ringing);
    if (ok_ && !rc && (ringing || connected))
        rc = ev(HANGUP, call);
    else if (ok_ && !rc && !strcmp(state, "waiting"))
        rc = ev(ABANDON, call);
    if (ok_ && rc) {
        snprintf(why, cap, "finishing call %s (%s): %s", call, state, sb_result_message(res));
        ok_ = 0;
    }
    json_decref(c);
    return ok_;
}

/* A whole cycle with allocation allowed must work. */
static int healthy(const char *call, char *why, size_t cap)
{
    char agent[SB_ID_MAX + 1];
    if (ev(OFFER, call)) goto bad;
    ring_of(call, agent, sizeof agent);
    if (!agent[0]) {
        snprintf(why, cap, "healthy cycle: %s did not ring", call);
        return 0;
    }
    if (ev(ANSWER, call, agent) || ev(HANGUP, call)) goto bad;
    return 1;
bad:
    snprintf(why, cap, "healthy cycle %s: %s", call, sb_result_message(res));
    return 0;
}

static void sweep(int persist)
{
    const char *mode = persist ? "persistent" : "one-shot";
    long n, bad = 0, broken = 0, failures = 0;
    char kinds[512] = "", first_broken[400] = "";
    int verbose = getenv("SB_OOM_VERBOSE") != NULL;
    int fail_at[12] = {0};
    for (n = 1; n < 200000; n++) {
        char call[32], why[300] = "";
        snprintf(call, sizeof call, "%c%ld", persist ? 'p' : 'o', n);
        run r;
        arm(n, persist);
        cycle(&r, call);
        long seen = armed_allocs;
        int hit = tripped;
        disarm();
        if (!hit) break; /* the cycle made fewer than n allocations */
        if (r.failed_op >= 0) {
            failures++;
            fail_at[r.failed_op]++;
        }
        if (r.bad) {
            /* Each kind of contract break once: "op: code". */
            char kind[64];
            snprintf(kind, sizeof kind, "%d/%d", r.failed_op, r.rc);
            if (!strstr(kinds, kind) && strlen(kinds) + strlen(kind) + 2 < sizeof kinds) {
                strcat(kinds, kind);
                strcat(kinds, " ");
                diag("%s N=%ld: %s", mode, n, r.why);
            }
            bad++;
        }
        /* Settle even after a broken contract, so one failure does not cascade. */
        if (!settle(call, why, sizeof why)) {
            if (!broken++) snprintf(first_broken, sizeof first_broken, "N=%ld: %s", n, why);
        } else {
            char call2[40];
            snprintf(call2, sizeof call2, "%s-after", call);
            if (!healthy(call2, why, sizeof why) && !broken++)
                snprintf(first_broken, sizeof first_broken, "N=%ld: after: %s", n, why);
        }
        if (verbose && (r.failed_op >= 0 || why[0]))
            diag("%s N=%ld: op %d failed: %s%s%s", mode, n, r.failed_op,
                 r.failed_op >= 0 ? sb_strerror(r.rc) : "-", why[0] ? "; " : "", why);
        (void)seen;
        now_ms += 60000;
    }
    ok(n > 50, "%s sweep: the cycle makes %ld allocations; each failed in turn", mode, n - 1);
    ok(bad == 0,
       "%s: every operation succeeded or failed with SB_ENOMEM/SB_ESTORE, and a "
       "failed one committed nothing (%ld runs with a failed operation)",
       mode, failures);
    ok(broken == 0,
       "%s: afterwards agents and calls agree, the call can be finished and a new "
       "cycle works",
       mode);
    if (broken) diag("%ld broken; first: %s", broken, first_broken);
    diag("%s: operations that failed: offer %d, call_get %d, answer %d, agent_get %d, "
         "hangup %d, agent_put %d, agent_list %d, queue_get %d, record %d, tick %d, "
         "policy_test %d, stats %d",
         mode, fail_at[0], fail_at[1], fail_at[2], fail_at[3], fail_at[4], fail_at[5], fail_at[6],
         fail_at[7], fail_at[8], fail_at[9], fail_at[10], fail_at[11]);
}

/* A retention preview under the countdown: SB_ENOMEM (or success) and
** nothing committed at every allocation that fails; unarmed again, the same
** answer as before. The records are the warm-up cycle's. */
static const char preview_policy[] =
    "local P = {}\n"
    "function P.retain(record, ctx)\n"
    "  if record.outcome == 'answered' then return { anonymize = true, reason = 'a' } end\n"
    "  return { delete = true, reason = 'd' }\n"
    "end\n"
    "return P\n";

static void preview_sweep(int persist)
{
    const char *mode = persist ? "persistent" : "one-shot";
    json_t *o = json_pack("{s:s,s:s,s:i}", "policy", "retention/oom", "source", preview_policy,
                          "in_days", 30);
    char *opts = json_dumps(o, 0);
    json_decref(o);
    if (!opts) return;
    char want[4096] = "";
    if (sb_retention_preview(eng, "acme", opts, strlen(opts), res) == 0) {
        json_t *d = json_loads(sb_result_json(res, NULL), 0, NULL);
        json_object_del(d, "now_ms");
        char *t = json_dumps(d, JSON_SORT_KEYS);
        snprintf(want, sizeof want, "%s", t ? t : "");
        free(t);
        json_decref(d);
    }
    ok(strstr(want, "\"reviewed\"") && !strstr(want, "\"reviewed\": 0"),
       "%s preview: unarmed, it reviews the warm-up's records", mode);
    long n, bad = 0, failed = 0, changed = 0;
    char first[400] = "";
    for (n = 1; n < 200000; n++) {
        size_t before = last_txnid();
        arm(n, persist);
        int rc = sb_retention_preview(eng, "acme", opts, strlen(opts), res);
        int hit = tripped;
        disarm();
        if (!hit) break;
        /* The source may fail to load for want of memory: a result, as
        ** sb_policy_test's. */
        if (rc == SB_EPOLICY) rc = 0;
        failed += rc != 0;
        if (!allowed(rc) || last_txnid() != before) {
            if (!bad++)
                snprintf(first, sizeof first, "N=%ld: %s, txn %zu -> %zu", n,
                         sb_result_message(res), before, last_txnid());
        }
        char got[4096] = "";
        if (sb_retention_preview(eng, "acme", opts, strlen(opts), res) == 0) {
            json_t *d = json_loads(sb_result_json(res, NULL), 0, NULL);
            json_object_del(d, "now_ms");
            char *t = json_dumps(d, JSON_SORT_KEYS);
            snprintf(got, sizeof got, "%s", t ? t : "");
            free(t);
            json_decref(d);
        }
        changed += strcmp(got, want) != 0;
    }
    free(opts);
    ok(n > 50, "%s preview: it makes %ld allocations; each failed in turn", mode, n - 1);
    ok(bad == 0, "%s preview: SB_ENOMEM or success, nothing committed (%ld failed)%s%s", mode,
       failed, bad ? "; " : "", first);
    ok(changed == 0, "%s preview: unarmed again, the same answer every time", mode);
}

/* sb_open under the countdown: fails cleanly or works. */
static void open_sweep(void)
{
    long n, opened = 0, failed = 0, bad = 0;
    char data[300], first[300] = "";
    snprintf(data, sizeof data, "%s/data", dir);
    for (n = 1; n < 100000; n++) {
        sb_config cfg;
        config(&cfg, data);
        sb_engine *e = (sb_engine *)1;
        arm(n, 1);
        int rc = sb_open(&e, &cfg, res);
        int hit = tripped;
        disarm();
        if (rc == 0) {
            opened++;
            sb_close(e);
        } else {
            failed++;
            if (e != NULL || (!allowed(rc) && rc != SB_ECRYPTO)) {
                if (!bad++)
                    snprintf(first, sizeof first, "N=%ld: %s, handle %p", n, sb_strerror(rc),
                             (void *)e);
            }
        }
        if (!hit) break;
    }
    ok(n > 5 && bad == 0,
       "sb_open with the Nth allocation failing (N=1..%ld): %ld failed "
       "cleanly (handle NULL), %ld opened",
       n, failed, opened);
    if (bad) diag("%s", first);
}

/* ------------------------------------------------------------------------ */
/* The Lua allocator: policies that allocate until refused. */

static const char hog_policy[] =
    "local P = {}\n"
    "local keep = {}\n"
    "function P.route(call, agents, ctx)\n"
    "  local t = {}\n"
    "  for i = 1, 1e9 do t[i] = string.rep('x', 64) .. i end\n" /* line 5 */
    "end\n"
    "return P\n";

static const char pcall_hog_policy[] =
    "local P = {}\n"
    "function P.route(call, agents, ctx)\n"
    "  local ok = pcall(function()\n"
    "    local t = {}\n"
    "    for i = 1, 1e9 do t[i] = {i, i, i, i} end\n"
    "  end)\n"
    "  return { ring = agents[1], timeout = 5 }\n" /* if the memory error were swallowed */
    "end\n"
    "return P\n";

static void lua_cap(void)
{
    static const char q[] = "{\"id\":\"hog\",\"policy\":\"hog\",\"members\":[{\"agent\":\"alice\"},"
                            "{\"agent\":\"bob\"}]}";
    static const char q2[] = "{\"id\":\"phog\",\"policy\":\"phog\",\"members\":[{\"agent\":"
                             "\"alice\"},{\"agent\":\"bob\"}]}";
    ok(sb_policy_put(eng, "acme", "hog", hog_policy, strlen(hog_policy), NULL, res) == 0 &&
           sb_policy_put(eng, "acme", "phog", pcall_hog_policy, strlen(pcall_hog_policy), NULL,
                         res) == 0 &&
           sb_queue_put(eng, "acme", q, strlen(q), res) == 0 &&
           sb_queue_put(eng, "acme", q2, strlen(q2), res) == 0,
       "policies that allocate until refused are stored (their top level is harmless)");
    for (int round = 0; round < 3; round++) {
        char call[32], agent[SB_ID_MAX + 1];
        snprintf(call, sizeof call, "hog%d", round);
        now_ms += 1000;
        char fixed[256];
        snprintf(fixed, sizeof fixed,
                 "{\"type\":\"offer\",\"call\":\"%s\",\"queue\":\"%s\",\"caller\":\"+4930100001\"}",
                 call, round == 1 ? "phog" : "hog");
        int rc = sb_submit_json(eng, "acme", fixed, strlen(fixed), res);
        ring_of(call, agent, sizeof agent);
        ok(rc == 0 && agent[0], "%s: the offer still rings someone (the fallback) [%s]", call,
           round == 1 ? "memory error caught by pcall" : "memory error");
        json_t *c = read_json(sb_call_get(eng, "acme", call, res));
        json_t *tr = json_object_get(c, "trace");
        const char *detail = json_string_value(json_object_get(json_array_get(tr, 0), "detail"));
        ok(detail && strstr(detail, "memory limit exceeded") &&
               json_is_true(json_object_get(json_array_get(tr, 0), "fallback")),
           "%s: its trace says the policy hit the memory limit and the fallback decided (%s)", call,
           detail ? detail : "no trace");
        json_decref(c);
        if (agent[0]) {
            ev(ANSWER, call, agent);
            ev(HANGUP, call);
        }
    }
    json_t *p = read_json(sb_policy_list(eng, "acme", res));
    json_int_t fails = 0;
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(p, "policies"), i, v)
    {
        const char *name = json_string_value(json_object_get(v, "name"));
        if (name && (!strcmp(name, "hog") || !strcmp(name, "phog")))
            fails += json_integer_value(json_object_get(v, "failures"));
    }
    json_decref(p);
    is_int(fails, 3, "the three failures are counted against the hogs");
    char why[300] = "";
    ok(healthy("after-hogs", why, sizeof why), "the engine and the other policy still work%s%s",
       why[0] ? ": " : "", why);
}

int main(void)
{
    printf("# out-of-memory tests\n"); /* stdout's buffer exists before arming */
    fflush(stdout);
    const char *root = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(dir, sizeof dir, "%s/sb-oom-XXXXXX", root);
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    res = sb_result_new();
    if (!ok(setup() == 0, "engine provisioned")) {
        rmtree(dir);
        return done_testing();
    }
    char why[300] = "";
    ok(healthy("warmup", why, sizeof why), "a call cycle works unarmed%s%s", why[0] ? ": " : "",
       why);
    preview_sweep(1);
    preview_sweep(0);
    sweep(1);
    sweep(0);
    lua_cap();
    sb_close(eng);
    eng = NULL;
    open_sweep();
    sb_result_free(res);
    rmtree(dir);
    return done_testing();
}
