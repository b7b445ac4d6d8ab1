"""CustomResourceDefinitions for the three resources, generated from the pydantic models.

``python -m autoscaler.crds DIR [DIR ...]`` (``make crds``) writes one
``apiextensions.k8s.io/v1`` CustomResourceDefinition per kind into every DIR;
``--check`` compares instead of writing and exits 1 when a file is missing or differs.

The models' JSON schema (``model_json_schema(by_alias=True)``) is turned into a *structural*
OpenAPI v3 schema, the form the API server requires:

1. Every ``$ref`` is inlined; the root, every property and every item has a ``type``.
2. ``Optional`` fields (``anyOf [X, null]``) become ``X``: the API server prunes a ``null`` it is
   not allowed to keep, which is what the models do with ``None``. A ``null`` elsewhere (an item
   of a list, a value of a map) becomes ``nullable: true``.
3. A :data:`~autoscaler.api.quantity.Quantity` becomes the Kubernetes quantity schema:
   ``x-kubernetes-int-or-string`` with the quantity pattern. Fractional numbers must therefore be
   written as strings in a cluster (``"0.5"`` or ``"500m"``), as for every quantity in a CRD.
4. Maps keep ``additionalProperties``; ``additionalProperties: false`` is dropped, since a
   structural schema cannot combine it with ``properties``. The API server rejects unknown fields
   when the client asks for strict field validation (``kubectl``'s default) and prunes them
   otherwise; the service validates every object with the models again when it reads it.
5. Literals become ``enum``; bounds, lengths and patterns carry over; ``exclusiveMinimum: N``
   becomes ``minimum: N, exclusiveMinimum: true`` (OpenAPI v3.0 form); titles are dropped; field
   descriptions win over model docstrings.
6. Rules between fields that a schema cannot say (exactly one source, min ≤ max, options that
   belong to one type) are ``x-kubernetes-validations`` CEL rules, listed in :data:`RULES`, and
   checks done by field validators that a pattern can say are added from :data:`EXTRA`.
7. A value of any shape (``Any``) becomes ``x-kubernetes-preserve-unknown-fields: true``.

``metadata`` is ``type: object`` (the API server owns its schema). Each kind has the ``status``
subresource; ScalableNodeGroup also has ``scale`` (``.spec.replicas`` / ``.status.replicas``).
"""

from __future__ import annotations

import argparse
import copy
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import core_schema

from autoscaler.api.common import API_GROUP, API_VERSION
from autoscaler.api.horizontalautoscaler import HorizontalAutoscaler
from autoscaler.api.metricsproducer import _STATISTIC, CloudWatchSpec, MetricsProducer
from autoscaler.api.quantity import _QUANTITY, parse_quantity
from autoscaler.api.scalablenodegroup import ScalableNodeGroup, SimulatedOptions

Schema = dict[str, Any]

#: Categories shared by the three kinds: ``kubectl get autoscaler`` lists them all.
CATEGORIES = ["autoscaler"]

_QUANTITY_MARK = "x-autoscaler-quantity"
#: Keywords copied as they are (after their values are converted).
_KEPT = {
    "type",
    "format",
    "description",
    "default",
    "enum",
    "pattern",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "minProperties",
    "maxProperties",
    "uniqueItems",
    "multipleOf",
    "nullable",
}


class _SchemaGenerator(GenerateJsonSchema):
    """Marks :data:`Quantity` fields, which plain JSON schema shows as numbers."""

    def function_before_schema(
        self, schema: core_schema.BeforeValidatorFunctionSchema
    ) -> JsonSchemaValue:
        if schema["function"].get("function") is parse_quantity:
            return {_QUANTITY_MARK: True}
        return super().function_before_schema(schema)


def quantity_schema() -> Schema:
    """The Kubernetes quantity schema: an integer or a string such as ``500m`` or ``16Gi``."""
    return {
        "description": "A quantity: a whole number, or a string such as '0.5', '500m' or '16Gi'.",
        "anyOf": [{"type": "integer"}, {"type": "string"}],
        "pattern": _QUANTITY.pattern,
        "x-kubernetes-int-or-string": True,
    }


