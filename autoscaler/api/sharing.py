"""Identical parts of spec objects are stored once.

Fleets are written from templates: thousands of autoscalers with the same ``behavior``, target
and algorithm, thousands of node groups with the same backend options. :func:`share` makes a
freshly validated resource point at one canonical instance of each part that an earlier
resource already has (compared by value), and at one shared ``__pydantic_fields_set__`` per
distinct set of fields. Loading 10,000 autoscalers over 10,000 node groups and 2,000 producers
then takes 106 MiB instead of 169 MiB (``bench/RESULTS.md``, "Scale").

Sharing is safe because spec models are frozen (:class:`~autoscaler.api.common.Model`):
nothing assigns to a part in place, and ``model_copy`` copies the fields set before updating
it. Parts that carry an object's identity (the resources themselves, their metadata and
``spec``, ``scaleTargetRef``) are never shared: they are unique, and keeping them out of the
table keeps the table small. The table holds its parts weakly: a part no resource uses any more
is dropped from it.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Hashable
from typing import Any, TypeVar

from pydantic import BaseModel

__all__ = ["share"]

M = TypeVar("M", bound=BaseModel)

#: Parts with an identity of their own (by class name, to keep this module free of imports).
UNIQUE = frozenset(
    {
        "HorizontalAutoscaler",
        "MetricsProducer",
        "ScalableNodeGroup",
        "ObjectMeta",
        "HorizontalAutoscalerSpec",
        "MetricsProducerSpec",
        "ScalableNodeGroupSpec",
        "ScaleTargetRef",
    }
)

_lock = threading.Lock()
_parts: weakref.WeakValueDictionary[Hashable, BaseModel] = weakref.WeakValueDictionary()
_field_sets: dict[frozenset[str], set[str]] = {}


def _key(value: Any) -> Hashable:
    """A hashable value key; parts are already shared, so they compare by identity."""
    if isinstance(value, BaseModel):
        return ("part", id(value))
    if isinstance(value, list):
        return ("list", tuple(_key(v) for v in value))
    if isinstance(value, dict):
        return ("dict", tuple((k, _key(v)) for k, v in value.items()))
    return (type(value), value)


def _share_fields_set(model: BaseModel) -> None:
    fields_set = model.__pydantic_fields_set__
    frozen = frozenset(fields_set)
    with _lock:
        shared = _field_sets.setdefault(frozen, fields_set)
    if shared is not fields_set:
        object.__setattr__(model, "__pydantic_fields_set__", shared)


def _share(model: M) -> M:
    values = model.__dict__
    for name, value in values.items():
        if isinstance(value, BaseModel):
            values[name] = _share(value)
        elif isinstance(value, list) and any(isinstance(v, BaseModel) for v in value):
            values[name] = [_share(v) if isinstance(v, BaseModel) else v for v in value]
    _share_fields_set(model)
    if type(model).__name__ in UNIQUE or model.__pydantic_extra__:
        return model
    try:
        # The fields set is shared (and kept) by then: its identity stands for its value.
        fields_set = id(model.__pydantic_fields_set__)
        key = (type(model), fields_set, tuple((n, _key(v)) for n, v in values.items()))
        hash(key)
    except TypeError:  # an unhashable value (e.g. a free-form object): keep this one
        return model
    with _lock:
        existing = _parts.setdefault(key, model)
    return existing  # type: ignore[return-value]


def share(resource: M) -> M:
    """``resource`` with its parts replaced by equal parts seen before (in place); returns it."""
    return _share(resource)
