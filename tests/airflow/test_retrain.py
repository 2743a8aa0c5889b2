"""wine_retrain_rebuild end to end with dag.test(): moto's S3 and ECS, the local registry,
the local Docker engine and the real image build (in the one promotion test that needs it).
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest

from scripts.container_image import run_container, wait_ready
from tests.airflow.conftest import (
    CONTAINER_NAME,
    StandIns,
    registry_tags,
    run_dag,
    task_states,
    xcom,
)
from training import mirror
from training.deploy import READ_ONLY_TASK_FIELDS, repo_commit
from training.pipeline import Ingested, train_and_save
from training.settings import TrainingSettings
from training.snapshots import upload_snapshot

pytestmark = pytest.mark.integration

DAG_ID = "wine_retrain_rebuild"
DEPLOY_TASKS = ("publish", "rebuild", "rollout")
# A forest too small to learn much: the weak side of each comparison.
WEAK_RECIPE = {"n_estimators": 2, "max_depth": 2}


def _champion(ingested: Ingested, stand_ins: StandIns, data_dir: Path, **recipe: Any) -> str:
    """Train, push and promote a champion in the test's mirror; its version."""
    settings = TrainingSettings(data_dir=data_dir, cv_folds=3, **recipe)
    tag = train_and_save(settings, ingested)
    version = tag.rpartition(":")[2]
    mirror.push(tag, stand_ins.bucket, "models")
    mirror.promote(stand_ins.bucket, "models", version)
    return version


def _service_task_definition(stand_ins: StandIns) -> dict[str, Any]:
    ecs = boto3.client("ecs")
    arn = ecs.describe_services(cluster=stand_ins.cluster, services=[stand_ins.service])[
        "services"
    ][0]["taskDefinition"]
    described: dict[str, Any] = ecs.describe_task_definition(taskDefinition=arn)["taskDefinition"]
    return described


def _comparable(task_definition: dict[str, Any]) -> dict[str, Any]:
    """A task definition without its revision's bookkeeping and its image."""
    fields = {k: v for k, v in task_definition.items() if k not in READ_ONLY_TASK_FIELDS}
    fields["containerDefinitions"] = [
        {k: v for k, v in c.items() if k != "image"} for c in fields["containerDefinitions"]
    ]
    return fields


def _mirrored_versions(stand_ins: StandIns) -> list[str]:
    return [info.manifest.version for info in mirror.list_versions(stand_ins.bucket, "models")]


@pytest.mark.container
def test_a_better_challenger_is_promoted_built_pushed_and_rolled_out(
    dagbag: Any,
    stand_ins: StandIns,
    training_env: Callable[..., None],
    ingested: Ingested,
    data_dir: Path,
    model_store: Path,
    docker_engine: None,
) -> None:
    champion = _champion(ingested, stand_ins, data_dir, **WEAK_RECIPE)
    upload_snapshot(ingested, stand_ins.bucket, "data", "2026-04-01")
    before = _service_task_definition(stand_ins)

    run = run_dag(dagbag, DAG_ID, "2026-04-01", run_conf=stand_ins.run_conf(threshold=0.0))

    assert str(run.state) == "success", task_states(run)
    assert set(task_states(run).values()) == {"success"}
    decision = xcom(run, "gate")
    assert decision["outcome"] == "promoted"
    assert decision["forced"] is False
    assert decision["champion_version"] == champion
    comparison = decision["comparison"]
    assert all(comparison["challenger"][t] > comparison["champion"][t] for t in ("red", "white"))
    version = decision["challenger_version"]
    assert mirror.champion_version(stand_ins.bucket, "models") == version

    image = f"{stand_ins.registry}/wine-quality:{version}-{repo_commit()}"
    assert xcom(run, "rebuild")["image"] == image
    assert image.rpartition(":")[2] in registry_tags(stand_ins.registry, "wine-quality")

    after = _service_task_definition(stand_ins)
    assert after["family"] == before["family"]
    assert after["revision"] == before["revision"] + 1
    assert after["containerDefinitions"][0]["name"] == CONTAINER_NAME
    assert after["containerDefinitions"][0]["image"] == image
    assert _comparable(after) == _comparable(before), "the new revision changed more than the image"

    # What the registry holds, not the build's local copy: drop that one and pull.
    subprocess.run(["docker", "image", "rm", image], check=True, capture_output=True)
    subprocess.run(["docker", "pull", image], check=True, capture_output=True)
    container = run_container(image, cpus=None, memory=None)
    try:
        wait_ready(container, timeout=120)
        response = httpx.get(f"{container.url}/readyz", timeout=10)
        assert response.headers["x-model-version"] == version
    finally:
        container.remove()
        subprocess.run(["docker", "image", "rm", image], check=False, capture_output=True)


def test_a_worse_challenger_keeps_the_champion_and_deploys_nothing(
    dagbag: Any,
    stand_ins: StandIns,
    training_env: Callable[..., None],
    ingested: Ingested,
    data_dir: Path,
    model_store: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    champion = _champion(ingested, stand_ins, data_dir, n_estimators=10)
    upload_snapshot(ingested, stand_ins.bucket, "data", "2026-04-02")
    before = _service_task_definition(stand_ins)
    training_env(**WEAK_RECIPE)

    run = run_dag(dagbag, DAG_ID, "2026-04-02", run_conf=stand_ins.run_conf())

    assert str(run.state) == "success", task_states(run)
    states = task_states(run)
    assert all(states[task] == "skipped" for task in DEPLOY_TASKS), states
    decision = xcom(run, "gate")
    assert decision["outcome"] == "kept_champion"
    assert "below the champion's" in decision["reason"]
    assert f"kept champion {champion}" in caplog.text
    assert mirror.champion_version(stand_ins.bucket, "models") == champion
    assert _mirrored_versions(stand_ins) == [champion]
    assert not any(
        tag.startswith(decision["challenger_version"])
        for tag in registry_tags(stand_ins.registry, "wine-quality")
    )
    assert _service_task_definition(stand_ins) == before

    # The date's decision is recorded: a re-run neither trains nor decides again.
    again = run_dag(dagbag, DAG_ID, "2026-04-02", run_conf=stand_ins.run_conf())
    assert xcom(again, "train") == {"tag": decision["challenger_tag"], "reused": True}
    assert xcom(again, "gate") == decision


def test_a_forced_promotion_promotes_a_worse_challenger_and_says_so(
    dagbag: Any,
    stand_ins: StandIns,
    training_env: Callable[..., None],
    ingested: Ingested,
    data_dir: Path,
    model_store: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    champion = _champion(ingested, stand_ins, data_dir, n_estimators=10)
    upload_snapshot(ingested, stand_ins.bucket, "data", "2026-04-03")
    training_env(**WEAK_RECIPE)

    # The image build and rollout are the promotion test's; here they are marked done.
    run = run_dag(
        dagbag,
        DAG_ID,
        "2026-04-03",
        run_conf=stand_ins.run_conf(force_promotion=True),
        mark_success_pattern="^(rebuild|rollout)$",
    )

    assert str(run.state) == "success", task_states(run)
    decision = xcom(run, "gate")
    assert decision["outcome"] == "promoted"
    assert decision["forced"] is True
    assert decision["reason"].startswith("FORCED promotion")
    assert "would keep the champion" in decision["reason"]
    assert "FORCED promotion" in caplog.text
    version = decision["challenger_version"]
    assert mirror.champion_version(stand_ins.bucket, "models") == version
    assert sorted(_mirrored_versions(stand_ins)) == sorted([champion, version])
