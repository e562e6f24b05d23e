/*
** sandbox.h — private interface of the Lua policy runtime: the sandboxed
** state (sandbox.c), the views and decision checking (views.c), used by the
** host (polhost.c) and the policy tools (policytest.c). Nothing outside
** those four files includes this header; the core sees only policy.h.
**
** One sbx is one lua_State (one account, or one private check/test run):
**
**  - Memory: a counting allocator refuses growth past the state's limit
**    while script code or our protected helpers run. A refusal that
**    surfaces as an error fails the whole call, even when the script
**    catches it (pcall, xpcall and coroutine.resume are our own and
**    re-raise), and so does hitting the cap SBX_REFUSALS times in one run
**    (Lua would otherwise thrash emergency collections).
**  - Budgets: a count hook every SBX_HOOK_EVERY VM instructions charges the
**    instruction budget and checks the wall clock. C functions that can do
**    a lot of work per instruction (pattern matching, string.rep, format,
**    pack/unpack/packsize, byte and the utf8 functions by the range they
**    read, sort, table shifts, tonumber, every allocated byte) charge the
**    same budget, and charged allocation reads the wall clock as the hook
**    does. Before a call that builds a buffer (rep, format, pack, concat,
**    upper/lower/reverse) whose estimated size does not fit, a full
**    collection runs, so garbage does not fail a call that fits.
**    Once tripped, every known thread runs the hook at every instruction,
**    so no script instruction runs again before the error reaches our
**    pcall. An error raised inside a hook leaves that thread's hooks off
**    until a pcall catches it, so: inside a coroutine the hook yields
**    instead (the resumer raises), xpcall message handlers are skipped
**    after a trip, and a coroutine a trip escaped from cannot be closed
**    (its __close handlers would run unhooked).
**    Cost: with any count hook set, Lua 5.4 traps every instruction
**    (luaG_traceexec), about +30% on script execution; a limit of 0 for
**    both instructions and wall clock installs no hook at all.
**  - Library: an allow-list in the spirit of linit.c; shared tables are
**    read-only proxies; each policy file gets its own _ENV; no __gc
**    (setmetatable refuses it), so collecting never runs script code; no
**    __mode, so no weak tables: the collector settles a table of weak keys
**    (ephemerons) in passes, one entry a pass at worst, and 32,768 of them
**    chained in the worst order took one collection 6 s, outside any
**    budget. Lua reads __mode at each collection, so a table refused
**    nothing when it became a metatable could gain one later: every table
**    set as a metatable gets a guard as its own metatable, whose
**    __newindex refuses __mode and __gc (sandbox.c, guard_table).
**  - Long strings: comparing two strings (== and <, VM operations) reads
**    them up to where they differ, and < costs about 10 ns a byte on one
**    full of zero bytes (strcoll a piece between zeros): a loop of 4 MB
**    ones ran 18 s before a hook every SBX_HOOK_EVERY instructions saw
**    its 50 ms wall clock. So while a string of SBX_STR_LONG bytes or
**    more is alive, the hook runs more often, in proportion to the
**    longest (sbx_every: every instruction from 1 MiB), and table.sort
**    without a comparator is charged for the longest string it sorts.
**  - Many extra arguments: a function holding SBX_VA_MANY or more (`...`,
**    from a table.unpack, say) pays for each of its instructions, and those
**    of the functions it calls (SBX_VA_DEPTH levels), one more per
**    SBX_VA_UNIT of them, its hook that much sooner (va_cost): passing them
**    on (g(...), math.max(...), select(2, ...), return ...) moves all of
**    them in one instruction. Only a library call returns that many values,
**    so the hook looks once one has (va_live). Its interval varies by an
**    eighth, so that no loop meets every hook at the same instruction.
**  - Not bounded per instruction: next(t) from the start of a table whose
**    entries were mostly set to nil (it walks the emptied slots, up to the
**    memory cap's worth; pairs' iterator is the same next); the wall clock,
**    checked at each hook, catches a loop of those.
*/
#ifndef SB_SANDBOX_H
#define SB_SANDBOX_H

#include "policy.h"

#include <lauxlib.h>
#include <lua.h>

