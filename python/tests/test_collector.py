"""End to end: Python apps write, the real otelcol-mmap delivers to a sink.
Skipped (loudly) only when the Collector binary has not been built."""

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import attrs
from collector import Collector, Sink, free_port, require_collector

APPS = Path(__file__).resolve().parent / "apps"


@pytest.fixture
def pipeline(tmp_path):
    require_collector()
    sink = Sink()
    collector = Collector(tmp_path, sink)
    yield tmp_path, sink
    collector.stop()
    sink.close()


def app_env(**extra):
    env = dict(os.environ, OTEL_METRIC_EXPORT_INTERVAL="100")
    for k in ("OTEL_PYTHON_DISTRO", "OTEL_PYTHON_CONFIGURATOR", "OTEL_MMAP_TRACER"):
        env.pop(k, None)
    return env | extra


# The tracer providers configure() offers: the SDK's with MmapSpanProcessor, MmapTracerProvider.
TRACERS = pytest.mark.parametrize("tracer", ["sdk", "mmap"])


@TRACERS
def test_every_signal_arrives(pipeline, tracer):
    directory, sink = pipeline
    subprocess.run([sys.executable, str(APPS / "writer.py"), "all"], check=True, timeout=60,
                   env=app_env(OTEL_MMAP_FILE=str(directory / "writer.otlp"), OTEL_MMAP_TRACER=tracer))

    def metric_total(s, name):
        return sum(int(p.get("asInt", 0)) for _, m in s.metrics if m["name"] == name for p in m["sum"]["dataPoints"])

    def histogram_count(s):
        return max([int(p["count"]) for _, m in s.metrics if m["name"] == "latency" for p in m["histogram"]["dataPoints"]] or [0])

    sink.wait("40 spans, 20 logs, every metric", lambda s: len(s.spans) >= 40 and len(s.logs) >= 20
              and metric_total(s, "requests") == 20 and histogram_count(s) == 20
              and {"temperature", "inflight", "threads", "otlp_mmap.dropped"} <= {m["name"] for _, m in s.metrics})
    assert len(sink.spans) == 40 and len(sink.logs) == 20
    servers = [s for _, s in sink.spans if s["name"] == "GET /item"]
    dbs = {s["spanId"]: s for _, s in sink.spans if s["name"] == "db"}
    assert len(servers) == 20 and len(dbs) == 20
    assert sorted(attrs(s["attributes"])["n"] for s in servers) == list(range(20))
    assert sum(1 for s in servers if s.get("status", {}).get("code") == 2) == 1
    assert {d["parentSpanId"] for d in dbs.values()} == {s["spanId"] for s in servers}
    assert all(res["service.name"] == "py-writer" for res, _ in sink.spans + sink.logs)
    bodies = sorted(r["body"]["stringValue"] for _, r in sink.logs)
    assert bodies == sorted(f"item {i}" for i in range(20))
    assert all(r["spanId"] in dbs for _, r in sink.logs)
    by_name = {m["name"]: m for _, m in sink.metrics}
    assert by_name["temperature"]["gauge"]["dataPoints"][-1]["asDouble"] == 20.5
    assert int(by_name["inflight"]["sum"]["dataPoints"][-1]["asInt"]) == -2
    assert int(by_name["threads"]["gauge"]["dataPoints"][-1]["asInt"]) == 3


@TRACERS
def test_app_killed_mid_stream(pipeline, tracer):
    """SIGKILL while writing: every request the app finished arrives, and the
    spans open at the kill arrive as incomplete spans."""
    directory, sink = pipeline
    proc = subprocess.Popen([sys.executable, str(APPS / "writer.py"), "stream"], stdout=subprocess.PIPE,
                            text=True, env=app_env(OTEL_MMAP_FILE=str(directory / "stream.otlp"), OTEL_MMAP_TRACER=tracer))
    last = dropped = 0
    for line in proc.stdout:
        last, dropped = map(int, line.split()[1:3])
        if last >= 300:
            break
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    # The pipe may hold a few more "done" lines written before the kill.
    lines = [line.split() for line in proc.stdout.read().splitlines() if line.startswith("done")]
    proc.stdout.close()
    if lines:
        last, dropped = int(lines[-1][1]), int(lines[-1][2])
    # The rings never filled (else "every published record" would be fewer).
    assert dropped == 0, "the app dropped records: the test is paced too fast for this machine"

    def names(s):
        return {sp["name"] for _, sp in s.spans}

    want = {f"request {n}" for n in range(1, last + 1)} | {f"query {n}" for n in range(1, last + 1)}
    sink.wait(f"the spans of {last} requests and the open lifetime span",
              lambda s: want <= names(s) and "process lifetime" in names(s)
              and len({r["body"]["stringValue"] for _, r in s.logs}) >= last)
    [(_, lifetime)] = [(r, s) for r, s in sink.spans if s["name"] == "process lifetime"]
    a = attrs(lifetime["attributes"])
    assert a["otlp_mmap.incomplete"] is True
    # Completed spans are complete; each log record arrived once.
    assert all("otlp_mmap.incomplete" not in attrs(s.get("attributes")) for _, s in sink.spans if s["name"] in want)
    bodies = [r["body"]["stringValue"] for _, r in sink.logs]
    assert {f"request {n}" for n in range(1, last + 1)} <= set(bodies)
    assert len(bodies) == len(set(bodies))


@TRACERS
def test_gunicorn_four_workers_each_write_their_own_file(pipeline, tracer):
    directory, sink = pipeline
    port = free_port()
    gunicorn = Path(sys.executable).parent / "gunicorn"
    proc = subprocess.Popen(
        [str(gunicorn), "--preload", "-w", "4", "-b", f"127.0.0.1:{port}", "--chdir", str(APPS), "gunicorn_app:app"],
        env=app_env(OTEL_MMAP_FILE=str(directory / "web.otlp"), OTEL_SERVICE_NAME="web", OTEL_MMAP_TRACER=tracer),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        pids = set()
        deadline = time.monotonic() + 30
        n = 0
        answered = []
        while time.monotonic() < deadline and (len(pids) < 4 or n < 200):
            n += 1
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/req/{n}", timeout=5) as r:
                    body = r.read().decode()
            except OSError:
                assert proc.poll() is None, proc.stderr.read().decode()
                time.sleep(0.1)
                continue
            answered.append(n)
            pids.add(json.loads(body)["pid"])
        assert len(pids) == 4, f"requests were served by {len(pids)} workers"
        files = sorted(p.name for p in directory.glob("*.otlp"))
        assert files == sorted(["web.otlp"] + [f"web.{pid}.otlp" for pid in pids])
        want = {f"/req/{n}" for n in answered}

        def routes(s):
            return {attrs(sp.get("attributes")).get("http.target") or attrs(sp.get("attributes")).get("url.path") for _, sp in s.spans}

        sink.wait(f"the server spans of {len(answered)} requests", lambda s: want <= routes(s))
        served_by = {attrs(sp.get("attributes"))["worker.pid"] for _, sp in sink.spans}
        assert served_by == pids
        # Each span came from its worker's own file: one service, one instance per worker.
        assert len(sink.spans) == len(answered)
    finally:
        proc.terminate()
        proc.wait(20)
