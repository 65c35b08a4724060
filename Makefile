# otelcol-mmap: `make run` builds everything and shows the demo's telemetry
# arriving in the Collector; `make test` runs every test.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
ROOT := $(CURDIR)
GO ?= go
CARGO ?= cargo
CC ?= cc
OCB_VERSION := v0.165.0
BIN := $(ROOT)/bin
OCB := $(BIN)/builder
DIST := $(ROOT)/build/otelcol-mmap/otelcol-mmap
FFI_LIB := $(ROOT)/target/release/libotlp_mmap_ffi.a
FFI_NATIVE_LIBS := -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc
RELEASE_BINS := $(ROOT)/target/release/otlp-mmap $(ROOT)/target/release/examples/demo $(ROOT)/target/release/examples/crashy
VECTORS := $(ROOT)/testdata/vectors/upstream-v1
RUN_DIR ?= $(ROOT)/tmp/run
RUN_FOR ?=
CONFIG ?= $(ROOT)/testdata/configs/demo.yaml
export CGO_ENABLED := 1
# The receiver links the library by name (-lotlp_mmap_ffi); its directory
# comes from CGO_LDFLAGS, as in a user's own build (go/mmapreceiver/README.md).
export CGO_LDFLAGS := -L$(ROOT)/target/release
# Go's build cache ignores the .a named in the cgo flags: a link flag carrying
# the library's digest makes every Go link see a new library.
FFI_DIGEST = $(shell sha256sum $(FFI_LIB) 2>/dev/null | cut -c1-16)
FFI_LDFLAGS = -X github.com/otelcol-mmap/mmapreceiver/internal/ffi.libraryDigest=$(FFI_DIGEST)

.PHONY: all build ffi release-bins ocb run test test-rust test-c test-go test-e2e test-own-distribution test-python python-venv soak fuzz header lint fmt bench clean

all: build

## ffi: the Rust static library the Go receiver links (release).
ffi:
	$(CARGO) build --release -p otlp-mmap-ffi

## release-bins: the otlp-mmap tool and the demo application (release).
release-bins:
	$(CARGO) build --release -p otlp-mmap-cli -p opentelemetry-mmap --bin otlp-mmap --example demo --example crashy

## ocb: the OpenTelemetry Collector Builder, installed into ./bin when missing.
ocb: $(OCB)
$(OCB):
	GOBIN=$(BIN) $(GO) install go.opentelemetry.io/collector/cmd/builder@$(OCB_VERSION)

## build: the otelcol-mmap distribution (ffi first, then ocb with cgo).
build: ffi release-bins $(OCB)
	mkdir -p $(ROOT)/build
	$(OCB) --config $(ROOT)/builder-config.yaml --ldflags='-s -w $(FFI_LDFLAGS)'

## run: build, start otelcol-mmap with the default config and run the demo app; it ends (RUN_FOR=30s, or
## Ctrl-C) by killing the demo with SIGKILL mid-request and showing its open spans arrive as incomplete spans.
run: build
	RUN_DIR=$(RUN_DIR) RUN_FOR=$(RUN_FOR) CONFIG=$(CONFIG) DIST=$(DIST) DEMO=$(ROOT)/target/release/examples/demo \
		$(ROOT)/scripts/run.sh

## test: the lints, then every test: Rust, the C header and example, Go receiver, end-to-end,
## a user's own distribution, and the Python package.
test: lint test-rust test-c test-go test-e2e test-own-distribution test-python

test-rust:
	$(CARGO) test --workspace --exclude otlp-mmap-bench

## test-c: the header is current and a C program links the static library.
test-c: ffi release-bins
	$(CARGO) test -p otlp-mmap-ffi --test header
	mkdir -p $(ROOT)/tmp/c
	$(CC) -Wall -Werror -I$(ROOT)/rust/otlp-mmap-ffi/include $(ROOT)/rust/otlp-mmap-ffi/examples/c/count_spans.c \
		$(FFI_LIB) $(FFI_NATIVE_LIBS) -o $(ROOT)/tmp/c/count_spans
	cp $(VECTORS)/spans.otlp $(ROOT)/tmp/c/spans.otlp
	test "$$($(ROOT)/tmp/c/count_spans $(ROOT)/tmp/c/spans.otlp)" = 16
	cp $(VECTORS)/spans.otlp $(ROOT)/tmp/c/spans.otlp
	test "$$($(ROOT)/tmp/c/count_spans $(ROOT)/tmp/c/spans.otlp --incomplete)" = 17
	$(ROOT)/target/release/otlp-mmap write-sample --count 25 $(ROOT)/tmp/c/sample.otlp
	test "$$($(ROOT)/tmp/c/count_spans $(ROOT)/tmp/c/sample.otlp)" = 25
	@echo "C example: 3 passed, 0 failed"