def _rule(rule: str, message: str) -> Schema:
    return {"rule": rule, "message": message}


def _exactly_one(*fields: str) -> Schema:
    present = ", ".join(f"has(self.{field})" for field in fields)
    return _rule(
        f"[{present}].filter(x, x).size() == 1",
        f"exactly one of {', '.join(fields)} must be set",
    )


def _or_default(model: type[BaseModel], field: str, alias: str) -> str:
    default = model.model_fields[field].default
    return f"(has(self.{alias}) ? self.{alias} : {default!r})"


#: CEL rules per model, for what the models check across fields.
RULES: dict[str, list[Schema]] = {
    "ScalableNodeGroupSpec": [
        _rule(
            "!has(self.simulated) || self.type == 'Simulated'",
            "simulated options are only allowed with type Simulated",
        )
    ],
    "SimulatedOptions": [
        _rule(
            f"{_or_default(SimulatedOptions, 'max_size', 'maxSize')} >= "
            f"{_or_default(SimulatedOptions, 'min_size', 'minSize')}",
            "maxSize must be greater than or equal to minSize",
        )
    ],
    "MetricsProducerSpec": [
        _exactly_one("queue", "cloudWatch", "schedule", "reservedCapacity", "pendingCapacity")
    ],
    "CloudWatchSpec": [
        _rule(
            f"{_or_default(CloudWatchSpec, 'collection_window_seconds', 'collectionWindowSeconds')}"
            f" >= {_or_default(CloudWatchSpec, 'period_seconds', 'periodSeconds')}",
            "collectionWindowSeconds must be at least periodSeconds",
        ),
        _rule(
            "!has(self.periodSeconds) || self.periodSeconds in [1, 5, 10, 30] "
            "|| self.periodSeconds % 60 == 0",
            "periodSeconds must be 1, 5, 10, 30 or a multiple of 60",
        ),
    ],
    "HorizontalAutoscalerSpec": [
        _rule(
            "!has(self.minReplicas) || self.maxReplicas >= self.minReplicas",
            "maxReplicas must be greater than or equal to minReplicas",
        )
    ],
    "MetricSpec": [_exactly_one("producer", "prometheus")],
    "MetricTarget": [
        _rule(
            "(self.type == 'Value') == has(self.value)"
            " && (self.type == 'AverageValue') == has(self.averageValue)"
            " && (self.type == 'Utilization') == has(self.averageUtilization)",
            "target type Value takes value, AverageValue takes averageValue, "
            "Utilization takes averageUtilization (and only that one)",
        ),
        _rule(
            "!has(self.averageUtilization) || self.averageUtilization > 0.0",
            "averageUtilization must be greater than 0",
        ),
    ],
    "Algorithm": [
        _rule(
            "!has(self.pid) || (has(self.type) && self.type == 'PID')",
            "pid gains are only allowed with type PID",
        )
    ],
    "PIDParameters": [
        _rule(
            "!has(self.ki) || self.ki > 0.0",
            "ki must be greater than 0: the velocity-form PID needs integral action",
        )
    ],
    "PredictiveScaling": [
        _rule(
            "!has(self.seasonalPeriodsSeconds) || "
            "self.seasonalPeriodsSeconds.all(p, p >= 600 && p <= 604800)",
            "seasonal periods must be between 600 and 604800 seconds",
        ),
    ],
}

#: Extra keywords per (model, property alias), for checks the models do in field validators.
EXTRA: dict[tuple[str, str], Schema] = {
    ("CloudWatchSpec", "statistic"): {"pattern": _STATISTIC.pattern},
    ("PredictiveScaling", "seasonalPeriodsSeconds"): {"x-kubernetes-list-type": "set"},
    # Conditions are keyed by type (as metav1.Condition): one entry per type.
    ("ScalableNodeGroupStatus", "conditions"): {
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["type"],
    },
    ("MetricsProducerStatus", "conditions"): {
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["type"],
    },
    ("HorizontalAutoscalerStatus", "conditions"): {
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["type"],
    },
}


