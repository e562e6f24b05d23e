# tests/crash/build.mk — crash safety. `make test` runs kill9.t with 50 kills
# and sync.t (every acknowledgement after its sync, seen at the syscalls
# through the synctrace.so shim); `make soak` runs kill9.t with SOAK_KILLS
# (1,000) kills of the daemon.
SOAK_KILLS ?= 1000

tests: $(O)/tests/crash/synctrace.so

# An LD_PRELOAD shim: never built with sanitizers (it is loaded before them).
$(O)/tests/crash/synctrace.so: tests/crash/synctrace.c tests/crash/interpose.h
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 -D_GNU_SOURCE $(WARN) $(if $(filter 1,$(WERROR)),-Werror) -O2 -g -fPIC \
	  -shared $< -o $@ -ldl -lpthread

.PHONY: soak
soak: all
	@SB_BUILD=$(O) SB_KILLS=$(SOAK_KILLS) prove -v --timer tests/crash/kill9.t

tests: $(O)/tests/crash/test_locks

$(O)/tests/crash/test_%: tests/crash/test_%.c tests/crash/interpose.h tests/unit/tap.h tests/unit/testkit.h $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Iengine/src -Itests/unit $< -o $@ $(STATIC) $(LIBS) -ldl

.PHONY: check-format-crash
check-format: check-format-crash
check-format-crash:
	@clang-format --dry-run --Werror $(wildcard tests/crash/*.[ch])

# Retention work killed at chosen commits, on a full map, and beside other
# processes (test_retkill.c: interposes mdb_txn_commit, hence -ldl).
tests: $(O)/tests/crash/test_retkill

$(O)/tests/crash/test_retkill: tests/crash/test_retkill.c tests/unit/tap.h tests/unit/testkit.h \
  tests/unit/reckit.h $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Iengine/src -Itests/unit $< -o $@ $(STATIC) $(LIBS) -ldl

# Commits in the order a power loss needs (test_durable.c: defines the
# write and sync calls LMDB makes, hence -ldl).
tests: $(O)/tests/crash/test_durable
