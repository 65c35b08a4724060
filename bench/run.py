#!/usr/bin/env python3
"""End-to-end benchmark of the mmap path against the OTLP/gRPC path.

Run by `make bench` (which builds everything first); writes
tmp/bench/results.json, which bench/report.py turns into BENCHMARKS.md and
the charts under bench/img/.

    app (otlp-mmap-bench --mode mmap-provider|mmap-processor) -> file -> otelcol-mmap `mmap` receiver -> nop
    app (otlp-mmap-bench --mode otlp: SDK batch processor + tonic)  -> otelcol-mmap `otlp` receiver (gRPC) -> nop

Every scenario starts a fresh Collector (so its VmHWM is the peak of that
scenario alone) with its own telemetry on a Prometheus pull endpoint, which
is scraped only to count what was accepted. Standard library only.

Environment: BENCH_SCALE (default 1.0) multiplies every workload count;
BENCH_SKIP a comma list of sections to skip (see SECTIONS at the end; "speed"
skips the machine-speed loop);
BENCH_TRIALS (default 3) how often each cost row runs (medians and min-max
are reported).

Each section is one function `name(results, workdir)` that stores its rows
under results[name]; SECTIONS lists them in running order. A new row of the
benchmark is a new section function plus its entry there (and its section in
bench/report.py).
"""

import itertools
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DIST = Path(os.environ.get("OTELCOL_MMAP", ROOT / "build/otelcol-mmap/otelcol-mmap"))
APP = Path(os.environ.get("BENCH_APP", ROOT / "target/release/otlp-mmap-bench"))
SINK = Path(os.environ.get("BENCH_SINK", ROOT / "tmp/bench/sink"))
# The same distribution linked without stripping (`make bench` builds it from
# build/otelcol-mmap with `go build`): only for perf profiles, which need symbols.
PROFILE_DIST = Path(os.environ.get("BENCH_PROFILE_DIST", ROOT / "tmp/bench/otelcol-mmap-symbols"))
OUT = ROOT / "tmp/bench"
SCALE = float(os.environ.get("BENCH_SCALE", "1"))
SKIP = set(filter(None, os.environ.get("BENCH_SKIP", "").split(",")))
CLK_TCK = os.sysconf("SC_CLK_TCK")

# The paced rate of the cost runs: low enough that no path drops anything.
COST_RATE = 20_000
# storage: records/s, seconds, spans held open in the second pair of rows.
STORAGE_RATE, STORAGE_SECONDS, STORAGE_HOLD = 5_000, 10, 10_000
COST_COUNT = {"spans": 200_000, "logs": 200_000, "metrics": 400_000}
MODES = {
    "spans": ["mmap-provider", "mmap-processor", "otlp"],
    "logs": ["mmap-provider", "mmap-processor", "otlp"],
    "metrics": ["mmap-provider", "otlp"],
}
# Restrict the cost rows (experiments): BENCH_SIGNALS=spans,logs BENCH_MODES=mmap-provider,otlp
if os.environ.get("BENCH_SIGNALS"):
    MODES = {k: v for k, v in MODES.items() if k in os.environ["BENCH_SIGNALS"].split(",")}
if os.environ.get("BENCH_MODES"):
    MODES = {k: [m for m in v if m in os.environ["BENCH_MODES"].split(",")] for k, v in MODES.items()}
RAMP = [25_000, 50_000, 100_000, 150_000, 200_000, 300_000, 0]  # spans/s; 0 = as fast as one thread can
RAMP_SECONDS = 3.0
LATENCY_RATE = 1000
LATENCY_SECONDS = 10
SPORADIC_RATE = 5  # spans/s, for 2 x LATENCY_SECONDS
IDLE_FILES = 10
IDLE_SECONDS = int(os.environ.get("BENCH_IDLE_SECONDS", "30"))
# Cost rows run TRIALS times, in rounds over all rows (drift on a shared
# machine then spreads over every row instead of favouring one path).
TRIALS = max(1, int(os.environ.get("BENCH_TRIALS", "3")))
# Unpaced app-cost runs: items per run and the ring/queue sizes that hold them
# all, so that nothing drops although the app outruns the Collector.
APP_COUNT = {"spans": 30_000, "logs": 30_000, "metrics": 30_000}
BIG_RINGS = {"OTEL_MMAP_SPAN_SLOTS": str(1 << 16), "OTEL_MMAP_LOG_SLOTS": str(1 << 15),
             "OTEL_MMAP_METRIC_SLOTS": str(1 << 15), "OTEL_BSP_MAX_QUEUE_SIZE": str(1 << 16),
             "OTEL_BLRP_MAX_QUEUE_SIZE": str(1 << 16)}


def log(*a):
    print("[bench]", *a, file=sys.stderr, flush=True)


def median(xs):
    xs = sorted(xs)
    n = len(xs)
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2


def summarize(trials):
    """Per numeric key of a list of dicts (nested dicts too): the median; `spread` holds [min, max] per key."""
    out, spread = {}, {}
    for k, v in trials[0].items():
        vals = [t[k] for t in trials]
        if isinstance(v, bool) or not isinstance(v, (int, float, dict)):
            out[k] = v
        elif isinstance(v, dict):
            out[k], spread[k] = summarize(vals)
        else:
            out[k] = median(vals)
            spread[k] = [min(vals), max(vals)]
    return out, spread


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def loadavg():
    return [float(x) for x in open("/proc/loadavg").read().split()[:3]]


