"""Malformed specs, generated (hypothesis) and hand-written: each is rejected with its field path
(or, for a whole file or document, its file and line), and none makes the loader raise."""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from autoscaler.config import (
    MAX_DEPTH,
    MAX_FILE_BYTES,
    LoadResult,
    format_path,
    load_paths,
    load_text,
    parse_path,
)

NODE_GROUP: dict[str, Any] = {
    "apiVersion": "autoscaler.dev/v1alpha1",
    "kind": "ScalableNodeGroup",
    "metadata": {"name": "workers", "labels": {"team": "a"}},
    "spec": {
        "type": "Simulated",
        "id": "workers",
        "replicas": 2,
        "simulated": {"provisioningDelaySeconds": 5, "minSize": 0, "maxSize": 20},
    },
}
SCHEDULE: dict[str, Any] = {
    "apiVersion": "autoscaler.dev/v1alpha1",
    "kind": "MetricsProducer",
    "metadata": {"name": "plan"},
    "spec": {
        "intervalSeconds": 15,
        "schedule": {
            "timezone": "Europe/Berlin",
            "defaultReplicas": 2,
            "behaviors": [{"start": "0 9 * * 1-5", "end": "0 17 * * 1-5", "replicas": 6}],
        },
    },
}
CLOUDWATCH: dict[str, Any] = {
    "apiVersion": "autoscaler.dev/v1alpha1",
    "kind": "MetricsProducer",
    "metadata": {"name": "cpu"},
    "spec": {
        "cloudWatch": {
            "namespace": "AWS/EC2",
            "metricName": "CPUUtilization",
            "dimensions": [{"name": "AutoScalingGroupName", "value": "workers"}],
            "statistic": "Average",
            "periodSeconds": 60,
        }
    },
}
AUTOSCALER: dict[str, Any] = {
    "apiVersion": "autoscaler.dev/v1alpha1",
    "kind": "HorizontalAutoscaler",
    "metadata": {"name": "workers"},
    "spec": {
        "scaleTargetRef": {"name": "workers"},
        "minReplicas": 1,
        "maxReplicas": 10,
        "metrics": [
            {
                "producer": {"name": "plan", "metric": "replicas"},
                "target": {"type": "AverageValue", "averageValue": 1},
            },
            {
                "producer": {"name": "cpu"},
                "target": {"type": "Utilization", "averageUtilization": 70},
            },
            {
                "prometheus": {"query": "sum(jobs)"},
                "target": {"type": "Value", "value": "500m"},
            },
        ],
        "behavior": {
            "scaleUp": {"policies": [{"type": "Pods", "value": 4, "periodSeconds": 15}]},
            "scaleDown": {"stabilizationWindowSeconds": 300, "selectPolicy": "Min"},
        },
        "algorithm": {"type": "PID", "pid": {"kp": 0.5, "ki": 0.1}},
        "fallback": {"failureThreshold": 3, "replicas": 4},
    },
}
DOCUMENTS = [NODE_GROUP, SCHEDULE, CLOUDWATCH, AUTOSCALER]
#: Mappings whose keys are data, not field names: any key is allowed there.
FREE_FORM = {"labels", "annotations"}

Path_ = tuple[str | int, ...]


def _dump(documents: list[dict[str, Any]]) -> str:
    return yaml.safe_dump_all(documents, sort_keys=False)


def _paths(value: Any, prefix: Path_ = ()) -> list[Path_]:
    """Every path below ``value`` (mapping keys and list indexes), parents before children."""
    found: list[Path_] = []
    if isinstance(value, dict):
        items: list[tuple[str | int, Any]] = list(value.items())
    elif isinstance(value, list):
        items = list(enumerate(value))
    else:
        return found
    for key, child in items:
        found.append((*prefix, key))
        found.extend(_paths(child, (*prefix, key)))
    return found


def _get(value: Any, path: Path_) -> Any:
    for part in path:
        value = value[part]
    return value


def _check_well_formed(result: LoadResult) -> None:
    """Every issue names a file, a line and a message; its path is a field path or empty (a
    problem with the whole file or document)."""
    for issue in result.issues:
        assert issue.file and issue.message, issue
        assert issue.line >= 0, issue
        assert not issue.path.startswith((".", "]")), issue


def _load(documents: list[dict[str, Any]]) -> LoadResult:
    result = load_text(_dump(documents), "specs.yaml")
    _check_well_formed(result)
    return result


def _kept(result: LoadResult, index: int) -> bool:
    document = DOCUMENTS[index]
    key = f"default/{document['metadata']['name']}"
    kind = document["kind"]
    if kind == "ScalableNodeGroup":
        return key in result.specs.node_groups
    if kind == "MetricsProducer":
        return key in result.specs.producers
    return key in result.specs.autoscalers


def test_the_base_documents_are_valid() -> None:
    result = _load(DOCUMENTS)
    assert result.ok, result.issues


# --------------------------------------------------------------------------- generated

