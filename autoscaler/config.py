"""Loading and validating spec files: multi-document YAML in, validated resources and issues out.

One load runs these steps:

1. **Read** every path. A folder is searched recursively for ``*.yaml`` and ``*.yml`` files in
   sorted order; entries whose name starts with ``.`` are skipped, so a ConfigMap mounted as a
   volume (with its ``..data`` and ``..2024_…`` links) is read once, not twice.
2. **Parse** each file with PyYAML's safe loader, one ``---`` document at a time. Documents are
   *composed* to a node tree and turned into plain Python values here (:class:`_Builder`), which
   records the 1-based line of every field path: the line of the *key* for a mapping entry, the
   line of the item for a sequence item.
3. **Validate** each document: it must be a mapping with ``apiVersion: autoscaler.dev/v1alpha1``
   and a known ``kind``; then the pydantic model of that kind checks the rest. Every pydantic
   error becomes one :class:`SpecIssue` at the line of its field, or of the nearest parent that
   exists when the field is missing.
4. **Cross-check** the valid documents (:func:`_cross_check`): names unique per kind and
   namespace, references resolve within the namespace, one autoscaler per node group, and every
   type used is available in this build.

A document with any issue is left out of the result; every other document is kept, so the
service keeps running everything that is still valid.

Objects read from a cluster (already parsed) go through steps 3 and 4 with
:func:`load_objects`; their issues name the object instead of a file and have line 0.

Decisions worth knowing when maintaining this module:

- An issue about a whole file or document (unreadable file, YAML syntax error, a document that
  is not a mapping, a document too large) has the empty path ``""``, and ``str(issue)`` then
  reads ``file:line: message``. A file that cannot be read has line 0.
- Mapping keys are always strings: the key's text is used as written (``on:`` stays ``"on"``).
  YAML timestamps stay strings, as they do when Kubernetes reads the same YAML; the models parse
  the date-time fields themselves.
- Duplicate keys in one mapping are an error (as in ``kubectl``), merge keys (``<<``) work.
- Aliases are expanded, but a document may expand to at most :data:`MAX_NODES` YAML nodes and
  :data:`MAX_DEPTH` levels, so an "alias bomb" fails fast instead of eating memory. A file larger
  than :data:`MAX_FILE_BYTES` is not read at all.
- Lines of values reached through an alias are those of the anchored original.
"""

from __future__ import annotations

import json
import re
import reprlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from pydantic_core import ErrorDetails
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from autoscaler.api import (
    GROUP_VERSION,
    KINDS,
    HorizontalAutoscaler,
    HorizontalAutoscalerSpec,
    MetricsProducer,
    Resource,
    ScalableNodeGroup,
    key_of,
)
from autoscaler.api.sharing import share
from autoscaler.errors import SpecError
from autoscaler.registry import validate_producer, validate_provider

#: Most YAML nodes one document may expand to (after aliases) before it is refused.
MAX_NODES = 100_000
#: Deepest nesting one document may have.
MAX_DEPTH = 64
#: Largest spec file read (about 10,000 autoscalers with their node groups); a larger file is
#: refused before it is read, so a runaway file cannot occupy the loader for minutes.
MAX_FILE_BYTES = 8 * 1024 * 1024

#: A field path as a tuple: ``("spec", "metrics", 0, "target")``.
FieldPath = tuple[str | int, ...]
#: A problem found in one document, before it is tied to a file and line.
Problem = tuple[FieldPath, str]

_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"
_MERGE_TAG = "tag:yaml.org,2002:merge"
_NULL_TAG = "tag:yaml.org,2002:null"
_TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"
_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
_PATH_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


@dataclass(frozen=True, slots=True)
class SpecIssue:
    """One problem in the specs, printed as ``file:line: field.path: message``."""

    file: str
    line: int
    path: str
    message: str

    def __str__(self) -> str:
        if not self.path:
            return f"{self.file}:{self.line}: {self.message}"
        return f"{self.file}:{self.line}: {self.path}: {self.message}"


