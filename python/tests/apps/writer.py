"""A Python app writing through opentelemetry-mmap (OTEL_MMAP_FILE).

    writer.py all      every signal, then exit
    writer.py stream   requests forever (about 500/s), one line
                       "done <n> <records dropped>" on stdout after request n
                       is written; a span open for the whole run
"""

import logging
import sys
import time

from opentelemetry import metrics, trace
from opentelemetry.metrics import Observation
from opentelemetry.sdk.resources import Resource
from opentelemetry.trace import SpanKind, Status, StatusCode

import opentelemetry_mmap

providers = opentelemetry_mmap.configure(resource=Resource.create({"service.name": "py-writer"}))
tracer = trace.get_tracer("writer", "1.0")
meter = metrics.get_meter("writer")
log = logging.getLogger("writer")
log.setLevel(logging.INFO)


def write_all():
    requests = meter.create_counter("requests")
    latency = meter.create_histogram("latency", unit="ms")
    meter.create_gauge("temperature").set(20.5)
    meter.create_up_down_counter("inflight").add(-2)
    meter.create_observable_gauge("threads", [lambda o: [Observation(3)]])
    for i in range(20):
        with tracer.start_as_current_span("GET /item", kind=SpanKind.SERVER, attributes={"n": i, "ok": True}) as span:
            with tracer.start_as_current_span("db"):
                log.info("item %d", i)
            requests.add(1, {"route": "/item"})
            latency.record(i)
            if i == 0:
                span.set_status(Status(StatusCode.ERROR, "first fails"))
    metrics.get_meter_provider().force_flush()


def stream():
    lifetime = tracer.start_span("process lifetime")
    n = 0
    while True:
        n += 1
        with tracer.start_as_current_span(f"request {n}", context=trace.set_span_in_context(lifetime)):
            with tracer.start_as_current_span(f"query {n}"):
                log.warning("request %d", n)
        stats = providers["meter_provider"].drop_stats()
        print(f"done {n} {stats['spans'] + stats['logs']}", flush=True)
        time.sleep(0.002)


if __name__ == "__main__":
    write_all() if sys.argv[1] == "all" else stream()