@dataclass(frozen=True)
class Column:
    """One ``additionalPrinterColumns`` entry."""

    name: str
    type: str
    json_path: str
    description: str
    priority: int = 0

    def to_dict(self) -> Schema:
        column: Schema = {
            "name": self.name,
            "type": self.type,
            "jsonPath": self.json_path,
            "description": self.description,
        }
        if self.priority:
            column["priority"] = self.priority
        return column


_ACTIVE = Column(
    "Active",
    "string",
    '.status.conditions[?(@.type=="Active")].status',
    "Whether the service can read or reach it (the Active condition).",
    priority=1,
)
_AGE = Column("Age", "date", ".metadata.creationTimestamp", "Time since creation.")


@dataclass(frozen=True)
class Kind:
    """What a CustomResourceDefinition says besides the schema."""

    model: type[BaseModel]
    plural: str
    short_names: tuple[str, ...]
    columns: tuple[Column, ...]
    scale: bool = False

    @property
    def name(self) -> str:
        return self.model.__name__

    @property
    def file_name(self) -> str:
        return f"{API_GROUP}_{self.plural}.yaml"


KINDS: tuple[Kind, ...] = (
    Kind(
        HorizontalAutoscaler,
        plural="horizontalautoscalers",
        short_names=("ha", "hza"),
        columns=(
            Column("Target", "string", ".spec.scaleTargetRef.name", "The ScalableNodeGroup."),
            Column("Min", "integer", ".spec.minReplicas", "Lower limit of the node count."),
            Column("Max", "integer", ".spec.maxReplicas", "Upper limit of the node count."),
            Column("Desired", "integer", ".status.desiredReplicas", "The count decided last."),
            Column("Current", "integer", ".status.currentReplicas", "The group's count now."),
            _ACTIVE,
            _AGE,
        ),
    ),
    Kind(
        MetricsProducer,
        plural="metricsproducers",
        short_names=("mp",),
        columns=(
            Column(
                "Interval",
                "number",
                ".spec.intervalSeconds",
                "Seconds between two observations.",
            ),
            Column(
                "Queue",
                "number",
                ".status.queue.length",
                "Messages in the queue (queue producers).",
                priority=1,
            ),
            Column(
                "Scheduled",
                "integer",
                ".status.scheduledCapacity.currentValue",
                "Replicas the schedule asks for now (schedule producers).",
                priority=1,
            ),
            _ACTIVE,
            _AGE,
        ),
    ),
    Kind(
        ScalableNodeGroup,
        plural="scalablenodegroups",
        short_names=("sng",),
        columns=(
            Column("Type", "string", ".spec.type", "The node group backend."),
            Column("ID", "string", ".spec.id", "The node group at the backend."),
            Column("Desired", "integer", ".spec.replicas", "The count asked for."),
            Column("Ready", "integer", ".status.replicas", "Ready nodes."),
            _ACTIVE,
            _AGE,
        ),
        scale=True,
    ),
)


