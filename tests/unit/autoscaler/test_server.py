"""The HTTP API against a real Service (quickstart specs, fake clock, backends run inline)."""

from __future__ import annotations

import asyncio
import math
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from autoscaler.clock import FakeClock
from autoscaler.decisions import DecisionRecord
from autoscaler.history import History
from autoscaler.loop import InlineRunner
from autoscaler.server import (
    EVENT_LOOP_LOCK_WAIT_SECONDS,
    DecisionList,
    HistoryView,
    ObjectList,
    ObjectView,
    _Reads,
    create_app,
)
from autoscaler.service import Service
from autoscaler.settings import Settings

ROOT = Path(__file__).resolve().parents[3]
QUICKSTART = ROOT / "examples" / "quickstart.yaml"
PROBLEM = "application/problem+json"

THREE_GROUPS = "\n---\n".join(
    f"""
apiVersion: autoscaler.dev/v1alpha1
kind: ScalableNodeGroup
metadata: {{name: {name}, namespace: {namespace}}}
spec: {{type: Simulated, id: {name}, replicas: 1}}
"""
    for namespace, name in [("team-b", "gpu"), ("default", "workers"), ("default", "batch")]
)


class Harness:
    """A service on a fake clock with its app; ``step`` runs the loop and samples the history."""

    def __init__(self, config: Path) -> None:
        self.clock = FakeClock()
        self.service = Service(Settings(), [config], clock=self.clock)
        self.service.loop.runner.shutdown()
        self.service.loop.runner = InlineRunner()
        self.service.reload(force=True)
        self.history = History(self.clock)
        self.app: FastAPI = create_app(self.service, history=self.history, sample_history=False)
        self.client = TestClient(self.app, raise_server_exceptions=False)

    def step(self, seconds: float = 5.0, samples: int = 1) -> None:
        for _ in range(samples):
            self.service.loop.run_once()
            self.history.sample(self.service.loop)
            self.clock.advance(seconds)

    def get(self, path: str, **headers: str) -> Any:
        return self.client.get(path, headers=headers)


@pytest.fixture
def quickstart() -> Iterator[Harness]:
    harness = Harness(QUICKSTART)
    harness.step(samples=6)
    yield harness
    harness.client.close()


@pytest.fixture
def three_groups(tmp_path: Path) -> Harness:
    config = tmp_path / "groups.yaml"
    config.write_text(THREE_GROUPS)
    harness = Harness(config)
    harness.step()
    return harness


def _add_decisions(harness: Harness, count: int) -> list[int]:
    log = harness.service.loop.decisions
    seqs = []
    for i in range(count):
        seq = log.next_seq()
        log.append(
            DecisionRecord(
                seq=seq,
                time=harness.clock() + i,
                autoscaler="default/other",
                node_group="default/other",
                from_replicas=i,
                to_replicas=i + 1,
                recommendation=i + 1,
                limited_by="metrics",
                reasons=(f"reason {i}",),
                direction="up",
            )
        )
        seqs.append(seq)
    return seqs


# --------------------------------------------------------------------------- shapes


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        ("/api/v1/horizontalautoscalers", "HorizontalAutoscaler"),
        ("/api/v1/metricsproducers", "MetricsProducer"),
        ("/api/v1/scalablenodegroups", "ScalableNodeGroup"),
    ],
    ids=["autoscalers", "producers", "node-groups"],
)
def test_lists_keep_items_with_namespace_name_spec_and_status(
    quickstart: Harness, path: str, kind: str
) -> None:
    response = quickstart.get(path)
    assert response.status_code == 200
    body = response.json()
    ObjectList.model_validate(body)
    [item] = body["items"]
    assert item["kind"] == kind
    assert {"namespace", "name", "spec", "status"} <= set(item)
    assert body["metadata"] == {}  # one page: no continue token