@dataclass(frozen=True)
class SpecSet:
    """The valid resources of one load, each keyed by ``namespace/name``."""

    node_groups: dict[str, ScalableNodeGroup] = field(default_factory=dict)
    producers: dict[str, MetricsProducer] = field(default_factory=dict)
    autoscalers: dict[str, HorizontalAutoscaler] = field(default_factory=dict)


@dataclass(frozen=True)
class LoadResult:
    """The valid resources and every issue found, ordered by file and line."""

    specs: SpecSet
    issues: list[SpecIssue]

    @property
    def ok(self) -> bool:
        """True when nothing was wrong (every document was kept)."""
        return not self.issues


def load_paths(paths: Sequence[str | Path]) -> LoadResult:
    """Load spec files and folders (searched recursively for ``*.yaml`` / ``*.yml``)."""
    sources, issues = _read_paths(paths)
    return _load(sources, issues)


def load_text(text: str, filename: str = "<string>") -> LoadResult:
    """Load specs from YAML text; ``filename`` is only used in issues."""
    return _load([(filename, text)], [])


def load_objects(objects: Sequence[tuple[str, Mapping[str, Any]]]) -> LoadResult:
    """Validate parsed objects (custom resources read from a cluster) exactly as spec documents
    are validated, cross-document checks included. Each object comes with ``where``, the name
    its issues carry in place of a file (e.g. ``"HorizontalAutoscaler default/x"``); their line
    is 0. Issues keep the order of ``objects``."""
    candidates: list[_Candidate] = []
    issues: list[SpecIssue] = []
    for where, value in objects:
        candidate, problems = _validate_value(dict(value), _Document(where, {}))
        issues.extend(problems)
        if candidate is not None:
            candidates.append(candidate)
    specs, problems = _cross_check(candidates)
    order = {where: index for index, (where, _) in enumerate(objects)}
    found = list(dict.fromkeys([*issues, *problems]))
    found.sort(key=lambda issue: order.get(issue.file, len(order)))
    return LoadResult(specs=specs, issues=found)


# --- Reading files -----------------------------------------------------------------------------


def _read_paths(paths: Sequence[str | Path]) -> tuple[list[tuple[str, str]], list[SpecIssue]]:
    """Read every file named or found in a folder: ``(filename, text)`` pairs and read issues."""
    sources: list[tuple[str, str]] = []
    issues: list[SpecIssue] = []
    seen: set[Path] = set()
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            try:
                files = _yaml_files(path)
            except OSError as exc:
                issues.append(SpecIssue(str(path), 0, "", f"cannot read: {exc.strerror or exc}"))
                continue
            if not files:
                issues.append(SpecIssue(str(path), 0, "", "no .yaml or .yml files in this folder"))
        else:
            files = [path]
        for file in files:
            if file.resolve() in seen:
                continue
            seen.add(file.resolve())
            try:
                size = file.stat().st_size
                if size > MAX_FILE_BYTES:
                    message = f"file too large: {size} bytes (at most {MAX_FILE_BYTES})"
                    issues.append(SpecIssue(str(file), 0, "", message))
                    continue
                sources.append((str(file), file.read_text(encoding="utf-8-sig")))
            except FileNotFoundError:
                issues.append(SpecIssue(str(file), 0, "", "no such file or folder"))
            except UnicodeDecodeError as exc:
                issues.append(SpecIssue(str(file), 0, "", f"not UTF-8 text: {exc.reason}"))
            except OSError as exc:
                issues.append(SpecIssue(str(file), 0, "", f"cannot read: {exc.strerror or exc}"))
    return sources, issues


def _yaml_files(folder: Path) -> list[Path]:
    """The YAML files below ``folder``, sorted, skipping hidden files and folders."""
    return sorted(
        path
        for path in folder.rglob("*")
        if path.suffix in (".yaml", ".yml")
        and not any(part.startswith(".") for part in path.relative_to(folder).parts)
        and path.is_file()
    )


