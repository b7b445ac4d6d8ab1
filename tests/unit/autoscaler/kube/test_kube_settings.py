"""Cluster-mode settings from the environment the Helm chart sets."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from autoscaler.settings import KubernetesSettings, Settings


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("", [], id="empty means all"),
        pytest.param("team-a", ["team-a"], id="one"),
        pytest.param("team-a, team-b,,", ["team-a", "team-b"], id="comma-separated"),
        pytest.param('["team-a","team-b"]', ["team-a", "team-b"], id="json list"),
    ],
)
def test_namespaces_come_comma_separated_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, value: str, expected: list[str]
) -> None:
    monkeypatch.setenv("AUTOSCALER_KUBERNETES__NAMESPACES", value)
    assert Settings().kubernetes.namespaces == expected


def test_the_charts_variables_configure_leader_election(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTOSCALER_KUBERNETES__LEADER_ELECTION", "false")
    monkeypatch.setenv("AUTOSCALER_KUBERNETES__LEASE_NAME", "my-lease")
    monkeypatch.setenv("AUTOSCALER_KUBERNETES__LEASE_NAMESPACE", "ops")
    kube = Settings().kubernetes
    assert (kube.leader_election, kube.lease_name, kube.lease_namespace) == (
        False,
        "my-lease",
        "ops",
    )


def test_the_lease_lives_in_the_pods_namespace_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POD_NAMESPACE", "autoscaling")
    assert KubernetesSettings().lease_namespace == "autoscaling"
    monkeypatch.delenv("POD_NAMESPACE")
    assert KubernetesSettings().lease_namespace == "default"


def test_the_defaults_follow_client_go() -> None:
    kube = KubernetesSettings()
    assert kube.leader_election is True
    assert (kube.lease_duration_seconds, kube.renew_deadline_seconds) == (15, 10)
    assert (kube.renew_seconds, kube.retry_seconds) == (5, 2)
    assert kube.namespaces == [] and kube.kubeconfig is None


def test_timings_that_would_let_two_leaders_act_are_refused() -> None:
    with pytest.raises(ValidationError, match="renew_seconds < renew_deadline_seconds"):
        KubernetesSettings(lease_duration_seconds=10, renew_deadline_seconds=12)
