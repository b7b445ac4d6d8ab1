"""The schedule producer: cron windows in a time zone → a scheduled replica count."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from autoscaler.api import BackendContext, MetricsProducer, Producer
from autoscaler.clock import FakeClock
from autoscaler.errors import PermanentError
from producers.schedule import ScheduleProducer, create

BUSINESS_HOURS = {"start": "0 9 * * 1-5", "end": "0 17 * * 1-5", "replicas": 6}


def at(moment: str) -> float:
    """``"2026-01-05T08:00"`` (UTC) → epoch seconds."""
    return datetime.fromisoformat(moment).replace(tzinfo=UTC).timestamp()


def schedule(
    behaviors: list[dict[str, Any]], *, timezone: str = "UTC", default: int = 2
) -> ScheduleProducer:
    resource = MetricsProducer.model_validate(
        {
            "metadata": {"name": "business-hours"},
            "spec": {
                "schedule": {
                    "timezone": timezone,
                    "defaultReplicas": default,
                    "behaviors": behaviors,
                }
            },
        }
    )
    return create(resource, BackendContext(clock=FakeClock()))


def value(producer: ScheduleProducer, moment: str) -> int:
    observation = producer.observe(at(moment))
    (signal,) = observation.signals
    assert signal.name == "replicas"
    current: int = observation.status["scheduledCapacity"]["currentValue"]
    assert signal.value == current
    return current


def test_the_factory_returns_a_producer() -> None:
    assert isinstance(schedule([BUSINESS_HOURS]), Producer)


def test_the_signal_is_stamped_with_the_observation_time() -> None:
    observation = schedule([BUSINESS_HOURS]).observe(at("2026-01-05T10:00:00"))
    assert observation.signals[0].timestamp == at("2026-01-05T10:00:00")


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        pytest.param("2026-01-05T07:59:59", 2, id="monday 08:59 CET is before opening"),
        pytest.param("2026-01-05T08:00:00", 6, id="monday 09:00 CET opens the window"),
        pytest.param("2026-01-05T12:00:00", 6, id="monday 13:00 CET is inside"),
        pytest.param("2026-01-05T15:59:59", 6, id="monday 16:59 CET is still inside"),
        pytest.param("2026-01-05T16:00:00", 2, id="monday 17:00 CET closes the window"),
        pytest.param("2026-01-09T12:00:00", 6, id="friday noon is inside"),
        pytest.param("2026-01-10T12:00:00", 2, id="saturday noon is outside"),
        pytest.param("2026-01-11T23:30:00", 2, id="sunday night is outside"),
        pytest.param("2026-07-06T06:59:00", 2, id="summer monday 08:59 CEST is before opening"),
        pytest.param("2026-07-06T07:00:00", 6, id="summer monday 09:00 CEST opens the window"),
        pytest.param("2026-07-06T14:59:00", 6, id="summer monday 16:59 CEST is still inside"),
        pytest.param("2026-07-06T15:00:00", 2, id="summer monday 17:00 CEST closes the window"),
    ],
)
def test_a_weekday_business_hours_window_follows_berlin_local_time(
    moment: str, expected: int
) -> None:
    assert value(schedule([BUSINESS_HOURS], timezone="Europe/Berlin"), moment) == expected


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        pytest.param("2026-03-27T07:30:00", 2, id="friday before the change opens at 08:00 UTC"),
        pytest.param("2026-03-27T08:00:00", 6, id="friday before the change is open at 08:00"),
        pytest.param("2026-03-30T07:00:00", 6, id="monday after the change opens at 07:00 UTC"),
        pytest.param("2026-03-30T15:00:00", 2, id="monday after the change closes at 15:00 UTC"),
        pytest.param("2026-10-23T14:59:00", 6, id="friday before fall-back is open at 14:59"),
        pytest.param("2026-10-23T15:00:00", 2, id="friday before fall-back closes at 15:00"),
        pytest.param("2026-10-26T07:30:00", 2, id="monday after fall-back opens at 08:00 UTC"),
        pytest.param("2026-10-26T08:00:00", 6, id="monday after fall-back is open at 08:00"),
    ],
)
def test_the_window_moves_in_utc_across_daylight_saving_changes(moment: str, expected: int) -> None:
    assert value(schedule([BUSINESS_HOURS], timezone="Europe/Berlin"), moment) == expected


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        pytest.param("2026-03-28T23:59:00", 2, id="before 01:00 CET"),
        pytest.param("2026-03-29T00:00:00", 5, id="01:00 CET opens"),
        pytest.param("2026-03-29T01:00:00", 5, id="03:00 CEST, right after the gap, is inside"),
        pytest.param("2026-03-29T01:59:00", 5, id="03:59 CEST is inside"),
        pytest.param("2026-03-29T02:00:00", 2, id="04:00 CEST closes after two real hours"),
    ],
)
def test_a_night_window_over_the_spring_forward_gap_is_an_hour_shorter(
    moment: str, expected: int
) -> None:
    night = {"start": "0 1 * * *", "end": "0 4 * * *", "replicas": 5}
    assert value(schedule([night], timezone="Europe/Berlin"), moment) == expected


def test_the_next_value_time_crosses_a_daylight_saving_change() -> None:
    producer = schedule([BUSINESS_HOURS], timezone="Europe/Berlin")
    status = producer.observe(at("2026-03-27T17:00:00")).status["scheduledCapacity"]
    assert status == {
        "currentValue": 2,
        "nextValue": 6,
        "nextValueTime": "2026-03-30T07:00:00Z",
    }


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        pytest.param("2026-01-05T21:59:00", 2, id="before the night"),
        pytest.param("2026-01-05T22:00:00", 4, id="opens at 22:00"),
        pytest.param("2026-01-05T23:59:00", 4, id="inside before midnight"),
        pytest.param("2026-01-06T00:00:00", 4, id="inside at midnight"),
        pytest.param("2026-01-06T05:59:00", 4, id="inside before 06:00"),
        pytest.param("2026-01-06T06:00:00", 2, id="closes at 06:00"),
        pytest.param("2026-01-06T12:00:00", 2, id="outside at noon"),
    ],
)
def test_a_window_may_span_midnight(moment: str, expected: int) -> None:
    night = {"start": "0 22 * * *", "end": "0 6 * * *", "replicas": 4}
    assert value(schedule([night]), moment) == expected


WIDE = {"start": "0 8 * * *", "end": "0 20 * * *", "replicas": 4}


@pytest.mark.parametrize(
    ("behaviors", "moment", "expected"),
    [
        pytest.param(
            [WIDE, {"start": "0 12 * * *", "end": "0 13 * * *", "replicas": 10}],
            "2026-01-05T12:30:00",
            10,
            id="a nested window raises the wider one",
        ),
        pytest.param(
            [WIDE, {"start": "0 12 * * *", "end": "0 13 * * *", "replicas": 1}],
            "2026-01-05T12:30:00",
            1,
            id="a nested window lowers the wider one",
        ),
        pytest.param(
            [{"start": "0 12 * * *", "end": "0 13 * * *", "replicas": 1}, WIDE],
            "2026-01-05T12:30:00",
            1,
            id="the order of behaviors does not matter",
        ),
        pytest.param(
            [WIDE, {"start": "0 12 * * *", "end": "0 13 * * *", "replicas": 10}],
            "2026-01-05T13:30:00",
            4,
            id="the wider window resumes when the nested one closes",
        ),
        pytest.param(
            [
                {"start": "0 9 * * *", "end": "0 11 * * *", "replicas": 3},
                {"start": "0 9 * * *", "end": "0 12 * * *", "replicas": 5},
            ],
            "2026-01-05T10:00:00",
            5,
            id="windows opening together: the larger count wins",
        ),
        pytest.param(
            [
                {"start": "0 9 * * *", "end": "0 12 * * *", "replicas": 5},
                {"start": "0 9 * * *", "end": "0 11 * * *", "replicas": 3},
            ],
            "2026-01-05T10:00:00",
            5,
            id="the tie rule does not depend on order",
        ),
        pytest.param(
            [
                {"start": "0 9 * * *", "end": "0 11 * * *", "replicas": 5},
                {"start": "0 9 * * *", "end": "0 12 * * *", "replicas": 3},
            ],
            "2026-01-05T11:30:00",
            3,
            id="after the larger tied window closes the other remains",
        ),
        pytest.param(
            [{"start": "0 9 * * *", "end": "0 9 * * *", "replicas": 7}],
            "2026-01-05T09:00:00",
            2,
            id="a start and end at the same instant leave the window closed",
        ),
    ],
)
def test_overlapping_windows_the_latest_start_wins_then_the_larger_count(
    behaviors: list[dict[str, Any]], moment: str, expected: int
) -> None:
    assert value(schedule(behaviors), moment) == expected


@pytest.mark.parametrize(
    ("behaviors", "moment", "expected"),
    [
        pytest.param(
            [{"start": "0 9 * * *", "end": "0 17 * * *", "replicas": 6}],
            "2026-01-05T10:00:00",
            {"currentValue": 6, "nextValue": 2, "nextValueTime": "2026-01-05T17:00:00Z"},
            id="inside a window the next change is its end",
        ),
        pytest.param(
            [{"start": "0 9 * * *", "end": "0 17 * * *", "replicas": 6}],
            "2026-01-05T17:00:00",
            {"currentValue": 2, "nextValue": 6, "nextValueTime": "2026-01-06T09:00:00Z"},
            id="at the closing instant the next change is tomorrow's opening",
        ),
        pytest.param(
            [BUSINESS_HOURS],
            "2026-01-09T18:00:00",
            {"currentValue": 2, "nextValue": 6, "nextValueTime": "2026-01-12T09:00:00Z"},
            id="friday evening looks over the weekend",
        ),
        pytest.param(
            [
                {"start": "0 9 * * *", "end": "0 12 * * *", "replicas": 5},
                {"start": "0 12 * * *", "end": "0 17 * * *", "replicas": 5},
            ],
            "2026-01-05T10:00:00",
            {"currentValue": 5, "nextValue": 2, "nextValueTime": "2026-01-05T17:00:00Z"},
            id="edges that do not change the value are skipped",
        ),
        pytest.param(
            [{"start": "0 9 * * *", "end": "0 17 * * *", "replicas": 2}],
            "2026-01-05T10:00:00",
            {"currentValue": 2, "nextValue": None, "nextValueTime": None},
            id="a window equal to the default never changes the value",
        ),
        pytest.param(
            [],
            "2026-01-05T10:00:00",
            {"currentValue": 2, "nextValue": None, "nextValueTime": None},
            id="no behaviors give the default forever",
        ),
        pytest.param(
            [{"start": "0 0 1 1 *", "end": "0 0 2 1 *", "replicas": 9}],
            "2026-01-05T10:00:00",
            {"currentValue": 2, "nextValue": 9, "nextValueTime": "2027-01-01T00:00:00Z"},
            id="a yearly window is found almost a year ahead",
        ),
    ],
)
def test_the_status_names_the_next_change(
    behaviors: list[dict[str, Any]], moment: str, expected: dict[str, Any]
) -> None:
    observation = schedule(behaviors).observe(at(moment))
    assert observation.status == {"scheduledCapacity": expected}


def test_remembered_values_match_a_fresh_evaluation_forwards_and_backwards() -> None:
    resource = MetricsProducer.model_validate(
        {
            "metadata": {"name": "office"},
            "spec": {
                "schedule": {
                    "timezone": "Europe/Berlin",
                    "defaultReplicas": 2,
                    "behaviors": [
                        BUSINESS_HOURS,
                        {"start": "0 12 * * 1-5", "end": "0 13 * * 1-5", "replicas": 1},
                        {"start": "30 22 * * *", "end": "15 1 * * *", "replicas": 3},
                    ],
                }
            },
        }
    )
    context = BackendContext(clock=FakeClock())
    remembering = create(resource, context)
    # Over the spring-forward weekend: a coarse sweep plus every edge and the seconds around it.
    sweep = [at("2026-03-27T00:00:00") + step * 2003.0 for step in range(4 * 86400 // 2003)]
    edges = [
        at(moment) + offset
        for moment in (
            "2026-03-27T08:00",
            "2026-03-27T11:00",
            "2026-03-27T12:00",
            "2026-03-27T21:30",
            "2026-03-28T00:15",
            "2026-03-29T00:15",
            "2026-03-29T20:30",
            "2026-03-30T07:00",
            "2026-03-30T15:00",
        )
        for offset in (-1.0, 0.0, 0.5, 1.0)
    ]
    moments = sorted(sweep + edges)
    for now in [*moments, *reversed(moments)]:
        fresh = create(resource, context)
        assert remembering.observe(now) == fresh.observe(now), datetime.fromtimestamp(now, UTC)


@pytest.mark.parametrize(
    ("behavior", "path"),
    [
        pytest.param(
            {"start": "0 0 30 2 *", "end": "0 17 * * *", "replicas": 3},
            "spec.schedule.behaviors[0].start",
            id="a start on february 30th",
        ),
        pytest.param(
            {"start": "0 9 * * *", "end": "0 0 31 4 *", "replicas": 3},
            "spec.schedule.behaviors[0].end",
            id="an end on april 31st",
        ),
    ],
)
def test_a_cron_expression_that_never_fires_is_a_permanent_error(
    behavior: dict[str, Any], path: str
) -> None:
    producer = schedule([behavior])
    with pytest.raises(PermanentError, match="never fires") as caught:
        producer.observe(at("2026-01-05T10:00:00"))
    assert path in caught.value.message
