"""Schedule producer: a replica count that follows cron windows in an IANA time zone.

The spec (``MetricsProducerSpec.schedule``) lists *behaviors*, each a window ``{start, end,
replicas}`` whose edges are 5-field cron expressions, plus ``defaultReplicas`` for when no window
is open. The producer emits one signal, ``replicas``, whose value is the scheduled count now.

Rules (KEDA ``cron`` scaler, Karpenter scheduled capacity):

* **Window.** A behavior is active at ``t`` when its start fired more recently than its end.
  "Fired" means at or before ``t``: a window opening at 09:00 is active at exactly 09:00, and one
  closing at 17:00 is inactive at exactly 17:00. When the start and the end fire at the same
  instant the window is inactive (the end wins). Fire times are computed in the schedule's time
  zone with aware datetimes, so ``0 9 * * *`` in ``Europe/Berlin`` is 08:00 UTC in winter and
  07:00 UTC in summer. A local time skipped by a spring-forward transition fires at the first
  existing minute after it; a local time repeated by a fall-back transition fires at both
  occurrences.
* **Overlap.** When several windows are active, the one whose start fired most recently wins, so
  a narrower window nested inside a wider one overrides it (up or down). On a tie the larger
  ``replicas`` wins. No active window gives ``defaultReplicas``.
* **Forecast.** ``nextValue`` / ``nextValueTime`` name the first future instant at which the value
  differs from the current one. The producer walks the upcoming start and end fire times of all
  behaviors in order, for at most :data:`LOOKAHEAD_SECONDS` and :data:`MAX_FIRE_TIMES` fire
  times; both are ``None`` when no change is found within that look-ahead.

The value is constant between two fire times, so the producer remembers the current value and the
time of the next change and only evaluates cron expressions again once ``now`` reaches that time
or moves backwards (and at least daily when no change lies ahead, so the look-ahead moves on).
Repeated observations in between cost no cron arithmetic.
"""

from __future__ import annotations

import heapq
import math
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadDateError, croniter

from autoscaler.api import BackendContext, MetricsProducer, Observation, Signal
from autoscaler.errors import PermanentError

#: The signal this producer emits.
SIGNAL_NAME = "replicas"
#: How far ahead ``nextValue`` is searched.
LOOKAHEAD_SECONDS = 366 * 86400.0
#: How many upcoming start/end fire times ``nextValue`` examines at most.
MAX_FIRE_TIMES = 500
#: When no change is found, look again after this long so the look-ahead keeps moving.
_REFRESH_SECONDS = 86400.0
#: Any fixed aware datetime: croniter needs one at construction to learn the time zone.
_ANCHOR = datetime(2000, 1, 1, tzinfo=UTC)
_CRON_ERRORS = (ValueError, TypeError, OverflowError, KeyError)


class _Cron:
    """One cron expression evaluated in one time zone, on epoch seconds."""

    def __init__(self, expression: str, zone: tzinfo, path: str) -> None:
        self.expression = expression
        self.path = path
        self._zone = zone
        try:
            self._iter = croniter(expression, _ANCHOR.astimezone(zone))
        except _CRON_ERRORS as exc:
            raise PermanentError(
                f"{path}: cannot use cron expression {expression!r}: {exc}"
            ) from exc

    def _fail(self, exc: Exception) -> PermanentError:
        if isinstance(exc, CroniterBadDateError):
            return PermanentError(f"{self.path}: cron expression {self.expression!r} never fires")
        return PermanentError(
            f"{self.path}: cannot evaluate cron expression {self.expression!r}: {exc}"
        )

    def last_at_or_before(self, t: float) -> float:
        """The latest fire time ``<= t`` (cron fires on whole minutes, so ``< floor(t) + 1``)."""
        start = datetime.fromtimestamp(math.floor(t) + 1, tz=self._zone)
        try:
            fired: float = self._iter.get_prev(float, start_time=start)
        except _CRON_ERRORS as exc:
            raise self._fail(exc) from exc
        return fired

    def first_after(self, t: float) -> float:
        """The earliest fire time ``> t``; :meth:`following` continues from it."""
        try:
            fires: float = self._iter.get_next(
                float, start_time=datetime.fromtimestamp(t, self._zone)
            )
        except _CRON_ERRORS as exc:
            raise self._fail(exc) from exc
        return fires

    def following(self, t: float) -> float:
        """The fire time after ``t``, where ``t`` is the fire time returned last."""
        try:
            fires: float = self._iter.get_next(float)
            while fires <= t:  # defensive: fire times must strictly increase
                fires = self._iter.get_next(float)
        except _CRON_ERRORS as exc:
            raise self._fail(exc) from exc
        return fires


