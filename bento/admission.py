"""How much work the worker takes on at once: an adaptive limit on the work in progress.

A request the worker cannot answer within its latency target is better refused at once,
with ``503`` and ``Retry-After``, than queued behind BentoML's batcher until its budget
runs out and refused seconds later.  The limit is on work in progress, counted in
:func:`work` units (a request costs about as much as 32 more rows, so a 256-row batch is
9 units and one wine 1), and it follows the latency of the requests it admitted, as
TCP's congestion window follows round trips, one decision per window of the target's
length:

- the window's median answer took longer than the target: the work taken on is more
  than the worker gets through in time, so the limit shrinks by :data:`DECREASE`.  The
  median, not each answer, decides: a few slow answers from a noisy neighbour, a
  collector pause or a CPU quota's gap do not shrink it, only a worker slow for most of
  its requests does.  (Not the minimum, as CoDel takes for a queue: BentoML's batcher
  takes every waiting request into the next batch, so the last to arrive before a batch
  is always answered quickly, however long the others waited.)
- the median took under half the target and the work in progress used at least half
  the limit: it grows by the work answered in the window, at most doubling (a fresh
  worker, or one recovering from overload, opens up within a few windows);
- in between, and used: it grows by one unit;
- a window in which the work in progress stayed under half the limit leaves it as it
  is, so a quiet spell does not build a limit that the next burst would overrun.

A worker with nothing in progress always admits a request, so a batch larger than the
current limit is never starved on an idle worker.  Not thread-safe: the event loop
thread is its only user.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Final

DECREASE: Final = 0.8
# Rows that cost about what one request costs besides its rows (HTTP, parsing, the
# framework's per-request work): compare "CPU µs / answer" of the one-row and the batch
# runs in docs/benchmarks.md.
ROWS_PER_REQUEST: Final = 32


def work(rows: int) -> int:
    """The work units of a request carrying ``rows`` rows."""
    return 1 + rows // ROWS_PER_REQUEST


class AdaptiveLimit:
    """Work in progress and the latency-driven limit on it."""

    def __init__(
        self,
        target_s: float,
        *,
        initial: float = 64.0,
        floor: float = 8.0,
        ceiling: float = 1_024.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.target_s = target_s
        self.floor = floor
        self.ceiling = ceiling
        self.limit = min(max(initial, floor), ceiling)
        self.in_progress = 0
        self._clock = clock
        self._window_end = clock() + target_s
        self._latencies: list[float] = []
        self._most_used = 0
        self._answered = 0

    def admit(self, units: int) -> bool:
        """Take on ``units`` more work if the limit allows (always when nothing is in progress)."""
        if self.in_progress and self.in_progress + units > self.limit:
            return False
        self.in_progress += units
        return True

    def resize(self, admitted: int, actual: int) -> None:
        """Correct an admitted request's work once its body is read (``admitted`` was a guess)."""
        self.in_progress += actual - admitted

    def release(self, units: int, latency_s: float | None) -> None:
        """An admitted request of ``units`` work was answered after ``latency_s`` seconds
        (None: refused after admission, e.g. invalid; it says nothing about the load)."""
        self._most_used = max(self._most_used, self.in_progress)
        self.in_progress -= units
        if latency_s is None:
            return
        self._latencies.append(latency_s)
        self._answered += units
        now = self._clock()
        if now < self._window_end:
            return
        typical = statistics.median(self._latencies)
        if typical > self.target_s:
            self.limit = max(self.floor, self.limit * DECREASE)
        elif self._most_used >= self.limit / 2:
            fast = typical <= self.target_s / 2
            growth = min(float(self._answered), self.limit) if fast else 1.0
            self.limit = min(self.ceiling, self.limit + growth)
        self._window_end = now + self.target_s
        self._latencies = []
        self._most_used = 0
        self._answered = 0