#define SBX_HOOK_EVERY 1000    /* VM instructions between budget checks */
#define SBX_CO_HOOK_EVERY 64   /* the same in a coroutine, charged again at each resume */
#define SBX_ALLOC_SHIFT 5      /* one instruction charged per 32 bytes allocated */
#define SBX_STR_LONG 8192      /* strings from this size shorten the hook's interval */
#define SBX_VA_MANY 256        /* extra arguments (...) from which a function pays for them */
#define SBX_VA_UNIT 16         /* one instruction charged per this many, each instruction */
#define SBX_VA_DEPTH 8         /* callers the hook asks, beside the function it came in */
#define SBX_SRC_MAX (1u << 20) /* largest policy source accepted */
#define SBX_LOG_LINES 32       /* ctx.log/print lines per hook call */
#define SBX_LOG_LEN 480        /* longest log message kept */
#define SBX_REFUSALS 4         /* refusals in one run that fail it */
#define SBX_KV_KEY_MAX 64
#define SBX_KV_VAL_MAX 1024
#define SBX_KV_WRITES 64 /* distinct keys one call may set */

/* The author's tools' budgets (sb_policy_check, sb_policy_test, pol_validate
** without limits): sb_config_init's defaults. */
#define SBX_DEF_INSTRUCTIONS 1000000u
#define SBX_DEF_WALL_MS 50u
#define SBX_DEF_MEMORY ((size_t)8 << 20)
#define SBX_DEF_QUARANTINE 5u

/* The budget for running a file's top level: ten hook calls' worth of
** instructions, and ten times the wall clock (at least 100 ms). A limit of
** 0 means no limit, here and everywhere in the runtime. */
static inline uint64_t sbx_load_instructions(uint64_t per_call)
{
    return per_call * 10;
}
static inline uint32_t sbx_load_wall(uint32_t wall_ms)
{
    if (!wall_ms) return 0;
    return wall_ms < 10 ? 100 : wall_ms * 10;
}

enum sbx_trip { TRIP_NONE = 0, TRIP_INSTR, TRIP_WALL, TRIP_MEM };

/* Interned field names the views dispatch on (pointer comparison). */
enum sbx_key {
    K_NONE = 0,
    /* agent */
    K_ID,
    K_NAME,
    K_STATUS,
    K_IDLE_FOR,
    K_IDLE_SINCE,
    K_CALLS_TAKEN,
    K_TALK_TIME,
    K_NO_ANSWERS,
    K_LAST_CALL,
    K_MISSED_FOR,
    K_WEIGHT,
    K_TIER,
    K_POSITION,
    K_MEMBER_WEIGHT,
    K_PENALTY,
    K_SKILLS,
    K_DEVICES,
    K_PREFERENCES,
    K_TIMEZONE,
    K_ON_SCHEDULE,
    K_DEVICES_NOW,
    /* call (plus K_ID, K_SKILLS) */
    K_QUEUE,
    K_CALLER,
    K_CALLED,
    K_PRIORITY,
    K_WAITED,
    K_QUEUE_WAITED,
    K_ATTEMPTS,
    K_TRIED,
    K_LAST_AGENT,
    K_PREVIOUS_AGENT,
    K_SINCE_LAST_RING,
    K_ATTRS,
    /* queue figures (plus K_ID, K_POSITION) */
    K_WAITING,
    K_LONGEST_WAIT,
    K_MEMBERS,
    K_AVAILABLE,
    K_LOGGED_IN,
    K_PAUSED,
    /* ctx (plus K_QUEUE) */
    K_NOW,
    K_RANDOM,
    K_GET,
    K_SET,
    K_LOG,
    /* decision */
    K_RING,
    K_MODE,
    K_DEVICE,
    K_TIMEOUT,
    K_STEP,
    K_WAIT,
    K_MOVE,
    K_REASON,
    K_REJECT,
    K_PAUSE,
    K_AGENT,
    /* hooks */
    K_ROUTE,
    K_RETAIN,
    K_ERASE,
    /* record (plus K_ID, K_QUEUE, K_AGENT, K_PRIORITY, K_WAIT, K_ATTRS, K_ATTEMPTS,
    ** K_REASON) */
    K_FIRST_QUEUE,
    K_ENDED_BY,
    K_OUTCOME,
    K_OFFERED,
    K_ANSWERED,
    K_ENDED,
    K_TALK,
    K_AGE_DAYS,
    K_ANONYMIZED,
    K_LEGAL_HOLD,
    K_OVERRIDDEN,
    K_DECIDED_BY,
    /* erasure request */
    K_ROLE,
    K_RECEIVED,
    /* retention decision (plus K_REASON) */
    K_KEEP,
    K_ANONYMIZE,
    K_DELETE,
    K_REVIEW_IN_DAYS,
    K_KEEP_UNTIL,
    K_COUNT
};

