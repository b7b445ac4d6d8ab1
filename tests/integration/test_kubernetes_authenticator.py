"""The Kubernetes authenticator against the API emulator over HTTP, through the official client:
TokenReview says who a caller is, SubjectAccessReview whether they may; and the HTTP API on top."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from autoscaler.auth import (
    Access,
    AuthUnavailable,
    ChainAuthenticator,
    Forbidden,
    Identity,
    KubernetesAuthenticator,
    StaticTokenAuthenticator,
    authenticator_for,
)
from autoscaler.clock import FakeClock
from autoscaler.kube import KubeClients
from autoscaler.loop import InlineRunner
from autoscaler.server import create_app
from autoscaler.service import Service
from autoscaler.settings import ServerSettings, Settings
from tests.k8s_emulator import ACCESS_REVIEWS, TOKEN_REVIEWS, KubeEmulator

pytestmark = pytest.mark.integration

SERVICE_TOKEN = "service-account-token-of-the-autoscaler"
DEPLOYER = "deployer-token-1234"
VIEWER = "viewer-token-5678"
PAUSE_A = Access("update", "horizontalautoscalers", "team-a", "workers")
PAUSE_B = Access("update", "horizontalautoscalers", "team-b", "workers")


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def kube() -> Iterator[KubeEmulator]:
    """An emulator that wants the service's own token, knowing two callers: a deployer who may
    update autoscalers in team-a (through a group) and a viewer who may only read."""
    with KubeEmulator(token=SERVICE_TOKEN) as emulator:
        emulator.add_token(
            DEPLOYER, "system:serviceaccount:ci:deployer", groups=("deployers",), uid="u-1"
        )
        emulator.add_token(VIEWER, "viewer@example.com")
        emulator.allow("deployers", "update", "horizontalautoscalers", namespace="team-a")
        emulator.allow("deployers", "update", "scalablenodegroups", namespace="team-a")
        emulator.allow("viewer@example.com", "get", "horizontalautoscalers")
        emulator.allow("viewer@example.com", "list", "*")
        emulator.allow("viewer@example.com", "get", path="/metrics")
        yield emulator


@pytest.fixture
def clients(kube: KubeEmulator, tmp_path: Path) -> Iterator[KubeClients]:
    clients = KubeClients(str(kube.write_kubeconfig(tmp_path / "kubeconfig")))
    yield clients
    clients.close()


def test_a_reviewed_token_that_is_allowed_names_the_kubernetes_user(
    kube: KubeEmulator, clients: KubeClients
) -> None:
    identity = KubernetesAuthenticator(clients).authenticate(DEPLOYER, PAUSE_A)
    assert identity == Identity(
        "system:serviceaccount:ci:deployer", ("deployers",), "u-1", source="kubernetes"
    )
    [token_review] = [b for b in kube.request_bodies if b.path == TOKEN_REVIEWS]
    assert token_review.body["spec"]["token"] == DEPLOYER
    [access_review] = [b for b in kube.request_bodies if b.path == ACCESS_REVIEWS]
    assert access_review.body["spec"]["user"] == "system:serviceaccount:ci:deployer"
    assert access_review.body["spec"]["groups"] == ["deployers"]
    assert access_review.body["spec"]["resourceAttributes"] == {
        "group": "autoscaler.dev",
        "resource": "horizontalautoscalers",
        "verb": "update",
        "namespace": "team-a",
        "name": "workers",
    }


@pytest.mark.parametrize(
    ("token", "access", "message"),
    [
        (DEPLOYER, PAUSE_B, "deployer may not update horizontalautoscalers"),
        (VIEWER, PAUSE_A, "viewer@example.com may not update"),
        (DEPLOYER, Access("get", path="/metrics"), "may not get /metrics"),
    ],
    ids=["another namespace", "a reader who writes", "a path not granted"],
)
def test_a_known_caller_without_the_permission_is_forbidden(
    clients: KubeClients, token: str, access: Access, message: str
) -> None:
    with pytest.raises(Forbidden, match=message):
        KubernetesAuthenticator(clients).authenticate(token, access)


def test_a_non_resource_path_is_reviewed_as_such(clients: KubeClients) -> None:
    identity = KubernetesAuthenticator(clients).authenticate(VIEWER, Access("get", path="/metrics"))
    assert identity is not None and identity.name == "viewer@example.com"


def test_an_unknown_token_is_unknown_not_forbidden(
    kube: KubeEmulator, clients: KubeClients
) -> None:
    assert KubernetesAuthenticator(clients).authenticate("stolen-or-expired", PAUSE_A) is None
    assert not [b for b in kube.request_bodies if b.path == ACCESS_REVIEWS]


def test_reviews_are_reused_for_the_cache_time_then_asked_again(
    kube: KubeEmulator, clients: KubeClients
) -> None:
    clock = Clock()
    authenticator = KubernetesAuthenticator(clients, cache_seconds=10, clock=clock)

    def reviews() -> int:
        return sum(1 for r in kube.requests if r.path in (TOKEN_REVIEWS, ACCESS_REVIEWS))

    for _ in range(5):
        authenticator.authenticate(DEPLOYER, PAUSE_A)
    assert reviews() == 2
    clock.now = 11
    authenticator.authenticate(DEPLOYER, PAUSE_A)
    assert reviews() == 4


def test_an_api_server_that_fails_the_review_fails_closed(
    kube: KubeEmulator, clients: KubeClients
) -> None:
    kube.fail_next("POST", TOKEN_REVIEWS, 403, message="the autoscaler may not create reviews")
    with pytest.raises(AuthUnavailable, match="TokenReview failed: Forbidden"):
        KubernetesAuthenticator(clients).authenticate(DEPLOYER, PAUSE_A)
    kube.fail_next("POST", ACCESS_REVIEWS, 500)
    with pytest.raises(AuthUnavailable, match="SubjectAccessReview failed"):
        KubernetesAuthenticator(clients).authenticate(DEPLOYER, PAUSE_A)


def test_a_static_token_and_kubernetes_tokens_work_side_by_side(
    clients: KubeClients, tmp_path: Path
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("break-glass-token,oncall\n")
    chain = authenticator_for(ServerSettings(token_file=str(token_file)), clients)
    assert isinstance(chain, ChainAuthenticator)
    assert [type(a) for a in chain.authenticators] == [
        StaticTokenAuthenticator,
        KubernetesAuthenticator,
    ]
    assert chain.authenticate("break-glass-token", PAUSE_B) == Identity("oncall")
    who = chain.authenticate(DEPLOYER, PAUSE_A)
    assert who is not None and who.source == "kubernetes"


SPEC = """
apiVersion: autoscaler.dev/v1alpha1
kind: ScalableNodeGroup
metadata: {name: workers, namespace: team-a}
spec: {type: Simulated, id: workers, replicas: 2}
---
apiVersion: autoscaler.dev/v1alpha1
kind: MetricsProducer
metadata: {name: plan, namespace: team-a}
spec: {schedule: {defaultReplicas: 2}}
---
apiVersion: autoscaler.dev/v1alpha1
kind: HorizontalAutoscaler
metadata: {name: workers, namespace: team-a}
spec:
  scaleTargetRef: {name: workers}
  minReplicas: 1
  maxReplicas: 10
  metrics:
    - producer: {name: plan, metric: replicas}
      target: {type: AverageValue, averageValue: 1}
