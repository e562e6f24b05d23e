# tests/daemon/build.mk — the daemon's status mapping test (test_status.c,
# run by status.t), linked with the daemon's objects.
DAEMON_OBJ := $(filter $(O)/engine/daemon/%,$(CLI_OBJ))
tests: $(O)/tests/daemon/test_status

$(O)/tests/daemon/test_%: tests/daemon/test_%.c tests/unit/tap.h $(DAEMON_OBJ) $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Iengine/daemon -Itests/unit $< -o $@ $(DAEMON_OBJ) $(STATIC) $(LIBS) $(LDSAN)

.PHONY: check-format-daemon-tests
check-format: check-format-daemon-tests
check-format-daemon-tests:
	@clang-format --dry-run --Werror $(wildcard tests/daemon/*.[ch])
