/*
** test_hostile.c — more hostile and careless policies, beyond test_sandbox:
** library calls doing a lot of work in one C call (string.format, packsize,
** pack and unpack, utf8), work that only allocates between two count
** hooks, reads of a few bytes of a long string charged for the string,
** garbage left near the memory limit by one call failing the next, and
** what people read: argument errors naming the library function, nested
** coroutine errors keeping their cause, load errors in any bytes shown in
** the policy status, lines printed at load naming their account. Each
** failure is the policy's budget, stated clearly with file:line; each
** call that fits its budgets succeeds, also after an earlier call of the
** account left garbage behind; the account keeps serving and another
** account never notices.
**
** The wall-clock limit is 10 s (SB_TEST_WALL_MS overrides it, e.g. under
** valgrind), so that the instruction and memory budgets are what stops
** the scripts here. The two wall-clock cases need no timing: their work
** takes far longer than their 1 ms on any machine.
*/
#include "policy.h"
#include "tap.h"
#include "hostkit.h"

#include <stdlib.h>
#include <string.h>

/* A call through policy (see route_with), with no caller history. */
static pol_decision *route(pol_host *h, uint32_t acct, const char *policy)
{
    return route_with(h, acct, policy, NULL);
}

static const char *GOOD = "local P = {}\n"
                          "function P.route(call, agents, ctx)\n"
                          "  return { ring = agents[2].id }\n"
                          "end\n"
                          "return P\n";

static int good_routes(pol_host *h, uint32_t acct)
{
    pol_decision *d = route(h, acct, "good");
    return !d->failed && d->kind == DEC_RING && d->nring == 1 && d->ring[0].cand == 1;
}

/* --- one C call doing far more work than it was charged for ------------- */

static const struct hostile hostile[] = {
    /* packsize was not charged at all: each call on a 1 MB format walks it. */
    {"packsize-long-format",
     R("local f = string.rep('x', 1000000) for i = 1, 20 do string.packsize(f) end\n"
       "return { wait = 1 }"),
     "instruction budget exceeded"},
    /* tonumber reads the whole string, digit by digit, twice (as an integer,
    ** then as a float): 8 MB of digits is far past a million instructions. */
    {"tonumber-long-digits",
     R("local s = string.rep('1', 1000000) for i = 1, 8 do tonumber(s) end\n"
       "return { wait = 1 }"),
     "instruction budget exceeded"},
    /* pack and unpack walk their format; spaces produce nothing to allocate. */
    {"pack-spaces", R("string.pack(string.rep(' ', 1000000)) return { wait = 1 }"),
     "instruction budget exceeded"},
    {"unpack-spaces", R("string.unpack(string.rep(' ', 1000000), '') return { wait = 1 }"),
     "instruction budget exceeded"},
    /* 'z' looks for a zero through the data (unpack) or the string
    ** (pack), to its end when there is none, or up to one whose refusal
    ** allocates nothing: each call read megabytes for a few units. */
    {"unpack-z-scan",
     R("local s = string.rep('x', 3000000)\n"
       "for i = 1, 100 do pcall(string.unpack, 'z', s) end return { wait = 1 }"),
     "instruction budget exceeded"},
    {"pack-z-scan",
     R("local s = string.rep('x', 1500000) .. '\\0'\n"
       "for i = 1, 100 do pcall(string.pack, 'z', s) end return { wait = 1 }"),
     "instruction budget exceeded"},
    /* %q writes each control byte through snprintf. */
    {"format-q-controls", R("string.format('%q', string.rep('\\1', 300000)) return { wait = 1 }"),
     "instruction budget exceeded"},
    /* A float with 300 digits and 99 decimals costs tens of microseconds. */
    {"format-huge-floats",
     R("local t = {} for i = 1, 2000 do t[i] = 1e300 end\n"
       "string.format(string.rep('%.99f', 2000), table.unpack(t)) return { wait = 1 }"),
     "instruction budget exceeded"},
    {"format-many-floats",
     R("local t = {} for i = 1, 2000 do t[i] = 1e300 end local f = string.rep('%.99e', 2000)\n"
       "for i = 1, 100 do string.format(f, table.unpack(t)) end return { wait = 1 }"),
     "instruction budget exceeded"},
    {"format-float-strings",
     R("local t = {} for i = 1, 2000 do t[i] = '1e300' end\n"
       "string.format(string.rep('%.99f', 2000), table.unpack(t)) return { wait = 1 }"),
     "instruction budget exceeded"},
    {"utf8-len-long",
     R("local s = string.rep('a', 3000000) utf8.len(s) utf8.len(s) return { wait = 1 }"),
     "instruction budget exceeded"},
    /* utf8.codes' iterator, called by hand, skips every continuation byte
    ** from where it is told to start: each call walked 3 MB uncharged. */
    {"utf8-codes-by-hand",
     R("local f = utf8.codes('a') local s = string.rep('\\x80', 3000000)\n"
       "for i = 1, 8 do f(s, 0) end return { wait = 1 }"),
     "instruction budget exceeded"},
    {"utf8-codes-lax-by-hand",
     R("local f = utf8.codes('a', true) local s = string.rep('\\x80', 3000000)\n"
       "for i = 1, 8 do f(s, 0) end return { wait = 1 }"),
     "instruction budget exceeded"},
    /* Argument errors of wrapped library functions name the function (as
    ** the call did, like plain Lua). */
    {"insert-bad-position", R("table.insert({}, 5, 1)"),
     "bad argument #2 to 'insert' (position out of bounds)"},
    {"tonumber-bad-base", R("return tonumber('10', 99)"),
     "bad argument #2 to 'tonumber' (base out of range)"},
    {"pack-bad-value", R("string.pack('i4')"), "bad argument #2 to 'pack'"},
    /* An error through nested coroutine.wrap carries one position. */
    {"wrap-nested-error",
     R("local f = coroutine.wrap(function()\n"
       "  local g = coroutine.wrap(function() error('deep trouble') end)\n"
       "  g() end)\nf()"),
     ":4: deep trouble"},
};

