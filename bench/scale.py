"""Benchmark: the standalone service at scale (issue "Reliability, security and scale", item 5).

Goals: 10,000 autoscalers over 1,000 node groups and 2,000 producers — one full evaluation pass
≤ 1 s on one core, RSS ≤ 200 MiB; status API p99 ≤ 50 ms at 200 requests/s while the loop runs;
idle RSS with only the standalone backends ≤ 60 MiB.

The spec loader allows one autoscaler per node group, so 10,000 autoscalers over 1,000 groups
cannot be configured. Two shapes are measured (``bench/RESULTS.md`` explains why):

* ``configurable``: 10,000 autoscalers, each scaling its own node group (10,000 Simulated groups),
  reading 2,000 schedule producers (5 autoscalers per producer), loaded from YAML through the
  spec loader — what a user can run. It does more work than the other shape (10× the groups).
* ``shared-groups``: the issue's literal shape, 10,000 autoscalers over 1,000 groups (10 per
  group), built as a ``SpecSet`` directly because the loader refuses it. Autoscalers sharing a
  group read producers that ask for the same count, so they agree.

Parts, each in a fresh process so their memory does not mix:

1. ``pass``: one full evaluation pass (every producer observes, every autoscaler evaluates,
   every node group is read and set when needed) with the inline runner on a fake clock, the
   process pinned to one core; median of repeats (wall time, and the process's CPU time, which
   other load on a shared machine disturbs less). The clock moves 60 s per pass and a tenth of
   the producers change their value at each minute, so every pass scales a tenth of the groups
   up or down. Baseline in the same run: the pure algorithm (``decide_for(spec)``) called with the
   same spec, count, values and history as the loop's own calls in that pass.
2. RSS (``VmRSS``) after loading and applying the specs, after the passes, and the peak.
3. ``serve``: ``autoscaler serve`` as a real process on the configurable specs, pinned to one
   core, and an open-model load generator (fixed arrival rate, async httpx, pinned to another
   core when there is one) against a mix of status endpoints while the loop runs; latency is
   measured from each request's scheduled start, so a stalled server cannot hide queueing.
4. ``idle``: RSS of ``autoscaler serve`` on ``examples/quickstart.yaml`` 10 s after it is ready,
   and which heavy client modules are imported after the quickstart is loaded and run.
5. ``scrape``: the ``/metrics`` body of the configurable shape after a few passes (every series
   populated), written by ``Metrics.exposition`` and, as the baseline in the same process, by
   prometheus_client's ``generate_latest`` on the same registry (the bytes must be equal);
   medians of the repeats, pinned to one core.

    .venv/bin/python bench/scale.py [--autoscalers 10000] [--producers 2000]
        [--parts pass serve idle scrape] [--repeats 5] [--rate 200] [--seconds 25] [--json OUT]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AsyncExitStack, contextmanager
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
GOALS = {"pass_s": 1.0, "rss_mib": 200.0, "p99_ms": 50.0, "idle_rss_mib": 60.0}
HEAVY_MODULES = (
    "boto3",
    "botocore",
    "kubernetes",
    "prometheus_api_client",
    "requests",
    "pandas",
    "numpy",
)
#: The clock step of one full pass: every producer, autoscaler and node group is due.
PASS_STEP_SECONDS = 60.0
#: HTTP client pools of the load generator (8 connections each).
CLIENT_POOLS = 32


# --------------------------------------------------------------------------- the specs


def documents(autoscalers: int, producers: int, node_groups: int) -> list[dict[str, Any]]:
    """The spec documents: ``node_groups`` Simulated groups, ``producers`` schedule producers
    and ``autoscalers`` autoscalers; autoscaler ``i`` reads producer ``i % producers`` and
    scales group ``i % node_groups``.

    Even producers follow office hours (constant during the benchmark); odd producers switch
    between 2 and 6 every 5 minutes, a fifth of them at each minute, so a 60 s pass sees 10 % of
    the producers change. Behaviours vary: a 60 s scale-down window, scale-down without
    stabilization, and a slower scale-up with a wider tolerance. When several autoscalers share
    a group (``node_groups < autoscalers``) the producers they read ask for the same count.
    """
    docs: list[dict[str, Any]] = []
    meta = {"apiVersion": "autoscaler.dev/v1alpha1"}
    for g in range(node_groups):
        docs.append(
            {
                **meta,
                "kind": "ScalableNodeGroup",
                "metadata": {"name": f"group-{g}", "namespace": "default"},
                "spec": {
                    "type": "Simulated",
                    "id": f"group-{g}",
                    "replicas": 2,
                    "simulated": {"provisioningDelaySeconds": 30, "maxSize": 100},
                },
            }
        )
    for p in range(producers):
        # Producers read by the autoscalers of one shared group must agree (see docstring).
        shape = p % node_groups if node_groups < autoscalers else p
        if shape % 2 == 0:
            behaviors = [{"start": "0 9 * * 1-5", "end": "0 17 * * 1-5", "replicas": 4 + shape % 4}]
        else:  # open 5 minutes in 10, a fifth of them each minute: 10 % change per pass
            minute = (shape // 2) % 5
            behaviors = [
                {
                    "start": f"{minute}-59/10 * * * *",
                    "end": f"{minute + 5}-59/10 * * * *",
                    "replicas": 6,
                }
            ]
        docs.append(
            {
                **meta,
                "kind": "MetricsProducer",
                "metadata": {"name": f"schedule-{p}", "namespace": "default"},
                "spec": {
                    "intervalSeconds": 15,
                    "schedule": {
                        "timezone": "UTC",
                        "defaultReplicas": 2 if shape % 2 else 1 + shape % 5,
                        "behaviors": behaviors,
                    },
                },
            }
        )
    behaviours: list[dict[str, Any] | None] = [
        {"scaleDown": {"stabilizationWindowSeconds": 60}},
        {"scaleDown": {"stabilizationWindowSeconds": 0}},
        {
            "scaleUp": {
                "tolerance": 0.2,
                "policies": [{"type": "Pods", "value": 2, "periodSeconds": 60}],
            }
        },
    ]
    for i in range(autoscalers):
        spec: dict[str, Any] = {
            "scaleTargetRef": {"name": f"group-{i % node_groups}"},
            "minReplicas": 1,
            "maxReplicas": 50,
            "metrics": [
                {
                    "producer": {"name": f"schedule-{i % producers}", "metric": "replicas"},
                    "target": {"type": "AverageValue", "averageValue": 1},
                }
            ],
        }
        # Autoscalers sharing a group share its behaviour too, or they would disagree.
        behavior = behaviours[(i % node_groups) % len(behaviours)]
        if behavior is not None:
            spec["behavior"] = behavior
        docs.append(
            {
                **meta,
                "kind": "HorizontalAutoscaler",
                "metadata": {"name": f"scaler-{i}", "namespace": "default"},
                "spec": spec,
            }
        )
    return docs


def write_yaml(docs: list[dict[str, Any]], folder: Path) -> Path:
    path = folder / "specs.yaml"
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    return path


def spec_set(docs: list[dict[str, Any]]) -> Any:
    """A SpecSet built from the documents without the loader's cross-checks."""
    from autoscaler.api import KINDS, HorizontalAutoscaler, MetricsProducer, key_of
    from autoscaler.config import SpecSet

    specs = SpecSet()
    for doc in docs:
        resource = KINDS[doc["kind"]].model_validate(doc)
        key = key_of(resource.metadata)
        if isinstance(resource, HorizontalAutoscaler):
            specs.autoscalers[key] = resource
        elif isinstance(resource, MetricsProducer):
            specs.producers[key] = resource
        else:
            specs.node_groups[key] = resource
    return specs


