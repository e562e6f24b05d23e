# tests/multiproc — many processes on one data directory, and the Kamailio
# example end to end (kamailio.t, which needs the Lua module: bindings/lua).
MP_BIN := $(O)/tests/multiproc/multiproc

tests: $(MP_BIN)

$(MP_BIN): tests/multiproc/multiproc.c tests/unit/tap.h tests/unit/testkit.h engine/include/switchboard.h $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Itests/unit $< -o $@ $(LDSAN) $(STATIC) \
	  $(shell pkg-config --libs lua5.4 lmdb libsodium jansson) -lpthread -lm