/* --- errors raised inside the wrapped library functions ------------------- */

/* Each library function the sandbox wraps (to charge its work before the
** stock one runs) failing on line 5 of its file: the message names line 5
** and the function as the call did, as plain Lua's does ("bad argument #1
** to 'insert'", a method call's arguments counted without the self), not
** the hook's first line (2), where a message without a position lands.
** Each is checked for that prefix and a part of its text (the wording of
** a few differs between Lua 5.4 releases). */
#define AT5(call) R("local x = 1\nx = x + 1\n" call)
static const struct {
    const char *name, *src, *expect;
} wrapped_errors[] = {
    {"w-insert", AT5("table.insert(nil, 1)"),
     "bad argument #1 to 'insert' (table expected, got nil)"},
    {"w-remove", AT5("table.remove({}, 5)"), "to 'remove' (position out of bounds)"},
    {"w-concat", AT5("table.concat({{}})"), "in table for 'concat'"},
    {"w-unpack", AT5("table.unpack(nil)"), "attempt to get length of a nil value"},
    {"w-move", AT5("table.move({}, 1)"), "bad argument #3 to 'move'"},
    {"w-sort", AT5("table.sort({3, 1, 2}, 5)"), "bad argument #2 to 'sort'"},
    {"w-sort-order",
     AT5("local t = {} for i = 1, 100 do t[i] = i % 7 end table.sort(t, function() return true "
         "end)"),
     "invalid order function for sorting"},
    {"w-format", AT5("local s = string.format('%d', 1.5)"),
     "bad argument #2 to 'format' (number has no integer representation)"},
    {"w-format-method", AT5("local s = ('%d'):format(1.5)"),
     "bad argument #1 to 'format' (number has no integer representation)"},
    {"w-byte", AT5("string.byte(nil)"), "bad argument #1 to 'byte'"},
    {"w-upper", AT5("string.upper({})"), "bad argument #1 to 'upper'"},
    {"w-lower", AT5("string.lower({})"), "bad argument #1 to 'lower'"},
    {"w-reverse", AT5("string.reverse({})"), "bad argument #1 to 'reverse'"},
    {"w-bad-self", AT5("local t = {upper = string.upper} t:upper()"),
     "calling 'upper' on bad self (string expected, got table)"},
    {"w-pack", AT5("string.pack('i17', 1)"), "integral size (17) out of limits [1,16]"},
    {"w-unpack-str", AT5("string.unpack('i4', 'a')"),
     "bad argument #2 to 'unpack' (data string too short)"},
    {"w-packsize", AT5("string.packsize('s')"), "bad argument #1 to 'packsize'"},
    {"w-utf8-len", AT5("utf8.len({})"), "bad argument #1 to 'len'"},
    {"w-utf8-codepoint", AT5("utf8.codepoint('a', 5)"), "bad argument #3 to 'codepoint'"},
    {"w-utf8-offset", AT5("utf8.offset('a', 1, 5)"), "bad argument #3 to 'offset'"},
    {"w-utf8-codes", AT5("utf8.codes({})"), "bad argument #1 to 'codes'"},
    {"w-utf8-codes-iter", AT5("for p, c in utf8.codes('a\\xffb') do end"), "invalid UTF-8 code"},
    {"w-tonumber", AT5("return tonumber('10', 99)"),
     "bad argument #2 to 'tonumber' (base out of range)"},
    /* A tail call, and inside a coroutine, pcall, xpcall: the message the
    ** script sees carries the line too. */
    {"w-tail", AT5("return table.insert(nil, 1)"), "bad argument #1 to 'insert'"},
    {"w-wrap",
     R("local f = coroutine.wrap(function()\nlocal x = 1\ntable.insert(nil, 1)\n"
       "end)\nf()"),
     "bad argument #1 to 'insert'"},
    {"w-wrap-unpack",
     R("local f = coroutine.wrap(function()\nlocal x = 1\ntable.unpack(nil)\n"
       "end)\nf()"),
     "attempt to get length of a nil value"},
    {"w-resume",
     R("local co = coroutine.create(function()\nlocal x = 1\nstring.upper({})\n"
       "end)\nlocal ok, e = coroutine.resume(co)\nerror(e, 0)"),
     "bad argument #1 to 'upper'"},
    {"w-pcall",
     R("local ok, e = pcall(function()\nlocal x = 1\nstring.format('%d', 'x')\n"
       "end)\nerror(e, 0)"),
     "bad argument #2 to 'format'"},
    {"w-xpcall",
     R("local ok, e = xpcall(function()\nlocal x = 1\ntable.concat({{}})\n"
       "end, function(m) return m end)\nerror(e, 0)"),
     "in table for 'concat'"},
};

