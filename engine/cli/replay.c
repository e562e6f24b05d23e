/*
** replay.c — `switchboard replay FILE`: drive an engine from JSON lines,
** the way policy authors and tests use the engine without a server.
**
** Each line is one object (blank lines and lines starting with # are
** skipped); policies/README.md ("Replaying events") documents the format:
**   {"account": {...}}                          create/replace an account
**   {"agent": {...}, "account": "acme"}         create/replace an agent
**   {"queue": {...}, "account": "acme"}         create/replace a queue
**   {"policy": "name", "file": "x.lua", "account": "acme"}  upload a policy
**   {"at": "2026-01-05T09:00:00Z"} or {"at": 1767603600}   set the clock, fire timers
**   {"advance": 5}                              move the clock on (seconds), fire timers
**   {"type": "offer", ..., "account": "acme"}   an event (see sb_submit_json)
** "account" may be left out once an account exists: the last one named is
** used (one that names no account is not).
** Each line's actions are printed, and the decisions that kept a call
** waiting without one (print_waits); with --json every line of the output is
** one JSON object (json_line): a line's result, a clock move, the actions
** of the timers it fired. The
** clock only moves forward. A line that is malformed or that the engine
** refuses is an error; at the end a summary goes to stderr, and the exit
** status is 1 when any line failed or any policy failed (a routing
** decision fell back, or a retention hook failed).
*/
#include "switchboard.h"

#include "../daemon/daemon.h"
#include "cli.h"

/* Ticks one move of the clock makes, at most (replay_clock). */
#define REPLAY_TICKS_MAX 100000

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_POLICY_DIR "policies"
#define MAX_ADVANCE_S 3153600000.0 /* a hundred years */

static int64_t clock_ms = 1767600000000; /* 2026-01-05T08:00:00Z, a Monday */

static int64_t replay_clock(void *arg)
{
    return clock_ms;
}

static void replay_usage(FILE *f)
{
    fprintf(
        f,
        "usage: switchboard replay FILE [--data-dir DIR] [--policy-dir DIR] [--json]\n"
        "\n"
        "Run JSON-lines events (FILE, or - for stdin) through an engine on an injected\n"
        "clock (starting 2026-01-05T08:00:00Z) and print each line's actions, and the\n"
        "policies' decisions to keep a waiting call waiting (\"c1 waits in support: wait\n"
        "10 (policy longest-idle)\"). One JSON object a line; blank lines and lines\n"
        "starting with # are skipped:\n"
        "  {\"account\": {\"id\": \"acme\", ...}}          create or replace an account\n"
        "  {\"agent\": {...}}  {\"queue\": {...}}         create or replace an agent, a queue\n"
        "  {\"policy\": \"NAME\", \"file\": \"x.lua\"}       upload an account policy\n"
        "  {\"at\": \"2026-01-05T09:00:00Z\"} or {\"at\": 1767603600}\n"
        "                                            set the clock (never back), fire timers\n"
        "  {\"advance\": 5}                            move the clock on N >= 0 seconds\n"
        "  {\"type\": \"offer\", \"call\": \"c1\", ...}       an event (ring_result, hangup, ...)\n"
        "\"account\": \"ID\" on a line picks the account; left out, the last one is used.\n"
        "policies/README.md (\"Replaying events\") has the details.\n"
        "\n"
        "  --data-dir DIR    keep the engine's data there (default: a temporary\n"
        "                    directory in $TMPDIR, removed at the end, also when\n"
        "                    a signal ends the replay); not one a running\n"
        "                    `switchboard serve` holds: that is refused\n"
        "  --policy-dir DIR  the shared policies queues name (default: ./policies, the\n"
        "                    stock policies when run from the source tree). Every file\n"
        "                    must load: one that does not stops the replay before it\n"
        "                    starts. A missing default directory is a warning.\n"
        "  --json            print JSON lines instead: one object a line, for each\n"
        "                    line applied, each clock move and each firing of timers:\n"
        "                    {\"t_ms\":N,\"time\":\"...Z\",\"line\":N,\"what\":\"offer\",\n"
        "                    \"call\":\"c1\",\"result\":{\"actions\":[...]}}; \"what\" is\n"
        "                    account, agent, queue, policy, an event's type, clock\n"
        "                    (with \"to_ms\", \"to\") or timers (\"result\" as an\n"
        "                    event's); a line the engine refused has \"error\":\n"
        "                    {\"code\",\"message\",\"field\"} instead of \"result\"\n"
        "\n"
        "A summary (lines, errors, policy failures) goes to stderr at the end.\n"
        "Exit status: 0 every line applied and no policy failed; 1 a line was refused\n"
        "or malformed, a policy failed (a routing decision fell back, or a retention\n"
        "hook failed), or the policy directory did not load; 2 a usage error, or FILE\n"
        "or --policy-dir cannot be read.\n");
}

