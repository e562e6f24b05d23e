/*
** sandbox.c — one sandboxed Lua 5.4 state: capped allocator, budgets
** (instructions, wall clock, memory), the allow-listed library with its
** read-only tables, bounded versions of the C functions whose work the
** count hook cannot see, error messages that never run metamethods, and
** loading a policy file into its own _ENV. See sandbox.h for the model.
*/
#include "sandbox.h"
#include "schedule.h"

#include <lualib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const sbx_key_names[K_COUNT] = {
    [K_ID] = "id",
    [K_NAME] = "name",
    [K_STATUS] = "status",
    [K_IDLE_FOR] = "idle_for",
    [K_IDLE_SINCE] = "idle_since",
    [K_CALLS_TAKEN] = "calls_taken",
    [K_TALK_TIME] = "talk_time",
    [K_NO_ANSWERS] = "no_answers",
    [K_LAST_CALL] = "last_call",
    [K_MISSED_FOR] = "missed_for",
    [K_WEIGHT] = "weight",
    [K_TIER] = "tier",
    [K_POSITION] = "position",
    [K_MEMBER_WEIGHT] = "member_weight",
    [K_PENALTY] = "penalty",
    [K_SKILLS] = "skills",
    [K_DEVICES] = "devices",
    [K_PREFERENCES] = "preferences",
    [K_TIMEZONE] = "timezone",
    [K_ON_SCHEDULE] = "on_schedule",
    [K_DEVICES_NOW] = "devices_now",
    [K_QUEUE] = "queue",
    [K_CALLER] = "caller",
    [K_CALLED] = "called",
    [K_PRIORITY] = "priority",
    [K_WAITED] = "waited",
    [K_QUEUE_WAITED] = "queue_waited",
    [K_ATTEMPTS] = "attempts",
    [K_TRIED] = "tried",
    [K_LAST_AGENT] = "last_agent",
    [K_PREVIOUS_AGENT] = "previous_agent",
    [K_SINCE_LAST_RING] = "since_last_ring",
    [K_ATTRS] = "attrs",
    [K_WAITING] = "waiting",
    [K_LONGEST_WAIT] = "longest_wait",
    [K_MEMBERS] = "members",
    [K_AVAILABLE] = "available",
    [K_LOGGED_IN] = "logged_in",
    [K_PAUSED] = "paused",
    [K_NOW] = "now",
    [K_RANDOM] = "random",
    [K_GET] = "get",
    [K_SET] = "set",
    [K_LOG] = "log",
    [K_RING] = "ring",
    [K_MODE] = "mode",
    [K_DEVICE] = "device",
    [K_TIMEOUT] = "timeout",
    [K_STEP] = "step",
    [K_WAIT] = "wait",
    [K_MOVE] = "move",
    [K_REASON] = "reason",
    [K_REJECT] = "reject",
    [K_PAUSE] = "pause",
    [K_AGENT] = "agent",
    [K_ROUTE] = "route",
    [K_RETAIN] = "retain",
    [K_ERASE] = "erase",
    [K_FIRST_QUEUE] = "first_queue",
    [K_ENDED_BY] = "ended_by",
    [K_OUTCOME] = "outcome",
    [K_OFFERED] = "offered",
    [K_ANSWERED] = "answered",
    [K_ENDED] = "ended",
    [K_TALK] = "talk",
    [K_AGE_DAYS] = "age_days",
    [K_ANONYMIZED] = "anonymized",
    [K_LEGAL_HOLD] = "legal_hold",
    [K_OVERRIDDEN] = "overridden",
    [K_DECIDED_BY] = "decided_by",
    [K_ROLE] = "role",
    [K_RECEIVED] = "received",
    [K_KEEP] = "keep",
    [K_ANONYMIZE] = "anonymize",
    [K_DELETE] = "delete",
    [K_REVIEW_IN_DAYS] = "review_in_days",
    [K_KEEP_UNTIL] = "keep_until",
};

/* ------------------------------------------------------------------------ */
/* Memory */

static void trip_async(sbx *sb, int kind);

static void note_refusal(sbx *sb)
{
    /* Remember where the script was when memory ran out: the error that
    ** follows (LUA_ERRMEM) carries no position and runs no handler. Only
    ** reads the call stack, which Lua 5.4.4 keeps intact while it grows a
    ** stack; later releases hold offsets there meanwhile, so there the
    ** message names the pcall that saw the error or the hook's first line. */
#if LUA_VERSION_RELEASE_NUM <= 50404
    if (sb->memwhere[0] || !sb->cur) return;
    lua_Debug ar;
    for (int level = 0; level < 12 && lua_getstack(sb->cur, level, &ar); level++) {
        if (!lua_getinfo(sb->cur, "Sl", &ar)) break;
        if (ar.currentline > 0) {
            snprintf(sb->memwhere, sizeof sb->memwhere, "%s:%d: ", ar.short_src, ar.currentline);
            return;
        }
    }
#else
    (void)sb;
#endif
}

/* Long strings. Lua allocates a string in one block, never resized, and
** names the kind of object when it allocates one (osize, with ptr NULL);
** it frees a block giving its size. The set holds the blocks of the live
** strings of SBX_STR_LONG bytes or more, so a free of a block that large
** says whether a long string went. */
static int floor_log2(size_t n)
{
    return 63 - __builtin_clzll((unsigned long long)n);
}

static size_t long_slot(const sbx *sb, const void *p)
{
    uint64_t h = (uint64_t)(uintptr_t)p * 0x9E3779B97F4A7C15ull;
    return (size_t)(h >> 32) & (sb->longs_cap - 1);
}

static int long_put(sbx *sb, void *p)
{
    if (2 * (sb->longs_n + 1) > sb->longs_cap) {
        size_t cap = sb->longs_cap ? 2 * sb->longs_cap : 64;
        void **old = sb->longs, **nw = calloc(cap, sizeof *nw);
        if (!nw) return -1;
        size_t oldcap = sb->longs_cap;
        sb->longs = nw;
        sb->longs_cap = cap;
        for (size_t i = 0; i < oldcap; i++)
            if (old[i]) {
                size_t j = long_slot(sb, old[i]);
                while (nw[j])
                    j = (j + 1) & (cap - 1);
                nw[j] = old[i];
            }
        free(old);
    }
    size_t j = long_slot(sb, p);
    while (sb->longs[j])
        j = (j + 1) & (sb->longs_cap - 1);
    sb->longs[j] = p;
    sb->longs_n++;
    return 0;
}

/* Remove p from the set: 1 if it was there. */
static int long_take(sbx *sb, const void *p)
{
    if (!sb->longs_n) return 0;
    size_t mask = sb->longs_cap - 1, i = long_slot(sb, p);
    while (sb->longs[i] != p) {
        if (!sb->longs[i]) return 0;
        i = (i + 1) & mask;
    }
    /* Backward shift: an entry after the hole moves into it when its home
    ** slot is not between the hole and where it stands. */
    for (size_t k = (i + 1) & mask; sb->longs[k]; k = (k + 1) & mask) {
        size_t home = long_slot(sb, sb->longs[k]);
        if (((k - home) & mask) >= ((k - i) & mask)) {
            sb->longs[i] = sb->longs[k];
            i = k;
        }
    }
    sb->longs[i] = NULL;
    sb->longs_n--;
    return 1;
}

static void sbx_hook(lua_State *L, lua_Debug *ar);

/* The count hook's interval for thread L while the longest live string
** has long_top: `base` (SBX_HOOK_EVERY, SBX_CO_HOOK_EVERY) shortened in
** proportion, so that interval times the longest string stays about what
** it is for 4 KiB ones: every instruction from 1 MiB in the main thread
** (every 3 from 512 KiB, 250 from 8 KiB), slower for such a policy. */
static int sbx_every(const sbx *sb, const lua_State *L)
{
    int base = L == sb->L ? SBX_HOOK_EVERY : SBX_CO_HOOK_EVERY;
    if (!sb->long_top) return base;
    int shift = sb->long_top - 11;
    return shift >= 30 || (base >> shift) < 1 ? 1 : base >> shift;
}

/* L's hook to the interval the live strings call for, if shorter. */
static void hook_tighten(sbx *sb, lua_State *L)
{
    if (!L || !sb->hooked || sb->trip) return;
    int want = sbx_every(sb, L);
    if (lua_gethookcount(L) > want) lua_sethook(L, sbx_hook, LUA_MASKCOUNT, want);
}

static void long_add(sbx *sb, void *p, size_t size)
{
    if (long_put(sb, p)) return; /* out of memory: the hook keeps its interval */
    int b = floor_log2(size);
    sb->long_count[b]++;
    if (b > sb->long_top) {
        sb->long_top = b;
        /* A loop comparing it may start at the next instruction: the
        ** running thread's hook comes sooner from now on. lua_sethook is
        ** safe to call from anywhere, like a signal handler would. */
        if (sb->active) hook_tighten(sb, sb->cur);
    }
}

static void long_drop(sbx *sb, void *p, size_t size)
{
    if (!long_take(sb, p)) return;
    int b = floor_log2(size);
    if (--sb->long_count[b] == 0 && b == sb->long_top) {
        while (sb->long_top > 0 && !sb->long_count[sb->long_top])
            sb->long_top--;
    }
}

static void *sbx_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    sbx *sb = ud;
    size_t old = ptr ? osize : 0;
    if (nsize == 0) {
        if (old >= SBX_STR_LONG) long_drop(sb, ptr, old); /* strings are never resized */
        free(ptr);
        sb->mem -= old;
        return NULL;
    }
    if (nsize > old) {
        size_t grow = nsize - old;
        if (sb->enforce && (sb->mem + grow > sb->limit || sb->mem + grow < sb->mem)) {
            if (sb->active) {
                /* Lua retries after an emergency collection; a script that
                ** keeps hitting the cap only thrashes the collector. */
                note_refusal(sb);
                if (++sb->refusals >= SBX_REFUSALS) trip_async(sb, TRIP_MEM);
            }
            return NULL;
        }
        if (sb->active && !sb->trip) {
            /* Work done inside C functions (concatenation, string.rep,
            ** gsub results...) allocates: charge it like instructions,
            ** and read the wall clock as those charges add up (like
            ** sbx_charge): C calls that mostly copy may run many times
            ** between two count hooks. */
            uint64_t units = grow >> SBX_ALLOC_SHIFT;
            sb->budget -= (int64_t)units;
            sb->unclocked += units;
            if (sb->budget < 0) {
                trip_async(sb, TRIP_INSTR);
            } else if (sb->unclocked >= 4096) {
                sb->unclocked = 0;
                if (mono_ns() > sb->deadline_ns) trip_async(sb, TRIP_WALL);
            }
        }
    }
    void *p = realloc(ptr, nsize);
    if (!p) return NULL;
    if (!ptr && nsize >= SBX_STR_LONG && (osize & 0x0f) == LUA_TSTRING) long_add(sb, p, nsize);
    sb->mem = sb->mem - old + nsize;
    if (sb->mem > sb->peak) sb->peak = sb->mem;
    return p;
}

/* ------------------------------------------------------------------------ */
/* Budgets */

static void trip_async(sbx *sb, int kind)
{
    if (sb->trip) return;
    sb->trip = kind;
    /* The thread running now stops at its next instruction; the others
    ** when the hook first raises (sbx_rearm_all). lua_sethook is safe to
    ** call from anywhere, like a signal handler would. */
    if (sb->cur) lua_sethook(sb->cur, sbx_hook, LUA_MASKCOUNT, 1);
}

/* n grouped by thousands ("8,388,608"). A budget's figure of 7 digits or
** more, written plainly and in brackets, is what a log reader (and so
** sb_redact) takes for a phone number: "(1000000" would log as [number].
** No phone number is written grouped by threes with commas. */
static const char *thousands(unsigned long long n, char *buf, size_t cap)
{
    char digits[32];
    int len = snprintf(digits, sizeof digits, "%llu", n);
    size_t o = 0;
    for (int i = 0; i < len && o + 2 < cap; i++) {
        if (i && (len - i) % 3 == 0) buf[o++] = ',';
        buf[o++] = digits[i];
    }
    buf[o] = 0;
    return buf;
}

static void trip_format(sbx *sb, const char *where)
{
    if (sb->trip_msg[0]) return;
    char fig[40];
    switch (sb->trip) {
    case TRIP_INSTR:
        snprintf(sb->trip_msg, sizeof sb->trip_msg,
                 "%sinstruction budget exceeded (%s instructions)", where,
                 thousands(sb->budget_total, fig, sizeof fig));
        break;
    case TRIP_WALL:
        snprintf(sb->trip_msg, sizeof sb->trip_msg, "%swall-clock limit exceeded (%u ms)", where,
                 sb->wall_ms);
        break;
    case TRIP_MEM:
        snprintf(sb->trip_msg, sizeof sb->trip_msg, "%smemory limit exceeded (%s bytes)",
                 sb->memwhere[0] ? sb->memwhere : where, thousands(sb->limit, fig, sizeof fig));
        break;
    default:
        snprintf(sb->trip_msg, sizeof sb->trip_msg, "%sbudget exceeded", where);
    }
}

