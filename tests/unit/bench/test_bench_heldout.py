"""bench/heldout.py: deterministic held-out workloads in the shared benchmark's format."""

from __future__ import annotations

import random
from pathlib import Path

from autoscaler.simulator.scenario import load_scenario
from bench import heldout


def test_every_trace_is_the_same_on_every_run() -> None:
    for workload in heldout.WORKLOADS:
        assert workload.counts() == workload.counts()


def test_every_trace_covers_a_day_in_ten_second_buckets() -> None:
    for workload in heldout.WORKLOADS:
        counts = workload.counts()
        assert len(counts) == 8640
        assert min(counts) >= 0 and sum(counts) > 0


def test_the_written_scenarios_load_in_the_simulator(tmp_path: Path) -> None:
    paths = heldout.write(tmp_path)
    assert [path.stem for path in paths] == [w.name for w in heldout.WORKLOADS]
    for path, workload in zip(paths, heldout.WORKLOADS, strict=True):
        scenario = load_scenario(path)
        assert scenario.duration_seconds == 86_400
        assert scenario.spec.nodes.items_per_second == workload.items_per_second
        assert scenario.spec.slo.max_item_age_seconds == workload.slo_seconds
        assert list(scenario.trace.counts) == workload.counts()


def test_poisson_draws_have_the_requested_mean() -> None:
    rng = random.Random(1)
    for mean in (0.5, 20.0, 400.0):
        draws = [heldout.poisson(rng, mean) for _ in range(4000)]
        assert abs(sum(draws) / len(draws) - mean) < 0.05 * mean + 0.05


def test_a_burst_adds_exactly_its_size_spread_over_its_duration() -> None:
    counts = [0] * 20
    heldout._add_burst(counts, start=30, size=1001, duration=40)
    assert sum(counts) == 1001
    assert [i for i, n in enumerate(counts) if n] == [3, 4, 5, 6]
