# The harness's entry points. Go may live in /usr/local/go without being on PATH.
export PATH := /usr/local/go/bin:$(PATH)
SHELL := /bin/bash

.PHONY: demo test unit e2e e2e-debug bisect bisect-demo bench deps build

# Install what is missing, then compare the unpatched and patched Debian 6.1
# kernels with the race window widened, ending in a verdict.
demo: deps build
	./bin/harness compare --widen $(ARGS)

# The harness binary. Scripts should run bin/harness rather than 'go run',
# which turns every non-zero exit code into 1. It carries the static guest
# agent (compiled first into harness/initramfs/agent.bin, gitignored, and
# embedded with -tags embedagent) and kconfigs/ and patches/, so that it
# runs anywhere without Go or this checkout. HARNESS=path builds it there.
# 'harness --version' and report.json's provenance show the checkout's
# 'git describe' and commit (empty outside a git checkout: the harness then
# falls back to Go's build information).
HARNESS ?= bin/harness
AGENT := harness/initramfs/agent.bin
VERSION_LDFLAGS = -X main.buildVersion=$$(git describe --always --dirty 2>/dev/null) -X main.buildCommit=$$(git rev-parse HEAD 2>/dev/null)
build:
	tmp=$(AGENT).$$$$; CGO_ENABLED=0 GOOS=linux GOARCH=amd64 go build -trimpath -ldflags='-s -w' -o $$tmp ./guest && mv -f $$tmp $(AGENT)
	go build -tags embedagent -ldflags="$(VERSION_LDFLAGS)" -o $(HARNESS) ./harness

# Unit tests, then the end-to-end tests (real kernels in real QEMU).
test: unit e2e

unit:
	go test -count=1 ./...

e2e:
	ZSWAPRACE_E2E=1 go test -count=1 -v -timeout 85m ./harness/e2e/

# The leak test with --debug kernels (page_owner names the leaked pages'
# allocation stacks). Not in 'make test': a cold debug build is about 15
# minutes more (README, "Kernel health").
e2e-debug:
	ZSWAPRACE_E2E=1 ZSWAPRACE_E2E_DEBUG=1 go test -count=1 -v -timeout 90m -run 'TestLeakStacksNamedUnderDebug' ./harness/e2e/

# make bisect TREE=path GOOD=rev BAD=rev [WIDEN=1]
bisect:
	@test -n "$(TREE)" -a -n "$(GOOD)" -a -n "$(BAD)" || { echo "usage: make bisect TREE=path GOOD=rev BAD=rev [WIDEN=1]"; exit 2; }
	bash scripts/bisect.sh "$(TREE)" "$(GOOD)" "$(BAD)" "$(WIDEN)"

# make bisect-demo: bisect a small history over the Debian 6.1 source, made
# by scripts/bisect-demo-tree.sh (the culprit reverses the zswap fix; two
# other commits must be skipped), with the race window widened.
bisect-demo: deps build
	@set -e; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	vars=$$(bash scripts/bisect-demo-tree.sh "$$tmp/linux") || exit 1; eval "$$vars"; \
	echo "bisect-demo: the culprit to find is $$CULPRIT"; \
	bash scripts/bisect.sh "$$tmp/linux" "$$GOOD" "$$BAD" 1

bench: deps build
	bash scripts/bench.sh

deps:
	bash scripts/install-deps.sh
