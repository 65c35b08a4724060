"""MmapSpanProcessor: every span field round-trips through the file."""

import gc

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import Link, SpanKind, Status, StatusCode
from opentelemetry.trace.span import SpanContext, TraceFlags, TraceState

from conftest import ListMeddler, attrs, hex_id, meddling_attributes, spans_of
from opentelemetry_mmap import MmapSpanProcessor

EVERY_TYPE = {
    "s": "text",
    "b": True,
    "i": -42,
    "big": 2**40,
    "f": 2.5,
    "ss": ["a", "b"],
    "bs": [True, False],
    "is": [1, 2, 3],
    "fs": [0.5, 1.5],
}


def provider(path, **resource):
    p = TracerProvider(resource=Resource.create({"service.name": "py-test", **resource}))
    processor = MmapSpanProcessor(str(path))
    p.add_span_processor(processor)
    return p, processor


def by_name(spans):
    return {s["name"]: (res, scope, s) for res, scope, s in spans}


def test_span_fields_round_trip(tmp_path):
    path = tmp_path / "t.otlp"
    p, processor = provider(path, **{"deployment.environment": "test"})
    tracer = p.get_tracer("checkout", "1.2.3")
    linked = SpanContext(0x1234, 0x5678, is_remote=True, trace_flags=TraceFlags(1), trace_state=TraceState([("vendor", "v1")]))
    with tracer.start_as_current_span("parent", kind=SpanKind.SERVER, attributes=EVERY_TYPE) as parent:
        with tracer.start_as_current_span("child", kind=SpanKind.CLIENT, links=[Link(linked, {"link.attr": 7})]) as child:
            child.set_attribute("late", "set after start")
            child.add_event("retry", {"attempt": 2, "ok": False})
            child.add_event("done")
            child.set_status(Status(StatusCode.ERROR, "payment declined"))
        parent.update_name("renamed parent")
        parent.set_attribute("i", 43)  # changed after the start
        parent.set_status(Status(StatusCode.OK))
    spans = by_name(spans_of(path))
    assert set(spans) == {"renamed parent", "child"}
    res, scope, ps = spans["renamed parent"]
    _, _, cs = spans["child"]
    assert res["service.name"] == "py-test" and res["deployment.environment"] == "test"
    assert res["telemetry.sdk.language"] == "python"
    assert scope == {"name": "checkout", "version": "1.2.3"}
    pc, cc = parent.get_span_context(), child.get_span_context()
    assert ps["traceId"] == hex_id(pc.trace_id, 32) and ps["spanId"] == hex_id(pc.span_id, 16)
    assert cs["traceId"] == ps["traceId"] and cs["spanId"] == hex_id(cc.span_id, 16)
    assert cs["parentSpanId"] == ps["spanId"] and "parentSpanId" not in ps
    assert ps["kind"] == 2 and cs["kind"] == 3  # SERVER, CLIENT
    assert int(ps["startTimeUnixNano"]) == parent.start_time and int(ps["endTimeUnixNano"]) == parent.end_time
    assert int(cs["endTimeUnixNano"]) == child.end_time
    assert attrs(ps["attributes"]) == {**EVERY_TYPE, "i": 43}
    assert attrs(cs["attributes"]) == {"late": "set after start"}
    assert ps["status"] == {"code": 1}
    assert cs["status"] == {"code": 2, "message": "payment declined"}
    [link] = cs["links"]
    assert link["traceId"] == hex_id(0x1234, 32) and link["spanId"] == hex_id(0x5678, 16)
    assert link["traceState"] == "vendor=v1" and attrs(link["attributes"]) == {"link.attr": 7}
    assert processor.drop_stats()["spans"] == 0


