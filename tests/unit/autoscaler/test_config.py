"""Loading spec files: validation issues as ``file:line: field.path: message``."""

from __future__ import annotations

import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from autoscaler import registry
from autoscaler.config import (
    LoadResult,
    SpecIssue,
    _field_path,
    format_path,
    load_paths,
    load_text,
    parse_path,
)

NODE_GROUP = """\
apiVersion: autoscaler.dev/v1alpha1
kind: ScalableNodeGroup
metadata:
  name: workers
spec:
  type: Simulated
  id: workers
"""

PRODUCER = """\
apiVersion: autoscaler.dev/v1alpha1
kind: MetricsProducer
metadata:
  name: office-hours
spec:
  schedule:
    timezone: Europe/Berlin
    defaultReplicas: 2
    behaviors:
      - start: "0 9 * * 1-5"
        end: "0 17 * * 1-5"
        replicas: 6
"""

AUTOSCALER = """\
apiVersion: autoscaler.dev/v1alpha1
kind: HorizontalAutoscaler
metadata:
  name: workers
spec:
  scaleTargetRef:
    name: workers
  maxReplicas: 10
  metrics:
    - producer:
        name: office-hours
      target:
        type: AverageValue
        averageValue: 1
"""

RESERVED_CAPACITY_PRODUCER = """\
apiVersion: autoscaler.dev/v1alpha1
kind: MetricsProducer
metadata:
  name: reserved
spec:
  reservedCapacity:
    nodeSelector: {}
"""


def docs(*documents: str) -> str:
    """Join YAML documents into one multi-document text."""
    return "---\n".join(textwrap.dedent(document) for document in documents)


def line_of(text: str, needle: str, occurrence: int = 1) -> int:
    """The 1-based line on which ``needle`` occurs for the ``occurrence``-th time."""
    found = [number for number, line in enumerate(text.splitlines(), 1) if needle in line]
    return found[occurrence - 1]


def issues_of(result: LoadResult) -> list[tuple[int, str, str]]:
    return [(issue.line, issue.path, issue.message) for issue in result.issues]


# --- valid input -------------------------------------------------------------------------------


def test_a_valid_multi_document_file_loads_all_three_kinds() -> None:
    result = load_text(docs(NODE_GROUP, PRODUCER, AUTOSCALER), "specs/a.yaml")

    assert result.ok, result.issues
    assert list(result.specs.node_groups) == ["default/workers"]
    assert list(result.specs.producers) == ["default/office-hours"]
    assert list(result.specs.autoscalers) == ["default/workers"]
    autoscaler = result.specs.autoscalers["default/workers"]
    assert autoscaler.spec.max_replicas == 10
    assert autoscaler.spec.metrics[0].target.average_value == 1


def test_empty_documents_and_comments_are_skipped() -> None:
    text = "# nothing yet\n---\n---\n" + docs(NODE_GROUP) + "---\n# trailing comment\n"

    result = load_text(text)

    assert result.ok, result.issues
    assert list(result.specs.node_groups) == ["default/workers"]


def test_aliases_and_merge_keys_work_normally() -> None:
    text = docs(
        NODE_GROUP,
        """\
        apiVersion: autoscaler.dev/v1alpha1
        kind: MetricsProducer
        metadata:
          name: office-hours
        spec:
          schedule:
            defaultReplicas: 2
            behaviors:
              - &weekday
                start: "0 9 * * 1-5"
                end: "0 17 * * 1-5"
                replicas: 6
              - <<: *weekday
                replicas: 3
        """,
    )

    result = load_text(text)

    assert result.ok, result.issues
    schedule = result.specs.producers["default/office-hours"].spec.schedule
    assert schedule is not None
    assert [(b.start, b.replicas) for b in schedule.behaviors] == [
        ("0 9 * * 1-5", 6),
        ("0 9 * * 1-5", 3),
    ]