JUNK = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=10**18, max_value=10**400),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)
DOCUMENT_AND_PATH = st.integers(0, len(DOCUMENTS) - 1).flatmap(
    lambda index: st.tuples(st.just(index), st.sampled_from(_paths(DOCUMENTS[index])))
)
GENERATED = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@GENERATED
@given(target=DOCUMENT_AND_PATH, junk=JUNK, delete=st.booleans())
def test_any_field_replaced_or_removed_never_makes_the_loader_raise(
    target: tuple[int, Path_], junk: Any, delete: bool
) -> None:
    index, path = target
    documents = copy.deepcopy(DOCUMENTS)
    parent = _get(documents[index], path[:-1])
    if delete:
        del parent[path[-1]]
    else:
        parent[path[-1]] = junk
    result = _load(documents)
    if not _kept(result, index):
        assert any(issue.file == "specs.yaml" and issue.line > 0 for issue in result.issues)


@GENERATED
@given(
    target=DOCUMENT_AND_PATH,
    name=st.from_regex(r"zz[a-zA-Z]{1,8}", fullmatch=True),
    value=JUNK,
)
def test_an_unknown_field_anywhere_is_rejected_at_its_path(
    target: tuple[int, Path_], name: str, value: Any
) -> None:
    index, path = target
    documents = copy.deepcopy(DOCUMENTS)
    mapping = _get(documents[index], path)
    if not isinstance(mapping, dict):
        mapping, path = _get(documents[index], path[:-1]), path[:-1]
    if not isinstance(mapping, dict):
        return
    mapping[name] = value
    result = _load(documents)
    if path and path[-1] in FREE_FORM and isinstance(value, str):
        return  # labels and annotations take any key with a string value
    assert not _kept(result, index)
    where = format_path((*path, name))
    expected = [i for i in result.issues if i.path == where and i.message == "unknown field"]
    if path and path[-1] in FREE_FORM:
        expected = [i for i in result.issues if i.path == where]
    assert expected, result.issues


@GENERATED
@given(
    target=DOCUMENT_AND_PATH,
    wrong=st.one_of(st.lists(st.integers(), min_size=1, max_size=3), st.just({"x": {"y": 1}})),
)
def test_a_wrong_type_at_a_scalar_field_is_rejected_at_that_field(
    target: tuple[int, Path_], wrong: Any
) -> None:
    index, path = target
    documents = copy.deepcopy(DOCUMENTS)
    parent = _get(documents[index], path[:-1])
    if isinstance(parent[path[-1]], dict | list):
        return  # a scalar field is wanted
    parent[path[-1]] = wrong
    result = _load(documents)
    assert not _kept(result, index)
    where = format_path(path)
    assert any(i.path == where or i.path.startswith(where) for i in result.issues), (
        where,
        result.issues,
    )


JSONISH = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=10)),
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=30,
)


@GENERATED
@given(value=JSONISH)
def test_any_yaml_value_as_a_document_never_makes_the_loader_raise(value: Any) -> None:
    result = load_text(yaml.safe_dump(value), "specs.yaml")
    _check_well_formed(result)
    assert not (result.specs.node_groups or result.specs.producers or result.specs.autoscalers)


@GENERATED
@given(text=st.text(max_size=300))
def test_any_text_never_makes_the_loader_raise(text: str) -> None:
    _check_well_formed(load_text(text, "specs.yaml"))


# --------------------------------------------------------------------------- hand-written