/* After a trip every thread we know of runs the hook at every instruction,
** so pcall or a coroutine resumed later cannot keep the script alive. */
static void sbx_rearm_all(lua_State *L, sbx *sb)
{
    lua_sethook(L, sbx_hook, LUA_MASKCOUNT, 1);
    if (sb->rearmed) return;
    sb->rearmed = 1;
    lua_sethook(sb->L, sbx_hook, LUA_MASKCOUNT, 1);
    if (!lua_checkstack(L, 4)) return;
    lua_rawgeti(L, LUA_REGISTRYINDEX, sb->ref_threads);
    lua_pushnil(L);
    while (lua_next(L, -2)) {
        lua_State *co = lua_tothread(L, -2);
        if (co) lua_sethook(co, sbx_hook, LUA_MASKCOUNT, 1);
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
}

/* Raise the trip's error in L (never returns). */
static int raise_trip(lua_State *L, const char *where)
{
    sbx *sb = sbx_of(L);
    char w[LUA_IDSIZE + 24] = "";
    if (!where) {
        luaL_where(L, 1);
        snprintf(w, sizeof w, "%s", lua_tostring(L, -1));
        lua_pop(L, 1);
        where = w;
    }
    trip_format(sb, where);
    sbx_rearm_all(L, sb);
    lua_pushstring(L, sb->trip_msg);
    return lua_error(L);
}

/* What an instruction of the function the hook came in (ar) is charged:
** 1, and 1 more per SBX_VA_UNIT extra arguments (`...`) it holds once it
** holds SBX_VA_MANY (counted to a power of two). Passing them on (g(...),
** math.max(...), select(2, ...), return ...) moves them all in one
** instruction, and a C function given them may walk them all: 60,000 of
** them passed to math.max in a loop ran 54 s on a 1,000,000-instruction
** budget and three times a 50 ms wall clock. */
static int va_held(lua_State *L, lua_Debug *ar)
{
    int n = SBX_VA_MANY;
    while (n <= (1 << 20) && lua_getlocal(L, ar, -n)) {
        lua_pop(L, 1);
        n <<= 1;
    }
    return n == SBX_VA_MANY ? 0 : n >> 1;
}

/* The most any of the function the hook came in and its callers up to
** SBX_VA_DEPTH levels holds: a loop passing them on (f(...) calling g(...))
** spends most of its instructions in what it calls, where a hook that only
** asked the running function could land every time (and, with the interval
** a multiple of the loop's length, did: 6 s on a 1,000,000 budget). */
static int64_t va_cost(lua_State *L, lua_Debug *ar)
{
    int most = va_held(L, ar);
    lua_Debug up;
    for (int level = 1; level <= SBX_VA_DEPTH && lua_getstack(L, level, &up); level++) {
        int n = va_held(L, &up);
        if (n > most) most = n;
    }
    return 1 + most / SBX_VA_UNIT;
}

/* want, varied by up to an eighth either way: a loop whose length divides
** the interval would otherwise meet every hook at the same instruction. */
static int jittered(sbx *sb, int want)
{
    if (want < 8) return want;
    uint32_t x = sb->jitter ? sb->jitter : 0x9e3779b9u;
    x ^= x << 13, x ^= x >> 17, x ^= x << 5;
    sb->jitter = x;
    return want - want / 8 + (int)(x % (uint32_t)(want / 4 + 1));
}

static void sbx_hook(lua_State *L, lua_Debug *ar)
{
    sbx *sb = sbx_of(L);
    int every = lua_gethookcount(L);
    if (!sb->trip) {
        if (!sb->active) {
            /* Script code outside a budgeted run: never expected. */
            sb->trip = TRIP_INSTR;
        } else {
            /* Only a library call's results can be that many extra arguments
            ** (a call written out has at most 250): none yet, none to look for. */
            int64_t cost = sb->va_live ? va_cost(L, ar) : 1;
            sb->budget -= every * cost;
            int want = sbx_every(sb, L);
            if (cost > 1) want = want / cost ? (int)(want / cost) : 1;
            want = jittered(sb, want);
            if (every != want) lua_sethook(L, sbx_hook, LUA_MASKCOUNT, want);
            if (sb->budget >= 0 && mono_ns() <= sb->deadline_ns) return;
            sb->trip = sb->budget < 0 ? TRIP_INSTR : TRIP_WALL;
        }
    }
    char where[LUA_IDSIZE + 24] = "";
    if (!sb->trip_msg[0] && lua_getinfo(L, "Sl", ar) && ar->currentline > 0)
        snprintf(where, sizeof where, "%s:%d: ", ar->short_src, ar->currentline);
    /* An error raised inside a hook leaves the thread's hooks disabled
    ** until a pcall catches it, so whatever Lua runs before that (a message
    ** handler, the __close of a dying coroutine) would run unbounded. In a
    ** coroutine, yield instead (a yield from a hook keeps hooks on): the
    ** resumer sees the trip and raises from C. */
    if (L != sb->L && lua_isyieldable(L)) {
        trip_format(sb, where);
        sbx_rearm_all(L, sb);
        lua_yield(L, 0);
        return;
    }
    raise_trip(L, where);
}

void sbx_charge(lua_State *L, uint64_t units)
{
    sbx *sb = sbx_of(L);
    if (!sb->active) return;
    if (!sb->trip) {
        sb->budget -= units > INT64_MAX / 2 ? INT64_MAX / 2 : (int64_t)units;
        /* The clock is read once 4096 units have added up, however small
        ** each charge: C work charged bit by bit meets the wall limit too. */
        sb->unclocked += units;
        if (sb->budget >= 0 && sb->unclocked < 4096) return;
        sb->unclocked = 0;
        if (sb->budget >= 0 && mono_ns() <= sb->deadline_ns) return;
        sb->trip = sb->budget < 0 ? TRIP_INSTR : TRIP_WALL;
    }
    raise_trip(L, NULL);
}

/* Make room for `need` more bytes before a library function that builds
** its result in a lauxlib buffer: Lua grows those buffers through the
** allocator directly, with no emergency collection when it refuses, so
** garbage near the limit (this call's or an earlier one's) would fail a
** call that fits. The full collection stands for the emergency one Lua
** runs for its own allocations, and counts the same: as hitting the cap. */
static void sbx_room(lua_State *L, size_t need)
{
    sbx *sb = sbx_of(L);
    if (!sb->enforce || !sb->active || sb->mem > sb->limit || need <= sb->limit - sb->mem) return;
    note_refusal(sb);
    if (++sb->refusals >= SBX_REFUSALS) {
        if (!sb->trip) sb->trip = TRIP_MEM;
        raise_trip(L, NULL);
    }
    lua_gc(L, LUA_GCCOLLECT);
}

/* A protected call inside the script saw `status`: memory errors fail the
** whole hook call, and a tripped budget is raised again. */
static void after_catch(lua_State *L, int status)
{
    sbx *sb = sbx_of(L);
    if (status == LUA_ERRMEM && !sb->trip) sb->trip = TRIP_MEM;
    if (sb->trip) raise_trip(L, NULL);
}

void sbx_arm(sbx *sb, uint64_t instructions, uint32_t wall_ms)
{
    /* 0 means no limit (an operator who turned budgets off). */
    sb->budget_total = instructions;
    sb->budget =
        instructions && instructions < INT64_MAX / 2 ? (int64_t)instructions : INT64_MAX / 2;
    sb->wall_ms = wall_ms;
    sb->deadline_ns = wall_ms ? mono_ns() + (uint64_t)wall_ms * 1000000u : UINT64_MAX;
    sb->trip = TRIP_NONE;
    sb->rearmed = 0;
    sb->trip_msg[0] = 0;
    sb->memwhere[0] = 0;
    sb->refusals = 0;
    sb->cur = sb->L;
    sb->log_lines = sb->log_dropped = 0;
    sb->active = 1;
    sb->hooked = instructions || wall_ms;
    if (sb->hooked)
        lua_sethook(sb->L, sbx_hook, LUA_MASKCOUNT, sbx_every(sb, sb->L));
    else
        lua_sethook(sb->L, NULL, 0, 0);
}

/* ------------------------------------------------------------------------ */
/* Error values as text, without metamethods */

static void num_text(lua_State *L, int idx, char *buf, size_t cap)
{
    if (lua_isinteger(L, idx))
        snprintf(buf, cap, "%lld", (long long)lua_tointeger(L, idx));
    else
        snprintf(buf, cap, "%.14g", (double)lua_tonumber(L, idx));
}

const char *sbx_errstr(lua_State *L, int idx, char *buf, size_t cap)
{
    switch (lua_type(L, idx)) {
    case LUA_TSTRING: {
        size_t n;
        const char *s = lua_tolstring(L, idx, &n);
        if (n >= cap) n = cap - 1;
        memcpy(buf, s, n);
        buf[n] = 0;
        break;
    }
    case LUA_TNUMBER:
        num_text(L, idx, buf, cap);
        break;
    default:
        snprintf(buf, cap, "error object is a %s value", lua_typename(L, lua_type(L, idx)));
    }
    return buf;
}

/* "src:line: " of the first Lua function at or above `level`. */
void sbx_where(lua_State *L, int level, char *buf, size_t cap)
{
    lua_Debug ar;
    buf[0] = 0;
    for (int i = level; i < level + 12 && lua_getstack(L, i, &ar); i++) {
        if (lua_getinfo(L, "Sl", &ar) && ar.currentline > 0) {
            snprintf(buf, cap, "%s:%d: ", ar.short_src, ar.currentline);
            return;
        }
    }
}

static int positioned(const char *msg);
static int sb_charged(lua_State *L);
static int sb_str_format(lua_State *L);
static int sb_tonumber(lua_State *L);
static int sb_u8_codes(lua_State *L);
static int sb_u8_iter(lua_State *L);

/* The message at idx of L, raised at `level` of co's stack (1 in a message
** handler; 0 in a coroutine the error ended, whose stack stays as the
** error left it), when it has no position and was raised inside one of
** our wrappers (the stock function runs in the wrapper's call, run_stock):
** positioned at the innermost Lua function with a line, the script's
** call. A runtime error inside a C function has none (luaG_runerror gives
** a position only in Lua code), so table.unpack(nil)'s "attempt to get
** length of a nil value" would name the hook's first line. Runs only on
** errors, not on the calls that succeed. */
static void position_wrapped(lua_State *L, int idx, lua_State *co, int level)
{
    lua_Debug ar;
    if (lua_type(L, idx) != LUA_TSTRING || positioned(lua_tostring(L, idx)) ||
        !lua_getstack(co, level, &ar) || !lua_checkstack(co, 1) || !lua_getinfo(co, "f", &ar))
        return;
    lua_CFunction f = lua_tocfunction(co, -1);
    lua_pop(co, 1);
    if (f != sb_charged && f != sb_str_format && f != sb_tonumber && f != sb_u8_codes &&
        f != sb_u8_iter)
        return;
    char where[LUA_IDSIZE + 24];
    sbx_where(co, level + 1, where, sizeof where);
    if (!where[0]) return;
    idx = lua_absindex(L, idx);
    lua_pushfstring(L, "%s%s", where, lua_tostring(L, idx));
    lua_replace(L, idx);
}

static int sbx_msgh(lua_State *L)
{
    if (lua_type(L, 1) == LUA_TSTRING) {
        if (!sbx_of(L)->trip) position_wrapped(L, 1, L, 1);
        return 1;
    }
    char where[LUA_IDSIZE + 24], what[80];
    sbx_where(L, 1, where, sizeof where);
    sbx_errstr(L, 1, what, sizeof what);
    lua_pushfstring(L, "%s%s", where, what);
    return 1;
}

void sbx_collect(sbx *sb)
{
    /* No finalizers exist, so collecting runs no script code. Each
    ** collection frees half of the call frames a deep recursion left
    ** behind: repeat while that still gives memory back. */
    for (int i = 0; i < 32; i++) {
        size_t before = sb->mem;
        lua_gc(sb->L, LUA_GCCOLLECT);
        if (sb->mem + 1024 > before) break;
    }
}

int sbx_run(sbx *sb, lua_CFunction fn, void *ud, char *err, size_t errlen)
{
    lua_State *L = sb->L;
    int top = lua_gettop(L);
    sb->enforce = 1;
    lua_pushcfunction(L, sbx_msgh);
    lua_pushcfunction(L, fn);
    lua_pushlightuserdata(L, ud);
    int st = lua_pcall(L, 1, 0, top + 1);
    sb->enforce = 0;
    sb->active = 0;
    if (st == LUA_ERRMEM && !sb->trip) sb->trip = TRIP_MEM;
    int failed = st != LUA_OK || sb->trip;
    if (failed && err && errlen) {
        if (sb->trip) {
            trip_format(sb, "");
            snprintf(err, errlen, "%s", sb->trip_msg);
        } else {
            sbx_errstr(L, -1, err, errlen);
        }
    }
    lua_settop(L, top);
    if (failed) sbx_collect(sb);
    return failed;
}

/* Does msg start with a position, "<source>.lua:<line>: "? (Lua shortens
** long sources to "...tail.lua", so the name itself may not be there.) */
static int positioned(const char *msg)
{
    const char *p = msg;
    while (*p && *p != ' ' && *p != '\n') {
        if (strncmp(p, ".lua:", 5) == 0) {
            const char *d = p + 5;
            if (*d < '0' || *d > '9') return 0;
            while (*d >= '0' && *d <= '9')
                d++;
            return *d == ':';
        }
        p++;
    }
    return 0;
}

void sbx_position(char *err, size_t cap, const char *where)
{
    if (positioned(err)) return;
    char tmp[512];
    snprintf(tmp, sizeof tmp, "%s%s", where, err);
    snprintf(err, cap, "%s", tmp);
}

/* ------------------------------------------------------------------------ */
/* Logging */

/* Log msg[0..len) as one line: bytes that begin or continue no UTF-8
** character as '?', control characters (a zero byte, a line break, an
** escape) and DEL as spaces, as text_clean does for what we store; cut is
** set when msg was cut to fit, so that a character the cut split is
** dropped rather than shown as '?'. own: msg as the engine formatted it,
** with its own spans (sbx_logf's counts), or NULL (a policy's text); a span
** the call's number was masked in is its own no longer. */
static void log_line(sbx *sb, sb_log_level lvl, char *msg, size_t len, int cut, const log_text *own)
{
    for (size_t i = 0; i < len; i++)
        if (!msg[i]) msg[i] = ' ';
    msg[len] = 0;
    if (cut) utf8_cut_end(msg);
    views_mask_own(sb, msg, SBX_LOG_LEN + 1);
    text_clean(msg);
    log_text line, piece;
    logt_init(&line);
    logt_add(&line, "policy log: account=%s policy=%s: ", sb->account ? sb->account : "-",
             sb->policy ? sb->policy : "-");
    logt_init(&piece);
    logt_add(&piece, "%s", msg);
    for (int i = 0; own && i < own->nown; i++) {
        log_span o = own->own[i]; /* cut with msg, as far as it goes */
        if (o.at < piece.len && o.len > piece.len - o.at) o.len = (uint32_t)(piece.len - o.at);
        if (o.at < piece.len && !memcmp(piece.s + o.at, own->s + o.at, o.len))
            piece.own[piece.nown++] = o;
    }
    logt_append(&line, &piece);
    sb->log(sb->log_arg, lvl, &line);
}

void sbx_logf(sbx *sb, sb_log_level lvl, const char *fmt, ...)
{
    if (!sb->log) return;
    log_text t;
    logt_init(&t);
    va_list ap;
    va_start(ap, fmt);
    logt_vadd(&t, fmt, ap);
    va_end(ap);
    char msg[SBX_LOG_LEN + 1];
    size_t len = t.len < SBX_LOG_LEN ? t.len : SBX_LOG_LEN;
    memcpy(msg, t.s, len);
    log_line(sb, lvl, msg, len, t.len > SBX_LOG_LEN, &t);
}

/* luaL_tolstring without addresses: a value with __tostring as that says,
** a number, string, boolean or nil as Lua writes them, any other value as
** its type's name ("table", "function", "thread", "userdata"; a
** metatable's __name if a string), where Lua writes "table: 0x55d0c3a1e2f0".
** Those are the daemon's heap addresses: a policy could hand them to its
** tenant in a reject reason, which defeats ASLR. Policies that need values
** told apart compare them, or number them. Pushes the string; returns it. */
static const char *sbx_tolstring(lua_State *L, int idx, size_t *len)
{
    idx = lua_absindex(L, idx);
    switch (lua_type(L, idx)) {
    case LUA_TNUMBER:
    case LUA_TSTRING:
    case LUA_TBOOLEAN:
    case LUA_TNIL:
        return luaL_tolstring(L, idx, len);
    default:
        if (luaL_getmetafield(L, idx, "__tostring") != LUA_TNIL) {
            lua_pop(L, 1);
            return luaL_tolstring(L, idx, len); /* __tostring runs under the budget */
        }
        int name = luaL_getmetafield(L, idx, "__name");
        if (name != LUA_TSTRING) {
            if (name != LUA_TNIL) lua_pop(L, 1);
            lua_pushstring(L, luaL_typename(L, idx));
        }
        return lua_tolstring(L, -1, len);
    }
}

static int sb_tostring(lua_State *L)
{
    luaL_checkany(L, 1);
    sbx_tolstring(L, 1, NULL);
    return 1;
}

int sbx_log_args(lua_State *L, const char *sep)
{
    sbx *sb = sbx_of(L);
    int n = lua_gettop(L);
    if (sb->log_lines >= SBX_LOG_LINES) {
        sb->log_dropped++;
        return 0;
    }
    sb->log_lines++;
    char buf[SBX_LOG_LEN + 1];
    size_t len = 0, seplen = strlen(sep);
    int cut = 0;
    for (int i = 1; i <= n && !cut; i++) {
        size_t l;
        const char *s = sbx_tolstring(L, i, &l); /* __tostring runs under the budget */
        if (i > 1) {
            size_t k = seplen < SBX_LOG_LEN - len ? seplen : SBX_LOG_LEN - len;
            memcpy(buf + len, sep, k);
            len += k;
            cut = k < seplen;
        }
        if (l > SBX_LOG_LEN - len) l = SBX_LOG_LEN - len, cut = 1;
        memcpy(buf + len, s, l);
        len += l;
        lua_pop(L, 1);
    }
    /* The message goes by its length: a zero byte in it is a space, not
    ** its end. */
    if (sb->log) log_line(sb, SB_LOG_INFO, buf, len, cut, NULL);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Deterministic random numbers: xoshiro256**, seeded through splitmix64. */

static uint64_t splitmix(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void rng_seed(uint64_t s[4], uint64_t seed)
{
    for (int i = 0; i < 4; i++)
        s[i] = splitmix(&seed);
}

static inline uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

uint64_t rng_next(uint64_t s[4])
{
    uint64_t r = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return r;
}

/* A uniform integer in [0, n]: mask to the smallest 2^b-1 >= n, redraw
** while above (no modulo bias). */
static uint64_t rng_upto(uint64_t s[4], uint64_t n)
{
    uint64_t r = rng_next(s);
    if ((n & (n + 1)) == 0) return r & n;
    uint64_t m = n;
    m |= m >> 1, m |= m >> 2, m |= m >> 4, m |= m >> 8, m |= m >> 16, m |= m >> 32;
    while ((r &= m) > n)
        r = rng_next(s);
    return r;
}

int rng_lua(lua_State *L, uint64_t s[4])
{
    lua_Integer lo, hi;
    switch (lua_gettop(L)) {
    case 0:
        lua_pushnumber(L, (lua_Number)(rng_next(s) >> 11) * 0x1.0p-53);
        return 1;
    case 1:
        lo = 1;
        hi = luaL_checkinteger(L, 1);
        if (hi == 0) { /* random(0): every bit random */
            lua_pushinteger(L, (lua_Integer)rng_next(s));
            return 1;
        }
        break;
    case 2:
        lo = luaL_checkinteger(L, 1);
        hi = luaL_checkinteger(L, 2);
        break;
    default:
        return luaL_error(L, "wrong number of arguments");
    }
    luaL_argcheck(L, lo <= hi, lua_gettop(L), "interval is empty");
    lua_pushinteger(L, (lua_Integer)((uint64_t)lo + rng_upto(s, (uint64_t)hi - (uint64_t)lo)));
    return 1;
}

static int sb_math_random(lua_State *L)
{
    return rng_lua(L, sbx_rng(sbx_of(L)));
}

static int sb_math_randomseed(lua_State *L)
{
    (void)L; /* the stream is the engine's: seeded per call, not by policies */
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Base library replacements */

static int ro_error(lua_State *L)
{
    return luaL_error(L, "attempt to modify read-only table '%s'",
                      lua_tostring(L, lua_upvalueindex(1)));
}

/* Whether the value at idx is a key of the registry table `ref` (a set). */
static int in_set(lua_State *L, int ref, int idx)
{
    idx = lua_absindex(L, idx);
    lua_rawgeti(L, LUA_REGISTRYINDEX, ref);
    lua_pushvalue(L, idx);
    int in = lua_rawget(L, -2) != LUA_TNIL;
    lua_pop(L, 2);
    return in;
}

static int is_protected(lua_State *L, int idx)
{
    return in_set(L, sbx_of(L)->ref_protected, idx);
}

static int env_assign(lua_State *L);

/* Is the table at idx a policy file's _ENV once its top level has run? */
static int frozen_env(lua_State *L, int idx)
{
    if (!lua_getmetatable(L, idx)) return 0;
    lua_pushliteral(L, "__newindex");
    int is = lua_rawget(L, -2) == LUA_TFUNCTION && lua_tocfunction(L, -1) == env_assign;
    lua_pop(L, 2);
    return is;
}

/* Metatables and their guards (sandbox.h, "Library"). A table becomes a
** metatable only through setmetatable, which refuses one holding __gc or
** __mode and gives it a guard as its own metatable: __newindex refusing
** those two keys (and passing any other on as the metatable's own
** __newindex would, or storing it). One with a metatable of its own gets a
** copy of that as its guard, taken then (its later changes no longer
** apply). getmetatable answers as if there were no guard: nil, or the
** original. rawset refuses the two keys in a metatable. */
static int is_guard(lua_State *L, int idx)
{
    return in_set(L, sbx_of(L)->ref_guards, idx);
}

/* The reserved key at idx, or NULL. */
static const char *reserved_key(lua_State *L, int idx)
{
    size_t n;
    const char *k = lua_type(L, idx) == LUA_TSTRING ? lua_tolstring(L, idx, &n) : NULL;
    if (k && n == 6 && !memcmp(k, "__mode", 6)) return "__mode";
    if (k && n == 4 && !memcmp(k, "__gc", 4)) return "__gc";
    return NULL;
}

static int reserved_error(lua_State *L, const char *k)
{
    return luaL_error(L, strcmp(k, "__gc") == 0
                             ? "__gc metamethods are not allowed in policies"
                             : "__mode (weak tables) is not allowed in policies: a table of weak "
                               "keys can make every garbage collection of the account's policies "
                               "slow");
}

/* A guarded metatable's __newindex: t, k, v; upvalue 1 the metatable's
** own __newindex at the time it was guarded, or nil. */
static int guard_newindex(lua_State *L)
{
    const char *k = reserved_key(L, 2);
    if (k) return reserved_error(L, k);
    lua_settop(L, 3);
    switch (lua_type(L, lua_upvalueindex(1))) {
    case LUA_TNIL:
        lua_rawset(L, 1);
        return 0;
    case LUA_TFUNCTION:
        lua_pushvalue(L, lua_upvalueindex(1));
        lua_insert(L, 1);
        lua_call(L, 3, 0);
        return 0;
    default: /* as Lua does with a __newindex that is not a function */
        lua_pushvalue(L, lua_upvalueindex(1));
        lua_insert(L, 2);
        lua_settable(L, 2);
        return 0;
    }
}

/* Push a new guard: standing for metatable m (a copy of its fields, and
** getmetatable's answer), or for none when m is 0. A metatable whose own
** __metatable protects it is refused: its copy could not keep that. */
static void push_guard(lua_State *L, int m)
{
    if (m) m = lua_absindex(L, m);
    if (m) {
        lua_pushliteral(L, "__metatable");
        if (lua_rawget(L, m) != LUA_TNIL)
            luaL_error(L, "setmetatable: a table whose own metatable is protected cannot be a "
                          "metatable in a policy");
        lua_pop(L, 1);
    }
    lua_newtable(L);
    int c = lua_gettop(L);
    if (m) {
        lua_pushnil(L);
        while (lua_next(L, m)) {
            const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "";
            if (reserved_key(L, -2) || !strcmp(k, "__newindex")) {
                lua_pop(L, 1);
                continue;
            }
            lua_pushvalue(L, -2);
            lua_insert(L, -2);
            lua_rawset(L, c);
        }
        lua_pushliteral(L, "__newindex");
        lua_rawget(L, m);
    } else {
        lua_pushnil(L);
    }
    lua_pushcclosure(L, guard_newindex, 1);
    lua_setfield(L, c, "__newindex");
    /* What getmetatable answers for it (sb_getmetatable): the original. */
    lua_rawgeti(L, LUA_REGISTRYINDEX, sbx_of(L)->ref_guards);
    lua_pushvalue(L, c);
    if (m)
        lua_pushvalue(L, m);
    else
        lua_pushboolean(L, 0);
    lua_rawset(L, -3);
    lua_pop(L, 1);
}

/* The table at x is to be a metatable: give it a guard. */
static void guard_table(lua_State *L, int x)
{
    x = lua_absindex(L, x);
    if (!lua_getmetatable(L, x)) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, sbx_of(L)->ref_guard);
        lua_setmetatable(L, x);
        return;
    }
    int m = lua_gettop(L);
    if (!is_guard(L, m)) {
        push_guard(L, m);
        lua_setmetatable(L, x);
    }
    lua_settop(L, m - 1);
}

static int sb_setmetatable(lua_State *L)
{
    int t = lua_type(L, 2);
    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_argexpected(L, t == LUA_TNIL || t == LUA_TTABLE, 2, "nil or table");
    /* The first table is a metatable itself: it keeps a guard. */
    int is_meta = lua_getmetatable(L, 1) && is_guard(L, -1);
    lua_settop(L, 2);
    if (!is_meta && luaL_getmetafield(L, 1, "__metatable") != LUA_TNIL)
        return luaL_error(L, "cannot change a protected metatable");
    if (t == LUA_TTABLE) {
        /* A metatable guarded already cannot have gained either key: the
        ** check is for one set as a metatable the first time. */
        int guarded = lua_getmetatable(L, 2) && is_guard(L, -1);
        lua_settop(L, 2);
        for (const char *const *k = (const char *const[]){"__gc", "__mode", NULL}; !guarded && *k;
             k++) {
            lua_pushstring(L, *k);
            if (lua_rawget(L, 2) != LUA_TNIL) return reserved_error(L, *k);
            lua_pop(L, 1);
        }
        if (lua_rawequal(L, 1, 2))
            return luaL_error(L, "setmetatable: a table cannot be its own metatable in a policy");
        if (!guarded) guard_table(L, 2);
    }
    if (is_meta) {
        if (t == LUA_TTABLE)
            push_guard(L, 2);
        else
            lua_rawgeti(L, LUA_REGISTRYINDEX, sbx_of(L)->ref_guard);
    } else {
        lua_pushvalue(L, 2);
    }
    lua_setmetatable(L, 1);
    lua_settop(L, 1);
    return 1;
}

/* getmetatable as if the guards were not there: a guarded metatable's
** metatable is nil, or the one its guard is a copy of. */
static int sb_getmetatable(lua_State *L)
{
    luaL_checkany(L, 1);
    if (!lua_getmetatable(L, 1)) {
        lua_pushnil(L);
        return 1;
    }
    lua_rawgeti(L, LUA_REGISTRYINDEX, sbx_of(L)->ref_guards);
    lua_pushvalue(L, -2);
    if (lua_rawget(L, -2) != LUA_TNIL) {
        if (lua_isboolean(L, -1)) lua_pushnil(L);
        return 1;
    }
    lua_pop(L, 2);
    /* Its __metatable when it has one (pushed on top), else the metatable. */
    luaL_getmetafield(L, 1, "__metatable");
    return 1;
}

static int sb_rawset(lua_State *L)
{
    sbx *sb = sbx_of(L);
    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_checkany(L, 2);
    luaL_checkany(L, 3);
    if (is_protected(L, 1) || frozen_env(L, 1))
        return luaL_error(L, "attempt to modify a read-only table");
    const char *k = reserved_key(L, 2);
    if (k && lua_getmetatable(L, 1) && is_guard(L, -1)) return reserved_error(L, k);
    lua_rawgeti(L, LUA_REGISTRYINDEX, sb->ref_agents);
    if (lua_rawequal(L, 1, -1)) sb->agents_dirty = 1;
    lua_pop(L, 1);
    lua_settop(L, 3);
    lua_rawset(L, 1);
    return 1;
}

static int sb_collectgarbage(lua_State *L)
{
    const char *opt = luaL_optstring(L, 1, "collect");
    if (strcmp(opt, "count") != 0)
        return luaL_error(L, "collectgarbage: only \"count\" is available in policies");
    int k = lua_gc(L, LUA_GCCOUNT), b = lua_gc(L, LUA_GCCOUNTB);
    lua_pushnumber(L, (lua_Number)k + (lua_Number)b / 1024);
    return 1;
}

static int sb_print(lua_State *L)
{
    return sbx_log_args(L, "\t");
}

static int finish_pcall(lua_State *L, int status, lua_KContext extra)
{
    if (status != LUA_OK && status != LUA_YIELD) {
        after_catch(L, status);
        lua_pushboolean(L, 0);
        lua_pushvalue(L, -2);
        return 2;
    }
    return lua_gettop(L) - (int)extra;
}

static int sb_pcall(lua_State *L)
{
    luaL_checkany(L, 1);
    lua_pushboolean(L, 1);
    lua_insert(L, 1);
    int status = lua_pcallk(L, lua_gettop(L) - 2, LUA_MULTRET, 0, 0, finish_pcall);
    return finish_pcall(L, status, 0);
}

/* The script's message handler, called only for the script's own errors:
** after a trip (raised from inside the hook, where hooks are off) it is
** skipped, so no script code can run unbudgeted. */
static int xpcall_handler(lua_State *L)
{
    if (sbx_of(L)->trip) return 1;
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, 1);
    return 1;
}

static int sb_xpcall(lua_State *L)
{
    int n = lua_gettop(L);
    luaL_checktype(L, 2, LUA_TFUNCTION);
    lua_pushvalue(L, 2);
    lua_pushcclosure(L, xpcall_handler, 1);
    lua_replace(L, 2);
    lua_pushboolean(L, 1);
    lua_pushvalue(L, 1);
    lua_rotate(L, 3, 2); /* f, handler, true, f, args... */
    int status = lua_pcallk(L, n - 2, LUA_MULTRET, 2, 2, finish_pcall);
    return finish_pcall(L, status, 2);
}

/* The stock C function a wrapper charges for (its upvalue 1), run in the
** wrapper's own call, on the same arguments, as if the script had called
** it: no C frame stands between the two, so an error it raises names the
** line of the script's call (luaL_where looks at the caller), and an
** argument error names the function as the call did and counts a method
** call's arguments as Lua does. A lua_call would put the wrapper there
** instead: no line (the engine then named the hook's first), arguments
** counted from the self. The stock functions wrapped are plain C
** functions, with no upvalues of their own (checked by stock_fn). */
static int run_stock(lua_State *L)
{
    return lua_tocfunction(L, lua_upvalueindex(1))(L);
}

/* tonumber scans its whole string argument without allocating: as an
** integer, then digit by digit as a float. Measured here at about 7 ns a
** byte (20 ms for 3 MB), charged one unit per 2 bytes. */
static int sb_tonumber(lua_State *L)
{
    if (lua_type(L, 1) == LUA_TSTRING) sbx_charge(L, lua_rawlen(L, 1) >> 1);
    return run_stock(L);
}

/* ------------------------------------------------------------------------ */
/* Coroutines: our own create/resume/wrap/close so that every thread is
** known (re-armed after a trip), the running thread is tracked for the
** allocator, and errors that must not be swallowed are raised again. */

static void track_thread(lua_State *L, int idx)
{
    sbx *sb = sbx_of(L);
    idx = lua_absindex(L, idx);
    lua_rawgeti(L, LUA_REGISTRYINDEX, sb->ref_threads);
    lua_pushvalue(L, idx);
    lua_pushboolean(L, 1);
    lua_rawset(L, -3);
    lua_pop(L, 1);
}

/* A coroutine a budget trip escaped from may have its hooks off: its
** pending __close handlers must never run, so it can no longer be closed. */
static void taint_thread(lua_State *L, lua_State *co)
{
    sbx *sb = sbx_of(L);
    if (!lua_checkstack(L, 3)) return;
    lua_rawgeti(L, LUA_REGISTRYINDEX, sb->ref_tainted);
    lua_pushthread(co);
    lua_xmove(co, L, 1);
    lua_pushboolean(L, 1);
    lua_rawset(L, -3);
    lua_pop(L, 1);
}

static int is_tainted(lua_State *L, int idx)
{
    return in_set(L, sbx_of(L)->ref_tainted, idx);
}

static int co_create(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TFUNCTION);
    lua_State *co = lua_newthread(L);
    /* Its hook fires more often than the main thread's, and each resume
    ** pays for a window up front: a coroutine that ends before its first
    ** hook would otherwise run uncharged. */
    lua_sethook(co, sbx_hook, LUA_MASKCOUNT, SBX_CO_HOOK_EVERY);
    lua_pushvalue(L, 1);
    lua_xmove(L, co, 1);
    track_thread(L, -1);
    return 1;
}