def proc_cpu(pid):
    """User+system CPU seconds of a process, all threads (/proc/PID/stat fields 14 and 15)."""
    stat = open(f"/proc/{pid}/stat").read()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_cpu_ns(pid):
    """CPU seconds run by a process's live threads, in nanoseconds resolution (/proc/PID/task/*/schedstat, first
    field): the clock-tick counters of /proc/PID/stat resolve only 10 ms, too coarse for an idle Collector."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            pass
    return total / 1e9


def proc_status_kb(pid, key):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(key + ":"):
            if key.endswith("ctxt_switches"):
                return int(line.split()[1])
            return int(line.split()[1])
    return 0


class Collector:
    """otelcol-mmap with one receiver and the nop (or otlp_http) exporter."""

    def __init__(self, name, receiver, workdir, exporter="nop", sink_url=None, extra_receiver_cfg="", binary=None):
        self.name = name
        self.binary = binary or DIST
        self.receiver = receiver
        # Its own directory of files unless given one (idle): files of earlier rows would still be polled.
        self.workdir = Path(workdir) if receiver == "mmap" and name.startswith("idle") else Path(workdir) / name
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.grpc_port = free_port()
        self.tel_port = free_port()
        # Idle and cost runs keep every default (scan_interval 1s: the cost rows' app pauses 1.5 s after its warm-up,
        # so its file is found before the measured items); the others scan every 100ms so that a new file is found
        # at once.
        scan = "" if name.startswith(("idle", "cost-")) else "    scan_interval: 100ms\n"
        if receiver == "mmap":
            rcv = f"""  mmap:
    include: ["{self.workdir}/*.otlp"]
{scan}    metrics:
      collection_interval: 1s
{extra_receiver_cfg}"""
        else:
            rcv = f"""  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:{self.grpc_port}
"""
        if exporter == "nop":
            exp = "  nop:\n"
        else:
            exp = f"""  otlp_http:
    endpoint: {sink_url}
    compression: none
"""
        self.config = f"""receivers:
{rcv}
exporters:
{exp}
service:
  telemetry:
    logs:
      level: warn
    metrics:
      level: normal
      readers:
        - pull:
            exporter:
              prometheus:
                host: 127.0.0.1
                port: {self.tel_port}
  pipelines:
    traces: {{receivers: [{receiver}], exporters: [{exporter}]}}
    logs: {{receivers: [{receiver}], exporters: [{exporter}]}}
    metrics: {{receivers: [{receiver}], exporters: [{exporter}]}}
"""

    def __enter__(self):
        cfg = OUT / f"collector-{self.name}.yaml"
        cfg.write_text(self.config)
        self.logf = open(OUT / f"collector-{self.name}.log", "w")
        self.proc = subprocess.Popen([str(self.binary), "--config", str(cfg)], stdout=self.logf, stderr=self.logf)
        deadline = time.time() + 30
        while True:
            try:
                self.metrics()
                if self.receiver == "otlp":
                    socket.create_connection(("127.0.0.1", self.grpc_port), timeout=1).close()
                break
            except OSError:
                if self.proc.poll() is not None or time.time() > deadline:
                    raise RuntimeError(f"collector {self.name} did not start: see {self.logf.name}")
                time.sleep(0.1)
        time.sleep(0.3)
        return self

    def __exit__(self, *exc):
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.logf.close()

    @property
    def pid(self):
        return self.proc.pid

    def cpu(self):
        return proc_cpu(self.pid)

    def hwm_kb(self):
        return proc_status_kb(self.pid, "VmHWM")

    def metrics(self):
        """The Collector's own metrics: {name: summed value over series, name{signal=x}: value}."""
        body = urllib.request.urlopen(f"http://127.0.0.1:{self.tel_port}/metrics", timeout=5).read().decode()
        out = {}
        for line in body.splitlines():
            if not line or line.startswith("#"):
                continue
            m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)", line)
            if not m:
                continue
            name, labels, value = m.group(1), m.group(2) or "", float(m.group(3))
            out[name] = out.get(name, 0.0) + value
            sig = re.search(r'signal="(\w+)"', labels)
            if sig:
                out[f"{name}{{{sig.group(1)}}}"] = value
        return out

    def delivered(self, signal_name):
        """Items of a signal that arrived (mmap metrics: measurements read; else accepted items)."""
        m = self.metrics()
        if signal_name == "spans":
            return m.get("otelcol_receiver_accepted_spans", 0)
        if signal_name == "logs":
            return m.get("otelcol_receiver_accepted_log_records", 0)
        if self.receiver == "mmap":
            return m.get("otelcol_receiver_mmap_records_read{metrics}", 0)
        return m.get("otelcol_receiver_accepted_metric_points", 0)


def app_cmd(mode, sig, count, rate, workdir, col, warmup=1000, extra=()):
    cmd = [str(APP), "--mode", mode, "--signal", sig, "--count", str(int(count)), "--rate", str(rate),
           "--warmup", str(warmup), "--pause-after-warmup-secs", "0.5" if mode == "otlp" else "1.5"]
    if mode == "otlp":
        cmd += ["--endpoint", f"http://127.0.0.1:{col.grpc_port}"]
    else:
        cmd += ["--file", str(col.workdir / f"{mode}-{sig}-{time.monotonic_ns()}.otlp")]
    return cmd + list(extra)


def run_app(cmd, col, env=None):
    """Runs the app; returns (its JSON, Collector CPU seconds from its measured start to its exit, app wall)."""
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env)
    first = p.stdout.readline()
    if first.strip() != "start":
        p.wait()
        raise RuntimeError(f"app did not start: {cmd} -> {first!r}")
    c0 = col.cpu() if col else 0
    rest = p.stdout.read()
    if p.wait() != 0:
        raise RuntimeError(f"app failed: {cmd}")
    return json.loads(rest.strip().splitlines()[-1]), c0


def wait_delivered(col, sig, expected, before, timeout=30.0):
    """Polls the Collector's count until `expected` more items arrived, or it stops moving."""
    deadline = time.time() + timeout
    last, still = -1, 0
    while True:
        got = col.delivered(sig) - before
        if got >= expected or time.time() > deadline:
            return got
        still = still + 1 if got == last else 0
        if still >= 10:  # two seconds without progress
            return got
        last = got
        time.sleep(0.2)


def receiver_defaults():
    """The mmap receiver's default poll_interval etc., read from its source (go/mmapreceiver/config.go)."""
    out = {}
    try:
        src = (ROOT / "go/mmapreceiver/config.go").read_text()
        for key, name in (("poll_interval", "defaultPollInterval"), ("flush_timeout", "defaultFlushTimeout"),
                          ("scan_interval", "defaultScanInterval")):
            m = re.search(name + r"\s*=\s*([0-9]+)\s*\*\s*time\.(Millisecond|Second|Microsecond)", src)
            if m:
                out[key] = m.group(1) + {"Millisecond": "ms", "Second": "s", "Microsecond": "µs"}[m.group(2)]
    except OSError:
        pass
    return out


