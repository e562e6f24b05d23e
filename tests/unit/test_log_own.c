/*
** test_log_own.c — the engine's own counts in its log lines. Every line
** goes through the number redaction, which takes seven digits or more for
** a phone number; the counts the engine made (marked LOG_OWN in the
** format) are kept as written at any size, while what is around them, ids
** a caller gave among it, is redacted as before. Checked on the redaction
** with spans, on the formatting that finds them, on the lines of a legal
** hold's overrides and of an erasure request applied again (made apart, so
** that counts of millions need no millions of records), on the policy
** sandbox's lines (a policy looping over ctx.log has millions of its lines
** dropped) and on a line an engine logs.
*/
#define TESTKIT_LOG_KEEP
#include "records.h" /* ret_held_line, ret_replay_line, and the engine's internals */
#include "sandbox.h" /* sbx_logf: the policy sandbox's own lines */
#include "switchboard.h"
#include "tap.h"
#include "testkit.h"

#include <stdlib.h>
#include <string.h>

/* text redacted but for the spans given as (at, len) pairs, into out. */
static int redact_own(const char *text, char *out, size_t n, int nown, ...)
{
    log_span own[8];
    va_list ap;
    va_start(ap, nown);
    for (int i = 0; i < nown && i < 8; i++) {
        own[i].at = va_arg(ap, uint32_t);
        own[i].len = va_arg(ap, uint32_t);
    }
    va_end(ap);
    return redact_numbers_own(text, own, nown, out, n, 1, 7);
}

/* A text, its spans (at, len; up to two), how many numbers it holds and
** how it reads. */
static const struct span_case {
    const char *name, *text;
    int nown;
    uint32_t own[2][2];
    int found;
    const char *want;
} span_cases[] = {
    {"no span: the count is a number", "a 1234567 b", 0, {{0}}, 1, "a [number] b"},
    {"an own span: kept as written", "a 1234567 b", 1, {{2, 7}}, 0, "a 1234567 b"},
    {"a number written with '+' beside a span: redacted",
     "account +442079460001: 1234567 decisions",
     1,
     {{23, 7}},
     1,
     "account [number]: 1234567 decisions"},
    {"numbers without '+' before and after a span: redacted",
     "hold 4420794600011 in 2500000 more, 4930123456",
     1,
     {{22, 7}},
     2,
     "hold [number] in 2500000 more, [number]"},
    /* A number does not run into a span, nor out of one. */
    {"a spaced number ending before a span: redacted to its end",
     "+44 20 7946 0001 1234567",
     1,
     {{17, 7}},
     1,
     "[number] 1234567"},
    {"a number after a span", "1234567 4420794600011", 1, {{0, 7}}, 1, "1234567 [number]"},
    /* Digits glued to a span that has digits there read as one number with
    ** it: however few, they are taken for a number, so no text beside a
    ** count makes a number with it ("0207" and 9460001). */
    {"four digits glued before a span", "id 02079460001 x", 1, {{7, 7}}, 1, "id [number]9460001 x"},
    {"three digits glued after a span", "id 9460001020 x", 1, {{3, 7}}, 1, "id 9460001[number] x"},
    {"a '+' and a digit glued to a span", "id +49460001", 1, {{5, 7}}, 1, "id [number]9460001"},
    {"a span after '#'", "#1234567 purged", 1, {{1, 7}}, 0, "#1234567 purged"},
    /* Spans out of order, empty, or past the text are none. */
    {"a span before the one before it is none",
     "1234567 7654321",
     2,
     {{8, 7}, {0, 7}},
     1,
     "[number] 7654321"},
    {"empty spans and spans past the end are none", "1234567", 2, {{0, 0}, {0, 99}}, 1, "[number]"},
    /* What the rule reads as digits and signs is read as before. */
    {"a percent-encoded number beside a span",
     "call %2B4420794600011 at 1234567",
     1,
     {{25, 7}},
     1,
     "call [number] at 1234567"},
};

