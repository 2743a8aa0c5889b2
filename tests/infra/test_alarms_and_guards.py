"""Alarms that act right, and a production stack refused without HTTPS or an alarm recipient."""

from __future__ import annotations

from typing import Any

from tests.infra.conftest import TERRAFORM_DIR, Terraform, parse_hcl

TASK_MEMORY_PERCENT_LIMIT = 100


def _alarm(terraform: Terraform, name: str) -> dict[str, Any]:
    return terraform.resource("aws_cloudwatch_metric_alarm", name)


def _metrics(alarm: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Metric queries of an alarm by id (those with a metric block)."""
    return {
        query["id"]: query["metric"][0] for query in alarm["metric_query"] if query.get("metric")
    }


def test_p99_alarm_judges_only_busy_minutes(terraform: Terraform) -> None:
    alarm = _alarm(terraform, "latency_p99")
    assert "extended_statistic" not in alarm
    assert "metric_name" not in alarm
    (returned,) = [query for query in alarm["metric_query"] if query.get("return_data")]
    assert returned["expression"] == (
        "IF(FILL(requests, 0) >= ${var.p99_alarm_min_requests}, p99, 0)"
    )
    metrics = _metrics(alarm)
    assert metrics["p99"]["metric_name"] == "TargetResponseTime"
    assert metrics["p99"]["stat"] == "p99"
    assert metrics["requests"]["metric_name"] == "RequestCount"
    assert metrics["requests"]["stat"] == "Sum"
    # Both from the service's target group, in the same one-minute periods.
    assert metrics["p99"]["dimensions"] == metrics["requests"]["dimensions"]
    assert metrics["p99"]["period"] == metrics["requests"]["period"] == 60
    assert alarm["threshold"] == "${local.p99_latency_threshold_s}"
    # At least as strict a guard as the 5xx-rate alarm's: a p99 needs more samples.
    guard = terraform.variables["p99_alarm_min_requests"]["default"]
    assert guard >= terraform.locals["error_rate_min_requests"]
    assert (
        "FILL(requests, 0) >= ${local.error_rate_min_requests}"
        in (
            next(
                q for q in _alarm(terraform, "error_rate")["metric_query"] if q.get("return_data")
            )["expression"]
        )
    )
    # And it stays a rollback alarm.
    (rollback,) = terraform.resource("aws_ecs_service", "this")["alarms"]
    assert "${aws_cloudwatch_metric_alarm.latency_p99.alarm_name}" in rollback["alarm_names"]


def test_memory_alarm_watches_the_fullest_task(terraform: Terraform) -> None:
    alarm = _alarm(terraform, "memory_high")
    assert alarm["namespace"] == "AWS/ECS"
    assert alarm["metric_name"] == "MemoryUtilization"
    assert alarm["statistic"] == "Maximum"
    assert alarm["dimensions"] == "${local.ecs_service_dimensions}"
    assert alarm["comparison_operator"] == "GreaterThanThreshold"
    assert alarm["threshold"] == "${var.memory_alarm_threshold_percent}"
    threshold = terraform.variables["memory_alarm_threshold_percent"]["default"]
    assert 50 <= threshold < TASK_MEMORY_PERCENT_LIMIT


def test_an_alarm_fires_when_fewer_tasks_serve_than_wanted(terraform: Terraform) -> None:
    alarm = _alarm(terraform, "tasks_below_desired")
    assert alarm["comparison_operator"] == "GreaterThanOrEqualToThreshold"
    assert alarm["threshold"] == 1
    # No data (no target at all) is a missing task too.
    assert alarm["treat_missing_data"] == "breaching"
    (returned,) = [query for query in alarm["metric_query"] if query.get("return_data")]
    assert returned["expression"] == "${local.tasks_below_desired_expression}"
    ((dynamic,),) = [block.values() for block in alarm["dynamic"]]
    assert dynamic["for_each"] == "${local.tasks_below_desired_metrics}"
    # Running vs desired where ECS publishes them (Container Insights), else healthy
    # targets against the service's floor.
    expression = terraform.locals["tasks_below_desired_expression"]
    assert expression.startswith("${var.container_insights ?")
    assert "FILL(desired, 0) - FILL(running, 0)" in expression
    assert "${var.min_tasks} - FILL(healthy, 0)" in expression
    metrics = terraform.locals["tasks_below_desired_metrics"]
    for metric in ('"RunningTaskCount"', '"DesiredTaskCount"', '"HealthyHostCount"'):
        assert metric in metrics


def test_every_alarm_notifies_the_topic(terraform: Terraform) -> None:
    alarms = terraform.resources["aws_cloudwatch_metric_alarm"]
    assert {"memory_high", "tasks_below_desired", "latency_p99", "error_rate"} <= set(alarms)
    for name, alarm in alarms.items():
        assert alarm["alarm_actions"] == "${local.alarm_actions}", name


def _precondition(terraform: Terraform, kind: str, name: str) -> str:
    (lifecycle,) = terraform.resource(kind, name)["lifecycle"]
    (precondition,) = lifecycle["precondition"]
    condition: str = precondition["condition"]
    assert len(precondition["error_message"]) > 40
    return condition


def test_production_without_https_or_alarm_recipient_is_refused_unless_stated(
    terraform: Terraform,
) -> None:
    https = _precondition(terraform, "aws_lb", "this")
    assert https == (
        '${var.environment != "production" || local.tls_enabled '
        "|| var.allow_production_without_https}"
    )
    recipient = _precondition(terraform, "aws_sns_topic", "alarms")
    assert recipient == (
        '${var.environment != "production" || var.alarm_email != null '
        "|| var.allow_production_without_alarm_email}"
    )
    for waiver in ("allow_production_without_https", "allow_production_without_alarm_email"):
        variable = terraform.variables[waiver]
        assert variable["type"] == "bool", waiver
        assert variable["default"] is False, waiver
    production = parse_hcl(TERRAFORM_DIR / "environments" / "production.tfvars")
    assert not any(key.startswith("allow_production_without") for key in production)