def machine_speed():
    """The fixed CPU loop of bench/machine_speed.c (built here with cc): ns per iteration, fastest and median round."""
    cc = shutil.which(os.environ.get("CC", "cc"))
    if not cc:
        log("cc missing: machine speed skipped")
        return None
    exe = OUT / "machine-speed"
    subprocess.run([cc, "-O2", "-o", str(exe), str(ROOT / "bench/machine_speed.c")], check=True)
    out = subprocess.run([str(exe), "100000000", "5"], check=True, capture_output=True, text=True).stdout
    speed = json.loads(out)
    log(f"machine speed: {speed['ns_per_iteration_min']:.3f} ns per iteration (median round {speed['ns_per_iteration_median']:.3f})")
    return speed


def machine():
    model = ""
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    memtotal = 0
    for line in open("/proc/meminfo"):
        if line.startswith("MemTotal"):
            memtotal = int(line.split()[1])
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "mem_gib": round(memtotal / 1024 / 1024, 1),
        "kernel": platform.release(),
        "clocksource": Path("/sys/devices/system/clocksource/clocksource0/current_clocksource").read_text().strip()
        if Path("/sys/devices/system/clocksource/clocksource0/current_clocksource").exists()
        else "",
        "collector": str(DIST.relative_to(ROOT)) if DIST.is_relative_to(ROOT) else str(DIST),
    }


# ---------------------------------------------------------------- sections


def cost(results, workdir):
    """1-3: app CPU/allocations, Collector CPU and peak RSS, per item, paced so that nothing drops; every row
    TRIALS times (rounds over all rows), medians with `spread` [min, max] and the raw `trials`."""
    pacing = []
    trials = {}
    for trial in range(TRIALS):
        base, _ = run_app([str(APP), "--mode", "pacing", "--count", str(int(COST_COUNT["spans"] * SCALE)),
                           "--rate", str(COST_RATE)], None)
        pacing.append(base)
        log(f"trial {trial + 1}/{TRIALS}: pacing baseline {base['cpu_process_ns_per_item']:.0f} ns/item "
            f"(caller {base['cpu_caller_ns_per_item']:.0f})")
        for sig, modes in MODES.items():
            for mode in modes:
                trials.setdefault((sig, mode), []).append(cost_row(sig, mode, workdir))
    results["pacing"], results["pacing_spread"] = summarize(pacing)
    rows = []
    for runs in trials.values():
        row, spread = summarize(runs)
        row["dropped_max"] = max(r["app"]["dropped"] for r in runs)
        rows.append(row | {"spread": spread, "trials": runs})
    results["cost"] = rows


def tracing_cost(results, workdir):
    """`tracing` users: app and Collector cost per item of `--mode tracing` (tracing-opentelemetry and the
    appender bridge over the mmap providers, as rust/opentelemetry-mmap/examples/tracing.rs) and of
    `--mode tracing-layer` (opentelemetry-mmap's own MmapLayer), measured as `cost` does."""
    if "pacing" not in results:
        results["pacing"], _ = run_app([str(APP), "--mode", "pacing", "--count", str(int(COST_COUNT["spans"] * SCALE)),
                                        "--rate", str(COST_RATE)], None)
    rows = []
    for sig, mode in itertools.product(("spans", "logs"), ("tracing", "tracing-layer")):
        count = int(COST_COUNT[sig] * SCALE)
        with Collector(f"{mode}-{sig}", "mmap", workdir) as col:
            before = col.delivered(sig)
            load0 = loadavg()
            app, c0 = run_app(app_cmd(mode, sig, count, COST_RATE, workdir, col), col)
            expected = count + 1000
            got = wait_delivered(col, sig, expected, before)
            col_cpu = col.cpu() - c0
            hwm = col.hwm_kb()
        rows.append({"signal": sig, "mode": mode, "count": count, "rate": COST_RATE, "app": app,
                     "collector_cpu_s": col_cpu, "collector_hwm_kb": hwm, "delivered": got, "expected": expected,
                     "load": load0})
        log(f"{mode} {sig:7} app {app['cpu_process_ns_per_item']:7.0f} ns/item (caller {app['cpu_caller_ns_per_item']:6.0f}) "
            f"{app['allocs_per_item']:.2f} allocs/item; collector {col_cpu:.2f} s; delivered {got:.0f}/{expected}; "
            f"dropped {app['dropped']}")
    results["tracing"] = rows


# Ring-size sweep: spans ring slots x slot size, the mmap provider at a fixed rate into a running Collector.
SWEEP_SLOTS = [256, 1024, 4096, 16384, 65536]
SWEEP_SLOT_SIZES = [256, 512, 1024, 4096]
SWEEP_RATE = 100_000  # spans/s: two records each
SWEEP_COUNT = 300_000
SWEEP_MAX_RING = 64 << 20  # bytes: larger spans rings are left out (256 MiB of tmpfs per point is too much here)


def ring_sweep(results, workdir):
    """Spans ring geometry: for each slots x slot size, writer CPU per span, drops, app and Collector peak RSS,
    app minor page faults and file size, the mmap provider at SWEEP_RATE spans/s read by the real Collector."""
    rows = []
    count = int(SWEEP_COUNT * SCALE)
    for slots in SWEEP_SLOTS:
        for size in SWEEP_SLOT_SIZES:
            if slots * size > SWEEP_MAX_RING:
                continue
            env = dict(os.environ, OTEL_MMAP_SPAN_SLOTS=str(slots), OTEL_MMAP_SPAN_SLOT_SIZE=str(size))
            with Collector(f"sweep-{slots}x{size}", "mmap", workdir) as col:
                before = col.delivered("spans")
                cmd = app_cmd("mmap-provider", "spans", count, SWEEP_RATE, workdir, col, extra=["--hold-secs", "1"])
                path = Path(cmd[cmd.index("--file") + 1])
                app, c0 = run_app(cmd, col, env=env)
                got = wait_delivered(col, "spans", count + 1000, before)
                col_cpu = col.cpu() - c0
                hwm = col.hwm_kb()
                # As the app created it (the Collector deletes a dead writer's file once drained).
                file_bytes = app.get("file_bytes") or (path.stat().st_size if path.exists() else None)
            row = {"slots": slots, "slot_size": size, "count": count, "rate": SWEEP_RATE,
                   "caller_ns_per_span": app["cpu_caller_ns_per_item"], "app_ns_per_span": app["cpu_process_ns_per_item"],
                   "dropped": app["dropped"], "delivered": got, "app_max_rss_kb": app.get("max_rss_kb"),
                   "app_minor_faults": app.get("minor_faults"), "collector_hwm_kb": hwm,
                   "collector_cpu_s": col_cpu, "file_bytes": file_bytes}
            log(f"sweep {slots:6} x {size:5} B: caller {row['caller_ns_per_span']:6.0f} ns/span, dropped {row['dropped']}, "
                f"app RSS {row['app_max_rss_kb']} KiB, faults {row['app_minor_faults']}, collector HWM {hwm} KiB, "
                f"file {file_bytes} B")
            rows.append(row)
    results["ring_sweep"] = rows


