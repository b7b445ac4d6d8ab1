"""The state file: what a standalone service must remember across a restart.

In the cluster the autoscalers' status carries their history; a standalone service has no API
server, so it keeps the same history in one JSON file (``--state-file PATH``,
``AUTOSCALER_STATE__FILE``). Without it, a restart forgets the stabilization windows and the
rate-limit periods: a service killed a minute after a burst would scale down at once.

What is saved, for every object the loop runs:

* each **HorizontalAutoscaler**'s algorithm history, in the form of its status: the
  stabilization records (``recommendations``), the scale events the rate policies count
  (``scaleEvents``), ``lastScaleTime``, and what :func:`~autoscaler.algorithms.history_status`
  adds (PID state, forecast models);
* each **ScalableNodeGroup**'s desired count, with the ``spec.replicas`` it was derived from.

The file::

    {"version": 1, "savedAt": "2026-01-01T00:00:00+00:00",
     "autoscalers": {"default/workers": {"recommendations": [...], "scaleEvents": [...], ...}},
     "nodeGroups": {"default/workers": {"desiredReplicas": 6, "specReplicas": 1}}}

**Writing** (:meth:`StateStore.maybe_save`) happens after a pass that changed something, at most
once per ``min_interval_seconds``, and on shutdown (:meth:`StateStore.save`). The file is replaced
atomically: the JSON goes to a temporary file in the same folder, which is flushed to disk
(``fsync``) and renamed over the old one, so a crash (even SIGKILL) leaves the old file or the
new one, never half of one. A failed write is logged and retried at the next change.

**Reading** (:meth:`StateStore.load`) happens once, before the first pass. A missing file is a
first start. An unreadable or corrupt file, or a bad entry in it, is logged and ignored: the
service starts without that history rather than not at all. Node-group counts older than
``max_age_seconds`` are not restored (a group left alone that long may have been resized by
someone else); algorithm history is always restored, since its records carry their own times and
fall out of their windows by themselves. A node-group count is also not restored when the spec's
``replicas`` changed since it was saved: the operator's edit wins.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from autoscaler.api import Clock
from autoscaler.api.horizontalautoscaler import HorizontalAutoscalerStatus
from autoscaler.clock import to_datetime, to_timestamp

if TYPE_CHECKING:
    from autoscaler.algorithms.types import History
    from autoscaler.loop import ControlLoop

log = logging.getLogger("autoscaler.state")

#: The format of the file; a file of another version is ignored.
VERSION = 1
#: A state file larger than this is not read (it cannot be ours).
MAX_STATE_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class SavedAutoscaler:
    """One autoscaler's history as restored from the file."""

    history: History
    last_scale_time: float | None = None


@dataclass(frozen=True)
class SavedNodeGroup:
    """One node group's desired count, and the ``spec.replicas`` it was saved with."""

    desired: int
    spec_replicas: int | None = None


@dataclass(frozen=True)
class SavedState:
    """What a state file held, keyed by ``namespace/name``."""

    saved_at: float | None = None
    autoscalers: dict[str, SavedAutoscaler] = field(default_factory=dict)
    node_groups: dict[str, SavedNodeGroup] = field(default_factory=dict)


def snapshot(loop: ControlLoop, now: float) -> dict[str, Any]:
    """The loop's state as the JSON document of the file. Call with ``loop.lock`` held."""
    autoscalers = {
        key: loop.autoscaler_history(runtime) for key, runtime in sorted(loop.autoscalers.items())
    }
    node_groups: dict[str, Any] = {}
    for key, group in sorted(loop.node_groups.items()):
        if group.desired is None:
            continue
        node_groups[key] = {
            "desiredReplicas": group.desired,
            "specReplicas": group.resource.spec.replicas,
        }
    return {
        "version": VERSION,
        "savedAt": to_datetime(now).isoformat(),
        "autoscalers": autoscalers,
        "nodeGroups": node_groups,
    }


