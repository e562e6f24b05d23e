/*
** test_policy.c — the policy runtime through policy.h and the public tool
** functions: views (call, agents, ctx), ctx.random determinism, the store,
** decisions and their validation messages, the default device, the case
** runner, the lint, failure counting, quarantine and rebuilds.
*/
#include "crypto.h"
#include "policy.h"
#include "tap.h"

#include <stdlib.h>
#include <string.h>

static const int64_t NOW = 1767261600000LL; /* Thu 2026-01-01 10:00 UTC */

/* --- sources ------------------------------------------------------------ */

static struct {
    uint32_t acct;
    char name[64];
    char *src;
} srcs[256];
static int nsrc, src_calls;

static void set_src(uint32_t acct, const char *name, const char *src)
{
    for (int i = 0; i < nsrc; i++)
        if (srcs[i].acct == acct && strcmp(srcs[i].name, name) == 0) {
            free(srcs[i].src);
            srcs[i].src = strdup(src);
            return;
        }
    srcs[nsrc].acct = acct;
    snprintf(srcs[nsrc].name, sizeof srcs[nsrc].name, "%s", name);
    srcs[nsrc++].src = strdup(src);
}

static int src_fail; /* when set, get_src fails with it */
static int get_src(void *arg, uint32_t acct, const char *name, sb_buf *out, char version[17],
                   int64_t *stamp)
{
    (void)arg;
    *stamp = 0;
    src_calls++;
    if (src_fail) return src_fail;
    for (int i = 0; i < nsrc; i++)
        if (srcs[i].acct == acct && strcmp(srcs[i].name, name) == 0) {
            cr_version(srcs[i].src, strlen(srcs[i].src), version);
            return buf_puts(out, srcs[i].src) ? SB_ENOMEM : 0;
        }
    return SB_ENOTFOUND;
}

static char logs[64][600];
static int nlogs;
static void logline(void *arg, sb_log_level lvl, const log_text *line)
{
    (void)arg;
    (void)lvl;
    snprintf(logs[nlogs % 64], sizeof logs[0], "%s", line->s);
    nlogs++;
}

static int logged(const char *needle)
{
    for (int i = 0; i < 64 && i < nlogs; i++)
        if (strstr(logs[i], needle)) return 1;
    return 0;
}

/* --- a fake store ------------------------------------------------------- */

static struct kvent {
    char key[80];
    size_t klen;
    char type;
    char val[1100];
    size_t vlen;
} store[32];
static int nstore, kv_fail;

static struct kvent *kv_find(const char *key, size_t klen)
{
    for (int i = 0; i < nstore; i++)
        if (store[i].klen == klen && memcmp(store[i].key, key, klen) == 0) return &store[i];
    return NULL;
}

static int kv_get(void *arg, const char *key, size_t klen, char *type, sb_buf *val)
{
    (void)arg;
    if (kv_fail) return SB_ESTORE;
    struct kvent *e = kv_find(key, klen);
    if (!e) return 0;
    *type = e->type;
    buf_clear(val);
    buf_put(val, e->val, e->vlen);
    return 1;
}

static int kv_set(void *arg, const char *key, size_t klen, char type, const void *val, size_t vlen)
{
    (void)arg;
    struct kvent *e = kv_find(key, klen);
    if (!type) {
        if (e) *e = store[--nstore];
        return 0;
    }
    if (!e) {
        e = &store[nstore++];
        memcpy(e->key, key, klen);
        e->klen = klen;
    }
    e->type = type;
    memcpy(e->val, val, vlen);
    e->vlen = vlen;
    return 0;
}

static const pol_kv KV = {kv_get, kv_set, NULL, NULL, NULL};

/* --- candidates ------------------------------------------------------------ */

#define NC 3
static pol_cand cands[NC];
static const char *ALICE =
    "{\"id\":\"alice\",\"name\":\"Alice\","
    "\"devices\":{\"softphone\":\"sip:alice@pbx.example\","
    "\"mobile\":\"tel:+447700900001\"},"
    "\"skills\":{\"en\":5,\"de\":2},\"preferences\":{\"device\":\"mobile\"},"
    "\"timezone\":\"Europe/London\","
    "\"schedule\":[{\"days\":[\"weekdays\"],\"from\":\"09:00\",\"to\":\"17:00\","
    "\"devices\":[\"mobile\"]}]}";
static const char *BOB = "{\"id\":\"bob\",\"devices\":{\"softphone\":\"sip:bob@pbx.example\"}}";
static const char *CAROL = "{\"id\":\"carol\",\"devices\":{\"softphone\":\"sip:carol@x\","
                           "\"landline\":\"tel:+442079460000\"}}";
static int loads;
static const char *alice_cfg; /* replaces ALICE when set */

static int lazy_load(void *arg, pol_cand *c)
{
    loads++;
    c->config = arg;
    c->config_len = strlen(arg);
    return 0;
}

static void reset_cands(void)
{
    static const char *ids[NC] = {"alice", "bob", "carol"};
    for (int i = 0; i < NC; i++) {
        memset(&cands[i], 0, sizeof cands[i]);
        cands[i].id = ids[i];
        cands[i].num = (uint32_t)i + 1;
        cands[i].tier = 1;
        cands[i].position = i + 1;
        cands[i].weight = cands[i].member_weight = 1;
        cands[i].idle_since = NOW - (int64_t)(i + 1) * 10000;
    }
    pol_cand *a = &cands[0];
    a->idle_since = NOW - 30000;
    a->last_call = 1767261000000LL;
    a->missed_at = 1767261592500LL; /* 7.5 s before now */
    a->talk_ms = 123500;
    a->calls_taken = 7;
    a->no_answers = 2;
    a->weight = 2.5;
    a->member_weight = 0.5;
    a->tier = 2;
    a->position = 3;
    a->penalty = 1;
    a->devices = POL_DEV_SOFTPHONE | POL_DEV_MOBILE;
    a->config = alice_cfg ? alice_cfg : ALICE;
    a->config_len = strlen(a->config);
    cands[1].devices = POL_DEV_SOFTPHONE;
    cands[1].load = lazy_load; /* config fetched only when needed */
    cands[1].load_arg = (void *)BOB;
    cands[2].devices = POL_DEV_SOFTPHONE | POL_DEV_LANDLINE;
    cands[2].config = CAROL;
    cands[2].config_len = strlen(CAROL);
}

static pol_call CALL = {.id = "c1",
                        .queue = "support",
                        .caller = "+15550100",
                        .priority = 60,
                        .waited = 12.5,
                        .queue_waited = 4.25,
                        .attempts = 2,
                        .last_agent = "bob",
                        .previous_agent = "carol",
                        .attrs = "{\"language\":\"de\",\"vip\":true,\"skills\":{\"billing\":2}}",
                        .attrs_len = 54};
static const char *tried_ids[] = {"bob", "carol"};
static const int tried_n[] = {2, 1};
static pol_queue Q = {.id = "support",
                      .waiting = 4,
                      .members = 9,
                      .available = 3,
                      .position = 2,
                      .longest_wait = 61.5,
                      .ring_timeout = 25};

static pol_host *H;
static pol_decision D;

static pol_decision *route_as(uint32_t acct, const char *policy, const char *src, uint64_t seed)
{
    if (src) set_src(acct, policy, src);
    reset_cands();
    CALL.tried_ids = tried_ids;
    CALL.tried_n = tried_n;
    CALL.ntried = 2;
    CALL.attrs_len = strlen(CALL.attrs);
    memset(&D, 0x5a, sizeof D);
    int rc = pol_route(H, acct, "acme", policy, &CALL, cands, NC, &Q, &KV, NOW, seed, &D);
    if (rc) diag("pol_route returned %d", rc);
    for (int i = 0; i < NC; i++)
        if (cands[i].doc) ok(0, "runtime left cands[%d].doc", i);
    return &D;
}

static pol_decision *route(const char *policy, const char *src)
{
    return route_as(1, policy, src, 1);
}

#define HOOK(body) "local P = {}\nfunction P.route(call, agents, ctx)\n" body "\nend\nreturn P\n"

/* --- views ------------------------------------------------------------ */

