# Switchboard — build, test, run.
#   make          the library (build/libswitchboard.a, .so), the command and the
#                 Lua modules (build/bindings/lua/5.1 and 5.4/switchboard.so)
#   make install  install them under PREFIX (/usr/local; DESTDIR for staging)
#   make run      build everything and start the daemon with the demo data
#   make test     the whole suite (one runner: prove)
#   make bench    the benchmarks
#   make test SANITIZE=address,undefined   the suite under sanitizers

PREFIX ?= /usr/local
DESTDIR ?=
SANITIZE ?=
O ?= $(if $(SANITIZE),build-san,build)

CC ?= cc
PKGS := lua5.4 lmdb libevent libsodium jansson
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS = $(shell pkg-config --libs $(PKGS) 2>/dev/null)

WARN := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wformat=2 \
        -Wno-unused-parameter -Wvla -Wno-format-truncation
OPT ?= -O2
CFLAGS ?= $(OPT) -g
ALL_CFLAGS = -std=c11 -D_GNU_SOURCE $(WARN) $(CFLAGS) $(PKG_CFLAGS) -Iengine/include
ifneq ($(SANITIZE),)
ALL_CFLAGS += -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=all
LDSAN = -fsanitize=$(SANITIZE)
endif
ifeq ($(WERROR),1)
ALL_CFLAGS += -Werror
endif
LIBS = $(PKG_LIBS) -lpthread -lm

SOVER := 1
VERSION := 0.2.0

