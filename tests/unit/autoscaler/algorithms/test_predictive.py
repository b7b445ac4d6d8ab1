"""Predictive scaling: learning, forecasting, scale-up only, bounded state, status round trip
(docs/algorithm.md, "Predictive scaling")."""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable
from typing import Any

import pytest
from pydantic import ValidationError

from autoscaler import algorithms
from autoscaler.algorithms import pid, predictive, proportional
from autoscaler.algorithms.predictive import (
    MAX_BINS,
    backtest,
    bin_seconds_for,
    forecast_metrics,
    models_from_status,
    models_to_status,
    observe,
    predict,
)
from autoscaler.algorithms.types import Decision, ForecastModel, History, MetricInput
from autoscaler.api.horizontalautoscaler import (
    ForecastStatus,
    HorizontalAutoscalerSpec,
    HorizontalAutoscalerStatus,
    MetricTarget,
    PredictiveScaling,
)
from autoscaler.clock import FakeClock
from autoscaler.config import SpecSet
from autoscaler.loop import ControlLoop, _history_from_status
from tests.support import Backends, autoscaler, node_group, schedule_producer

NOW = 1_767_225_600.0  # 2026-01-01T00:00:00Z, a whole number of days and hours
DAY = 86400.0
HOUR = 3600.0
UNLIMITED: dict[str, Any] = {
    "scaleUp": {"policies": [{"type": "Pods", "value": 100000, "periodSeconds": 1}]},
    "scaleDown": {
        "stabilizationWindowSeconds": 0,
        "policies": [{"type": "Percent", "value": 100, "periodSeconds": 1}],
    },
}


def settings(**fields: Any) -> PredictiveScaling:
    return PredictiveScaling.model_validate(fields)


def make_spec(
    predictive_doc: dict[str, Any] | None = None,
    *,
    algorithm: str = "Proportional",
    per_node: float = 10,
    behavior: dict[str, Any] | None = None,
) -> HorizontalAutoscalerSpec:
    return HorizontalAutoscalerSpec.model_validate(
        {
            "scaleTargetRef": {"name": "workers"},
            "minReplicas": 1,
            "maxReplicas": 1000,
            "metrics": [
                {
                    "producer": {"name": "q"},
                    "target": {"type": "AverageValue", "averageValue": per_node},
                }
            ],
            "algorithm": {
                "type": algorithm,
                "predictive": {} if predictive_doc is None else predictive_doc,
            },
            "behavior": UNLIMITED if behavior is None else behavior,
        }
    )


def metric(value: float | None, per_node: float = 10, name: str = "q/queue_length") -> MetricInput:
    return MetricInput(
        name,
        MetricTarget(type="AverageValue", average_value=per_node),
        value,
        None if value is not None else "timeout",
    )


def series(
    fn: Callable[[float], float], seconds: float, step: float = 15.0
) -> list[tuple[float, float]]:
    """(time, value) every ``step`` seconds from NOW, ``fn`` taking seconds since NOW."""
    return [(NOW + i * step, fn(i * step)) for i in range(int(seconds / step))]


def learn(samples: list[tuple[float, float]], options: PredictiveScaling) -> ForecastModel:
    model: ForecastModel | None = None
    for moment, value in samples:
        model = observe(model, "q/queue_length", value, moment, options)
    assert model is not None
    return model


def run(
    spec: HorizontalAutoscalerSpec,
    samples: list[tuple[float, float]],
    *,
    start: int,
) -> list[Decision]:
    """Feed a series through the algorithm the spec selects, current = last desired."""
    decide = algorithms.decide_for(spec)
    history, current, decisions = History(), start, []
    for moment, value in samples:
        decision = decide(spec, current, [metric(value)], history, moment)
        history, current = decision.history, decision.desired_replicas
        decisions.append(decision)
    return decisions


# ------------------------------------------------------------------- learning


@pytest.mark.parametrize(
    ("period", "expected_bin", "expected_bins"),
    [(3600, 60, 60), (86400, 300, 288), (7 * 86400, 2100, 288), (600, 60, 10)],
    ids=["hour", "day", "week", "ten minutes"],
)
def test_a_seasonal_profile_has_at_most_288_bins_of_at_least_a_minute(
    period: int, expected_bin: int, expected_bins: int
) -> None:
    model = observe(None, "m", 1.0, NOW, settings(seasonalPeriodsSeconds=[period]))

    assert bin_seconds_for(period) == expected_bin
    assert len(model.seasons[0].means) == expected_bins <= MAX_BINS


