"""Measures whether releasing the GIL around the ring write pays (python/GIL.md):
the CPU time of SpanWriter.on_start + on_end on one thread, GIL kept or
released around the write, alternating, median of 7 runs.

    tmp/py-venv/bin/python python/gil_measure.py
"""

import os
import statistics
import tempfile
import time

os.environ.setdefault("OTEL_MMAP_SPAN_SLOTS", "65536")

from opentelemetry.sdk.trace import TracerProvider  # noqa: E402

from opentelemetry_mmap import MmapSpanProcessor, _native  # noqa: E402

N = 20_000  # spans per run: 40,000 records, the ring (65,536 slots) never fills


def run(release: bool) -> float:
    path = os.path.join(tempfile.mkdtemp(dir="/dev/shm" if os.path.isdir("/dev/shm") else None), "gil.otlp")
    processor = MmapSpanProcessor(path)
    span = TracerProvider().get_tracer("gil").start_span("GET /items/{id}", attributes={
        "http.request.method": "GET", "http.route": "/items/{id}", "server.port": 8080, "item.cached": False})
    span.set_attribute("http.response.status_code", 200)
    span.end()
    writer = processor._writer
    _native.set_release_gil(release)
    for _ in range(1000):  # warm-up, pages touched
        writer.on_start(span, None)
        writer.on_end(span)
    t0 = time.thread_time_ns()
    for _ in range(N):
        writer.on_start(span, None)
        writer.on_end(span)
    ns = (time.thread_time_ns() - t0) / N
    _native.set_release_gil(False)
    os.unlink(path)
    return ns


if __name__ == "__main__":
    kept, released = [], []
    for _ in range(7):
        kept.append(run(False))
        released.append(run(True))
    print(f"GIL kept:     {statistics.median(kept):6.0f} ns per span (start + end), runs {[round(x) for x in kept]}")
    print(f"GIL released: {statistics.median(released):6.0f} ns per span (start + end), runs {[round(x) for x in released]}")
