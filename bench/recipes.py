"""Recommended configurations as recipes: spec files computed from what a user knows.

A recipe reads only the workload's *declared* parameters, never a trace:

* ``itemsPerSecond`` (μ): the items one ready node processes per second;
* ``maxItemAgeSeconds`` (S): the SLO, the longest an item may wait;
* ``startupSeconds`` (D): from a scale-up request until the new node works;
* the node group's bounds, and how often the queue is read (I, 15 s like the baseline).

From them (``docs/tuning.md`` explains every choice and why it generalizes)::

    margin   m = 2 × I           one reading to see new work, one loop pass to act on it
    budget   B = S − D − m       the seconds of work one node may hold and still meet the SLO
    target   T = μ × B           AverageValue on queue_length: items per node
    release  1 − I / B           scale-down tolerance: remove nodes only once each holds less
                                 than one reading's worth of work (the queue is nearly drained)
    activation (minimum 0 only)  leave zero nodes only for more than T items, or once the
                                 oldest item has waited B − L (L: how late the age is read;
                                 0 when read directly, ~2 minutes through CloudWatch)

Three recipes share these numbers:

* ``proportional-tuned`` — the Proportional algorithm; scale-up at once to what the queue needs
  (the AverageValue recommendation is absolute, it cannot compound); no scale-down window, but a
  wide tolerance that holds capacity while a backlog drains, and a release of at most 25 % of
  the nodes per reading once it has;
* ``pid`` — the same, with a PID whose integral takes the proportional step per reading
  (``ki = 1/I``), ``kp = 0`` and a derivative lead of one startup time (``kd = D``, capped at the
  API's limit of 100 s);
* ``predictive`` — ``proportional-tuned`` plus predictive scaling one startup time ahead
  (``horizonSeconds = D``, ``method: Auto``).

Usage::

    # one spec set per recipe and scenario (bench/specs/<recipe>-<scenario>.yaml)
    .venv/bin/python bench/recipes.py --scenarios ../shared/bench/scenarios --out bench/specs
    # a recipe for your own workload, printed
    .venv/bin/python bench/recipes.py --recipe pid --items-per-second 2 --slo 600 --startup 90
    # the user-facing examples (examples/recommended/)
    .venv/bin/python bench/recipes.py --examples examples/recommended
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

#: How often the baseline reads the queue; the recipes keep it so they are compared fairly.
DEFAULT_INTERVAL_SECONDS = 15.0
#: The largest ``kd`` the API accepts (``PIDParameters.kd``).
MAX_KD = 100.0
#: Share of the nodes a recipe may remove per reading once the queue has drained.
RELEASE_PERCENT = 25
#: The HPA's default scale-up tolerance, kept by every recipe.
SCALE_UP_TOLERANCE = 0.1

BASELINE = "baseline"
RECIPES = ("proportional-tuned", "pid", "predictive")


class RecipeError(ValueError):
    """The workload's parameters leave no room for a recipe (the SLO is too tight)."""


@dataclass(frozen=True)
class Workload:
    """What a user declares about a queue workload; nothing here is learned from a trace."""

    name: str
    items_per_second: float
    slo_seconds: float
    startup_seconds: float
    min_nodes: int = 0
    max_nodes: int = 200
    interval_seconds: float = DEFAULT_INTERVAL_SECONDS
    #: How late the oldest item's age is read (0: directly; SQS via CloudWatch: about 120 s).
    age_lag_seconds: float = 0.0

    @classmethod
    def from_scenario(cls, path: str | Path) -> Workload:
        """The declared parameters of a scenario file (``nodes`` and ``slo``; the trace is not
        read)."""
        path = Path(path)
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        nodes, slo = data["nodes"], data["slo"]
        return cls(
            name=path.stem,
            items_per_second=float(nodes["itemsPerSecond"]),
            slo_seconds=float(slo["maxItemAgeSeconds"]),
            startup_seconds=float(nodes["startupSeconds"]),
            min_nodes=int(nodes.get("min", 0)),
            max_nodes=int(nodes["max"]),
        )


