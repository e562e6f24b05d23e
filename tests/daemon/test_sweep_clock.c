/*
** test_sweep_clock.c — the time a scheduled retention sweep's `sweep done`
** line gives (ms=, sbd_sweep_clock in daemon.c), on an injected clock: a run
** of several turns from its first to its last; a run carried on after a
** turn that failed (sb_sweep says "resumed"), timed without the wait until
** the next sweep (sweep_interval after the failure); a run that begins anew
** after a failure (not "resumed": the failed turn stored nothing) and the
** next run timed from their own starts.
*/
#include "serve.h"
#include "tap.h"

#include <stdint.h>
#include <string.h>

#define MS 1000000ull /* ns */

/* The ms= a call gave: whole milliseconds here, exact in a double. */
#define is_ms(got, want, ...)                                                                      \
    do {                                                                                           \
        double g_ = (got), w_ = (want);                                                            \
        if (!ok(g_ == w_, __VA_ARGS__)) diag("  got %.3f ms, want %.3f ms", g_, w_);               \
    } while (0)

int main(void)
{
    sbd_sweep_clock c = {0};

    /* A run of three turns, from 1,000 ms to 1,025 ms. */
    sbd_sweep_clock_turn(&c, 1000 * MS);
    is_ms(sbd_sweep_clock_done(&c, 0, 1, 1002 * MS), 0, "a turn with more to do: no time yet");
    sbd_sweep_clock_turn(&c, 1010 * MS);
    sbd_sweep_clock_done(&c, 1, 1, 1012 * MS);
    sbd_sweep_clock_turn(&c, 1020 * MS);
    is_ms(sbd_sweep_clock_done(&c, 1, 0, 1025 * MS), 25,
          "a run of three turns: 25 ms, from its first turn to its end");

    /* A run whose second turn fails: 5 ms of it before, 2 ms in the failing
    ** turn, then the next sweep 300 s later carries it on for 8 ms. */
    sbd_sweep_clock_turn(&c, 10000 * MS);
    sbd_sweep_clock_done(&c, 0, 1, 10005 * MS);
    sbd_sweep_clock_turn(&c, 10010 * MS);
    sbd_sweep_clock_failed(&c, 10012 * MS);
    sbd_sweep_clock_turn(&c, 310012 * MS);
    is_ms(sbd_sweep_clock_done(&c, 1, 0, 310020 * MS), 20,
          "a run carried on after a failed turn: 12 ms before the failure and 8 after, "
          "not the 300 s between");

    /* The next run is timed from its own start. */
    sbd_sweep_clock_turn(&c, 610020 * MS);
    is_ms(sbd_sweep_clock_done(&c, 0, 0, 610023 * MS), 3, "the next run: its own 3 ms");

    /* A run's first turn fails, twice: the run the next sweep reports
    ** begins with that sweep. */
    sbd_sweep_clock_turn(&c, 700000 * MS);
    sbd_sweep_clock_failed(&c, 700001 * MS);
    sbd_sweep_clock_turn(&c, 1000000 * MS);
    sbd_sweep_clock_failed(&c, 1000002 * MS);
    sbd_sweep_clock_turn(&c, 1300000 * MS);
    sbd_sweep_clock_done(&c, 0, 1, 1300004 * MS);
    sbd_sweep_clock_turn(&c, 1300010 * MS);
    is_ms(sbd_sweep_clock_done(&c, 1, 0, 1300011 * MS), 11,
          "failed first turns, then a run of two: 11 ms, the run's own");

    /* A run that another process carried on and ended while this one's
    ** turns failed: the next turn begins a new one. */
    sbd_sweep_clock_turn(&c, 2000000 * MS);
    sbd_sweep_clock_done(&c, 0, 1, 2000003 * MS);
    sbd_sweep_clock_turn(&c, 2000010 * MS);
    sbd_sweep_clock_failed(&c, 2000011 * MS);
    sbd_sweep_clock_turn(&c, 2300000 * MS);
    is_ms(sbd_sweep_clock_done(&c, 0, 0, 2300006 * MS), 6,
          "a new run after a failed one ended elsewhere: its own 6 ms");
    return done_testing();
}
