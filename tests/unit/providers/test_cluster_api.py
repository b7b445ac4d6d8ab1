"""The Cluster API provider: ids, bounds annotations, pause markers, counting, and the
read-then-write rules, with a fake CustomObjectsApi."""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from autoscaler.api import BackendContext, NodeGroupState, Provider, ScalableNodeGroup
from autoscaler.clock import FakeClock
from autoscaler.config import load_text
from autoscaler.errors import (
    AutoscalerError,
    NotFoundError,
    PermanentError,
    RetryableError,
    SpecError,
)
from providers.cluster_api import (
    GROUP,
    MAX_SIZE_ANNOTATION,
    MIN_SIZE_ANNOTATION,
    PAUSED_ANNOTATION,
    VERSION,
    ClusterAPIGroup,
    MachineSummary,
    ObjectRef,
    create,
    parse_bounds,
    parse_object_id,
    pause_reasons,
    read_scale,
    summarize,
    validate,
)

ROOT = Path(__file__).resolve().parents[3]
MD = ObjectRef("MachineDeployment", "default", "md-0")


def machine_deployment(
    replicas: int = 3,
    *,
    ready: int | None = None,
    existing: int | None = None,
    unavailable: int | None = 0,
    updated: int | None = None,
    annotations: dict[str, str] | None = None,
    paused: bool | None = None,
    generation: int = 1,
    observed: int | None = 1,
) -> dict[str, Any]:
    """A MachineDeployment as the API returns it (status counts default to a settled object)."""
    status: dict[str, Any] = {
        "replicas": replicas if existing is None else existing,
        "readyReplicas": replicas if ready is None else ready,
        "updatedReplicas": replicas if updated is None else updated,
        "unavailableReplicas": unavailable,
        "observedGeneration": observed,
    }
    spec: dict[str, Any] = {"clusterName": "prod", "replicas": replicas}
    if paused is not None:
        spec["paused"] = paused
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "MachineDeployment",
        "metadata": {
            "name": "md-0",
            "namespace": "default",
            "generation": generation,
            "resourceVersion": "7",
            "annotations": dict(annotations or {}),
        },
        "spec": spec,
        "status": {k: v for k, v in status.items() if v is not None},
    }


def bounds(low: str | None = None, high: str | None = None) -> dict[str, str]:
    found = {MIN_SIZE_ANNOTATION: low, MAX_SIZE_ANNOTATION: high}
    return {k: v for k, v in found.items() if v is not None}


def api_exception(status: int, reason: str) -> ApiException:
    error = ApiException(status=status, reason=reason)
    error.body = json.dumps({"kind": "Status", "reason": reason, "message": "it failed"})
    return error


# --------------------------------------------------------------------------- ids


@pytest.mark.parametrize(
    ("object_id", "expected"),
    [
        pytest.param("default/md-0", MD, id="namespace and name are a MachineDeployment"),
        pytest.param(" default/md-0 ", MD, id="surrounding blanks are ignored"),
        pytest.param(
            "machinedeployments/default/md-0", MD, id="the explicit MachineDeployment form"
        ),
        pytest.param("machinedeployment/default/md-0", MD, id="the singular resource name"),
        pytest.param(
            "machinesets/team-a/ms-0",
            ObjectRef("MachineSet", "team-a", "ms-0"),
            id="a machinesets prefix names a MachineSet",
        ),
        pytest.param(
            "machineset/team-a/ms-0",
            ObjectRef("MachineSet", "team-a", "ms-0"),
            id="the singular MachineSet prefix",
        ),
        pytest.param(
            "machinesets/default",
            ObjectRef("MachineDeployment", "machinesets", "default"),
            id="two parts are always namespace and name",
        ),
        pytest.param(
            "default/pool.eu-1",
            ObjectRef("MachineDeployment", "default", "pool.eu-1"),
            id="a name may hold dots",
        ),
        pytest.param(
            f"{'n' * 63}/{'m' * 253}",
            ObjectRef("MachineDeployment", "n" * 63, "m" * 253),
            id="the longest namespace and name",
        ),
    ],
)
def test_an_id_is_namespace_and_name_with_an_optional_resource_prefix(
    object_id: str, expected: ObjectRef
) -> None:
    assert parse_object_id(object_id) == expected


