"""The service's interpreter settings."""

from __future__ import annotations

import gc
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from autoscaler import tuning

ROOT = Path(__file__).resolve().parents[3]


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


@pytest.mark.usefixtures("restore")
def test_the_state_built_by_the_first_pass_after_a_load_is_frozen_too() -> None:
    from autoscaler.service import Service
    from autoscaler.settings import Settings

    service = Service(Settings(), [ROOT / "examples" / "quickstart.yaml"])
    service.reload()
    gc.unfreeze()  # as if the load had frozen nothing
    assert gc.get_freeze_count() == 0
    service.loop.run_once()
    assert gc.get_freeze_count() > 0
    gc.unfreeze()
    service.loop.run_once()
    assert gc.get_freeze_count() == 0  # once per load, not after every pass
    service.loop.runner.shutdown()
