"""The world model on tiny hand-made traces whose figures can be worked out by hand."""

from __future__ import annotations

from typing import Any

import pytest

from autoscaler.errors import PermanentError
from autoscaler.simulator.world import World, spread_arrivals


def _world(per_bucket: list[int], duration: int | None = None, **nodes: Any) -> World:
    """A world fed by 10-second buckets; ``duration`` defaults to the whole trace."""
    duration = duration if duration is not None else 10 * len(per_bucket)
    options: dict[str, Any] = {
        "initial": 1,
        "startup_seconds": 0,
        "items_per_second": 1.0,
        "min_size": 0,
        "max_size": 100,
        "max_item_age_seconds": 30,
    }
    options.update(nodes)
    return World(spread_arrivals(per_bucket, 10, duration), **options)


@pytest.mark.parametrize(
    ("counts", "expected"),
    [
        pytest.param([25], [2, 3, 2, 3, 2, 3, 2, 3, 2, 3], id="uneven"),
        pytest.param([20], [2] * 10, id="even"),
        pytest.param([3], [0, 0, 0, 1, 0, 0, 1, 0, 0, 1], id="sparse"),
        pytest.param([0], [0] * 10, id="empty"),
    ],
)
def test_a_bucket_is_spread_evenly_over_its_seconds_in_whole_items(
    counts: list[int], expected: list[int]
) -> None:
    assert spread_arrivals(counts, 10, 10) == expected
    assert sum(spread_arrivals(counts, 10, 10)) == counts[0]


def test_a_trace_is_cut_at_the_duration() -> None:
    assert spread_arrivals([10, 10, 10], 10, 15) == [1] * 15


def test_arrivals_exactly_matched_by_capacity_are_never_late_and_nothing_is_wasted() -> None:
    # 2 items/s arrive, 2 ready nodes drain 1 item/s each: every item is taken in the second
    # after its arrival, so it waits half a second on average.
    world = _world([20] * 6, initial=2)
    world.run()
    figures = world.finish()
    assert figures.items == 120
    assert figures.late_items == 0
    assert figures.p99_wait_seconds == 0.5
    assert figures.max_wait_seconds == 0.5
    assert figures.node_seconds == 2 * 60
    assert figures.work_seconds == 120
    assert figures.slo_violation_seconds == 0
    # The last second's two arrivals are still queued when the trace ends.
    assert figures.unfinished_items == 2
    assert figures.processed_items == 118


def test_a_burst_without_scale_up_makes_items_late() -> None:
    # 100 items in the first 10 s (10 per second), one node draining 1 item/s, SLO 30 s.
    # Item n (FIFO order) arrives in second n // 10 and is taken at t = n + 1, so it waits
    # n + 1 − n // 10 − 0.5 seconds: late when 9q + r ≥ 30 for n = 10q + r → 7 + 60 = 67 items.
    world = _world([100] + [0] * 10, initial=1, max_item_age_seconds=30)
    world.run()
    figures = world.finish()
    assert figures.items == 100
    assert figures.unfinished_items == 0
    assert figures.late_items == 67
    # Nearest rank: the 99th of 100 sorted waits is item 98's, 98 + 1 − 9 − 0.5.
    assert figures.p99_wait_seconds == 89.5
    assert figures.max_wait_seconds == 90.5
    # The oldest waiting item (n = t after the take at t) is t − t // 10 − 0.5 s old: above
    # 30 s for half of second 33 and for all of seconds 34..99.
    assert figures.slo_violation_seconds == 66.5
    assert figures.node_seconds == 110
    assert figures.work_seconds == 100


def test_a_new_node_works_only_after_its_startup_but_is_billed_from_the_request() -> None:
    world = _world([10, 0], initial=0, startup_seconds=5)
    world.begin_step(0)
    world.resize(1)
    assert (world.ready, world.pending_total, world.size) == (0, 1, 1)
    world.end_step(0)
    for t in range(1, 5):
        world.begin_step(t)
        assert world.ready == 0 and world.in_flight_total == 0
        world.end_step(t)
    world.begin_step(5)
    assert world.ready == 1 and world.in_flight_total == 1
    world.end_step(5)
    world.run()
    figures = world.finish()
    # One item per second from second 0, one taken per second from t = 5: each waits 4.5 s.
    assert figures.p99_wait_seconds == figures.max_wait_seconds == 4.5
    assert figures.node_seconds == 20
    assert figures.scale_actions == 1
    assert figures.max_nodes == 1