/* "at": Unix seconds (an integer), or a string as cli_parse_time takes it. */
static int parse_time(json_t *v, int64_t *ms)
{
    if (json_is_integer(v)) {
        json_int_t s = json_integer_value(v);
        if (s < 0 || s > 253402300799) return -1; /* 9999-12-31 */
        *ms = (int64_t)s * 1000;
        return 0;
    }
    *ms = json_is_string(v) ? cli_parse_time(json_string_value(v)) : -1;
    return *ms < 0 ? -1 : 0;
}

static void print_time(int64_t ms)
{
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&s, &tm);
    printf("%02d:%02d:%02d", tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/* The calls whose routing decision fell back since the last actions were
** printed: the engine logs each failure naming the call ("policy failure:
** account=... call=ID: ..."), and the actions alone do not say. */
static char fb_calls[16][128];
static int fb_n;

static void note_fallback(const char *line)
{
    const char *c = strncmp(line, "policy failure: ", 16) ? NULL : strstr(line, " call=");
    const char *end = c ? strstr(c + 6, ": ") : NULL;
    if (!end || fb_n == (int)(sizeof fb_calls / sizeof *fb_calls) ||
        (size_t)(end - c - 6) >= sizeof *fb_calls)
        return;
    snprintf(fb_calls[fb_n++], sizeof *fb_calls, "%.*s", (int)(end - c - 6), c + 6);
}

static int fell_back(const char *call)
{
    for (int i = 0; call && i < fb_n; i++)
        if (!strcmp(fb_calls[i], call)) return 1;
    return 0;
}

static void print_actions(sb_result *res)
{
    for (size_t i = 0; i < sb_result_count(res); i++) {
        const sb_action *a = sb_result_action(res, i);
        printf("    ");
        switch (a->type) {
        case SB_ACT_RING:
            printf("ring %s for %s on %s (%s) for %ds", a->agent_id, a->call_id, a->device, a->uri,
                   a->timeout_s);
            break;
        case SB_ACT_CANCEL:
            printf("cancel ring of %s for %s", a->agent_id, a->call_id);
            break;
        case SB_ACT_CONNECT:
            printf("connect %s to %s", a->call_id, a->agent_id);
            break;
        case SB_ACT_REJECT:
            printf("reject %s: %s", a->call_id, a->reason);
            break;
        case SB_ACT_OVERFLOW:
            printf("move %s to queue %s: %s", a->call_id, a->queue_id, a->reason ? a->reason : "");
            break;
        case SB_ACT_WAIT:
            printf("%s waits in %s", a->call_id, a->queue_id);
            break;
        case SB_ACT_END:
            printf("%s ended: %s", a->call_id, a->reason);
            break;
        case SB_ACT_AGENT:
            printf("agent %s is %s%s%s", a->agent_id, a->status, a->reason ? ": " : "",
                   a->reason ? a->reason : "");
            break;
        }
        int decided = a->type == SB_ACT_RING || a->type == SB_ACT_REJECT ||
                      a->type == SB_ACT_OVERFLOW || a->type == SB_ACT_WAIT;
        printf("%s\n",
               decided && fell_back(a->call_id) ? " (the fallback: the policy failed)" : "");
    }
    fb_n = 0;
}

/* The engine's log while the replay runs goes to stderr, stamped with the
** replay clock. While the engine opens, its errors are dropped: the one that
** matters, a policy directory that does not load, comes back from sb_reload
** right after, as a result rather than a log line. */
typedef struct replay_log {
    int opening;
} replay_log;

static void log_sink(void *arg, sb_log_level lvl, const char *line)
{
    static const char *const names[] = {"error", "warn", "info", "debug"};
    replay_log *l = arg;
    if (l->opening && lvl == SB_LOG_ERROR) return;
    note_fallback(line);
    char t[32];
    fprintf(stderr, "%s %s %s\n", cli_iso_time(clock_ms, t, sizeof t), names[lvl & 3], line);
}

/* "DIR/a/b.lua: a/b.lua:5: msg" -> "DIR/a/b.lua:5: msg". */
static void print_dir_error(const char *dir, const char *msg)
{
    const char *sep = strstr(msg, ": ");
    if (sep) {
        const char *rest = sep + 2, *colon = strchr(rest, ':');
        size_t plen = (size_t)(sep - msg), nlen = colon ? (size_t)(colon - rest) : 0;
        if (colon && nlen && nlen <= plen && memcmp(msg + plen - nlen, rest, nlen) == 0 &&
            (nlen == plen || msg[plen - nlen - 1] == '/')) {
            fprintf(stderr, "switchboard replay: the policies in %s do not load:\n%.*s%s\n", dir,
                    (int)plen, msg, colon);
            return;
        }
    }
    fprintf(stderr, "switchboard replay: the policies in %s do not load:\n%s\n", dir, msg);
}

typedef struct replay_run {
    const char *file;
    int lineno, errors;
} replay_run;

static void line_error(replay_run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void line_error(replay_run *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fflush(stdout);
    fprintf(stderr, "%s:%d: ", r->file, r->lineno);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    r->errors++;
}

/* --json: what a line did, as one JSON object on its own line:
** {"t_ms":N,"time":"...Z","line":N,"what":"offer",...extra, and "result":
** the engine's result (an event's {"actions":[...]}, a document) or "error":
** {"code","message","field"}}. rc is the engine's code for res; res NULL:
** neither (a clock line). extra's members (taken) go after "what". */
static void json_line(const replay_run *r, int64_t at, const char *what, json_t *extra, int rc,
                      sb_result *res)
{
    char t[32];
    json_t *o = json_pack("{s:I, s:s, s:i, s:s}", "t_ms", (json_int_t)at, "time",
                          cli_iso_time(at, t, sizeof t), "line", r->lineno, "what", what);
    if (o && extra) json_object_update(o, extra);
    json_decref(extra);
    if (o && res) {
        json_t *j = json_loads(sb_result_json(res, NULL), 0, NULL);
        if (rc)
            json_object_set(o, "error", json_object_get(j, "error"));
        else
            json_object_set(o, "result", j ? j : json_object());
        json_decref(j);
    }
    char *line = o ? json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII | CLI_JSON_REALS) : NULL;
    printf("%s\n", line ? line : "{\"what\":\"out of memory\"}");
    free(line);
    json_decref(o);
}

static const char *json_kind(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
    case JSON_REAL:
        return "a number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    default:
        return "null";
    }
}

