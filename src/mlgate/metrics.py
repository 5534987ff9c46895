"""Prometheus metrics of the inference engine, in a CollectorRegistry owned by one app (never the global one).

Every series is labelled by ``model`` and ``version``, and only models in the repository get series, so
the label set stays bounded whatever names clients send. Exported at ``GET /metrics``:

- ``mlgate_requests_total{model, version, status}``: inference requests by HTTP status of the answer;
- ``mlgate_queue_depth{model, version}``: requests waiting in the model's queue (not yet dispatched);
- ``mlgate_batch_size{model, version}``: rows per runtime call (histogram);
- ``mlgate_queue_wait_seconds{model, version}``: from entering the queue to the start of the runtime call;
- ``mlgate_compute_seconds{model, version}``: duration of each runtime call (in a worker: the round trip);
- ``mlgate_worker_restarts_total{model, version}``: worker processes restarted after dying;
- ``mlgate_estimated_wait_seconds{model, version}``: admission control's estimate of the time a request
  arriving now would take (queue ahead of it times the measured service time per batch, plus its own);
- ``mlgate_cache_requests_total{model, version, result}``: requests to cached models, ``hit`` or ``miss``.

With several HTTP processes (``mlgate serve --workers N``) the series live in prometheus-client's
multiprocess mode: every process writes its values to files in ``PROMETHEUS_MULTIPROC_DIR`` (set by
``mlgate.server`` before the processes start) and ``render`` sums them over all live processes, so
``/metrics`` reports the whole server whichever process answers. In that mode an unloaded model's series stay
until the server restarts (the files are append-only).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

__all__ = ["EngineMetrics", "ModelMetrics"]

def _pid_without_system_call() -> None:
    """In multiprocess mode, give prometheus-client this process's id from memory: it asks for it before every
    counter, gauge and histogram write (to notice a fork), and ``os.getpid`` is a system call, four or five
    per request (issue 17). A fork updates the remembered id. Must run before any metric is created."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return
    from prometheus_client import values

    pid = [os.getpid()]
    os.register_at_fork(after_in_child=lambda: pid.__setitem__(0, os.getpid()))
    values.ValueClass = values.MultiProcessValue(process_identifier=lambda: pid[0])  # type: ignore[no-untyped-call]


_pid_without_system_call()

_ROWS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)
_SECONDS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_LABELS = ("model", "version")


@dataclass(frozen=True)
class ModelMetrics:
    """The series of one model version, ready to observe (bound to its labels)."""

    queue_depth: Gauge
    batch_size: Histogram
    queue_wait: Histogram
    compute: Histogram
    worker_restarts: Counter
    estimated_wait: Gauge | None = None


class EngineMetrics:
    """All engine metrics of one app; pass ``registry`` to collect into your own CollectorRegistry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.requests = Counter("mlgate_requests", "Inference requests by HTTP status of the answer.",
                                (*_LABELS, "status"), registry=r)
        self.queue_depth = Gauge("mlgate_queue_depth", "Requests waiting in the model's queue.", _LABELS,
                                 registry=r, multiprocess_mode="livesum")
        self.batch_size = Histogram("mlgate_batch_size", "Rows per runtime call.", _LABELS, buckets=_ROWS,
                                    registry=r)
        self.queue_wait = Histogram("mlgate_queue_wait_seconds", "Seconds from entering the queue to the "
                                    "start of the runtime call.", _LABELS, buckets=_SECONDS, registry=r)
        self.compute = Histogram("mlgate_compute_seconds", "Seconds per runtime call.", _LABELS,
                                 buckets=_SECONDS, registry=r)
        self.worker_restarts = Counter("mlgate_worker_restarts", "Worker processes restarted after dying.",
                                       _LABELS, registry=r)
        self.estimated_wait = Gauge("mlgate_estimated_wait_seconds", "Estimated seconds a request arriving now "
                                    "would take: queue ahead times service time per batch, plus its own.",
                                    _LABELS, registry=r, multiprocess_mode="livemax")
        self.cache = Counter("mlgate_cache_requests", "Requests to cached models by result: hit or miss.",
                             (*_LABELS, "result"), registry=r)
        self._request_children: dict[tuple[str, str, int], Counter] = {}

    def model(self, name: str, version: str) -> ModelMetrics:
        """The series of model ``name`` at ``version`` (created on first use)."""
        return ModelMetrics(
            queue_depth=self.queue_depth.labels(name, version),
            batch_size=self.batch_size.labels(name, version),
            queue_wait=self.queue_wait.labels(name, version),
            compute=self.compute.labels(name, version),
            worker_restarts=self.worker_restarts.labels(name, version),
            estimated_wait=self.estimated_wait.labels(name, version),
        )

    def request(self, name: str, version: str, status: int) -> None:
        """Count one inference request answered with HTTP ``status``."""
        key = (name, version, status)
        child = self._request_children.get(key)
        if child is None:  # labels() costs a lock and a tuple of strings: look each series up once
            child = self._request_children[key] = self.requests.labels(name, version, str(status))
        child.inc()

    def forget(self, name: str, version: str) -> None:
        """Drop the series of an unloaded model version, so /metrics stops reporting it."""
        for metric in (self.queue_depth, self.batch_size, self.queue_wait, self.compute, self.worker_restarts,
                       self.estimated_wait):
            with contextlib.suppress(KeyError):
                metric.remove(name, version)
        self._request_children = {k: c for k, c in self._request_children.items() if k[:2] != (name, version)}
        stale = [labels for labels in self._request_labels() if labels[:2] == (name, version)]
        for labels in stale:
            self.requests.remove(*labels)

    def _request_labels(self) -> list[tuple[str, ...]]:
        return [
            (s.labels["model"], s.labels["version"], s.labels["status"])
            for metric in self.requests.collect() for s in metric.samples if s.name.endswith("_total")
        ]

    def render(self) -> tuple[bytes, str]:
        """The text exposition format: (body, content type)."""
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            merged = CollectorRegistry()
            MultiProcessCollector(merged)  # type: ignore[no-untyped-call]
            return generate_latest(merged), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
