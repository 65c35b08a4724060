"""MmapTracerProvider (the tracing API on the file, no SDK): every span
field round-trips through the file; context, sampling, exceptions, fork."""

import asyncio
import os

import pytest
from opentelemetry import context, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.trace import Link, SpanKind, Status, StatusCode
from opentelemetry.trace.span import SpanContext, TraceFlags, TraceState

from conftest import attrs, hex_id, logs_of, meddling_attributes, spans_of
from opentelemetry_mmap import MmapTracerProvider
from test_traces import EVERY_TYPE, by_name


def provider(path, **resource):
    return MmapTracerProvider(str(path), resource=Resource.create({"service.name": "py-api", **resource}))


def test_span_fields_round_trip(tmp_path):
    path = tmp_path / "t.otlp"
    p = provider(path, **{"deployment.environment": "test"})
    tracer = p.get_tracer("checkout", "1.2.3", schema_url="https://opentelemetry.io/schemas/1.26.0")
    linked = SpanContext(0x1234, 0x5678, is_remote=True, trace_flags=TraceFlags(1), trace_state=TraceState([("vendor", "v1")]))
    added = SpanContext(0x99, 0xAA, is_remote=False, trace_flags=TraceFlags(1))
    with tracer.start_as_current_span("parent", kind=SpanKind.SERVER, attributes=EVERY_TYPE, start_time=1_000) as parent:
        assert trace.get_current_span() is parent and isinstance(parent, trace.Span)
        with tracer.start_as_current_span("child", kind=SpanKind.CLIENT, links=[Link(linked, {"link.attr": 7})]) as child:
            child.set_attribute("late", "set after start")
            child.set_attributes({"late2": 2.5, "bad": object()})
            child.add_event("retry", {"attempt": 2, "ok": False})
            child.add_event("done")
            child.add_link(added, {"why": "batch"})
            child.set_status(StatusCode.ERROR, "payment declined")
        assert trace.get_current_span() is parent
        parent.update_name("renamed parent")
        parent.set_attribute("i", 43)  # changed after the start
        parent.set_status(Status(StatusCode.OK))
        parent.set_status(Status(StatusCode.ERROR, "too late: OK stays"))
    parent.end(end_time=5_000)  # ended already: ignored
    assert not parent.is_recording()
    assert trace.get_current_span() is trace.INVALID_SPAN
    spans = by_name(spans_of(path))
    assert set(spans) == {"renamed parent", "child"}
    res, scope, ps = spans["renamed parent"]
    _, _, cs = spans["child"]
    assert res["service.name"] == "py-api" and res["deployment.environment"] == "test"
    assert scope["name"] == "checkout" and scope["version"] == "1.2.3"
    pc, cc = parent.get_span_context(), child.get_span_context()
    assert pc.trace_flags.sampled and not pc.is_remote and cc.trace_id == pc.trace_id
    assert ps["traceId"] == hex_id(pc.trace_id, 32) and ps["spanId"] == hex_id(pc.span_id, 16)
    assert cs["traceId"] == ps["traceId"] and cs["spanId"] == hex_id(cc.span_id, 16)
    assert cs["parentSpanId"] == ps["spanId"] and "parentSpanId" not in ps
    assert ps["kind"] == 2 and cs["kind"] == 3  # SERVER, CLIENT
    assert ps["startTimeUnixNano"] == "1000" and int(ps["endTimeUnixNano"]) > 1000
    assert int(cs["startTimeUnixNano"]) < int(cs["endTimeUnixNano"])
    assert attrs(ps["attributes"]) == {**EVERY_TYPE, "i": 43}
    assert attrs(cs["attributes"]) == {"late": "set after start", "late2": 2.5}
    assert ps["status"] == {"code": 1}
    assert cs["status"] == {"code": 2, "message": "payment declined"}
    first, second = cs["links"]
    assert first["traceId"] == hex_id(0x1234, 32) and first["spanId"] == hex_id(0x5678, 16)
    assert first["traceState"] == "vendor=v1" and attrs(first["attributes"]) == {"link.attr": 7}
    assert second["spanId"] == hex_id(0xAA, 16) and attrs(second["attributes"]) == {"why": "batch"}
    events = [r for _, _, r in logs_of(path)]
    assert [e["eventName"] for e in events] == ["retry", "done"]
    assert attrs(events[0]["attributes"]) == {"attempt": 2, "ok": False}
    assert all(e["spanId"] == cs["spanId"] and e["traceId"] == cs["traceId"] for e in events)
    assert p.drop_stats()["spans"] == 0


def test_what_instrumentations_read_of_a_span(tmp_path):
    tracer = provider(tmp_path / "g.otlp").get_tracer("t")
    with tracer.start_as_current_span("outer", kind=SpanKind.SERVER, attributes={"a": 1, "l": ["x"]}) as outer:
        inner = tracer.start_span("inner")
        outer.set_attribute("b", True)
        outer.set_status(StatusCode.ERROR, "no")
        assert outer.name == "outer" and outer.kind is SpanKind.SERVER and outer.parent is None
        assert outer.attributes == {"a": 1, "l": ("x",), "b": True}
        assert outer.status.status_code is StatusCode.ERROR and outer.status.description == "no"
        assert inner.parent == outer.get_span_context() and inner.kind is SpanKind.INTERNAL
        assert outer.start_time > 0 and outer.end_time is None
    assert outer.end_time >= outer.start_time