/* The calls the file's events named that may still be live, each with the
** count of decisions its trace had when last read. A decision that keeps a
** call waiting makes an action only when the call comes to its queue (the
** offer's "waits in"): a wait after a failed ring, or a wake-up that decides
** to wait again, showed nothing, and an author could not tell the call was
** still there, nor when its policy would look again. The text output shows
** those decisions from the call's trace (GET /v1/calls/{id}'s). */
typedef struct live_call {
    char account[256], id[256];
    long long decisions;
    char last[512]; /* the last decision seen: queue, policy, fallback, detail */
} live_call;

static live_call *live;
static size_t nlive, live_cap;

static void track_call(const char *account, const char *id)
{
    for (size_t i = 0; i < nlive; i++)
        if (!strcmp(live[i].id, id) && !strcmp(live[i].account, account)) return;
    if (nlive == live_cap) {
        size_t cap = live_cap ? live_cap * 2 : 16;
        live_call *v = realloc(live, cap * sizeof *v);
        if (!v) return; /* not shown, nothing else lost */
        live = v, live_cap = cap;
    }
    live_call *c = &live[nlive++];
    snprintf(c->account, sizeof c->account, "%s", account);
    snprintf(c->id, sizeof c->id, "%s", id);
    c->decisions = 0;
    c->last[0] = 0;
}