static void test_views(void)
{
    const char *src = HOOK(
        "local function check(c, what) if not c then error('check failed: ' .. what, 2) end end\n"
        "local a, b, c = agents[1], agents[2], agents[3]\n"
        "check(#agents == 3, '#agents')\n"
        "check(a.id == 'alice' and a.name == 'Alice' and a.status == 'available', 'strings')\n"
        "check(a.idle_for == 30 and a.idle_since == 1767261570, 'idle')\n"
        "check(a.calls_taken == 7 and math.type(a.calls_taken) == 'integer', 'calls_taken')\n"
        "check(a.talk_time == 123.5 and a.no_answers == 2 and a.last_call == 1767261000, 'stats')\n"
        "check(a.weight == 2.5 and a.member_weight == 0.5, 'weights')\n"
        "check(a.tier == 2 and a.position == 3 and a.penalty == 1, 'membership')\n"
        "local sk = a.skills check(sk.en == 5 and sk.de == 2, 'skills') sk.en = 0\n"
        "check(a.skills.en == 5, 'skills is a new table each read')\n"
        "check(a.devices.mobile == 'tel:+447700900001' and a.devices.landline == nil, 'devices')\n"
        "check(a.preferences.device == 'mobile' and a.timezone == 'Europe/London', 'prefs')\n"
        "check(a.on_schedule == true, 'on_schedule')\n"
        "check(#a.devices_now == 1 and a.devices_now[1] == 'mobile', 'devices_now')\n"
        "check(b.name == 'bob' and b.timezone == 'UTC' and next(b.skills) == nil, 'defaults')\n"
        "check(b.last_call == nil and b.on_schedule and b.devices_now[1] == 'softphone', 'b')\n"
        "check(a.missed_for == 7.5 and b.missed_for == nil, 'missed_for')\n"
        "check(#c.devices_now == 2 and c.devices_now[1] == 'softphone', 'c devices_now')\n"
        "check(call.id == 'c1' and call.queue == 'support' and call.caller == '+15550100', "
        "'call')\n"
        "check(call.called == nil and call.priority == 60 and call.attempts == 2, 'call 2')\n"
        "check(call.waited == 12.5 and call.queue_waited == 4.25, 'waits')\n"
        "check(call.tried.bob == 2 and call.tried.carol == 1, 'tried')\n"
        "check(call.last_agent == 'bob' and call.previous_agent == 'carol', 'history')\n"
        "check(call.attrs.language == 'de' and call.attrs.vip == true, 'attrs')\n"
        "local at = call.attrs at.language = 'fr' check(call.attrs.language == 'de', 'attrs "
        "copy')\n"
        "check(call.skills.billing == 2, 'call.skills')\n"
        "check(ctx.now == 1767261600 and os.time() == 1767261600, 'now')\n"
        "check(os.time({year = 2026, month = 1, day = 1, hour = 10}) == 1767261600, 'os.time(t)')\n"
        "check(os.time({year = 2026.0, month = 1, day = 1.0, hour = '10'}) == 1767261600,\n"
        "  'os.time(t): whole floats and numeric strings, as stock Lua')\n"
        "local okd, e = pcall(os.time, {year = 2026, month = 1, day = 1.5})\n"
        "check(not okd and e == \"field 'day' is not an integer\", 'os.time(t) 1.5: ' .. e)\n"
        "okd, e = pcall(os.time, {year = 2026, month = 1, day = 1, min = 'x'})\n"
        "check(not okd and e == \"field 'min' is not an integer\", 'os.time(t) x: ' .. e)\n"
        "local q = ctx.queue\n"
        "check(q.id == 'support' and q.waiting == 4 and q.members == 9, 'queue')\n"
        "check(q.available == 3 and q.position == 2 and q.longest_wait == 61.5, 'queue 2')\n"
        "check(tostring(a) == 'agent: alice' and tostring(call) == 'call: c1', 'tostring')\n"
        "check(a == agents[1] and a ~= b, 'identity')\n"
        "check(not pcall(function() return a.nope end), 'unknown field errors')\n"
        "check(not pcall(function() a.id = 'x' end), 'read-only')\n"
        "check(getmetatable(a) == false, 'metatable hidden')\n"
        "local okp, ep = pcall(pairs, ctx)\n"
        "check(not okp and ep:find('ctx view cannot be iterated; read its fields by name', 1,\n"
        "  true), 'pairs(ctx): ' .. tostring(ep))\n"
        "okp, ep = pcall(pairs, ctx.queue)\n"
        "check(not okp and ep:find('(ctx.queue.waiting, ', 1, true), 'pairs(ctx.queue): ' .. ep)\n"
        "okp, ep = pcall(function() return #a end)\n"
        "check(not okp and ep:find('agent view has no length (#): #agents counts the agents; read "
        "its fields by name (agent.id, ', 1, true), '#agent: ' .. tostring(ep))\n"
        "check(#agents == 3, '#agents, a list, is its length')\n"
        "table.sort(agents, function(x, y) return x.id > y.id end)\n"
        "return { ring = agents[1] }");
    pol_decision *d = route("views", src);
    ok(!d->failed, "every view field reads as documented (%s)", d->error);
    ok(d->kind == DEC_RING && d->nring == 1 && d->ring[0].cand == 2,
       "the agents list may be reordered; a view rings its agent");
    ok(d->ring[0].dev == POL_DEV_SOFTPHONE, "default device: the first of softphone, landline...");
    ok(loads == 1, "bob's document was loaded lazily, once (%d)", loads);

    loads = 0;
    d = route("lean",
              HOOK("local best, most for i = 1, #agents do local a = agents[i]\n"
                   "if not most or a.idle_for > most then best, most = a, a.idle_for end end\n"
                   "return { ring = best.id }"));
    ok(!d->failed && d->ring[0].cand == 0 && d->ring[0].dev == POL_DEV_MOBILE,
       "longest idle rings alice on her preferred device (%s)", d->error);
    ok(loads == 0, "documents are not loaded when no field needs them");

    const char *named = HOOK("return { wait = #agents[1].name }");
    d = route("named", named);
    ok(!d->failed && d->wait == 5, "name read (%s)", d->error);
    alice_cfg = "{\"name\":\"Alicia Keys\",\"devices\":{\"softphone\":\"sip:a@x\"}}";
    d = route("named", NULL);
    alice_cfg = NULL;
    ok(!d->failed && d->wait == 11, "a changed document is read again, not served from the cache");
    d = route("named", NULL);
    ok(!d->failed && d->wait == 5, "and back");

    d = route("agents-dirty", HOOK("agents[#agents + 1] = 'x' agents.extra = 1 return {}"));
    d = route("agents-dirty2",
              HOOK("assert(#agents == 3 and agents.extra == nil and agents[4] == nil)\n"
                   "return {}"));
    ok(!d->failed, "a polluted agents list is replaced on the next call (%s)", d->error);
    d = route("agents-shrunk", HOOK("table.remove(agents, 1) table.remove(agents) return {}"));
    d = route("agents-shrunk2", HOOK("assert(#agents == 3 and agents[1].id == 'alice') return {}"));
    ok(!d->failed, "a shortened agents list is refilled (%s)", d->error);
}

/* --- ctx.random ------------------------------------------------------------ */

static void test_random(void)
{
    const char *src = HOOK("return { wait = ctx.random(0, 3600) }");
    int w1 = route_as(1, "rnd", src, 42)->wait;
    int w2 = route_as(1, "rnd", src, 42)->wait;
    ok(!D.failed && w1 == w2, "same seed, call and attempt: same number (%d, %d)", w1, w2);
    pol_host *h2 = H;
    H = pol_host_new(&(pol_limits){0}, get_src, NULL, logline, NULL);
    set_src(7, "rnd", src);
    int w3 = route_as(7, "rnd", NULL, 42)->wait;
    pol_host_free(H);
    H = h2;
    ok(w3 == w1, "also in a fresh state of another host (%d)", w3);
    int distinct = 0, prev = -1;
    for (int att = 0; att < 6; att++) {
        CALL.attempts = att;
        int w = route_as(1, "rnd", NULL, 42)->wait;
        distinct += w != prev;
        prev = w;
    }
    CALL.attempts = 2;
    ok(distinct >= 4, "the attempt changes the stream (%d distinct of 6)", distinct);
    int w4 = route_as(1, "rnd", NULL, 43)->wait;
    ok(w4 != w1, "the seed changes the stream");
    pol_decision *d =
        route("rnd2",
              HOOK("local x = ctx.random() assert(x >= 0 and x < 1)\n"
                   "for i = 1, 200 do local v = ctx.random(3) assert(v >= 1 and v <= 3 and "
                   "math.type(v) == 'integer') end\n"
                   "for i = 1, 200 do local v = math.random(-2, 2) assert(v >= -2 and v <= 2) end\n"
                   "assert(math.type(ctx.random(0)) == 'integer')\n"
                   "assert(not pcall(ctx.random, 5, 1))\n"
                   "math.randomseed(123)\n"
                   "return {}"));
    ok(!d->failed, "random(), random(n), random(m, n), math.random share the stream (%s)",
       d->error);
}

/* --- the store --------------------------------------------------------------- */

static void test_kv(void)
{
    nstore = 0;
    const char *src = HOOK("local n = ctx.get('n') or 0\n"
                           "ctx.set('n', n + 1) ctx.set('s', 'str') ctx.set('b', true)\n"
                           "ctx.set('f', 1.5) ctx.set('gone', 1) ctx.set('gone', nil)\n"
                           "assert(ctx.get('s') == 'str', 'reads its own writes')\n"
                           "return { wait = n + 1 }");
    pol_decision *d = route("kv", src);
    ok(!d->failed && d->wait == 1 && nstore == 4, "writes reach the store (%s, %d keys)", d->error,
       nstore);
    d = route("kv", NULL);
    ok(!d->failed && d->wait == 2, "and are read back typed");
    struct kvent *e = kv_find("n", 1);
    int64_t n = 0;
    if (e) memcpy(&n, e->val, 8);
    ok(e && e->type == 'i' && n == 2, "integers stay integers");
    e = kv_find("f", 1);
    ok(e && e->type == 'n' && e->vlen == 8, "floats are numbers");
    e = kv_find("b", 1);
    ok(e && e->type == 'b' && e->vlen == 1 && e->val[0] == 1, "booleans");
    d = route(
        "kv-check",
        HOOK("assert(ctx.get('s') == 'str' and ctx.get('b') == true and ctx.get('f') == 1.5)\n"
             "assert(ctx.get('gone') == nil) return {}"));
    ok(!d->failed, "typed values come back (%s)", d->error);

    d = route("kv-fail", HOOK("ctx.set('n', 100) error('late')"));
    e = kv_find("n", 1);
    memcpy(&n, e->val, 8);
    ok(d->failed && n == 2, "a failing call writes nothing");
    d = route("kv-invalid", HOOK("ctx.set('n', 100) return { ring = 'zed' }"));
    memcpy(&n, kv_find("n", 1)->val, 8);
    ok(d->failed && n == 2, "an invalid decision writes nothing");

    static const struct {
        const char *code, *msg;
    } bad[] = {
        {"ctx.get(('k'):rep(65))", "ctx.get: key must be 1..64 bytes (got 65)"},
        {"ctx.get('')", "ctx.get: key must be 1..64 bytes (got 0)"},
        {"ctx.get(5)", "ctx.get: key must be a string (got number)"},
        {"ctx.set('k', ('v'):rep(1025))", "ctx.set: value longer than 1024 bytes"},
        {"ctx.set('k', {})", "ctx.set: value must be a string, number, boolean or nil (got table)"},
        {"for i = 1, 65 do ctx.set('k' .. i, i) end", "ctx.set: more than 64 keys set in one call"},
        /* A view where a key or value goes, and ctx's functions called as
        ** methods: said as such, not as a "userdata" the policy never made. */
        {"ctx.set('k', agents[1])",
         "ctx.set: value must be a string, number, boolean or nil (got an agent view: store one "
         "of its fields, such as agents[i].id)"},
        {"ctx.get(agents[1])",
         "ctx.get: key must be a string (got an agent view: use one of its fields, such as "
         "agents[i].id)"},
        {"ctx.set('k', call)", "(got a call view: store one of its fields"},
        {"ctx:get('k')", "ctx:get(...) passes ctx itself first; call ctx.get(...), with a dot"},
        {"ctx:set('k', 1)", "ctx:set(...) passes ctx itself first; call ctx.set(...), with a dot"},
        {"ctx:random(1, 10)",
         "ctx:random(...) passes ctx itself first; call ctx.random(...), with a dot"},
    };
    for (size_t i = 0; i < countof(bad); i++) {
        char s[300];
        snprintf(s, sizeof s, HOOK("%s return {}"), bad[i].code);
        char name[16];
        snprintf(name, sizeof name, "kvbad%zu", i);
        d = route(name, s);
        ok(d->failed && strstr(d->error, bad[i].msg), "%s -> %s", bad[i].code, d->error);
    }
    kv_fail = 1;
    d = route("kv", NULL);
    kv_fail = 0;
    ok(d->failed && strstr(d->error, "ctx.get: store error (SB_ESTORE)"),
       "store errors surface: %s", d->error);
    d = route("kv-none", HOOK("ctx.set('x', 1) return {}"));
    ok(!d->failed, "ctx.set works without a core store too");
}

/* --- decisions ------------------------------------------------------------ */