def test_exception_in_current_span_is_recorded(tmp_path):
    path = tmp_path / "x.otlp"
    tracer = provider(path).get_tracer("t")
    with pytest.raises(ValueError):
        with tracer.start_as_current_span("fails"):
            raise ValueError("bad input")
    with pytest.raises(KeyError):
        with tracer.start_span("plain", record_exception=False):
            raise KeyError("k")
    spans = by_name(spans_of(path))
    _, _, s = spans["fails"]
    assert s["status"] == {"code": 2, "message": "ValueError: bad input"}
    _, _, plain = spans["plain"]
    assert plain["status"] == {"code": 2, "message": "KeyError: 'k'"}
    [ev] = [r for _, _, r in logs_of(path)]  # none for "plain" (record_exception=False)
    a = attrs(ev["attributes"])
    assert ev["eventName"] == "exception" and ev["spanId"] == s["spanId"]
    assert a["exception.type"] == "ValueError" and a["exception.message"] == "bad input"
    assert "raise ValueError" in a["exception.stacktrace"] and a["exception.escaped"] == "False"


def test_python_code_run_by_a_span_method_may_use_the_span(tmp_path):
    """An exception's __str__ (run while the span records it) that uses the
    same span: nothing raises, both changes are kept."""
    path = tmp_path / "re.otlp"
    tracer = provider(path).get_tracer("t")

    class Odd(Exception):
        def __init__(self, span):
            self.span = span

        def __str__(self):
            self.span.set_attribute("seen.in.str", self.span.get_span_context().span_id > 0)
            return "odd"

    with pytest.raises(Odd):
        with tracer.start_as_current_span("re-entered") as span:
            raise Odd(span)
    [(_, _, s)] = spans_of(path)
    assert attrs(s["attributes"]) == {"seen.in.str": True}
    assert s["status"] == {"code": 2, "message": "Odd: odd"}


def test_a_value_that_changes_its_attribute_dict_while_converted(tmp_path):
    """Values whose conversion (a list's `__iter__`, a big int's `__float__`)
    adds and removes keys of the very dict being converted, at the start, in
    set_attributes and in an event: nothing raises, and the span holds the
    attributes each call was given."""
    path = tmp_path / "meddle.otlp"
    tracer = provider(path).get_tracer("t")
    at_start, expected_start = meddling_attributes()
    later, expected_later = meddling_attributes("later.")
    in_event, expected_event = meddling_attributes("event.")
    with tracer.start_as_current_span("meddled", attributes=at_start) as span:
        span.set_attributes(later)
        span.add_event("e", in_event)
    assert any(k.startswith("added.") for k in at_start) and any(k.startswith("added.") for k in later)
    [(_, _, s)] = spans_of(path)
    assert s["name"] == "meddled"
    assert attrs(s["attributes"]) == {**expected_start, **expected_later}
    [(_, _, e)] = logs_of(path)
    assert e["eventName"] == "e" and attrs(e["attributes"]) == expected_event


def test_decorator_starts_a_span_per_call(tmp_path):
    path = tmp_path / "d.otlp"
    tracer = provider(path).get_tracer("t")

    @tracer.start_as_current_span("work")
    def work(n):
        return trace.get_current_span().get_span_context().span_id

    @tracer.start_as_current_span("async work")
    async def async_work():
        return trace.get_current_span().get_span_context().span_id

    ids = {work(1), work(2), asyncio.run(async_work())}
    spans = spans_of(path)
    assert sorted(s["name"] for _, _, s in spans) == ["async work", "work", "work"]
    assert {s["spanId"] for _, _, s in spans} == {hex_id(i, 16) for i in ids}


def test_remote_and_unsampled_parents(tmp_path):
    path = tmp_path / "r.otlp"
    tracer = provider(path).get_tracer("t")
    state = TraceState([("vendor", "v1")])
    remote = SpanContext(0xABC, 0xDEF, is_remote=True, trace_flags=TraceFlags(1), trace_state=state)
    span = tracer.start_span("from remote", context=trace.set_span_in_context(trace.NonRecordingSpan(remote)))
    assert span.get_span_context().trace_state == state
    span.end()
    unsampled = SpanContext(0xABC, 0x123, is_remote=True, trace_flags=TraceFlags(0))
    token = context.attach(trace.set_span_in_context(trace.NonRecordingSpan(unsampled)))
    try:
        with tracer.start_as_current_span("not sampled") as ns:
            assert not ns.is_recording()
            sc = ns.get_span_context()
            assert sc.trace_id == 0xABC and sc.span_id not in (0, 0x123) and not sc.trace_flags.sampled
    finally:
        context.detach(token)
    [(_, _, s)] = spans_of(path, incomplete=True)
    assert s["name"] == "from remote"
    assert s["traceId"] == hex_id(0xABC, 32) and s["parentSpanId"] == hex_id(0xDEF, 16)
    assert s["flags"] & 0x300 == 0x300  # parent remoteness known, and remote


