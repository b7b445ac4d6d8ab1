"""The loop's lock: re-entrant, and its owner can let waiting threads in between steps."""

from __future__ import annotations

import threading
import time

from autoscaler.locks import YieldingLock


def _waiter(lock: YieldingLock, got: list[float]) -> threading.Thread:
    def run() -> None:
        with lock:
            got.append(time.monotonic())

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 5
    while lock.waiting == 0 and time.monotonic() < deadline:
        time.sleep(0.001)
    return thread


def test_with_nobody_waiting_letting_waiters_in_keeps_the_lock() -> None:
    lock = YieldingLock()
    with lock:
        assert lock.let_waiters_in() is False
        assert lock.waiting == 0


def test_a_waiting_thread_gets_the_lock_between_two_steps_of_a_long_task() -> None:
    lock = YieldingLock()
    got: list[float] = []
    with lock, lock:  # held twice (re-entrant): it is released all the way, then restored
        thread = _waiter(lock, got)
        assert lock.waiting == 1 and not got
        assert lock.let_waiters_in() is True
        assert got  # the waiter ran while the owner stepped aside
        assert lock.waiting == 0
    thread.join(5)
    assert not thread.is_alive()


def test_only_the_owner_lets_waiters_in() -> None:
    lock = YieldingLock()
    got: list[float] = []
    with lock:
        thread = _waiter(lock, got)
        outcome: list[bool] = []
        other = threading.Thread(target=lambda: outcome.append(lock.let_waiters_in()))
        other.start()
        other.join(5)
        assert outcome == [False]
        assert not got
    thread.join(5)
    assert got


def test_acquire_without_blocking_or_with_a_timeout_gives_up() -> None:
    lock = YieldingLock()
    with lock:
        results: list[bool] = []
        thread = threading.Thread(
            target=lambda: results.extend([lock.acquire(False), lock.acquire(timeout=0.01)])
        )
        thread.start()
        thread.join(5)
    assert results == [False, False]
    assert lock.waiting == 0
