"""The EKS managed node group provider against a moto server over HTTP.

moto applies an ``UpdateNodegroupConfig`` at once, reports it ``Successful`` and has no
``DescribeUpdate``; the provider then treats its own update as in progress for a settle window on
the injected clock, which makes "a second update while one runs" deterministic here.
"""

from __future__ import annotations

from typing import Any

import boto3
import pytest

from autoscaler.api import BackendContext, ScalableNodeGroup
from autoscaler.aws import AWSClients
from autoscaler.clock import FakeClock
from autoscaler.config import SpecSet
from autoscaler.errors import NotFoundError, PermanentError, RetryableError
from autoscaler.loop import ControlLoop
from providers.aws_eks import UPDATE_SETTLE_SECONDS, EKSNodeGroup, create
from tests.moto_server import MotoServer

pytestmark = pytest.mark.integration

ROLE = "arn:aws:iam::123456789012:role/eks"


def make_nodegroup(
    cluster: str = "prod",
    name: str = "workers",
    *,
    desired: int = 2,
    min_size: int = 1,
    max_size: int = 6,
    region: str = "us-east-1",
) -> dict[str, Any]:
    """An EKS cluster with one managed node group; returns the node group as described."""
    eks = boto3.client("eks", region_name=region)
    eks.create_cluster(name=cluster, roleArn=ROLE, resourcesVpcConfig={"subnetIds": ["subnet-1"]})
    created: dict[str, Any] = eks.create_nodegroup(
        clusterName=cluster,
        nodegroupName=name,
        nodeRole=ROLE,
        subnets=["subnet-1"],
        scalingConfig={"minSize": min_size, "maxSize": max_size, "desiredSize": desired},
    )["nodegroup"]
    return created


def scaling(cluster: str = "prod", name: str = "workers") -> dict[str, int]:
    eks = boto3.client("eks")
    config: dict[str, int] = eks.describe_nodegroup(clusterName=cluster, nodegroupName=name)[
        "nodegroup"
    ]["scalingConfig"]
    return config


def provider(nodegroup_id: str, clock: FakeClock | None = None) -> EKSNodeGroup:
    resource = ScalableNodeGroup.model_validate(
        {"metadata": {"name": "workers"}, "spec": {"type": "AWSEKSNodeGroup", "id": nodegroup_id}}
    )
    return create(resource, BackendContext(clock=clock or FakeClock(), aws=AWSClients()))


def test_a_node_group_named_cluster_slash_name_reports_its_size_and_bounds(
    aws: MotoServer,
) -> None:
    make_nodegroup(desired=2, min_size=1, max_size=6)

    state = provider("prod/workers").get_replicas()

    assert (state.desired, state.ready, state.min_size, state.max_size) == (2, 2, 1, 6)
    assert state.stable
    # moto lists an Auto Scaling group for the node group but does not create it.
    assert state.message == "2 of 2 nodes ready (estimated from the node group status)"


def test_a_node_group_named_by_arn_is_found_in_the_region_of_the_arn(aws: MotoServer) -> None:
    arn = make_nodegroup(desired=3, region="us-west-2")["nodegroupArn"]
    make_nodegroup(desired=5, region="us-east-1")  # same names, default region

    state = provider(arn).get_replicas()

    assert (state.desired, state.min_size, state.max_size) == (3, 1, 6)


def test_ready_counts_only_healthy_in_service_instances_of_the_node_group_asg(
    aws: MotoServer,
) -> None:
    created = make_nodegroup(desired=3, max_size=6)
    asg_name = created["resources"]["autoScalingGroups"][0]["name"]
    boto3.client("ec2").create_launch_template(
        LaunchTemplateName="nodes",
        LaunchTemplateData={"ImageId": "ami-12c6146b", "InstanceType": "t3.medium"},
    )
    autoscaling = boto3.client("autoscaling")
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName=asg_name,
        MinSize=1,
        MaxSize=6,
        DesiredCapacity=3,
        LaunchTemplate={"LaunchTemplateName": "nodes"},
        AvailabilityZones=["us-east-1a"],
    )
    instances = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[asg_name])[
        "AutoScalingGroups"
    ][0]["Instances"]
    autoscaling.set_instance_health(InstanceId=instances[0]["InstanceId"], HealthStatus="Unhealthy")

    state = provider("prod/workers").get_replicas()

    assert (state.desired, state.ready, state.stable) == (3, 2, False)
    assert state.message == "2 of 3 nodes ready"


