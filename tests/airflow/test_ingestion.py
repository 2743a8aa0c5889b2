"""wine_data_ingestion end to end with dag.test(): real files, real validation, moto's S3."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.airflow.conftest import StandIns, run_dag, task_states, xcom
from tests.fixtures.cli import copy_data
from training.checksums import sha256_file
from training.data import CSV_FILENAMES, EXPECTED_ROWS

pytestmark = pytest.mark.integration

DAG_ID = "wine_data_ingestion"


def _object_versions(bucket: str) -> list[tuple[str, str]]:
    """Every (key, version id) in the versioned bucket: any write adds one."""
    response = boto3.client("s3").list_object_versions(Bucket=bucket)
    return sorted((v["Key"], v["VersionId"]) for v in response.get("Versions", []))


def test_ingestion_uploads_the_validated_files_once_per_date(
    dagbag: Any, stand_ins: StandIns, training_env: Callable[..., None], data_dir: Path
) -> None:
    run = run_dag(dagbag, DAG_ID, "2026-03-01", run_conf={"s3_bucket": stand_ins.bucket})

    assert str(run.state) == "success", task_states(run)
    prefix = "data/wine-quality/ds=2026-03-01/"
    keys = [key for key, _ in _object_versions(stand_ins.bucket)]
    assert keys == sorted([f"{prefix}manifest.json", *(prefix + n for n in CSV_FILENAMES.values())])
    s3 = boto3.client("s3")
    manifest = json.loads(
        s3.get_object(Bucket=stand_ins.bucket, Key=f"{prefix}manifest.json")["Body"].read()
    )
    for wine_type, filename in CSV_FILENAMES.items():
        record = manifest["files"][wine_type]
        assert record["sha256"] == sha256_file(data_dir / filename)
        assert record["rows"] == EXPECTED_ROWS[wine_type]
        body = s3.get_object(Bucket=stand_ins.bucket, Key=prefix + filename)["Body"].read()
        assert body == (data_dir / filename).read_bytes()
    summary = xcom(run, "upload")
    assert summary["uri"] == f"s3://{stand_ins.bucket}/{prefix}"
    assert summary["uploaded"] is True

    before = _object_versions(stand_ins.bucket)
    again = run_dag(dagbag, DAG_ID, "2026-03-01", run_conf={"s3_bucket": stand_ins.bucket})

    assert str(again.state) == "success", task_states(again)
    assert _object_versions(stand_ins.bucket) == before, "a re-run wrote to S3"
    assert xcom(again, "upload")["uploaded"] is False


def test_a_corrupted_input_fails_validation_with_the_report_and_uploads_nothing(
    dagbag: Any,
    stand_ins: StandIns,
    training_env: Callable[..., None],
    data_dir: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    corrupted = copy_data(data_dir, tmp_path / "incoming")
    red = corrupted / CSV_FILENAMES["red"]
    lines = red.read_text().splitlines()
    fields = lines[1].split(";")
    fields[10] = "150"  # alcohol: more than a liquid can hold
    lines[1] = ";".join(fields)
    red.write_text("\n".join(lines) + "\n")
    training_env(data_dir=corrupted)

    run = run_dag(dagbag, DAG_ID, "2026-03-02", run_conf={"s3_bucket": stand_ins.bucket})

    assert str(run.state) == "failed"
    states = task_states(run)
    assert states["validate"] == "failed"
    assert states["upload"] == "upstream_failed"
    assert _object_versions(stand_ins.bucket) == []
    # The task's log carries the whole report: the checksum and what is wrong in the file.
    assert "validation: FAILED" in caplog.text
    assert "checksum mismatch" in caplog.text
    assert "alcohol must be between 0 and 100" in caplog.text
