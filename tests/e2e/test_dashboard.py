"""The dashboard in a real headless Chromium (Debian's /usr/bin/chromium driven by Playwright)
against ``autoscaler serve --config examples/quickstart.yaml`` as a real process.

Chromium comes from ``scripts/install-browser.sh`` (``make test`` runs it first; this module runs
it too when Chromium is missing). Never ``playwright install``: its browser downloads fail here.
A missing browser fails the test with a clear message; it is never skipped.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path(os.environ.get("AUTOSCALER_TEST_CHROMIUM", "/usr/bin/chromium"))
INSTALL_SCRIPT = ROOT / "scripts" / "install-browser.sh"
SCREENSHOT = ROOT / "artifacts" / "dashboard.png"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WORKERS = '[data-autoscaler="default/workers"]'

pytestmark = pytest.mark.integration


@pytest.fixture
def chromium() -> Path:
    """Debian's Chromium, installed by scripts/install-browser.sh when missing; else a failure."""
    if CHROMIUM.exists() and os.access(CHROMIUM, os.X_OK):
        return CHROMIUM
    result = subprocess.run(
        [str(INSTALL_SCRIPT)],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
        env={**os.environ, "CHROMIUM": str(CHROMIUM)},
    )
    if result.returncode != 0 or not os.access(CHROMIUM, os.X_OK):
        pytest.fail(
            f"the dashboard test needs Chromium at {CHROMIUM}, and {INSTALL_SCRIPT.name} could not "
            f"install it (exit {result.returncode}). Install Debian's `chromium` package "
            f"(apt-get install --no-install-recommends chromium) and run again.\n"
            f"{result.stdout}{result.stderr}",
            pytrace=False,
        )
    return CHROMIUM


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


@pytest.fixture
def server() -> Iterator[str]:
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        # Fast node-group reads so ready counts move while the test watches.
        "AUTOSCALER_LOOP__NODE_GROUP_SYNC_SECONDS": "1",
        "AUTOSCALER_LOOP__RESYNC_SECONDS": "2",
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "autoscaler.cli",
            "serve",
            "--config",
            str(ROOT / "examples" / "quickstart.yaml"),
            "--port",
            str(port),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        _wait_for(lambda: httpx.get(url + "/readyz", timeout=2).status_code == 200, 30, "readiness")
        yield url
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            process.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()


def _points(page: Any, selector: str) -> int:
    value = page.locator(selector).first.get_attribute("data-points")
    return int(value or 0)


def test_the_dashboard_shows_live_charts_tables_and_decisions_without_external_requests(
    chromium: Path, server: str, tmp_path: Path
) -> None:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:  # pragma: no cover - a broken dev install
        pytest.fail("Playwright is missing: pip install -c constraints.txt -e '.[dev]'")

    host = urlsplit(server).netloc
    requests: list[str] = []
    problems: list[str] = []
    replicas_path = f'{WORKERS} [data-chart="replicas"] path[data-series="desired"]'
    ready_path = f'{WORKERS} [data-chart="replicas"] path[data-series="ready"]'
    metric = f'{WORKERS} [data-chart="metric"][data-metric="office-hours/replicas"]'

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"),  # a fresh, empty user-data dir
            executable_path=str(chromium),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 900},
        )
        try:
            context.on("request", lambda request: requests.append(request.url))
            page = context.new_page()
            page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
            page.on(
                "console",
                lambda message: (
                    problems.append(f"console {message.type}: {message.text}")
                    if message.type in ("error", "warning")
                    else None
                ),
            )
            page.goto(server + "/")

            # The autoscaler card with its charts.
            page.wait_for_selector(WORKERS, timeout=15_000)
            assert page.locator(f"{WORKERS} h3").inner_text() == "default/workers"
            page.wait_for_function(
                "sel => Number(document.querySelector(sel)?.dataset.points || 0) >= 2",
                arg=replicas_path,
                timeout=30_000,
            )
            assert page.locator(replicas_path).get_attribute("d").count("M") >= 1
            assert _points(page, ready_path) >= 2
            assert _points(page, f'{metric} path[data-series="value"]') >= 2
            assert _points(page, f'{metric} path[data-series="target"]') >= 2
            svg = page.locator(f'{WORKERS} [data-chart="replicas"] svg')
            assert svg.get_attribute("role") == "img"
            title_id = (svg.get_attribute("aria-labelledby") or "").split()[0]
            assert "desired vs ready" in (page.locator(f'[id="{title_id}"]').text_content() or "")
            assert page.locator(f"{WORKERS} [data-field=desired]").inner_text().isdigit()

            # Node group and producer rows.
            group = page.locator('tr[data-node-group="default/workers"]')
            assert group.locator("[data-field=desired]").inner_text().isdigit()
            assert "Simulated" in group.inner_text()
            assert "Active" in group.inner_text()
            producer = page.locator('tr[data-producer="default/office-hours"]')
            page.wait_for_function(
                "() => /replicas =\\s*\\d/.test(document.querySelector("
                "'tr[data-producer=\"default/office-hours\"] [data-field=value]')?.innerText)",
                timeout=15_000,
            )
            assert "schedule" in producer.inner_text()

            # The decision log, newest first, with reasons and the rule that limited it.
            decision = page.locator("tr.decision").first
            decision.wait_for(timeout=15_000)
            assert "default/workers" in decision.inner_text()
            assert "→" in decision.inner_text()
            assert decision.locator(".reasons li").first.inner_text().strip()
            assert decision.locator("[data-field=limitedBy]").inner_text().strip()
            seqs = [
                int(s)
                for s in page.locator("tr.decision").evaluate_all(
                    "rows => rows.map(r => r.dataset.seq)"
                )
            ]
            assert seqs == sorted(seqs, reverse=True)

            # The page refreshes itself: a new server sample reaches the chart.
            before = _points(page, replicas_path)
            page.wait_for_function(
                "([sel, n]) => Number(document.querySelector(sel)?.dataset.points || 0) > n",
                arg=[replicas_path, before],
                timeout=20_000,
            )
            assert page.locator("#status").inner_text() == "Live"

            # A fresh page load shows the history kept by the server at once.
            shown = _points(page, replicas_path)
            fresh = context.new_page()
            fresh.goto(server + "/")
            fresh.wait_for_selector(replicas_path, state="attached", timeout=15_000)
            assert _points(fresh, replicas_path) >= shown
            fresh.close()

            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOT), full_page=True)
        finally:
            context.close()

    foreign = [
        url
        for url in requests
        if urlsplit(url).scheme not in ("data", "blob") and urlsplit(url).netloc != host
    ]
    assert not foreign, f"the page made requests to other hosts: {foreign}"
    assert any("/api/v1/history" in url for url in requests)
    assert not problems, problems
    assert SCREENSHOT.stat().st_size > 10_000
