"""Identical parts of spec objects are stored once (autoscaler.api.sharing)."""

from __future__ import annotations

import gc

import pytest
from pydantic import ValidationError

from autoscaler.api import sharing
from autoscaler.api.sharing import share
from autoscaler.config import load_text
from tests.support import autoscaler, node_group

BEHAVIOR = {"scaleDown": {"stabilizationWindowSeconds": 60}}


def test_equal_parts_of_different_resources_become_one_object() -> None:
    a = share(autoscaler("a", behavior=BEHAVIOR))
    b = share(autoscaler("b", behavior=BEHAVIOR))
    assert a.spec.behavior is b.spec.behavior
    assert a.spec.metrics[0].target is b.spec.metrics[0].target
    assert a.spec.algorithm is b.spec.algorithm


def test_different_parts_stay_apart_and_identity_parts_are_never_shared() -> None:
    a = share(autoscaler("a", behavior=BEHAVIOR))
    b = share(autoscaler("b", behavior={"scaleDown": {"stabilizationWindowSeconds": 0}}))
    assert a.spec.behavior is not b.spec.behavior
    assert a.spec.behavior.scale_up is b.spec.behavior.scale_up  # both the HPA default
    same_target = share(autoscaler("c", target="g"))
    also = share(autoscaler("c", target="g"))
    assert same_target.spec.scale_target_ref is not also.spec.scale_target_ref
    assert same_target.metadata is not also.metadata


def test_sharing_changes_no_value_and_no_dump() -> None:
    plain = autoscaler("a", behavior=BEHAVIOR)
    before = (plain.to_dict(), plain.model_dump(exclude_unset=True))
    shared = share(autoscaler("a", behavior=BEHAVIOR))
    assert (shared.to_dict(), shared.model_dump(exclude_unset=True)) == before
    assert shared == plain


def test_values_set_explicitly_and_by_default_are_not_confused() -> None:
    explicit = share(autoscaler("a", behavior={"scaleUp": {"selectPolicy": "Max"}}))
    default = share(autoscaler("b", behavior={"scaleUp": {}}))
    assert explicit.spec.behavior.scale_up == default.spec.behavior.scale_up
    assert explicit.spec.behavior.scale_up is not default.spec.behavior.scale_up
    assert "select_policy" in explicit.spec.behavior.scale_up.model_fields_set
    assert "select_policy" not in default.spec.behavior.scale_up.model_fields_set


def test_a_copy_with_changes_leaves_the_shared_part_and_its_fields_set_alone() -> None:
    a = share(node_group("a", replicas=2, simulated={"provisioningDelaySeconds": 5}))
    b = share(node_group("b", replicas=2, simulated={"provisioningDelaySeconds": 5}))
    assert a.spec.simulated is b.spec.simulated
    copy = a.spec.model_copy(update={"replicas": None})
    assert copy.replicas is None and a.spec.replicas == b.spec.replicas == 2
    assert b.spec.model_fields_set == a.spec.model_fields_set


def test_spec_models_are_frozen_so_a_shared_part_cannot_be_changed_in_place() -> None:
    a = share(autoscaler("a", behavior=BEHAVIOR))
    with pytest.raises(ValidationError, match="frozen"):
        a.spec.behavior.scale_down.tolerance = 0.5  # type: ignore[misc]


def test_parts_no_resource_uses_are_dropped_from_the_table() -> None:
    share(autoscaler("a", behavior={"scaleDown": {"stabilizationWindowSeconds": 1234}}))
    gc.collect()
    windows = [
        part.stabilization_window_seconds
        for part in list(sharing._parts.values())
        if type(part).__name__ == "ScalingRules"
    ]
    assert 1234 not in windows


def test_the_loader_shares_parts_across_documents() -> None:
    docs = "\n---\n".join(
        f"""apiVersion: autoscaler.dev/v1alpha1
kind: ScalableNodeGroup
metadata: {{name: g{i}}}
spec: {{type: Simulated, id: g{i}, simulated: {{provisioningDelaySeconds: 30}}}}"""
        for i in range(3)
    )
    result = load_text(docs)
    parts = {id(group.spec.simulated) for group in result.specs.node_groups.values()}
    assert result.ok and len(parts) == 1