/* Called by pcall itself, a function has no name at the call and its
** error no line, as in plain Lua: the name is its library's. */
static const char *PCALLED =
    R("local ok, e = pcall(table.insert, nil, 1)\n"
      "assert(e == \"bad argument #1 to 'table.insert' (table expected, got nil)\", e)\n"
      "ok, e = pcall(string.format, '%d', 1.5)\n"
      "assert(e == \"bad argument #2 to 'string.format' (number has no integer representation)\","
      " e)\n"
      "ok, e = pcall(tonumber, '10', 99)\n"
      "assert(e == \"bad argument #2 to 'tonumber' (base out of range)\", e)\n"
      "return { wait = 1 }");

/* --- calls that fit their budgets: they must succeed --------------------- */

static const struct fits {
    const char *name, *src;
} fits[] = {
    {"format-everyday",
     R("local s = string.format('%5.2f|%d|%s|%q|%x|%g|%-4s|%%|%c', 3.14159, 42, 'a\\0b', "
       "'q\\n\"', 255, 1e300, 'ab', 65)\n"
       "assert(s == ' 3.14|42|a\\0b|\"q\\\\\\n\\\\\"\"|ff|1e+300|ab  |%|A', s)\n"
       "assert(string.format('%q', 1/0) == '1e9999')\n"
       "assert(string.format('%.3f', 2^63) == '9223372036854775808.000')\n"
       "assert(string.format('%s', setmetatable({}, {__tostring = function() return 'T' end}))\n"
       "  == 'T')\n"
       "assert(not pcall(string.format, '%d', 2^63))\n"
       "return { wait = 1 }")},
    {"pack-everyday",
     R("local s = string.pack('<i4 s1 z', 7, 'ab', 'cd')\n"
       "local a, b, c = string.unpack('<i4 s1 z', s)\n"
       "assert(a == 7 and b == 'ab' and c == 'cd' and string.packsize('<i4 i8') == 12)\n"
       "assert(utf8.len('h\\u{e9}llo') == 5)\n"
       "local t = {} for p, c in utf8.codes('h\\u{e9}\\u{1F600}!') do t[#t + 1] = p .. ':' .. c "
       "end\n"
       "assert(table.concat(t, ' ') == '1:104 2:233 4:128512 8:33', table.concat(t, ' '))\n"
       "return { wait = 1 }")},
    {"rep-everyday",
     R("assert(string.rep('ab', 3, ', ') == 'ab, ab, ab' and string.rep('x', 1) == 'x')\n"
       "assert(string.rep('abc', 5) == 'abcabcabcabcabc' and string.rep('', 5, '-') == '----')\n"
       "assert(#string.rep('xyz', 100001, '--') == 100001 * 3 + 100000 * 2)\n"
       "assert(string.rep('xyz', 100001, '--'):sub(-8) == 'xyz--xyz')\n"
       "return { wait = 1 }")},
    /* 3.6 MB kept live and read a few bytes at a time: each read is charged
    ** for what it reads, not for the whole string. */
    {"near-the-limit-reads",
     R("local s = string.rep('abcd', 900000) local n = 0\n"
       "for i = 1, 300 do n = n + string.unpack('<i4', s, 4 * i + 1) + s:byte(i)\n"
       "  + #string.format('%d:%s', i, s:sub(i, i + 8)) + #s:sub(i, i + 3):upper() end\n"
       "return { wait = n > 0 and 1 or 0 }")},
};

