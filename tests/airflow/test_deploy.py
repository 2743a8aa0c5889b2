"""The rollout step against moto's ECS: a revision differing only in the image, a time
limit that fails with a reason, and the ``python -m training.deploy`` entry point."""

from __future__ import annotations

import subprocess
import sys

import boto3
import pytest

from tests.airflow.conftest import StandIns, register_running_revision
from tests.fixtures.cli import REPO_ROOT
from training.deploy import (
    DeployError,
    RolloutTimeoutError,
    image_reference,
    revision_with_image,
    rollout,
)

pytestmark = pytest.mark.integration

IMAGE = "127.0.0.1:5000/wine-quality:abc123-0123456"


def _running(stand_ins: StandIns) -> str:
    ecs = boto3.client("ecs")
    service = ecs.describe_services(cluster=stand_ins.cluster, services=[stand_ins.service])
    return str(service["services"][0]["taskDefinition"])


def test_a_rollout_to_the_running_image_registers_nothing(stand_ins: StandIns) -> None:
    first = rollout(cluster=stand_ins.cluster, service=stand_ins.service, image=IMAGE, poll_s=0.1)
    again = rollout(cluster=stand_ins.cluster, service=stand_ins.service, image=IMAGE, poll_s=0.1)

    assert first.changed is True
    assert again.changed is False
    assert again.task_definition == first.task_definition == _running(stand_ins)


def test_a_service_that_does_not_stabilise_fails_at_the_time_limit(stand_ins: StandIns) -> None:
    ecs = boto3.client("ecs")
    # moto reports one running task per new service: two desired never become stable.
    ecs.create_service(
        cluster=stand_ins.cluster,
        serviceName="unstable",
        taskDefinition=_running(stand_ins),
        desiredCount=2,
        launchType="FARGATE",
    )
    with pytest.raises(RolloutTimeoutError, match="did not become stable within 1 s"):
        rollout(cluster=stand_ins.cluster, service="unstable", image=IMAGE, timeout_s=1, poll_s=0.2)


def test_the_image_tag_is_the_model_version_and_the_commit() -> None:
    assert image_reference("r/wine-quality", "v1", "0123abc") == "r/wine-quality:v1-0123abc"
    with pytest.raises(DeployError):
        image_reference("r/wine-quality", "v1", "not a tag")


def test_a_task_definition_with_several_containers_needs_the_name() -> None:
    definition = {
        "family": "f",
        "containerDefinitions": [{"name": "a", "image": "x"}, {"name": "b", "image": "y"}],
    }
    with pytest.raises(DeployError, match="name one"):
        revision_with_image(definition, IMAGE)
    changed = revision_with_image(definition, IMAGE, "b")
    assert [c["image"] for c in changed["containerDefinitions"]] == ["x", IMAGE]


def test_the_deploy_command_rolls_out_and_fails_in_one_line(stand_ins: StandIns) -> None:
    command = [sys.executable, "-m", "training.deploy", "rollout", "--cluster", stand_ins.cluster]
    done = subprocess.run(
        [*command, "--service", stand_ins.service, "--image", IMAGE],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == _running(stand_ins)

    missing = subprocess.run(
        [*command, "--service", "no-such-service", "--image", IMAGE],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert missing.returncode == 1
    assert "Traceback" not in missing.stderr
    assert "error: no active service 'no-such-service'" in missing.stderr


def test_only_the_image_differs_between_the_revisions(stand_ins: StandIns) -> None:
    ecs = boto3.client("ecs")
    arn = register_running_revision(ecs, "wineq-compare")
    current = ecs.describe_task_definition(taskDefinition=arn)["taskDefinition"]
    arguments = revision_with_image(current, IMAGE)
    registered = ecs.register_task_definition(**arguments)["taskDefinition"]
    assert registered["containerDefinitions"][0]["image"] == IMAGE
    assert registered["revision"] == current["revision"] + 1
    for field in ("cpu", "memory", "networkMode", "taskRoleArn", "executionRoleArn"):
        assert registered[field] == current[field]
    old = dict(current["containerDefinitions"][0], image=IMAGE)
    assert registered["containerDefinitions"][0] == old


def test_a_rollout_from_the_family_starts_at_terraforms_newest_revision(
    stand_ins: StandIns,
) -> None:
    ecs = boto3.client("ecs")
    running = _running(stand_ins)
    current = ecs.describe_task_definition(taskDefinition=running)["taskDefinition"]
    family = current["family"]
    # Terraform registers a changed revision but leaves the service on the one it runs.
    changed = dict(current["containerDefinitions"][0])
    changed["environment"] = [{"name": "WINEQ_LOG_FORMAT", "value": "text"}]
    arguments = {
        **revision_with_image(current, changed["image"]),
        "containerDefinitions": [changed],
    }
    terraforms = ecs.register_task_definition(**arguments)
    assert _running(stand_ins) == running

    command = [sys.executable, "-m", "training.deploy", "rollout", "--cluster", stand_ins.cluster]
    done = subprocess.run(
        [*command, "--service", stand_ins.service, "--image", IMAGE, "--family", family],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip

    assert done.returncode == 0, done.stderr
    deployed = ecs.describe_task_definition(taskDefinition=_running(stand_ins))["taskDefinition"]
    assert deployed["revision"] == terraforms["taskDefinition"]["revision"] + 1
    assert deployed["containerDefinitions"][0] == dict(changed, image=IMAGE)
