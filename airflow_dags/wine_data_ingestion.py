"""
### Wine-quality data ingestion

Fetches the UCI wine-quality CSVs (or reads the folder `WINEQ_TRAIN_DATA_DIR` names),
verifies them against their pinned sha256 and validates them with `training`'s
validation. A failed validation fails `validate` with the full report in its log, and
nothing is uploaded. `upload` then writes the validated files to
`s3://<s3_bucket>/<data_prefix>/wine-quality/ds=<logical date>/` with a manifest that
records each file's sha256 and row count; a re-run of a date writes nothing new.

Each upload updates the snapshot asset, which schedules `wine_retrain_rebuild`.
Settings: the DAG params, else the Airflow Variables `wineq_<param>`; the worker's
`WINEQ_TRAIN_*` environment for the data source; AWS credentials from the standard chain.
"""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.sdk import Asset, Param, Variable, dag, get_current_context, task

from training.retrain import SNAPSHOT_ASSET, dag_params

SNAPSHOT = Asset(name=SNAPSHOT_ASSET)

# A task's JSON result at run time; while the DAG is declared, the XComArg standing for it.
TaskResult = Any


def _variable(key: str) -> str | None:
    value = Variable.get(key, default=None)
    return None if value is None else str(value)


@dag(
    dag_id="wine_data_ingestion",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["wineq", "data"],
    params={name: Param(**spec) for name, spec in dag_params(["s3_bucket", "data_prefix"]).items()},
    doc_md=__doc__,
)
def wine_data_ingestion() -> None:
    """Fetch, validate and upload the day's data snapshot."""

    @task
    def validate() -> dict[str, Any]:
        """Fetch (or read) and validate both CSVs; fail with the report when invalid."""
        from training.retrain import validate_input

        return validate_input()

    @task(outlets=[SNAPSHOT])
    def upload(validated: TaskResult) -> dict[str, Any]:
        """Upload the validated files as the logical date's snapshot (once)."""
        from training.retrain import RetrainConfig, upload_input

        context = get_current_context()
        config = RetrainConfig.resolve(context["params"], _variable)
        summary = upload_input(config, context["ds"], validated)
        context["outlet_events"][SNAPSHOT].extra = {
            "uri": summary["uri"],
            "data_date": summary["data_date"],
        }
        return summary

    upload(validate())


wine_data_ingestion()
