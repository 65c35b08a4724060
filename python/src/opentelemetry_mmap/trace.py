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
"""

from __future__ import annotations

import logging
from typing import Any, Optional

from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from opentelemetry_mmap._files import FileHandle, open_handle

_logger = logging.getLogger("opentelemetry_mmap")

# Spans started and not yet ended whose start is remembered; more than this
# forgets them (their ends then write the name and every attribute again).
_MAX_OPEN = 100_000


def _attribute_dict(attributes: Any) -> Any:
    """The plain dict behind the SDK's ``BoundedAttributes`` (faster to walk)."""
    inner = getattr(attributes, "_dict", None)
    return inner if isinstance(inner, dict) else attributes


class MmapSpanProcessor(SpanProcessor):
    """Writes each span's start at ``on_start`` and the rest at ``on_end``
    into the file at ``path`` (else ``OTEL_MMAP_FILE``). Never raises; a full
    ring drops the record and counts it."""

    def __init__(self, path: Optional[str] = None) -> None:
        self._handle: Optional[FileHandle] = open_handle(path)
        # span_id -> (generation, name, attributes at the start)
        self._started: dict[int, tuple[int, str, dict]] = {}
        self._failed = False

    @property
    def path(self) -> Optional[str]:
        """The file written in this process."""
        return self._handle.path if self._handle is not None else None

    def drop_stats(self) -> dict:
        """Records dropped so far (see ``MmapFile.drop_stats``)."""
        native = self._handle.native if self._handle is not None else None
        return native.drop_stats() if native is not None else {}

    def on_start(self, span: Span, parent_context: Any = None) -> None:
        handle = self._handle
        if handle is None or handle.native is None:
            return
        try:
            attributes = _attribute_dict(span.attributes)
            self._write_start(handle, span, attributes)
            started = self._started
            if len(started) >= _MAX_OPEN:
                started.clear()
            started[span.context.span_id] = (handle.generation, span.name, dict(attributes) if attributes else {})
        except Exception as exc:  # never raise into the application
            self._report(exc)

    @staticmethod
    def _write_start(handle: FileHandle, span: Any, attributes: Any) -> None:
        ctx = span.context
        parent = span.parent
        handle.native.span_start(
            handle.scope_ref(span.instrumentation_scope, span.resource),
            ctx.trace_id,
            ctx.span_id,
            int(ctx.trace_flags),
            parent.span_id if parent is not None else 0,
            bool(parent.is_remote) if parent is not None else False,
            span.name,
            span.kind.value,
            span.start_time or 0,
            attributes,
        )

    def on_end(self, span: ReadableSpan) -> None:
        handle = self._handle
        if handle is None or handle.native is None:
            return
        try:
            ctx = span.context
            attributes = _attribute_dict(span.attributes)
            start = self._started.pop(ctx.span_id, None)
            if start is not None and start[0] == handle.generation:
                renamed = span.name if span.name != start[1] else None
                at_start = start[2]
                if not attributes or attributes == at_start:
                    changed = None
                else:
                    missing = object()
                    changed = [
                        (k, v) for k, v in attributes.items() if at_start.get(k, missing) is not v
                    ]
            else:
                # This file has no start of the span (it started before a
                # fork, before this processor, or was forgotten): write the
                # whole start now, with the final name and attributes.
                self._write_start(handle, span, attributes)
                renamed, changed = None, None
            links = span.links
            events = span.events
            status = span.status
            handle.native.span_end(
                handle.scope_ref(span.instrumentation_scope, span.resource),
                ctx.trace_id,
                ctx.span_id,
                int(ctx.trace_flags),
                span.end_time or 0,
                status.status_code.value,
                status.description,
                renamed,
                changed,
                [
                    (
                        link.context.trace_id,
                        link.context.span_id,
                        int(link.context.trace_flags),
                        bool(link.context.is_remote),
                        link.context.trace_state.to_header() if link.context.trace_state else None,
                        link.attributes,
                        getattr(link, "dropped_attributes", 0) or 0,
                    )
                    for link in links
                ]
                if links
                else None,
                [(e.name, e.timestamp, e.attributes) for e in events] if events else None,
            )
        except Exception as exc:  # never raise into the application
            self._report(exc)

    def shutdown(self) -> None:
        self._started.clear()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        # Every record is in the shared file once written: nothing to flush.
        return True

    def _report(self, exc: Exception) -> None:
        if not self._failed:
            self._failed = True
            _logger.warning("opentelemetry-mmap: a span could not be written: %r", exc)