@pytest.mark.parametrize(
    ("object_id", "detail"),
    [
        pytest.param("md-0", "expected two or three parts", id="a bare name"),
        pytest.param("   ", "expected two or three parts", id="blank"),
        pytest.param("a/b/c/d", "expected two or three parts", id="four parts"),
        pytest.param("machines/default/m-0", "'machines' is not", id="another resource"),
        pytest.param("MachineSets/default/ms", "'MachineSets' is not", id="a capitalised prefix"),
        pytest.param("/md-0", "namespace '' is not a DNS label", id="an empty namespace"),
        pytest.param("default/", "name '' is not a DNS subdomain", id="an empty name"),
        pytest.param("Default/md-0", "namespace 'Default'", id="an upper-case namespace"),
        pytest.param("team.a/md-0", "namespace 'team.a'", id="a namespace with a dot"),
        pytest.param(f"{'n' * 64}/md-0", "is not a DNS label", id="a namespace over 63"),
        pytest.param("default/md_0", "name 'md_0'", id="a name with an underscore"),
        pytest.param("default/-md", "name '-md'", id="a name starting with a dash"),
        pytest.param(f"default/{'m' * 254}", "is not a DNS subdomain", id="a name over 253"),
    ],
)
def test_any_other_id_is_a_spec_error_that_shows_the_accepted_forms(
    object_id: str, detail: str
) -> None:
    with pytest.raises(SpecError, match=detail) as caught:
        parse_object_id(object_id)
    assert (caught.value.path, caught.value.code) == ("spec.id", "InvalidId")
    assert "machinesets/NAMESPACE/NAME" in str(caught.value)


def test_an_object_ref_names_its_api_paths() -> None:
    ref = ObjectRef("MachineSet", "default", "ms-0")
    assert (ref.path(), ref.path("scale"), str(ref)) == (
        "machinesets/default/ms-0",
        "machinesets/default/ms-0/scale",
        "MachineSet default/ms-0",
    )


def node_group(object_id: str) -> ScalableNodeGroup:
    return ScalableNodeGroup.model_validate(
        {
            "metadata": {"name": "workers"},
            "spec": {"type": "ClusterAPIMachineDeployment", "id": object_id},
        }
    )


def test_validate_checks_the_id_without_any_client() -> None:
    validate(node_group("machinesets/default/ms-0"))
    with pytest.raises(SpecError) as caught:
        validate(node_group("ms-0"))
    assert caught.value.path == "spec.id"


# --------------------------------------------------------------------------- bounds


@pytest.mark.parametrize(
    ("annotations", "expected"),
    [
        pytest.param({}, (None, None), id="no annotations means no bounds"),
        pytest.param(bounds("1", "10"), (1, 10), id="both annotations"),
        pytest.param(bounds("0", "0"), (0, 0), id="zero is a valid size"),
        pytest.param(bounds(low="2"), (2, None), id="only a minimum"),
        pytest.param(bounds(high="8"), (None, 8), id="only a maximum"),
        pytest.param(bounds("3", "3"), (3, 3), id="equal bounds"),
        pytest.param({"other": "x", **bounds("1", "5")}, (1, 5), id="other annotations ignored"),
    ],
)
def test_the_bounds_come_from_the_cluster_autoscaler_annotations(
    annotations: dict[str, str], expected: tuple[int | None, int | None]
) -> None:
    assert parse_bounds(annotations) == expected


@pytest.mark.parametrize(
    ("annotations", "named"),
    [
        pytest.param(bounds("one", "5"), MIN_SIZE_ANNOTATION, id="a word as the minimum"),
        pytest.param(bounds("1", "-5"), MAX_SIZE_ANNOTATION, id="a negative maximum"),
        pytest.param(bounds("1", "2.5"), MAX_SIZE_ANNOTATION, id="a fraction"),
        pytest.param(bounds("", "5"), MIN_SIZE_ANNOTATION, id="an empty value"),
        pytest.param(bounds(" 1", "5"), MIN_SIZE_ANNOTATION, id="a value with blanks"),
        pytest.param(bounds("1", "٣"), MAX_SIZE_ANNOTATION, id="non-ascii digits"),
        pytest.param({MIN_SIZE_ANNOTATION: 1}, MIN_SIZE_ANNOTATION, id="not a string"),
        pytest.param(
            bounds("6", "5"), f"{MIN_SIZE_ANNOTATION} \\(6\\) is greater than", id="min above max"
        ),
    ],
)
def test_an_invalid_bounds_annotation_is_a_permanent_error_naming_it(
    annotations: dict[str, Any], named: str
) -> None:
    with pytest.raises(PermanentError, match=named) as caught:
        parse_bounds(annotations)
    assert caught.value.code == "InvalidAnnotation"


