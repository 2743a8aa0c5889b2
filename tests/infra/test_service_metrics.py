"""The dashboard and alarms name only metrics the service's exporter sends, with its
dimensions; the task sends them to the namespace it may write; logs leave one way; and
the dashboard body Terraform renders is accepted by PutDashboard on the moto server."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from bento.exporter import METRICS, ROLLUP_DIMENSIONS, ROLLUPS
from bento.settings import ENV_PREFIX
from tests.fixtures.moto import MOTO_AWS_ENV
from tests.infra.conftest import TERRAFORM_DIR, Terraform, parse_hcl

NAMESPACE = "${var.metrics_namespace}"
DIMENSIONS = {metric.name: set(metric.dimensions) for metric in METRICS}
SCHEMA = re.compile(r"\{\$\{var\.metrics_namespace\},([A-Za-z,]+)\}")
METRIC_NAME = re.compile(r'MetricName=\\?"(\w+)\\?"')
LOCAL = re.compile(r"\$\{local\.service_search\.(\w+)\}")


def _service_widget_metrics(terraform: Terraform) -> list[tuple[str, set[str]]]:
    """(metric name, dimension names) for every metric the service's widgets read."""
    search = terraform.locals["service_search"]
    named: list[tuple[str, set[str]]] = []
    for widget in terraform.locals["dashboard_service_widgets"]:
        for line in widget["properties"]["metrics"]:
            if isinstance(line[0], dict):  # a metric math / SEARCH expression
                expression = LOCAL.sub(lambda m: search[m.group(1)], line[0]["expression"])
                schemas = SCHEMA.findall(expression)
                names = METRIC_NAME.findall(expression)
                assert schemas, expression
                assert len(schemas) == len(names), expression
                named += [(n, set(s.split(","))) for n, s in zip(names, schemas, strict=True)]
            else:  # [namespace, name, dimension, value, ..., {options}]
                assert line[0] == NAMESPACE, line
                pairs = [item for item in line[2:] if not isinstance(item, dict)]
                named.append((line[1], set(pairs[::2])))
    return named


def _service_alarm_metrics(terraform: Terraform) -> list[tuple[str, str, dict[str, Any]]]:
    """(alarm, metric name, dimensions) for every alarm query on the service's namespace."""
    found = []
    for alarm_name, alarm in terraform.resources["aws_cloudwatch_metric_alarm"].items():
        for query in alarm.get("metric_query", []):
            for metric in query.get("metric", []):
                if metric["namespace"] == NAMESPACE:
                    dims = terraform.resolve(metric["dimensions"])
                    found.append((alarm_name, metric["metric_name"], dims))
    return found


def test_the_dashboard_names_only_metrics_the_exporter_sends(terraform: Terraform) -> None:
    named = _service_widget_metrics(terraform)

    for name, dimensions in named:
        assert name in DIMENSIONS, f"the dashboard reads {name}, which the exporter never sends"
        allowed = [DIMENSIONS[name]] + ([set(ROLLUP_DIMENSIONS)] if name in ROLLUPS else [])
        assert dimensions in allowed, (name, dimensions)
    # Every widget the issue asks for has its metric.
    assert {name for name, _ in named} >= {
        "Requests2xx",
        "Requests4xx",
        "Requests5xx",
        "Latency",
        "Predictions",
        "OutOfDistribution",
        "RowsPerModelCall",
        "ExporterFailures",
    }
    widgets = terraform.locals["dashboard_widgets"]
    assert "local.dashboard_service_widgets" in widgets


def test_the_alarms_read_the_exporter_rollups(terraform: Terraform) -> None:
    read = _service_alarm_metrics(terraform)

    assert {alarm for alarm, _, _ in read} == {"service_error_rate", "service_latency_p99"}
    for alarm, name, dimensions in read:
        assert name in ROLLUPS, f"{alarm} reads {name}, which has no Service-only rollup"
        assert set(dimensions) == set(ROLLUP_DIMENSIONS), (alarm, dimensions)
    p99 = terraform.resource("aws_cloudwatch_metric_alarm", "service_latency_p99")
    stats = {q["id"]: q["metric"][0]["stat"] for q in p99["metric_query"] if q.get("metric")}
    assert stats == {"p99": "p99", "requests": "SampleCount"}
    # Milliseconds, as the exporter sends latency.
    assert p99["threshold"] == "${var.p99_latency_threshold_ms}"


def test_the_service_dimension_is_the_service_name(terraform: Terraform) -> None:
    from bento.service import WineQualityService

    assert terraform.locals["service_metrics_service"] == WineQualityService.name  # type: ignore[attr-defined]
    assert terraform.locals["service_metrics_rollup"] == {
        "Service": "${local.service_metrics_service}"
    }


def test_the_task_sends_metrics_to_the_namespace_its_role_may_write(terraform: Terraform) -> None:
    environment = terraform.locals["container_environment"]
    assert environment[f"{ENV_PREFIX}METRICS_NAMESPACE"] == NAMESPACE
    (statement,) = [
        s
        for s in terraform.data["aws_iam_policy_document"]["task"]["statement"]
        if s.get("actions") == ["cloudwatch:PutMetricData"]
    ]
    assert statement["condition"][0]["values"] == [NAMESPACE]


