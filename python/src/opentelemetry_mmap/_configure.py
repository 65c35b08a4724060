"""``configure()``: the SDK's tracer and logger providers with the mmap
processors, and the mmap meter provider, set as the global providers."""

from __future__ import annotations

import logging
import os
from typing import Any, Optional

from opentelemetry import metrics, trace
from opentelemetry._logs import set_logger_provider
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

from opentelemetry_mmap.logs import MmapLogRecordProcessor
from opentelemetry_mmap.metrics import MmapMeterProvider
from opentelemetry_mmap.trace import MmapSpanProcessor

ENV_LOGGING = "OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED"


def configure(path: Optional[str] = None, resource: Optional[Resource] = None, logging_handler: Optional[bool] = None) -> dict[str, Any]:
    """Sets up the global tracer, logger and meter providers writing into the
    file at ``path`` (else ``OTEL_MMAP_FILE``); the resource defaults to
    ``Resource.create()``. The standard library's root logger gets an
    OpenTelemetry ``LoggingHandler`` unless ``logging_handler=False`` or
    ``OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED=false``. Returns the
    providers."""
    resource = resource if resource is not None else Resource.create()
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(MmapSpanProcessor(path))
    trace.set_tracer_provider(tracer_provider)

    logger_provider = LoggerProvider(resource=resource)
    logger_provider.add_log_record_processor(MmapLogRecordProcessor(path))
    set_logger_provider(logger_provider)
    if logging_handler is None:
        logging_handler = os.environ.get(ENV_LOGGING, "true").strip().lower() != "false"
    if logging_handler:
        logging.getLogger().addHandler(LoggingHandler(logger_provider=logger_provider))

    meter_provider = MmapMeterProvider(path, resource=resource)
    metrics.set_meter_provider(meter_provider)
    return {"tracer_provider": tracer_provider, "logger_provider": logger_provider, "meter_provider": meter_provider}
