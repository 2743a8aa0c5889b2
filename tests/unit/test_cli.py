"""The CLI as a user runs it: exit codes, one-line errors, no tracebacks."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.fixtures.cli import copy_data, run_training_cli
from training.data import CSV_FILENAMES


def _run(*args: str, **env: str | None) -> subprocess.CompletedProcess[str]:
    """Run the CLI; an env value of None removes that variable."""
    return run_training_cli(*args, env=env)


def test_ingest_prints_a_summary(data_dir: Path):
    result = _run("ingest", WINEQ_TRAIN_DATA_DIR=str(data_dir))
    assert result.returncode == 0, result.stderr
    assert "rows: 6497 (1599 red, 4898 white)" in result.stdout
    assert "validation: passed" in result.stdout


def test_checksum_mismatch_is_one_line_without_traceback(data_dir: Path, tmp_path: Path):
    copy_data(data_dir, tmp_path)
    with (tmp_path / CSV_FILENAMES["white"]).open("a") as handle:
        handle.write("6.0;0.2;0.3;1;0.04;30;100;0.99;3.2;0.5;11;6\n")

    result = _run("ingest", WINEQ_TRAIN_DATA_DIR=str(tmp_path))

    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: checksum mismatch")


def test_network_error_is_one_line(tmp_path: Path):
    result = _run(
        "ingest",
        WINEQ_TRAIN_DATA_DIR=None,
        WINEQ_TRAIN_DATA_URL="http://127.0.0.1:9/wine",
        WINEQ_TRAIN_CACHE_DIR=str(tmp_path),
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: could not download")


def test_unknown_command_is_a_usage_error():
    assert _run("frobnicate").returncode == 2


def test_evaluate_writes_the_report(data_dir: Path, tmp_path: Path):
    output = tmp_path / "docs" / "model.md"
    result = _run(
        "evaluate",
        "--output",
        str(output),
        WINEQ_TRAIN_DATA_DIR=str(data_dir),
        WINEQ_TRAIN_N_ESTIMATORS="8",
        WINEQ_TRAIN_CV_FOLDS="2",
    )
    assert result.returncode == 0, result.stderr
    markdown = output.read_text()
    assert "### (a)" in markdown
    assert "### (b)" in markdown
    assert f"wrote {output}" in result.stdout


def test_ensure_model_trains_once_then_reuses(data_dir: Path, tmp_path: Path):
    env = {
        "WINEQ_TRAIN_DATA_DIR": str(data_dir),
        "WINEQ_TRAIN_N_ESTIMATORS": "4",
        "BENTOML_HOME": str(tmp_path),
    }
    first = _run("ensure-model", **env)
    assert first.returncode == 0, first.stderr
    tag = first.stdout.strip()
    assert tag.startswith("wine_quality:")
    assert (tmp_path / "models" / "wine_quality").is_dir()

    second = _run("ensure-model", **env)
    assert second.returncode == 0, second.stderr
    assert second.stdout.strip() == tag
    assert len(list((tmp_path / "models" / "wine_quality").iterdir())) == 2  # version + latest


@pytest.mark.parametrize("command", ["ingest", "train", "evaluate", "ensure-model"])
def test_every_command_has_help(command: str):
    result = _run(command, "--help")
    assert result.returncode == 0
    assert "usage:" in result.stdout
