"""Offline checks of CustomResourceDefinitions, as close to the API server as Python gets.

No kube-apiserver runs here, so this module reproduces the parts of its CRD handling that the
tests rely on:

- :func:`structural_problems`: the rules a schema must follow to be *structural* (what
  ``apiextensions.k8s.io/v1`` requires), plus the v1 keyword restrictions.
- :func:`validate`: what happens to a custom resource on ``kubectl apply``: defaults are filled
  in, unknown fields are rejected (``kubectl`` asks for strict field validation by default), the
  OpenAPI v3 schema is checked (as JSON Schema draft 4 with ``nullable`` and the int-or-string
  form translated), and every ``x-kubernetes-validations`` CEL rule is evaluated on the defaulted
  object with the ``common-expression-language`` package.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import cel
import jsonschema

Schema = dict[str, Any]

#: Keywords of ``JSONSchemaProps`` that apiextensions.k8s.io/v1 accepts.
_ALLOWED = {
    "description",
    "type",
    "format",
    "title",
    "default",
    "maximum",
    "exclusiveMaximum",
    "minimum",
    "exclusiveMinimum",
    "maxLength",
    "minLength",
    "pattern",
    "maxItems",
    "minItems",
    "multipleOf",
    "enum",
    "maxProperties",
    "minProperties",
    "required",
    "items",
    "allOf",
    "oneOf",
    "anyOf",
    "not",
    "properties",
    "additionalProperties",
    "nullable",
    "example",
    "externalDocs",
    "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-embedded-resource",
    "x-kubernetes-int-or-string",
    "x-kubernetes-list-map-keys",
    "x-kubernetes-list-type",
    "x-kubernetes-map-type",
    "x-kubernetes-validations",
}
_JUNCTORS = ("allOf", "anyOf", "oneOf", "not")
_TYPES = {"object", "array", "string", "integer", "number", "boolean"}
_INT_OR_STRING = [{"type": "integer"}, {"type": "string"}]


def _children(schema: Schema, path: str) -> Iterator[tuple[str, Schema]]:
    for name, prop in schema.get("properties", {}).items():
        yield f"{path}.{name}", prop
    if isinstance(schema.get("additionalProperties"), dict):
        yield f"{path}[*]", schema["additionalProperties"]
    if isinstance(schema.get("items"), dict):
        yield f"{path}[]", schema["items"]


def structural_problems(schema: Schema, path: str = "", *, root: bool = True) -> list[str]:
    """Every way ``schema`` is not a valid structural v1 schema (empty when it is)."""
    problems: list[str] = []
    where = path or "<root>"
    unknown = set(schema) - _ALLOWED
    if unknown:
        problems.append(f"{where}: keywords not allowed in a v1 CRD schema: {sorted(unknown)}")
    special = schema.get("x-kubernetes-int-or-string") or schema.get(
        "x-kubernetes-preserve-unknown-fields"
    )
    if schema.get("type") not in _TYPES and not special:
        problems.append(f"{where}: needs a type")
    if root and schema.get("type") != "object":
        problems.append(f"{where}: the root must be an object")
    if "properties" in schema and "additionalProperties" in schema:
        problems.append(f"{where}: properties and additionalProperties are mutually exclusive")
    if schema.get("additionalProperties") is False:
        problems.append(f"{where}: additionalProperties: false is not allowed")
    if schema.get("uniqueItems"):
        problems.append(f"{where}: uniqueItems: true is not allowed in v1")
    if schema.get("x-kubernetes-int-or-string") and (
        schema.get("anyOf") not in (None, _INT_OR_STRING) or "type" in schema
    ):
        problems.append(f"{where}: int-or-string takes anyOf [integer, string] and no type")
    for junctor in _JUNCTORS:
        branches = schema.get(junctor)
        if branches is None:
            continue
        if junctor == "anyOf" and branches == _INT_OR_STRING:
            if not schema.get("x-kubernetes-int-or-string"):
                problems.append(f"{where}: anyOf [integer, string] needs int-or-string")
            continue
        for branch in branches if isinstance(branches, list) else [branches]:
            for key in ("description", "type", "default", "additionalProperties", "nullable"):
                if key in branch:
                    problems.append(f"{where}: {junctor} must not set {key}")
    if schema.get("x-kubernetes-list-type") == "map":
        items = schema.get("items", {})
        for key in schema.get("x-kubernetes-list-map-keys", []):
            prop = items.get("properties", {}).get(key)
            if prop is None or (key not in items.get("required", []) and "default" not in prop):
                problems.append(f"{where}: list map key {key!r} must be required or defaulted")
    if schema.get("x-kubernetes-list-type") == "set" and schema.get("items", {}).get("type") in (
        "object",
        "array",
    ):
        problems.append(f"{where}: a set list holds scalars only")
    for rule in schema.get("x-kubernetes-validations", []):
        try:
            cel.compile(rule["rule"])
        except Exception as exc:  # the CEL binding raises several error types
            problems.append(f"{where}: CEL rule {rule['rule']!r} does not compile: {exc}")
        if not rule.get("message"):
            problems.append(f"{where}: CEL rule {rule['rule']!r} has no message")
    if root and "metadata" in schema.get("properties", {}):
        metadata = schema["properties"]["metadata"]
        if set(metadata.get("properties", {})) - {"name", "generateName"}:
            problems.append("metadata: only name and generateName may be restricted")
    for child_path, child in _children(schema, path):
        problems.extend(structural_problems(child, child_path, root=False))
    return problems


def _draft4(schema: Schema) -> Schema:
    """The OpenAPI v3 schema as JSON Schema draft 4 (``nullable`` → a null type)."""
    result: Schema = {}
    for key, value in schema.items():
        if key.startswith("x-kubernetes-"):
            continue
        if key == "properties":
            result[key] = {name: _draft4(prop) for name, prop in value.items()}
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            result[key] = _draft4(value)
        elif key in ("anyOf", "allOf", "oneOf"):
            result[key] = [_draft4(branch) for branch in value]
        else:
            result[key] = value
    if schema.get("nullable"):
        result.pop("nullable")
        if "type" in result:
            result["type"] = [result["type"], "null"]
        if "enum" in result:
            result["enum"] = [*result["enum"], None]
    return result


def _default(value: Any, schema: Schema) -> Any:
    """Fill in defaults and make numbers of ``type: number`` floats, as the API server does."""
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        result = {}
        for name, item in value.items():
            child = properties.get(name) or schema.get("additionalProperties")
            result[name] = _default(item, child) if isinstance(child, dict) else item
        for name, prop in properties.items():
            if name not in result and "default" in prop:
                result[name] = _default(copy.deepcopy(prop["default"]), prop)
        return result
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [_default(item, schema["items"]) for item in value]
    if schema.get("type") == "number" and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def _unknown_fields(value: Any, schema: Schema, path: str) -> Iterator[str]:
    if schema.get("x-kubernetes-preserve-unknown-fields"):
        return
    if isinstance(value, dict) and "properties" in schema:
        for name, item in value.items():
            if name not in schema["properties"]:
                yield f'{path}.{name}: unknown field "{name}"'
            else:
                yield from _unknown_fields(item, schema["properties"][name], f"{path}.{name}")
    elif isinstance(value, dict) and isinstance(schema.get("additionalProperties"), dict):
        for name, item in value.items():
            yield from _unknown_fields(item, schema["additionalProperties"], f"{path}[{name}]")
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(value):
            yield from _unknown_fields(item, schema["items"], f"{path}[{index}]")


def _rules(value: Any, schema: Schema, path: str) -> Iterator[str]:
    for rule in schema.get("x-kubernetes-validations", []):
        try:
            ok = cel.evaluate(rule["rule"], {"self": value})
        except Exception as exc:  # a rule that errors rejects the object, as in the API server
            yield f"{path}: rule {rule['rule']!r} failed to evaluate: {exc}"
            continue
        if ok is not True:
            yield f"{path}: {rule['message']}"
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        for name, item in value.items():
            child = properties.get(name) or schema.get("additionalProperties")
            if isinstance(child, dict):
                yield from _rules(item, child, f"{path}.{name}")
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(value):
            yield from _rules(item, schema["items"], f"{path}[{index}]")


def openapi_schema(crd: Schema) -> Schema:
    """The ``openAPIV3Schema`` of the storage version of a CRD."""
    (version,) = [v for v in crd["spec"]["versions"] if v.get("storage")]
    schema: Schema = version["schema"]["openAPIV3Schema"]
    return schema


def validate(schema: Schema, obj: dict[str, Any]) -> list[str]:
    """Errors the API server would report for ``obj`` (empty when it would accept it)."""
    errors = list(_unknown_fields(obj, schema, ""))
    defaulted = _default(obj, schema)
    validator = jsonschema.Draft4Validator(
        _draft4(schema), format_checker=jsonschema.Draft4Validator.FORMAT_CHECKER
    )
    for error in validator.iter_errors(defaulted):
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
        errors.append(f"{where}: {error.message}")
    if not errors:  # the API server runs CEL rules only on objects the schema accepts
        errors.extend(_rules(defaulted, schema, ""))
    return errors
