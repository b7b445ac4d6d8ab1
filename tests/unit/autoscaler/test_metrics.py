"""Self-metrics: the compact per-object series write what prometheus_client would."""

from __future__ import annotations

import re

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client import metrics as prometheus_metrics
from prometheus_client.openmetrics.exposition import generate_latest as openmetrics_latest

from autoscaler.metrics import _LATENCY_BUCKETS, _Series

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
