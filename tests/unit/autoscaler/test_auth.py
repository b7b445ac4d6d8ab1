"""Bearer tokens from a file: valid, invalid, missing, rotated, compared in constant time."""

from __future__ import annotations

import hmac
import logging
import os
from pathlib import Path
from typing import Any

import pytest

from autoscaler import auth
from autoscaler.auth import (
    Access,
    AuthUnavailable,
    ChainAuthenticator,
    Forbidden,
    Identity,
    StaticTokenAuthenticator,
    authenticator_for,
)
from autoscaler.settings import ServerSettings

PAUSE = Access("update", "horizontalautoscalers", "default", "workers")


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "token"
    path.write_text("first-token-aaaa\n")
    return path


@pytest.mark.parametrize(
    ("content", "token", "user"),
    [
        ("first-token-aaaa\n", "first-token-aaaa", "static-token"),
        ("  padded-token  \n", "padded-token", "static-token"),
        ('# a comment\n\nt1,alice\nt2,bob,uid-2,"ops,admins"\n', "t2", "bob"),
        ("t1,alice\n", "t1", "alice"),
    ],
    ids=["a token alone", "surrounding spaces", "kube-apiserver token file lines", "token,user"],
)
def test_a_valid_token_names_its_user(tmp_path: Path, content: str, token: str, user: str) -> None:
    path = tmp_path / "tokens"
    path.write_text(content)
    identity = StaticTokenAuthenticator(path).authenticate(token, PAUSE)
    assert identity == Identity(user, source="token-file")


@pytest.mark.parametrize(
    "token",
    ["", "first-token-aaa", "first-token-aaaa ", "FIRST-TOKEN-AAAA", "# a comment"],
    ids=["empty", "a prefix", "trailing space", "other case", "a comment line"],
)
def test_an_invalid_token_is_unknown(token_file: Path, token: str) -> None:
    token_file.write_text("# a comment\nfirst-token-aaaa\n")
    assert StaticTokenAuthenticator(token_file).authenticate(token, PAUSE) is None