struct vcall; /* views.c: the state of one route call */

extern const char *const sbx_key_names[K_COUNT];

typedef struct sbx {
    lua_State *L;
    /* memory */
    size_t mem, limit, peak;
    int enforce;       /* refuse growth past limit (inside protected runs) */
    char memwhere[96]; /* where the first refusal of this run happened */
    int refusals;      /* growth refused in this run */
    /* budget of the current run */
    int active;     /* a budgeted run is in progress */
    int64_t budget; /* instructions left; may go negative */
    uint64_t deadline_ns;
    uint64_t unclocked; /* units charged since the wall clock was last read */
    uint64_t budget_total;
    uint32_t wall_ms;
    int trip;    /* enum sbx_trip: the first overrun of this run */
    int rearmed; /* every known thread re-armed after the trip */
    char trip_msg[256];
    lua_State *cur; /* thread running now (main or a coroutine) */
    int hooked;     /* the run has a budget: the count hook is set */
    /* live strings of SBX_STR_LONG bytes or more (sandbox.c, long_add):
    ** their blocks in an open-addressed set, counted by floor(log2(size)) */
    void **longs;
    size_t longs_cap, longs_n;
    uint32_t long_count[64];
    int long_top;    /* the largest one's floor(log2(size)); 0: none */
    uint32_t jitter; /* xorshift state: the hook's interval varies by an eighth */
    int va_live;     /* a library call returned SBX_VA_MANY values or more, once:
                     ** from then on the hook looks for functions holding them */
    /* logging */
    pol_log_fn log;
    void *log_arg;
    const char *account; /* tags for log lines; may be NULL */
    const char *policy;
    int log_lines, log_dropped;
    /* engine clock for os.time / ctx.now outside route calls */
    int64_t now_ms;
    /* views */
    struct vcall *vc; /* the route call in progress, or NULL */
    uint32_t gen;     /* route call generation, part of every handle */
    int agents_dirty; /* the reused agents list got new keys */
    int agents_len;   /* entries the list had after the last fill */
    void **idptr;     /* per candidate: the id string handed out */
    void *docs;       /* views.c: parsed agent documents kept between calls */
    size_t idcap;
    uint64_t rng[4];    /* math.random and ctx.random */
    uint64_t rng_seedv; /* seed of the current route call */
    int rng_fresh;      /* rng not yet seeded from rng_seedv */
    /* registry references */
    int ref_genv, ref_envmt, ref_protected, ref_threads, ref_tainted, ref_agents, ref_keys;
    int ref_guard, ref_guards; /* setmetatable's guards (sandbox.c, guard_table) */
    /* key interning: the key string's identity (lua_topointer: every
    ** short string is interned, so a script's "idle_for" is the same
    ** object) -> enum sbx_key */
    const void *kptr[K_COUNT];
    struct {
        const void *p;
        int k;
    } khash[256];
} sbx;

static inline sbx *sbx_of(lua_State *L)
{
    return *(sbx **)lua_getextraspace(L);
}

/* The key a value names: p is lua_topointer of it (NULL, a number or
** boolean, names none; neither does any object but an interned key). */
static inline int sbx_key_of(const sbx *sb, const void *p)
{
    if (!p) return K_NONE;
    unsigned h = (unsigned)(((uintptr_t)p >> 3) * 0x9E3779B1u) >> 24;
    for (;; h = (h + 1) & 255) {
        if (sb->khash[h].p == p) return sb->khash[h].k;
        if (!sb->khash[h].p) return K_NONE;
    }
}

/* The interned Lua string for a key, pushed (no allocation). */
void sbx_push_key(lua_State *L, int key);

/* The name among keys[0..nkeys) that `word` (len bytes), a field or key
** that is none of them, is most likely a typo of: within 2 edits (an
** insertion, deletion, substitution or swap of neighbours; fewer edits
** than word has bytes), else one of the two a prefix of the other, at
** least 3 bytes long. The fewest edits win, then the first in keys. NULL
** when none is close. For "did you mean ...?" hints in messages. */
const char *sbx_suggest(const char *word, size_t len, const int *keys, int nkeys);
/* sbx_suggest's rule over names written out: names[idx[0..n)], or
** names[0..n) when idx is NULL (a case file's keys, a decision's). The one
** rule every "did you mean" hint uses; sbx_suggest is it over interned keys
** (sbx_key_names). */
const char *sbx_suggest_in(const char *word, size_t len, const char *const *names, const int *idx,
                           int n);
