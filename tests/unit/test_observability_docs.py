"""The metrics documentation and the Grafana dashboard stay true to what /metrics exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client import generate_latest

from autoscaler.clock import FakeClock
from autoscaler.loop import ControlLoop
from autoscaler.metrics import Metrics

ROOT = Path(__file__).resolve().parents[2]
SUFFIXES = ("_bucket", "_count", "_sum", "_created")


def _exported_names() -> set[str]:
    metrics = Metrics(ControlLoop(FakeClock()))
    # Touch the labelled families so that they appear in the exposition.
    metrics.producer_run("default/p", 0.01, None)
    metrics.provider_call("default/g", 0.01, None)
    text = generate_latest(metrics.registry).decode()
    names = set(re.findall(r"^# TYPE (\w+) ", text, flags=re.MULTILINE))
    return names | {"autoscaler_decisions_total", "autoscaler_errors_total"}


def _base(name: str) -> str:
    for suffix in SUFFIXES:
        if name.endswith(suffix):
            return name.removesuffix(suffix)
    return name


def test_every_exported_metric_is_documented() -> None:
    documented = (ROOT / "docs" / "metrics.md").read_text()
    for name in {_base(n) for n in _exported_names()}:
        assert name in documented, f"{name} is not in docs/metrics.md"


def test_the_grafana_dashboard_only_queries_exported_metrics() -> None:
    dashboard = json.loads((ROOT / "deploy" / "grafana" / "node-autoscaler.json").read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    used = {_base(m) for expr in exprs for m in re.findall(r"\bautoscaler_\w+", expr)}
    exported = {_base(n) for n in _exported_names()} | {
        n.removesuffix("_total") for n in _exported_names()
    }
    assert used, "the dashboard queries nothing"
    missing = {m for m in used if m not in exported and m.removesuffix("_total") not in exported}
    assert not missing, f"the dashboard queries metrics the service does not export: {missing}"
    assert len({panel["id"] for panel in dashboard["panels"]}) == len(dashboard["panels"])
