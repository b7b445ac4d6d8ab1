"""The loop's lock: re-entrant, and its owner can let waiting threads in between steps."""

from __future__ import annotations

import threading
import time

from autoscaler import locks
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


def test_the_owner_steps_aside_until_foreground_work_is_done() -> None:
    lock = YieldingLock()
    done: list[float] = []

    def request() -> None:
        with lock.foreground():
            time.sleep(0.03)
            with lock:  # a request that reads under the lock gets it while the owner waits
                done.append(time.monotonic())

    with lock:
        thread = threading.Thread(target=request)
        thread.start()
        deadline = time.monotonic() + 5
        while not lock.in_foreground and time.monotonic() < deadline:
            time.sleep(0.001)
        assert lock.let_waiters_in() is True
        assert done  # the owner came back only after the request was answered
        assert lock.in_foreground == 0
    thread.join(5)


def test_with_no_foreground_work_the_owner_keeps_the_lock() -> None:
    lock = YieldingLock()
    with lock.foreground():
        pass
    with lock:
        assert lock.in_foreground == 0
        assert lock.let_waiters_in() is False


def test_endless_foreground_work_cannot_stop_the_owner() -> None:
    """A token bucket: the owner waits for foreground work at most FOREGROUND_SHARE of the
    time, plus one burst, and at most FOREGROUND_PATIENCE_SECONDS at one step."""
    lock = YieldingLock()
    waited = longest = 0.0
    with lock.foreground(), lock:  # foreground work that never ends
        started = time.monotonic()
        while time.monotonic() - started < 1.0:
            step = time.monotonic()
            lock.let_waiters_in()
            waited += time.monotonic() - step
            longest = max(longest, time.monotonic() - step)
            time.sleep(0.002)  # the owner's own work
        elapsed = time.monotonic() - started
    assert waited > 0.1  # it did step aside
    assert longest < locks.FOREGROUND_PATIENCE_SECONDS + 0.05
    assert waited <= locks.FOREGROUND_SHARE * elapsed + locks.FOREGROUND_BURST_SECONDS + 0.05


def test_background_threads_wait_for_foreground_work_at_most_their_timeout() -> None:
    lock = YieldingLock()
    started = time.monotonic()
    lock.wait_for_foreground(5)  # nothing in the foreground: no wait
    assert time.monotonic() - started < 1
    with lock.foreground():
        started = time.monotonic()
        lock.wait_for_foreground(0.05)
        assert 0.04 <= time.monotonic() - started < 2
    ended = threading.Event()

    def background() -> None:
        lock.wait_for_foreground(5)
        ended.set()

    lock.enter_foreground()
    thread = threading.Thread(target=background)
    thread.start()
    assert not ended.wait(0.05)
    lock.leave_foreground()
    assert ended.wait(5)
    thread.join(5)
