"""The lean condition variable and flag of the threading connections."""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable

from tether.sync.waiting import Condition, Flag


def until(predicate: Callable[[], bool]) -> None:
    """Poll until ``predicate()`` is true; fail after 10 seconds."""
    deadline = time.monotonic() + 10
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.001)


def waiting(condition: Condition, count: int) -> bool:
    """Whether ``count`` threads wait on ``condition``."""
    return len(condition._waiters or ()) == count


def test_condition_wakes_its_waiters_in_order_then_all() -> None:
    lock = threading.Lock()
    condition = Condition(lock)
    woken: list[int] = []

    def wait(index: int) -> None:
        with lock:
            assert condition.wait(10)
            woken.append(index)

    threads = []
    for index in range(3):
        thread = threading.Thread(target=wait, args=(index,))
        thread.start()
        threads.append(thread)
        # The next one waits only once this one does.
        until(functools.partial(waiting, condition, index + 1))
    with lock:
        condition.notify()
    threads[0].join(10)
    assert woken == [0]
    with lock:
        condition.notify_all()
        condition.notify()  # Nobody waits: nothing happens.
    for thread in threads:
        thread.join(10)
    assert sorted(woken) == [0, 1, 2]


def test_condition_wait_times_out_holding_the_lock_and_leaves_no_waiter() -> None:
    lock = threading.Lock()
    condition = Condition(lock)
    with lock:
        assert not condition.wait(0.01)
        assert not condition.wait(0)
        assert lock.locked()
        assert condition._waiters == []


def test_flag_is_set_once_for_every_waiter() -> None:
    flag = Flag()
    assert not flag.is_set()
    assert not flag.wait(0.01)
    assert not flag.wait(0)
    results: list[bool] = []
    threads = [threading.Thread(target=lambda: results.append(flag.wait())) for _ in range(3)]
    threads.append(threading.Thread(target=lambda: results.append(flag.wait(10))))
    for thread in threads:
        thread.start()
    until(lambda: len(flag._waiters or ()) == 4)
    flag.set()
    for thread in threads:
        thread.join(10)
    assert results == [True] * 4
    assert flag.is_set()
    assert flag.wait(0)
