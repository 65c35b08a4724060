"""``MmapTracerProvider``: the OpenTelemetry tracing API implemented directly
on the OTLP-MMAP file, as the Rust SDK's ``MmapTracerProvider`` is; no
opentelemetry-sdk ``TracerProvider``, span processor or ``ReadableSpan`` per
span. Each span is a native object (``opentelemetry_mmap._native.Span``, a
virtual subclass of ``opentelemetry.trace.Span``): its start writes
``StartSpan`` (so a span still open when the process dies is delivered as an
incomplete span); attributes, events, links, the name and the status set
later are kept in Rust values and written at ``end`` with ``EndSpan``.

Compared with the SDK's ``TracerProvider`` + ``MmapSpanProcessor``:

- sampling is parent-based, always on: a span whose parent is not sampled is
  a ``NonRecordingSpan``, every other span is recorded (no ``OTEL_TRACES_SAMPLER``);
- no other span processors or exporters, no ``OTEL_SPAN_*_LIMIT`` variables
  (the SDK's default limits: 128 attributes, events and links per span);
- ids from Python's ``random`` (as the SDK's ``RandomIdGenerator``);
- the context is the API's (``opentelemetry.context``): instrumentation
  libraries, propagators and log correlation work as with the SDK.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any, Iterator, Optional

from opentelemetry import context as context_api
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.trace import Status, StatusCode

from opentelemetry_mmap._files import FileHandle, FileUser, open_handle
from opentelemetry_mmap._native import Span as _NativeSpan
from opentelemetry_mmap._native import Tracer as _NativeTracer

# isinstance(span, trace.Span) holds for the native spans (the API checks it
# before it records an exception or returns the current span).
trace.Span.register(_NativeSpan)

_SPAN_KEY = trace._SPAN_KEY  # the key the API keeps the current span under
_attach = context_api.attach
_detach = context_api.detach
_set_value = context_api.set_value


class _CurrentSpan:
    """What ``start_as_current_span`` returns: a context manager that starts
    the span at ``__enter__`` and makes it current, and at ``__exit__``
    records an exception, restores the context and ends the span (as the
    API's ``use_span``); as a decorator, each call runs in a new span."""

    __slots__ = ("_start", "_args", "_end_on_exit", "_span", "_token")

    def __init__(self, start: Any, args: tuple, end_on_exit: bool) -> None:
        self._start = start
        self._args = args
        self._end_on_exit = end_on_exit
        self._span: Any = None
        self._token: Any = None

    def __enter__(self) -> Any:
        span = self._span = self._start(*self._args)
        self._token = _attach(_set_value(_SPAN_KEY, span))
        return span

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        span = self._span
        try:
            _detach(self._token)
            # As the API's use_span: only exceptions (not GeneratorExit, KeyboardInterrupt).
            if isinstance(exc, Exception) and span.is_recording():
                if self._args[6]:
                    span.record_exception(exc)
                if self._args[7]:
                    span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
        finally:
            if self._end_on_exit:
                span.end()

    def __call__(self, func: Any) -> Any:
        start, args, end_on_exit = self._start, self._args, self._end_on_exit
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*a: Any, **kw: Any) -> Any:
                with _CurrentSpan(start, args, end_on_exit):
                    return await func(*a, **kw)

            return async_wrapper

        @functools.wraps(func)
        def wrapper(*a: Any, **kw: Any) -> Any:
            with _CurrentSpan(start, args, end_on_exit):
                return func(*a, **kw)

        return wrapper


class MmapTracer(trace.Tracer):
    """A tracer of ``MmapTracerProvider``. ``start_span`` is the native
    tracer's (Rust: the parent from the context, ids, ``StartSpan``)."""

    def __init__(self, native: _NativeTracer) -> None:
        self._native = native
        self.start_span = native.start_span  # type: ignore[method-assign]

    def start_span(  # replaced per instance
        self,
        name: str,
        context: Optional[context_api.Context] = None,
        kind: trace.SpanKind = trace.SpanKind.INTERNAL,
        attributes: Any = None,
        links: Any = None,
        start_time: Optional[int] = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
    ) -> trace.Span:
        return self._native.start_span(name, context, kind, attributes, links, start_time, record_exception, set_status_on_exception)

    def start_as_current_span(  # type: ignore[override]
        self,
        name: str,
        context: Optional[context_api.Context] = None,
        kind: trace.SpanKind = trace.SpanKind.INTERNAL,
        attributes: Any = None,
        links: Any = None,
        start_time: Optional[int] = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
        end_on_exit: bool = True,
    ) -> Iterator[trace.Span]:
        return _CurrentSpan(  # type: ignore[return-value]
            self._native.start_span,
            (name, context, kind, attributes, links, start_time, record_exception, set_status_on_exception),
            end_on_exit,
        )


class MmapTracerProvider(FileUser, trace.TracerProvider):
    """A ``TracerProvider`` (tracing API) whose spans are written straight
    into the file at ``path`` (else ``OTEL_MMAP_FILE``). ``resource``
    defaults to the SDK's ``Resource.create()`` (``OTEL_SERVICE_NAME``,
    ``OTEL_RESOURCE_ATTRIBUTES``). Never raises on a full ring: the record
    is dropped and counted."""

    def __init__(self, path: Optional[str] = None, resource: Optional[Resource] = None) -> None:
        self._handle: Optional[FileHandle] = open_handle(path)
        self.resource = resource if resource is not None else Resource.create()
        self._tracers: dict[Any, MmapTracer] = {}

    def get_tracer(
        self,
        instrumenting_module_name: str,
        instrumenting_library_version: Optional[str] = None,
        schema_url: Optional[str] = None,
        attributes: Any = None,
    ) -> trace.Tracer:
        key = (instrumenting_module_name, instrumenting_library_version, schema_url)
        if attributes is None:
            tracer = self._tracers.get(key)
            if tracer is not None:
                return tracer
        native = _NativeTracer(
            instrumenting_module_name or "",
            instrumenting_library_version,
            schema_url,
            attributes,
            self.resource.attributes,
        )
        if self._handle is not None:
            self._handle.attach(native)
        tracer = MmapTracer(native)
        if attributes is None:
            self._tracers[key] = tracer
        return tracer

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        # Every record is in the shared file once written: nothing to flush.
        return True
