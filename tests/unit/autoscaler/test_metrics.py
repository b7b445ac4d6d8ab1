"""Self-metrics: the compact per-object series write what prometheus_client would."""

from __future__ import annotations

import re

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client import metrics as prometheus_metrics
from prometheus_client.openmetrics.exposition import generate_latest as openmetrics_latest

from autoscaler.api import Signal
from autoscaler.clock import FakeClock
from autoscaler.config import SpecSet
from autoscaler.errors import RetryableError
from autoscaler.loop import ControlLoop
from autoscaler.metrics import _LATENCY_BUCKETS, Metrics, _Series
from tests.support import Backends, autoscaler, node_group, schedule_producer

OBSERVATIONS = [0.0, 0.001, 0.0011, 0.02, 0.5, 3.0, 29.99, 30.0, 31.0, 1e9]
LABELS = [("default", "a"), ("team-b", "b-1"), ("default", "a")]


def _created_masked(text: bytes) -> str:
    return re.sub(r"(_created\{[^}]*\}) \S+", r"\1 T", text.decode())


def _both() -> tuple[CollectorRegistry, CollectorRegistry]:
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    histogram = _Series("x_seconds", "Doc.", ["namespace", "name"], ours, _LATENCY_BUCKETS)
    counter = _Series("y_total", "Doc.", ["namespace", "name", "result"], ours)
    reference = Histogram(
        "x_seconds", "Doc.", ["namespace", "name"], registry=theirs, buckets=_LATENCY_BUCKETS
    )
    reference_counter = Counter("y_total", "Doc.", ["namespace", "name", "result"], registry=theirs)
    for labels in LABELS:
        for value in OBSERVATIONS:
            histogram.observe(labels, value)
            reference.labels(*labels).observe(value)
            counter.inc((*labels, "ok"))
            reference_counter.labels(*labels, "ok").inc()
        counter.inc((*labels, "error"), 2.5)
        reference_counter.labels(*labels, "error").inc(2.5)
    return ours, theirs


@pytest.mark.parametrize("created", [True, False], ids=["created", "no-created"])
def test_compact_series_are_exposed_exactly_as_prometheus_client_exposes_them(
    monkeypatch: pytest.MonkeyPatch, created: bool
) -> None:
    monkeypatch.setattr(prometheus_metrics, "_use_created", created)
    ours, theirs = _both()
    assert _created_masked(generate_latest(ours)) == _created_masked(generate_latest(theirs))
    openmetrics = [openmetrics_latest(r) for r in (ours, theirs)]  # type: ignore[no-untyped-call]
    assert _created_masked(openmetrics[0]) == _created_masked(openmetrics[1])
    value = ours.get_sample_value(
        "x_seconds_bucket", {"namespace": "default", "name": "a", "le": "0.025"}
    )
    assert value == 8.0  # 0, 0.001, 0.0011, 0.02, twice


def test_a_series_starts_at_its_first_observation() -> None:
    series = _Series("z_total", "Doc.", ["namespace"], CollectorRegistry())
    assert series.get(("default",)) is None
    series.inc(("default",))
    assert series.get(("default",))[0] == 1.0  # type: ignore[index]


@pytest.mark.parametrize("created", [True, False], ids=["created", "no-created"])
def test_compact_series_write_their_own_lines_exactly_as_generate_latest_does(
    monkeypatch: pytest.MonkeyPatch, created: bool
) -> None:
    monkeypatch.setattr(prometheus_metrics, "_use_created", created)
    ours, _ = _both()
    assert "".join(c.text() for c in ours._collector_to_names).encode() == generate_latest(ours)


def _busy_metrics() -> Metrics:
    """A loop with autoscalers, groups and producers whose names and labels need escaping,
    decisions, a failing producer and provider calls."""
    clock = FakeClock()
    backends = Backends()
    groups = {f"default/g{i}": node_group(f"g{i}", replicas=2) for i in range(3)}
    producers = {f"default/p{i}": schedule_producer(f"p{i}") for i in range(3)}
    autoscalers = {
        f"default/a{i}": autoscaler(f"a{i}", target=f"g{i}", producers=(f"p{i}",)) for i in range(3)
    }
    loop = ControlLoop(
        clock, create_producer=backends.create_producer, create_provider=backends.create_provider
    )
    metrics = Metrics(loop)
    loop.observer = metrics
    loop.apply(SpecSet(node_groups=groups, producers=producers, autoscalers=autoscalers))
    loop.run_once()
    backends.producers["p0"].value = 30
    backends.producers["p2"].error = RetryableError("throttled")
    clock.advance(20)
    loop.run_once()
    loop.store.put(
        "default/p1",
        (Signal("odd", 1.5, clock(), {"quote": 'a"b', "slash": "c\\d", "line": "e\nf"}),),
    )
    metrics.provider_seconds.observe(("team\\x", 'name"y'), 0.2)  # escaped label values
    return metrics


@pytest.mark.parametrize("created", [True, False], ids=["created", "no-created"])
def test_the_metrics_endpoint_body_is_byte_for_byte_what_generate_latest_writes(
    monkeypatch: pytest.MonkeyPatch, created: bool
) -> None:
    monkeypatch.setattr(prometheus_metrics, "_use_created", created)
    metrics = _busy_metrics()
    body = metrics.exposition()
    assert body == generate_latest(metrics.registry)
    text = body.decode()
    assert 'autoscaler_autoscaler_desired_replicas{autoscaler="a0",namespace="default"} 5.0' in text
    assert 'quote=a\\"b' in text and "line=e\\nf" in text  # the label text, escaped
    assert 'le="+Inf",namespace="team\\\\x",node_group="name\\"y"} 1.0' in text
    assert "autoscaler_errors_total{code=" in text  # a prometheus_client metric, in order