def test_span_events_round_trip_as_events_of_the_span(tmp_path):
    from conftest import logs_of

    path = tmp_path / "e.otlp"
    p, _ = provider(path)
    tracer = p.get_tracer("ev")
    with tracer.start_as_current_span("s") as s:
        s.add_event("retry", {"attempt": 2, "ok": False}, timestamp=1_700_000_000_000_000_123)
    records = [r for _, _, r in logs_of(path)]
    [ev] = records
    assert ev["eventName"] == "retry"
    assert attrs(ev["attributes"]) == {"attempt": 2, "ok": False}
    assert ev["timeUnixNano"] == "1700000000000000123"
    sc = s.get_span_context()
    assert ev["traceId"] == hex_id(sc.trace_id, 32) and ev["spanId"] == hex_id(sc.span_id, 16)


def test_open_span_is_known_from_its_start(tmp_path):
    """StartSpan is written at on_start: a span that never ends is in the file,
    with its name and start attributes, as an incomplete span."""
    path = tmp_path / "open.otlp"
    p, _ = provider(path)
    span = p.get_tracer("t").start_span("stuck", attributes={"http.route": "/checkout"})
    assert spans_of(path) == []  # not ended
    [(_, _, s)] = spans_of(path, incomplete=True)
    a = attrs(s["attributes"])
    assert s["name"] == "stuck" and a["http.route"] == "/checkout"
    assert a["otlp_mmap.incomplete"] is True
    assert s["spanId"] == hex_id(span.get_span_context().span_id, 16)


def test_remote_parent(tmp_path):
    from opentelemetry import trace

    path = tmp_path / "r.otlp"
    p, _ = provider(path)
    remote = SpanContext(0xABC, 0xDEF, is_remote=True, trace_flags=TraceFlags(1))
    ctx = trace.set_span_in_context(trace.NonRecordingSpan(remote))
    p.get_tracer("t").start_span("from remote", context=ctx).end()
    [(_, _, s)] = spans_of(path)
    assert s["traceId"] == hex_id(0xABC, 32) and s["parentSpanId"] == hex_id(0xDEF, 16)
    assert s["flags"] & 0x300 == 0x300  # parent remoteness known, and remote


def test_bad_values_and_a_missing_file_never_raise(tmp_path):
    path = tmp_path / "bad.otlp"
    p, _ = provider(path)
    tracer = p.get_tracer("t")
    with tracer.start_as_current_span("s") as s:
        s.set_attribute("mixed", [1, "a"])  # the SDK drops it too
        s.set_attribute("ok", 1)
    [(_, _, span)] = spans_of(path)
    assert attrs(span["attributes"]) == {"ok": 1}
    # A path that cannot be created: nothing is written, nothing raised.
    nowhere = MmapSpanProcessor("/proc/self/no/such/dir/x.otlp")
    assert nowhere.path is None
    p2 = TracerProvider()
    p2.add_span_processor(nowhere)
    p2.get_tracer("t").start_span("x").end()


def test_full_ring_drops_and_counts(tmp_path, monkeypatch):
    monkeypatch.setenv("OTEL_MMAP_SPAN_SLOTS", "16")
    path = tmp_path / "full.otlp"
    p, processor = provider(path)
    tracer = p.get_tracer("t")
    for i in range(100):
        tracer.start_span(f"s{i}").end()
    written = len(spans_of(path, incomplete=True))
    dropped = processor.drop_stats()["spans"]
    assert written < 100 and dropped > 0
    # 2 records (start, end) per span, 16 slots: exactly 16 records fit.
    assert dropped == 200 - 16


def test_spans_built_by_hand_with_a_plain_mapping(tmp_path):
    """A ReadableSpan made by other code (attributes a read-only mapping, not
    the SDK's BoundedAttributes) is written whole."""
    from types import MappingProxyType

    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope

    path = tmp_path / "hand.otlp"
    processor = MmapSpanProcessor(str(path))
    span = ReadableSpan(
        name="by hand",
        context=SpanContext(0x77, 0x88, is_remote=False, trace_flags=TraceFlags(1)),
        attributes=MappingProxyType({"a": 1, "b": "two"}),
        start_time=1_000,
        end_time=2_000,
        instrumentation_scope=InstrumentationScope("hand", "0.1"),
        resource=Resource.create({"service.name": "hand"}),
    )
    processor.on_start(span)
    processor.on_end(span)
    [(res, scope, s)] = spans_of(path)
    assert res["service.name"] == "hand" and scope == {"name": "hand", "version": "0.1"}
    assert s["name"] == "by hand" and s["traceId"] == hex_id(0x77, 32) and s["spanId"] == hex_id(0x88, 16)
    assert attrs(s["attributes"]) == {"a": 1, "b": "two"}
    assert (s["startTimeUnixNano"], s["endTimeUnixNano"]) == ("1000", "2000")