def cost_row(sig, mode, workdir):
    """One paced run of one cost row, with a fresh Collector."""
    count = int(COST_COUNT[sig] * SCALE)
    receiver = "otlp" if mode == "otlp" else "mmap"
    with Collector(f"cost-{sig}-{mode}", receiver, workdir) as col:
        before = col.delivered(sig)
        load0 = loadavg()
        app, c0 = run_app(app_cmd(mode, sig, count, COST_RATE, workdir, col), col)
        expected = count + 1000 if not (sig == "metrics" and mode == "otlp") else 1
        if sig == "metrics" and mode == "otlp":
            # The SDK aggregates: what arrives are data points, not adds.
            got = wait_delivered(col, sig, 1, before)
        else:
            got = wait_delivered(col, sig, expected, before)
        col_cpu = col.cpu() - c0
        hwm = col.hwm_kb()
    row = {
        "signal": sig, "mode": mode, "count": count, "rate": COST_RATE,
        "app": app, "collector_cpu_s": col_cpu, "collector_hwm_kb": hwm,
        "delivered": got, "expected": expected, "load": load0,
    }
    log(f"cost {sig:7} {mode:14} app {app['cpu_process_ns_per_item']:7.0f} ns/item "
        f"(caller {app['cpu_caller_ns_per_item']:6.0f}) {app['allocs_per_item']:.2f} allocs/item; "
        f"collector {col_cpu:.2f} s, HWM {hwm/1024:.0f} MiB; delivered {got:.0f}/{expected}; dropped {app['dropped']}")
    return row


def app_cost(results, workdir):
    """1: app CPU per item, unpaced (no pacing loop to subtract), with rings and SDK queues that hold every item, so
    nothing drops although the app outruns the Collector; each row TRIALS times (rounds), medians and [min, max]."""
    env = dict(os.environ, **BIG_RINGS)
    trials = {}
    for trial in range(TRIALS):
        for sig, modes in MODES.items():
            for mode in modes:
                receiver = "otlp" if mode == "otlp" else "mmap"
                count = APP_COUNT[sig]
                with Collector(f"app-{sig}-{mode}", receiver, workdir) as col:
                    app, _ = run_app(app_cmd(mode, sig, count, 0, workdir, col), None, env=env)
                for f in col.workdir.glob("*.otlp"):
                    f.unlink()
                log(f"app {trial + 1}/{TRIALS} {sig:7} {mode:14} {app['cpu_process_ns_per_item']:7.0f} ns/item "
                    f"(caller {app['cpu_caller_ns_per_item']:6.0f}); dropped {app['dropped']}")
                trials.setdefault((sig, mode), []).append({"signal": sig, "mode": mode, "count": count, "app": app})
    rows = []
    for runs in trials.values():
        row, spread = summarize(runs)
        row["dropped_max"] = max(r["app"]["dropped"] for r in runs)
        rows.append(row | {"spread": spread, "trials": runs})
    results["app_cost"] = rows


def callgrind(results, workdir):
    """App-side instructions per item (valgrind callgrind, all threads; independent of machine load)."""
    if not shutil.which("valgrind"):
        log("valgrind missing: skipping instruction counts")
        return
    rows = []
    small, big = int(2000 * max(SCALE, 0.25)), int(12000 * max(SCALE, 0.25))
    env = dict(os.environ,
               OTEL_MMAP_SPAN_SLOTS=str(1 << 16), OTEL_MMAP_LOG_SLOTS=str(1 << 15), OTEL_MMAP_METRIC_SLOTS=str(1 << 15),
               OTEL_BSP_MAX_QUEUE_SIZE=str(1 << 16), OTEL_BLRP_MAX_QUEUE_SIZE=str(1 << 16))
    with Collector("callgrind", "otlp", workdir) as col:
        for sig, modes in MODES.items():
            for mode in modes:
                ir = []
                for n in (small, big):
                    out = OUT / f"callgrind.{sig}.{mode}.{n}.out"
                    cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", "--dump-instr=no"]
                    cmd += app_cmd(mode, sig, n, 0, workdir, col, warmup=1000)
                    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
                    total = 0
                    for line in out.read_text().splitlines():
                        if line.startswith("totals:") or line.startswith("summary:"):
                            total = int(line.split()[1])
                    ir.append(total)
                    out.unlink()
                    for f in col.workdir.glob("*.otlp"):
                        f.unlink()
                per = (ir[1] - ir[0]) / (big - small)
                rows.append({"signal": sig, "mode": mode, "instructions_per_item": per, "counts": [small, big], "totals": ir})
                log(f"callgrind {sig:7} {mode:14} {per:8.0f} instructions/item")
    results["callgrind"] = rows


def throughput(results, workdir):
    """4: ramp the span rate; delivered = accepted by the Collector / sent."""
    rows = []
    for mode in ["mmap-provider", "mmap-processor", "otlp"]:
        receiver = "otlp" if mode == "otlp" else "mmap"
        with Collector(f"ramp-{mode}", receiver, workdir) as col:
            for rate in RAMP:
                count = int((rate or 1_000_000) * RAMP_SECONDS * SCALE)
                before = col.delivered("spans")
                c0 = col.cpu()
                app, _ = run_app(app_cmd(mode, "spans", count, rate, workdir, col, warmup=0), None)
                got = wait_delivered(col, "spans", count, before, timeout=20)
                for f in col.workdir.glob("*.otlp"):  # the receiver drains and closes a deleted file
                    f.unlink()
                row = {"mode": mode, "target_rate": rate, "count": count, "achieved_rate": app["achieved_rate"],
                       "delivered": got, "delivered_fraction": got / count, "sdk_dropped": app["dropped"],
                       "collector_cpu_s": col.cpu() - c0, "load": loadavg()}
                log(f"ramp {mode:14} target {rate:7} achieved {app['achieved_rate']:9.0f}/s delivered {got/count:7.2%} "
                    f"sdk-dropped {app['dropped']}")
                rows.append(row)
    results["throughput"] = rows


