"""Predictive scaling: forecast each metric ``horizonSeconds`` ahead and size for it in advance.

Pure functions over (spec, observations, history, now), like the algorithms they wrap. What is
learned about a metric is a :class:`~autoscaler.algorithms.types.ForecastModel`: bounded in size
whatever the history length, and kept in the history and in status so it survives restarts.

The rules (``docs/algorithm.md``, "Predictive scaling", has the reasoning and the measurements):

1. **Learn** from every usable sample of a metric (:func:`observe`):

   * *Holt's linear trend* (double exponential smoothing) for irregular sampling: level and trend
     smoothed with time constants :data:`LEVEL_SECONDS` and :data:`TREND_SECONDS`.
   * *Seasonal profiles*, one per period of ``seasonalPeriodsSeconds`` (hourly and daily by
     default): the time-weighted mean value per bin of the period (60 s bins for an hour, 5 min
     bins for a day, at most :data:`MAX_BINS` bins), each bin remembering about
     ``historySeconds / period`` periods.
   * *Scores*: every method's forecasts are kept until their time comes and scored against what
     was then observed (mean absolute error at the horizon), persistence included.

2. **Forecast** (:func:`predict`) the value at ``now + horizonSeconds``:

   * ``Persistence``: the value now (what every reactive autoscaler assumes);
   * ``Trend``: ``level + trend × horizon``;
   * ``Seasonal/<period>s``: ``level + bin(now + horizon) − bin(now)``, the level plus the
     change the learned pattern shows over the horizon, from the mean of the bin the horizon
     falls in and of the bin now (bin means see an edge of the pattern whole; interpolating
     between bin centres would smear it over a bin and forecast less just before it). Usable
     once a full period was observed.

   ``method: Auto`` (the default) uses the method with the lowest measured error on this signal,
   persistence included, so a signal nothing predicts better than "as now" gets no forecast at
   all. ``Trend`` and ``Seasonal`` force a method (``Seasonal`` uses ``Trend`` until a period was
   seen).

3. **Scale up only.** The forecast value goes through the HPA rules of its metric
   (:func:`~autoscaler.algorithms.proportional.replicas_for_metric`, tolerance included). The
   recommendation becomes ``max(current data, forecast)``: a forecast can raise it (rule
   ``forecast``) and so hold nodes that a lower present value would release, but a forecast below
   the present never lowers anything. Stabilization, rate policies and min/max then apply as
   usual.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from autoscaler.algorithms import proportional
from autoscaler.algorithms.proportional import _num, _tolerance, effective_rules
from autoscaler.algorithms.types import (
    Decision,
    Forecast,
    ForecastModel,
    History,
    MethodScore,
    MetricInput,
    PendingForecast,
    SeasonProfile,
    Step,
)
from autoscaler.api.horizontalautoscaler import (
    ForecastModelStatus,
    ForecastStatus,
    HorizontalAutoscalerSpec,
    MethodScoreStatus,
    PendingForecastStatus,
    PredictiveScaling,
    SeasonStatus,
)
from autoscaler.clock import to_datetime, to_timestamp

__all__ = [
    "LEVEL_SECONDS",
    "MAX_BINS",
    "TREND_SECONDS",
    "Backtest",
    "backtest",
    "bin_seconds_for",
    "decide_proportional",
    "forecast_metrics",
    "forecast_step",
    "models_from_status",
    "models_to_status",
    "observe",
    "predict",
]

#: Time constant of Holt's level, in seconds: long enough to average out sampling noise, short
#: enough to follow a change within a node's startup time.
LEVEL_SECONDS = 60.0
#: Time constant of Holt's trend, in seconds.
TREND_SECONDS = 300.0
#: The most bins a seasonal profile has (5-minute bins over a day).
MAX_BINS = 288
#: The shortest bin of a seasonal profile, in seconds.
MIN_BIN_SECONDS = 60
#: A gap between samples longer than this restarts the level and trend (the profiles stay).
MAX_GAP_SECONDS = 900.0
#: How long forecast errors are remembered, in seconds of scored forecasts.
SCORE_MEMORY_SECONDS = 86400.0
#: How many scored forecasts a method needs before ``Auto`` may choose it.
MIN_SCORED = 10
#: A forecast is scored against a sample at most this late (else it is dropped unscored).
MAX_SCORE_LAG_SECONDS = 60.0

PERSISTENCE = "Persistence"
TREND = "Trend"


def _seasonal_name(period_seconds: int) -> str:
    return f"Seasonal/{period_seconds}s"


def bin_seconds_for(period_seconds: int) -> int:
    """Bin width of a profile: ``max(60 s, period / 288)`` (60 s for an hour, 300 s for a day)."""
    return max(MIN_BIN_SECONDS, -(-period_seconds // MAX_BINS))


def _spacing(horizon: float) -> float:
    """Seconds between two forecasts kept for scoring: four per horizon, at least 5 s."""
    return max(horizon / 4.0, 5.0)


# ------------------------------------------------------------------------- 1. learn


def _new_season(period: int, now: float) -> SeasonProfile:
    bin_seconds = bin_seconds_for(period)
    bins = period // bin_seconds
    return SeasonProfile(period, bin_seconds, now, (None,) * bins, (0.0,) * bins)


def _slot(season: SeasonProfile, moment: float) -> int:
    bins = len(season.means)
    return min(int((moment % season.period_seconds) // season.bin_seconds), bins - 1)


def _learn_season(
    season: SeasonProfile, value: float, now: float, dt: float, history_seconds: int
) -> SeasonProfile:
    """Time-weighted mean per bin; once a bin holds ``historySeconds / period`` periods' worth
    of samples, it becomes an exponential average with that memory."""
    slot = _slot(season, now)
    dt = min(dt, float(season.bin_seconds))
    cap = max(1.0, history_seconds / season.period_seconds) * season.bin_seconds
    weight = min(season.weights[slot] + dt, cap)
    mean = season.means[slot]
    if mean is None or weight <= 0:
        mean = value
    else:
        mean += (value - mean) * dt / weight
    means = list(season.means)
    weights = list(season.weights)
    means[slot], weights[slot] = mean, weight
    return replace(season, means=tuple(means), weights=tuple(weights))


def _score(
    scores: Sequence[MethodScore], method: str, error: float, spacing: float
) -> tuple[MethodScore, ...]:
    found = next((s for s in scores if s.method == method), None)
    if found is None:
        return (*scores, MethodScore(method, error, spacing))
    weight = min(found.weight + spacing, SCORE_MEMORY_SECONDS)
    updated = MethodScore(method, found.error + (error - found.error) * spacing / weight, weight)
    return tuple(updated if s.method == method else s for s in scores)


def _methods(model: ForecastModel, now: float, horizon: float) -> dict[str, float]:
    """Every method's forecast of the value at ``now + horizon`` (those that can make one)."""
    forecasts = {
        PERSISTENCE: model.last_value,
        TREND: max(model.level + model.trend * horizon, 0.0),
    }
    for season in model.seasons:
        if now - season.start < season.period_seconds:
            continue  # not a full period yet
        ahead, here = season.means[_slot(season, now + horizon)], season.means[_slot(season, now)]
        if ahead is not None and here is not None:
            forecasts[_seasonal_name(season.period_seconds)] = max(model.level + ahead - here, 0.0)
    return forecasts