def test_logs_leave_the_task_one_way(terraform: Terraform) -> None:
    # ECS ships stdout (awslogs, non-blocking); the service's own watchtower path is off.
    text = terraform.text["ecs.tf"]
    assert '"awslogs"' in text
    assert '"non-blocking"' in text
    everything = "\n".join(terraform.text.values())
    assert f"{ENV_PREFIX}LOG_GROUP" not in everything


# ------------------------------------------------------------------ rendered by Terraform

TERRAFORM = shutil.which("terraform")
PLUGIN_MIRROR = Path("/opt/tf-plugins")
PROVIDER_DIR = PLUGIN_MIRROR / "registry.terraform.io" / "hashicorp" / "aws"
# The values terraform/tests give mocked resources and data sources where the provider
# validates them downstream (ARNs handed to other resources) or the root reads them.
MOCKS = TERRAFORM_DIR / "tests" / "mocks" / "aws.tfmock.hcl"
# ... and what terraform/tests set per test file (defaults.tftest.hcl).
LISTENER_ARN = (
    "arn:aws:elasticloadbalancing:eu-west-1:123456789012:listener/app/mock/0123456789abcdef/80"
)


def _mock_defaults(block: str) -> dict[str, str]:
    """Kind -> HCL object of its mock defaults, from terraform/tests' mock provider file."""
    defaults = {}
    for entry in parse_hcl(MOCKS)[block]:
        for kind, body in entry.items():
            pairs = ", ".join(f"{k} = {json.dumps(v)}" for k, v in body["defaults"].items())
            defaults[kind] = f"{{ {pairs} }}"
    defaults.setdefault("aws_lb_listener", f'{{ arn = "{LISTENER_ARN}" }}')
    return defaults


def _mirrored_version() -> str | None:
    versions = [path.name for path in PROVIDER_DIR.glob("*") if path.is_dir()]
    return max(versions, key=lambda v: tuple(int(p) for p in v.split(".")), default=None)


def _render_test(terraform: Terraform, endpoint: str) -> str:
    """A `terraform test` file: the real AWS provider against moto; every resource but the
    dashboard overridden, so the only AWS calls are the dashboard's."""
    resources, data = _mock_defaults("mock_resource"), _mock_defaults("mock_data")
    overrides = [
        f"override_resource {{\n  target = {kind}.{name}\n"
        f"  values = {resources.get(kind, '{}')}\n}}\n"
        for kind, named in terraform.resources.items()
        for name in named
        if (kind, name) != ("aws_cloudwatch_dashboard", "service")
    ]
    overrides += [
        f"override_data {{\n  target = data.{kind}.{name}\n  values = {data[kind]}\n}}\n"
        for kind, named in terraform.data.items()
        for name in named
        if kind in data
    ]
    return f"""
provider "aws" {{
  region                      = "us-east-1"
  access_key                  = "{MOTO_AWS_ENV["AWS_ACCESS_KEY_ID"]}"
  secret_key                  = "{MOTO_AWS_ENV["AWS_SECRET_ACCESS_KEY"]}"
  skip_credentials_validation = true
  skip_requesting_account_id  = true
  skip_metadata_api_check     = true
  skip_region_validation      = true
  endpoints {{
    cloudwatch = "{endpoint}"
  }}
}}

{"".join(overrides)}

variables {{
  aws_region        = "us-east-1"
  environment       = "staging"
  github_repository = "example/wine-quality"
  image_tag         = "0123456789ab-1.1"
}}

run "dashboard_reaches_cloudwatch" {{
  command = apply

  assert {{
    condition     = strcontains(aws_cloudwatch_dashboard.service.dashboard_body, "Requests5xx")
    error_message = "the rendered dashboard lacks the service's widgets"
  }}
}}
"""


@pytest.fixture
def terraform_root(tmp_path: Path) -> Path:
    """terraform/ copied and initialised against the machine's provider mirror."""
    version = _mirrored_version()
    if TERRAFORM is None or version is None:
        pytest.skip(
            f"no terraform or no AWS provider under {PLUGIN_MIRROR} "
            "(GitHub CI's iac-scan job runs the terraform tests)"
        )
    root = tmp_path / "root"
    shutil.copytree(TERRAFORM_DIR, root, ignore=shutil.ignore_patterns(".terraform*", "tests"))
    versions = root / "versions.tf"
    pinned, count = re.subn(
        r'(source\s*=\s*"hashicorp/aws"\s*\n\s*(?:#[^\n]*\n\s*)*version\s*=\s*)"[^"]+"',
        rf'\g<1>"{version}"',
        versions.read_text(encoding="utf-8"),
    )
    assert count == 1
    versions.write_text(pinned, encoding="utf-8")
    result = _run(
        "init", "-backend=false", "-input=false", f"-plugin-dir={PLUGIN_MIRROR}", cwd=root
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return root


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    assert TERRAFORM is not None
    env = {**os.environ, "CHECKPOINT_DISABLE": "1", "TF_IN_AUTOMATION": "1"}
    return subprocess.run(
        [TERRAFORM, *args, "-no-color"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_the_rendered_dashboard_is_accepted_by_put_dashboard(
    terraform: Terraform, terraform_root: Path, moto_server: str
) -> None:
    (terraform_root / "tests").mkdir()
    (terraform_root / "tests" / "moto_dashboard.tftest.hcl").write_text(
        _render_test(terraform, moto_server), encoding="utf-8"
    )

    result = _run("test", cwd=terraform_root)

    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    assert "1 passed, 0 failed" in output, output[-3000:]
