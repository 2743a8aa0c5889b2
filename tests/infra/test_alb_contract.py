"""Behind the ALB: what it forwards, to whom, the keep-alive it shares with the service,
and the listener the service waits for (parsed HCL; terraform/tests/ plans the same)."""

from __future__ import annotations

import ipaddress
import re
from typing import Any

import pytest

from bento.guard import BATCH_ROUTE, PREDICT_ROUTE
from bento.settings import ServiceSettings
from tests.infra.conftest import TERRAFORM_DIR, Terraform, parse_hcl

# ALB limits: values per condition, values per rule, idle timeout range.
ALB_MAX_VALUES_PER_CONDITION = 3
ALB_MAX_VALUES_PER_RULE = 5
ALB_IDLE_TIMEOUT_RANGE = (1, 4000)
LONGEST_REQUEST_SECONDS = 2
PUBLIC_PATHS = {PREDICT_ROUTE, BATCH_ROUTE, "/healthz", "/livez", "/readyz", "/health"}
# BentoML 1.4.40's web UI (index page, its OpenAPI document and schema, static files)
# and the Prometheus endpoint; tests/infra/test_exposure_against_the_service.py checks
# the served page needs nothing else.
OPERATOR_PATHS = {"/", "/docs.json", "/schema.json", "/static_content/*", "/metrics"}


def alb_path_matches(pattern: str, path: str) -> bool:
    """ALB path-pattern semantics: case-sensitive, `*` any run of characters, `?` one."""
    regex = "".join(
        ".*" if char == "*" else "." if char == "?" else re.escape(char) for char in pattern
    )
    return re.fullmatch(regex, path) is not None


def _tfvars(environment: str) -> dict[str, Any]:
    return parse_hcl(TERRAFORM_DIR / "environments" / f"{environment}.tfvars")


def _chunk_size(expression: str, name: str) -> int:
    match = re.search(rf"chunklist\({re.escape(name)},\s*(\d+)\)", expression)
    assert match, f"expected chunklist({name}, N) in {expression!r}"
    return int(match.group(1))


def route(terraform: Terraform, path: str, source: str, operator_cidrs: list[str]) -> str:
    """What the serving listener does with a request, from the paths and ranges in terraform/."""
    if any(alb_path_matches(p, path) for p in terraform.locals["public_paths"]):
        return "forward"
    from_operator = any(
        ipaddress.ip_address(source) in ipaddress.ip_network(cidr) for cidr in operator_cidrs
    )
    if from_operator and any(alb_path_matches(p, path) for p in terraform.locals["operator_paths"]):
        return "forward"
    return "404"


# ---------------------------------------------------------------- exposure


def test_public_and_operator_paths_are_the_agreed_sets(terraform: Terraform) -> None:
    public = terraform.locals["public_paths"]
    operator = terraform.locals["operator_paths"]
    assert set(public) == PUBLIC_PATHS
    assert set(operator) == OPERATOR_PATHS
    assert len(public) == len(set(public))
    assert len(operator) == len(set(operator))
    assert terraform.resolve("${local.readiness_path}") in public
    assert terraform.resolve("${local.liveness_path}") in public
    # No public pattern lets an operator path through.
    for path in ("/", "/docs.json", "/schema.json", "/static_content/index.css", "/metrics"):
        assert not any(alb_path_matches(p, path) for p in public), path


def test_listeners_forward_nothing_by_default_and_answer_404(terraform: Terraform) -> None:
    http = terraform.resource("aws_lb_listener", "http")
    (http_action,) = http["default_action"]
    assert "target_group_arn" not in http_action, "port 80 must not forward by default"
    assert http_action["type"] == '${local.tls_enabled ? "redirect" : "fixed-response"}'
    blocks = {name: body for block in http_action["dynamic"] for name, body in block.items()}
    (not_found,) = blocks["fixed_response"]["content"]
    assert not_found["status_code"] == "404"
    assert blocks["fixed_response"]["for_each"] == "${local.tls_enabled ? [] : [1]}"
    (redirect,) = blocks["redirect"]["content"]
    assert redirect["protocol"] == "HTTPS"
    assert redirect["port"] == "443"

    https = terraform.resource("aws_lb_listener", "https")
    (https_action,) = https["default_action"]
    assert https_action["type"] == "fixed-response"
    assert "target_group_arn" not in https_action
    (response,) = https_action["fixed_response"]
    assert response["status_code"] == "404"
    assert response["message_body"] == not_found["message_body"] == "${local.not_found_body}"
    assert "not_found" in terraform.locals["not_found_body"]