/* --- garbage near the limit ---------------------------------------------- */

/* 5 MB of strings, all garbage once the call returns. */
static const char *LITTER =
    R("local t = {} for i = 1, 50 do t[i] = string.rep('x', 100000) .. i end return { wait = 1 }");

static const struct after {
    const char *name, *src;
} after_litter[] = {
    {"concat-2mb", R("local t = {} for i = 1, 20 do t[i] = string.rep('y', 100000) end\n"
                     "return { wait = #table.concat(t) == 2000000 and 1 or 0 }")},
    {"rep-2mb", R("return { wait = #string.rep('y', 1000000, 'z') == 1999999 and 1 or 0 }")},
    {"upper-1.5mb", R("return { wait = #string.rep('y', 1500000):upper() == 1500000 and 1 or 0 }")},
    {"format-2mb", R("local a = string.rep('y', 1000000)\n"
                     "return { wait = #string.format('%s%s', a, a) == 2000000 and 1 or 0 }")},
    {"pack-1.5mb",
     R("return { wait = #string.pack('s4', string.rep('y', 1500000)) == 1500004 and 1 or 0 }")},
    {"gsub-2mb", R("local s, r = string.rep('y', 1000), string.rep('z', 2000)\n"
                   "return { wait = #(s:gsub('y', r)) == 2000000 and 1 or 0 }")},
};