static int resume_thread(lua_State *L, lua_State *co, int narg)
{
    sbx *sb = sbx_of(L);
    int nres;
    if (!lua_checkstack(co, narg)) {
        lua_pushliteral(L, "too many arguments to resume");
        return -1;
    }
    sbx_charge(L, SBX_CO_HOOK_EVERY);
    lua_xmove(L, co, narg);
    lua_State *prev = sb->cur;
    sb->cur = co;
    hook_tighten(sb, co); /* long strings made since it last ran */
    int st = lua_resume(co, L, narg, &nres);
    sb->cur = prev;
    hook_tighten(sb, L); /* and those it made */
    if (st == LUA_OK || st == LUA_YIELD) {
        if (sb->trip) raise_trip(L, NULL);
        if (!lua_checkstack(L, nres + 1)) {
            lua_pop(co, nres);
            lua_pushliteral(L, "too many results to resume");
            return -1;
        }
        lua_xmove(co, L, nres);
        return nres;
    }
    if (sb->trip) taint_thread(L, co);
    after_catch(L, st);
    lua_xmove(co, L, 1);
    position_wrapped(L, -1, co, 0);
    return -1;
}

static int co_resume(lua_State *L)
{
    lua_State *co = lua_tothread(L, 1);
    luaL_argexpected(L, co, 1, "coroutine");
    int r = resume_thread(L, co, lua_gettop(L) - 1);
    if (r < 0) {
        lua_pushboolean(L, 0);
        lua_insert(L, -2);
        return 2;
    }
    lua_pushboolean(L, 1);
    lua_insert(L, -(r + 1));
    return r + 1;
}

