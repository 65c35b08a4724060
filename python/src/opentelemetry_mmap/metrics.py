"""``MmapMeterProvider``: the OpenTelemetry metrics API implemented directly
on the OTLP-MMAP file, as the Rust SDK's provider is. Every ``add``,
``record`` and ``set`` writes one raw ``Measurement`` (the instrument's
interned definition, the attributes, the time, the value and the span
context of the current span); the collector aggregates.

============================================  ======================================
instrument                                    aggregation asked of the collector
============================================  ======================================
counter, observable counter                   cumulative monotonic sum
up-down counter, observable up-down counter   cumulative sum
histogram                                     cumulative explicit-bucket histogram
                                              (the advisory boundaries, else the
                                              OpenTelemetry defaults)
gauge, observable gauge                       gauge
============================================  ======================================

Observable instruments' callbacks run on one daemon thread per provider every
``OTEL_METRIC_EXPORT_INTERVAL`` ms (default 60000) and on ``observe_now()``.
Observable (up-down) counters observe running totals while the file carries
raw measurements, so the provider writes the difference from the previous
observation of the same attribute set. The provider also reports what the
file dropped as the observable counter ``otlp_mmap.dropped`` (attribute
``signal``: spans, logs, measurements, dictionary), as the Rust SDK does.
"""

from __future__ import annotations

import logging
import os
import struct
import threading
import types
import weakref
from typing import Any, Callable, Iterable, Optional, Sequence

from opentelemetry import metrics as api
from opentelemetry import trace
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from opentelemetry_mmap import _files
from opentelemetry_mmap._files import FileHandle, open_handle

_logger = logging.getLogger("opentelemetry_mmap")

_COUNTER, _UP_DOWN, _HISTOGRAM, _GAUGE = 0, 1, 2, 3

ENV_METRIC_INTERVAL = "OTEL_METRIC_EXPORT_INTERVAL"


def _interval_seconds() -> float:
    try:
        ms = float(os.environ.get(ENV_METRIC_INTERVAL, "") or 60000)
    except ValueError:
        ms = 60000
    return ms / 1000 if ms > 0 else 60.0


def _span_ids(context: Any) -> tuple[int, int, int]:
    """``(trace_id, span_id, flags)`` of the current (or given) context's span; zeros for none."""
    sc = trace.get_current_span(context).get_span_context()
    if sc.is_valid:
        return sc.trace_id, sc.span_id, int(sc.trace_flags)
    return 0, 0, 0


class _Definition:
    """An instrument's definition and its ref in the current file."""

    __slots__ = ("meter", "name", "unit", "description", "kind", "boundaries", "_generation", "_ref")

    def __init__(self, meter: "MmapMeter", name: str, unit: str, description: str, kind: int, boundaries: Optional[Sequence[float]] = None) -> None:
        self.meter = meter
        self.name = name
        self.unit = unit or ""
        self.description = description or ""
        self.kind = kind
        self.boundaries = [float(b) for b in boundaries] if boundaries is not None else None
        self._generation = -1
        self._ref = 0

    def write(self, amount: Any, attributes: Any, context: Any) -> None:
        handle = self.meter.handle
        native = handle.native
        if native is None:
            return
        try:
            if self._generation != handle.generation:
                self._ref = native.metric_ref(
                    self.meter.scope_ref(), self.name, self.description, self.unit, self.kind, self.boundaries
                )
                self._generation = handle.generation
            trace_id, span_id, flags = _span_ids(context)
            native.measure(self._ref, amount, attributes, trace_id, span_id, flags)
        except Exception as exc:  # never raise into the application
            self.meter.provider._report(exc)


class _Counter(api.Counter):
    def __init__(self, definition: _Definition) -> None:
        self._definition = definition

    def add(self, amount: float, attributes: Any = None, context: Any = None) -> None:
        self._definition.write(amount, attributes, context)


class _UpDownCounter(api.UpDownCounter):
    def __init__(self, definition: _Definition) -> None:
        self._definition = definition

    def add(self, amount: float, attributes: Any = None, context: Any = None) -> None:
        self._definition.write(amount, attributes, context)


class _Histogram(api.Histogram):
    def __init__(self, definition: _Definition) -> None:
        self._definition = definition

    def record(self, amount: float, attributes: Any = None, context: Any = None) -> None:
        self._definition.write(amount, attributes, context)


