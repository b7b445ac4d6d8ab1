"""The operator endpoints (pause, resume, override) and bearer tokens, against a real Service on a
fake clock with backends run inline; and that no secret reaches the API or the log."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from autoscaler.auth import Access, AuthUnavailable, Forbidden, Identity
from autoscaler.clock import FakeClock
from autoscaler.loop import InlineRunner
from autoscaler.server import create_app
from autoscaler.service import Service
from autoscaler.settings import PrometheusSettings, ServerSettings, Settings

PROBLEM = "application/problem+json"
TOKEN = "s3cr3t-operator-token-7f1c"
WRONG = "not-the-token-91ab"

SPEC = """
apiVersion: autoscaler.dev/v1alpha1
kind: ScalableNodeGroup
metadata: {{name: workers}}
spec:
  type: Simulated
  id: workers
  replicas: 3
  simulated: {{provisioningDelaySeconds: 0, maxSize: 10}}
---
apiVersion: autoscaler.dev/v1alpha1
kind: MetricsProducer
metadata: {{name: plan}}
spec:
  intervalSeconds: 5
  schedule: {{defaultReplicas: {replicas}}}
---
apiVersion: autoscaler.dev/v1alpha1
kind: HorizontalAutoscaler
metadata: {{name: workers}}
spec:
  scaleTargetRef: {{name: workers}}
  minReplicas: 1
  maxReplicas: 10
  metrics:
    - producer: {{name: plan, metric: replicas}}
      target: {{type: AverageValue, averageValue: 1}}
  behavior:
    scaleDown: {{stabilizationWindowSeconds: 0}}