static void test_decisions(void)
{
    pol_decision *d = route("dec1", HOOK("return { ring = 'alice' }"));
    ok(!d->failed && d->kind == DEC_RING && d->nring == 1 && d->ring[0].cand == 0 &&
           d->ring[0].dev == POL_DEV_MOBILE && d->timeout == 25 && !d->sequence,
       "ring one: preferred device allowed by the schedule, the queue's timeout");
    char ver[17];
    cr_version(srcs[nsrc - 1].src, strlen(srcs[nsrc - 1].src), ver);
    ok(strcmp(d->version, ver) == 0 && strcmp(d->policy, "dec1") == 0,
       "the decision records policy and version (%s)", d->version);

    d = route("dec2",
              HOOK("return { ring = { 'alice', agents[2] }, mode = 'sequence', timeout = 30,\n"
                   "device = 'softphone' }"));
    ok(!d->failed && d->nring == 2 && d->sequence && d->timeout == 30 &&
           d->ring[0].dev == POL_DEV_SOFTPHONE && d->ring[1].cand == 1,
       "ring several in sequence on one device (%s)", d->error);
    d = route("dec3", HOOK("return { ring = { { agent = 'carol', device = 'landline' }, 'bob' },\n"
                           "mode = 'all' }"));
    ok(!d->failed && d->nring == 2 && d->ring[0].cand == 2 && d->ring[0].dev == POL_DEV_LANDLINE &&
           d->ring[1].dev == POL_DEV_SOFTPHONE,
       "per-agent devices (%s)", d->error);
    d = route("dec4", HOOK("return { ring = { agent = agents[1], device = 'softphone' } }"));
    ok(!d->failed && d->nring == 1 && d->ring[0].dev == POL_DEV_SOFTPHONE, "a single target (%s)",
       d->error);
    d = route("dec5", HOOK("return { wait = 10 }"));
    ok(!d->failed && d->kind == DEC_WAIT && d->wait == 10, "wait");
    d = route("dec6", HOOK("return {}"));
    ok(!d->failed && d->kind == DEC_WAIT && d->wait == 0, "{} waits for an agent");
    d = route("dec7", HOOK("return { move = 'backup', reason = 'too busy' }"));
    ok(!d->failed && d->kind == DEC_MOVE && !strcmp(d->queue, "backup") &&
           !strcmp(d->reason, "too busy"),
       "move");
    d = route("dec8", HOOK("return { reject = 'closed' }"));
    ok(!d->failed && d->kind == DEC_REJECT && !strcmp(d->reason, "closed"), "reject");
    d = route("dec9", HOOK("return { wait = 5, pause = { agent = 'dave', reason = '3 missed' } }"));
    ok(!d->failed && d->npause == 1 && !strcmp(d->pause[0].agent, "dave") &&
           !strcmp(d->pause[0].reason, "3 missed") && d->kind == DEC_WAIT,
       "pause with a decision (%s)", d->error);
    d = route("dec10",
              HOOK("return { ring = 'bob', pause = { { agent = agents[1] }, { agent = 'x' } } }"));
    ok(!d->failed && d->npause == 2 && !strcmp(d->pause[0].agent, "alice") &&
           !d->pause[0].reason[0],
       "a list of pauses, by view or id (%s)", d->error);
    d = route("dec11", HOOK("return { wait = 2.0 }"));
    ok(!d->failed && d->wait == 2, "integral floats count as integers");
    d = route("dec12", HOOK("return { ring = agents }"));
    ok(!d->failed && d->kind == DEC_RING && d->nring == 3,
       "the agents list itself rings them all, its metatable the engine's (%s)", d->error);

    static const struct {
        const char *ret, *msg;
    } bad[] = {
        {"{ ring = {} }", "ring: empty list"},
        {"{ ring = { 'alice', 'alice' } }", "ring[2]: agent 'alice' listed twice"},
        {"{ ring = { 'alice', agents[1] } }", "ring[2]: agent 'alice' listed twice"},
        {"{ ring = 'alice', mode = 'parallel' }",
         "mode: expected 'all', 'sequence' or 'progressive', got 'parallel'"},
        {"{ ring = 'alice', device = 'fax' }",
         "device: expected landline, mobile or softphone, got 'fax'"},
        {"{ ring = { { agent = 'bob', device = 'mobile' } } }",
         "ring[1].agent: agent 'bob' has no mobile"},
        {"{ ring = { { agent = 'bob', device = 7 } } }",
         "ring[1].device: expected landline, mobile or softphone, got 7"},
        {"{ ring = { { agent = agents[1], device = 'mobil' } } }",
         "ring[1].device: expected landline, mobile or softphone, got 'mobil'"},
        {"{ ring = { agent = 'alice', dev = 'x' } }",
         "ring: unknown field 'dev' (did you mean 'device'?)"},
        /* A field close to a known one (2 edits or fewer, or a prefix) is named. */
        {"{ ring = 'alice', timout = 20 }", "unknown field 'timout' (did you mean 'timeout'?)"},
        {"{ ring = 'alice', mdoe = 'sequence' }", "unknown field 'mdoe' (did you mean 'mode'?)"},
        {"{ rign = 'alice' }", "unknown field 'rign' (did you mean 'ring'?)"},
        {"{ ring = 'alice', Timeouts = 20 }", "unknown field 'Timeouts' (did you mean 'timeout'?)"},
        {"{ ring = { { agnet = 'alice' } } }",
         "ring[1]: unknown field 'agnet' (did you mean 'agent'?)"},
        {"{ pause = { agent = 'a', reasn = 'x' } }",
         "pause: unknown field 'reasn' (did you mean 'reason'?)"},
        {"{ ring = { { device = 'mobile' } } }", "ring[1]: missing 'agent'"},
        /* A table that is neither one agent nor a list: what was given and
        ** what is expected (it said "ring: empty list"). */
        {"{ ring = { id = 'alice' } }",
         "ring: expected an agent (an id, a view or { agent = ... }) or a list of them, got a "
         "table with no list entries, key 'id'"},
        {"{ ring = { agnet = 'alice' } }",
         "ring: expected an agent (an id, a view or { agent = ... }) or a list of them, got a "
         "table with no list entries, key 'agnet' (did you mean 'agent'?)"},
        {"{ ring = { [0] = 'alice', x = 1, y = 2 } }",
         "ring: expected an agent (an id, a view or { agent = ... }) or a list of them, got a "
         "table with no list entries, keys 'x' and 2 more"},
        {"{ ring = { device = 'mobile' } }", "ring: missing 'agent'"},
        {"{ pause = { reason = 'x' } }", "pause: missing 'agent'"},
        {"{ pause = { who = 'a' } }",
         "pause: expected {agent = ..., reason = ...} or a list of them, got a table with no "
         "list entries, key 'who'"},
        {"{ pause = {} }", "pause: empty list"},
        {"{ ring = { 'alice', [5] = 'bob' } }", "ring: expected a list, found key 5"},
        {"{ timeout = 5 }", "'timeout' goes only with 'ring'"},
        {"{ wait = 1, device = 'mobile' }", "'device' goes only with 'ring'"},
        {"{ reason = 'x' }", "'reason' goes only with 'move'"},
        {"{ move = 'bad queue' }", "move: 'bad queue' is not a valid queue id"},
        {"{ move = 'q', reject = 'x' }", "'move' and 'reject' cannot go together"},
        {"{ reject = 5 }", "reject: expected a string, got 5"},
        {"{ reject = ('x'):rep(129) }", "reject: longer than 128 bytes"},
        {"{ move = 'q', reason = ('x'):rep(129) }", "reason: longer than 128 bytes"},
        {"{ wait = 3601 }", "wait: expected an integer 0..3600, got 3601"},
        {"{ wait = 1.5 }", "wait: expected an integer 0..3600, got 1.5"},
        {"{ wait = 0/0 }", "wait: expected an integer 0..3600, got"},
        {"{ ring = 'alice', timeout = 0 }", "timeout: expected an integer 1..600, got 0"},
        {"{ pause = 'bob' }",
         "pause: expected {agent = ..., reason = ...} or a list of them, got 'bob'"},
        {"{ pause = { agent = 'bad id!' } }", "pause.agent: 'bad id!' is not a valid agent id"},
        {"{ pause = { { agent = 'a' }, { agent = 'a' } } }", "pause[2]: agent 'a' listed twice"},
        {"{ ring = 'alice', pause = { agent = 'alice' } }",
         "pause: agent 'alice' is rung by this decision too (ring or pause an agent, not both)"},
        {"{ ring = { 'bob', agents[1] }, mode = 'sequence', pause = { { agent = 'x' }, "
         "{ agent = agents[1] } } }",
         "pause: agent 'alice' is rung by this decision too"},
        {"{ pause = { {agent='a'},{agent='b'},{agent='c'},{agent='d'},{agent='e'},{agent='f'},"
         "{agent='g'},{agent='h'},{agent='i'} } }",
         "pause: 9 entries, at most 8"},
        {"{ pause = { agent = 'a', why = 'x' } }", "pause: unknown field 'why'"},
        {"{ ring = 'alice', extra = 1, another = 2 }", "unknown field 'another'"},
        {"{ 'alice' }", "unexpected list entry [1]"},
        {"{ [true] = 1 }", "unexpected key of type boolean"},
        {"'alice'", "expected a table, got 'alice'"},
        /* A second decision would be dropped with nothing said (the pause
        ** an author meant to go with the ring, say). */
        {"{ ring = 'alice' }, { pause = { agent = 'bob' } }",
         "expected one decision table, got 2 values (one table holds a whole decision: "
         "{ ring = ..., pause = ... })"},
        {"{ wait = 5 }, nil, 'why'", "expected one decision table, got 3 values"},
        {"{ ring = 'ZED\\n\\1' }", "ring: agent 'ZED\?\?' is not eligible"},
        /* Fields behind a metatable would be read raw, and so lost: the
        ** first became {}, a wait, with nothing said. */
        {"setmetatable({}, {__index = function() return 'alice' end})",
         "a table with a metatable is not a decision; return a plain table"},
        {"setmetatable({ wait = 5 }, {})",
         "a table with a metatable is not a decision; return a plain table"},
        {"{ ring = setmetatable({ 'alice' }, {__index = {}}) }",
         "ring: a table with a metatable is not a decision; give a plain table"},
        {"{ ring = { 'bob', setmetatable({ agent = 'alice' }, {}) } }",
         "ring[2]: a table with a metatable is not a decision; give a plain table"},
        {"{ pause = setmetatable({ agent = 'a' }, {}) }",
         "pause: a table with a metatable is not a decision; give a plain table"},
        {"{ pause = { setmetatable({ agent = 'a' }, {}) } }",
         "pause[1]: a table with a metatable is not a decision; give a plain table"},
    };
    for (size_t i = 0; i < countof(bad); i++) {
        char s[600], name[16];
        snprintf(s, sizeof s, HOOK("return %s"), bad[i].ret);
        snprintf(name, sizeof name, "bad%zu", i);
        d = route(name, s);
        char want[300];
        snprintf(want, sizeof want, "%s.lua:3: route returned invalid decision: %s", name,
                 bad[i].msg);
        ok(d->failed && strncmp(d->error, want, strlen(want)) == 0 && d->kind == 0, "%s -> %s",
           bad[i].ret, d->error);
        if (strncmp(d->error, want, strlen(want))) diag("  want %s", want);
    }
    /* ... and one close to none is not. */
    static const char *const far[] = {"{ ring = 'alice', colour = 1 }",
                                      "{ ring = 'alice', to = 20 }"};
    for (size_t i = 0; i < countof(far); i++) {
        char s[200], name[16], want[200];
        snprintf(s, sizeof s, HOOK("return %s"), far[i]);
        snprintf(name, sizeof name, "far%zu", i);
        d = route(name, s);
        snprintf(want, sizeof want, "%s.lua:3: route returned invalid decision: unknown field '%s'",
                 name, i == 0 ? "colour" : "to");
        ok(d->failed && strcmp(d->error, want) == 0, "no hint for a field close to none: %s",
           d->error);
    }

    /* Where an invalid result came from: a return the hook can fall past
    ** (its end returns nothing), returns sharing a line, a return in a
    ** function the hook defines on its own line. */
    static const struct {
        const char *fn, *want;
    } where[] = {
        {"function P.route(call, agents, ctx)\n"
         "  for _, a in ipairs(agents) do\n"
         "    if a.idle_for > 1e9 then return { ring = a.id } end\n"
         "  end\n"
         "end",
         "wh0.lua:3: route returned invalid decision: expected a table, got nil (it returns at "
         "lines 5, 7)"},
        {"function P.route(call, agents, ctx)\n"
         "  if call.attrs.x then return { wait = -1 } else return { wait = -2 } end\n"
         "end",
         "wh1.lua:4: route returned invalid decision: wait: expected an integer 0..3600, got -2"},
        {"function P.route(call, agents, ctx) table.sort(agents, function(a, b) return a.idle_for "
         "> b.idle_for end) if call.attrs.x then return { wait = 1 } end return { wait = -1 } "
         "end",
         "wh2.lua:3: route returned invalid decision: wait: expected an integer 0..3600, got -1"},
        {"function P.route(call, agents, ctx)\n"
         "  if call.attrs.a then\n    if call.attrs.b then return { wait = 1 } end\n  else\n"
         "    return { wait = -2 }\n  end\n"
         "end",
         "wh3.lua:3: route returned invalid decision: wait: expected an integer 0..3600, got -2 "
         "(it returns at lines 5, 7, 9)"},
    };
    for (size_t i = 0; i < countof(where); i++) {
        char s[600], name[16];
        snprintf(s, sizeof s, "local P = {}\n--\n%s\nreturn P\n", where[i].fn);
        snprintf(name, sizeof name, "wh%zu", i);
        d = route(name, s);
        ok(d->failed && strcmp(d->error, where[i].want) == 0, "%s", d->error);
        if (strcmp(d->error, where[i].want)) diag("  want %s", where[i].want);
    }

    /* Default devices. */
    reset_cands();
    ok(pol_default_device(&cands[0], NOW) == POL_DEV_MOBILE, "default: preference allowed now");
    ok(pol_default_device(&cands[0], NOW + 10 * 3600000LL) == POL_DEV_SOFTPHONE,
       "default: off schedule, the first device the agent has");
    ok(pol_default_device(&cands[2], NOW) == POL_DEV_SOFTPHONE, "default: softphone first");
    cands[2].devices = POL_DEV_LANDLINE | POL_DEV_MOBILE;
    ok(pol_default_device(&cands[2], NOW) == POL_DEV_LANDLINE, "then landline");
    cands[2].devices = 0;
    ok(pol_default_device(&cands[2], NOW) == 0, "no device: 0");
    ok(pol_default_device(&cands[1], NOW) == POL_DEV_SOFTPHONE && !cands[1].doc,
       "the core's calls leave no document behind");
    ok(pol_dev_parse("mobile") == POL_DEV_MOBILE && pol_dev_parse("fax") == 0 &&
           !strcmp(pol_dev_name(POL_DEV_LANDLINE), "landline"),
       "device names");
}

