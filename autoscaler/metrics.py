"""Self-metrics in Prometheus naming conventions, on a registry owned by the service.

Series that describe current state (signal values, replica counts) are computed at scrape time
from the loop's state, so deleted objects disappear from ``/metrics`` at once. Counters and
histograms are updated through the :class:`~autoscaler.loop.LoopObserver` hooks.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from autoscaler.decisions import DecisionRecord
from autoscaler.errors import AutoscalerError
from autoscaler.loop import ControlLoop

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class _StateCollector(Collector):
    def __init__(self, loop: ControlLoop) -> None:
        self._loop = loop

    def collect(self) -> Iterator[Metric]:
        signal = GaugeMetricFamily(
            "autoscaler_signal_value",
            "Latest value of a producer's signal.",
            labels=["namespace", "producer", "signal", "labels"],
        )
        for producer, sig in self._loop.store.items():
            namespace, name = producer.split("/", 1)
            text = ",".join(f"{k}={v}" for k, v in sorted(sig.labels.items()))
            signal.add_metric([namespace, name, sig.name, text], sig.value)
        yield signal

        names = ("desired", "current", "min", "max")
        replicas = {
            n: GaugeMetricFamily(
                f"autoscaler_autoscaler_{n}_replicas",
                f"The autoscaler's {n} replica count.",
                labels=["namespace", "autoscaler"],
            )
            for n in names
        }
        ready = GaugeMetricFamily(
            "autoscaler_node_group_ready_replicas",
            "Ready nodes of a node group.",
            labels=["namespace", "node_group"],
        )
        desired = GaugeMetricFamily(
            "autoscaler_node_group_desired_replicas",
            "Desired nodes of a node group as set by the service.",
            labels=["namespace", "node_group"],
        )
        with self._loop.lock:
            autoscalers = list(self._loop.autoscalers.values())
            groups = list(self._loop.node_groups.values())
        for runtime in autoscalers:
            meta, spec = runtime.resource.metadata, runtime.resource.spec
            series = [meta.namespace, meta.name]
            replicas["min"].add_metric(series, spec.min_replicas)
            replicas["max"].add_metric(series, spec.max_replicas)
            if runtime.last is not None:
                replicas["desired"].add_metric(series, runtime.last.desired_replicas)
                replicas["current"].add_metric(series, runtime.last.current_replicas)
        for group in groups:
            series = [group.resource.metadata.namespace, group.resource.metadata.name]
            if group.observed is not None:
                ready.add_metric(series, group.observed.ready)
            if group.desired is not None:
                desired.add_metric(series, group.desired)
        yield from replicas.values()
        yield ready
        yield desired


class Metrics:
    """The service's Prometheus metrics; also the loop's observer."""

    def __init__(self, loop: ControlLoop, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.registry.register(_StateCollector(loop))
        self.decisions = Counter(
            "autoscaler_decisions_total",
            "Recorded decisions by direction and the rule that shaped them.",
            ["namespace", "autoscaler", "direction", "limited_by"],
            registry=self.registry,
        )
        self.errors = Counter(
            "autoscaler_errors_total",
            "Errors from producers and providers by kind.",
            ["component", "kind", "code"],
            registry=self.registry,
        )
        self.provider_calls = Counter(
            "autoscaler_provider_calls_total",
            "Provider reconciles by result.",
            ["namespace", "node_group", "result"],
            registry=self.registry,
        )
        self.loop_seconds = Histogram(
            "autoscaler_loop_pass_duration_seconds",
            "Duration of one control-loop pass.",
            registry=self.registry,
            buckets=_LATENCY_BUCKETS,
        )
        self.producer_seconds = Histogram(
            "autoscaler_producer_duration_seconds",
            "Duration of one producer observation.",
            ["namespace", "producer"],
            registry=self.registry,
            buckets=_LATENCY_BUCKETS,
        )
        self.provider_seconds = Histogram(
            "autoscaler_provider_duration_seconds",
            "Duration of one provider reconcile (read, and set when needed).",
            ["namespace", "node_group"],
            registry=self.registry,
            buckets=_LATENCY_BUCKETS,
        )

    def _error(self, component: str, error: AutoscalerError) -> None:
        kind = type(error).__name__.removesuffix("Error").lower() or "error"
        self.errors.labels(component, kind, error.code).inc()

    def producer_run(self, producer: str, seconds: float, error: AutoscalerError | None) -> None:
        namespace, name = producer.split("/", 1)
        self.producer_seconds.labels(namespace, name).observe(seconds)
        if error is not None:
            self._error("producer", error)

    def provider_call(self, node_group: str, seconds: float, error: AutoscalerError | None) -> None:
        namespace, name = node_group.split("/", 1)
        self.provider_seconds.labels(namespace, name).observe(seconds)
        self.provider_calls.labels(namespace, name, "error" if error else "success").inc()
        if error is not None:
            self._error("provider", error)

    def loop_pass(self, seconds: float) -> None:
        self.loop_seconds.observe(seconds)

    def decision(self, record: DecisionRecord) -> None:
        namespace, name = record.autoscaler.split("/", 1)
        self.decisions.labels(namespace, name, record.direction, record.limited_by or "none").inc()