# --------------------------------------------------------------------------- paused


@pytest.mark.parametrize(
    ("obj", "reasons"),
    [
        pytest.param(machine_deployment(), [], id="not paused"),
        pytest.param(
            machine_deployment(annotations={PAUSED_ANNOTATION: ""}),
            [f"annotation {PAUSED_ANNOTATION}"],
            id="the annotation with an empty value pauses",
        ),
        pytest.param(
            machine_deployment(annotations={PAUSED_ANNOTATION: "false"}),
            [f"annotation {PAUSED_ANNOTATION}"],
            id="the annotation pauses whatever its value",
        ),
        pytest.param(machine_deployment(paused=True), ["spec.paused is true"], id="spec.paused"),
        pytest.param(machine_deployment(paused=False), [], id="spec.paused false"),
        pytest.param(
            machine_deployment(paused=True, annotations={PAUSED_ANNOTATION: "true"}),
            [f"annotation {PAUSED_ANNOTATION}", "spec.paused is true"],
            id="both markers",
        ),
        pytest.param({"metadata": None}, [], id="an object without metadata or spec"),
    ],
)
def test_an_object_is_paused_by_the_annotation_or_spec_paused(
    obj: dict[str, Any], reasons: list[str]
) -> None:
    assert pause_reasons(obj) == reasons


# --------------------------------------------------------------------------- counting


@pytest.mark.parametrize(
    ("obj", "desired", "stable", "message"),
    [
        pytest.param(machine_deployment(4), 4, True, "4 of 4 machines ready", id="settled"),
        pytest.param(machine_deployment(1), 1, True, "1 of 1 machine ready", id="one machine"),
        pytest.param(machine_deployment(0), 0, True, "0 of 0 machines ready", id="scaled to zero"),
        pytest.param(
            machine_deployment(4, ready=2, existing=4, unavailable=2),
            4,
            False,
            "2 of 4 machines ready, 4 exist, 2 unavailable",
            id="machines still booting",
        ),
        pytest.param(
            machine_deployment(2, ready=2, existing=2, updated=2),
            4,
            False,
            "2 of 4 machines ready",
            id="the Scale asks for more than exist yet",
        ),
        pytest.param(
            machine_deployment(3, ready=3, existing=3),
            2,
            False,
            "3 machines ready, 2 desired",
            id="scaling in",
        ),
        pytest.param(
            machine_deployment(3, ready=3, existing=4, updated=1),
            3,
            False,
            "3 of 3 machines ready, 4 exist, 1 of 4 up to date",
            id="a rolling update",
        ),
        pytest.param(
            machine_deployment(3, updated=2),
            3,
            False,
            "3 of 3 machines ready, 2 of 3 up to date",
            id="a machine not up to date yet",
        ),
        pytest.param(
            machine_deployment(3, generation=2, observed=1),
            3,
            False,
            "3 of 3 machines ready, the latest spec is not observed by the controller yet",
            id="the controller has not seen the latest spec",
        ),
        pytest.param(
            machine_deployment(3, observed=None),
            3,
            True,
            "3 of 3 machines ready",
            id="no observedGeneration is not held against it",
        ),
        pytest.param(
            {"metadata": {"name": "md-0"}, "spec": {"replicas": 2}},
            2,
            False,
            "0 of 2 machines ready",
            id="no status yet reads as nothing ready",
        ),
        pytest.param(
            {"metadata": {}, "status": {"replicas": 2, "readyReplicas": 2}},
            2,
            True,
            "2 of 2 machines ready",
            id="a MachineSet status without updatedReplicas",
        ),
    ],
)
def test_the_object_is_stable_when_every_machine_is_ready_available_and_up_to_date(
    obj: dict[str, Any], desired: int, stable: bool, message: str
) -> None:
    summary = summarize(obj, desired)
    assert (summary.stable, summary.message) == (stable, message)


