"""Wiring: the real control loop, on a simulated clock, against the simulated world.

:func:`simulate` builds a :class:`~autoscaler.loop.ControlLoop` exactly as the service does, with
three differences:

* the clock is a :class:`~autoscaler.clock.FakeClock` starting at :data:`EPOCH`
  (2026-01-05T00:00:00Z, a Monday, so schedule producers behave the same on every run);
* backend calls run inline (:class:`~autoscaler.loop.InlineRunner`), so they complete within the
  pass that starts them;
* the backend factories are ours (the registry is not touched): every MetricsProducer with a
  ``queue`` source reads the simulated queue (:class:`SimulatedQueue`), schedule producers are
  the real ones from the registry, and the one ScalableNodeGroup — whatever its ``type`` — is the
  simulated group (:class:`SimulatedGroup`). Other producer sources are refused up front.

The world advances one second at a time (:mod:`autoscaler.simulator.world`); the loop runs only
at the first whole second at or after the due time it returned from its previous pass, so a day
costs about 86,400 cheap world steps and a few thousand loop passes.

Determinism: no wall clock reaches the loop or the world, and the loop's random source (used
only for retry jitter) is seeded. The same scenario and specs give the same figures.
"""

from __future__ import annotations

import json
import random
import re
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TextIO

from autoscaler import registry
from autoscaler.api import (
    BackendContext,
    MetricsProducer,
    NodeGroupState,
    Observation,
    Producer,
    Provider,
    ScalableNodeGroup,
    Signal,
)
from autoscaler.clock import FakeClock
from autoscaler.config import SpecSet, load_paths
from autoscaler.errors import SpecError
from autoscaler.loop import ControlLoop, InlineRunner
from autoscaler.settings import LoopSettings
from autoscaler.simulator.scenario import Scenario, ScenarioError, load_scenario
from autoscaler.simulator.world import Timeline, World, spread_arrivals

#: Simulated time starts here: 2026-01-05T00:00:00Z, a Monday.
EPOCH = 1_767_571_200.0
#: Signals of the simulated queue (the names and labels of the real SQS producer).
LENGTH_SIGNAL = "queue_length"
AGE_SIGNAL = "queue_oldest_message_age_seconds"
#: Producer sources the simulator can run.
SUPPORTED_SOURCES = ("queue", "schedule")
#: Seed of the loop's random source (retry jitter).
SEED = 0

#: ``progress(step, duration)``: called now and then while the simulation runs.
Progress = Callable[[int, int], None]


class SimulationError(Exception):
    """The scenario or the specs cannot be simulated; ``issues`` says why, one line each."""

    def __init__(self, issues: list[str]) -> None:
        super().__init__("\n".join(issues))
        self.issues = issues


# --------------------------------------------------------------------------- backends


def queue_name(queue_id: str) -> str:
    """The ``queue`` label of a queue id, as the SQS producer derives it.

    The last segment of a queue URL or ARN, or the id itself:

    >>> queue_name("https://sqs.eu-west-1.amazonaws.com/123456789012/jobs")
    'jobs'
    >>> queue_name("simulated")
    'simulated'
    """
    return re.split(r"[/:]", queue_id.rstrip("/"))[-1] or queue_id


class SimulatedQueue:
    """A queue producer reading the simulated queue.

    Signals (labels ``{"queue": NAME}``): ``queue_length`` = waiting + in flight (waiting only
    with ``includeInFlight: false``) and ``queue_oldest_message_age_seconds`` = the age of the
    oldest waiting item (0 when none waits). Status:
    ``{"queue": {"length": …, "oldestMessageAgeSeconds": …}}``.
    """

    def __init__(self, world: World, name: str, include_in_flight: bool) -> None:
        self._world = world
        self._labels = {"queue": name}
        self._include_in_flight = include_in_flight

    def observe(self, now: float) -> Observation:
        length = float(self._world.queue_length(self._include_in_flight))
        age = self._world.oldest_age()
        return Observation(
            signals=(
                Signal(LENGTH_SIGNAL, length, now, self._labels),
                Signal(AGE_SIGNAL, age, now, self._labels),
            ),
            status={"queue": {"length": length, "oldestMessageAgeSeconds": age}},
        )


class SimulatedGroup:
    """The provider of the one node group: reads and resizes the world's group.

    Reports the scenario's ``nodes.min`` / ``nodes.max`` as the group's own bounds, so the loop
    clamps to them as it does for a real group.
    """

    def __init__(self, world: World) -> None:
        self._world = world

    def get_replicas(self) -> NodeGroupState:
        world = self._world
        pending = world.pending_total
        return NodeGroupState(
            desired=world.size,
            ready=world.ready,
            min_size=world.min_size,
            max_size=world.max_size,
            stable=pending == 0,
            message=f"{pending} of {world.size} provisioning" if pending else "",
        )

    def set_replicas(self, replicas: int) -> None:
        self._world.resize(replicas)