def test_open_span_is_known_from_its_start(tmp_path):
    path = tmp_path / "open.otlp"
    span = provider(path).get_tracer("t").start_span("stuck", attributes={"http.route": "/checkout"})
    assert spans_of(path) == []  # not ended
    [(_, _, s)] = spans_of(path, incomplete=True)
    a = attrs(s["attributes"])
    assert s["name"] == "stuck" and a["http.route"] == "/checkout"
    assert a["otlp_mmap.incomplete"] is True
    assert s["spanId"] == hex_id(span.get_span_context().span_id, 16)


def test_limits_full_ring_and_no_file_never_raise(tmp_path, monkeypatch):
    monkeypatch.setenv("OTEL_MMAP_SPAN_SLOT_SIZE", "8192")  # 128 attributes in one record
    path = tmp_path / "lim.otlp"
    tracer = provider(path).get_tracer("t")
    with tracer.start_as_current_span("many") as s:
        for i in range(200):
            s.set_attribute(f"k{i}", i)
            s.add_event(f"e{i}")
        s.set_attribute("k0", "updated")  # a kept key can still change
        s.set_attribute("mixed", [1, "a"])  # not a valid value: left out, as the SDK does
    [(_, _, span)] = spans_of(path)
    a = attrs(span["attributes"])
    assert len(a) == 128 and a["k0"] == "updated" and "k199" not in a
    assert len(logs_of(path)) == 128
    many_links = [Link(SpanContext(1, i + 1, is_remote=False)) for i in range(200)]
    tracer.start_span("big start", attributes={f"a{i}": i for i in range(200)}, links=many_links).end()
    big = by_name(spans_of(path))["big start"][2]
    assert len(big["attributes"]) == 128 and len(big["links"]) == 128

    monkeypatch.delenv("OTEL_MMAP_SPAN_SLOT_SIZE")
    monkeypatch.setenv("OTEL_MMAP_SPAN_SLOTS", "16")
    full = provider(tmp_path / "full.otlp")
    t = full.get_tracer("t")
    for i in range(100):
        t.start_span(f"s{i}").end()
    assert full.drop_stats()["spans"] == 200 - 16  # 2 records a span, 16 slots

    nowhere = MmapTracerProvider("/proc/self/no/such/dir/x.otlp")
    assert nowhere.path is None
    with nowhere.get_tracer("t").start_as_current_span("x") as x:
        x.set_attribute("a", 1)
        assert x.get_span_context().is_valid


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_span_started_before_a_fork_ends_whole_in_the_childs_file(tmp_path):
    path = tmp_path / "f.otlp"
    p = provider(path)
    tracer = p.get_tracer("t")
    before = tracer.start_span("across fork", attributes={"at": "start"})
    pid = os.fork()
    if pid == 0:  # the child: end the parent's span, start one of its own
        code = 1
        try:
            before.set_attribute("ended in", "child")
            before.end()
            tracer.start_span("child only").end()
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert status == 0
    tracer.start_span("parent only").end()
    child_file = tmp_path / f"f.{pid}.otlp"
    in_child = by_name(spans_of(child_file))
    assert set(in_child) == {"across fork", "child only"}
    _, _, s = in_child["across fork"]
    assert attrs(s["attributes"]) == {"at": "start", "ended in": "child"}
    assert s["spanId"] == hex_id(before.get_span_context().span_id, 16)
    # The parent's file: its own span, and the one still open there (not ended in the parent).
    assert {s["name"] for _, _, s in spans_of(path)} == {"parent only"}
    assert {s["name"] for _, _, s in spans_of(path, incomplete=True)} == {"parent only", "across fork"}
    # Ids differ after the fork (Python's random is reseeded in the child).
    assert in_child["child only"][2]["spanId"] != by_name(spans_of(path))["parent only"][2]["spanId"]


def test_w3c_propagation_in_and_out(tmp_path):
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    path = tmp_path / "prop.otlp"
    tracer = provider(path).get_tracer("t")
    propagator = TraceContextTextMapPropagator()
    headers = {}
    with tracer.start_as_current_span("client", kind=SpanKind.CLIENT) as client:
        propagator.inject(headers)
    sc = client.get_span_context()
    assert headers["traceparent"] == f"00-{sc.trace_id:032x}-{sc.span_id:016x}-01"
    server = tracer.start_span("server", context=propagator.extract(headers), kind=SpanKind.SERVER)
    server.end()
    spans = by_name(spans_of(path))
    s = spans["server"][2]
    assert s["traceId"] == hex_id(sc.trace_id, 32) and s["parentSpanId"] == hex_id(sc.span_id, 16)
    assert s["flags"] & 0x300 == 0x300  # the parent is remote
