"""The EC2 Auto Scaling group provider against a moto server over HTTP."""

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
from providers.aws_asg import AutoScalingGroup, create
from tests.moto_server import MotoServer

pytestmark = pytest.mark.integration


def make_group(
    name: str = "workers",
    *,
    desired: int = 3,
    min_size: int = 1,
    max_size: int = 5,
    region: str = "us-east-1",
) -> dict[str, Any]:
    """A launch template and an Auto Scaling group; returns the group as described."""
    ec2 = boto3.client("ec2", region_name=region)
    template = f"{name}-template"
    ec2.create_launch_template(
        LaunchTemplateName=template,
        LaunchTemplateData={"ImageId": "ami-12c6146b", "InstanceType": "t3.micro"},
    )
    autoscaling = boto3.client("autoscaling", region_name=region)
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName=name,
        MinSize=min_size,
        MaxSize=max_size,
        DesiredCapacity=desired,
        LaunchTemplate={"LaunchTemplateName": template},
        AvailabilityZones=[f"{region}a"],
    )
    return describe(name, region)


def describe(name: str = "workers", region: str = "us-east-1") -> dict[str, Any]:
    client = boto3.client("autoscaling", region_name=region)
    group: dict[str, Any] = client.describe_auto_scaling_groups(AutoScalingGroupNames=[name])[
        "AutoScalingGroups"
    ][0]
    return group


def provider(group_id: str, clients: AWSClients | None = None) -> AutoScalingGroup:
    resource = ScalableNodeGroup.model_validate(
        {
            "metadata": {"name": "workers"},
            "spec": {"type": "AWSEC2AutoScalingGroup", "id": group_id},
        }
    )
    context = BackendContext(clock=FakeClock(), aws=clients or AWSClients())
    return create(resource, context)


def test_a_group_named_by_name_reports_its_size_and_bounds(aws: MotoServer) -> None:
    make_group(desired=3, min_size=1, max_size=5)

    state = provider("workers").get_replicas()

    assert (state.desired, state.ready, state.min_size, state.max_size) == (3, 3, 1, 5)
    assert state.stable
    assert state.message == "3 of 3 instances in service"


def test_a_group_named_by_arn_is_found_in_the_region_of_the_arn(aws: MotoServer) -> None:
    arn = make_group("west", desired=2, region="us-west-2")["AutoScalingGroupARN"]
    make_group("west", desired=4, region="us-east-1")  # same name, default region

    state = provider(arn).get_replicas()

    assert (state.desired, state.ready) == (2, 2)


def test_unhealthy_and_standby_instances_are_not_ready(aws: MotoServer) -> None:
    instances = [i["InstanceId"] for i in make_group(desired=3)["Instances"]]
    client = boto3.client("autoscaling")
    client.set_instance_health(InstanceId=instances[0], HealthStatus="Unhealthy")
    client.enter_standby(
        AutoScalingGroupName="workers",
        InstanceIds=[instances[1]],
        ShouldDecrementDesiredCapacity=False,
    )

    state = provider("workers").get_replicas()

    # The group launched a replacement for the standby instance: 4 instances, 2 of them ready.
    assert len(describe()["Instances"]) == 4
    assert (state.desired, state.ready, state.stable) == (3, 2, False)
    assert state.message == "2 of 3 instances in service, 1 unhealthy, 1 in standby"


def test_set_replicas_changes_the_desired_capacity_without_honouring_cooldowns(
    aws: MotoServer,
) -> None:
    make_group(desired=2, min_size=1, max_size=5)
    clients = AWSClients()
    sent: list[dict[str, Any]] = []
    clients.client("autoscaling").meta.events.register(
        "provide-client-params.autoscaling.SetDesiredCapacity",
        lambda params, **_: sent.append(dict(params)),
    )
    group = provider("workers", clients)
    group.get_replicas()

    group.set_replicas(4)

    assert sent == [
        {"AutoScalingGroupName": "workers", "DesiredCapacity": 4, "HonorCooldown": False}
    ]
    assert describe()["DesiredCapacity"] == 4
    state = group.get_replicas()
    assert (state.desired, state.ready) == (4, 4)


def test_setting_the_same_count_twice_leaves_the_group_as_it_is(aws: MotoServer) -> None:
    make_group(desired=2)
    group = provider("workers")
    group.get_replicas()

    group.set_replicas(3)
    first = sorted(i["InstanceId"] for i in describe()["Instances"])
    group.set_replicas(3)

    assert sorted(i["InstanceId"] for i in describe()["Instances"]) == first
    assert describe()["DesiredCapacity"] == 3


def test_scaling_in_removes_instances(aws: MotoServer) -> None:
    make_group(desired=4, min_size=0, max_size=5)
    group = provider("workers")
    group.get_replicas()

    group.set_replicas(0)

    state = group.get_replicas()
    assert (state.desired, state.ready, state.stable) == (0, 0, True)


@pytest.mark.parametrize(
    "target", [pytest.param(0, id="below MinSize"), pytest.param(6, id="above MaxSize")]
)
def test_a_count_outside_the_group_bounds_never_reaches_aws(aws: MotoServer, target: int) -> None:
    make_group(desired=3, min_size=1, max_size=5)
    group = provider("workers")
    group.get_replicas()

    with pytest.raises(PermanentError) as caught:
        group.set_replicas(target)

    assert caught.value.code == "OutOfBounds"
    assert describe()["DesiredCapacity"] == 3  # moto itself would have accepted it


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda group: group.get_replicas(), id="reading"),
        pytest.param(lambda group: group.set_replicas(2), id="resizing"),
    ],
)
def test_a_missing_group_is_not_found(aws: MotoServer, call: Any) -> None:
    with pytest.raises(NotFoundError, match="Auto Scaling group missing was not found") as caught:
        call(provider("missing"))
    assert caught.value.code == "AutoScalingGroupNotFound"


def test_an_unreachable_endpoint_is_retryable(
    aws: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_AUTO_SCALING", "http://127.0.0.1:9")
    with pytest.raises(RetryableError, match="DescribeAutoScalingGroups on workers") as caught:
        provider("workers", AWSClients(connect_timeout=1, read_timeout=1)).get_replicas()
    assert caught.value.code == "ConnectionError"


def test_the_loop_clamps_to_the_group_bounds_and_says_so(aws: MotoServer) -> None:
    make_group(desired=2, min_size=1, max_size=5)
    clock = FakeClock()
    resource = ScalableNodeGroup.model_validate(
        {
            "metadata": {"name": "workers", "namespace": "default"},
            "spec": {"type": "AWSEC2AutoScalingGroup", "id": "workers", "replicas": 9},
        }
    )
    loop = ControlLoop(clock, context=BackendContext(clock=clock, aws=AWSClients()))
    loop.apply(SpecSet(node_groups={"default/workers": resource}))

    loop.run_once()

    assert describe()["DesiredCapacity"] == 5
    view = loop.node_group_view(loop.node_groups["default/workers"])
    status = view["status"]
    assert (status["replicas"], status["desiredReplicas"], status["maxSize"]) == (5, 5, 5)
    able = next(c for c in status["conditions"] if c["type"] == "AbleToScale")
    assert (able["status"], able["reason"]) == ("True", "LimitedByGroupBounds")
    assert "asked for 9" in able["message"]