test-go: ffi
	cd go/mmapreceiver && $(GO) vet ./... && OTLP_MMAP_CORPORA=$(ROOT)/rust/otlp-mmap-collector/fuzz/corpus/drive_file:$(ROOT)/rust/otlp-mmap-core/fuzz/corpus/open_and_drain \
		$(GO) test -count=1 -ldflags='$(FFI_LDFLAGS)' ./...

## test-e2e: the real otelcol-mmap binary fed by real writers, checked at an OTLP endpoint.
test-e2e: build
	cd go/e2e && OTELCOL_MMAP=$(DIST) OTLP_MMAP_TOOL=$(ROOT)/target/release/otlp-mmap \
		DEMO_APP=$(ROOT)/target/release/examples/demo CRASHY=$(ROOT)/target/release/examples/crashy $(GO) test -count=1 -v ./...

## test-own-distribution: a user's own distribution (testdata/own-distribution: the mmap receiver with
## contrib components), built by the documented steps from a copy of go/mmapreceiver outside this tree,
## then fed by a writer and checked at an OTLP endpoint (about 2.5 minutes after `make build`).
test-own-distribution: ffi release-bins $(OCB)
	OCB=$(OCB) OTLP_MMAP_TOOL=$(ROOT)/target/release/otlp-mmap $(ROOT)/scripts/own-distribution-test.sh

## python-venv: tmp/py-venv (kept; its packages reinstalled when python/requirements-test.txt changes)
## with the Python package's abi3 wheel, built by maturin, installed.
PY_VENV := $(ROOT)/tmp/py-venv
PYTHON ?= python3
python-venv:
	test -x $(PY_VENV)/bin/python || $(PYTHON) -m venv $(PY_VENV)
	cmp -s $(ROOT)/python/requirements-test.txt $(PY_VENV)/requirements-test.txt || \
		{ $(PY_VENV)/bin/pip install --quiet -r $(ROOT)/python/requirements-test.txt && \
		  cp $(ROOT)/python/requirements-test.txt $(PY_VENV)/requirements-test.txt; }
	rm -rf $(ROOT)/tmp/py-wheels
	@# maturin runs the cargo on PATH ($(CARGO) may be a command with a prefix).
	cd python && env -u CARGO $(PY_VENV)/bin/maturin build --quiet --release -i $(PY_VENV)/bin/python -o $(ROOT)/tmp/py-wheels
	$(PY_VENV)/bin/pip install --quiet --no-deps --force-reinstall $(ROOT)/tmp/py-wheels/opentelemetry_mmap-*.whl

## test-python: the Python package (python/tests): round trips through `otlp-mmap dump`, fork, the
## distro on a Flask app, and end to end through the built otelcol-mmap (every signal, SIGKILL, gunicorn).
test-python: build python-venv
	cd python && OTELCOL_MMAP=$(DIST) OTLP_MMAP_TOOL=$(ROOT)/target/release/otlp-mmap \
		$(PY_VENV)/bin/python -m pytest -p no:cacheprovider -v -rs tests

## soak: the long reliability tests (RELIABILITY.md): kills, restarts, a refusing
## pipeline, truncation races, 500 writers; each about SOAK_SECONDS (default 60).
SOAK_SECONDS ?= 60
soak: build
	cd go/e2e && SOAK=1 SOAK_SECONDS=$(SOAK_SECONDS) OTELCOL_MMAP=$(DIST) OTLP_MMAP_TOOL=$(ROOT)/target/release/otlp-mmap \
		DEMO_APP=$(ROOT)/target/release/examples/demo CRASHY=$(ROOT)/target/release/examples/crashy \
		$(GO) test -count=1 -v -timeout 30m -run 'TestWriterKilledMidStream|TestThreadedWriterKilledUnderLoad|TestCollectorKilledAndRestarted|TestTruncationNeverKillsTheCollector|TestPipelineRefuses|TestManyWriters|TestCrashLoopingWritersLeaveNoFiles|TestGracefulRestartWithStorage|TestCollectorKilledWithStorage' ./...

