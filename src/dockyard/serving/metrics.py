"""Prometheus metrics of the model server, bound per model version at load time."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)

disable_created_metrics()  # type: ignore[no-untyped-call]  # the *_created series double the scrape size for no use here

LATENCY = (0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "dockyard_inference_requests",
            "Inference requests",
            ["model", "version", "status"],
            registry=r,
        )
        self.total = Histogram(
            "dockyard_inference_request_seconds",
            "Time from request to response",
            ["model", "version"],
            buckets=LATENCY,
            registry=r,
        )
        self.queue = Histogram(
            "dockyard_inference_queue_seconds",
            "Time a request waited for its batch to start",
            ["model", "version"],
            buckets=LATENCY,
            registry=r,
        )
        self.batch = Histogram(
            "dockyard_inference_batch_seconds",
            "Time of a whole batch: merge, predict, split",
            ["model", "version"],
            buckets=LATENCY,
            registry=r,
        )
        self.predict = Histogram(
            "dockyard_inference_predict_seconds",
            "Time in the model runtime per call",
            ["model", "version"],
            buckets=LATENCY,
            registry=r,
        )
        self.batch_size = Histogram(
            "dockyard_inference_batch_size",
            "Rows per call of the model runtime",
            ["model", "version"],
            buckets=SIZES,
            registry=r,
        )
        self.queue_depth = Gauge(
            "dockyard_inference_queue_depth",
            "Requests waiting for a batch",
            ["model", "version"],
            registry=r,
        )
        self.in_flight = Gauge(
            "dockyard_inference_in_flight", "Inference requests being served", registry=r
        )
        self.loaded = Gauge("dockyard_models_loaded", "Model versions loaded and ready", registry=r)
        self.load_seconds = Gauge(
            "dockyard_model_load_seconds",
            "How long loading and warming up took",
            ["model", "version"],
            registry=r,
        )

    def bind(self, model: str, version: str) -> ModelMetrics:
        labels = {"model": model, "version": version}
        return ModelMetrics(
            ok=self.requests.labels(model, version, "200"),
            total=self.total.labels(**labels),
            queue=self.queue.labels(**labels),
            batch=self.batch.labels(**labels),
            predict=self.predict.labels(**labels),
            batch_size=self.batch_size.labels(**labels),
            queue_depth=self.queue_depth.labels(**labels),
            requests=self.requests,
            model=model,
            version=version,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)


@dataclass
class ModelMetrics:
    """Children of the metrics for one model version (no label lookup per request)."""

    ok: Counter
    total: Histogram
    queue: Histogram
    batch: Histogram
    predict: Histogram
    batch_size: Histogram
    queue_depth: Gauge
    requests: Counter
    model: str
    version: str

    def failed(self, status: int) -> None:
        self.requests.labels(self.model, self.version, str(status)).inc()
