"""The simulator wired to the real control loop: producers, provider, clock and figures."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from autoscaler.api import HorizontalAutoscaler, MetricsProducer, ScalableNodeGroup
from autoscaler.config import SpecSet, load_text
from autoscaler.simulator.run import (
    AGE_SIGNAL,
    EPOCH,
    LENGTH_SIGNAL,
    ProgressBar,
    SimulatedGroup,
    SimulatedQueue,
    SimulationError,
    check_specs,
    command,
    queue_name,
    simulate,
)
from autoscaler.simulator.scenario import Scenario, load_scenario
from autoscaler.simulator.world import World

CONTRACT_KEYS = {
    "node_seconds",
    "work_seconds",
    "efficiency",
    "late_items",
    "late_fraction",
    "p99_wait_seconds",
    "slo_violation_seconds",
    "scale_actions",
    "max_nodes",
}

GROUP = """\
apiVersion: autoscaler.dev/v1alpha1
kind: ScalableNodeGroup
metadata: {name: workers}
spec: {type: AWSEC2AutoScalingGroup, id: my-asg, replicas: 7}
"""
QUEUE = """\
---
apiVersion: autoscaler.dev/v1alpha1
kind: MetricsProducer
metadata: {name: jobs}
spec:
  intervalSeconds: 15
  queue: {type: AWSSQSQueue, id: "https://sqs.eu-west-1.amazonaws.com/123456789012/jobs"}
---
apiVersion: autoscaler.dev/v1alpha1
kind: HorizontalAutoscaler
metadata: {name: workers}
spec:
  scaleTargetRef: {name: workers}
  minReplicas: 0
  maxReplicas: 50
  metrics:
    - producer: {name: jobs, labels: {queue: jobs}}
      target: {type: AverageValue, averageValue: 20}
"""
SCHEDULE = """\
---
apiVersion: autoscaler.dev/v1alpha1
kind: MetricsProducer
metadata: {name: office}
spec:
  intervalSeconds: 15
  schedule:
    timezone: UTC
    defaultReplicas: 2
    behaviors:
      - {start: "10 0 * * 1", end: "20 0 * * 1", replicas: 6}   # Mondays 00:10-00:20
---
apiVersion: autoscaler.dev/v1alpha1
kind: HorizontalAutoscaler
metadata: {name: workers}
spec:
  scaleTargetRef: {name: workers}
  minReplicas: 1
  maxReplicas: 10
  metrics:
    - producer: {name: office}
      target: {type: AverageValue, averageValue: 1}
