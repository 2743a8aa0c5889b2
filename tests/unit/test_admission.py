"""The adaptive limit on work in progress (bento/admission.py), on a clock the test turns."""

from __future__ import annotations

from bento.admission import DECREASE, AdaptiveLimit, work

TARGET_S = 0.1


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _limit(initial: float = 16.0) -> tuple[AdaptiveLimit, Clock]:
    clock = Clock()
    return AdaptiveLimit(TARGET_S, initial=initial, floor=4.0, ceiling=64.0, clock=clock), clock


def _window(limit: AdaptiveLimit, clock: Clock, latencies: list[float], units: int = 1) -> None:
    """One window: admit a request per latency, answer them, close the window."""
    for _ in latencies:
        assert limit.admit(units)
    *first, last = latencies
    for latency in first:
        limit.release(units, latency)
    clock.now += TARGET_S  # the last answer closes the window
    limit.release(units, last)


def test_work_beyond_the_limit_is_refused_and_released_work_comes_back() -> None:
    limit, _ = _limit()
    assert all(limit.admit(1) for _ in range(16))
    assert not limit.admit(1)
    limit.release(1, TARGET_S)
    assert limit.admit(1)
    assert not limit.admit(1)


def test_an_idle_worker_admits_a_batch_larger_than_the_limit() -> None:
    limit, _ = _limit()
    assert limit.admit(256)
    assert not limit.admit(1), "the big batch fills the worker"
    limit.release(256, 0.01)
    assert limit.in_progress == 0


def test_a_window_of_slow_answers_shrinks_the_limit_once_down_to_the_floor() -> None:
    limit, clock = _limit(initial=32.0)
    _window(limit, clock, [TARGET_S * 3] * 8)
    assert limit.limit == 32.0 * DECREASE, "one slow window is one step down"
    for _ in range(30):
        _window(limit, clock, [TARGET_S * 3] * 4)
    assert limit.limit == 4.0


def test_a_few_slow_answers_among_fast_ones_do_not_shrink_it() -> None:
    limit, clock = _limit()
    _window(limit, clock, [TARGET_S * 0.6] * 9 + [TARGET_S * 5] * 3)
    assert limit.limit == 17.0, "the median answer was within the target: +1"


def test_slow_answers_shrink_it_even_if_the_last_of_a_batch_were_quick() -> None:
    # A batcher takes every waiting request into the next batch: the last to arrive
    # are answered quickly however long the others waited.
    limit, clock = _limit()
    _window(limit, clock, [TARGET_S * 3] * 8 + [TARGET_S * 0.2] * 4)
    assert limit.limit == 16.0 * DECREASE


def test_fast_answers_open_a_used_limit_quickly_up_to_the_ceiling() -> None:
    limit, clock = _limit(initial=4.0)
    for _ in range(6):
        _window(limit, clock, [TARGET_S / 4] * int(limit.limit))
    assert limit.limit == 64.0


def test_recovery_after_overload_takes_a_few_windows() -> None:
    limit, clock = _limit(initial=64.0)
    for _ in range(20):
        _window(limit, clock, [TARGET_S * 4] * 4)
    assert limit.limit == 4.0
    windows = 0
    while limit.limit < 16.0:  # the load of 16 clients after the overload
        _window(limit, clock, [TARGET_S / 4] * int(limit.limit))
        windows += 1
    assert windows == 2


def test_a_quiet_worker_does_not_grow_its_limit() -> None:
    limit, clock = _limit()
    for _ in range(20):
        _window(limit, clock, [TARGET_S / 4] * 2)
    assert limit.limit == 16.0


def test_a_request_whose_body_held_more_work_than_guessed_holds_it() -> None:
    limit, _ = _limit()
    assert limit.admit(1)
    limit.resize(1, 16)
    assert not limit.admit(1)
    limit.release(16, 0.01)
    assert limit.in_progress == 0


def test_a_request_costs_one_unit_plus_one_per_32_rows() -> None:
    assert [work(rows) for rows in (1, 31, 32, 100, 256)] == [1, 1, 2, 4, 9]
