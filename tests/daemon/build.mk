# tests/daemon/build.mk — C tests of the daemon's parts, linked with its
# objects: the status of every SB_E* code (test_status.c, run by status.t)
# and the action JSON it writes itself (test_actions.c, run by actions.t), the
# time a sweep's log line gives (test_sweep_clock.c, run by sweep_clock.t).
DAEMON_OBJ := $(filter $(O)/engine/daemon/%,$(CLI_OBJ))
tests: $(O)/tests/daemon/test_status $(O)/tests/daemon/test_actions $(O)/tests/daemon/test_sweep_clock

$(O)/tests/daemon/test_%: tests/daemon/test_%.c tests/unit/tap.h tests/unit/testkit.h $(DAEMON_OBJ) $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Iengine/daemon -Itests/unit $< -o $@ $(DAEMON_OBJ) $(STATIC) $(LIBS) $(LDSAN)

.PHONY: check-format-daemon-tests
check-format: check-format-daemon-tests
check-format-daemon-tests:
	@clang-format --dry-run --Werror $(wildcard tests/daemon/*.[ch])

# page_wipe.t's LD_PRELOAD shim (freewatch.c): never built with sanitizers
# (their runtime has its own allocator, and is loaded before it).
tests: $(O)/tests/daemon/freewatch.so

$(O)/tests/daemon/freewatch.so: tests/daemon/freewatch.c tests/unit/freewatch.h
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 -D_GNU_SOURCE $(WARN) $(if $(filter 1,$(WERROR)),-Werror) -O2 -g -fPIC \
	  -Itests/unit -shared $< -o $@