/* The engine's count of wait decisions (sb_stats), -1 when not read. */
static long long waits_decided(sb_engine *eng)
{
    sb_result *st = sb_result_new();
    json_t *doc =
        st && sb_stats(eng, st) == 0 ? json_loads(sb_result_json(st, NULL), 0, NULL) : NULL;
    json_t *w = json_object_get(json_object_get(doc, "decisions"), "wait");
    long long n = json_is_integer(w) ? (long long)json_integer_value(w) : -1;
    json_decref(doc);
    sb_result_free(st);
    return n;
}

/* Does an action of res name call id of account (of type, or any with
** type -1: an SB_ACT_WAIT is a wait announced, and printed already)? */
static int res_names(sb_result *res, const char *account, const char *id, int type)
{
    for (size_t i = 0; i < sb_result_count(res); i++) {
        const sb_action *a = sb_result_action(res, i);
        if ((type < 0 || (int)a->type == type) && a->call_id && !strcmp(a->call_id, id) &&
            !strcmp(a->account, account))
            return 1;
    }
    return 0;
}

/* Print the policies' wait decisions since the last look ("    c1 waits in
** support: wait 10 (policy mine)"), besides those res announced and those
** the same as the call's decision before (a policy waking every 10 s to
** wait again would print a line every 10 s); forget the calls that are
** over. header: a tick whose "timers" line is not printed yet (it had no
** action), printed before the first decision. */
static void print_waits(sb_engine *eng, sb_result *res, int header)
{
    /* Only when the engine decided more waits than res announced is there
    ** one to show, on any call: then each call is read. Otherwise those res
    ** names alone, whose decisions it shows (their counts kept up): a look
    ** at every live call after each line made a replay of many waiting
    ** calls take a time that grew with their square. */
    static long long seen;
    long long decided = waits_decided(eng);
    size_t announced = 0;
    for (size_t i = 0; i < sb_result_count(res); i++)
        announced += sb_result_action(res, i)->type == SB_ACT_WAIT;
    int all = decided < 0 || decided - seen > (long long)announced;
    seen = decided;
    sb_result *got = sb_result_new();
    for (size_t i = 0; got && i < nlive;) {
        live_call *c = &live[i];
        if (!all && !res_names(res, c->account, c->id, -1)) {
            i++;
            continue;
        }
        json_t *doc = NULL;
        if (sb_call_get(eng, c->account, c->id, got) == 0)
            doc = json_loads(sb_result_json(got, NULL), 0, NULL);
        const char *state = json_string_value(json_object_get(doc, "state"));
        if (!state || !strcmp(state, "ended")) {
            json_decref(doc);
            live[i] = live[--nlive];
            continue;
        }
        long long n = json_integer_value(json_object_get(doc, "decisions"));
        json_t *trace = json_object_get(doc, "trace");
        size_t len = json_array_size(trace),
               fresh = n > c->decisions ? (size_t)(n - c->decisions) : 0;
        if (fresh > len) fresh = len; /* the trace keeps the first 4 and the last 12 */
        int skip = fresh && res_names(res, c->account, c->id, SB_ACT_WAIT);
        const char *queue = json_string_value(json_object_get(doc, "queue"));
        for (size_t j = len - fresh; j < len; j++) {
            json_t *e = json_array_get(trace, j);
            const char *d = json_string_value(json_object_get(e, "decision")),
                       *pol = json_string_value(json_object_get(e, "policy")),
                       *detail = json_string_value(json_object_get(e, "detail"));
            int fb = json_is_true(json_object_get(e, "fallback"));
            char key[sizeof c->last];
            snprintf(key, sizeof key, "%s|%s|%s|%d|%s", d ? d : "", queue ? queue : "",
                     pol ? pol : "", fb, detail ? detail : "");
            int same = !strcmp(key, c->last);
            snprintf(c->last, sizeof c->last, "%s", key);
            if (!d || strcmp(d, "wait") != 0 || !pol || !*pol) continue;
            if (skip) { /* the offer's "waits in" said it */
                skip = 0;
                continue;
            }
            if (same) continue;
            if (header) {
                print_time(clock_ms);
                printf(" timers\n");
                header = 0;
            }
            printf("    %s waits in %s: %s (%s%s)\n", c->id, queue ? queue : "?",
                   detail ? detail : "wait", fb ? "fallback for policy " : "policy ", pol);
        }
        c->decisions = n;
        json_decref(doc);
        i++;
    }
    sb_result_free(got);
}