static int close_thread(lua_State *co, lua_State *L)
{
#if LUA_VERSION_RELEASE_NUM >= 50406
    return lua_closethread(co, L);
#else
    (void)L;
    return lua_resetthread(co);
#endif
}

static int co_wrapped(lua_State *L)
{
    lua_State *co = lua_tothread(L, lua_upvalueindex(1));
    int r = resume_thread(L, co, lua_gettop(L));
    if (r < 0) {
        int st = lua_status(co);
        if (st != LUA_OK && st != LUA_YIELD) {
            st = close_thread(co, L);
            after_catch(L, st);
        }
        /* Where the wrapped function was called, unless the message
        ** says where it was raised already (nested wraps would pile
        ** positions up until the cause no longer fits the message). */
        if (lua_type(L, -1) == LUA_TSTRING && !positioned(lua_tostring(L, -1))) {
            luaL_where(L, 1);
            lua_insert(L, -2);
            lua_concat(L, 2);
        }
        return lua_error(L);
    }
    return r;
}

static int co_wrap(lua_State *L)
{
    co_create(L);
    lua_pushcclosure(L, co_wrapped, 1);
    return 1;
}

static int co_close(lua_State *L)
{
    lua_State *co = lua_tothread(L, 1);
    luaL_argexpected(L, co, 1, "coroutine");
    lua_Debug ar;
    int st = lua_status(co);
    int closable = co != L && (st == LUA_YIELD || (st == LUA_OK && !lua_getstack(co, 0, &ar)) ||
                               (st != LUA_OK && st != LUA_YIELD));
    if (!closable) return luaL_error(L, "cannot close a running or normal coroutine");
    if (is_tainted(L, 1)) return luaL_error(L, "cannot close a coroutine stopped by the budget");
    st = close_thread(co, L);
    if (st == LUA_OK) {
        lua_pushboolean(L, 1);
        return 1;
    }
    after_catch(L, st);
    lua_pushboolean(L, 0);
    lua_xmove(co, L, 1);
    return 2;
}

/* ------------------------------------------------------------------------ */
/* Patterns: Lua 5.4 pattern matching, re-implemented so that every step is
** counted against the instruction budget (the count hook cannot see into C)
** and recursion is bounded. Same syntax and results as the stock library. */

#define PM_MAXCAP 32
#define PM_MAXDEPTH 200
#define PM_CHARGE 256
#define CAP_OPEN (-1)
#define CAP_POS (-2)

typedef struct pmatch {
    const char *src, *src_end, *p_end;
    lua_State *L;
    int depth, level;
    unsigned ticks;
    struct {
        const char *init;
        ptrdiff_t len;
    } cap[PM_MAXCAP];
} pmatch;

static inline void pm_tick(pmatch *m)
{
    if (--m->ticks == 0) {
        m->ticks = PM_CHARGE;
        sbx_charge(m->L, PM_CHARGE);
    }
}

/* n steps' worth of work at once: a set [...] is read byte by byte at
** every character it is matched against, and a pattern may hold one of
** megabytes ('[' .. string.rep('a', 1e6) .. ']' against 2,000 characters
** ran 7 s on a hook's 50 ms, charged for 4,000 steps). */
static inline void pm_work(pmatch *m, size_t n)
{
    if (n < m->ticks) {
        m->ticks -= (unsigned)n;
        return;
    }
    uint64_t due = (uint64_t)(PM_CHARGE - m->ticks) + n;
    m->ticks = PM_CHARGE;
    sbx_charge(m->L, due);
}

static void pm_reset(pmatch *m)
{
    m->level = 0;
    m->depth = PM_MAXDEPTH;
}

static void pm_init(pmatch *m, lua_State *L, const char *s, size_t ls, const char *p, size_t lp)
{
    m->L = L;
    m->src = s;
    m->src_end = s + ls;
    m->p_end = p + lp;
    m->ticks = PM_CHARGE;
    pm_reset(m);
}