def test_the_quickstart_autoscaler_reports_its_metrics_and_desired_count(
    quickstart: Harness,
) -> None:
    one = quickstart.get("/api/v1/horizontalautoscalers/default/workers").json()
    assert one["status"]["desiredReplicas"] in (2, 5, 6)
    [metric] = one["status"]["currentMetrics"]
    assert metric["name"] == "office-hours/replicas"
    decisions = DecisionList.model_validate(quickstart.get("/api/v1/decisions").json())
    assert decisions.items[0].reasons
    assert decisions.items[0].limitedBy is not None


@pytest.mark.parametrize(
    ("path", "model"),
    [
        ("/api/v1/horizontalautoscalers", ObjectList),
        ("/api/v1/horizontalautoscalers?limit=1", ObjectList),
        ("/api/v1/horizontalautoscalers/default/workers", ObjectView),
        ("/api/v1/metricsproducers", ObjectList),
        ("/api/v1/scalablenodegroups", ObjectList),
        ("/api/v1/scalablenodegroups?limit=2", ObjectList),
        ("/api/v1/decisions", DecisionList),
        ("/api/v1/decisions?limit=2", DecisionList),
    ],
)
def test_bodies_are_exactly_what_their_response_model_writes(
    quickstart: Harness, path: str, model: type[ObjectList | ObjectView | DecisionList]
) -> None:
    """The endpoints write the loop's views without passing them through the models: the
    bytes must be the model's own serialization of the same data (field order, aliases, left
    out fields, number formats, non-finite values as null)."""
    log = quickstart.service.loop.decisions
    for actor, value in [(None, math.nan), ("alice", math.inf), (None, 0.1 + 0.2)]:
        log.append(
            DecisionRecord(
                seq=log.next_seq(),
                time=quickstart.clock() + 0.123456,
                autoscaler="default/other",
                node_group="default/other",
                from_replicas=1,
                to_replicas=1,
                recommendation=None,
                limited_by=None,
                reasons=("ünïcode ✓",),
                metrics=({"name": "m", "value": value, "labels": {"a": "b"}},),
                actor=actor,
            )
        )
    quickstart.step()
    body = quickstart.get(path).content
    assert body == model.model_validate_json(body).model_dump_json(by_alias=True).encode()


# --------------------------------------------------------------------------- pagination


def test_a_list_pages_with_limit_and_a_continue_token_in_key_order(
    three_groups: Harness,
) -> None:
    first = three_groups.get("/api/v1/scalablenodegroups?limit=2").json()
    assert [(i["namespace"], i["name"]) for i in first["items"]] == [
        ("default", "batch"),
        ("default", "workers"),
    ]
    assert first["metadata"]["remainingItemCount"] == 1
    token = first["metadata"]["continue"]
    second = three_groups.get(f"/api/v1/scalablenodegroups?limit=2&continue={token}").json()
    assert [i["name"] for i in second["items"]] == ["gpu"]
    assert second["metadata"] == {}


def test_a_continue_token_stays_valid_when_the_object_it_points_at_is_deleted(
    three_groups: Harness,
) -> None:
    first = three_groups.get("/api/v1/scalablenodegroups?limit=1").json()
    token = first["metadata"]["continue"]  # after default/batch
    del three_groups.service.loop.node_groups["default/batch"]
    rest = three_groups.get(f"/api/v1/scalablenodegroups?continue={token}").json()
    assert [i["name"] for i in rest["items"]] == ["workers", "gpu"]


def test_a_list_follows_objects_added_and_removed_between_pages(three_groups: Harness) -> None:
    groups = three_groups.service.loop.node_groups
    assert three_groups.get("/api/v1/scalablenodegroups?limit=1").json()["items"][0]["name"] == (
        "batch"
    )
    groups["default/aaa"] = groups.pop("default/batch")  # same count, other keys
    body = three_groups.get("/api/v1/scalablenodegroups").json()
    assert [(i["namespace"], i["name"]) for i in body["items"]] == [
        ("default", "batch"),  # the runtime keeps its resource; the key orders the list
        ("default", "workers"),
        ("team-b", "gpu"),
    ]
    assert list(groups) != sorted(groups)


