/*
** replay.c — `switchboard replay FILE`: drive an engine from JSON lines,
** the way policy authors and tests use the engine without a server.
**
** Each line is one object (blank lines and lines starting with # are
** skipped):
**   {"account": {...}}                          create/replace an account
**   {"agent": {...}, "account": "acme"}         create/replace an agent
**   {"queue": {...}, "account": "acme"}         create/replace a queue
**   {"policy": "name", "file": "x.lua", "account": "acme"}  upload a policy
**   {"at": "2026-01-05T09:00:00Z"} or {"at": 1767603600}   set the clock, fire timers
**   {"advance": 5}                              move the clock on (seconds), fire timers
**   {"type": "offer", ..., "account": "acme"}   an event (see sb_submit_json)
** "account" may be left out once an account exists: the last one is used.
** Each line's actions are printed; --json prints each result as JSON.
*/
#include "switchboard.h"

#include "cli.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int64_t clock_ms = 1767600000000; /* 2026-01-05T08:00:00Z, a Monday */

static int64_t replay_clock(void *arg)
{
    return clock_ms;
}

static int parse_time(json_t *v, int64_t *ms)
{
    if (json_is_integer(v)) {
        *ms = json_integer_value(v) * 1000;
        return 0;
    }
    if (!json_is_string(v)) return -1;
    struct tm tm = {0};
    const char *end = strptime(json_string_value(v), "%Y-%m-%dT%H:%M:%S", &tm);
    if (!end || (*end && strcmp(end, "Z") != 0)) return -1;
    *ms = (int64_t)timegm(&tm) * 1000;
    return 0;
}

static void print_time(int64_t ms)
{
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&s, &tm);
    printf("%02d:%02d:%02d", tm.tm_hour, tm.tm_min, tm.tm_sec);
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
        printf("\n");
    }
}