# --------------------------------------------------------------------------- process helpers


def rss_mib(pid: int | str = "self") -> dict[str, float]:
    """VmRSS and VmHWM (peak) of a process, in MiB."""
    out: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        field, _, rest = line.partition(":")
        if field in ("VmRSS", "VmHWM"):
            out[field] = round(int(rest.split()[0]) / 1024, 1)
    return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpus() -> list[int]:
    return sorted(os.sched_getaffinity(0))


def machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": model,
        "cores": os.cpu_count(),
    }


def run_part(args: list[str], timeout: float = 3600) -> dict[str, Any]:
    """Run ``bench/scale.py <args>`` in a fresh interpreter; its last stdout line is JSON."""
    done = subprocess.run(
        [sys.executable, __file__, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"part {args} failed:\n{done.stdout}\n{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


# --------------------------------------------------------------------------- 1–2. the pass


def measure_pass(
    autoscalers: int, producers: int, node_groups: int, repeats: int, cpu: int
) -> dict[str, Any]:
    os.sched_setaffinity(0, {cpu})
    from autoscaler import tuning
    from autoscaler.algorithms import decide_for
    from autoscaler.algorithms.types import MetricInput
    from autoscaler.clock import FakeClock
    from autoscaler.config import load_paths
    from autoscaler.loop import ControlLoop
    from autoscaler.settings import LoopSettings

    rss_start = rss_mib()["VmRSS"]
    docs = documents(autoscalers, producers, node_groups)
    load_seconds: float | None = None
    if node_groups >= autoscalers:
        with tempfile.TemporaryDirectory() as folder:
            path = write_yaml(docs, Path(folder))
            del docs
            started = time.perf_counter()
            result = load_paths([path])
            load_seconds = time.perf_counter() - started
        if result.issues:
            raise RuntimeError(f"the specs do not load: {result.issues[:3]}")
        specs = result.specs
    else:
        specs = spec_set(docs)
        del docs
    clock = FakeClock(1_767_258_000.0)  # 2026-01-01 09:00 UTC, a Thursday
    loop = ControlLoop(clock, LoopSettings())
    loop.apply(specs)
    del specs
    tuning.after_load()  # as the service does after it applies specs
    for _ in range(3):  # warm-up: first reads, first observations, first decisions
        clock.advance(PASS_STEP_SECONDS)
        loop.run_once()
    rss_loaded = rss_mib()["VmRSS"]

    passes: list[float] = []
    passes_cpu: list[float] = []
    baselines: list[float] = []
    baselines_cpu: list[float] = []
    recorded: list[int] = []
    scaled: list[int] = []
    for _ in range(repeats):
        now = clock.advance(PASS_STEP_SECONDS)
        before = [
            (rt, rt.resource.spec, loop.node_groups[rt.target_key].desired, rt.history)
            for rt in loop.autoscalers.values()
        ]
        newest = loop.decisions.query(limit=1)
        seq = newest[0].seq if newest else 0
        started, started_cpu = time.perf_counter(), time.process_time()
        loop.run_once()
        passes.append(time.perf_counter() - started)
        passes_cpu.append(time.process_time() - started_cpu)
        # Everything ran in this pass.
        assert all(p.last_time == now for p in loop.producers.values()), "a producer did not run"
        assert all(rt.last_time == now for rt in loop.autoscalers.values()), "not evaluated"
        assert all(g.last_updated == now for g in loop.node_groups.values()), "a group not read"
        records = loop.decisions.query(after_seq=seq, limit=autoscalers)
        recorded.append(len(records))
        scaled.append(sum(1 for r in records if r.direction != "none"))
        # The algorithm alone, on exactly the inputs of the loop's own calls.
        calls = []
        for rt, spec, current, history in before:
            assert rt.last is not None and current is not None
            inputs = [
                MetricInput(m.name, metric.target, m.value)
                for m, metric in zip(rt.last.metrics, spec.metrics, strict=True)
            ]
            calls.append((decide_for(spec), spec, current, inputs, history))
        started, started_cpu = time.perf_counter(), time.process_time()
        for decide, spec, current, inputs, history in calls:
            decide(spec, current, inputs, history, now)
        baselines.append(time.perf_counter() - started)
        baselines_cpu.append(time.process_time() - started_cpu)
    rss_after = rss_mib()
    pass_s, base_s = statistics.median(passes), statistics.median(baselines)
    return {
        "autoscalers": autoscalers,
        "producers": producers,
        "node_groups": node_groups,
        "cpu": cpu,
        "repeats": repeats,
        "load_seconds": round(load_seconds, 2) if load_seconds is not None else None,
        "pass_ms": [round(p * 1e3, 1) for p in passes],
        "pass_ms_median": round(pass_s * 1e3, 1),
        "pass_cpu_ms_median": round(statistics.median(passes_cpu) * 1e3, 1),
        "algorithm_ms_median": round(base_s * 1e3, 1),
        "algorithm_cpu_ms_median": round(statistics.median(baselines_cpu) * 1e3, 1),
        "ratio_to_algorithm": round(pass_s / base_s, 2),
        "per_autoscaler_us": round(pass_s * 1e6 / autoscalers, 1),
        "decisions_recorded_per_pass": statistics.median(recorded),
        "scale_changes_per_pass": statistics.median(scaled),
        "rss_start_mib": rss_start,
        "rss_loaded_mib": rss_loaded,
        "rss_after_mib": rss_after["VmRSS"],
        "rss_peak_mib": rss_after["VmHWM"],
    }


def measure_scrape(autoscalers: int, producers: int, repeats: int, cpu: int) -> dict[str, Any]:
    os.sched_setaffinity(0, {cpu})
    from prometheus_client import generate_latest

    from autoscaler import tuning
    from autoscaler.clock import FakeClock
    from autoscaler.loop import ControlLoop
    from autoscaler.metrics import Metrics
    from autoscaler.settings import LoopSettings

    specs = spec_set(documents(autoscalers, producers, autoscalers))
    clock = FakeClock(1_767_258_000.0)
    loop = ControlLoop(clock, LoopSettings())
    metrics = Metrics(loop)
    loop.observer = metrics
    loop.apply(specs)
    del specs
    tuning.after_load()
    for _ in range(3):
        clock.advance(PASS_STEP_SECONDS)
        loop.run_once()
    ours: list[float] = []
    baseline: list[float] = []
    for _ in range(repeats):
        started = time.process_time()
        body = metrics.exposition()
        ours.append(time.process_time() - started)
        started = time.process_time()
        reference = generate_latest(metrics.registry)
        baseline.append(time.process_time() - started)
        if body != reference:
            raise RuntimeError("Metrics.exposition differs from generate_latest")
    ours_s, base_s = statistics.median(ours), statistics.median(baseline)
    return {
        "autoscalers": autoscalers,
        "producers": producers,
        "node_groups": autoscalers,
        "repeats": repeats,
        "lines": body.count(b"\n"),
        "bytes": len(body),
        "exposition_cpu_ms_median": round(ours_s * 1e3, 1),
        "generate_latest_cpu_ms_median": round(base_s * 1e3, 1),
        "speedup": round(base_s / ours_s, 1),
    }


# --------------------------------------------------------------------------- 3–4. serve


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serve(config: Path, cpu: int | None, log: Path) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """``autoscaler serve --config CONFIG`` as a real process, pinned to ``cpu``."""
    port = _free_port()
    with log.open("w") as out:
        command = [sys.executable, "-m", "autoscaler.cli", "serve", "--config", str(config)]
        process = subprocess.Popen(
            [*command, "--port", str(port)],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
            preexec_fn=(lambda: os.sched_setaffinity(0, {cpu})) if cpu is not None else None,
        )
        try:
            yield process, f"http://127.0.0.1:{port}"
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


def wait_ready(process: subprocess.Popen[str], url: str, timeout: float) -> float:
    import httpx

    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if process.poll() is not None:
            raise RuntimeError(f"serve exited with {process.returncode}")
        try:
            if httpx.get(url + "/readyz", timeout=5).status_code == 200:
                return time.monotonic() - started
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"serve was not ready after {timeout}s")


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def _summary(latencies: list[float]) -> dict[str, Any]:
    return {
        "count": len(latencies),
        "p50_ms": round(_pct(latencies, 0.50) * 1e3, 1),
        "p90_ms": round(_pct(latencies, 0.90) * 1e3, 1),
        "p99_ms": round(_pct(latencies, 0.99) * 1e3, 1),
        "max_ms": round(max(latencies, default=float("nan")) * 1e3, 1),
    }


def endpoint_mix(autoscalers: int, rng: random.Random) -> Callable[[], tuple[str, str]]:
    """(endpoint family, path) of the next request: 40 % one autoscaler, 20 % each other."""

    def pick() -> tuple[str, str]:
        roll = rng.random()
        if roll < 0.4:
            i = rng.randrange(autoscalers)
            return "autoscaler", f"/api/v1/horizontalautoscalers/default/scaler-{i}"
        if roll < 0.6:
            return "nodegroups", "/api/v1/scalablenodegroups?limit=100"
        if roll < 0.8:
            return "decisions", "/api/v1/decisions?limit=50"
        return "healthz", "/healthz"

    return pick


async def _load(
    url: str, rate: float, seconds: float, pick: Callable[[], tuple[str, str]]
) -> dict[str, Any]:
    """Open model: request ``k`` starts at ``t0 + k / rate`` whatever the earlier ones do."""
    import httpx

    total = int(rate * seconds)
    results: list[tuple[str, float, float, int]] = []
    errors: dict[str, int] = {}
    late_starts: list[float] = []
    # Several small pools: httpx's pool looks at every connection for every queued request, so
    # one pool of hundreds of connections slows the client down when the server falls behind.
    limits = httpx.Limits(max_connections=8, max_keepalive_connections=8)
    async with AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(
                httpx.AsyncClient(base_url=url, limits=limits, timeout=30)
            )
            for _ in range(CLIENT_POOLS)
        ]
        loop = asyncio.get_running_loop()

        async def one(client: httpx.AsyncClient, family: str, path: str, scheduled: float) -> None:
            sent = loop.time()
            late_starts.append(sent - scheduled)
            try:
                response = await client.get(path)
                status = response.status_code
            except httpx.HTTPError as exc:
                errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                return
            done = loop.time()
            results.append((family, done - scheduled, done - sent, status))

        start = loop.time() + 0.2
        tasks = []
        for k in range(total):
            scheduled = start + k / rate
            delay = scheduled - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            family, path = pick()
            client = clients[k % len(clients)]
            tasks.append(asyncio.create_task(one(client, family, path, scheduled)))
        await asyncio.gather(*tasks)
        elapsed = loop.time() - start
    statuses: dict[str, int] = {}
    for _, _, _, status in results:
        statuses[str(status)] = statuses.get(str(status), 0) + 1
    families = sorted({f for f, _, _, _ in results})
    return {
        "requests": total,
        "target_rate": rate,
        "achieved_rate": round(len(results) / elapsed, 1),
        "send_lag_p99_ms": round(_pct(late_starts, 0.99) * 1e3, 1),
        "statuses": statuses,
        "errors": errors,
        "all": _summary([r[1] for r in results]),
        "service_time": _summary([r[2] for r in results]),
        "by_endpoint": {f: _summary([r[1] for r in results if r[0] == f]) for f in families},
    }


