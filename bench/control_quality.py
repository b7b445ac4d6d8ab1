"""Benchmark: control quality of spec sets on the shared scenarios, next to the baseline.

Every scenario of the shared benchmark (``../shared/bench/scenarios/*.yaml`` relative to the
repository, see its README) is simulated with ``autoscaler simulate``'s engine against the
baseline and against every other configuration found in the specs folder (``bench/specs``), all
in the same run:

* ``bench/specs/<config>-<scenario>.yaml`` — the spec set of ``<config>`` for that scenario
  (the baseline is ``baseline-<scenario>.yaml``: its target depends on the scenario);
* ``bench/specs/<config>.yaml`` — one spec set of ``<config>`` for every scenario (a
  scenario-specific file wins over it).

A folder with the same name instead of a ``.yaml`` file is loaded as a whole. The result is a
markdown table per scenario — node_seconds, efficiency, late_fraction, p99_wait_seconds,
scale_actions, max_nodes, the ratios of node-seconds and p99 wait to the baseline, and the wall
time of each simulation — printed and optionally written to a file (for ``bench/RESULTS.md``).

    .venv/bin/python bench/control_quality.py [--bench ../shared/bench] [--specs bench/specs]
        [--configs baseline pid] [--scenarios diurnal spike] [--jobs 2] [--out results.md]
        [--json results.json] [--reports reports/]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from autoscaler.simulator.run import SimulationError, load, simulate

ROOT = Path(__file__).resolve().parents[1]

BASELINE = "baseline"


@dataclass(frozen=True)
class Job:
    """One simulation: a scenario file and the spec set of one configuration."""

    scenario: str
    config: str
    scenario_path: Path
    spec_path: Path
    report: Path | None = None


def discover(specs: Path, scenarios: list[str]) -> dict[str, dict[str, Path]]:
    """``{config: {scenario: spec path}}`` from the specs folder's naming convention."""
    specific: dict[str, dict[str, Path]] = {}
    generic: dict[str, Path] = {}
    for entry in sorted(specs.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_file() and entry.suffix in (".yaml", ".yml"):
            stem = entry.stem
        elif entry.is_dir():
            stem = entry.name
        else:
            continue
        # The longest scenario name that ends the stem, so "x-cron-batch" is not "x-cron" + ...
        match = max(
            (name for name in scenarios if stem.endswith(f"-{name}")), key=len, default=None
        )
        if match is None:
            generic[stem] = entry
        else:
            specific.setdefault(stem[: -len(match) - 1], {})[match] = entry
    configs: dict[str, dict[str, Path]] = {}
    for config in sorted(set(specific) | set(generic)):
        chosen = {
            scenario: specific.get(config, {}).get(scenario, generic.get(config))
            for scenario in scenarios
        }
        configs[config] = {name: path for name, path in chosen.items() if path is not None}
    return configs


def run_job(job: Job) -> dict[str, Any]:
    """Simulate one job; the figures as a dict, or ``{"error": ...}``."""
    try:
        scenario, specs = load(job.scenario_path, job.spec_path)
    except SimulationError as exc:
        return {"error": "; ".join(exc.issues)}
    result = simulate(scenario, specs, config=str(job.spec_path))
    if job.report is not None:
        from autoscaler.simulator.report import write_report

        write_report(result, job.report)
    return result.figures.to_dict()


def _get(figures: dict[str, Any] | None, key: str) -> float | None:
    return None if figures is None else float(figures[key])


def _ratio(value: float, baseline: float | None) -> str:
    if baseline is None:
        return "—"
    if baseline == 0:
        return "=" if value == 0 else "∞"
    return f"{value / baseline:.2f}×"


def render(
    scenarios: list[str], configs: list[str], results: dict[tuple[str, str], dict[str, Any]]
) -> str:
    """The markdown tables, one row per configuration, grouped by scenario."""
    header = (
        "| scenario | config | node_seconds | node-s vs baseline | efficiency | late_fraction "
        "| p99_wait_seconds | p99 vs baseline | scale_actions | max_nodes | wall |\n"
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    )
    lines = [header]
    for scenario in scenarios:
        found = results.get((scenario, BASELINE))
        base = found if found is not None and "error" not in found else None
        for config in configs:
            figures = results.get((scenario, config))
            if figures is None:
                continue
            if "error" in figures:
                lines.append(f"| {scenario} | {config} | error: {figures['error']} |")
                continue
            node_ratio = _ratio(figures["node_seconds"], _get(base, "node_seconds"))
            p99_ratio = _ratio(figures["p99_wait_seconds"], _get(base, "p99_wait_seconds"))
            lines.append(
                f"| {scenario} | {config} | {figures['node_seconds']:,} | {node_ratio} "
                f"| {figures['efficiency']:.3f} | {figures['late_fraction']:.4f} "
                f"| {figures['p99_wait_seconds']:.1f} | {p99_ratio} "
                f"| {figures['scale_actions']} | {figures['max_nodes']} "
                f"| {figures['wall_seconds']:.1f} s |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--bench", type=Path, default=ROOT / ".." / "shared" / "bench", help="shared benchmark"
    )
    parser.add_argument("--specs", type=Path, default=ROOT / "bench" / "specs")
    parser.add_argument("--configs", nargs="+", help="only these configurations (+ baseline)")
    parser.add_argument("--scenarios", nargs="+", help="only these scenarios")
    parser.add_argument("--jobs", type=int, default=1, help="simulations run in parallel")
    parser.add_argument("--out", type=Path, help="write the markdown table here")
    parser.add_argument("--json", type=Path, help="write every figure as JSON here")
    parser.add_argument("--reports", type=Path, help="write an HTML report per run here")
    args = parser.parse_args(argv)

    scenario_dir = args.bench / "scenarios"
    available = sorted(path.stem for path in scenario_dir.glob("*.yaml"))
    if not available:
        print(f"no scenarios in {scenario_dir}", file=sys.stderr)
        return 1
    scenarios = [name for name in available if not args.scenarios or name in args.scenarios]
    found = discover(args.specs, available)
    if BASELINE not in found:
        print(f"no baseline specs in {args.specs}", file=sys.stderr)
        return 1
    others = [
        name for name in found if name != BASELINE and (not args.configs or name in args.configs)
    ]
    wanted = [BASELINE, *sorted(others)]
    missing = [name for name in scenarios if name not in found[BASELINE]]
    if missing:
        print(f"no baseline spec for: {', '.join(missing)}", file=sys.stderr)
        return 1

    jobs = [
        Job(
            scenario,
            config,
            scenario_dir / f"{scenario}.yaml",
            found[config][scenario],
            args.reports / f"{config}-{scenario}.html" if args.reports else None,
        )
        for scenario in scenarios
        for config in wanted
        if scenario in found[config]
    ]
    if args.jobs > 1:
        with ProcessPoolExecutor(max_workers=args.jobs) as pool:
            outcomes = list(pool.map(run_job, jobs))
    else:
        outcomes = []
        for job in jobs:
            print(f"simulating {job.scenario} with {job.config} …", file=sys.stderr)
            outcomes.append(run_job(job))
    results = {(job.scenario, job.config): out for job, out in zip(jobs, outcomes, strict=True)}

    table = render(scenarios, wanted, results)
    machine = (
        f"Machine: {platform.system()} {platform.machine()}, Python "
        f"{platform.python_version()}; {datetime.now(UTC):%Y-%m-%d}; "
        f"{args.jobs} parallel job(s); wall = time of one simulation."
    )
    text = f"{machine}\n\n{table}\n"
    print(text)
    if args.out:
        args.out.write_text(text, encoding="utf-8")
    if args.json:
        args.json.write_text(
            json.dumps(
                [
                    {"scenario": job.scenario, "config": job.config, **out}
                    for job, out in zip(jobs, outcomes, strict=True)
                ],
                indent=2,
            ),
            encoding="utf-8",
        )
    return 1 if any("error" in out for out in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
