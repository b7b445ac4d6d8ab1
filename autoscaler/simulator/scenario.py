"""Scenario files and workload traces: parsing and validation.

A *scenario* (YAML, the format of ``bench/README.md`` in the shared benchmark) names a workload
trace, the node group's behaviour and the SLO::

    workload:
      trace: ../traces/diurnal.csv   # relative to the scenario file
    nodes:
      initial: 2                     # ready nodes at t=0
      startupSeconds: 90             # from a scale-up request until the new node processes items
      itemsPerSecond: 1.0            # each ready node drains this many items per second
      min: 0                         # the node group's own bounds
      max: 200
    slo:
      maxItemAgeSeconds: 300         # an item that waits longer than this is late

Two optional fields go beyond the shared format: ``workload.bucketSeconds`` (the width of one
trace row, default 10, as in the shared traces) and ``workload.durationSeconds`` (replay only the
start of the trace, e.g. for a quick trial).

A *trace* is a CSV file with the header ``time_s,arrivals``: row ``(t, n)`` says ``n`` items
arrive in ``[t, t + bucketSeconds)``, spread evenly. Times are whole seconds, strictly increasing
and multiples of the bucket width; a missing row means no arrivals. Arrivals are whole numbers.

Errors are raised as :class:`ScenarioError`, whose ``issues`` read
``file:line: field.path: message`` like the spec loader's, so an editor can jump to them.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, ValidationError, model_validator
from pydantic_core import ErrorDetails
from yaml.nodes import MappingNode, Node, SequenceNode

from autoscaler.api.common import Model

#: Width of one trace row in seconds, unless the scenario says otherwise.
DEFAULT_BUCKET_SECONDS = 10
#: Header of a trace file.
TRACE_COLUMNS = ("time_s", "arrivals")


class ScenarioError(Exception):
    """A scenario or its trace cannot be used; ``issues`` lists every problem found."""

    def __init__(self, issues: list[str]) -> None:
        super().__init__("\n".join(issues))
        self.issues = issues


# --------------------------------------------------------------------------- the model


class Workload(Model):
    """Where the arrivals come from."""

    trace: str = Field(min_length=1, description="Trace CSV, relative to the scenario file.")
    bucket_seconds: int = Field(
        default=DEFAULT_BUCKET_SECONDS,
        ge=1,
        le=3600,
        description="Seconds covered by one trace row; its arrivals are spread evenly over them.",
    )
    duration_seconds: int | None = Field(
        default=None,
        ge=1,
        description="Replay only this many seconds of the trace (default: all of it).",
    )


class Nodes(Model):
    """The simulated node group."""

    initial: int = Field(ge=0, le=100_000, description="Ready nodes at t=0.")
    startup_seconds: float = Field(
        ge=0, le=86_400, description="Seconds from a scale-up request until the node works."
    )
    items_per_second: float = Field(
        gt=0, le=1_000_000, description="Items one ready node processes per second."
    )
    min: int = Field(default=0, ge=0, le=100_000, description="The group's own lower bound.")
    max: int = Field(ge=0, le=100_000, description="The group's own upper bound.")

    @model_validator(mode="after")
    def _bounds(self) -> Nodes:
        if self.max < self.min:
            raise ValueError("max must be greater than or equal to min")
        if not self.min <= self.initial <= self.max:
            raise ValueError(f"initial must lie within [min, max] = [{self.min}, {self.max}]")
        return self


class Slo(Model):
    """When an item counts as late."""

    max_item_age_seconds: float = Field(
        gt=0, le=7 * 86_400, description="An item that waits longer than this is late."
    )


class ScenarioSpec(Model):
    """The scenario file as written."""

    workload: Workload
    nodes: Nodes
    slo: Slo


@dataclass(frozen=True)
class Trace:
    """Arrivals per bucket: ``counts[i]`` items arrive in ``[i × bucket, (i + 1) × bucket)``."""

    path: Path
    bucket_seconds: int
    counts: tuple[int, ...]

    @property
    def duration_seconds(self) -> int:
        return len(self.counts) * self.bucket_seconds

    @property
    def total(self) -> int:
        return sum(self.counts)


@dataclass(frozen=True)
class Scenario:
    """A validated scenario with its trace loaded; ``name`` is the file's stem."""

    name: str
    path: Path
    spec: ScenarioSpec
    trace: Trace

    @property
    def duration_seconds(self) -> int:
        """Seconds simulated: the whole trace, or ``workload.durationSeconds`` if shorter."""
        wanted = self.spec.workload.duration_seconds
        full = self.trace.duration_seconds
        return full if wanted is None else min(wanted, full)


# --------------------------------------------------------------------------- loading


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a scenario file and the trace it names."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ScenarioError([f"{path}:0: no such file"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError([f"{path}:0: cannot read: {exc}"]) from exc
    spec = parse_scenario(text, str(path))
    trace = load_trace(path.parent / spec.workload.trace, spec.workload.bucket_seconds)
    return Scenario(name=path.stem, path=path, spec=spec, trace=trace)