int main(void)
{
    pol_host *h = host_new(0);
    add_src(1, "good", GOOD);
    add_src(2, "good", GOOD);
    ok(good_routes(h, 1) && good_routes(h, 2), "good policies route");
    size_t base = memory(h);

    char names[countof(hostile)][80];
    for (size_t i = 0; i < countof(hostile); i++) {
        const struct hostile *t = &hostile[i];
        snprintf(names[i], sizeof names[i], "hostile-%s", t->name);
        hostile_fails(h, route, t, names[i]);
        ok(good_routes(h, 1), "%s: the account keeps serving", t->name);
    }
    ok(good_routes(h, 2), "the other account was never affected");
    pol_decision *d = route(h, 1, "hostile-wrap-nested-error");
    ok(strcmp(d->error, "hostile-wrap-nested-error.lua:4: deep trouble") == 0,
       "a nested coroutine error keeps one position, where it was raised: %s", d->error);
    /* Deep nesting used to fill the message with positions, the cause cut off. */
    add_src(1, "wrap-deep",
            R("local function f(n) if n == 0 then error('at the bottom') end\n"
              "  return coroutine.wrap(f)(n - 1) end\nf(150)"));
    d = route(h, 1, "wrap-deep");
    ok(d->failed && strcmp(d->error, "wrap-deep.lua:3: at the bottom") == 0, "deep nesting: %s",
       d->error);

    for (size_t i = 0; i < countof(wrapped_errors); i++) {
        const char *name = wrapped_errors[i].name;
        add_src(1, name, wrapped_errors[i].src);
        d = route(h, 1, name);
        char at[80];
        snprintf(at, sizeof at, "%s.lua:5: ", name);
        ok(d->failed && strncmp(d->error, at, strlen(at)) == 0 &&
               strstr(d->error, wrapped_errors[i].expect),
           "%s: the message names the line of the call: %s", name, d->error);
    }
    /* An error of the file's top level: its line, not the first. */
    add_src(1, "w-load", "local x = 1\nx = x + 1\ntable.insert(nil, 1)\nreturn {}\n");
    d = route(h, 1, "w-load");
    ok(d->failed && strcmp(d->error, "w-load.lua:3: bad argument #1 to 'insert' (table expected, "
                                     "got nil)") == 0,
       "at load, the line of the call: %s", d->error);
    add_src(1, "w-pcalled", PCALLED);
    d = route(h, 1, "w-pcalled");
    ok(!d->failed && d->wait == 1, "called by pcall, a function is named by its library (%s)",
       d->error);

    for (size_t i = 0; i < countof(fits); i++) {
        add_src(1, fits[i].name, fits[i].src);
        d = route(h, 1, fits[i].name);
        ok(!d->failed && d->kind == DEC_WAIT && d->wait == 1, "%s: routes (%s)", fits[i].name,
           d->error);
    }

    /* Garbage one call leaves near the memory limit is the state's, not
    ** the next call's: library functions that build strings in a buffer
    ** (which Lua grows without an emergency collection) still get their
    ** room, on the same policy's next call or on another policy's. */
    add_src(1, "litter", LITTER);
    for (size_t i = 0; i < countof(after_litter); i++) {
        const struct after *t = &after_litter[i];
        add_src(1, t->name, t->src);
        d = route(h, 1, "litter");
        ok(!d->failed && d->wait == 1, "litter: routes (%s)", d->error);
        d = route(h, 1, t->name);
        ok(!d->failed && d->kind == DEC_WAIT && d->wait == 1, "%s after litter: routes (%s)",
           t->name, d->error);
        d = route(h, 1, t->name);
        ok(!d->failed && d->kind == DEC_WAIT && d->wait == 1, "%s again: routes (%s)", t->name,
           d->error);
    }
    /* The same within one call: 6 MB kept, 6 MB of temporaries. */
    add_src(1, "churn",
            R("local t = {} for i = 1, 3000 do t[i] = string.rep('x', 2000) .. i end\n"
              "return { wait = 1 }"));
    int churn_ok = 0;
    for (int i = 0; i < 6; i++) {
        d = route(h, 1, "churn");
        churn_ok += !d->failed && d->wait == 1;
        if (d->failed) diag("churn call %d: %s", i + 1, d->error);
    }
    is_int(churn_ok, 6, "a call keeping 6 MB of its 8 MB succeeds every time");
    ok(good_routes(h, 1) && good_routes(h, 2), "both accounts still route");
    ok(memory(h) < base + (8u << 20), "memory stays within the account's limit (%zu)", memory(h));

    /* A file failing its load with bytes that are not UTF-8 (or a message
    ** cut inside a character) still shows why in the policy status. */
    add_src(1, "load-bytes", "error('bad \\255\\254 bytes')");
    add_src(1, "load-cut", "error(string.rep('\\u{e9}', 400))");
    static const char *const loadfails[] = {"load-bytes", "load-cut"};
    for (int i = 0; i < 2; i++) {
        d = route(h, 1, loadfails[i]);
        ok(d->failed && strstr(d->error, ".lua:1: "), "%s: fails its load (%.60s)", loadfails[i],
           d->error);
    }
    json_t *st = pol_host_status(h, 1);
    size_t found = 0, idx;
    json_t *row;
    json_array_foreach(st, idx, row)
    {
        const char *name = json_string_value(json_object_get(row, "name"));
        const char *err = json_string_value(json_object_get(row, "error"));
        for (int i = 0; i < 2; i++)
            if (name && strcmp(name, loadfails[i]) == 0) {
                found++;
                ok(err && strstr(err, ".lua:1: ") != NULL, "%s: the status says why (%.60s)", name,
                   err ? err : "(no error)");
            }
    }
    is_int((int)found, 2, "both files are in the status");
    json_decref(st);

    /* A line printed while the file loads names its account like any other. */
    add_src(2, "loud", "print('loading') return { route = function() return { wait = 1 } end }");
    int logs = nlog;
    d = route(h, 2, "loud");
    ok(!d->failed && nlog > logs && strstr(lastlog, "account=globex policy=loud: loading"),
       "a line printed at load names the account: %s", lastlog);

    /* A zero byte, bytes that are not UTF-8 and control characters: the
    ** whole line is logged, a zero byte and a control character as a space
    ** and a byte that begins or continues no character as '?' (the line
    ** was cut at the zero byte, and the other bytes went out raw). A
    ** character the length limit cuts in two is dropped, not shown as '?'. */
    static const struct {
        const char *src, *want;
    } lines[] = {
        {R("ctx.log('bin\\0\\255\\27[31mred', 'x\\0y') return {}"),
         "policy=bytes1: bin ? [31mred x y"},
        {R("print('a\\0', '\\xe9t\\xc3\\xa9', '\\xed\\xa0\\x80', '\\xf0\\x9f\\x98') return {}"),
         "policy=bytes2: a  ?t\xc3\xa9 ??? ???"},
        {R("ctx.log(string.rep('a', 479) .. '\\xc3\\xa9') return {}"), NULL},
    };
    for (size_t i = 0; i < countof(lines); i++) {
        char nm[16];
        snprintf(nm, sizeof nm, "bytes%zu", i + 1);
        add_src(2, nm, lines[i].src);
        logs = nlog;
        d = route(h, 2, nm);
        if (lines[i].want) {
            ok(!d->failed && nlog == logs + 1 && strstr(lastlog, lines[i].want),
               "log line %zu: every byte kept, cleaned: %s", i + 1, lastlog);
        } else {
            size_t n = strlen(lastlog);
            ok(!d->failed && nlog == logs + 1 && n > 480 && lastlog[n - 1] == 'a',
               "log line %zu: a character cut by the limit is dropped: ...%s", i + 1,
               lastlog + (n > 8 ? n - 8 : 0));
        }
    }
    pol_host_free(h);

    /* Work that only allocates, in fewer VM instructions than one count
    ** hook: the wall clock is read as the allocations add up. Copying
    ** 160 MB takes far longer than 1 ms anywhere. */
    pol_limits wl = {.instructions = 1000000000000ull, .wall_ms = 1, .memory = 64u << 20};
    pol_host *hw = pol_host_new(&wl, get_src, NULL, logline, NULL);
    add_src(3, "copies",
            R("local s = string.rep('x', 4000000) for i = 1, 40 do local t = s:sub(2) end\n"
              "return { wait = 1 }"));
    add_src(3, "reps", R("for i = 1, 40 do local t = string.rep('x', 2000000) end return {}"));
    static const char *const wl_names[] = {"copies", "reps"};
    for (int i = 0; i < 2; i++) {
        route_bare(hw, 3, wl_names[i]);
        ok(dec.failed && strstr(dec.error, "wall-clock limit exceeded (1 ms)"), "%s: %s",
           wl_names[i], dec.error);
    }
    pol_host_free(hw);
    return done_testing();
}