/* The string at idx, shortened to fit cap and made printable ('?' for any
** other byte, "..." when cut), for messages: buf. */
const char *sbx_show(lua_State *L, int idx, char *buf, size_t cap);
/* "src:line: " of the first Lua function at or above call level `level`
** (a C function's own level has no line: table.insert, say), into buf;
** "" when there is none. */
void sbx_where(lua_State *L, int level, char *buf, size_t cap);

/* Create a state with `limit` bytes of memory (0: no limit). NULL when out of memory or
** when the base library alone does not fit. Free with sbx_free (NULL ok). */
sbx *sbx_new(size_t limit, pol_log_fn log, void *log_arg);
void sbx_free(sbx *sb);

/* Arm the budgets for one run (a hook call or a file's top level); 0 is
** no limit, and with neither limit no hook is installed at all. */
void sbx_arm(sbx *sb, uint64_t instructions, uint32_t wall_ms);
/* Stop charging (the script returned; what follows is our own C). */
static inline void sbx_pause(sbx *sb)
{
    sb->active = 0;
}

/* Run fn(L) with ud as its light userdata argument, protected, with the
** message handler and the memory limit enforced. Returns 0 on success;
** else nonzero with the failure message ("file:line: message", the trip's
** message when a budget was exceeded) in err. A failed run is followed by a
** full collection so memory returns to its level. */
int sbx_run(sbx *sb, lua_CFunction fn, void *ud, char *err, size_t errlen);

/* Full collections until memory stops going down (after a failed call). */
void sbx_collect(sbx *sb);

/* Charge `units` instructions from a C function (may raise the trip). */
void sbx_charge(lua_State *L, uint64_t units);

/* Make sure a failure message starts with a position ("<file>.lua:<line>: "):
** if it does not, prefix it with where. */
void sbx_position(char *err, size_t cap, const char *where);

/* The lines of the return statements that can run in the body of the Lua
** function in registry slot ref (not of the functions it defines), each line
** once, in code order, and last the line of its end when it has any and
** control can fall off that end (returning nothing); at most max of them in
** lines; returns how many it has (0: no return statement, or not a Lua
** function). Read from its
** bytecode (policytest.c): no code runs. */
int pol_return_lines(lua_State *L, int ref, int *lines, int max);

/* Turn the value at idx into a message without metamethods. */
const char *sbx_errstr(lua_State *L, int idx, char *buf, size_t cap);