@dataclass(frozen=True, slots=True)
class _Window:
    start: _Cron
    end: _Cron
    replicas: int


@dataclass(frozen=True, slots=True)
class _Forecast:
    """The value on ``[valid_from, valid_until)`` and the first change after it, if any."""

    valid_from: float
    valid_until: float
    current: int
    next_value: int | None
    next_time: float | None
    next_time_iso: str | None


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class ScheduleProducer:
    """Emits ``replicas``: the count the schedule asks for at ``now``."""

    #: Observations never wait on I/O: the loop makes them on its own thread (``api.InMemory``).
    in_memory = True

    def __init__(self, timezone: str, default_replicas: int, windows: list[_Window]) -> None:
        self.timezone = timezone
        self.default_replicas = default_replicas
        self._windows = windows
        self._forecast: _Forecast | None = None
        self._lock = threading.Lock()

    def observe(self, now: float) -> Observation:
        """The scheduled replica count at ``now``, and when it changes next."""
        with self._lock:
            forecast = self._forecast
            if forecast is None or not forecast.valid_from <= now < forecast.valid_until:
                forecast = self._forecast = self._compute(now)
        return Observation(
            signals=(Signal(name=SIGNAL_NAME, value=float(forecast.current), timestamp=now),),
            status={
                "scheduledCapacity": {
                    "currentValue": forecast.current,
                    "nextValue": forecast.next_value,
                    "nextValueTime": forecast.next_time_iso,
                }
            },
        )

    def _value(self, last_start: list[float], last_end: list[float]) -> int:
        """Apply the window and overlap rules to the latest start and end fire times."""
        best: tuple[float, int] | None = None
        for window, started, ended in zip(self._windows, last_start, last_end, strict=True):
            if started <= ended:
                continue  # closed, or opened and closed at the same instant
            candidate = (started, window.replicas)  # latest start wins, then larger replicas
            if best is None or candidate > best:
                best = candidate
        return self.default_replicas if best is None else best[1]

    def _compute(self, now: float) -> _Forecast:
        last_start = [window.start.last_at_or_before(now) for window in self._windows]
        last_end = [window.end.last_at_or_before(now) for window in self._windows]
        current = self._value(last_start, last_end)
        horizon = now + LOOKAHEAD_SECONDS
        refresh = now + _REFRESH_SECONDS

        # Upcoming fire times of every start (kind 0) and end (kind 1), merged in time order.
        upcoming: list[tuple[float, int, int]] = []
        for index, window in enumerate(self._windows):
            for kind, cron in ((0, window.start), (1, window.end)):
                fires = cron.first_after(now)
                if fires <= horizon:
                    upcoming.append((fires, index, kind))
        heapq.heapify(upcoming)

        examined = 0
        while upcoming and examined < MAX_FIRE_TIMES:
            instant = upcoming[0][0]
            while upcoming and upcoming[0][0] == instant:
                _, index, kind = heapq.heappop(upcoming)
                examined += 1
                window = self._windows[index]
                cron = window.start if kind == 0 else window.end
                (last_start if kind == 0 else last_end)[index] = instant
                fires = cron.following(instant)
                if fires <= horizon:
                    heapq.heappush(upcoming, (fires, index, kind))
            value = self._value(last_start, last_end)
            if value != current:
                return _Forecast(now, instant, current, value, instant, _iso(instant))

        # No change in the look-ahead: the value holds at least until the next unexamined fire.
        until = upcoming[0][0] if upcoming else horizon
        return _Forecast(now, min(until, refresh), current, None, None, None)


def create(resource: MetricsProducer, context: BackendContext) -> ScheduleProducer:
    """Build the producer for a MetricsProducer whose source is ``schedule``."""
    del context  # time comes from observe's ``now``
    spec = resource.spec.schedule
    if spec is None:
        raise PermanentError("spec.schedule is not set: this producer needs a schedule source")
    try:
        zone = ZoneInfo(spec.timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise PermanentError(
            f"spec.schedule.timezone: {spec.timezone!r} is not an IANA time zone"
        ) from exc
    windows = [
        _Window(
            start=_Cron(behavior.start, zone, f"spec.schedule.behaviors[{index}].start"),
            end=_Cron(behavior.end, zone, f"spec.schedule.behaviors[{index}].end"),
            replicas=behavior.replicas,
        )
        for index, behavior in enumerate(spec.behaviors)
    ]
    return ScheduleProducer(spec.timezone, spec.default_replicas, windows)
