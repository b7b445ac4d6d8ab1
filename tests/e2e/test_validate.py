"""``autoscaler validate`` as a real process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration


def _validate(*paths: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "autoscaler.cli", "validate", *map(str, paths)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )


def test_the_examples_are_valid() -> None:
    result = _validate(ROOT / "examples")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("ok:")


def test_an_unknown_field_and_a_negative_max_are_both_named_with_their_lines(
    tmp_path: Path,
) -> None:
    spec = tmp_path / "bad.yaml"
    spec.write_text(
        (ROOT / "examples" / "quickstart.yaml")
        .read_text()
        .replace("  maxReplicas: 10\n", "  maxReplicas: -1\n  replicaz: 3\n")
    )
    lines = spec.read_text().splitlines()
    max_line = next(i for i, text in enumerate(lines, 1) if "maxReplicas: -1" in text)
    result = _validate(spec)
    assert result.returncode == 1
    assert f"{spec}:{max_line}: spec.maxReplicas:" in result.stdout
    assert f"{spec}:{max_line + 1}: spec.replicaz:" in result.stdout
