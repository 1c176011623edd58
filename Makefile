# The two commands of the Quick start are `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP_RUN := $(VENV)/.installed-run
STAMP_DEV := $(VENV)/.installed-dev
STAMP_BENCH := $(VENV)/.installed-bench
# The editable install builds the C accelerator: built again when it changes.
BUILD_INPUTS := pyproject.toml setup.py src/tether/_speedups.c

.PHONY: run test test-python lint types docs pytest debian-packages build-packages bench bench-quick bench-fanout bench-c100k soak fuzz fuzz-merge fuzz-native clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP_RUN): $(BUILD_INPUTS) | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

# The tests' and the bench's installs build the accelerator with zlib's header
# there (build-packages), and require it (TETHER_REQUIRE_SPEEDUPS, read by
# setup.py): a failed C build stops them, where a user's install would go on
# in pure Python and the tests would run the fallback in place of the C code.
REQUIRE_C := TETHER_REQUIRE_SPEEDUPS=1

$(STAMP_DEV): $(BUILD_INPUTS) | $(BIN)/python build-packages
	$(REQUIRE_C) $(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@ $(STAMP_RUN)

$(STAMP_BENCH): $(BUILD_INPUTS) | $(BIN)/python build-packages
	$(REQUIRE_C) $(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	touch $@ $(STAMP_DEV) $(STAMP_RUN)

# The demo server: a chat page for a browser, /chat and /echo for `tether ws://...`.
run: $(STAMP_RUN)
	$(BIN)/tether serve

lint: $(STAMP_DEV)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

types: $(STAMP_DEV)
	$(BIN)/mypy

# Node's ws, a peer of the interop tests: installed again when its package files change.
NODE_PEER := tests/interop/node
STAMP_NODE := $(NODE_PEER)/node_modules/.installed

$(STAMP_NODE): $(NODE_PEER)/package.json $(NODE_PEER)/package-lock.json
	cd $(NODE_PEER) && npm ci --no-audit --no-fund
	touch $@

# Debian packages the tests start for real: Chromium opens the demo's chat
# page; redis-server carries topics between processes; iproute2's ip makes
# the network namespaces of the fault tests; tinyproxy is the HTTP proxy the
# clients connect through; Apache httpd (apache2-bin: no service) issues
# Digest challenges; zlib1g-dev is zlib's header, which the C accelerator
# compiles against. Each test that needs one of them starts its own
# instance on a loopback port (or in a namespace of its own) and stops it.
# Installed once per machine: only the missing ones, so a machine that has
# them all asks apt nothing.
BUILD_PACKAGES := zlib1g-dev
DEBIAN_PACKAGES := chromium nginx iproute2 redis-server tinyproxy apache2-bin $(BUILD_PACKAGES)
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

# $(call apt-missing,PACKAGES): install those of PACKAGES not there yet.
define apt-missing
	@missing=$$(for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "Installing Debian packages for the tests (once per machine):" $$missing; \
		$(SUDO) apt-get update -qq && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
endef

debian-packages:
	$(call apt-missing,$(DEBIAN_PACKAGES))

build-packages:
	$(call apt-missing,$(BUILD_PACKAGES))

# Whether atheris has a wheel for this Python: the marker of atheris in the
# dev extra of pyproject.toml. Where it has none, the brief fuzzing runs of
# tests/fuzz/test_atheris.py are left out, with a note; where it has one, a
# missing atheris fails them.
ATHERIS_WHEEL = $(shell $(BIN)/python -c 'import platform, sys; print(int(sys.platform == "linux" and platform.machine() == "x86_64" and sys.version_info < (3, 15)))')
NO_ATHERIS = $(filter 0,$(ATHERIS_WHEEL))

# The whole suite runs with the C accelerator; the protocol and conformance
# tests (the frame path, in memory and on the network) run again on the
# pure-Python fallback, and coverage adds up both runs.
pytest: $(STAMP_DEV) $(STAMP_NODE) debian-packages
	$(if $(NO_ATHERIS),@echo "note: atheris has no wheel for this Python or platform: tests/fuzz/test_atheris.py (brief fuzzing runs) is left out")
	$(BIN)/python -m pytest --cov --cov-report= $(if $(NO_ATHERIS),--ignore=tests/fuzz/test_atheris.py)
	TETHER_NO_SPEEDUPS=1 $(BIN)/python -m pytest -q tests/protocol tests/conformance --cov --cov-append --cov-report=
	$(BIN)/python -m coverage report
	$(BIN)/python -m coverage report --include='src/tether/protocol/*' --fail-under=100

# The suite's core on another CPython, for the accelerator's C and the
# versions' differences (CI runs only the venv's Python): `make test-python
# PY=python3.13` makes .venv-3.13 with that interpreter, installs the dev
# extra with the accelerator required, checks that the module imported is
# the one just built, then runs each of TEST_PYTHON_MODULES with the
# accelerator and again with TETHER_NO_SPEEDUPS=1, and names what failed.
# Not part of `make test`.
TEST_PYTHON_MODULES := tests/test_accelerator_build.py tests/protocol tests/asyncio tests/sync \
	tests/behaviour tests/trio tests/asgi tests/fuzz

test-python: $(STAMP_NODE) debian-packages
	@test -n "$(PY)" || { echo "usage: make test-python PY=python3.13 (a CPython's name or path)"; exit 2; }
	@set -e; \
	version=$$($(PY) -c 'import sys; print("%d.%d" % sys.version_info[:2])'); \
	venv=.venv-$$version; \
	test -x $$venv/bin/python || $(PY) -m venv $$venv; \
	$$venv/bin/python -m pip install --quiet --upgrade pip; \
	$(REQUIRE_C) $$venv/bin/python -m pip install --quiet -e '.[dev]'; \
	$$venv/bin/python -c 'import sys, tether._speedups as m; print(sys.version.split()[0], m.__file__)'; \
	ignore=$$($$venv/bin/python -c 'import importlib.util as u; print("" if u.find_spec("atheris") else "--ignore=tests/fuzz/test_atheris.py")'); \
	failed=""; \
	for modules in $(TEST_PYTHON_MODULES); do \
		for off in "" 1; do \
			mode=$${off:+TETHER_NO_SPEEDUPS=1}; mode=$${mode:-accelerator}; \
			echo "== Python $$version, $$modules, $$mode"; \
			TETHER_NO_SPEEDUPS=$$off $$venv/bin/python -m pytest -q -p no:cacheprovider $$ignore $$modules \
				|| failed="$$failed $$modules ($$mode)"; \
		done; \
	done; \
	test -z "$$failed" || { echo "failed on Python $$version:$$failed"; exit 1; }

# The documentation site, from docs/ into build/docs/html: warnings are errors
# and every cross-reference must resolve (-n). Offline: nothing is fetched.
docs: $(STAMP_DEV)
	$(BIN)/sphinx-build -E -b html -W --keep-going -n -q docs build/docs/html

test: lint types docs pytest

# The core microbenchmark, then every workload against every peer, five
# repetitions (long: run it by hand). The table also goes to bench/results/latest.json.
bench: $(STAMP_BENCH)
	$(BIN)/python bench/core.py
	$(BIN)/python -m bench.run --full
	$(BIN)/python -m bench.fanout --subscribers $(FANOUT_SUBSCRIBERS)

# Fan-out through Redis (bench/fanout.py): FANOUT_SUBSCRIBERS clients over 4
# workers, tether's topics against Django Channels' group_send. `make bench`
# runs the full size; a smaller one is quicker on a small machine.
FANOUT_SUBSCRIBERS ?= 10000

bench-fanout: $(STAMP_BENCH)
	$(BIN)/python -m bench.fanout --subscribers $(FANOUT_SUBSCRIBERS)

# Idle connections at scale (bench/c100k.py): one server process holding as
# many connections as its descriptor limit allows, then 100,000 over worker
# processes sharing the port, each sent one message; memory, idle CPU,
# handshakes per second and delivery latency; and the threading server
# with C100K_THREADS connections (a thread each); the floor (the same frame
# written with no tether code); the lean client, so that clients sharing the
# cores cost little. About six minutes on two cores, bounded at ten. Not part
# of `make test` (tests/bench runs it small).
C100K_THREADS ?= 5000

bench-c100k: $(STAMP_DEV)
	mkdir -p build
	$(BIN)/python -m bench.c100k --threads $(C100K_THREADS) --floor 3 --lean-clients \
		--json build/c100k.json

# A subset of the workloads, three repetitions, in about two minutes.
bench-quick: $(STAMP_BENCH)
	$(BIN)/python -m bench.run

# The load and fault tests at soak size, SOAK_SECONDS of rounds in all: the
# mixed soak (asyncio and threading servers, plain and TLS, both clients,
# compression or not, messages of mixed sizes, RSS checked every round) takes
# 60% of them, SOAK_CONNECTIONS at once to the asyncio server the rest (half
# on each event loop); then shutdowns under load, more threads, the long
# variants of the fault tests, and the hostile peers of tests/conformance.
# About ten minutes with the defaults: run it by hand. `make test` runs the
# same tests at a size that takes seconds. Each test writes what it measured
# to SOAK_REPORT; tests/soak_table.py then makes the table of
# docs/topics/reliability.md from it.
SOAK_CONNECTIONS ?= 5000
SOAK_SECONDS ?= 240
SOAK_REPORT := build/soak/results.jsonl
SOAK_TESTS := tests/load tests/faults tests/conformance/test_attacks.py \
	tests/conformance/test_attacks_handshake.py tests/conformance/test_attacks_more.py \
	tests/conformance/test_attacks_sync.py

soak: $(STAMP_DEV) debian-packages
	rm -f $(SOAK_REPORT)
	$(BIN)/python -m pytest $(SOAK_TESTS) --soak \
		--soak-connections=$(SOAK_CONNECTIONS) --soak-seconds=$(SOAK_SECONDS) \
		--soak-report=$(SOAK_REPORT) --log-cli-level=INFO
	$(BIN)/python -m tests.soak_table $(SOAK_REPORT) docs/topics/reliability.md

# Each coverage-guided fuzz target for FUZZ_TIME seconds. The committed
# corpus seeds the run; new finds go to build/fuzz/<target>, crashes to
# build/fuzz/crash-*. `make test` replays the corpus and runs each target
# for a few seconds (tests/fuzz).
FUZZ_TIME ?= 60
FUZZ_TARGETS := frames handshake header_values deflate speedups

fuzz: $(STAMP_DEV)
	$(BIN)/python -c "import atheris" 2>/dev/null || $(BIN)/python -m pip install --quiet -e '.[fuzz]'
	@for target in $(FUZZ_TARGETS); do \
		echo "fuzzing $$target for $(FUZZ_TIME) s"; \
		mkdir -p build/fuzz/$$target; \
		$(BIN)/python -m fuzz.$$target build/fuzz/$$target fuzz/corpus/$$target \
			-max_total_time=$(FUZZ_TIME) -artifact_prefix=build/fuzz/ -print_final_stats=1 \
			|| exit 1; \
	done

# Add to the committed corpus what `make fuzz` found that reaches code the
# corpus does not: libFuzzer's merge, counting edges only (-use_counters=0),
# not how often each runs, keeps the additions few and small.
fuzz-merge: $(STAMP_DEV)
	@for target in $(FUZZ_TARGETS); do \
		mkdir -p build/fuzz/$$target; \
		$(BIN)/python -m fuzz.$$target fuzz/corpus/$$target build/fuzz/$$target \
			-merge=1 -use_counters=0 > build/fuzz/merge-$$target.log 2>&1 \
			|| { cat build/fuzz/merge-$$target.log; exit 1; }; \
		echo "$$target: $$(grep 'MERGE-OUTER: .* new files' build/fuzz/merge-$$target.log)"; \
	done

# The C accelerator fuzzed with coverage of its own C code, under
# AddressSanitizer and UndefinedBehaviorSanitizer: fuzz/native.sh builds it
# with clang into build/fuzz-native (the installed one is left alone), then the
# speedups target runs on it for FUZZ_TIME seconds with the sanitizer runtime
# preloaded. Python's own allocator would hide overflows of its objects from
# ASan, hence PYTHONMALLOC=malloc; the interpreter's leaks at exit are not ours.
# Debian's clang is installed once per machine. Not part of `make test`.
CLANG := /usr/bin/clang
NATIVE := build/fuzz-native

$(CLANG):
	@echo "Installing Debian's clang and its sanitizer runtimes for make fuzz-native (once per machine)..."
	$(SUDO) apt-get update -qq
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends clang libclang-rt-dev >/dev/null

fuzz-native: $(STAMP_DEV) $(CLANG)
	$(BIN)/python -c "import atheris" 2>/dev/null || $(BIN)/python -m pip install --quiet -e '.[fuzz]'
	fuzz/native.sh $(BIN)/python $(NATIVE)
	mkdir -p $(NATIVE)/corpus
	PYTHONPATH=$(NATIVE) LD_PRELOAD=$(NATIVE)/asan_with_fuzzer.so PYTHONMALLOC=malloc \
		ASAN_OPTIONS=detect_leaks=0 \
		$(BIN)/python -m fuzz.speedups $(NATIVE)/corpus fuzz/corpus/speedups \
		-max_total_time=$(FUZZ_TIME) -artifact_prefix=$(NATIVE)/ -print_final_stats=1

clean:
	rm -rf $(VENV) .venv-*/ .mypy_cache .pytest_cache .ruff_cache .coverage build src/*.egg-info
	rm -f src/tether/*.so
	rm -rf $(NODE_PEER)/node_modules