def test_unquoted_dates_stay_strings_as_in_kubernetes() -> None:
    text = docs(NODE_GROUP.replace("id: workers", "id: 2026-01-01"))

    result = load_text(text)

    assert result.ok, result.issues
    assert result.specs.node_groups["default/workers"].spec.id == "2026-01-01"


# --- errors in one document --------------------------------------------------------------------


def test_an_unknown_field_and_a_negative_max_replicas_are_both_reported_with_their_lines() -> None:
    text = docs(
        NODE_GROUP,
        PRODUCER,
        AUTOSCALER.replace("maxReplicas: 10", "maxReplicas: -1\n  colour: blue"),
    )

    result = load_text(text, "specs/a.yaml")

    assert issues_of(result) == [
        (
            line_of(text, "maxReplicas"),
            "spec.maxReplicas",
            "Input should be greater than or equal to 1",
        ),
        (line_of(text, "colour"), "spec.colour", "unknown field"),
    ]
    assert str(result.issues[0]) == (
        f"specs/a.yaml:{line_of(text, 'maxReplicas')}: spec.maxReplicas: "
        "Input should be greater than or equal to 1"
    )
    assert result.specs.autoscalers == {}


@pytest.mark.parametrize(
    ("old", "new", "parent", "path"),
    [
        ("  maxReplicas: 10\n", "", "spec:", "spec.maxReplicas"),
        ("  name: workers\nspec:", "  namespace: a\nspec:", "metadata:", "metadata.name"),
        ("        type: AverageValue\n", "", "      target:", "spec.metrics[0].target.type"),
    ],
    ids=["maxReplicas", "metadata.name", "nested in a list"],
)
def test_a_missing_required_field_is_reported_at_its_parents_line(
    old: str, new: str, parent: str, path: str
) -> None:
    text = docs(AUTOSCALER.replace(old, new))

    result = load_text(text)

    assert issues_of(result) == [(line_of(text, parent), path, "required field is missing")]


def test_a_missing_spec_is_reported_at_the_document_line() -> None:
    text = "# a comment\n" + docs("apiVersion: autoscaler.dev/v1alpha1\nkind: ScalableNodeGroup\n")

    result = load_text(text)

    assert issues_of(result) == [
        (2, "metadata", "required field is missing"),
        (2, "spec", "required field is missing"),
    ]


@pytest.mark.parametrize(
    ("old", "new", "path", "message"),
    [
        (
            "apiVersion: autoscaler.dev/v1alpha1",
            "apiVersion: autoscaling/v2",
            "apiVersion",
            "must be autoscaler.dev/v1alpha1, not 'autoscaling/v2'",
        ),
        (
            "apiVersion: autoscaler.dev/v1alpha1",
            "",
            "apiVersion",
            "required field is missing (use autoscaler.dev/v1alpha1)",
        ),
        (
            "kind: ScalableNodeGroup",
            "kind: NodeGroup",
            "kind",
            "must be one of ScalableNodeGroup, MetricsProducer, HorizontalAutoscaler, "
            "not 'NodeGroup'",
        ),
        (
            "kind: ScalableNodeGroup",
            "kind: [ScalableNodeGroup]",
            "kind",
            "must be one of ScalableNodeGroup, MetricsProducer, HorizontalAutoscaler, "
            "not ['ScalableNodeGroup']",
        ),
    ],
    ids=["wrong apiVersion", "missing apiVersion", "unknown kind", "kind not a string"],
)
def test_a_wrong_api_version_or_kind_is_reported_on_that_field(
    old: str, new: str, path: str, message: str
) -> None:
    text = docs(NODE_GROUP.replace(old, new))

    result = load_text(text)

    line = line_of(text, new) if new else line_of(text, "kind:")  # the document's first line
    assert issues_of(result) == [(line, path, message)]
    assert result.specs.node_groups == {}