def latency(results, workdir):
    """5: span end -> Collector -> otlp_http -> sink arrival, at LATENCY_RATE spans/s."""
    if not SINK.exists():
        log(f"{SINK} missing: skipping latency")
        return
    port = free_port()
    sink = subprocess.Popen([str(SINK), "-listen", f"127.0.0.1:{port}"])
    rows = []
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(50):
            try:
                urllib.request.urlopen(url + "/stats", timeout=1).read()
                break
            except OSError:
                time.sleep(0.1)
        poll = receiver_defaults().get("poll_interval", "?")
        cases = [("mmap-provider", {}, f"defaults (poll_interval {poll})"),
                 ("mmap-processor", {}, "defaults"),
                 ("otlp", {}, "defaults (OTEL_BSP_SCHEDULE_DELAY 5000 ms)"),
                 ("otlp", {"OTEL_BSP_SCHEDULE_DELAY": "100"}, "OTEL_BSP_SCHEDULE_DELAY=100")]
        # A sporadic writer: the receiver's loop has backed off to poll_interval between spans.
        cases.append(("mmap-provider", {}, f"defaults, {SPORADIC_RATE} spans/s (sporadic)"))
        for mode, extra_env, label in cases:
            receiver = "otlp" if mode == "otlp" else "mmap"
            rate = SPORADIC_RATE if "sporadic" in label else LATENCY_RATE
            with Collector(f"latency-{mode}{'-sporadic' if rate != LATENCY_RATE else ''}", receiver, workdir,
                           exporter="otlp_http", sink_url=url) as col:
                urllib.request.urlopen(urllib.request.Request(url + "/reset", method="POST"), timeout=5).read()
                count = int(rate * LATENCY_SECONDS * max(SCALE, 0.2) * (2 if rate != LATENCY_RATE else 1))
                before = col.delivered("spans")
                run_app(app_cmd(mode, "spans", count, rate, workdir, col, warmup=0),
                        None, env=dict(os.environ, **extra_env))
                wait_delivered(col, "spans", count, before, timeout=20)
                time.sleep(0.5)
                st = json.loads(urllib.request.urlopen(url + "/stats", timeout=5).read())
            row = {"mode": mode, "settings": label, "env": extra_env, "rate": rate, "count": count, **st}
            log(f"latency {mode:14} {label:40} n={st['count']} p50 {st['p50_ms']:.2f} ms p99 {st['p99_ms']:.2f} ms max {st['max_ms']:.2f} ms")
            rows.append(row)
    finally:
        sink.terminate()
        sink.wait()
    results["latency"] = rows


def perf_top(pid_or_cmd, seconds, name, limit=25):
    """perf record -e cpu-clock (-p PID for `seconds`, or a command); the hottest symbols (self time)."""
    data = OUT / f"perf.{name}.data"
    if isinstance(pid_or_cmd, int):
        cmd = ["perf", "record", "-q", "-e", "cpu-clock", "-F", "999", "-g", "-o", str(data), "-p", str(pid_or_cmd),
               "--", "sleep", str(seconds)]
    else:
        cmd = ["perf", "record", "-q", "-e", "cpu-clock", "-F", "4999", "-g", "-o", str(data), "--"] + pid_or_cmd
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return perf_report(data, limit)


def perf_report(data, limit=25, children=False):
    """The hottest symbols of a perf.data: self time, or with `children` the time including callees."""
    cmd = ["perf", "report", "-i", str(data), "--children" if children else "--no-children", "--stdio", "-g", "none",
           "--percent-limit", "2" if children else "0.5", "--sort", "dso,symbol"]
    rep = subprocess.run(cmd, capture_output=True, text=True).stdout
    top = []
    for line in rep.splitlines():
        if children:
            m = re.match(r"^\s+([0-9.]+)%\s+([0-9.]+)%\s+(\S+)\s+\[[.k]\]\s+(.*)$", line)
        else:
            m = re.match(r"^\s+([0-9.]+)%\s+(\S+)\s+\[[.k]\]\s+(.*)$", line)
        if not m:
            continue
        g = m.groups()
        sym = re.sub(r"(\s+-)+\s*$", "", g[-1]).strip()[:160]
        row = {"percent": float(g[0]), "dso": g[-2], "symbol": sym}
        if children:
            row["self_percent"] = float(g[1])
        top.append(row)
    return top[:limit]


def perf_classes(data):
    """Self time of a perf.data grouped by what it is (Go runtime, Rust library, pdata, kernel, libc, ...)."""
    rep = subprocess.run(["perf", "report", "-i", str(data), "--no-children", "--stdio", "-g", "none",
                          "--sort", "dso,symbol"], capture_output=True, text=True).stdout
    agg = {}
    for line in rep.splitlines():
        m = re.match(r"^\s+([0-9.]+)%\s+(\S+)\s+\[[.k]\]\s+(.*)$", line)
        if not m:
            continue
        p, dso, sym = float(m.group(1)), m.group(2), m.group(3).strip()
        if "kernel" in dso:
            k = "kernel (syscalls, futex/epoll wake-ups, page faults)"
        elif "libc" in dso:
            k = "libc (malloc/free/memmove; in the Collector only the Rust library uses it)"
        elif "vdso" in dso:
            k = "vdso (clock reads)"
        elif sym.startswith("runtime.") or sym.startswith("internal/runtime") or sym.startswith("gcWrite"):
            k = "Go runtime (scheduler, timers, GC, allocation)"
        elif "pdata" in sym or "google.golang.org/protobuf" in sym:
            k = "Go pdata protobuf (un)marshal"
        elif "grpc" in sym or "golang.org/x/net/http2" in sym or sym.startswith("net.") or sym.startswith("internal/poll"):
            k = "Go gRPC / HTTP/2 / net"
        elif "::" in sym or sym.startswith("_ZN") or sym.startswith("<"):
            k = "Rust library (om_reader_*: ring decode, span assembly, OTLP encode)"
        elif sym.startswith("0x") or sym.startswith("[unknown]"):
            k = "unresolved"
        else:
            k = "Go, other (receiver, pipeline, telemetry)"
        agg[k] = agg.get(k, 0.0) + p
    return [{"what": k, "percent": round(v, 1)} for k, v in sorted(agg.items(), key=lambda kv: -kv[1])]


