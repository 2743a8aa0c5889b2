"""
### Wine-quality retrain and rebuild

Runs when `wine_data_ingestion` uploads a snapshot, or by hand (param `data_date`, else
the logical date):

1. `train`: a challenger forest on that date's validated snapshot (a model store entry);
2. `evaluate`: the challenger and the mirror's champion scored alike, on the same grouped
   folds of that data (the leakage-free protocol);
3. `gate`: promote only if the challenger is not worse than the champion by more than
   `threshold` on any wine type; `force_promotion` promotes regardless and says so. The
   decision is recorded in S3 once per date. When it keeps the champion the run ends
   here, successfully, with `kept_champion` in the gate's XCom;
4. `publish`: push the challenger to the S3 mirror and point the champion at it;
5. `rebuild`: `bentoml build` + `bentoml containerize` with the champion bundled, pushed
   as `<registry>/<repository>:<model version>-<commit>` (never `latest`);
6. `rollout`: a new ECS task definition revision differing only in the image, the
   service updated, and a wait for stability that fails past `rollout_timeout_minutes`
   (the service's deployment circuit breaker rolls back).

Settings: the DAG params, else the Airflow Variables `wineq_<param>`; the worker's
`WINEQ_TRAIN_*` environment for the forest; AWS credentials from the standard chain.
The tasks share the worker's BentoML store: run them on one host (LocalExecutor).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pendulum
from airflow.sdk import Asset, Param, Variable, dag, get_current_context, task

from training.retrain import SNAPSHOT_ASSET, RetrainConfig, dag_params

SNAPSHOT = Asset(name=SNAPSHOT_ASSET)
PARAMS: dict[str, Any] = {
    "data_date": Param(
        None,
        type=["null", "string"],
        format="date",
        description="Data date (YYYY-MM-DD) of the snapshot to train on. Empty: the "
        "triggering snapshot's date, else the run's logical date.",
    ),
    **{name: Param(**spec) for name, spec in dag_params(RetrainConfig.model_fields).items()},
}

# A task's JSON result at run time; while the DAG is declared, the XComArg standing for it.
TaskResult = Any


def _variable(key: str) -> str | None:
    value = Variable.get(key, default=None)
    return None if value is None else str(value)


def _config() -> RetrainConfig:
    return RetrainConfig.resolve(get_current_context()["params"], _variable)


def _data_date() -> str:
    """The param, else the triggering snapshot's date, else the logical date."""
    context = get_current_context()
    if context["params"].get("data_date"):
        return str(context["params"]["data_date"])
    events = [e for group in context["triggering_asset_events"].values() for e in group]
    dates = [e.extra["data_date"] for e in events if "data_date" in (e.extra or {})]
    if dates:
        return str(max(dates))
    logical_date = context.get("logical_date")
    if logical_date is None:
        raise ValueError("no data date: set the param data_date (YYYY-MM-DD)")
    return logical_date.date().isoformat()


@dag(
    dag_id="wine_retrain_rebuild",
    schedule=[SNAPSHOT],
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["wineq", "training", "deploy"],
    params=PARAMS,
    doc_md=__doc__,
)
def wine_retrain_rebuild() -> None:
    """Train a challenger, gate it against the champion, rebuild and roll out."""

    @task
    def snapshot() -> dict[str, str]:
        """The validated snapshot this run trains on."""
        from training.retrain import locate_snapshot

        data_date = _data_date()
        return {"data_date": data_date, "uri": locate_snapshot(_config(), data_date)}

    @task
    def train(snap: TaskResult) -> dict[str, Any]:
        """Train the challenger on the snapshot; its model store entry."""
        from training.retrain import train_challenger

        return train_challenger(_config(), snap["data_date"], snap["uri"])

    @task
    def evaluate(snap: TaskResult, challenger: TaskResult) -> dict[str, Any]:
        """Score the challenger and the champion on the same leakage-free folds."""
        from training.retrain import evaluate_challenger

        return evaluate_challenger(_config(), snap["data_date"], snap["uri"], challenger)

    @task
    def gate(snap: TaskResult, challenger: TaskResult, evaluation: TaskResult) -> dict[str, Any]:
        """Decide (once per date): promote, or keep the champion."""
        from training.retrain import decide

        return decide(_config(), snap["data_date"], challenger, evaluation)

    @task.short_circuit
    def promoted(decision: TaskResult) -> bool:
        """Go on only for a promotion; a kept champion ends the run successfully."""
        import logging

        if decision["outcome"] != "promoted":
            logging.getLogger(__name__).info(
                "kept champion %s: %s", decision["champion_version"], decision["reason"]
            )
            return False
        return True

    @task
    def publish(decision: TaskResult) -> dict[str, Any]:
        """Push the challenger to the S3 mirror and make it the champion."""
        from training.retrain import publish as publish_step

        return publish_step(_config(), decision)

    @task
    def rebuild(published: TaskResult) -> dict[str, Any]:
        """Build the image with the champion bundled and push it (immutable tag)."""
        from training.retrain import rebuild as rebuild_step

        return rebuild_step(_config(), published["version"])

    # A backstop only: the rollout's own limit (rollout_timeout_minutes) fails it first.
    @task(execution_timeout=dt.timedelta(hours=2))
    def rollout(image: TaskResult) -> dict[str, Any]:
        """New task definition revision with the image; wait until the service is stable."""
        from training.retrain import roll_out

        return roll_out(_config(), image["image"])

    snap = snapshot()
    challenger = train(snap)
    decision = gate(snap, challenger, evaluate(snap, challenger))
    published = publish(decision)
    promoted(decision) >> published
    rollout(rebuild(published))


wine_retrain_rebuild()
