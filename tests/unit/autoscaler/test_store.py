import pytest

from autoscaler.api import Signal
from autoscaler.errors import PermanentError
from autoscaler.store import SignalStore


def test_a_changed_value_notifies_listeners_and_an_identical_one_does_not() -> None:
    store = SignalStore()
    seen: list[str] = []
    store.subscribe(seen.append)
    assert store.put("default/q", [Signal("queue_length", 4, 1.0)])
    assert not store.put("default/q", [Signal("queue_length", 4, 2.0)])
    assert store.put("default/q", [Signal("queue_length", 5, 3.0)])
    assert seen == ["default/q", "default/q"]


def test_signals_are_selected_by_name_and_a_subset_of_labels() -> None:
    store = SignalStore()
    store.put(
        "default/rc",
        [
            Signal("utilization", 50, 1.0, {"resource": "cpu"}),
            Signal("utilization", 70, 1.0, {"resource": "memory"}),
        ],
    )
    assert store.get("default/rc", "utilization", {"resource": "memory"}).value == 70


@pytest.mark.parametrize(
    ("name", "labels", "code"),
    [
        ("missing", {}, "NoSignal"),
        ("utilization", {}, "AmbiguousSignal"),
        ("utilization", {"resource": "gpu"}, "NoSignal"),
    ],
    ids=["unknown name", "several match", "labels match none"],
)
def test_a_missing_or_ambiguous_signal_is_a_permanent_error(
    name: str, labels: dict[str, str], code: str
) -> None:
    store = SignalStore()
    store.put(
        "default/rc",
        [
            Signal("utilization", 50, 1.0, {"resource": "cpu"}),
            Signal("utilization", 70, 1.0, {"resource": "memory"}),
        ],
    )
    with pytest.raises(PermanentError) as info:
        store.get("default/rc", name, labels)
    assert info.value.code == code


def test_removing_a_producer_drops_its_signals() -> None:
    store = SignalStore()
    store.put("default/q", [Signal("queue_length", 4, 1.0)])
    store.remove("default/q")
    assert list(store.items()) == []
