# tests/isolation/build.mk — tenant isolation through the library and its
# policies (test_isolation.c, run by isolation_lib.t) and through every
# daemon route (isolation.t).
tests: $(O)/tests/isolation/test_isolation

$(O)/tests/isolation/test_%: tests/isolation/test_%.c tests/unit/tap.h tests/unit/testkit.h $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Iengine/src -Itests/unit $< -o $@ $(STATIC) $(LIBS)

.PHONY: check-format-isolation
check-format: check-format-isolation
check-format-isolation:
	@clang-format --dry-run --Werror $(wildcard tests/isolation/*.[ch])