/* --- host: failures, quarantine, rebuilds ---------------------------------------- */

static void test_host(void)
{
    nlogs = 0;
    set_src(1, "flaky", HOOK("error('nope')"));
    for (int i = 0; i < 4; i++)
        route("flaky", NULL);
    pol_decision *d = route("flaky", NULL);
    ok(d->failed && strstr(d->error, "flaky.lua:3: nope"), "failures carry file:line (%s)",
       d->error);
    ok(logged("policy failure: account=acme policy=flaky version=") && logged(" call=c1: ") &&
           logged("flaky.lua:3: nope"),
       "failures are logged with account, policy, version, the call and file:line");
    ok(logged("policy quarantined: account=acme policy=flaky") &&
           logged("; calls get the queue's fallback until a fixed version is uploaded or the "
                  "policies are reloaded"),
       "the quarantine is logged, with what routes instead");
    int before = src_calls;
    d = route("flaky", NULL);
    ok(d->failed &&
           !strcmp(d->error, "policy quarantined after 5 consecutive failures (it runs again once "
                             "a fixed version is uploaded or policies are reloaded: SIGHUP, "
                             "sb_reload)") &&
           d->version[0],
       "quarantined after 5: %s", d->error);
    json_t *st = pol_host_status(H, 1);
    int found = 0;
    size_t i;
    json_t *o;
    json_array_foreach(st, i, o)
    {
        if (strcmp(json_string_value(json_object_get(o, "name")), "flaky")) continue;
        found = !strcmp(json_string_value(json_object_get(o, "state")), "quarantined") &&
                json_integer_value(json_object_get(o, "failures")) == 5 &&
                json_integer_value(json_object_get(o, "calls")) == 6;
    }
    ok(found, "status shows the quarantine");
    json_decref(st);

    pol_host_sync_gen(H, 1, 100);
    pol_host_sync_gen(H, 1, 100);
    d = route("flaky", NULL);
    ok(d->failed && strstr(d->error, "quarantined") && src_calls == before,
       "same generation: nothing rebuilt, nothing fetched");
    /* Another policy's upload rebuilds the state; a read of flaky's source
    ** that fails then (a transient store error) tells nothing of it: it
    ** stays quarantined. It ran again for 5 more calls. */
    pol_host_sync_gen(H, 1, 101);
    src_fail = SB_ESTORE;
    d = route("flaky", NULL);
    src_fail = 0;
    ok(d->failed, "a rebuild, then flaky's source cannot be read: the call fails (%s)", d->error);
    d = route("flaky", NULL);
    ok(d->failed && strstr(d->error, "quarantined after 5"),
       "read again, the same source: still quarantined (%s)", d->error);
    ok(!logged("quarantine lifted"), "nothing said of a lift while none happened");
    before = src_calls;
    set_src(1, "flaky", HOOK("return { wait = 7 }"));
    pol_host_sync_gen(H, 1, 102);
    d = route("flaky", NULL);
    ok(logged("policy quarantine lifted: account=acme policy=flaky version=") &&
           logged(": its source changed"),
       "the end of the quarantine is logged, with why");
    ok(!d->failed && d->wait == 7 && src_calls == before + 1,
       "a new generation rebuilds: the fixed policy runs (%s)", d->error);
    char ver[17];
    cr_version(HOOK("return { wait = 7 }"), strlen(HOOK("return { wait = 7 }")), ver);
    ok(!strcmp(d->version, ver), "with its new version");

    set_src(1, "counter",
            "local n = 0\nlocal P = {}\nfunction P.route() n = n + 1 return { wait = n } end\n"
            "return P\n");
    route("counter", NULL);
    d = route("counter", NULL);
    ok(d->wait == 2, "a file's state lives between calls");
    pol_host_flush(H);
    d = route("counter", NULL);
    ok(d->wait == 1, "flush rebuilds every state");
    route("counter", NULL);
    pol_host_drop(H, 1);
    d = route("counter", NULL);
    ok(d->wait == 1, "drop forgets the account");

    d = route("missing", NULL);
    ok(d->failed && strstr(d->error, "policy 'missing' not found"), "a missing policy fails: %s",
       d->error);
    d = route("bad name!", NULL);
    ok(d->failed && strstr(d->error, "invalid policy name"), "an invalid name fails");

    /* Failure then success resets the counter. */
    set_src(1, "mixed",
            "local n = 0\nlocal P = {}\nfunction P.route()\n"
            "n = n + 1 if n % 4 ~= 0 then error('x') end return {} end\nreturn P\n");
    int fails = 0;
    for (int k = 0; k < 12; k++)
        fails += route("mixed", NULL)->failed;
    ok(fails == 9 && !strstr(D.error, "quarantined"), "3 failures then a success never quarantine");

    /* A reload and an upload end a quarantine: each said in the log. */
    set_src(1, "sulky", HOOK("error('no')"));
    for (int k = 0; k < 5; k++)
        route("sulky", NULL);
    nlogs = 0;
    pol_host_flush(H);
    d = route("sulky", NULL);
    ok(d->failed && !strstr(d->error, "quarantined") &&
           logged("policy quarantine lifted: account=acme policy=sulky version=") &&
           logged(": the policies were reloaded"),
       "a reload lifts the quarantine and says so (%s)", logs[0]);
    pol_host_sync_gen(H, 1, 200);
    for (int k = 0; k < 4; k++)
        route("sulky", NULL);
    nlogs = 0;
    pol_host_sync_gen(H, 1, 201); /* as an upload of it by this engine goes */
    pol_host_lift(H, 1, "sulky");
    d = route("sulky", NULL);
    ok(d->failed && !strstr(d->error, "quarantined") &&
           logged("policy quarantine lifted: account=acme policy=sulky") &&
           logged(": it was uploaded or deleted"),
       "an upload of it lifts it and says so (%s)", logs[0]);
    nlogs = 0;
    pol_host_flush(H);
    route("sulky", NULL);
    ok(!logged("quarantine lifted"), "a policy that was not quarantined: no such line");

    /* A coroutine made at load time keeps working across calls. */
    set_src(1, "gen",
            "local g = coroutine.wrap(function() local i = 0 while true do i = i + 1\n"
            "coroutine.yield(i) end end)\nlocal P = {}\n"
            "function P.route() return { wait = g() } end\nreturn P\n");
    int w = 0;
    for (int k = 0; k < 5; k++)
        w = route("gen", NULL)->wait;
    ok(!D.failed && w == 5, "coroutines live across calls (%d)", w);

    /* Memory stays flat over many calls. */
    set_src(1, "churn",
            HOOK("local t = {} for i = 1, 100 do t[i] = { i = i } end\n"
                 "local s = '' for i = 1, 20 do s = s .. agents[1].id end\n"
                 "return { ring = agents[3].id }"));
    route("churn", NULL);
    size_t m0 = 0, m1 = 0;
    for (int k = 0; k < 200; k++)
        route("churn", NULL);
    pol_host_totals(H, NULL, NULL, &m0);
    for (int k = 0; k < 2000; k++)
        route("churn", NULL);
    pol_host_totals(H, NULL, NULL, &m1);
    ok(!D.failed && m1 < m0 + 65536, "memory stays flat over 2000 calls (%zu -> %zu)", m0, m1);
}

/* --- the case runner -------------------------------------------------------- */

static json_t *test_json(sb_result *r)
{
    return json_loads(sb_result_json(r, NULL), 0, NULL);
}