# --- Parsing one file --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Document:
    """Where one YAML document came from, and the line of each of its field paths."""

    file: str
    lines: Mapping[FieldPath, int]

    def line_of(self, path: FieldPath) -> int:
        """The line of ``path``, or of its nearest ancestor that exists."""
        for end in range(len(path), -1, -1):
            line = self.lines.get(path[:end])
            if line is not None:
                return line
        return 0

    def issue(self, path: FieldPath, message: str) -> SpecIssue:
        return SpecIssue(self.file, self.line_of(path), format_path(path), message)


@dataclass(frozen=True)
class _Candidate:
    """A document that passed schema validation, waiting for the cross-document checks."""

    document: _Document
    resource: Resource

    @property
    def kind(self) -> str:
        return self.resource.kind

    @property
    def key(self) -> str:
        return key_of(self.resource.metadata)

    @property
    def where(self) -> str:
        line = self.document.line_of(("metadata", "name"))
        return f"{self.document.file}:{line}" if line else self.document.file


def _load(sources: Iterable[tuple[str, str]], issues: list[SpecIssue]) -> LoadResult:
    """Parse and validate every source, cross-check the results, and order the issues."""
    order: dict[str, int] = {}
    candidates: list[_Candidate] = []
    for filename, text in sources:
        order.setdefault(filename, len(order))
        found, problems = _parse_text(text, filename)
        candidates.extend(found)
        issues.extend(problems)
    specs, problems = _cross_check(candidates)
    issues.extend(problems)
    for issue in issues:
        order.setdefault(issue.file, len(order))
    unique = list(dict.fromkeys(issues))
    unique.sort(key=lambda issue: (order[issue.file], issue.line))
    return LoadResult(specs=specs, issues=unique)


def _parse_text(text: str, filename: str) -> tuple[list[_Candidate], list[SpecIssue]]:
    """Validate each document of one file. A YAML syntax error ends the file there."""
    candidates: list[_Candidate] = []
    issues: list[SpecIssue] = []
    try:
        for root in yaml.compose_all(text, Loader=_Loader):
            if root is None or root.tag == _NULL_TAG:
                continue  # an empty document
            candidate, problems = _parse_document(root, filename)
            issues.extend(problems)
            if candidate is not None:
                candidates.append(candidate)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 0
        problem = exc.problem or exc.context or "cannot parse"
        issues.append(SpecIssue(filename, line, "", f"invalid YAML: {problem}"))
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        issues.append(SpecIssue(filename, line, "", f"invalid YAML: {exc.reason}"))
    except yaml.YAMLError as exc:
        issues.append(SpecIssue(filename, 0, "", f"invalid YAML: {exc}"))
    return candidates, issues


def _parse_document(root: Node, filename: str) -> tuple[_Candidate | None, list[SpecIssue]]:
    """Build, check and validate one document: a candidate, or the issues that reject it."""
    builder = _Builder()
    document = _Document(filename, builder.lines)
    builder.lines[()] = root.start_mark.line + 1
    try:
        value = builder.build(root, (), 0)
    except _DocumentTooLarge as exc:
        return None, [document.issue((), str(exc))]
    if builder.problems:
        return None, [SpecIssue(filename, *problem) for problem in builder.problems]
    if not isinstance(value, dict):
        message = (
            "a document must be a mapping with apiVersion, kind, metadata and spec, "
            f"not {_yaml_type(value)}"
        )
        return None, [document.issue((), message)]
    return _validate_value(value, document)


def _validate_value(
    value: dict[str, Any], document: _Document
) -> tuple[_Candidate | None, list[SpecIssue]]:
    """Check the header, then validate with the model of the kind (step 3 above)."""
    problems = _header_problems(value)
    if problems:
        return None, [document.issue(path, message) for path, message in problems]
    model = KINDS[value["kind"]]
    try:
        resource = model.model_validate(value)
    except ValidationError as exc:
        return None, [document.issue(*_describe(error, value)) for error in exc.errors()]
    return _Candidate(document, share(resource)), []


