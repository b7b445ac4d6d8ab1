"""Signals are looked up by name: the index follows every put and remove."""

from __future__ import annotations

import pytest

from autoscaler.api import Signal
from autoscaler.errors import PermanentError
from autoscaler.store import SignalStore


def _code(store: SignalStore, producer: str, name: str) -> str:
    with pytest.raises(PermanentError) as info:
        store.get(producer, name)
    return info.value.code


def test_a_name_dropped_by_the_next_observation_is_no_longer_found() -> None:
    store = SignalStore()
    store.put("default/p", [Signal("a", 1, 1.0), Signal("b", 2, 1.0)])
    assert (store.get("default/p", "a").value, store.get("default/p", "b").value) == (1, 2)
    store.put("default/p", [Signal("b", 3, 2.0)])
    assert store.get("default/p", "b").value == 3
    assert _code(store, "default/p", "a") == "NoSignal"


def test_producers_with_the_same_signal_names_do_not_mix() -> None:
    store = SignalStore()
    store.put("default/p", [Signal("replicas", 1, 1.0)])
    store.put("default/q", [Signal("replicas", 2, 1.0)])
    assert store.get("default/q", "replicas").value == 2
    store.remove("default/q")
    assert _code(store, "default/q", "replicas") == "NoSignal"
    assert store.get("default/p", "replicas").value == 1


def test_an_unlabelled_total_next_to_its_breakdown_is_found_by_name_and_labels() -> None:
    store = SignalStore()
    store.put(
        "default/rc",
        [
            Signal("utilization", 60, 1.0),
            Signal("utilization", 50, 1.0, {"resource": "cpu"}),
            Signal("pods", 7, 1.0),
        ],
    )
    assert store.get("default/rc", "utilization").value == 60
    assert store.get("default/rc", "utilization", {"resource": "cpu"}).value == 50
    assert store.get("default/rc", "pods").value == 7
