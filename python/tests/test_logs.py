"""MmapLogRecordProcessor: bodies, severities, attributes and span context round-trip."""

import gc
import logging

from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor

try:
    from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter as InMemoryLogExporter
except ImportError:  # SDKs before 1.39
    from opentelemetry.sdk._logs.export import InMemoryLogExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

from conftest import StrMeddler, attrs, hex_id, logs_of, meddling_attributes, value_of
from opentelemetry_mmap import MmapLogRecordProcessor


def test_stdlib_logging_round_trips(tmp_path):
    path = tmp_path / "l.otlp"
    lp = LoggerProvider(resource=Resource.create({"service.name": "py-logs"}))
    processor = MmapLogRecordProcessor(str(path))
    lp.add_log_record_processor(processor)
    seen = InMemoryLogExporter()
    lp.add_log_record_processor(SimpleLogRecordProcessor(seen))
    log = logging.getLogger("py-logs-test")
    log.propagate = False
    log.setLevel(logging.DEBUG)
    log.addHandler(LoggingHandler(logger_provider=lp))
    tp = TracerProvider()
    with tp.get_tracer("t").start_as_current_span("req") as span:
        log.warning("payment %s declined", "p-1", extra={"order.id": 17, "retry": True})
    log.debug("debug line")
    log.error("failed")
    log.critical("down")
    records = logs_of(path)
    assert [r["body"]["stringValue"] for _, _, r in records] == ["payment p-1 declined", "debug line", "failed", "down"]
    assert [r["severityNumber"] for _, _, r in records] == [13, 5, 17, 21]
    # The texts are the SDK's own (they differ between SDK versions).
    assert [r["severityText"] for _, _, r in records] == [r.log_record.severity_text for r in seen.get_finished_logs()]
    res, scope, first = records[0]
    assert res["service.name"] == "py-logs" and scope["name"] == "py-logs-test"
    a = attrs(first["attributes"])
    assert a["order.id"] == 17 and a["retry"] is True
    sc = span.get_span_context()
    assert first["traceId"] == hex_id(sc.trace_id, 32) and first["spanId"] == hex_id(sc.span_id, 16)
    assert "traceId" not in records[1][2]
    assert processor.drop_stats()["logs"] == 0


def test_every_body_type_round_trips(tmp_path):
    from opentelemetry._logs import LogRecord, SeverityNumber

    path = tmp_path / "b.otlp"
    lp = LoggerProvider()
    lp.add_log_record_processor(MmapLogRecordProcessor(str(path)))
    logger = lp.get_logger("bodies", "0.1")
    bodies = ["text", 7, 1.25, True, b"\x00\x01", [1, "two", 3.0], {"k": "v", "n": {"deep": [1, 2]}}]
    for i, body in enumerate(bodies):
        logger.emit(LogRecord(timestamp=1_000 + i, body=body, severity_number=SeverityNumber.INFO,
                              severity_text="INFO", attributes={"i": i, "tags": ["a", "b"]}))
    records = [r for _, _, r in logs_of(path)]
    assert [value_of(r["body"]) for r in records] == bodies
    assert [r["timeUnixNano"] for r in records] == [str(1_000 + i) for i in range(len(bodies))]
    assert all(r["severityNumber"] == 9 and r["severityText"] == "INFO" for r in records)
    assert [attrs(r["attributes"]) for r in records] == [{"i": i, "tags": ["a", "b"]} for i in range(len(bodies))]


def test_event_name_round_trips(tmp_path):
    from opentelemetry._logs import LogRecord

    path = tmp_path / "n.otlp"
    lp = LoggerProvider()
    lp.add_log_record_processor(MmapLogRecordProcessor(str(path)))
    try:
        record = LogRecord(body="x", event_name="checkout.completed")
    except TypeError:  # an SDK before event names
        return
    lp.get_logger("ev").emit(record)
    [(_, _, r)] = logs_of(path)
    assert r["eventName"] == "checkout.completed"