## fuzz: hostile files, FUZZ_SECONDS (default 60) through the format decoder
## (core) and FUZZ_SECONDS through the production path (FileReader poll/commit/
## collect, tests/fuzz_replay.rs): libFuzzer via cargo-fuzz on nightly when
## installed, otherwise the proptest mutation suites in release (the
## production-path one prints its cases/s; the core one is stopped by timeout,
## a timeout is a pass).
FUZZ_SECONDS ?= 60
fuzz:
	if $(CARGO) fuzz --version >/dev/null 2>&1 && rustup run nightly rustc --version >/dev/null 2>&1; then \
		(cd rust/otlp-mmap-core/fuzz && $(CARGO) +nightly fuzz run open_and_drain -- -max_total_time=$(FUZZ_SECONDS)); \
		(cd rust/otlp-mmap-collector/fuzz && $(CARGO) +nightly fuzz run drive_file -- -max_total_time=$(FUZZ_SECONDS)); \
	else \
		echo "cargo-fuzz or nightly missing: running the proptest mutation suites for 2 x $(FUZZ_SECONDS)s instead"; \
		$(CARGO) test --release -p otlp-mmap-core --test corruption --no-run; \
		$(CARGO) test --release -p otlp-mmap-collector --test hostile; \
		OTLP_MMAP_FUZZ_SECONDS=$(FUZZ_SECONDS) $(CARGO) test --release -p otlp-mmap-collector --test fuzz_replay -- --nocapture; \
		rc=0; OTLP_MMAP_FUZZ_CASES=100000000 timeout $(FUZZ_SECONDS) \
			$(CARGO) test --release -p otlp-mmap-core --test corruption -- --test-threads=2 || rc=$$?; \
		if [ $$rc -eq 124 ]; then echo "fuzz: no failure in $(FUZZ_SECONDS)s"; else exit $$rc; fi; \
	fi

## header: regenerate the C header with cbindgen.
header:
	UPDATE_HEADER=1 $(CARGO) test -p otlp-mmap-ffi --test header

## lint: rustfmt, clippy (the [workspace.lints] of Cargo.toml, warnings are errors), gofmt, go vet.
lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	cd go/mmapreceiver && test -z "$$(gofmt -l .)" && $(GO) vet ./...

fmt:
	$(CARGO) fmt --all
	gofmt -w go

clean:
	$(CARGO) clean
	rm -rf build tmp bin

## bench: end-to-end benchmark, mmap path vs OTLP/gRPC path (cost rows 3 times: about 17 min on 2 cores after the build, with the tracing, ring-size, Python and storage sections); writes BENCHMARKS.md and bench/img/*.png.
BENCH_VENV := $(ROOT)/tmp/bench-venv
bench: build python-venv
	$(CARGO) build --release -p otlp-mmap-bench
	mkdir -p $(ROOT)/tmp/bench
	cd $(ROOT)/bench/sink && $(GO) build -o $(ROOT)/tmp/bench/sink .
	cd $(ROOT)/build/otelcol-mmap && $(GO) build -mod=mod -trimpath -ldflags='$(FFI_LDFLAGS)' -o $(ROOT)/tmp/bench/otelcol-mmap-symbols .
	test -x $(BENCH_VENV)/bin/python || python3 -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -c 'import matplotlib' 2>/dev/null || $(BENCH_VENV)/bin/pip install --quiet 'matplotlib>=3.8,<4'
	@# valgrind and perf are optional: missing, their sections are skipped (nothing is installed).
	@command -v valgrind >/dev/null || echo "bench: valgrind not installed: instruction counts (callgrind) skipped"
	@command -v perf >/dev/null || echo "bench: perf not installed: profiles skipped"
	@command -v $(CC) >/dev/null || echo "bench: $(CC) not installed: machine speed skipped"
	OTELCOL_MMAP=$(DIST) python3 $(ROOT)/bench/run.py
	$(BENCH_VENV)/bin/python $(ROOT)/bench/report.py
