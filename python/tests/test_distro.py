"""Zero-code: `OTEL_PYTHON_DISTRO=mmap opentelemetry-instrument` on the Flask
example sends the spans, logs and metrics of a real request to the file."""

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import attrs, logs_of, metrics_of, spans_of
from collector import free_port

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "flask_app.py"


def wait_http(url, proc, timeout=30):
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                return r.status, r.read()
        except OSError:
            assert proc.poll() is None, "the app exited"
            assert time.monotonic() < deadline, f"no answer from {url}"
            time.sleep(0.1)


@pytest.mark.parametrize("tracer", ["sdk", "mmap"])
def test_distro_sends_a_real_requests_telemetry(tmp_path, tracer):
    path = tmp_path / "shop.otlp"
    port = free_port()
    env = dict(
        os.environ,
        OTEL_PYTHON_DISTRO="mmap",
        OTEL_SERVICE_NAME="shop",
        OTEL_MMAP_FILE=str(path),
        OTEL_METRIC_EXPORT_INTERVAL="100",
        OTEL_MMAP_TRACER=tracer,
        PORT=str(port),
    )
    env.pop("OTEL_PYTHON_CONFIGURATOR", None)
    instrument = Path(sys.executable).parent / "opentelemetry-instrument"
    proc = subprocess.Popen([str(instrument), sys.executable, str(EXAMPLE)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        status, body = wait_http(f"http://127.0.0.1:{port}/orders/42", proc)
        assert status == 200 and b"shipped" in body
        time.sleep(0.5)  # observable instruments run every 100 ms
    finally:
        proc.terminate()
        out = proc.communicate(timeout=10)[0].decode(errors="replace")
    spans = [(res, s) for res, _, s in spans_of(path)]
    servers = [(res, s) for res, s in spans if s["name"] == "GET /orders/<int:order_id>"]
    assert servers, f"no server span; spans: {[s['name'] for _, s in spans]}; app output:\n{out}"
    res, server = servers[-1]
    a = attrs(server["attributes"])
    assert res["service.name"] == "shop" and server["kind"] == 2
    assert a.get("http.route") == "/orders/<int:order_id>"
    assert 200 in (a.get("http.status_code"), a.get("http.response.status_code"))
    logs = [r for _, _, r in logs_of(path) if r.get("body", {}).get("stringValue") == "order 42 looked up"]
    assert logs and logs[0]["traceId"] == server["traceId"] and logs[0]["spanId"] == server["spanId"]
    names = set(metrics_of(path))
    assert any(n.startswith("http.server.") for n in names), names
    assert "otlp_mmap.dropped" in names
