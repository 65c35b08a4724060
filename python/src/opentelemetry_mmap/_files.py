"""The OTLP-MMAP files this process writes: one per configured path, shared by
every processor and meter provider given that path, and re-created in a
forked child (pre-fork servers: gunicorn, uwsgi) so that each process writes
its own file.

Paths: ``path=None`` reads ``OTEL_MMAP_FILE`` (or ``SDK_MMAP_EXPORTER_FILE``).
``{pid}`` in a path is replaced by the process id. After a fork, the child
closes the parent's file (it never writes into it) and creates its own: the
path with ``{pid}`` replaced by its pid, or, without ``{pid}``, the path with
``.<pid>`` put before the file's extension (``app.otlp`` -> ``app.4242.otlp``).

Never raises into the application: a file that cannot be created is logged
once and its processors do nothing.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from typing import Any, Optional

from opentelemetry_mmap._native import MmapFile

_logger = logging.getLogger("opentelemetry_mmap")

ENV_FILE = "OTEL_MMAP_FILE"
ENV_FILE_REFERENCE = "SDK_MMAP_EXPORTER_FILE"

# Refs cached per file generation; more entries than this clears the cache.
_MAX_CACHED = 1024


def configured_path(path: Optional[str]) -> Optional[str]:
    """The path given, else the environment's; ``None`` when there is none."""
    if path:
        return os.fspath(path)
    for name in (ENV_FILE, ENV_FILE_REFERENCE):
        value = os.environ.get(name, "").strip()
        if value:
            return value
    return None


def resolve(template: str, forked: bool) -> str:
    """The path this process writes for a configured path."""
    pid = str(os.getpid())
    if "{pid}" in template:
        return template.replace("{pid}", pid)
    if not forked:
        return template
    head, tail = os.path.split(template)
    stem, dot, ext = tail.rpartition(".")
    name = f"{stem}.{pid}.{ext}" if dot and stem else f"{tail}.{pid}"
    return os.path.join(head, name)


class FileHandle:
    """The file of one configured path in this process. ``native`` is the
    current ``MmapFile`` (``None`` when it could not be created); it is
    replaced in a forked child, and ``generation`` counts the replacements so
    that refs interned in an older file are not reused."""

    def __init__(self, template: str) -> None:
        self.template = template
        self.native: Optional[MmapFile] = None
        self.generation = 0
        self.forked = False
        self._refs: dict[Any, tuple[Any, Any, int]] = {}
        # The processors' native writers (SpanWriter, LogWriter): told of
        # every new file.
        self._writers: "weakref.WeakSet[Any]" = weakref.WeakSet()
        self.open()

    def attach(self, writer: Any) -> None:
        """Makes a native writer write into this file, now and after forks."""
        writer.set_file(self.native)
        self._writers.add(writer)

    def open(self) -> None:
        path = resolve(self.template, self.forked)
        try:
            self.native = MmapFile(path)
        except Exception as exc:  # never raise into the application
            self.native = None
            _logger.warning("opentelemetry-mmap: cannot create %s: %s; nothing is written", path, exc)
        self.generation += 1
        self._refs = {}
        for writer in list(getattr(self, "_writers", ())):
            writer.set_file(self.native)

    def reopen_in_child(self) -> None:
        """After a fork, in the child: create our file, point every writer
        at it, then close the parent's (unmapped, its descriptor closed)."""
        old = self.native
        self.forked = True
        self.open()
        if old is not None:
            old.close()

    @property
    def path(self) -> Optional[str]:
        native = self.native
        return native.path() if native is not None else None

    def resource_ref(self, resource: Any) -> int:
        """The ref of an SDK ``Resource`` (cached by identity)."""
        key = ("r", id(resource))
        hit = self._refs.get(key)
        if hit is not None and hit[0] is resource:
            return hit[2]
        native = self.native
        if native is None:
            return 0
        ref = native.resource_ref(getattr(resource, "attributes", None))
        self._remember(key, resource, None, ref)
        return ref

    def scope_ref(self, scope: Any, resource: Any) -> int:
        """The ref of an ``InstrumentationScope`` under ``resource`` (cached by identity)."""
        key = (id(scope), id(resource))
        hit = self._refs.get(key)
        if hit is not None and hit[0] is scope and hit[1] is resource:
            return hit[2]
        native = self.native
        if native is None:
            return 0
        resource_ref = self.resource_ref(resource)
        if scope is None:
            ref = native.scope_ref(resource_ref, "")
        else:
            ref = native.scope_ref(
                resource_ref,
                scope.name or "",
                scope.version or None,
                scope.schema_url or None,
                getattr(scope, "attributes", None),
            )
        self._remember(key, scope, resource, ref)
        return ref

    def _remember(self, key: Any, a: Any, b: Any, ref: int) -> None:
        if len(self._refs) >= _MAX_CACHED:
            self._refs = {}
        self._refs[key] = (a, b, ref)


_lock = threading.Lock()
_handles: dict[str, FileHandle] = {}


class FileUser:
    """What a processor or provider writing through a ``FileHandle`` (its
    ``_handle``, ``None`` when no file is configured) tells about its file."""

    _handle: Optional[FileHandle]

    @property
    def path(self) -> Optional[str]:
        """The file written in this process."""
        return self._handle.path if self._handle is not None else None

    def drop_stats(self) -> dict:
        """Records dropped so far (see ``MmapFile.drop_stats``)."""
        native = self._handle.native if self._handle is not None else None
        return native.drop_stats() if native is not None else {}


def open_handle(path: Optional[str]) -> Optional[FileHandle]:
    """The handle of ``path`` (else ``OTEL_MMAP_FILE``), created at first use;
    ``None`` (logged) when no path is configured."""
    template = configured_path(path)
    if template is None:
        _logger.warning(
            "opentelemetry-mmap: no file: pass path= or set %s; nothing is written", ENV_FILE
        )
        return None
    with _lock:
        handle = _handles.get(template)
        if handle is None:
            handle = FileHandle(template)
            _handles[template] = handle
        return handle


def _after_fork_in_child() -> None:
    global _lock
    _lock = threading.Lock()
    for handle in list(_handles.values()):
        try:
            handle.reopen_in_child()
        except Exception as exc:  # never raise into the application
            _logger.warning("opentelemetry-mmap: cannot re-create %s after fork: %s", handle.template, exc)
    for ref in list(_child_hooks):
        hook = ref()
        if hook is None:
            _child_hooks.remove(ref)
            continue
        try:
            hook()
        except Exception as exc:
            _logger.warning("opentelemetry-mmap: after-fork hook failed: %s", exc)


# Weak references to what runs after the files are re-created in a child
# (the meter providers restart their callback thread).
_child_hooks: list = []

if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
