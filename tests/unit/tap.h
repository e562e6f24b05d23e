/*
** tap.h — a tiny Test Anything Protocol emitter for the C tests; prove reads it.
** ok(cond, fmt, ...) prints "ok N - name" or "not ok N - name"; done_testing()
** prints the plan and returns the exit code for main().
**
** ok() and ok_todo() evaluate their condition before the name's arguments: C
** evaluates a function's arguments in no set order, so a check such as
** ok(call(e, res) == 0, "%s", sb_result_message(res)) could read the message
** before the call wrote it (or, if the call moved its buffer, read freed
** memory). The macros store the condition first, then format the name.
*/
#ifndef SB_TAP_H
#define SB_TAP_H
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <stdlib.h>
#include <unistd.h>

static int tap_n, tap_fail;

/* No test may hang a run: every test program dies after SB_TEST_TIMEOUT
** seconds (default 600), and prove reports it as failed. */
__attribute__((constructor, unused)) static void tap_deadline(void)
{
    const char *s = getenv("SB_TEST_TIMEOUT");
    alarm(s ? (unsigned)atoi(s) : 600);
}

__attribute__((format(printf, 2, 3), unused)) static int tap_ok(int cond, const char *fmt, ...)
{
    va_list ap;
    tap_n++;
    if (!cond) tap_fail++;
    printf("%sok %d - ", cond ? "" : "not ", tap_n);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    fflush(stdout);
    return cond;
}

/* A check for a known bug: printed with "# TODO reason", so prove reports it
** without failing the run. */
__attribute__((format(printf, 3, 4), unused)) static int tap_ok_todo(int cond, const char *reason,
                                                                     const char *fmt, ...)
{
    va_list ap;
    tap_n++;
    printf("%sok %d - ", cond ? "" : "not ", tap_n);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf(" # TODO %s\n", reason);
    fflush(stdout);
    return cond;
}

/* The condition is read into a local of its own (a statement, so before the
** call's arguments), and the value of the whole is the condition's, 0 or 1. */
#define ok(cond, ...)                                                                              \
    __extension__({                                                                                \
        int tap_cond_ = !!(cond);                                                                  \
        tap_ok(tap_cond_, __VA_ARGS__);                                                            \
    })
#define ok_todo(cond, reason, ...)                                                                 \
    __extension__({                                                                                \
        int tap_cond_ = !!(cond);                                                                  \
        tap_ok_todo(tap_cond_, reason, __VA_ARGS__);                                               \
    })

__attribute__((format(printf, 1, 2), unused)) static void diag(const char *fmt, ...)
{
    va_list ap;
    printf("# ");
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
}

#define is_int(got, want, ...)                                                                     \
    do {                                                                                           \
        long long g_ = (long long)(got), w_ = (long long)(want);                                   \
        if (!ok(g_ == w_, __VA_ARGS__))                                                            \
            diag("  got %lld, want %lld (%s:%d)", g_, w_, __FILE__, __LINE__);                     \
    } while (0)

#define is_str(got, want, ...)                                                                     \
    do {                                                                                           \
        const char *g_ = (got), *w_ = (want);                                                      \
        if (!ok(g_ && w_ && strcmp(g_, w_) == 0, __VA_ARGS__))                                     \
            diag("  got '%s', want '%s' (%s:%d)", g_ ? g_ : "(null)", w_ ? w_ : "(null)",          \
                 __FILE__, __LINE__);                                                              \
    } while (0)

static inline int done_testing(void)
{
    printf("1..%d\n", tap_n);
    return tap_fail ? 1 : 0;
}
#endif