class _Gauge(api._Gauge):  # the API's synchronous gauge
    def __init__(self, definition: _Definition) -> None:
        self._definition = definition

    def set(self, amount: float, attributes: Any = None, context: Any = None) -> None:
        self._definition.write(amount, attributes, context)


class _Observable:
    """An observable instrument: its callbacks, and the totals last observed."""

    def __init__(self, definition: _Definition, callbacks: Optional[Sequence[Any]], difference: bool) -> None:
        self.definition = definition
        self.difference = difference
        self.last: dict[Any, Any] = {}
        self.callbacks: list = []
        for cb in callbacks or ():
            if isinstance(cb, types.GeneratorType):
                next(cb)  # a generator callback is primed, then sent the options
                self.callbacks.append(lambda options, g=cb: g.send(options))
            else:
                self.callbacks.append(cb)

    def observe(self, options: CallbackOptions) -> None:
        for cb in self.callbacks:
            try:
                observations: Iterable[Observation] = cb(options) or ()
                for obs in observations:
                    self._write(obs.value, obs.attributes)
            except Exception as exc:  # a failing callback is logged, the others still run
                _logger.warning("opentelemetry-mmap: callback of %s failed: %r", self.definition.name, exc)

    def _write(self, value: Any, attributes: Any) -> None:
        if self.difference:
            key = _attribute_set_key(attributes)
            previous = self.last.get(key)
            self.last[key] = value
            if previous is not None:
                value = value - previous
        # Observations are not made inside a span of the application.
        self.definition.write(value, attributes, trace.set_span_in_context(trace.INVALID_SPAN))


def _value_key(value: Any) -> Any:
    """An attribute value as a dict key: floats by their bits (a NaN finds
    itself again, where ``nan == nan`` is false), sequences as tuples."""
    if isinstance(value, float):
        return ("f", struct.pack("<d", value))
    if isinstance(value, (list, tuple)):
        return tuple(_value_key(v) for v in value)
    return value


def _attribute_set_key(attributes: Any) -> Any:
    """An attribute set as the key of the last observed totals (the order of
    the attributes does not matter). The items are taken first: making a key
    of a value may run its code (a list's ``__iter__``), which may change
    the attributes."""
    items = list((attributes or {}).items())
    return tuple(sorted(((str(k), _value_key(v)) for k, v in items), key=lambda kv: kv[0]))


class _ObservableCounter(api.ObservableCounter):
    def __init__(self, observable: _Observable) -> None:
        self._observable = observable


class _ObservableUpDownCounter(api.ObservableUpDownCounter):
    def __init__(self, observable: _Observable) -> None:
        self._observable = observable


class _ObservableGauge(api.ObservableGauge):
    def __init__(self, observable: _Observable) -> None:
        self._observable = observable


class MmapMeter(api.Meter):
    """The instruments of one instrumentation scope."""

    def __init__(self, provider: "MmapMeterProvider", scope: InstrumentationScope) -> None:
        super().__init__(scope.name, scope.version, scope.schema_url)
        self.provider = provider
        self.handle: FileHandle = provider._handle
        self._scope = scope

    def scope_ref(self) -> int:
        return self.handle.scope_ref(self._scope, self.provider.resource)

    def _definition(self, name: str, unit: str, description: str, kind: int, boundaries: Optional[Sequence[float]] = None) -> _Definition:
        return _Definition(self, name, unit, description, kind, boundaries)

    def create_counter(self, name: str, unit: str = "", description: str = "") -> api.Counter:
        return _Counter(self._definition(name, unit, description, _COUNTER))

    def create_up_down_counter(self, name: str, unit: str = "", description: str = "") -> api.UpDownCounter:
        return _UpDownCounter(self._definition(name, unit, description, _UP_DOWN))

    def create_histogram(
        self,
        name: str,
        unit: str = "",
        description: str = "",
        *,
        explicit_bucket_boundaries_advisory: Optional[Sequence[float]] = None,
    ) -> api.Histogram:
        return _Histogram(self._definition(name, unit, description, _HISTOGRAM, explicit_bucket_boundaries_advisory))

    def create_gauge(self, name: str, unit: str = "", description: str = "") -> Any:
        return _Gauge(self._definition(name, unit, description, _GAUGE))

    def _observable(self, name: str, callbacks: Any, unit: str, description: str, kind: int, difference: bool) -> _Observable:
        observable = _Observable(self._definition(name, unit, description, kind), callbacks, difference)
        self.provider._register(observable)
        return observable

    def create_observable_counter(self, name: str, callbacks: Any = None, unit: str = "", description: str = "") -> api.ObservableCounter:
        return _ObservableCounter(self._observable(name, callbacks, unit, description, _COUNTER, True))

    def create_observable_up_down_counter(self, name: str, callbacks: Any = None, unit: str = "", description: str = "") -> api.ObservableUpDownCounter:
        return _ObservableUpDownCounter(self._observable(name, callbacks, unit, description, _UP_DOWN, True))

    def create_observable_gauge(self, name: str, callbacks: Any = None, unit: str = "", description: str = "") -> api.ObservableGauge:
        return _ObservableGauge(self._observable(name, callbacks, unit, description, _GAUGE, False))