static void test_cases(void)
{
    const char *src =
        "local P = {}\n"
        "function P.route(call, agents, ctx)\n"
        "  local last = ctx.get(call.queue) or 0\n"
        "  local pick\n"
        "  for _, a in ipairs(agents) do\n"
        "    if a.position > last and (not pick or a.position < pick.position) then pick = a end\n"
        "  end\n"
        "  for _, a in ipairs(agents) do if not pick or a.position < pick.position then\n"
        "    if a.position <= last then pick = pick or a end end end\n"
        "  if not pick then return { wait = 10 } end\n"
        "  if call.attrs.explode then error('boom') end\n"
        "  ctx.log('picked', pick.id)\n"
        "  ctx.set(call.queue, pick.position)\n"
        "  return { ring = pick.id, pause = call.attrs.pause and { agent = 'z', reason = 'r' } }\n"
        "end\n"
        "return P\n";
    const char *cases =
        "[{\"name\":\"first\",\"agents\":[{\"id\":\"a\"},{\"id\":\"b\"},{\"id\":\"c\"}],"
        "  \"expect\":{\"action\":\"ring\",\"agents\":[\"a\"],\"devices\":[\"softphone\"],"
        "             \"mode\":\"all\",\"timeout\":20},\"expect_store\":{\"support\":1}},"
        " {\"name\":\"carries the "
        "store\",\"agents\":[{\"id\":\"a\"},{\"id\":\"b\"},{\"id\":\"c\"}],"
        "  \"expect\":{\"agents\":[\"b\"]},\"expect_store\":{\"support\":2}},"
        " {\"name\":\"store given\",\"store\":{\"support\":3},\"queue\":{\"ring_timeout\":33},"
        "  \"agents\":[{\"id\":\"a\"},{\"id\":\"b\"},{\"id\":\"c\"}],"
        "  \"expect\":{\"agents\":[\"a\"],\"timeout\":33}},"
        " {\"name\":\"pause normalized\",\"call\":{\"attrs\":{\"pause\":true}},"
        "  \"agents\":[{\"id\":\"a\",\"devices\":{\"mobile\":\"tel:+447700900001\"}}],"
        "  \"expect\":{\"devices\":[\"mobile\"],\"pause\":[{\"agent\":\"z\",\"reason\":\"r\"}]}},"
        " {\"name\":\"errors normalized\",\"call\":{\"attrs\":{\"explode\":true}},"
        "  \"agents\":[{\"id\":\"a\"}],"
        "  \"expect\":{\"action\":\"error\",\"error\":\"t/rr.lua:11: boom\"}},"
        " {\"name\":\"nobody\",\"agents\":[],\"expect\":{\"action\":\"wait\",\"wait\":10}},"
        " {\"name\":\"wrong on "
        "purpose\",\"agents\":[{\"id\":\"a\"}],\"expect\":{\"agents\":[\"b\"]}},"
        " {\"name\":\"bad case\",\"agentz\":[]}]";
    sb_result *r = sb_result_new();
    int rc = sb_policy_test("t/rr.lua", src, strlen(src), cases, strlen(cases), r);
    json_t *j = test_json(r);
    ok(rc == SB_EPOLICY, "a failing case makes the run fail");
    ok(json_integer_value(json_object_get(j, "passed")) == 6 &&
           json_integer_value(json_object_get(j, "failed")) == 2,
       "6 passed, 2 failed: %s", sb_result_json(r, NULL));
    json_t *cs = json_object_get(j, "cases");
    for (size_t i = 0; i < 6; i++) {
        json_t *c = json_array_get(cs, i);
        ok(json_is_true(json_object_get(c, "ok")), "case '%s' passes (%s)",
           json_string_value(json_object_get(c, "name")),
           json_string_value(json_object_get(c, "message")));
    }
    json_t *c6 = json_array_get(cs, 6), *c7 = json_array_get(cs, 7);
    ok(strstr(json_string_value(json_object_get(c6, "message")),
              "agents: expected [\"b\"], got [\"a\"]") &&
           json_object_get(c6, "got") && json_object_get(c6, "expected"),
       "a mismatch says what differs: %s", json_string_value(json_object_get(c6, "message")));
    ok(strstr(json_string_value(json_object_get(c7, "message")), "unknown field 'agentz'") != NULL,
       "a malformed case says why: %s", json_string_value(json_object_get(c7, "message")));
    json_t *log = json_object_get(json_array_get(cs, 0), "log");
    ok(json_array_size(log) == 1 && strstr(json_string_value(json_array_get(log, 0)), "picked a"),
       "ctx.log lines are kept per case");
    json_decref(j);

    /* A case expecting a decision where the policy failed says why it failed. */
    const char *fails = "[{\"name\":\"fails\",\"call\":{\"attrs\":{\"explode\":true}},"
                        "\"agents\":[{\"id\":\"a\"}],\"expect\":{\"action\":\"wait\"}}]";
    rc = sb_policy_test("t/rr.lua", src, strlen(src), fails, strlen(fails), r);
    j = test_json(r);
    const char *m = json_string_value(
        json_object_get(json_array_get(json_object_get(j, "cases"), 0), "message"));
    ok(rc == SB_EPOLICY && m &&
           strstr(
               m,
               "action: expected \"wait\", got \"error\" (the policy failed: t/rr.lua:11: boom)"),
       "a case where the policy failed gives its error with file:line: %s", m ? m : "-");
    json_decref(j);

    /* A cases file with a key twice is refused (jansson would keep the last
    ** one: a case the author did not write), and so is a missing source. */
    const char *twice = "[{\"name\":\"a\",\"name\":\"b\",\"expect\":{\"action\":\"wait\"}}]";
    rc = sb_policy_test("t/rr.lua", src, strlen(src), twice, strlen(twice), r);
    ok(rc == SB_EINVAL && strstr(sb_result_message(r), "rr.cases.json:1:") &&
           strstr(sb_result_message(r), "duplicate"),
       "a case file with a duplicate key is refused (%s)", sb_result_message(r));
    rc = sb_policy_test("t/rr.lua", NULL, 0, cases, strlen(cases), r);
    ok(rc == SB_EINVAL && sb_result_field(r) && !strcmp(sb_result_field(r), "source"),
       "no source: SB_EINVAL naming source (%s)", sb_result_message(r));

    /* Cases hold the engine's limit on a store's keys. */
    json_t *full = json_object();
    for (int i = 0; i < POL_KV_KEYS_MAX; i++) {
        char k[16];
        snprintf(k, sizeof k, "k%d", i);
        json_object_set_new(full, k, json_true());
    }
    json_t *cj = json_pack("[{s:s, s:o, s:[{s:s}], s:{s:s}}]", "name", "one key too many", "store",
                           full, "agents", "id", "a", "expect", "action", "wait");
    char *fulls = json_dumps(cj, JSON_COMPACT);
    json_decref(cj);
    const char *adds =
        "local P = {}\n"
        "function P.route(call, agents, ctx) ctx.set('new', 1) return { wait = 5 } end\n"
        "return P\n";
    rc = sb_policy_test("adds", adds, strlen(adds), fulls, strlen(fulls), r);
    free(fulls);
    j = test_json(r);
    m = json_string_value(
        json_object_get(json_array_get(json_object_get(j, "cases"), 0), "message"));
    ok(rc == SB_EPOLICY && m && strstr(m, "ctx.set: the store is full"),
       "a case whose store is full refuses a new key as the engine does: %s", m ? m : "-");
    json_decref(j);

    rc = sb_policy_test("x", "return 42", 9, "[]", 2, r);
    ok(rc == SB_EPOLICY && strstr(sb_result_message(r), "x.lua:1: a policy must return a table"),
       "a policy that does not load fails the run: %s", sb_result_message(r));
    rc = sb_policy_test("x", src, strlen(src), "{}", 2, r);
    ok(rc == SB_EINVAL && strstr(sb_result_message(r), "JSON array"), "cases must be an array");

    /* pol_validate: what a reload runs. */
    pol_limits lim = {.instructions = 100000, .wall_ms = 50, .memory = 1 << 20};
    ok(pol_validate(&lim, "t/rr", src, strlen(src), NULL, 0, r) == 0, "pol_validate: loads");
    rc = pol_validate(&lim, "t/rr", src, strlen(src), cases, strlen(cases), r);
    ok(rc == SB_EPOLICY && strstr(sb_result_message(r), "2 of 8 cases failed") &&
           strstr(sb_result_message(r), "case 'wrong on purpose'"),
       "pol_validate: failing cases refuse the policy, naming them");
    rc = pol_validate(&lim, "loop", "while true do end", 17, NULL, 0, r);
    ok(rc == SB_EPOLICY && strstr(sb_result_message(r), "loop.lua:1: instruction budget exceeded"),
       "pol_validate: the top level runs under the load budget: %s", sb_result_message(r));
    rc = pol_validate(&lim, "hooks", "return { route = 1 }", 20, NULL, 0, r);
    ok(rc == SB_EPOLICY &&
           strstr(sb_result_message(r), "hook 'route' must be a function (got number)"),
       "pol_validate: hook types: %s", sb_result_message(r));
    rc = pol_validate(&lim, "hooks", "return { route = function() end, retain = {} }", 46, NULL, 0,
                      r);
    ok(rc == SB_EPOLICY && strstr(sb_result_message(r), "hook 'retain' must be a function"),
       "pol_validate: optional hooks must be functions too");
    /* A library function or a coroutine.wrap is a C function: as a hook it
    ** failed at call time with no line ("[C]:-1: ..."), or on its second
    ** call (a wrapped coroutine that returned is dead). Refused at load,
    ** for every hook, with the line of the returned table. */
    static const struct {
        const char *src, *msg;
    } chooks[] = {
        {"return { route = pcall }", "c.lua:1: hook 'route' must be a Lua function defined in "
                                     "the policy (got a built-in function"},
        {"return { route = error }", "c.lua:1: hook 'route' must be a Lua function"},
        {"return { route = coroutine.wrap(function(call, agents, ctx)\n"
         "  return { wait = 1 }\nend) }",
         "c.lua:3: hook 'route' must be a Lua function defined in the policy"},
        {"local P = {}\nfunction P.route() return {} end\nP.retain = print\nreturn P\n",
         "c.lua:4: hook 'retain' must be a Lua function"},
        {"return { erase = coroutine.wrap(function() end) }",
         "c.lua:1: hook 'erase' must be a Lua function"},
    };
    for (size_t i = 0; i < countof(chooks); i++) {
        rc = pol_validate(&lim, "c", chooks[i].src, strlen(chooks[i].src), NULL, 0, r);
        ok(rc == SB_EPOLICY && strstr(sb_result_message(r), chooks[i].msg),
           "pol_validate: a C function as a hook: %s", sb_result_message(r));
        rc = sb_policy_check("c", chooks[i].src, strlen(chooks[i].src), r);
        ok(rc == SB_EPOLICY && strstr(sb_result_message(r), chooks[i].msg),
           "policy check: a C function as a hook: %s", sb_result_message(r));
    }
    sb_result_free(r);
}

/* ctx.queue.longest_wait left out of a case: the engine's figure for a call
** alone in its queue, its time in this queue (queue_waited), not its time
** since it was offered (a call moved after 30 s showed 30 in a queue it had
** been in for 10). */
static void test_cases_longest_wait(void)
{
    const char *src = "local P = {}\n"
                      "function P.route(call, agents, ctx)\n"
                      "  return { wait = math.floor(ctx.queue.longest_wait) }\n"
                      "end\n"
                      "return P\n";
    const char *cases =
        "[{\"name\":\"moved\",\"call\":{\"waited\":30,\"queue_waited\":10},"
        "  \"expect\":{\"wait\":10}},"
        " {\"name\":\"not moved\",\"call\":{\"waited\":30},\"expect\":{\"wait\":30}},"
        " {\"name\":\"given\",\"call\":{\"waited\":30,\"queue_waited\":10},"
        "  \"queue\":{\"waiting\":2,\"longest_wait\":50},\"expect\":{\"wait\":50}}]";
    sb_result *r = sb_result_new();
    int rc = sb_policy_test("lw", src, strlen(src), cases, strlen(cases), r);
    ok(rc == 0, "cases: longest_wait defaults to the call's time in the queue: %s",
       sb_result_json(r, NULL));
    sb_result_free(r);
}