@dataclass(frozen=True)
class Derived:
    """The numbers every recipe is built from (module docstring)."""

    margin_seconds: float
    budget_seconds: float
    target_items: float
    release_tolerance: float
    ki: float
    kd: float
    derivative_filter_seconds: float
    horizon_seconds: int
    #: Activation thresholds (None when the group never goes to zero: minimum above 0).
    activation_items: float | None
    activation_age_seconds: float | None


def derive(workload: Workload) -> Derived:
    """The recipe numbers for ``workload``; :class:`RecipeError` when the SLO leaves a node less
    than two readings of work after its startup."""
    interval = workload.interval_seconds
    margin = 2 * interval
    budget = workload.slo_seconds - workload.startup_seconds - margin
    if budget < 2 * interval:
        raise RecipeError(
            f"{workload.name}: the SLO ({_num(workload.slo_seconds)} s) leaves "
            f"{_num(budget)} s after the node startup ({_num(workload.startup_seconds)} s) and "
            f"a margin of {_num(margin)} s; at least {_num(2 * interval)} s are needed. Start "
            "nodes ahead (minReplicas, a schedule) or read the queue more often."
        )
    return Derived(
        margin_seconds=margin,
        budget_seconds=budget,
        target_items=_round(workload.items_per_second * budget, 3),
        release_tolerance=_round(1 - interval / budget, 3),
        ki=_round(1 / interval, 4),
        kd=min(_round(workload.startup_seconds, 1), MAX_KD),
        derivative_filter_seconds=2 * interval,
        horizon_seconds=max(1, math.ceil(workload.startup_seconds)),
        activation_items=_round(workload.items_per_second * budget, 3)
        if workload.min_nodes == 0
        else None,
        activation_age_seconds=max(0.0, _round(budget - workload.age_lag_seconds, 1))
        if workload.min_nodes == 0
        else None,
    )


def baseline_target(workload: Workload) -> float:
    """The benchmark baseline's target: itemsPerSecond × maxItemAgeSeconds / 2 per node."""
    return _round(workload.items_per_second * workload.slo_seconds / 2, 3)


# --------------------------------------------------------------------------- rendering


@dataclass(frozen=True)
class Names:
    """Where the generated resources live and what they point at."""

    namespace: str = "default"
    node_group: str = "bench-workers"
    producer: str = "bench-queue"
    group_type: str = "Simulated"
    group_id: str = "bench-workers"
    queue_id: str = "https://sqs.us-east-1.amazonaws.com/000000000000/simulated"
    #: A comment above the node group (the bench explains the simulated group).
    group_note: str = "under `autoscaler simulate` the one node group is the simulated one"


BENCH_NAMES = Names()


def _num(value: float) -> str:
    """A number as a person writes it: 2 not 2.0, 0.969, 1,234.5."""
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.3f}".rstrip("0").rstrip(".")


def _round(value: float, digits: int) -> float:
    rounded = round(value, digits)
    return float(int(rounded)) if float(rounded).is_integer() else rounded


def _yaml_number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(value)


def _common_docs(names: Names, interval: float, oldest_age: bool = False) -> str:
    age = (
        "\n    oldestMessageAge: true   # publishes queue_oldest_message_age_seconds (activation)"
        if oldest_age
        else ""
    )
    return f"""apiVersion: autoscaler.dev/v1alpha1
kind: ScalableNodeGroup
metadata:
  name: {names.node_group}
  namespace: {names.namespace}
spec:
  type: {names.group_type}   # {names.group_note}
  id: {names.group_id}
---
apiVersion: autoscaler.dev/v1alpha1
kind: MetricsProducer
metadata:
  name: {names.producer}
  namespace: {names.namespace}
spec:
  intervalSeconds: {_yaml_number(interval)}   # I: how often the queue is read
  queue:
    type: AWSSQSQueue
    id: {names.queue_id}{age}
    # includeInFlight stays true (the default): a node's items in flight count, so a scale-down
    # never sees an empty queue while nodes are still busy.
"""


