#!/usr/bin/env bash
# Builds a user's own Collector distribution (testdata/own-distribution) by
# the steps of go/mmapreceiver/README.md ("Use the `mmap` receiver in your own
# distribution"), with the receiver module copied outside this repository and
# the Rust library found only through CGO_LDFLAGS, then runs it against a
# writer and checks the data at an OTLP endpoint (go/e2e,
# TestOwnDistribution). Called by `make test-own-distribution`, which builds
# the library, the otlp-mmap tool and ocb first.
#
# Environment: OCB (the builder), OTLP_MMAP_TOOL (the otlp-mmap tool);
# KEEP_OWN_DISTRIBUTION=1 keeps the temporary directory.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
: "${OCB:?OCB (the Collector Builder) is not set: run make test-own-distribution}"
: "${OTLP_MMAP_TOOL:?OTLP_MMAP_TOOL is not set: run make test-own-distribution}"
GO="${GO:-go}" # may carry a prefix (make passes e.g. "nice go"): split on purpose

work="$(mktemp -d "${TMPDIR:-/tmp}/own-distribution.XXXXXX")"
if [ "${KEEP_OWN_DISTRIBUTION:-}" = 1 ]; then
	echo "own-distribution: keeping $work"
else
	trap 'rm -rf "$work"' EXIT
fi

# The module as a user gets it: a copy with nothing of this repository
# around it (stands in for the module cache).
mkdir -p "$work/mmapreceiver"
(cd "$root/go/mmapreceiver" && git ls-files -z | xargs -0 cp --parents -t "$work/mmapreceiver")
if grep -rn --include='*.go' '\.\./\.\./\.\./\.\.' "$work/mmapreceiver"; then
	echo "own-distribution: the module refers to paths outside itself" >&2
	exit 1
fi

# Step 1 of the README: the Rust library, built with
# `cargo build --release -p otlp-mmap-ffi` (make ffi did); a user keeps it in
# any directory.
mkdir -p "$work/lib"
cp "$root/target/release/libotlp_mmap_ffi.a" "$work/lib/"

# Step 2: the manifest, then ocb with the library directory in CGO_LDFLAGS.
cp "$root/testdata/own-distribution/builder-config.yaml" "$work/"
cd "$work"
start=$SECONDS
CGO_ENABLED=1 CGO_LDFLAGS="-L$work/lib" "$OCB" --config builder-config.yaml
echo "own-distribution: built in $((SECONDS - start))s"

# The data path: a writer, the built Collector, a sink.
cd "$root/go/e2e"
OWN_DISTRIBUTION="$work/otelcol-own/otelcol-own" OTLP_MMAP_TOOL="$OTLP_MMAP_TOOL" \
	$GO test -count=1 -v -run 'TestOwnDistribution' ./...
