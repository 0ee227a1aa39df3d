# Nebula — the two commands of the README, and the steps behind them.
#
#   make run    install what is missing, build, start a single-node server
#   make test   install what is missing, build (plain, ASan+UBSan, TSan, and
#               the clang libFuzzer build), run every test (the integration
#               tests also under valgrind, a short smoke run of each fuzz
#               target), end with one line "N passed, N failed"
#
# Other targets: build, deps, lint, format, clean, fuzz (every libFuzzer
# target for FUZZ_SECONDS each; docs/FUZZING.md).

SHELL := /bin/bash
BUILD ?= build
ASAN_BUILD ?= build-asan
TSAN_BUILD ?= build-tsan
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 60

APT_PACKAGES := build-essential pkg-config meson ninja-build clang libclang-rt-14-dev \
  valgrind cppcheck clang-tidy clang-format libev-dev libwslay-dev libcjson-dev \
  libprotobuf-c-dev protobuf-c-compiler libsqlite3-dev sqlite3 libhiredis-dev libssl-dev \
  libcunit1-dev redis-server redis-tools jq chromium

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: all run test build web-vendor build-asan build-tsan build-fuzz fuzz deps deps-apt deps-node lint format clean

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

deps-node:
	@if [ ! -d tests/node_modules/ws ] || [ ! -d tests/node_modules/playwright-core ] || [ ! -d tests/node_modules/protobufjs ]; then \
	  (cd tests && npm ci --no-audit --no-fund); \
	fi

deps: deps-apt deps-node

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

build: deps-apt web-vendor $(BUILD)/build.ninja
	meson compile -C $(BUILD)

# The browser client's Protobuf runtime: protobufjs's minimal build, from
# npm (web-deps/package.json, pinned) into web/vendor/ (not in git). Without
# npm the page still works, offering JSON only; the e2e test needs it.
WEB_PB := web-deps/node_modules/protobufjs/dist/minimal/protobuf.min.js
web-vendor:
	@if [ ! -f $(WEB_PB) ]; then \
	  if command -v npm >/dev/null; then (cd web-deps && npm ci --no-audit --no-fund); \
	  else echo "warning: npm missing: the browser client will offer JSON only"; fi; \
	fi
	@if [ -f $(WEB_PB) ]; then mkdir -p web/vendor && \
	  cp -u $(WEB_PB) web/vendor/protobuf.min.js && \
	  cp -u web-deps/node_modules/protobufjs/LICENSE web/vendor/protobuf.LICENSE; fi

build-asan: deps-apt $(ASAN_BUILD)/build.ninja
	meson compile -C $(ASAN_BUILD)

build-tsan: deps-apt $(TSAN_BUILD)/build.ninja
	meson compile -C $(TSAN_BUILD)

build-fuzz: deps-apt $(FUZZ_BUILD)/build.ninja
	meson compile -C $(FUZZ_BUILD)

# Every fuzz target for FUZZ_SECONDS each; corpora grow in
# $(FUZZ_BUILD)/corpus/, crashes land in $(FUZZ_BUILD)/crashes/.
fuzz: build-fuzz
	tests/fuzz/fuzz.sh $(FUZZ_BUILD) $(FUZZ_SECONDS)

run: build
	./$(BUILD)/nebula $(if $(wildcard nebula.conf),-c nebula.conf,)

test: deps build build-asan build-tsan build-fuzz
	@tests/run-all.sh $(BUILD) $(ASAN_BUILD) $(TSAN_BUILD) $(FUZZ_BUILD)

lint: build
	tests/lint.sh $(BUILD)

format:
	git ls-files '*.c' '*.h' | xargs clang-format -i

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(TSAN_BUILD) $(FUZZ_BUILD)