class _Converter:
    """Turns one model's JSON schema into a structural OpenAPI v3 schema."""

    def __init__(self, definitions: Mapping[str, Schema]) -> None:
        self._definitions = definitions

    def convert(
        self, schema: Schema, *, model: str | None = None, prop: str | None = None
    ) -> Schema:
        """Convert ``schema``; ``model``/``prop`` name the property it describes, if any."""
        schema = dict(schema)
        own_description = schema.get("description")
        ref = schema.pop("$ref", None)
        if ref is not None:
            name = ref.rsplit("/", 1)[-1]
            target = self._convert_model(name)
            if own_description is not None:
                target["description"] = own_description
            return self._with_extra(target, model, prop)
        if schema.get(_QUANTITY_MARK):
            result = quantity_schema()
            if own_description is not None:
                result["description"] = f"{own_description} {result['description']}"
            return self._with_extra(result, model, prop)
        branches = schema.pop("anyOf", None)
        if branches is not None:
            return self._with_extra(self._convert_union(schema, branches, prop), model, prop)
        if not schema.keys() - {"title", "description", "default"}:
            result = {"x-kubernetes-preserve-unknown-fields": True}
            if own_description is not None:
                result["description"] = own_description
            return self._with_extra(result, model, prop)
        return self._with_extra(self._convert_plain(schema), model, prop)

    def _with_extra(self, schema: Schema, model: str | None, prop: str | None) -> Schema:
        if model is not None and prop is not None:
            schema.update(copy.deepcopy(EXTRA.get((model, prop), {})))
        return schema

    def _convert_model(self, name: str) -> Schema:
        definition = self._definitions[name]
        result = self._convert_plain(definition, model=name)
        rules = RULES.get(name)
        if rules:
            result["x-kubernetes-validations"] = copy.deepcopy(rules)
        return result

    def _convert_union(self, outer: Schema, branches: list[Schema], prop: str | None) -> Schema:
        others = [branch for branch in branches if branch != {"type": "null"}]
        if len(others) != 1:
            raise ValueError(f"cannot express a union of {branches!r} in a structural schema")
        result = self.convert(others[0])
        if len(others) < len(branches) and prop is None:
            # A null item or map value is kept as null; a null property is pruned (None).
            result["nullable"] = True
        if outer.get("description") is not None:
            result["description"] = outer["description"]
        if outer.get("default") is not None:
            result["default"] = outer["default"]
        return result

    def _convert_plain(self, schema: Schema, *, model: str | None = None) -> Schema:
        result: Schema = {}
        for key, value in schema.items():
            if key in _KEPT:
                result[key] = copy.deepcopy(value)
            elif key == "const":
                result["enum"] = [value]
            elif key in ("exclusiveMinimum", "exclusiveMaximum"):
                bound = "minimum" if key == "exclusiveMinimum" else "maximum"
                result[bound] = value
                result[key] = True
            elif key == "properties":
                result["properties"] = {
                    name: self.convert(prop, model=model, prop=name) for name, prop in value.items()
                }
            elif key == "items":
                result["items"] = self.convert(value)
            elif key == "additionalProperties":
                if isinstance(value, dict):
                    result["additionalProperties"] = self.convert(value)
            elif key == "required":
                result["required"] = list(value)
            elif key in ("title", "$defs"):
                continue
            else:
                raise ValueError(f"no structural form for JSON schema keyword {key!r}")
        if result.get("default") is None:
            result.pop("default", None)
        if "properties" in result or "additionalProperties" in result:
            result.setdefault("type", "object")
        return result


_ORDER = [
    "description",
    "type",
    "format",
    "enum",
    "default",
    "nullable",
    "minimum",
    "exclusiveMinimum",
    "maximum",
    "exclusiveMaximum",
    "minLength",
    "maxLength",
    "pattern",
    "minItems",
    "maxItems",
    "uniqueItems",
    "anyOf",
    "required",
    "properties",
    "items",
    "additionalProperties",
]


def _ordered(schema: Schema) -> Schema:
    """The same schema with keys in a reading order (and nested schemas likewise)."""
    rank = {key: index for index, key in enumerate(_ORDER)}
    result: Schema = {}
    for key in sorted(schema, key=lambda k: (rank.get(k, len(rank)), k)):
        value = schema[key]
        if key == "properties":
            value = {name: _ordered(prop) for name, prop in value.items()}
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            value = _ordered(value)
        elif key == "description":
            value = value.replace("``", "`")  # reStructuredText literals read as Markdown
        result[key] = value
    return result


def named_models() -> set[str]:
    """The models that :data:`RULES` and :data:`EXTRA` name (each must exist in some kind)."""
    return set(RULES) | {model for model, _prop in EXTRA}


def known_models() -> set[str]:
    """Every model that appears in the schema of some kind."""
    names: set[str] = set()
    for kind in KINDS:
        names.add(kind.name)
        names.update(kind.model.model_json_schema(by_alias=True).get("$defs", {}))
    return names


