/*
** switchboard_lua.c — the Lua binding: `local sb = require "switchboard"`.
**
** One source, compiled twice: against the Lua 5.1 headers (the ABI of Lua 5.1
** and of LuaJIT 2.1, which Kamailio's app_lua and OpenResty embed) and against
** the Lua 5.4 headers. See README.md beside this file for the API.
**
** Two Lua runtimes live in one process: the host's (5.1, LuaJIT or 5.4), which
** loads this module, and the engine's own Lua 5.4, which runs the policies.
** This file talks only to the host's: every lua_* call below is an undefined
** symbol of the module, bound by the dynamic linker to the host. The engine
** and its Lua 5.4 are linked into the module from static archives with every
** symbol but the public sb_* API made local (build.mk), so the engine's calls
** to Lua are bound at link time to its private copy and neither runtime can
** bind to the other's symbols. Nothing here ever hands a host lua_State to the
** engine or an engine state to the host.
**
** Conventions: failures the engine reports (bad documents, unknown ids, policy
** errors...) return nil, message, code, field — the Lua idiom, so
** assert(eng:agent_put(...)) works; `code` is the negative SB_E* number
** (sb.ENOTFOUND...) and `field` the offending input field or nil. Misuse of
** the API itself (wrong argument types, a closed engine, an engine opened by
** the parent of a fork) raises an error. A garbage collection step inside a
** method may run a finalizer that closes or calls the engine: see begin().
*/
#include "switchboard.h"

#include <jansson.h>
#include <lauxlib.h>
#include <lua.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---- 5.1 / 5.4 differences ------------------------------------------------ */

#if LUA_VERSION_NUM >= 502
#define sbl_rawlen(L, i) lua_rawlen(L, i)
#else
#define sbl_rawlen(L, i) lua_objlen(L, i)
#endif

#if LUA_VERSION_NUM >= 503
#define sbl_isinteger(L, i) lua_isinteger(L, i)
#else
#define sbl_isinteger(L, i) 0
#endif

#define ENGINE_MT "switchboard.engine"

/* Registry keys (addresses of these statics are unique per module copy). */
static char array_mt_key, null_key;

/* ---- the engine handle ------------------------------------------------------ */

#define LOG_KEEP 256 /* lines kept in "buffer" log mode */

typedef enum { LOG_STDERR, LOG_BUFFER, LOG_NONE, LOG_FUNCTION } log_mode;

typedef struct engine_box {
    sb_engine *eng;
    sb_result *res;
    int64_t clock_ms; /* manual clock: the engine's time when clock_manual */
    int clock_manual;
    int clock_ref;      /* the clock function (registry), or LUA_NOREF */
    int log_ref;        /* the log function (registry), or LUA_NOREF */
    lua_State *L;       /* the thread calling the engine now: the functions run on it */
    const char *in_cb;  /* "clock" or "log" while that function runs, else NULL */
    int clock_reported; /* a failing clock said once on stderr */
    int sweeping;       /* sweeps with a progress function running on the engine */
    int batching;       /* eng:batch calls running (nested ones join the first) */
    pid_t pid;          /* the process that opened it: a child of a fork may not use it */
    int busy;           /* methods pushing their answer from the engine's result */
    int changed;        /* the last method's call committed a change: eng:changed() */
    int close_pending;  /* closed while busy: freed by the last of them */
    log_mode log;
    pthread_mutex_t mu; /* log lines come from the threads calling the engine */
    char *lines[LOG_KEEP];
    sb_log_level levels[LOG_KEEP];
    size_t first, count;
} engine_box;

/* Userdata holds a pointer: the box outlives nothing, and the engine's
** callbacks get a stable address whatever the host's GC does. */
typedef struct {
    engine_box *b;
} engine_ud;

static int64_t manual_clock(void *arg)
{
    const engine_box *b = arg;
    return __atomic_load_n(&b->clock_ms, __ATOMIC_RELAXED);
}

/* ---- argument errors ----------------------------------------------------------- */

/* Lua's own argument errors (luaL_argerror) find the function's name from
** how it was called: a method called through pcall(eng.tick_for, eng, -1),
** as a tail call in LuaJIT (return eng:tick_for(-1)) or from a coroutine's
** start gave "bad argument #2 to '?'". So every method and module function
** is a closure whose upvalues are its name and whether it is a method, and
** its argument errors name it, counting a method's arguments after self, as
** eng:tick_for(-1) shows them: "bad argument #1 to 'tick_for' (...)". */
static int arg_error(lua_State *L, int i, const char *msg)
{
    const char *name = lua_tostring(L, lua_upvalueindex(1));
    int method = lua_toboolean(L, lua_upvalueindex(2));
    if (!name) return luaL_argerror(L, i, msg); /* not one of those: Lua names it */
    if (method && i == 1) return luaL_error(L, "calling '%s' on bad self (%s)", name, msg);
    return luaL_error(L, "bad argument #%d to '%s' (%s)", method ? i - 1 : i, name, msg);
}

static int type_error(lua_State *L, int i, const char *expected)
{
    return arg_error(L, i,
                     lua_pushfstring(L, "%s expected, got %s", expected, luaL_typename(L, i)));
}

/* luaL_checklstring, luaL_checktype, luaL_checknumber, luaL_checkinteger
** and luaL_checkoption, with arg_error's names. */
static const char *check_lstr(lua_State *L, int i, size_t *n)
{
    const char *s = lua_tolstring(L, i, n);
    if (!s) type_error(L, i, "string");
    return s;
}

static void check_type(lua_State *L, int i, int t)
{
    if (lua_type(L, i) != t) type_error(L, i, lua_typename(L, t));
}

static double check_num(lua_State *L, int i)
{
    if (!lua_isnumber(L, i)) type_error(L, i, "number");
    return (double)lua_tonumber(L, i);
}

static double opt_num(lua_State *L, int i, double def)
{
    return lua_isnoneornil(L, i) ? def : check_num(L, i);
}

static lua_Integer check_int(lua_State *L, int i)
{
#if LUA_VERSION_NUM >= 503
    int isnum;
    lua_Integer v = lua_tointegerx(L, i, &isnum);
    if (!isnum) {
        if (lua_isnumber(L, i)) arg_error(L, i, "number has no integer representation");
        type_error(L, i, "number");
    }
    return v;
#else
    check_num(L, i);
    return lua_tointeger(L, i);
#endif
}

/* A string argument as C will read it: one holding a NUL byte would be cut
** there (the id "alice\0zzz" naming alice), so it is refused. */
static const char *check_str(lua_State *L, int i)
{
    size_t n;
    const char *s = check_lstr(L, i, &n);
    if (strlen(s) != n) arg_error(L, i, "holds a NUL byte");
    return s;
}

static const char *opt_str(lua_State *L, int i, const char *def)
{
    return lua_isnoneornil(L, i) ? def : check_str(L, i);
}

/* A whole number in [0, below): what a C integer setting can hold. Anything
** else (NaN, infinities, fractions, too large) is refused rather than
** converted, which C leaves undefined. */
static int whole_below(double d, double below)
{
    return isfinite(d) && d >= 0 && d < below && d == floor(d);
}

#define BELOW_U32 4294967296.0          /* 2^32 */
#define BELOW_I64 9223372036854775808.0 /* 2^63 */

/* A clock's milliseconds at idx: a whole number from 0 to 2^63 - 1, an
** integer taken whole (math.maxinteger too, which a double makes 2^63).
** 1 with *ms, or 0. */
static int clock_value(lua_State *L, int idx, int64_t *ms)
{
    if (sbl_isinteger(L, idx)) {
        lua_Integer v = lua_tointeger(L, idx);
        if (v < 0) return 0;
        *ms = (int64_t)v;
        return 1;
    }
    if (lua_type(L, idx) != LUA_TNUMBER) return 0;
    double d = (double)lua_tonumber(L, idx);
    if (!whole_below(d, BELOW_I64)) return 0;
    *ms = (int64_t)d;
    return 1;
}

/* A whole number of milliseconds from 0 to 2^63 - 1 at argument i; raises
** for anything else. An integer is read as one: through a double
** math.maxinteger would be 2^63 and out of range. A float (every number in
** 5.1 and LuaJIT, which have no integers) is a whole one below 2^63. */
static int64_t check_ms(lua_State *L, int i)
{
    if (sbl_isinteger(L, i)) {
        lua_Integer v = lua_tointeger(L, i);
        if (v < 0) arg_error(L, i, "expected a whole number of milliseconds from 0");
        return (int64_t)v;
    }
    double x = check_num(L, i);
    if (!whole_below(x, BELOW_I64))
        arg_error(L, i, "expected a whole number of milliseconds from 0");
    return (int64_t)x;
}

/* Arguments i and i + 1 of a log's or a history's page: the seq of the
** entry to page from (0: from its `from` end; entry names whose, "an audit
** entry's") and a number of entries (0: deflt). Raises for anything else. */
static void opt_page(lua_State *L, int i, const char *entry, const char *from, int deflt,
                     uint64_t *seq, size_t *limit)
{
    char msg[96];
    double x = opt_num(L, i, 0);
    if (!whole_below(x, BELOW_I64)) {
        snprintf(msg, sizeof msg, "expected %s seq, 0 (from the %s) or more", entry, from);
        arg_error(L, i, msg);
    }
    double y = opt_num(L, i + 1, 0);
    if (!whole_below(y, (double)SIZE_MAX + 1)) {
        snprintf(msg, sizeof msg, "expected a whole number of entries, 0 (%d) or more", deflt);
        arg_error(L, i + 1, msg);
    }
    *seq = (uint64_t)x;
    *limit = (size_t)y;
}

/* The engine handle, self of every method (luaL_checkudata, with arg_error's
** name). */
static engine_ud *check_ud(lua_State *L)
{
    engine_ud *u = lua_touserdata(L, 1);
    int ours = 0;
    if (u && lua_getmetatable(L, 1)) {
        luaL_getmetatable(L, ENGINE_MT);
        ours = lua_rawequal(L, -1, -2);
        lua_pop(L, 2);
    }
    if (!ours) type_error(L, 1, ENGINE_MT);
    return u;
}

static engine_box *check_box(lua_State *L)
{
    engine_ud *u = check_ud(L);
    if (!u->b) luaL_error(L, "switchboard: the engine is closed");
    if (u->b->in_cb)
        luaL_error(L,
                   "switchboard: the %s function may not call the engine (it runs inside a call "
                   "on it)",
                   u->b->in_cb);
    if (u->b->pid != getpid())
        luaL_error(L, "switchboard: this engine was opened by another process (before a fork): "
                      "open one in this process");
    return u->b;
}

/* ---- the clock and log functions ----------------------------------------------- */

/* sb.open{clock = function, log = function}: Lua functions the engine calls
** from inside its calls (sb_config.clock and .log), on the thread that
** called the engine (b->L, set by use() before every call on it). A Lua
** error must not unwind through the engine's C frames (it would leave its
** write transaction and locks held for good): each runs under a protected
** call, and nothing that can raise runs outside it. A clock function that
** fails (raises, or returns no time) gives that reading the system time,
** and says so in the engine's log; a log function that fails loses its
** line, said on stderr. While one runs, the engine refuses to be called or
** closed from it (check_box, l_close): the call that called it still holds
** the engine, maybe in its write transaction. */

#define CB_SLOTS 4 /* stack slots a function's call takes on top of the method's */

static const char *const level_names[] = {"error", "warn", "info", "debug"};

static const char *level_name(sb_log_level level)
{
    return (unsigned)level <= SB_LOG_DEBUG ? level_names[level] : "?";
}

static int64_t system_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* b's engine, for a call on it now from L: the functions run on L (never on
** a coroutine that called the engine before and may be gone), with room on
** its stack made now, outside the engine. lua_checkstack finds the room a C
** function is given (LUA_MINSTACK) without growing the stack; when it
** cannot be had, the functions fail as above instead of running. */
static sb_engine *use(engine_box *b, lua_State *L)
{
    b->L = L;
    lua_checkstack(L, CB_SLOTS);
    return b->eng;
}

typedef struct cb_call {
    int ref;            /* the function */
    sb_log_level level; /* log: its arguments */
    const char *line;
    int64_t ms;     /* clock: the reading, or -1 ... */
    char value[64]; /* ... and what it returned instead */
} cb_call;

/* Protected: the log function with its level and line. */
static int cb_log_body(lua_State *L)
{
    const cb_call *c = lua_touserdata(L, 1);
    lua_rawgeti(L, LUA_REGISTRYINDEX, c->ref);
    lua_pushstring(L, level_name(c->level));
    lua_pushstring(L, c->line);
    lua_call(L, 2, 0);
    return 0;
}

/* Protected: the clock function's reading, a whole number of milliseconds
** from 0 to 2^63 - 1 as sb.open{clock = ms} takes them, or what it was. */
static int cb_clock_body(lua_State *L)
{
    cb_call *c = lua_touserdata(L, 1);
    lua_rawgeti(L, LUA_REGISTRYINDEX, c->ref);
    lua_call(L, 0, 1);
    if (clock_value(L, -1, &c->ms)) {
        /* taken */
    } else if (sbl_isinteger(L, -1)) {
        snprintf(c->value, sizeof c->value, "%lld", (long long)lua_tointeger(L, -1));
    } else if (lua_type(L, -1) == LUA_TNUMBER) {
        snprintf(c->value, sizeof c->value, "%.14g", (double)lua_tonumber(L, -1));
    } else if (lua_type(L, -1) == LUA_TSTRING) {
        snprintf(c->value, sizeof c->value, "the string \"%.32s\"", lua_tostring(L, -1));
    } else {
        snprintf(c->value, sizeof c->value, "%s", luaL_typename(L, -1));
    }
    return 0;
}

/* Run body(c) on b->L, protected. 0, or -1 with why it failed in why (the
** error as a string when it is one, numbers in it read [number] as in every
** line the engine logs). */
static int cb_run(engine_box *b, const char *what, lua_CFunction body, cb_call *c, char *why,
                  size_t n)
{
    lua_State *L = b->L;
    if (!L || !lua_checkstack(L, CB_SLOTS)) {
        snprintf(why, n, "could not be called (no room on the Lua stack)");
        return -1;
    }
    int top = lua_gettop(L);
    const char *outer = b->in_cb;
    b->in_cb = what;
#if LUA_VERSION_NUM >= 502
    lua_pushcfunction(L, body); /* a light C function: nothing allocated */
    lua_pushlightuserdata(L, c);
    int rc = lua_pcall(L, 1, 0, 0);
#else
    int rc = lua_cpcall(L, body, c); /* makes its closure inside the protection */
#endif
    b->in_cb = outer;
    if (rc) {
        char raw[512];
        if (lua_type(L, -1) == LUA_TSTRING) /* a string already: no conversion */
            snprintf(raw, sizeof raw, "raised: %s", lua_tostring(L, -1));
        else
            snprintf(raw, sizeof raw, "raised an error object that is a %s", luaL_typename(L, -1));
        sb_redact(raw, why, n);
    }
    lua_settop(L, top);
    return rc ? -1 : 0;
}

