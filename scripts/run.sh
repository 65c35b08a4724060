#!/usr/bin/env bash
# `make run`: otelcol-mmap ($CONFIG) reading $RUN_DIR/*.otlp, and the demo
# application writing $RUN_DIR/demo.otlp at a few requests per second.
#
# It ends, after RUN_FOR (e.g. 30s) or at Ctrl-C, with what the product is
# for: the demo gets stuck in a request and is killed with SIGKILL while the
# request's spans are open. The Collector still receives everything the demo
# wrote, and the spans that were open arrive as incomplete spans
# (otlp_mmap.incomplete=true); the end shows them from $RUN_DIR/spans.txt.
set -euo pipefail
: "${RUN_DIR:?}" "${CONFIG:?}" "${DIST:?}" "${DEMO:?}"
mkdir -p "$RUN_DIR"
rm -f "$RUN_DIR"/*.otlp "$RUN_DIR"/*.txt
export OTLP_MMAP_DIR="$RUN_DIR"

collector=
demo=
cleanup() {
  trap - EXIT INT TERM
  for p in $demo $collector; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT
# The Collector and the demo run in sessions of their own, so Ctrl-C reaches
# only this script, which then plays the ending below.
trap 'echo' INT TERM

# Paths as seen from here (make runs this in the repository).
run_dir="${RUN_DIR#"$PWD"/}"

# wait_for SECONDS COMMAND...: runs COMMAND every 0.2 s until it succeeds.
wait_for() {
  local deadline=$((SECONDS + $1))
  shift
  until "$@"; do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.2
  done
}

echo "==> otelcol-mmap --config ${CONFIG#"$PWD"/}: reads $run_dir/*.otlp, prints a line per batch"
setsid "$DIST" --config "$CONFIG" &
collector=$!
sleep 1
if [ -n "${RUN_FOR:-}" ]; then ends="after $RUN_FOR (or at Ctrl-C)"; else ends="at Ctrl-C"; fi
echo "==> the demo app; it ends $ends"
setsid "$DEMO" "$run_dir/demo.otlp" &
demo=$!

if [ -n "${RUN_FOR:-}" ]; then
  sleep "$RUN_FOR" &
  wait $! || true
else
  wait "$demo" || true
fi
if ! kill -0 "$demo" 2>/dev/null; then
  echo "==> the demo app has stopped by itself"
  exit 1
fi

echo "==> the demo gets stuck in a request (kill -USR1): its spans stay open"
kill -USR1 "$demo"
# The stuck request's last log record reaching the Collector shows that the
# demo is inside the request, and that everything before it has arrived.
if ! wait_for 10 grep -qs 'calling the payment service' "$run_dir/logs.txt"; then
  echo "==> the stuck request's log record did not arrive within 10 s"
fi
echo "==> kill -KILL $demo: the demo dies in the middle of the request"
kill -KILL "$demo"
{ wait "$demo"; } 2>/dev/null || true  # no "Killed" job notice
demo=
if ! wait_for 10 grep -qs 'otlp_mmap.incomplete=true' "$run_dir/spans.txt"; then
  echo "==> no incomplete span arrived within 10 s"
  exit 1
fi
echo "==> the last log records otelcol-mmap received from the killed demo ($run_dir/logs.txt):"
grep -v -E '^(Logs|ResourceLog #|ScopeLog #|\s*$)' "$run_dir/logs.txt" | tail -n 2 | sed 's/^/    /'
echo "==> and the spans that were open when it died, as incomplete spans ($run_dir/spans.txt):"
grep 'otlp_mmap.incomplete=true' "$run_dir/spans.txt" | sed 's/^/    /'
echo "==> stopping otelcol-mmap"
kill -TERM "$collector"
wait "$collector" || true
collector=
