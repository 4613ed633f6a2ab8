# confit — see README.md. Needs Go, git, make and a C compiler (for -race); make test-deps/test also
# need Debian or Ubuntu with root or sudo (they apt-get install HAProxy and nginx).
GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X main.version=$(VERSION)
BIN      := bin/confit
# TAGS=confit_no_etcd,confit_no_consul,confit_no_zookeeper,confit_no_redis leaves those backends out (README: Smaller builds).
TAGS     ?=

.PHONY: build demo test test-deps bench bench-fleet lint deadcode fuzz clean

build:
	CGO_ENABLED=0 $(GO) build -trimpath -tags '$(TAGS)' -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/confit

## demo: render examples/quickstart from the file backend and print it (no server needed).
demo: build
	cd examples/quickstart && rm -rf out && ../../$(BIN) -onetime -backend file -file values.yaml -confdir . -config-file /dev/null
	@echo '--- examples/quickstart/out/myapp.conf:'
	@cat examples/quickstart/out/myapp.conf

## test-deps: install the real servers the tests use (cached in .cache/servers).
test-deps:
	./scripts/test-deps.sh

## test: install what the tests need, then run every test with the race detector.
test: test-deps
	$(GO) vet ./...
	./scripts/test.sh

## bench: measure the performance figures in README.md and print them as a table.
bench: build test-deps
	$(GO) run ./internal/bench

## bench-fleet: N real confit sidecars against one etcd, one etcd behind its gRPC proxy and one
## Consul agent (docs/SCALE.md); not part of make test. FLEET="-n 10,100 -store etcd" narrows it;
## results are appended to fleet-results.jsonl and cells already there are skipped.
FLEET ?=
bench-fleet: build test-deps
	$(GO) run ./internal/bench/fleet -bin $(BIN) $(FLEET)

## lint: gofmt, go vet and staticcheck (pinned in go.mod's tool directives).
lint:
	@test -z "$$(gofmt -l .)" || (gofmt -l . && echo 'gofmt: files above need formatting' && exit 1)
	$(GO) vet ./...
	$(GO) tool staticcheck ./...

## deadcode: functions no program or test reaches (x/tools deadcode, pinned in go.mod).
deadcode:
	$(GO) tool deadcode -test ./...

## fuzz: run each fuzz target for a short while (FUZZTIME=1m for longer).
FUZZTIME ?= 20s
fuzz:
	./scripts/fuzz.sh $(FUZZTIME)

clean:
	rm -rf bin examples/quickstart/out
