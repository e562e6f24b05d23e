/* oomhost — a Lua 5.4 interpreter whose allocator fails on demand, for
** bindings/lua/t/raise.lua (run by lua54.t): the script calls oom_after(n)
** to have every allocation after the next n fail until oom_after(0), so a
** method of the module can be ended by a memory error at each of its
** allocations in turn. Usage: oomhost SCRIPT; LUA_PATH and LUA_CPATH as for
** lua5.4. Exit status: 0 when the script ran to its end. */
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>

static long left = -1; /* allocations that may still grow memory; -1: no limit */

static void *alloc(void *ud, void *p, size_t osize, size_t nsize)
{
    (void)ud;
    if (nsize == 0) {
        free(p);
        return NULL;
    }
    /* Lua requires shrinking to succeed; osize is a type tag when p is NULL. */
    if (left >= 0 && (!p || nsize > osize)) {
        if (left == 0) return NULL;
        left--;
    }
    return realloc(p, nsize);
}

static int l_oom_after(lua_State *L)
{
    lua_Integer n = luaL_checkinteger(L, 1);
    left = n > 0 ? (long)n : -1;
    return 0;
}

static int report(lua_State *L)
{
    const char *m = lua_tostring(L, -1);
    fprintf(stderr, "oomhost: %s\n", m ? m : "(error object is not a string)");
    return 1;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: oomhost SCRIPT\n");
        return 2;
    }
    lua_State *L = lua_newstate(alloc, NULL);
    if (!L) return 1;
    luaL_openlibs(L);
    lua_register(L, "oom_after", l_oom_after);
    int rc = luaL_loadfile(L, argv[1]) || lua_pcall(L, 0, 0, 0);
    if (rc) report(L);
    lua_close(L);
    return rc ? 1 : 0;
}
