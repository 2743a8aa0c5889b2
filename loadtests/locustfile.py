"""Locust scenarios for the wine-quality service, with SLO gates on the exit code.

Traffic mix (weights from ``LOADTEST_MIX``, default ``predict:80,batch:15,invalid:5``):

* ``predict``: one wine per ``POST /predict``, sampled from the real UCI CSVs;
* ``batch``: 2-32 wines per ``POST /predict/batch``;
* ``invalid``: a deliberately broken body that must be refused with 422 (a 422 counts
  as success, anything else as a failure).

When the run stops, the SLO gate sets the process exit code: non-zero when the share
of unexpected answers exceeds ``LOADTEST_MAX_ERROR_RATE`` or the p99 latency exceeds
``LOADTEST_P99_MS``.  Load only targets loopback unless ``LOADTEST_ALLOW_REMOTE=1``.

Under a load shape (``loadtests/step_load.py`` reuses :class:`WineClient`), overload is
provoked on purpose: a 503 ``overloaded`` with ``Retry-After`` is then an expected
refusal, counted under the request's name plus ``[503 refused]``, and the shape's own
per-phase verdict replaces the SLO gate.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any
from urllib.parse import urlsplit

from locust import FastHttpUser, between, events, task
from locust.contrib.fasthttp import ResponseContextManager
from locust.env import Environment
from locust.runners import WorkerRunner

from bento.guard import BATCH_ROUTE, PREDICT_ROUTE
from training.features import FEATURE_NAMES, WINE_TYPE_FIELD

Features = dict[str, Any]

INVALID_NAME = "/predict [invalid, expects 422]"
REFUSED_SUFFIX = " [503 refused]"
BATCH_ROWS = (2, 32)
DEFAULT_MIX = "predict:80,batch:15,invalid:5"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
JSON_HEADERS = {"content-type": "application/json"}


@dataclass(frozen=True)
class Slo:
    """The service-level objectives a run must meet for the process to exit 0."""

    max_error_rate: float
    p99_ms: float
    min_requests: int

    @classmethod
    def from_env(cls) -> Slo:
        """Read LOADTEST_MAX_ERROR_RATE, LOADTEST_P99_MS and LOADTEST_MIN_REQUESTS."""
        return cls(
            max_error_rate=float(os.environ.get("LOADTEST_MAX_ERROR_RATE", "0.01")),
            p99_ms=float(os.environ.get("LOADTEST_P99_MS", "500")),
            min_requests=int(os.environ.get("LOADTEST_MIN_REQUESTS", "1")),
        )


@dataclass(frozen=True)
class Verdict:
    """The outcome of the SLO gate for one run."""

    passed: bool
    lines: tuple[str, ...]


def evaluate_slo(slo: Slo, requests: int, failures: int, p99_ms: float) -> Verdict:
    """Compare a run's totals with the SLO; every missed objective is one line."""
    error_rate = failures / requests if requests else 1.0
    checks = [
        (
            requests >= slo.min_requests,
            f"requests {requests} (min {slo.min_requests})",
        ),
        (
            error_rate <= slo.max_error_rate,
            f"error rate {error_rate:.4f} (max {slo.max_error_rate:.4f})",
        ),
        (p99_ms <= slo.p99_ms, f"p99 {p99_ms:.0f} ms (max {slo.p99_ms:g} ms)"),
    ]
    lines = tuple(f"{'ok  ' if ok else 'MISS'} {text}" for ok, text in checks)
    return Verdict(all(ok for ok, _ in checks), lines)


def parse_mix(spec: str) -> dict[str, int]:
    """Parse 'predict:80,batch:15,invalid:5' into task weights."""
    weights: dict[str, int] = {}
    for part in spec.split(","):
        name, _, weight = part.partition(":")
        weights[name.strip()] = int(weight)
    unknown = set(weights) - {"predict", "batch", "invalid"}
    if unknown or not any(weights.values()) or min(weights.values()) < 0:
        raise ValueError(f"LOADTEST_MIX={spec!r}: use predict:N,batch:N,invalid:N (N >= 0)")
    return weights


@cache
def wine_pool() -> tuple[Features, ...]:
    """Every row of both UCI CSVs as a /predict `features` object (honours WINEQ_TRAIN_DATA_DIR)."""
    from training.data import load_wine_data, request_features
    from training.settings import TrainingSettings

    return tuple(request_features(load_wine_data(TrainingSettings.from_env()).frame))


def _missing_field(wine: Features) -> Features:
    dropped = random.choice(FEATURE_NAMES)
    return {k: v for k, v in wine.items() if k != dropped}


def _negative_value(wine: Features) -> Features:
    return {**wine, random.choice(FEATURE_NAMES): -1.0}


def _free_above_total(wine: Features) -> Features:
    return {**wine, "free_sulfur_dioxide": wine["total_sulfur_dioxide"] + 10.0}


def _number_as_text(wine: Features) -> Features:
    name = random.choice(FEATURE_NAMES)
    return {**wine, name: str(wine[name])}


def _unknown_field(wine: Features) -> Features:
    return {**wine, "colour_intensity": 3.2}


def _unknown_wine_type(wine: Features) -> Features:
    return {**wine, WINE_TYPE_FIELD: "rose"}


def _not_finite(wine: Features) -> Features:
    return {**wine, random.choice(FEATURE_NAMES): float("nan")}