def test_a_document_that_is_not_a_mapping_is_reported() -> None:
    text = docs(NODE_GROUP, "- just\n- a list\n")

    result = load_text(text)

    assert issues_of(result) == [
        (
            line_of(text, "- just"),
            "",
            "a document must be a mapping with apiVersion, kind, metadata and spec, not a list",
        )
    ]
    assert list(result.specs.node_groups) == ["default/workers"]


def test_a_yaml_syntax_error_is_reported_with_its_line_and_earlier_documents_are_kept() -> None:
    broken = NODE_GROUP.replace("name: workers", "name: other").replace(
        "  id: workers", "  id: [workers"
    )
    text = docs(NODE_GROUP, broken)

    result = load_text(text, "specs/a.yaml")

    assert len(result.issues) == 1
    issue = result.issues[0]
    assert (issue.file, issue.path) == ("specs/a.yaml", "")
    assert issue.line == len(text.splitlines()) + 1  # the stream ended inside the list
    assert issue.message.startswith("invalid YAML: expected ',' or ']'")
    assert str(issue).startswith(f"specs/a.yaml:{issue.line}: invalid YAML:")
    assert list(result.specs.node_groups) == ["default/workers"]


def test_a_yaml_syntax_error_in_the_middle_of_a_document_names_its_line() -> None:
    text = docs(NODE_GROUP.replace("  type: Simulated", "  type: Simulated\n  oops: a: b"))

    result = load_text(text)

    assert [(issue.line, issue.path) for issue in result.issues] == [(line_of(text, "oops"), "")]
    assert "mapping values are not allowed here" in result.issues[0].message


def test_a_duplicate_key_is_reported_at_its_second_occurrence() -> None:
    text = docs(NODE_GROUP.replace("  id: workers", "  id: workers\n  id: again"))

    result = load_text(text)

    assert issues_of(result) == [(line_of(text, "id: again"), "spec.id", "duplicate key")]


@pytest.mark.parametrize(
    ("old", "new", "path", "message"),
    [
        (
            'start: "0 9 * * 1-5"',
            'start: "0 9 * *"',
            "spec.schedule.behaviors[0].start",
            "'0 9 * *' is not a 5-field cron expression "
            "(minute hour day-of-month month day-of-week)",
        ),
        (
            'start: "0 9 * * 1-5"',
            'start: "0 25 * * 1-5"',
            "spec.schedule.behaviors[0].start",
            "'0 25 * * 1-5' is not a valid cron expression",
        ),
        (
            "timezone: Europe/Berlin",
            "timezone: Mars/Olympus",
            "spec.schedule.timezone",
            "'Mars/Olympus' is not an IANA time zone (e.g. UTC, Europe/Berlin)",
        ),
    ],
    ids=["cron with four fields", "cron hour out of range", "unknown timezone"],
)
def test_an_invalid_cron_or_timezone_in_a_schedule_is_reported(
    old: str, new: str, path: str, message: str
) -> None:
    text = docs(PRODUCER.replace(old, new))

    result = load_text(text)

    assert issues_of(result) == [(line_of(text, new), path, message)]


@pytest.mark.parametrize(
    ("old", "new", "needle", "path", "message"),
    [
        (
            AUTOSCALER[AUTOSCALER.index("  metrics:") :],
            "  metrics: 3\n",
            "metrics: 3",
            "spec.metrics",
            "Input should be a list, not an integer",
        ),
        (
            "      target:\n        type: AverageValue\n        averageValue: 1\n",
            "      target:\n",
            "target:",
            "spec.metrics[0].target",
            "Input should be a mapping, not null",
        ),
        (
            "averageValue: 1",
            "averageValue: lots",
            "averageValue: lots",
            "spec.metrics[0].target.averageValue",
            "'lots' is not a quantity (examples: 2, '500m', '16Gi')",
        ),
        (
            "name: workers\nspec",
            "name: Workers\nspec",
            "name: Workers",
            "metadata.name",
            "must be a lowercase DNS subdomain: letters, digits, '-' and '.', "
            "starting and ending with a letter or digit, at most 253 characters",
        ),
    ],
    ids=["list expected", "mapping expected", "bad quantity", "bad name"],
)
def test_pydantic_messages_are_worded_for_yaml(
    old: str, new: str, needle: str, path: str, message: str
) -> None:
    text = docs(NODE_GROUP, PRODUCER, AUTOSCALER.replace(old, new, 1))

    result = load_text(text)

    assert (line_of(text, needle), path, message) in issues_of(result)