def test_decisions_page_newest_first_with_a_continue_token(quickstart: Harness) -> None:
    seqs = _add_decisions(quickstart, 5)
    query = "/api/v1/decisions?autoscaler=default/other&limit=2"
    pages: list[list[int]] = []
    token = ""
    while True:
        body = quickstart.get(query + (f"&continue={token}" if token else "")).json()
        pages.append([d["seq"] for d in body["items"]])
        token = body["metadata"].get("continue", "")
        if not token:
            break
    assert pages == [seqs[:2:-1], seqs[2:0:-1], seqs[:1]]


@pytest.mark.parametrize(
    "token",
    ["not-base64!", "e30", "eyJhZnRlciI6IDF9"],  # garbage, {}, {"after": 1}
    ids=["garbage", "empty-object", "wrong-type"],
)
def test_a_continue_token_the_server_did_not_issue_is_a_400_problem(
    three_groups: Harness, token: str
) -> None:
    response = three_groups.get(f"/api/v1/scalablenodegroups?continue={token}")
    assert response.status_code == 400
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["title"] == "Bad Request"


# --------------------------------------------------------------------------- cheap polling


def test_an_unchanged_list_answers_304_to_its_etag_and_a_changed_one_200(
    quickstart: Harness,
) -> None:
    first = quickstart.get("/api/v1/scalablenodegroups")
    etag = first.headers["etag"]
    assert etag.startswith('W/"')
    assert first.headers["cache-control"] == "no-cache"
    unchanged = quickstart.get("/api/v1/scalablenodegroups", **{"If-None-Match": etag})
    assert unchanged.status_code == 304
    assert unchanged.content == b""
    assert unchanged.headers["etag"] == etag

    quickstart.step(seconds=30, samples=2)  # nodes become ready: the status changes
    changed = quickstart.get("/api/v1/scalablenodegroups", **{"If-None-Match": etag})
    assert changed.status_code == 200
    assert changed.headers["etag"] != etag


def test_if_none_match_accepts_a_list_of_tags_and_the_strong_form(quickstart: Harness) -> None:
    etag = quickstart.get("/api/v1/metricsproducers").headers["etag"]
    strong = etag.removeprefix("W/")
    response = quickstart.get("/api/v1/metricsproducers", **{"If-None-Match": f'"x", {strong}'})
    assert response.status_code == 304


def test_decisions_after_a_sequence_number_are_only_the_new_ones(quickstart: Harness) -> None:
    latest = quickstart.get("/api/v1/decisions").json()["items"][0]["seq"]
    assert quickstart.get(f"/api/v1/decisions?after={latest}").json()["items"] == []
    [new] = _add_decisions(quickstart, 1)
    newer = quickstart.get(f"/api/v1/decisions?after={latest}").json()["items"]
    assert [d["seq"] for d in newer] == [new]


# --------------------------------------------------------------------------- history


def test_history_serves_every_sample_since_start_for_a_fresh_page(quickstart: Harness) -> None:
    body = quickstart.get("/api/v1/history").json()
    HistoryView.model_validate(body)
    assert body["metadata"] == {
        "intervalSeconds": 5.0,
        "retentionSeconds": 3600.0,
        "latestSeq": 6,
    }
    [series] = body["autoscalers"]
    assert (series["autoscaler"], series["nodeGroup"]) == ("default/workers", "default/workers")
    assert [p["seq"] for p in series["points"]] == [1, 2, 3, 4, 5, 6]
    last = series["points"][-1]
    assert last["desiredReplicas"] in (5, 6)
    assert last["minReplicas"] == 1 and last["maxReplicas"] == 10
    [metric] = last["metrics"]
    assert metric["name"] == "office-hours/replicas"
    assert metric["targetType"] == "AverageValue"
    assert metric["targetLevel"] == metric["target"] * last["currentReplicas"]
    [group] = body["nodeGroups"]
    assert group["nodeGroup"] == "default/workers"
    assert len(group["points"]) == 6