def test_the_summary_becomes_the_loop_state_with_the_annotation_bounds() -> None:
    obj = machine_deployment(4, ready=3, unavailable=1, annotations=bounds("2", "8"))
    assert summarize(obj, 4).state() == NodeGroupState(
        desired=4,
        ready=3,
        min_size=2,
        max_size=8,
        stable=False,
        message="3 of 4 machines ready, 4 exist, 1 unavailable",
    )


def test_ready_is_status_ready_replicas_and_missing_means_zero() -> None:
    obj = machine_deployment(3)
    del obj["status"]["readyReplicas"]
    assert summarize(obj, 3) == MachineSummary(desired=3, ready=0, existing=3, updated=3)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        pytest.param("readyReplicas", -1, id="negative"),
        pytest.param("replicas", "3", id="text"),
        pytest.param("unavailableReplicas", True, id="bool"),
        pytest.param("updatedReplicas", 1.5, id="fraction"),
    ],
)
def test_a_malformed_status_count_is_a_permanent_error(field: str, value: Any) -> None:
    obj = machine_deployment(3)
    obj["status"][field] = value
    with pytest.raises(PermanentError, match=f"status.{field}") as caught:
        summarize(obj, 3)
    assert caught.value.code == "MalformedResponse"


@pytest.mark.parametrize(
    ("scale", "expected"),
    [
        pytest.param(
            {"metadata": {"resourceVersion": "9"}, "spec": {"replicas": 4}}, (4, "9"), id="a Scale"
        ),
        pytest.param(
            {"metadata": {"resourceVersion": "9"}, "spec": {}}, (0, "9"), id="zero is omitted"
        ),
    ],
)
def test_the_scale_gives_the_desired_count_and_its_resource_version(
    scale: dict[str, Any], expected: tuple[int, str]
) -> None:
    assert read_scale(scale) == expected


@pytest.mark.parametrize(
    ("scale", "detail"),
    [
        pytest.param([], "the Scale is not an object", id="not an object"),
        pytest.param({"metadata": {"resourceVersion": "9"}}, "spec.replicas", id="no spec"),
        pytest.param(
            {"metadata": {"resourceVersion": "9"}, "spec": {"replicas": -2}},
            "spec.replicas",
            id="negative replicas",
        ),
        pytest.param({"metadata": {}, "spec": {"replicas": 1}}, "resourceVersion", id="no rv"),
    ],
)
def test_a_malformed_scale_is_a_permanent_error(scale: Any, detail: str) -> None:
    with pytest.raises(PermanentError, match=detail) as caught:
        read_scale(scale)
    assert caught.value.code == "MalformedResponse"


# --------------------------------------------------------------------------- the provider