static void test_spans(void)
{
    char out[256];
    for (size_t i = 0; i < sizeof span_cases / sizeof span_cases[0]; i++) {
        const struct span_case *c = &span_cases[i];
        log_span own[2];
        for (int k = 0; k < c->nown; k++)
            own[k] = (log_span){c->own[k][0], c->own[k][1]};
        int found = redact_numbers_own(c->text, own, c->nown, out, sizeof out, 1, 7);
        ok(found == c->found && !strcmp(out, c->want), "spans: %s (%d: %s)", c->name, found, out);
    }
    /* The same text with no span: as sb_redact reads it. */
    char want[256];
    const char *text = "call +44 (0)20 7946-0001 at 2026-11-28, q7 1767603600 s, 1 2 3";
    sb_redact(text, want, sizeof want);
    redact_numbers_own(text, NULL, 0, out, sizeof out, 1, 7);
    is_str(out, want, "no spans: sb_redact's reading");
    /* Long texts (past the stack buffer) keep their spans too. */
    char long_text[900];
    memset(long_text, 'x', sizeof long_text);
    memcpy(long_text + 800, " 1234567 4930123456", 19);
    long_text[819] = 0;
    redact_own(long_text, out, sizeof out, 1, 801u, 7u);
    ok(out[0] == 'x', "a long text redacted");
    char *big = malloc(1000);
    if (big) {
        redact_own(long_text, big, 1000, 1, 801u, 7u);
        is_str(big + 800, " 1234567 [number]", "... its span kept, the number after it redacted");
        free(big);
    }
}

/* A line made with logt_add, as logged. */
static const char *logged(const log_text *t)
{
    static char out[1024];
    logt_redact(t, out, sizeof out);
    return out;
}

