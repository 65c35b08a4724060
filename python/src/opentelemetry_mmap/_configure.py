"""``configure()``: the global tracer, logger and meter providers, writing
into the file: the SDK's ``TracerProvider`` with ``MmapSpanProcessor`` (or,
with ``tracer="mmap"`` / ``OTEL_MMAP_TRACER=mmap``, the cheaper
``MmapTracerProvider``), the SDK's ``LoggerProvider`` with
``MmapLogRecordProcessor``, and ``MmapMeterProvider``."""

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
from opentelemetry_mmap.tracer_provider import MmapTracerProvider

ENV_LOGGING = "OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED"
ENV_TRACER = "OTEL_MMAP_TRACER"
TRACERS = ("sdk", "mmap")


def configure(
    path: Optional[str] = None,
    resource: Optional[Resource] = None,
    logging_handler: Optional[bool] = None,
    tracer: Optional[str] = None,
) -> dict[str, Any]:
    """Sets up the global tracer, logger and meter providers writing into the
    file at ``path`` (else ``OTEL_MMAP_FILE``); the resource defaults to
    ``Resource.create()``. ``tracer`` (else ``OTEL_MMAP_TRACER``, else
    ``"sdk"``): ``"sdk"`` is the SDK's ``TracerProvider`` with
    ``MmapSpanProcessor`` (its samplers, span limits and other processors
    apply), ``"mmap"`` is ``MmapTracerProvider`` (the tracing API on the
    file: several times cheaper per span; parent-based always-on sampling).
    The standard library's root logger gets an OpenTelemetry
    ``LoggingHandler`` unless ``logging_handler=False`` or
    ``OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED=false``. Returns the
    providers."""
    resource = resource if resource is not None else Resource.create()
    tracer = (tracer or os.environ.get(ENV_TRACER, "") or "sdk").strip().lower()
    if tracer not in TRACERS:
        logging.getLogger("opentelemetry_mmap").warning(
            "opentelemetry-mmap: %s=%r is not one of %s; using sdk", ENV_TRACER, tracer, TRACERS
        )
        tracer = "sdk"
    tracer_provider: Any
    if tracer == "mmap":
        tracer_provider = MmapTracerProvider(path, resource=resource)
    else:
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
