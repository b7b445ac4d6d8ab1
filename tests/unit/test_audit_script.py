"""scripts/audit.py: a known vulnerability or an unreachable feed fails; an incomplete audit fails
or warns loudly; it never passes in silence. pip-audit and PyPI are replaced by fakes here."""

from __future__ import annotations

import importlib.util
import subprocess
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("audit_script", ROOT / "scripts" / "audit.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


OK = {"name": "fastapi", "version": "1.0", "vulns": []}
VULNERABLE = {"name": "urllib3", "version": "1.0", "vulns": [{"id": "PYSEC-1", "fix_versions": []}]}
EDITABLE = {"name": "node-autoscaler", "skip_reason": "distribution marked as editable"}
NOT_FOUND = {
    "name": "pytest",
    "skip_reason": "Dependency not found on PyPI and could not be audited: pytest (8.0)",
}


@pytest.mark.parametrize(
    ("report", "latest", "flags", "code", "says"),
    [
        ([OK, EDITABLE], [], [], 0, "1 dependencies checked, 0 with known"),
        ([OK, VULNERABLE], [], ["--allow-incomplete"], 1, "VULNERABLE urllib3 1.0: PYSEC-1"),
        ([OK, NOT_FOUND], [], [], 0, "2 dependencies checked"),
        ([OK, NOT_FOUND], [{"id": "GHSA-x"}], ["--allow-incomplete"], 1, "GHSA-x"),
        ([OK, NOT_FOUND], "8.0 is not the latest release", [], 2, "AUDIT INCOMPLETE"),
        ([OK, NOT_FOUND], "8.0 is not the latest release", ["--allow-incomplete"], 0, "NOT"),
    ],
    ids=[
        "all clean (the project itself is not a dependency)",
        "a known vulnerability fails even when incomplete is allowed",
        "a release only the project document knows is checked there",
        "a vulnerability found there fails",
        "an unchecked dependency fails the strict audit",
        "an unchecked dependency is a loud warning when allowed",
    ],
)
def test_the_audit_exit_status_follows_the_policy(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    report: list[dict[str, Any]],
    latest: Any,
    flags: list[str],
    code: int,
    says: str,
) -> None:
    audit = _load()
    monkeypatch.setattr(audit, "_pip_audit", lambda timeout: report)
    monkeypatch.setattr(audit, "_latest_release_vulns", lambda name, version, timeout: latest)
    monkeypatch.setattr(audit.metadata, "version", lambda name: "8.0")
    assert audit.main(flags) == code
    out = capsys.readouterr()
    assert says in out.out + out.err


def test_a_pip_audit_that_cannot_reach_the_feed_fails_loudly(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    audit = _load()

    def unreachable(command: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        assert "--vulnerability-service" in command and "pypi" in command
        return subprocess.CompletedProcess(command, 1, "", "ConnectionError: Could not connect")

    monkeypatch.setattr(audit.subprocess, "run", unreachable)
    with pytest.raises(SystemExit) as stopped:
        audit.main(["--allow-incomplete"])
    assert stopped.value.code == 1
    assert "audit FAILED" in capsys.readouterr().err
