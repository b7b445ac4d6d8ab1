"""Self-metrics in Prometheus naming conventions, on a registry owned by the service.

Series that describe current state (signal values, replica counts) are computed at scrape time
from the loop's state, so deleted objects disappear from ``/metrics`` at once. Counters and
histograms are updated through the :class:`~autoscaler.loop.LoopObserver` hooks.

The series with a label per object (each node group's provider calls and their durations, each
producer's durations, each autoscaler's decisions) are kept by :class:`_Series`, a compact form of
prometheus_client's ``Counter`` and ``Histogram`` with the same exposition: prometheus_client keeps
an object with its own lock per bucket, ~4 KiB per histogram series, 44 MiB for the histogram
and the counter of 10,000 node groups; a list of numbers per series is a tenth of that.

``/metrics`` is written by :meth:`Metrics.exposition`: the per-object collectors write their own
lines (label text made once per series), byte for byte what prometheus_client's
``generate_latest`` writes for them, and the other collectors go through ``generate_latest``.
prometheus_client builds a sample object and validates and escapes every label name for each of
the ~300,000 lines of 10,000 node groups, 2,000 producers and 10,000 autoscalers: about 5 s of CPU
per scrape, against a fifth of that here (``bench/scale.py --parts scrape``;
``tests/unit/autoscaler/test_metrics.py`` checks the bytes).
"""

from __future__ import annotations

import math
import threading
import time
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Sequence

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client import metrics as prometheus_metrics
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from autoscaler.decisions import DecisionRecord
from autoscaler.errors import AutoscalerError
from autoscaler.loop import ControlLoop

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


#: prometheus_client's number format (``+Inf``, ``1.0``, Go-style exponents), typed.
_fmt: Callable[[float], str] = floatToGoString


def _escape(value: str) -> str:
    """A label value as the text format writes it."""
    if "\\" in value or "\n" in value or '"' in value:
        return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")
    return value


def _header(name: str, documentation: str, kind: str) -> str:
    doc = documentation.replace("\\", r"\\").replace("\n", r"\n")
    return f"# HELP {name} {doc}\n# TYPE {name} {kind}\n"


def _label_text(pairs: Iterable[tuple[str, str]]) -> str:
    """``a="x",b="y"``: the pairs sorted by name, as ``generate_latest`` writes them."""
    return ",".join(f'{name}="{_escape(value)}"' for name, value in sorted(pairs))


class _Registry(CollectorRegistry):
    """A registry that remembers its collectors in order, for :meth:`Metrics.exposition`."""

    def __init__(self) -> None:
        super().__init__()
        self._ordered: list[Collector] = []

    def register(self, collector: Collector) -> None:
        super().register(collector)
        self._ordered.append(collector)

    def unregister(self, collector: Collector) -> None:
        super().unregister(collector)
        self._ordered.remove(collector)

    def collectors(self) -> list[Collector]:
        with self._lock:
            return list(self._ordered)


class _Only:
    """One collector, for ``generate_latest``."""

    def __init__(self, collector: Collector) -> None:
        self._collector = collector

    def collect(self) -> Iterable[Metric]:
        return self._collector.collect()


#: One gauge family computed at scrape time: name, help, label names, (label values, value) rows.
_Family = tuple[str, str, tuple[str, ...], list[tuple[tuple[str, ...], float]]]


class _StateCollector(Collector):
    """Gauges of the loop's current state, computed at scrape time (:meth:`_families`), exposed
    through ``collect`` for prometheus_client and written directly by :meth:`text`."""

    def __init__(self, loop: ControlLoop) -> None:
        self._loop = loop

    def _families(self) -> list[_Family]:
        signals: list[tuple[tuple[str, ...], float]] = []
        for producer, sig in self._loop.store.items():
            namespace, name = producer.split("/", 1)
            text = ",".join(f"{k}={v}" for k, v in sorted(sig.labels.items()))
            signals.append(((namespace, name, sig.name, text), sig.value))
        with self._loop.lock:
            autoscalers = list(self._loop.autoscalers.values())
            groups = list(self._loop.node_groups.values())
        names = ("desired", "current", "min", "max")
        replicas: dict[str, list[tuple[tuple[str, ...], float]]] = {n: [] for n in names}
        for runtime in autoscalers:
            meta, spec = runtime.resource.metadata, runtime.resource.spec
            series = (meta.namespace, meta.name)
            replicas["min"].append((series, spec.min_replicas))
            replicas["max"].append((series, spec.max_replicas))
            if runtime.last is not None:
                replicas["desired"].append((series, runtime.last.desired_replicas))
                replicas["current"].append((series, runtime.last.current_replicas))
        ready: list[tuple[tuple[str, ...], float]] = []
        desired: list[tuple[tuple[str, ...], float]] = []
        for group in groups:
            series = (group.resource.metadata.namespace, group.resource.metadata.name)
            if group.observed is not None:
                ready.append((series, group.observed.ready))
            if group.desired is not None:
                desired.append((series, group.desired))
        by_autoscaler = ("namespace", "autoscaler")
        by_group = ("namespace", "node_group")
        return [
            (
                "autoscaler_signal_value",
                "Latest value of a producer's signal.",
                ("namespace", "producer", "signal", "labels"),
                signals,
            ),
            *(
                (
                    f"autoscaler_autoscaler_{n}_replicas",
                    f"The autoscaler's {n} replica count.",
                    by_autoscaler,
                    replicas[n],
                )
                for n in names
            ),
            (
                "autoscaler_node_group_ready_replicas",
                "Ready nodes of a node group.",
                by_group,
                ready,
            ),
            (
                "autoscaler_node_group_desired_replicas",
                "Desired nodes of a node group as set by the service.",
                by_group,
                desired,
            ),
        ]

    def collect(self) -> Iterator[Metric]:
        for name, documentation, labels, rows in self._families():
            family = GaugeMetricFamily(name, documentation, labels=list(labels))
            for values, value in rows:
                family.add_metric(list(values), value)
            yield family

    def text(self) -> str:
        """What ``generate_latest`` writes for :meth:`collect`, written directly."""
        fmt = _fmt
        out: list[str] = []
        for name, documentation, labels, rows in self._families():
            out.append(_header(name, documentation, "gauge"))
            out.extend(
                f"{name}{{{_label_text(zip(labels, values, strict=True))}}} {fmt(value)}\n"
                for values, value in rows
            )
        return "".join(out)


