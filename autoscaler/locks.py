"""A re-entrant lock whose owner can let waiting threads in between the steps of a long task.

The control loop holds its lock for a whole pass so that readers (the HTTP API, the history
sampler, the metrics collector) see every object as the loop left it. A pass over 10,000
autoscalers takes most of a second; a plain lock would make every request that arrives meanwhile
wait for the rest of the pass. The loop calls :meth:`YieldingLock.let_waiters_in` between steps
(one evaluation, one completed backend call): when another thread waits, the loop releases the
lock, lets the waiting threads take their turn, and takes it back. Nobody waiting costs one
attribute read; the loop then runs exactly as with a plain lock.

**Foreground work first.** Readers compete with the loop for more than the lock: Python runs one
thread at a time (the GIL), and a request served while the loop computes gets about half of the
processor, so it takes twice as long, and a request that arrives while the loop runs first waits
for the loop to hand over the interpreter. The HTTP server marks each request as *foreground*
while it is served (:meth:`YieldingLock.foreground`); at its next step the loop then steps aside
until no request is in flight, as it does for a thread waiting for the lock: a request does not
wait for a pass that is under way, and the loop computes between requests. So that a stream of
requests cannot stop the loop, it waits for foreground work for at most
:data:`FOREGROUND_SHARE` of the time (a token bucket: credit accrues at that rate up to
:data:`FOREGROUND_BURST_SECONDS`, and each wait spends what it waited), at most
:data:`FOREGROUND_PATIENCE_SECONDS` at one step. Background threads that are not the owner (the
history sampler) call :meth:`YieldingLock.wait_for_foreground` between their chunks.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from types import TracebackType

#: How long the owner waits for a waiting thread to take the lock before taking it back.
PATIENCE_SECONDS = 0.005
#: How long the owner sleeps between two looks at whether the waiters have had their turn.
_POLL_SECONDS = 0.0001
#: The largest share of the time the owner spends waiting for foreground work to finish.
FOREGROUND_SHARE = 0.75
#: The most waiting for foreground work the owner can do at once after running undisturbed.
FOREGROUND_BURST_SECONDS = 0.1
#: The longest the owner waits for foreground work at one step.
FOREGROUND_PATIENCE_SECONDS = 0.05


class _Foreground:
    """Marks one piece of foreground work while entered (:meth:`YieldingLock.foreground`)."""

    __slots__ = ("_lock",)

    def __init__(self, lock: YieldingLock) -> None:
        self._lock = lock

    def __enter__(self) -> None:
        self._lock.enter_foreground()

    def __exit__(self, *_: object) -> None:
        self._lock.leave_foreground()


class YieldingLock:
    """A re-entrant lock (``threading.RLock``) with :meth:`let_waiters_in`. Thread-safe."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._lock = threading.RLock()
        self._count = threading.Lock()
        self._waiting = 0
        self._clock = clock
        self._foreground = 0
        self._idle = threading.Event()
        self._idle.set()
        self._credit = FOREGROUND_BURST_SECONDS
        self._credit_time = clock()

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        if self._lock.acquire(blocking=False):
            return True
        if not blocking:
            return False
        with self._count:
            self._waiting += 1
        try:
            return self._lock.acquire(True, timeout)
        finally:
            with self._count:
                self._waiting -= 1

    def release(self) -> None:
        self._lock.release()

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()

    @property
    def waiting(self) -> int:
        """Threads blocked in :meth:`acquire` right now."""
        return self._waiting

    @property
    def in_foreground(self) -> int:
        """Pieces of foreground work in progress right now."""
        return self._foreground

    def foreground(self) -> _Foreground:
        """``with lock.foreground():`` marks work that the owner should not compete with (an
        HTTP request): at its next step the owner waits until no such work is in progress."""
        return _Foreground(self)

    def enter_foreground(self) -> None:
        with self._count:
            self._foreground += 1
            self._idle.clear()

    def leave_foreground(self) -> None:
        with self._count:
            self._foreground -= 1
            if self._foreground <= 0:
                self._foreground = 0
                self._idle.set()

    def wait_for_foreground(self, timeout: float) -> None:
        """For background threads between two chunks of work: wait until no foreground work is
        in progress, at most ``timeout`` seconds. Call without holding the lock."""
        if self._foreground:
            self._idle.wait(timeout)

    def _foreground_allowance(self) -> float:
        """Seconds the owner may wait for foreground work now (the token bucket)."""
        now = self._clock()
        self._credit = min(
            FOREGROUND_BURST_SECONDS, self._credit + (now - self._credit_time) * FOREGROUND_SHARE
        )
        self._credit_time = now
        return min(self._credit, FOREGROUND_PATIENCE_SECONDS)

    def let_waiters_in(self, patience: float = PATIENCE_SECONDS) -> bool:
        """Called by the owner between two steps: when other threads wait for the lock or
        foreground work is in progress, release the lock (however deeply it is held), wait
        until the waiters have taken it or ``patience`` is up and until the foreground work is
        done (within its allowance), and take it back, blocking until the waiters are done.
        Return whether the lock was released (the state it guards may have changed
        meanwhile)."""
        if not (self._waiting or self._foreground):
            return False
        if not self._lock._is_owned():  # type: ignore[attr-defined]
            return False
        allowance = self._foreground_allowance() if self._foreground else 0.0
        if not self._waiting and allowance <= 0.0:
            return False
        state = self._lock._release_save()  # type: ignore[attr-defined]
        try:
            if allowance > 0.0:
                started = self._clock()
                self._idle.wait(allowance)
                self._credit -= self._clock() - started
            deadline = time.monotonic() + patience
            while self._waiting and time.monotonic() < deadline:
                time.sleep(_POLL_SECONDS)  # the waiters need the GIL to take the lock
        finally:
            self._lock._acquire_restore(state)  # type: ignore[attr-defined]
        return True
