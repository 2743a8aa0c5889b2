"""The Terraform root honours the service's contract (parsed with python-hcl2, no providers)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from bento.settings import ENV_PREFIX, ServiceSettings
from tests.infra.conftest import TERRAFORM_DIR, Terraform, parse_hcl

ALL_TF_FILES = sorted(TERRAFORM_DIR.glob("*.tf"))
TFVARS_FILES = sorted((TERRAFORM_DIR / "environments").glob("*.tfvars"))

TASK_ROLE_ALLOWED_ACTIONS = {
    "s3:GetObject",
    "cloudwatch:PutMetricData",
    "logs:CreateLogStream",
    "logs:PutLogEvents",
}
# The service's measured timings (terraform/README.md, "Sizing").
MEASURED_STARTUP_SECONDS = 13
LONGEST_REQUEST_SECONDS = 2
FARGATE_MAX_STOP_TIMEOUT = 120


def _statements(terraform: Terraform, document: str) -> list[dict[str, Any]]:
    policy = terraform.data["aws_iam_policy_document"][document]
    statements: list[dict[str, Any]] = policy["statement"]
    assert statements, f"policy document {document} has no statements"
    return statements


def _settings_env_names() -> set[str]:
    """The names ServiceSettings reads, derived from the class itself."""
    return {ENV_PREFIX + name.upper() for name in ServiceSettings.model_fields}


# ---------------------------------------------------------------- layout and conventions


@pytest.mark.parametrize("path", ALL_TF_FILES, ids=lambda p: p.name)
def test_every_tf_file_parses(path: Path) -> None:
    assert parse_hcl(path), f"{path.name} parsed to nothing"


@pytest.mark.parametrize(
    "name", ["main.tf", "variables.tf", "outputs.tf", "versions.tf", "README.md"]
)
def test_root_has_the_standard_files(name: str) -> None:
    assert (TERRAFORM_DIR / name).is_file()


def _minimum_version(constraint: str) -> tuple[int, int]:
    match = re.fullmatch(r">=\s*(\d+)\.(\d+)(\.\d+)?", constraint)
    assert match, f"required_version should be a plain minimum, got {constraint!r}"
    return int(match.group(1)), int(match.group(2))


def test_terraform_version_provider_pin_and_configurable_s3_backend(terraform: Terraform) -> None:
    (block,) = terraform.terraform_blocks
    minimum = _minimum_version(block["required_version"])
    # Features the root uses, and the release that brought each.
    needed = [(1, 9)]  # validations that read other variables (keep_alive_s, production guards)
    backends = sorted((TERRAFORM_DIR / "environments").glob("*.s3.tfbackend"))
    assert backends
    if any("use_lockfile" in parse_hcl(path) for path in backends):
        needed.append((1, 10))  # the S3 backend's use_lockfile
    assert minimum >= max(needed), (
        f"required_version {block['required_version']} predates the features used {max(needed)}"
    )
    (providers,) = block["required_providers"]
    aws = providers["aws"]
    assert aws["source"] == "hashicorp/aws"
    assert re.fullmatch(r"~>\s*\d+\.\d+(\.\d+)?", aws["version"]), (
        "pin the AWS provider to one major"
    )
    (backend,) = block["backend"]
    assert "s3" in backend
    assert not backend["s3"], "leave the S3 backend partial; settings come from -backend-config"


def test_every_variable_is_typed_and_described(terraform: Terraform) -> None:
    missing = [
        name
        for name, body in terraform.variables.items()
        if not body.get("type") or len(str(body.get("description", ""))) < 10
    ]
    assert not missing, f"variables without type or description: {missing}"


def test_every_output_is_described(terraform: Terraform) -> None:
    assert all(body.get("description") for body in terraform.outputs.values())


def test_locals_define_name_and_tags(terraform: Terraform) -> None:
    assert "name" in terraform.locals
    assert "tags" in terraform.locals


@pytest.mark.parametrize("path", TFVARS_FILES, ids=lambda p: p.name)
def test_environment_tfvars_set_only_declared_variables(path: Path, terraform: Terraform) -> None:
    values = parse_hcl(path)
    unknown = set(values) - set(terraform.variables)
    assert not unknown, f"{path.name} sets undeclared variables: {unknown}"
    assert values["environment"] == path.stem
    required = {name for name, body in terraform.variables.items() if "default" not in body}
    assert required <= set(values), (
        f"{path.name} misses required variables {required - set(values)}"
    )


def test_an_example_per_environment() -> None:
    assert {path.stem for path in TFVARS_FILES} == {"staging", "production"}


def test_no_long_lived_credentials(terraform: Terraform) -> None:
    forbidden = {"aws_iam_user", "aws_iam_access_key", "aws_iam_user_policy"}
    assert not forbidden & set(terraform.resources)


# ---------------------------------------------------------------- network and load balancer


def test_two_public_and_two_private_subnets(terraform: Terraform) -> None:
    suffixes = terraform.resolve("${var.availability_zone_suffixes}")
    assert len(suffixes) == 2
    assert terraform.resource("aws_subnet", "public")["map_public_ip_on_launch"] is False
    assert "aws_subnet" in terraform.resources
    assert set(terraform.resources["aws_subnet"]) == {"public", "private"}
    service = terraform.resource("aws_ecs_service", "this")
    (network,) = service["network_configuration"]
    # The network profile picks the subnets (tests/infra/test_network_cost.py).
    assert network["subnets"] == "${local.task_subnet_ids}"
    assert network["assign_public_ip"] == "${local.tasks_in_public_subnets}"


def test_service_security_group_admits_only_the_alb(terraform: Terraform) -> None:
    rules = terraform.resources["aws_vpc_security_group_ingress_rule"]
    service_rules = [
        rule for rule in rules.values() if "security_group.service" in rule["security_group_id"]
    ]
    assert service_rules
    for rule in service_rules:
        assert "aws_security_group.alb.id" in rule["referenced_security_group_id"]
        assert "cidr_ipv4" not in rule


def test_target_group_is_ip_on_3000_with_readyz_health_check(terraform: Terraform) -> None:
    group = terraform.resource("aws_lb_target_group", "service")
    assert group["target_type"] == "ip"
    assert terraform.resolve(group["port"]) == 3000
    (check,) = group["health_check"]
    assert terraform.resolve(check["path"]) == "/readyz"
    assert str(check["matcher"]) == "200"


def test_https_listener_with_certificate_when_a_domain_is_given(terraform: Terraform) -> None:
    https = terraform.resource("aws_lb_listener", "https")
    assert https["port"] == 443
    assert "local.tls_enabled" in https["count"]
    assert "TLS13" in https["ssl_policy"]
    assert "var.domain_name" in terraform.locals["tls_enabled"]
    assert terraform.resource("aws_lb_listener", "http")["port"] == 80


def test_shutdown_and_startup_timings_fit_together(terraform: Terraform) -> None:
    group = terraform.resource("aws_lb_target_group", "service")
    delay = terraform.resolve(group["deregistration_delay"])
    stop_timeout = terraform.resolve("${local.stop_timeout_seconds}")
    grace = terraform.resolve(
        terraform.resource("aws_ecs_service", "this")["health_check_grace_period_seconds"]
    )
    (check,) = group["health_check"]
    # Draining outlasts the longest request, and SIGKILL comes only after the drain had time.
    assert LONGEST_REQUEST_SECONDS < delay <= stop_timeout <= FARGATE_MAX_STOP_TIMEOUT
    assert 20 <= stop_timeout <= 60
    # The grace covers the slowest measured start plus the checks needed to turn healthy.
    assert grace >= MEASURED_STARTUP_SECONDS + check["healthy_threshold"] * check["interval"]
    assert grace <= 120, "a long grace hides tasks that never become ready"


# ---------------------------------------------------------------- ECS


def test_task_is_256_cpu_512_mb_fargate(terraform: Terraform) -> None:
    task = terraform.resource("aws_ecs_task_definition", "service")
    assert terraform.resolve(task["cpu"]) == 256
    assert terraform.resolve(task["memory"]) == 512
    assert task["requires_compatibilities"] == ["FARGATE"]
    assert task["network_mode"] == "awsvpc"
    assert "aws_iam_role.execution" in task["execution_role_arn"]
    assert "aws_iam_role.task" in task["task_role_arn"]


def test_container_definition_port_stop_timeout_image_and_environment(terraform: Terraform) -> None:
    definition = terraform.resource("aws_ecs_task_definition", "service")["container_definitions"]
    assert re.search(r"containerPort\s*=\s*local\.container_port", definition)
    assert terraform.resolve("${local.container_port}") == 3000
    assert re.search(r"stopTimeout\s*=\s*local\.stop_timeout_seconds", definition)
    assert re.search(r"environment\s*=\s*local\.task_environment", definition)
    assert re.search(r"image\s*=\s*local\.image\b", definition)
    image = terraform.locals["image"]
    assert image.endswith(":${var.image_tag}"), "the image is addressed by its tag variable"
    assert "latest" in str(terraform.variables["image_tag"]["validation"]), (
        "moving tags are refused"
    )
    ecr = terraform.resource("aws_ecr_repository", "service")
    assert ecr["image_tag_mutability"] == "IMMUTABLE"


def test_container_environment_uses_only_settings_names(terraform: Terraform) -> None:
    allowed = _settings_env_names()
    declared = set(terraform.locals["container_environment"]) | set(
        terraform.locals["optional_container_environment"]
    )
    assert declared, "the container environment is empty"
    assert declared <= allowed, f"not fields of ServiceSettings: {sorted(declared - allowed)}"
    # The list handed to ECS is built from exactly those two maps.
    task_environment = terraform.locals["task_environment"]
    assert "local.container_environment" in task_environment
    assert "local.optional_container_environment" in task_environment
    # Belt and braces: no WINEQ_ name anywhere in terraform/ that the class does not read.
    mentioned = {
        name
        for text in terraform.text.values()
        for name in re.findall(r"\b" + ENV_PREFIX + r"[A-Z0-9_]+\b", text)
    }
    assert mentioned <= allowed, (
        f"unknown WINEQ_ names in terraform/: {sorted(mentioned - allowed)}"
    )


def test_settings_names_are_read_from_the_class() -> None:
    names = _settings_env_names()
    assert "WINEQ_ENGINE" in names
    assert all(name.startswith(ENV_PREFIX) for name in names)


def test_service_rolls_back_on_failed_deployments_and_alarms(terraform: Terraform) -> None:
    service = terraform.resource("aws_ecs_service", "this")
    (breaker,) = service["deployment_circuit_breaker"]
    assert breaker == {"enable": True, "rollback": True}
    (alarms,) = service["alarms"]
    assert alarms["enable"] is True
    assert alarms["rollback"] is True
    assert any("error_rate" in name for name in alarms["alarm_names"])
    assert any("latency_p99" in name for name in alarms["alarm_names"])
    assert service["launch_type"] == "FARGATE"
    (balancer,) = service["load_balancer"]
    assert terraform.resolve(balancer["container_port"]) == 3000


def test_autoscaling_on_request_count_per_target(terraform: Terraform) -> None:
    target = terraform.resource("aws_appautoscaling_target", "service")
    assert target["min_capacity"] == "${var.min_tasks}"
    assert target["max_capacity"] == "${var.max_tasks}"
    policy = terraform.resource("aws_appautoscaling_policy", "requests_per_target")
    (config,) = policy["target_tracking_scaling_policy_configuration"]
    (metric,) = config["predefined_metric_specification"]
    assert metric["predefined_metric_type"] == "ALBRequestCountPerTarget"


# ---------------------------------------------------------------- IAM


def test_task_role_actions_are_exactly_the_allowed_set(terraform: Terraform) -> None:
    statements = _statements(terraform, "task")
    actions = {action for statement in statements for action in statement["actions"]}
    assert actions == TASK_ROLE_ALLOWED_ACTIONS
    assert all(statement.get("effect", "Allow") == "Allow" for statement in statements)
    by_action = {action: statement for statement in statements for action in statement["actions"]}
    assert by_action["s3:GetObject"]["resources"] == [
        "${aws_s3_bucket.models.arn}/${local.model_prefix}/*"
    ]
    (condition,) = by_action["cloudwatch:PutMetricData"]["condition"]
    assert condition["variable"] == "cloudwatch:namespace"
    assert condition["test"] == "StringEquals"
    for action in ("logs:CreateLogStream", "logs:PutLogEvents"):
        assert by_action[action]["resources"] == ["${aws_cloudwatch_log_group.service.arn}:*"]


def test_task_role_has_no_other_policies(terraform: Terraform) -> None:
    attached = [
        body
        for kind in ("aws_iam_role_policy", "aws_iam_role_policy_attachment")
        for body in terraform.resources.get(kind, {}).values()
        if body["role"].startswith("${aws_iam_role.task.")
    ]
    assert len(attached) == 1
    assert attached[0]["policy"] == "${data.aws_iam_policy_document.task.json}"


def test_execution_role_only_pulls_this_image_and_writes_logs(terraform: Terraform) -> None:
    actions = {
        action
        for statement in _statements(terraform, "execution")
        for action in statement["actions"]
    }
    assert actions == {
        "ecr:GetAuthorizationToken",
        "ecr:BatchCheckLayerAvailability",
        "ecr:BatchGetImage",
        "ecr:GetDownloadUrlForLayer",
        "logs:CreateLogStream",
        "logs:PutLogEvents",
    }


def test_github_deploy_role_trusts_one_repository_environment(terraform: Terraform) -> None:
    (statement,) = _statements(terraform, "github_assume")
    assert statement["actions"] == ["sts:AssumeRoleWithWebIdentity"]
    conditions = {condition["variable"]: condition for condition in statement["condition"]}
    subject = conditions["token.actions.githubusercontent.com:sub"]
    assert subject["test"] == "StringEquals"
    assert subject["values"] == [
        "repo:${var.github_repository}:environment:${var.github_environment}"
    ]
    assert conditions["token.actions.githubusercontent.com:aud"]["values"] == ["sts.amazonaws.com"]


def test_github_deploy_role_is_scoped_to_this_repository_and_service(terraform: Terraform) -> None:
    for statement in _statements(terraform, "github_deploy"):
        resources = statement["resources"]
        if resources == ["*"]:
            # Only actions AWS offers without resource-level permissions may use "*".
            assert set(statement["actions"]) <= {
                "ecr:GetAuthorizationToken",
                "ecs:DescribeTaskDefinition",
                "ecs:RegisterTaskDefinition",
            }
        elif statement["actions"] == ["ecs:TagResource"]:
            # Tagging on creation, this family only (tests/infra/test_deploy_iam.py).
            assert resources == ["${local.task_definition_revisions_arn}"]
        elif any(action.startswith("ecr:") for action in statement["actions"]):
            assert resources == ["${aws_ecr_repository.service.arn}"]
        elif any(action.startswith("ecs:") for action in statement["actions"]):
            assert resources == ["${local.ecs_service_arn}"]
        elif statement["actions"] == ["iam:PassRole"]:
            assert set(resources) == {"${aws_iam_role.execution.arn}", "${aws_iam_role.task.arn}"}


# ---------------------------------------------------------------- storage


def test_model_bucket_versioned_encrypted_private_and_tls_only(terraform: Terraform) -> None:
    (versioning,) = terraform.resource("aws_s3_bucket_versioning", "models")[
        "versioning_configuration"
    ]
    assert versioning["status"] == "Enabled"

    (rule,) = terraform.resource("aws_s3_bucket_server_side_encryption_configuration", "models")[
        "rule"
    ]
    (default,) = rule["apply_server_side_encryption_by_default"]
    assert default["sse_algorithm"] in {"aws:kms", "AES256"}

    block = terraform.resource("aws_s3_bucket_public_access_block", "models")
    for setting in (
        "block_public_acls",
        "block_public_policy",
        "ignore_public_acls",
        "restrict_public_buckets",
    ):
        assert block[setting] is True, setting

    statements = _statements(terraform, "models_bucket")
    tls_denials = [
        statement
        for statement in statements
        if statement["effect"] == "Deny"
        and any(
            condition["variable"] == "aws:SecureTransport" and condition["values"] == ["false"]
            for condition in statement.get("condition", [])
        )
    ]
    assert tls_denials, "the bucket policy must deny requests without TLS"
    policy = terraform.resource("aws_s3_bucket_policy", "models")
    assert policy["policy"] == "${data.aws_iam_policy_document.models_bucket.json}"


def test_ecr_repository_immutable_scanned_with_lifecycle(terraform: Terraform) -> None:
    repository = terraform.resource("aws_ecr_repository", "service")
    assert repository["image_tag_mutability"] == "IMMUTABLE"
    (scanning,) = repository["image_scanning_configuration"]
    assert scanning["scan_on_push"] is True
    lifecycle = terraform.resource("aws_ecr_lifecycle_policy", "service")
    assert lifecycle["repository"] == "${aws_ecr_repository.service.name}"


# ---------------------------------------------------------------- observability


def test_log_group_has_retention(terraform: Terraform) -> None:
    group = terraform.resource("aws_cloudwatch_log_group", "service")
    assert terraform.resolve(group["retention_in_days"]) in range(1, 3654)


def test_dashboard_shows_the_agreed_metrics(terraform: Terraform) -> None:
    text = json.dumps(terraform.locals)
    for metric in (
        "RequestCount",
        "HTTPCode_Target_5XX_Count",
        "TargetResponseTime",
        "HealthyHostCount",
        "UnHealthyHostCount",
        "CPUUtilization",
        "MemoryUtilization",
    ):
        assert f'"{metric}"' in text, f"dashboard misses {metric}"
    assert '"p50"' in text
    assert '"p99"' in text
    dashboard = terraform.resource("aws_cloudwatch_dashboard", "service")
    assert "local.dashboard_widgets" in dashboard["dashboard_body"]
    # One file owns the definition, so a later issue extends it in one place.
    defining = [name for name, text in terraform.text.items() if "dashboard_widgets" in text]
    assert defining == ["dashboard.tf"]


def test_alarms_for_errors_latency_and_unhealthy_hosts(terraform: Terraform) -> None:
    alarms = terraform.resources["aws_cloudwatch_metric_alarm"]
    assert {"error_rate", "latency_p99", "unhealthy_hosts"} <= set(alarms)
    stats = [
        metric["stat"]
        for query in alarms["latency_p99"]["metric_query"]
        for metric in query.get("metric", [])
        if metric["metric_name"] == "TargetResponseTime"
    ]
    assert stats == ["p99"]
    assert alarms["unhealthy_hosts"]["metric_name"] == "UnHealthyHostCount"
    expressions = [query.get("expression", "") for query in alarms["error_rate"]["metric_query"]]
    assert any("5xx" in expression for expression in expressions)


def test_readme_covers_order_variables_and_costs(terraform: Terraform) -> None:
    readme = (TERRAFORM_DIR / "README.md").read_text(encoding="utf-8")
    for heading in ("## Apply", "## Destroy", "## Variables", "## Cost"):
        assert heading in readme, f"README misses {heading}"
    assert re.search(r"^\|.*\$.*\|$", readme, flags=re.MULTILINE), "README needs a cost table"
    undocumented = [name for name in terraform.variables if f"`{name}`" not in readme]
    assert not undocumented, f"README does not list variables {undocumented}"