def test_keys_that_are_not_plain_words_are_quoted_in_paths() -> None:
    text = docs(
        """\
        apiVersion: autoscaler.dev/v1alpha1
        kind: MetricsProducer
        metadata:
          name: reserved
        spec:
          reservedCapacity:
            nodeSelector:
              kubernetes.io/os: 1
        """
    )

    result = load_text(text)

    assert issues_of(result) == [
        (
            line_of(text, "kubernetes.io/os"),
            'spec.reservedCapacity.nodeSelector["kubernetes.io/os"]',
            "Input should be a valid string",
        )
    ]


def test_paths_format_and_parse_back() -> None:
    path = ("spec", "nodeSelector", "kubernetes.io/os", "metrics", 0, "target")

    text = format_path(path)

    assert text == 'spec.nodeSelector["kubernetes.io/os"].metrics[0].target'
    assert parse_path("spec.metrics[0].producer.name") == ("spec", "metrics", 0, "producer", "name")
    assert parse_path("spec.type") == ("spec", "type")
    assert parse_path("") == ()


@pytest.mark.parametrize(
    ("loc", "path"),
    [
        (("spec", "replicas", "int"), ("spec", "replicas")),
        (("spec", "labels", "a", "[key]"), ("spec", "labels", "a")),
        (("spec", "Options", "size"), ("spec", "size")),
        (("spec", "missing"), ("spec", "missing")),
    ],
    ids=["union member", "dict key marker", "tagged union", "missing field"],
)
def test_internal_steps_of_pydantic_locations_are_left_out(
    loc: tuple[str | int, ...], path: tuple[str | int, ...]
) -> None:
    data = {"spec": {"replicas": "x", "labels": {"a": 1}}}

    assert _field_path(loc, data) == path


def test_an_issue_without_a_path_prints_file_line_and_message() -> None:
    assert str(SpecIssue("a.yaml", 3, "", "invalid YAML: oops")) == "a.yaml:3: invalid YAML: oops"
    assert (
        str(SpecIssue("a.yaml", 3, "spec.id", "unknown field"))
        == "a.yaml:3: spec.id: unknown field"
    )


# --- across documents --------------------------------------------------------------------------


def test_errors_in_one_document_do_not_drop_the_valid_ones() -> None:
    text = docs(
        NODE_GROUP,
        NODE_GROUP.replace("name: workers", "name: broken").replace("Simulated", "Imaginary"),
        PRODUCER,
        AUTOSCALER,
    )

    result = load_text(text)

    assert [(issue.line, issue.path) for issue in result.issues] == [
        (line_of(text, "Imaginary"), "spec.type")
    ]
    assert list(result.specs.node_groups) == ["default/workers"]
    assert list(result.specs.producers) == ["default/office-hours"]
    assert list(result.specs.autoscalers) == ["default/workers"]


def test_a_duplicate_name_is_reported_at_the_second_definition_and_the_first_is_kept() -> None:
    second = NODE_GROUP.replace("id: workers", "id: second")
    other_namespace = NODE_GROUP.replace("name: workers", "name: workers\n  namespace: team-b")
    text = docs(NODE_GROUP, second, other_namespace)

    result = load_text(text, "a.yaml")

    assert issues_of(result) == [
        (
            line_of(text, "name: workers", 2),
            "metadata.name",
            "duplicate name: ScalableNodeGroup default/workers is already defined at a.yaml:4",
        )
    ]
    assert result.specs.node_groups["default/workers"].spec.id == "workers"
    assert "team-b/workers" in result.specs.node_groups