def observe(
    model: ForecastModel | None,
    name: str,
    value: float,
    now: float,
    settings: PredictiveScaling,
) -> ForecastModel:
    """Rule 1: the model after one more sample ``value`` at ``now``.

    Scores the pending forecasts whose time has come, updates Holt's level and trend and each
    seasonal profile, and keeps this moment's forecasts for scoring (one per ``horizon / 4``). A
    sample at or before the model's time changes nothing; a gap over :data:`MAX_GAP_SECONDS`
    restarts the level and trend; a changed horizon drops the pending forecasts and the scores.
    """
    horizon = float(settings.horizon_seconds)
    periods = settings.seasonal_periods_seconds
    if model is None:
        seasons = tuple(_new_season(p, now) for p in periods)
        seasons = tuple(
            _learn_season(s, value, now, 0.0, settings.history_seconds) for s in seasons
        )
        fresh = ForecastModel(name, now, horizon, value, value, 0.0, seasons)
        return replace(
            fresh, pending=(PendingForecast(now, tuple(_methods(fresh, now, horizon).items())),)
        )
    if now <= model.time:
        return model
    if model.horizon_seconds != horizon:
        model = replace(model, horizon_seconds=horizon, pending=(), scores=())
    elapsed = now - model.time
    spacing = _spacing(horizon)

    # score what was forecast for about now
    scores = model.scores
    pending: list[PendingForecast] = []
    for entry in model.pending:
        due = entry.time + horizon
        if due > now:
            pending.append(entry)
        elif now - due <= MAX_SCORE_LAG_SECONDS:
            for method, forecast in entry.values:
                scores = _score(scores, method, abs(forecast - value), spacing)

    # Holt's linear trend, for irregular sampling
    if elapsed > MAX_GAP_SECONDS:
        level, trend = value, 0.0
    else:
        alpha = 1.0 - math.exp(-elapsed / LEVEL_SECONDS)
        beta = 1.0 - math.exp(-elapsed / TREND_SECONDS)
        predicted = model.level + model.trend * elapsed
        level = predicted + alpha * (value - predicted)
        trend = model.trend + beta * ((level - model.level) / elapsed - model.trend)

    # seasonal profiles (new periods start now, removed ones are forgotten)
    by_period = {s.period_seconds: s for s in model.seasons}
    learned: list[SeasonProfile] = []
    for period in periods:
        season = by_period.get(period)
        if season is None or season.bin_seconds != bin_seconds_for(period):
            season = _new_season(period, now)
        learned.append(_learn_season(season, value, now, elapsed, settings.history_seconds))

    updated = ForecastModel(
        name, now, horizon, value, level, trend, tuple(learned), tuple(pending), scores
    )
    if not pending or now - pending[-1].time >= spacing - 1e-9:
        made = PendingForecast(now, tuple(_methods(updated, now, horizon).items()))
        updated = replace(updated, pending=(*pending, made))
    return updated