def test_the_state_stays_bounded_whatever_the_history_length() -> None:
    options = settings()
    rng = random.Random(3)
    model = learn(series(lambda t: 100 + rng.gauss(0, 5), 3 * DAY), options)

    assert [len(s.means) for s in model.seasons] == [60, 288]
    assert len(model.pending) <= 6  # one per horizon / 4, until scored
    assert {s.method for s in model.scores} == {
        "Persistence",
        "Trend",
        "Seasonal/3600s",
        "Seasonal/86400s",
    }
    size = len(json.dumps([s.to_dict() for s in models_to_status([model])]))
    assert size < 20_000  # bytes of status per metric


def test_a_sample_at_or_before_the_last_one_changes_nothing() -> None:
    model = learn(series(lambda t: t, 120), settings())

    assert observe(model, model.name, 999.0, model.time, settings()) == model
    assert observe(model, model.name, 999.0, model.time - 5, settings()) == model


def test_a_long_gap_restarts_the_trend_but_keeps_the_seasonal_profiles() -> None:
    model = learn(series(lambda t: 10 + t, 1800), settings())
    later = observe(model, model.name, 50.0, model.time + 3600, settings())

    assert later.trend == 0.0 and later.level == 50.0
    assert later.seasons[0].means != (None,) * 60


# ------------------------------------------------------------------- forecasting


def test_a_linear_ramp_is_forecast_ahead_by_the_trend() -> None:
    options = settings(method="Trend")
    model = learn(series(lambda t: 100 + 0.5 * t, 1800), options)

    method, value = predict(model, options, model.time)

    now_value = 100 + 0.5 * (model.time - NOW)
    assert method == "Trend"
    assert value == pytest.approx(now_value + 0.5 * 120, rel=0.01)


def test_auto_chooses_the_trend_on_a_ramp_once_it_beat_persistence() -> None:
    options = settings()
    rng = random.Random(1)
    model = learn(series(lambda t: 100 + 0.5 * t + rng.gauss(0, 2), 1800), options)

    assert predict(model, options, model.time)[0] == "Trend"


def test_auto_uses_persistence_until_the_methods_were_scored() -> None:
    options = settings()
    model = learn(series(lambda t: 100 + 0.5 * t, 120), options)

    assert predict(model, options, model.time) == ("Persistence", model.last_value)


def daily_burst(t: float) -> float:
    """20 items all day, 200 from 09:00 to 10:00 (UTC)."""
    return 200.0 if 9 * HOUR <= t % DAY < 10 * HOUR else 20.0


def test_a_daily_pattern_is_forecast_after_one_day_of_history() -> None:
    options = settings(seasonalPeriodsSeconds=[86400])
    first_day = learn(series(daily_burst, 9 * HOUR - 105), options)  # up to 08:58 on day 1
    second_day = learn(series(daily_burst, DAY + 9 * HOUR - 105), options)  # … on day 2

    before = _methods(first_day)
    after = _methods(second_day)

    assert "Seasonal/86400s" not in before  # less than a full period seen
    assert after["Seasonal/86400s"] == pytest.approx(200)  # at 08:58, for 09:00
    assert after["Persistence"] == 20.0 and after["Trend"] == pytest.approx(20.0, abs=1)


def _methods(model: ForecastModel) -> dict[str, float]:
    from autoscaler.algorithms.predictive import _methods as every_method

    return every_method(model, model.time, 120.0)


def test_on_the_second_day_the_nodes_are_there_before_the_burst() -> None:
    spec = make_spec({"seasonalPeriodsSeconds": [86400]}, per_node=10)
    plain = make_spec(per_node=10).model_copy(
        update={"algorithm": make_spec().algorithm.model_copy(update={"predictive": None})}
    )
    samples = series(daily_burst, DAY + 9 * HOUR + 60)

    with_forecast = run(spec, samples, start=2)
    without = run(plain, samples, start=2)

    at_0859 = next(i for i, (t, _) in enumerate(samples) if t >= NOW + DAY + 9 * HOUR - 60)
    assert without[at_0859].desired_replicas == 2
    assert with_forecast[at_0859].desired_replicas == 20  # 200 items / 10 per node
    assert with_forecast[at_0859].steps[1].rule == "forecast"
    assert "Seasonal/86400s" in with_forecast[at_0859].steps[1].message


# ------------------------------------------------------------------- scale up only