def test_a_value_that_changes_its_attribute_dict_while_converted(tmp_path):
    """A span whose attributes are a plain dict (a ReadableSpan made by other
    code) holding values whose conversion (a list's `__iter__`, a big int's
    `__float__`) adds and removes keys of that very dict, at the start and,
    for a value set again, at the end: nothing raises; the span holds the
    attributes of its start and those new or set again by its end."""
    from opentelemetry.sdk.trace import ReadableSpan

    path = tmp_path / "meddle.otlp"
    processor = MmapSpanProcessor(str(path))
    attributes, expected = meddling_attributes()
    span = ReadableSpan(
        name="meddled",
        context=SpanContext(0x77, 0x88, is_remote=False, trace_flags=TraceFlags(1)),
        attributes=attributes,
        start_time=1_000,
        end_time=2_000,
        resource=Resource.create({"service.name": "meddle"}),
    )
    processor.on_start(span)
    added_at_start = {k: v for k, v in attributes.items() if k.startswith("added.")}
    assert added_at_start
    attributes["z"] = ListMeddler(attributes, ["set", "again"])
    processor.on_end(span)
    [(_, _, s)] = spans_of(path)
    assert s["name"] == "meddled" and (s["startTimeUnixNano"], s["endTimeUnixNano"]) == ("1000", "2000")
    assert attrs(s["attributes"]) == {**expected, **added_at_start, "z": ["set", "again"]}


def test_a_value_whose_del_starts_a_span_when_its_note_is_dropped(tmp_path):
    """The processor notes each start's attribute values until the span ends;
    a value set again after the start is then held by the note alone. Its
    `__del__` runs when the note is dropped (here at shutdown) and starts a
    span through the same processor: that span is written (before the fix,
    the note was dropped under the processor's lock: a deadlock)."""
    path = tmp_path / "del.otlp"
    p, processor = provider(path)
    tracer = p.get_tracer("t")

    class StartsASpan(str):  # a str: the SDK keeps the object itself
        def __del__(self):
            tracer.start_span("from __del__").end()

    open_span = tracer.start_span("open", attributes={"v": StartsASpan("first")})
    open_span.set_attribute("v", "set again")  # the note holds the first value alone
    processor.shutdown()
    assert {s["name"] for _, _, s in spans_of(path, incomplete=True)} == {"open", "from __del__"}


def test_a_resource_whose_del_starts_a_span_when_the_scope_cache_lets_it_go(tmp_path):
    """The writer keeps the scope and resource objects of the spans it saw
    (their identity finds their dictionary ref), up to 64 pairs, then starts
    the list again. A resource held by that list alone is then dropped; its
    `__del__` starts a span through the same processor: that span is written
    (before the fix, the list was dropped under the writer's lock: a
    deadlock)."""
    path = tmp_path / "scopes.otlp"
    p, processor = provider(path)
    tracer = p.get_tracer("t")

    class StartsASpan(Resource):
        def __del__(self):
            tracer.start_span("from __del__").end()

    other = TracerProvider(resource=StartsASpan({"service.name": "other"}), shutdown_on_exit=False)
    other.add_span_processor(processor)
    other.get_tracer("o").start_span("by other").end()
    del other
    gc.collect()  # the resource is now held by the writer's list alone
    for i in range(64):  # more scopes than the list keeps: it starts again
        p.get_tracer(f"scope {i}").start_span(f"s{i}").end()
    names = {s["name"] for _, _, s in spans_of(path)}
    assert {"by other", "from __del__", "s0", "s63"} <= names
