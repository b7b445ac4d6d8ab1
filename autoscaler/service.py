"""Standalone service wiring: spec files → control loop → HTTP API, with hot reload."""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Sequence
from pathlib import Path

from autoscaler import tuning
from autoscaler.api import BackendContext, Clock
from autoscaler.auth import Authenticator, authenticator_for
from autoscaler.clock import system_clock
from autoscaler.config import LoadResult, SpecIssue, load_paths
from autoscaler.decisions import DecisionLog
from autoscaler.loop import ControlLoop, ThreadRunner
from autoscaler.metrics import Metrics
from autoscaler.settings import Settings
from autoscaler.state import StateStore

log = logging.getLogger("autoscaler.service")


def _fingerprint(paths: Sequence[Path]) -> str:
    """Names, sizes and modification times of every spec file (cheap change detection)."""
    digest = hashlib.sha256()
    for root in paths:
        files = sorted(root.rglob("*.y*ml")) if root.is_dir() else [root]
        for file in files:
            try:
                stat = file.stat()
            except OSError:
                digest.update(f"{file}:missing".encode())
                continue
            digest.update(f"{file}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()


class Service:
    """The standalone service: owns the loop, the spec watcher and the metrics."""

    def __init__(
        self, settings: Settings, config_paths: Sequence[str | Path], clock: Clock = system_clock
    ) -> None:
        self.settings = settings
        self.paths = [Path(p) for p in config_paths]
        self.clock = clock
        self.loop = ControlLoop(
            clock,
            settings.loop,
            runner=ThreadRunner(settings.loop.workers),
            decisions=DecisionLog(settings.decisions.max_records),
            context=BackendContext(clock=clock, settings=settings),
        )
        self.metrics = Metrics(self.loop)
        self.loop.observer = self.metrics
        #: Checks the HTTP API's bearer tokens (the token file; :mod:`autoscaler.auth`).
        self.authenticator: Authenticator = authenticator_for(settings.server)
        #: The state file, when one is configured (``--state-file``).
        self.state: StateStore | None = None
        if settings.state.file:
            self.state = StateStore(
                settings.state.file,
                clock,
                min_interval_seconds=settings.state.min_interval_seconds,
                max_age_seconds=settings.state.max_age_seconds,
            )
        #: Problems found in the spec files at the last (re)load; empty when they are valid.
        self.issues: list[SpecIssue] = []
        self.loaded_once = False
        self._fingerprint = ""
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    # ------------------------------------------------------------------ specs

    def reload(self, force: bool = False) -> LoadResult | None:
        """Load the spec files if they changed. A bad edit is reported and the last good specs
        keep running; at start-up, the valid documents run and the invalid ones are reported."""
        fingerprint = _fingerprint(self.paths)
        if fingerprint == self._fingerprint and not force:
            return None
        self._fingerprint = fingerprint
        result = load_paths(self.paths)
        self.issues = list(result.issues)
        for issue in result.issues:
            log.error("invalid spec: %s", issue)
        if result.ok or not self.loaded_once:
            self.loop.apply(result.specs)
            tuning.after_load()  # the specs and runtime state live long: stop scanning them
            self.loop.after_next_pass(tuning.after_first_pass)  # and the state it builds
            specs = result.specs
            log.info(
                "specs %s: %d node groups, %d producers, %d autoscalers",
                "reloaded" if self.loaded_once else "loaded",
                len(specs.node_groups),
                len(specs.producers),
                len(specs.autoscalers),
            )
            self.loaded_once = True
        else:
            log.error(
                "spec files have %d problems; the last good specs keep running", len(result.issues)
            )
        return result

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Restore the state file, load the specs, and start the loop, the spec watcher and the
        state writer on background threads."""
        if self.state is not None:
            self.loop.restore(self.state.load())
        self.reload(force=True)
        self._spawn("control-loop", lambda: self.loop.run_forever(self._stop))
        self._spawn("spec-watcher", self._watch)
        if self.state is not None:
            self._spawn("state-writer", self._persist)

    def _spawn(self, name: str, target: object) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)  # type: ignore[arg-type]
        thread.start()
        self._threads.append(thread)

    def _watch(self) -> None:
        while not self._stop.wait(self.settings.reload.interval_seconds):
            try:
                self.reload()
            except Exception:  # never let the watcher die on an unexpected error
                log.exception("reloading the spec files failed")

    def _persist(self) -> None:
        """Write the state file after changes, at most once per ``min_interval_seconds``."""
        assert self.state is not None
        tick = self.settings.state.min_interval_seconds / 4
        while not self._stop.wait(tick):
            try:
                self.state.maybe_save(self.loop)
            except Exception:  # never let the writer die on an unexpected error
                log.exception("writing the state file failed")

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the loop and the watcher, and write the state file a last time; backend calls
        in flight are abandoned."""
        self._stop.set()
        self.loop.wake()
        for thread in self._threads:
            thread.join(timeout)
        self.loop.runner.shutdown()
        if self.state is not None and self.loaded_once:
            self.state.save(self.loop)

    @property
    def ready(self) -> bool:
        return self.loaded_once and self.loop.passes > 0

    @property
    def alive(self) -> bool:
        return all(t.is_alive() for t in self._threads) and not self._stop.is_set()
