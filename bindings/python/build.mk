# bindings/python/build.mk — the Python binding (ctypes: nothing to compile; it
# loads $(O)/libswitchboard.so). `make test` runs bindings/python/test_binding.t.
#   make test-python    the binding's tests alone
#   make bench-python   call cycles/s through the binding (bench.py)
.PHONY: test-python bench-python

test-python: lib cli
	@SB_BUILD=$(O) prove -f bindings/python/test_binding.t

bench-python: lib
	@SWITCHBOARD_LIB=$(O)/libswitchboard.so $(firstword $(wildcard /usr/bin/python3) python3) \
	  bindings/python/bench.py --cycles $(or $(SB_BENCH_CYCLES),50000)