/* ASCII classes: policies must not depend on the host's locale. */
static int pm_class(int c, int cl)
{
    int r;
    switch (cl | 0x20) {
    case 'a':
        r = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
        break;
    case 'c':
        r = c < 32 || c == 127;
        break;
    case 'd':
        r = c >= '0' && c <= '9';
        break;
    case 'g':
        r = c > 32 && c < 127;
        break;
    case 'l':
        r = c >= 'a' && c <= 'z';
        break;
    case 'p':
        r = (c > 32 && c < 48) || (c > 57 && c < 65) || (c > 90 && c < 97) || (c > 122 && c < 127);
        break;
    case 's':
        r = c == ' ' || (c >= '\t' && c <= '\r');
        break;
    case 'u':
        r = c >= 'A' && c <= 'Z';
        break;
    case 'w':
        r = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        break;
    case 'x':
        r = (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f');
        break;
    default:
        return cl == c;
    }
    if (cl >= 'A' && cl <= 'Z') r = !r;
    return r;
}

/* End of the single-character class starting at p. */
static const char *pm_class_end(pmatch *m, const char *p)
{
    char c = *p++;
    if (c == '%') {
        if (p == m->p_end) luaL_error(m->L, "malformed pattern (ends with '%%')");
        return p + 1;
    }
    if (c == '[') {
        const char *open = p;
        if (*p == '^') p++;
        do {
            if (p == m->p_end) luaL_error(m->L, "malformed pattern (missing ']')");
            if (*(p++) == '%' && p < m->p_end) p++;
        } while (*p != ']');
        pm_work(m, (size_t)(p - open) >> 3);
        return p + 1;
    }
    return p;
}

/* [set] at p .. ec (ec at the closing ']'), charged for its length. */
static int pm_set(pmatch *m, int c, const char *p, const char *ec)
{
    int yes = 1;
    pm_work(m, (size_t)(ec - p) >> 3);
    if (*(p + 1) == '^') {
        yes = 0;
        p++;
    }
    while (++p < ec) {
        if (*p == '%') {
            p++;
            if (pm_class(c, (unsigned char)*p)) return yes;
        } else if (*(p + 1) == '-' && p + 2 < ec) {
            p += 2;
            if ((unsigned char)*(p - 2) <= c && c <= (unsigned char)*p) return yes;
        } else if ((unsigned char)*p == c) {
            return yes;
        }
    }
    return !yes;
}

static int pm_single(pmatch *m, const char *s, const char *p, const char *ep)
{
    if (s >= m->src_end) return 0;
    int c = (unsigned char)*s;
    switch (*p) {
    case '.':
        return 1;
    case '%':
        return pm_class(c, (unsigned char)*(p + 1));
    case '[':
        return pm_set(m, c, p, ep - 1);
    default:
        return (unsigned char)*p == c;
    }
}

static const char *pm_match(pmatch *m, const char *s, const char *p);

static const char *pm_balance(pmatch *m, const char *s, const char *p)
{
    if (p >= m->p_end - 1) luaL_error(m->L, "malformed pattern (missing arguments to '%%b')");
    if (s >= m->src_end || *s != *p) return NULL;
    int open = *p, close = *(p + 1), depth = 1;
    while (++s < m->src_end) {
        pm_tick(m);
        if (*s == close) {
            if (--depth == 0) return s + 1;
        } else if (*s == open) {
            depth++;
        }
    }
    return NULL;
}

static const char *pm_max_expand(pmatch *m, const char *s, const char *p, const char *ep)
{
    ptrdiff_t i = 0;
    while (pm_single(m, s + i, p, ep)) {
        pm_tick(m);
        i++;
    }
    for (; i >= 0; i--) {
        const char *r = pm_match(m, s + i, ep + 1);
        if (r) return r;
    }
    return NULL;
}

static const char *pm_min_expand(pmatch *m, const char *s, const char *p, const char *ep)
{
    for (;;) {
        const char *r = pm_match(m, s, ep + 1);
        if (r) return r;
        if (!pm_single(m, s, p, ep)) return NULL;
        s++;
    }
}

static const char *pm_open(pmatch *m, const char *s, const char *p, ptrdiff_t what)
{
    if (m->level >= PM_MAXCAP) luaL_error(m->L, "too many captures");
    m->cap[m->level].init = s;
    m->cap[m->level].len = what;
    m->level++;
    const char *r = pm_match(m, s, p);
    if (!r) m->level--;
    return r;
}

static const char *pm_close(pmatch *m, const char *s, const char *p)
{
    int l = m->level - 1;
    for (; l >= 0; l--)
        if (m->cap[l].len == CAP_OPEN) break;
    if (l < 0) luaL_error(m->L, "invalid pattern capture");
    m->cap[l].len = s - m->cap[l].init;
    const char *r = pm_match(m, s, p);
    if (!r) m->cap[l].len = CAP_OPEN;
    return r;
}

static const char *pm_backref(pmatch *m, const char *s, int c)
{
    int l = c - '1';
    if (l < 0 || l >= m->level || m->cap[l].len == CAP_OPEN)
        luaL_error(m->L, "invalid capture index %%%d", l + 1);
    size_t len = (size_t)m->cap[l].len;
    sbx_charge(m->L, len >> 4); /* the compare is work like any other step's */
    if ((size_t)(m->src_end - s) >= len && memcmp(m->cap[l].init, s, len) == 0) return s + len;
    return NULL;
}

static const char *pm_match(pmatch *m, const char *s, const char *p)
{
    if (m->depth-- == 0) luaL_error(m->L, "pattern too complex");
    for (;;) {
        pm_tick(m);
        if (p == m->p_end) break;
        const char *ep;
        switch (*p) {
        case '(':
            s = p[1] == ')' ? pm_open(m, s, p + 2, CAP_POS) : pm_open(m, s, p + 1, CAP_OPEN);
            goto done;
        case ')':
            s = pm_close(m, s, p + 1);
            goto done;
        case '$':
            if (p + 1 != m->p_end) goto single;
            s = s == m->src_end ? s : NULL;
            goto done;
        case '%':
            if (p[1] == 'b') {
                s = pm_balance(m, s, p + 2);
                if (!s) goto done;
                p += 4;
                continue;
            }
            if (p[1] == 'f') {
                p += 2;
                if (*p != '[') luaL_error(m->L, "missing '[' after '%%f' in pattern");
                ep = pm_class_end(m, p);
                int prev = s == m->src ? 0 : (unsigned char)*(s - 1);
                int cur = s < m->src_end ? (unsigned char)*s : 0;
                if (!pm_set(m, prev, p, ep - 1) && pm_set(m, cur, p, ep - 1)) {
                    p = ep;
                    continue;
                }
                s = NULL;
                goto done;
            }
            if (p[1] >= '0' && p[1] <= '9') {
                s = pm_backref(m, s, (unsigned char)p[1]);
                if (!s) goto done;
                p += 2;
                continue;
            }
            goto single;
        default:
        single:
            ep = pm_class_end(m, p);
            if (!pm_single(m, s, p, ep)) {
                if (*ep == '*' || *ep == '?' || *ep == '-') {
                    p = ep + 1;
                    continue;
                }
                s = NULL;
                goto done;
            }
            switch (*ep) {
            case '?': {
                const char *r = pm_match(m, s + 1, ep + 1);
                if (r) {
                    s = r;
                    goto done;
                }
                p = ep + 1;
                continue;
            }
            case '+':
                s = pm_max_expand(m, s + 1, p, ep);
                goto done;
            case '*':
                s = pm_max_expand(m, s, p, ep);
                goto done;
            case '-':
                s = pm_min_expand(m, s, p, ep);
                goto done;
            default:
                s++;
                p = ep;
                continue;
            }
        }
    }
done:
    m->depth++;
    return s;
}

static size_t pos_start(lua_Integer pos, size_t len)
{
    if (pos > 0) return (size_t)pos;
    if (pos == 0) return 1;
    if (pos < -(lua_Integer)len) return 1;
    return len + (size_t)pos + 1;
}

static void pm_push_one(pmatch *m, int i, const char *s, const char *e)
{
    if (i >= m->level) {
        if (i != 0) luaL_error(m->L, "invalid capture index %%%d", i + 1);
        lua_pushlstring(m->L, s, (size_t)(e - s));
        return;
    }
    ptrdiff_t l = m->cap[i].len;
    if (l == CAP_OPEN) luaL_error(m->L, "unfinished capture");
    if (l == CAP_POS)
        lua_pushinteger(m->L, (m->cap[i].init - m->src) + 1);
    else
        lua_pushlstring(m->L, m->cap[i].init, (size_t)l);
}

static int pm_push_all(pmatch *m, const char *s, const char *e)
{
    int n = (m->level == 0 && s) ? 1 : m->level;
    luaL_checkstack(m->L, n, "too many captures");
    for (int i = 0; i < n; i++)
        pm_push_one(m, i, s, e);
    return n;
}

static const char *plain_find(const char *s, size_t ls, const char *p, size_t lp)
{
    if (lp == 0) return s;
    if (lp > ls) return NULL;
    return memmem(s, ls, p, lp);
}

static int str_find_aux(lua_State *L, int find)
{
    size_t ls, lp;
    const char *s = luaL_checklstring(L, 1, &ls);
    const char *p = luaL_checklstring(L, 2, &lp);
    size_t init = pos_start(luaL_optinteger(L, 3, 1), ls) - 1;
    if (init > ls) {
        luaL_pushfail(L);
        return 1;
    }
    if (find) {
        int plain = lua_toboolean(L, 4);
        if (!plain) {
            /* Looking for a special reads the whole of a pattern that has
            ** none: charged for it (a pattern of megabytes looked for in
            ** '' was a 20 ms call for one unit). */
            static const unsigned char special[256] = {
                ['^'] = 1, ['$'] = 1, ['*'] = 1, ['+'] = 1, ['?'] = 1, ['.'] = 1,
                ['('] = 1, ['['] = 1, ['%'] = 1, ['-'] = 1}; /* Lua's specials, "^$*+?.([%-" */
            sbx_charge(L, lp >> 3);
            plain = 1;
            for (size_t i = 0; i < lp; i++)
                if (special[(unsigned char)p[i]]) {
                    plain = 0;
                    break;
                }
        }
        if (plain) {
            sbx_charge(L, (ls - init) >> 4);
            const char *hit = plain_find(s + init, ls - init, p, lp);
            if (hit) {
                lua_pushinteger(L, (hit - s) + 1);
                lua_pushinteger(L, (hit - s) + (lua_Integer)lp);
                return 2;
            }
            luaL_pushfail(L);
            return 1;
        }
    }
    pmatch m;
    const char *s1 = s + init;
    int anchor = *p == '^';
    if (anchor) p++, lp--;
    pm_init(&m, L, s, ls, p, lp);
    do {
        pm_reset(&m);
        const char *e = pm_match(&m, s1, p);
        if (e) {
            if (find) {
                lua_pushinteger(L, (s1 - s) + 1);
                lua_pushinteger(L, e - s);
                return pm_push_all(&m, NULL, NULL) + 2;
            }
            return pm_push_all(&m, s1, e);
        }
    } while (s1++ < m.src_end && !anchor);
    luaL_pushfail(L);
    return 1;
}

static int sb_str_find(lua_State *L)
{
    return str_find_aux(L, 1);
}

static int sb_str_match(lua_State *L)
{
    return str_find_aux(L, 0);
}

typedef struct gmstate {
    const char *src, *p, *last;
    size_t lp;
    pmatch m;
} gmstate;

static int gmatch_step(lua_State *L)
{
    gmstate *g = lua_touserdata(L, lua_upvalueindex(3));
    g->m.L = L;
    for (const char *src = g->src; src <= g->m.src_end; src++) {
        pm_reset(&g->m);
        const char *e = pm_match(&g->m, src, g->p);
        if (e && e != g->last) {
            g->src = g->last = e;
            return pm_push_all(&g->m, src, e);
        }
    }
    return 0;
}

static int sb_str_gmatch(lua_State *L)
{
    size_t ls, lp;
    const char *s = luaL_checklstring(L, 1, &ls);
    const char *p = luaL_checklstring(L, 2, &lp);
    size_t init = pos_start(luaL_optinteger(L, 3, 1), ls) - 1;
    if (init > ls) init = ls + 1;
    lua_settop(L, 2);
    gmstate *g = lua_newuserdatauv(L, sizeof *g, 0);
    pm_init(&g->m, L, s, ls, p, lp);
    g->src = s + init;
    g->p = p;
    g->lp = lp;
    g->last = NULL;
    lua_pushcclosure(L, gmatch_step, 3); /* s and p stay alive with the iterator */
    return 1;
}

static void gsub_string(pmatch *m, luaL_Buffer *b, const char *s, const char *e)
{
    lua_State *L = m->L;
    size_t l;
    const char *r = lua_tolstring(L, 3, &l);
    const char *end = r + l;
    /* The replacement is read at every match, and what it adds may be
    ** nothing ('%0' of an empty match) or a capture made into a string
    ** ('%1' of a position): charged for its length and its captures, where
    ** its output alone left string.rep('%0', 5e5) over 1,000 empty matches
    ** a 3 s call. */
    pm_work(m, l >> 2);
    for (const char *q = r; q < end; q++) {
        if (*q != '%') {
            luaL_addchar(b, *q);
            continue;
        }
        q++;
        if (q < end && *q == '%') {
            luaL_addchar(b, '%');
        } else if (q < end && *q >= '0' && *q <= '9') {
            if (*q == '0')
                luaL_addlstring(b, s, (size_t)(e - s));
            else {
                pm_work(m, 16); /* a value pushed, written, added */
                pm_push_one(m, *q - '1', s, e);
                sbx_tolstring(L, -1, NULL);
                lua_remove(L, -2);
                luaL_addvalue(b);
            }
        } else {
            luaL_error(L, "invalid use of '%%' in replacement string");
        }
    }
}

static void gsub_value(pmatch *m, luaL_Buffer *b, const char *s, const char *e, int tr)
{
    lua_State *L = m->L;
    if (tr == LUA_TFUNCTION) {
        lua_pushvalue(L, 3);
        int n = pm_push_all(m, s, e);
        lua_call(L, n, 1);
    } else if (tr == LUA_TTABLE) {
        pm_push_one(m, 0, s, e);
        lua_gettable(L, 3);
    } else {
        gsub_string(m, b, s, e);
        return;
    }
    if (!lua_toboolean(L, -1)) {
        lua_pop(L, 1);
        luaL_addlstring(b, s, (size_t)(e - s));
    } else if (!lua_isstring(L, -1)) {
        luaL_error(L, "invalid replacement value (a %s)", luaL_typename(L, -1));
    } else {
        luaL_addvalue(b);
    }
}

static int sb_str_gsub(lua_State *L)
{
    size_t ls, lp;
    const char *src = luaL_checklstring(L, 1, &ls);
    const char *p = luaL_checklstring(L, 2, &lp);
    const char *last = NULL;
    int tr = lua_type(L, 3);
    lua_Integer max_s = luaL_optinteger(L, 4, (lua_Integer)ls + 1), n = 0;
    int changed = 0;
    luaL_argexpected(
        L, tr == LUA_TNUMBER || tr == LUA_TSTRING || tr == LUA_TFUNCTION || tr == LUA_TTABLE, 3,
        "string/function/table");
    int anchor = *p == '^';
    if (anchor) p++, lp--;
    pmatch m;
    pm_init(&m, L, src, ls, p, lp);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    while (n < max_s) {
        pm_reset(&m);
        const char *e = pm_match(&m, src, p);
        if (e && e != last) {
            n++;
            gsub_value(&m, &b, src, e, tr);
            src = last = e;
            changed = 1;
        } else if (src < m.src_end) {
            pm_tick(&m);
            luaL_addchar(&b, *src++);
        } else {
            break;
        }
        if (anchor) break;
    }
    if (!changed) {
        lua_pushvalue(L, 1);
    } else {
        luaL_addlstring(&b, src, (size_t)(m.src_end - src));
        luaL_pushresult(&b);
    }
    lua_pushinteger(L, n);
    return 2;
}

/* string.rep: refuses results past the memory limit and never loops over
** empty pieces; the copy is charged with its allocation. The result is
** built by doubling (one copy per piece would cost a call per byte for
** one-byte pieces). A result past the limit is refused at once, naming
** the budget as the other budgets' messages do (the stock message,
** "resulting string too large", did not say which limit or how large). */
static int rep_too_large(lua_State *L, lua_Integer n, size_t l, size_t lsep)
{
    sbx *sb = sbx_of(L);
    if (sb->limit == SIZE_MAX) return luaL_error(L, "resulting string too large");
    char size[40], budget[40];
    uint64_t un = (uint64_t)n, unit = l + lsep;
    if (un <= UINT64_MAX / unit)
        thousands(un * l + (un - 1) * lsep, size, sizeof size);
    else
        snprintf(size, sizeof size, "more than 2^64");
    return luaL_error(L,
                      "string.rep: the result (%s bytes) exceeds the policy's memory budget "
                      "(%s bytes)",
                      size, thousands(sb->limit, budget, sizeof budget));
}

static int sb_str_rep(lua_State *L)
{
    sbx *sb = sbx_of(L);
    size_t l, lsep;
    const char *s = luaL_checklstring(L, 1, &l);
    lua_Integer n = luaL_checkinteger(L, 2);
    const char *sep = luaL_optlstring(L, 3, "", &lsep);
    if (n <= 0 || l + lsep == 0) {
        lua_pushliteral(L, "");
        return 1;
    }
    size_t unit = l + lsep;
    if ((uint64_t)n > sb->limit / unit) return rep_too_large(L, n, l, lsep);
    size_t total = (size_t)n * l + (size_t)(n - 1) * lsep; /* the allocator charges it */
    sbx_room(L, 2 * total);                                /* the buffer, then the string */
    luaL_Buffer b;
    char *out = luaL_buffinitsize(L, &b, total);
    /* The result is `s sep` repeated, cut after the last s: write one
    ** period, then copy what is written after itself. */
    memcpy(out, s, l);
    size_t done = l;
    if (done < total) {
        memcpy(out + done, sep, lsep);
        done += lsep;
    }
    while (done < total) {
        size_t k = done < total - done ? done : total - done;
        memcpy(out + done, out, k);
        done += k;
    }
    luaL_pushresultsize(&b, total);
    return 1;
}

/* string.format (the stock one, upvalue 1) charged for its work first:
** the count hook cannot see inside one call, and a single conversion can
** be costly (a float printed with 300 digits, a control byte through %q).
** The conversions are read as the stock function reads them; one it
** would refuse is charged as a plain item and fails there. */
static int sb_str_format(lua_State *L)
{
    size_t lf;
    const char *f = luaL_checklstring(L, 1, &lf), *e = f + lf;
    int top = lua_gettop(L), arg = 1;
    uint64_t cost = 1 + (lf >> 4);
    size_t out = lf;
    for (const char *p = f; p < e; p++) {
        if (*p != '%') continue;
        if (e - p < 2) break;
        if (*++p == '%') continue;
        int prec = -1;
        while (p < e && (*p == '-' || *p == '+' || *p == ' ' || *p == '#' || *p == '0'))
            p++;
        while (p < e && *p >= '0' && *p <= '9')
            p++;
        if (p < e && *p == '.') {
            prec = 0;
            for (p++; p < e && *p >= '0' && *p <= '9'; p++)
                prec = prec < 1000 ? prec * 10 + (*p - '0') : prec;
        }
        if (p >= e) break;
        arg++;
        cost += 16;
        out += 32;
        int t = arg <= top ? lua_type(L, arg) : LUA_TNONE;
        if (*p == 's' && t != LUA_TNONE && t != LUA_TSTRING && t != LUA_TNUMBER) {
            /* As tostring shows it (the stock one would write an address);
            ** a __tostring runs here, once. */
            sbx_tolstring(L, arg, NULL);
            lua_replace(L, arg);
            t = LUA_TSTRING;
        }
        size_t l = t == LUA_TSTRING ? lua_rawlen(L, arg) : 0;
        switch (*p) {
        case 'p': /* the address of a table, function or string */
            return luaL_error(L, "string.format: '%%p' is not available in policies (it shows "
                                 "memory addresses)");
        case 'a':
        case 'A':
        case 'e':
        case 'E':
        case 'f':
        case 'F':
        case 'g':
        case 'G': {
            int isnum = 0; /* a numeric string is converted like a number */
            double x = fabs((double)lua_tonumberx(L, arg, &isnum));
            if (!isnum) break;
            /* about 8 instructions' worth of work a digit */
            uint64_t digits = prec < 0 ? 6 : (uint64_t)prec;
            if ((*p | 0x20) == 'f' && x >= 10 && isfinite(x)) digits += (uint64_t)log10(x);
            cost += 8 * digits;
            out += digits;
            break;
        }
        case 'q': {
            if (t != LUA_TSTRING) break;
            const unsigned char *q = (const unsigned char *)lua_tostring(L, arg);
            size_t ctl = 0;
            for (size_t i = 0; i < l; i++)
                ctl += q[i] < 0x20 || q[i] == 0x7f;
            cost += (l >> 2) + 32 * (uint64_t)ctl;
            out += l + 3 * ctl;
            break;
        }
        case 's':
            cost += l >> 4;
            out += l;
            break;
        }
    }
    sbx_charge(L, cost);
    sbx_room(L, out < SIZE_MAX / 4 ? 3 * out : SIZE_MAX / 2);
    return run_stock(L);
}

/* Wrappers that charge work proportional to their arguments, then run the
** stock function (upvalue 1, run_stock). The kind is upvalue 2. */
enum {
    W_STRLEN = 1,
    W_TLEN,
    W_TCONCAT,
    W_TUNPACK,
    W_TMOVE,
    W_TSORT,
    W_STRBUF,
    W_FMT,
    W_PACK,
    W_U8LEN,
    W_U8CP,
    W_U8OFF,
    W_NARGS
};

/* A numeric string where the function takes an integer becomes that
** number on the stack, so the charge and the call read the same bound. */
static void norm_int(lua_State *L, int idx)
{
    if (idx <= lua_gettop(L) && lua_type(L, idx) == LUA_TSTRING &&
        lua_stringtonumber(L, lua_tostring(L, idx)))
        lua_replace(L, idx);
}

static lua_Integer opt_int(lua_State *L, int idx, lua_Integer def)
{
    int isnum = 0;
    lua_Integer v = lua_type(L, idx) == LUA_TNUMBER ? lua_tointegerx(L, idx, &isnum) : 0;
    return isnum ? v : def;
}

static uint64_t span(lua_Integer a, lua_Integer b)
{
    return b >= a ? (uint64_t)b - (uint64_t)a + 1 : 0;
}

/* The memory table.concat(t, sep, i, i + m - 1) may take (its buffer grows
** by doubling, then the result is copied out of it), for a table without
** a metatable; the walk is charged with the call. */
static size_t concat_size(lua_State *L, lua_Integer i, uint64_t m)
{
    size_t lsep = lua_type(L, 2) == LUA_TSTRING ? lua_rawlen(L, 2) : 0, total = 0;
    for (uint64_t k = 0; k < m && total < SIZE_MAX / 8; k++) {
        int t = lua_rawgeti(L, 1, (lua_Integer)((uint64_t)i + k));
        total += (t == LUA_TSTRING ? lua_rawlen(L, -1) : 24) + lsep;
        lua_pop(L, 1);
    }
    return total < SIZE_MAX / 8 ? 3 * total : SIZE_MAX / 2;
}

/* The bytes from i (argument 2, default 1) to j (argument 3, default i,
** or the end when to_end) of a string of len bytes, as the string and
** utf8 functions read them. */
static uint64_t str_span(lua_State *L, size_t len, int to_end)
{
    lua_Integer i = opt_int(L, 2, 1);
    lua_Integer j = opt_int(L, 3, to_end ? -1 : i);
    i = i > 0 ? i : i == 0 || -(lua_Unsigned)i > len ? 1 : (lua_Integer)len + i + 1;
    j = j >= 0 ? j : -(lua_Unsigned)j > len ? 0 : (lua_Integer)len + j + 1;
    if (j > (lua_Integer)len) j = (lua_Integer)len;
    return span(i, j);
}

static int sb_charged(lua_State *L)
{
    int kind = (int)lua_tointeger(L, lua_upvalueindex(2));
    uint64_t cost = 1;
    /* The bounds' arguments: concat (t, sep, i, j), unpack (t, i, j), move (a1, f, e, t). */
    static const int bounds[W_NARGS + 1][2] = {
        [W_TCONCAT] = {3, 4}, [W_TUNPACK] = {2, 3}, [W_TMOVE] = {2, 4},
        [W_STRLEN] = {2, 3},  [W_U8LEN] = {2, 3},   [W_U8CP] = {2, 3}};
    for (int i = bounds[kind][0]; i && i <= bounds[kind][1]; i++)
        norm_int(L, i);
    /* The length is read once here and again by the function: one that
    ** __len can change between the two is not charged for. */
    if (kind != W_STRLEN && kind != W_TMOVE && kind < W_STRBUF && lua_type(L, 1) == LUA_TTABLE &&
        luaL_getmetafield(L, 1, "__len") != LUA_TNIL)
        return luaL_error(L, "a table with a __len metamethod cannot be given to this function "
                             "in a policy");
    size_t len1 = lua_type(L, 1) == LUA_TSTRING ? lua_rawlen(L, 1) : 0, need = 0;
    switch (kind) {
    case W_NARGS: /* math.max and math.min: a comparison an argument */
        cost += (uint64_t)lua_gettop(L);
        break;
    case W_STRLEN: /* byte(s, i, j): what it pushes */
        cost += str_span(L, len1, 0) >> 2;
        break;
    case W_STRBUF: /* upper, lower, reverse: a buffer, then the string */
        cost += len1 >> 4;
        need = 2 * len1;
        break;
    case W_U8LEN: /* decoding costs more per byte than a scan */
    case W_U8CP:
        cost += str_span(L, len1, kind == W_U8LEN) >> 1;
        break;
    case W_U8OFF: /* skipping continuation bytes may walk the string */
        cost += len1 >> 3;
        break;
    case W_FMT: /* unpack, packsize: each format byte is an option to parse */
        cost += 3 * (uint64_t)len1;
        /* unpack's 'z' looks for the end of a string in the data: strlen
        ** from where it stands, to the data's end when no zero comes (all
        ** of it, each call, when the error is caught); at most the data
        ** whatever the options, read at a plain find's rate */
        if (len1 && lua_type(L, 2) == LUA_TSTRING && memchr(lua_tostring(L, 1), 'z', len1))
            cost += lua_rawlen(L, 2) >> 4;
        break;
    case W_PACK: {
        cost += 3 * (uint64_t)len1;
        if (lua_type(L, 1) != LUA_TSTRING) break;
        /* pack writes at most 16 bytes an option, plus its strings */
        size_t out = len1 < SIZE_MAX / 64 ? 16 * len1 : SIZE_MAX / 4;
        /* and reads its strings: 'z' scans each for a zero first, and a
        ** refusal ("string contains zeros") allocates nothing to charge */
        for (int i = 2, top = lua_gettop(L); i <= top && out < SIZE_MAX / 4; i++)
            if (lua_type(L, i) == LUA_TSTRING) {
                out += lua_rawlen(L, i) + 16;
                cost += lua_rawlen(L, i) >> 4;
            }
        need = 3 * out;
        break;
    }
    case W_TLEN: /* insert, remove: shift up to #t elements */
    case W_TCONCAT:
    case W_TUNPACK:
    case W_TSORT: {
        if (lua_type(L, 1) != LUA_TTABLE) break;
        lua_Integer n = luaL_len(L, 1); /* __len runs under the budget */
        if (kind == W_TCONCAT) {
            uint64_t m = span(opt_int(L, 3, 1), opt_int(L, 4, n));
            cost += m;
            if (m && lua_getmetatable(L, 1)) {
                lua_pop(L, 1); /* entries from __index: their size is not known here */
            } else if (m) {
                need = concat_size(L, opt_int(L, 3, 1), m);
            }
        } else if (kind == W_TUNPACK)
            cost += span(opt_int(L, 2, 1), opt_int(L, 3, n));
        else if (kind == W_TSORT) {
            if (n > (1 << 20)) return luaL_error(L, "table too large to sort");
            uint64_t lg = 1;
            while (n > 0 && ((uint64_t)1 << lg) < (uint64_t)n)
                lg++;
            uint64_t cmps = (uint64_t)(n > 0 ? n : 0) * lg;
            cost += cmps;
            /* Without a comparator, two strings compare in one C call, up
            ** to where they differ (about 10 ns a byte when full of zero
            ** bytes): each comparison is charged a unit per 8 bytes of the
            ** longest string sorted, or, when an entry is missing and may
            ** come from __index, of the longest alive. */
            if (lua_isnoneornil(L, 2) && cmps && cmps <= (uint64_t)INT64_MAX / 2) {
                sbx *sb = sbx_of(L);
                size_t longest = 0;
                int missing = 0;
                if ((int64_t)cmps <= sb->budget)
                    for (lua_Integer i = 1; i <= n; i++) {
                        int ty = lua_rawgeti(L, 1, i);
                        if (ty == LUA_TSTRING && lua_rawlen(L, -1) > longest)
                            longest = lua_rawlen(L, -1);
                        missing |= ty == LUA_TNIL;
                        lua_pop(L, 1);
                    }
                if (missing && sb->long_top && luaL_getmetafield(L, 1, "__index") != LUA_TNIL) {
                    lua_pop(L, 1);
                    if (((size_t)2 << sb->long_top) > longest) longest = (size_t)2 << sb->long_top;
                }
                uint64_t per = longest >> 3;
                cost += per && cmps > UINT64_MAX / 4 / per ? UINT64_MAX / 4 : cmps * per;
            }
        } else {
            cost += n > 0 ? (uint64_t)n : 0;
        }
        break;
    }
    case W_TMOVE:
        cost += span(opt_int(L, 2, 1), opt_int(L, 3, 0));
        break;
    }
    sbx_charge(L, cost);
    if (need) sbx_room(L, need);
    int n = run_stock(L);
    /* Results enough to be a caller's many extra arguments (f(table.unpack(t))):
    ** the hook comes at the next instruction, to charge them (va_cost) from
    ** there rather than a whole interval later. */
    if (n >= SBX_VA_MANY) {
        sbx *sb = sbx_of(L);
        sb->va_live = 1;
        /* The instructions run since the last hook are not known: the whole
        ** interval is charged, which the next hook will not. */
        if (sb->hooked && !sb->trip) {
            sbx_charge(L, (uint64_t)lua_gethookcount(L));
            lua_sethook(L, sbx_hook, LUA_MASKCOUNT, 1);
        }
    }
    return n;
}

/* utf8.codes' iterator (the stock one, upvalue 1) first skips the
** continuation bytes at the position it is given, all of them in one C
** call: called by hand, f(s, 0) with f taken from utf8.codes('a') and s
** megabytes of them, each call walked the whole string uncharged (a loop of
** those ran ten times its wall-clock limit, and for good with the wall
** clock off). The bytes it will skip are charged as they are counted, at
** utf8.offset's rate, before it runs; a loop over a string's characters
** skips at most three a step. */
static int sb_u8_iter(lua_State *L)
{
    if (lua_type(L, 1) == LUA_TSTRING) {
        size_t len;
        const unsigned char *s = (const unsigned char *)lua_tolstring(L, 1, &len);
        lua_Unsigned i = (lua_Unsigned)lua_tointegerx(L, 2, NULL), k = 0;
        for (; i < len && (s[i] & 0xC0) == 0x80; i++)
            if (++k == 4096) {
                sbx_charge(L, k >> 3);
                k = 0;
            }
        sbx_charge(L, 1 + (k >> 3));
    }
    return run_stock(L);
}

/* utf8.codes (the stock one, upvalue 1): its iterator charged (sb_u8_iter). */
static int sb_u8_codes(lua_State *L)
{
    int n = run_stock(L);
    if (n >= 1 && lua_tocfunction(L, -n)) {
        lua_pushvalue(L, -n);
        lua_pushcclosure(L, sb_u8_iter, 1);
        lua_replace(L, -n - 1);
    }
    return n;
}

/* ------------------------------------------------------------------------ */
/* os.time: the engine's clock; with a date table, that date in UTC. */

/* A field of os.time's table, read as stock Lua's getfield does: a float
** with an integral value counts (day = 1.0), and so does a string that
** converts to one ('10'). */
static lua_Integer date_field(lua_State *L, const char *k, lua_Integer def, int required)
{
    int t = lua_getfield(L, 1, k), isnum;
    lua_Integer v = lua_tointegerx(L, -1, &isnum);
    if (!isnum) {
        if (t != LUA_TNIL) luaL_error(L, "field '%s' is not an integer", k);
        if (required) luaL_error(L, "field '%s' missing in date table", k);
        v = def;
    } else if (v < -10000000 || v > 10000000) {
        luaL_error(L, "field '%s' is out-of-bound", k);
    }
    lua_pop(L, 1);
    return v;
}

static int sb_os_time(lua_State *L)
{
    sbx *sb = sbx_of(L);
    if (lua_isnoneornil(L, 1)) {
        int64_t ms = sb->now_ms;
        lua_pushinteger(L, (lua_Integer)(ms >= 0 ? ms / 1000 : -((-ms + 999) / 1000)));
        return 1;
    }
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_Integer y = date_field(L, "year", 0, 1), mo = date_field(L, "month", 0, 1);
    lua_Integer d = date_field(L, "day", 0, 1), h = date_field(L, "hour", 12, 0);
    lua_Integer mi = date_field(L, "min", 0, 0), s = date_field(L, "sec", 0, 0);
    int64_t m0 = mo - 1, carry = m0 >= 0 ? m0 / 12 : -((11 - m0) / 12);
    y += carry;
    mo = m0 - carry * 12 + 1;
    int64_t t =
        sched_days_from_civil(y, (int)mo, 1) * 86400 + (d - 1) * 86400 + h * 3600 + mi * 60 + s;
    lua_pushinteger(L, (lua_Integer)t);
    return 1;
}

/* os.date(format, t, zone): the date of Unix time t (default: the engine's
** clock) as a table, in UTC or in an IANA zone. Only the "*t" forms: the
** text ones would depend on the process's locale, and the sandbox has no
** local time zone of its own (os.time reads a table as UTC). */
static int sb_os_date(lua_State *L)
{
    sbx *sb = sbx_of(L);
    char shown[72];
    size_t n;
    const char *fmt = luaL_optlstring(L, 1, "*t", &n);
    int utc = fmt[0] == '!';
    if (n != (size_t)utc + 2 || strcmp(fmt + utc, "*t") != 0)
        return luaL_error(L,
                          "os.date: only the formats '*t' and '!*t' (a date table) are "
                          "available in policies, got '%s'",
                          sbx_show(L, 1, shown, sizeof shown));
    int64_t t;
    if (lua_isnoneornil(L, 2)) {
        int64_t ms = sb->now_ms;
        t = ms >= 0 ? ms / 1000 : -((-ms + 999) / 1000);
    } else {
        lua_Number v = luaL_checknumber(L, 2);
        /* Years -30,000..30,000: what the date arithmetic and a zone take. */
        if (!(fabs(v) <= 1e12))
            return luaL_error(L, "os.date: time %f out of range (Unix seconds)", v);
        t = (int64_t)floor(v);
    }
    const char *zone = luaL_optstring(L, 3, NULL);
    int32_t off = 0;
    if (zone && utc) return luaL_error(L, "os.date: '!*t' is UTC; give a zone with '*t' instead");
    if (zone && (!tz_valid(zone) || tz_offset(zone, t, &off)))
        return luaL_error(L, "os.date: unknown time zone '%s'",
                          sbx_show(L, 3, shown, sizeof shown));
    int64_t local = t + off, days = local >= 0 ? local / 86400 : -((-local + 86399) / 86400);
    int64_t secs = local - days * 86400;
    int64_t y;
    int m, d;
    sched_civil_from_days(days, &y, &m, &d);
    int64_t wd = (days % 7 + 11) % 7; /* 1970-01-01 was a Thursday: wday 5 */
    lua_createtable(L, 0, 10);
    lua_pushinteger(L, (lua_Integer)y);
    lua_setfield(L, -2, "year");
    lua_pushinteger(L, (lua_Integer)m);
    lua_setfield(L, -2, "month");
    lua_pushinteger(L, (lua_Integer)d);
    lua_setfield(L, -2, "day");
    lua_pushinteger(L, (lua_Integer)(secs / 3600));
    lua_setfield(L, -2, "hour");
    lua_pushinteger(L, (lua_Integer)(secs / 60 % 60));
    lua_setfield(L, -2, "min");
    lua_pushinteger(L, (lua_Integer)(secs % 60));
    lua_setfield(L, -2, "sec");
    lua_pushinteger(L, (lua_Integer)(wd + 1));
    lua_setfield(L, -2, "wday");
    lua_pushinteger(L, (lua_Integer)(days - sched_days_from_civil(y, 1, 1) + 1));
    lua_setfield(L, -2, "yday");
    lua_pushinteger(L, off);
    lua_setfield(L, -2, "utc_offset");
    return 1;
}

/* ------------------------------------------------------------------------ */
/* Building the state */

static void set_fn(lua_State *L, int t, const char *name, lua_CFunction f)
{
    lua_pushcfunction(L, f);
    lua_setfield(L, t, name);
}

/* Copy `names` from table src to table dst. */
static void copy_fields(lua_State *L, int dst, int src, const char *const *names)
{
    for (; *names; names++) {
        lua_getfield(L, src, *names);
        lua_setfield(L, dst, *names);
    }
}

/* Push src[name], a stock function a wrapper will run in its own call
** (run_stock): it must be a C function that reads no upvalues, as every
** one wrapped is in Lua 5.4. A release where one is not fails here, when
** the state is built, rather than running it with the wrapper's upvalues. */
static void stock_fn(lua_State *L, int src, const char *name)
{
    lua_getfield(L, src, name);
    if (!lua_tocfunction(L, -1) || lua_getupvalue(L, -1, 1))
        luaL_error(L, "sandbox: the stock '%s' is not a C function without upvalues", name);
}

/* dst[name] = charged wrapper of src[name]. */
static void wrap_charged(lua_State *L, int dst, int src, const char *name, int kind)
{
    stock_fn(L, src, name);
    lua_pushinteger(L, kind);
    lua_pushcclosure(L, sb_charged, 2);
    lua_setfield(L, dst, name);
}

/* registry._LOADED[name] = the library table at idx. */
static void register_lib(lua_State *L, int idx, const char *name)
{
    idx = lua_absindex(L, idx);
    lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    lua_pushvalue(L, idx);
    lua_setfield(L, -2, name);
    lua_pop(L, 1);
}

static int ro_next(lua_State *L)
{
    lua_settop(L, 2);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_pushvalue(L, 2);
    if (lua_next(L, -2)) return 2;
    return 0;
}

static int ro_pairs(lua_State *L)
{
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_pushcclosure(L, ro_next, 1);
    lua_pushnil(L);
    lua_pushnil(L);
    return 3;
}

/* Push a read-only proxy of the table at `real`, registered as protected.
** Reads go through __index (a table: no C call), writes fail, pairs walks
** the real table without handing it out, the metatable is hidden. */
static void push_proxy(lua_State *L, sbx *sb, int real, const char *name)
{
    real = lua_absindex(L, real);
    lua_newtable(L);
    lua_createtable(L, 0, 4);
    lua_pushvalue(L, real);
    lua_setfield(L, -2, "__index");
    lua_pushstring(L, name);
    lua_pushcclosure(L, ro_error, 1);
    lua_setfield(L, -2, "__newindex");
    lua_pushvalue(L, real);
    lua_pushcclosure(L, ro_pairs, 1);
    lua_setfield(L, -2, "__pairs");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_setmetatable(L, -2);
    lua_rawgeti(L, LUA_REGISTRYINDEX, sb->ref_protected);
    lua_pushvalue(L, -2);
    lua_pushboolean(L, 1);
    lua_rawset(L, -3);
    lua_pop(L, 1);
}

static int open_stock(lua_State *L, lua_CFunction open)
{
    lua_pushcfunction(L, open);
    lua_call(L, 0, 1);
    return lua_gettop(L);
}

static int new_ref_table(lua_State *L, const char *mode)
{
    lua_newtable(L);
    if (mode) {
        lua_createtable(L, 0, 1);
        lua_pushstring(L, mode);
        lua_setfield(L, -2, "__mode");
        lua_setmetatable(L, -2);
    }
    return luaL_ref(L, LUA_REGISTRYINDEX);
}

static int setup(lua_State *L)
{
    sbx *sb = lua_touserdata(L, 1);

    /* Interned keys, kept alive by a registry table, found by pointer. */
    lua_createtable(L, K_COUNT, 0);
    for (int k = 1; k < K_COUNT; k++) {
        lua_pushstring(L, sbx_key_names[k]);
        sb->kptr[k] = lua_topointer(L, -1);
        lua_rawseti(L, -2, k);
        unsigned h = (unsigned)(((uintptr_t)sb->kptr[k] >> 3) * 0x9E3779B1u) >> 24;
        while (sb->khash[h].p)
            h = (h + 1) & 255;
        sb->khash[h].p = sb->kptr[k];
        sb->khash[h].k = k;
    }
    sb->ref_keys = luaL_ref(L, LUA_REGISTRYINDEX);
    sb->ref_protected = new_ref_table(L, NULL);
    sb->ref_threads = new_ref_table(L, "k");
    sb->ref_tainted = new_ref_table(L, "k");
    sb->ref_guards = new_ref_table(L, "k");
    push_guard(L, 0); /* the guard of a metatable that had none (guard_table) */
    sb->ref_guard = luaL_ref(L, LUA_REGISTRYINDEX);

    lua_newtable(L); /* the shared globals every policy's _ENV reads through */
    int g = lua_gettop(L);

    /* The libraries as package.loaded would list them, kept where only
    ** lauxlib looks (no script reaches the registry): an argument error of
    ** a function called with no name at hand, as by pcall(table.insert,
    ** ...), names it as Lua does ("bad argument #1 to 'table.insert'", not
    ** to '?'). They are the tables the scripts' functions are in, our
    ** wrappers with the stock functions we kept. */
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    lua_pop(L, 1);
    register_lib(L, g, "_G");

    int base = open_stock(L, luaopen_base);
    static const char *const base_names[] = {
        "assert", "error",  "getmetatable", "ipairs", "next",     "pairs", "rawequal",
        "rawget", "rawlen", "select",       "type",   "_VERSION", NULL};
    copy_fields(L, g, base, base_names);
    stock_fn(L, base, "tonumber");
    lua_pushcclosure(L, sb_tonumber, 1);
    lua_setfield(L, g, "tonumber");
    set_fn(L, g, "rawset", sb_rawset);
    set_fn(L, g, "setmetatable", sb_setmetatable);
    set_fn(L, g, "getmetatable", sb_getmetatable);
    set_fn(L, g, "collectgarbage", sb_collectgarbage);
    set_fn(L, g, "print", sb_print);
    set_fn(L, g, "tostring", sb_tostring);
    set_fn(L, g, "pcall", sb_pcall);
    set_fn(L, g, "xpcall", sb_xpcall);
    lua_settop(L, g);

    /* string: the real table is the string metatable's __index (unreachable:
    ** __metatable hides it); scripts see a read-only proxy. */
    int sl = open_stock(L, luaopen_string);
    lua_newtable(L);
    int s = lua_gettop(L);
    register_lib(L, s, "string");
    static const char *const str_names[] = {"char", "len", "sub", NULL};
    copy_fields(L, s, sl, str_names);
    wrap_charged(L, s, sl, "byte", W_STRLEN);
    static const char *const str_buf_names[] = {"upper", "lower", "reverse", NULL};
    for (const char *const *n = str_buf_names; *n; n++)
        wrap_charged(L, s, sl, *n, W_STRBUF);
    wrap_charged(L, s, sl, "pack", W_PACK);
    wrap_charged(L, s, sl, "unpack", W_FMT);
    wrap_charged(L, s, sl, "packsize", W_FMT);
    stock_fn(L, sl, "format");
    lua_pushcclosure(L, sb_str_format, 1);
    lua_setfield(L, s, "format");
    set_fn(L, s, "find", sb_str_find);
    set_fn(L, s, "match", sb_str_match);
    set_fn(L, s, "gmatch", sb_str_gmatch);
    set_fn(L, s, "gsub", sb_str_gsub);
    set_fn(L, s, "rep", sb_str_rep);
    lua_pushliteral(L, "");
    lua_getmetatable(L, -1);
    lua_pushvalue(L, s);
    lua_setfield(L, -2, "__index");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_pop(L, 2);
    push_proxy(L, sb, s, "string");
    lua_setfield(L, g, "string");
    lua_settop(L, g);

    int tl = open_stock(L, luaopen_table);
    lua_newtable(L);
    int t = lua_gettop(L);
    register_lib(L, t, "table");
    static const char *const tab_names[] = {"pack", NULL};
    copy_fields(L, t, tl, tab_names);
    wrap_charged(L, t, tl, "insert", W_TLEN);
    wrap_charged(L, t, tl, "remove", W_TLEN);
    wrap_charged(L, t, tl, "concat", W_TCONCAT);
    wrap_charged(L, t, tl, "unpack", W_TUNPACK);
    wrap_charged(L, t, tl, "move", W_TMOVE);
    wrap_charged(L, t, tl, "sort", W_TSORT);
    push_proxy(L, sb, t, "table");
    lua_setfield(L, g, "table");
    lua_settop(L, g);

    int ml = open_stock(L, luaopen_math);
    lua_newtable(L);
    int m = lua_gettop(L);
    static const char *const math_names[] = {
        "abs", "ceil",       "cos",        "deg",  "exp",  "floor", "fmod", "huge",
        "log", "maxinteger", "mininteger", "modf", "pi",   "rad",   "sin",  "sqrt",
        "tan", "tointeger",  "type",       "ult",  "asin", "acos",  "atan", NULL};
    copy_fields(L, m, ml, math_names);
    wrap_charged(L, m, ml, "max", W_NARGS);
    wrap_charged(L, m, ml, "min", W_NARGS);
    set_fn(L, m, "random", sb_math_random);
    set_fn(L, m, "randomseed", sb_math_randomseed);
    push_proxy(L, sb, m, "math");
    lua_setfield(L, g, "math");
    lua_settop(L, g);

    int ul = open_stock(L, luaopen_utf8);
    lua_newtable(L);
    int u = lua_gettop(L);
    register_lib(L, u, "utf8");
    static const char *const utf8_names[] = {"char", "charpattern", NULL};
    copy_fields(L, u, ul, utf8_names);
    stock_fn(L, ul, "codes");
    lua_pushcclosure(L, sb_u8_codes, 1);
    lua_setfield(L, u, "codes");
    wrap_charged(L, u, ul, "len", W_U8LEN);
    wrap_charged(L, u, ul, "codepoint", W_U8CP);
    wrap_charged(L, u, ul, "offset", W_U8OFF);
    push_proxy(L, sb, u, "utf8");
    lua_setfield(L, g, "utf8");
    lua_settop(L, g);

    int cl = open_stock(L, luaopen_coroutine);
    lua_newtable(L);
    int c = lua_gettop(L);
    static const char *const co_names[] = {"yield", "status", "running", "isyieldable", NULL};
    copy_fields(L, c, cl, co_names);
    set_fn(L, c, "create", co_create);
    set_fn(L, c, "resume", co_resume);
    set_fn(L, c, "wrap", co_wrap);
    set_fn(L, c, "close", co_close);
    push_proxy(L, sb, c, "coroutine");
    lua_setfield(L, g, "coroutine");
    lua_settop(L, g);

    lua_newtable(L);
    set_fn(L, lua_gettop(L), "time", sb_os_time);
    set_fn(L, lua_gettop(L), "date", sb_os_date);
    push_proxy(L, sb, -1, "os");
    lua_setfield(L, g, "os");
    lua_settop(L, g);

    /* The metatable of every policy's _ENV: reads fall through to g. */
    lua_createtable(L, 0, 2);
    lua_pushvalue(L, g);
    lua_setfield(L, -2, "__index");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    sb->ref_envmt = luaL_ref(L, LUA_REGISTRYINDEX);
    sb->ref_genv = luaL_ref(L, LUA_REGISTRYINDEX);

    views_open(L);
    return 0;
}

sbx *sbx_new(size_t limit, pol_log_fn log, void *log_arg)
{
    sbx *sb = calloc(1, sizeof *sb);
    if (!sb) return NULL;
    sb->limit = limit ? limit : SIZE_MAX; /* 0: no limit */
    sb->log = log;
    sb->log_arg = log_arg;
    sb->ref_genv = sb->ref_envmt = sb->ref_protected = sb->ref_threads = LUA_NOREF;
    sb->ref_agents = sb->ref_keys = sb->ref_tainted = sb->ref_guard = sb->ref_guards = LUA_NOREF;
    rng_seed(sb->rng, 0);
    sb->L = lua_newstate(sbx_alloc, sb);
    if (!sb->L) {
        free(sb);
        return NULL;
    }
    *(sbx **)lua_getextraspace(sb->L) = sb; /* copied into every new thread */
    if (sbx_run(sb, setup, sb, NULL, 0)) {
        sbx_free(sb);
        return NULL;
    }
    lua_gc(sb->L, LUA_GCCOLLECT);
    lua_sethook(sb->L, sbx_hook, LUA_MASKCOUNT, SBX_HOOK_EVERY);
    return sb;
}

void sbx_free(sbx *sb)
{
    if (!sb) return;
    if (sb->L) {
        /* Anything that would still run (nothing should) stops at once. */
        sb->active = 1;
        sb->trip = TRIP_INSTR;
        sb->enforce = 0;
        sb->cur = NULL;
        lua_sethook(sb->L, sbx_hook, LUA_MASKCOUNT, 1);
        lua_close(sb->L);
    }
    views_release(sb);
    free(sb->idptr);
    free(sb->longs);
    free(sb);
}

void sbx_push_key(lua_State *L, int key)
{
    lua_pushstring(L, sbx_key_names[key]);
}

/* The optimal string alignment distance of a and b (edits: insert,
** delete, substitute, swap two neighbours), or 3 when it is more than 2. */
static int edits_upto2(const char *a, size_t la, const char *b, size_t lb)
{
    enum { MAX = 64 };
    if (la > MAX || lb > MAX || (la > lb ? la - lb : lb - la) > 2) return 3;
    int rows[3][MAX + 1], *prev2 = rows[0], *prev = rows[1], *cur = rows[2];
    for (size_t j = 0; j <= lb; j++)
        prev[j] = (int)j;
    for (size_t i = 1; i <= la; i++) {
        cur[0] = (int)i;
        int low = cur[0];
        for (size_t j = 1; j <= lb; j++) {
            int v = prev[j - 1] + (a[i - 1] != b[j - 1]);
            if (prev[j] + 1 < v) v = prev[j] + 1;
            if (cur[j - 1] + 1 < v) v = cur[j - 1] + 1;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                prev2[j - 2] + 1 < v)
                v = prev2[j - 2] + 1;
            cur[j] = v;
            if (v < low) low = v;
        }
        if (low > 2) return 3;
        int *t = prev2;
        prev2 = prev, prev = cur, cur = t;
    }
    return prev[lb] > 2 ? 3 : prev[lb];
}