/* Move the clock to target, firing every timer due on the way at its own
** time: each tick's actions are printed as "timers" (with --json, an object
** whose "result" is {"actions":[...]}, as an event's). */
static void run_clock(sb_engine *eng, sb_result *res, int64_t target, replay_run *r, int as_json)
{
    int rc = 0;
    if (as_json) {
        char t[32];
        json_line(r, clock_ms, "clock",
                  json_pack("{s:I, s:s}", "to_ms", (json_int_t)target, "to",
                            cli_iso_time(target, t, sizeof t)),
                  0, NULL);
    } else {
        print_time(clock_ms);
        printf(" clock -> ");
        /* Another day: its date too ("09:02:15 clock -> 2026-11-20 09:00:00"
        ** went back to the 20th, not to nine o'clock). */
        if (target / 86400000 != clock_ms / 86400000) {
            char day[40];
            const char *iso = cli_iso_time(target, day, sizeof day), *tee = strchr(iso, 'T');
            printf("%.*s ", tee ? (int)(tee - iso) : (int)strlen(iso), iso); /* year 10000 too */
        }
        print_time(target);
        printf("\n");
    }
    int steps = 0;
    for (; steps < REPLAY_TICKS_MAX; steps++) {
        int64_t due = sb_next_deadline(eng);
        if (due > target) break;
        if (due > clock_ms) clock_ms = due;
        rc = sb_tick(eng, res);
        if (rc) break;
        if (as_json) {
            if (sb_result_count(res)) json_line(r, clock_ms, "timers", NULL, 0, res);
        } else if (!sb_result_count(res)) {
            print_waits(eng, res, 1);
        } else {
            print_time(clock_ms);
            printf(" timers\n");
            print_actions(res);
            print_waits(eng, res, 0);
        }
    }
    if (rc && as_json)
        json_line(r, clock_ms, "timers", NULL, rc, res);
    else if (rc)
        printf("    tick failed: %s\n", sb_result_message(res));
    if (rc) r->errors++;
    /* Timers that keep coming due (a call waiting with wait = 0 again and
    ** again) stop being fired at their own times here: said, and counted
    ** as an error, rather than the clock jumping past them unnoticed. */
    int64_t next = rc ? INT64_MAX : sb_next_deadline(eng);
    if (steps == REPLAY_TICKS_MAX && next <= target) {
        char t[40], n[40];
        fprintf(stderr,
                "switchboard: replay: moving the clock to %s ticked %d times and timers were "
                "still due (the next at %s): those were not fired at their times\n",
                cli_iso_time(target, t, sizeof t), REPLAY_TICKS_MAX,
                cli_iso_time(next, n, sizeof n));
        r->errors++;
    }
    clock_ms = target;
}

