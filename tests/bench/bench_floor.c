/*
** bench_floor.c — what a call cycle costs before the engine does anything
** (make bench, beside the call-cycle benchmark).
**
** The engine-core target is 100,000 cycles/s: 10 us for offer, answered and
** hangup, each its own LMDB write transaction, with a Lua decision. This
** measures, on this machine, the parts of that no engine built on those two
** can avoid, with no engine code at all:
**
**  1. three write transactions that each read one record and write it
**     back (the least an event can do: it changes state), in an LMDB
**     environment opened as the engine opens it for sync=none (MDB_WRITEMAP,
**     no sync) holding 20,000 records: always the same record (its pages
**     stay in cache; the least any such engine pays), then a record drawn
**     at random (a page of its own each time, as different agents' and
**     calls' records are);
**  2. policies/longest-idle.lua's route over 50 ready-made plain tables,
**     without the sandbox's budget hook (the engine builds no table per
**     agent; this is the loop alone).
**
** The engine's own cycle writes about ten records and deletes three in
** those three transactions (offer: the call, the agent, the ring timer;
** answered; hangup: the call record, its indexes, the aggregates): set
** beside the call-cycle benchmark's figure, this shows how much of a cycle
** is LMDB's per-transaction and per-page cost.
**
** Each figure is the median of 5 rounds, in CPU time per cycle.
**
** usage: bench_floor [--cycles N] [--policy-dir DIR]
*/
#include <lauxlib.h>
#include <lmdb.h>
#include <lua.h>
#include <lualib.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "benchkit.h"

#define KEYS 20000
#define ROUNDS 5

static void die(const char *what, int rc)
{
    fprintf(stderr, "bench_floor: %s: %s\n", what, rc ? mdb_strerror(rc) : "failed");
    exit(1);
}

static MDB_env *env;
static MDB_dbi dbi;

static void key_of(uint32_t i, unsigned char k[16])
{
    memset(k, 0, 16);
    k[0] = (unsigned char)(1 + i % 8); /* a few tables' prefixes, as the engine's keys have */
    k[12] = (unsigned char)(i >> 24), k[13] = (unsigned char)(i >> 16);
    k[14] = (unsigned char)(i >> 8), k[15] = (unsigned char)i;
}

static void open_env(const char *dir)
{
    int rc;
    MDB_txn *t;
    unsigned char k[16], v[120];
    if ((rc = mdb_env_create(&env)) || (rc = mdb_env_set_mapsize(env, (size_t)64 << 20)) ||
        (rc = mdb_env_open(env, dir, MDB_WRITEMAP | MDB_NOSYNC | MDB_NOMETASYNC, 0600)))
        die("open", rc);
    if ((rc = mdb_txn_begin(env, NULL, 0, &t)) || (rc = mdb_dbi_open(t, NULL, 0, &dbi)))
        die("begin", rc);
    memset(v, 7, sizeof v);
    for (uint32_t i = 0; i < KEYS; i++) {
        key_of(i, k);
        MDB_val K = {16, k}, V = {sizeof v, v};
        if ((rc = mdb_put(t, dbi, &K, &V, 0))) die("fill", rc);
    }
    if ((rc = mdb_txn_commit(t))) die("commit", rc);
}

/* One write transaction: record `which` read, then written back. */
static void txn(uint32_t which)
{
    MDB_txn *t;
    unsigned char k[16], v[120];
    int rc;
    if ((rc = mdb_txn_begin(env, NULL, 0, &t))) die("begin", rc);
    key_of(which % KEYS, k);
    MDB_val K = {16, k}, V;
    if ((rc = mdb_get(t, dbi, &K, &V))) die("get", rc);
    memcpy(v, V.mv_data, sizeof v);
    v[0]++;
    V.mv_data = v;
    V.mv_size = sizeof v;
    if ((rc = mdb_put(t, dbi, &K, &V, 0))) die("put", rc);
    if ((rc = mdb_txn_commit(t))) die("commit", rc);
}