def test_history_after_a_sequence_number_and_its_etag_make_polling_cheap(
    quickstart: Harness,
) -> None:
    first = quickstart.get("/api/v1/history?after=6")
    assert first.json()["autoscalers"][0]["points"] == []
    etag = first.headers["etag"]
    assert quickstart.get("/api/v1/history?after=6", **{"If-None-Match": etag}).status_code == 304
    quickstart.step()
    newer = quickstart.get("/api/v1/history?after=6", **{"If-None-Match": etag})
    assert newer.status_code == 200
    assert [p["seq"] for p in newer.json()["autoscalers"][0]["points"]] == [7]


def test_history_of_one_autoscaler_includes_its_node_group_only(three_groups: Harness) -> None:
    body = three_groups.get("/api/v1/history?nodeGroup=team-b/gpu").json()
    assert body["autoscalers"] == []
    assert [g["nodeGroup"] for g in body["nodeGroups"]] == ["team-b/gpu"]


@pytest.mark.parametrize(
    "query", ["autoscaler=default/nope", "nodeGroup=default/nope"], ids=["autoscaler", "group"]
)
def test_history_of_an_unknown_object_is_a_404_problem(quickstart: Harness, query: str) -> None:
    response = quickstart.get(f"/api/v1/history?{query}")
    assert response.status_code == 404
    assert response.headers["content-type"] == PROBLEM
    assert "default/nope" in response.json()["detail"]


def test_a_large_response_is_gzipped_for_clients_that_accept_it(quickstart: Harness) -> None:
    quickstart.step(samples=100)
    response = quickstart.get("/api/v1/history", **{"Accept-Encoding": "gzip"})
    assert response.headers["content-encoding"] == "gzip"
    assert "etag" in response.headers


# --------------------------------------------------------------------------- the loop's lock


def test_a_read_runs_on_the_event_loop_when_the_lock_is_free() -> None:
    from autoscaler.locks import YieldingLock

    reads = _Reads(YieldingLock())
    assert asyncio.run(reads.run(threading.get_ident)) == threading.get_ident()


def test_a_read_waits_on_a_worker_thread_while_the_lock_is_held_long() -> None:
    """A spec reload holds the loop's lock for seconds: the event loop waits a few ms, then
    hands the read to a worker thread and keeps serving; later reads go there at once."""
    from autoscaler.locks import YieldingLock

    lock = YieldingLock()
    reads = _Reads(lock)
    held, release = threading.Event(), threading.Event()

    def holder() -> None:
        with lock:
            held.set()
            release.wait(5)

    thread = threading.Thread(target=holder)
    thread.start()
    held.wait(5)

    async def scenario() -> tuple[list[int], float]:
        started = time.monotonic()
        first = asyncio.create_task(reads.run(threading.get_ident))
        second = asyncio.create_task(reads.run(threading.get_ident))
        await asyncio.sleep(0.05)  # the event loop runs while both reads wait
        ticked = time.monotonic() - started
        release.set()
        return [await first, await second], ticked

    idents, ticked = asyncio.run(scenario())
    thread.join(5)
    assert ticked < 0.05 + 2 * EVENT_LOOP_LOCK_WAIT_SECONDS + 0.5  # blocked ≤ one wait each
    assert all(ident != threading.get_ident() for ident in idents)  # on worker threads


