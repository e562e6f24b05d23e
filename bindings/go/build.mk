# bindings/go/build.mk — the Go binding (cgo against $(O)/libswitchboard.a).
# `make test` runs bindings/go/go.t (go test, gofmt, go vet, the example gateway).
#   make test-go    the binding's tests alone
#   make bench-go   call cycles/s through the binding (go test -bench)
.PHONY: test-go bench-go

test-go: lib cli
	@SB_BUILD=$(O) prove -f bindings/go/go.t

bench-go: lib
	@cd bindings/go && GOCACHE=/tmp/switchboard-go-$$(id -u)/cache GOPROXY=off GOFLAGS=-buildvcs=false \
	  CGO_LDFLAGS="-L$(abspath $(O))" \
	  CGO_CFLAGS="-g -O2 -DSB_GO_LIB_ID=$$(cat ../../engine/include/switchboard.h $(abspath $(PUBLIC)) | cksum | cut -d' ' -f1)" \
	  go test -run '^$$' -bench CallCycle -benchtime $(or $(SB_BENCH_CYCLES),50000)x .
