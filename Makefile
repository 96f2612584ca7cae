# mosfw -- `make demo` sets everything up and runs midstat on the bundled
# capture; `make test` runs the whole suite. Both work on a fresh Debian
# machine as root (system packages are installed where missing).

PYTHON ?= python3
VENV   := .venv
VPY    := $(VENV)/bin/python
STAMP  := $(VENV)/.mosfw-deps
CC     ?= gcc
CWARN  := -Wall -Wextra -Wshadow -Wno-unused-parameter -Werror
NATIVE_SRC := $(wildcard native/*.c)
NATIVE_HDR := $(wildcard native/*.h) native/mosfw_api.cdef native/build_ffi.py \
              native/python/dispatch.c setup.py \
              $(wildcard samples/tracker/native/*) samples/tracker/build_zeek.py \
              samples/tracker/setup.py samples/tracker/pyproject.toml \
              $(wildcard plugins/redis_sink/native/*) plugins/redis_sink/build_resp.py
ASAN_BIN := native/build-asan/mosfw-replay
DEMO_PCAP := tests/multicore/data/http_ipv6.pcap
PYTEST_ARGS ?=

.PHONY: all demo test build sysdeps asan lint format clean bench docs fuzz fuzz-build

all: build

sysdeps:
	@scripts/ensure-sysdeps.sh

$(STAMP): pyproject.toml plugins/prometheus/pyproject.toml plugins/redis_sink/pyproject.toml \
          plugins/kafka_sink/pyproject.toml | sysdeps
	$(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade pip
	$(VPY) -m pip install -q "setuptools>=61" wheel "cffi>=1.15" "attrs>=23.1" "pluggy>=1.3" "click>=8.1" \
	    "pytest>=7.4" "pytest-benchmark>=4.0" "hypothesis>=6.80" "sphinx>=7" "myst-parser>=2" \
	    "ruff>=0.17.6,<0.18" "mypy>=2.4.1,<2.5" \
	    "prometheus_client>=0.17" "redis>=4.5" "confluent-kafka>=2.0" "dask[distributed]>=2024.1"
	touch $@

# mosfw in editable mode, then the tracker's C part in place
# (samples/tracker/_zeek.abi3.so, for -p samples/tracker): the tracker is a
# package of its own (samples/tracker/setup.py), not part of mosfw's wheel;
# the same for the Redis sink's (plugins/redis_sink/mosfw_redis/_resp.abi3.so).
mosfw/_native.abi3.so: $(STAMP) $(NATIVE_SRC) $(NATIVE_HDR)
	$(VPY) -m pip install -q --no-build-isolation --no-deps -e . --config-settings editable_mode=compat
	cd samples/tracker && $(CURDIR)/$(VPY) setup.py -q build_ext --inplace --force
	$(VPY) -m pip install -q --no-build-isolation --no-deps -e plugins/redis_sink -e plugins/kafka_sink
	cd plugins/redis_sink && $(CURDIR)/$(VPY) setup.py -q build_ext --inplace --force
	@$(VPY) -m compileall -q mosfw plugins samples >/dev/null
	@touch $@

build: mosfw/_native.abi3.so

# The sanitizer build of the engine (ASan+UBSan, warnings are errors),
# a C driver run over every test capture by tests/native/test_sanitizers.py.
$(ASAN_BIN): $(NATIVE_SRC) $(wildcard native/*.h) native/tools/replay.c | sysdeps
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 -g -O1 $(CWARN) -fsanitize=address,undefined -fno-sanitize-recover=all \
	    -fno-omit-frame-pointer -DMOSFW_CHECK_FEED $(NATIVE_SRC) native/tools/replay.c -o $@ -lpcap -lm -lpthread

asan: $(ASAN_BIN)

demo: build
	samples/midstat/midstat -r $(DEMO_PCAP)

test: build asan lint
	$(VPY) -m pytest $(PYTEST_ARGS)

# Static checks (configured in pyproject.toml and native/.clang-format):
# ruff lint + format check, mypy on mosfw/ (strict on the public API
# modules), clang-format on the C sources. `make format` applies the
# formatters and ruff's safe fixes.
RUFF := $(VENV)/bin/ruff
CLANG_FORMAT ?= clang-format
# hand-written C: tracked or new, not ignored (build outputs, cffi's
# generated mosfw/_native.c and any samples/*/_*.c are ignored or elsewhere)
C_FORMAT_SRC = $(shell git ls-files --cached --others --exclude-standard -- \
                 'native/*.c' 'native/*.h' 'samples/*.c' 'samples/*.h' 'plugins/*.c' 'plugins/*.h' 2>/dev/null || \
                 find native -name '*.[ch]' -not -path 'native/build-*')
C_FORMAT_STYLE := --style=file:native/.clang-format

# every check runs, then lint fails if any did
lint: $(STAMP)
	@st=0; \
	echo "ruff check"; $(RUFF) check . || st=1; \
	echo "ruff format --check"; $(RUFF) format --check . || st=1; \
	echo "mypy"; $(VPY) -m mypy || st=1; \
	echo "clang-format --dry-run -Werror"; \
	$(CLANG_FORMAT) $(C_FORMAT_STYLE) --dry-run -Werror $(C_FORMAT_SRC) || st=1; \
	exit $$st

format: $(STAMP)
	$(RUFF) check --fix-only .
	$(RUFF) format .
	$(CLANG_FORMAT) $(C_FORMAT_STYLE) -i $(C_FORMAT_SRC)

# libFuzzer harnesses (clang); `make test` runs a 30 s fuzz pass, this a
# longer one: make fuzz FUZZ_SECONDS=1800
FUZZ_SECONDS ?= 600
fuzz-build: | sysdeps
	native/fuzz/build.sh

fuzz: build
	MOSFW_FUZZ_SECONDS=$(FUZZ_SECONDS) $(VPY) -m pytest -q tests/hostile/test_fuzz.py

docs: build
	$(VPY) -m sphinx -W -b html docs docs/_build/html
	@echo "docs: docs/_build/html/index.html"

bench: build
	$(VPY) bench/run_bench.py

clean:
	rm -rf build native/build-asan native/build-fuzz mosfw/_native*.so mosfw/_native.c *.egg-info \
	    samples/tracker/_zeek*.so samples/tracker/_zeek.c plugins/redis_sink/mosfw_redis/_resp*.so \
	    plugins/redis_sink/build
