"""The deploy role may register tagged task definitions; only main's deploy workflow assumes it."""

from __future__ import annotations

import re
from typing import Any

from tests.infra.conftest import WORKFLOWS_DIR, Terraform, load_workflow

CLAIM = "token.actions.githubusercontent.com:"


def _statements(terraform: Terraform, document: str) -> list[dict[str, Any]]:
    statements: list[dict[str, Any]] = terraform.data["aws_iam_policy_document"][document][
        "statement"
    ]
    return statements


def _expand(terraform: Terraform, value: str) -> str:
    """Replace each `${local.x}` inside a string by the local's own text, recursively."""

    def expand(match: re.Match[str]) -> str:
        resolved = terraform.resolve(match.group(0))
        assert isinstance(resolved, str), f"local.{match.group(1)} is not a string"
        return _expand(terraform, resolved)

    return re.sub(r"\$\{local\.([A-Za-z0-9_]+)\}", expand, value)


def test_deploy_role_may_tag_only_new_revisions_of_the_service_family(
    terraform: Terraform,
) -> None:
    tagging = [
        statement
        for statement in _statements(terraform, "github_deploy")
        if "ecs:TagResource" in statement["actions"]
    ]
    assert len(tagging) == 1, "the deploy role needs ecs:TagResource to register tagged revisions"
    (statement,) = tagging
    assert statement["actions"] == ["ecs:TagResource"]
    assert statement.get("effect", "Allow") == "Allow"

    # The family's revisions, and nothing else.
    (resource,) = statement["resources"]
    family = terraform.resource("aws_ecs_task_definition", "service")["family"]
    assert _expand(terraform, resource).endswith(
        f":task-definition/{_expand(terraform, family)}:*"
    ), resource
    assert ":ecs:" in _expand(terraform, resource)

    # Only while the task definition is being registered.
    (condition,) = statement["condition"]
    assert condition["test"] == "StringEquals"
    assert condition["variable"] == "ecs:CreateAction"
    assert condition["values"] == ["RegisterTaskDefinition"]


def test_deploy_role_is_assumed_only_by_the_deploy_workflow_on_main(terraform: Terraform) -> None:
    (statement,) = _statements(terraform, "github_assume")
    conditions = {condition["variable"]: condition for condition in statement["condition"]}
    # Every condition is an exact match: no wildcard opens another branch or workflow.
    assert {condition["test"] for condition in statement["condition"]} == {"StringEquals"}

    (subject,) = conditions[CLAIM + "sub"]["values"]
    assert subject == "repo:${var.github_repository}:environment:${var.github_environment}"

    # The environment alone does not fix the branch: a dispatch from any branch runs in it.
    (workflow_ref,) = conditions[CLAIM + "job_workflow_ref"]["values"]
    assert _expand(terraform, workflow_ref) == (
        "${var.github_repository}/.github/workflows/deploy.yml@refs/heads/main"
    )


def test_the_trusted_workflow_is_the_one_that_deploys_and_main_triggers_it() -> None:
    deploy = load_workflow(WORKFLOWS_DIR / "deploy.yml")
    assert deploy["on"]["push"]["branches"] == ["main"]
    # Every job that assumes the role runs in an environment (the sub claim above).
    for job_id, job in deploy["jobs"].items():
        steps = job.get("steps", [])
        if any("configure-aws-credentials@" in str(step.get("uses", "")) for step in steps):
            assert job.get("environment"), f"{job_id} assumes the role outside an environment"
            assert job["permissions"].get("id-token") == "write"