def parse(document: Any, now: float, max_age_seconds: float) -> SavedState:
    """The restorable part of a state document; bad entries are logged and left out."""
    from autoscaler.loop import history_from_status

    if not isinstance(document, dict) or document.get("version") != VERSION:
        version = document.get("version") if isinstance(document, dict) else None
        raise ValueError(f"not a version {VERSION} state document (version {version!r})")
    saved_at: float | None = None
    with contextlib.suppress(KeyError, TypeError, ValueError):
        saved_at = to_timestamp(datetime.fromisoformat(document["savedAt"]))
    autoscalers: dict[str, SavedAutoscaler] = {}
    entries = document.get("autoscalers")
    for key, entry in (entries if isinstance(entries, dict) else {}).items():
        try:
            status = HorizontalAutoscalerStatus.model_validate(entry)
        except ValidationError as exc:
            log.warning("state file: autoscaler %s left out: %s", key, _first_error(exc))
            continue
        last = status.last_scale_time
        autoscalers[str(key)] = SavedAutoscaler(
            history_from_status(status), to_timestamp(last) if last is not None else None
        )
    node_groups: dict[str, SavedNodeGroup] = {}
    entries = document.get("nodeGroups")
    fresh = saved_at is not None and now - saved_at <= max_age_seconds
    if not fresh and entries:
        log.info(
            "state file: node-group counts are older than %.0fs (or undated); not restored",
            max_age_seconds,
        )
    for key, entry in (entries if isinstance(entries, dict) and fresh else {}).items():
        desired = entry.get("desiredReplicas") if isinstance(entry, dict) else None
        spec_replicas = entry.get("specReplicas") if isinstance(entry, dict) else None
        if not isinstance(desired, int) or not _count(desired):
            log.warning("state file: node group %s left out: not a valid count", key)
            continue
        if not (spec_replicas is None or _count(spec_replicas)):
            log.warning("state file: node group %s left out: not a valid count", key)
            continue
        node_groups[str(key)] = SavedNodeGroup(desired, spec_replicas)
    return SavedState(saved_at, autoscalers, node_groups)


def _count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"])
    return f"{where}: {error['msg']}" if where else str(error["msg"])


class StateStore:
    """Reads and writes one state file (see the module docstring)."""

    def __init__(
        self,
        path: str | Path,
        clock: Clock,
        *,
        min_interval_seconds: float = 1.0,
        max_age_seconds: float = 600.0,
    ) -> None:
        self.path = Path(path)
        self.clock = clock
        self.min_interval_seconds = min_interval_seconds
        self.max_age_seconds = max_age_seconds
        #: ``loop.state_version`` at the last successful write (None: never written).
        self.saved_version: int | None = None
        self.last_write: float | None = None
        self.writes = 0
        self._last_error: str | None = None

    # ----------------------------------------------------------------- reading

    def load(self) -> SavedState:
        """The saved state, or an empty one when there is none or it cannot be used."""
        try:
            size = self.path.stat().st_size
            if size > MAX_STATE_BYTES:
                raise ValueError(f"{size} bytes is more than a state file can be")
            text = self.path.read_text(encoding="utf-8")
            saved = parse(json.loads(text), self.clock(), self.max_age_seconds)
        except FileNotFoundError:
            log.info("state file %s does not exist yet: starting without saved state", self.path)
            return SavedState()
        except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
            log.error("state file %s cannot be used, starting without it: %s", self.path, exc)
            return SavedState()
        log.info(
            "state file %s: restoring %d autoscalers and %d node-group counts",
            self.path,
            len(saved.autoscalers),
            len(saved.node_groups),
        )
        return saved

    # ----------------------------------------------------------------- writing

    def maybe_save(self, loop: ControlLoop) -> float:
        """Write the loop's state if it changed since the last write and the last write is at
        least ``min_interval_seconds`` old. Returns when to call again at the latest."""
        now = self.clock()
        if self.saved_version == loop.state_version:
            return now + self.min_interval_seconds
        if self.last_write is not None and now - self.last_write < self.min_interval_seconds:
            return self.last_write + self.min_interval_seconds
        self.save(loop)
        return now + self.min_interval_seconds

    def save(self, loop: ControlLoop) -> bool:
        """Write the loop's state now; False (and logged) when the write failed."""
        now = self.clock()
        with loop.lock:
            version = loop.state_version
            document = snapshot(loop, now)
        try:
            self.write(document)
        except (OSError, ValueError) as exc:
            kind = f"{type(exc).__name__}: {getattr(exc, 'strerror', None) or exc}"
            if kind != self._last_error:  # log each kind of problem once
                log.error("cannot write the state file %s: %s", self.path, exc)
            self._last_error = kind
            return False
        if self._last_error is not None:
            log.info("state file %s written again", self.path)
        self._last_error = None
        self.saved_version = version
        self.last_write = now
        self.writes += 1
        return True

    def write(self, document: dict[str, Any]) -> None:
        """Replace the file atomically with ``document`` (temporary file, fsync, rename)."""
        data = json.dumps(document, separators=(",", ":"), allow_nan=False).encode()
        folder = self.path.parent
        descriptor, temporary = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=folder)
        try:
            with os.fdopen(descriptor, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
        _fsync_folder(folder)


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable (not possible on every platform; best effort)."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)
