"""``MmapLogRecordProcessor``: a log record processor for the SDK's
``LoggerProvider`` that writes each record into the OTLP-MMAP file as one
``Event`` (time, severity, body, attributes, event name, the span it was
written in). ``on_emit`` is the native ``LogWriter``'s (Rust), which reads
the SDK's record objects itself."""

from __future__ import annotations

from typing import Any, Optional

from opentelemetry.sdk._logs import LogRecordProcessor

from opentelemetry_mmap._files import FileHandle, FileUser, open_handle
from opentelemetry_mmap._native import LogWriter


class MmapLogRecordProcessor(FileUser, LogRecordProcessor):
    """Writes every log record into the file at ``path`` (else
    ``OTEL_MMAP_FILE``). Never raises; a full ring drops the record and
    counts it."""

    def __init__(self, path: Optional[str] = None) -> None:
        self._handle: Optional[FileHandle] = open_handle(path)
        self._writer = LogWriter()
        if self._handle is not None:
            self._handle.attach(self._writer)
        # The SDK calls it for every record: straight into the native writer
        # (`emit` is its name before SDK 1.35).
        self.on_emit = self.emit = self._writer.on_emit  # type: ignore[method-assign]

    def on_emit(self, log_record: Any) -> None:  # replaced per instance
        self._writer.on_emit(log_record)

    emit = on_emit

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        # Every record is in the shared file once written: nothing to flush.
        return True