def test_the_same_name_in_different_kinds_is_fine() -> None:
    result = load_text(docs(NODE_GROUP, PRODUCER.replace("office-hours", "workers")))

    assert result.ok, result.issues


@pytest.mark.parametrize(
    ("old", "new", "path", "message"),
    [
        (
            "    name: workers",
            "    name: elsewhere",
            "spec.scaleTargetRef.name",
            "no valid ScalableNodeGroup named 'elsewhere' in namespace 'default'",
        ),
        (
            "        name: office-hours",
            "        name: nine-to-five",
            "spec.metrics[0].producer.name",
            "no valid MetricsProducer named 'nine-to-five' in namespace 'default'",
        ),
    ],
    ids=["scaleTargetRef", "producer"],
)
def test_a_dangling_reference_is_reported_at_the_referring_field(
    old: str, new: str, path: str, message: str
) -> None:
    text = docs(NODE_GROUP, PRODUCER, AUTOSCALER.replace(old, new))

    result = load_text(text)

    assert issues_of(result) == [(line_of(text, new), path, message)]
    assert result.specs.autoscalers == {}
    assert list(result.specs.node_groups) == ["default/workers"]


def test_activation_sources_are_checked_like_metrics_and_reported_at_their_field() -> None:
    activation = (
        "  minReplicas: 0\n"
        "  activation:\n"
        "    - producer:\n"
        "        name: office-hours\n"
        "      above: 3\n"
        "    - producer:\n"
        "        name: nine-to-five\n"
        "      above: 0\n"
    )
    text = docs(NODE_GROUP, PRODUCER, AUTOSCALER + activation)

    result = load_text(text)

    assert issues_of(result) == [
        (
            line_of(text, "name: nine-to-five"),
            "spec.activation[1].producer.name",
            "no valid MetricsProducer named 'nine-to-five' in namespace 'default'",
        )
    ]


def test_activation_with_a_minimum_above_zero_is_rejected_naming_both_fields() -> None:
    activation = (
        "  minReplicas: 2\n  activation:\n    - producer: {name: office-hours}\n      above: 1\n"
    )
    result = load_text(docs(NODE_GROUP, PRODUCER, AUTOSCALER + activation))

    assert [(path, message) for _, path, message in issues_of(result)] == [
        ("spec", "activation needs minReplicas 0 (it only decides when to leave zero replicas)")
    ]


def test_references_do_not_cross_namespaces() -> None:
    autoscaler = AUTOSCALER.replace(
        "  name: workers\nspec", "  name: workers\n  namespace: b\nspec"
    )
    text = docs(NODE_GROUP, PRODUCER, autoscaler)

    result = load_text(text)

    assert [issue.path for issue in result.issues] == [
        "spec.scaleTargetRef.name",
        "spec.metrics[0].producer.name",
    ]


def test_a_rejected_node_group_leaves_its_autoscaler_dangling() -> None:
    text = docs(NODE_GROUP.replace("id: workers", "id: ''"), PRODUCER, AUTOSCALER)

    result = load_text(text)

    assert [issue.path for issue in result.issues] == ["spec.id", "spec.scaleTargetRef.name"]
    assert result.specs.autoscalers == {}


def test_a_pending_capacity_producer_must_name_a_node_group() -> None:
    producer = """\
    apiVersion: autoscaler.dev/v1alpha1
    kind: MetricsProducer
    metadata:
      name: pending
    spec:
      pendingCapacity:
        nodeGroup: {group}
        nodeSelector: {{pool: workers}}
    """
    good = textwrap.dedent(producer.format(group="workers"))
    bad = textwrap.dedent(producer.format(group="gpu")).replace("name: pending", "name: other")
    text = docs(NODE_GROUP, good, bad)

    result = load_text(text)

    assert issues_of(result) == [
        (
            line_of(text, "nodeGroup: gpu"),
            "spec.pendingCapacity.nodeGroup",
            "no valid ScalableNodeGroup named 'gpu' in namespace 'default'",
        )
    ]
    assert list(result.specs.producers) == ["default/pending"]


