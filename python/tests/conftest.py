"""Helpers: read what a file holds with the project's own reader,
`otlp-mmap dump` (OTLP/JSON, as the Collector's file exporter writes it)."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOOL = os.environ.get("OTLP_MMAP_TOOL", str(ROOT / "target/release/otlp-mmap"))


def dump(path, signal="all", incomplete=False):
    """Every export request the file holds, parsed."""
    if not os.access(TOOL, os.X_OK):
        pytest.fail(f"the otlp-mmap tool is missing at {TOOL}: run `make release-bins` (or set OTLP_MMAP_TOOL)")
    args = [TOOL, "dump", "--signal", signal]
    if incomplete:
        args.append("--include-incomplete")
    out = subprocess.run(args + [str(path)], check=True, capture_output=True, text=True).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def value_of(any_value):
    """An OTLP/JSON AnyValue as a Python value."""
    if "stringValue" in any_value:
        return any_value["stringValue"]
    if "boolValue" in any_value:
        return any_value["boolValue"]
    if "intValue" in any_value:
        return int(any_value["intValue"])
    if "doubleValue" in any_value:
        return float(any_value["doubleValue"])
    if "bytesValue" in any_value:
        import base64

        return base64.b64decode(any_value["bytesValue"])
    if "arrayValue" in any_value:
        return [value_of(v) for v in any_value["arrayValue"].get("values", [])]
    if "kvlistValue" in any_value:
        return attrs(any_value["kvlistValue"].get("values", []))
    return None


def attrs(kvs):
    return {kv["key"]: value_of(kv.get("value", {})) for kv in kvs or []}


def spans_of(path, incomplete=False):
    """Every span: (resource attributes, scope, span)."""
    out = []
    for req in dump(path, "traces", incomplete):
        for rs in req.get("resourceSpans", []):
            for ss in rs.get("scopeSpans", []):
                for span in ss.get("spans", []):
                    out.append((attrs(rs.get("resource", {}).get("attributes")), ss.get("scope", {}), span))
    return out


def logs_of(path):
    out = []
    for req in dump(path, "logs"):
        for rl in req.get("resourceLogs", []):
            for sl in rl.get("scopeLogs", []):
                for rec in sl.get("logRecords", []):
                    out.append((attrs(rl.get("resource", {}).get("attributes")), sl.get("scope", {}), rec))
    return out


def metrics_of(path):
    """name -> (scope, metric)."""
    out = {}
    for req in dump(path, "metrics"):
        for rm in req.get("resourceMetrics", []):
            for sm in rm.get("scopeMetrics", []):
                for m in sm.get("metrics", []):
                    out[m["name"]] = (sm.get("scope", {}), m)
    return out


def hex_id(n, width):
    return format(n, f"0{width}x")


# Values whose conversion runs Python code (a hook) that changes the very dict
# being converted: the binding must neither raise (a panic would be a
# `BaseException`, past `except Exception`) nor lose the record. Each record
# holds the attributes as they were when the call was made.
_added = itertools.count()


def meddle(target):
    """What a hook does to the dict it is converted from: removes its first
    key and adds two (the size changes)."""
    del target[next(iter(target))]
    for _ in range(2):
        target[f"added.{next(_added)}"] = "late"


class StrMeddler:
    """Its `__str__` meddles (the binding calls it for a log value)."""

    def __init__(self, target):
        self.target = target

    def __str__(self):
        meddle(self.target)
        return "str ran"


class ListMeddler(list):
    """A list whose `__iter__` meddles (the binding iterates an attribute array)."""

    def __init__(self, target, items):
        super().__init__(items)
        self.target = target

    def __iter__(self):
        meddle(self.target)
        return super().__iter__()


class BigIntMeddler(int):
    """2**70, beyond an i64: converted through its `__float__`, which meddles."""

    def __new__(cls, target):
        value = super().__new__(cls, 2**70)
        value.target = target
        return value

    def __float__(self):
        meddle(self.target)
        return float(int(self))


def meddling_attributes(prefix=""):
    """An attribute dict holding values that change it while converted, and
    the attributes a record of it holds (the `StrMeddler` is no attribute
    value: dropped, its `__str__` never run)."""
    d = {f"{prefix}a": 1, f"{prefix}s": "text"}
    d[f"{prefix}seq"] = ListMeddler(d, ["x", "y"])
    d[f"{prefix}big"] = BigIntMeddler(d)
    d[f"{prefix}obj"] = StrMeddler(d)
    d[f"{prefix}z"] = 2.5
    expected = {f"{prefix}a": 1, f"{prefix}s": "text", f"{prefix}seq": ["x", "y"], f"{prefix}big": float(2**70), f"{prefix}z": 2.5}
    return d, expected
