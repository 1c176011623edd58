"""The pings waiting for their pong, shared by both APIs."""

from __future__ import annotations

import tracemalloc

import pytest

from tether import pings
from tether.exceptions import ConcurrencyError
from tether.pings import PingTracker, ping_payload


def test_ping_payload() -> None:
    assert ping_payload("héllo") == "héllo".encode()
    assert ping_payload(b"raw") == b"raw"
    assert ping_payload(bytearray(b"array")) == b"array"
    assert ping_payload(memoryview(b"view")) == b"view"
    random_payloads = {ping_payload(None) for _ in range(8)}
    assert all(len(payload) == 4 for payload in random_payloads)
    assert len(random_payloads) > 1


def test_answer_matches_payload() -> None:
    tracker: PingTracker[str] = PingTracker()
    tracker.add(b"a", "waiter a", 1.0)
    assert len(tracker) == 1
    assert b"a" in tracker
    assert b"b" not in tracker
    assert tracker.answer(b"a", 1.5) == [("waiter a", 0.5)]
    assert len(tracker) == 0


def test_answer_takes_earlier_pings_too() -> None:
    tracker: PingTracker[str] = PingTracker()
    tracker.add(b"1", "first", 1.0)
    tracker.add(b"2", "second", 2.0)
    tracker.add(b"3", "third", 3.0)
    assert tracker.answer(b"2", 4.0) == [("first", 3.0), ("second", 2.0)]
    assert b"3" in tracker
    assert len(tracker) == 1


def test_unmatched_pong_answers_nothing() -> None:
    tracker: PingTracker[str] = PingTracker()
    tracker.add(b"1", "first", 1.0)
    assert tracker.answer(b"other", 2.0) == []
    assert len(tracker) == 1


def test_duplicate_payload_refused() -> None:
    tracker: PingTracker[str] = PingTracker()
    tracker.add(b"same", "first", 1.0)
    with pytest.raises(ConcurrencyError):
        tracker.add(b"same", "second", 2.0)
    assert tracker.answer(b"same", 3.0) == [("first", 2.0)]
    tracker.add(b"same", "again", 4.0)
    assert len(tracker) == 1


def test_drain() -> None:
    tracker: PingTracker[str] = PingTracker()
    tracker.add(b"1", "first", 1.0)
    tracker.add(b"2", "second", 2.0)
    assert tracker.drain() == ["first", "second"]
    assert len(tracker) == 0
    assert tracker.drain() == []


def test_pong_and_drain_without_pings() -> None:
    tracker: PingTracker[str] = PingTracker()
    assert tracker.answer(b"unasked", 1.0) == []
    assert tracker.drain() == []
    assert len(tracker) == 0
    assert b"unasked" not in tracker


def test_trackers_with_nothing_pending_keep_nothing() -> None:
    # A connection's keepalive pings and gets its pong every 20 seconds: in
    # between, its tracker must hold no dictionary's table.
    only_here = [tracemalloc.Filter(True, pings.__file__)]
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot().filter_traces(only_here)
        trackers: list[PingTracker[str]] = [PingTracker() for _ in range(1000)]
        for tracker in trackers:
            tracker.add(b"ping", "waiter", 1.0)
            tracker.add(b"later", "waiter", 1.5)
            tracker.answer(b"later", 2.0)
        after = tracemalloc.take_snapshot().filter_traces(only_here)
    finally:
        tracemalloc.stop()
    kept = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    # A table each would be 160 KiB; what is left is bounded by the
    # interpreter's free lists (of the lists made while answering).
    assert kept < 1000 * 16
