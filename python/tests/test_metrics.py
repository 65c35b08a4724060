"""MmapMeterProvider: every instrument kind is written measurement by
measurement and aggregated by the reader into the right metric."""

from types import MappingProxyType

from opentelemetry.metrics import Observation
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

from conftest import attrs, hex_id, meddling_attributes, metrics_of
from opentelemetry_mmap import MmapMeterProvider


def points(metric):
    kind = next(k for k in ("sum", "gauge", "histogram") if k in metric)
    return kind, metric[kind]


def test_every_instrument_kind_round_trips(tmp_path):
    path = tmp_path / "m.otlp"
    mp = MmapMeterProvider(str(path), resource=Resource.create({"service.name": "py-metrics"}))
    meter = mp.get_meter("shop", "2.0")
    requests = meter.create_counter("requests", unit="{request}", description="requests served")
    requests.add(2, {"route": "/a"})
    requests.add(3, {"route": "/a"})
    requests.add(1, {"route": "/b"})
    meter.create_counter("bytes").add(1.5)
    inflight = meter.create_up_down_counter("inflight")
    inflight.add(5)
    inflight.add(-7)
    latency = meter.create_histogram("latency", unit="ms", explicit_bucket_boundaries_advisory=[10, 100])
    for v in (5, 50, 500, 7):
        latency.record(v, {"route": "/a"})
    meter.create_gauge("temperature").set(21.5, {"room": "1"})
    totals = iter([10, 25])
    meter.create_observable_counter("cpu", [lambda o: [Observation(next(totals), {"cpu": "0"})]])
    meter.create_observable_up_down_counter("queue", [lambda o: [Observation(-3)]])
    meter.create_observable_gauge("memory", [lambda o: [Observation(1024, {"kind": "rss"})]])
    mp.observe_now()
    mp.observe_now()

    m = metrics_of(path)
    scope, requests_m = m["requests"]
    assert scope == {"name": "shop", "version": "2.0"}
    assert requests_m.get("unit") == "{request}" and requests_m.get("description") == "requests served"
    kind, s = points(requests_m)
    assert kind == "sum" and s["isMonotonic"] and s["aggregationTemporality"] == 2
    assert sorted((attrs(p["attributes"])["route"], int(p["asInt"])) for p in s["dataPoints"]) == [("/a", 5), ("/b", 1)]
    kind, s = points(m["bytes"][1])
    assert kind == "sum" and s["dataPoints"][0]["asDouble"] == 1.5
    kind, s = points(m["inflight"][1])
    assert kind == "sum" and not s.get("isMonotonic") and int(s["dataPoints"][0]["asInt"]) == -2
    kind, h = points(m["latency"][1])
    [p] = h["dataPoints"]
    assert kind == "histogram" and p["explicitBounds"] == [10, 100]
    assert p["bucketCounts"] == ["2", "1", "1"] and int(p["count"]) == 4 and p["sum"] == 562
    kind, g = points(m["temperature"][1])
    assert kind == "gauge" and g["dataPoints"][0]["asDouble"] == 21.5
    # Observable counters observe totals (10, then 25): the sum is the last total.
    kind, s = points(m["cpu"][1])
    assert kind == "sum" and s["isMonotonic"] and int(s["dataPoints"][0]["asInt"]) == 25
    kind, s = points(m["queue"][1])
    assert kind == "sum" and not s.get("isMonotonic") and int(s["dataPoints"][0]["asInt"]) == -3
    kind, g = points(m["memory"][1])
    assert kind == "gauge" and int(g["dataPoints"][0]["asInt"]) == 1024
    # The drop counter of the file, as the Rust SDK reports it.
    dscope, dropped = m["otlp_mmap.dropped"]
    assert dscope["name"] == "opentelemetry-mmap"
    kind, s = points(dropped)
    assert kind == "sum" and {attrs(p["attributes"])["signal"] for p in s["dataPoints"]} == {"spans", "logs", "measurements", "dictionary"}
    mp.shutdown()