def _header_problems(value: dict[str, Any]) -> list[Problem]:
    """Check ``apiVersion`` and ``kind``, which decide which model validates the rest."""
    problems: list[Problem] = []
    kinds = ", ".join(KINDS)
    if "apiVersion" not in value:
        problems.append((("apiVersion",), f"required field is missing (use {GROUP_VERSION})"))
    elif value["apiVersion"] != GROUP_VERSION:
        got = reprlib.repr(value["apiVersion"])
        problems.append((("apiVersion",), f"must be {GROUP_VERSION}, not {got}"))
    kind = value.get("kind")
    if "kind" not in value:
        problems.append((("kind",), f"required field is missing (one of {kinds})"))
    elif not (isinstance(kind, str) and kind in KINDS):
        problems.append((("kind",), f"must be one of {kinds}, not {reprlib.repr(kind)}"))
    return problems


# --- From YAML nodes to values, with line numbers ----------------------------------------------


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing to compose documents nested deeper than :data:`MAX_DEPTH`.

    Stopping early matters: PyYAML's scanner slows down sharply with deep flow nesting
    (``[[[[…``), and would otherwise end in a ``RecursionError``.
    """

    _depth = 0

    def compose_node(self, parent: Node | None, index: int) -> Node | None:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
                message = f"nested more than {MAX_DEPTH} levels deep"
                raise yaml.composer.ComposerError(None, None, message, mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


class _DocumentTooLarge(Exception):
    """The document expands beyond :data:`MAX_NODES` nodes or :data:`MAX_DEPTH` levels."""


class _Builder:
    """Turns one composed YAML document into plain values, recording the line of each path.

    Scalars are constructed by PyYAML's ``SafeConstructor`` (ints, floats, bools, nulls), except
    timestamps, which stay strings. Problems that do not stop the walk (duplicate keys, unknown
    tags) are collected in :attr:`problems` as ``(line, path, message)``.
    """

    def __init__(self) -> None:
        self.lines: dict[FieldPath, int] = {}
        self.problems: list[tuple[int, str, str]] = []
        self._visited = 0
        self._constructor = SafeConstructor()

    def build(self, node: Node, path: FieldPath, depth: int) -> Any:
        self._visit(depth)
        if isinstance(node, MappingNode):
            if node.tag != _MAP_TAG:
                return self._unsupported_tag(node, path)
            result: dict[str, Any] = {}
            self._fill(result, node, path, depth)
            return result
        if isinstance(node, SequenceNode):
            if node.tag != _SEQ_TAG:
                return self._unsupported_tag(node, path)
            items: list[Any] = []
            for index, item in enumerate(node.value):
                self.lines[(*path, index)] = _line(item)
                items.append(self.build(item, (*path, index), depth + 1))
            return items
        if node.tag == _TIMESTAMP_TAG:
            return node.value
        try:
            return self._constructor.construct_object(node, deep=True)
        except ConstructorError:
            return self._unsupported_tag(node, path)

    def _fill(self, result: dict[str, Any], node: MappingNode, path: FieldPath, depth: int) -> None:
        """Add the entries of ``node`` to ``result``, then those of its merge keys (``<<``).

        Keys already in ``result`` win: they come from a mapping closer to the document, as
        YAML's merge rule says. A key written twice in the same mapping is a problem.
        """
        own: set[str] = set()
        merges: list[Node] = []
        for key_node, value_node in node.value:
            self._visit(depth)
            if key_node.tag == _MERGE_TAG:
                merges.append(value_node)
                continue
            if not isinstance(key_node, ScalarNode):
                self._problem(key_node, path, "mapping keys must be plain strings")
                continue
            key: str = key_node.value
            if key in own:
                self._problem(key_node, (*path, key), "duplicate key")
                continue
            own.add(key)
            if key in result:
                continue
            self.lines[(*path, key)] = _line(key_node)
            result[key] = self.build(value_node, (*path, key), depth + 1)
        for merge in merges:
            sources = merge.value if isinstance(merge, SequenceNode) else [merge]
            for source in sources:
                if isinstance(source, MappingNode):
                    self._fill(result, source, path, depth + 1)
                else:
                    message = "<< (merge) needs a mapping or a list of mappings"
                    self._problem(source, path, message)

    def _visit(self, depth: int) -> None:
        self._visited += 1
        if self._visited > MAX_NODES:
            raise _DocumentTooLarge(
                f"document too large: more than {MAX_NODES} YAML nodes once aliases are expanded"
            )
        if depth > MAX_DEPTH:
            raise _DocumentTooLarge(f"document nested more than {MAX_DEPTH} levels deep")

    def _unsupported_tag(self, node: Node, path: FieldPath) -> None:
        self._problem(node, path, f"unsupported YAML tag {node.tag}")

    def _problem(self, node: Node, path: FieldPath, message: str) -> None:
        self.problems.append((_line(node), format_path(path), message))


def _line(node: Node) -> int:
    return int(node.start_mark.line) + 1


# --- pydantic errors as issues -----------------------------------------------------------------


def _describe(error: ErrorDetails, value: dict[str, Any]) -> Problem:
    """The field path and a clear message for one pydantic error."""
    return _field_path(error["loc"], value), _message(error)


def _field_path(loc: tuple[str | int, ...], data: Any) -> FieldPath:
    """pydantic's ``loc`` without its internal steps (union members, ``[key]`` markers).

    The steps kept are those found in the input, plus a last one naming a missing field.
    """
    path: list[str | int] = []
    current = data
    for index, part in enumerate(loc):
        if isinstance(current, dict) and isinstance(part, str):
            if part in current:
                path.append(part)
                current = current[part]
            elif index == len(loc) - 1 and part != "[key]":
                path.append(part)  # a missing field
        elif isinstance(current, list) and isinstance(part, int) and 0 <= part < len(current):
            path.append(part)
            current = current[part]
    return tuple(path)


def _message(error: ErrorDetails) -> str:
    """pydantic's message, worded for someone editing YAML."""
    kind = error["type"]
    if kind == "extra_forbidden":
        return "unknown field"
    if kind == "missing":
        return "required field is missing"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"Input should be a mapping, not {_yaml_type(error['input'])}"
    if kind == "list_type":
        return f"Input should be a list, not {_yaml_type(error['input'])}"
    message = error["msg"]
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    return message


def _yaml_type(value: object) -> str:
    """How YAML users call the type of ``value``."""
    if value is None:
        return "null"
    names = {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}
    names |= {list: "a list", dict: "a mapping"}
    return names.get(type(value), type(value).__name__)


def format_path(path: FieldPath) -> str:
    """``("spec", "metrics", 0, "target")`` → ``spec.metrics[0].target``.

    Keys that are not plain words are quoted: ``spec.nodeSelector["kubernetes.io/os"]``.
    """
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        elif _PLAIN_KEY.match(part):
            text += f".{part}" if text else part
        else:
            text += f"[{json.dumps(part)}]"
    return text


def parse_path(text: str) -> FieldPath:
    """``spec.metrics[0].target`` → ``("spec", "metrics", 0, "target")`` (inverse of the above)."""
    return tuple(
        name if name else int(index) for name, index in _PATH_PART.findall(text) if name or index
    )


# --- Checks across documents -------------------------------------------------------------------


def _cross_check(candidates: Sequence[_Candidate]) -> tuple[SpecSet, list[SpecIssue]]:
    """Keep the candidates that pass the checks one document cannot do alone.

    In order: unique names per kind and namespace (the first one wins), availability in this
    build, then references — a pendingCapacity producer's node group, an autoscaler's target and
    producers, and at most one autoscaler per node group. A rejected resource can make the ones
    referring to it fail in turn.
    """
    issues: list[SpecIssue] = []

    def keep(candidate: _Candidate, problems: list[Problem]) -> bool:
        issues.extend(candidate.document.issue(path, message) for path, message in problems)
        return not problems

    first: dict[tuple[str, str], _Candidate] = {}
    usable: list[_Candidate] = []
    for candidate in candidates:
        earlier = first.setdefault((candidate.kind, candidate.key), candidate)
        if earlier is not candidate:
            message = f"duplicate name: {candidate.kind} {candidate.key} is already defined"
            keep(candidate, [(("metadata", "name"), f"{message} at {earlier.where}")])
        elif keep(candidate, _availability_problems(candidate.resource)):
            usable.append(candidate)

    specs = SpecSet()
    for candidate in usable:
        if isinstance(candidate.resource, ScalableNodeGroup):
            specs.node_groups[candidate.key] = candidate.resource
    for candidate in usable:
        resource = candidate.resource
        if isinstance(resource, MetricsProducer) and keep(
            candidate, _producer_reference_problems(resource, specs)
        ):
            specs.producers[candidate.key] = resource
    scaled_by: dict[str, _Candidate] = {}
    for candidate in usable:
        resource = candidate.resource
        if not isinstance(resource, HorizontalAutoscaler):
            continue
        problems = _autoscaler_reference_problems(resource, specs)
        target = f"{resource.metadata.namespace}/{resource.spec.scale_target_ref.name}"
        if not problems and target in scaled_by:
            other = scaled_by[target]
            message = f"ScalableNodeGroup {target} is already scaled by {other.key} ({other.where})"
            problems.append((("spec", "scaleTargetRef", "name"), message))
        if keep(candidate, problems):
            scaled_by[target] = candidate
            specs.autoscalers[candidate.key] = resource
    return specs, issues


def _availability_problems(resource: Resource) -> list[Problem]:
    """Types and features the models accept but this build cannot run, and values only the
    backend can judge (such as the form of an AWS id)."""
    try:
        if isinstance(resource, ScalableNodeGroup):
            validate_provider(resource)
        elif isinstance(resource, MetricsProducer):
            validate_producer(resource)
    except SpecError as exc:
        return [(parse_path(exc.path), exc.message)]
    if isinstance(resource, HorizontalAutoscaler):
        return _autoscaler_features_not_yet_available(resource.spec)
    return []


def _autoscaler_features_not_yet_available(spec: HorizontalAutoscalerSpec) -> list[Problem]:
    """Autoscaler features that are in the API but not built yet.

    Remove a check here when its feature lands (and the matching test).
    """
    problems: list[Problem] = []
    return problems


def _producer_reference_problems(resource: MetricsProducer, specs: SpecSet) -> list[Problem]:
    """A pendingCapacity producer must name a usable ScalableNodeGroup in its namespace."""
    pending = resource.spec.pending_capacity
    if pending is None:
        return []
    namespace = resource.metadata.namespace
    if f"{namespace}/{pending.node_group}" in specs.node_groups:
        return []
    path: FieldPath = ("spec", "pendingCapacity", "nodeGroup")
    return [(path, _not_found("ScalableNodeGroup", pending.node_group, namespace))]


def _autoscaler_reference_problems(resource: HorizontalAutoscaler, specs: SpecSet) -> list[Problem]:
    """An autoscaler's target and producers must be usable resources in its namespace."""
    problems: list[Problem] = []
    namespace = resource.metadata.namespace
    target = resource.spec.scale_target_ref.name
    if f"{namespace}/{target}" not in specs.node_groups:
        path: FieldPath = ("spec", "scaleTargetRef", "name")
        problems.append((path, _not_found("ScalableNodeGroup", target, namespace)))
    for where, metric in resource.spec.sources():
        if metric.producer is None:
            continue
        name = metric.producer.name
        if f"{namespace}/{name}" not in specs.producers:
            path = ("spec", *where, "producer", "name")
            problems.append((path, _not_found("MetricsProducer", name, namespace)))
    return problems


def _not_found(kind: str, name: str, namespace: str) -> str:
    return f"no valid {kind} named {name!r} in namespace {namespace!r}"