const char *sbx_show(lua_State *L, int idx, char *buf, size_t cap)
{
    size_t n, o = 0;
    const char *s = lua_tolstring(L, idx, &n);
    for (size_t i = 0; i < n && o + 4 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        buf[o++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
    }
    if (o + 4 >= cap && n > o) {
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    buf[o] = 0;
    return buf;
}

const char *sbx_suggest(const char *word, size_t len, const int *keys, int nkeys)
{
    return sbx_suggest_in(word, len, sbx_key_names, keys, nkeys);
}

const char *sbx_suggest_in(const char *word, size_t len, const char *const *names, const int *idx,
                           int n)
{
    const char *best = NULL;
    int score = 4;
    for (int i = 0; i < n; i++) {
        const char *k = names[idx ? idx[i] : i];
        size_t kl = strlen(k), m = len < kl ? len : kl;
        int s = edits_upto2(word, len, k, kl);
        if (s == 0) continue;
        if (s >= (int)len) s = 3; /* any word that short would do */
        if (s == 3 && !(m >= 3 && memcmp(word, k, m) == 0)) s = 4;
        if (s < score) score = s, best = k;
    }
    return best;
}

const char *sb_suggest(const char *word, const char *const *names, size_t n)
{
    return word && names && n <= INT_MAX ? sbx_suggest_in(word, strlen(word), names, NULL, (int)n)
                                         : NULL;
}

void sbx_unref(sbx *sb, int ref)
{
    if (ref == LUA_NOREF || ref == LUA_REFNIL) return;
    /* luaL_unref only writes existing registry slots: no allocation. */
    luaL_unref(sb->L, LUA_REGISTRYINDEX, ref);
}

/* ------------------------------------------------------------------------ */
/* Loading a policy file */

typedef struct loadjob {
    sbx *sb;
    const char *name, *src;
    size_t len;
    int *refs;
    sb_buf *warn;
} loadjob;

static int last_line(const char *src, size_t len)
{
    int line = 1;
    size_t end = len;
    while (end > 0 && (src[end - 1] == '\n' || src[end - 1] == ' ' || src[end - 1] == '\t' ||
                       src[end - 1] == '\r'))
        end--;
    for (size_t i = 0; i < end; i++)
        if (src[i] == '\n') line++;
    return line;
}

/* An assignment to a global once the file's top level has run. */
static int env_assign(lua_State *L)
{
    char k[68];
    snprintf(k, sizeof k, "%s", lua_type(L, 2) == LUA_TSTRING ? lua_tostring(L, 2) : "?");
    return luaL_error(L,
                      "assignment to global '%s' in a hook: a file's globals are fixed once "
                      "its top level has run (use a local; what a later call needs goes in "
                      "ctx.set)",
                      k);
}

/* After the top level: the file's globals move to a table its _ENV reads
** through, and the _ENV itself keeps only _G (itself), so an assignment to a
** global in a hook fails (state kept in the process would be out of the
** store: lost on a restart, not shared by engines on one data directory,
** different in a replay). rawset refuses it too (sb_rawset), setmetatable
** its metatable. */
static void freeze_env(lua_State *L, sbx *sb, int env)
{
    lua_createtable(L, 0, 4);
    int vals = lua_gettop(L);
    lua_pushnil(L);
    while (lua_next(L, env)) {
        lua_pushvalue(L, -2);
        lua_insert(L, -2);
        lua_rawset(L, vals);
    }
    lua_pushnil(L);
    while (lua_next(L, vals)) {
        lua_pop(L, 1);
        lua_pushvalue(L, -1);
        lua_pushnil(L);
        lua_rawset(L, env);
    }
    lua_pushvalue(L, env);
    lua_setfield(L, env, "_G");
    lua_rawgeti(L, LUA_REGISTRYINDEX, sb->ref_envmt); /* reads fall through to the shared globals */
    lua_setmetatable(L, vals);
    lua_createtable(L, 0, 3);
    lua_pushvalue(L, vals);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, env_assign);
    lua_setfield(L, -2, "__newindex");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_setmetatable(L, env);
    lua_settop(L, vals - 1);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp((const char *)a, (const char *)b);
}

/* Append to out (cap bytes, *o used), cutting what does not fit. */
__attribute__((format(printf, 4, 5))) static void addf(char *out, size_t cap, size_t *o,
                                                       const char *fmt, ...)
{
    if (*o + 1 >= cap) return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out + *o, cap - *o, fmt, ap);
    va_end(ap);
    if (n > 0) *o = *o + (size_t)n < cap ? *o + (size_t)n : cap - 1;
}