class _Series(Collector):
    """Counters (no ``buckets``) or histograms of one name by label values, written exactly as
    prometheus_client's ``Counter`` and ``Histogram`` write them (``_total``; ``_bucket``,
    ``_count``, ``_sum``; ``_created`` unless disabled). Thread-safe."""

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        registry: CollectorRegistry,
        buckets: Sequence[float] | None = None,
    ) -> None:
        self._type = "counter" if buckets is None else "histogram"
        self._name = name.removesuffix("_total") if buckets is None else name
        self._documentation = documentation
        self._labelnames = tuple(labelnames)
        #: Upper bounds, +Inf last (histograms); none for counters.
        self._bounds: tuple[float, ...] = ()
        if buckets is not None:
            self._bounds = tuple(sorted(float(b) for b in buckets if b != math.inf))
            self._bounds += (math.inf,)
        self._les = tuple(floatToGoString(b) for b in self._bounds)  # type: ignore[no-untyped-call]
        #: label values → [count in each bucket..., sum (a counter's value), creation time]
        self._series: dict[tuple[str, ...], list[float]] = {}
        #: label values → their label text (before and after ``le`` for a histogram's buckets)
        self._texts: dict[tuple[str, ...], tuple[str, str, str]] = {}
        self._lock = threading.Lock()
        registry.register(self)

    def _values(self, labels: tuple[str, ...]) -> list[float]:
        values = self._series.get(labels)
        if values is None:
            values = self._series[labels] = [0.0] * len(self._bounds) + [0.0, time.time()]
        return values

    def inc(self, labels: tuple[str, ...], amount: float = 1.0) -> None:
        with self._lock:
            self._values(labels)[-2] += amount

    def observe(self, labels: tuple[str, ...], amount: float) -> None:
        bucket = bisect_left(self._bounds, amount)  # the first bound ≥ amount
        with self._lock:
            values = self._values(labels)
            values[bucket] += 1.0
            values[-2] += amount

    def get(self, labels: tuple[str, ...]) -> list[float] | None:
        """A copy of the numbers of one series (tests)."""
        with self._lock:
            values = self._series.get(labels)
            return None if values is None else list(values)

    def describe(self) -> Iterable[Metric]:
        return [Metric(self._name, self._documentation, self._type)]

    def _text_of(self, labels: tuple[str, ...]) -> tuple[str, str, str]:
        """(all labels, the labels sorted before ``le`` with a comma, those after it with a
        comma), made once per series."""
        text = self._texts.get(labels)
        if text is None:
            pairs = sorted(zip(self._labelnames, labels, strict=True))
            before = [p for p in pairs if p[0] < "le"]
            after = [p for p in pairs if p[0] >= "le"]
            text = self._texts[labels] = (
                _label_text(pairs),
                _label_text(before) + "," if before else "",
                "," + _label_text(after) if after else "",
            )
        return text

    def text(self) -> str:
        """What ``generate_latest`` writes for :meth:`collect`, written directly."""
        fmt = _fmt
        created = prometheus_metrics._use_created
        with self._lock:
            series = [(labels, list(values)) for labels, values in self._series.items()]
            texts = [self._text_of(labels) for labels, _ in series]
        name = self._name
        created_lines: list[str] = []
        if self._type == "counter":
            out = [_header(name + "_total", self._documentation, "counter")]
            for (_, values), (labels, _, _) in zip(series, texts, strict=True):
                out.append(f"{name}_total{{{labels}}} {fmt(values[0])}\n")
                if created:
                    created_lines.append(f"{name}_created{{{labels}}} {fmt(values[-1])}\n")
        else:
            out = [_header(name, self._documentation, "histogram")]
            with_sum = self._bounds[0] >= 0
            for (_, values), (labels, before, after) in zip(series, texts, strict=True):
                total = 0.0
                for le, count in zip(self._les, values, strict=False):
                    total += count
                    out.append(f'{name}_bucket{{{before}le="{le}"{after}}} {fmt(total)}\n')
                out.append(f"{name}_count{{{labels}}} {fmt(total)}\n")
                if with_sum:
                    out.append(f"{name}_sum{{{labels}}} {fmt(values[-2])}\n")
                if created:
                    created_lines.append(f"{name}_created{{{labels}}} {fmt(values[-1])}\n")
        if created_lines:
            out.append(_header(name + "_created", self._documentation, "gauge"))
            out.extend(created_lines)
        return "".join(out)

    def collect(self) -> Iterable[Metric]:
        metric = Metric(self._name, self._documentation, self._type)
        created = prometheus_metrics._use_created
        with self._lock:
            series = [(labels, list(values)) for labels, values in self._series.items()]
        name = self._name
        for labels, values in series:
            base = dict(zip(self._labelnames, labels, strict=True))
            if self._type == "counter":
                metric.add_sample(name + "_total", base, values[0])
            else:
                total = 0.0
                for le, count in zip(self._les, values, strict=False):
                    total += count
                    metric.add_sample(name + "_bucket", {**base, "le": le}, total)
                metric.add_sample(name + "_count", base, total)
                if self._bounds[0] >= 0:
                    metric.add_sample(name + "_sum", base, values[-2])
            if created:
                metric.add_sample(name + "_created", base, values[-1])
        return [metric]