# ------------------------------------------------------------------------- 2. forecast


def _best(model: ForecastModel, candidates: Sequence[str]) -> str | None:
    """The candidate with the lowest score among those scored at least :data:`MIN_SCORED`
    times (ties: the earlier candidate)."""
    enough = _spacing(model.horizon_seconds) * MIN_SCORED - 1e-9
    scored = {s.method: s.error for s in model.scores if s.weight >= enough}
    ranked = [(scored[m], i, m) for i, m in enumerate(candidates) if m in scored]
    return min(ranked)[2] if ranked else None


def predict(model: ForecastModel, settings: PredictiveScaling, now: float) -> tuple[str, float]:
    """Rule 2: (method, value at ``now + horizonSeconds``).

    ``Auto`` picks the available method with the lowest measured error (persistence first, so it
    wins ties and is used until the others have been scored :data:`MIN_SCORED` times).
    """
    forecasts = _methods(model, now, float(settings.horizon_seconds))
    seasonal = [m for m in forecasts if m.startswith("Seasonal/")]
    if settings.method == "Trend":
        return TREND, forecasts[TREND]
    if settings.method == "Seasonal":
        if not seasonal:
            return TREND, forecasts[TREND]
        chosen = _best(model, seasonal) or seasonal[0]
        return chosen, forecasts[chosen]
    chosen = _best(model, list(forecasts)) or PERSISTENCE
    return chosen, forecasts[chosen]


# ------------------------------------------------------------------------- 3. scale up only


def _usable(value: float | None) -> bool:
    return value is not None and math.isfinite(value) and value >= 0


