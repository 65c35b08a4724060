"""The Python bench app (runs in tmp/py-venv, with opentelemetry-mmap
installed): spans or log records through the OpenTelemetry Python SDK, into
one of

    none   the SDK with no processor (the baseline: what the SDK itself costs)
    mmap   MmapSpanProcessor / MmapLogRecordProcessor (--file)
    mmap-api  (spans) MmapTracerProvider: the tracing API on the file, no SDK (--file)
    otlp   BatchSpanProcessor / BatchLogRecordProcessor + the OTLP/gRPC exporter (--endpoint)

paced at --rate items/s on the calling thread. Prints "start" after the
warm-up, then one JSON line: CPU ns per item on the calling thread (thread
CPU time of the loop) and for the whole process (getrusage, the exporter's
threads and the final flush included), and what was dropped.

--threads N --release-gil {0,1}: N threads write at full speed (the GIL
measurement of python/GIL.md); prints items/s instead.
"""

import argparse
import json
import resource
import sys
import threading
import time


def rusage_ns():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return int((r.ru_utime + r.ru_stime) * 1e9)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", choices=["none", "mmap", "mmap-api", "otlp"], required=True)
    ap.add_argument("--signal", choices=["spans", "logs"], default="spans")
    ap.add_argument("--count", type=int, default=50_000)
    ap.add_argument("--rate", type=float, default=5_000)
    ap.add_argument("--warmup", type=int, default=1000)
    ap.add_argument("--file")
    ap.add_argument("--endpoint")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--release-gil", type=int, default=0)
    a = ap.parse_args()

    from opentelemetry._logs import LogRecord, SeverityNumber
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider

    res = Resource.create({"service.name": "py-bench"})
    processor = None
    if a.signal == "spans" and a.mode == "mmap-api":
        from opentelemetry_mmap import MmapTracerProvider

        provider = processor = MmapTracerProvider(a.file, resource=res)
    elif a.signal == "spans":
        provider = TracerProvider(resource=res)
    if a.signal == "spans":
        if a.mode == "mmap":
            from opentelemetry_mmap import MmapSpanProcessor

            processor = MmapSpanProcessor(a.file)
            provider.add_span_processor(processor)
        elif a.mode == "otlp":
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
            from opentelemetry.sdk.trace.export import BatchSpanProcessor

            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=a.endpoint, insecure=True)))
        tracer = provider.get_tracer("bench", "1.0")

        def item(i):
            with tracer.start_as_current_span(
                "GET /items/{id}",
                attributes={"http.request.method": "GET", "http.route": "/items/{id}", "server.port": 8080, "item.cached": False},
            ) as span:
                span.set_attribute("http.response.status_code", 200)
    else:
        if a.mode == "mmap-api":
            sys.exit("mmap-api: spans only")
        provider = LoggerProvider(resource=res)
        if a.mode == "mmap":
            from opentelemetry_mmap import MmapLogRecordProcessor

            processor = MmapLogRecordProcessor(a.file)
            provider.add_log_record_processor(processor)
        elif a.mode == "otlp":
            from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
            from opentelemetry.sdk._logs.export import BatchLogRecordProcessor

            provider.add_log_record_processor(BatchLogRecordProcessor(OTLPLogExporter(endpoint=a.endpoint, insecure=True)))
        logger = provider.get_logger("bench", "1.0")

        def item(i):
            logger.emit(LogRecord(body="order looked up", severity_number=SeverityNumber.INFO, severity_text="INFO",
                                  attributes={"order.id": i, "http.route": "/orders/{id}", "cache.hit": False}))

    if a.release_gil:
        from opentelemetry_mmap import _native

        _native.set_release_gil(True)

    for i in range(a.warmup):
        item(i)

    if a.threads:
        per = a.count // a.threads
        go = threading.Barrier(a.threads + 1)

        def worker():
            go.wait()
            for i in range(per):
                item(i)

        threads = [threading.Thread(target=worker) for _ in range(a.threads)]
        for t in threads:
            t.start()
        go.wait()
        t0 = time.perf_counter()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
        print(json.dumps({"threads": a.threads, "release_gil": bool(a.release_gil),
                          "items_per_s": per * a.threads / wall}))
        return

    time.sleep(0.5 if a.mode == "otlp" else 0.1)  # the warm-up's export is not measured
    print("start", flush=True)
    p0, c0, w0 = rusage_ns(), time.thread_time_ns(), time.monotonic()
    step = 100
    for start in range(0, a.count, step):
        for i in range(start, min(start + step, a.count)):
            item(i)
        ahead = w0 + (start + step) / a.rate - time.monotonic()
        if ahead > 0:
            time.sleep(ahead)
    caller = time.thread_time_ns() - c0
    provider.shutdown()  # the batch processors export what they still hold
    process = rusage_ns() - p0
    dropped = 0
    if processor is not None and hasattr(processor, "drop_stats"):
        stats = processor.drop_stats()
        dropped = stats.get("spans" if a.signal == "spans" else "logs", 0)
    print(json.dumps({
        "mode": a.mode, "signal": a.signal, "count": a.count, "rate": a.rate,
        "cpu_caller_ns_per_item": caller / a.count, "cpu_process_ns_per_item": process / a.count,
        "wall_s": time.monotonic() - w0, "dropped": dropped,
    }), flush=True)


if __name__ == "__main__":
    sys.exit(main())
