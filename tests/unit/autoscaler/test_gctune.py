"""The service's garbage-collector settings."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from autoscaler import gctune


@pytest.fixture
def restore_gc() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


@pytest.mark.usefixtures("restore_gc")
def test_after_a_load_what_is_alive_is_frozen_and_collections_are_rarer() -> None:
    gc.unfreeze()
    kept = [object() for _ in range(10)]
    gctune.after_load()
    assert gc.get_threshold() == gctune.THRESHOLDS
    assert gc.get_freeze_count() > 0
    assert kept