"""

AUTOSCALER = "/api/v1/horizontalautoscalers/default/workers"
NODE_GROUP = "/api/v1/scalablenodegroups/default/workers"
WRITES = [
    ("post", f"{AUTOSCALER}/pause", None),
    ("post", f"{AUTOSCALER}/resume", None),
    ("put", f"{NODE_GROUP}/override", {"replicas": 4, "reason": "test"}),
    ("delete", f"{NODE_GROUP}/override", None),
]
WRITE_IDS = ["pause", "resume", "set override", "remove override"]


class Harness:
    """A standalone service on a fake clock, its app and a client."""

    def __init__(
        self,
        tmp_path: Path,
        *,
        token_file: Path | None = None,
        private_reads: bool = False,
        authenticator: Any = None,
        spec: str = SPEC.format(replicas=3),
        **settings: Any,
    ) -> None:
        self.config = tmp_path / "specs.yaml"
        self.config.write_text(spec)
        self.clock = FakeClock()
        server = ServerSettings(
            token_file=str(token_file) if token_file else None, private_reads=private_reads
        )
        self.service = Service(Settings(server=server, **settings), [self.config], clock=self.clock)
        self.service.loop.runner.shutdown()
        self.service.loop.runner = InlineRunner()
        self.service.reload(force=True)
        self.app = create_app(self.service, sample_history=False, authenticator=authenticator)
        self.client = TestClient(self.app, raise_server_exceptions=False)
        self.step()

    def step(self, seconds: float = 5.0, times: int = 1) -> None:
        for _ in range(times):
            self.service.loop.run_once()
            self.clock.advance(seconds)
        self.service.loop.run_once()

    def call(self, method: str, path: str, body: Any = None, token: str | None = TOKEN) -> Any:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return self.client.request(method, path, json=body, headers=headers)

    def group(self) -> dict[str, Any]:
        response = self.client.get("/api/v1/scalablenodegroups", headers=self._auth())
        item: dict[str, Any] = response.json()["items"][0]
        return item

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "token"
    path.write_text(f"# operators\n{TOKEN},ops\n")
    return path


@pytest.fixture
def api(tmp_path: Path, token_file: Path) -> Iterator[Harness]:
    harness = Harness(tmp_path, token_file=token_file)
    yield harness
    harness.client.close()


def _is_problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body: dict[str, Any] = response.json()
    assert body["status"] == status and body["detail"]
    return body


# --------------------------------------------------------------------------- 401 / 403


@pytest.mark.parametrize(("method", "path", "body"), WRITES, ids=WRITE_IDS)
def test_state_changing_endpoints_are_disabled_without_a_token_and_say_how_to_enable_them(
    tmp_path: Path, method: str, path: str, body: Any
) -> None:
    harness = Harness(tmp_path)
    problem = _is_problem(harness.call(method, path, body), 403)
    assert "AUTOSCALER_SERVER__TOKEN_FILE" in problem["detail"]
    assert "disabled" in problem["detail"]
    assert (
        "paused"
        not in harness.service.loop.autoscaler_view(
            harness.service.loop.autoscalers["default/workers"]
        )["status"]
    )


@pytest.mark.parametrize(("method", "path", "body"), WRITES, ids=WRITE_IDS)
def test_a_request_without_a_bearer_token_is_401_with_a_challenge(
    api: Harness, method: str, path: str, body: Any
) -> None:
    response = api.call(method, path, body, token=None)
    _is_problem(response, 401)
    assert response.headers["www-authenticate"] == 'Bearer realm="autoscaler"'


@pytest.mark.parametrize(("method", "path", "body"), WRITES, ids=WRITE_IDS)
def test_an_invalid_token_is_401_and_never_echoed(
    api: Harness, method: str, path: str, body: Any
) -> None:
    response = api.call(method, path, body, token=WRONG)
    problem = _is_problem(response, 401)
    assert "invalid_token" in response.headers["www-authenticate"]
    assert WRONG not in response.text and TOKEN not in response.text
    assert problem["detail"] == "the bearer token is not valid"


def test_basic_auth_is_not_a_bearer_token(api: Harness) -> None:
    response = api.client.post(f"{AUTOSCALER}/pause", auth=("ops", TOKEN))
    _is_problem(response, 401)


class _Refusing:
    """An authenticator that knows every token but allows nothing, or cannot check at all."""

    def __init__(self, error: Exception) -> None:
        self.error = error
        self.seen: list[Access] = []

    @property
    def configured(self) -> bool:
        return True

    def authenticate(self, token: str, access: Access) -> Identity | None:
        self.seen.append(access)
        raise self.error


def test_a_caller_who_may_not_do_it_gets_403_naming_the_access_needed(tmp_path: Path) -> None:
    refusing = _Refusing(Forbidden("eve may not update horizontalautoscalers default/workers"))
    harness = Harness(tmp_path, authenticator=refusing)
    problem = _is_problem(harness.call("post", f"{AUTOSCALER}/pause"), 403)
    assert "eve may not update" in problem["detail"]
    put = harness.call("put", f"{NODE_GROUP}/override", {"replicas": 4, "reason": "x"})
    _is_problem(put, 403)
    assert refusing.seen == [
        Access("update", "horizontalautoscalers", "default", "workers"),
        Access("update", "scalablenodegroups", "default", "workers"),
    ]


def test_tokens_that_cannot_be_checked_fail_closed_with_503(tmp_path: Path) -> None:
    harness = Harness(tmp_path, authenticator=_Refusing(AuthUnavailable("TokenReview failed")))
    problem = _is_problem(harness.call("post", f"{AUTOSCALER}/pause"), 503)
    assert "TokenReview" not in problem["detail"]  # details stay in the log
    assert "paused" not in harness.call("get", AUTOSCALER).json()["status"]


def test_a_rotated_token_file_takes_effect_without_a_restart(
    api: Harness, token_file: Path
) -> None:
    assert api.call("post", f"{AUTOSCALER}/pause").status_code == 200
    token_file.write_text("rotated-token-2b9e,ops\n")
    _is_problem(api.call("post", f"{AUTOSCALER}/resume"), 401)
    assert api.call("post", f"{AUTOSCALER}/resume", token="rotated-token-2b9e").status_code == 200


# --------------------------------------------------------------------------- effects


def test_pause_holds_the_node_group_across_a_hot_reload_and_resume_lets_it_scale(
    api: Harness,
) -> None:
    assert api.group()["spec"]["replicas"] == 3
    response = api.call("post", f"{AUTOSCALER}/pause", {"reason": "maintenance"})
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    paused = response.json()["status"]["paused"]
    assert paused["by"] == "ops" and paused["reason"] == "maintenance"

    api.config.write_text(SPEC.format(replicas=6))  # a hot reload asks for 6 nodes
    api.service.reload(force=True)
    api.step(times=6)
    assert api.group()["spec"]["replicas"] == 3
    assert api.group()["status"]["replicas"] == 3
    view = api.call("get", AUTOSCALER).json()
    assert view["status"]["paused"]["by"] == "ops"
    able = next(c for c in view["status"]["conditions"] if c["type"] == "AbleToScale")
    assert able["reason"] == "Paused"
    decision = api.client.get("/api/v1/decisions?limit=1").json()["items"][0]
    assert decision["limitedBy"] == "paused"
    assert any("would scale 3 → 6" in r for r in decision["reasons"])

    again = api.call("post", f"{AUTOSCALER}/pause", {"reason": "second"})
    assert again.json()["status"]["paused"]["reason"] == "maintenance"  # the first pause holds

    resumed = api.call("post", f"{AUTOSCALER}/resume")
    assert resumed.status_code == 200 and "paused" not in resumed.json()["status"]
    api.step(times=2)
    assert api.group()["spec"]["replicas"] == 6
    trail = api.client.get("/api/v1/decisions").json()["items"]
    assert any(d.get("actor") == "ops" and "resumed by ops" in d["reasons"] for d in trail)


def test_an_override_pins_the_node_group_until_it_is_removed(api: Harness) -> None:
    response = api.call(
        "put",
        f"{NODE_GROUP}/override",
        {"replicas": 5, "reason": "incident 7", "durationSeconds": 600},
    )
    assert response.status_code == 200
    override = response.json()["status"]["override"]
    assert (override["replicas"], override["by"], override["reason"]) == (5, "ops", "incident 7")
    assert override["expires"] > override["since"]
    api.step(times=3)
    assert api.group()["spec"]["replicas"] == 5
    assert api.group()["status"]["replicas"] == 5
    decision = api.client.get("/api/v1/decisions?limit=1").json()["items"][0]
    assert decision["limitedBy"] == "override"

    removed = api.call("delete", f"{NODE_GROUP}/override")
    assert removed.status_code == 200 and "override" not in removed.json()["status"]
    api.step(times=2)
    assert api.group()["spec"]["replicas"] == 3  # the autoscaler is back in charge
    _is_problem(api.call("delete", f"{NODE_GROUP}/override"), 404)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"replicas": 4}, "body.reason"),
        ({"replicas": -1, "reason": "x"}, "body.replicas"),
        ({"replicas": 4, "reason": "x", "durationSeconds": 0}, "body.durationSeconds"),
        ({"replicas": 4, "reason": "line one\nforged log line"}, "body.reason"),
        ({"replicas": 4, "reason": "x", "extra": 1}, "body.extra"),
    ],
    ids=["no reason", "negative", "zero duration", "control characters", "unknown field"],
)
def test_an_invalid_override_is_422_naming_the_field(
    api: Harness, body: dict[str, Any], field: str
) -> None:
    problem = _is_problem(api.call("put", f"{NODE_GROUP}/override", body), 422)
    assert [e["field"] for e in problem["errors"]] == [field]


def test_an_override_outside_the_group_bounds_is_422(api: Harness) -> None:
    problem = _is_problem(
        api.call("put", f"{NODE_GROUP}/override", {"replicas": 11, "reason": "too many"}), 422
    )
    assert "outside the bounds" in problem["detail"] and "[0, 10]" in problem["detail"]


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("post", "/api/v1/horizontalautoscalers/default/nope/pause", None),
        ("post", "/api/v1/horizontalautoscalers/default/nope/resume", None),
        ("put", "/api/v1/scalablenodegroups/default/nope/override", {"replicas": 1, "reason": "x"}),
        ("delete", "/api/v1/scalablenodegroups/default/nope/override", None),
    ],
    ids=WRITE_IDS,
)
def test_an_unknown_object_is_404_once_authenticated(
    api: Harness, method: str, path: str, body: Any
) -> None:
    _is_problem(api.call(method, path, body, token=None), 401)  # no probing without a token
    _is_problem(api.call(method, path, body), 404)


# --------------------------------------------------------------------------- reads


def test_reads_are_public_by_default(api: Harness) -> None:
    assert api.client.get("/api/v1/scalablenodegroups").status_code == 200
    assert api.client.get("/metrics").status_code == 200


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/horizontalautoscalers",
        AUTOSCALER,
        "/api/v1/metricsproducers",
        "/api/v1/scalablenodegroups",
        "/api/v1/decisions",
        "/api/v1/history",
        "/api/v1/config",
        "/metrics",
    ],
)
def test_private_reads_need_a_token_too(tmp_path: Path, token_file: Path, path: str) -> None:
    harness = Harness(tmp_path, token_file=token_file, private_reads=True)
    _is_problem(harness.client.get(path), 401)
    _is_problem(harness.call("get", path, token=WRONG), 401)
    assert harness.call("get", path).status_code == 200


def test_probes_the_dashboard_and_the_api_docs_stay_public_with_private_reads(
    tmp_path: Path, token_file: Path
) -> None:
    harness = Harness(tmp_path, token_file=token_file, private_reads=True)
    for path in ("/healthz", "/readyz", "/", "/openapi.json", "/docs"):
        assert harness.client.get(path).status_code in (200, 503), path


def test_private_reads_without_a_token_configured_refuse_every_read(tmp_path: Path) -> None:
    harness = Harness(tmp_path, private_reads=True)
    _is_problem(harness.client.get("/api/v1/scalablenodegroups"), 403)


def test_a_private_read_of_one_autoscaler_asks_for_get_on_that_object(tmp_path: Path) -> None:
    refusing = _Refusing(Forbidden("no"))
    harness = Harness(tmp_path, authenticator=refusing, private_reads=True)
    harness.call("get", AUTOSCALER)
    harness.call("get", "/metrics")
    assert refusing.seen == [
        Access("get", "horizontalautoscalers", "default", "workers"),
        Access("get", None, None, None, "/metrics"),
    ]


def test_the_openapi_document_declares_the_bearer_scheme_and_the_error_responses(
    api: Harness,
) -> None:
    document = api.client.get("/openapi.json").json()
    assert document["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    pause = document["paths"]["/api/v1/horizontalautoscalers/{namespace}/{name}/pause"]["post"]
    assert pause["security"] == [{"HTTPBearer": []}]
    for code in ("401", "403", "404", "422", "503"):
        assert PROBLEM in pause["responses"][code]["content"]
    override = document["paths"]["/api/v1/scalablenodegroups/{namespace}/{name}/override"]
    assert {"put", "delete"} <= set(override)


def test_the_service_binds_loopback_and_needs_no_token_by_default() -> None:
    settings = Settings()
    assert settings.server.host == "127.0.0.1"
    assert settings.server.token_file is None and settings.server.private_reads is False


# --------------------------------------------------------------------------- secrets


AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYSECRETKEY42"
PROMETHEUS_PASSWORD = "prom-basic-auth-pa55word-d41d"
LEAKY_SPEC = """
apiVersion: autoscaler.dev/v1alpha1
kind: ScalableNodeGroup
metadata: {name: workers}
spec: {type: Simulated, id: workers, replicas: 2}
---
apiVersion: autoscaler.dev/v1alpha1
kind: MetricsProducer
metadata: {name: jobs}
spec:
  queue: {type: AWSSQSQueue, id: "https://sqs.eu-west-1.amazonaws.com/123456789012/jobs"}
