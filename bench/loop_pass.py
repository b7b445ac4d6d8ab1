"""Benchmark: the cost of one full control-loop pass, against the pure algorithm alone.

N autoscalers, each with its own schedule producer and Simulated node group, run on a fake clock
with inline backends. A "full pass" forces every producer to observe and every autoscaler to
evaluate. The baseline, measured in the same run, is the algorithm alone (``proportional.decide``)
on the same specs, so the ratio is the overhead the loop adds around the decisions.

    .venv/bin/python bench/loop_pass.py [--sizes 100 1000] [--repeats 7]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

from autoscaler.algorithms import proportional
from autoscaler.algorithms.types import History, MetricInput
from autoscaler.api import HorizontalAutoscaler, MetricsProducer, ScalableNodeGroup
from autoscaler.clock import FakeClock
from autoscaler.config import SpecSet
from autoscaler.loop import ControlLoop
from autoscaler.settings import LoopSettings


def build(n: int) -> SpecSet:
    groups, producers, autoscalers = {}, {}, {}
    for i in range(n):
        name = f"s{i}"
        groups[f"default/{name}"] = ScalableNodeGroup.model_validate(
            {
                "metadata": {"name": name},
                "spec": {
                    "type": "Simulated",
                    "id": name,
                    "replicas": 1,
                    "simulated": {"provisioningDelaySeconds": 0},
                },
            }
        )
        producers[f"default/{name}"] = MetricsProducer.model_validate(
            {
                "metadata": {"name": name},
                "spec": {
                    "intervalSeconds": 15,
                    "schedule": {
                        "defaultReplicas": 1 + i % 5,
                        "behaviors": [
                            {"start": "0 9 * * 1-5", "end": "0 17 * * 1-5", "replicas": 8}
                        ],
                    },
                },
            }
        )
        autoscalers[f"default/{name}"] = HorizontalAutoscaler.model_validate(
            {
                "metadata": {"name": name},
                "spec": {
                    "scaleTargetRef": {"name": name},
                    "minReplicas": 1,
                    "maxReplicas": 50,
                    "metrics": [
                        {
                            "producer": {"name": name, "metric": "replicas"},
                            "target": {"type": "AverageValue", "averageValue": 1},
                        }
                    ],
                },
            }
        )
    return SpecSet(node_groups=groups, producers=producers, autoscalers=autoscalers)


def full_pass(loop: ControlLoop, clock: FakeClock) -> float:
    clock.advance(15.0)  # every producer and autoscaler is due
    for group in loop.node_groups.values():
        group.next_sync = clock()
    started = time.perf_counter()
    loop.run_once()
    return time.perf_counter() - started


def algorithm_only(specs: SpecSet, now: float) -> float:
    inputs = {
        key: [MetricInput("m", a.spec.metrics[0].target, 3.0)]
        for key, a in specs.autoscalers.items()
    }
    started = time.perf_counter()
    for key, resource in specs.autoscalers.items():
        proportional.decide(resource.spec, 2, inputs[key], History(), now)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    results = []
    for n in args.sizes:
        specs = build(n)
        clock = FakeClock()
        loop = ControlLoop(clock, LoopSettings())
        loop.apply(specs)
        loop.run_once()  # warm-up: first observations and reads
        passes = [full_pass(loop, clock) for _ in range(args.repeats)]
        baseline = [algorithm_only(specs, clock()) for _ in range(args.repeats)]
        loop_ms, base_ms = statistics.median(passes) * 1e3, statistics.median(baseline) * 1e3
        results.append(
            {
                "autoscalers": n,
                "pass_ms_median": round(loop_ms, 2),
                "algorithm_only_ms_median": round(base_ms, 2),
                "per_autoscaler_us": round(loop_ms * 1e3 / n, 1),
                "ratio_to_algorithm": round(loop_ms / base_ms, 2) if base_ms else None,
            }
        )
    print(
        json.dumps(
            {
                "machine": platform.platform(),
                "python": platform.python_version(),
                "results": results,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