class Metrics:
    """The service's Prometheus metrics; also the loop's observer."""

    def __init__(self, loop: ControlLoop, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or _Registry()
        self.registry.register(_StateCollector(loop))
        self.decisions = _Series(
            "autoscaler_decisions_total",
            "Recorded decisions by direction and the rule that shaped them.",
            ["namespace", "autoscaler", "direction", "limited_by"],
            self.registry,
        )
        self.errors = Counter(
            "autoscaler_errors_total",
            "Errors from producers and providers by kind.",
            ["component", "kind", "code"],
            registry=self.registry,
        )
        self.provider_calls = _Series(
            "autoscaler_provider_calls_total",
            "Provider reconciles by result.",
            ["namespace", "node_group", "result"],
            self.registry,
        )
        self.loop_seconds = Histogram(
            "autoscaler_loop_pass_duration_seconds",
            "Duration of one control-loop pass.",
            registry=self.registry,
            buckets=_LATENCY_BUCKETS,
        )
        self.producer_seconds = _Series(
            "autoscaler_producer_duration_seconds",
            "Duration of one producer observation.",
            ["namespace", "producer"],
            self.registry,
            buckets=_LATENCY_BUCKETS,
        )
        self.provider_seconds = _Series(
            "autoscaler_provider_duration_seconds",
            "Duration of one provider reconcile (read, and set when needed).",
            ["namespace", "node_group"],
            self.registry,
            buckets=_LATENCY_BUCKETS,
        )

    def exposition(self) -> bytes:
        """The ``/metrics`` body: what ``generate_latest(self.registry)`` writes, faster."""
        registry = self.registry
        if not isinstance(registry, _Registry):
            return generate_latest(registry)
        parts: list[str] = []
        for collector in registry.collectors():
            text = getattr(collector, "text", None)
            if text is not None:
                parts.append(text())
            else:
                parts.append(generate_latest(_Only(collector)).decode())
        return "".join(parts).encode()

    def _error(self, component: str, error: AutoscalerError) -> None:
        kind = type(error).__name__.removesuffix("Error").lower() or "error"
        self.errors.labels(component, kind, error.code).inc()

    def producer_run(self, producer: str, seconds: float, error: AutoscalerError | None) -> None:
        namespace, name = producer.split("/", 1)
        self.producer_seconds.observe((namespace, name), seconds)
        if error is not None:
            self._error("producer", error)

    def provider_call(self, node_group: str, seconds: float, error: AutoscalerError | None) -> None:
        namespace, name = node_group.split("/", 1)
        self.provider_seconds.observe((namespace, name), seconds)
        self.provider_calls.inc((namespace, name, "error" if error else "success"))
        if error is not None:
            self._error("provider", error)

    def loop_pass(self, seconds: float) -> None:
        self.loop_seconds.observe(seconds)

    def decision(self, record: DecisionRecord) -> None:
        namespace, name = record.autoscaler.split("/", 1)
        self.decisions.inc((namespace, name, record.direction, record.limited_by or "none"))
