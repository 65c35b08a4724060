#!/usr/bin/env bash
# `make run`: starts otelcol-mmap on $RUN_DIR/*.otlp with the debug exporter,
# then the demo application writing into $RUN_DIR/demo.otlp. Ctrl-C stops
# both; RUN_FOR=20s stops by itself.
set -euo pipefail
: "${RUN_DIR:?}" "${CONFIG:?}" "${DIST:?}" "${DEMO:?}"
mkdir -p "$RUN_DIR"
rm -f "$RUN_DIR"/*.otlp
export OTLP_MMAP_DIR="$RUN_DIR"

pids=()
cleanup() {
  trap - INT TERM EXIT
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup INT TERM EXIT

echo "==> otelcol-mmap --config $CONFIG   (reading $RUN_DIR/*.otlp)"
"$DIST" --config "$CONFIG" &
pids+=($!)
sleep 1
echo "==> demo app writing $RUN_DIR/demo.otlp (Ctrl-C to stop)"
"$DEMO" "$RUN_DIR/demo.otlp" &
pids+=($!)

if [ -n "${RUN_FOR:-}" ]; then
  sleep "$RUN_FOR"
  echo "==> RUN_FOR=$RUN_FOR elapsed, stopping"
else
  wait -n "${pids[@]}" || true
fi