class FakeCustomObjects:
    """Answers the four CustomObjectsApi calls for one stored object, with its Scale."""

    def __init__(self, obj: dict[str, Any] | None) -> None:
        self.obj = obj
        self.version = 7
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self.errors: dict[str, Exception] = {}

    def _answer(self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        assert kwargs == {"_request_timeout": (5.0, 10.0)}
        self.calls.append((method, args))
        if method in self.errors:
            raise self.errors.pop(method)
        if self.obj is None:
            raise api_exception(404, "NotFound")

    def _scale(self) -> dict[str, Any]:
        assert self.obj is not None
        return {
            "kind": "Scale",
            "metadata": {"resourceVersion": str(self.version)},
            "spec": {"replicas": self.obj["spec"]["replicas"]},
            "status": {"replicas": self.obj["status"].get("replicas", 0)},
        }

    def get_namespaced_custom_object(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        self._answer("get", args, kwargs)
        return copy.deepcopy(self.obj) or {}

    def get_namespaced_custom_object_scale(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        self._answer("get scale", args, kwargs)
        return self._scale()

    def patch_namespaced_custom_object_scale(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        self._answer("patch scale", args, kwargs)
        assert self.obj is not None
        body = args[-1]
        if body["metadata"]["resourceVersion"] != str(self.version):
            raise api_exception(409, "Conflict")
        if body["spec"]["replicas"] != self.obj["spec"]["replicas"]:
            self.obj["spec"]["replicas"] = body["spec"]["replicas"]
            self.version += 1
        return self._scale()

    def touch(self) -> None:
        """Someone else changed the object: a new resourceVersion."""
        self.version += 1

    def methods(self) -> list[str]:
        return [method for method, _ in self.calls]


class FakeKube:
    """Stands in for :class:`autoscaler.kube.KubeClients`."""

    def __init__(self, api: FakeCustomObjects) -> None:
        self.api = api

    def custom(self) -> FakeCustomObjects:
        return self.api


def provider(obj: dict[str, Any] | None, ref: ObjectRef = MD) -> ClusterAPIGroup:
    return ClusterAPIGroup(ref, FakeKube(FakeCustomObjects(obj)))


def fake(group: ClusterAPIGroup) -> FakeCustomObjects:
    api: FakeCustomObjects = group._clients.custom()
    return api


def replicas(group: ClusterAPIGroup) -> Any:
    stored = fake(group).obj
    assert stored is not None
    return stored["spec"]["replicas"]


def test_the_factory_returns_a_provider_without_calling_the_api() -> None:
    kube = FakeKube(FakeCustomObjects(machine_deployment()))
    built = create(
        node_group("machinesets/default/ms-0"), BackendContext(clock=FakeClock(), kube=kube)
    )
    assert isinstance(built, Provider)
    assert built.ref == ObjectRef("MachineSet", "default", "ms-0")
    assert kube.api.calls == []


def test_the_factory_reports_a_bad_id_on_the_spec() -> None:
    with pytest.raises(SpecError) as caught:
        create(node_group("md-0"), BackendContext(clock=FakeClock(), kube=None))
    assert caught.value.path == "spec.id"


def test_building_the_provider_does_not_import_kubernetes() -> None:
    code = (
        "import sys\n"
        "from autoscaler.api import BackendContext, ScalableNodeGroup\n"
        "from providers.cluster_api import create\n"
        "r = ScalableNodeGroup.model_validate({'metadata': {'name': 'w'}, "
        "'spec': {'type': 'ClusterAPIMachineDeployment', 'id': 'default/md-0'}})\n"
        "create(r, BackendContext(clock=lambda: 0.0))\n"
        "assert 'kubernetes' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_a_read_gets_the_scale_first_then_the_object_of_the_right_resource() -> None:
    group = provider(machine_deployment(3), ObjectRef("MachineSet", "team", "ms-0"))
    group.get_replicas()
    resource_args = (GROUP, VERSION, "team", "machinesets", "ms-0")
    assert fake(group).calls == [("get scale", resource_args), ("get", resource_args)]


def test_set_replicas_patches_the_scale_with_the_last_read_resource_version() -> None:
    group = provider(machine_deployment(3, annotations=bounds("1", "5")))
    group.get_replicas()
    group.set_replicas(5)
    method, args = fake(group).calls[-1]
    assert method == "patch scale"
    assert args[-1] == {"metadata": {"resourceVersion": "7"}, "spec": {"replicas": 5}}


def test_a_second_write_uses_the_resource_version_its_first_write_returned() -> None:
    group = provider(machine_deployment(3))
    group.get_replicas()
    group.set_replicas(4)
    group.set_replicas(2)
    assert fake(group).methods() == ["get scale", "get", "patch scale", "patch scale"]
    assert replicas(group) == 2


def test_set_replicas_reads_first_when_nothing_was_read() -> None:
    group = provider(machine_deployment(3))
    group.set_replicas(4)
    assert fake(group).methods() == ["get scale", "get", "patch scale"]


@pytest.mark.parametrize(
    ("annotations", "target", "shown"),
    [
        pytest.param(bounds("2", "5"), 1, r"\[2, 5\]", id="below the minimum"),
        pytest.param(bounds("2", "5"), 6, r"\[2, 5\]", id="above the maximum"),
        pytest.param(bounds(high="5"), 6, r"\[0, 5\]", id="above a lone maximum"),
        pytest.param(bounds(low="2"), 1, r"\[2, ∞\]", id="below a lone minimum"),
    ],
)
def test_a_count_outside_the_annotation_bounds_is_refused_before_calling(
    annotations: dict[str, str], target: int, shown: str
) -> None:
    group = provider(machine_deployment(3, annotations=annotations))
    group.get_replicas()
    with pytest.raises(PermanentError, match=shown) as caught:
        group.set_replicas(target)
    assert caught.value.code == "OutOfBounds"
    assert "patch scale" not in fake(group).methods()


@pytest.mark.parametrize(
    "obj",
    [
        pytest.param(machine_deployment(annotations={PAUSED_ANNOTATION: ""}), id="annotation"),
        pytest.param(machine_deployment(paused=True), id="spec.paused"),
    ],
)
def test_a_paused_object_is_reported_and_never_written(obj: dict[str, Any]) -> None:
    group = provider(obj)
    with pytest.raises(PermanentError, match="MachineDeployment default/md-0 is paused") as read:
        group.get_replicas()
    with pytest.raises(PermanentError, match="is paused") as write:
        group.set_replicas(4)
    assert (read.value.code, write.value.code) == ("Paused", "Paused")
    assert "patch scale" not in fake(group).methods()


def test_a_machine_set_owned_by_a_machine_deployment_is_refused() -> None:
    obj = machine_deployment(2)
    obj["metadata"]["ownerReferences"] = [
        {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Cluster", "name": "prod"},
        {"apiVersion": f"{GROUP}/{VERSION}", "kind": "MachineDeployment", "name": "md-0"},
    ]
    group = provider(obj, ObjectRef("MachineSet", "default", "ms-0"))
    with pytest.raises(PermanentError, match="owned by MachineDeployment default/md-0") as caught:
        group.get_replicas()
    assert caught.value.code == "OwnedByMachineDeployment"


def test_a_machine_deployment_with_owners_is_scaled_as_usual() -> None:
    obj = machine_deployment(2)
    obj["metadata"]["ownerReferences"] = [{"kind": "MachineDeployment", "name": "other"}]
    assert provider(obj).get_replicas().desired == 2


def test_a_conflict_is_retryable_and_the_next_write_reads_again() -> None:
    group = provider(machine_deployment(3))
    group.get_replicas()
    fake(group).touch()  # changed by someone else since the read

    with pytest.raises(RetryableError, match="PATCH machinedeployments/default/md-0/scale"):
        group.set_replicas(4)
    group.set_replicas(4)

    assert fake(group).methods() == ["get scale", "get", "patch scale"] * 2
    assert replicas(group) == 4


def test_a_write_after_a_failed_read_reads_again() -> None:
    group = provider(machine_deployment(3))
    group.get_replicas()
    fake(group).errors["get"] = api_exception(503, "ServiceUnavailable")
    with pytest.raises(RetryableError):
        group.get_replicas()
    group.set_replicas(4)
    assert fake(group).methods()[-3:] == ["get scale", "get", "patch scale"]


@pytest.mark.parametrize(
    ("method", "call", "kind", "action"),
    [
        pytest.param(
            "get scale",
            "read",
            NotFoundError,
            "GET machinedeployments/default/md-0/scale: 404",
            id="a missing object is not found",
        ),
        pytest.param(
            "get",
            "read",
            PermanentError,
            "GET machinedeployments/default/md-0: 403",
            id="a forbidden read is permanent",
        ),
        pytest.param(
            "patch scale",
            "write",
            RetryableError,
            "PATCH machinedeployments/default/md-0/scale: 500",
            id="a server error on the write is retryable",
        ),
    ],
)
def test_api_errors_are_translated_with_the_request_that_failed(
    method: str, call: str, kind: type[AutoscalerError], action: str
) -> None:
    group = provider(machine_deployment(3))
    status = {NotFoundError: 404, PermanentError: 403, RetryableError: 500}[kind]
    fake(group).errors[method] = api_exception(status, "Failure")
    with pytest.raises(kind, match=action) as caught:
        if call == "read":
            group.get_replicas()
        else:
            group.set_replicas(4)
    assert isinstance(caught.value.__cause__, ApiException)


# --------------------------------------------------------------------------- the docs page


def test_the_example_on_the_provider_page_is_a_valid_spec() -> None:
    page = (ROOT / "docs/providers/cluster-api.md").read_text()
    example = re.search(r"```yaml\n(.*?)```", page, re.DOTALL)
    assert example is not None

    result = load_text(example.group(1), "cluster-api.md")

    assert result.issues == []
    (group,) = result.specs.node_groups.values()
    assert parse_object_id(group.spec.id) == ObjectRef(
        "MachineDeployment", "clusters", "prod-workers"
    )
    assert len(result.specs.producers) == len(result.specs.autoscalers) == 1