static int same_key;

static double least_cycle(int n)
{
    double t0 = cpu_s();
    for (int i = 0; i < n; i++)
        for (int e = 0; e < 3; e++)
            txn(same_key ? 0 : (uint32_t)(i * 3 + e) * 2654435761u);
    return (cpu_s() - t0) / n * 1e6;
}

static double lua_cycle(const char *policy_dir, int n)
{
    char path[512];
    snprintf(path, sizeof path, "%s/longest-idle.lua", policy_dir);
    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    if (luaL_dofile(L, path) || !lua_istable(L, -1)) {
        fprintf(stderr, "bench_floor: %s: %s\n", path, lua_tostring(L, -1));
        exit(1);
    }
    lua_getfield(L, -1, "route");
    int route = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_createtable(L, 0, 1); /* call */
    lua_pushinteger(L, 0);
    lua_setfield(L, -2, "attempts");
    int call = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_createtable(L, 50, 0); /* agents */
    for (int i = 0; i < 50; i++) {
        lua_createtable(L, 0, 2);
        lua_pushinteger(L, (i * 37) % 50);
        lua_setfield(L, -2, "idle_for");
        lua_pushfstring(L, "a%d", i);
        lua_setfield(L, -2, "id");
        lua_rawseti(L, -2, i + 1);
    }
    int agents = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_newtable(L);
    int ctx = luaL_ref(L, LUA_REGISTRYINDEX);
    double t0 = cpu_s();
    for (int i = 0; i < n; i++) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, route);
        lua_rawgeti(L, LUA_REGISTRYINDEX, call);
        lua_rawgeti(L, LUA_REGISTRYINDEX, agents);
        lua_rawgeti(L, LUA_REGISTRYINDEX, ctx);
        if (lua_pcall(L, 3, 1, 0)) {
            fprintf(stderr, "bench_floor: route: %s\n", lua_tostring(L, -1));
            exit(1);
        }
        lua_pop(L, 1);
    }
    double us = (cpu_s() - t0) / n * 1e6;
    lua_close(L);
    return us;
}

static double median(double (*f)(int), int n)
{
    double r[ROUNDS];
    for (int i = 0; i < ROUNDS; i++)
        r[i] = f(n);
    qsort(r, ROUNDS, sizeof *r, cmp_d);
    return r[ROUNDS / 2];
}

static const char *pdir = "policies";
static double lua_n(int n)
{
    return lua_cycle(pdir, n);
}

int main(int argc, char **argv)
{
    int cycles = 50000;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--cycles") && i + 1 < argc)
            cycles = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--policy-dir") && i + 1 < argc)
            pdir = argv[++i];
    }
    if (cycles < 100) cycles = 100;
    char dir[128], cmd[160];
    snprintf(dir, sizeof dir, "/tmp/sb-bench-%d-floor", (int)getpid());
    snprintf(cmd, sizeof cmd, "rm -rf %s && mkdir -p %s", dir, dir);
    if (system(cmd)) return 1;
    open_env(dir);
    least_cycle(cycles / 10); /* warm up */
    same_key = 1;
    double same = median(least_cycle, cycles);
    same_key = 0;
    double spread = median(least_cycle, cycles);
    double lua = median(lua_n, cycles);
    mdb_env_close(env);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd)) return 1;
    printf("floor: 3 transactions, 1 get + 1 put of the same record   %6.2f us/cycle\n", same);
    printf("floor: 3 transactions, 1 get + 1 put of a random record   %6.2f us/cycle\n", spread);
    printf("floor: longest-idle.lua over 50 plain tables, no hook     %6.2f us/cycle\n", lua);
    printf("floor: at most %.0f cycles/s with one record per event, %.0f with one page of "
           "its own per event (target 100,000)\n",
           1e6 / (same + lua), 1e6 / (spread + lua));
    return 0;
}
