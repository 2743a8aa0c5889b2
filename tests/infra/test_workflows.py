"""The GitHub workflows do what the delivery contract says (parsed YAML, no network)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from bento.schemas import PredictRequest
from tests.infra.conftest import WORKFLOWS_DIR, iter_steps, load_workflow, workflow_files

PINNED_USES = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")
STRICT_BASH = re.compile(r"^bash\b.*(-\w*e\w*o pipefail|-o pipefail)")
BUILD_COMMANDS = ("bentoml build", "bentoml containerize", "docker build", "make build")
DEPLOY_CLI = ".venv/bin/python -m training.deploy"
# The rollout's targets come from the environment's variables (terraform output).
ROLLOUT_FLAGS = {
    "--cluster": "ECS_CLUSTER",
    "--service": "ECS_SERVICE",
    "--family": "TASK_FAMILY",
    "--container": "CONTAINER_NAME",
}
VERSION_COMMENT = re.compile(r"uses:\s*\S+@[0-9a-f]{40}\s+#\s*v\d+(\.\d+){0,2}\s*$")


@pytest.fixture(scope="module")
def deploy() -> dict[str, Any]:
    return load_workflow(WORKFLOWS_DIR / "deploy.yml")


def _run_text(workflow: dict[str, Any], job: str | None = None) -> str:
    return "\n".join(
        str(step.get("run", "")) for job_id, step in iter_steps(workflow) if job in (None, job_id)
    )


def _steps(workflow: dict[str, Any], job: str) -> list[dict[str, Any]]:
    steps: list[dict[str, Any]] = workflow["jobs"][job]["steps"]
    return steps


def _step(workflow: dict[str, Any], job: str, key: str, needle: str) -> tuple[int, dict[str, Any]]:
    """Index and body of the first step of ``job`` whose ``key`` contains ``needle``."""
    for index, step in enumerate(_steps(workflow, job)):
        if needle in str(step.get(key, "")):
            return index, step
    raise AssertionError(f"{job} has no step whose {key} contains {needle!r}")


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


@pytest.mark.parametrize("path", workflow_files(), ids=lambda p: p.name)
def test_shell_steps_run_with_pipefail(path: Path) -> None:
    workflow = load_workflow(path)
    shell = workflow["defaults"]["run"]["shell"]
    assert STRICT_BASH.match(shell), f"{path.name}: defaults.run.shell must set -e and pipefail"
    assert "{0}" in shell
    assert re.search(r"-\w*u", shell), "unset variables are errors too"
    for job_id, step in iter_steps(workflow):
        # A step-level shell would escape the default.
        assert "shell" not in step or STRICT_BASH.match(step["shell"]), f"{job_id}: {step}"


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


def test_ci_initialises_validates_and_tests_terraform() -> None:
    ci = load_workflow(WORKFLOWS_DIR / "ci.yml")
    job = "iac-scan"
    setup, setup_step = _step(ci, job, "uses", "hashicorp/setup-terraform@")
    version = str(setup_step["with"]["terraform_version"])
    assert tuple(int(part) for part in version.split(".")[:2]) >= (1, 10)
    fmt, _ = _step(ci, job, "run", "make terraform-fmt")
    init, init_step = _step(ci, job, "run", "terraform -chdir=terraform init")
    assert "-backend=false" in init_step["run"], "CI has no state bucket: init without backend"
    validate, _ = _step(ci, job, "run", "terraform -chdir=terraform validate")
    test, _ = _step(ci, job, "run", "terraform -chdir=terraform test")
    assert setup < fmt
    assert setup < init < validate < test


def test_deploy_triggers_and_manual_inputs(deploy: dict[str, Any]) -> None:
    assert deploy["on"]["push"]["branches"] == ["main"]
    inputs = deploy["on"]["workflow_dispatch"]["inputs"]
    assert inputs["model_version"]["required"] is False
    assert inputs["image_tag"]["required"] is False
    assert inputs["image_tag"]["default"] == ""
    assert set(inputs["environment"]["options"]) == {"production", "staging"}


def test_deploys_of_one_environment_never_overlap(deploy: dict[str, Any]) -> None:
    groups = {}
    for job_id in ("staging", "production", "rollback"):
        concurrency = deploy["jobs"][job_id]["concurrency"]
        assert concurrency["cancel-in-progress"] is False, job_id
        groups[job_id] = concurrency["group"]
    assert groups["staging"] == "deploy-staging"
    assert groups["production"] == "deploy-production"
    assert groups["rollback"] == "deploy-${{ inputs.environment }}"


def test_one_image_is_built_in_staging_and_promoted_to_production(
    deploy: dict[str, Any],
) -> None:
    jobs = deploy["jobs"]
    assert jobs["staging"]["needs"] == "test"
    assert jobs["production"]["needs"] == "staging"
    assert jobs["staging"]["environment"]["name"] == "staging"
    assert jobs["production"]["environment"]["name"] == "production"
    assert "make test" in _run_text(deploy, "test")

    # (what, step key, text the step must contain), in the order they must run.
    stages = [
        ("install", "run", "make install"),
        ("assume the role", "uses", "configure-aws-credentials@"),
        ("log in to ECR", "uses", "amazon-ecr-login@"),
        ("build", "run", f"{DEPLOY_CLI} build"),
        ("push", "run", f"{DEPLOY_CLI} push"),
        ("keep the image", "uses", "actions/upload-artifact@"),
        ("roll out", "run", f"{DEPLOY_CLI} rollout"),
    ]
    positions = [_step(deploy, "staging", key, needle)[0] for _, key, needle in stages]
    assert positions == sorted(positions), "staging steps are out of order"
    _, build = _step(deploy, "staging", "run", f"{DEPLOY_CLI} build")
    assert build["env"]["MODEL_VERSION"] == "${{ inputs.model_version }}"
    assert '--repository "$REGISTRY/$REPOSITORY"' in build["run"]
    assert "-dirty" in build["run"], "a tag from a modified checkout is never pushed"
    _, push = _step(deploy, "staging", "run", f"{DEPLOY_CLI} push")
    assert push["env"]["IMAGE"] == "${{ steps.build.outputs.image }}"
    assert "latest" not in push["run"], "images are pushed with an immutable tag only"
    # The saved image is the registry's, also when a re-run finds the tag pushed already.
    assert push["run"].index("docker pull") < push["run"].index("docker save")
    outputs = jobs["staging"]["outputs"]
    assert outputs["image_tag"] == "${{ steps.image.outputs.tag }}"
    assert outputs["image_id"] == "${{ steps.image.outputs.id }}"

    # Production builds nothing: it loads staging's image, checks its ID, pushes it
    # under the same tag and rolls it out.
    production = _run_text(deploy, "production")
    assert not any(command in production for command in BUILD_COMMANDS)
    assert f"{DEPLOY_CLI} build" not in production
    assert f"{DEPLOY_CLI} release" not in production
    stages = [
        ("install", "run", "make install"),
        ("fetch the image", "uses", "actions/download-artifact@"),
        ("check the image ID", "run", "docker load"),
        ("assume the role", "uses", "configure-aws-credentials@"),
        ("push the same image", "run", f"{DEPLOY_CLI} push"),
        ("roll out", "run", f"{DEPLOY_CLI} rollout"),
    ]
    positions = [_step(deploy, "production", key, needle)[0] for _, key, needle in stages]
    assert positions == sorted(positions), "production steps are out of order"
    _, load = _step(deploy, "production", "run", "docker load")
    assert load["env"]["IMAGE_ID"] == "${{ needs.staging.outputs.image_id }}"
    assert "$IMAGE_ID" in load["run"]
    assert "exit 1" in load["run"]
    _, promote = _step(deploy, "production", "run", f"{DEPLOY_CLI} push")
    assert promote["env"]["TAG"] == "${{ needs.staging.outputs.image_tag }}"
    assert promote["env"]["SOURCE_IMAGE"] == "${{ steps.source.outputs.image }}"
    _, upload = _step(deploy, "staging", "uses", "actions/upload-artifact@")
    _, download = _step(deploy, "production", "uses", "actions/download-artifact@")
    assert upload["with"]["name"] == download["with"]["name"]


@pytest.mark.parametrize("job_id", ["staging", "production", "rollback"])
def test_every_deploying_job_rolls_out_through_the_shared_command(
    deploy: dict[str, Any], job_id: str
) -> None:
    _, credentials = _step(deploy, job_id, "uses", "configure-aws-credentials@")
    assert "role-to-assume" in credentials["with"]
    for use in ("actions/checkout", "actions/setup-python"):
        assert use in _uses(deploy, job_id), f"{job_id} runs Python: it needs {use}"
    _, rollout = _step(deploy, job_id, "run", f"{DEPLOY_CLI} rollout")
    command = " ".join(rollout["run"].replace("\\\n", " ").split())
    for flag, variable in ROLLOUT_FLAGS.items():
        assert f'{flag} "${variable}"' in command, f"{job_id}: rollout without {flag}"
        assert rollout["env"][variable] == f"${{{{ vars.{variable} }}}}"
    assert rollout["env"]["IMAGE"] == "${{ steps.image.outputs.image }}"
    assert re.search(r"--timeout-minutes \d+", command), "the wait has a time limit"


def test_no_job_builds_or_deploys_beside_the_shared_command(deploy: dict[str, Any]) -> None:
    # One implementation: the workflow neither containerizes nor renders and deploys
    # task definitions itself.
    for job_id in deploy["jobs"]:
        uses = _uses(deploy, job_id)
        assert not any(use.startswith("aws-actions/amazon-ecs-") for use in uses), job_id
        text = _run_text(deploy, job_id)
        assert not any(command in text for command in BUILD_COMMANDS), job_id
        assert "docker push" not in text, f"{job_id}: push through {DEPLOY_CLI} push"
        assert "aws ecs " not in text, job_id


def test_manual_run_with_an_image_tag_rolls_back_without_building(
    deploy: dict[str, Any],
) -> None:
    jobs = deploy["jobs"]
    # The tag selects the rollback job and skips the tests, the build and the promotion.
    assert jobs["rollback"]["if"] == "inputs.image_tag != ''"
    assert jobs["test"]["if"] == "inputs.image_tag == ''"
    assert jobs["staging"]["if"] == "inputs.image_tag == ''"
    assert jobs["production"]["needs"] == "staging", "skipped with staging on a rollback"
    assert "needs" not in jobs["rollback"]
    assert jobs["rollback"]["environment"]["name"] == "${{ inputs.environment }}"

    rollback = _run_text(deploy, "rollback")
    assert not any(command in rollback for command in BUILD_COMMANDS)
    for command in ("build", "push", "release"):
        assert f"{DEPLOY_CLI} {command}" not in rollback
    _, check = _step(deploy, "rollback", "run", "=~")
    assert check["env"]["TAG"] == "${{ inputs.image_tag }}"
    find_at, find = _step(deploy, "rollback", "run", "aws ecr describe-images")
    assert find["env"]["TAG"] == "${{ inputs.image_tag }}"
    assert "$TAG" in find["run"]
    assert "GITHUB_OUTPUT" in find["run"]
    rollout_at, _ = _step(deploy, "rollback", "run", f"{DEPLOY_CLI} rollout")
    assert find_at < rollout_at


def test_inputs_never_expand_inside_a_shell(deploy: dict[str, Any]) -> None:
    text = _run_text(deploy)
    assert "inputs.model_version" not in text
    assert "inputs.image_tag" not in text
    assert "${{" not in text, "pass values to shell steps through env"


def test_status_workflow_probes_readiness_and_a_real_prediction() -> None:
    status = load_workflow(WORKFLOWS_DIR / "status.yml")
    assert status["on"]["schedule"], "the status page is refreshed on a schedule"
    probe = _run_text(status, "probe")
    # /healthz stays 200 with no model loaded: it proves nothing to a client.
    assert "/healthz" not in probe
    assert '"$SERVICE_URL/readyz"' in probe
    assert '"$SERVICE_URL/predict"' in probe
    assert "--request POST" in probe
    assert '--data "$PREDICT_BODY"' in probe
    assert "content-type: application/json" in probe
    assert "actions/upload-pages-artifact" in _uses(status, "probe")
    assert "actions/deploy-pages" in _uses(status, "publish")
    assert status["jobs"]["publish"]["environment"]["name"] == "github-pages"


def test_status_workflow_sends_a_valid_prediction_request() -> None:
    status = load_workflow(WORKFLOWS_DIR / "status.yml")
    _, probe = _step(status, "probe", "run", "/predict")
    body = probe["env"]["PREDICT_BODY"]
    request = PredictRequest.model_validate_json(body)
    assert request.request_id == "status-page"