def resource_schema(kind: Kind) -> Schema:
    """The structural ``openAPIV3Schema`` of one kind."""
    raw = kind.model.model_json_schema(
        by_alias=True, ref_template="#/$defs/{model}", schema_generator=_SchemaGenerator
    )
    definitions: dict[str, Schema] = dict(raw.get("$defs", {}))
    converter = _Converter(definitions)
    properties = raw["properties"]
    spec = converter.convert(properties["spec"], model=kind.name, prop="spec")
    status = converter.convert(properties["status"], model=kind.name, prop="status")
    spec["description"] = f"The desired state of the {kind.name}."
    status["description"] = f"What the service observed and decided for the {kind.name}."
    module_doc = sys.modules[kind.model.__module__].__doc__ or kind.name
    return _ordered(
        {
            "type": "object",
            "description": module_doc.strip().splitlines()[0],
            "required": ["spec"],
            "properties": {
                "apiVersion": {
                    "type": "string",
                    "description": "APIVersion defines the versioned schema of this representation "
                    "of an object.",
                },
                "kind": {
                    "type": "string",
                    "description": "Kind is a string value representing the REST resource this "
                    "object represents.",
                },
                "metadata": {"type": "object"},
                "spec": spec,
                "status": status,
            },
        }
    )


def custom_resource_definition(kind: Kind) -> Schema:
    """The ``apiextensions.k8s.io/v1`` CustomResourceDefinition of one kind."""
    subresources: Schema = {"status": {}}
    if kind.scale:
        subresources["scale"] = {
            "specReplicasPath": ".spec.replicas",
            "statusReplicasPath": ".status.replicas",
        }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{kind.plural}.{API_GROUP}",
            "labels": {"app.kubernetes.io/part-of": "node-autoscaler"},
        },
        "spec": {
            "group": API_GROUP,
            "names": {
                "kind": kind.name,
                "listKind": f"{kind.name}List",
                "plural": kind.plural,
                "singular": kind.name.lower(),
                "shortNames": list(kind.short_names),
                "categories": list(CATEGORIES),
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": API_VERSION,
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": resource_schema(kind)},
                    "subresources": subresources,
                    "additionalPrinterColumns": [column.to_dict() for column in kind.columns],
                }
            ],
        },
    }


class _Dumper(yaml.SafeDumper):
    """Block-style YAML; long strings stay on one line; lists indented under their key."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", value)


_Dumper.add_representer(str, _represent_str)

HEADER = (
    "# Generated by `make crds` (python -m autoscaler.crds) from the models in autoscaler/api/.\n"
    "# Do not edit: change the models and regenerate.\n"
)


def render(kind: Kind) -> str:
    """One CRD as a YAML document, with the generated-file header."""
    body = yaml.dump(
        custom_resource_definition(kind),
        Dumper=_Dumper,
        sort_keys=False,
        width=100,
        allow_unicode=True,
        default_flow_style=False,
    )
    return HEADER + body


def render_all() -> dict[str, str]:
    """File name → content for every kind."""
    return {kind.file_name: render(kind) for kind in KINDS}


def write(directory: Path) -> list[Path]:
    """Write every CRD into ``directory``; return the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render_all().items():
        path = directory / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def stale(directory: Path) -> list[str]:
    """Names of CRD files in ``directory`` that are missing or differ from the models."""
    problems = []
    for name, text in render_all().items():
        path = directory / name
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            problems.append(str(path))
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m autoscaler.crds", description="Write the CRDs generated from the models."
    )
    parser.add_argument("directories", nargs="+", metavar="DIR", type=Path)
    parser.add_argument(
        "--check", action="store_true", help="compare instead of writing; exit 1 on a difference"
    )
    args = parser.parse_args(argv)
    if args.check:
        problems = [p for directory in args.directories for p in stale(directory)]
        for problem in problems:
            print(f"{problem}: out of date (run `make crds`)", file=sys.stderr)
        return 1 if problems else 0
    for directory in args.directories:
        for path in write(directory):
            print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
