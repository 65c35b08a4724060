"""A Flask app for gunicorn with the providers set up at import: run with
`--preload`, the master sets them up once and each worker, after the fork,
writes its own file (OTEL_MMAP_FILE with the worker's pid)."""

import os

from flask import Flask
from opentelemetry import trace
from opentelemetry.instrumentation.flask import FlaskInstrumentor

import opentelemetry_mmap

opentelemetry_mmap.configure()
app = Flask(__name__)
FlaskInstrumentor().instrument_app(app)


@app.route("/req/<int:n>")
def req(n):
    trace.get_current_span().set_attribute("worker.pid", os.getpid())
    return {"n": n, "pid": os.getpid()}