---
apiVersion: autoscaler.dev/v1alpha1
kind: HorizontalAutoscaler
metadata: {name: workers}
spec:
  scaleTargetRef: {name: workers}
  minReplicas: 1
  maxReplicas: 10
  metrics:
    - producer: {name: jobs}
      target: {type: AverageValue, averageValue: 10}
    - prometheus: {query: 'sum(rate(jobs_total[5m]))'}
      target: {type: Value, value: 5}
"""


def test_no_secret_reaches_the_api_or_the_log(
    tmp_path: Path,
    token_file: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLEKEYID1234")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", AWS_SECRET)
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens: errors
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    password_file = tmp_path / "password"
    password_file.write_text(PROMETHEUS_PASSWORD)
    prometheus = PrometheusSettings(
        url="http://127.0.0.1:9",
        username="scraper",
        password_file=str(password_file),
        timeout_seconds=2,
    )
    secrets = [TOKEN, WRONG, AWS_SECRET, PROMETHEUS_PASSWORD]
    with caplog.at_level(logging.DEBUG):
        harness = Harness(tmp_path, token_file=token_file, spec=LEAKY_SPEC, prometheus=prometheus)
        harness.step(times=3)
        outputs = [
            harness.call(method, path, body, token=token).text
            for method, path, body in WRITES
            for token in (TOKEN, WRONG, None)
        ]
        for path in (
            "/api/v1/horizontalautoscalers",
            AUTOSCALER,
            "/api/v1/metricsproducers",
            "/api/v1/scalablenodegroups",
            "/api/v1/decisions",
            "/api/v1/history",
            "/api/v1/config",
            "/metrics",
            "/openapi.json",
        ):
            outputs.append(harness.client.get(path).text)
    errors = " ".join(outputs)
    assert "Could not connect" in errors or "ConnectionError" in errors  # the backends failed
    logged = "\n".join(
        [r.getMessage() for r in caplog.records]
        + [str(r.exc_info[1]) for r in caplog.records if r.exc_info]
    )
    assert "ops paused autoscaler default/workers" in logged  # the audit names who
    for secret in secrets:
        assert secret not in errors, f"a secret is in the API output: {secret[:4]}…"
        assert secret not in logged, f"a secret is in the log: {secret[:4]}…"
    assert repr(Settings(prometheus=prometheus)).count(PROMETHEUS_PASSWORD) == 0