def check_specs(specs: SpecSet) -> list[str]:
    """Why these specs cannot be simulated (empty when they can): not exactly one node group,
    a producer source other than queue or schedule, or a metric read from Prometheus."""
    problems: list[str] = []
    if len(specs.node_groups) != 1:
        found = ", ".join(sorted(specs.node_groups)) or "none"
        problems.append(
            f"the specs must hold exactly one ScalableNodeGroup (the simulated group); "
            f"found {len(specs.node_groups)}: {found}"
        )
    for key, producer in sorted(specs.producers.items()):
        source = producer.spec.source
        if source not in SUPPORTED_SOURCES:
            problems.append(
                f"MetricsProducer {key}: source {source} cannot be simulated "
                f"(supported: {', '.join(SUPPORTED_SOURCES)})"
            )
    for key, autoscaler in sorted(specs.autoscalers.items()):
        for (field, index), metric in autoscaler.spec.sources():
            if metric.prometheus is not None:
                problems.append(
                    f"HorizontalAutoscaler {key}: spec.{field}[{index}].prometheus cannot be "
                    "simulated (read a MetricsProducer instead)"
                )
    return problems


def _without_replicas(specs: SpecSet) -> SpecSet:
    """Drop ``spec.replicas`` from the node group: the scenario's ``nodes.initial`` decides."""
    groups = {
        key: group.model_copy(update={"spec": group.spec.model_copy(update={"replicas": None})})
        for key, group in specs.node_groups.items()
    }
    return SpecSet(node_groups=groups, producers=specs.producers, autoscalers=specs.autoscalers)


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Figures:
    """The benchmark figures (``bench/README.md``) and a few extras.

    ``max_nodes`` is the largest group size reached, ready + provisioning (= the desired count).
    """

    node_seconds: int
    work_seconds: float
    efficiency: float
    late_items: int
    late_fraction: float
    p99_wait_seconds: float
    slo_violation_seconds: float
    scale_actions: int
    max_nodes: int
    # Extras.
    items: int
    unfinished_items: int
    returned_items: int
    mean_wait_seconds: float
    max_wait_seconds: float
    decisions: int
    loop_passes: int
    duration_seconds: int
    wall_seconds: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class SimulationResult:
    """Everything one run produced: the figures, the timeline and what was run."""

    scenario: Scenario
    config: str
    figures: Figures
    timeline: Timeline

    def to_dict(self) -> dict[str, Any]:
        """The ``--json`` object: the figures, then the scenario and config names."""
        return {**self.figures.to_dict(), "scenario": self.scenario.name, "config": self.config}


# --------------------------------------------------------------------------- running


def load(scenario_path: str | Path, config_path: str | Path) -> tuple[Scenario, SpecSet]:
    """Load and check a scenario and a spec file or folder; raise :class:`SimulationError`."""
    issues: list[str] = []
    scenario: Scenario | None = None
    try:
        scenario = load_scenario(scenario_path)
    except ScenarioError as exc:
        issues.extend(exc.issues)
    if not Path(config_path).exists():
        issues.append(f"{config_path}:0: no such file or folder")
        raise SimulationError(issues)
    result = load_paths([config_path])
    issues.extend(str(issue) for issue in result.issues)
    if not result.issues:
        issues.extend(f"{config_path}: {problem}" for problem in check_specs(result.specs))
    if issues:
        raise SimulationError(issues)
    assert scenario is not None
    return scenario, result.specs