def perf_dso(data):
    rep = subprocess.run(["perf", "report", "-i", str(data), "--no-children", "--stdio", "-g", "none", "--sort", "dso"],
                         capture_output=True, text=True).stdout
    out = []
    for line in rep.splitlines():
        m = re.match(r"^\s+([0-9.]+)%\s+(\S+)", line)
        if m:
            out.append({"percent": float(m.group(1)), "dso": m.group(2)})
    return out[:8]


def idle(results, workdir):
    """6: Collector CPU with IDLE_FILES open idle files over IDLE_SECONDS (and the otlp receiver alone)."""
    idle_dir = Path(workdir) / "idle"
    idle_dir.mkdir(exist_ok=True)
    res = {"files": IDLE_FILES, "seconds": IDLE_SECONDS}
    holder = subprocess.Popen([str(APP), "--idle-files", str(IDLE_FILES), "--dir", str(idle_dir),
                               "--idle-secs", str(IDLE_SECONDS + 40)], stdout=subprocess.DEVNULL)
    try:
        with Collector("idle-mmap", "mmap", idle_dir) as col:
            deadline = time.time() + 10
            while col.metrics().get("otelcol_receiver_mmap_open_files", 0) < IDLE_FILES and time.time() < deadline:
                time.sleep(0.2)
            res["open_files"] = col.metrics().get("otelcol_receiver_mmap_open_files", 0)
            time.sleep(1)
            def ctx():
                n = 0
                for task in Path(f"/proc/{col.pid}/task").iterdir():
                    try:
                        n += sum(proc_status_kb(f"{col.pid}/task/{task.name}", k)
                                 for k in ("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches"))
                    except OSError:
                        pass
                return n
            # TRIALS consecutive windows of IDLE_SECONDS / TRIALS: the median and the spread.
            res["load"] = loadavg()
            windows = []
            for _ in range(TRIALS):
                c0, t0, x0 = proc_cpu_ns(col.pid), time.monotonic(), ctx()
                time.sleep(IDLE_SECONDS / TRIALS)
                c1, t1, x1 = proc_cpu_ns(col.pid), time.monotonic(), ctx()
                windows.append({"cpu_s": c1 - c0, "core_fraction": (c1 - c0) / (t1 - t0),
                                "ctx_switches_per_s": (x1 - x0) / (t1 - t0)})
            res["windows"] = windows
            res["mmap_cpu_s"] = sum(w["cpu_s"] for w in windows)
            res["mmap_core_fraction"] = median([w["core_fraction"] for w in windows])
            res["mmap_core_fraction_spread"] = [min(w["core_fraction"] for w in windows),
                                                max(w["core_fraction"] for w in windows)]
            res["mmap_ctx_switches_per_s"] = median([w["ctx_switches_per_s"] for w in windows])
            log(f"idle mmap: {res['mmap_core_fraction']:.2%} of a core (median of {TRIALS} windows, "
                f"{res['mmap_core_fraction_spread'][0]:.2%}-{res['mmap_core_fraction_spread'][1]:.2%}; {IDLE_FILES} files, "
                f"{IDLE_SECONDS}s), {res['mmap_ctx_switches_per_s']:.0f} context switches/s")
        if res["mmap_core_fraction"] > 0.01 and shutil.which("perf") and "profile" not in SKIP:
            # Over budget: profile the same idle state with the unstripped build (the files are free again).
            binary = PROFILE_DIST if PROFILE_DIST.exists() else None
            with Collector("idle-mmap-profile", "mmap", idle_dir, binary=binary) as pc:
                time.sleep(2)
                res["profile"] = perf_top(pc.pid, 10, "idle")
                res["profile_by_dso"] = perf_dso(OUT / "perf.idle.data")
                res["profile_classes"] = perf_classes(OUT / "perf.idle.data")
                res["profile_inclusive"] = perf_report(OUT / "perf.idle.data", 40, children=True)
    finally:
        holder.terminate()
        holder.wait()
    with Collector("idle-otlp", "otlp", workdir) as col:
        time.sleep(1)
        c0, t0 = proc_cpu_ns(col.pid), time.monotonic()
        time.sleep(10)
        res["otlp_core_fraction"] = (proc_cpu_ns(col.pid) - c0) / (time.monotonic() - t0)
        log(f"idle otlp receiver (no client): {res['otlp_core_fraction']:.2%} of a core")
    results["idle"] = res


def profiles(results, workdir):
    """Where the time goes: perf (cpu-clock) of the app of each path emitting spans at 100 000/s into a
    running Collector (default ring sizes, nothing dropped), and of the Collector under 20 000 spans/s."""
    if not shutil.which("perf"):
        log("perf missing: skipping profiles")
        return
    out = {}
    for mode in ["mmap-provider", "mmap-processor", "otlp"]:
        receiver = "otlp" if mode == "otlp" else "mmap"
        with Collector(f"profile-app-{mode}", receiver, workdir) as col:
            cmd = app_cmd(mode, "spans", int(300_000 * max(SCALE, 0.2)), 100_000, workdir, col)
            out[f"app-{mode}"] = perf_top(cmd, 0, f"app-{mode}")
            out[f"app-{mode}-inclusive"] = perf_report(OUT / f"perf.app-{mode}.data", 40, children=True)
    for mode in ["mmap-provider", "otlp"]:
        receiver = "otlp" if mode == "otlp" else "mmap"
        binary = PROFILE_DIST if PROFILE_DIST.exists() else None
        with Collector(f"profile-{mode}", receiver, workdir, binary=binary) as col:
            p = subprocess.Popen(app_cmd(mode, "spans", int(COST_RATE * 8), COST_RATE, workdir, col), stdout=subprocess.DEVNULL)
            time.sleep(2.5)
            out[f"collector-{receiver}"] = perf_top(col.pid, 4, f"collector-{receiver}")
            out[f"collector-{receiver}-by-dso"] = perf_dso(OUT / f"perf.collector-{receiver}.data")
            out[f"collector-{receiver}-classes"] = perf_classes(OUT / f"perf.collector-{receiver}.data")
            out[f"collector-{receiver}-inclusive"] = perf_report(OUT / f"perf.collector-{receiver}.data", 40, children=True)
            p.wait()
    results["profiles"] = out


