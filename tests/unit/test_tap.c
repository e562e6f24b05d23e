/*
** test_tap.c — the test harness itself (tap.h): ok() (and ok_todo(), the same
** macro but for its TODO, not run here: it would print a TODO) evaluate their
** condition before the arguments of the check's name, so a name may
** show what the condition's call left behind (a result's message), and their
** value is the condition's, 0 or 1, for use in an if.
*/
#include "tap.h"

static int called, calls_seen;

/* The condition's call: counts itself, answers 1. */
static int step(void)
{
    called++;
    return 1;
}

/* The name's argument: notes how many calls of step() came before it. */
static int seen(void)
{
    calls_seen = called;
    return called;
}

int main(void)
{
    int v;

    called = calls_seen = 0;
    ok(step(), "ok(): the condition's call (%d made when the name was formatted)", seen());
    is_int(calls_seen, 1, "ok(): the name's arguments evaluated after the condition");

    called = 0;
    v = ok(step() + 1, "ok(): a condition of 2 passes");
    is_int(v, 1, "ok() gives its condition as 0 or 1 (2 gives 1)");
    is_int(called, 1, "ok() evaluates its condition once");

    if (!ok(1, "ok() used as the condition of an if")) return done_testing();
    is_int(tap_fail, 0, "no check failed so far");
    return done_testing();
}
