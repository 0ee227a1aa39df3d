# Nebula — the two commands of the README, and the steps behind them.
#
#   make run    install what is missing, build, start a single-node server
#   make test   install what is missing, build (plain, ASan+UBSan, TSan, and
#               the clang libFuzzer build), run every test (the integration
#               tests also under valgrind, a short smoke run of each fuzz
#               target), end with one line "N passed, N failed"
#
# Other targets: build, deps, lint, format, clean, test-PASS (one pass of
# make test: plain, asan, tsan, valgrind, fuzz, lint), fuzz (every libFuzzer
# target for FUZZ_SECONDS each; docs/FUZZING.md), fresh-check (the two
# commands above on a new minimal Debian 12 root; tests/fresh-check.sh).
#
# `make run ARGS="--listen 127.0.0.1:8081"` passes options to the server.

SHELL := /bin/bash
BUILD ?= build
ASAN_BUILD ?= build-asan
TSAN_BUILD ?= build-tsan
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 60
ARGS ?=

# prometheus (promtool), systemd (systemd-analyze), curl, docker-compose: the offline
# check of deployments/; haproxy: deployments/local-cluster.sh and its test
APT_PACKAGES := build-essential pkg-config meson ninja-build clang libclang-rt-14-dev \
  valgrind cppcheck clang-tidy clang-format libev-dev libwslay-dev libcjson-dev \
  libprotobuf-c-dev protobuf-c-compiler libsqlite3-dev sqlite3 libhiredis-dev libssl-dev \
  libcunit1-dev redis-server redis-tools jq curl chromium prometheus systemd \
  haproxy docker-compose

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: all run test test-plain test-asan test-tsan test-valgrind test-fuzz test-lint build web-vendor build-asan build-tsan build-fuzz fuzz deps deps-apt deps-node-cmds deps-node \
  lint format clean fresh-check

all: build

# Install only what is missing, so a machine that has everything does not
# touch the network.
deps-apt:
	@missing=$$(for p in $(APT_PACKAGES); do \
	    dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; \
	  done); \
	if [ -n "$$missing" ]; then \
	  echo "installing: $$missing"; \
	  $(SUDO) apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q --no-install-recommends $$missing; \
	fi

# node and npm are installed by command, not by package name: a machine
# whose `node` comes from elsewhere (with its own npm) must not get Debian's
# nodejs over it. Debian 12's Node is 18; tests/package.json pins versions
# that run on it.
deps-node-cmds:
	@if ! command -v node >/dev/null; then \
	  echo "installing: nodejs npm ca-certificates (no node command)"; \
	  $(SUDO) apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q --no-install-recommends \
	    nodejs npm ca-certificates; \
	elif ! command -v npm >/dev/null; then \
	  echo "node runs ($$(command -v node)) but there is no npm: install the npm that goes with it" >&2; \
	  exit 1; \
	fi
	@node -e 'process.exit(+process.versions.node.split(".")[0] >= 18 ? 0 : 1)' || \
	  { echo "node $$(node --version) ($$(command -v node)) is too old: the tests need Node 18 or newer" >&2; exit 1; }

# npm ci again whenever the lock file changed since the last install.
deps-node: deps-node-cmds
	@if ! cmp -s tests/package-lock.json tests/node_modules/.nebula-installed-lock; then \
	  (cd tests && npm ci --no-audit --no-fund) && \
	  cp tests/package-lock.json tests/node_modules/.nebula-installed-lock; \
	fi

deps: deps-apt deps-node

# A build folder configured before node was installed has no Node tests
# (they fail as "node missing"): configure it again once node is there.
define reconfigure_if_node_appeared
	@if [ -f $(1)/meson-logs/meson-log.txt ] && command -v node >/dev/null && \
	    grep -q 'Program node found: NO' $(1)/meson-logs/meson-log.txt; then \
	  meson setup --reconfigure $(1); \
	fi
endef

$(BUILD)/build.ninja:
	meson setup $(BUILD)

$(ASAN_BUILD)/build.ninja:
	meson setup $(ASAN_BUILD) -Db_sanitize=address,undefined -Dbuildtype=debug

# ThreadSanitizer: the binary and every plugin are built the same way.
$(TSAN_BUILD)/build.ninja:
	meson setup $(TSAN_BUILD) -Db_sanitize=thread -Dbuildtype=debug

# libFuzzer needs clang; this build folder is clang's whatever CC says.
$(FUZZ_BUILD)/build.ninja:
	CC=clang meson setup $(FUZZ_BUILD) -Dfuzz=true

build: deps-apt deps-node-cmds web-vendor $(BUILD)/build.ninja
	$(call reconfigure_if_node_appeared,$(BUILD))
	meson compile -C $(BUILD)

build-asan: deps-apt deps-node-cmds $(ASAN_BUILD)/build.ninja
	$(call reconfigure_if_node_appeared,$(ASAN_BUILD))
	meson compile -C $(ASAN_BUILD)

# The browser client's Protobuf runtime: protobufjs's minimal build, from
# npm (web-deps/package.json, pinned) into web/vendor/ (not in git).
WEB_PB := web-deps/node_modules/protobufjs/dist/minimal/protobuf.min.js
web-vendor: deps-node-cmds
	@if [ ! -f $(WEB_PB) ]; then (cd web-deps && npm ci --no-audit --no-fund); fi
	@mkdir -p web/vendor && \
	  cp -u $(WEB_PB) web/vendor/protobuf.min.js && \
	  cp -u web-deps/node_modules/protobufjs/LICENSE web/vendor/protobuf.LICENSE

build-tsan: deps-apt deps-node-cmds $(TSAN_BUILD)/build.ninja
	$(call reconfigure_if_node_appeared,$(TSAN_BUILD))
	meson compile -C $(TSAN_BUILD)

build-fuzz: deps-apt deps-node-cmds $(FUZZ_BUILD)/build.ninja
	$(call reconfigure_if_node_appeared,$(FUZZ_BUILD))
	meson compile -C $(FUZZ_BUILD)

# Every fuzz target for FUZZ_SECONDS each; corpora grow in
# $(FUZZ_BUILD)/corpus/, crashes land in $(FUZZ_BUILD)/crashes/.
fuzz: build-fuzz
	tests/fuzz/fuzz.sh $(FUZZ_BUILD) $(FUZZ_SECONDS)

run: build
	$(BUILD)/nebula $(if $(wildcard nebula.conf),-c nebula.conf,) $(ARGS)

test: deps build build-asan build-tsan build-fuzz
	@tests/run-all.sh $(BUILD) $(ASAN_BUILD) $(TSAN_BUILD) $(FUZZ_BUILD)

# One pass of `make test` with only the builds it needs (CI: a job a pass).
test-plain test-valgrind: deps build
test-asan: deps build-asan
test-tsan: deps build-tsan
test-fuzz: deps build-fuzz
test-lint: deps build build-fuzz
test-plain test-asan test-tsan test-valgrind test-fuzz test-lint:
	@NEBULA_PASSES=$(@:test-%=%) tests/run-all.sh $(BUILD) $(ASAN_BUILD) $(TSAN_BUILD) $(FUZZ_BUILD)

lint: build
	tests/lint.sh $(BUILD)

format:
	tests/lint.sh --list | xargs clang-format -i

# The two commands of the README, as written, on a new minbase Debian 12
# root (debootstrap, this machine's apt sources); slow: it installs
# everything. Not part of `make test`.
fresh-check:
	@command -v debootstrap >/dev/null || \
	  { $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q debootstrap; }
	$(SUDO) tests/fresh-check.sh

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(TSAN_BUILD) $(FUZZ_BUILD)