int cli_replay(int argc, char **argv)
{
    const char *file = NULL, *data_dir = NULL, *policy_dir = "policies";
    int as_json = 0;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--data-dir") == 0 && i + 1 < argc)
            data_dir = argv[++i];
        else if (strcmp(argv[i], "--policy-dir") == 0 && i + 1 < argc)
            policy_dir = argv[++i];
        else if (strcmp(argv[i], "--json") == 0)
            as_json = 1;
        else
            file = argv[i];
    }
    if (!file) {
        fprintf(stderr, "usage: switchboard replay FILE [--data-dir DIR] [--policy-dir DIR] "
                        "[--json]\n");
        return 2;
    }
    char tmpdir[] = "/tmp/switchboard-replay-XXXXXX";
    if (!data_dir && !(data_dir = mkdtemp(tmpdir))) {
        perror("switchboard: mkdtemp");
        return 1;
    }
    FILE *f = strcmp(file, "-") == 0 ? stdin : fopen(file, "r");
    if (!f) {
        perror(file);
        return 2;
    }
    sb_config cfg;
    sb_config_init(&cfg);
    cfg.data_dir = data_dir;
    cfg.policy_dir = policy_dir;
    cfg.sync = SB_SYNC_NONE;
    cfg.clock = replay_clock;
    cfg.map_size = 16 << 20;
    sb_engine *eng;
    sb_result *res = sb_result_new();
    if (sb_open(&eng, &cfg, res)) {
        fprintf(stderr, "switchboard: %s\n", sb_result_message(res));
        sb_result_free(res);
        if (f != stdin) fclose(f);
        return 1;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int lineno = 0, failures = 0;
    char account[256] = "";
    while ((n = getline(&line, &cap, f)) > 0) {
        lineno++;
        while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            line[--n] = 0;
        char *p = line;
        while (*p == ' ' || *p == '\t')
            p++;
        if (!*p || *p == '#') continue;
        json_error_t err;
        json_t *o = json_loads(p, JSON_REJECT_DUPLICATES, &err);
        if (!o || !json_is_object(o)) {
            fprintf(stderr, "%s:%d: not a JSON object: %s\n", file, lineno, o ? "" : err.text);
            json_decref(o);
            failures++;
            continue;
        }
        json_t *acc = json_object_get(o, "account");
        if (json_is_string(acc)) snprintf(account, sizeof account, "%s", json_string_value(acc));
        int rc = 0;
        char *doc = NULL;
        const char *what = "";
        print_time(clock_ms);
        if (json_object_get(o, "type")) {
            json_object_del(o, "account");
            doc = json_dumps(o, JSON_COMPACT);
            rc = sb_submit_json(eng, account, doc, strlen(doc), res);
            what = json_string_value(json_object_get(o, "type"));
            json_t *call = json_object_get(o, "call");
            printf(" %s%s%s", what, call ? " " : "", call ? json_string_value(call) : "");
            what = "";
        } else if (json_is_object(acc)) {
            doc = json_dumps(acc, JSON_COMPACT);
            rc = sb_account_put(eng, doc, strlen(doc), res);
            json_t *id = json_object_get(acc, "id");
            if (json_is_string(id)) snprintf(account, sizeof account, "%s", json_string_value(id));
            what = "account";
        } else if (json_object_get(o, "agent")) {
            doc = json_dumps(json_object_get(o, "agent"), JSON_COMPACT);
            rc = sb_agent_put(eng, account, doc, doc ? strlen(doc) : 0, res);
            what = "agent";
        } else if (json_object_get(o, "queue")) {
            doc = json_dumps(json_object_get(o, "queue"), JSON_COMPACT);
            rc = sb_queue_put(eng, account, doc, doc ? strlen(doc) : 0, res);
            what = "queue";
        } else if (json_is_string(json_object_get(o, "policy"))) {
            size_t sl;
            const char *pf = json_string_value(json_object_get(o, "file"));
            char *src = pf ? cli_read_file(pf, &sl) : NULL;
            rc = src ? sb_policy_put(eng, account, json_string_value(json_object_get(o, "policy")),
                                     src, sl, NULL, res)
                     : SB_EINVAL;
            free(src);
            what = "policy";
        } else if (json_object_get(o, "at") || json_object_get(o, "advance")) {
            int64_t t, before = clock_ms;
            json_t *adv = json_object_get(o, "advance");
            if (adv && json_is_number(adv)) {
                clock_ms += (int64_t)(json_number_value(adv) * 1000);
            } else if (parse_time(json_object_get(o, "at"), &t) == 0) {
                clock_ms = t;
            } else {
                fprintf(stderr, "%s:%d: 'at' must be Unix seconds or YYYY-MM-DDTHH:MM:SSZ\n", file,
                        lineno);
                failures++;
                json_decref(o);
                printf("\n");
                continue;
            }
            /* Walk the clock to the target through every deadline on the way,
            ** so timers fire at their own times and in order. */
            int64_t target = clock_ms;
            clock_ms = before;
            printf(" clock -> ");
            print_time(target);
            printf("\n");
            for (int steps = 0; steps < 100000; steps++) {
                int64_t due = sb_next_deadline(eng);
                if (due > target) break;
                if (due > clock_ms) clock_ms = due;
                rc = sb_tick(eng, res);
                if (rc) break;
                if (sb_result_count(res)) {
                    print_time(clock_ms);
                    printf(" timers\n");
                    print_actions(res);
                }
            }
            clock_ms = target;
            if (rc) printf("    tick failed: %s\n", sb_result_message(res));
            free(doc);
            json_decref(o);
            continue;
        } else {
            fprintf(stderr,
                    "%s:%d: unknown line (expected account, agent, queue, policy, at, "
                    "advance or an event with type)\n",
                    file, lineno);
            failures++;
            json_decref(o);
            printf("\n");
            continue;
        }
        if (*what) printf(" %s", what);
        if (rc) {
            printf(" -> error %s\n", sb_result_message(res));
            failures++;
        } else if (as_json) {
            printf(" %s\n", sb_result_json(res, NULL));
        } else {
            printf("\n");
            print_actions(res);
        }
        free(doc);
        json_decref(o);
    }
    free(line);
    if (f != stdin) fclose(f);
    sb_result_free(res);
    sb_close(eng);
    if (data_dir == tmpdir) {
        char cmd[512];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
        if (system(cmd) != 0) fprintf(stderr, "switchboard: could not remove %s\n", tmpdir);
    }
    return failures ? 1 : 0;
}