def simulate(
    scenario: Scenario,
    specs: SpecSet,
    *,
    config: str = "",
    progress: Progress | None = None,
    sample_seconds: int = 60,
    settings: LoopSettings | None = None,
) -> SimulationResult:
    """Replay ``scenario`` against the control loop running ``specs``; see the module docstring."""
    problems = check_specs(specs)
    if problems:
        raise SimulationError(problems)
    started = time.perf_counter()
    nodes = scenario.spec.nodes
    duration = scenario.duration_seconds
    world = World(
        spread_arrivals(scenario.trace.counts, scenario.trace.bucket_seconds, duration),
        initial=nodes.initial,
        startup_seconds=nodes.startup_seconds,
        items_per_second=nodes.items_per_second,
        min_size=nodes.min,
        max_size=nodes.max,
        max_item_age_seconds=scenario.spec.slo.max_item_age_seconds,
        sample_seconds=sample_seconds,
    )
    clock = FakeClock(EPOCH)

    def create_producer(resource: MetricsProducer, context: BackendContext) -> Producer:
        queue = resource.spec.queue
        if queue is not None:
            return SimulatedQueue(world, queue_name(queue.id), queue.include_in_flight)
        if resource.spec.schedule is not None:
            return registry.create_producer(resource, context)
        raise SpecError(f"source {resource.spec.source} cannot be simulated", path="spec")

    def create_provider(resource: ScalableNodeGroup, context: BackendContext) -> Provider:
        del resource, context
        return SimulatedGroup(world)

    loop = ControlLoop(
        clock,
        settings or LoopSettings(),
        runner=InlineRunner(),
        context=BackendContext(clock=clock, aws=None),
        rng=random.Random(SEED),
        create_producer=create_producer,
        create_provider=create_provider,
    )
    loop.apply(_without_replicas(specs))

    begin, end, run_once = world.begin_step, world.end_step, loop.run_once
    every = max(duration // 200, 1)
    due = 0.0
    for t in range(duration):
        begin(t)
        if t >= due:
            clock.set(EPOCH + t)
            due = run_once() - EPOCH - 1e-6
        end(t)
        if progress is not None and t % every == 0:
            progress(t, duration)
    measured = world.finish()
    if progress is not None:
        progress(duration, duration)

    items = measured.items
    figures = Figures(
        node_seconds=measured.node_seconds,
        work_seconds=round(measured.work_seconds, 6),
        efficiency=round(measured.work_seconds / measured.node_seconds, 6)
        if measured.node_seconds
        else 0.0,
        late_items=measured.late_items,
        late_fraction=round(measured.late_items / items, 6) if items else 0.0,
        p99_wait_seconds=measured.p99_wait_seconds,
        slo_violation_seconds=round(measured.slo_violation_seconds, 3),
        scale_actions=measured.scale_actions,
        max_nodes=measured.max_nodes,
        items=items,
        unfinished_items=measured.unfinished_items,
        returned_items=measured.returned_items,
        mean_wait_seconds=round(measured.mean_wait_seconds, 3),
        max_wait_seconds=measured.max_wait_seconds,
        decisions=len(loop.decisions),
        loop_passes=loop.passes,
        duration_seconds=duration,
        wall_seconds=round(time.perf_counter() - started, 3),
    )
    return SimulationResult(
        scenario=scenario, config=config, figures=figures, timeline=world.timeline
    )


# --------------------------------------------------------------------------- the command


class ProgressBar:
    """A one-line ``\\r`` progress bar in simulated hours, for a terminal."""

    def __init__(self, stream: TextIO, width: int = 30) -> None:
        self._stream = stream
        self._width = width
        self._shown = -1

    def __call__(self, step: int, duration: int) -> None:
        done = step / duration if duration else 1.0
        filled = int(done * self._width)
        percent = int(done * 100)
        if percent == self._shown:
            return
        self._shown = percent
        bar = "#" * filled + "." * (self._width - filled)
        self._stream.write(
            f"\rsimulating [{bar}] {percent:3d}%  {_clock(step)} / {_clock(duration)}"
        )
        if step >= duration:
            self._stream.write("\r" + " " * (self._width + 40) + "\r")
        self._stream.flush()


def _clock(seconds: int) -> str:
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}"


_ROWS = (
    ("node_seconds", "billed node-seconds, provisioning included"),
    ("work_seconds", "lower bound: items / itemsPerSecond"),
    ("efficiency", "work_seconds / node_seconds"),
    ("late_items", "items that waited longer than the SLO"),
    ("late_fraction", "their share of all items"),
    ("p99_wait_seconds", "99th percentile of waiting time"),
    ("slo_violation_seconds", "time the oldest waiting item was older than the SLO"),
    ("scale_actions", "changes of the desired node count"),
    ("max_nodes", "largest group size (ready + provisioning)"),
    ("items", "items that arrived"),
    ("unfinished_items", "items still queued at the end"),
    ("returned_items", "in-flight items returned by a scale-down"),
    ("mean_wait_seconds", "mean waiting time"),
    ("decisions", "decisions recorded by the loop"),
    ("wall_seconds", "time this simulation took"),
)


def format_table(result: SimulationResult) -> str:
    """The figures as an aligned, readable table."""
    figures = result.figures.to_dict()
    scenario = result.scenario
    nodes, slo = scenario.spec.nodes, scenario.spec.slo
    lines = [
        f"scenario  {scenario.path} ({_clock(result.figures.duration_seconds)} simulated)",
        f"config    {result.config}",
        f"nodes     initial {nodes.initial}, startup {nodes.startup_seconds:g} s, "
        f"{nodes.items_per_second:g} items/s each, bounds [{nodes.min}, {nodes.max}]; "
        f"SLO {slo.max_item_age_seconds:g} s",
        "",
    ]
    for key, meaning in _ROWS:
        lines.append(f"{key:<22} {_number(figures[key]):>14}   {meaning}")
    return "\n".join(lines)


def _number(value: Any) -> str:
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if value == int(value) and abs(value) >= 100:
            return f"{int(value):,}"
        return f"{value:,.4g}" if abs(value) < 1 else f"{value:,.1f}"
    return str(value)


def command(
    scenario: str,
    config: str,
    *,
    json_output: bool = False,
    report: str | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """``autoscaler simulate``: exit 0 after a run, 1 when the inputs cannot be simulated."""
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    try:
        loaded_scenario, specs = load(scenario, config)
    except SimulationError as exc:
        for issue in exc.issues:
            print(issue, file=err)
        print(f"{len(exc.issues)} problem(s) found", file=err)
        return 1
    progress = ProgressBar(err) if err.isatty() else None
    result = simulate(loaded_scenario, specs, config=config, progress=progress)
    if report:
        from autoscaler.simulator.report import write_report

        write_report(result, report)
    if json_output:
        payload = result.to_dict()
        if report:
            payload["report"] = report
        print(json.dumps(payload), file=out)
    else:
        print(format_table(result), file=out)
        if report:
            print(f"\nreport    {report}", file=out)
    return 0