def test_two_autoscalers_must_not_target_the_same_node_group() -> None:
    second = AUTOSCALER.replace("  name: workers\nspec", "  name: again\nspec")
    text = docs(NODE_GROUP, PRODUCER, AUTOSCALER, second)

    result = load_text(text, "a.yaml")

    first_name_line = line_of(text, "name: workers", 2)
    assert issues_of(result) == [
        (
            line_of(text, "    name: workers", 2),
            "spec.scaleTargetRef.name",
            f"ScalableNodeGroup default/workers is already scaled by default/workers "
            f"(a.yaml:{first_name_line})",
        )
    ]
    assert list(result.specs.autoscalers) == ["default/workers"]


@pytest.mark.parametrize(
    ("documents", "needle", "path", "message"),
    [
        (
            [RESERVED_CAPACITY_PRODUCER],
            "reservedCapacity:",
            "spec.reservedCapacity",
            "producer source reservedCapacity is not available yet in this version",
        ),
    ],
    ids=["reserved capacity"],
)
def test_types_not_available_yet_are_reported_and_left_out(
    documents: list[str], needle: str, path: str, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(registry.PRODUCERS, "reservedCapacity", None)  # a build without it
    text = docs(*documents)

    result = load_text(text)

    assert issues_of(result) == [(line_of(text, needle), path, message)]
    specs = result.specs
    kept = len(specs.node_groups) + len(specs.producers) + len(specs.autoscalers)
    assert kept == len(documents) - 1


# --- files and folders -------------------------------------------------------------------------


def test_a_folder_with_several_files_is_loaded_recursively_in_sorted_order(
    tmp_path: Path,
) -> None:
    (tmp_path / "nested").mkdir()
    (tmp_path / "..data").mkdir()  # how a mounted ConfigMap looks: hidden copies
    (tmp_path / "b-groups.yaml").write_text(NODE_GROUP)
    (tmp_path / "nested" / "a-producers.yml").write_text(PRODUCER)
    (tmp_path / "c-autoscalers.yaml").write_text(AUTOSCALER.replace("maxReplicas: 10", "x: 1"))
    (tmp_path / "..data" / "b-groups.yaml").write_text(NODE_GROUP)
    (tmp_path / "notes.txt").write_text("not yaml")

    result = load_paths([tmp_path])

    autoscalers = str(tmp_path / "c-autoscalers.yaml")
    assert [(issue.file, issue.path) for issue in result.issues] == [
        (autoscalers, "spec.maxReplicas"),  # missing: reported at the line of spec
        (autoscalers, "spec.x"),
    ]
    assert list(result.specs.node_groups) == ["default/workers"]
    assert list(result.specs.producers) == ["default/office-hours"]


def test_references_resolve_across_files(tmp_path: Path) -> None:
    for name, text in [("1.yaml", NODE_GROUP), ("2.yaml", PRODUCER), ("3.yaml", AUTOSCALER)]:
        (tmp_path / name).write_text(text)

    result = load_paths([tmp_path / "3.yaml", tmp_path / "1.yaml", str(tmp_path / "2.yaml")])

    assert result.ok, result.issues
    assert list(result.specs.autoscalers) == ["default/workers"]


def test_a_file_named_twice_is_read_once(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(NODE_GROUP)

    result = load_paths([tmp_path, tmp_path / "a.yaml"])

    assert result.ok, result.issues


def missing_file(root: Path) -> Path:
    return root / "missing.yaml"


def empty_folder(root: Path) -> Path:
    (root / "empty").mkdir()
    (root / "empty" / "README.md").write_text("specs go here")
    return root / "empty"


def latin1_file(root: Path) -> Path:
    (root / "latin1.yaml").write_bytes(b"name: caf\xe9\n")
    return root / "latin1.yaml"


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (missing_file, "no such file or folder"),
        (empty_folder, "no .yaml or .yml files in this folder"),
        (latin1_file, "not UTF-8 text: invalid continuation byte"),
    ],
    ids=["missing file", "folder without YAML", "not UTF-8"],
)
def test_unreadable_input_is_reported_at_line_zero(
    make: Callable[[Path], Path], message: str, tmp_path: Path
) -> None:
    path = make(tmp_path)

    result = load_paths([path])

    assert [(issue.file, issue.line, issue.path, issue.message) for issue in result.issues] == [
        (str(path), 0, "", message)
    ]