def test_a_forecast_below_the_current_data_never_lowers_the_recommendation() -> None:
    spec = make_spec({"method": "Trend"})
    falling = series(lambda t: max(0.0, 1000 - 0.5 * t), 1800)

    with_forecast = run(spec, falling, start=100)
    plain = [
        proportional.decide(spec, d.current_replicas, [metric(v)], History(), t)
        for d, (t, v) in zip(with_forecast, falling, strict=True)
    ]

    assert all(d.forecasts for d in with_forecast[1:])
    assert all(d.forecasts[0].value < d.forecasts[0].current for d in with_forecast[20:])
    assert [d.desired_replicas for d in with_forecast] == [p.desired_replicas for p in plain]
    assert not any(s.rule == "forecast" for d in with_forecast for s in d.steps)


def learned_ramp(options: PredictiveScaling | None) -> tuple[ForecastModel, float]:
    """A model that learned a queue growing by 2 items/s for 30 minutes, and the next value."""
    assert options is not None
    model = learn(series(lambda t: 100 + 2 * t, 1800), options)
    return model, 100 + 2 * (model.time + 15 - NOW)


def test_a_forecast_above_the_data_raises_the_recommendation_with_a_forecast_step() -> None:
    spec = make_spec({"method": "Trend", "horizonSeconds": 300})
    model, value = learned_ramp(spec.algorithm.predictive)
    current = math.ceil(value / 10)  # the data is on target

    decision = algorithms.decide(
        spec, current, [metric(value)], History(forecasts=(model,)), model.time + 15
    )

    forecast = decision.forecasts[0]
    assert forecast.value == pytest.approx(value + 2 * 300, rel=0.01)
    assert [s.rule for s in decision.steps] == ["tolerance", "forecast"]
    assert decision.steps[1].before == current
    assert decision.steps[1].after == forecast.recommendation == math.ceil(forecast.value / 10)
    assert decision.desired_replicas == forecast.recommendation
    assert "forecast of q/queue_length in 300s" in decision.steps[1].message
    assert [m.name for m in decision.metrics] == ["q/queue_length"]  # no synthetic metric shown


def test_the_forecast_never_scales_in_on_its_own() -> None:
    """Data asks for 10 at 10 nodes; a forecast of half cannot lower it."""
    spec = make_spec({"method": "Trend"})
    model = learn(series(lambda t: 200 - 0.8 * t, 300), spec.algorithm.predictive)  # type: ignore[arg-type]
    history = History(forecasts=(model,))

    decision = algorithms.decide(spec, 10, [metric(100)], history, model.time + 15)

    assert decision.forecasts[0].recommendation < 10
    assert decision.desired_replicas == 10


def test_a_forecast_cannot_override_the_partial_failure_rule_downwards() -> None:
    spec = make_spec({"method": "Trend"})
    model = learn(series(lambda t: 50.0, 300), spec.algorithm.predictive)  # type: ignore[arg-type]
    history = History(forecasts=(model,))
    inputs = [metric(50), metric(None, name="cpu")]

    decision = algorithms.decide(spec, 10, inputs, history, model.time + 15)

    assert decision.desired_replicas == 10  # data asks 5, forecast 5: held by the failure
    assert decision.steps[-1].rule == "partialFailure"
    assert [m.name for m in decision.history.forecasts] == ["q/queue_length"]


def test_the_pid_takes_the_forecast_as_a_floor_too() -> None:
    spec = make_spec({"method": "Trend", "horizonSeconds": 300}, algorithm="PID")
    model, value = learned_ramp(spec.algorithm.predictive)
    current = math.ceil(value / 10)

    decision = algorithms.decide(
        spec, current, [metric(value)], History(forecasts=(model,)), model.time + 15
    )

    assert [s.rule for s in decision.steps] == ["tolerance", "forecast"]
    assert decision.desired_replicas == decision.forecasts[0].recommendation > current
    assert decision.history.pid is not None and decision.history.forecasts


@pytest.mark.parametrize(
    ("algorithm_doc", "expected"),
    [
        ({"type": "Proportional"}, proportional.decide),
        ({"type": "PID"}, pid.decide),
        ({"type": "Proportional", "predictive": {}}, predictive.decide_proportional),
        ({"type": "Proportional", "predictive": {"enabled": False}}, proportional.decide),
    ],
    ids=["proportional", "pid", "proportional with predictive", "predictive switched off"],
)
def test_the_algorithm_is_chosen_by_the_spec(
    algorithm_doc: dict[str, Any], expected: object
) -> None:
    spec = make_spec().model_copy(
        update={"algorithm": make_spec().algorithm.model_validate(algorithm_doc)}
    )

    assert algorithms.decide_for(spec) is expected


def test_pid_with_predictive_is_dispatched_to_the_combination() -> None:
    spec = make_spec(algorithm="PID")

    decide = algorithms.decide_for(spec)

    assert decide not in (pid.decide, proportional.decide, predictive.decide_proportional)
    assert decide(spec, 3, [metric(30)], History(), NOW).history.forecasts


