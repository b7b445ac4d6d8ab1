"""A re-entrant lock whose owner can let waiting threads in between the steps of a long task.

The control loop holds its lock for a whole pass so that readers (the HTTP API, the history
sampler, the metrics collector) see every object as the loop left it. A pass over 10,000
autoscalers takes most of a second; a plain lock would make every request that arrives meanwhile
wait for the rest of the pass. The loop calls :meth:`YieldingLock.let_waiters_in` between steps
(one evaluation, one completed backend call): when another thread waits, the loop releases the
lock, lets the waiting threads take their turn, and takes it back. Nobody waiting costs one
attribute read; the loop then runs exactly as with a plain lock.
"""

from __future__ import annotations

import threading
import time
from types import TracebackType

#: How long the owner waits for a waiting thread to take the lock before taking it back.
PATIENCE_SECONDS = 0.005
#: How long the owner sleeps between two looks at whether the waiters have had their turn.
_POLL_SECONDS = 0.0001


class YieldingLock:
    """A re-entrant lock (``threading.RLock``) with :meth:`let_waiters_in`. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._count = threading.Lock()
        self._waiting = 0

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

    def let_waiters_in(self, patience: float = PATIENCE_SECONDS) -> bool:
        """Called by the owner between two steps: when other threads wait, release the lock
        (however deeply it is held), wait until they have taken it or ``patience`` is up, and
        take it back, blocking until they are done. Return whether the lock was released (the
        state it guards may have changed meanwhile)."""
        if not self._waiting or not self._lock._is_owned():  # type: ignore[attr-defined]
            return False
        state = self._lock._release_save()  # type: ignore[attr-defined]
        try:
            deadline = time.monotonic() + patience
            while self._waiting and time.monotonic() < deadline:
                time.sleep(_POLL_SECONDS)  # the waiters need the GIL to take the lock
        finally:
            self._lock._acquire_restore(state)  # type: ignore[attr-defined]
        return True
