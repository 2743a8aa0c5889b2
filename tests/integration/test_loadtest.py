"""The locust scenarios and their SLO gate, run headless against a real `bentoml serve`."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.cli import REPO_ROOT

pytestmark = pytest.mark.integration

LOCUSTFILE = REPO_ROOT / "loadtests" / "locustfile.py"
PREDICT = "/predict"
BATCH = "/predict/batch"
INVALID = "/predict [invalid, expects 422]"


def run_locust(
    url: str, data_dir: Path, csv_prefix: Path, seconds: int, **env: str
) -> subprocess.CompletedProcess[str]:
    """Run the locustfile headless with a tiny, bounded load; return the finished process."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "locust",
            "-f",
            str(LOCUSTFILE),
            "--headless",
            "--users",
            "4",
            "--spawn-rate",
            "4",
            "--run-time",
            f"{seconds}s",
            "--stop-timeout",
            "5",
            "--host",
            url,
            "--only-summary",
            "--csv",
            str(csv_prefix),
        ],
        cwd=REPO_ROOT,
        env={**os.environ, "WINEQ_TRAIN_DATA_DIR": str(data_dir), **env},
        capture_output=True,
        text=True,
        timeout=seconds + 30,
        check=False,
    )


def stats_by_name(csv_prefix: Path) -> dict[str, tuple[int, int]]:
    """(requests, failures) per request name from locust's stats CSV."""
    with Path(f"{csv_prefix}_stats.csv").open(newline="") as handle:
        return {
            row["Name"]: (int(row["Request Count"]), int(row["Failure Count"]))
            for row in csv.DictReader(handle)
        }


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
