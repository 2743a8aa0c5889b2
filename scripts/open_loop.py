"""Open-loop load for scripts/bench_serving.py: requests leave at a constant rate whatever
the answers, and each latency runs from the request's *scheduled* send time, so a server
that stalls is charged for every request that waited behind the stall (no coordinated
omission). A bare HTTP/1.1 client on asyncio streams (keep-alive, a pool of at most
``connections``; waiting for a free connection counts in the latency) keeps the
generator's own cost per request small; its CPU time and lateness are reported.

``search_rate`` finds the highest rate that holds a bound: a few short probes, bisecting.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

from scripts.bench_container import percentile

GRACE_S: Final = 1.0  # how long after the last scheduled send an answer may still come


@dataclass
class OpenLoopResult:
    """One constant-rate window; counts cover the requests scheduled in the counted part."""

    rate: float
    seconds: float
    sent: int = 0
    good: int = 0
    non_2xx: int = 0
    errors: int = 0  # socket errors, malformed answers, no answer within GRACE_S
    p50_ms: float | None = None
    p99_ms: float | None = None
    max_ms: float | None = None
    max_lag_ms: float = 0.0  # the generator's own lateness behind its schedule
    connections: int = 0
    client_cpu: float = 0.0
    server_cpu: float = 0.0  # filled in by the caller, which sees the server
    peak_rss_mb: float = 0.0


def holds(result: OpenLoopResult, p99_ms: float) -> bool:
    """Every counted request answered 2xx, and the p99 within ``p99_ms``."""
    return (
        result.sent > 0
        and result.good == result.sent
        and result.p99_ms is not None
        and result.p99_ms <= p99_ms
    )


def search_rate(
    holds_at: Callable[[float], bool], first: float, ceiling: float, probes: int, quantum: float
) -> float:
    """The highest rate (a multiple of ``quantum``) found to hold in at most ``probes`` calls
    of ``holds_at``, starting at ``first`` and bisecting between the highest rate that held
    and the lowest that did not (``ceiling`` is assumed not to); 0 when none held."""
    held, failed = 0.0, ceiling
    rate = first
    for _ in range(probes):
        rate = max(quantum, round(rate / quantum) * quantum)
        if not held < rate < failed:
            break
        if holds_at(rate):
            held = rate
        else:
            failed = rate
        rate = (held + failed) / 2
    return held


def parse_head(head: bytes) -> tuple[int, int]:
    """Status and Content-Length of an HTTP/1.1 response head (up to the blank line)."""
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return status, int(value)
    raise ValueError("answer without Content-Length")


class _Pool:
    """Keep-alive connections to one server, at most ``limit`` at a time."""

    def __init__(self, url: str, body: bytes, limit: int) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.request = (
            f"POST {parts.path or '/'} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode() + body
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self.free = asyncio.Semaphore(limit)
        self.opened = 0

    async def post(self) -> int:
        """Send the request on an idle connection (or a new one); the answer's status."""
        async with self.free:
            if self.idle:
                reader, writer = self.idle.pop()
            else:
                reader, writer = await asyncio.open_connection(self.host, self.port)
                self.opened += 1
            try:
                writer.write(self.request)
                status, length = parse_head(await reader.readuntil(b"\r\n\r\n"))
                await reader.readexactly(length)
            except BaseException:
                writer.close()
                raise
            self.idle.append((reader, writer))
            return status

    def close(self) -> None:
        for _, writer in self.idle:
            writer.close()


Record = tuple[float, int, float]  # (scheduled, status or 0, answered), loop time in s


async def _fire(
    pool: _Pool, schedule: list[float], counted_from: int, grace: float
) -> tuple[list[tuple[int, Record]], float, float]:
    """Send one request at each scheduled loop time, whatever the answers. Returns what each
    got, by its index (a request without an answer ``grace`` seconds after the last was
    scheduled has none), and from ``counted_from`` on the client's CPU (cores) and its
    greatest lateness behind the schedule (ms)."""
    loop = asyncio.get_running_loop()
    records: list[tuple[int, Record]] = []
    tasks: set[asyncio.Task[None]] = set()
    max_lag_ms = 0.0

    async def one(index: int, scheduled: float) -> None:
        try:
            status = await pool.post()
        except (OSError, EOFError, ValueError, IndexError, asyncio.LimitOverrunError):
            status = 0  # IncompleteReadError is an EOFError
        records.append((index, (scheduled, status, loop.time())))

    cpu, wall = time.process_time(), time.monotonic()
    for i, scheduled in enumerate(schedule):
        if (delay := scheduled - loop.time()) > 0:
            await asyncio.sleep(delay)
        if i == counted_from:
            cpu, wall = time.process_time(), time.monotonic()
        if i >= counted_from:
            max_lag_ms = max(max_lag_ms, (loop.time() - scheduled) * 1000)
        task = loop.create_task(one(i, scheduled))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    client_cpu = (time.process_time() - cpu) / max(1e-9, time.monotonic() - wall)
    if tasks:
        timeout = max(0.0, schedule[-1] - loop.time()) + grace
        _, unfinished = await asyncio.wait(tasks, timeout=timeout)
        for task in unfinished:
            task.cancel()
        await asyncio.gather(*unfinished, return_exceptions=True)
    pool.close()
    return records, client_cpu, max_lag_ms


