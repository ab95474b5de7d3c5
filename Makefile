# The two commands of the README: `make run` and `make test`. Both find or
# start PostgreSQL themselves (see infra/pgboot).

GO ?= go
# The race detector needs cgo (a C compiler); without one the suite runs
# without it rather than not at all, and says so.
RACE ?= $(shell command -v gcc >/dev/null 2>&1 && [ "$$($(GO) env CGO_ENABLED)" = 1 ] && echo -race)
# Fuzz time per target in `make test`; raise it for a longer hunt.
FUZZTIME ?= 5s

.PHONY: run test pgcheck build vet vet-static fuzz bench clean

build:
	$(GO) build -o bin/rapport ./cmd/rapport

# A development instance on http://localhost:8080 with the embedded
# Postgres event store; prints an admin API key.
run: build
	./bin/rapport dev

# The whole suite. DATABASE_URL, if set, names the server to test against.
# pgcheck comes first: it says within seconds (not after minutes of build
# and vet on a fresh machine) whether the tests will have a PostgreSQL, and
# what to install or set if not.
# It takes vet-static, not vet: the suite runs the layering rule
# (TestLayers, infra/app) itself, so vet's separate run of it would only
# build infra/app's tests once more without the race detector (12 s on a
# cold cache).
test: pgcheck build vet-static
	@[ -n "$(RACE)" ] || echo "make test: no C compiler (gcc) or CGO_ENABLED=0, so the suite runs WITHOUT the race detector (apt-get install gcc to have it)"
	./bin/rapport devdb -- $(GO) test $(RACE) -count=1 -timeout 20m ./...
	FUZZTIME=$(FUZZTIME) ./.ci/fuzz

# Whether the tests will have a PostgreSQL (installing it as root on Debian
# or Ubuntu), without building everything first; see cmd/pgcheck.
pgcheck:
	@$(GO) run ./cmd/pgcheck

# Every fuzz target for FUZZTIME each.
fuzz:
	FUZZTIME=$(FUZZTIME) ./.ci/fuzz

# Static checks: go vet, gofmt (over the source folders, so it needs no git)
# and the layering rule (infra/app/layers_test.go: no package outside cmd/
# and infra/ imports infra/, domain/ imports only the standard library and
# uuid).
SRC_DIRS := cmd domain commands projections readmodels infra
vet: vet-static
	$(GO) test -count=1 -run '^TestLayers' ./infra/app/

# go vet and gofmt: vet without the layering rule.
vet-static:
	$(GO) vet ./...
	@test -z "$$(gofmt -l $(SRC_DIRS))" || (echo "gofmt needed:"; gofmt -l $(SRC_DIRS); exit 1)

# Benchmarks of the event stores and the command side.
bench: build
	./bin/rapport devdb -- $(GO) test -run XXX -bench . -benchtime 2s ./infra/postgres/ ./infra/esdb/ ./commands/

clean:
	rm -rf bin