static void box_log(void *arg, sb_log_level level, const char *line)
{
    engine_box *b = arg;
    if (b->log == LOG_NONE) return;
    if (b->log == LOG_STDERR) {
        fprintf(stderr, "switchboard %s: %s\n", level_name(level), line);
        return;
    }
    if (b->log == LOG_FUNCTION) {
        cb_call c = {.ref = b->log_ref, .level = level, .line = line};
        char why[600];
        if (cb_run(b, "log", cb_log_body, &c, why, sizeof why))
            fprintf(stderr, "switchboard: the log function %s; line dropped\n", why);
        return;
    }
    char *copy = strdup(line);
    if (!copy) return;
    pthread_mutex_lock(&b->mu);
    size_t at;
    if (b->count == LOG_KEEP) { /* full: the oldest line makes room */
        at = b->first;
        free(b->lines[at]);
        b->first = (b->first + 1) % LOG_KEEP;
    } else {
        at = (b->first + b->count++) % LOG_KEEP;
    }
    b->lines[at] = copy;
    b->levels[at] = level;
    pthread_mutex_unlock(&b->mu);
}

/* The clock function's reading; when it fails, the system time, and the
** failure said as the engine says what goes wrong: an error line in its log
** (the log function's, the buffer's), each time; on stderr, the default,
** once; with log = "none", not at all. */
static int64_t box_clock(void *arg)
{
    engine_box *b = arg;
    cb_call c = {.ref = b->clock_ref, .ms = -1};
    char why[600], line[700];
    if (cb_run(b, "clock", cb_clock_body, &c, why, sizeof why) == 0) {
        if (c.ms >= 0) return c.ms;
        char raw[sizeof why];
        snprintf(raw, sizeof raw,
                 "returned %s, not a whole number of milliseconds from 0 to 2^63 - 1", c.value);
        sb_redact(raw, why, sizeof why);
    }
    snprintf(line, sizeof line, "the clock function %s; this reading is the system time", why);
    if (b->log == LOG_FUNCTION || b->log == LOG_BUFFER)
        box_log(b, SB_LOG_ERROR, line);
    else if (b->log == LOG_STDERR && !b->clock_reported) {
        b->clock_reported = 1;
        fprintf(stderr,
                "switchboard: %s (said once: give sb.open a log function, or log = \"buffer\", "
                "to see each)\n",
                line);
    }
    return system_ms();
}

/* Free the box; its engine is closed only in the process that opened it (in
** a child after fork() the engine is the parent's, which LMDB forbids
** closing there: the child's copy is left as it is). L: the thread closing
** it, on which the log function runs for the lines the close writes. */
static void box_free(lua_State *L, engine_box *b)
{
    if (!b) return;
    if (b->pid == getpid()) sb_close(use(b, L));
    luaL_unref(L, LUA_REGISTRYINDEX, b->clock_ref);
    luaL_unref(L, LUA_REGISTRYINDEX, b->log_ref);
    sb_result_free(b->res);
    for (size_t i = 0; i < b->count; i++)
        free(b->lines[(b->first + i) % LOG_KEEP]);
    pthread_mutex_destroy(&b->mu);
    free(b);
}

/* ---- JSON <-> Lua (jansson, the engine's own JSON library) ------------------ */

static void push_null(lua_State *L)
{
    lua_pushlightuserdata(L, &null_key);
}

static int is_null(lua_State *L, int i)
{
    return lua_type(L, i) == LUA_TLIGHTUSERDATA && lua_touserdata(L, i) == &null_key;
}

/* Push a JSON value as Lua; arrays get the array metatable so they encode
** back as arrays even when empty. Returns 0, or -1 when the Lua stack is
** exhausted by nesting. */
static int push_json(lua_State *L, json_t *v, int depth)
{
    if (depth > 200 || !lua_checkstack(L, 4)) return -1;
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        const char *k;
        json_t *x;
        lua_createtable(L, 0, (int)json_object_size(v));
        json_object_foreach(v, k, x)
        {
            lua_pushstring(L, k);
            if (push_json(L, x, depth + 1)) return -1;
            lua_rawset(L, -3);
        }
        return 0;
    }
    case JSON_ARRAY: {
        size_t i;
        json_t *x;
        lua_createtable(L, (int)json_array_size(v), 0);
        json_array_foreach(v, i, x)
        {
            if (push_json(L, x, depth + 1)) return -1;
            lua_rawseti(L, -2, (int)i + 1);
        }
        lua_pushlightuserdata(L, &array_mt_key);
        lua_rawget(L, LUA_REGISTRYINDEX);
        lua_setmetatable(L, -2);
        return 0;
    }
    case JSON_STRING:
        lua_pushlstring(L, json_string_value(v), json_string_length(v));
        return 0;
    case JSON_INTEGER:
        lua_pushinteger(L, (lua_Integer)json_integer_value(v));
        return 0;
    case JSON_REAL:
        lua_pushnumber(L, (lua_Number)json_real_value(v));
        return 0;
    case JSON_TRUE:
        lua_pushboolean(L, 1);
        return 0;
    case JSON_FALSE:
        lua_pushboolean(L, 0);
        return 0;
    case JSON_NULL:
        push_null(L);
        return 0;
    }
    return -1;
}

