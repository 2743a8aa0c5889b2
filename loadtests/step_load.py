"""Step load: baseline -> overload (about 2x saturation) -> baseline, judged per phase.

``locust -f loadtests/step_load.py --headless`` (``make loadtest-step``) runs the users of
``locustfile.py`` under :class:`StepLoad`.  Every request is recorded (start, response
time, status, outcome) through locust's request event; when the run stops the verdict
checks each phase and sets the exit code:

* baseline (before the overload) and back (after recovery): no errors, no refusals,
  p99 <= ``LOADTEST_P99_MS``;
* overload: p99 of the admitted requests <= ``LOADTEST_OVERLOAD_P99_MS``, p99 of the 503
  refusals (``overloaded`` with ``Retry-After``) <= ``LOADTEST_REFUSAL_MS``, no other errors;
* recovery: the last 503 of a request sent after the drop is answered within
  ``LOADTEST_RECOVERY_S`` of the drop, and nothing else fails meanwhile.

A request belongs to the phase in which it was sent.  ``LOADTEST_REPORT`` names a file
for the verdict as JSON.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path
from typing import Any, NamedTuple

from locust import LoadTestShape, events
from locust.env import Environment
from locust.runners import WorkerRunner
from locustfile import REFUSED_SUFFIX, Slo, WineClient

__all__ = ["StepLoad", "WineClient"]  # WineClient: locust runs the user classes it finds here

ANSWERED, REFUSED, ERROR = "answered", "refused", "error"


class Phase(NamedTuple):
    name: str
    users: int
    seconds: float


@dataclass(frozen=True)
class StepPlan:
    """The three phases and the objectives, from the environment."""

    phases: tuple[Phase, Phase, Phase]
    p99_ms: float
    overload_p99_ms: float
    refusal_ms: float
    recovery_s: float

    @classmethod
    def from_env(cls) -> StepPlan:
        """LOADTEST_{BASE,OVERLOAD}_USERS, LOADTEST_{BASE,OVERLOAD,BACK}_S and the limits."""
        env = os.environ.get
        base, overload = (
            int(env("LOADTEST_BASE_USERS", "16")),
            int(env("LOADTEST_OVERLOAD_USERS", "200")),
        )
        if not 0 < base < overload:
            raise ValueError(
                f"need 0 < LOADTEST_BASE_USERS ({base}) < LOADTEST_OVERLOAD_USERS ({overload})"
            )
        phases = (
            Phase("baseline", base, float(env("LOADTEST_BASE_S", "20"))),
            Phase("overload", overload, float(env("LOADTEST_OVERLOAD_S", "30"))),
            Phase("back", base, float(env("LOADTEST_BACK_S", "20"))),
        )
        return cls(
            phases=phases,
            p99_ms=Slo.from_env().p99_ms,
            overload_p99_ms=float(env("LOADTEST_OVERLOAD_P99_MS", "250")),
            refusal_ms=float(env("LOADTEST_REFUSAL_MS", "10")),
            recovery_s=float(env("LOADTEST_RECOVERY_S", "5")),
        )

    def phase_at(self, seconds: float) -> Phase | None:
        """The phase ``seconds`` into the run; None once the last one is over."""
        for phase in self.phases:
            if seconds < phase.seconds:
                return phase
            seconds -= phase.seconds
        return None


@cache
def plan() -> StepPlan:
    return StepPlan.from_env()


class Sample(NamedTuple):
    start: float  # time.time() when sent
    ms: float
    status: int  # 0: no answer
    outcome: str  # ANSWERED (the expected answer), REFUSED (a proper 503) or ERROR


# Wall-clock start of each phase, written by the shape; every request, by the event hook.
phase_starts: dict[str, float] = {}
samples: list[Sample] = []


class StepLoad(LoadTestShape):
    """Hold each phase's user count for its duration; every step is taken within a second."""

    def tick(self) -> tuple[int, float] | None:
        phase = plan().phase_at(time.perf_counter() - self.start_time)
        if phase is None:
            return None
        phase_starts.setdefault(phase.name, time.time())
        return phase.users, float(max(p.users for p in plan().phases))


@events.request.add_listener
def _record(
    name: str, response_time: float, response: Any, exception: Any, start_time: float, **_: Any
) -> None:
    status = getattr(response, "status_code", 0) or 0
    if exception is not None:
        outcome = ERROR
    else:
        outcome = REFUSED if name.endswith(REFUSED_SUFFIX) else ANSWERED
    samples.append(Sample(start_time, response_time, status, outcome))


def p99(values: list[float]) -> float | None:
    """Nearest-rank 99th percentile; None for no values."""
    if not values:
        return None
    return sorted(values)[math.ceil(0.99 * len(values)) - 1]


