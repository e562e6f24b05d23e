# tests/oom/build.mk — resource exhaustion: out of memory (test_oom.c: an
# allocator that fails the Nth call), full map and full disk (test_full.c,
# full_daemon.t); and `make valgrind`, the C tests under memcheck.
OOM_BIN := $(O)/tests/oom/test_oom $(O)/tests/oom/test_full
tests: $(OOM_BIN)

$(O)/tests/oom/test_%: tests/oom/test_%.c tests/unit/tap.h tests/unit/testkit.h $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Iengine/src -Itests/unit $< -o $@ $(STATIC) $(LIBS) -ldl

# Memcheck over the C tests built without sanitizers: the unit tests
# (build/tests/test_*) and the isolation, policy-value and full-storage
# programs (test_oom interposes malloc itself, so it is left out). Each
# passes when memcheck finds no error and no definite or indirect leak; see
# tests/oom/memcheck.sh and tests/oom/valgrind.supp.
.PHONY: valgrind
valgrind:
	@$(MAKE) --no-print-directory O=build SANITIZE= all tests
	@prove -f --timer --exec tests/oom/memcheck.sh build/tests/test_* \
	  build/tests/isolation/test_isolation build/tests/badinput/test_policy_values \
	  build/tests/oom/test_full

.PHONY: check-format-oom
check-format: check-format-oom
check-format-oom:
	@clang-format --dry-run --Werror $(wildcard tests/oom/*.[ch])