/* One line: applied and printed, or an error counted in r. */
static void replay_line(sb_engine *eng, sb_result *res, json_t *o, char *account, size_t acap,
                        int as_json, replay_run *r)
{
    json_t *acc = json_object_get(o, "account");
    json_t *type = json_object_get(o, "type"), *at = json_object_get(o, "at"),
           *adv = json_object_get(o, "advance");
    if (acc && !json_is_string(acc) && !json_is_object(acc)) {
        line_error(r, "'account' must be an account id (a string) or, to create one, an object");
        return;
    }
    /* The account a line names is the one later lines use, unless there is
    ** no such account: then the one before stays. */
    char before[256];
    snprintf(before, sizeof before, "%s", account);
    int named = json_is_string(acc); /* acc goes with the key, before an event's submit */
    if (named) snprintf(account, acap, "%s", json_string_value(acc));
    int rc = 0;
    char *doc = NULL;
    const char *what = NULL;
    json_t *extra = NULL; /* --json: what the line names besides "what" */
    char label[300];
    if (type) {
        json_t *call = json_object_get(o, "call");
        if (!json_is_string(type)) {
            line_error(r, "'type' must be a string (offer, ring_result, hangup, ...), not %s",
                       json_kind(type));
            return;
        }
        if (call && !json_is_string(call)) {
            line_error(r, "'call' must be a string (the call id), not %s", json_kind(call));
            return;
        }
        if (!*account) {
            line_error(r, "an event before any account: put an {\"account\": {...}} line first");
            return;
        }
        snprintf(label, sizeof label, "%s%s%s", json_string_value(type), call ? " " : "",
                 call ? json_string_value(call) : "");
        what = json_string_value(type);
        if (call) extra = json_pack("{s:s}", "call", json_string_value(call));
        json_object_del(o, "account");
        doc = json_dumps(o, JSON_COMPACT | CLI_JSON_REALS);
        if (!as_json) {
            print_time(clock_ms);
            printf(" %s", label);
        }
        rc = sb_submit_json(eng, account, doc, strlen(doc), res);
    } else if (json_is_object(acc)) {
        json_t *id = json_object_get(acc, "id");
        doc = json_dumps(acc, JSON_COMPACT | CLI_JSON_REALS);
        what = "account";
        if (!as_json) {
            print_time(clock_ms);
            printf(" account");
        }
        rc = sb_account_put(eng, doc, strlen(doc), res);
        if (!rc && json_is_string(id)) snprintf(account, acap, "%s", json_string_value(id));
    } else if (json_object_get(o, "agent") || json_object_get(o, "queue")) {
        int is_agent = json_object_get(o, "agent") != NULL;
        what = is_agent ? "agent" : "queue";
        json_t *d = json_object_get(o, what);
        if (!json_is_object(d)) {
            line_error(r, "'%s' must be an object (the %s's document), not %s", what, what,
                       json_kind(d));
            return;
        }
        if (!*account) {
            line_error(r, "%s before any account: put an {\"account\": {...}} line first",
                       is_agent ? "an agent" : "a queue");
            return;
        }
        doc = json_dumps(d, JSON_COMPACT | CLI_JSON_REALS);
        if (!as_json) {
            print_time(clock_ms);
            printf(" %s", what);
        }
        rc = is_agent ? sb_agent_put(eng, account, doc, strlen(doc), res)
                      : sb_queue_put(eng, account, doc, strlen(doc), res);
    } else if (json_object_get(o, "policy")) {
        json_t *name = json_object_get(o, "policy"), *file = json_object_get(o, "file");
        if (!json_is_string(name)) {
            line_error(r, "'policy' must be the policy's name (a string), not %s", json_kind(name));
            return;
        }
        if (!json_is_string(file)) {
            line_error(r, "policy '%s': 'file' must be the path of its .lua file (a string)",
                       json_string_value(name));
            return;
        }
        if (!*account) {
            line_error(r, "a policy before any account: put an {\"account\": {...}} line first");
            return;
        }
        const char *pf = json_string_value(file);
        FILE *pfh = fopen(pf, "rb");
        if (!pfh) {
            line_error(r, "policy '%s': cannot read %s: %s", json_string_value(name), pf,
                       strerror(errno));
            return;
        }
        fclose(pfh);
        size_t sl;
        char *src = cli_read_file(pf, &sl); /* says why it cannot */
        if (!src) {
            line_error(r, "policy '%s': cannot read %s", json_string_value(name), pf);
            return;
        }
        /* The engine names the policy's chunk NAME.lua in its errors and
        ** logs: say which file that is. */
        what = "policy";
        extra = json_pack("{s:s, s:s}", "policy", json_string_value(name), "file", pf);
        if (!as_json) {
            print_time(clock_ms);
            printf(" policy %s (from %s)", json_string_value(name), pf);
        }
        rc = sb_policy_put(eng, account, json_string_value(name), src, sl, NULL, res);
        free(src);
    } else if (at || adv) {
        int64_t target;
        char t1[32], t2[32];
        if (at && adv) {
            line_error(r, "a line sets the clock with 'at' or 'advance', not both");
            return;
        }
        if (adv) {
            double s = json_number_value(adv);
            if (!json_is_number(adv)) {
                line_error(r, "'advance' must be a number of seconds (0 or more), not %s",
                           json_kind(adv));
                return;
            }
            if (s < 0 || s > MAX_ADVANCE_S) {
                line_error(r,
                           "'advance' is %g: it must be 0 to %.0f seconds (the clock only "
                           "moves forward)",
                           s, MAX_ADVANCE_S);
                return;
            }
            target = clock_ms + (int64_t)llround(s * 1000);
        } else {
            if (parse_time(at, &target)) {
                line_error(r, "'at' must be Unix seconds, YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ");
                return;
            }
            if (target < clock_ms) {
                line_error(r,
                           "'at' %s is before the replay clock, %s: the clock only moves "
                           "forward",
                           cli_iso_time(target, t1, sizeof t1),
                           cli_iso_time(clock_ms, t2, sizeof t2));
                return;
            }
        }
        run_clock(eng, res, target, r, as_json);
        return;
    } else {
        char keys[200] = "";
        const char *k;
        json_t *v;
        json_object_foreach(o, k, v)
        {
            size_t n = strlen(keys);
            if (n + strlen(k) + 4 >= sizeof keys) break;
            snprintf(keys + n, sizeof keys - n, "%s'%s'", n ? ", " : "", k);
        }
        line_error(r,
                   "unknown line (keys: %s): expected an account, agent, queue, policy, at or "
                   "advance line, or an event with \"type\"",
                   *keys ? keys : "none");
        return;
    }
    if (as_json) {
        json_line(r, clock_ms, what, extra, rc, res);
    } else if (rc) {
        /* The field the engine names leads, unless the message says it
        ** already: "schedule[1].from: expected HH:MM", not the message alone,
        ** which does not say which window of which list was wrong. A policy
        ** line's error says its file:line, the place that matters there. */
        const char *m = sb_result_message(res), *f = sb_result_field(res);
        if (!*m) m = sb_strerror(rc);
        if (f && *f && strcmp(what, "policy") != 0 && !strstr(m, f))
            printf(" -> error %s: %s\n", f, m);
        else
            printf(" -> error %s\n", m);
    } else {
        printf("\n");
        print_actions(res);
        if (type && json_is_string(json_object_get(o, "call")))
            track_call(account, json_string_value(json_object_get(o, "call")));
        print_waits(eng, res, 0);
    }
    if (!as_json) json_decref(extra);
    if (rc) {
        r->errors++;
        const char *f = sb_result_field(res);
        if (rc == SB_ENOTFOUND && named && f && !strcmp(f, "account"))
            snprintf(account, acap, "%s", before);
    }
    free(doc);
}

