# bindings/lua — the Lua module, built twice from one source:
#   $(O)/bindings/lua/5.1/switchboard.so   Lua 5.1 ABI (lua5.1, LuaJIT 2.1: Kamailio, OpenResty)
#   $(O)/bindings/lua/5.4/switchboard.so   Lua 5.4
#
# Two Lua runtimes share the process: the host's, which loads the module, and
# the engine's own Lua 5.4, which runs the policies. They must never bind to
# each other's lua_* symbols (LuaJIT exports unversioned lua_*, which the
# dynamic linker would accept for the engine's lua_*@LUA_5.4 references, and a
# module linked against liblua5.4 would bind its own 5.1 calls to 5.4 code).
# So the module is linked in two steps:
#  1. engine.o: the engine (libswitchboard-internal.a, whole) and Lua 5.4 (liblua5.4.a)
#     combined into one relocatable object, the engine's calls into Lua bound
#     inside it; then every global but the public sb_* API made local
#     (objcopy --keep-global-symbols). No lua_* is global in it any more.
#     (Debian's liblua5.4.a is PIE code that reads stdin/stdout/stderr
#     PC-relative, which a shared object cannot resolve: our copy of the
#     archive reads them from stdio_shadow.c instead.)
#  2. the module: the binding's object + engine.o. The binding's lua_* calls
#     find no definition and stay undefined, for the host to provide; the
#     version script exports luaopen_switchboard alone. It is never unloaded
#     (-z nodelete): Lua closes a state with dlclose of its C modules, and the
#     engine keeps process-wide state (the time-zone cache, the fork watch)
#     that would otherwise be unmapped while reachable, or under a thread.
# bindings/lua/lua51.t and lua54.t check the result (nm, LD_DEBUG=bindings).
#
# `make` builds both (the Makefile's `all` depends on `lua`); `make install`
# puts them where Lua looks under PREFIX, LUA_CMODDIR/5.1 and LUA_CMODDIR/5.4:
# $(PREFIX)/lib/lua by default, which Debian's lua5.1, lua5.4 and luajit all
# search for PREFIX=/usr/local; with PREFIX=/usr, /usr/lib/<multiarch>/lua,
# since Debian's luajit does not search /usr/lib/lua/5.1.

LUA_DIR := bindings/lua
LUA_OUT := $(O)/bindings/lua
LUA54_A := $(shell pkg-config --variable=libdir lua5.4 2>/dev/null)/liblua5.4.a
LUA_MOD_CFLAGS = -std=c11 -D_GNU_SOURCE $(WARN) $(CFLAGS) -fPIC -fvisibility=hidden \
  -Iengine/include $(shell pkg-config --cflags jansson 2>/dev/null) \
  $(if $(SANITIZE),-fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=all) \
  $(if $(filter 1,$(WERROR)),-Werror)
LUA_MOD_LIBS = $(shell pkg-config --libs lmdb libsodium jansson 2>/dev/null) -lpthread -lm

.PHONY: lua
lua: $(LUA_OUT)/5.1/switchboard.so $(LUA_OUT)/5.4/switchboard.so
tests: lua

LUA_MULTIARCH = $(or $(shell dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null),$(shell $(CC) -print-multiarch 2>/dev/null))
LUA_CMODDIR ?= $(if $(filter /usr /usr/,$(PREFIX)),$(PREFIX)/lib/$(LUA_MULTIARCH)/lua,$(PREFIX)/lib/lua)

.PHONY: install-lua uninstall-lua
install: install-lua
uninstall: uninstall-lua

install-lua: lua
	install -d $(DESTDIR)$(LUA_CMODDIR)/5.1 $(DESTDIR)$(LUA_CMODDIR)/5.4
	install -m 644 $(LUA_OUT)/5.1/switchboard.so $(DESTDIR)$(LUA_CMODDIR)/5.1/
	install -m 644 $(LUA_OUT)/5.4/switchboard.so $(DESTDIR)$(LUA_CMODDIR)/5.4/

uninstall-lua:
	rm -f $(DESTDIR)$(LUA_CMODDIR)/5.1/switchboard.so $(DESTDIR)$(LUA_CMODDIR)/5.4/switchboard.so

