/*
** callbacks.c — C trampolines from the engine's clock, log and sweep
** progress hooks into Go.
** The hook's void *arg carries a runtime/cgo.Handle naming the Go function.
*/
#include <stdint.h>

#include "switchboard.h"
#include "_cgo_export.h"

static int64_t sbgo_clock(void *arg)
{
    return goSwitchboardClock((uintptr_t)arg);
}

static void sbgo_log(void *arg, sb_log_level level, const char *line)
{
    goSwitchboardLog((uintptr_t)arg, (int)level, (char *)line);
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
    goSwitchboardProgress((uintptr_t)arg, done, total);
}

/* sb_sweep with the Go progress function handle names (0: none). */
int sbgo_sweep(sb_engine *eng, uint32_t budget_ms, uintptr_t handle, sb_result *res)
{
    return sb_sweep(eng, budget_ms, handle ? sbgo_progress : NULL, (void *)handle, res);
}