/* A case that fails on the wall clock alone runs once more (a loaded machine
** may hold the process off its CPU): the first call of this one spins past
** its 20 ms, the second decides; one that spins each time fails, saying so. */
static void test_cases_wall_retry(void)
{
    const char *src = "local P, n = {}, 0\n"
                      "function P.route(call, agents, ctx)\n"
                      "  n = n + 1\n"
                      "  if n == 1 or call.attrs.spin then while true do end end\n"
                      "  return { wait = 5 }\n"
                      "end\n"
                      "return P\n";
    const char *cases = "[{\"name\":\"stalled once\",\"expect\":{\"wait\":5}},"
                        " {\"name\":\"spins\",\"call\":{\"attrs\":{\"spin\":true}},"
                        "  \"expect\":{\"wait\":5}}]";
    sb_config cfg;
    sb_config_init(&cfg);
    cfg.policy_instructions = 1000000000000ull;
    cfg.policy_wall_ms = 20;
    sb_result *r = sb_result_new();
    int rc = sb_policy_test_cfg(&cfg, "spin", src, strlen(src), cases, strlen(cases), r);
    json_t *d = json_loads(sb_result_json(r, NULL), 0, NULL);
    json_t *cs = json_object_get(d, "cases");
    ok(rc == SB_EPOLICY && json_is_true(json_object_get(json_array_get(cs, 0), "ok")) &&
           json_is_false(json_object_get(json_array_get(cs, 1), "ok")),
       "a case stalled on the wall clock once passes on its second run; one that always "
       "spins fails: %s",
       sb_result_json(r, NULL));
    json_decref(d);
    sb_result_free(r);
}

/* --- the lint ------------------------------------------------------------------ */

/* A case's call from a withheld number: "caller": null (or ""), which the
** policy sees as nil; left out, the default number. A withheld caller has
** no caller history, so a previous_agent beside it is refused. */
static void test_cases_withheld(void)
{
    const char *src = "local P = {}\n"
                      "function P.route(call, agents, ctx)\n"
                      "  return { wait = call.caller == nil and 7 or 3 }\n"
                      "end\n"
                      "return P\n";
    const char *cases =
        "[{\"name\":\"default\",\"expect\":{\"wait\":3}},"
        " {\"name\":\"null\",\"call\":{\"caller\":null},\"expect\":{\"wait\":7}},"
        " {\"name\":\"empty\",\"call\":{\"caller\":\"\"},\"expect\":{\"wait\":7}},"
        " {\"name\":\"given\",\"call\":{\"caller\":\"+442079460001\"},\"expect\":{\"wait\":3}},"
        " {\"name\":\"history\",\"call\":{\"caller\":null,\"previous_agent\":\"bob\"},"
        "  \"expect\":{\"wait\":7}}]";
    sb_result *r = sb_result_new();
    int rc = sb_policy_test("wh", src, strlen(src), cases, strlen(cases), r);
    json_t *j = test_json(r);
    json_t *cs = json_object_get(j, "cases");
    ok(rc == SB_EPOLICY && json_integer_value(json_object_get(j, "passed")) == 4,
       "cases: a withheld caller (null or \"\") is nil to the policy, left out the default "
       "number (%s)",
       sb_result_json(r, NULL));
    const char *m = json_string_value(json_object_get(json_array_get(cs, 4), "message"));
    ok(m && strstr(m, "call.previous_agent") && strstr(m, "withheld"),
       "a previous agent beside a withheld caller is refused: %s", m ? m : "-");
    json_decref(j);
    sb_result_free(r);
}

/* A case file's unknown field is named with the field it is close to, as a
** view's and a decision's are (the one rule, sbx_suggest_in): routing and
** retention cases, every object of them, and an expect key the decision
** does not have. A name close to none is left as it was. */
static void test_cases_suggest(void)
{
    const char *route = "local P = {}\n"
                        "function P.route(call, agents, ctx) return { ring = agents[1].id } end\n"
                        "return P\n";
    const char *retain = "local P = {}\n"
                         "function P.retain(record, ctx) return { keep = true } end\n"
                         "function P.erase(record, request, ctx) return { delete = true } end\n"
                         "return P\n";
    static const struct {
        int retention;
        const char *cs, *want;
    } t[] = {
        {0,
         "{\"name\":\"x\",\"agents\":[{\"id\":\"a\"},{\"id\":\"b\",\"idel_for\":3}],"
         "\"expect\":{\"action\":\"ring\"}}",
         "agents[2]: unknown field 'idel_for' (did you mean 'idle_for'?)"},
        {0, "{\"name\":\"x\",\"agents\":[{\"id\":\"a\"}],\"expcet\":{\"action\":\"ring\"}}",
         "case: unknown field 'expcet' (did you mean 'expect'?)"},
        {0,
         "{\"name\":\"x\",\"agents\":[{\"id\":\"a\"}],\"call\":{\"priorty\":5},"
         "\"expect\":{\"action\":\"ring\"}}",
         "call: unknown field 'priorty' (did you mean 'priority'?)"},
        {0,
         "{\"name\":\"x\",\"agents\":[{\"id\":\"a\"}],\"queue\":{\"loggedin\":1},"
         "\"expect\":{\"action\":\"ring\"}}",
         "queue: unknown field 'loggedin' (did you mean 'logged_in'?)"},
        {0,
         "{\"name\":\"x\",\"agents\":[{\"id\":\"a\"}],\"expect\":{\"action\":\"ring\","
         "\"agent\":[\"a\"]}}",
         "expect.agent: the decision has no 'agent' (did you mean 'agents'? it has action, "
         "agents, mode, devices, timeout)"},
        {1, "{\"name\":\"x\",\"record\":{\"outcom\":\"answered\"},\"expect\":{}}",
         "record: unknown field 'outcom' (did you mean 'outcome'?)"},
        {1,
         "{\"name\":\"x\",\"record\":{\"attempts\":[{\"agent\":\"a\",\"devcie\":"
         "\"mobile\"}]},\"expect\":{}}",
         "record.attempts[1]: unknown field 'devcie' (did you mean 'device'?)"},
        {1,
         "{\"name\":\"x\",\"record\":{\"decided_by\":[{\"polcy\":\"p\",\"version\":"
         "\"v\"}]},\"expect\":{}}",
         "record.decided_by[1]: unknown field 'polcy' (did you mean 'policy'?)"},
        {1, "{\"name\":\"x\",\"record\":{},\"request\":{\"rol\":\"called\"},\"expect\":{}}",
         "request: unknown field 'rol' (did you mean 'role'?)"},
        /* close to nothing: no hint */
        {0,
         "{\"name\":\"x\",\"agents\":[{\"id\":\"a\",\"colour\":\"red\"}],"
         "\"expect\":{\"action\":\"ring\"}}",
         "agents[1]: unknown field 'colour'"},
        {1, "{\"name\":\"x\",\"record\":{\"zzz\":1},\"expect\":{}}", "record: unknown field 'zzz'"},
        {0,
         "{\"name\":\"x\",\"agents\":[{\"id\":\"a\"}],\"expect\":{\"action\":\"ring\","
         "\"reason\":\"r\"}}",
         "expect.reason: the decision has no 'reason' (it has action, agents, mode, devices, "
         "timeout)"},
    };
    sb_result *r = sb_result_new();
    for (size_t i = 0; i < sizeof t / sizeof *t; i++) {
        char cases[512];
        snprintf(cases, sizeof cases, "[%s]", t[i].cs);
        const char *src = t[i].retention ? retain : route;
        int rc = sb_policy_test("t/near.lua", src, strlen(src), cases, strlen(cases), r);
        json_t *j = test_json(r);
        const char *m = json_string_value(
            json_object_get(json_array_get(json_object_get(j, "cases"), 0), "message"));
        int exact = m && strstr(m, t[i].want) &&
                    (strstr(t[i].want, "did you mean") || !strstr(m, "did you mean"));
        ok(rc == SB_EPOLICY && exact, "%s (%s)", t[i].want, m ? m : sb_result_message(r));
        json_decref(j);
    }
    sb_result_free(r);
}