$(LUA_OUT)/liblua5.4-shadowed.a: $(LUA54_A)
	@mkdir -p $(dir $@)
	objcopy --redefine-sym stdin=sblua_stdin --redefine-sym stdout=sblua_stdout \
	  --redefine-sym stderr=sblua_stderr $< $@

$(LUA_OUT)/stdio_shadow.o: $(LUA_DIR)/stdio_shadow.c
	@mkdir -p $(dir $@)
	$(CC) $(LUA_MOD_CFLAGS) -c $< -o $@

$(LUA_OUT)/engine.o: $(STATIC) $(LUA_OUT)/stdio_shadow.o $(LUA_OUT)/liblua5.4-shadowed.a $(LUA_DIR)/build.mk
	@mkdir -p $(dir $@)
	$(CC) -r -nostdlib -o $@.all.o -Wl,--whole-archive $(STATIC) $(LUA_OUT)/stdio_shadow.o \
	  -Wl,--no-whole-archive $(LUA_OUT)/liblua5.4-shadowed.a
	nm -g --defined-only $(STATIC) | awk 'NF == 3 && $$3 ~ /^sb_/ { print $$3 }' | sort -u > $@.keep
	objcopy --keep-global-symbols=$@.keep $@.all.o $@
	@rm -f $@.all.o

$(LUA_OUT)/%/switchboard_lua.o: $(LUA_DIR)/switchboard_lua.c engine/include/switchboard.h
	@mkdir -p $(dir $@)
	$(CC) $(LUA_MOD_CFLAGS) $(shell pkg-config --cflags lua$* 2>/dev/null) -c $< -o $@

$(LUA_OUT)/%/switchboard.so: $(LUA_OUT)/%/switchboard_lua.o $(LUA_OUT)/engine.o $(LUA_DIR)/exports.map \
  $(LUA_DIR)/build.mk
	$(CC) -shared $(LDSAN) -o $@ $< $(LUA_OUT)/engine.o -Wl,--version-script=$(LUA_DIR)/exports.map \
	  -Wl,-z,now -Wl,-z,nodelete $(LUA_MOD_LIBS)
.SECONDARY: $(LUA_OUT)/5.1/switchboard_lua.o $(LUA_OUT)/5.4/switchboard_lua.o
# After the packages are in (the Makefile's `deps`).
$(LUA_OUT)/5.1/switchboard_lua.o $(LUA_OUT)/5.4/switchboard_lua.o $(LUA_OUT)/stdio_shadow.o \
    $(LUA_OUT)/liblua5.4-shadowed.a: | deps

# Test fixture, the negative control of lua51.t: the binding linked the obvious
# way, against an engine library that links liblua5.4.so (as the shared
# library did before it carried its own Lua). Never install this.
$(LUA_OUT)/naive/libswitchboard.so: $(LIB_OBJ)
	@mkdir -p $(dir $@)
	$(CC) -shared -Wl,-soname,libswitchboard.so -o $@ $^ $(LIBS)

$(LUA_OUT)/naive/switchboard.so: $(LUA_OUT)/5.1/switchboard_lua.o $(LUA_OUT)/naive/libswitchboard.so
	$(CC) -shared -o $@ $< -L$(LUA_OUT)/naive -lswitchboard -Wl,-rpath,$(abspath $(LUA_OUT)/naive) \
	  $(LUA_MOD_LIBS)
ifeq ($(SANITIZE),)
tests: $(LUA_OUT)/naive/switchboard.so
endif

# Test fixture for lua54.t: a Lua 5.4 host whose allocator fails on demand
# (t/oomhost.c), to end the module's methods with memory errors.
$(LUA_OUT)/oomhost: $(LUA_DIR)/t/oomhost.c | deps
	@mkdir -p $(dir $@)
	$(CC) $(LUA_MOD_CFLAGS) $(shell pkg-config --cflags lua5.4) -o $@ $< \
	  $(shell pkg-config --libs lua5.4)
tests: $(LUA_OUT)/oomhost