def _header(recipe: str, workload: Workload, derived: Derived, how_to_run: str) -> str:
    w, d = workload, derived
    lines = [
        f'# Recommended configuration "{recipe}" (bench/recipes.py; docs/tuning.md explains it),',
        "# computed only from what the workload declares:",
        f"#   μ = {_num(w.items_per_second)} items/s per node, SLO S = {_num(w.slo_seconds)} s, "
        f"node startup D = {_num(w.startup_seconds)} s,",
        f"#   queue read every I = {_num(w.interval_seconds)} s.",
        "#",
        f"#   margin  m = 2 × I     = {_num(d.margin_seconds)} s    one reading to see new work, "
        "one loop pass to act",
        f"#   budget  B = S − D − m = {_num(d.budget_seconds)} s   the work one node may hold "
        "and still meet the SLO",
        f"#   target  T = μ × B     = {_num(d.target_items)} items per node (queue_length, "
        "AverageValue)",
        f"#   release 1 − I / B     = {_num(d.release_tolerance)}   scale down only once each "
        "node holds < I s of work",
    ]
    if d.activation_items is not None and d.activation_age_seconds is not None:
        lag = f" − {_num(w.age_lag_seconds)} s (the age is read late)" if w.age_lag_seconds else ""
        lines += [
            f"#   activation: leave 0 nodes for > T = {_num(d.activation_items)} items, or once "
            f"the oldest item",
            f"#               has waited > B{lag} = {_num(d.activation_age_seconds)} s",
        ]
    if recipe == "pid":
        lines += [
            f"#   ki = 1 / I            = {d.ki:g} the integral takes the proportional step "
            "per reading",
            f"#   kd = min(D, {_num(MAX_KD)})      = {_num(d.kd)} s    adds the nodes the queue's "
            "growth over one startup needs",
        ]
    if recipe == "predictive":
        lines.append(
            f"#   horizonSeconds = D    = {d.horizon_seconds} s    size for the queue as it will "
            "be when a new node is up"
        )
    lines += ["#", *(f"#   {line}" if line else "#" for line in how_to_run.splitlines())]
    return "\n".join(lines) + "\n"


def _autoscaler(recipe: str, workload: Workload, derived: Derived, names: Names) -> str:
    w, d = workload, derived
    interval = _yaml_number(w.interval_seconds)
    activation = ""
    if d.activation_items is not None and d.activation_age_seconds is not None:
        lag = " − L" if w.age_lag_seconds else ""
        activation = f"""  activation:
    # At 0 nodes, a trickle waits until its oldest item has used its budget; a real batch
    # (more than one node's worth) starts nodes at once. Activation never removes a node.
    - producer:
        name: {names.producer}
      above: {_yaml_number(d.activation_items)}   # T: one node's worth of work
    - producer:
        name: {names.producer}
        metric: queue_oldest_message_age_seconds
      # B{lag}: the wait an item can afford before a node starts
      above: {_yaml_number(d.activation_age_seconds)}
"""
    if recipe == "pid":
        algorithm = f"""  algorithm:
    type: PID
    pid:
      kp: 0          # the velocity-form P term misreads AverageValue errors after a scale step
      ki: {_yaml_number(d.ki)}     # 1 / I
      kd: {_yaml_number(d.kd)}       # min(D, {_num(MAX_KD)}): lead on a growing queue
      derivativeFilterSeconds: {_yaml_number(d.derivative_filter_seconds)}   # 2 × I
"""
    elif recipe == "predictive":
        algorithm = f"""  algorithm:
    type: Proportional
    predictive:
      horizonSeconds: {d.horizon_seconds}   # D: what the queue will be when a new node is ready
      method: Auto          # a forecast is used only where it beats "as now" on this queue
"""
    else:
        algorithm = "  algorithm:\n    type: Proportional\n"
    return f"""apiVersion: autoscaler.dev/v1alpha1
kind: HorizontalAutoscaler
metadata:
  name: {names.node_group}
  namespace: {names.namespace}
spec:
  scaleTargetRef:
    name: {names.node_group}
  minReplicas: {w.min_nodes}
  maxReplicas: {w.max_nodes}
  metrics:
    - producer:
        name: {names.producer}   # queue_length: waiting + in flight
      target:
        type: AverageValue
        averageValue: {_yaml_number(d.target_items)}   # T = μ × B
{algorithm}  behavior:
    scaleUp:
      stabilizationWindowSeconds: 0
      tolerance: {_yaml_number(SCALE_UP_TOLERANCE)}
      policies:
        # At once to what the queue asks for: ceil(queue / T) does not compound, and every
        # reading of delay is a reading less of the budget. maxReplicas caps the cost.
        - type: Pods
          value: {w.max_nodes}
          periodSeconds: {interval}
    scaleDown:
      # No window: the tolerance below is what holds capacity while a backlog drains.
      stabilizationWindowSeconds: 0
      tolerance: {_yaml_number(d.release_tolerance)}   # 1 − I / B
      policies:
        # Then release gradually: the count halves in about three readings, and stops as soon
        # as the queue holds work again.
        - type: Percent
          value: {RELEASE_PERCENT}
          periodSeconds: {interval}
{activation}"""