static void test_check(void)
{
    sb_result *r = sb_result_new();
    const char *clean =
        "local P = {}\nfunction P.route(call, agents, ctx)\n"
        "  return { wait = math.floor(ctx.random(1, 5)), pause = nil }\nend\nreturn P\n";
    ok(sb_policy_check("clean.lua", clean, strlen(clean), r) == 0, "a clean policy passes (%s)",
       sb_result_message(r));
    const char *dirty = "local P = {}\n"                                     /* 1 */
                        "counter = 0\n"                                      /* 2 */
                        "function P:route(call, agents, ctx)\n"              /* 3 */
                        "  local x = io.open('f')\n"                         /* 4 */
                        "  local y = undefined_thing + string.dump(x)\n"     /* 5 */
                        "  for k, v in pairs(call) do print(k, v) end\n"     /* 6 */
                        "  return { wait = unpack({1}) + math.pow(2, 2) }\n" /* 7 */
                        "end\n"                                              /* 8 */
                        "P.helper = 1\n"                                     /* 9 */
                        "function P.erase(a, b, c, d) end\n"                 /* 10 */
                        "return P\n";                                        /* 11 */
    int rc = sb_policy_check("pol/dirty.lua", dirty, strlen(dirty), r);
    const char *m = sb_result_message(r);
    ok(rc == SB_EPOLICY, "problems fail the check");
    static const char *const want[] = {
        "pol/dirty.lua:2: setting global variable 'counter' (make it local)",
        "pol/dirty.lua:3: hook 'route' is declared with ':'",
        "pol/dirty.lua:4: accessing undefined variable 'io' (not available in policies)",
        "pol/dirty.lua:5: accessing undefined variable 'undefined_thing'",
        "pol/dirty.lua:5: 'string.dump' is not available in policies",
        "pol/dirty.lua:7: accessing undefined variable 'unpack' (use table.unpack)",
        "pol/dirty.lua:7: 'math.pow' is not available in policies",
        "pol/dirty.lua:10: hook 'erase' takes 4 parameters",
        "pol/dirty.lua:11: unknown key 'helper' in the returned hook table",
    };
    for (size_t i = 0; i < countof(want); i++)
        ok(strstr(m, want[i]) != NULL, "lint: %s", want[i]);
    ok(!strstr(m, "'pairs'") && !strstr(m, "'print'") && !strstr(m, "'math'"),
       "known globals are not reported");
    ok(json_array_size(json_object_get(res_get_doc(r), "problems")) == countof(want),
       "every problem is in the document too (%zu)",
       json_array_size(json_object_get(res_get_doc(r), "problems")));
    if (json_array_size(json_object_get(res_get_doc(r), "problems")) != countof(want))
        diag("%s", m);

    /* A hook returning two values: the second would be an invalid
    ** decision every time that return runs. A helper may return two, and a
    ** hook may return what a call returns (how many is not known). */
    const char *two = "local P = {}\n"                                                   /* 1 */
                      "local function pick(agents) return agents[1], 'why' end\n"        /* 2 */
                      "function P.route(call, agents, ctx)\n"                            /* 3 */
                      "  if call.attrs.x then return { ring = 'a' }, { wait = 1 } end\n" /* 4 */
                      "  local a = pick(agents) return { ring = a }\n"                   /* 5 */
                      "end\n"                                                            /* 6 */
                      "function P.retain(record, ctx) return { keep = true }, nil end\n" /* 7 */
                      "function P.erase(record, request, ctx) return P.retain(record, ctx) end\n"
                      "return P\n";
    rc = sb_policy_check("two", two, strlen(two), r);
    m = sb_result_message(r);
    ok(rc == SB_EPOLICY &&
           strstr(m, "two.lua:4: route returns 2 values here; a decision is one table (the "
                     "second value makes it invalid)") &&
           strstr(m, "two.lua:7: retain returns 2 values here") && !strstr(m, "two.lua:2:") &&
           !strstr(m, "two.lua:8:") &&
           json_array_size(json_object_get(res_get_doc(r), "problems")) == 2,
       "lint: a hook's return of two values, and only a hook's: %s", m);
    rc = sb_policy_check("syn", "local P = {\nreturn P", 19, r);
    ok(rc == SB_EPOLICY && strstr(sb_result_message(r), "syn.lua:2:"), "syntax errors: %s",
       sb_result_message(r));
    rc = sb_policy_check("nohook", "return {}", 9, r);
    ok(rc == SB_EPOLICY && strstr(sb_result_message(r),
                                  "nohook.lua:1: the policy has no hook (a 'route', 'retain' or "
                                  "'erase' function): the table it returns is empty"),
       "missing hooks: %s", sb_result_message(r));
    /* The keys it has instead, a hook's name suggested for one close to it. */
    static const struct {
        const char *src, *msg;
    } nohooks[] = {
        {"return { rout = function() end }", "the table it returns has key 'rout' (did you mean "
                                             "'route'?)"},
        {"return { Retain = function() end, helper = 1, [1] = 2, [true] = 3 }",
         "the table it returns has keys 'Retain' (did you mean 'retain'?), 'helper', [1] and a "
         "boolean key"},
        {"return { a = 1, b = 2, c = 3, d = 4, e = 5, f = 6, g = 7, h = 8, erasse = 9 }",
         "the table it returns has 9 keys: 'a', 'b', 'c', 'd', 'e', 'erasse' (did you mean "
         "'erase'?) and 3 more"},
    };
    for (size_t i = 0; i < countof(nohooks); i++) {
        rc = sb_policy_check("nohook", nohooks[i].src, strlen(nohooks[i].src), r);
        ok(rc == SB_EPOLICY &&
               strstr(sb_result_message(r), "nohook.lua:1: the policy has no "
                                            "hook") &&
               strstr(sb_result_message(r), nohooks[i].msg),
           "no hook: %s", sb_result_message(r));
    }
    const char *retian = "local P = {}\nfunction P.route() return {} end\n"
                         "function P.retian() return {} end\nreturn P\n";
    rc = sb_policy_check("retian", retian, strlen(retian), r);
    ok(strstr(sb_result_message(r), "retian.lua:4: unknown key 'retian' in the returned hook "
                                    "table (did you mean 'retain'?)") != NULL,
       "an unknown key close to a hook's name: %s", sb_result_message(r));
    rc = sb_policy_check("toplevel", "local x = nil + 1\nreturn {}", 27, r);
    ok(rc == SB_EPOLICY &&
           strstr(sb_result_message(r), "toplevel.lua:1: attempt to perform arithmetic"),
       "top-level errors: %s", sb_result_message(r));
    rc = sb_policy_check(
        "many",
        "x1=1 x2=1 x3=1 x4=1 x5=1 x6=1 x7=1 x8=1 x9=1 x10=1 x11=1 x12=1\n"
        "x13=1 x14=1 x15=1 x16=1 x17=1 x18=1 x19=1 x20=1\nreturn {route=function() end}",
        strlen("x1=1 x2=1 x3=1 x4=1 x5=1 x6=1 x7=1 x8=1 x9=1 x10=1 x11=1 x12=1\n"
               "x13=1 x14=1 x15=1 x16=1 x17=1 x18=1 x19=1 x20=1\nreturn {route=function() end}"),
        r);
    ok(rc == SB_EPOLICY && json_array_size(json_object_get(res_get_doc(r), "problems")) == 20,
       "long reports keep every problem in the document");
    sb_result_free(r);
}

/* The lint knows the views' fields: a typo in a field of call, ctx,
** ctx.queue, an agent of `agents` (an ipairs loop variable, a local set from
** agents[i], agents[i].x), record or request is found before deployment;
** fields of other tables, and parameters the hook reassigns, are not judged. */
static void test_check_fields(void)
{
    sb_result *r = sb_result_new();
    const char *src = "local P = {}\n"                                                /* 1 */
                      "function P.route(call, agents, ctx)\n"                         /* 2 */
                      "  for _, a in ipairs(agents) do\n"                             /* 3 */
                      "    if a.idle_fro > a.idle_for then return { ring = a } end\n" /* 4 */
                      "  end\n"                                                       /* 5 */
                      "  local b = agents[1]\n"                                       /* 6 */
                      "  local x = b.skils or agents[2].positon\n"                    /* 7 */
                      "  if call.prority > ctx.queue.wating then return {} end\n"     /* 8 */
                      "  ctx.logg(call.attrs.anything, ctx.now)\n"                    /* 9 */
                      "  local t = { wating = 1 }\n"                                  /* 10 */
                      "  return { wait = t.wating + t.other }\n"                      /* 11 */
                      "end\n"                                                         /* 12 */
                      "function P.retain(record, ctx)\n"                              /* 13 */
                      "  return { keep = record.age_day == ctx.queue }\n"             /* 14 */
                      "end\n"                                                         /* 15 */
                      "function P.erase(record, request, ctx)\n"                      /* 16 */
                      "  request = { rol = 1 }\n"                                     /* 17 */
                      "  return { delete = request.rol == record.outcome }\n"         /* 18 */
                      "end\n"                                                         /* 19 */
                      "return P\n";
    int rc = sb_policy_check("fields.lua", src, strlen(src), r);
    const char *m = sb_result_message(r);
    ok(rc == SB_EPOLICY, "field typos fail the check");
    static const char *const want[] = {
        "fields.lua:4: agent has no field 'idle_fro'",  "fields.lua:7: agent has no field 'skils'",
        "fields.lua:7: agent has no field 'positon'",   "fields.lua:8: call has no field 'prority'",
        "fields.lua:8: queue has no field 'wating'",    "fields.lua:9: ctx has no field 'logg'",
        "fields.lua:14: record has no field 'age_day'", "fields.lua:14: ctx has no field 'queue'",
    };
    for (size_t i = 0; i < countof(want); i++)
        ok(strstr(m, want[i]) != NULL, "lint: %s", want[i]);
    size_t n = json_array_size(json_object_get(res_get_doc(r), "problems"));
    ok(n == countof(want),
       "and nothing else: not a table of the policy's own, not a "
       "reassigned parameter (%zu)",
       n);
    if (n != countof(want)) diag("%s", m);
    const char *clean = "local P = {}\n"
                        "function P.route(call, agents, ctx)\n"
                        "  local best\n"
                        "  for _, a in ipairs(agents) do\n"
                        "    if not best or a.idle_for > best.idle_for then best = a end\n"
                        "  end\n"
                        "  local q = ctx.queue\n"
                        "  if call.waited > 60 and q.waiting > 3 then return { move = 'b' } end\n"
                        "  return best and { ring = best.id, timeout = agents[1].position } or {}\n"
                        "end\nreturn P\n";
    ok(sb_policy_check("clean.lua", clean, strlen(clean), r) == 0, "documented fields pass (%s)",
       sb_result_message(r));
    sb_result_free(r);
}

/* --- retention hooks -------------------------------------------------------- */

static int att_cb(void *arg, int i, pol_attempt *out)
{
    (void)arg;
    static const char *agents[] = {"bob", "alice"};
    out->agent = agents[i];
    out->dev = i ? POL_DEV_MOBILE : POL_DEV_SOFTPHONE;
    out->outcome = i ? "answered" : "no_answer";
    out->start_ms = NOW - 86400000LL * 3 + i * 20000;
    out->dur_ms = 20000;
    return 0;
}