int cli_replay(int argc, char **argv)
{
    const char *file = NULL, *data_dir = NULL, *policy_dir = NULL;
    int as_json = 0;
    static const char *const once[] = {"--data-dir", "--policy-dir", NULL};
    if (cli_twice("replay", argc, argv, once)) {
        replay_usage(stderr);
        return 2;
    }
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (cli_is_help(a, 0)) {
            replay_usage(stdout);
            return 0;
        }
        const char *v, *flag = NULL;
        if (cli_flag("--data-dir", argc, argv, &i, &v))
            flag = "--data-dir", data_dir = v;
        else if (cli_flag("--policy-dir", argc, argv, &i, &v))
            flag = "--policy-dir", policy_dir = v;
        if (flag && (!v || !*v)) {
            fprintf(stderr, "switchboard replay: %s needs a directory\n", flag);
            replay_usage(stderr);
            return 2;
        }
        if (flag)
            continue;
        else if (!strcmp(a, "--json"))
            as_json = 1;
        else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "switchboard replay: unknown flag '%s'\n", a);
            replay_usage(stderr);
            return 2;
        } else if (file) {
            fprintf(stderr, "switchboard replay: one FILE only ('%s' and '%s')\n", file, a);
            replay_usage(stderr);
            return 2;
        } else
            file = a;
    }
    if (!file) {
        fprintf(stderr, "switchboard replay: no FILE\n");
        replay_usage(stderr);
        return 2;
    }
    if (cli_refuse_served_dir("replay", data_dir)) return 1;
    struct stat st;
    if (!policy_dir) {
        policy_dir = DEFAULT_POLICY_DIR;
        if (stat(policy_dir, &st) || !S_ISDIR(st.st_mode)) {
            fprintf(stderr,
                    "switchboard replay: warning: no directory '%s' here (the default "
                    "--policy-dir): queues can name only policies the replay uploads; "
                    "pass --policy-dir DIR for the stock policies\n",
                    policy_dir);
            policy_dir = NULL;
        }
    } else if (stat(policy_dir, &st) || !S_ISDIR(st.st_mode)) {
        fprintf(stderr, "switchboard replay: --policy-dir %s: %s\n", policy_dir,
                errno ? strerror(errno) : "not a directory");
        return 2;
    }
    FILE *f = strcmp(file, "-") == 0 ? stdin : fopen(file, "r");
    if (!f) {
        fprintf(stderr, "switchboard replay: %s: %s\n", file, strerror(errno));
        return 2;
    }
    const char *tmpdir = NULL; /* removed at the end, or by a signal ending the replay */
    if (!data_dir && !(data_dir = tmpdir = cli_tmpdir_make("replay"))) {
        if (f != stdin) fclose(f);
        return 1;
    }
    setvbuf(stdout, NULL, _IOLBF, 0); /* keep stdout in step with stderr's errors */
    replay_log lg = {.opening = 1};
    sb_config cfg;
    sb_config_init(&cfg);
    cfg.data_dir = data_dir;
    cfg.policy_dir = policy_dir;
    cfg.sync = SB_SYNC_NONE;
    cfg.clock = replay_clock;
    cfg.map_size = 16 << 20;
    cfg.log = log_sink;
    cfg.log_arg = &lg;
    sb_engine *eng = NULL;
    sb_result *res = sb_result_new();
    int status = 0;
    if (sb_open(&eng, &cfg, res)) {
        fprintf(stderr, "switchboard replay: %s\n", sb_result_message(res));
        status = 1;
    } else if (policy_dir && sb_reload(eng, res)) {
        print_dir_error(policy_dir, sb_result_message(res));
        status = 1;
    }
    lg.opening = 0;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    replay_run r = {.file = strcmp(file, "-") == 0 ? "stdin" : file};
    int lines = 0;
    char account[256] = "";
    while (!status && (n = getline(&line, &cap, f)) > 0) {
        fb_n = 0;
        r.lineno++;
        while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            line[--n] = 0;
        char *p = line;
        /* An editor's UTF-8 byte-order mark, as the configuration file
        ** skips it. */
        if (r.lineno == 1) p += sbd_bom(p, (size_t)n);
        /* A NUL would end the text JSON reads: the rest of the line unseen. */
        const char *nul = memchr(line, 0, (size_t)n);
        if (nul) {
            lines++;
            line_error(&r, "a NUL byte at column %d: a line is JSON text", (int)(nul - line) + 1);
            continue;
        }
        while (*p == ' ' || *p == '\t')
            p++;
        if (!*p || *p == '#') continue;
        lines++;
        json_error_t err;
        json_t *o = json_loads(p, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &err);
        if (!o)
            line_error(&r, "not JSON: %s (column %d)", sbd_json_error(&err), err.column);
        else if (!json_is_object(o))
            line_error(&r, "a line must be a JSON object, not %s", json_kind(o));
        else
            replay_line(eng, res, o, account, sizeof account, as_json, &r);
        json_decref(o);
    }
    free(line);
    /* getline fails at the end of the file and on a read error alike: a
    ** FILE that is a directory, or an I/O error half way, is not a replay
    ** that ran to its end. */
    if (!status && ferror(f)) {
        fprintf(stderr, "switchboard replay: %s: %s\n", file, strerror(errno ? errno : EIO));
        status = 2;
    }
    if (f != stdin) fclose(f);
    if (!status) {
        long long failures = 0, fallbacks = 0, quarantined = 0;
        if (sb_stats(eng, res) == 0) {
            json_t *st_doc = json_loads(sb_result_json(res, NULL), 0, NULL);
            failures = cli_stat(st_doc, "policy", "failures");
            fallbacks = cli_stat(st_doc, "decisions", "fallback");
            quarantined = cli_stat(st_doc, "policy", "quarantined");
            json_decref(st_doc);
        }
        fprintf(stderr,
                "replay: %d line%s, %d error%s, %lld policy failure%s (%lld routing decision%s "
                "fell back%s)\n",
                lines, lines == 1 ? "" : "s", r.errors, r.errors == 1 ? "" : "s", failures,
                failures == 1 ? "" : "s", fallbacks, fallbacks == 1 ? "" : "s",
                quarantined ? ", a policy quarantined" : "");
        /* A retention hook's failure too: a run checking retention policies
        ** must not pass with one failing. */
        status = r.errors || fallbacks || failures ? 1 : 0;
    }
    sb_result_free(res);
    sb_close(eng);
    free(live);
    live = NULL, nlive = live_cap = 0;
    if (tmpdir) cli_tmpdir_remove();
    return status;
}