def test_only_listener_rules_forward_and_all_sit_on_the_serving_listener(
    terraform: Terraform,
) -> None:
    rules = terraform.resources["aws_lb_listener_rule"]
    assert set(rules) == {"public", "operator"}
    for name, rule in rules.items():
        assert rule["listener_arn"] == "${local.serving_listener_arn}", name
        (action,) = rule["action"]
        assert action == {
            "type": "forward",
            "target_group_arn": "${aws_lb_target_group.service.arn}",
        }
    # With a domain that is the HTTPS listener; port 80 then only redirects.
    assert terraform.locals["serving_listener_arn"] == (
        "${local.tls_enabled ? aws_lb_listener.https[0].arn : aws_lb_listener.http.arn}"
    )


def test_public_rules_carry_every_public_path_within_alb_limits(terraform: Terraform) -> None:
    rule = terraform.resource("aws_lb_listener_rule", "public")
    assert rule["count"] == "${length(local.public_path_groups)}"
    (condition,) = rule["condition"]
    assert condition["path_pattern"] == [{"values": "${local.public_path_groups[count.index]}"}]
    assert "source_ip" not in condition
    size = _chunk_size(terraform.locals["public_path_groups"], "local.public_paths")
    assert 0 < size <= ALB_MAX_VALUES_PER_CONDITION


def test_operator_rules_require_a_source_address_within_alb_limits(terraform: Terraform) -> None:
    rule = terraform.resource("aws_lb_listener_rule", "operator")
    assert rule["for_each"] == "${local.operator_rules}"
    kinds = {kind: body for condition in rule["condition"] for kind, body in condition.items()}
    assert kinds == {
        "path_pattern": [{"values": "${each.value.paths}"}],
        "source_ip": [{"values": "${each.value.cidrs}"}],
    }
    paths = _chunk_size(terraform.locals["operator_path_groups"], "local.operator_paths")
    cidrs = _chunk_size(terraform.locals["operator_cidr_groups"], "var.operator_cidrs")
    assert paths <= ALB_MAX_VALUES_PER_CONDITION
    assert cidrs <= ALB_MAX_VALUES_PER_CONDITION
    assert paths + cidrs <= ALB_MAX_VALUES_PER_RULE
    built = terraform.locals["operator_rules"]
    assert "local.operator_path_groups" in built
    assert "local.operator_cidr_groups" in built
    assert "setproduct(" in built, "every path group must be paired with every range group"


def test_operator_cidrs_default_to_nobody_and_are_open_in_staging_only(
    terraform: Terraform,
) -> None:
    variable = terraform.variables["operator_cidrs"]
    assert variable["default"] == []
    assert variable["validation"], "operator_cidrs must be validated as CIDR blocks"
    staging = _tfvars("staging").get("operator_cidrs", [])
    production = _tfvars("production").get("operator_cidrs", [])
    assert staging, "staging shows the web UI and /metrics by default"
    assert production == [], "production forwards only the prediction and health routes"

    outsider = "198.18.0.1"
    for path in ("/", "/docs.json", "/static_content/swagger-ui.css", "/metrics", "/anything"):
        assert route(terraform, path, outsider, production) == "404", path
    for path in sorted(PUBLIC_PATHS):
        assert route(terraform, path, outsider, production) == "forward", path
    inside = str(ipaddress.ip_network(staging[0])[1])
    assert route(terraform, "/metrics", inside, staging) == "forward"
    assert route(terraform, "/static_content/index.css", inside, staging) == "forward"
    assert route(terraform, "/admin", inside, staging) == "404"