def forecast_metrics(
    spec: HorizontalAutoscalerSpec,
    current_replicas: int,
    metrics: Sequence[MetricInput],
    models: Sequence[ForecastModel],
    now: float,
) -> tuple[tuple[ForecastModel, ...], tuple[Forecast, ...]]:
    """Learn from the metrics read now and forecast each one with a usable value.

    Returns the models to remember (a failed metric keeps its model; a metric no longer in the
    spec loses it) and the forecasts, each with the replicas its value asks for under the HPA rules
    of the metric (``replicas_for_metric``, tolerance included).
    """
    settings = spec.algorithm.predictive
    if settings is None or not settings.enabled:
        return (), ()
    up_rules, down_rules = effective_rules(spec.behavior)
    known = {m.name: m for m in models}
    kept: list[ForecastModel] = []
    forecasts: list[Forecast] = []
    for metric in metrics:
        model = known.pop(metric.name, None)
        if not _usable(metric.value):
            if model is not None:
                kept.append(model)
            continue
        assert metric.value is not None
        model = observe(model, metric.name, metric.value, now, settings)
        kept.append(model)
        method, value = predict(model, settings, now)
        recommendation = proportional.replicas_for_metric(
            MetricInput(metric.name, metric.target, value),
            current_replicas,
            up_tolerance=_tolerance(up_rules),
            down_tolerance=_tolerance(down_rules),
        ).recommendation
        assert recommendation is not None
        forecasts.append(
            Forecast(
                metric.name,
                metric.value,
                value,
                float(settings.horizon_seconds),
                method,
                recommendation,
            )
        )
    return tuple(kept), tuple(forecasts)


def forecast_step(forecast: Forecast, before: int) -> Step:
    """The ``forecast`` step: the recommendation raised from ``before`` for ``forecast``."""
    return Step(
        "forecast",
        before,
        forecast.recommendation,
        f"forecast of {forecast.name} in {_num(forecast.horizon_seconds)}s: "
        f"{_num(round(forecast.value, 3))} (now {_num(round(forecast.current, 3))}, "
        f"{forecast.method}) → {forecast.recommendation} replicas",
    )


Decide = Callable[[HorizontalAutoscalerSpec, int, Sequence[MetricInput], History, float], Decision]

_FORECAST_SUFFIX = " (forecast)"


def decide_proportional(
    spec: HorizontalAutoscalerSpec,
    current_replicas: int,
    metrics: Sequence[MetricInput],
    history: History,
    now: float,
) -> Decision:
    """The proportional algorithm with predictive scaling.

    Each forecast joins the metrics as one more metric of the same target, so the HPA rules
    (tolerance, the highest wins, partial failures, stabilization, policies, min/max) treat it
    exactly like a present value; it can therefore only raise the recommendation. When it does,
    the decision shows the present metrics' step, then a ``forecast`` step.
    """
    models, forecasts = forecast_metrics(spec, current_replicas, metrics, history.forecasts, now)
    plain = proportional.decide(spec, current_replicas, metrics, history, now)
    data = max(
        (m.recommendation for m in plain.metrics if m.recommendation is not None), default=None
    )
    best = max(forecasts, key=lambda f: f.recommendation, default=None)
    if data is None or best is None or best.recommendation <= data:
        return replace(
            plain,
            history=replace(plain.history, forecasts=models),
            forecasts=forecasts,
        )
    targets = {m.name: m.target for m in metrics}
    extra = [MetricInput(f.name + _FORECAST_SUFFIX, targets[f.name], f.value) for f in forecasts]
    raised = proportional.decide(spec, current_replicas, [*metrics, *extra], history, now)
    steps = (plain.steps[0], forecast_step(best, data), *raised.steps[1:])
    return Decision(
        current_replicas=raised.current_replicas,
        desired_replicas=raised.desired_replicas,
        metrics=raised.metrics[: len(metrics)],
        steps=steps,
        conditions=raised.conditions,
        history=replace(raised.history, forecasts=models),
        forecasts=forecasts,
    )


# ------------------------------------------------------------------------- status