/* What a file's returned table has instead of a hook, for the message
** refusing it: "the table it returns is empty", or its keys, sorted, with a
** hook's name suggested for one close to it ("has key 'rout' (did you mean
** 'route'?)"); six at most, then how many more. Keys that are not strings
** come after, as [1] or "a boolean key". */
static void hook_table_keys(lua_State *L, int t, char *out, size_t cap)
{
    static const int hooks[3] = {K_ROUTE, K_RETAIN, K_ERASE};
    enum { SHOW = 6, KEEP = 64, KLEN = 80 };
    char keys[KEEP][KLEN];
    int nkept = 0, total = 0;
    lua_pushnil(L);
    while (lua_next(L, t)) {
        lua_pop(L, 1);
        total++;
        if (nkept == KEEP) continue;
        char *k = keys[nkept++];
        if (lua_type(L, -1) == LUA_TSTRING) {
            size_t n;
            const char *s = lua_tolstring(L, -1, &n);
            char shown[36];
            const char *near = sbx_suggest(s, n, hooks, 3);
            snprintf(k, KLEN, "'%s'%s%s%s", sbx_show(L, -1, shown, sizeof shown),
                     near ? " (did you mean '" : "", near ? near : "", near ? "'?)" : "");
        } else if (lua_isinteger(L, -1)) {
            /* '\x7f' sorts it after the string keys (dropped when shown) */
            snprintf(k, KLEN, "\x7f[%lld]", (long long)lua_tointeger(L, -1));
        } else {
            snprintf(k, KLEN, "\x7f%s", luaL_typename(L, -1));
        }
    }
    if (!total) {
        snprintf(out, cap, "the table it returns is empty");
        return;
    }
    qsort(keys, (size_t)nkept, KLEN, cmp_str);
    int show = total <= SHOW + 1 ? total : SHOW;
    size_t o = 0;
    out[0] = 0;
    addf(out, cap, &o, "the table it returns has ");
    if (total > show)
        addf(out, cap, &o, "%d keys: ", total);
    else
        addf(out, cap, &o, "key%s ", total > 1 ? "s" : "");
    for (int i = 0; i < show && i < nkept; i++) {
        const char *sep = i == 0 ? "" : i == show - 1 && total == show ? " and " : ", ";
        if (keys[i][0] != '\x7f')
            addf(out, cap, &o, "%s%s", sep, keys[i]);
        else if (keys[i][1] == '[')
            addf(out, cap, &o, "%s%s", sep, keys[i] + 1);
        else
            addf(out, cap, &o, "%sa %s key", sep, keys[i] + 1);
    }
    if (total > show) addf(out, cap, &o, " and %d more", total - show);
}

