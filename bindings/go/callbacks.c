/*
** callbacks.c — C trampolines from the engine's clock, log and sweep
** progress hooks into Go, and the thread id Engine.Batch keeps.
** The hook's void *arg carries a runtime/cgo.Handle naming the Go function.
*/
#include <pthread.h>
#include <stdint.h>

#include "switchboard.h"
#include "_cgo_export.h"

/* How many of our callbacks run on this thread now. A Go callback runs on
** the thread of the C call that made it (its goroutine is locked to that
** thread meanwhile), so Engine.Close asks here whether it was called from
** inside a call on an engine, which it would otherwise wait for forever. */
static __thread int sbgo_depth;

int sbgo_in_callback(void)
{
    return sbgo_depth;
}

/* This thread's id, for Engine.Batch: the engine's batch is the OS thread's
** that began it (its goroutine is locked to that thread meanwhile). */
uintptr_t sbgo_thread(void)
{
    return (uintptr_t)pthread_self();
}

static int64_t sbgo_clock(void *arg)
{
    sbgo_depth++;
    int64_t ms = goSwitchboardClock((uintptr_t)arg);
    sbgo_depth--;
    return ms;
}

static void sbgo_log(void *arg, sb_log_level level, const char *line)
{
    sbgo_depth++;
    goSwitchboardLog((uintptr_t)arg, (int)level, (char *)line);
    sbgo_depth--;
}

void sbgo_set_clock(sb_config *cfg, uintptr_t handle)
{
    cfg->clock = sbgo_clock;
    cfg->clock_arg = (void *)handle;
}

void sbgo_set_log(sb_config *cfg, uintptr_t handle)
{
    cfg->log = sbgo_log;
    cfg->log_arg = (void *)handle;
}

static void sbgo_progress(void *arg, uint64_t done, uint64_t total)
{
    sbgo_depth++;
    goSwitchboardProgress((uintptr_t)arg, done, total);
    sbgo_depth--;
}

/* sb_sweep with the Go progress function handle names (0: none). */
int sbgo_sweep(sb_engine *eng, uint32_t budget_ms, uintptr_t handle, sb_result *res)
{
    return sb_sweep(eng, budget_ms, handle ? sbgo_progress : NULL, (void *)handle, res);
}