# ---------------------------------------------------------------- keep-alive


def test_one_variable_sets_the_service_keep_alive_and_a_shorter_alb_idle_timeout(
    terraform: Terraform,
) -> None:
    variable = terraform.variables["keep_alive_s"]
    assert variable["default"] == ServiceSettings.model_fields["keep_alive_s"].default
    assert terraform.locals["container_environment"]["WINEQ_KEEP_ALIVE_S"] == (
        "${tostring(var.keep_alive_s)}"
    )
    assert terraform.resource("aws_lb", "this")["idle_timeout"] == (
        "${local.alb_idle_timeout_seconds}"
    )
    assert terraform.locals["alb_idle_timeout_seconds"] == (
        "${var.keep_alive_s - local.keep_alive_margin_seconds}"
    )
    margin = terraform.locals["keep_alive_margin_seconds"]
    assert isinstance(margin, int)
    assert margin >= 1, "the ALB must close idle connections first"
    idle = variable["default"] - margin
    assert LONGEST_REQUEST_SECONDS < idle <= ALB_IDLE_TIMEOUT_RANGE[1]
    # Nowhere else sets an idle timeout or the keep-alive.
    everything = "\n".join(terraform.text.values())
    assert len(re.findall(r"^\s*idle_timeout\s*=", everything, flags=re.MULTILINE)) == 1
    assert len(re.findall(r"^\s*WINEQ_KEEP_ALIVE_S\s*=", everything, flags=re.MULTILINE)) == 1


def test_keep_alive_validation_keeps_the_idle_timeout_in_range(terraform: Terraform) -> None:
    (validation,) = terraform.variables["keep_alive_s"]["validation"]
    condition = validation["condition"]
    low = re.search(r"var\.keep_alive_s >= (\d+)", condition)
    high = re.search(r"var\.keep_alive_s <= (\d+)", condition)
    assert low, condition
    assert high, condition
    margin = terraform.locals["keep_alive_margin_seconds"]
    assert int(low.group(1)) - margin == ALB_IDLE_TIMEOUT_RANGE[0]
    assert int(high.group(1)) - margin == ALB_IDLE_TIMEOUT_RANGE[1]
    assert "floor(var.keep_alive_s)" in condition, "the ALB takes whole seconds"


# ---------------------------------------------------------------- dependencies and names


def test_service_waits_for_the_rules_of_the_listener_that_forwards(terraform: Terraform) -> None:
    depends_on = terraform.resource("aws_ecs_service", "this")["depends_on"]
    assert "${aws_lb_listener_rule.public}" in depends_on
    # The HTTP listener only redirects once a domain is set: waiting for it proves nothing.
    assert "${aws_lb_listener.http}" not in depends_on


def test_target_group_uses_a_name_prefix_so_it_can_be_replaced(terraform: Terraform) -> None:
    group = terraform.resource("aws_lb_target_group", "service")
    assert "name" not in group, "a fixed name collides with its own create_before_destroy copy"
    (lifecycle,) = group["lifecycle"]
    assert lifecycle["create_before_destroy"] is True
    assert group["name_prefix"] == '${substr(replace(var.project, "-", ""), 0, 5)}-'


@pytest.mark.parametrize("project", ["wine-quality", "ab", "a-b-c-d-e-f", "x1234567890123456789z"])
def test_name_prefix_fits_the_alb_rules_for_every_allowed_project(
    terraform: Terraform, project: str
) -> None:
    (validation,) = terraform.variables["project"]["validation"]
    pattern = re.search(r'regex\("(.+?)", var\.project\)', validation["condition"])
    assert pattern, validation["condition"]
    assert re.fullmatch(pattern.group(1).replace("\\\\", "\\"), project)
    # The Terraform expression, evaluated: substr(replace(project, "-", ""), 0, 5) + "-".
    prefix = project.replace("-", "")[:5] + "-"
    # AWS: at most 6 characters, letters, digits and hyphens, not starting with a hyphen.
    assert len(prefix) <= 6
    assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9-]*", prefix)