class _NoFileHandle:
    """Stands in for the file when none could be opened: nothing is written."""

    native = None
    generation = 0
    path = None

    def scope_ref(self, scope: Any, resource: Any) -> int:
        return 0


class MmapMeterProvider(api.MeterProvider):
    """A ``MeterProvider`` whose measurements are written straight into the
    file at ``path`` (else ``OTEL_MMAP_FILE``). ``resource`` defaults to the
    SDK's ``Resource.create()`` (``OTEL_SERVICE_NAME``,
    ``OTEL_RESOURCE_ATTRIBUTES``). Never raises; a full ring drops the
    measurement and counts it."""

    def __init__(
        self,
        path: Optional[str] = None,
        resource: Optional[Resource] = None,
        export_interval_seconds: Optional[float] = None,
        export_drop_stats: bool = True,
    ) -> None:
        self._handle: Any = open_handle(path) or _NoFileHandle()
        self.resource = resource if resource is not None else Resource.create()
        self._interval = export_interval_seconds if export_interval_seconds else _interval_seconds()
        self._observables: list[_Observable] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._failed = False
        self._shut_down = False
        _files._child_hooks.append(weakref.WeakMethod(self._after_fork_in_child))
        if export_drop_stats:
            self.get_meter("opentelemetry-mmap").create_observable_counter(
                "otlp_mmap.dropped",
                [self._observe_drops],
                unit="{record}",
                description="Records the OTLP-MMAP writer dropped (ring full, record too large, dictionary entry not stored, encoding error)",
            )

    @property
    def path(self) -> Optional[str]:
        """The file written in this process."""
        return self._handle.path

    def drop_stats(self) -> dict:
        """Records dropped so far (see ``MmapFile.drop_stats``)."""
        native = self._handle.native
        return native.drop_stats() if native is not None else {}

    def get_meter(self, name: str, version: Optional[str] = None, schema_url: Optional[str] = None, attributes: Any = None) -> api.Meter:
        try:
            scope = InstrumentationScope(name or "", version, schema_url, attributes)
        except TypeError:  # SDKs before scope attributes
            scope = InstrumentationScope(name or "", version, schema_url)
        return MmapMeter(self, scope)

    def observe_now(self) -> None:
        """Runs every observable instrument's callbacks now, on this thread."""
        with self._lock:
            observables = list(self._observables)
        options = CallbackOptions()
        for observable in observables:
            observable.observe(options)

    def shutdown(self) -> None:
        """Stops the callback thread (after one last observation)."""
        if self._shut_down:
            return
        self._shut_down = True
        self._stop.set()
        self.observe_now()

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        """Observes now; measurements are in the file once written."""
        self.observe_now()
        return True

    def _observe_drops(self, options: CallbackOptions) -> Iterable[Observation]:
        stats = self.drop_stats()
        return [Observation(stats.get(signal, 0), {"signal": signal}) for signal in ("spans", "logs", "measurements", "dictionary")]

    def _register(self, observable: _Observable) -> None:
        with self._lock:
            self._observables.append(observable)
            if self._thread is None and not self._shut_down:
                self._start_thread()

    def _start_thread(self) -> None:
        self._thread = threading.Thread(target=self._run, name="otlp-mmap-observe", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.observe_now()

    def _after_fork_in_child(self) -> None:
        # Threads do not survive a fork; the observed totals of the parent
        # are the child's starting point too (its file is new, its counts start over).
        self._lock = threading.Lock()
        for observable in self._observables:
            observable.last = {}
        if self._thread is not None and not self._shut_down:
            self._stop = threading.Event()
            self._start_thread()

    def _report(self, exc: Exception) -> None:
        if not self._failed:
            self._failed = True
            _logger.warning("opentelemetry-mmap: a measurement could not be written: %r", exc)