/* Push the decoding of text, or nil and a message. Returns values pushed. */
static int push_decoded(lua_State *L, const char *text, size_t len)
{
    json_error_t err;
    json_t *v = json_loadb(text, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
    if (!v) {
        lua_pushnil(L);
        lua_pushfstring(L, "json: %s at line %d column %d", err.text, err.line, err.column);
        return 2;
    }
    int top = lua_gettop(L);
    int rc = push_json(L, v, 0);
    json_decref(v);
    if (rc) {
        lua_settop(L, top);
        lua_pushnil(L);
        lua_pushstring(L, "json: nested too deeply");
        return 2;
    }
    return 1;
}

typedef struct {
    char msg[300];
    /* Where the value that could not be encoded is ("name", "devices.mobile",
    ** "tags[1]"), when a string is the trouble; "" otherwise. */
    char field[256];
    /* Encoding for the engine: a string holding a NUL byte is refused (the
    ** engine refuses \u0000 in JSON text, naming no field). */
    int for_engine;
} enc_err;

static int is_array_table(lua_State *L, int i)
{
    if (!lua_getmetatable(L, i)) return 0;
    lua_pushlightuserdata(L, &array_mt_key);
    lua_rawget(L, LUA_REGISTRYINDEX);
    int yes = lua_rawequal(L, -1, -2);
    lua_pop(L, 2);
    return yes;
}

/* Encode the Lua value at index i (absolute) as a new json_t, or NULL with
** e->msg set. `path` names the value for messages. Never raises (no lua_error
** while jansson objects are live), except on Lua memory errors. */
static json_t *encode(lua_State *L, int i, int depth, const char *path, enc_err *e)
{
    if (depth > 100) {
        snprintf(e->msg, sizeof e->msg, "json: %s nested too deeply (a cycle?)", path);
        return NULL;
    }
    switch (lua_type(L, i)) {
    case LUA_TNIL:
        return json_null();
    case LUA_TBOOLEAN:
        return json_boolean(lua_toboolean(L, i));
    case LUA_TNUMBER: {
        if (sbl_isinteger(L, i)) return json_integer((json_int_t)lua_tointeger(L, i));
        double d = (double)lua_tonumber(L, i);
        if (!isfinite(d)) {
            snprintf(e->msg, sizeof e->msg, "json: %s is not a finite number", path);
            return NULL;
        }
        if (d == floor(d) && fabs(d) <= 9007199254740992.0) return json_integer((json_int_t)d);
        return json_real(d);
    }
    case LUA_TSTRING: {
        size_t n;
        const char *s = lua_tolstring(L, i, &n);
        if (e->for_engine && memchr(s, 0, n)) {
            snprintf(e->field, sizeof e->field, "%s", path);
            snprintf(e->msg, sizeof e->msg, "json: %s holds a NUL byte", *path ? path : "value");
            return NULL;
        }
        json_t *v = json_stringn(s, n);
        if (!v) {
            snprintf(e->field, sizeof e->field, "%s", path);
            snprintf(e->msg, sizeof e->msg, "json: %s is not valid UTF-8", path);
        }
        return v;
    }
    case LUA_TLIGHTUSERDATA:
        if (is_null(L, i)) return json_null();
        break;
    case LUA_TTABLE: {
        if (!lua_checkstack(L, 4)) {
            snprintf(e->msg, sizeof e->msg, "json: %s nested too deeply", path);
            return NULL;
        }
        /* A list when marked with sb.array or when its keys are exactly
        ** 1..n; an object when every key is a string (and when empty). */
        char sub[256];
        size_t n = sbl_rawlen(L, i), nstr = 0, nnum = 0, ints = 0;
        lua_pushnil(L);
        while (lua_next(L, i)) {
            lua_pop(L, 1);
            if (lua_type(L, -1) == LUA_TSTRING)
                nstr++;
            else if (lua_type(L, -1) == LUA_TNUMBER) {
                double k = (double)lua_tonumber(L, -1);
                nnum++;
                if (k >= 1 && k <= (double)n && k == floor(k)) ints++;
            } else {
                lua_pop(L, 1);
                snprintf(e->msg, sizeof e->msg, "json: %s has a key that is not a string",
                         *path ? path : "table");
                return NULL;
            }
        }
        if (nstr && nnum) {
            snprintf(e->msg, sizeof e->msg, "json: %s mixes list items and named fields",
                     *path ? path : "table");
            return NULL;
        }
        /* Every numeric key is a whole number in 1..n; n of them, or some
        ** index up to the border is nil ({1, nil, 3} has a border of 3). */
        if (nnum && (ints != nnum || nnum != n)) {
            snprintf(e->msg, sizeof e->msg, "json: %s is a list with holes",
                     *path ? path : "table");
            return NULL;
        }
        if (nnum || (!nstr && is_array_table(L, i))) {
            json_t *a = json_array();
            for (size_t k = 1; a && k <= n; k++) {
                lua_rawgeti(L, i, (int)k);
                snprintf(sub, sizeof sub, "%s[%zu]", path, k - 1);
                json_t *x = encode(L, lua_gettop(L), depth + 1, sub, e);
                lua_pop(L, 1);
                if (!x || json_array_append_new(a, x)) { /* _new frees x on failure */
                    json_decref(a);
                    return NULL;
                }
            }
            if (!a) snprintf(e->msg, sizeof e->msg, "json: out of memory");
            return a;
        }
        json_t *o = json_object();
        if (!o) {
            snprintf(e->msg, sizeof e->msg, "json: out of memory");
            return NULL;
        }
        lua_pushnil(L);
        while (lua_next(L, i)) {
            size_t kl;
            const char *k = lua_tolstring(L, -2, &kl); /* a string key: no conversion */
            if (memchr(k, 0, kl)) { /* C would read a shorter key, maybe another's */
                lua_pop(L, 2);
                json_decref(o);
                snprintf(e->msg, sizeof e->msg, "json: %s has a key with a NUL byte",
                         *path ? path : "table");
                return NULL;
            }
            snprintf(sub, sizeof sub, "%s%s%s", path, *path ? "." : "", k);
            json_t *x = encode(L, lua_gettop(L), depth + 1, sub, e);
            lua_pop(L, 1);
            if (x && json_object_set_new(o, k, x))
                snprintf(e->msg, sizeof e->msg, "json: %s: a key that is not valid UTF-8",
                         *path ? path : "table");
            else if (x)
                continue;
            lua_pop(L, 1);
            json_decref(o);
            return NULL;
        }
        return o;
    }
    default:
        break;
    }
    snprintf(e->msg, sizeof e->msg, "json: %s: cannot encode a %s", *path ? path : "value",
             luaL_typename(L, i));
    return NULL;
}

/* JSON text for argument i: a string is passed through as it is, a table is
** encoded. Returns malloc'd text (free with free()) or NULL with e->msg set.
** *borrowed is set when the text is the Lua string itself (do not free). */
static char *arg_json(lua_State *L, int i, size_t *len, int *borrowed, enc_err *e)
{
    *borrowed = 0;
    e->field[0] = 0;
    e->for_engine = 1;
    if (lua_type(L, i) == LUA_TSTRING) {
        *borrowed = 1;
        return (char *)lua_tolstring(L, i, len);
    }
    if (lua_type(L, i) != LUA_TTABLE) {
        snprintf(e->msg, sizeof e->msg, "expected a table or a JSON string, got %s",
                 luaL_typename(L, i));
        return NULL;
    }
    json_t *v = encode(L, i, 0, "", e);
    if (!v) return NULL;
    char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(v);
    if (!s) {
        snprintf(e->msg, sizeof e->msg, "json: out of memory");
        return NULL;
    }
    *len = strlen(s);
    return s;
}

/* A document argument that is neither a table nor a string is a wrong
** argument type, raised like any other. */
static void check_doc(lua_State *L, int i)
{
    int t = lua_type(L, i);
    if (t != LUA_TTABLE && t != LUA_TSTRING) type_error(L, i, "table or JSON text");
}

/* An optional document argument (check_doc it first unless nil): *doc is
** NULL when it is absent. 0, or -1 with e->msg set. Free *doc unless
** *borrowed. */
static int opt_arg_json(lua_State *L, int i, char **doc, size_t *len, int *borrowed, enc_err *e)
{
    *doc = NULL;
    *len = 0;
    *borrowed = 1;
    if (lua_isnoneornil(L, i)) return 0;
    *doc = arg_json(L, i, len, borrowed, e);
    return *doc ? 0 : -1;
}

/* ---- results ---------------------------------------------------------------- */

/* nil, message, code, field */
static int push_fail(lua_State *L, int code, const char *msg, const char *field)
{
    lua_pushnil(L);
    lua_pushstring(L, msg && *msg ? msg : sb_strerror(code));
    lua_pushinteger(L, code);
    if (field)
        lua_pushstring(L, field);
    else
        lua_pushnil(L);
    return 4;
}

static int push_engine_fail(lua_State *L, int rc, sb_result *res)
{
    return push_fail(L, rc, sb_result_message(res), sb_result_field(res));
}

static const char *const action_names[] = {NULL,       "ring", "cancel", "connect", "reject",
                                           "overflow", "wait", "end",    "agent"};

static void set_str(lua_State *L, const char *k, const char *v)
{
    if (!v) return;
    lua_pushstring(L, v);
    lua_setfield(L, -2, k);
}

/* The actions of res as a list of tables, keyed like sb_result_json's. */
static void push_actions(lua_State *L, const sb_result *res)
{
    size_t n = sb_result_count(res);
    lua_createtable(L, (int)n, 0);
    for (size_t i = 0; i < n; i++) {
        const sb_action *a = sb_result_action(res, i);
        lua_createtable(L, 0, 8);
        set_str(L, "type",
                a->type >= SB_ACT_RING && a->type <= SB_ACT_AGENT ? action_names[a->type]
                                                                  : "unknown");
        set_str(L, "account", a->account);
        set_str(L, "call", a->call_id);
        set_str(L, "agent", a->agent_id);
        set_str(L, "device", a->device);
        set_str(L, "uri", a->uri);
        set_str(L, "queue", a->queue_id);
        set_str(L, "reason", a->reason);
        set_str(L, "status", a->status);
        if (a->type == SB_ACT_RING) {
            lua_pushinteger(L, a->timeout_s);
            lua_setfield(L, -2, "timeout");
        }
        if (a->type == SB_ACT_RING && a->attempt) {
            lua_pushinteger(L, (lua_Integer)a->attempt);
            lua_setfield(L, -2, "attempt");
        }
        if (a->type == SB_ACT_WAIT && a->due_ms) {
            lua_pushinteger(L, (lua_Integer)a->due_ms);
            lua_setfield(L, -2, "due_ms");
        }
        lua_rawseti(L, -2, (int)i + 1);
    }
    lua_pushlightuserdata(L, &array_mt_key);
    lua_rawget(L, LUA_REGISTRYINDEX);
    lua_setmetatable(L, -2);
}

/* After a call that changes state: the actions list, or the failure. */
/* A failure gives a fifth value: the actions of an event or tick whose sync
** failed after it committed (it stands: sb_submit, sb_tick), else {}. */
static int ret_actions(lua_State *L, int rc, sb_result *res)
{
    int n = rc ? push_engine_fail(L, rc, res) : 0;
    push_actions(L, res);
    return n + 1;
}

/* After a read: the document as a table, or the failure. */
static int ret_doc(lua_State *L, int rc, sb_result *res)
{
    if (rc) return push_engine_fail(L, rc, res);
    size_t len;
    const char *j = sb_result_json(res, &len);
    int n = push_decoded(L, j, len);
    if (n != 1) return push_fail(L, SB_ENOMEM, lua_tostring(L, -1), NULL);
    /* Reads carry no actions; drop the empty list a result may add. */
    lua_getfield(L, -1, "actions");
    int empty = lua_type(L, -1) == LUA_TTABLE && sbl_rawlen(L, -1) == 0;
    lua_pop(L, 1);
    if (empty) {
        lua_pushnil(L);
        lua_setfield(L, -2, "actions");
    }
    return 1;
}

/* After a put: the actions caused, then the engine's answer as a table (the
** document: "created", the id, an account's created_ms...; Python's and
** Go's puts return it), or the failure as ret_actions gives it. */
static int ret_put(lua_State *L, int rc, sb_result *res)
{
    if (rc) return ret_actions(L, rc, res);
    push_actions(L, res);
    int top = lua_gettop(L);
    if (ret_doc(L, 0, res) == 1) return 2;
    lua_settop(L, top); /* no memory for the document: the actions alone */
    return 1;
}

/* ---- a method's use of its engine ------------------------------------------------ */

/* Lua code can run in the middle of a method: a garbage collection step,
** taken while an argument is converted or the answer is pushed, may call a
** finalizer that closes the engine or calls it. So a method takes its
** engine with begin (raises if it was closed), which marks it busy until
** finish or abandon: a close meanwhile takes effect once the method is done,
** and a method called meanwhile works on a result of its own, not on the one
** being read.
**
** A Lua error can also end a method half way, between begin and finish: out
** of memory, or (Lua 5.1, LuaJIT) a finalizer's error, which those versions
** raise in whatever code the collection step interrupted. The engine is then
** released by a guard begin leaves on the stack: at once in Lua 5.4, where
** the guard is a to-be-closed slot; at the guard's collection in 5.1. Before,
** such a method left the engine busy for good, and a close of it waited for
** ever: its files and memory stayed until the process ended. */
typedef int (*ret_fn)(lua_State *, int, sb_result *);

#define GUARD_MT "switchboard.guard"

typedef struct guard {
    engine_box *b;
    sb_result *res;
    int held;
    int ran; /* the engine was called with res: its changed flag is this call's */
} guard;

typedef struct call {
    engine_box *b;
    sb_result *res;
    guard *g;
} call;

/* The method's use of the engine ends: its result goes back, and a close that came
** meanwhile takes effect. */
static void guard_end(lua_State *L, guard *g)
{
    if (!g->held) return;
    engine_box *b = g->b;
    g->held = 0;
    /* A method that ended before calling the engine changed nothing: the
    ** result still holds the flag of the call before. */
    b->changed = g->ran && sb_result_changed(g->res);
    b->busy--;
    if (g->res != b->res) sb_result_free(g->res);
    if (b->close_pending && !b->busy) box_free(L, b);
}

/* __close and __gc of a guard: the method ended without finish or abandon. */
static int l_guard_end(lua_State *L)
{
    guard_end(L, luaL_checkudata(L, 1, GUARD_MT));
    return 0;
}

/* Stack slots a method's arguments may take (eng:member_put reads five):
** the guard goes above them, where no argument read after begin finds it. */
#define METHOD_ARGS 6

static call begin(lua_State *L)
{
    call c;
    if (lua_gettop(L) < METHOD_ARGS) lua_settop(L, METHOD_ARGS);
    /* The guard first: if making it raises, nothing is held yet; and the
    ** collection step its allocation may take can run a finalizer that
    ** closes the engine, so the engine is taken after it. */
    c.g = lua_newuserdata(L, sizeof *c.g);
    c.g->held = 0;
    luaL_getmetatable(L, GUARD_MT);
    lua_setmetatable(L, -2);
#if LUA_VERSION_NUM >= 504
    lua_toclose(L, -1);
#endif
    c.b = check_box(L);
    c.res = c.b->busy ? sb_result_new() : c.b->res;
    if (!c.res) luaL_error(L, "switchboard: out of memory");
    *c.g = (guard){c.b, c.res, 1, 0};
    c.b->busy++; /* until finish or abandon: arguments converted after begin run Lua too */
    return c;
}

static int finish(lua_State *L, call c, int rc, ret_fn ret)
{
    c.g->ran = 1;
    int n = ret(L, rc, c.res);
    guard_end(L, c.g);
    return n;
}

/* A method ending without the engine's answer (bad input found after begin). */
static void abandon(lua_State *L, call c)
{
    guard_end(L, c.g);
}

static int ret_true(lua_State *L, int rc, sb_result *res)
{
    if (rc) return push_engine_fail(L, rc, res);
    lua_pushboolean(L, 1);
    return 1;
}

/* ---- engine methods ----------------------------------------------------------- */

typedef int (*put_fn)(sb_engine *, const char *, const char *, size_t, sb_result *);
typedef int (*get_fn)(sb_engine *, const char *, const char *, sb_result *);
typedef int (*list_fn)(sb_engine *, const char *, sb_result *);

/* eng:X(account, doc) with doc a table or JSON text; ret makes the answer. */
static int do_put_ret(lua_State *L, put_fn fn, ret_fn ret)
{
    check_box(L);
    const char *acct = check_str(L, 2);
    check_doc(L, 3);
    call c = begin(L);
    size_t len;
    int borrowed;
    enc_err e;
    char *doc = arg_json(L, 3, &len, &borrowed, &e);
    if (!doc) {
        abandon(L, c);
        return push_fail(L, SB_EINVAL, e.msg, *e.field ? e.field : NULL);
    }
    int rc = fn(use(c.b, L), acct, doc, len, c.res);
    if (!borrowed) free(doc);
    return finish(L, c, rc, ret);
}

/* eng:X_put(account, doc): the actions caused, and the put's document. */
static int do_put(lua_State *L, put_fn fn)
{
    return do_put_ret(L, fn, ret_put);
}

static int l_account_put(lua_State *L)
{
    check_box(L);
    check_doc(L, 2);
    call c = begin(L);
    size_t len;
    int borrowed;
    enc_err e;
    char *doc = arg_json(L, 2, &len, &borrowed, &e);
    if (!doc) {
        abandon(L, c);
        return push_fail(L, SB_EINVAL, e.msg, *e.field ? e.field : NULL);
    }
    int rc = sb_account_put(use(c.b, L), doc, len, c.res);
    if (!borrowed) free(doc);
    return finish(L, c, rc, ret_put);
}

/* eng:X(id) for the engine's functions of one id (or account). */
static int do_one(lua_State *L, list_fn fn, ret_fn ret)
{
    check_box(L);
    const char *id = check_str(L, 2);
    call c = begin(L);
    return finish(L, c, fn(use(c.b, L), id, c.res), ret);
}

static int l_account_get(lua_State *L)
{
    return do_one(L, sb_account_get, ret_doc);
}

static int l_account_list(lua_State *L)
{
    call c = begin(L);
    return finish(L, c, sb_account_list(use(c.b, L), c.res), ret_doc);
}

static int l_account_delete(lua_State *L)
{
    return do_one(L, sb_account_delete, ret_actions);
}

/* eng:account_evict(id) -> the END actions of the account's live calls: it
** is deleted with them (sb_account_evict), as account_delete refuses while
** calls are live. */
static int l_account_evict(lua_State *L)
{
    return do_one(L, sb_account_evict, ret_actions);
}

/* eng:X(account, id) */
static int do_two(lua_State *L, get_fn fn, ret_fn ret)
{
    check_box(L);
    const char *acct = check_str(L, 2), *id = check_str(L, 3);
    call c = begin(L);
    return finish(L, c, fn(use(c.b, L), acct, id, c.res), ret);
}

static int do_get(lua_State *L, get_fn fn)
{
    return do_two(L, fn, ret_doc);
}

static int do_delete(lua_State *L, get_fn fn)
{
    return do_two(L, fn, ret_actions);
}

static int do_list(lua_State *L, list_fn fn)
{
    return do_one(L, fn, ret_doc);
}

static int l_agent_put(lua_State *L)
{
    return do_put(L, sb_agent_put);
}
static int l_agent_get(lua_State *L)
{
    return do_get(L, sb_agent_get);
}
static int l_agent_list(lua_State *L)
{
    return do_list(L, sb_agent_list);
}
static int l_agent_delete(lua_State *L)
{
    return do_delete(L, sb_agent_delete);
}
static int l_queue_put(lua_State *L)
{
    return do_put(L, sb_queue_put);
}
static int l_queue_get(lua_State *L)
{
    return do_get(L, sb_queue_get);
}
static int l_queue_list(lua_State *L)
{
    return do_list(L, sb_queue_list);
}
static int l_queue_delete(lua_State *L)
{
    return do_delete(L, sb_queue_delete);
}

/* Pages of a list (sb_agent_list_page...): the list, and next, the last id
** given, when more follow (nil when not): the next page's after. */
static size_t check_limit(lua_State *L, int i)
{
    double x = opt_num(L, i, 0);
    if (!whole_below(x, (double)SIZE_MAX + 1))
        arg_error(L, i, "expected a whole number of items, 0 (all) or more");
    return (size_t)x;
}

static int ret_page(lua_State *L, call c, int rc, const char *key)
{
    c.g->ran = 1;
    int n = ret_doc(L, rc, c.res);
    if (!rc && n == 1) {
        lua_getfield(L, -1, key);
        lua_getfield(L, -2, "next");
        lua_remove(L, -3);
        n = 2;
    }
    guard_end(L, c.g);
    return n;
}

typedef int (*page_fn)(sb_engine *, const char *, const char *, size_t, sb_result *);

/* eng:X_list_page(account [, after [, limit]]) -> items, next */
static int do_page(lua_State *L, page_fn fn, const char *key)
{
    check_box(L);
    const char *acct = check_str(L, 2), *after = opt_str(L, 3, NULL);
    size_t limit = check_limit(L, 4);
    call c = begin(L);
    return ret_page(L, c, fn(use(c.b, L), acct, after, limit, c.res), key);
}

static int l_agent_list_page(lua_State *L)
{
    return do_page(L, sb_agent_list_page, "agents");
}

static int l_queue_list_page(lua_State *L)
{
    return do_page(L, sb_queue_list_page, "queues");
}

/* eng:call_list_page(account [, queue [, after [, limit]]]) -> calls, next */
static int l_call_list_page(lua_State *L)
{
    check_box(L);
    const char *acct = check_str(L, 2), *queue = opt_str(L, 3, NULL), *after = opt_str(L, 4, NULL);
    size_t limit = check_limit(L, 5);
    call c = begin(L);
    return ret_page(L, c, sb_call_list_page(use(c.b, L), acct, queue, after, limit, c.res),
                    "calls");
}

/* A page method's nil, message, code, field at 1..4, raised. */
static int page_refused(lua_State *L)
{
    lua_Integer code = lua_tointeger(L, 3);
    const char *field = lua_tostring(L, 4);
    lua_settop(L, 4);
    if (field)
        return luaL_error(L, "switchboard: %s: %s (field %s)", sb_code_name((int)code),
                          lua_tostring(L, 2), field);
    return luaL_error(L, "switchboard: %s: %s", sb_code_name((int)code), lua_tostring(L, 2));
}

/* Iterators over the pages (Python's agent_pages...): eng:agent_pages(account
** [, limit]), eng:queue_pages(account [, limit]) and eng:call_pages(account
** [, queue [, limit]]) return a function for a generic for that gives one
** page (a list, read as the loop reaches it) a call, limit items each (nil:
** 1000; 0: the whole list in one page), then nil. The arguments are checked
** at the call, as the page method's; the engine's refusal of a page (an
** unknown account or queue...) cannot be a nil, message return, which would
** end the loop as if the list were done: it is raised, as "switchboard:
** SB_ENOTFOUND: message (field account)". The iterator's upvalues: 1 the
** page method, 2 the engine, 3 the account, 4 the queue (call_pages; nil:
** none), 5 the limit, 6 the cursor (nil: from the first; false: done), 7
** whether the queue is an argument. */
static int pages_next(lua_State *L)
{
    if (lua_isboolean(L, lua_upvalueindex(6))) return 0; /* the last page was given */
    int calls = lua_toboolean(L, lua_upvalueindex(7));
    lua_settop(L, 0);
    for (int i = 1; i <= 4; i++)
        if (i != 4 || calls) lua_pushvalue(L, lua_upvalueindex(i));
    lua_pushvalue(L, lua_upvalueindex(6));
    lua_pushvalue(L, lua_upvalueindex(5));
    lua_call(L, lua_gettop(L) - 1, 4);
    if (lua_isnil(L, 1)) return page_refused(L);
    /* next: the cursor of the page after, or none (false: done) */
    if (lua_isnil(L, 2))
        lua_pushboolean(L, 0);
    else
        lua_pushvalue(L, 2);
    lua_replace(L, lua_upvalueindex(6));
    lua_settop(L, 1);
    return 1;
}

static int do_pages(lua_State *L, const char *page_method, int calls)
{
    check_box(L);
    check_str(L, 2);
    int li = 3;
    if (calls) {
        opt_str(L, 3, NULL);
        li = 4;
    }
    if (!lua_isnoneornil(L, li)) check_limit(L, li);
    lua_settop(L, li);
    lua_getfield(L, 1, page_method); /* 1: the page method, through __index */
    lua_pushvalue(L, 1);             /* 2: the engine */
    lua_pushvalue(L, 2);             /* 3: the account */
    if (calls)
        lua_pushvalue(L, 3); /* 4: the queue */
    else
        lua_pushnil(L);
    if (lua_isnoneornil(L, li))
        lua_pushinteger(L, 1000); /* 5: the limit */
    else
        lua_pushvalue(L, li);
    lua_pushnil(L);            /* 6: the cursor: from the first */
    lua_pushboolean(L, calls); /* 7 */
    lua_pushcclosure(L, pages_next, 7);
    return 1;
}

static int l_agent_pages(lua_State *L)
{
    return do_pages(L, "agent_list_page", 0);
}

static int l_queue_pages(lua_State *L)
{
    return do_pages(L, "queue_list_page", 0);
}

static int l_call_pages(lua_State *L)
{
    return do_pages(L, "call_list_page", 1);
}

/* eng:call_list(account [, queue]) -> {calls = {...}} */
static int l_call_list(lua_State *L)
{
    check_box(L);
    const char *acct = check_str(L, 2), *queue = opt_str(L, 3, NULL);
    call c = begin(L);
    return finish(L, c, sb_call_list(use(c.b, L), acct, queue, c.res), ret_doc);
}

static int l_call_get(lua_State *L)
{
    return do_get(L, sb_call_get);
}
static int l_policy_list(lua_State *L)
{
    return do_list(L, sb_policy_list);
}
static int l_policy_get(lua_State *L)
{
    return do_get(L, sb_policy_get);
}
/* eng:policy_delete(account, name [, if_version]) -> {name=, deleted=, now=} */
static int l_policy_delete(lua_State *L)
{
    check_box(L);
    const char *acct = check_str(L, 2), *name = check_str(L, 3), *iv = opt_str(L, 4, NULL);
    call c = begin(L);
    return finish(L, c, sb_policy_delete_if(use(c.b, L), acct, name, iv, c.res), ret_doc);
}

/* eng:policy_versions(account, name [, before [, limit]]) -> {name=, versions={...}, next=} */
static int l_policy_versions(lua_State *L)
{
    check_box(L);
    const char *acct = check_str(L, 2), *name = check_str(L, 3);
    uint64_t before;
    size_t limit;
    opt_page(L, 4, "a history entry's", "newest", 50, &before, &limit);
    call c = begin(L);
    return finish(L, c, sb_policy_versions(use(c.b, L), acct, name, before, limit, c.res), ret_doc);
}
/* eng:policy_version(account, name, version) -> {name=, version=, code=, ...} */
static int l_policy_version(lua_State *L)
{
    check_box(L);
    const char *acct = check_str(L, 2), *name = check_str(L, 3), *v = check_str(L, 4);
    call c = begin(L);
    return finish(L, c, sb_policy_version_get(use(c.b, L), acct, name, v, c.res), ret_doc);
}
/* eng:policy_versions_forget(account, name [, version]) -> {name=, forgotten=} */
static int l_policy_versions_forget(lua_State *L)
{
    check_box(L);
    const char *acct = check_str(L, 2), *name = check_str(L, 3), *v = opt_str(L, 4, NULL);
    call c = begin(L);
    return finish(L, c, sb_policy_versions_forget(use(c.b, L), acct, name, v, c.res), ret_doc);
}

/* eng:member_put(account, queue, agent [, doc]) */
static int l_member_put(lua_State *L)
{
    check_box(L);
    const char *acct = check_str(L, 2), *q = check_str(L, 3), *agent = check_str(L, 4);
    if (!lua_isnoneornil(L, 5)) check_doc(L, 5);
    call c = begin(L);
    size_t len;
    int borrowed;
    char *doc;
    enc_err e;
    if (opt_arg_json(L, 5, &doc, &len, &borrowed, &e)) {
        abandon(L, c);
        return push_fail(L, SB_EINVAL, e.msg, *e.field ? e.field : NULL);
    }
    int rc = sb_member_put(use(c.b, L), acct, q, agent, doc, len, c.res);
    if (!borrowed) free(doc);
    return finish(L, c, rc, ret_put);
}

static int l_member_delete(lua_State *L)
{
    check_box(L);
    const char *acct = check_str(L, 2), *q = check_str(L, 3), *agent = check_str(L, 4);
    call c = begin(L);
    return finish(L, c, sb_member_delete(use(c.b, L), acct, q, agent, c.res), ret_actions);
}

/* Events given as tables fill an sb_event; names match the JSON events. */
static const char *const ev_types[] = {"offer",    "ring_result",  "hangup", "abandon",
                                       "transfer", "agent_status", NULL};
static const char *const outcomes[] = {"answered", "no_answer", "busy", "rejected", NULL};
static const char *const statuses[] = {"offline", "available", "paused", NULL};
static const char *const parties[] = {"caller", "agent", "system", NULL}; /* sb_end_party */
/* The fields of events, and those each type takes (bits of ev_fields), as
** sb_submit_json takes them. */
static const char *const ev_fields[] = {"type",   "call",    "queue",  "agent",  "caller",
                                        "called", "outcome", "status", "reason", "priority",
                                        "attrs",  "attempt", "by",     NULL};
#define EVF(i) (1u << (i))
static const unsigned ev_takes[] = {
    [SB_EV_OFFER] = EVF(0) | EVF(1) | EVF(2) | EVF(4) | EVF(5) | EVF(9) | EVF(10),
    [SB_EV_RING_RESULT] = EVF(0) | EVF(1) | EVF(3) | EVF(6) | EVF(11),
    [SB_EV_HANGUP] = EVF(0) | EVF(1) | EVF(12),
    [SB_EV_ABANDON] = EVF(0) | EVF(1) | EVF(12),
    [SB_EV_TRANSFER] = EVF(0) | EVF(1) | EVF(2) | EVF(3),
    [SB_EV_AGENT_STATUS] = EVF(0) | EVF(3) | EVF(7) | EVF(8),
};

static int lookup(const char *const *names, const char *s)
{
    for (int i = 0; names[i]; i++)
        if (strcmp(names[i], s) == 0) return i;
    return -1;
}

/* The index of s among the values an event field takes (names), or -1 with
** field set to its name and e->msg saying what it must be in the engine's
** words ("'by' must be caller, agent or system"). */
static int ev_value(const char *const *names, const char *s, const char *name, enc_err *e,
                    char *field, size_t fsize)
{
    int i = lookup(names, s);
    if (i >= 0) return i;
    snprintf(field, fsize, "%s", name);
    size_t n = (size_t)snprintf(e->msg, sizeof e->msg, "'%s' must be ", name);
    for (int j = 0; names[j] && n < sizeof e->msg; j++)
        n += (size_t)snprintf(e->msg + n, sizeof e->msg - n, "%s%s",
                              !j             ? ""
                              : names[j + 1] ? ", "
                                             : " or ",
                              names[j]);
    return -1;
}

/* Fill ev from the table at index t. Strings point into the table (alive while
** it is on the stack). An attrs table is encoded into *attrs (free it after).
** Returns 0, or SB_EINVAL with e->msg and field (the offending field's name,
** "" when none) filled and *attrs freed. */
static int event_from_table(lua_State *L, int t, sb_event *ev, char **attrs, enc_err *e,
                            char *field, size_t fsize)
{
    memset(ev, 0, sizeof *ev);
    *attrs = NULL;
    *field = 0;
    int has_status = 0;    /* offline is 0: a missing status must not read as one */
    unsigned seen = 0;     /* fields given, by their bit in ev_fields */
    char unknown[72] = ""; /* the first field no event takes */
    int bad_type = 0;      /* a type that is none of the events' */
    lua_pushnil(L);
    while (lua_next(L, t)) {
        if (lua_type(L, -2) != LUA_TSTRING) {
            lua_pop(L, 2);
            snprintf(e->msg, sizeof e->msg, "event fields are named by strings");
            return SB_EINVAL;
        }
        size_t kl;
        const char *k = lua_tolstring(L, -2, &kl);
        /* C reads strings up to a NUL byte: "call\0x" would be the field
        ** call, and a call id "c1\0x" the call c1. */
        if (strlen(k) != kl) {
            lua_pop(L, 2);
            snprintf(e->msg, sizeof e->msg, "event field names may not hold a NUL byte");
            return SB_EINVAL;
        }
        int vt = lua_type(L, -1);
        int bit = lookup(ev_fields, k);
        if (bit >= 0) seen |= 1u << bit;
        /* A field of the events set to sb.null is left out, as null is in
        ** the JSON events: caller = sb.null is a withheld number. */
        if (bit >= 0 && is_null(L, -1)) {
            lua_pop(L, 1);
            continue;
        }
        static const char *const strf[] = {"type",   "call",   "queue",   "agent",
                                           "caller", "called", "outcome", "status",
                                           "reason", "by",     NULL};
        int si = lookup(strf, k);
        if (si >= 0 && vt != LUA_TSTRING) {
            snprintf(field, fsize, "%s", strf[si]);
            snprintf(e->msg, sizeof e->msg, "event field %s must be a string", k);
            lua_pop(L, 2);
            return SB_EINVAL;
        }
        size_t sl = 0;
        const char *s = si >= 0 ? lua_tolstring(L, -1, &sl) : NULL;
        if (s && strlen(s) != sl) {
            snprintf(field, fsize, "%s", strf[si]);
            snprintf(e->msg, sizeof e->msg, "event field %s holds a NUL byte", k);
            lua_pop(L, 2);
            return SB_EINVAL;
        }
        /* Fields taking one of a few names (strf's outcome, status, by). */
        static const char *const *const values[] = {[6] = outcomes, [7] = statuses, [9] = parties};
        int v = 0;
        if (si >= 0 && si < (int)(sizeof values / sizeof *values) && values[si] &&
            (v = ev_value(values[si], s, k, e, field, fsize)) < 0) {
            lua_pop(L, 2);
            return SB_EINVAL;
        }
        switch (si) {
        case 0: {
            int ty = lookup(ev_types, s);
            if (ty < 0) {
                bad_type = 1; /* refused after the loop: an unknown field goes first */
                break;
            }
            ev->type = (sb_event_type)(SB_EV_OFFER + ty);
            break;
        }
        case 1:
            ev->call_id = s;
            break;
        case 2:
            ev->queue_id = s;
            break;
        case 3:
            ev->agent_id = s;
            break;
        case 4:
            ev->caller = s;
            break;
        case 5:
            ev->called = s;
            break;
        case 6:
            ev->outcome = (sb_ring_outcome)(SB_RING_ANSWERED + v);
            break;
        case 7:
            ev->status = (sb_agent_status)v;
            has_status = 1;
            break;
        case 8:
            ev->reason = s;
            break;
        case 9:
            ev->by = (sb_end_party)(SB_END_CALLER + v);
            break;
        default:
            if (strcmp(k, "priority") == 0) {
                if (vt != LUA_TNUMBER) {
                    snprintf(field, fsize, "%s", "priority");
                    snprintf(e->msg, sizeof e->msg, "event field priority must be a number");
                    lua_pop(L, 2);
                    return SB_EINVAL;
                }
                /* A whole number, as in the JSON event (NaN converted to
                ** int is undefined in C; 1.5 is no priority). */
                double p = (double)lua_tonumber(L, -1);
                if (!isfinite(p) || p != floor(p)) {
                    snprintf(field, fsize, "%s", "priority");
                    snprintf(e->msg, sizeof e->msg, "event field priority must be an integer");
                    lua_pop(L, 2);
                    return SB_EINVAL;
                }
                ev->priority = p < -1e6 ? -1000000 : p > 1e6 ? 1000000 : (int)p;
            } else if (strcmp(k, "attempt") == 0) {
                /* A whole number, as priority (Lua 5.1 has no integers). */
                double n = vt == LUA_TNUMBER ? (double)lua_tonumber(L, -1) : 0;
                if (!isfinite(n) || n != floor(n) || n < 1 || n > (double)UINT32_MAX) {
                    snprintf(field, fsize, "%s", "attempt");
                    snprintf(e->msg, sizeof e->msg,
                             "event field attempt must be an integer, 1 or more (the ring "
                             "action's attempt)");
                    lua_pop(L, 2);
                    return SB_EINVAL;
                }
                ev->attempt = (uint32_t)n;
            } else if (strcmp(k, "attrs") == 0) {
                size_t len;
                int borrowed;
                free(*attrs);
                *attrs = NULL;
                /* A table, as the README says: JSON text here would reach the
                ** engine as a string, the engine's "'attrs' must be a JSON
                ** object" in Python and Go, so it is refused as such. */
                if (vt != LUA_TTABLE) {
                    snprintf(field, fsize, "%s", "attrs");
                    snprintf(e->msg, sizeof e->msg,
                             "event field attrs must be a table (a JSON object), not a %s",
                             luaL_typename(L, -1));
                    lua_pop(L, 2);
                    return SB_EINVAL;
                }
                *attrs = arg_json(L, lua_gettop(L), &len, &borrowed, e);
                if (!*attrs) {
                    snprintf(field, fsize, "attrs%s%s", *e->field ? "." : "", e->field);
                    lua_pop(L, 2);
                    return SB_EINVAL;
                }
            } else if (!unknown[0]) {
                /* Keep the engine's strictness: unknown fields are refused,
                ** once the type is known, in its words (below). */
                snprintf(unknown, sizeof unknown, "%.64s", k);
            }
        }
        lua_pop(L, 1);
    }
    /* The engine's words and order (sb_submit_json), as Python and Go give:
    ** with no type it knows, a field no event takes first, then the type. */
    if (unknown[0] && !ev->type) {
        free(*attrs);
        *attrs = NULL;
        snprintf(field, fsize, "%s", unknown);
        snprintf(e->msg, sizeof e->msg, "unknown field '%s'", unknown);
        return SB_EINVAL;
    }
    if (bad_type) {
        free(*attrs);
        *attrs = NULL;
        snprintf(field, fsize, "%s", "type");
        snprintf(e->msg, sizeof e->msg,
                 "'type' must be offer, ring_result, hangup, abandon, transfer or agent_status");
        return SB_EINVAL;
    }
    if (!ev->type) {
        snprintf(field, fsize, "type");
        snprintf(e->msg, sizeof e->msg, "event needs a type");
        return SB_EINVAL;
    }
    /* As in the JSON events, each type takes its own fields only. */
    unsigned foreign = seen & ~ev_takes[ev->type];
    if (foreign || unknown[0]) {
        int bit = 0;
        while (foreign && !(foreign & 1u << bit))
            bit++;
        const char *name = unknown[0] ? unknown : ev_fields[bit];
        const char *ty = ev_types[ev->type - SB_EV_OFFER];
        char list[96] = "";
        size_t n = 0;
        for (int i = 1; ev_fields[i]; i++)
            if (ev_takes[ev->type] & 1u << i)
                n += (size_t)snprintf(list + n, sizeof list - n, "%s%s", n ? ", " : "",
                                      ev_fields[i]);
        free(*attrs);
        *attrs = NULL;
        snprintf(field, fsize, "%s", name);
        snprintf(e->msg, sizeof e->msg, "unknown field '%s' for a%s %s event (expected %s)", name,
                 strchr("aeiou", ty[0]) ? "n" : "", ty, list);
        return SB_EINVAL;
    }
    if (ev->type == SB_EV_AGENT_STATUS && !has_status) {
        free(*attrs);
        *attrs = NULL;
        snprintf(field, fsize, "status");
        snprintf(e->msg, sizeof e->msg, "missing field 'status'");
        return SB_EINVAL;
    }
    ev->attrs_json = *attrs;
    return 0;
}

/* eng:submit(account, event): event a table or JSON text; returns actions. */
static int l_submit(lua_State *L)
{
    check_box(L);
    const char *acct = check_str(L, 2);
    if (lua_type(L, 3) == LUA_TSTRING) {
        size_t len;
        const char *j = lua_tolstring(L, 3, &len);
        call c = begin(L);
        return finish(L, c, sb_submit_json(use(c.b, L), acct, j, len, c.res), ret_actions);
    }
    check_type(L, 3, LUA_TTABLE);
    lua_settop(L, 3);
    /* The event's strings are read from a copy of the table, kept on the
    ** stack until the engine returns: the engine calls the clock and log
    ** functions, whose Lua code could change the caller's table and let
    ** the collector free a string sb_event points to. */
    lua_newtable(L);
    lua_pushnil(L);
    while (lua_next(L, 3)) {
        lua_pushvalue(L, -2);
        lua_insert(L, -2);
        lua_rawset(L, 4);
    }
    call c = begin(L);
    sb_event ev;
    char *attrs = NULL, field[80];
    enc_err e;
    int rc = event_from_table(L, 4, &ev, &attrs, &e, field, sizeof field);
    if (rc) {
        free(attrs);
        abandon(L, c);
        return push_fail(L, rc, e.msg, *field ? field : NULL);
    }
    ev.account = acct;
    rc = sb_submit(use(c.b, L), &ev, c.res);
    free(attrs);
    return finish(L, c, rc, ret_actions);
}

static int l_tick(lua_State *L)
{
    call c = begin(L);
    return finish(L, c, sb_tick(use(c.b, L), c.res), ret_actions);
}

/* eng:tick_for(max_ms) -> actions, more (sb_tick_for): due timers fired for
** about max_ms of work at most (0: no limit), more true when timers were
** still due as the time ran out. Past 2^32 - 1 (the C argument's limit)
** max_ms counts as that, as sweep's budget and the Python and Go bindings'
** do; one that is not a whole number from 0 to 2^63 - 1 raises, nothing
** fired. */
static int l_tick_for(lua_State *L)
{
    check_box(L);
    int64_t x = check_ms(L, 2);
    call c = begin(L);
    int more = 0,
        rc = sb_tick_for(use(c.b, L), x > UINT32_MAX ? UINT32_MAX : (uint32_t)x, &more, c.res);
    c.g->ran = 1;
    int n = ret_actions(L, rc, c.res);
    if (!rc) {
        lua_pushboolean(L, more);
        n++;
    }
    guard_end(L, c.g);
    return n;
}

/* Milliseconds of the earliest timer, or nil when none is pending. */
static int l_next_deadline(lua_State *L)
{
    engine_box *b = check_box(L);
    int64_t t = sb_next_deadline(use(b, L));
    b->changed = 0;
    if (t == INT64_MAX)
        lua_pushnil(L);
    else
        lua_pushinteger(L, (lua_Integer)t);
    return 1;
}

/* eng:policy_put(account, name, source [, cases [, if_version]]) -> {name=, version=}:
** if_version as sb_policy_put_if ("*": over any upload, "": only when none) */
static int l_policy_put(lua_State *L)
{
    check_box(L);
    const char *acct = check_str(L, 2), *name = check_str(L, 3);
    size_t slen;
    const char *src = check_lstr(L, 4, &slen);
    int have_cases = !lua_isnoneornil(L, 5);
    if (have_cases) check_doc(L, 5);
    const char *iv = opt_str(L, 6, NULL);
    call c = begin(L);
    char *cases = NULL;
    size_t clen;
    int borrowed = 1;
    enc_err e;
    if (have_cases) {
        cases = arg_json(L, 5, &clen, &borrowed, &e);
        if (!cases) {
            abandon(L, c);
            return push_fail(L, SB_EINVAL, e.msg, "cases");
        }
    }
    int rc = sb_policy_put_if(use(c.b, L), acct, name, src, slen, cases, iv, c.res);
    if (!borrowed) free(cases);
    return finish(L, c, rc, ret_doc);
}

/* eng:reload() -> {changed = N, policies = {...}, warnings = {...}}: the
** reload's document (sb_reload), as Python's reload() and Go's
** ReloadReport give it; a table, so assert(eng:reload()) reads as before. */
static int l_reload(lua_State *L)
{
    call c = begin(L);
    return finish(L, c, sb_reload(use(c.b, L), c.res), ret_doc);
}

static int l_sync(lua_State *L)
{
    engine_box *b = check_box(L);
    int rc = sb_sync(use(b, L));
    b->changed = 0;
    if (rc) return push_fail(L, rc, NULL, NULL);
    lua_pushboolean(L, 1);
    return 1;
}

/* eng:sync_progress() -> written, durable, ordered (sb_sync_progress).
** ordered is false where commits do not sync in order (the engine's
** SB_ESTATE: a sync=none engine opened the directory first in this
** process): the numbers say nothing then (durable is 0), and only
** eng:sync() makes anything durable. Not a failure: nil, message, code are
** for the others. Commit numbers stay far below 2^53, so a 5.1 number holds
** them exactly. */
static int l_sync_progress(lua_State *L)
{
    engine_box *b = check_box(L);
    uint64_t written = 0, durable = 0;
    int rc = sb_sync_progress(use(b, L), &written, &durable);
    b->changed = 0;
    if (rc && rc != SB_ESTATE) return push_fail(L, rc, NULL, NULL);
    lua_pushinteger(L, (lua_Integer)written);
    lua_pushinteger(L, (lua_Integer)durable);
    lua_pushboolean(L, rc == 0);
    return 3;
}

static int l_stats(lua_State *L)
{
    call c = begin(L);
    return finish(L, c, sb_stats(use(c.b, L), c.res), ret_doc);
}

static int l_apikey_create(lua_State *L)
{
    return do_one(L, sb_apikey_create, ret_doc);
}

/* eng:apikey_list(account) -> {keys = {{key_id = ...}, ...}}: the ids
** apikey_revoke takes (the keys themselves are not stored). */
static int l_apikey_list(lua_State *L)
{
    return do_list(L, sb_apikey_list);
}

/* true when key is a current key of the account, false otherwise. */
static int l_apikey_verify(lua_State *L)
{
    check_box(L);
    size_t len;
    const char *acct = check_str(L, 2), *key = check_lstr(L, 3, &len);
    engine_box *b = check_box(L); /* the arguments read: still open */
    b->changed = 0;
    lua_pushboolean(L, sb_apikey_verify(use(b, L), acct, key, len) == 0);
    return 1;
}

static int l_apikey_revoke(lua_State *L)
{
    return do_delete(L, sb_apikey_revoke);
}

/* ---- batches -------------------------------------------------------------------- */

/* eng:batch(fn) -> true | nil, message, code, field: the events fn submits
** share one write transaction, committed once fn has returned (sb_batch_begin
** / sb_batch_end). Each eng:submit in fn answers at once (a refused event
** changes nothing, the batch goes on), but nothing is stored until the
** commit: when it fails, eng:batch returns the failure and none of the
** batch's events happened. An error raised in fn does not undo the events
** before it (there is no rollback): they are committed, and the error is
** raised again — unless the commit fails too, which is raised then, naming
** both. fn runs inside this C function, so it cannot yield. A batch inside
** fn joins this one; eng:close() inside fn is refused (the batch still uses
** the engine). */
static int l_batch(lua_State *L)
{
    check_box(L);
    check_type(L, 2, LUA_TFUNCTION);
    lua_settop(L, 2);
    engine_box *b = check_box(L);
    if (b->batching) { /* nested: fn joins the open batch, which commits */
        lua_call(L, 0, 0);
        lua_pushboolean(L, 1);
        return 1;
    }
    int rc = sb_batch_begin(use(b, L));
    if (rc) /* SB_ESTATE: another thread's batch, through the engine's C API */
        return push_fail(
            L, rc, rc == SB_ESTATE ? "another thread's batch is open on this engine" : NULL, NULL);
    b->batching++;
    int failed = lua_pcall(L, 0, 0, 0); /* 2: fn's error, if any */
    b->batching--;
    /* A result of its own (fn may have left the box's in any state); NULL
    ** when out of memory: sb_batch_end takes it, and the commit must run. */
    sb_result *res = sb_result_new();
    rc = sb_batch_end(use(b, L), res);
    int n;
    if (rc && failed) {
        /* The message in C first and the result freed: pushing it may raise
        ** a memory error, which would leak the result. */
        char why[512];
        snprintf(why, sizeof why, "%s: %s", sb_code_name(rc),
                 res ? sb_result_message(res) : sb_strerror(rc));
        sb_result_free(res);
        lua_pushfstring(L,
                        "switchboard: the batch was not stored (%s) after its function raised: %s",
                        why, lua_isstring(L, -1) ? lua_tostring(L, -1) : luaL_typename(L, -1));
        return lua_error(L);
    }
    if (failed) {
        sb_result_free(res);
        return lua_error(L); /* fn's error, as it was */
    }
    if (rc)
        n = res ? push_engine_fail(L, rc, res) : push_fail(L, rc, NULL, NULL);
    else {
        lua_pushboolean(L, 1);
        n = 1;
    }
    sb_result_free(res);
    return n;
}

/* ---- call records and retention ------------------------------------------------ */

/* Each returns the engine's document as a table (see switchboard.h, "Call
** records and retention"), copied out of the result before it is reused. */

/* eng:records_list(account [, query]) -> {records = {...}} */
static int l_records_list(lua_State *L)
{
    check_box(L);
    const char *acct = check_str(L, 2);
    if (!lua_isnoneornil(L, 3)) check_doc(L, 3);
    call c = begin(L);
    size_t len;
    int borrowed;
    char *q;
    enc_err e;
    if (opt_arg_json(L, 3, &q, &len, &borrowed, &e)) {
        abandon(L, c);
        return push_fail(L, SB_EINVAL, e.msg, *e.field ? e.field : NULL);
    }
    int rc = sb_records_list(use(c.b, L), acct, q, len, c.res);
    if (!borrowed) free(q);
    return finish(L, c, rc, ret_doc);
}

/* eng:records_export(account, number [, "json"|"csv"]) */
static int l_records_export(lua_State *L)
{
    static const char *const formats[] = {"json", "csv", NULL};
    check_box(L);
    const char *acct = check_str(L, 2), *number = check_str(L, 3);
    const char *fmt = lua_isnoneornil(L, 4) ? "json" : check_str(L, 4);
    int f = lookup(formats, fmt);
    if (f < 0) arg_error(L, 4, lua_pushfstring(L, "invalid option '%s'", fmt));
    call c = begin(L);
    return finish(
        L, c,
        sb_records_export(use(c.b, L), acct, number, f ? SB_EXPORT_CSV : SB_EXPORT_JSON, c.res),
        ret_doc);
}

/* eng:erase(account, number) -> {deleted, anonymized, kept, failed, reasons} */
static int l_erase(lua_State *L)
{
    return do_get(L, sb_erase);
}

/* eng:hold_place(account, hold) -> the hold */
static int l_hold_place(lua_State *L)
{
    return do_put_ret(L, sb_hold_place, ret_doc);
}

/* eng:retention_preview(account, opts) -> the dry run's answer (opts: a
** table or JSON text, sb_retention_preview's) */
static int l_retention_preview(lua_State *L)
{
    return do_put_ret(L, sb_retention_preview, ret_doc);
}

static int l_hold_release(lua_State *L)
{
    return do_get(L, sb_hold_release);
}

static int l_hold_list(lua_State *L)
{
    return do_list(L, sb_hold_list);
}

/* eng:hold_get(account, id) -> the hold, as hold_list gives it */
static int l_hold_get(lua_State *L)
{
    return do_get(L, sb_hold_get);
}

/* An optional whole number of milliseconds argument (0 when absent), as
** check_ms reads it. */
static int64_t opt_ms(lua_State *L, int i)
{
    return lua_isnoneornil(L, i) ? 0 : check_ms(L, i);
}

/* eng:aggregates(account [, queue [, from_ms [, to_ms]]]) -> {days = {...}} */
static int l_aggregates(lua_State *L)
{
    check_box(L);
    const char *acct = check_str(L, 2), *queue = opt_str(L, 3, NULL);
    int64_t from = opt_ms(L, 4), to = opt_ms(L, 5);
    call c = begin(L);
    return finish(L, c, sb_aggregates(use(c.b, L), acct, queue, from, to, c.res), ret_doc);
}

/* eng:audit_list(account [, after [, limit]]) -> {entries = {...}, next = N} */
static int l_audit_list(lua_State *L)
{
    check_box(L);
    const char *acct = check_str(L, 2);
    uint64_t after;
    size_t limit;
    opt_page(L, 3, "an audit entry's", "first", 1000, &after, &limit);
    call c = begin(L);
    return finish(L, c, sb_audit_list(use(c.b, L), acct, after, limit, c.res), ret_doc);
}

/* eng:records_pages(account [, query]) -> an iterator of pages (lists of
** records), as the *_pages of the lists: records_list page after page, the
** query's limit (100 when not given) each, its before_ms and before_id the
** last record of the page before; only the first page may be empty. The
** query (a table, copied, or JSON text of an object) is read at the call.
** Upvalues: 1 records_list, 2 the engine, 3 the account, 4 the query (the
** iterator's own copy), 5 the limit, 6 nil (first page), true, or false
** (done). */
static int records_pages_next(lua_State *L)
{
    if (lua_isboolean(L, lua_upvalueindex(6)) && !lua_toboolean(L, lua_upvalueindex(6))) return 0;
    int first = lua_isnil(L, lua_upvalueindex(6));
    lua_settop(L, 0);
    for (int i = 1; i <= 4; i++)
        lua_pushvalue(L, lua_upvalueindex(i));
    lua_call(L, 3, 4);
    if (lua_isnil(L, 1)) return page_refused(L);
    lua_settop(L, 1);
    lua_getfield(L, 1, "records"); /* 2 */
    size_t n = lua_istable(L, 2) ? sbl_rawlen(L, 2) : 0;
    if (n == 0 && !first) {
        lua_pushboolean(L, 0);
        lua_replace(L, lua_upvalueindex(6));
        return 0;
    }
    lua_pushboolean(L, (double)n >= lua_tonumber(L, lua_upvalueindex(5)));
    lua_replace(L, lua_upvalueindex(6));
    if (n) { /* the cursor: the last record's ended_ms and id */
        lua_rawgeti(L, 2, (int)n);
        lua_getfield(L, -1, "ended_ms");
        lua_setfield(L, lua_upvalueindex(4), "before_ms");
        lua_getfield(L, -1, "id");
        lua_setfield(L, lua_upvalueindex(4), "before_id");
        lua_pop(L, 1);
    }
    return 1;
}

static int l_records_pages(lua_State *L)
{
    check_box(L);
    check_str(L, 2);
    lua_settop(L, 3);
    lua_newtable(L); /* 4: the iterator's query */
    if (lua_type(L, 3) == LUA_TSTRING) {
        size_t len;
        const char *q = lua_tolstring(L, 3, &len);
        if (push_decoded(L, q, len) != 1 || !lua_istable(L, -1) || is_array_table(L, lua_gettop(L)))
            arg_error(L, 3, "expected a query, a table or JSON text of an object");
        lua_replace(L, 3);
    } else if (!lua_isnil(L, 3)) {
        check_type(L, 3, LUA_TTABLE);
    }
    if (!lua_isnil(L, 3)) {
        lua_pushnil(L);
        while (lua_next(L, 3)) {
            lua_pushvalue(L, -2);
            lua_insert(L, -2);
            lua_rawset(L, 4);
        }
    }
    lua_getfield(L, 4, "limit");
    if (lua_type(L, -1) != LUA_TNUMBER) { /* none: 100; another type: the engine says */
        lua_pop(L, 1);
        lua_pushinteger(L, 100);
    }
    int limit = lua_gettop(L);
    lua_getfield(L, 1, "records_list");
    lua_pushvalue(L, 1);
    lua_pushvalue(L, 2);
    lua_pushvalue(L, 4);
    lua_pushvalue(L, limit);
    lua_pushnil(L);
    lua_pushcclosure(L, records_pages_next, 6);
    return 1;
}

/* eng:audit_pages(account [, after [, limit]]) -> an iterator of pages
** (lists of entries): audit_list page after page until no entry is left;
** only the first page may be empty. Upvalues: 1 audit_list, 2 the engine,
** 3 the account, 4 the cursor (after), 5 the limit, 6 nil (first page),
** true, or false (done). */
static int audit_pages_next(lua_State *L)
{
    if (lua_isboolean(L, lua_upvalueindex(6)) && !lua_toboolean(L, lua_upvalueindex(6))) return 0;
    int first = lua_isnil(L, lua_upvalueindex(6));
    lua_settop(L, 0);
    for (int i = 1; i <= 5; i++)
        lua_pushvalue(L, lua_upvalueindex(i));
    lua_call(L, 4, 4);
    if (lua_isnil(L, 1)) return page_refused(L);
    lua_settop(L, 1);
    lua_getfield(L, 1, "entries"); /* 2 */
    size_t n = lua_istable(L, 2) ? sbl_rawlen(L, 2) : 0;
    lua_pushboolean(L, n != 0);
    lua_replace(L, lua_upvalueindex(6));
    if (n == 0 && !first) return 0;
    lua_getfield(L, 1, "next");
    lua_replace(L, lua_upvalueindex(4));
    lua_settop(L, 2);
    return 1;
}

static int l_audit_pages(lua_State *L)
{
    check_box(L);
    check_str(L, 2);
    uint64_t after;
    size_t limit;
    opt_page(L, 3, "an audit entry's", "first", 1000, &after, &limit); /* audit_list reads them */
    lua_settop(L, 4);
    lua_getfield(L, 1, "audit_list");
    lua_pushvalue(L, 1);
    lua_pushvalue(L, 2);
    if (lua_isnil(L, 3))
        lua_pushinteger(L, 0);
    else
        lua_pushvalue(L, 3);
    if (lua_isnil(L, 4))
        lua_pushinteger(L, 0);
    else
        lua_pushvalue(L, 4);
    lua_pushnil(L);
    lua_pushcclosure(L, audit_pages_next, 6);
    return 1;
}

/* The sweep's progress function, called from inside sb_sweep on the host's
** own thread and state. An error in it cannot unwind through the engine:
** it is kept in the stack slot err, and the function is not called again. */
typedef struct sweep_cb {
    lua_State *L;
    engine_box *b;
    int fn, err, failed;
} sweep_cb;

static void sweep_progress(void *arg, uint64_t done, uint64_t total)
{
    sweep_cb *c = arg;
    lua_State *L = c->L;
    if (c->failed || !lua_checkstack(L, 4)) return;
    lua_pushvalue(L, c->fn);
    lua_pushinteger(L, (lua_Integer)done);
    lua_pushinteger(L, (lua_Integer)total);
    if (lua_pcall(L, 2, 0, 0) != 0) {
        c->failed = 1;
        lua_replace(L, c->err);
    }
    /* progress may have called the engine from a coroutine: the clock and
    ** log functions run on the sweep's thread again. */
    use(c->b, L);
}

/* eng:sweep([budget_ms [, progress]]) -> the sweep's summary. progress(done,
** total) is called after each transaction; an error raised in it is raised
** again once the sweep has returned (the sweep runs to its end: its work is
** committed transaction by transaction). The sweep has a result of its own,
** so progress may call the engine. */
static int l_sweep(lua_State *L)
{
    check_box(L);
    int64_t budget = opt_ms(L, 2);
    if (!lua_isnoneornil(L, 3)) check_type(L, 3, LUA_TFUNCTION);
    lua_settop(L, 3);
    lua_pushnil(L);               /* 4: the progress function's error */
    engine_box *b = check_box(L); /* the arguments read: still open */
    sweep_cb c = {L, b, 3, 4, 0};
    sb_result *res = sb_result_new();
    if (!res) return luaL_error(L, "switchboard: out of memory");
    /* While progress may run, the engine must stay open (eng:close() in it
    ** is refused): the sweep carries on with it when progress returns. */
    b->sweeping++;
    int rc = sb_sweep(use(b, L), budget > UINT32_MAX ? UINT32_MAX : (uint32_t)budget,
                      lua_isnil(L, 3) ? NULL : sweep_progress, &c, res);
    b->sweeping--;
    b->changed = sb_result_changed(res);
    if (c.failed) {
        sb_result_free(res);
        lua_pushvalue(L, 4);
        return lua_error(L);
    }
    int n = ret_doc(L, rc, res);
    sb_result_free(res);
    return n;
}

/* ---- backups -------------------------------------------------------------------- */

/* eng:backup(dest) -> {dir, bytes, master_key}: a consistent copy of the data
** directory (data.mdb compacted, the wrapped data keys; never the master key)
** into dest, created or an empty directory. A dest that is not empty: nil,
** message, sb.EEXIST, "dest". */
static int l_backup(lua_State *L)
{
    check_box(L);
    size_t len;
    const char *dest = check_lstr(L, 2, &len);
    /* C would read a path holding a NUL byte as a shorter one: a backup
    ** written where nobody asked. */
    if (strlen(dest) != len) return push_fail(L, SB_EINVAL, "dest holds a NUL byte", "dest");
    call c = begin(L);
    return finish(L, c, sb_backup(use(c.b, L), dest, c.res), ret_doc);
}

/* eng:clock() -> ms, the engine's time (a clock function's reading, as the
** engine takes it); eng:set_clock(ms): only for engines opened with a
** manual clock (sb.open{clock = ms}). */
static int l_clock(lua_State *L)
{
    engine_box *b = check_box(L);
    int64_t ms;
    if (b->clock_manual)
        ms = manual_clock(b);
    else if (b->clock_ref != LUA_NOREF) {
        use(b, L);
        ms = box_clock(b);
    } else
        ms = system_ms();
    lua_pushinteger(L, (lua_Integer)ms);
    return 1;
}

static int l_set_clock(lua_State *L)
{
    engine_box *b = check_box(L);
    if (!b->clock_manual) return luaL_error(L, "switchboard: set_clock needs sb.open{clock = ms}");
    int64_t ms;
    (void)check_num(L, 2); /* a number: the type's error first */
    b = check_box(L);      /* the argument read: still open */
    if (!clock_value(L, 2, &ms))
        return luaL_error(L, "switchboard: set_clock: ms must be a whole number of milliseconds "
                             "from 0");
    __atomic_store_n(&b->clock_ms, ms, __ATOMIC_RELAXED);
    return 0;
}

/* eng:logs() -> { {level=, message=}... } and forgets them ("buffer" mode). */
static int l_logs(lua_State *L)
{
    engine_box *b = check_box(L);
    pthread_mutex_lock(&b->mu);
    size_t n = b->count;
    char *lines[LOG_KEEP];
    sb_log_level levels[LOG_KEEP];
    for (size_t i = 0; i < n; i++) {
        lines[i] = b->lines[(b->first + i) % LOG_KEEP];
        levels[i] = b->levels[(b->first + i) % LOG_KEEP];
    }
    b->first = b->count = 0;
    pthread_mutex_unlock(&b->mu);
    lua_createtable(L, (int)n, 0);
    for (size_t i = 0; i < n; i++) {
        lua_createtable(L, 0, 2);
        lua_pushstring(L, level_name(levels[i]));
        lua_setfield(L, -2, "level");
        lua_pushstring(L, lines[i]);
        lua_setfield(L, -2, "message");
        free(lines[i]);
        lua_rawseti(L, -2, (int)i + 1);
    }
    return 1;
}

/* eng:changed() -> whether the last method called on the engine committed a
** change to the store (sb_result_changed): false for a read, a call that
** found the state as asked, a failure (but a sync that failed after its
** commit), and the methods that take no result (sync, next_deadline...).
** In a batch, each event's own; the batch's commit leaves it as the last
** event left it (sb_batch_end says nothing of its own). Python's
** Engine.changed(), Go's TrackChanges. */
static int l_changed(lua_State *L)
{
    lua_pushboolean(L, check_box(L)->changed);
    return 1;
}

/* eng:closed() -> true once eng:close() (or a finalizer's close) has run on
** this handle: Python's Engine.closed, Go's Closed. Never raises for a
** closed engine, and may be asked from a clock, log or progress function. */
static int l_closed(lua_State *L)
{
    lua_pushboolean(L, check_ud(L)->b == NULL);
    return 1;
}

static int l_close(lua_State *L)
{
    engine_ud *u = check_ud(L);
    if (u->b && u->b->sweeping)
        return luaL_error(L, "switchboard: the engine cannot be closed while it sweeps "
                             "(close it after eng:sweep returns, not in its progress function)");
    if (u->b && u->b->batching)
        return luaL_error(L, "switchboard: the engine cannot be closed inside eng:batch's function "
                             "(the batch still uses it): close it after eng:batch returns");
    if (u->b && u->b->in_cb)
        return luaL_error(L,
                          "switchboard: the engine cannot be closed from its %s function (the "
                          "call that called it still uses the engine)",
                          u->b->in_cb);
    engine_box *b = u->b;
    u->b = NULL;
    /* A finalizer closing the engine while a method pushes its answer (see
    ** begin): that method frees it when done. */
    if (b && b->busy)
        b->close_pending = 1;
    else
        box_free(L, b);
    return 0;
}

/* __gc: the handle is unreachable, so no method of it is running; the guard
** of one that a Lua error ended half way may still be uncollected, and
** frees the box when it is. */
static int l_gc(lua_State *L)
{
    engine_ud *u = luaL_checkudata(L, 1, ENGINE_MT);
    engine_box *b = u->b;
    u->b = NULL;
    if (b && b->busy)
        b->close_pending = 1;
    else
        box_free(L, b);
    return 0;
}

static int l_tostring(lua_State *L)
{
    engine_ud *u = luaL_checkudata(L, 1, ENGINE_MT);
    if (u->b)
        lua_pushfstring(L, "switchboard.engine (%p)", (void *)u->b);
    else
        lua_pushstring(L, "switchboard.engine (closed)");
    return 1;
}

/* ---- sb.open ------------------------------------------------------------------ */

/* Option k of the options table of sb.open or sb.master_key_rotate (its
** errors name the function, the closure's name). */
static const char *opt_string(lua_State *L, const char *k)
{
    lua_getfield(L, 1, k);
    const char *s = NULL;
    if (!lua_isnil(L, -1)) {
        const char *who = lua_tostring(L, lua_upvalueindex(1));
        if (lua_type(L, -1) != LUA_TSTRING) luaL_error(L, "%s: %s must be a string", who, k);
        size_t n;
        s = lua_tolstring(L, -1, &n);
        /* C would read a shorter path or name: another directory opened */
        if (strlen(s) != n) luaL_error(L, "%s: %s holds a NUL byte", who, k);
        /* Left on the stack, which keeps it alive until sb.open returns:
        ** an __index function may have made it, and nothing else holds it. */
        return s;
    }
    lua_pop(L, 1);
    return s;
}

/* An option's value sb.open refuses for what it is (a string or number of
** the right type): the first one found, returned as nil, message, SB_EINVAL,
** field once every option's type is checked (a wrong type raises). */
typedef struct {
    const char *field;
    char msg[160];
} open_refusal;

static void refuse(open_refusal *r, const char *field, const char *msg, const char *got)
{
    if (r->field) return;
    r->field = field;
    snprintf(r->msg, sizeof r->msg, "%s (got %.40s)", msg, got);
}

/* Option k of the table at t, a whole number from 0 to max, in *out: 1 when
** given (a number that is not such, refused in *r, gives 0); another type
** raises, naming the function who. The bound is named as an integer: a
** double's 2^64 - 1 is 2^64, and luaL_error knows no %llu. */
static int opt_number(lua_State *L, int t, const char *who, const char *k, uint64_t max,
                      double *out, open_refusal *r)
{
    lua_getfield(L, t, k);
    int have = !lua_isnil(L, -1);
    if (have) {
        if (lua_type(L, -1) != LUA_TNUMBER) luaL_error(L, "%s: %s must be a number", who, k);
        *out = (double)lua_tonumber(L, -1);
        /* (double)max + 1 is 2^32, 2^63 or 2^64 exactly: a max of more
        ** bits than a double holds rounds up to the power of two. */
        if (!whole_below(*out, (double)max + 1)) {
            char msg[96], got[40];
            snprintf(msg, sizeof msg, "%s must be a whole number from 0 to %llu", k,
                     (unsigned long long)max);
            if (isnan(*out))
                snprintf(got, sizeof got, "NaN");
            else
                snprintf(got, sizeof got, "%.14g", *out);
            refuse(r, k, msg, got);
            have = 0;
        }
    }
    lua_pop(L, 1);
    return have;
}

/* Option k, one of names (its index in *out): 1 when given (a string that
** is none of them, refused in *r with msg, gives 0). */
static int opt_choice(lua_State *L, const char *k, const char *const *names, const char *msg,
                      int *out, open_refusal *r)
{
    const char *s = opt_string(L, k);
    if (!s) return 0;
    char got[48];
    snprintf(got, sizeof got, "'%.40s'", s);
    *out = lookup(names, s);
    if (*out < 0) refuse(r, k, msg, got);
    return *out >= 0;
}

/* The table at t holds no key but those of keys (which may also come
** through an __index metamethod: they are read with lua_getfield); one
** that is not raises, naming the function who. */
static void check_options(lua_State *L, int t, const char *const *keys, const char *who)
{
    lua_pushnil(L);
    while (lua_next(L, t)) {
        lua_pop(L, 1);
        if (lua_type(L, -1) != LUA_TSTRING || lookup(keys, lua_tostring(L, -1)) < 0)
            luaL_error(L, "%s: unknown option '%s'", who,
                       lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "?");
    }
}

/* The policy budgets of the options at t, into cfg (sb.open, and the policy
** tools' budgets table). */
static void opt_budgets(lua_State *L, int t, const char *who, sb_config *cfg, open_refusal *r)
{
    double d;
    if (opt_number(L, t, who, "policy_instructions", UINT64_MAX, &d, r))
        cfg->policy_instructions = (uint64_t)d;
    /* A 32-bit bound past 2^32 - 1 counts as that, as in Python and Go. */
    if (opt_number(L, t, who, "policy_wall_ms", INT64_MAX, &d, r))
        cfg->policy_wall_ms = d > UINT32_MAX ? UINT32_MAX : (uint32_t)d;
    if (opt_number(L, t, who, "policy_memory", SIZE_MAX, &d, r)) cfg->policy_memory = (size_t)d;
}

/* A registry reference to option k's value, kept until the engine's box
** goes (box_free). */
static int opt_ref(lua_State *L, const char *k)
{
    lua_getfield(L, 1, k);
    return luaL_ref(L, LUA_REGISTRYINDEX);
}

/* Whether option k is a function; a value that is neither nil, a function
** nor of type other raises, naming the function who. */
static int opt_is_function(lua_State *L, const char *who, const char *k, int other)
{
    lua_getfield(L, 1, k);
    int t = lua_type(L, -1);
    lua_pop(L, 1);
    if (t != LUA_TNIL && t != LUA_TFUNCTION && t != other)
        luaL_error(L, "%s: %s must be a %s or a function", who, k, lua_typename(L, other));
    return t == LUA_TFUNCTION;
}

/* Options log (a function, or "stderr", "buffer" or "none"; msg says so
** when it is another string) and log_level, into *lm and cfg (sb.open,
** sb.master_key_rotate). */
static void opt_log(lua_State *L, const char *who, const char *msg, sb_config *cfg, log_mode *lm,
                    open_refusal *r)
{
    static const char *const levels[] = {"error", "warn", "info", "debug", NULL};
    static const char *const names[] = {"stderr", "buffer", "none", NULL}; /* log_mode's order */
    int m;
    if (opt_choice(L, "log_level", levels, "log_level must be error, warn, info or debug", &m, r))
        cfg->log_level = (sb_log_level)m;
    *lm = opt_is_function(L, who, "log", LUA_TSTRING) ? LOG_FUNCTION : LOG_STDERR;
    if (*lm == LOG_STDERR && opt_choice(L, "log", names, msg, &m, r)) *lm = (log_mode)m;
}

/* A new box whose engine is yet to be opened, with the log mode lm and
** references to the options clock and log when they are functions (kept
** until box_free); the engine's functions set in cfg. Raises when out of
** memory, having freed what it took. */
static engine_box *box_new(lua_State *L, log_mode lm, int clock_fn, sb_config *cfg)
{
    /* The functions' references before the box: making one may raise. */
    int clock_ref = clock_fn ? opt_ref(L, "clock") : LUA_NOREF;
    int log_ref = lm == LOG_FUNCTION ? opt_ref(L, "log") : LUA_NOREF;
    engine_box *b = calloc(1, sizeof *b);
    if (!b) {
        luaL_unref(L, LUA_REGISTRYINDEX, clock_ref);
        luaL_unref(L, LUA_REGISTRYINDEX, log_ref);
        luaL_error(L, "%s: out of memory", lua_tostring(L, lua_upvalueindex(1)));
    }
    b->clock_ref = clock_ref;
    b->log_ref = log_ref;
    pthread_mutex_init(&b->mu, NULL);
    b->pid = getpid();
    b->log = lm;
    b->res = sb_result_new();
    if (!b->res) {
        box_free(L, b);
        luaL_error(L, "%s: out of memory", lua_tostring(L, lua_upvalueindex(1)));
    }
    if (lm != LOG_STDERR) {
        cfg->log = box_log;
        cfg->log_arg = b;
    }
    return b;
}

static const char *const open_keys[] = {"data_dir",
                                        "policy_dir",
                                        "key_file",
                                        "sync",
                                        "map_size",
                                        "map_max",
                                        "seed",
                                        "log",
                                        "log_level",
                                        "clock",
                                        "policy_instructions",
                                        "policy_wall_ms",
                                        "policy_memory",
                                        "quarantine_after",
                                        "require_signed_policies",
                                        "policy_public_key",
                                        "erasure_journal_days",
                                        NULL};

static int l_open(lua_State *L)
{
    check_type(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    luaL_checkstack(L, 16, "switchboard.open"); /* the option strings stay on it */
    check_options(L, 1, open_keys, "switchboard.open");
    sb_config cfg;
    sb_config_init(&cfg);
    cfg.data_dir = opt_string(L, "data_dir");
    if (!cfg.data_dir) return luaL_error(L, "switchboard.open: data_dir is required");
    cfg.policy_dir = opt_string(L, "policy_dir");
    cfg.key_file = opt_string(L, "key_file");
    cfg.policy_public_key = opt_string(L, "policy_public_key");
    /* Values of the right type that are none of those taken come back as
    ** nil, message, code, field, as the engine's refusals do. */
    open_refusal r = {NULL, ""};
    static const char *const modes[] = {"group", "sync", "none", "defer", NULL};
    static const char *const who = "switchboard.open";
    int m;
    if (opt_choice(L, "sync", modes, "sync must be group, sync, none or defer", &m, &r))
        cfg.sync = (sb_sync_mode)m;
    log_mode lm;
    opt_log(L, who, "log must be stderr, buffer or none", &cfg, &lm, &r);
    double d;
    if (opt_number(L, 1, who, "map_size", SIZE_MAX, &d, &r)) cfg.map_size = (size_t)d;
    if (opt_number(L, 1, who, "map_max", SIZE_MAX, &d, &r)) cfg.map_max = (size_t)d;
    if (opt_number(L, 1, who, "seed", UINT64_MAX, &d, &r)) cfg.seed = (uint64_t)d;
    opt_budgets(L, 1, who, &cfg, &r);
    if (opt_number(L, 1, who, "quarantine_after", INT64_MAX, &d, &r))
        cfg.quarantine_after = d > UINT32_MAX ? UINT32_MAX : (uint32_t)d;
    /* Past its field: the engine's range (0 to 36600) refuses it. */
    if (opt_number(L, 1, who, "erasure_journal_days", INT64_MAX, &d, &r))
        cfg.erasure_journal_days = d > UINT32_MAX ? UINT32_MAX : (uint32_t)d;
    lua_getfield(L, 1, "require_signed_policies");
    /* Not any value Lua reads as true: 0 and "false" would turn it on. */
    if (!lua_isnil(L, -1) && lua_type(L, -1) != LUA_TBOOLEAN)
        return luaL_error(L, "switchboard.open: require_signed_policies must be a boolean");
    cfg.require_signed_policies = lua_toboolean(L, -1);
    lua_pop(L, 1);
    double clock0 = 0;
    int64_t clock_ms0 = -1; /* a clock taken whole (clock_value); else opt_number says why */
    int clock_fn = opt_is_function(L, who, "clock", LUA_TNUMBER);
    lua_getfield(L, 1, "clock");
    if (!clock_value(L, -1, &clock_ms0)) clock_ms0 = -1;
    lua_pop(L, 1);
    int manual =
        !clock_fn && (clock_ms0 >= 0 || opt_number(L, 1, who, "clock", INT64_MAX, &clock0, &r));
    if (r.field) return push_fail(L, SB_EINVAL, r.msg, r.field);

    engine_box *b = box_new(L, lm, clock_fn, &cfg);
    b->clock_manual = manual;
    b->clock_ms = clock_ms0 >= 0 ? clock_ms0 : (int64_t)clock0;
    if (manual || clock_fn) {
        cfg.clock = manual ? manual_clock : box_clock;
        cfg.clock_arg = b;
    }
    /* The userdata first, so a Lua memory error cannot leak the engine. */
    engine_ud *u = lua_newuserdata(L, sizeof *u);
    u->b = NULL;
    luaL_getmetatable(L, ENGINE_MT);
    lua_setmetatable(L, -2);
    use(b, L); /* the functions run while it opens */
    int rc = sb_open(&b->eng, &cfg, b->res);
    if (rc) {
        int n = push_engine_fail(L, rc, b->res);
        /* the strings are copied onto the stack; the box can go */
        box_free(L, b);
        return n;
    }
    u->b = b;
    return 1;
}

/* ---- sb.master_key_rotate -------------------------------------------------------- */

static const char *const rotate_keys[] = {"data_dir", "new_key_file", "key_file",
                                          "log",      "log_level",    NULL};

/* sb.master_key_rotate{data_dir = ..., new_key_file = ..., key_file = ...,
** log = ..., log_level = ...} -> {data_dir, key_file (the new), old_key_file,
** new_key_made, accounts, slots_dropped, backups} | nil, message, code, field
** (sb_master_key_rotate): the data directory's data keys wrapped again under
** the key in new_key_file, made when it is not there. An offline operation:
** no engine may have the directory open (sb.EBUSY). key_file, log and
** log_level as sb.open takes them, but for log = "buffer": no engine is left
** to read its lines from. */
static int l_master_key_rotate(lua_State *L)
{
    static const char *const who = "switchboard.master_key_rotate";
    check_type(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    luaL_checkstack(L, 16, who); /* the option strings stay on it */
    check_options(L, 1, rotate_keys, who);
    /* The box goes with a guard, as a method's use of an engine ends
    ** (begin): when this returns, or when a Lua error (out of memory while
    ** the answer is made) ends it half way. The guard first: if making it
    ** raises, nothing is held yet. */
    guard *g = lua_newuserdata(L, sizeof *g);
    g->held = 0;
    luaL_getmetatable(L, GUARD_MT);
    lua_setmetatable(L, -2);
#if LUA_VERSION_NUM >= 504
    lua_toclose(L, -1);
#endif
    sb_config cfg;
    sb_config_init(&cfg);
    /* Neither is required here: the engine says which is missing. */
    cfg.data_dir = opt_string(L, "data_dir");
    const char *new_key = opt_string(L, "new_key_file");
    cfg.key_file = opt_string(L, "key_file");
    open_refusal r = {NULL, ""};
    log_mode lm;
    opt_log(L, who, "log must be stderr or none, or a function", &cfg, &lm, &r);
    if (lm == LOG_BUFFER)
        refuse(&r, "log",
               "log must be stderr or none, or a function: no engine is left to read "
               "a buffer's lines from",
               "'buffer'");
    if (r.field) return push_fail(L, SB_EINVAL, r.msg, r.field);
    engine_box *b = box_new(L, lm, 0, &cfg);
    *g = (guard){b, b->res, 1, 0};
    b->busy = 1;
    b->close_pending = 1; /* freed as the guard ends */
    use(b, L);            /* the log function runs while it rotates */
    int rc = sb_master_key_rotate(&cfg, new_key, b->res);
    return finish(L, (call){b, b->res, g}, rc, ret_doc);
}

/* ---- module functions --------------------------------------------------------- */

static int l_version(lua_State *L)
{
    lua_pushstring(L, sb_version());
    return 1;
}

static int l_strerror(lua_State *L)
{
    lua_Integer code = check_int(L, 1);
    /* A code past int's range is no code (cast, 2^40 would read as SB_OK). */
    lua_pushstring(L, sb_strerror(code >= INT_MIN && code <= INT_MAX ? (int)code : -1));
    return 1;
}

/* sb.code_name(code) -> "SB_ENOTFOUND" (sb_code_name): the name of the code a
** failure returns as its third value, as Python's e.name and Go's
** Code.Name() give it; "SB_E?" for a number that is no code. */
static int l_code_name(lua_State *L)
{
    lua_Integer code = check_int(L, 1);
    lua_pushstring(L, sb_code_name(code >= INT_MIN && code <= INT_MAX ? (int)code : -1));
    return 1;
}

/* sb.redact(text): text with every phone number read "[number]"
** (sb_redact), for a gateway's own log lines. */
static int l_redact(lua_State *L)
{
    size_t n;
    const char *s = check_lstr(L, 1, &n);
    if (strlen(s) != n) return arg_error(L, 1, "holds a NUL byte");
    if (n > (SIZE_MAX - 1) / 3) return luaL_error(L, "sb.redact: text too long");
    char *out = lua_newuserdata(L, 3 * n + 1); /* "+12" reads as 8 bytes */
    sb_redact(s, out, 3 * n + 1);
    lua_pushstring(L, out);
    return 1;
}

/* sb.defer_stop_signals(on): sb_defer_stop_signals, for the process; a
** boolean only (a number would read 0 as on, as Lua's truth has it). */
static int l_defer_stop_signals(lua_State *L)
{
    check_type(L, 1, LUA_TBOOLEAN);
    sb_defer_stop_signals(lua_toboolean(L, 1));
    return 0;
}

static int l_json_encode(lua_State *L)
{
    if (lua_isnone(L, 1)) arg_error(L, 1, "value expected");
    lua_settop(L, 1);
    enc_err e = {.for_engine = 0};
    json_t *v = encode(L, 1, 0, "", &e);
    if (!v) return push_fail(L, SB_EINVAL, e.msg, NULL);
    /* 15 significant digits: a real read from the engine's JSON (12 at
    ** most) prints as the engine wrote it, where 17 would show its binary
    ** error (0.0089999999999999993 for 0.009). */
    char *s =
        json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_SORT_KEYS | JSON_REAL_PRECISION(15));
    json_decref(v);
    if (!s) return push_fail(L, SB_ENOMEM, "json: out of memory", NULL);
    lua_pushstring(L, s);
    free(s);
    return 1;
}

static int l_json_decode(lua_State *L)
{
    size_t len;
    const char *s = check_lstr(L, 1, &len);
    int n = push_decoded(L, s, len);
    if (n == 1) return 1;
    return push_fail(L, SB_EINVAL, lua_tostring(L, -1), NULL);
}

/* sb.array(t): mark t as a JSON array (so {} encodes as []). */
static int l_array(lua_State *L)
{
    if (lua_isnoneornil(L, 1)) {
        lua_settop(L, 0);
        lua_newtable(L);
    }
    check_type(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    lua_pushlightuserdata(L, &array_mt_key);
    lua_rawget(L, LUA_REGISTRYINDEX);
    lua_setmetatable(L, 1);
    return 1;
}

/* The budgets table of sb.policy_check and sb.policy_test, argument i:
** policy_instructions, policy_wall_ms, policy_memory, as sb.open takes them
** (0 switches one off). NULL when the argument is nil (the defaults: the
** plain function), else cfg, the defaults with the budgets given; a value
** refused for what it is sets r->field. Another option or type raises. */
static const char *const budget_keys[] = {"policy_instructions", "policy_wall_ms", "policy_memory",
                                          NULL};

static const sb_config *budgets_arg(lua_State *L, int i, sb_config *cfg, open_refusal *r)
{
    if (lua_isnoneornil(L, i)) return NULL;
    check_type(L, i, LUA_TTABLE);
    const char *who = lua_tostring(L, lua_upvalueindex(1));
    check_options(L, i, budget_keys, who);
    sb_config_init(cfg);
    opt_budgets(L, i, who, cfg, r);
    return cfg;
}

/* sb.policy_check(name, source [, budgets]) -> true | nil, message, code, field */
static int l_policy_check(lua_State *L)
{
    size_t len;
    const char *name = check_str(L, 1), *src = check_lstr(L, 2, &len);
    sb_config cfg;
    open_refusal r = {NULL, ""};
    const sb_config *budgets = budgets_arg(L, 3, &cfg, &r);
    if (r.field) return push_fail(L, SB_EINVAL, r.msg, r.field);
    sb_result *res = sb_result_new();
    if (!res) return luaL_error(L, "switchboard: out of memory");
    int rc = budgets ? sb_policy_check_cfg(budgets, name, src, len, res)
                     : sb_policy_check(name, src, len, res);
    int n;
    if (rc) {
        n = push_engine_fail(L, rc, res); /* its field too ("source"), as Python and Go give */
    } else {
        lua_pushboolean(L, 1);
        n = 1;
    }
    sb_result_free(res);
    return n;
}

/* sb.policy_test(name, source, cases [, budgets]) -> report | nil, message,
** code, report (nil, message, code, field for a budget refused) */
static int l_policy_test(lua_State *L)
{
    size_t len, clen;
    const char *name = check_str(L, 1), *src = check_lstr(L, 2, &len);
    check_doc(L, 3);
    sb_config cfg;
    open_refusal r = {NULL, ""};
    const sb_config *budgets = budgets_arg(L, 4, &cfg, &r);
    if (r.field) return push_fail(L, SB_EINVAL, r.msg, r.field);
    int borrowed;
    enc_err e;
    char *cases = arg_json(L, 3, &clen, &borrowed, &e);
    if (!cases) return push_fail(L, SB_EINVAL, e.msg, "cases");
    sb_result *res = sb_result_new();
    if (!res) {
        if (!borrowed) free(cases);
        return luaL_error(L, "switchboard: out of memory");
    }
    int rc = budgets ? sb_policy_test_cfg(budgets, name, src, len, cases, clen, res)
                     : sb_policy_test(name, src, len, cases, clen, res);
    if (!borrowed) free(cases);
    size_t jl;
    const char *j = sb_result_json(res, &jl);
    int top = lua_gettop(L);
    if (push_decoded(L, j, jl) != 1) { /* cannot happen: the engine writes JSON */
        lua_settop(L, top);
        lua_pushnil(L);
    }
    if (rc == 0) {
        sb_result_free(res);
        return 1;
    }
    const char *msg = sb_result_message(res);
    lua_pushnil(L);
    lua_pushstring(L, *msg ? msg : sb_strerror(rc));
    lua_pushinteger(L, rc);
    lua_pushvalue(L, -4); /* the report: which cases failed */
    sb_result_free(res);
    return 4;
}

/* sb.policy_keygen() -> {public_key = hex, secret_key = hex} | nil, message, code */
static int l_policy_keygen(lua_State *L)
{
    sb_result *res = sb_result_new();
    if (!res) return luaL_error(L, "switchboard: out of memory");
    int n = ret_doc(L, sb_policy_keygen(res), res);
    sb_result_free(res);
    return n;
}

/* sb.policy_sign(source, secret_key) -> the signed source | nil, message,
** code, field. A "--@signature" line is appended (an existing one replaced). */
static int l_policy_sign(lua_State *L)
{
    size_t len;
    const char *src = check_lstr(L, 1, &len), *key = check_str(L, 2);
    sb_result *res = sb_result_new();
    if (!res) return luaL_error(L, "switchboard: out of memory");
    int rc = sb_policy_sign(src, len, key, res);
    int n;
    if (rc) {
        n = push_engine_fail(L, rc, res);
    } else {
        size_t jl;
        const char *j = sb_result_json(res, &jl);
        json_t *doc = json_loadb(j, jl, 0, NULL);
        json_t *signed_src = json_object_get(doc, "source");
        if (json_is_string(signed_src)) {
            lua_pushlstring(L, json_string_value(signed_src), json_string_length(signed_src));
            n = 1;
        } else { /* cannot happen: the engine writes {"source": ...} */
            n = push_fail(L, SB_ENOMEM, "policy_sign: no signed source in the result", NULL);
        }
        json_decref(doc);
    }
    sb_result_free(res);
    return n;
}

/* sb.policy_verify(source, public_key) -> true | nil, message, code, field:
** the check an engine with require_signed_policies makes (SB_EPOLICY field
** "signature": unsigned, changed after signing, or another key's; SB_EINVAL
** field "public_key": not 64 hex characters). */
static int l_policy_verify(lua_State *L)
{
    size_t len;
    const char *src = check_lstr(L, 1, &len), *key = check_str(L, 2);
    sb_result *res = sb_result_new();
    if (!res) return luaL_error(L, "switchboard: out of memory");
    int n = ret_true(L, sb_policy_verify(src, len, key, res), res);
    sb_result_free(res);
    return n;
}

static const luaL_Reg engine_methods[] = {
    {"account_put", l_account_put},
    {"account_get", l_account_get},
    {"account_list", l_account_list},
    {"account_delete", l_account_delete},
    {"account_evict", l_account_evict},
    {"agent_put", l_agent_put},
    {"agent_get", l_agent_get},
    {"agent_list", l_agent_list},
    {"agent_list_page", l_agent_list_page},
    {"agent_pages", l_agent_pages},
    {"agent_delete", l_agent_delete},
    {"queue_put", l_queue_put},
    {"queue_get", l_queue_get},
    {"queue_list", l_queue_list},
    {"queue_list_page", l_queue_list_page},
    {"queue_pages", l_queue_pages},
    {"queue_delete", l_queue_delete},
    {"member_put", l_member_put},
    {"member_delete", l_member_delete},
    {"submit", l_submit},
    {"batch", l_batch},
    {"tick", l_tick},
    {"tick_for", l_tick_for},
    {"next_deadline", l_next_deadline},
    {"call_get", l_call_get},
    {"call_list", l_call_list},
    {"call_list_page", l_call_list_page},
    {"call_pages", l_call_pages},
    {"policy_put", l_policy_put},
    {"policy_list", l_policy_list},
    {"policy_get", l_policy_get},
    {"policy_delete", l_policy_delete},
    {"policy_versions", l_policy_versions},
    {"policy_version", l_policy_version},
    {"policy_versions_forget", l_policy_versions_forget},
    {"reload", l_reload},
    {"sync", l_sync},
    {"sync_progress", l_sync_progress},
    {"stats", l_stats},
    {"apikey_create", l_apikey_create},
    {"apikey_list", l_apikey_list},
    {"apikey_verify", l_apikey_verify},
    {"apikey_revoke", l_apikey_revoke},
    {"records_list", l_records_list},
    {"records_pages", l_records_pages},
    {"records_export", l_records_export},
    {"erase", l_erase},
    {"hold_place", l_hold_place},
    {"retention_preview", l_retention_preview},
    {"hold_release", l_hold_release},
    {"hold_list", l_hold_list},
    {"hold_get", l_hold_get},
    {"aggregates", l_aggregates},
    {"audit_list", l_audit_list},
    {"audit_pages", l_audit_pages},
    {"sweep", l_sweep},
    {"backup", l_backup},
    {"clock", l_clock},
    {"set_clock", l_set_clock},
    {"logs", l_logs},
    {"close", l_close},
    {"changed", l_changed},
    {"closed", l_closed},
    {NULL, NULL},
};

static const luaL_Reg module_funcs[] = {
    {"open", l_open},
    {"version", l_version},
    {"strerror", l_strerror},
    {"code_name", l_code_name},
    {"redact", l_redact},
    {"defer_stop_signals", l_defer_stop_signals},
    {"json_encode", l_json_encode},
    {"json_decode", l_json_decode},
    {"array", l_array},
    {"policy_check", l_policy_check},
    {"policy_test", l_policy_test},
    {"policy_keygen", l_policy_keygen},
    {"policy_sign", l_policy_sign},
    {"policy_verify", l_policy_verify},
    {"master_key_rotate", l_master_key_rotate},
    {NULL, NULL},
};

static const struct {
    const char *name;
    int code;
} codes[] = {
    {"EINVAL", SB_EINVAL},     {"ENOTFOUND", SB_ENOTFOUND}, {"EEXIST", SB_EEXIST},
    {"ESTATE", SB_ESTATE},     {"EPOLICY", SB_EPOLICY},     {"EFULL", SB_EFULL},
    {"ESTORE", SB_ESTORE},     {"ENOMEM", SB_ENOMEM},       {"EBUSY", SB_EBUSY},
    {"EAUTH", SB_EAUTH},       {"ELIMIT", SB_ELIMIT},       {"ECRYPTO", SB_ECRYPTO},
    {"EVERSION", SB_EVERSION}, {"EHOLD", SB_EHOLD},
};

/* A new table of the functions l, each a closure of its name (prefix and
** its key) and whether it is a method: what arg_error names it by. */
static void new_named(lua_State *L, const luaL_Reg *l, const char *prefix, int method)
{
    lua_newtable(L);
    for (; l->name; l++) {
        lua_pushfstring(L, "%s%s", prefix, l->name);
        lua_pushboolean(L, method);
        lua_pushcclosure(L, l->func, 2);
        lua_setfield(L, -2, l->name);
    }
}

/* The registry's metatable `name` on the stack; made now (returns 1) with
** __gc gc and, in Lua 5.4, __close close, or there already (returns 0). */
static int new_mt(lua_State *L, const char *name, lua_CFunction gc, lua_CFunction close)
{
    if (!luaL_newmetatable(L, name)) return 0;
    lua_pushcfunction(L, gc);
    lua_setfield(L, -2, "__gc");
#if LUA_VERSION_NUM >= 504
    lua_pushcfunction(L, close);
    lua_setfield(L, -2, "__close");
#else
    (void)close;
#endif
    return 1;
}

__attribute__((visibility("default"))) int luaopen_switchboard(lua_State *L);
__attribute__((visibility("default"))) int luaopen_switchboard(lua_State *L)
{
    /* The shared array metatable, marked for readers. */
    lua_pushlightuserdata(L, &array_mt_key);
    lua_newtable(L);
    lua_pushstring(L, "array");
    lua_setfield(L, -2, "__name");
    lua_rawset(L, LUA_REGISTRYINDEX);

    new_mt(L, GUARD_MT, l_guard_end, l_guard_end);
    lua_pop(L, 1);
    if (new_mt(L, ENGINE_MT, l_gc, l_close)) {
        new_named(L, engine_methods, "", 1);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, l_tostring);
        lua_setfield(L, -2, "__tostring");
    }
    lua_pop(L, 1);

    new_named(L, module_funcs, "switchboard.", 0);
    push_null(L);
    lua_setfield(L, -2, "null");
    for (size_t i = 0; i < sizeof codes / sizeof *codes; i++) {
        lua_pushinteger(L, codes[i].code);
        lua_setfield(L, -2, codes[i].name);
    }
    lua_pushstring(L, SB_VERSION_STRING);
    lua_setfield(L, -2, "_VERSION");
#if LUA_VERSION_NUM >= 502
    lua_pushstring(L, "Lua 5.4 ABI");
#else
    lua_pushstring(L, "Lua 5.1 ABI");
#endif
    lua_setfield(L, -2, "_ABI");
    return 1;
}