def test_a_fractional_startup_ends_at_the_next_whole_second() -> None:
    world = _world([0], initial=0, startup_seconds=4.2)
    world.begin_step(0)
    world.resize(2)
    world.end_step(0)
    world.run(until=5)
    assert world.ready == 0
    world.run(until=6)
    assert world.ready == 2


def test_a_scale_down_is_immediate_and_returns_the_removed_nodes_work_to_the_queue() -> None:
    world = _world([100, 0, 0, 0, 0], initial=4)
    world.run(until=5)
    world.begin_step(5)
    length = world.queue_length()
    assert world.in_flight_total == 4
    head_before = world.waiting[0][0]
    world.resize(1)
    # Three of the four busy nodes go: their three items return to the head of the queue.
    assert (world.ready, world.in_flight_total, world.returned_items) == (1, 1, 3)
    assert world.queue_length() == length
    assert world.waiting[0][0] <= head_before
    world.end_step(5)
    assert world.node_seconds == 4 * 5 + 1
    world.run()
    figures = world.finish()
    assert figures.processed_items + figures.unfinished_items == 100
    assert figures.returned_items == 3


def test_idle_nodes_removed_return_nothing() -> None:
    world = _world([0, 0], initial=3)
    world.run(until=3)
    world.begin_step(3)
    world.resize(0)
    assert world.returned_items == 0 and world.size == 0


def test_a_scale_down_removes_provisioning_nodes_first_newest_first() -> None:
    world = _world([0] * 10, initial=1, startup_seconds=10)
    world.begin_step(0)
    world.resize(3)  # two nodes ready at 10
    world.end_step(0)
    world.run(until=5)
    world.begin_step(5)
    world.resize(5)  # two more, ready at 15
    world.resize(2)  # drops the two newest and one of the first two
    assert (world.ready, world.pending_total) == (1, 1)
    assert list(world.pending) == [[10, 1]]
    assert world.scale_actions == 3
    assert world.max_nodes == 5


def test_a_fractional_drain_rate_carries_its_remainder_to_the_next_second() -> None:
    # Half an item per second: item n (arrived in second n) is taken at t = 2(n + 1) and waits
    # n + 1.5 s.
    world = _world([10, 0, 0], initial=1, items_per_second=0.5)
    world.run()
    figures = world.finish()
    assert figures.unfinished_items == 0
    assert figures.processed_items == 10
    assert figures.max_wait_seconds == 9 + 1.5
    assert figures.mean_wait_seconds == sum(n + 1.5 for n in range(10)) / 10


def test_the_queue_length_counts_in_flight_items_unless_told_otherwise() -> None:
    world = _world([50], initial=2)
    world.run(until=3)
    world.begin_step(3)
    assert world.in_flight_total == 2
    assert world.queue_length() == world.queue_length(include_in_flight=False) + 2
    # Items of seconds 0..2 have arrived (5 per second); 4 were done at t = 1, 2, and 2 are in
    # flight. The 5 items of second 0 are all gone, so the oldest waiting one is from second 1.
    assert world.queue_length() == 15 - 4
    assert world.oldest_age() == 3 - 1 - 0.5


def test_a_count_outside_the_groups_bounds_is_refused() -> None:
    world = _world([0], initial=1, min_size=1, max_size=3)
    with pytest.raises(PermanentError, match="outside the group's bounds"):
        world.resize(4)
    with pytest.raises(PermanentError):
        world.resize(0)


def test_items_still_waiting_at_the_end_count_with_their_age_then() -> None:
    # 40 items at once in the last bucket, no node: all wait until the end (10 s after their
    # second), none is late with a 30 s SLO, and all are unfinished.
    world = _world([0, 40], initial=0, max_item_age_seconds=30)
    world.run()
    figures = world.finish()
    assert figures.unfinished_items == 40
    assert figures.late_items == 0
    assert figures.max_wait_seconds == 20 - 10 - 0.5


def test_the_timeline_has_one_sample_per_period() -> None:
    world = World(
        [6] * 150,
        initial=3,
        startup_seconds=0,
        items_per_second=2,
        min_size=0,
        max_size=10,
        max_item_age_seconds=60,
        sample_seconds=60,
    )
    world.run()
    timeline = world.timeline
    assert timeline.times == [0, 60, 120]
    assert timeline.arrivals == [6.0, 6.0, 6.0]
    assert timeline.nodes == [3, 3, 3] and timeline.ready == [3, 3, 3]
    # The 6 items of the last second are taken at once: in flight, none waits.
    assert timeline.queue == [6, 6, 6]
    assert timeline.oldest_age == [0.0, 0.0, 0.0]
