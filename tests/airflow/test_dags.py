"""The DAG folder parses cleanly, quickly, and declares what the retrain flow needs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.airflow.conftest import DAGS_FOLDER, airflow_environment, require_airflow
from training.retrain import SNAPSHOT_ASSET, RetrainConfig

DAG_FILES = sorted(DAGS_FOLDER.glob("*.py"))
# Far below what the scheduler's parse timeout allows; the files only declare tasks.
IMPORT_BUDGET_S = 0.5
HEAVY_MODULES = ("bentoml", "sklearn", "pandas", "boto3", "onnxruntime", "matplotlib")
# What the DAG processor has loaded before it parses a file; the rest is the file's cost.
IMPORT_PROBE = """
import importlib.util, json, sys, time
from airflow.sdk import Asset, Param, Variable, dag, get_current_context, task
start = time.perf_counter()
spec = importlib.util.spec_from_file_location("dag_under_test", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "modules": sorted(sys.modules)}))
"""


def test_the_dag_folder_parses_without_import_errors(dagbag: Any) -> None:
    assert dagbag.import_errors == {}
    assert sorted(dagbag.dag_ids) == ["wine_data_ingestion", "wine_retrain_rebuild"]


def test_ingestion_runs_daily_and_announces_the_snapshot(dagbag: Any) -> None:
    dag = dagbag.get_dag("wine_data_ingestion")
    assert dag.schedule == "@daily"
    assert dag.catchup is False
    assert set(dag.tags) == {"wineq", "data"}
    assert set(dag.params) == {"s3_bucket", "data_prefix"}
    assert [t.task_id for t in dag.topological_sort()] == ["validate", "upload"]
    (outlet,) = dag.get_task("upload").outlets
    assert outlet.name == SNAPSHOT_ASSET


def test_retrain_runs_on_the_snapshot_asset_with_every_setting_as_a_param(dagbag: Any) -> None:
    dag = dagbag.get_dag("wine_retrain_rebuild")
    assert [asset.name for asset in dag.schedule] == [SNAPSHOT_ASSET]
    assert set(dag.tags) == {"wineq", "training", "deploy"}
    # One definition of the settings: the DAG params are the config's fields.
    assert set(dag.params) == {"data_date", *RetrainConfig.model_fields}
    params = dag.params.dump()
    assert params["force_promotion"] is False, "a forced promotion is asked for per run"
    assert params["threshold"] is None, "empty: the Variable, else the config's default"
    assert [t.task_id for t in dag.topological_sort()] == [
        "snapshot",
        "train",
        "evaluate",
        "gate",
        "promoted",
        "publish",
        "rebuild",
        "rollout",
    ]
    assert dag.get_task("publish").upstream_task_ids == {"gate", "promoted"}


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.name)
def test_a_dag_file_imports_fast_and_without_the_heavy_libraries(
    path: Path, tmp_path: Path
) -> None:
    require_airflow()
    env = {**os.environ, **airflow_environment(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-c", IMPORT_PROBE, str(path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    probe = json.loads(result.stdout.strip().splitlines()[-1])
    loaded = [m for m in probe["modules"] if m.split(".")[0] in HEAVY_MODULES]
    assert loaded == [], f"{path.name} imports {sorted({m.split('.')[0] for m in loaded})}"
    assert probe["seconds"] < IMPORT_BUDGET_S, f"{path.name} took {probe['seconds']:.2f} s"
