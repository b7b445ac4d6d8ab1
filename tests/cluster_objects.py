"""Builders of Pod and Node objects (API JSON) for the cluster cache and producer tests."""

from __future__ import annotations

from typing import Any

Obj = dict[str, Any]


def node(
    name: str,
    *,
    cpu: str | int = "4",
    memory: str = "16Gi",
    pods: str | int = "110",
    gpu: int | None = None,
    labels: dict[str, str] | None = None,
    taints: list[Obj] | None = None,
    ready: bool = True,
    unschedulable: bool = False,
    created: str | None = None,
    deleting: bool = False,
) -> Obj:
    """A Node with allocatable = capacity, a Ready condition and the given labels."""
    allocatable: Obj = {"cpu": str(cpu), "memory": memory, "pods": str(pods)}
    if gpu is not None:
        allocatable["nvidia.com/gpu"] = str(gpu)
    metadata: Obj = {"name": name, "labels": {"kubernetes.io/hostname": name, **(labels or {})}}
    if created is not None:
        metadata["creationTimestamp"] = created
    if deleting:
        metadata["deletionTimestamp"] = "2026-01-01T00:00:00Z"
        metadata["finalizers"] = ["example.com/keep"]
    spec: Obj = {}
    if taints:
        spec["taints"] = taints
    if unschedulable:
        spec["unschedulable"] = True
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": metadata,
        "spec": spec,
        "status": {
            "capacity": dict(allocatable),
            "allocatable": allocatable,
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


def pod(
    name: str,
    *,
    namespace: str = "default",
    cpu: str | None = None,
    memory: str | None = None,
    gpu: int | None = None,
    node_name: str | None = None,
    pending: bool = False,
    phase: str | None = None,
    node_selector: dict[str, str] | None = None,
    affinity: Obj | None = None,
    tolerations: list[Obj] | None = None,
    owner_kind: str | None = None,
    init_containers: list[Obj] | None = None,
    overhead: Obj | None = None,
) -> Obj:
    """A Pod with one container. ``pending``: PodScheduled False, reason Unschedulable.
    ``node_name``: bound there and Running (unless ``phase`` says otherwise)."""
    requests: Obj = {}
    if cpu is not None:
        requests["cpu"] = cpu
    if memory is not None:
        requests["memory"] = memory
    limits: Obj = {}
    if gpu is not None:
        limits["nvidia.com/gpu"] = str(gpu)
    spec: Obj = {
        "containers": [{"name": "main", "image": "app", "resources": {"requests": requests}}]
    }
    if limits:
        spec["containers"][0]["resources"]["limits"] = limits
    if node_name is not None:
        spec["nodeName"] = node_name
    if node_selector:
        spec["nodeSelector"] = node_selector
    if affinity:
        spec["affinity"] = affinity
    if tolerations:
        spec["tolerations"] = tolerations
    if init_containers:
        spec["initContainers"] = init_containers
    if overhead:
        spec["overhead"] = overhead
    metadata: Obj = {"name": name, "namespace": namespace}
    if owner_kind is not None:
        metadata["ownerReferences"] = [
            {
                "apiVersion": "apps/v1",
                "kind": owner_kind,
                "name": "owner",
                "uid": "u",
                "controller": True,
            }
        ]
    conditions: list[Obj] = []
    if pending:
        conditions.append(
            {
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "message": "0/3 nodes are available: 3 Insufficient cpu.",
            }
        )
    elif node_name is not None:
        conditions.append({"type": "PodScheduled", "status": "True"})
    status: Obj = {
        "phase": phase or ("Running" if node_name is not None else "Pending"),
        "conditions": conditions,
    }
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec, "status": status}


def affinity_in(key: str, *values: str) -> Obj:
    """Required node affinity: label ``key`` In ``values``."""
    return {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": key, "operator": "In", "values": list(values)}]}
                ]
            }
        }
    }