"""


def test_the_api_pauses_for_a_kubernetes_caller_allowed_to_and_refuses_the_others(
    clients: KubeClients, tmp_path: Path
) -> None:
    config = tmp_path / "specs.yaml"
    config.write_text(SPEC)
    service = Service(Settings(), [config], clock=FakeClock())
    service.loop.runner.shutdown()
    service.loop.runner = InlineRunner()
    service.reload(force=True)
    service.loop.run_once()
    authenticator = authenticator_for(service.settings.server, clients)
    app = create_app(service, sample_history=False, authenticator=authenticator)
    client = TestClient(app, raise_server_exceptions=False)
    pause = "/api/v1/horizontalautoscalers/team-a/workers/pause"

    def call(token: str) -> Any:
        return client.post(pause, headers={"Authorization": f"Bearer {token}"})

    assert call("stolen-or-expired").status_code == 401
    refused = call(VIEWER)
    assert refused.status_code == 403
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert "viewer@example.com may not update" in refused.json()["detail"]
    allowed = call(DEPLOYER)
    assert allowed.status_code == 200
    assert allowed.json()["status"]["paused"]["by"] == "system:serviceaccount:ci:deployer"


def test_a_service_with_kubernetes_clients_gets_kubernetes_tokens_reviewed(
    clients: KubeClients, tmp_path: Path
) -> None:
    config = tmp_path / "specs.yaml"
    config.write_text(SPEC)
    service = Service(Settings(), [config], clock=FakeClock())
    del service.authenticator  # as the cluster service, which has only its clients
    service.clients = clients  # type: ignore[attr-defined]
    service.reload(force=True)
    app = create_app(service, sample_history=False)
    client = TestClient(app, raise_server_exceptions=False)
    override = client.put(
        "/api/v1/scalablenodegroups/team-a/workers/override",
        json={"replicas": 3, "reason": "cluster mode"},
        headers={"Authorization": f"Bearer {DEPLOYER}"},
    )
    assert override.status_code == 200, override.text
    assert override.json()["status"]["override"]["by"] == "system:serviceaccount:ci:deployer"
    service.loop.runner.shutdown()