LIB_SRC := $(wildcard engine/src/*.c)
LIB_OBJ := $(LIB_SRC:%.c=$(O)/%.o)
CLI_SRC := $(wildcard engine/cli/*.c engine/daemon/*.c)
CLI_OBJ := $(CLI_SRC:%.c=$(O)/%.o)
TEST_SRC := $(wildcard tests/unit/test_*.c)
TEST_BIN := $(TEST_SRC:tests/unit/%.c=$(O)/tests/%)
BENCH_SRC := $(wildcard tests/bench/bench_*.c)
BENCH_BIN := $(BENCH_SRC:tests/bench/%.c=$(O)/tests/%)

# Two archives of the engine. $(STATIC), what the tests, the command, the
# daemon and the Lua module link: the objects as compiled, their internal
# names (buf_free, mono_ms, utf8_valid...) global between them. $(PUBLIC),
# libswitchboard.a, what a gateway links (README.md, the c-gateway example,
# the Go binding, `make install`): the same objects combined into one, every
# global but the public sb_* API made local, as the shared library exports
# sb_* alone, so that a gateway keeps names of its own that the engine's
# internals also use.
STATIC := $(O)/libswitchboard-internal.a
PUBLIC := $(O)/libswitchboard.a
SHARED := $(O)/libswitchboard.so.$(VERSION)
CLI := $(O)/switchboard

.PHONY: all deps lib cli tests run demo test bench clean install uninstall check-format

# The Lua modules (bindings/lua/build.mk) are part of the default build: they
# cost one compile and link each beside the shared library, which is linked
# from the same engine object, and their headers come from the Debian packages
# deps.sh installs for the build (liblua5.4-dev, liblua5.1-0-dev).
all: deps lib cli lua

deps:
	@engine/tools/deps.sh build

lib: $(STATIC) $(PUBLIC) $(SHARED)
cli: $(CLI)
tests: $(TEST_BIN) $(BENCH_BIN)

# Nothing compiles before deps has run (a -j build would otherwise race the
# package install: the pkg-config flags are read when a recipe runs).
$(LIB_OBJ) $(CLI_OBJ) $(TEST_BIN) $(BENCH_BIN): | deps

$(O)/engine/src/%.o: engine/src/%.c engine/include/switchboard.h $(wildcard engine/src/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -fPIC -fvisibility=hidden -c $< -o $@

$(O)/engine/%.o: engine/%.c engine/include/switchboard.h $(wildcard engine/daemon/*.h engine/cli/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(STATIC): $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(PUBLIC): $(STATIC)
	$(CC) -r -nostdlib -o $@.o -Wl,--whole-archive $(STATIC) -Wl,--no-whole-archive
	nm -g --defined-only $(STATIC) | awk 'NF == 3 && $$3 ~ /^sb_/ { print $$3 }' | sort -u > $@.keep
	objcopy --keep-global-symbols=$@.keep $@.o
	@rm -f $@ $@.keep
	ar rcs $@ $@.o
	@rm -f $@.o

$(CLI): $(CLI_OBJ) $(STATIC)
	$(CC) $(LDSAN) -o $@ $(CLI_OBJ) $(STATIC) $(LIBS)

$(O)/tests/%: tests/unit/%.c tests/unit/tap.h tests/unit/testkit.h tests/unit/callkit.h tests/unit/hostkit.h tests/unit/reckit.h tests/unit/freewatch.h $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Iengine/src -Itests/unit $< -o $@ $(STATIC) $(LIBS)

$(O)/tests/bench_%: tests/bench/bench_%.c tests/bench/benchkit.h $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Iengine/src -Itests/unit $< -o $@ $(STATIC) $(LIBS)

# The demo: a day of calls through the example policies, then the daemon.
# make run ARGS='--listen 127.0.0.1:9000': flags for serve (switchboard(1)).
run: all
	@engine/tools/run-demo.sh $(CLI) $(ARGS)

# One runner for everything: prove runs each test (C programs and scripts
# speaking TAP) and prints the closing summary.
test:
	@engine/tools/deps.sh test
	@$(MAKE) --no-print-directory all tests
	@SB_BUILD=$(O) prove -f --timer $(TEST_BIN) $(sort $(wildcard tests/*.t tests/*/*.t bindings/*/*.t))

bench: all tests
	@SB_BUILD=$(O) engine/tools/bench.sh

check-format:
	@clang-format --dry-run --Werror engine/include/*.h engine/src/*.[ch] engine/cli/*.[ch] \
	  $(wildcard engine/daemon/*.[ch]) tests/unit/*.[ch] $(wildcard bindings/*/*.[ch]) \
	  $(wildcard examples/c-gateway/*.c)

install: all
	install -d $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/bin
	install -m 644 engine/include/switchboard.h $(DESTDIR)$(PREFIX)/include/
	install -m 644 $(PUBLIC) $(DESTDIR)$(PREFIX)/lib/
	install -m 755 $(SHARED) $(DESTDIR)$(PREFIX)/lib/
	ln -sf libswitchboard.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/libswitchboard.so.$(SOVER)
	ln -sf libswitchboard.so.$(SOVER) $(DESTDIR)$(PREFIX)/lib/libswitchboard.so
	install -m 755 $(CLI) $(DESTDIR)$(PREFIX)/bin/

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/include/switchboard.h $(DESTDIR)$(PREFIX)/lib/libswitchboard.* \
	  $(DESTDIR)$(PREFIX)/bin/switchboard

clean:
	rm -rf build build-san

# Parts of the build that live with what they build (bindings, fuzzing...):
# each folder's build.mk adds its own targets and prerequisites of `tests`.
include $(wildcard bindings/*/build.mk tests/*/build.mk)
include engine/tools/install.mk examples/c-gateway/build.mk

# The shared library carries its own Lua 5.4, bound inside it and hidden
# (the engine object bindings/lua/build.mk makes for the Lua module): it
# exports sb_* alone, so a host with a Lua of its own (LuaJIT in Kamailio or
# OpenResty, say) can load it and neither Lua binds to the other's symbols.
# The static library leaves Lua to the final link (-llua5.4).
$(SHARED): $(LUA_OUT)/engine.o
	$(CC) -shared -Wl,-soname,libswitchboard.so.$(SOVER) -Wl,--no-undefined $(LDSAN) -o $@ $< \
	  $(LUA_MOD_LIBS)
	ln -sf libswitchboard.so.$(VERSION) $(O)/libswitchboard.so.$(SOVER)
	ln -sf libswitchboard.so.$(SOVER) $(O)/libswitchboard.so