def storage(results, workdir):
    """Collector CPU with and without the mmap receiver's `storage` key (file_storage, default
    checkpoint_interval): crashy writes STORAGE_RATE records/s (a span, a log record and a measurement
    each) for STORAGE_SECONDS, with 0 or STORAGE_HOLD spans open at any moment (checkpoints hold them all)."""
    crashy = ROOT / "target/release/examples/crashy"
    rows = []
    for hold in (0, STORAGE_HOLD):
        for with_storage in (False, True):
            name = f"storage-{'on' if with_storage else 'off'}-{hold}"
            extra = "    storage: file_storage\n" if with_storage else ""
            col = Collector(name, "mmap", workdir, extra_receiver_cfg=extra)
            if with_storage:
                state = col.workdir / "state"
                state.mkdir(exist_ok=True)
                col.config = (f"extensions:\n  file_storage:\n    directory: {state}\n"
                              + col.config.replace("service:\n", "service:\n  extensions: [file_storage]\n", 1))
            with col:
                before = col.delivered("spans")
                p = subprocess.Popen([str(crashy), str(col.workdir / "app.otlp"), "--rate", str(STORAGE_RATE),
                                      "--hold", str(hold), "--duration-secs", str(STORAGE_SECONDS), "--exit"],
                                     stdout=subprocess.PIPE, text=True)
                while not p.stdout.readline().startswith("ready"):
                    if p.poll() is not None:
                        raise RuntimeError(f"crashy did not start ({name})")
                c0, t0, load0 = col.cpu(), time.monotonic(), loadavg()
                done = {}
                for line in p.stdout:
                    if line.startswith("done"):
                        done = {k: int(v) for k, v in (f.split("=") for f in line.split()[1:])}
                p.wait()
                written = done.get("written", 0)
                got = wait_delivered(col, "spans", written, before)
                cpu, wall = col.cpu() - c0, time.monotonic() - t0
            row = {"storage": with_storage, "hold": hold, "rate": STORAGE_RATE, "seconds": STORAGE_SECONDS,
                   "written": written, "spans_delivered": got, "dropped": {k: v for k, v in done.items() if k != "written"},
                   "collector_cpu_s": cpu, "wall_s": wall, "collector_us_per_record": cpu / max(written, 1) * 1e6,
                   "load": load0}
            log(f"storage {'on ' if with_storage else 'off'} hold {hold:6}: collector {cpu:.2f} s CPU for {written} records "
                f"({row['collector_us_per_record']:.1f} µs/record), {got:.0f} spans delivered, writer {row['dropped']}")
            rows.append(row)
    results["storage"] = rows


# The Python SDK rows: the Python bench app (bench/python_app.py) in the
# package's venv (`make bench` builds the wheel into tmp/py-venv).
PY_BENCH = Path(os.environ.get("BENCH_PYTHON", ROOT / "tmp/py-venv/bin/python"))
PY_COUNT = {"spans": 50_000, "logs": 50_000}
PY_RATE = 5_000  # items/s: the batch processors' queues never fill at this rate
# none: the SDK with no processor; mmap: the SDK with the mmap processor; mmap-api:
# MmapTracerProvider (no SDK); otlp: the batch processor + OTLP/gRPC exporter.
PY_MODES = {"spans": ("none", "mmap", "mmap-api", "otlp"), "logs": ("none", "mmap", "otlp")}


def python_sdk(results, workdir):
    """The Python SDK: per item on the calling thread and for the whole process, the
    SDK with no processor (baseline), the mmap processors, MmapTracerProvider (spans:
    the tracing API on the file, no SDK), and BatchSpanProcessor /
    BatchLogRecordProcessor + OTLP/gRPC, in the same run, paced so that nothing drops."""
    if not PY_BENCH.exists():
        raise RuntimeError(f"{PY_BENCH} missing: `make test-python` or `make bench` creates it")
    app = str(ROOT / "bench/python_app.py")
    rows = []
    for sig in ("spans", "logs"):
        count = int(PY_COUNT[sig] * SCALE)
        for mode in PY_MODES[sig]:
            receiver = "otlp" if mode == "otlp" else "mmap"
            with Collector(f"python-{sig}-{mode}", receiver, workdir) as col:
                cmd = [str(PY_BENCH), app, "--mode", mode, "--signal", sig, "--count", str(count), "--rate", str(PY_RATE)]
                if mode in ("mmap", "mmap-api"):
                    cmd += ["--file", str(col.workdir / f"python-{sig}.otlp")]
                elif mode == "otlp":
                    cmd += ["--endpoint", f"127.0.0.1:{col.grpc_port}"]
                before = col.delivered(sig)
                out, c0 = run_app(cmd, col)
                got = wait_delivered(col, sig, count + 1000, before) if mode != "none" else 0
                col_cpu = col.cpu() - c0
            row = {"signal": sig, "mode": mode, "count": count, "rate": PY_RATE, "app": out,
                   "collector_cpu_s": col_cpu, "delivered": got, "expected": count + 1000 if mode != "none" else 0}
            log(f"python {sig:5} {mode:8} caller {out['cpu_caller_ns_per_item']:7.0f} ns/item, process "
                f"{out['cpu_process_ns_per_item']:7.0f} ns/item; collector {col_cpu:.2f} s; delivered {got:.0f}; dropped {out['dropped']}")
            rows.append(row)
    for sig in ("spans", "logs"):
        by = {r["mode"]: r["app"] for r in rows if r["signal"] == sig}
        for where in ("caller", "process"):
            k = f"cpu_{where}_ns_per_item"
            added = {m: by[m][k] - by["none"][k] for m in ("mmap", "otlp")}
            log(f"python {sig}: {where}: otlp/mmap = {by['otlp'][k] / by['mmap'][k]:.2f}x in total, "
                f"{added['otlp'] / max(added['mmap'], 1):.2f}x over the SDK alone ({added['mmap']:.0f} vs {added['otlp']:.0f} ns)")
            if "mmap-api" in by:
                log(f"python {sig}: {where}: otlp/mmap-api = {by['otlp'][k] / by['mmap-api'][k]:.2f}x in total")
    results["python"] = rows
    results["python_gunicorn"] = python_gunicorn(workdir)


