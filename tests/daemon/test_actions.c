/*
** test_actions.c — an action's JSON, which the library writes directly
** (sb_action_json, without building a jansson tree) and the daemon sends in
** responses and on the event stream (sbd_action_write): byte for byte what
** jansson prints for the same object with JSON_COMPACT | JSON_ENSURE_ASCII
** (the form sb_result_json uses), built here independently, for every action
** type and for field values of every kind — plain, empty, quotes,
** backslashes, control bytes, DEL, UTF-8 of every length, bytes that are not
** UTF-8 (the field is left out, as jansson refuses them) — plus the account
** filled in when the action has none, and a buffer too small.
*/
#include "serve.h"
#include "switchboard.h"
#include "tap.h"

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const values[] = {
    NULL,
    "",
    "alice",
    "sip:alice@pbx.example",
    "a \"quoted\" \\ back\\slash",
    "tab\there\nnew line\r\b\f",
    "\x01\x02\x1f control \x7f del",
    "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x93\x9e", /* 2, 3 and 4 bytes */
    "\xef\xbf\xbf \xf4\x8f\xbf\xbf",             /* U+FFFF, U+10FFFF */
    "bad \xff byte",
    "overlong \xc0\x80",
    "surrogate \xed\xa0\x80",
    "cut \xe2\x82",
    "past \xf4\x90\x80\x80",
    "/slash/ and <html> & 'quotes'",
};
#define NV (sizeof values / sizeof values[0])

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static unsigned pick(unsigned n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (unsigned)(rng % n);
}

/* What jansson prints for the action: the oracle. */
static char *oracle(const sb_action *a)
{
    static const char *const names[] = {NULL,       "ring", "cancel", "connect", "reject",
                                        "overflow", "wait", "end",    "agent"};
    unsigned t = (unsigned)a->type;
    json_t *o = json_object();
    json_object_set_new(o, "type", json_string(t < 9 && names[t] ? names[t] : "unknown"));
    const char *keys[] = {"account", "call", "agent", "device", "uri", "queue", "reason", "status"};
    const char *vals[] = {a->account, a->call_id,  a->agent_id, a->device,
                          a->uri,     a->queue_id, a->reason,   a->status};
    for (int i = 0; i < 8; i++)
        if (vals[i]) json_object_set_new(o, keys[i], json_string(vals[i]));
    if (a->type == SB_ACT_RING) json_object_set_new(o, "timeout", json_integer(a->timeout_s));
    if (a->type == SB_ACT_WAIT && a->due_ms)
        json_object_set_new(o, "due_ms", json_integer(a->due_ms));
    char *s = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII);
    json_decref(o);
    return s;
}

static int same(const sb_action *a, const char *what)
{
    char lib[8192];
    size_t n = sb_action_json(a, lib, sizeof lib);
    char *want = oracle(a);
    struct evbuffer *b = evbuffer_new();
    sbd_action_write(b, a, NULL, "");
    size_t m = evbuffer_get_length(b);
    char *mine = calloc(1, m + 1);
    evbuffer_remove(b, mine, m);
    evbuffer_free(b);
    int ok_ = want && n < sizeof lib && n == strlen(want) && !memcmp(lib, want, n) && n == m &&
              !memcmp(lib, mine, n);
    if (!ok_)
        diag("%s:\n#   jansson %s\n#   library %s\n#   daemon  %s", what, want ? want : "?",
             n < sizeof lib ? lib : "?", mine);
    free(mine);
    free(want);
    return ok_;
}

int main(void)
{
    /* Every type, each field in turn taking every value. */
    int bad = 0, tried = 0;
    for (int t = 0; t <= 9; t++)
        for (int f = 0; f < 8; f++)
            for (size_t v = 0; v < NV; v++) {
                sb_action a = {.type = (sb_action_type)t,
                               .account = "acme",
                               .call_id = "c1",
                               .agent_id = "alice",
                               .timeout_s = 20,
                               .due_ms = 1767603600000};
                const char **fields[] = {&a.account, &a.call_id,  &a.agent_id, &a.device,
                                         &a.uri,     &a.queue_id, &a.reason,   &a.status};
                *fields[f] = values[v];
                char what[64];
                snprintf(what, sizeof what, "type %d field %d value %zu", t, f, v);
                tried++;
                bad += !same(&a, what);
            }
    ok(bad == 0,
       "every type, every field, every kind of value: as jansson writes it (%d of "
       "%d differ)",
       bad, tried);

    /* Numbers. */
    const int timeouts[] = {0, 1, -1, 20, 2147483647, -2147483647 - 1};
    const int64_t dues[] = {0, 1, -1, 1767603600000, INT64_MAX, INT64_MIN};
    bad = 0;
    for (size_t i = 0; i < sizeof timeouts / sizeof timeouts[0]; i++)
        for (int t = 0; t <= 8; t++) {
            sb_action a = {.type = (sb_action_type)t,
                           .account = "acme",
                           .timeout_s = timeouts[i],
                           .due_ms = dues[i]};
            bad += !same(&a, "numbers");
        }
    ok(bad == 0, "timeouts and due times, zero, negative and extreme: alike");

    /* Random mixtures. */
    bad = 0;
    for (int i = 0; i < 20000; i++) {
        sb_action a = {.type = (sb_action_type)pick(10),
                       .account = values[pick(NV)],
                       .call_id = values[pick(NV)],
                       .agent_id = values[pick(NV)],
                       .device = values[pick(NV)],
                       .uri = values[pick(NV)],
                       .queue_id = values[pick(NV)],
                       .reason = values[pick(NV)],
                       .status = values[pick(NV)],
                       .timeout_s = (int)pick(100000) - 50000,
                       .due_ms = (int64_t)pick(1u << 31) * 1000};
        bad += !same(&a, "random");
        if (bad > 5) break;
    }
    ok(bad == 0, "20,000 random actions: alike");

    /* The account filled in. */
    sb_action a = {.type = SB_ACT_END, .call_id = "c9", .reason = "hangup"};
    struct evbuffer *b = evbuffer_new();
    ok(sbd_action_write(b, &a, "acme", ",") == 1, "written, after the separator");
    size_t m = evbuffer_get_length(b);
    char buf[256] = "";
    evbuffer_remove(b, buf, m < sizeof buf - 1 ? m : sizeof buf - 1);
    evbuffer_free(b);
    is_str(buf, ",{\"type\":\"end\",\"account\":\"acme\",\"call\":\"c9\",\"reason\":\"hangup\"}",
           "an action without an account gets the request's");
    char *s = sbd_action_json(&a, "acme");
    is_str(s, buf + 1, "sbd_action_json says the same");
    free(s);

    /* Longer than the writer's stack buffer: the heap path, alike. */
    static char longreason[2001];
    memset(longreason, 'r', 2000);
    sb_action la = {.type = SB_ACT_REJECT, .call_id = "c10", .reason = longreason};
    ok(same(&la, "a 2,000-byte reason"), "an action longer than 1 KiB: alike (the heap path)");

    /* Too small a buffer: the length needed, a cut that stays a string. */
    char small[10];
    memset(small, 'x', sizeof small);
    size_t need = sb_action_json(&a, small, sizeof small);
    ok(need == strlen("{\"type\":\"end\",\"call\":\"c9\",\"reason\":\"hangup\"}"),
       "a short buffer gets the length needed (%zu)", need);
    ok(memcmp(small, "{\"type\":\"", 9) == 0 && small[9] == 0,
       "and as much as fits, cut and NUL-terminated as snprintf does, as documented");
    is_int((int)sb_action_json(&a, NULL, 0), (int)need, "no buffer: just the length");
    return done_testing();
}
