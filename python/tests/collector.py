"""The real otelcol-mmap (OTELCOL_MMAP, built by `make build`) reading a
directory of files and exporting OTLP/HTTP (JSON) to a sink in this process."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from conftest import ROOT, attrs

DIST = os.environ.get("OTELCOL_MMAP", str(ROOT / "build/otelcol-mmap/otelcol-mmap"))


def require_collector():
    if not os.access(DIST, os.X_OK):
        pytest.skip(
            f"SKIPPED LOUDLY: the otelcol-mmap binary is missing at {DIST}; "
            "these end-to-end tests need it: run `make build` (make test-python does)"
        )


class Sink:
    """Receives OTLP/JSON export requests; keeps every span, log record and data point."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.spans: list = []  # (resource attributes, span)
        self.logs: list = []
        self.metrics: list = []  # (resource attributes, metric)
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                req = json.loads(body or b"{}")
                with sink.lock:
                    for rs in req.get("resourceSpans", []):
                        res = attrs(rs.get("resource", {}).get("attributes"))
                        for ss in rs.get("scopeSpans", []):
                            sink.spans += [(res, s) for s in ss.get("spans", [])]
                    for rl in req.get("resourceLogs", []):
                        res = attrs(rl.get("resource", {}).get("attributes"))
                        for sl in rl.get("scopeLogs", []):
                            sink.logs += [(res, r) for r in sl.get("logRecords", [])]
                    for rm in req.get("resourceMetrics", []):
                        res = attrs(rm.get("resource", {}).get("attributes"))
                        for sm in rm.get("scopeMetrics", []):
                            sink.metrics += [(res, m) for m in sm.get("metrics", [])]
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait(self, what, done, timeout=60.0):
        deadline = time.monotonic() + timeout
        while True:
            with self.lock:
                if done(self):
                    return
            if time.monotonic() > deadline:
                pytest.fail(f"timed out after {timeout}s waiting for {what}")
            time.sleep(0.05)

    def close(self):
        self.server.shutdown()


CONFIG = """
receivers:
  mmap:
    include: [{include}]
    poll_interval: 5ms
    scan_interval: 100ms
    metrics:
      collection_interval: 500ms
exporters:
  otlp_http:
    endpoint: {url}
    encoding: json
    compression: none
service:
  telemetry: {{metrics: {{level: none}}}}
  pipelines:
    traces:  {{receivers: [mmap], exporters: [otlp_http]}}
    logs:    {{receivers: [mmap], exporters: [otlp_http]}}
    metrics: {{receivers: [mmap], exporters: [otlp_http]}}
"""


class Collector:
    def __init__(self, directory: Path, sink: Sink) -> None:
        require_collector()
        config = directory / "collector.yaml"
        config.write_text(CONFIG.format(include=json.dumps(str(directory / "*.otlp")), url=sink.url))
        self.log = open(directory / "collector.log", "w+")
        self.proc = subprocess.Popen([DIST, "--config", str(config)], stdout=self.log, stderr=subprocess.STDOUT)

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
