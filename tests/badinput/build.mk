# tests/badinput/build.mk — the daemon's bad-input corpus (corpus.t, slow.t)
# and hostile values returned by policies through the engine
# (test_policy_values.c, run by policy_values.t).
tests: $(O)/tests/badinput/test_policy_values

$(O)/tests/badinput/test_%: tests/badinput/test_%.c tests/unit/tap.h tests/unit/testkit.h $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Iengine/src -Itests/unit $< -o $@ $(STATIC) $(LIBS)

.PHONY: check-format-badinput
check-format: check-format-badinput
check-format-badinput:
	@clang-format --dry-run --Werror $(wildcard tests/badinput/*.[ch])