/* Log a line tagged with the state's account and policy. */
void sbx_logf(sbx *sb, sb_log_level lvl, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* ctx.log / print: join the arguments (tostring) with sep and log them. */
int sbx_log_args(lua_State *L, const char *sep);

/* Compile `src` as text (never bytecode) with chunk name "@<name>.lua", give
** it its own _ENV and run its top level under the load budget. On success
** refs[0..2] hold registry references to route, retain and erase
** (LUA_NOREF when absent) and 0 is returned; warnings (unknown top-level
** keys) are appended to warn when given, one "file:line: message" a line.
** On failure err holds "file:line: message". */
int sbx_load(sbx *sb, const char *name, const char *src, size_t len, uint64_t instructions,
             uint32_t wall_ms, int refs[3], sb_buf *warn, char *err, size_t errlen);
/* Drop a reference made by sbx_load. */
void sbx_unref(sbx *sb, int ref);

/* Deterministic random stream (xoshiro256**), seeded with splitmix64. */
void rng_seed(uint64_t s[4], uint64_t seed);
uint64_t rng_next(uint64_t s[4]);
/* math.random / ctx.random semantics on stream s. */
int rng_lua(lua_State *L, uint64_t s[4]);
/* The state's stream, seeded on first use in a route call. */
static inline uint64_t *sbx_rng(sbx *sb)
{
    if (sb->rng_fresh) {
        rng_seed(sb->rng, sb->rng_seedv);
        sb->rng_fresh = 0;
    }
    return sb->rng;
}

/* Store values (pol_kv): 's' the bytes, 'b' one byte 0/1, 'i' an int64 and
** 'n' an IEEE double, both as 8 little-endian bytes (data files stay
** portable between hosts). */
static inline void put_le64(char out[8], uint64_t x)
{
    for (int i = 0; i < 8; i++)
        out[i] = (char)(x >> (8 * i));
}

static inline uint64_t get_le64(const char *p)
{
    uint64_t x = 0;
    for (int i = 0; i < 8; i++)
        x |= (uint64_t)(unsigned char)p[i] << (8 * i);
    return x;
}

/* --- views.c ------------------------------------------------------------- */

/* Install the views' shared metatable and the ctx functions (sbx_new). */
void views_open(lua_State *L);

/* One route call, the common path of pol_route and the case runner: run
** the hook `route_ref` of file `name` with fresh views and fill out (also
** on failure: failed=1 and error; out comes cleared, pol_decision_clear or
** zeroed). Writes to ctx.set reach kv only when the
** call succeeds. Frees every cands[i].doc before returning. */
void views_route(sbx *sb, const char *name, int route_ref, const pol_call *call, pol_cand *cands,
                 size_t ncands, const pol_queue *q, const pol_kv *kv, int64_t now_ms, uint64_t seed,
                 uint64_t instructions, uint32_t wall_ms, pol_decision *out);

/* One retention call: run hook `ref` (retain, or erase when req is given)
** on the record and fill out (also on failure: failed=1 and error). */
void views_retain(sbx *sb, const char *name, int ref, const pol_record *rec, const pol_erasure *req,
                  int64_t now_ms, uint64_t instructions, uint32_t wall_ms, pol_retention *out);

/* The parsed agent document (loading it through c->load when needed), set
** in c->doc for the call (an empty object when unavailable); parses are
** kept in the state between calls (sb may be NULL: no cache). */
json_t *views_cand_doc(sbx *sb, pol_cand *c);
/* Free what the views keep in the state (sbx_free). */
void views_release(sbx *sb);
/* The route call's own caller and called numbers in text (NUL-terminated,
** cap bytes), however written, replaced by "[number]": a policy's error
** message and its log lines quote what it chose to, and the log's and the
** trace's redaction keep a run of more than 15 digits (a hash, an id), so a
** number behind other digits would get through. No call: nothing. */
void views_mask_own(sbx *sb, char *text, size_t cap);

/* Kinds of view, for the lint (policytest.c), which judges field names the
** way the views do when a hook reads them. */
enum views_kind {
    VK_NONE = 0,
    VK_AGENT,
    VK_AGENTS,
    VK_CALL,
    VK_QUEUE,
    VK_CTX,
    VK_RCTX,
    VK_RECORD,
    VK_REQUEST
};
/* The name a view of this kind has in "... has no field 'x'" messages. */
const char *views_kind_name(int kind);
/* Whether a view of this kind has the field `name` (len bytes); *next: the
** kind of view the field holds (VK_QUEUE for ctx.queue), else VK_NONE. */
int views_has_field(int kind, const char *name, size_t len, int *next);
/* The field of a view of this kind that `name` (len bytes) is most likely a
** typo of (sbx_suggest), or NULL. */
const char *views_field_near(int kind, const char *name, size_t len);
/* Whether `name` (len bytes) is a field of the decision hook (0 route, 1
** retain, 2 erase) returns; when not, *near is the field it is most likely a
** typo of (sbx_suggest), or NULL. */
int views_decision_field(int hook, const char *name, size_t len, const char **near);
/* The bit of decision field `name` (len bytes) of the hook (0 route, 1
** retain, 2 erase) in views_decision_keys' set, or -1 for no such field. */
int views_decision_key_bit(int hook, const char *name, size_t len);
/* -1 with the run time's message in msg (after its "<hook> returned invalid
** decision: ") when a decision holding just the fields in `has` (bits of
** views_decision_key_bit) cannot pass whatever their values, else 0. */
int views_decision_keys(int hook, unsigned has, char *msg, size_t cap);
/* A constant the hook's code gives field `name` of a decision it returns
** (policy check's lint; the value at idx of L): -1 with the run time's
** message in msg (after its "<hook> returned invalid decision: ") when no
** decision with that value can pass, else 0. Fields whose check needs the
** call (ring, pause, keep_until, a reason holding its numbers) pass. */
int views_decision_const(int hook, const char *name, size_t len, lua_State *L, int idx, char *msg,
                         size_t cap);

/* Push a JSON value as a fresh Lua value (tables copied; depth bounded). */
void views_push_json(lua_State *L, const json_t *j, int depth);

#endif