PY_WEB_REQUESTS = 3000


def tree_cpu(pid):
    """CPU seconds of a process and its children (gunicorn's master and workers)."""
    total = 0.0
    pids = [pid]
    try:
        pids += [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        pass
    for p in pids:
        try:
            total += proc_cpu(p)
        except OSError:
            pass
    return total


def python_gunicorn(workdir):
    """An auto-instrumented Flask app under gunicorn (--preload, 2 workers): CPU of
    all its processes per request (one server span each), no processor / mmap / mmap-api / OTLP."""
    gunicorn = PY_BENCH.parent / "gunicorn"
    rows = []
    n = int(PY_WEB_REQUESTS * SCALE)
    for mode in PY_MODES["spans"]:
        receiver = "otlp" if mode == "otlp" else "mmap"
        with Collector(f"python-gunicorn-{mode}", receiver, workdir) as col:
            port = free_port()
            env = dict(os.environ, BENCH_PY_MODE=mode, OTEL_MMAP_FILE=str(col.workdir / "web.otlp"),
                       BENCH_PY_ENDPOINT=f"127.0.0.1:{col.grpc_port}")
            p = subprocess.Popen([str(gunicorn), "--preload", "-w", "2", "-b", f"127.0.0.1:{port}",
                                  "--chdir", str(ROOT / "bench"), "python_web:app"], env=env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                deadline = time.time() + 30
                while True:
                    try:
                        urllib.request.urlopen(f"http://127.0.0.1:{port}/items/0", timeout=2).read()
                        break
                    except OSError:
                        if p.poll() is not None or time.time() > deadline:
                            raise RuntimeError(f"gunicorn ({mode}) did not start")
                        time.sleep(0.2)
                for i in range(200):  # warm-up: every worker has served
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/items/{i}", timeout=5).read()
                time.sleep(1.0)
                before = col.delivered("spans")
                c0, t0 = tree_cpu(p.pid), time.time()
                for i in range(n):
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/items/{i}", timeout=5).read()
                wall = time.time() - t0
                time.sleep(6.0)  # every mode: the batch processor exports every 5 s
                cpu = tree_cpu(p.pid) - c0
                got = wait_delivered(col, "spans", n, before) if mode != "none" else 0
                files = len(list(col.workdir.glob("*.otlp")))
            finally:
                p.terminate()
                p.wait(15)
        row = {"mode": mode, "requests": n, "cpu_ns_per_request": cpu * 1e9 / n, "wall_s": wall,
               "delivered": got, "files": files}
        log(f"python gunicorn {mode:8} {row['cpu_ns_per_request']:8.0f} ns CPU/request (master + 2 workers); "
            f"delivered {got:.0f}/{n}; {files} files")
        rows.append(row)
    return rows


# The sections in running order: (name, function). BENCH_SKIP names the ones to leave out (report.py reads them too).
SECTIONS = [
    ("cost", cost),
    ("app_cost", app_cost),
    ("tracing", tracing_cost),
    ("ringsweep", ring_sweep),
    ("callgrind", callgrind),
    ("throughput", throughput),
    ("latency", latency),
    ("idle", idle),
    ("profile", profiles),
    ("python", python_sdk),
    ("storage", storage),
]


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    for p in (DIST, APP):
        if not p.exists():
            sys.exit(f"{p} missing: run `make bench`, which builds it")
    base = Path("/dev/shm") if Path("/dev/shm").is_dir() else Path(tempfile.gettempdir())
    workdir = Path(tempfile.mkdtemp(prefix="otlp-mmap-bench-", dir=base))
    if os.environ.get("BENCH_MERGE") and (OUT / "results.json").exists():
        # Re-run some sections (BENCH_SKIP the others) into the existing results.
        results = json.loads((OUT / "results.json").read_text())
        results.setdefault("rerun", []).append({"at": time.strftime("%Y-%m-%d %H:%M:%S %z"), "load": loadavg(),
                                                 "skipped": sorted(SKIP)})
    else:
        results = {}
    kept_speed = {"speed": results["machine"]["speed"]} if "speed" in results.get("machine", {}) else {}
    results |= {"machine": machine() | kept_speed, "trials": TRIALS, "started": results.get("started") or time.strftime("%Y-%m-%d %H:%M:%S %z"),
               "load_start": results.get("load_start") or loadavg(),
               "receiver_defaults": receiver_defaults(),
               "git_head": subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                                          text=True).stdout.strip(), "scale": SCALE, "workdir_fs": "tmpfs (/dev/shm)" if str(base) == "/dev/shm" else str(base)}
    t0 = time.time()
    if "speed" not in SKIP:
        results["machine"]["speed"] = machine_speed()
    try:
        for name, fn in SECTIONS:
            if name in SKIP:
                continue
            log(f"== {name} (load {loadavg()})")
            s0 = time.time()
            try:
                fn(results, workdir)
            except Exception as e:  # keep the other sections' results
                log(f"section {name} failed: {e!r}")
                results.setdefault("errors", {})[name] = repr(e)
            results.setdefault("section_seconds", {})[name] = round(time.time() - s0, 1)
            # Keep what we have so far.
            (OUT / "results.json").write_text(json.dumps(results, indent=1))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if "speed" not in SKIP:
        # Again at the end: a machine that slowed down during the run shows here.
        results["machine"]["speed_end"] = machine_speed()
    if os.environ.get("BENCH_MERGE"):
        results["rerun"][-1]["seconds"] = round(time.time() - t0, 1)
    else:
        results["load_end"] = loadavg()
        results["seconds"] = round(time.time() - t0, 1)
    (OUT / "results.json").write_text(json.dumps(results, indent=1))
    log(f"done in {results['seconds']} s: {OUT / 'results.json'}")


if __name__ == "__main__":
    main()
