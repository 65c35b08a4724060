"""Zero-code use with ``opentelemetry-instrument``:

    OTEL_PYTHON_DISTRO=mmap OTEL_MMAP_FILE=/var/run/otlp-mmap/app.otlp \\
        opentelemetry-instrument python app.py

``MmapDistro`` (entry point ``mmap`` of ``opentelemetry_distro``) selects the
``mmap`` configurator; ``MmapConfigurator`` (entry point ``mmap`` of
``opentelemetry_configurator``) runs ``opentelemetry_mmap.configure()``:
traces, logs (through a ``LoggingHandler`` on the root logger) and metrics of
the instrumented app go to the file. ``OTEL_MMAP_TRACER=mmap`` makes the
tracer provider ``MmapTracerProvider`` (cheaper per span) instead of the
SDK's with ``MmapSpanProcessor``. Needs ``opentelemetry-instrumentation``
(the package's ``instrument`` extra)."""

from __future__ import annotations

import os
from typing import Any

from opentelemetry.instrumentation.distro import BaseDistro
from opentelemetry.sdk._configuration import _BaseConfigurator

from opentelemetry_mmap._configure import configure


class MmapDistro(BaseDistro):
    """Selects the ``mmap`` configurator (unless ``OTEL_PYTHON_CONFIGURATOR`` names another)."""

    def _configure(self, **kwargs: Any) -> None:
        os.environ.setdefault("OTEL_PYTHON_CONFIGURATOR", "mmap")


class MmapConfigurator(_BaseConfigurator):
    """Sets up the global providers writing into ``OTEL_MMAP_FILE``."""

    def _configure(self, **kwargs: Any) -> None:
        configure()
