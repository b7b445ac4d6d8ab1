"""The service's interpreter settings."""

from __future__ import annotations

import gc
import sys
from collections.abc import Iterator

import pytest

from autoscaler import tuning


@pytest.fixture
def restore() -> Iterator[None]:
    thresholds, interval = gc.get_threshold(), sys.getswitchinterval()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)
    sys.setswitchinterval(interval)


@pytest.mark.usefixtures("restore")
def test_after_a_load_what_is_alive_is_frozen_and_collections_are_rarer() -> None:
    gc.unfreeze()
    kept = [object() for _ in range(10)]
    tuning.after_load()
    assert gc.get_threshold() == tuning.THRESHOLDS
    assert sys.getswitchinterval() == pytest.approx(tuning.SWITCH_INTERVAL_SECONDS)
    assert gc.get_freeze_count() > 0
    assert kept