def models_to_status(
    models: Sequence[ForecastModel], forecasts: Sequence[Forecast] = ()
) -> list[ForecastStatus]:
    """``status.forecasts``: each model, with the latest forecast of its metric when known."""
    latest = {f.name: f for f in forecasts}
    result = []
    for model in models:
        forecast = latest.get(model.name)
        result.append(
            ForecastStatus(
                name=model.name,
                current=forecast.current if forecast else None,
                value=forecast.value if forecast else None,
                horizon_seconds=forecast.horizon_seconds if forecast else None,
                method=forecast.method if forecast else None,
                recommendation=forecast.recommendation if forecast else None,
                model=ForecastModelStatus(
                    time=to_datetime(model.time),
                    horizon_seconds=model.horizon_seconds,
                    last_value=model.last_value,
                    level=model.level,
                    trend=model.trend,
                    seasons=[
                        SeasonStatus(
                            period_seconds=s.period_seconds,
                            bin_seconds=s.bin_seconds,
                            start=to_datetime(s.start),
                            means=list(s.means),
                            weights=list(s.weights),
                        )
                        for s in model.seasons
                    ],
                    pending=[
                        PendingForecastStatus(time=to_datetime(p.time), values=dict(p.values))
                        for p in model.pending
                    ],
                    scores=[
                        MethodScoreStatus(method=s.method, error=s.error, weight=s.weight)
                        for s in model.scores
                    ],
                ),
            )
        )
    return result


def models_from_status(statuses: Sequence[ForecastStatus]) -> tuple[ForecastModel, ...]:
    """The models back from ``status.forecasts``."""
    models = []
    for status in statuses:
        m = status.model
        models.append(
            ForecastModel(
                name=status.name,
                time=to_timestamp(m.time),
                horizon_seconds=m.horizon_seconds,
                last_value=m.last_value,
                level=m.level,
                trend=m.trend,
                seasons=tuple(
                    SeasonProfile(
                        s.period_seconds,
                        s.bin_seconds,
                        to_timestamp(s.start),
                        tuple(s.means),
                        tuple(s.weights),
                    )
                    for s in m.seasons
                ),
                pending=tuple(
                    PendingForecast(to_timestamp(p.time), tuple(p.values.items()))
                    for p in m.pending
                ),
                scores=tuple(MethodScore(s.method, s.error, s.weight) for s in m.scores),
            )
        )
    return tuple(models)


# ------------------------------------------------------------------------- measurement


@dataclass(frozen=True, slots=True)
class Backtest:
    """Mean absolute error at the horizon of each method over a series (and of the choice)."""

    errors: dict[str, float]
    #: How many forecasts were scored.
    count: int


def backtest(
    samples: Sequence[tuple[float, float]],
    settings: PredictiveScaling,
    *,
    skip_seconds: float = 0.0,
) -> Backtest:
    """Replay ``samples`` ((time, value), in time order) through :func:`observe` and measure
    every method's forecast against the sample at ``time + horizon`` (linearly interpolated).

    ``errors`` has one entry per method that forecast at every scored moment, plus ``Chosen``:
    what :func:`predict` with ``settings.method`` would have used. Forecasts made in the first
    ``skip_seconds`` are not scored (a warm-up).
    """
    times = [t for t, _ in samples]
    horizon = float(settings.horizon_seconds)
    totals: dict[str, float] = {}
    counts: dict[str, int] = {}
    scored = 0
    model: ForecastModel | None = None
    start = times[0] if times else 0.0
    for moment, value in samples:
        model = observe(model, "series", value, moment, settings)
        target = moment + horizon
        if moment - start < skip_seconds or target > times[-1]:
            continue
        index = bisect.bisect_left(times, target)
        t1, v1 = samples[index]
        if t1 == target or index == 0:
            actual = v1
        else:
            t0, v0 = samples[index - 1]
            actual = v0 + (v1 - v0) * (target - t0) / (t1 - t0)
        forecasts = _methods(model, moment, horizon)
        forecasts["Chosen"] = predict(model, settings, moment)[1]
        scored += 1
        for method, forecast in forecasts.items():
            totals[method] = totals.get(method, 0.0) + abs(forecast - actual)
            counts[method] = counts.get(method, 0) + 1
    errors = {m: totals[m] / counts[m] for m in totals if counts[m] == scored}
    return Backtest(errors, scored)