static void test_format(void)
{
    log_text t;
    /* Every conversion formats as printf's. */
    logt_init(&t);
    logt_add(&t, "%d|%5u|%-4s|%.*s|%x|%c|%lld|%zu|%.1f|%%|%*d|%hhd|%lu|%08.3f|%s", -12, 7u, "ab", 2,
             "xyz", 255u, 'q', -9000000000LL, (size_t)42, 3.25, 4, 9, (signed char)-3, 12ul,
             3.14159, "end");
    char want[256];
    snprintf(want, sizeof want, "%d|%5u|%-4s|%.*s|%x|%c|%lld|%zu|%.1f|%%|%*d|%hhd|%lu|%08.3f|%s",
             -12, 7u, "ab", 2, "xyz", 255u, 'q', -9000000000LL, (size_t)42, 3.25, 4, 9,
             (signed char)-3, 12ul, 3.14159, "end");
    is_str(t.s, want, "logt_add formats as snprintf");
    logt_init(&t);
    logt_add(&t, "%hhd|%hu|%zd|%#o|%+d|%-6ju|%jd|%td|%lx|%.3e|%Lg|%#.0f", 300, 70000, (ssize_t)-1,
             8u, 5, (uintmax_t)UINT64_MAX, (intmax_t)INT64_MIN, (ptrdiff_t)-7, 0xdeadbeeful, 1234.5,
             (long double)0.25, 2.0);
    snprintf(want, sizeof want, "%hhd|%hu|%zd|%#o|%+d|%-6ju|%jd|%td|%lx|%.3e|%Lg|%#.0f", 300, 70000,
             (ssize_t)-1, 8u, 5, (uintmax_t)UINT64_MAX, (intmax_t)INT64_MIN, (ptrdiff_t)-7,
             0xdeadbeeful, 1234.5, (long double)0.25, 2.0);
    is_str(t.s, want, "... lengths, flags and conversions of every kind");
    is_int(t.nown, 0, "... with no own span unmarked");
    is_int((int)t.len, (int)strlen(want), "... its length");
    /* Marked conversions are spans; marks write nothing. */
    logt_init(&t);
    logt_add(&t, "account %s: " OWN_LLU " decisions, " LOG_OWN("%5.1f") " ms", "+442079460001",
             1234567ULL, 12.5);
    is_str(t.s, "account +442079460001: 1234567 decisions,  12.5 ms", "marks write nothing");
    is_int(t.nown, 2, "two spans");
    is_str(logged(&t), "account [number]: 1234567 decisions,  12.5 ms",
           "... kept, the id redacted");
    /* A string is never the engine's own, inside the marks or out. */
    logt_init(&t);
    logt_add(&t, "n=" LOG_OWN("%s") " c=" LOG_OWN("%c") "%c%c%c%c%c%c", "1234567", '4', '9', '3',
             '0', '1', '2', '3');
    is_int(t.nown, 0, "a %%s or %%c between the marks: no span");
    is_str(logged(&t), "n=[number] c=[number]", "... redacted");
    /* Caller text holding the marks' bytes: written as it is, never a
    ** mark: its number stays redacted. */
    logt_init(&t);
    logt_add(&t, "account %s: " OWN_ZU " records",
             "\x1e+442079460001\x1f \x1e"
             "4420794600011\x1f",
             (size_t)2500000);
    is_int(t.nown, 1, "marks in a caller's text make no span");
    ok(!strstr(logged(&t), "7946") && strstr(logged(&t), "2500000 records"),
       "... its numbers redacted, the count kept (%s)", logged(&t));
    /* Pieces appended make one line; spans next to each other one span. */
    logt_init(&t);
    logt_add(&t, "a " OWN_D, 12);
    logt_add(&t, OWN_D " b", 34567);
    is_int(t.nown, 1, "spans next to each other: one");
    is_str(logged(&t), "a 1234567 b", "... kept whole");
    /* A line too long is cut; a span cut with it. */
    char id[1200];
    memset(id, 'a', sizeof id - 1);
    id[sizeof id - 1] = 0;
    logt_init(&t);
    logt_add(&t, "%.1015s " OWN_LLU " more", id, 1234567890123ULL);
    is_int((int)t.len, (int)sizeof t.s - 1, "a long line cut to the buffer");
    ok(t.nown == 1 && t.own[0].at == 1016 && t.own[0].len == 7, "... its span cut with it");
    is_str(logged(&t) + 1016, "1234567", "... and kept as far as it goes");
    /* More spans than a line keeps: the rest redacted. */
    logt_init(&t);
    for (int i = 0; i < LOG_OWN_MAX + 1; i++)
        logt_add(&t, " " OWN_D, 1000000 + i);
    is_int(t.nown, LOG_OWN_MAX, "spans past LOG_OWN_MAX are not kept");
    ok(strstr(logged(&t), " 1000000 ") && strstr(logged(&t), " [number]"),
       "... the last count redacted, the first kept");
}

/* The lines that made this needed: a legal hold's overrides in a sweep of
** millions of records, and an erasure request applied again. */
static void test_lines(void)
{
    log_text t;
    ret_held_line(&t, "acme", "case-9", HELD_SWEEP, 1234000, 567);
    is_str(logged(&t),
           "retention: account acme: 1234567 decisions overridden by legal hold case-9 in this "
           "sweep (1234000 delete, 567 anonymize; the audit log has each)",
           "a hold's line keeps its counts");
    ret_held_line(&t, "+442079460001", "4420794600011", HELD_ERASURE, 0, 1);
    is_str(logged(&t),
           "retention: account [number]: 1 decision overridden by legal hold [number] in an "
           "erasure request (0 delete, 1 anonymize; the audit log has each)",
           "... its ids, numbers, redacted");
    ret_held_line(&t, "+442079460001", "4420794600011", HELD_WRITE, 9000000000, 1234567);
    ok(!strstr(logged(&t), "7946") && strstr(logged(&t), ": 9001234567 decisions") &&
           strstr(logged(&t), "(9000000000 delete, 1234567 anonymize;"),
       "... both at once (%s)", logged(&t));
    const uint64_t all[5] = {2500000, 1234567, 4930123456, 7, 0}, none[2] = {0, 0},
                   before[2] = {1000000, 2000000};
    ret_replay_line(&t, 12345678, "acme", all, none);
    is_str(logged(&t),
           "erasure request 12345678 of the erasure journal (account 'acme') applied again, as "
           "data.mdb had not seen it (restored from a backup taken before it, or the request was "
           "cut short): 2500000 deleted, 1234567 anonymized, 4930123456 kept (7 held, 0 failed) in "
           "all; the audit log has it",
           "an erasure request applied again keeps its counts");
    ret_replay_line(&t, 3, "+442079460001", all, before);
    ok(!strstr(logged(&t), "7946") && strstr(logged(&t), "(account '[number]')") &&
           strstr(logged(&t), "2500000 deleted,") &&
           strstr(logged(&t), "in all (1000000 deleted and 2000000 anonymized before it was cut "
                              "short); the audit log has it"),
       "... its account redacted, what came before it kept (%s)", logged(&t));
}