@dataclass(frozen=True)
class Window:
    """What the requests sent between two moments got."""

    users: int
    seconds: float
    answered: int
    refused: int
    errors: int
    error_statuses: dict[str, int]
    answered_p99_ms: float | None
    refused_p99_ms: float | None

    @classmethod
    def of(cls, users: int, start: float, end: float, all_samples: list[Sample]) -> Window:
        sent = [s for s in all_samples if start <= s.start < end]
        by = {kind: [s for s in sent if s.outcome == kind] for kind in (ANSWERED, REFUSED, ERROR)}
        statuses: dict[str, int] = {}
        for s in by[ERROR]:
            statuses[str(s.status)] = statuses.get(str(s.status), 0) + 1
        return cls(
            users,
            round(max(0.0, min(end, time.time()) - start), 2),
            len(by[ANSWERED]),
            len(by[REFUSED]),
            len(by[ERROR]),
            statuses,
            p99([s.ms for s in by[ANSWERED]]),
            p99([s.ms for s in by[REFUSED]]),
        )

    def line(self, name: str) -> str:
        def ms(value: float | None) -> str:
            return "-" if value is None else f"{value:.1f} ms"

        return (
            f"{name:<9}{self.users:>4} users {self.seconds:5.1f} s: {self.answered} answered "
            f"(p99 {ms(self.answered_p99_ms)}), {self.refused} refused "
            f"(p99 {ms(self.refused_p99_ms)}), {self.errors} errors {self.error_statuses or ''}"
        ).rstrip()


@dataclass(frozen=True)
class StepVerdict:
    passed: bool
    recovery_s: float | None
    windows: dict[str, Window]
    checks: list[tuple[str, bool, str]]

    def lines(self) -> list[str]:
        return [w.line(name) for name, w in self.windows.items()] + [
            f"{'ok  ' if ok else 'MISS'} {phase}: {text}" for phase, ok, text in self.checks
        ]

    def as_json(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "recovery_s": self.recovery_s,
            "phases": {name: asdict(w) for name, w in self.windows.items()},
            "checks": [{"phase": p, "ok": ok, "text": t} for p, ok, t in self.checks],
        }


def judge(step: StepPlan, starts: dict[str, float], sent: list[Sample]) -> StepVerdict:
    """Every phase's objectives, from the phase starts and the recorded requests."""
    base, overload, back = step.phases
    if back.name not in starts:  # the run stopped early: nothing after the overload to judge
        missing = [p.name for p in step.phases if p.name not in starts]
        return StepVerdict(False, None, {}, [("run", False, f"phases never reached: {missing}")])
    drop, end = starts[back.name], math.inf
    last_refusal = max(
        (s.start + s.ms / 1000 for s in sent if s.start >= drop and s.outcome == REFUSED),
        default=drop,
    )
    recovered = last_refusal - drop
    windows = {
        base.name: Window.of(base.users, starts[base.name], starts[overload.name], sent),
        overload.name: Window.of(overload.users, starts[overload.name], drop, sent),
        "recovery": Window.of(back.users, drop, last_refusal, sent),
        back.name: Window.of(back.users, last_refusal, end, sent),
    }
    checks: list[tuple[str, bool, str]] = []

    def limit(phase: str, what: str, value: float | None, most: float) -> None:
        if value is None:
            checks.append((phase, False, f"{what}: no answers to measure"))
        else:
            checks.append((phase, value <= most, f"{what} {value:.1f} ms (max {most:g} ms)"))

    def quiet(name: str) -> None:
        w = windows[name]
        checks.append((name, w.refused + w.errors == 0, f"errors {w.errors}, refusals {w.refused}"))
        limit(name, "p99", w.answered_p99_ms, step.p99_ms)

    quiet(base.name)
    w = windows[overload.name]
    limit(overload.name, "admitted p99", w.answered_p99_ms, step.overload_p99_ms)
    if w.refused:
        limit(overload.name, f"refusal p99 of {w.refused}", w.refused_p99_ms, step.refusal_ms)
    else:
        checks.append((overload.name, True, "no refusals (nothing shed)"))
    checks.append((overload.name, w.errors == 0, f"errors besides 503 refusals {w.errors}"))
    w = windows["recovery"]
    checks.append(
        (
            "recovery",
            recovered <= step.recovery_s,
            f"last 503 answered {recovered:.2f} s after the drop (max {step.recovery_s:g} s)",
        )
    )
    checks.append(("recovery", w.errors == 0, f"errors besides 503 refusals {w.errors}"))
    quiet(back.name)
    return StepVerdict(all(ok for _, ok, _ in checks), round(recovered, 3), windows, checks)


@events.init.add_listener
def _check_plan(**_: Any) -> None:
    """Fail on a malformed setting before any load is sent."""
    plan()


_verdict: list[StepVerdict] = []


@events.quitting.add_listener
def _step_gate(environment: Environment, **_: Any) -> None:
    """Judge the phases; exit code 0 only when every check passes."""
    if isinstance(environment.runner, WorkerRunner) or not isinstance(
        environment.shape_class, StepLoad
    ):
        return
    verdict = judge(plan(), phase_starts, samples)
    environment.process_exit_code = 0 if verdict.passed else 1
    if report := os.environ.get("LOADTEST_REPORT"):
        Path(report).write_text(json.dumps(verdict.as_json(), indent=2) + "\n")
    _verdict.append(verdict)


@events.quit.add_listener
def _print_verdict(exit_code: int, **_: Any) -> None:
    """Print the verdict last, after locust's own summary."""
    for verdict in _verdict:
        print(f"STEP {'PASS' if verdict.passed else 'FAIL'} (exit code {exit_code})")
        for line in verdict.lines():
            print(f"  {line}")
