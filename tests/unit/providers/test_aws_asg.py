"""The EC2 Auto Scaling group provider: id parsing, counting and checks, with a fake client."""

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
from providers.aws_asg import (
    AutoScalingGroup,
    GroupRef,
    InstanceCounts,
    count_instances,
    create,
    find_group,
    parse_group_id,
    summarize_group,
)

ARN = (
    "arn:aws:autoscaling:eu-west-1:123456789012:autoScalingGroup:"
    "0e993e01-87ff-431f-8aba-cb2a5066c24b:autoScalingGroupName/workers"
)


def instance(state: str = "InService", health: str = "Healthy") -> dict[str, Any]:
    return {"InstanceId": "i-0", "LifecycleState": state, "HealthStatus": health}


def group_entry(
    desired: int = 3,
    min_size: int = 1,
    max_size: int = 5,
    instances: list[dict[str, Any]] | None = None,
    name: str = "workers",
) -> dict[str, Any]:
    return {
        "AutoScalingGroupName": name,
        "DesiredCapacity": desired,
        "MinSize": min_size,
        "MaxSize": max_size,
        "Instances": [instance() for _ in range(desired)] if instances is None else instances,
    }


def client_error(code: str, status: int = 400) -> ClientError:
    return ClientError(
        {
            "Error": {"Code": code, "Message": "it failed"},
            "ResponseMetadata": {"HTTPStatusCode": status},
        },
        "SetDesiredCapacity",
    )


class FakeAutoScaling:
    """Answers DescribeAutoScalingGroups from ``groups``; records SetDesiredCapacity calls."""

    def __init__(self, *groups: dict[str, Any]) -> None:
        self.groups = {group["AutoScalingGroupName"]: group for group in groups}
        self.describe_calls = 0
        self.set_calls: list[dict[str, Any]] = []
        self.set_error: Exception | None = None
        self.lock = threading.Lock()

    def describe_auto_scaling_groups(self, AutoScalingGroupNames: list[str]) -> dict[str, Any]:
        with self.lock:
            self.describe_calls += 1
            found = [self.groups[n] for n in AutoScalingGroupNames if n in self.groups]
            return {"AutoScalingGroups": [dict(g) for g in found]}

    def set_desired_capacity(self, **params: Any) -> dict[str, Any]:
        if self.set_error is not None:
            raise self.set_error
        with self.lock:
            self.set_calls.append(params)
            self.groups[params["AutoScalingGroupName"]]["DesiredCapacity"] = params[
                "DesiredCapacity"
            ]
        return {}


