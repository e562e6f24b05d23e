# tests/fuzz/build.mk — libFuzzer targets (clang, -fsanitize=fuzzer,address,undefined).
#
# Each target compiles the engine sources it needs directly with the fuzzer's
# instrumentation (the library's own objects are built with $(CC) and no
# coverage). `make test` builds them (prerequisites of `tests`) and
# tests/fuzz/fuzz.t runs each for FUZZ_SECONDS (20 s); `make fuzz` runs each
# for FUZZ_TIME seconds (600) and keeps the grown corpus in $(O)/fuzz/corpus.

FUZZ_CC ?= clang
FUZZ_TIME ?= 600
FUZZ_DIR := $(O)/fuzz
FUZZ_NAMES := json http records store decision
FUZZ_BIN := $(FUZZ_NAMES:%=$(FUZZ_DIR)/fuzz_%)
FUZZ_WARN = $(filter-out -Wno-format-truncation,$(WARN))
FUZZ_SAN := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
FUZZ_CFLAGS = -std=c11 -D_GNU_SOURCE -g -O1 $(FUZZ_WARN) $(if $(filter 1,$(WERROR)),-Werror) \
              $(FUZZ_SAN) $(PKG_CFLAGS) -Iengine/include -Iengine/src -Iengine/daemon -Itests/unit
# Engine and daemon sources: coverage-instrumented, no -Werror (not ours).
FUZZ_OBJ_CFLAGS = -std=c11 -D_GNU_SOURCE -g -O1 $(FUZZ_WARN) -fsanitize=fuzzer-no-link $(FUZZ_SAN) \
                  $(PKG_CFLAGS) -Iengine/include -Iengine/src -Iengine/daemon
FUZZ_LIB_OBJ := $(LIB_SRC:%.c=$(FUZZ_DIR)/obj/%.o)
# http.c is #included by fuzz_http.c (its parser is static).
FUZZ_DAEMON_OBJ := $(patsubst %.c,$(FUZZ_DIR)/obj/%.o,$(filter-out %/http.c,$(wildcard engine/daemon/*.c)))

tests: $(FUZZ_BIN)

$(FUZZ_DIR)/obj/%.o: %.c engine/include/switchboard.h $(wildcard engine/src/*.h engine/daemon/*.h)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_OBJ_CFLAGS) -c $< -o $@

$(FUZZ_DIR)/fuzz_http: tests/fuzz/fuzz_http.c tests/fuzz/fuzz.h tests/unit/testkit.h engine/daemon/http.c \
                       $(FUZZ_LIB_OBJ) $(FUZZ_DAEMON_OBJ)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer $< -o $@ $(FUZZ_LIB_OBJ) $(FUZZ_DAEMON_OBJ) $(LIBS)

$(FUZZ_DIR)/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz.h tests/unit/testkit.h $(FUZZ_LIB_OBJ)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer $< -o $@ $(FUZZ_LIB_OBJ) $(LIBS)

.PHONY: fuzz
# Longer runs: FUZZ_TIME seconds per target, corpus kept in $(O)/fuzz/corpus.
fuzz: $(FUZZ_BIN)
	@SB_BUILD=$(O) FUZZ_SECONDS=$(FUZZ_TIME) FUZZ_KEEP=$(FUZZ_DIR)/corpus prove -v tests/fuzz/fuzz.t

.PHONY: check-format-fuzz
check-format: check-format-fuzz
check-format-fuzz:
	@clang-format --dry-run --Werror $(wildcard tests/fuzz/*.[ch])
