/*
** benchkit.h — clocks and sorting shared by the benchmarks (make bench).
*/
#ifndef SB_BENCHKIT_H
#define SB_BENCHKIT_H

#include <time.h>

/* Wall-clock seconds (monotonic). */
__attribute__((unused)) static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* CPU seconds of the process: a figure other work on the machine disturbs
** less than the wall clock. */
__attribute__((unused)) static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* qsort order of doubles, for medians and percentiles. */
__attribute__((unused)) static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

#endif
