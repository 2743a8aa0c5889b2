"""The GitHub workflows do what the delivery contract says (parsed YAML, no network)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.infra.conftest import WORKFLOWS_DIR, iter_steps, load_workflow, workflow_files

PINNED_USES = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")
VERSION_COMMENT = re.compile(r"uses:\s*\S+@[0-9a-f]{40}\s+#\s*v\d+(\.\d+){0,2}\s*$")


@pytest.fixture(scope="module")
def deploy() -> dict[str, Any]:
    return load_workflow(WORKFLOWS_DIR / "deploy.yml")


def _run_text(workflow: dict[str, Any], job: str | None = None) -> str:
    return "\n".join(
        str(step.get("run", "")) for job_id, step in iter_steps(workflow) if job in (None, job_id)
    )


def _uses(workflow: dict[str, Any], job: str) -> list[str]:
    return [
        str(step["uses"]).split("@")[0]
        for job_id, step in iter_steps(workflow)
        if job_id == job and "uses" in step
    ]


def test_the_three_workflows_exist() -> None:
    assert {path.name for path in workflow_files()} >= {"ci.yml", "deploy.yml", "status.yml"}


@pytest.mark.parametrize("path", workflow_files(), ids=lambda p: p.name)
def test_actions_are_pinned_by_commit_sha_with_a_version_comment(path: Path) -> None:
    workflow = load_workflow(path)
    for job_id, step in iter_steps(workflow):
        if "uses" in step:
            assert PINNED_USES.match(step["uses"]), (
                f"{path.name}/{job_id}: {step['uses']} is not pinned"
            )
    for line in path.read_text(encoding="utf-8").splitlines():
        if "uses:" in line:
            assert VERSION_COMMENT.search(line), (
                f"{path.name}: add the tag as a comment: {line.strip()}"
            )


@pytest.mark.parametrize("path", workflow_files(), ids=lambda p: p.name)
def test_permissions_are_declared_and_minimal(path: Path) -> None:
    workflow = load_workflow(path)
    assert "permissions" in workflow, f"{path.name} must declare top-level permissions"
    assert workflow["permissions"] in ({}, {"contents": "read"})
    for job_id, job in workflow["jobs"].items():
        for scope, level in (job.get("permissions") or {}).items():
            if level == "write":
                assert (path.name, scope) in {
                    ("deploy.yml", "id-token"),
                    ("status.yml", "id-token"),
                    ("status.yml", "pages"),
                }, f"{path.name}/{job_id} asks for {scope}: write"


@pytest.mark.parametrize("path", workflow_files(), ids=lambda p: p.name)
def test_no_stored_aws_keys_and_no_persisted_git_credentials(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert "aws-access-key-id" not in text
    assert "AWS_SECRET_ACCESS_KEY" not in text
    for _, step in iter_steps(load_workflow(path)):
        if str(step.get("uses", "")).startswith("actions/checkout@"):
            assert step["with"]["persist-credentials"] is False


def test_ci_runs_lint_tests_build_and_scans() -> None:
    ci = load_workflow(WORKFLOWS_DIR / "ci.yml")
    assert {"pull_request", "push"} <= set(ci["on"])
    commands = _run_text(ci)
    for command in (
        "make lint",
        "make test",
        "make build",
        "make checkov",
        "make zizmor",
        "make action-validator",
        "make tools",
    ):
        assert command in commands, f"ci.yml does not run `{command}`"


def test_deploy_triggers_and_optional_model_version(deploy: dict[str, Any]) -> None:
    assert deploy["on"]["push"]["branches"] == ["main"]
    model_version = deploy["on"]["workflow_dispatch"]["inputs"]["model_version"]
    assert model_version["required"] is False


def test_deploys_never_overlap(deploy: dict[str, Any]) -> None:
    concurrency = deploy["concurrency"]
    assert concurrency["group"].startswith("deploy-")
    assert concurrency["cancel-in-progress"] is False


def test_deploy_pipeline_order(deploy: dict[str, Any]) -> None:
    job = deploy["jobs"]["deploy"]
    assert job["needs"] == "test"
    assert "make test" in _run_text(deploy, "test")
    assert job["permissions"] == {"contents": "read", "id-token": "write"}

    # (what, step key, text the step must contain), in the order they must run.
    stages = [
        ("assume the role", "uses", "configure-aws-credentials@"),
        ("pull the model", "run", "-m training pull"),
        ("bentoml build", "run", "bentoml build"),
        ("containerize and push", "run", "bentoml containerize"),
        ("render", "uses", "amazon-ecs-render-task-definition@"),
        ("deploy", "uses", "amazon-ecs-deploy-task-definition@"),
    ]
    steps = job["steps"]
    positions = []
    for label, key, needle in stages:
        found = [index for index, step in enumerate(steps) if needle in str(step.get(key, ""))]
        assert found, f"deploy job has no step to {label}"
        positions.append(found[0])
    assert positions == sorted(positions), "deploy steps are out of order"

    push = next(step for step in steps if "bentoml containerize" in str(step.get("run", "")))
    assert "docker push" in push["run"]
    assert "latest" not in push["run"], "images are pushed with an immutable tag only"
    assert "GITHUB_SHA" in push["run"]

    credentials = next(
        step for step in steps if "configure-aws-credentials@" in str(step.get("uses", ""))
    )
    assert "role-to-assume" in credentials["with"]

    ecs_deploy = steps[positions[-1]]
    assert ecs_deploy["with"]["wait-for-service-stability"] is True


def test_model_version_never_expands_inside_a_shell(deploy: dict[str, Any]) -> None:
    assert "inputs.model_version" not in _run_text(deploy)


def test_status_workflow_probes_healthz_and_publishes_pages() -> None:
    status = load_workflow(WORKFLOWS_DIR / "status.yml")
    assert status["on"]["schedule"], "the status page is refreshed on a schedule"
    assert "/healthz" in _run_text(status)
    assert "actions/upload-pages-artifact" in _uses(status, "probe")
    assert "actions/deploy-pages" in _uses(status, "publish")
    assert status["jobs"]["publish"]["environment"]["name"] == "github-pages"
