"""Audit the installed Python dependencies for known vulnerabilities (``make audit``).

Runs ``pip-audit`` against the environment of the interpreter that runs this script, with PyPI's
vulnerability feed (``--vulnerability-service pypi``: PyPI's JSON API, the package registry
itself, so no other network access is needed). The project itself (installed editable) is left
out.

PyPI answers per release at ``/pypi/NAME/VERSION/json``. Where that answer is missing (pip-audit
then reports "Dependency not found on PyPI"; some registry mirrors serve only the project-level
document), this script asks ``/pypi/NAME/json``, whose vulnerabilities are those of the latest
release: they count for a dependency pinned at exactly that release. Anything still unchecked is
listed as *not audited*.

Exit status (never a silent pass):

* 0: every dependency was checked and none has a known vulnerability;
* 1: a known vulnerability was found, or pip-audit failed (the feed is unreachable, an error);
* 2: no vulnerability found, but some dependencies could not be checked. With
  ``--allow-incomplete`` (what ``.ci/run`` uses) this prints a loud warning naming them and
  exits 0; a vulnerability or an unreachable feed still fails.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata
from pathlib import Path
from typing import Any

PYPI = "https://pypi.org/pypi"
NOT_FOUND = "Dependency not found on PyPI"
EDITABLE = "distribution marked as editable"  # the project itself, not a dependency


def _pip_audit(timeout: int) -> list[dict[str, Any]]:
    """pip-audit's findings, one entry per dependency; exits 1 when pip-audit fails."""
    with tempfile.TemporaryDirectory() as folder:
        report = Path(folder) / "audit.json"
        command = [
            sys.executable,
            "-m",
            "pip_audit",
            "--vulnerability-service",
            "pypi",
            "--skip-editable",
            "--progress-spinner",
            "off",
            "--desc",
            "off",
            "--timeout",
            str(timeout),
            "--format",
            "json",
            "--output",
            str(report),
        ]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        try:
            dependencies: list[dict[str, Any]] = json.loads(report.read_text())["dependencies"]
        except (OSError, ValueError, KeyError):
            print(result.stderr.strip()[-2000:], file=sys.stderr)
            print(
                "audit FAILED: pip-audit did not finish (is PyPI's JSON API reachable?)",
                file=sys.stderr,
            )
            sys.exit(1)
    return dependencies


def _latest_release_vulns(name: str, version: str, timeout: int) -> list[dict[str, Any]] | str:
    """The vulnerabilities of ``name`` at ``version`` from the project-level document, or why
    they cannot be known."""
    try:
        with urllib.request.urlopen(f"{PYPI}/{name}/json", timeout=timeout) as response:
            document = json.load(response)
    except (OSError, ValueError) as exc:
        return f"PyPI's project document cannot be read: {exc}"
    latest = str(document.get("info", {}).get("version", ""))
    if latest != version:
        return f"{version} is not the latest release ({latest}); PyPI has no per-release answer"
    return [v for v in document.get("vulnerabilities") or [] if not v.get("withdrawn")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--allow-incomplete",
        action="store_true",
        help="warn instead of failing when some dependencies cannot be checked",
    )
    parser.add_argument("--timeout", type=int, default=15, help="seconds per request")
    args = parser.parse_args(argv)

    vulnerable: list[tuple[str, str, list[str]]] = []
    unchecked: list[tuple[str, str]] = []
    checked = 0
    fallback: list[tuple[str, str]] = []  # (name, installed version) to ask the project document
    for dependency in _pip_audit(args.timeout):
        name = str(dependency["name"])
        reason = dependency.get("skip_reason")
        if reason is None:
            checked += 1
            ids = [str(v["id"]) for v in dependency.get("vulns", [])]
            if ids:
                vulnerable.append((name, str(dependency.get("version", "?")), ids))
        elif str(reason).startswith(EDITABLE):
            continue
        elif str(reason).startswith(NOT_FOUND):
            try:
                fallback.append((name, metadata.version(name)))
            except metadata.PackageNotFoundError:
                unchecked.append((name, str(reason)))
        else:
            unchecked.append((name, str(reason)))
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = pool.map(lambda d: _latest_release_vulns(d[0], d[1], args.timeout), fallback)
        for (name, version), found in zip(fallback, answers, strict=True):
            if isinstance(found, str):
                unchecked.append((f"{name} {version}", found))
                continue
            checked += 1
            if found:
                vulnerable.append((name, version, [str(v["id"]) for v in found]))

    for name, version, ids in vulnerable:
        print(f"VULNERABLE {name} {version}: {', '.join(ids)}")
    print(
        f"audit: {checked} dependencies checked, {len(vulnerable)} with known vulnerabilities, "
        f"{len(unchecked)} not audited"
    )
    if vulnerable:
        print("audit FAILED: upgrade the packages above (constraints.txt)", file=sys.stderr)
        return 1
    if unchecked:
        banner = "=" * 78
        print(banner, file=sys.stderr)
        print(f"AUDIT INCOMPLETE: {len(unchecked)} dependencies were NOT audited:", file=sys.stderr)
        for what, why in unchecked:
            print(f"  - {what}: {why}", file=sys.stderr)
        print(banner, file=sys.stderr)
        return 0 if args.allow_incomplete else 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
