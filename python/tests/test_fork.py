"""Pre-fork servers: after fork each process writes its own file; the child
never touches the parent's."""

import json
import os

from opentelemetry.sdk.trace import TracerProvider

from conftest import spans_of
from opentelemetry_mmap import MmapSpanProcessor


def run_in_child(work):
    """Forks; the child runs `work()` and reports its result as JSON."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        code = 0
        try:
            os.write(w, json.dumps(work()).encode())
        except BaseException as exc:  # report, never return into pytest
            os.write(w, json.dumps({"error": repr(exc)}).encode())
            code = 1
        finally:
            os._exit(code)
    os.close(w)
    with os.fdopen(r) as f:
        out = json.loads(f.read())
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, out
    return pid, out


def names(path):
    return sorted(s["name"] for _, _, s in spans_of(path, incomplete=True))


def test_child_writes_its_own_file_and_leaves_the_parents_alone(tmp_path):
    path = tmp_path / "app.otlp"
    provider = TracerProvider()
    processor = MmapSpanProcessor(str(path))
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("t")
    tracer.start_span("parent before fork").end()
    open_in_parent = tracer.start_span("open across the fork")

    def child():
        for i in range(3):
            tracer.start_span(f"child {i}").end()
        open_in_parent.end()  # ends in the child: written to the child's file
        fds = [os.readlink(f"/proc/self/fd/{fd}") for fd in os.listdir("/proc/self/fd") if os.path.exists(f"/proc/self/fd/{fd}")]
        maps = open("/proc/self/maps").read()
        return {"path": processor.path, "fds": fds, "mapped": str(path) in maps}

    pid, out = run_in_child(child)
    tracer.start_span("parent after fork").end()
    child_path = tmp_path / f"app.{pid}.otlp"
    assert out["path"] == str(child_path)
    # The child closed and unmapped the parent's file (the parent's writer
    # lock is then the parent's alone).
    assert str(path) not in out["fds"] and out["mapped"] is False
    assert names(path) == ["open across the fork", "parent after fork", "parent before fork"]
    [(_, _, still_open)] = [s for s in spans_of(path, incomplete=True) if s[2]["name"] == "open across the fork"]
    assert {"key": "otlp_mmap.incomplete", "value": {"boolValue": True}} in still_open["attributes"]
    assert names(child_path) == ["child 0", "child 1", "child 2", "open across the fork"]
    assert processor.path == str(path)


def test_pid_placeholder(tmp_path):
    template = str(tmp_path / "w-{pid}.otlp")
    provider = TracerProvider()
    processor = MmapSpanProcessor(template)
    provider.add_span_processor(processor)
    assert processor.path == str(tmp_path / f"w-{os.getpid()}.otlp")

    def child():
        provider.get_tracer("t").start_span("in child").end()
        return processor.path

    pid, child_path = run_in_child(child)
    assert child_path == str(tmp_path / f"w-{pid}.otlp")
    assert names(child_path) == ["in child"] and names(processor.path) == []


def test_processors_of_one_path_share_one_file(tmp_path, monkeypatch):
    from opentelemetry_mmap import MmapLogRecordProcessor, MmapMeterProvider

    path = tmp_path / "shared.otlp"
    monkeypatch.setenv("OTEL_MMAP_FILE", str(path))
    a, b = MmapSpanProcessor(), MmapLogRecordProcessor()
    m = MmapMeterProvider(export_drop_stats=False)
    assert a.path == b.path == m.path == str(path)
    provider = TracerProvider()
    provider.add_span_processor(a)
    provider.get_tracer("t").start_span("one").end()
    MmapSpanProcessor(str(path))  # a second processor does not re-create the file
    assert names(path) == ["one"]


def test_meter_provider_observes_in_the_child(tmp_path):
    """The callback thread does not survive a fork: the provider restarts it
    in the child, whose observations go to the child's file."""
    import time

    from opentelemetry.metrics import Observation

    from conftest import metrics_of
    from opentelemetry_mmap import MmapMeterProvider

    path = tmp_path / "m.otlp"
    provider = MmapMeterProvider(str(path), export_interval_seconds=0.05, export_drop_stats=False)
    provider.get_meter("m").create_observable_gauge("pid", [lambda o: [Observation(os.getpid())]])

    def child():
        time.sleep(0.5)  # several intervals, on the restarted thread only
        return provider.path

    pid, child_path = run_in_child(child)
    [(_, metric)] = metrics_of(child_path).values()
    assert {int(p["asInt"]) for p in metric["gauge"]["dataPoints"]} == {pid}
    provider.shutdown()