def test_measurement_in_a_span_carries_its_context_as_exemplar(tmp_path):
    path = tmp_path / "x.otlp"
    mp = MmapMeterProvider(str(path), export_drop_stats=False)
    counter = mp.get_meter("m").create_counter("c")
    with TracerProvider().get_tracer("t").start_as_current_span("s") as span:
        counter.add(1)
    [(_, metric)] = metrics_of(path).values()
    [p] = metric["sum"]["dataPoints"]
    ex = p.get("exemplars", [])
    if ex:  # exemplars are the collector's choice; when kept they name the span
        assert ex[0]["spanId"] == hex_id(span.get_span_context().span_id, 16)


def test_dropped_measurements_are_reported(tmp_path, monkeypatch):
    monkeypatch.setenv("OTEL_MMAP_METRIC_SLOTS", "16")
    path = tmp_path / "d.otlp"
    mp = MmapMeterProvider(str(path))
    c = mp.get_meter("m").create_counter("c")
    for _ in range(40):
        c.add(1)
    assert mp.drop_stats()["measurements"] == 40 - 16
    # The ring is full: the observation of `otlp_mmap.dropped` is dropped too,
    # and counted.
    mp.observe_now()
    assert mp.drop_stats()["measurements"] == 40 - 16 + 4


def test_observable_totals_are_differenced_per_set_even_with_nan(tmp_path):
    """A set holding NaN finds itself again (``nan == nan`` is false): the
    totals 5, 5, 5 are written as 5, 0, 0, so the sum stays 5; a set is the
    same whatever the order of its attributes."""
    path = tmp_path / "m.otlp"
    mp = MmapMeterProvider(str(path))
    meter = mp.get_meter("obs")
    meter.create_observable_counter("nan", [lambda o: [Observation(5, {"ratio": float("nan")})]])
    orders = iter([{"a": 1, "b": [1.5, 2.5]}, {"b": [1.5, 2.5], "a": 1}, {"a": 1, "b": [1.5, 2.5]}])
    meter.create_observable_counter("ordered", [lambda o: [Observation(7, next(orders))]])
    for _ in range(3):
        mp.observe_now()
    m = metrics_of(path)
    for name in ("nan", "ordered"):
        kind, s = points(m[name][1])
        [p] = s["dataPoints"]
        assert kind == "sum" and int(p["asInt"]) == {"nan": 5, "ordered": 7}[name], name
    mp.shutdown()


def test_a_value_that_changes_its_attribute_dict_while_converted(tmp_path):
    """Values whose conversion (a list's `__iter__`, a big int's `__float__`)
    adds and removes keys of the very dict being converted: nothing raises,
    and the measurement holds the attributes it was given."""
    path = tmp_path / "meddle.otlp"
    mp = MmapMeterProvider(str(path), export_drop_stats=False)
    meter = mp.get_meter("m")
    counted, expected_counted = meddling_attributes()
    meter.create_counter("c").add(3, counted)
    recorded, expected_recorded = meddling_attributes()
    meter.create_histogram("h").record(2.5, recorded)
    # Through a read-only mapping (before the fix, the call never returned).
    proxied, expected_proxied = meddling_attributes()
    meter.create_counter("p").add(4, MappingProxyType(proxied))
    assert all(any(k.startswith("added.") for k in d) for d in (counted, recorded, proxied))
    m = metrics_of(path)
    [p] = m["c"][1]["sum"]["dataPoints"]
    assert int(p["asInt"]) == 3 and attrs(p["attributes"]) == expected_counted
    [p] = m["h"][1]["histogram"]["dataPoints"]
    assert int(p["count"]) == 1 and p["sum"] == 2.5 and attrs(p["attributes"]) == expected_recorded
    [p] = m["p"][1]["sum"]["dataPoints"]
    assert int(p["asInt"]) == 4 and attrs(p["attributes"]) == expected_proxied
    # An observable counter makes a key of the set (running the list's
    # `__iter__`) before writing it: the observation is still written.
    observed, _ = meddling_attributes()
    meter.create_observable_counter("o", [lambda o: [Observation(5, observed)]])
    mp.observe_now()
    [p] = metrics_of(path)["o"][1]["sum"]["dataPoints"]
    assert int(p["asInt"]) == 5 and attrs(p["attributes"])["seq"] == ["x", "y"]
    mp.shutdown()
