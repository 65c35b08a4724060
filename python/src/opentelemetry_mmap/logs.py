"""``MmapLogRecordProcessor``: a log record processor for the SDK's
``LoggerProvider`` that writes each record into the OTLP-MMAP file as one
``Event`` (time, severity, body, attributes, event name, the span it was
written in)."""

from __future__ import annotations

import logging
import time
from typing import Any, Optional

from opentelemetry.sdk._logs import LogRecordProcessor

from opentelemetry_mmap._files import FileHandle, open_handle

_logger = logging.getLogger("opentelemetry_mmap")


class MmapLogRecordProcessor(LogRecordProcessor):
    """Writes every log record into the file at ``path`` (else
    ``OTEL_MMAP_FILE``). Never raises; a full ring drops the record and
    counts it."""

    def __init__(self, path: Optional[str] = None) -> None:
        self._handle: Optional[FileHandle] = open_handle(path)
        self._failed = False

    @property
    def path(self) -> Optional[str]:
        """The file written in this process."""
        return self._handle.path if self._handle is not None else None

    def drop_stats(self) -> dict:
        """Records dropped so far (see ``MmapFile.drop_stats``)."""
        native = self._handle.native if self._handle is not None else None
        return native.drop_stats() if native is not None else {}

    def on_emit(self, log_record: Any) -> None:
        """Writes one record: the SDK's ``ReadWriteLogRecord`` (or, in older
        SDKs, ``LogData``)."""
        handle = self._handle
        if handle is None or handle.native is None:
            return
        try:
            record = getattr(log_record, "log_record", log_record)
            resource = getattr(log_record, "resource", None) or getattr(record, "resource", None)
            scope = getattr(log_record, "instrumentation_scope", None)
            severity = record.severity_number
            handle.native.log_record(
                handle.scope_ref(scope, resource),
                record.timestamp or record.observed_timestamp or time.time_ns(),
                severity.value if severity is not None else 0,
                record.severity_text,
                record.body,
                record.attributes,
                record.trace_id or 0,
                record.span_id or 0,
                int(record.trace_flags or 0),
                getattr(record, "event_name", None),
            )
        except Exception as exc:  # never raise into the application
            if not self._failed:
                self._failed = True
                _logger.warning("opentelemetry-mmap: a log record could not be written: %r", exc)

    # The SDK before 1.35 calls it `emit`.
    emit = on_emit

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        # Every record is in the shared file once written: nothing to flush.
        return True