def _edit(document: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    edited = copy.deepcopy(document)
    parts = parse_path(path)
    _get(edited, parts[:-1])[parts[-1]] = value
    return edited


BIG = 10**400


@pytest.mark.parametrize(
    ("documents", "path", "message"),
    [
        ([_edit(AUTOSCALER, "spec.maxReplicas", "ten")], "spec.maxReplicas", "valid integer"),
        ([_edit(AUTOSCALER, "spec.minReplicas", [1])], "spec.minReplicas", "valid integer"),
        ([_edit(AUTOSCALER, "spec.metrics", {"a": 1})], "spec.metrics", "should be a list"),
        ([_edit(NODE_GROUP, "spec", "Simulated")], "spec", "should be a mapping"),
        ([_edit(AUTOSCALER, "spec.maxReplicas", BIG)], "spec.maxReplicas", "less than or equal"),
        (
            [_edit(AUTOSCALER, "spec.metrics[0].target.averageValue", BIG)],
            "spec.metrics[0].target.averageValue",
            "finite",
        ),
        (
            [_edit(AUTOSCALER, "spec.metrics[0].target.averageValue", float("inf"))],
            "spec.metrics[0].target.averageValue",
            "finite",
        ),
        (
            [_edit(AUTOSCALER, "spec.metrics[0].target.averageValue", float("nan"))],
            "spec.metrics[0].target.averageValue",
            "finite",
        ),
        ([_edit(SCHEDULE, "spec.intervalSeconds", 1e308)], "spec.intervalSeconds", "less than"),
        ([_edit(AUTOSCALER, "spec.maxReplica", 10)], "spec.maxReplica", "unknown field"),
        (
            [_edit(AUTOSCALER, "spec.behavior.scaleDown.window", 10)],
            "spec.behavior.scaleDown.window",
            "unknown field",
        ),
        (
            [_edit(SCHEDULE, "spec.schedule.behaviors[0].start", "0 25 * * *")],
            "spec.schedule.behaviors[0].start",
            "not a valid cron expression",
        ),
        (
            [_edit(SCHEDULE, "spec.schedule.behaviors[0].end", "every day")],
            "spec.schedule.behaviors[0].end",
            "cron expression",
        ),
        (
            [_edit(SCHEDULE, "spec.schedule.timezone", "Mars/Olympus_Mons")],
            "spec.schedule.timezone",
            "IANA",
        ),
        (
            [_edit(SCHEDULE, "spec.schedule.timezone", "../../etc/passwd")],
            "spec.schedule.timezone",
            "IANA",
        ),
        (
            [SCHEDULE, CLOUDWATCH, _edit(AUTOSCALER, "spec.scaleTargetRef.name", "gone")],
            "spec.scaleTargetRef.name",
            "no valid ScalableNodeGroup named 'gone'",
        ),
        (
            [_edit(AUTOSCALER, "spec.metrics[0].producer.name", "gone")],
            "spec.metrics[0].producer.name",
            "no valid MetricsProducer named 'gone'",
        ),
        ([NODE_GROUP], "metadata.name", "duplicate name"),
        (
            [_edit(NODE_GROUP, "metadata.name", "Workers_2")],
            "metadata.name",
            "lowercase DNS subdomain",
        ),
        (
            [_edit(AUTOSCALER, "spec.algorithm", {"type": "PID", "pid": {"ki": 0}})],
            "spec.algorithm.pid",
            "ki must be greater than 0",
        ),
    ],
    ids=[
        "string for an integer",
        "list for an integer",
        "mapping for a list",
        "string for a mapping",
        "huge integer",
        "huge integer quantity",
        "infinite quantity",
        "NaN quantity",
        "huge interval",
        "unknown field",
        "unknown nested field",
        "bad cron minute",
        "cron in words",
        "unknown timezone",
        "timezone path",
        "dangling node group",
        "dangling producer",
        "duplicate names",
        "invalid name",
        "contradicting gains",
    ],
)
def test_a_malformed_spec_is_rejected_with_its_field_path(
    documents: list[dict[str, Any]], path: str, message: str
) -> None:
    result = _load([NODE_GROUP, SCHEDULE, CLOUDWATCH, *documents])
    matching = [i for i in result.issues if i.path == path and message in i.message]
    assert matching, result.issues
    assert all(i.line > 0 for i in matching)


def _nested(depth: int) -> str:
    return "apiVersion: autoscaler.dev/v1alpha1\nkind: ScalableNodeGroup\nspec: " + (
        "[" * depth + "]" * depth
    )


LAUGHS = "\n".join(
    ["apiVersion: autoscaler.dev/v1alpha1", "kind: ScalableNodeGroup", "a0: &a0 [x, x, x, x]"]
    + [f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}]" for i in range(1, 12)]
)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (_nested(MAX_DEPTH + 10), f"nested more than {MAX_DEPTH} levels deep"),
        (_nested(1000), f"nested more than {MAX_DEPTH} levels deep"),
        (LAUGHS, "document too large"),
        ("kind: [unclosed", "invalid YAML"),
        ("a: 1\na: 2\n", "duplicate key"),
        ("a: !!python/object:os.system ls\n", "unsupported YAML tag"),
        ("- just\n- a list\n", "a document must be a mapping"),
        ("a: \x00\n", "invalid YAML"),
    ],
    ids=[
        "nested too deep",
        "nested far too deep",
        "alias bomb",
        "syntax error",
        "duplicate key",
        "python tag",
        "a list",
        "NUL character",
    ],
)
def test_malformed_yaml_is_rejected_quickly_with_its_line(text: str, message: str) -> None:
    started = time.perf_counter()
    result = load_text(text, "specs.yaml")
    assert time.perf_counter() - started < 2
    _check_well_formed(result)
    matching = [i for i in result.issues if message in i.message]
    assert matching, result.issues
    assert all(i.line >= 1 for i in matching)


def test_a_10_mb_file_is_refused_before_it_is_read(tmp_path: Path) -> None:
    huge = tmp_path / "huge.yaml"
    huge.write_text("# padding\n" * 1_000_000)  # 10 MB of comments
    assert huge.stat().st_size > MAX_FILE_BYTES
    good = tmp_path / "good.yaml"
    good.write_text(_dump([NODE_GROUP]))
    started = time.perf_counter()
    result = load_paths([huge, good])
    elapsed = time.perf_counter() - started
    assert elapsed < 0.5, elapsed  # parsing it would take several seconds
    assert [(i.file, i.line, i.path) for i in result.issues] == [(str(huge), 0, "")]
    assert result.issues[0].message.startswith("file too large: 10000000 bytes")
    assert list(result.specs.node_groups) == ["default/workers"]  # the other file still loads


def test_a_binary_file_is_rejected_as_not_utf8(tmp_path: Path) -> None:
    binary = tmp_path / "blob.yaml"
    binary.write_bytes(bytes(range(256)) * 10)
    result = load_paths([binary])
    assert [(i.line, i.path) for i in result.issues] == [(0, "")]
    assert "not UTF-8" in result.issues[0].message
