"""``MmapSpanProcessor``: a span processor for the SDK's ``TracerProvider``
that writes every span into the OTLP-MMAP file.

=============  ==============================================================
SDK callback   records in the spans ring
=============  ==============================================================
``on_start``   ``StartSpan`` (ids, parent, name, kind, start time, the
               attributes known at the start), so that a span still open when
               the process dies is known and delivered as an incomplete span
``on_end``     ``ChangeSpanName`` if renamed, ``UpdateAttributes`` with the
               attributes added or changed since the start, one ``AddLink``
               with every link, the span's events (as ``Event`` records in the
               events ring), then ``EndSpan`` (end time, status)
=============  ==============================================================

Both callbacks are the native ``SpanWriter``'s (Rust, no Python frame per
call), which reads the SDK's span objects itself.
"""

from __future__ import annotations

from typing import Any, Optional

from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from opentelemetry_mmap._files import FileHandle, FileUser, open_handle
from opentelemetry_mmap._native import SpanWriter


class MmapSpanProcessor(FileUser, SpanProcessor):
    """Writes each span's start at ``on_start`` and the rest at ``on_end``
    into the file at ``path`` (else ``OTEL_MMAP_FILE``). Never raises; a full
    ring drops the record and counts it."""

    def __init__(self, path: Optional[str] = None) -> None:
        self._handle: Optional[FileHandle] = open_handle(path)
        self._writer = SpanWriter()
        if self._handle is not None:
            self._handle.attach(self._writer)
        # The SDK calls these for every span: straight into the native writer.
        self.on_start = self._writer.on_start  # type: ignore[method-assign]
        self.on_end = self._writer.on_end  # type: ignore[method-assign]

    def on_start(self, span: Span, parent_context: Any = None) -> None:  # replaced per instance
        self._writer.on_start(span, parent_context)

    def on_end(self, span: ReadableSpan) -> None:  # replaced per instance
        self._writer.on_end(span)

    def shutdown(self) -> None:
        self._writer.clear()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        # Every record is in the shared file once written: nothing to flush.
        return True