def render(
    recipe: str,
    workload: Workload,
    names: Names = BENCH_NAMES,
    how_to_run: str | None = None,
    derived: Derived | None = None,
) -> str:
    """The spec set (multi-document YAML with comments) of ``recipe`` for ``workload``.

    ``derived`` overrides the recipe's numbers (to study a variant, e.g. other PID gains).
    """
    if recipe == BASELINE:
        return render_baseline(workload, names, how_to_run)
    if recipe not in RECIPES:
        raise ValueError(f"unknown recipe {recipe!r} (known: {', '.join(RECIPES)})")
    derived = derived or derive(workload)
    if how_to_run is None:
        how_to_run = (
            f"autoscaler simulate --scenario ../shared/bench/scenarios/{workload.name}.yaml \\\n"
            f"    --config bench/specs/{recipe}-{workload.name}.yaml"
        )
    return (
        _header(recipe, workload, derived, how_to_run)
        + _common_docs(names, workload.interval_seconds, derived.activation_items is not None)
        + "---\n"
        + _autoscaler(recipe, workload, derived, names)
    )


def render_baseline(
    workload: Workload, names: Names = BENCH_NAMES, how_to_run: str | None = None
) -> str:
    """The benchmark baseline (shared bench README): Proportional, AverageValue
    ``μ × S / 2``, HPA default behaviour, the queue read every 15 s."""
    target = baseline_target(workload)
    how_to_run = how_to_run or (
        f"autoscaler simulate --scenario SCENARIO --config {BASELINE}-{workload.name}.yaml"
    )
    header = (
        "# The benchmark baseline (see docs/simulator.md): the Proportional algorithm, an "
        "AverageValue\n# target on the queue length, default HPA behaviour, metrics read every "
        f"15 s.\n#\n# The target is itemsPerSecond × maxItemAgeSeconds / 2 items per node:\n"
        f"# {_num(workload.items_per_second)} items/s × {_num(workload.slo_seconds)} s / 2 = "
        f"{_num(target)}.\n#\n" + "".join(f"#   {line}\n" for line in how_to_run.splitlines())
    )
    return (
        header
        + _common_docs(names, DEFAULT_INTERVAL_SECONDS)
        + f"""---
apiVersion: autoscaler.dev/v1alpha1
kind: HorizontalAutoscaler
metadata:
  name: {names.node_group}
  namespace: {names.namespace}
spec:
  scaleTargetRef:
    name: {names.node_group}
  minReplicas: {workload.min_nodes}
  maxReplicas: {workload.max_nodes}
  metrics:
    - producer:
        name: {names.producer}
      target:
        type: AverageValue
        averageValue: {_yaml_number(target)}
"""
    )