def test_an_empty_token_file_refuses_every_token_and_says_so(
    token_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    token_file.write_text("\n# nothing yet\n")
    with caplog.at_level(logging.WARNING, logger="autoscaler.auth"):
        assert StaticTokenAuthenticator(token_file).authenticate("", PAUSE) is None
    assert "holds no token" in caplog.text


def test_a_missing_token_file_fails_closed_and_recovers_when_it_appears(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "not-yet"
    authenticator = StaticTokenAuthenticator(path)
    with caplog.at_level(logging.ERROR, logger="autoscaler.auth"):
        with pytest.raises(AuthUnavailable, match="cannot be read"):
            authenticator.authenticate("anything", PAUSE)
        with pytest.raises(AuthUnavailable):
            authenticator.authenticate("anything", PAUSE)
    assert caplog.text.count("cannot be read") == 1  # logged once, not per request
    path.write_text("late-token\n")
    assert authenticator.authenticate("late-token", PAUSE) is not None


def test_a_rotated_token_file_is_read_again(token_file: Path) -> None:
    authenticator = StaticTokenAuthenticator(token_file)
    assert authenticator.authenticate("first-token-aaaa", PAUSE) is not None
    token_file.write_text("second-token-bbbb-longer\n")
    assert authenticator.authenticate("first-token-aaaa", PAUSE) is None
    assert authenticator.authenticate("second-token-bbbb-longer", PAUSE) is not None


def test_a_secret_volume_swap_through_a_symlink_is_seen(tmp_path: Path) -> None:
    """Kubernetes updates a Secret volume by pointing ``..data`` at a new directory."""
    old, new = tmp_path / "v1", tmp_path / "v2"
    old.mkdir()
    new.mkdir()
    (old / "token").write_text("old-token\n")
    (new / "token").write_text("new-token\n")
    (tmp_path / "..data").symlink_to(old)
    (tmp_path / "token").symlink_to(tmp_path / "..data" / "token")
    authenticator = StaticTokenAuthenticator(tmp_path / "token")
    assert authenticator.authenticate("old-token", PAUSE) is not None
    (tmp_path / "..data_tmp").symlink_to(new)
    os.replace(tmp_path / "..data_tmp", tmp_path / "..data")
    assert authenticator.authenticate("old-token", PAUSE) is None
    assert authenticator.authenticate("new-token", PAUSE) is not None


def test_a_rewrite_that_keeps_size_and_times_is_picked_up_after_the_recheck_interval(
    token_file: Path,
) -> None:
    clock = Clock()
    authenticator = StaticTokenAuthenticator(token_file, recheck_seconds=5, clock=clock)
    assert authenticator.authenticate("first-token-aaaa", PAUSE) is not None
    stat = token_file.stat()
    token_file.write_text("other-token-zzzz\n")  # same length
    os.utime(token_file, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    clock.now = 6
    assert authenticator.authenticate("first-token-aaaa", PAUSE) is None
    assert authenticator.authenticate("other-token-zzzz", PAUSE) is not None


def test_tokens_are_compared_in_constant_time_against_every_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "tokens"
    path.write_text("t1,alice\nt2,bob\nt3,carol\n")
    calls: list[tuple[bytes, bytes]] = []
    compare = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return compare(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", spy)
    identity = StaticTokenAuthenticator(path).authenticate("t1", PAUSE)
    assert identity is not None and identity.name == "alice"
    assert len(calls) == 3  # no early exit after the match
    assert all(len(a) == len(b) == 32 for a, b in calls)  # digests: the length leaks nothing


def test_token_values_are_never_logged(token_file: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG):
        authenticator = StaticTokenAuthenticator(token_file)
        authenticator.authenticate("first-token-aaaa", PAUSE)
        authenticator.authenticate("wrong-token-cccc", PAUSE)
    assert "first-token-aaaa" not in caplog.text and "wrong-token-cccc" not in caplog.text


class _Fixed:
    def __init__(self, result: Any, configured: bool = True) -> None:
        self.result = result
        self._configured = configured
        self.calls = 0

    @property
    def configured(self) -> bool:
        return self._configured

    def authenticate(self, token: str, access: Access) -> Identity | None:
        self.calls += 1
        if isinstance(self.result, Exception):
            raise self.result
        result: Identity | None = self.result
        return result


def test_a_chain_asks_each_authenticator_until_one_knows_the_token() -> None:
    first, second = _Fixed(None), _Fixed(Identity("system:serviceaccount:ops:deployer"))
    chain = ChainAuthenticator([first, second])
    assert chain.authenticate("t", PAUSE) == Identity("system:serviceaccount:ops:deployer")
    assert (first.calls, second.calls) == (1, 1)
    with pytest.raises(Forbidden):
        ChainAuthenticator([_Fixed(None), _Fixed(Forbidden("no"))]).authenticate("t", PAUSE)
    assert ChainAuthenticator([_Fixed(None)]).authenticate("t", PAUSE) is None


def test_nothing_configured_means_not_configured_never_open() -> None:
    assert not authenticator_for(ServerSettings()).configured
    assert not ChainAuthenticator([]).configured
    assert ChainAuthenticator([]).authenticate("anything", PAUSE) is None


def test_the_token_file_setting_builds_a_static_authenticator(token_file: Path) -> None:
    chain = authenticator_for(ServerSettings(token_file=str(token_file)))
    assert chain.configured
    [static] = chain.authenticators
    assert isinstance(static, StaticTokenAuthenticator) and static.path == str(token_file)


@pytest.mark.parametrize(
    ("access", "text"),
    [
        (PAUSE, "update horizontalautoscalers.autoscaler.dev default/workers"),
        (Access("list", "scalablenodegroups"), "list scalablenodegroups.autoscaler.dev"),
        (Access("get", path="/metrics"), "get /metrics"),
    ],
    ids=["one object", "a list", "a path"],
)
def test_an_access_describes_itself_in_rbac_terms(access: Access, text: str) -> None:
    assert access.describe() == text
