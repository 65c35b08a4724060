"""A small Flask app with no OpenTelemetry code. Run it with the `mmap`
distro and its traces, logs and metrics go to the file:

    pip install './python[instrument]' opentelemetry-instrumentation-flask flask
    OTEL_PYTHON_DISTRO=mmap OTEL_SERVICE_NAME=shop OTEL_MMAP_FILE=tmp/run/shop.otlp \\
        opentelemetry-instrument python python/examples/flask_app.py
    curl localhost:8000/orders/42
"""

import logging
import os

from flask import Flask

app = Flask(__name__)
log = logging.getLogger("shop")


@app.route("/orders/<int:order_id>")
def order(order_id):
    log.warning("order %d looked up", order_id)
    return {"order": order_id, "status": "shipped"}


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(os.environ.get("PORT", "8000")))
