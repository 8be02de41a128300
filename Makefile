# Every target works from a fresh clone: Go modules come from the Go module
# proxy, Kafka's jars (test-kafka) from Maven Central.
SHELL := bash
.SHELLFLAGS := -euo pipefail -c
GO ?= go

.PHONY: run test test-ui test-kafka bench takeover lint vet contracts docs participant schemas schemas-check compose-check build clean

## run: the whole system in one process on the embedded broker and registry
## (built, then run in make's place, so that Ctrl-C stops it with no error from go run or make)
run:
	$(GO) build -o bin/kafkasaga ./system/cmd/kafkasaga
	DEVSTACK_DATA_DIR=$${DEVSTACK_DATA_DIR:-$(CURDIR)/.data/devstack} exec bin/kafkasaga

## test: vet (go vet, gofmt, each module built alone), the schemas checked against main (schemas-check), then every
## module's tests with the race detector
## (embedded broker and registry, whatever KAFKA_BROKERS and SCHEMA_REGISTRY_URL the shell exports: the tests of
## several packages at once would write to that Kafka's topics and registry; test-kafka runs them on a real broker)
test: vet
	@NEED_FOR="make test" && . scripts/need.sh && need gcc gcc # the race detector builds with it
	$(GO) run ./contracts/cmd/schemas-check -registry=
	env -u KAFKA_BROKERS -u SCHEMA_REGISTRY_URL $(GO) test -race -count=1 -timeout 15m work

## test-ui: the console in headless Chromium (installed from Debian's packages when missing) against the whole
## system on the embedded broker and registry; screenshots under UI_ARTIFACTS (default .data/test-ui)
test-ui:
	scripts/test-ui.sh

## test-kafka: the end-to-end suite against a real Apache Kafka broker (fetched from Maven Central)
test-kafka:
	scripts/test-kafka.sh

## bench: Go benchmarks of the hot paths (on the embedded broker and registry, as make test), then the whole
## system under load (SAGAS, CONCURRENCY, RATE, INSTANCES, PROFILE, KAFKA_BROKERS: see system/cmd/bench), with
## the services' own settings; its last line is one JSON object of the figures
bench:
	env -u KAFKA_BROKERS -u SCHEMA_REGISTRY_URL $(GO) test -run '^$$' -bench . -benchmem ./contracts/... ./orchestrator/... ./platform/... ./saga/...
	$(GO) run ./system/cmd/bench

## takeover: time from SIGKILL of an instance to its partitions answering on the other, and each instance's
## memory, after SAGAS sagas (cumulative sizes, default 10000,100000,1000000) at SESSION_TIMEOUTS (default
## 10s,2s); two instances of each process as OS processes (see system/cmd/takeover). Not part of make test
takeover: build
	$(GO) run ./system/cmd/takeover

## vet: go vet and gofmt; and every module resolves its packages on its own (GOWORK=off, as go mod tidy and a
## user of one module build it): a sibling it needs must be in its go.mod, which go mod tidy leaves as it is
vet:
	$(GO) vet work
	@files=$$(git ls-files '*.go'); out=$$(gofmt -l $$files); if [ -n "$$out" ]; then echo "gofmt needed: $$out"; exit 1; fi
	@for m in $$($(GO) list -m -f '{{.Dir}}'); do (cd "$$m" && GOWORK=off $(GO) list -deps -test ./... >/dev/null) || { echo "$$m does not build with GOWORK=off"; exit 1; }; done
	@for m in $$($(GO) list -m -f '{{.Dir}}'); do (cd "$$m" && GOWORK=off $(GO) mod tidy -diff >/dev/null) || { echo "$$m: go mod tidy would change its go.mod or go.sum (run it there with GOWORK=off)"; exit 1; }; done

lint: vet

## contracts: regenerate the Go types from contracts/schemas/*.avsc and saga/schemas/*.avsc
contracts:
	cd contracts && $(GO) generate ./...
	cd saga && $(GO) generate ./...

## docs: write docs/sagas/<type>.md, each saga's diagram and steps, from the definitions the orchestrator runs
## (orchestrator/cmd/diagrams); a test fails when the committed pages differ
docs:
	$(GO) run ./orchestrator/cmd/diagrams -dir docs/sagas

## participant: a new saga participant NAME (e.g. make participant NAME=inventory): services/NAME, its topics,
## schemas and interactions, its row of system.Processes and its compose services (system/cmd/participant;
## docs/adding-a-saga-step.md)
participant:
	$(GO) run ./system/cmd/participant -name "$(NAME)"

## schemas: create the topics and register every schema on KAFKA_BROKERS / SCHEMA_REGISTRY_URL
## (the production path, where services run with AUTO_REGISTER_SCHEMAS=false)
schemas:
	$(GO) run ./system/cmd/provision

## schemas-check: check every contracts/schemas/*.avsc and saga/schemas/*.avsc against its previous versions with the
## registry's compatibility checker: every version in main's history (to the merge base; a shallow clone fails), or with
## SCHEMA_REGISTRY_URL set the registry's, BACKWARD_TRANSITIVE against every version and FORWARD against the latest
## (COMPATIBILITY=<level> checks under that one level instead)
schemas-check:
	$(GO) run ./contracts/cmd/schemas-check $${COMPATIBILITY:+-level $$COMPATIBILITY}

## compose-check: check docker-compose.yml and the Dockerfile against the services' configuration (no Docker needed),
## and the docs' references (tests, paths, links, targets) against the repository
compose-check:
	$(GO) test -count=1 ./deploy/...

## build: one binary per process into bin/: every service of services/, the orchestrator, kafkasaga, provision
## and devstack (deploy's tests check it builds every process of system.Processes); static, without cgo, as
## the Dockerfile builds them: Pebble's caches then live in Go's heap, not in C's allocator, which keeps what
## it freed (make takeover measures these binaries)
build:
	mkdir -p bin
	CGO_ENABLED=0 $(GO) build -o bin/ $(patsubst %/main.go,./%,$(wildcard services/*/main.go)) ./orchestrator ./system/cmd/kafkasaga ./system/cmd/provision ./devstack/cmd/devstack

## clean: remove binaries and the embedded stack's data (customers, orders, sagas)
clean:
	rm -rf bin .data
