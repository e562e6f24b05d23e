/*
** hostkit.h — what the C tests of the policy host (test_sandbox,
** test_hostile) share: a host serving policy sources from a table, log lines
** counted and the last one kept, three candidate agents made fresh for each
** call, routing a call through a policy, the host's memory, and the checks a
** hostile script must pass (it fails with the expected message, starting
** with file:line, logged with its account, its memory given back). Include
** after policy.h and tap.h; create the host with host_new(), sources from
** get_src, logs to logline.
*/
#ifndef SB_HOSTKIT_H
#define SB_HOSTKIT_H

#include "policy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* --- a host serving sources from a table -------------------------------- */

#define MAXSRC 256
static struct {
    uint32_t acct;
    char name[64];
    const char *src;
} srcs[MAXSRC];
static int nsrc;
static int nlog;
static char lastlog[1200];

/* Serve src as policy name of account acct (src is kept, not copied). */
static __attribute__((unused)) void add_src(uint32_t acct, const char *name, const char *src)
{
    for (int i = 0; i < nsrc; i++)
        if (srcs[i].acct == acct && strcmp(srcs[i].name, name) == 0) {
            srcs[i].src = src;
            return;
        }
    if (nsrc == MAXSRC) {
        fprintf(stderr, "hostkit: more than %d sources: raise MAXSRC\n", MAXSRC);
        exit(1);
    }
    srcs[nsrc].acct = acct;
    snprintf(srcs[nsrc].name, sizeof srcs[nsrc].name, "%s", name);
    srcs[nsrc++].src = src;
}

static __attribute__((unused)) int get_src(void *arg, uint32_t acct, const char *name, sb_buf *out,
                                           char version[17], int64_t *stamp)
{
    (void)arg;
    *stamp = 0;
    for (int i = 0; i < nsrc; i++)
        if (srcs[i].acct == acct && strcmp(srcs[i].name, name) == 0) {
            version[0] = 0;
            return buf_puts(out, srcs[i].src) ? SB_ENOMEM : 0;
        }
    return SB_ENOTFOUND;
}

static __attribute__((unused)) void logline(void *arg, sb_log_level lvl, const log_text *line)
{
    (void)arg;
    (void)lvl;
    nlog++;
    snprintf(lastlog, sizeof lastlog, "%s", line->s);
}

/* The host the tests use: 1 M instructions, 8 MB and a wall-clock limit of
** 10 s (SB_TEST_WALL_MS overrides it, e.g. under valgrind), quarantine after
** quarantine_after failures in a row (0: never). The wall clock is only the
** backstop here: at 1 s, a script a memory or instruction budget stops was
** stopped by the wall clock instead on a loaded machine with the sanitizer
** build, and its check of the message failed. */
static __attribute__((unused)) pol_host *host_new_wall(uint32_t quarantine_after, uint32_t wall_ms)
{
    const char *wall = getenv("SB_TEST_WALL_MS");
    pol_limits lim = {.instructions = 1000000,
                      .wall_ms = wall_ms ? wall_ms
                                 : wall  ? (uint32_t)atoi(wall)
                                         : 10000,
                      .memory = 8u << 20,
                      .quarantine_after = quarantine_after,
                      .load_instructions = 2000000};
    return pol_host_new(&lim, get_src, NULL, logline, NULL);
}

static __attribute__((unused)) pol_host *host_new(uint32_t quarantine_after)
{
    return host_new_wall(quarantine_after, 0);
}

/* --- the candidates and one call ------------------------------------------- */

#define NC 3
static pol_cand cands[NC];
static const char *ids[NC] = {"alice", "bob", "carol"};
static const int64_t NOW = 1767261600000LL;

/* alice, bob and carol (nums 1..3), idle since 10, 20 and 30 s, a softphone
** each, positions 1..3 of tier 1. */
static __attribute__((unused)) void reset_cands(void)
{
    for (int i = 0; i < NC; i++) {
        memset(&cands[i], 0, sizeof cands[i]);
        cands[i].id = ids[i];
        cands[i].num = (uint32_t)i + 1;
        cands[i].idle_since = NOW - (i + 1) * 10000;
        cands[i].devices = POL_DEV_SOFTPHONE;
        cands[i].config = "{\"devices\":{\"softphone\":\"sip:x@example.invalid\"}}";
        cands[i].config_len = strlen(cands[i].config);
        cands[i].position = i + 1;
        cands[i].tier = 1;
        cands[i].weight = cands[i].member_weight = 1;
    }
}

static pol_decision dec;

/* Call c1 of queue support, in account acct (1 is acme, others globex),
** through policy, the candidates fresh and dec scribbled over first;
** history answers call.previous_agent (may be NULL). */
static __attribute__((unused)) pol_decision *
route_with(pol_host *h, uint32_t acct, const char *policy, const char *(*history)(void *))
{
    pol_call call = {.id = "c1", .queue = "support", .caller = "+15550100", .history = history};
    pol_queue q = {
        .id = "support", .ring_timeout = 20, .waiting = 1, .members = NC, .available = NC};
    reset_cands();
    memset(&dec, 0x5a, sizeof dec);
    pol_route(h, acct, acct == 1 ? "acme" : "globex", policy, &call, cands, NC, &q, NULL, NOW, 7,
              &dec);
    return &dec;
}

/* Call c of queue q, nothing more, through policy of account acct ("w"),
** the candidates as they are. */
static __attribute__((unused)) pol_decision *route_bare(pol_host *h, uint32_t acct,
                                                        const char *policy)
{
    pol_route(h, acct, "w", policy, &(pol_call){.id = "c", .queue = "q"}, cands, NC,
              &(pol_queue){.id = "q"}, NULL, NOW, 1, &dec);
    return &dec;
}

/* The memory of every state of the host. */
static __attribute__((unused)) size_t memory(pol_host *h)
{
    size_t m = 0;
    pol_host_totals(h, NULL, NULL, &m);
    return m;
}

/* --- hostile scripts ---------------------------------------------------------- */

/* A policy file whose route hook is body. */
#define R(body) "local P = {}\nfunction P.route(call, agents, ctx)\n" body "\nend\nreturn P\n"

/* A script that must fail, and what its message must hold. */
struct hostile {
    const char *name, *src, *expect;
};

/* t served as policy `file` of account 1 (acme) and routed through `route`:
** four checks, that the call failed with t->expect in the message, that the
** message starts with file.lua:, that the failure was logged with the
** account and policy, that the memory came back near its level. */
static __attribute__((unused)) void
hostile_fails(pol_host *h, pol_decision *(*route)(pol_host *, uint32_t, const char *),
              const struct hostile *t, const char *file)
{
    add_src(1, file, t->src);
    size_t before = memory(h);
    int logs = nlog;
    pol_decision *d = route(h, 1, file);
    ok(d->failed == 1 && strstr(d->error, t->expect) != NULL, "%s: failed with '%s'", t->name,
       d->error);
    if (!strstr(d->error, t->expect)) diag("  expected '%s'", t->expect);
    ok(strncmp(d->error, file, strlen(file)) == 0 &&
           strncmp(d->error + strlen(file), ".lua:", 5) == 0,
       "%s: message starts with file:line", t->name);
    ok(nlog > logs && strstr(lastlog, "account=acme") && strstr(lastlog, file),
       "%s: failure logged with account and policy", t->name);
    size_t after = memory(h);
    ok(after < before + (64 << 10), "%s: memory back near its level (%zu -> %zu)", t->name, before,
       after);
}

#endif