def _loop_metrics(url: str) -> dict[str, float]:
    """Passes and their total seconds from the service's own histogram."""
    import httpx

    out: dict[str, float] = {}
    for line in httpx.get(url + "/metrics", timeout=30).text.splitlines():
        for name in ("count", "sum"):
            if line.startswith(f"autoscaler_loop_pass_duration_seconds_{name} "):
                out[name] = float(line.split()[1])
    return out


def measure_serve(
    autoscalers: int, producers: int, rate: float, seconds: float, server_cpu: int | None
) -> dict[str, Any]:
    available = cpus()
    client_cpus = [c for c in available if c != server_cpu] or available
    os.sched_setaffinity(0, set(client_cpus))
    docs = documents(autoscalers, producers, autoscalers)
    with tempfile.TemporaryDirectory() as folder:
        config = write_yaml(docs, Path(folder))
        del docs
        with serve(config, server_cpu, Path(folder) / "serve.log") as (process, url):
            ready_s = wait_ready(process, url, timeout=900)
            time.sleep(2.0)  # the first full pass after readiness
            rss_ready = rss_mib(process.pid)
            before = _loop_metrics(url)
            cpu_before = cpu_seconds(process.pid)
            pick = endpoint_mix(autoscalers, random.Random(7))
            load = asyncio.run(_load(url, rate, seconds, pick))
            server_cpu_s = cpu_seconds(process.pid) - cpu_before
            after = _loop_metrics(url)
            rss_end = rss_mib(process.pid)
            passes = after.get("count", 0) - before.get("count", 0)
            busy = after.get("sum", 0) - before.get("sum", 0)
    return {
        "autoscalers": autoscalers,
        "producers": producers,
        "node_groups": autoscalers,
        "server_cpu": server_cpu,
        "client_cpus": client_cpus,
        "ready_seconds": round(ready_s, 1),
        "rss_ready_mib": rss_ready["VmRSS"],
        "rss_end_mib": rss_end["VmRSS"],
        "rss_peak_mib": rss_end["VmHWM"],
        "loop_passes_during_load": int(passes),
        "loop_busy_seconds_during_load": round(busy, 2),
        "server_cpu_seconds_during_load": round(server_cpu_s, 2),
        "load": load,
    }