async def open_loop(
    url: str, body: bytes, rate: float, warmup: float, duration: float, connections: int
) -> OpenLoopResult:
    """POST ``body`` to ``url`` at ``rate`` per second for ``warmup`` + ``duration`` seconds;
    the requests scheduled in the last ``duration`` seconds count."""
    pool = _Pool(url, body, connections)
    total, first_counted = round(rate * (warmup + duration)), round(rate * warmup)
    result = OpenLoopResult(rate, duration, sent=total - first_counted)
    start = asyncio.get_running_loop().time() + 0.01
    schedule = [start + i / rate for i in range(total)]
    records, client_cpu, max_lag_ms = await _fire(pool, schedule, first_counted, GRACE_S)
    statuses: Counter[int] = Counter()
    latencies: list[float] = []
    for index, (scheduled, status, answered) in records:
        if index >= first_counted:
            statuses[status] += 1
            if 200 <= status < 300:
                latencies.append((answered - scheduled) * 1000)
    result.client_cpu = round(client_cpu, 3)
    result.max_lag_ms = max_lag_ms
    result.good = sum(n for status, n in statuses.items() if 200 <= status < 300)
    result.non_2xx = sum(n for status, n in statuses.items() if status and not 200 <= status < 300)
    result.errors = result.sent - result.good - result.non_2xx
    if latencies:
        result.p50_ms, result.p99_ms = percentile(latencies, 50), percentile(latencies, 99)
        result.max_ms = max(latencies)
    result.connections = pool.opened
    for name in ("p50_ms", "p99_ms", "max_ms", "max_lag_ms"):
        if (value := getattr(result, name)) is not None:
            setattr(result, name, round(value, 2))
    return result


@dataclass
class StepResult:
    """A step load: ``high`` req/s (the overload), then ``low`` req/s (after the drop)."""

    high: float
    low: float
    seconds: float  # of each phase
    overload_sent: int = 0
    overload_good: int = 0
    overload_refused: int = 0  # 503 answers
    overload_errors: int = 0  # anything else that was not 2xx, or no answer
    admitted_p99_ms: float | None = None
    refused_p50_ms: float | None = None
    refused_p99_ms: float | None = None
    after_sent: int = 0
    after_good: int = 0
    after_p99_ms: float | None = None
    # From the drop to the answer of the last non-2xx request sent after it (0: none).
    recovery_s: float = 0.0
    client_cpu: float = 0.0
    server_cpu: float = 0.0  # filled in by the caller, which sees the server
    peak_rss_mb: float = 0.0


def summarize_step(records: list[Record], start: float, result: StepResult) -> StepResult:
    """Fill ``result`` from what each request of a step load got."""
    drop = start + result.seconds
    admitted: list[float] = []
    refused: list[float] = []
    after: list[float] = []
    for scheduled, status, answered in records:
        latency = (answered - scheduled) * 1000
        if scheduled < drop:
            result.overload_sent += 1
            if 200 <= status < 300:
                result.overload_good += 1
                admitted.append(latency)
            elif status == 503:
                result.overload_refused += 1
                refused.append(latency)
            else:
                result.overload_errors += 1
        else:
            result.after_sent += 1
            if 200 <= status < 300:
                result.after_good += 1
                after.append(latency)
            else:
                result.recovery_s = max(result.recovery_s, round(answered - drop, 2))
    result.admitted_p99_ms = _rounded(percentile(admitted, 99))
    result.refused_p50_ms = _rounded(percentile(refused, 50))
    result.refused_p99_ms = _rounded(percentile(refused, 99))
    result.after_p99_ms = _rounded(percentile(after, 99))
    return result


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


async def step_load(
    url: str, body: bytes, high: float, low: float, seconds: float, connections: int
) -> StepResult:
    """POST ``body`` at ``high`` per second for ``seconds``, then at ``low`` for as long,
    without a pause: how the server sheds an overload and how soon it recovers."""
    pool = _Pool(url, body, connections)
    start = asyncio.get_running_loop().time() + 0.01
    schedule = [start + i / high for i in range(round(high * seconds))]
    schedule += [start + seconds + i / low for i in range(round(low * seconds))]
    records, client_cpu, _ = await _fire(pool, schedule, 0, grace=5.0)
    result = summarize_step(
        [record for _, record in records], start, StepResult(high, low, seconds)
    )
    result.client_cpu = round(client_cpu, 3)
    return result
