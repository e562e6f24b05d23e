/*
** testkit.h — what the C tests that open engines share: an injected clock,
** a log callback that stays quiet unless SB_TEST_LOG is set, and removing a
** test's data directory. Include after switchboard.h and tap.h.
*/
#ifndef SB_TESTKIT_H
#define SB_TESTKIT_H

#include "switchboard.h"

#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* The engine's clock in tests: now_ms, moved by the test (sb_config.clock). */
__attribute__((unused)) static int64_t now_ms = 1767603600000; /* Mon 2026-01-05 09:00 UTC */

static inline int64_t test_clock(void *arg)
{
    (void)arg;
    return now_ms;
}

/* sb_config.log: silent, or on stderr when SB_TEST_LOG is set. */
static inline void quiet(void *arg, sb_log_level l, const char *line)
{
    (void)arg;
    (void)l;
    if (getenv("SB_TEST_LOG")) fprintf(stderr, "log: %s\n", line);
}

static inline int rmtree_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    return flag == FTW_DP ? rmdir(path) : unlink(path);
}

/* Remove a directory and everything under it (links are not followed). */
static inline void rmtree(const char *path)
{
    nftw(path, rmtree_entry, 16, FTW_DEPTH | FTW_PHYS);
}

#endif
