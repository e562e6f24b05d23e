# examples/c-gateway/build.mk — the C gateway example, built with the tests
# (make tests) into $(O)/examples/c-gateway, against the static library, so
# the binding tests can run it beside the Python and Go gateways.
C_GATEWAY := $(O)/examples/c-gateway

$(C_GATEWAY): examples/c-gateway/gateway.c engine/include/switchboard.h $(PUBLIC)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $< -o $@ $(PUBLIC) $(LIBS) $(LDSAN)

tests: $(C_GATEWAY)