# Each one breaks a different rule of the contract; all must come back as 422.
BREAKAGES: tuple[Callable[[Features], Features], ...] = (
    _missing_field,
    _negative_value,
    _free_above_total,
    _number_as_text,
    _unknown_field,
    _unknown_wine_type,
    _not_finite,
)


class WineClient(FastHttpUser):
    """A client of the prediction API: mostly single wines, some batches, a few mistakes."""

    wait_time = between(0.05, 0.5)

    def on_start(self) -> None:
        """Take the sample pool (loaded once per process)."""
        self.pool = wine_pool()

    def _post(
        self,
        route: str,
        payload: Any,
        name: str,
        expect: int,
        check: Callable[[Any], str | None] = lambda _: None,
    ) -> None:
        """Send ``payload``; success when the status is ``expect`` and ``check`` of the
        parsed body finds no problem (decided inside the with-block, where it counts)."""
        body = json.dumps(payload)  # NaN stays NaN on purpose: the service must refuse it
        with self.client.post(
            route, data=body, headers=JSON_HEADERS, name=name, catch_response=True
        ) as response:
            if response.status_code == 503 and self.environment.shape_class is not None:
                response.request_meta["name"] = name + REFUSED_SUFFIX
                problem = refusal_problem(response)
            elif response.status_code != expect:
                problem = f"expected {expect}, got {response.status_code}"
            else:
                problem = check(_json(response))
            if problem is None:
                response.success()
            else:
                response.failure(problem)

    @task
    def predict(self) -> None:
        """One wine, the request existing clients send."""
        wine = random.choice(self.pool)
        self._post(
            PREDICT_ROUTE,
            {"features": wine, "request_id": "lt"},
            PREDICT_ROUTE,
            200,
            lambda answer: (
                None
                if isinstance(answer, dict) and 3 <= answer.get("prediction", -1) <= 9
                else "prediction outside 3-9"
            ),
        )

    @task
    def predict_batch(self) -> None:
        """Several wines in one request; one answer per wine."""
        wines = random.sample(self.pool, random.randint(*BATCH_ROWS))
        self._post(
            BATCH_ROUTE,
            {"features_list": wines},
            BATCH_ROUTE,
            200,
            lambda answer: (
                None
                if isinstance(answer, list) and len(answer) == len(wines)
                else "answer count differs from row count"
            ),
        )

    @task
    def invalid(self) -> None:
        """A broken body: success only when the service refuses it with 422."""
        broken = random.choice(BREAKAGES)(random.choice(self.pool))
        self._post(PREDICT_ROUTE, {"features": broken}, INVALID_NAME, 422)


def _json(response: ResponseContextManager) -> Any:
    """The parsed body, or None when it is not JSON."""
    try:
        return response.json()
    except ValueError:
        return None


def refusal_problem(response: ResponseContextManager) -> str | None:
    """None when a 503 is the service's overload refusal: ``overloaded`` and ``Retry-After``."""
    if response.headers is None or not response.headers.get("retry-after"):
        return "503 without Retry-After"
    answer = _json(response)
    error = answer.get("error") if isinstance(answer, dict) else None
    return None if error == "overloaded" else f"503 {error!r}, not 'overloaded'"


def _apply_mix() -> None:
    weights = parse_mix(os.environ.get("LOADTEST_MIX", DEFAULT_MIX))
    methods = {
        "predict": WineClient.predict,
        "batch": WineClient.predict_batch,
        "invalid": WineClient.invalid,
    }
    WineClient.tasks = [methods[name] for name, weight in weights.items() for _ in range(weight)]


@events.init.add_listener
def _check_before_load(environment: Environment, **_: Any) -> None:
    """Refuse non-loopback targets, fix the traffic mix and load the samples before spawning."""
    host = urlsplit(environment.host or "").hostname or ""
    if host not in LOOPBACK_HOSTS and os.environ.get("LOADTEST_ALLOW_REMOTE") != "1":
        raise SystemExit(
            f"refusing to load {environment.host!r}: only loopback targets are allowed "
            "(set LOADTEST_ALLOW_REMOTE=1 to load a staging host on purpose)"
        )
    Slo.from_env()  # fail on a malformed threshold before any load is sent
    _apply_mix()
    wine_pool()


_verdict: list[Verdict] = []


@events.quitting.add_listener
def _slo_gate(environment: Environment, **_: Any) -> None:
    """Set the exit code from the SLO: 0 when every objective is met, 1 otherwise.

    A load shape brings its own verdict (step_load.py); this gate judges constant load.
    """
    if isinstance(environment.runner, WorkerRunner) or environment.shape_class is not None:
        return
    total = environment.stats.total
    verdict = evaluate_slo(
        Slo.from_env(),
        requests=total.num_requests,
        failures=total.num_failures,
        p99_ms=float(total.get_response_time_percentile(0.99)),
    )
    environment.process_exit_code = 0 if verdict.passed else 1
    _verdict.append(verdict)


@events.quit.add_listener
def _print_verdict(exit_code: int, **_: Any) -> None:
    """Print the verdict after locust's own summary, so it is the last thing a reader sees."""
    for verdict in _verdict:
        print(f"SLO {'PASS' if verdict.passed else 'FAIL'} (exit code {exit_code})")
        for line in verdict.lines:
            print(f"  {line}")