"""


def _specs(text: str) -> SpecSet:
    result = load_text(text)
    assert not result.issues, [str(issue) for issue in result.issues]
    return result.specs


def _scenario(
    folder: Path,
    buckets: list[int],
    *,
    initial: int = 1,
    startup: float = 30,
    rate: float = 1.0,
    slo: float = 120,
    max_nodes: int = 20,
) -> Scenario:
    trace = folder / "trace.csv"
    trace.write_text(
        "time_s,arrivals\n" + "".join(f"{10 * i},{n}\n" for i, n in enumerate(buckets))
    )
    path = folder / "scenario.yaml"
    path.write_text(
        f"workload: {{trace: trace.csv}}\n"
        f"nodes: {{initial: {initial}, startupSeconds: {startup}, itemsPerSecond: {rate}, "
        f"min: 0, max: {max_nodes}}}\n"
        f"slo: {{maxItemAgeSeconds: {slo}}}\n"
    )
    return load_scenario(path)


def test_the_simulated_clock_starts_on_a_monday_at_midnight_utc() -> None:
    from datetime import UTC, datetime

    start = datetime.fromtimestamp(EPOCH, tz=UTC)
    assert (start.isoformat(), start.strftime("%A")) == ("2026-01-05T00:00:00+00:00", "Monday")


def test_a_schedule_producer_runs_on_the_simulated_clock(tmp_path: Path) -> None:
    scenario = _scenario(tmp_path, [0] * 240, initial=2, startup=30)  # 40 minutes
    result = simulate(scenario, _specs(GROUP + SCHEDULE), sample_seconds=30)
    timeline = result.timeline
    at = {start: index for index, start in enumerate(timeline.times)}
    # Monday 00:10 is t = 600: the producer observes 6 then and the group grows 2 → 6 at once.
    assert timeline.nodes[at[570]] == 2
    assert timeline.nodes[at[600]] == 6
    assert timeline.ready[at[600]] == 2  # still starting (ready at 630)
    assert timeline.ready[at[630]] == 6
    # 00:20 is t = 1200: back to 2 once the last recommendation of 6 (at most 15 s before)
    # has left the 300 s scale-down stabilization window.
    assert timeline.nodes[at[1440]] == 6  # at t = 1469
    assert timeline.nodes[at[1500]] == 2  # at t = 1529
    assert timeline.nodes[-1] == 2
    assert result.figures.max_nodes == 6
    assert result.figures.scale_actions == 2


def test_the_scenario_sets_the_starting_size_not_the_specs_replicas(tmp_path: Path) -> None:
    scenario = _scenario(tmp_path, [0] * 6, initial=3)
    result = simulate(scenario, _specs(GROUP))  # no autoscaler: the group keeps its size
    assert result.figures.node_seconds == 3 * 60
    assert result.figures.scale_actions == 0


def test_the_queue_producer_scales_the_group_up_on_a_burst_and_back_down(tmp_path: Path) -> None:
    # 5 minutes of 1 item/s, a burst of 3000 items in 10 s, then 25 quiet minutes.
    buckets = [10] * 30 + [3000] + [0] * 150
    scenario = _scenario(tmp_path, buckets, initial=1, startup=30, slo=300)
    result = simulate(scenario, _specs(GROUP + QUEUE))
    figures = result.figures
    assert figures.items == 300 + 3000
    assert figures.max_nodes > 10
    assert result.timeline.nodes[-1] == 0  # minReplicas 0 and an empty queue
    assert figures.unfinished_items == 0
    assert figures.late_items < figures.items * 0.5
    assert set(figures.to_dict()) >= CONTRACT_KEYS
    assert figures.efficiency == round(figures.work_seconds / figures.node_seconds, 6)


def test_the_same_inputs_give_the_same_figures(tmp_path: Path) -> None:
    buckets = [10] * 30 + [3000] + [0] * 60
    scenario = _scenario(tmp_path, buckets, slo=300)
    first = simulate(scenario, _specs(GROUP + QUEUE)).figures.to_dict()
    second = simulate(scenario, _specs(GROUP + QUEUE)).figures.to_dict()
    first.pop("wall_seconds")
    second.pop("wall_seconds")
    assert first == second


def test_the_simulated_queue_reports_length_and_oldest_age_with_the_queue_label() -> None:
    world = World(
        [5] * 10,
        initial=1,
        startup_seconds=0,
        items_per_second=1,
        min_size=0,
        max_size=5,
        max_item_age_seconds=60,
    )
    world.run(until=3)
    world.begin_step(3)
    observation = SimulatedQueue(world, "jobs", include_in_flight=True).observe(EPOCH + 3)
    signals = {signal.name: signal for signal in observation.signals}
    assert signals[LENGTH_SIGNAL].value == 15 - 2  # 15 arrived, 2 done, 1 in flight
    assert signals[AGE_SIGNAL].value == 2.5  # an item of second 0 still waits
    assert dict(signals[LENGTH_SIGNAL].labels) == {"queue": "jobs"}
    assert observation.status == {"queue": {"length": 13.0, "oldestMessageAgeSeconds": 2.5}}
    visible = SimulatedQueue(world, "jobs", include_in_flight=False).observe(EPOCH + 3)
    assert visible.signals[0].value == 12


def test_the_simulated_group_reports_the_scenarios_bounds_and_provisioning_nodes() -> None:
    world = World(
        [0] * 10,
        initial=1,
        startup_seconds=5,
        items_per_second=1,
        min_size=1,
        max_size=4,
        max_item_age_seconds=60,
    )
    group = SimulatedGroup(world)
    group.set_replicas(3)
    state = group.get_replicas()
    assert (state.desired, state.ready, state.min_size, state.max_size) == (3, 1, 1, 4)
    assert not state.stable and "2 of 3 provisioning" in state.message


@pytest.mark.parametrize(
    ("queue_id", "name"),
    [
        ("simulated", "simulated"),
        ("https://sqs.eu-west-1.amazonaws.com/123456789012/jobs", "jobs"),
        ("arn:aws:sqs:eu-west-1:123456789012:jobs.fifo", "jobs.fifo"),
    ],
)
def test_the_queue_label_is_the_queue_name_as_the_sqs_producer_derives_it(
    queue_id: str, name: str
) -> None:
    assert queue_name(queue_id) == name


def test_specs_without_one_node_group_or_with_other_sources_cannot_be_simulated() -> None:
    group = ScalableNodeGroup.model_validate(
        {"metadata": {"name": "a"}, "spec": {"type": "Simulated", "id": "a"}}
    )
    other = group.model_copy(update={"metadata": group.metadata.model_copy(update={"name": "b"})})
    watch = MetricsProducer.model_validate(
        {
            "metadata": {"name": "cpu"},
            "spec": {"cloudWatch": {"namespace": "AWS/EC2", "metricName": "CPUUtilization"}},
        }
    )
    promql = HorizontalAutoscaler.model_validate(
        {
            "metadata": {"name": "h"},
            "spec": {
                "scaleTargetRef": {"name": "a"},
                "maxReplicas": 5,
                "metrics": [
                    {
                        "prometheus": {"query": "sum(jobs)"},
                        "target": {"type": "Value", "value": 10},
                    }
                ],
            },
        }
    )
    problems = check_specs(
        SpecSet(
            node_groups={"default/a": group, "default/b": other},
            producers={"default/cpu": watch},
            autoscalers={"default/h": promql},
        )
    )
    assert problems == [
        "the specs must hold exactly one ScalableNodeGroup (the simulated group); "
        "found 2: default/a, default/b",
        "MetricsProducer default/cpu: source cloudWatch cannot be simulated "
        "(supported: queue, schedule)",
        "HorizontalAutoscaler default/h: spec.metrics[0].prometheus cannot be simulated "
        "(read a MetricsProducer instead)",
    ]
    with pytest.raises(SimulationError):
        simulate(None, SpecSet(node_groups={}))  # type: ignore[arg-type]


def _files(folder: Path) -> tuple[Path, Path]:
    _scenario(folder, [10] * 30 + [600] + [0] * 30, slo=300)
    spec = folder / "spec.yaml"
    spec.write_text(GROUP + QUEUE)
    return folder / "scenario.yaml", spec


def test_the_command_prints_one_json_object_with_the_contract_keys(tmp_path: Path) -> None:
    scenario, spec = _files(tmp_path)
    out, err = io.StringIO(), io.StringIO()
    code = command(str(scenario), str(spec), json_output=True, stdout=out, stderr=err)
    assert code == 0, err.getvalue()
    payload = json.loads(out.getvalue())
    assert set(payload) >= CONTRACT_KEYS
    assert payload["scenario"] == "scenario"
    assert err.getvalue() == ""  # no progress bar when stderr is not a terminal


def test_the_command_prints_a_table_and_writes_the_report(tmp_path: Path) -> None:
    scenario, spec = _files(tmp_path)
    out = io.StringIO()
    report = tmp_path / "out" / "report.html"
    code = command(str(scenario), str(spec), report=str(report), stdout=out, stderr=io.StringIO())
    assert code == 0
    text = out.getvalue()
    for key in CONTRACT_KEYS:
        assert f"\n{key} " in text
    assert report.read_text().count("<svg") == 4


def test_the_command_lists_every_problem_and_exits_1(tmp_path: Path) -> None:
    scenario, spec = _files(tmp_path)
    scenario.write_text(scenario.read_text().replace("itemsPerSecond", "itemsPerSec"))
    spec.write_text(GROUP.replace("replicas: 7", "replicas: -1"))
    err = io.StringIO()
    code = command(str(scenario), str(spec), stdout=io.StringIO(), stderr=err)
    assert code == 1
    lines = err.getvalue().splitlines()
    assert any("nodes.itemsPerSec: unknown field" in line for line in lines)
    assert any(f"{spec}:4: spec.replicas:" in line for line in lines)
    assert lines[-1] == "3 problem(s) found"


def test_a_missing_config_is_reported(tmp_path: Path) -> None:
    scenario, _ = _files(tmp_path)
    err = io.StringIO()
    assert command(str(scenario), str(tmp_path / "nope.yaml"), stderr=err) == 1
    assert "nope.yaml:0: no such file or folder" in err.getvalue()


def test_the_progress_bar_redraws_one_line_and_clears_it_at_the_end() -> None:
    stream = io.StringIO()
    bar = ProgressBar(stream, width=10)
    bar(0, 7200)
    bar(3600, 7200)
    bar(3601, 7200)  # same percentage: not redrawn
    bar(7200, 7200)
    text = stream.getvalue()
    assert text.count("\rsimulating") == 3
    assert "[#####.....]  50%  01:00 / 02:00" in text
    assert text.endswith("\r")
