"""The EKS managed node group provider: ids, response checks, update tracking (fake clients)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from autoscaler.api import BackendContext, NodeGroupState, Provider, ScalableNodeGroup
from autoscaler.clock import FakeClock
from autoscaler.errors import NotFoundError, PermanentError, RetryableError, SpecError
from providers.aws_eks import (
    UPDATE_SETTLE_SECONDS,
    EKSNodeGroup,
    NodegroupRef,
    NodegroupSummary,
    PendingUpdate,
    count_ready_instances,
    create,
    estimate_ready,
    node_group_state,
    parse_nodegroup_id,
    summarize_nodegroup,
)

ARN = "arn:aws:eks:eu-west-1:123456789012:nodegroup/prod/workers/fa1d7857-b514-416c-98b1"


def client_error(
    code: str, status: int = 400, operation: str = "UpdateNodegroupConfig"
) -> ClientError:
    return ClientError(
        {
            "Error": {"Code": code, "Message": "it failed"},
            "ResponseMetadata": {"HTTPStatusCode": status},
        },
        operation,
    )


def nodegroup(
    desired: int = 2,
    min_size: int = 1,
    max_size: int = 6,
    status: str = "ACTIVE",
    **extra: Any,
) -> dict[str, Any]:
    return {
        "nodegroup": {
            "nodegroupName": "workers",
            "clusterName": "prod",
            "status": status,
            "scalingConfig": {"minSize": min_size, "maxSize": max_size, "desiredSize": desired},
            "health": {"issues": []},
            **extra,
        }
    }


def asg(name: str, *states: tuple[str, str]) -> dict[str, Any]:
    return {
        "AutoScalingGroupName": name,
        "Instances": [{"LifecycleState": s, "HealthStatus": h} for s, h in states],
    }


HEALTHY = ("InService", "Healthy")


class FakeEKS:
    """A node group whose updates finish when the test says so (``describe_update`` statuses)."""

    def __init__(self, response: dict[str, Any] | None = None) -> None:
        self.response = response or nodegroup()
        #: ``None``: DescribeUpdate answers a 404 page like moto does.
        self.update_status: str | None = "InProgress"
        self.update_errors: list[dict[str, str]] = []
        self.update_error: Exception | None = None
        self.describe_update_error: Exception | None = None
        self.immediate_status = "InProgress"
        self.updates: list[dict[str, Any]] = []
        self.describe_update_calls = 0

    def describe_nodegroup(self, clusterName: str, nodegroupName: str) -> dict[str, Any]:
        assert (clusterName, nodegroupName) == ("prod", "workers")
        return self.response

    def update_nodegroup_config(self, **params: Any) -> dict[str, Any]:
        if self.update_error is not None:
            raise self.update_error
        self.updates.append(params)
        self.response["nodegroup"]["scalingConfig"]["desiredSize"] = params["scalingConfig"][
            "desiredSize"
        ]
        self.update_status = "InProgress" if self.update_status is not None else None
        return {"update": {"id": f"u{len(self.updates)}", "status": self.immediate_status}}

    def describe_update(self, name: str, nodegroupName: str, updateId: str) -> dict[str, Any]:
        self.describe_update_calls += 1
        if self.describe_update_error is not None:
            raise self.describe_update_error
        if self.update_status is None:
            raise client_error("404", 404, "DescribeUpdate")
        return {
            "update": {"id": updateId, "status": self.update_status, "errors": self.update_errors}
        }


class FakeAutoScaling:
    def __init__(self, *groups: dict[str, Any]) -> None:
        self.groups = list(groups)

    def describe_auto_scaling_groups(self, AutoScalingGroupNames: list[str]) -> dict[str, Any]:
        found = [g for g in self.groups if g["AutoScalingGroupName"] in AutoScalingGroupNames]
        return {"AutoScalingGroups": found}


class FakeClients:
    def __init__(self, eks: FakeEKS, autoscaling: FakeAutoScaling | None = None) -> None:
        self.services = {"eks": eks, "autoscaling": autoscaling or FakeAutoScaling()}
        self.asked: list[tuple[str, str | None]] = []

    def client(self, service: str, region: str | None = None) -> Any:
        self.asked.append((service, region))
        return self.services[service]


def make(
    eks: FakeEKS | None = None,
    autoscaling: FakeAutoScaling | None = None,
    clock: FakeClock | None = None,
) -> tuple[EKSNodeGroup, FakeEKS, FakeClock]:
    eks = eks or FakeEKS()
    clock = clock or FakeClock()
    group = EKSNodeGroup(NodegroupRef("prod", "workers"), FakeClients(eks, autoscaling), clock)
    return group, eks, clock


def summary(**fields: Any) -> NodegroupSummary:
    values: dict[str, Any] = {"desired": 3, "min_size": 1, "max_size": 6, "status": "ACTIVE"}
    values.update(fields)
    return NodegroupSummary(**values)


# --------------------------------------------------------------------------- ids


@pytest.mark.parametrize(
    ("nodegroup_id", "expected"),
    [
        pytest.param("prod/workers", NodegroupRef("prod", "workers"), id="cluster and node group"),
        pytest.param(" prod/workers ", NodegroupRef("prod", "workers"), id="blanks are ignored"),
        pytest.param(ARN, NodegroupRef("prod", "workers", "eu-west-1"), id="an ARN with region"),
        pytest.param(
            "arn:aws:eks:eu-west-1:123456789012:nodegroup/prod/workers",
            NodegroupRef("prod", "workers", "eu-west-1"),
            id="an ARN without the UUID",
        ),
        pytest.param(
            ARN.replace("arn:aws:", "arn:aws-us-gov:").replace("eu-west-1", "us-gov-west-1"),
            NodegroupRef("prod", "workers", "us-gov-west-1"),
            id="an ARN in another partition",
        ),
    ],
)
def test_a_node_group_id_is_cluster_slash_name_or_an_arn(
    nodegroup_id: str, expected: NodegroupRef
) -> None:
    assert parse_nodegroup_id(nodegroup_id) == expected


@pytest.mark.parametrize(
    "nodegroup_id",
    [
        pytest.param("workers", id="a name without the cluster"),
        pytest.param("prod/", id="an empty node group"),
        pytest.param("/workers", id="an empty cluster"),
        pytest.param("a/b/c", id="three parts"),
        pytest.param("prod/work ers", id="a blank inside"),
        pytest.param("prod:x/workers", id="a colon"),
        pytest.param(ARN.replace(":eks:", ":autoscaling:"), id="an ARN of another service"),
        pytest.param(ARN.replace("nodegroup/", "cluster/"), id="a cluster ARN"),
        pytest.param(ARN.replace("eu-west-1", ""), id="an ARN without a region"),
        pytest.param(ARN.replace("/workers/", "//"), id="an ARN with an empty node group"),
        pytest.param("arn:aws:eks", id="a truncated ARN"),
    ],
)
def test_anything_else_is_a_spec_error_on_the_id(nodegroup_id: str) -> None:
    with pytest.raises(SpecError) as caught:
        parse_nodegroup_id(nodegroup_id)
    assert (caught.value.path, caught.value.code) == ("spec.id", "InvalidId")


# --------------------------------------------------------------------------- responses


def test_a_described_node_group_is_summarized() -> None:
    response = nodegroup(
        4,
        2,
        8,
        health={"issues": [{"code": "AsgInstanceLaunchFailures", "message": "no capacity"}]},
        resources={"autoScalingGroups": [{"name": "eks-1"}, {"name": "eks-2"}]},
    )
    assert summarize_nodegroup(response) == NodegroupSummary(
        desired=4,
        min_size=2,
        max_size=8,
        status="ACTIVE",
        health_issues=("AsgInstanceLaunchFailures",),
        auto_scaling_groups=("eks-1", "eks-2"),
    )


def test_health_and_resources_may_be_absent() -> None:
    response = nodegroup()
    del response["nodegroup"]["health"]
    assert summarize_nodegroup(response) == summary(desired=2)


def _scaling(**fields: Any) -> dict[str, Any]:
    response = nodegroup()
    scaling = response["nodegroup"]["scalingConfig"]
    for key, value in fields.items():
        if value is None:
            del scaling[key]
        else:
            scaling[key] = value
    return response


@pytest.mark.parametrize(
    ("response", "detail"),
    [
        pytest.param({}, "nodegroup is missing", id="no node group"),
        pytest.param(
            {"nodegroup": {"status": "ACTIVE"}}, "scalingConfig is missing", id="no config"
        ),
        pytest.param(_scaling(desiredSize=None), "desiredSize is missing", id="no desiredSize"),
        pytest.param(_scaling(minSize=None), "minSize is missing", id="no minSize"),
        pytest.param(_scaling(maxSize="6"), "maxSize is missing or not an integer", id="text"),
        pytest.param(_scaling(desiredSize=-1), "desiredSize is negative", id="negative"),
        pytest.param(_scaling(minSize=7), "minSize 7 is greater than maxSize 6", id="min>max"),
        pytest.param(nodegroup(status=""), "status is missing", id="no status"),
        pytest.param(
            nodegroup(resources={"autoScalingGroups": [{}]}),
            r"autoScalingGroups\[0\].name is missing",
            id="an Auto Scaling group without a name",
        ),
        pytest.param(
            nodegroup(health={"issues": "bad"}), "health.issues is not a list", id="bad issues"
        ),
    ],
)
def test_a_malformed_node_group_is_a_permanent_error(response: dict[str, Any], detail: str) -> None:
    with pytest.raises(PermanentError, match=detail) as caught:
        summarize_nodegroup(response)
    assert caught.value.code == "MalformedResponse"


@pytest.mark.parametrize(
    ("groups", "ready"),
    [
        pytest.param([], 0, id="no groups"),
        pytest.param([asg("a", HEALTHY, HEALTHY)], 2, id="healthy in service"),
        pytest.param([asg("a", HEALTHY), asg("b", HEALTHY)], 2, id="summed across groups"),
        pytest.param([asg("a", ("InService", "Unhealthy"))], 0, id="unhealthy is not ready"),
        pytest.param([asg("a", ("Pending", "Healthy"))], 0, id="pending is not ready"),
        pytest.param([asg("a", ("Standby", "Healthy"))], 0, id="standby is not ready"),
    ],
)
def test_ready_instances_are_in_service_and_healthy(
    groups: list[dict[str, Any]], ready: int
) -> None:
    assert count_ready_instances(groups) == ready


@pytest.mark.parametrize(
    "groups",
    [
        pytest.param([{"AutoScalingGroupName": "a"}], id="no instance list"),
        pytest.param([asg("a") | {"Instances": [{"LifecycleState": "InService"}]}], id="no health"),
        pytest.param([asg("a") | {"Instances": ["i-1"]}], id="an instance that is not an object"),
    ],
)
def test_malformed_auto_scaling_groups_are_a_permanent_error(groups: list[dict[str, Any]]) -> None:
    with pytest.raises(PermanentError) as caught:
        count_ready_instances(groups)
    assert caught.value.code == "MalformedResponse"


@pytest.mark.parametrize(
    ("fields", "updating", "previous", "ready"),
    [
        pytest.param({}, False, None, 3, id="active and healthy: desired"),
        pytest.param({}, True, 2, 2, id="while our update runs: the last count"),
        pytest.param({}, True, None, 0, id="while our update runs with no count yet: 0"),
        pytest.param({"status": "UPDATING"}, False, 2, 2, id="updating: the last count"),
        pytest.param({"status": "CREATING"}, False, None, 0, id="creating: 0"),
        pytest.param({"status": "DEGRADED"}, False, 1, 1, id="degraded: the last count"),
        pytest.param(
            {"health_issues": ("AsgInstanceLaunchFailures",)},
            False,
            1,
            1,
            id="health issues: the last count",
        ),
    ],
)
def test_the_ready_estimate_never_invents_progress(
    fields: dict[str, Any], updating: bool, previous: int | None, ready: int
) -> None:
    assert estimate_ready(summary(**fields), updating, previous) == ready


UPDATE = PendingUpdate("u1", 3, 0.0)


@pytest.mark.parametrize(
    ("fields", "ready", "options", "stable", "message"),
    [
        pytest.param({}, 3, {}, True, "3 of 3 nodes ready", id="active and ready"),
        pytest.param({"desired": 1}, 1, {}, True, "1 of 1 node ready", id="one node"),
        pytest.param({}, 2, {}, False, "2 of 3 nodes ready", id="not all ready"),
        pytest.param({}, 5, {}, False, "5 nodes ready, 3 desired", id="more ready than desired"),
        pytest.param(
            {"status": "UPDATING"},
            3,
            {},
            False,
            "3 of 3 nodes ready, status UPDATING",
            id="updating is not stable",
        ),
        pytest.param(
            {},
            2,
            {"update": UPDATE, "estimated": True},
            False,
            "2 of 3 nodes ready (estimated from the node group status), update u1 to 3 in progress",
            id="our update in progress",
        ),
        pytest.param(
            {"health_issues": ("Ec2LaunchTemplateNotFound",)},
            3,
            {},
            True,
            "3 of 3 nodes ready, health issues: Ec2LaunchTemplateNotFound",
            id="health issues are shown",
        ),
        pytest.param(
            {},
            3,
            {"last_failure": "update u1 to 3 failed: no details"},
            True,
            "3 of 3 nodes ready, update u1 to 3 failed: no details",
            id="a failed update is shown",
        ),
    ],
)
def test_the_node_group_is_stable_when_active_not_updating_and_ready(
    fields: dict[str, Any], ready: int, options: dict[str, Any], stable: bool, message: str
) -> None:
    state = node_group_state(summary(**fields), ready, **options)
    assert (state.stable, state.message) == (stable, message)
    assert (state.min_size, state.max_size) == (1, 6)


# --------------------------------------------------------------------------- the provider


def resource(nodegroup_id: str) -> ScalableNodeGroup:
    return ScalableNodeGroup.model_validate(
        {"metadata": {"name": "workers"}, "spec": {"type": "AWSEKSNodeGroup", "id": nodegroup_id}}
    )


def test_the_factory_returns_a_provider_without_calling_aws() -> None:
    clients = FakeClients(FakeEKS())
    built = create(resource(ARN), BackendContext(clock=FakeClock(), aws=clients))
    assert isinstance(built, Provider)
    assert built.ref == NodegroupRef("prod", "workers", "eu-west-1")
    assert clients.asked == []


def test_building_the_provider_does_not_import_boto3() -> None:
    code = (
        "import sys\n"
        "from autoscaler.api import BackendContext, ScalableNodeGroup\n"
        "from providers.aws_eks import create\n"
        "r = ScalableNodeGroup.model_validate({'metadata': {'name': 'w'}, "
        "'spec': {'type': 'AWSEKSNodeGroup', 'id': 'prod/workers'}})\n"
        "create(r, BackendContext(clock=lambda: 0.0))\n"
        "assert 'boto3' not in sys.modules and 'botocore' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_ready_comes_from_the_node_group_auto_scaling_groups() -> None:
    eks = FakeEKS(nodegroup(3, resources={"autoScalingGroups": [{"name": "eks-1"}]}))
    group, _, _ = make(eks, FakeAutoScaling(asg("eks-1", HEALTHY, HEALTHY, ("Pending", "Healthy"))))
    assert group.get_replicas() == NodeGroupState(
        desired=3, ready=2, min_size=1, max_size=6, stable=False, message="2 of 3 nodes ready"
    )


def test_ready_is_estimated_when_an_auto_scaling_group_is_not_visible() -> None:
    eks = FakeEKS(nodegroup(3, resources={"autoScalingGroups": [{"name": "eks-1"}]}))
    group, _, _ = make(eks, FakeAutoScaling())
    state = group.get_replicas()
    assert (state.ready, state.stable) == (3, True)
    assert state.message == "3 of 3 nodes ready (estimated from the node group status)"


def test_an_update_sends_only_the_desired_size() -> None:
    group, eks, _ = make()
    group.get_replicas()
    group.set_replicas(4)
    assert eks.updates == [
        {"clusterName": "prod", "nodegroupName": "workers", "scalingConfig": {"desiredSize": 4}}
    ]


def test_a_second_count_waits_for_the_update_in_progress_and_then_applies() -> None:
    group, eks, _ = make()
    group.get_replicas()
    group.set_replicas(4)

    with pytest.raises(RetryableError, match="update u1 to 4 is still in progress") as caught:
        group.set_replicas(5)
    assert caught.value.code == "ResourceInUseException"
    assert len(eks.updates) == 1
    assert not group.get_replicas().stable

    eks.update_status = "Successful"
    group.set_replicas(5)
    assert [u["scalingConfig"]["desiredSize"] for u in eks.updates] == [4, 5]


def test_asking_again_for_the_count_on_its_way_sends_nothing() -> None:
    group, eks, _ = make()
    group.get_replicas()
    group.set_replicas(4)
    group.set_replicas(4)
    assert len(eks.updates) == 1


def test_asking_for_the_size_the_node_group_already_has_sends_nothing() -> None:
    group, eks, _ = make(FakeEKS(nodegroup(3)))
    group.get_replicas()
    group.set_replicas(3)
    assert eks.updates == []


def test_without_describe_update_an_update_settles_after_the_window() -> None:
    eks = FakeEKS()
    eks.update_status = None  # DescribeUpdate answers 404, as moto does
    group, eks, clock = make(eks)
    group.get_replicas()
    group.set_replicas(4)

    clock.advance(UPDATE_SETTLE_SECONDS - 0.1)
    with pytest.raises(RetryableError):
        group.set_replicas(5)
    clock.advance(0.1)
    group.set_replicas(5)

    assert [u["scalingConfig"]["desiredSize"] for u in eks.updates] == [4, 5]
    assert eks.describe_update_calls == 1  # learnt once that it is not there


def test_without_describe_update_an_updating_status_extends_the_window() -> None:
    eks = FakeEKS()
    eks.update_status = None
    group, eks, clock = make(eks)
    group.get_replicas()
    group.set_replicas(4)
    eks.response["nodegroup"]["status"] = "UPDATING"
    clock.advance(UPDATE_SETTLE_SECONDS * 2)
    group.get_replicas()

    with pytest.raises(RetryableError):
        group.set_replicas(5)

    eks.response["nodegroup"]["status"] = "ACTIVE"
    assert group.get_replicas().stable
    group.set_replicas(5)


def test_a_failed_update_is_reported_and_does_not_block_the_next() -> None:
    group, eks, _ = make()
    group.get_replicas()
    group.set_replicas(4)
    eks.update_status = "Failed"
    eks.update_errors = [{"errorCode": "NodeCreationFailure", "errorMessage": "no capacity"}]

    state = group.get_replicas()

    assert "update u1 to 4 failed: NodeCreationFailure: no capacity" in state.message
    group.set_replicas(5)
    assert "failed" not in group.get_replicas().message


def test_an_update_that_is_gone_counts_as_finished() -> None:
    group, eks, _ = make()
    group.get_replicas()
    group.set_replicas(4)
    eks.describe_update_error = client_error("ResourceNotFoundException", 404, "DescribeUpdate")
    group.set_replicas(5)
    assert len(eks.updates) == 2


def test_describe_update_throttling_is_retryable() -> None:
    group, eks, _ = make()
    group.get_replicas()
    group.set_replicas(4)
    eks.describe_update_error = client_error("ThrottlingException", 400, "DescribeUpdate")
    with pytest.raises(RetryableError, match="DescribeUpdate u1 on prod/workers"):
        group.get_replicas()


def test_an_update_refused_at_once_is_a_permanent_error() -> None:
    eks = FakeEKS()
    eks.immediate_status = "Failed"
    group, _, _ = make(eks)
    group.get_replicas()
    with pytest.raises(PermanentError) as caught:
        group.set_replicas(4)
    assert caught.value.code == "UpdateFailed"
    eks.immediate_status = "InProgress"
    group.set_replicas(5)  # nothing is left in progress
    assert len(eks.updates) == 2


@pytest.mark.parametrize(
    ("error", "kind", "code"),
    [
        pytest.param(
            client_error("ResourceInUseException", 409),
            RetryableError,
            "ResourceInUseException",
            id="someone else's update in progress is retried",
        ),
        pytest.param(
            client_error("ResourceNotFoundException", 404),
            NotFoundError,
            "ResourceNotFoundException",
            id="a missing node group is not found",
        ),
        pytest.param(
            client_error("InvalidParameterException"),
            PermanentError,
            "InvalidParameterException",
            id="an invalid parameter is permanent",
        ),
    ],
)
def test_aws_errors_on_update_are_translated(
    error: Exception, kind: type[Exception], code: str
) -> None:
    group, eks, _ = make()
    group.get_replicas()
    eks.update_error = error
    with pytest.raises(kind, match="UpdateNodegroupConfig on prod/workers") as caught:
        group.set_replicas(4)
    assert getattr(caught.value, "code", None) == code
    eks.update_error = None
    group.set_replicas(5)  # the failed call left no update behind
    assert len(eks.updates) == 1


@pytest.mark.parametrize(
    "target", [pytest.param(0, id="below minSize"), pytest.param(7, id="above maxSize")]
)
def test_a_count_outside_the_node_group_bounds_is_refused_before_calling(target: int) -> None:
    group, eks, _ = make()
    with pytest.raises(PermanentError, match=r"outside the node group's bounds \[1, 6\]") as caught:
        group.set_replicas(target)
    assert caught.value.code == "OutOfBounds"
    assert eks.updates == []


def test_concurrent_callers_start_one_update_at_a_time() -> None:
    group, eks, _ = make(FakeEKS(nodegroup(1)))  # every caller asks for a change
    group.get_replicas()
    barrier = threading.Barrier(8)
    outcomes: list[str] = []
    lock = threading.Lock()

    def resize(target: int) -> None:
        barrier.wait()
        try:
            group.set_replicas(target)
            outcome = "sent"
        except RetryableError:
            outcome = "retry"
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=resize, args=(2 + n % 4,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(eks.updates) == 1
    sent = eks.updates[0]["scalingConfig"]["desiredSize"]
    assert outcomes.count("sent") == sum(1 for n in range(8) if 2 + n % 4 == sent)


# --------------------------------------------------------------------------- IAM policy

ROOT = Path(__file__).resolve().parents[3]


def test_the_iam_policy_grants_what_this_provider_calls() -> None:
    policy = json.loads((ROOT / "deploy/aws/iam-policy.json").read_text())
    actions: set[str] = set()
    for statement in policy["Statement"]:
        action = statement["Action"]
        actions |= {action} if isinstance(action, str) else set(action)
    assert {
        "eks:DescribeNodegroup",
        "eks:UpdateNodegroupConfig",
        "eks:DescribeUpdate",
        "autoscaling:DescribeAutoScalingGroups",
    } <= actions


def test_the_provider_page_shows_the_iam_policy_file_as_it_is() -> None:
    page = (ROOT / "docs/providers/aws-eks.md").read_text()
    shown = re.search(r"```json\n(.*?)```", page, re.DOTALL)
    assert shown is not None
    assert json.loads(shown.group(1)) == json.loads(
        (ROOT / "deploy/aws/iam-policy.json").read_text()
    )
