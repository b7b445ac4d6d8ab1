"""Held-out workloads: scenarios that are not in the shared benchmark, to check that the recipes
of ``bench/recipes.py`` generalize.

The recipes were tuned on the four shared scenarios only; these workloads were written after
that, with other node speeds, SLOs and startup times, and are evaluated once. Each is generated
from a seeded random source, so the same files come out on every run and machine:

=================  ======  ======  =======  ==================================================
name               μ       S       D        character
=================  ======  ======  =======  ==================================================
ramp               3/s     240 s   60 s     a slow climb from 3 to 45 items/s over 20 h, back
                                            down in 4 h (a week's growth squeezed into a day)
poisson-bursts     4/s     450 s   150 s    2 items/s plus bursts of 1k–25k items over 10–180 s
                                            at Poisson times (one every 45 min on average)
step               1.5/s   180 s   45 s     flat levels that jump: 6, 30, 3, 18, 1 items/s
sawtooth           2/s     360 s   120 s    a ramp from 0 to 24 items/s over 20 min, then a
                                            drop to 0, again and again
idle-flash         10/s    600 s   180 s    a trickle (0.05/s) and four flashes of 20k–60k
                                            items within 30 s, from zero nodes
noisy-flat         1/s     120 s   30 s     20 items/s with heavy noise, a tight SLO
=================  ======  ======  =======  ==================================================

Every trace is 24 h of 10-second buckets, in the shared benchmark's format (``time_s,arrivals``),
and the scenario files use its format too, so ``autoscaler simulate`` and
``bench/control_quality.py`` run them unchanged::

    .venv/bin/python bench/heldout.py --out /tmp/heldout   # scenarios/ and traces/
"""

from __future__ import annotations

import argparse
import math
import random
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

#: Width of one trace row, and the length of every trace.
BUCKET_SECONDS = 10
DAY_SECONDS = 86_400
BUCKETS = DAY_SECONDS // BUCKET_SECONDS


def poisson(rng: random.Random, mean: float) -> int:
    """A Poisson draw: Knuth's method for small means, a rounded normal above 50."""
    if mean <= 0:
        return 0
    if mean > 50:
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    limit, k, product = math.exp(-mean), 0, rng.random()
    while product > limit:
        k += 1
        product *= rng.random()
    return k


def _from_rate(rng: random.Random, rate: Callable[[float], float]) -> list[int]:
    """Poisson arrivals per bucket for a rate in items/s at the bucket's midpoint."""
    return [poisson(rng, rate((i + 0.5) * BUCKET_SECONDS) * BUCKET_SECONDS) for i in range(BUCKETS)]


def _add_burst(counts: list[int], start: float, size: int, duration: float) -> None:
    """``size`` items spread evenly over ``[start, start + duration)`` (whole buckets)."""
    first = int(start // BUCKET_SECONDS)
    buckets = max(1, math.ceil(duration / BUCKET_SECONDS))
    for j in range(buckets):
        index = first + j
        if index < len(counts):
            counts[index] += size * (j + 1) // buckets - size * j // buckets


def ramp(rng: random.Random) -> list[int]:
    def rate(t: float) -> float:
        hours = t / 3600
        base = 3 + 42 * hours / 20 if hours < 20 else 45 - 42 * (hours - 20) / 4
        return base * (1 + 0.15 * math.sin(2 * math.pi * t / 5400))

    return _from_rate(rng, rate)


def poisson_bursts(rng: random.Random) -> list[int]:
    counts = _from_rate(rng, lambda t: 2.0)
    t = rng.expovariate(1 / 2700)
    while t < DAY_SECONDS - 600:
        _add_burst(counts, t, rng.randint(1_000, 25_000), rng.uniform(10, 180))
        t += rng.expovariate(1 / 2700)
    return counts


def step(rng: random.Random) -> list[int]:
    levels = [(6, 6.0), (10, 30.0), (14, 3.0), (20, 18.0), (24, 1.0)]

    def rate(t: float) -> float:
        hours = t / 3600
        return next(level for end, level in levels if hours < end)

    return _from_rate(rng, rate)


def sawtooth(rng: random.Random) -> list[int]:
    period = 1200.0
    return _from_rate(rng, lambda t: 24 * (t % period) / period)


def idle_flash(rng: random.Random) -> list[int]:
    counts = _from_rate(rng, lambda t: 0.05)
    for start in sorted(rng.uniform(3600, DAY_SECONDS - 3600) for _ in range(4)):
        _add_burst(counts, start, rng.randint(20_000, 60_000), 30)
    return counts


def noisy_flat(rng: random.Random) -> list[int]:
    # Overdispersed: the rate itself wanders every minute (a gamma draw around 20/s).
    counts = []
    rate = 20.0
    for i in range(BUCKETS):
        if i % 6 == 0:
            rate = rng.gammavariate(4.0, 5.0)
        counts.append(poisson(rng, rate * BUCKET_SECONDS))
    return counts


@dataclass(frozen=True)
class HeldOut:
    """One held-out workload: declared parameters and the generator of its trace."""

    name: str
    items_per_second: float
    slo_seconds: float
    startup_seconds: float
    initial: int
    max_nodes: int
    seed: int
    generate: Callable[[random.Random], list[int]]

    def counts(self) -> list[int]:
        return self.generate(random.Random(self.seed))

    def scenario_yaml(self) -> str:
        return (
            "# Held-out workload (bench/heldout.py): not used to tune the recipes.\n"
            f"workload:\n  trace: ../traces/{self.name}.csv\n"
            f"nodes:\n  initial: {self.initial}\n  startupSeconds: {_num(self.startup_seconds)}\n"
            f"  itemsPerSecond: {_num(self.items_per_second)}\n  min: 0\n"
            f"  max: {self.max_nodes}\n"
            f"slo:\n  maxItemAgeSeconds: {_num(self.slo_seconds)}\n"
        )


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


WORKLOADS: tuple[HeldOut, ...] = (
    HeldOut("ramp", 3.0, 240, 60, 2, 200, 11, ramp),
    HeldOut("poisson-bursts", 4.0, 450, 150, 1, 200, 12, poisson_bursts),
    HeldOut("step", 1.5, 180, 45, 4, 200, 13, step),
    HeldOut("sawtooth", 2.0, 360, 120, 0, 200, 14, sawtooth),
    HeldOut("idle-flash", 10.0, 600, 180, 0, 200, 15, idle_flash),
    HeldOut("noisy-flat", 1.0, 120, 30, 20, 200, 16, noisy_flat),
)


def trace_csv(counts: list[int]) -> str:
    rows = ["time_s,arrivals"]
    rows += [f"{i * BUCKET_SECONDS},{n}" for i, n in enumerate(counts)]
    return "\n".join(rows) + "\n"


def write(out: Path, workloads: tuple[HeldOut, ...] = WORKLOADS) -> list[Path]:
    """``out/scenarios/<name>.yaml`` and ``out/traces/<name>.csv``; the scenario paths."""
    (out / "scenarios").mkdir(parents=True, exist_ok=True)
    (out / "traces").mkdir(parents=True, exist_ok=True)
    paths = []
    for workload in workloads:
        (out / "traces" / f"{workload.name}.csv").write_text(
            trace_csv(workload.counts()), encoding="utf-8"
        )
        path = out / "scenarios" / f"{workload.name}.yaml"
        path.write_text(workload.scenario_yaml(), encoding="utf-8")
        paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="folder to write into")
    args = parser.parse_args(argv)
    for path in write(args.out):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