def test_set_replicas_updates_the_desired_size_and_keeps_the_bounds(aws: MotoServer) -> None:
    make_nodegroup(desired=2, min_size=1, max_size=6)
    clock = FakeClock()
    group = provider("prod/workers", clock)
    group.get_replicas()

    group.set_replicas(4)

    assert scaling() == {"minSize": 1, "maxSize": 6, "desiredSize": 4}
    state = group.get_replicas()
    assert (state.desired, state.ready, state.stable) == (4, 2, False)
    assert "in progress" in state.message
    clock.advance(UPDATE_SETTLE_SECONDS)
    state = group.get_replicas()
    assert (state.desired, state.ready, state.stable) == (4, 4, True)


def test_a_second_update_while_one_runs_is_retryable_and_applies_on_retry(
    aws: MotoServer,
) -> None:
    make_nodegroup(desired=2)
    clock = FakeClock()
    group = provider("prod/workers", clock)
    group.get_replicas()
    group.set_replicas(4)

    with pytest.raises(RetryableError) as caught:
        group.set_replicas(5)

    assert caught.value.code == "ResourceInUseException"
    assert scaling()["desiredSize"] == 4
    clock.advance(UPDATE_SETTLE_SECONDS)
    group.set_replicas(5)
    assert scaling()["desiredSize"] == 5


def test_asking_again_for_the_count_on_its_way_sends_no_second_update(aws: MotoServer) -> None:
    make_nodegroup(desired=2)
    clients = AWSClients()
    sent: list[dict[str, Any]] = []
    clients.client("eks").meta.events.register(
        "provide-client-params.eks.UpdateNodegroupConfig",
        lambda params, **_: sent.append(dict(params)),
    )
    resource = ScalableNodeGroup.model_validate(
        {"metadata": {"name": "w"}, "spec": {"type": "AWSEKSNodeGroup", "id": "prod/workers"}}
    )
    group = create(resource, BackendContext(clock=FakeClock(), aws=clients))
    group.get_replicas()

    group.set_replicas(3)
    group.set_replicas(3)

    assert sent == [
        {"clusterName": "prod", "nodegroupName": "workers", "scalingConfig": {"desiredSize": 3}}
    ]


@pytest.mark.parametrize(
    "target", [pytest.param(0, id="below minSize"), pytest.param(7, id="above maxSize")]
)
def test_a_count_outside_the_node_group_bounds_never_reaches_aws(
    aws: MotoServer, target: int
) -> None:
    make_nodegroup(desired=2, min_size=1, max_size=6)
    group = provider("prod/workers")
    group.get_replicas()

    with pytest.raises(PermanentError) as caught:
        group.set_replicas(target)

    assert caught.value.code == "OutOfBounds"
    assert scaling()["desiredSize"] == 2  # moto itself would have accepted it


@pytest.mark.parametrize(
    ("nodegroup_id", "missing"),
    [
        pytest.param("prod/missing", "No node group found", id="a missing node group"),
        pytest.param("missing/workers", "No cluster found", id="a missing cluster"),
    ],
)
def test_a_missing_node_group_is_not_found(
    aws: MotoServer, nodegroup_id: str, missing: str
) -> None:
    make_nodegroup()
    with pytest.raises(NotFoundError, match=missing) as caught:
        provider(nodegroup_id).get_replicas()
    assert caught.value.code == "ResourceNotFoundException"


def test_the_loop_keeps_the_desired_count_and_applies_it_after_the_update(
    aws: MotoServer,
) -> None:
    make_nodegroup(desired=2, min_size=1, max_size=10)
    clock = FakeClock()

    def spec(replicas: int) -> SpecSet:
        resource = ScalableNodeGroup.model_validate(
            {
                "metadata": {"name": "workers", "namespace": "default"},
                "spec": {"type": "AWSEKSNodeGroup", "id": "prod/workers", "replicas": replicas},
            }
        )
        return SpecSet(node_groups={"default/workers": resource})

    loop = ControlLoop(clock, context=BackendContext(clock=clock, aws=AWSClients()))
    loop.apply(spec(4))
    loop.run_once()
    assert scaling()["desiredSize"] == 4

    loop.apply(spec(6))  # an operator asks for more while the first update runs
    loop.run_once()
    runtime = loop.node_groups["default/workers"]
    assert runtime.error is not None and runtime.error.code == "ResourceInUseException"
    assert scaling()["desiredSize"] == 4

    loop.run_until(clock() + UPDATE_SETTLE_SECONDS + 60, clock.set)

    assert scaling()["desiredSize"] == 6
    status = loop.node_group_view(runtime)["status"]
    assert (status["replicas"], status["desiredReplicas"]) == (6, 6)
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["AbleToScale"]["status"] == "True"
    assert conditions["Stabilized"]["status"] == "True"
