"""The Python web bench app: a Flask app, auto-instrumented by
opentelemetry-instrumentation-flask, served by gunicorn (`--preload`, so
the providers are set up once in the master and every worker is forked from
it). BENCH_PY_MODE picks where its spans go:

    none   the SDK with no processor
    mmap   MmapSpanProcessor, OTEL_MMAP_FILE (each worker: its own file)
    mmap-api  MmapTracerProvider (no SDK), OTEL_MMAP_FILE
    otlp   BatchSpanProcessor + the OTLP/gRPC exporter, BENCH_PY_ENDPOINT

    gunicorn --preload -w 2 --chdir bench python_web:app
"""

import os

from flask import Flask
from opentelemetry import trace
from opentelemetry.instrumentation.flask import FlaskInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

mode = os.environ.get("BENCH_PY_MODE", "none")
resource = Resource.create({"service.name": "py-web-bench"})
provider = TracerProvider(resource=resource)
if mode == "mmap-api":
    from opentelemetry_mmap import MmapTracerProvider

    provider = MmapTracerProvider(resource=resource)
elif mode == "mmap":
    from opentelemetry_mmap import MmapSpanProcessor

    provider.add_span_processor(MmapSpanProcessor())
elif mode == "otlp":
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=os.environ["BENCH_PY_ENDPOINT"], insecure=True)))
trace.set_tracer_provider(provider)

app = Flask(__name__)
FlaskInstrumentor().instrument_app(app)


@app.route("/items/<int:item_id>")
def item(item_id):
    return {"item": item_id, "pid": os.getpid()}