def parse_scenario(text: str, filename: str = "<scenario>") -> ScenarioSpec:
    """Validate scenario YAML; every problem is reported with its line and field path."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 0
        raise ScenarioError([f"{filename}:{line}: invalid YAML: {exc.problem}"]) from exc
    except yaml.YAMLError as exc:
        raise ScenarioError([f"{filename}:0: invalid YAML: {exc}"]) from exc
    if not isinstance(data, dict):
        line = root.start_mark.line + 1 if root is not None else 1
        raise ScenarioError(
            [f"{filename}:{line}: a scenario must be a mapping with workload, nodes and slo"]
        )
    assert root is not None
    lines: dict[tuple[str | int, ...], int] = {}
    _record_lines(root, (), lines)
    try:
        return ScenarioSpec.model_validate(data)
    except ValidationError as exc:
        found = sorted(_issue(filename, error, data, lines) for error in exc.errors())
        raise ScenarioError([text for _, text in found]) from exc


def _record_lines(node: Node, path: tuple[str | int, ...], lines: dict[Any, int]) -> None:
    """The 1-based line of every field path in a composed YAML tree."""
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, MappingNode):
        for key, value in node.value:
            child = (*path, str(key.value))
            lines[child] = key.start_mark.line + 1
            _record_lines(value, child, lines)
    elif isinstance(node, SequenceNode):
        for index, item in enumerate(node.value):
            _record_lines(item, (*path, index), lines)


def _issue(
    filename: str,
    error: ErrorDetails,
    data: Mapping[str, Any],
    lines: Mapping[tuple[str | int, ...], int],
) -> tuple[int, str]:
    """The line and ``file:line: field.path: message`` of one pydantic error."""
    path: list[str | int] = []
    current: Any = data
    for index, part in enumerate(error["loc"]):
        if isinstance(current, dict) and part in current:
            path.append(part)
            current = current[part]
        elif isinstance(current, dict) and index == len(error["loc"]) - 1:
            path.append(part)  # a missing field
    line = 0
    for end in range(len(path), -1, -1):
        if tuple(path[:end]) in lines:
            line = lines[tuple(path[:end])]
            break
    kind = error["type"]
    if kind == "extra_forbidden":
        message = "unknown field"
    elif kind == "missing":
        message = "required field is missing"
    else:
        message = error["msg"].removeprefix("Value error, ")
    where = ".".join(str(part) for part in path)
    if not where:
        return line, f"{filename}:{line}: {message}"
    return line, f"{filename}:{line}: {where}: {message}"


def load_trace(path: str | Path, bucket_seconds: int = DEFAULT_BUCKET_SECONDS) -> Trace:
    """Read a ``time_s,arrivals`` CSV into whole-number arrivals per bucket.

    Gaps between rows are buckets without arrivals. Every malformed row is reported, at most the
    first 20.
    """
    path = Path(path)
    try:
        handle = path.open(encoding="utf-8-sig", newline="")
    except FileNotFoundError:
        raise ScenarioError([f"{path}:0: trace file not found"]) from None
    except OSError as exc:
        raise ScenarioError([f"{path}:0: cannot read the trace: {exc}"]) from exc
    issues: list[str] = []
    counts: dict[int, int] = {}
    with handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None or tuple(cell.strip() for cell in header) != TRACE_COLUMNS:
            found = ",".join(header) if header else "an empty file"
            raise ScenarioError([f"{path}:1: the header must be time_s,arrivals, not {found}"])
        last = -1
        for row in reader:
            line = reader.line_num
            if not row or all(not cell.strip() for cell in row):
                continue
            problem, time_s, arrivals = _parse_row(row, bucket_seconds, last)
            if problem:
                issues.append(f"{path}:{line}: {problem}")
                if len(issues) >= 20:
                    break
                continue
            counts[time_s // bucket_seconds] = arrivals
            last = time_s
    if issues:
        raise ScenarioError(issues)
    if not counts:
        raise ScenarioError([f"{path}:2: the trace has no rows"])
    buckets = [0] * (max(counts) + 1)
    for index, count in counts.items():
        buckets[index] = count
    return Trace(path=path, bucket_seconds=bucket_seconds, counts=tuple(buckets))


def _parse_row(row: list[str], bucket_seconds: int, last: int) -> tuple[str, int, int]:
    """``(problem, time_s, arrivals)``; ``problem`` is empty when the row is good."""
    if len(row) != 2:
        return f"expected 2 columns (time_s,arrivals), found {len(row)}", 0, 0
    time_s = _whole(row[0])
    arrivals = _whole(row[1])
    if time_s is None or time_s < 0:
        return f"time_s: {row[0].strip()!r} is not a whole number of seconds ≥ 0", 0, 0
    if time_s % bucket_seconds:
        return f"time_s: {time_s} is not a multiple of the bucket width {bucket_seconds}", 0, 0
    if time_s <= last:
        return f"time_s: {time_s} does not come after the previous row's {last}", 0, 0
    if arrivals is None or arrivals < 0:
        return f"arrivals: {row[1].strip()!r} is not a whole number ≥ 0", 0, 0
    return "", time_s, arrivals


def _whole(text: str) -> int | None:
    """A whole number written as ``12`` or ``12.0``; ``None`` otherwise."""
    text = text.strip()
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        return None
    if not math.isfinite(value) or value != int(value):
        return None
    return int(value)