class FakeClients:
    """Stands in for :class:`autoscaler.aws.AWSClients`; remembers which regions were asked."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.asked: list[tuple[str, str | None]] = []

    def client(self, service: str, region: str | None = None) -> Any:
        self.asked.append((service, region))
        return self._client


def resource(group_id: str) -> ScalableNodeGroup:
    return ScalableNodeGroup.model_validate(
        {
            "metadata": {"name": "workers"},
            "spec": {"type": "AWSEC2AutoScalingGroup", "id": group_id},
        }
    )


# --------------------------------------------------------------------------- ids


@pytest.mark.parametrize(
    ("group_id", "expected"),
    [
        pytest.param("workers", GroupRef("workers"), id="a plain name uses the default region"),
        pytest.param(" workers ", GroupRef("workers"), id="surrounding blanks are ignored"),
        pytest.param("eks-a1b2/c", GroupRef("eks-a1b2/c"), id="a name may hold a slash"),
        pytest.param(ARN, GroupRef("workers", "eu-west-1"), id="an ARN gives name and region"),
        pytest.param(
            ARN.replace("arn:aws:", "arn:aws-cn:").replace("eu-west-1", "cn-north-1"),
            GroupRef("workers", "cn-north-1"),
            id="an ARN in another partition",
        ),
        pytest.param(
            ARN.replace("/workers", "/team/a"),
            GroupRef("team/a", "eu-west-1"),
            id="an ARN whose name holds a slash",
        ),
    ],
)
def test_a_group_id_is_a_name_or_an_arn(group_id: str, expected: GroupRef) -> None:
    assert parse_group_id(group_id) == expected


@pytest.mark.parametrize(
    "group_id",
    [
        pytest.param("   ", id="blank"),
        pytest.param("team:workers", id="a name with a colon"),
        pytest.param("w" * 256, id="a name longer than 255 characters"),
        pytest.param(ARN.replace(":autoscaling:", ":eks:"), id="an ARN of another service"),
        pytest.param(ARN.replace("autoScalingGroupName/", "name/"), id="an ARN without the name"),
        pytest.param(ARN.replace("/workers", "/"), id="an ARN with an empty name"),
        pytest.param(ARN.replace("eu-west-1", ""), id="an ARN without a region"),
        pytest.param(
            ARN.replace("0e993e01-87ff-431f-8aba-cb2a5066c24b", ""), id="an ARN without the UUID"
        ),
        pytest.param("arn:aws:autoscaling:eu-west-1", id="a truncated ARN"),
    ],
)
def test_anything_else_is_a_spec_error_on_the_id(group_id: str) -> None:
    with pytest.raises(SpecError) as caught:
        parse_group_id(group_id)
    assert (caught.value.path, caught.value.code) == ("spec.id", "InvalidId")


# --------------------------------------------------------------------------- counting


@pytest.mark.parametrize(
    ("instances", "expected"),
    [
        pytest.param([], InstanceCounts(), id="no instances"),
        pytest.param([instance()] * 2, InstanceCounts(ready=2), id="in service and healthy"),
        pytest.param(
            [instance(health="Unhealthy")], InstanceCounts(unhealthy=1), id="unhealthy in service"
        ),
        pytest.param(
            [instance("Pending"), instance("Pending:Wait"), instance("Pending:Proceed")],
            InstanceCounts(pending=3),
            id="every pending state",
        ),
        pytest.param(
            [instance("Terminating"), instance("Terminating:Wait"), instance("Terminated")],
            InstanceCounts(terminating=3),
            id="every terminating state",
        ),
        pytest.param([instance("Standby")], InstanceCounts(standby=1), id="standby"),
        pytest.param(
            [instance("EnteringStandby"), instance("Detaching"), instance("Quarantined")],
            InstanceCounts(changing=3),
            id="other transitions",
        ),
        pytest.param(
            [instance("Warmed:Stopped"), instance("Warmed:Pending"), instance("Warmed:Terminated")],
            InstanceCounts(warm=1, pending=1, terminating=1),
            id="warm pool states",
        ),
        pytest.param([instance("SomethingNew")], InstanceCounts(changing=1), id="an unknown state"),
        pytest.param(
            [instance("Pending", "Healthy")], InstanceCounts(pending=1), id="healthy but pending"
        ),
    ],
)
def test_only_in_service_healthy_instances_are_ready(
    instances: list[dict[str, Any]], expected: InstanceCounts
) -> None:
    assert count_instances(instances) == expected


@pytest.mark.parametrize(
    ("entry", "stable", "message"),
    [
        pytest.param(group_entry(3), True, "3 of 3 instances in service", id="all in service"),
        pytest.param(
            group_entry(1), True, "1 of 1 instance in service", id="one instance reads naturally"
        ),
        pytest.param(
            group_entry(0, 0, 5, []), True, "0 of 0 instances in service", id="an empty group"
        ),
        pytest.param(
            group_entry(5, instances=[instance()] * 3 + [instance("Pending")] * 2),
            False,
            "3 of 5 instances in service, 2 pending",
            id="scaling up",
        ),
        pytest.param(
            group_entry(2, instances=[instance()] * 2 + [instance("Terminating")]),
            False,
            "2 of 2 instances in service, 1 terminating",
            id="scaling down",
        ),
        pytest.param(
            group_entry(3, instances=[instance()] * 2 + [instance(health="Unhealthy")]),
            False,
            "2 of 3 instances in service, 1 unhealthy",
            id="an unhealthy instance",
        ),
        pytest.param(
            group_entry(2, instances=[instance()] * 2 + [instance("Standby")]),
            True,
            "2 of 2 instances in service, 1 in standby",
            id="standby beside a full group",
        ),
        pytest.param(
            group_entry(2, instances=[instance()] * 3),
            False,
            "3 instances in service, 2 desired",
            id="more in service than desired",
        ),
        pytest.param(
            group_entry(2, instances=[instance()] * 2 + [instance("Detaching")]),
            False,
            "2 of 2 instances in service, 1 changing state",
            id="an instance changing state",
        ),
    ],
)
def test_the_group_is_stable_when_nothing_moves_and_ready_equals_desired(
    entry: dict[str, Any], stable: bool, message: str
) -> None:
    summary = summarize_group(entry)
    assert (summary.stable, summary.message) == (stable, message)


def test_the_summary_becomes_the_loop_state_with_the_group_bounds() -> None:
    entry = group_entry(4, 2, 8, [instance()] * 3 + [instance("Pending")])
    assert summarize_group(entry).state() == NodeGroupState(
        desired=4,
        ready=3,
        min_size=2,
        max_size=8,
        stable=False,
        message="3 of 4 instances in service, 1 pending",
    )


def _without(field: str) -> dict[str, Any]:
    entry = group_entry()
    del entry[field]
    return entry


@pytest.mark.parametrize(
    ("entry", "detail"),
    [
        pytest.param(_without("DesiredCapacity"), "DesiredCapacity is missing", id="no desired"),
        pytest.param(_without("MinSize"), "MinSize is missing", id="no MinSize"),
        pytest.param(_without("MaxSize"), "MaxSize is missing", id="no MaxSize"),
        pytest.param(_without("Instances"), "Instances is missing", id="no instance list"),
        pytest.param(group_entry(-1, instances=[]), "DesiredCapacity is negative", id="negative"),
        pytest.param(
            {**group_entry(), "MaxSize": "5"}, "MaxSize is missing or not an integer", id="text"
        ),
        pytest.param(
            {**group_entry(), "MinSize": True}, "MinSize is missing or not an integer", id="bool"
        ),
        pytest.param(group_entry(3, 6, 5), "MinSize 6 is greater than MaxSize 5", id="min>max"),
        pytest.param(
            group_entry(1, instances=[{"HealthStatus": "Healthy"}]),
            r"Instances\[0\].LifecycleState is missing",
            id="an instance without a state",
        ),
        pytest.param(
            group_entry(1, instances=[{"LifecycleState": "InService"}]),
            r"Instances\[0\].HealthStatus is missing",
            id="an instance without health",
        ),
        pytest.param(
            group_entry(1, instances=["i-1"]),  # type: ignore[list-item]
            r"Instances\[0\] is not an object",
            id="an instance that is not an object",
        ),
    ],
)
def test_a_malformed_group_is_a_permanent_error(entry: dict[str, Any], detail: str) -> None:
    with pytest.raises(PermanentError, match=detail) as caught:
        summarize_group(entry)
    assert caught.value.code == "MalformedResponse"


def test_an_empty_group_list_means_the_group_does_not_exist() -> None:
    with pytest.raises(NotFoundError, match="workers was not found") as caught:
        find_group({"AutoScalingGroups": []}, "workers")
    assert caught.value.code == "AutoScalingGroupNotFound"


def test_only_the_group_with_the_exact_name_is_taken() -> None:
    other = group_entry(name="workers-2")
    wanted = group_entry(name="workers")
    assert find_group({"AutoScalingGroups": [other, wanted]}, "workers") is wanted


def test_a_response_without_a_group_list_is_malformed() -> None:
    with pytest.raises(PermanentError, match="AutoScalingGroups is missing"):
        find_group({}, "workers")


# --------------------------------------------------------------------------- the provider


def provider(*groups: dict[str, Any]) -> AutoScalingGroup:
    return AutoScalingGroup(GroupRef("workers"), FakeClients(FakeAutoScaling(*groups)))


def fake(provider: AutoScalingGroup) -> FakeAutoScaling:
    client: FakeAutoScaling = provider._clients.client("autoscaling")
    return client


def test_the_factory_returns_a_provider_without_calling_aws() -> None:
    clients = FakeClients(FakeAutoScaling())
    built = create(resource(ARN), BackendContext(clock=FakeClock(), aws=clients))
    assert isinstance(built, Provider)
    assert built.ref == GroupRef("workers", "eu-west-1")
    assert clients.asked == []


def test_the_factory_reports_a_bad_id_on_the_spec() -> None:
    with pytest.raises(SpecError) as caught:
        create(resource("a:b"), BackendContext(clock=FakeClock(), aws=FakeClients(None)))
    assert caught.value.path == "spec.id"


def test_building_the_provider_does_not_import_boto3() -> None:
    code = (
        "import sys\n"
        "from autoscaler.api import BackendContext, ScalableNodeGroup\n"
        "from providers.aws_asg import create\n"
        "r = ScalableNodeGroup.model_validate({'metadata': {'name': 'w'}, "
        "'spec': {'type': 'AWSEC2AutoScalingGroup', 'id': 'workers'}})\n"
        "create(r, BackendContext(clock=lambda: 0.0))\n"
        "assert 'boto3' not in sys.modules and 'botocore' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_the_client_is_asked_for_in_the_region_of_the_arn() -> None:
    clients = FakeClients(FakeAutoScaling(group_entry()))
    AutoScalingGroup(GroupRef("workers", "eu-west-1"), clients).get_replicas()
    assert clients.asked == [("autoscaling", "eu-west-1")]


def test_set_replicas_sends_the_count_without_honouring_cooldowns() -> None:
    group = provider(group_entry(3))
    group.get_replicas()
    group.set_replicas(4)
    assert fake(group).set_calls == [
        {"AutoScalingGroupName": "workers", "DesiredCapacity": 4, "HonorCooldown": False}
    ]


@pytest.mark.parametrize(
    "target", [pytest.param(0, id="below MinSize"), pytest.param(6, id="above MaxSize")]
)
def test_a_count_outside_the_group_bounds_is_refused_before_calling(target: int) -> None:
    group = provider(group_entry(3, 1, 5))
    group.get_replicas()
    with pytest.raises(PermanentError, match=r"outside the group's bounds \[1, 5\]") as caught:
        group.set_replicas(target)
    assert caught.value.code == "OutOfBounds"
    assert fake(group).set_calls == []


def test_the_bounds_are_read_first_when_set_replicas_comes_before_any_read() -> None:
    group = provider(group_entry(3, 1, 5))
    with pytest.raises(PermanentError, match="outside"):
        group.set_replicas(9)
    assert fake(group).describe_calls == 1
    group.set_replicas(5)
    assert fake(group).describe_calls == 1


@pytest.mark.parametrize(
    ("error", "kind", "code"),
    [
        pytest.param(
            client_error("ScalingActivityInProgress"),
            RetryableError,
            "ScalingActivityInProgress",
            id="a scaling activity in progress is retried",
        ),
        pytest.param(
            client_error("Throttling"), RetryableError, "Throttling", id="throttling is retried"
        ),
        pytest.param(
            client_error("AccessDenied", 403),
            PermanentError,
            "AccessDenied",
            id="access denied is permanent",
        ),
    ],
)
def test_aws_errors_are_translated_with_the_action_and_group(
    error: Exception, kind: type[Exception], code: str
) -> None:
    group = provider(group_entry(3))
    group.get_replicas()
    fake(group).set_error = error
    with pytest.raises(kind, match="SetDesiredCapacity on workers") as caught:
        group.set_replicas(4)
    assert getattr(caught.value, "code", None) == code
    assert caught.value.__cause__ is error


def test_concurrent_reads_and_writes_stay_consistent() -> None:
    group = provider(group_entry(3, 0, 50))
    group.get_replicas()
    barrier = threading.Barrier(6)
    failures: list[BaseException] = []

    def work(offset: int) -> None:
        barrier.wait()
        try:
            for step in range(100):
                group.set_replicas((offset + step) % 51)
                state = group.get_replicas()
                assert 0 <= state.desired <= 50
                assert (state.min_size, state.max_size) == (0, 50)
        except BaseException as exc:  # pragma: no cover - reported below
            failures.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert len(fake(group).set_calls) == 600


# --------------------------------------------------------------------------- IAM policy

ROOT = Path(__file__).resolve().parents[3]
AWS_BACKEND_ACTIONS = {
    "autoscaling:DescribeAutoScalingGroups",
    "autoscaling:SetDesiredCapacity",
    "eks:DescribeNodegroup",
    "eks:UpdateNodegroupConfig",
    "eks:DescribeUpdate",
    "sqs:GetQueueAttributes",
    "sqs:GetQueueUrl",
    "cloudwatch:GetMetricData",
}


def policy_actions(policy: dict[str, Any]) -> set[str]:
    actions: set[str] = set()
    for statement in policy["Statement"]:
        assert statement["Effect"] == "Allow"
        action = statement["Action"]
        actions |= {action} if isinstance(action, str) else set(action)
    return actions


def test_the_iam_policy_grants_exactly_the_actions_the_aws_backends_use() -> None:
    policy = json.loads((ROOT / "deploy/aws/iam-policy.json").read_text())
    assert policy_actions(policy) == AWS_BACKEND_ACTIONS


def test_the_provider_page_shows_the_iam_policy_file_as_it_is() -> None:
    page = (ROOT / "docs/providers/aws-asg.md").read_text()
    shown = re.search(r"```json\n(.*?)```", page, re.DOTALL)
    assert shown is not None
    assert json.loads(shown.group(1)) == json.loads(
        (ROOT / "deploy/aws/iam-policy.json").read_text()
    )