static void test_retention_cases(void)
{
    const char *src =
        "local P = {}\n"
        "function P.retain(record, ctx)\n"
        "  local r = record\n"
        "  assert(r.id == 'r9' and r.queue == 'sales' and r.first_queue == 'support')\n"
        "  assert(r.outcome == 'answered' and r.agent == 'alice' and r.priority == 5)\n"
        "  assert(r.wait == 12 and r.talk == 60 and math.type(r.age_days) == 'integer')\n"
        "  assert(r.ended - r.offered == 72 and r.answered == r.offered + 12)\n"
        "  assert(r.attrs.invoice == 'F-1' and r.anonymized == false and r.legal_hold == true)\n"
        "  assert(#r.attempts == 1 and r.attempts[1].device == 'mobile')\n"
        "  assert(r.decided_by[1].policy == 'longest-idle')\n"
        "  assert(ctx.now == 1767261600 and not pcall(function() return ctx.queue end))\n"
        "  ctx.set('k', 1)\n"
        "  assert(ctx.get('k') == nil) -- no store here: get gives nil, sets are dropped\n"
        "  if r.age_days < 30 then return { keep = true, review_in_days = 30 - r.age_days } end\n"
        "  if r.age_days < 60 then return { anonymize = true, keep_until = ctx.now + 86400 * 1.5,\n"
        "    reason = 'numbers go' } end\n"
        "  return { delete = true, reason = 'old' }\n"
        "end\n"
        "function P.erase(record, request, ctx)\n"
        "  assert(request.role == 'called' and request.received == 1767261000)\n"
        "  if record.legal_hold then return { keep = true, reason = 'hold' } end\n"
        "  return { delete = true }\n"
        "end\n"
        "return P\n";
    const char *cases =
        "[{\"name\":\"recent\",\"record\":{\"id\":\"r9\",\"queue\":\"sales\",\"first_queue\":"
        "\"support\","
        "  \"agent\":\"alice\",\"priority\":5,\"wait\":12,\"talk\":60,\"age_days\":10,"
        "  \"attrs\":{\"invoice\":\"F-1\"},\"legal_hold\":true,"
        "  \"attempts\":[{\"agent\":\"alice\",\"device\":\"mobile\",\"outcome\":\"answered\","
        "                 \"start\":1767000000,\"duration\":12}],"
        "  \"decided_by\":[{\"policy\":\"longest-idle\",\"version\":\"0123456789abcdef\"}]},"
        "  \"expect\":{\"action\":\"keep\",\"review_in_days\":20,\"reason\":\"\"}},"
        " {\"name\":\"middle\",\"record\":{\"id\":\"r9\",\"queue\":\"sales\",\"first_queue\":"
        "\"support\","
        "  \"agent\":\"alice\",\"priority\":5,\"wait\":12,\"talk\":60,\"age_days\":45,"
        "  \"attrs\":{\"invoice\":\"F-1\"},\"legal_hold\":true,"
        "  \"attempts\":[{\"agent\":\"alice\",\"device\":\"mobile\",\"outcome\":\"answered\","
        "                 \"start\":1767000000,\"duration\":12}],"
        "  \"decided_by\":[{\"policy\":\"longest-idle\",\"version\":\"0123456789abcdef\"}]},"
        "  \"expect\":{\"action\":\"anonymize\",\"review_in_days\":1.5,\"reason\":\"numbers go\"}},"
        " {\"name\":\"erase under hold\",\"record\":{\"legal_hold\":true},"
        "  \"request\":{\"role\":\"called\",\"received\":1767261000},"
        "  \"expect\":{\"action\":\"keep\",\"review_in_days\":null,\"reason\":\"hold\"}},"
        " {\"name\":\"erase\",\"record\":{},\"request\":{\"role\":\"called\",\"received\":"
        "1767261000},"
        "  \"expect\":{\"action\":\"delete\"}},"
        " {\"name\":\"a record field typo\",\"record\":{\"outcom\":\"answered\"},\"expect\":{}}]";
    sb_result *r = sb_result_new();
    int rc = sb_policy_test("ret", src, strlen(src), cases, strlen(cases), r);
    json_t *j = json_loads(sb_result_json(r, NULL), 0, NULL);
    json_t *cs = json_object_get(j, "cases");
    for (size_t i = 0; i < 4; i++) {
        json_t *c = json_array_get(cs, i);
        ok(json_is_true(json_object_get(c, "ok")), "retention case '%s' (%s)",
           json_string_value(json_object_get(c, "name")),
           json_string_value(json_object_get(c, "message")));
    }
    json_t *c4 = json_array_get(cs, 4);
    ok(rc == SB_EPOLICY && !json_is_true(json_object_get(c4, "ok")) &&
           strstr(json_string_value(json_object_get(c4, "message")),
                  "record: unknown field 'outcom'"),
       "a malformed retention case says why");
    json_decref(j);

    /* Decision checking. */
    static const struct {
        const char *ret, *msg;
    } bad[] = {
        {"{ keep = true, delete = true }", "'keep' and 'delete' cannot go together"},
        {"{ keep = 1 }", "keep: expected true, got 1"},
        {"{ delete = true, review_in_days = 3 }",
         "'review_in_days' goes only with 'keep' or 'anonymize'"},
        {"{ keep = true, review_in_days = 0 }",
         "review_in_days: expected a number of days in (0, 36600], got 0"},
        {"{ keep = true, review_in_days = 36601 }",
         "review_in_days: expected a number of days in (0, 36600], got 36601"},
        {"{ keep = true, keep_until = 1 }",
         "keep_until: expected a Unix time after now (and within 100 years), got 1"},
        {"{ keep = true, review_in_days = 1, keep_until = 2e9 }",
         "'review_in_days' and 'keep_until' cannot go together"},
        {"{ keep = true, reason = ('x'):rep(129) }", "reason: longer than 128 bytes"},
        {"{ archive = true }", "unknown field 'archive'"},
        {"{ keep = true, reveiw_in_days = 3 }",
         "unknown field 'reveiw_in_days' (did you mean 'review_in_days'?)"},
        {"{ anonymise = true }", "unknown field 'anonymise' (did you mean 'anonymize'?)"},
        {"{ keep = true, keep_untill = 2e9 }",
         "unknown field 'keep_untill' (did you mean 'keep_until'?)"},
        {"{ keep = false }", "keep: expected true, got false"},
        {"'delete'", "expected a table, got 'delete'"},
        {"{ keep = true }, { delete = true }",
         "expected one decision table, got 2 values (one table holds a whole decision: "
         "{ anonymize = true, review_in_days = ... })"},
        {"setmetatable({}, {__index = function() return true end})",
         "a table with a metatable is not a decision; return a plain table"},
    };
    for (size_t i = 0; i < countof(bad); i++) {
        char s[400];
        snprintf(s, sizeof s,
                 "local P = {}\nfunction P.retain(record, ctx)\nreturn %s\nend\nreturn P\n",
                 bad[i].ret);
        const char *c1 = "[{\"name\":\"x\",\"record\":{},\"expect\":{}}]";
        rc = sb_policy_test("rbad", s, strlen(s), c1, strlen(c1), r);
        j = json_loads(sb_result_json(r, NULL), 0, NULL);
        json_t *got = json_object_get(json_array_get(json_object_get(j, "cases"), 0), "got");
        const char *err = json_string_value(json_object_get(got, "error"));
        char want[300];
        snprintf(want, sizeof want, "rbad.lua:3: retain returned invalid decision: %s", bad[i].msg);
        ok(err && !strcmp(err, want), "%s -> %s", bad[i].ret, err ? err : "(none)");
        json_decref(j);
    }
    const char *e1 =
        "local P = {}\nfunction P.erase(record, request, ctx)\nreturn {}\nend\nreturn P\n";
    const char *c2 = "[{\"name\":\"x\",\"record\":{},\"request\":{},\"expect\":{}}]";
    sb_policy_test("ebad", e1, strlen(e1), c2, strlen(c2), r);
    ok(strstr(sb_result_json(r, NULL), "expected one of 'delete', 'anonymize' or 'keep'") != NULL,
       "erase must choose");
    const char *c3 = "[{\"name\":\"x\",\"record\":{},\"expect\":{\"action\":\"error\","
                     "\"error\":\"ebad.lua: the policy has no 'retain' hook\"}}]";
    int trc = sb_policy_test("ebad", e1, strlen(e1), c3, strlen(c3), r);
    ok(trc == 0, "a file without retain: a failure, as in the engine: %s", sb_result_json(r, NULL));
    sb_result_free(r);
}

#if defined(__has_include) && !defined(SB_RETAIN_IN_RUNTIME)
#if __has_include("retainstub.c")
#define RETAIN_STUBBED 1
#endif
#endif

static void test_retention_host(void)
{
#ifdef RETAIN_STUBBED
    ok(1, "# SKIP pol_retain/pol_erase: engine/src/retainstub.c still stands in for them");
#else
    pol_record rec = {.id = "r1",
                      .queue = "support",
                      .first_queue = "support",
                      .outcome = "abandoned",
                      .offered_ms = NOW - 10 * 86400000LL,
                      .ended_ms = NOW - 10 * 86400000LL + 30000,
                      .wait_ms = 30000,
                      .natt = 2,
                      .attempt = att_cb};
    pol_retention out;
    set_src(1, "ret7",
            "local P = {}\nfunction P.retain(record, ctx)\n"
            "  if record.age_days >= 7 then return { delete = true, reason = 'old' } end\n"
            "  return { keep = true, review_in_days = 7 - record.age_days }\nend\n"
            "function P.erase(r, q, ctx) return { anonymize = true, reason = q.role } end\n"
            "return P\n");
    ok(pol_retain(H, 1, "acme", "ret7", &rec, NOW, &out) == 0 && !out.failed &&
           out.action == RET_DELETE && !strcmp(out.reason, "old") && out.version[0] &&
           !strcmp(out.policy, "ret7"),
       "pol_retain: delete after 7 days (%s)", out.error);
    rec.ended_ms = NOW - 2 * 86400000LL;
    ok(pol_retain(H, 1, "acme", "ret7", &rec, NOW, &out) == 0 && out.action == RET_KEEP &&
           out.review_ms == NOW + 5 * 86400000LL,
       "pol_retain: keep, review in 5 days");
    pol_erasure req = {"called", NOW - 1000};
    ok(pol_erase(H, 1, "acme", "ret7", &rec, &req, NOW, &out) == 0 && out.action == RET_ANONYMIZE &&
           !strcmp(out.reason, "called"),
       "pol_erase: the request's role reaches the hook");
    ok(pol_erase(H, 1, "acme", "counter", &rec, &req, NOW, &out) == 0 && out.action == RET_NONE &&
           !out.failed,
       "no erase hook: no decision, no failure");
    /* A record view has no length; its attempts, a list, have one. */
    set_src(1, "retlen",
            "local P = {}\nfunction P.retain(record, ctx)\n"
            "  if #record.attempts ~= 2 then error('attempts: ' .. #record.attempts) end\n"
            "  return { keep = true, reason = tostring(#record) }\nend\nreturn P\n");
    ok(pol_retain(H, 1, "acme", "retlen", &rec, NOW, &out) == 0 && out.failed &&
           strstr(out.error, "retlen.lua:4: record view has no length (#): #record.attempts "
                             "counts its ring attempts; read its fields by name (record.id, "),
       "#record: the record view has no length, #record.attempts counts (%s)", out.error);
    pol_decision *d = route("ret7", NULL);
    ok(d->failed && strstr(d->error, "ret7.lua: the policy has no 'route' hook"),
       "routing through a retention-only policy fails: %s", d->error);
    set_src(1, "retbad", "local P = {}\nfunction P.retain() error('nope') end\nreturn P\n");
    nlogs = 0;
    for (int i = 0; i < 5; i++)
        pol_retain(H, 1, "acme", "retbad", &rec, NOW, &out);
    ok(logged(" record=r1: retbad.lua:2: nope"),
       "a retention failure's log line names the record it met");
    ok(logged("policy quarantined: account=acme policy=retbad") &&
           logged("; records it reviews are kept and retried a day later until") &&
           !logged("fallback"),
       "a retention policy's quarantine is logged with what becomes of records, not calls");
    ok(out.failed && strstr(out.error, "retbad.lua:2: nope"), "retain failures: %s", out.error);
    pol_retain(H, 1, "acme", "retbad", &rec, NOW, &out);
    ok(out.failed && strstr(out.error, "quarantined after 5"), "and quarantine");
    set_src(1, "retloop", "local P = {}\nfunction P.retain() while true do end end\nreturn P\n");
    pol_retain(H, 1, "acme", "retloop", &rec, NOW, &out);
    ok(out.failed && strstr(out.error, "instruction budget exceeded"), "retain runs under budget");
#endif
}

int main(void)
{
    pol_limits lim = {.instructions = 1000000,
                      .wall_ms = 1000,
                      .memory = 8 << 20,
                      .quarantine_after = 5,
                      .load_instructions = 10000000};
    H = pol_host_new(&lim, get_src, NULL, logline, NULL);
    test_views();
    test_random();
    test_kv();
    test_decisions();
    test_host();
    test_cases();
    test_cases_withheld();
    test_cases_wall_retry();
    test_cases_longest_wait();
    test_cases_suggest();
    test_check();
    test_check_fields();
    test_retention_cases();
    test_retention_host();
    pol_host_free(H);
    for (int i = 0; i < nsrc; i++)
        free(srcs[i].src);
    return done_testing();
}
