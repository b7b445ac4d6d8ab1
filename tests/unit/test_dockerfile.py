"""The Dockerfile's key properties, read statically.

No container engine runs here, so the image is never built in these tests: this checks what can
be read from the file (stages, base tags, the user, the entry point) and that the build context
holds what the file copies. docs/deploy.md says how to build the image.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = (ROOT / "Dockerfile").read_text()
    text = re.sub(r"\\\n", " ", text)
    result = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            result.append((word.upper(), rest.strip()))
    return result


def _stages() -> list[list[tuple[str, str]]]:
    stages: list[list[tuple[str, str]]] = []
    for instruction in _instructions():
        if instruction[0] == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(instruction)
    return stages


def _base_images() -> list[str]:
    args = {
        name: value
        for word, rest in _instructions()
        if word == "ARG" and "=" in rest
        for name, value in [rest.split("=", 1)]
    }
    images = []
    for word, rest in _instructions():
        if word == "FROM":
            image = rest.split()[0]
            images.append(re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], image))
    return images


def test_the_image_is_built_in_two_stages_from_the_same_pinned_slim_base() -> None:
    images = _base_images()
    assert len(images) == 2
    assert images[0] == images[1], "the virtualenv's interpreter comes from the base"
    for image in images:
        name, _, tag = image.partition(":")
        assert name == "python"
        assert tag.startswith("3.11-slim"), "the Python the project supports, slim"
        assert tag != "latest"


def test_the_final_stage_copies_only_the_virtualenv_from_the_build_stage() -> None:
    build, final = _stages()
    assert build[0][1].split()[-1] == "build"
    copies = [rest for word, rest in final if word in ("COPY", "ADD")]
    assert copies == ["--from=build /opt/venv /opt/venv"]
    assert not [rest for word, rest in final if word == "RUN"], "nothing runs in the final stage"


def test_dependencies_are_installed_with_the_pinned_constraints() -> None:
    build, _final = _stages()
    runs = " ".join(rest for word, rest in build if word == "RUN")
    assert "--constraint constraints.txt" in runs
    assert "pip wheel --no-deps" in runs


def test_the_container_runs_as_a_numeric_non_root_user() -> None:
    _build, final = _stages()
    users = [rest for word, rest in final if word == "USER"]
    assert users, "the final stage sets USER"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and int(uid) != 0, "numeric, so runAsNonRoot can check it"
    assert gid.isdigit() and int(gid) != 0


def test_the_entrypoint_is_the_cli_and_the_default_is_cluster_mode() -> None:
    _build, final = _stages()
    entrypoint = [json.loads(rest) for word, rest in final if word == "ENTRYPOINT"]
    command = [json.loads(rest) for word, rest in final if word == "CMD"]
    assert entrypoint == [["autoscaler"]], "exec form, no shell"
    assert command == [["serve", "--kubernetes"]]
    env = " ".join(rest for word, rest in final if word == "ENV")
    assert "AUTOSCALER_SERVER__HOST=0.0.0.0" in env, "reachable by the probes"
    assert "PYTHONDONTWRITEBYTECODE=1" in env, "the root filesystem is read-only"


@pytest.mark.parametrize("path", ["pyproject.toml", "constraints.txt", "README.md"])
def test_the_build_context_holds_what_the_dockerfile_copies(path: str) -> None:
    assert (ROOT / path).exists()
    ignore = (ROOT / ".dockerignore").read_text().splitlines()
    assert "*" in ignore, "an allow list: only what is copied is sent"
    assert f"!{path}" in ignore


def test_every_python_package_is_copied_into_the_build() -> None:
    build, _final = _stages()
    copied = " ".join(rest for word, rest in build if word == "COPY")
    ignore = (ROOT / ".dockerignore").read_text().splitlines()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = [p.rstrip("*") for p in project["tool"]["setuptools"]["packages"]["find"]["include"]]
    assert packages
    for package in packages:
        assert f"{package}/ {package}/" in copied
        assert f"!{package}/" in ignore