def test_a_request_is_foreground_work_for_the_loop_while_it_is_served(
    quickstart: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The loop steps aside while a request is in flight (autoscaler.locks)."""
    loop = quickstart.service.loop
    seen: list[int] = []
    view = loop.autoscaler_view

    def spy(runtime: Any) -> dict[str, Any]:
        seen.append(loop.lock.in_foreground)
        return view(runtime)

    monkeypatch.setattr(loop, "autoscaler_view", spy)
    assert quickstart.get("/api/v1/horizontalautoscalers").status_code == 200
    assert seen and all(count == 1 for count in seen)
    assert loop.lock.in_foreground == 0  # and not after it was answered
    assert quickstart.get("/api/v1/horizontalautoscalers/default/no-such").status_code == 404
    assert loop.lock.in_foreground == 0  # nor after an error


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/api/v1/decisions?limit=0", "query.limit"),
        ("/api/v1/decisions?limit=many", "query.limit"),
        ("/api/v1/decisions?after=-1", "query.after"),
        ("/api/v1/decisions?autoscaler=no-slash", "query.autoscaler"),
        ("/api/v1/scalablenodegroups?limit=10001", "query.limit"),
        ("/api/v1/history?after=x", "query.after"),
    ],
    ids=["limit-zero", "limit-text", "after-negative", "autoscaler-key", "limit-big", "history"],
)
def test_invalid_parameters_are_a_422_problem_naming_the_field(
    quickstart: Harness, path: str, field: str
) -> None:
    response = quickstart.get(path)
    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM
    problem = response.json()
    assert problem["title"] == "Unprocessable Entity"
    assert problem["status"] == 422
    assert problem["instance"] == path.split("?")[0]
    assert [e["field"] for e in problem["errors"]] == [field]
    assert field in problem["detail"]


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/api/v1/horizontalautoscalers/default/nope", 404),
        ("/api/v1/nothing-here", 404),
        ("/api/v1/decisions?since=yesterday", 400),
    ],
    ids=["unknown-autoscaler", "unknown-path", "bad-time"],
)
def test_client_errors_are_problem_json(quickstart: Harness, path: str, status: int) -> None:
    response = quickstart.get(path)
    assert response.status_code == status
    assert response.headers["content-type"] == PROBLEM
    assert set(response.json()) >= {"type", "title", "status", "detail"}


def test_an_unexpected_error_is_a_500_problem_without_internals(
    quickstart: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(_: object) -> dict[str, Any]:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(quickstart.service.loop, "autoscaler_view", broken)
    response = quickstart.get("/api/v1/horizontalautoscalers")
    assert response.status_code == 500
    assert response.headers["content-type"] == PROBLEM
    assert "secret" not in response.text


def test_a_probe_that_fails_is_a_503_problem(quickstart: Harness) -> None:
    assert quickstart.get("/readyz").json() == {"status": "ready"}
    quickstart.service.stop()
    response = quickstart.get("/healthz")
    assert response.status_code == 503
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["detail"] == "a background thread has stopped"


# --------------------------------------------------------------------------- OpenAPI


def test_every_endpoint_documents_a_response_model_and_problem_errors(
    quickstart: Harness,
) -> None:
    document = quickstart.get("/openapi.json").json()
    schemas = document["components"]["schemas"]
    assert "HTTPValidationError" not in schemas
    assert {"Problem", "ObjectList", "DecisionList", "HistoryView", "ListMeta"} <= set(schemas)
    for path, item in document["paths"].items():
        for method, operation in item.items():
            where = f"{method.upper()} {path}"
            ok = operation["responses"]["200"]["content"]
            assert any(media.get("schema") for media in ok.values()), where
            assert "500" in operation["responses"], where
            for code, response in operation["responses"].items():
                if code[0] in "45":
                    assert list(response["content"]) == [PROBLEM], f"{where} {code}"
    assert "/api/v1/history" in document["paths"]
    continue_param = [
        p
        for p in document["paths"]["/api/v1/scalablenodegroups"]["get"]["parameters"]
        if p["name"] == "continue"
    ]
    assert continue_param


# --------------------------------------------------------------------------- dashboard


def test_the_dashboard_loads_only_local_assets_under_a_strict_content_policy(
    quickstart: Harness,
) -> None:
    page = quickstart.get("/")
    assert page.status_code == 200
    policy = page.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "connect-src 'self'" in policy
    references = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert references and all(ref.startswith(("/", "#", "data:")) for ref in references)
    for asset, media in [("/static/dashboard.js", "javascript"), ("/static/dashboard.css", "css")]:
        response = quickstart.get(asset)
        assert response.status_code == 200, asset
        assert media in response.headers["content-type"]
        assert not re.search(r"https?://", response.text), asset