static int load_job(lua_State *L)
{
    loadjob *j = lua_touserdata(L, 1);
    sbx *sb = j->sb;
    char chunk[SB_NAME_MAX + 8];
    snprintf(chunk, sizeof chunk, "@%s.lua", j->name);
    size_t bom = utf8_bom(j->src, j->len); /* as luaL_loadfile skips one */
    if (luaL_loadbufferx(L, j->src + bom, j->len - bom, chunk, "t") != LUA_OK) return lua_error(L);
    int fn = lua_gettop(L);

    lua_createtable(L, 0, 4); /* this file's own _ENV */
    int env = lua_gettop(L);
    lua_pushvalue(L, env);
    lua_setfield(L, env, "_G");
    lua_rawgeti(L, LUA_REGISTRYINDEX, sb->ref_envmt);
    lua_setmetatable(L, env);
    lua_pushvalue(L, env);
    lua_setupvalue(L, fn, 1);

    lua_pushvalue(L, fn);
    lua_call(L, 0, 1);
    sbx_pause(sb);
    int ll = last_line(j->src, j->len);
    if (!lua_istable(L, -1))
        return luaL_error(L, "%s.lua:%d: a policy must return a table of hooks (got %s)", j->name,
                          ll, luaL_typename(L, -1));
    int t = lua_gettop(L);
    /* route, retain, erase: each optional, each a function; at least one. */
    static const int hooks[3] = {K_ROUTE, K_RETAIN, K_ERASE};
    int nhooks = 0;
    for (int i = 0; i < 3; i++) {
        sbx_push_key(L, hooks[i]);
        int ty = lua_rawget(L, t);
        if (ty == LUA_TNIL) {
            lua_pop(L, 1);
            continue;
        }
        if (ty != LUA_TFUNCTION)
            return luaL_error(L, "%s.lua:%d: hook '%s' must be a function (got %s)", j->name, ll,
                              sbx_key_names[hooks[i]], lua_typename(L, ty));
        /* A library function (pcall, error...) or what coroutine.wrap
        ** returns is a C function: called as a hook it fails with no line
        ** of the policy ("[C]:-1: ..."), a wrapped coroutine on its second
        ** call (dead once it returned). Every Lua function here was defined
        ** by this file (no chunk loads another). */
        if (lua_iscfunction(L, -1))
            return luaL_error(L,
                              "%s.lua:%d: hook '%s' must be a Lua function defined in the "
                              "policy (got a built-in function: a library function or what "
                              "coroutine.wrap returns cannot be a hook)",
                              j->name, ll, sbx_key_names[hooks[i]]);
        j->refs[i] = luaL_ref(L, LUA_REGISTRYINDEX);
        nhooks++;
    }
    if (!nhooks) {
        char found[360];
        hook_table_keys(L, t, found, sizeof found);
        return luaL_error(L,
                          "%s.lua:%d: the policy has no hook (a 'route', 'retain' or 'erase' "
                          "function): %s",
                          j->name, ll, found);
    }
    freeze_env(L, sb, env);
    if (j->warn) {
        lua_pushnil(L);
        while (lua_next(L, t)) {
            lua_pop(L, 1);
            int k = lua_type(L, -1) == LUA_TSTRING ? sbx_key_of(sb, lua_topointer(L, -1)) : K_NONE;
            if (k == K_ROUTE || k == K_RETAIN || k == K_ERASE) continue;
            char kb[80], hint[48] = "";
            if (lua_type(L, -1) == LUA_TSTRING) {
                size_t n;
                const char *s = lua_tolstring(L, -1, &n);
                snprintf(kb, sizeof kb, "'%.64s'", s);
                const char *near = sbx_suggest(s, n, hooks, 3);
                if (near) snprintf(hint, sizeof hint, " (did you mean '%s'?)", near);
            } else {
                snprintf(kb, sizeof kb, "of type %s", luaL_typename(L, -1));
            }
            buf_printf(j->warn, "%s.lua:%d: unknown key %s in the returned hook table%s\n", j->name,
                       ll, kb, hint);
        }
    }
    return 0;
}

int sbx_load(sbx *sb, const char *name, const char *src, size_t len, uint64_t instructions,
             uint32_t wall_ms, int refs[3], sb_buf *warn, char *err, size_t errlen)
{
    refs[0] = refs[1] = refs[2] = LUA_NOREF;
    if (len > SBX_SRC_MAX) {
        snprintf(err, errlen, "%s.lua:1: policy source too large (%zu bytes, at most %u)", name,
                 len, SBX_SRC_MAX);
        return -1;
    }
    loadjob j = {sb, name, src, len, refs, warn};
    const char *saved = sb->policy;
    sb->policy = name;
    rng_seed(sb->rng, 0);
    sbx_arm(sb, instructions, wall_ms);
    int rc = sbx_run(sb, load_job, &j, err, errlen);
    sb->policy = saved;
    if (rc) {
        char where[SB_NAME_MAX + 16];
        snprintf(where, sizeof where, "%s.lua:1: ", name);
        sbx_position(err, errlen, where);
        for (int i = 0; i < 3; i++)
            sbx_unref(sb, refs[i]), refs[i] = LUA_NOREF;
        return -1;
    }
    return 0;
}
