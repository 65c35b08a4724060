"""OpenTelemetry for Python apps, written into an OTLP-MMAP file that the
``otelcol-mmap`` Collector reads: every span started, log record emitted and
measurement taken is in shared pages as soon as the call returns, so it
survives the process's crash, OOM kill or ``SIGKILL``. Spans still open when
the process dies arrive as incomplete spans.

- ``MmapSpanProcessor(path=None)`` for the SDK's ``TracerProvider``,
- ``MmapLogRecordProcessor(path=None)`` for the SDK's ``LoggerProvider``,
- ``MmapMeterProvider(path=None)``, the metrics API written measurement by
  measurement,
- ``MmapTracerProvider(path=None)``, the tracing API written span by span
  without the SDK's span machinery (cheaper; parent-based always-on sampling,
  no other processors),
- ``configure(path=None)`` sets them up as the global providers (what the
  ``mmap`` distro does for ``opentelemetry-instrument``).

``path=None`` reads ``OTEL_MMAP_FILE``; ring sizes come from
``OTEL_MMAP_{SPAN,LOG,METRIC}_SLOTS`` and ``OTEL_MMAP_{SPAN,LOG,METRIC}_SLOT_SIZE``
as in the Rust SDK. Each process writes its own file: after ``fork`` the child
writes ``<name>.<pid>.<ext>`` (or the path with ``{pid}`` replaced). The
writing is done by the Rust SDK (``opentelemetry_mmap._native``).
"""

from opentelemetry_mmap._configure import configure
from opentelemetry_mmap.logs import MmapLogRecordProcessor
from opentelemetry_mmap.metrics import MmapMeterProvider
from opentelemetry_mmap.trace import MmapSpanProcessor
from opentelemetry_mmap.tracer_provider import MmapTracerProvider

__all__ = [
    "MmapLogRecordProcessor",
    "MmapMeterProvider",
    "MmapSpanProcessor",
    "MmapTracerProvider",
    "configure",
]