/* The sandbox's own lines reach the host's log function with their spans;
** what a policy logs has none. */
static char sbx_line[1024];
static void keep_sbx_line(void *arg, sb_log_level lvl, const log_text *line)
{
    (void)arg;
    (void)lvl;
    logt_redact(line, sbx_line, sizeof sbx_line);
}

static void test_sandbox_lines(void)
{
    sbx *sb = sbx_new(8 << 20, keep_sbx_line, NULL);
    if (!ok(sb != NULL, "a policy sandbox")) return;
    sbx_logf(sb, SB_LOG_WARN, OWN_D " log lines dropped (at most " OWN_D " per call)", 1234567,
             SBX_LOG_LINES);
    is_str(sbx_line,
           "policy log: account=- policy=-: 1234567 log lines dropped (at most 32 per call)",
           "the count of lines a policy had dropped kept");
    sbx_logf(sb, SB_LOG_WARN, "time zone '%s' of agent '%s': " OWN_D, "Europe/Berlin", "4930123456",
             1234567);
    is_str(sbx_line,
           "policy log: account=- policy=-: time zone 'Europe/Berlin' of agent '[number]': "
           "1234567",
           "... an id beside it redacted");
    char big[SBX_LOG_LEN + 40];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = 0;
    sbx_logf(sb, SB_LOG_WARN, "%.*s " OWN_LLU, SBX_LOG_LEN - 8, big, 123456789012ULL);
    ok(strlen(sbx_line) > 9 && !strcmp(sbx_line + strlen(sbx_line) - 9, "a 1234567"),
       "a line cut to the sandbox's length: its count kept as far as it goes (%s)",
       sbx_line + strlen(sbx_line) - 9);
    sbx_free(sb);
}

/* An engine's line: through its log function, by its level. */
static void test_engine_line(void)
{
    char dir[] = "/tmp/sb_log_own_XXXXXX";
    if (!ok(mkdtemp(dir) != NULL, "a data directory")) return;
    sb_config cfg;
    test_engine_config(&cfg, dir, NULL, 1 << 24);
    cfg.log = log_keep;
    sb_result *res = sb_result_new();
    sb_engine *e = test_open(&cfg, res);
    if (ok(e != NULL, "an engine logging to the test")) {
        log_clear();
        sb_log(e, SB_LOG_INFO, "sweep: account %s: " OWN_LLU " deleted, %s", "+442079460001",
               1234567ULL, "caller 4930123456");
        is_str(logbuf, "sweep: account [number]: 1234567 deleted, caller [number]\n",
               "sb_log: the count kept, the ids redacted");
        log_clear();
        sb_log(e, SB_LOG_DEBUG, "below the level: " OWN_D, 1);
        is_str(logbuf, "", "a line below the engine's level is not logged");
        sb_close(e);
    }
    sb_result_free(res);
    rmtree(dir);
}

int main(void)
{
    test_spans();
    test_format();
    test_lines();
    test_sandbox_lines();
    test_engine_line();
    return done_testing();
}
