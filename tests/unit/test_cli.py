"""The CLI as a user runs it: exit codes, one-line errors, no tracebacks."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import bentoml
import pytest

from tests.fixtures.cli import copy_data, run_training_cli
from training import cli
from training.artifacts import HEADLINE_METRICS
from training.data import CSV_FILENAMES
from training.features import WINE_TYPES
from training.mirror import ArtifactRecord, Manifest, VersionInfo


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


def one_error_line(result: subprocess.CompletedProcess[str], exit_code: int) -> str:
    """The single stderr line of a failed run, checked against the CLI's promise."""
    assert result.returncode == exit_code, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.mark.parametrize("command", ["ingest", "list-versions"])
def test_unknown_setting_stops_the_command_naming_it_and_the_closest_name(command: str):
    line = one_error_line(_run(command, WINEQ_TRAIN_N_ESTIMATOR="5"), 2)

    assert line.startswith("error: unknown setting")
    assert "WINEQ_TRAIN_N_ESTIMATOR (did you mean WINEQ_TRAIN_N_ESTIMATORS?)" in line


def test_serving_variables_are_not_unknown_to_training(data_dir: Path):
    result = _run("ingest", WINEQ_TRAIN_DATA_DIR=str(data_dir), WINEQ_MODEL_TAG="wine_quality:x")
    assert result.returncode == 0, result.stderr


def test_invalid_setting_value_is_a_usage_error_naming_the_setting():
    line = one_error_line(_run("ingest", WINEQ_TRAIN_N_ESTIMATORS="many"), 2)
    assert line.startswith("error: invalid setting: WINEQ_TRAIN_N_ESTIMATORS='many'")


@pytest.mark.parametrize("argv", [["frobnicate"], ["promote"]])
def test_unknown_command_or_missing_argument_is_a_usage_error(argv: list[str]):
    result = _run(*argv)
    assert result.returncode == 2
    assert "usage:" in result.stderr


@pytest.mark.parametrize("command", ["push", "pull", "list-versions"])
def test_mirror_command_without_a_bucket_fails_with_one_line(
    command: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    monkeypatch.delenv("WINEQ_TRAIN_S3_BUCKET", raising=False)

    assert cli.main([command]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("error: no S3 bucket")
    assert "WINEQ_TRAIN_S3_BUCKET" in err


def test_mirror_command_reports_a_bad_version_in_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    monkeypatch.setenv("WINEQ_TRAIN_S3_BUCKET", "bucket")

    assert cli.main(["promote", "--version", "../escape"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: invalid version '../escape'")
    assert err.count("\n") == 1


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


def test_full_evaluation_stores_both_protocols(data_dir: Path, tmp_path: Path):
    result = _run(
        "train",
        "--full-evaluation",
        WINEQ_TRAIN_DATA_DIR=str(data_dir),
        WINEQ_TRAIN_N_ESTIMATORS="5",
        WINEQ_TRAIN_CV_FOLDS="2",
        BENTOML_HOME=str(tmp_path),
    )
    assert result.returncode == 0, result.stderr
    version = result.stdout.strip().splitlines()[-1].removeprefix("wine_quality:")
    entry = bentoml.Model.from_path(str(tmp_path / "models" / "wine_quality" / version))

    metadata: dict[str, Any] = dict(entry.info.metadata)
    metrics = metadata["metrics"]
    assert set(metrics) == {"cv_paper", "cv_grouped", "leakage_free"}
    assert metrics["leakage_free"] == metrics["cv_grouped"]
    assert set(metrics["cv_paper"]) == {"red", "white"}
    # The shared values are written out twice, not as a YAML anchor and alias.
    assert "&id" not in Path(entry.path_of("model.yaml")).read_text()


def test_list_versions_table_shows_the_accuracy_training_records(trained_model_tag: str):
    metadata: dict[str, Any] = dict(bentoml.models.get(trained_model_tag).info.metadata)
    manifest = Manifest(
        tag=trained_model_tag,
        version=trained_model_tag.split(":")[1],
        artifact=ArtifactRecord(filename="model.bentomodel", sha256="a" * 64, size=1),
        content_sha256="b" * 64,
        metrics=metadata["metrics"],
        created_at=metadata["created_at"],
    )

    header, row, legend = cli.render_versions([VersionInfo(manifest, is_champion=True)]).split("\n")

    accuracy = metadata["metrics"][HEADLINE_METRICS]
    expected = [f"{accuracy[wine_type]['accuracy']:.1%}" for wine_type in WINE_TYPES]
    assert row.split()[-len(WINE_TYPES) :] == expected
    assert row.split()[:2] == ["*", manifest.version]
    assert [f"accuracy {t}" in header for t in WINE_TYPES] == [True] * len(WINE_TYPES)
    assert legend.startswith("* champion")