def test_a_value_that_changes_its_dict_while_converted(tmp_path):
    """Values whose conversion (a `__str__`, a list's `__iter__`, a big int's
    `__float__`) adds and removes keys of the very dict being converted, in
    a body (a dict logged through `logging`) and in attributes (nested too):
    nothing raises, and the record holds what it was given."""
    from opentelemetry._logs import LogRecord

    path = tmp_path / "meddle.otlp"
    lp = LoggerProvider()
    processor = MmapLogRecordProcessor(str(path))
    lp.add_log_record_processor(processor)
    log = logging.getLogger("py-logs-meddle")
    log.propagate = False
    log.addHandler(LoggingHandler(logger_provider=lp))
    body, expected_body = meddling_attributes()
    log.warning(body)  # the SDK keeps a dict message as the body, unconverted
    # A record made by other code: its attributes the dict it was given.
    attributes, expected_attributes = meddling_attributes()
    nested = {"n": 1}
    nested["obj"] = StrMeddler(nested)
    attributes["nested"] = nested
    processor.on_emit(LogRecord(timestamp=1_000, body="with attributes", attributes=attributes))
    assert any(k.startswith("added.") for k in body) and any(k.startswith("added.") for k in attributes)
    assert any(k.startswith("added.") for k in nested)
    [(_, _, first), (_, _, second)] = logs_of(path)
    assert value_of(first["body"]) == {**expected_body, "obj": "str ran"}
    assert value_of(second["body"]) == "with attributes" and second["timeUnixNano"] == "1000"
    assert attrs(second["attributes"]) == {**expected_attributes, "obj": "str ran", "nested": {"n": 1, "obj": "str ran"}}
    assert processor.drop_stats()["logs"] == 0


def test_a_list_that_grows_while_converted(tmp_path):
    """A list body whose item's `__str__` appends to that list (here at most
    100 times; unbounded, converting it never ended): the record holds the
    items the list had."""
    from opentelemetry._logs import LogRecord

    path = tmp_path / "grow.otlp"
    lp = LoggerProvider()
    lp.add_log_record_processor(MmapLogRecordProcessor(str(path)))
    body = []

    class Grows:
        def __str__(self):
            if len(body) <= 100:
                body.append(Grows())
            return "grew"

    body.append(Grows())
    lp.get_logger("grow").emit(LogRecord(body=body))
    assert len(body) > 1
    [(_, _, r)] = logs_of(path)
    assert value_of(r["body"]) == ["grew"]


def test_ring_sizes_come_from_the_environment(tmp_path, monkeypatch):
    """OTEL_MMAP_LOG_SLOTS / OTEL_MMAP_LOG_SLOT_SIZE, as the Rust SDK reads
    them: a full ring and a record larger than a slot are dropped and counted."""
    from opentelemetry._logs import LogRecord

    monkeypatch.setenv("OTEL_MMAP_LOG_SLOTS", "16")
    monkeypatch.setenv("OTEL_MMAP_LOG_SLOT_SIZE", "128")
    path = tmp_path / "small.otlp"
    lp = LoggerProvider()
    processor = MmapLogRecordProcessor(str(path))
    lp.add_log_record_processor(processor)
    logger = lp.get_logger("small")
    logger.emit(LogRecord(body="x" * 500))  # larger than a slot
    assert processor.drop_stats()["logs"] == 1
    for i in range(20):
        logger.emit(LogRecord(body=f"r{i}"))
    assert processor.drop_stats()["logs"] == 1 + 4
    assert [r["body"]["stringValue"] for _, _, r in logs_of(path)] == [f"r{i}" for i in range(16)]


def test_a_resource_whose_del_emits_a_log_when_the_scope_cache_lets_it_go(tmp_path):
    """The log writer keeps the scope and resource objects of the records it
    saw, up to 64 pairs, then starts the list again. A resource held by that
    list alone is then dropped; its `__del__` emits a log record through the
    same processor: that record is written (before the fix, the list was
    dropped under the writer's lock: a deadlock)."""
    path = tmp_path / "scopes.otlp"
    processor = MmapLogRecordProcessor(str(path))
    lp = LoggerProvider(resource=Resource.create({"service.name": "py-logs"}))
    lp.add_log_record_processor(processor)

    class EmitsALog(Resource):
        def __del__(self):
            lp.get_logger("t").emit(body="from __del__")

    other = LoggerProvider(resource=EmitsALog({"service.name": "other"}), shutdown_on_exit=False)
    other.add_log_record_processor(processor)
    other.get_logger("o").emit(body="by other")
    del other
    gc.collect()  # the resource is now held by the writer's list alone
    for i in range(64):  # more scopes than the list keeps: it starts again
        lp.get_logger(f"scope {i}").emit(body=f"l{i}")
    bodies = {value_of(r["body"]) for _, _, r in logs_of(path)}
    assert {"by other", "from __del__", "l0", "l63"} <= bodies