def test_issues_are_ordered_by_file_then_line(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(AUTOSCALER.replace("    name: workers", "    name: gone"))
    (tmp_path / "b.yaml").write_text(docs(PRODUCER, NODE_GROUP.replace("id: workers", "id: ''")))

    result = load_paths([tmp_path])

    assert [(Path(issue.file).name, issue.path) for issue in result.issues] == [
        ("a.yaml", "spec.scaleTargetRef.name"),
        ("b.yaml", "spec.id"),
    ]


# --- hostile input -----------------------------------------------------------------------------


def test_an_alias_bomb_is_refused_quickly() -> None:
    lines = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for previous, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{previous}"] * 9) + "]")
    text = "\n".join(lines) + "\n"

    started = time.perf_counter()
    result = load_text(text)
    elapsed = time.perf_counter() - started

    assert issues_of(result) == [
        (1, "", "document too large: more than 100000 YAML nodes once aliases are expanded")
    ]
    assert elapsed < 5


@pytest.mark.parametrize(
    "text",
    ["a: &a [*a]\n", "a: &a {<<: *a}\n"],
    ids=["recursive list", "recursive merge"],
)
def test_recursive_aliases_are_refused(text: str) -> None:
    result = load_text(text)

    assert issues_of(result) == [(1, "", "document nested more than 64 levels deep")]


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("[" * 100_000 + "]" * 100_000, 1),
        ("a:\n" + "".join("  " * depth + "b:\n" for depth in range(1, 100)), 64),
    ],
    ids=["flow", "block"],
)
def test_a_deeply_nested_document_is_refused_quickly(text: str, line: int) -> None:
    started = time.perf_counter()
    result = load_text(text)
    elapsed = time.perf_counter() - started

    assert issues_of(result) == [(line, "", "invalid YAML: nested more than 64 levels deep")]
    assert elapsed < 5


def test_unknown_yaml_tags_are_reported() -> None:
    text = docs(NODE_GROUP.replace("id: workers", "id: !vault workers"))

    result = load_text(text)

    assert issues_of(result) == [
        (line_of(text, "!vault"), "spec.id", "unsupported YAML tag !vault")
    ]


@pytest.mark.parametrize(
    ("document", "path", "needle"),
    [
        (
            NODE_GROUP.replace("type: Simulated", "type: AWSEC2AutoScalingGroup").replace(
                "id: ", "id: arn:aws:ec2:nope-", 1
            ),
            "spec.id",
            "Auto Scaling group ARN",
        ),
        (
            NODE_GROUP.replace("type: Simulated", "type: AWSEKSNodeGroup"),
            "spec.id",
            "CLUSTER/NODEGROUP",
        ),
    ],
    ids=["malformed ASG ARN", "EKS id without a cluster"],
)
def test_backend_specific_ids_are_checked_without_calling_aws(
    document: str, path: str, needle: str
) -> None:
    result = load_text(docs(document))

    assert [issue.path for issue in result.issues] == [path]
    assert needle in result.issues[0].message
    assert not result.specs.node_groups