# ------------------------------------------------------------------- measured against persistence


def ramp(rng: random.Random) -> Callable[[float], float]:
    return lambda t: 10 + 0.05 * t + rng.gauss(0, 2)


def day_sine(rng: random.Random) -> Callable[[float], float]:
    return lambda t: max(0.0, 100 + 80 * math.sin(2 * math.pi * t / DAY) + rng.gauss(0, 5))


def hourly_batch(rng: random.Random) -> Callable[[float], float]:
    """A batch of 3000 items at the top of every hour, drained in 5 minutes, with noise."""
    return lambda t: max(0.0, (3000 - 10 * (t % HOUR) if t % HOUR < 300 else 0) + rng.gauss(0, 20))


def noisy_daily_burst(rng: random.Random) -> Callable[[float], float]:
    return lambda t: daily_burst(t) + rng.gauss(0, 2)


@pytest.mark.parametrize(
    ("make", "seconds", "warm_up", "best"),
    [
        (ramp, 4 * HOUR, 600, "Trend"),
        (day_sine, 3 * DAY, 2 * DAY, "Seasonal/86400s"),
        (noisy_daily_burst, 3 * DAY, 2 * DAY, "Seasonal/86400s"),
        (hourly_batch, DAY, 3 * HOUR, "Seasonal/3600s"),
    ],
    ids=["linear ramp", "daily sinusoid with noise", "daily burst with noise", "hourly batch"],
)
def test_the_chosen_forecast_beats_persistence_at_the_horizon(
    make: Callable[[random.Random], Callable[[float], float]],
    seconds: float,
    warm_up: float,
    best: str,
) -> None:
    """The numbers in docs/algorithm.md come from this test (seed 7, 15 s samples, 120 s)."""
    result = backtest(series(make(random.Random(7)), seconds), settings(), skip_seconds=warm_up)
    errors = result.errors

    assert errors["Chosen"] < errors["Persistence"]
    assert min(errors, key=lambda m: errors[m] if m != "Chosen" else math.inf) == best
    assert errors["Chosen"] <= errors[best] * 1.05


# ------------------------------------------------------------------- status round trip


def test_the_models_round_trip_through_status_json() -> None:
    options = settings()
    model = learn(series(day_sine(random.Random(2)), DAY + HOUR), options)
    _, forecasts = forecast_metrics(make_spec(), 5, [metric(120)], (model,), model.time + 15)

    statuses = models_to_status([model], forecasts)
    wire = json.loads(json.dumps([s.to_dict() for s in statuses]))
    restored = models_from_status([ForecastStatus.model_validate(doc) for doc in wire])

    assert restored == (model,)
    assert wire[0]["method"] == forecasts[0].method
    assert wire[0]["horizonSeconds"] == 120


def test_invalid_predictive_settings_are_rejected() -> None:
    with pytest.raises(ValidationError, match="between 600 and 604800"):
        settings(seasonalPeriodsSeconds=[60])
    with pytest.raises(ValidationError, match="distinct"):
        settings(seasonalPeriodsSeconds=[3600, 3600])
    with pytest.raises(ValidationError):
        settings(horizonSeconds=0)


def test_a_restarted_loop_keeps_what_it_learned_from_status() -> None:
    clock = FakeClock(NOW)
    backends = Backends()
    loop = ControlLoop(
        clock, create_producer=backends.create_producer, create_provider=backends.create_provider
    )
    resource = autoscaler(algorithm={"type": "PID", "predictive": {"horizonSeconds": 90}})
    loop.apply(
        SpecSet(
            node_groups={"default/g": node_group(replicas=2)},
            producers={"default/p": schedule_producer()},
            autoscalers={"default/a": resource},
        )
    )
    for value in (4, 8, 12, 16, 20, 24):
        backends.producers["p"].value = value
        loop.run_once()
        clock.advance(15)
    runtime = loop.autoscalers["default/a"]
    assert runtime.history.forecasts

    view = loop.autoscaler_view(runtime)
    kept = ("recommendations", "scaleEvents", "pid", "forecasts")
    persisted = json.loads(json.dumps({k: view["status"][k] for k in kept}))
    status = HorizontalAutoscalerStatus.model_validate(persisted)
    restored = _history_from_status(resource.model_copy(update={"status": status}))

    assert restored.forecasts == runtime.history.forecasts
    assert restored.pid == runtime.history.pid
    assert persisted["forecasts"][0]["horizonSeconds"] == 90
