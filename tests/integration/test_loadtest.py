"""The locust scenarios and their gates, run headless against a real `bentoml serve`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.cli import REPO_ROOT
from tests.fixtures.server import ServerFactory

pytestmark = pytest.mark.integration

LOCUSTFILE = REPO_ROOT / "loadtests" / "locustfile.py"
STEP_LOCUSTFILE = REPO_ROOT / "loadtests" / "step_load.py"
PREDICT = "/predict"
BATCH = "/predict/batch"
INVALID = "/predict [invalid, expects 422]"
REFUSED = " [503 refused]"


def locust(
    locustfile: Path,
    url: str,
    data_dir: Path,
    stats_prefix: Path,
    seconds: int,
    *args: str,
    **env: str,
) -> subprocess.CompletedProcess[str]:
    """Run a locustfile headless for about ``seconds``; return the finished process.

    The stats go to ``<stats_prefix>.json``, written once at shutdown (the CSV files are
    rewritten only every second, so a short run's last requests may be missing there).
    """
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "locust",
            "-f",
            str(locustfile),
            "--headless",
            *args,
            "--stop-timeout",
            "5",
            "--host",
            url,
            "--only-summary",
            "--json-file",
            str(stats_prefix),
        ],
        cwd=REPO_ROOT,
        env={**os.environ, "WINEQ_TRAIN_DATA_DIR": str(data_dir), **env},
        capture_output=True,
        text=True,
        timeout=seconds + 30,
        check=False,
    )


def run_locust(
    url: str, data_dir: Path, stats_prefix: Path, seconds: int, **env: str
) -> subprocess.CompletedProcess[str]:
    """The constant-load scenario with a tiny, bounded load."""
    args = ("--users", "4", "--spawn-rate", "4", "--run-time", f"{seconds}s")
    return locust(LOCUSTFILE, url, data_dir, stats_prefix, seconds, *args, **env)


def stats_by_name(stats_prefix: Path) -> dict[str, tuple[int, int]]:
    """(requests, failures) per request name, and their sum as "Aggregated"."""
    entries = json.loads(Path(f"{stats_prefix}.json").read_text())
    stats = {e["name"]: (int(e["num_requests"]), int(e["num_failures"])) for e in entries}
    stats["Aggregated"] = (
        sum(n for n, _ in stats.values()),
        sum(failures for _, failures in stats.values()),
    )
    return stats


def test_slo_gate_passes_on_a_healthy_service(service_url, data_dir, tmp_path):
    # Equal weights so a few seconds exercise every scenario, including the 422 path.
    result = run_locust(
        service_url,
        data_dir,
        tmp_path / "pass",
        seconds=6,
        LOADTEST_MIX="predict:1,batch:1,invalid:1",
        # The gate itself is under test, not this shared machine's latency.
        LOADTEST_P99_MS="10000",
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert "SLO PASS" in output
    stats = stats_by_name(tmp_path / "pass")
    for name in (PREDICT, BATCH, INVALID):
        assert stats[name][0] > 0, f"{name} was never exercised"
    # Refusals are answered by the guard before any batching: every one must be a 422.
    assert stats[INVALID][1] == 0, output[-4000:]


def test_slo_gate_fails_when_the_objective_is_impossible(service_url, data_dir, tmp_path):
    result = run_locust(
        service_url, data_dir, tmp_path / "fail", seconds=3, LOADTEST_P99_MS="0.001"
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-4000:]
    assert "SLO FAIL" in output
    assert "MISS p99" in output
    assert stats_by_name(tmp_path / "fail")["Aggregated"][0] > 0


def test_step_load_sheds_with_503_counts_refusals_apart_and_recovers(
    server_factory: ServerFactory, data_dir: Path, tmp_path: Path
) -> None:
    # At most 4 requests in progress: 48 users overload it for sure, 2 never do.
    server = server_factory(WINEQ_MAX_CONCURRENCY="4")
    report = tmp_path / "verdict.json"
    lax = "600000"  # latency objectives are the make target's business, not this machine's
    result = locust(
        STEP_LOCUSTFILE,
        server.url,
        data_dir,
        tmp_path / "step",
        3 + 7 + 5,
        LOADTEST_BASE_USERS="2",
        LOADTEST_OVERLOAD_USERS="48",
        LOADTEST_BASE_S="3",
        LOADTEST_OVERLOAD_S="7",
        LOADTEST_BACK_S="5",
        LOADTEST_P99_MS=lax,
        LOADTEST_OVERLOAD_P99_MS=lax,
        LOADTEST_RECOVERY_S="5",  # the whole back phase
        # The one objective no service can meet: the verdict must fail on it alone.
        LOADTEST_REFUSAL_MS="0",
        LOADTEST_REPORT=str(report),
    )
    output = result.stdout + result.stderr
    assert result.returncode == 1, output[-4000:]
    assert "STEP FAIL (exit code 1)" in output
    # The constant-load gate stays out of a shaped run.
    assert "SLO PASS" not in output
    assert "SLO FAIL" not in output

    verdict = json.loads(report.read_text())
    phases = verdict["phases"]
    assert list(phases) == ["baseline", "overload", "recovery", "back"]
    assert [phases[p]["users"] for p in phases] == [2, 48, 2, 2]
    overload = phases["overload"]
    assert overload["refused"] > 0, "48 users never exceeded a limit of 4"
    assert overload["answered"] > 0, "nothing was admitted during the overload"
    assert overload["errors"] == 0, overload
    for quiet in ("baseline", "back"):
        assert phases[quiet]["answered"] > 0, (quiet, phases[quiet])
        assert phases[quiet]["refused"] == phases[quiet]["errors"] == 0, (quiet, phases[quiet])
    # Recovery seen: error-free answers after the last 503 (the back phase, checked above).
    assert phases["recovery"]["errors"] == 0
    assert verdict["recovery_s"] >= 0

    missed = [c for c in verdict["checks"] if not c["ok"]]
    assert [(c["phase"], c["text"].split(" of ")[0]) for c in missed] == [
        ("overload", "refusal p99")
    ], verdict["checks"]
    assert {c["phase"] for c in verdict["checks"]} == {"baseline", "overload", "recovery", "back"}
    for check in verdict["checks"]:
        line = f"{'ok  ' if check['ok'] else 'MISS'} {check['phase']}: {check['text']}"
        assert line in output, line

    # In locust's own stats every refusal is a success under its own name: each one was a
    # 503 `overloaded` with Retry-After (anything else would have been a failure).
    stats = stats_by_name(tmp_path / "step")
    refused = {name: counts for name, counts in stats.items() if name.endswith(REFUSED)}
    assert sum(n for n, _ in refused.values()) == sum(w["refused"] for w in phases.values())
    assert all(failures == 0 for _, failures in refused.values()), refused
    assert stats["Aggregated"][1] == 0, output[-4000:]