IMPORT_CHECK = """
import json, sys, tempfile
from autoscaler.clock import FakeClock
from autoscaler.server import create_app
from autoscaler.service import Service
from autoscaler.settings import Settings
import uvicorn
service = Service(Settings(), [sys.argv[1]])
service.reload(force=True)
service.loop.run_once()
create_app(service, sample_history=False)
print(json.dumps(sorted(m for m in sys.argv[2].split(",") if m in sys.modules)))
"""


def measure_idle(seconds: float, cpu: int | None) -> dict[str, Any]:
    config = ROOT / "examples" / "quickstart.yaml"
    with (
        tempfile.TemporaryDirectory() as folder,
        serve(config, cpu, Path(folder) / "serve.log") as (process, url),
    ):
        ready_s = wait_ready(process, url, timeout=60)
        time.sleep(seconds)
        rss = rss_mib(process.pid)
    done = subprocess.run(
        [sys.executable, "-c", IMPORT_CHECK, str(config), ",".join(HEAVY_MODULES)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    imported = json.loads(done.stdout.strip().splitlines()[-1])
    return {
        "config": "examples/quickstart.yaml",
        "ready_seconds": round(ready_s, 1),
        "after_seconds": seconds,
        "rss_mib": rss["VmRSS"],
        "rss_peak_mib": rss["VmHWM"],
        "heavy_modules_checked": list(HEAVY_MODULES),
        "heavy_modules_imported": imported,
    }


# --------------------------------------------------------------------------- the report


def report(results: dict[str, Any]) -> str:
    """Markdown tables of the figures next to the goals."""
    lines: list[str] = []
    passes = results.get("pass", [])
    if passes:
        lines += [
            "| shape | autoscalers / producers / groups | load | full pass (median) "
            "| algorithm only | pass / algorithm | per autoscaler | RSS loaded | RSS peak |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in passes:
            shape = "configurable" if r["node_groups"] >= r["autoscalers"] else "shared-groups"
            load = f"{r['load_seconds']} s" if r["load_seconds"] is not None else "—"
            lines.append(
                f"| {shape} | {r['autoscalers']:,} / {r['producers']:,} / {r['node_groups']:,} "
                f"| {load} | {r['pass_ms_median']} ms | {r['algorithm_ms_median']} ms "
                f"| {r['ratio_to_algorithm']}× | {r['per_autoscaler_us']} µs "
                f"| {r['rss_loaded_mib']} MiB | {r['rss_peak_mib']} MiB |"
            )
    served = results.get("serve")
    if served:
        load = served["load"]
        lines += [
            "",
            f"Status API at {load['target_rate']:.0f} requests/s "
            f"for {results['args']['seconds']} s "
            f"(achieved {load['achieved_rate']}/s, statuses {load['statuses']}, "
            f"errors {load['errors'] or 'none'}); the loop ran "
            f"{served['loop_passes_during_load']} passes, "
            f"{served['loop_busy_seconds_during_load']} s busy; server RSS "
            f"{served['rss_end_mib']} MiB (peak {served['rss_peak_mib']} MiB), "
            f"ready after {served['ready_seconds']} s.",
            "",
            "| endpoint | requests | p50 | p90 | p99 | max |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for name, s in [("all", load["all"]), *load["by_endpoint"].items()]:
            lines.append(
                f"| {name} | {s['count']} | {s['p50_ms']} ms | {s['p90_ms']} ms "
                f"| {s['p99_ms']} ms | {s['max_ms']} ms |"
            )
    idle = results.get("idle")
    if idle:
        lines += [
            "",
            f"Idle `autoscaler serve` on {idle['config']}: RSS {idle['rss_mib']} MiB "
            f"{idle['after_seconds']:.0f} s after ready (peak {idle['rss_peak_mib']} MiB); heavy "
            f"modules imported: {', '.join(idle['heavy_modules_imported']) or 'none'} "
            f"(checked {', '.join(idle['heavy_modules_checked'])}).",
        ]
    scrape = results.get("scrape")
    if scrape:
        lines += [
            "",
            f"`/metrics` body for {scrape['autoscalers']:,} autoscalers / "
            f"{scrape['producers']:,} producers / {scrape['node_groups']:,} node groups: "
            f"{scrape['lines']:,} lines, {scrape['bytes'] / 2**20:.1f} MiB; "
            f"`Metrics.exposition` {scrape['exposition_cpu_ms_median']} ms CPU, "
            f"`generate_latest` (baseline) {scrape['generate_latest_cpu_ms_median']} ms "
            f"({scrape['speedup']}× faster; median of {scrape['repeats']}, same bytes).",
        ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--autoscalers", type=int, default=10_000)
    parser.add_argument("--producers", type=int, default=2_000)
    parser.add_argument(
        "--node-groups",
        type=int,
        nargs="+",
        default=None,
        help="pass shapes to measure (default: as many as autoscalers, and 1,000)",
    )
    parser.add_argument("--parts", nargs="+", default=["pass", "serve", "idle"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--rate", type=float, default=200.0, help="requests per second")
    parser.add_argument("--seconds", type=float, default=25.0, help="load duration")
    parser.add_argument("--idle-seconds", type=float, default=10.0)
    parser.add_argument("--json", type=Path, help="also write the results here")
    # Internal: run one pass shape in this process.
    parser.add_argument("--one-pass", type=int, metavar="NODE_GROUPS", help=argparse.SUPPRESS)
    args = parser.parse_args()
    available = cpus()
    core = available[0]
    if args.one_pass is not None:
        result = measure_pass(args.autoscalers, args.producers, args.one_pass, args.repeats, core)
        print(json.dumps(result))
        return

    results: dict[str, Any] = {"machine": machine(), "args": vars(args) | {"json": None}}
    results["goals"] = GOALS
    if "pass" in args.parts:
        shapes = args.node_groups or [args.autoscalers, min(1_000, args.autoscalers)]
        results["pass"] = []
        for groups in shapes:
            part = ["--one-pass", str(groups), "--autoscalers", str(args.autoscalers)]
            part += ["--producers", str(args.producers), "--repeats", str(args.repeats)]
            results["pass"].append(run_part(part))
            print(json.dumps(results["pass"][-1]), file=sys.stderr)
    if "serve" in args.parts:
        server_cpu = core if len(available) > 1 else None
        results["serve"] = measure_serve(
            args.autoscalers, args.producers, args.rate, args.seconds, server_cpu
        )
        print(json.dumps(results["serve"]), file=sys.stderr)
    if "idle" in args.parts:
        results["idle"] = measure_idle(args.idle_seconds, None)
        print(json.dumps(results["idle"]), file=sys.stderr)
    if "scrape" in args.parts:
        results["scrape"] = measure_scrape(args.autoscalers, args.producers, args.repeats, core)
        print(json.dumps(results["scrape"]), file=sys.stderr)
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))
    print()
    print(report(results))


if __name__ == "__main__":
    main()