def write_specs(
    scenarios: list[Path],
    out: Path,
    recipes: tuple[str, ...] = RECIPES,
    how_to_run: Callable[[str, Workload], str] | None = None,
) -> list[Path]:
    """``out/<recipe>-<scenario>.yaml`` for every recipe and scenario file; the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for scenario in scenarios:
        workload = Workload.from_scenario(scenario)
        for recipe in recipes:
            path = out / f"{recipe}-{workload.name}.yaml"
            text = render(
                recipe, workload, how_to_run=how_to_run(recipe, workload) if how_to_run else None
            )
            path.write_text(text, encoding="utf-8")
            written.append(path)
    return written


# --------------------------------------------------------------------------- examples

#: The example workload of ``examples/recommended/``: an image-rendering queue.
EXAMPLE = Workload(
    name="render",
    items_per_second=2.0,
    slo_seconds=600.0,
    startup_seconds=90.0,
    min_nodes=0,
    max_nodes=50,
    age_lag_seconds=120.0,  # SQS's age comes from CloudWatch: one-minute datapoints, late
)


def example(recipe: str, workload: Workload = EXAMPLE) -> str:
    """A user-facing example: a real ASG and SQS queue, one namespace per recipe so the examples
    folder validates as one set."""
    names = Names(
        namespace=f"recommended-{recipe}",
        node_group="render-workers",
        producer="render-queue",
        group_type="AWSEC2AutoScalingGroup",
        group_id="render-workers",
        queue_id="https://sqs.eu-west-1.amazonaws.com/123456789012/render-jobs",
        group_note="an Auto Scaling group, by name (or its ARN)",
    )
    intro = (
        f"Example workload: an image-rendering queue. Each node renders "
        f"{_num(workload.items_per_second)} images/s,\nno image may wait more than "
        f"{_num(workload.slo_seconds)} s, and a new node takes {_num(workload.startup_seconds)} s "
        "to boot and join.\nFor your own workload:\n"
        f"  .venv/bin/python bench/recipes.py --recipe {recipe} \\\n"
        "      --items-per-second μ --slo S --startup D\n\n"
        "Check it offline against a day of your own traffic (docs/tuning.md):\n"
        "  autoscaler simulate --scenario my-scenario.yaml \\\n"
        f"      --config examples/recommended/{recipe}.yaml --report out/{recipe}.html"
    )
    return render(recipe, replace(workload, name="render"), names, how_to_run=intro)


def write_examples(out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for recipe in RECIPES:
        path = out / f"{recipe}.yaml"
        path.write_text(example(recipe), encoding="utf-8")
        written.append(path)
    return written


# --------------------------------------------------------------------------- command


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenarios", type=Path, help="a folder of scenario files")
    parser.add_argument("--out", type=Path, help="where to write <recipe>-<scenario>.yaml")
    parser.add_argument("--examples", type=Path, help="write the user-facing examples here")
    parser.add_argument("--recipe", choices=[*RECIPES, BASELINE], help="print one recipe")
    parser.add_argument("--items-per-second", type=float, help="μ: items one node does per s")
    parser.add_argument("--slo", type=float, help="S: the longest an item may wait, seconds")
    parser.add_argument("--startup", type=float, help="D: node startup, seconds")
    parser.add_argument("--min-nodes", type=int, default=0)
    parser.add_argument("--max-nodes", type=int, default=200)
    parser.add_argument("--interval", type=float, default=DEFAULT_INTERVAL_SECONDS)
    parser.add_argument(
        "--age-lag",
        type=float,
        default=0.0,
        help="L: how late the oldest item's age is read, seconds (SQS via CloudWatch: ~120)",
    )
    args = parser.parse_args(argv)

    try:
        if args.recipe:
            if None in (args.items_per_second, args.slo, args.startup):
                parser.error("--recipe needs --items-per-second, --slo and --startup")
            workload = Workload(
                "workload",
                args.items_per_second,
                args.slo,
                args.startup,
                args.min_nodes,
                args.max_nodes,
                args.interval,
                args.age_lag,
            )
            names = replace(BENCH_NAMES, node_group="workers", producer="jobs-queue")
            sys.stdout.write(
                render(args.recipe, workload, names, "autoscaler simulate --scenario S --config F")
            )
            return 0
        written: list[Path] = []
        if args.scenarios:
            if not args.out:
                parser.error("--scenarios needs --out")
            written += write_specs(sorted(args.scenarios.glob("*.yaml")), args.out)
        if args.examples:
            written += write_examples(args.examples)
        if not written:
            parser.error("nothing to do: give --scenarios/--out, --examples or --recipe")
    except RecipeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for path in written:
        print(path)
    return 0


def parse(text: str) -> list[dict[str, Any]]:
    """The documents of a rendered spec set (for tests and checks)."""
    return [doc for doc in yaml.safe_load_all(text) if doc]


if __name__ == "__main__":
    sys.exit(main())
