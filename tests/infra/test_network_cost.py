"""What it costs to run: the low-cost network profile exposes nothing but the ALB, the
README prices each profile item by item, and autoscaling follows measured capacity."""

from __future__ import annotations

import re
from pathlib import Path

from tests.infra.conftest import REPO_ROOT, TERRAFORM_DIR, Terraform

README = TERRAFORM_DIR / "README.md"
BENCHMARKS = REPO_ROOT / "docs" / "benchmarks.md"
MONTHLY_BUDGET_DEFAULT_STACK = 45.0
ALB_PORTS = {80, 443}
CURRENT_SECTION = "## Container (Fargate limits)"
PREVIOUS_SECTION = "## Previous container measurement"


def _section(path: Path, heading: str) -> str:
    text = path.read_text(encoding="utf-8")
    start = text.index(heading)
    following = text.find("\n## ", start + len(heading))
    return text[start : following if following != -1 else len(text)]


def _money(cell: str) -> float:
    return float(cell.replace("*", "").replace("≈", "").replace(",", "").strip())


def _cost_tables(section: str) -> list[tuple[dict[str, float], float]]:
    """Each cost table of the section: its item rows ($/month by item) and its total."""
    tables: list[tuple[dict[str, float], float]] = []
    items: dict[str, float] = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if not line.startswith("|") or len(cells) != 4 or cells[0] in ("item", "---"):
            continue
        if "total" in cells[0]:
            tables.append((items, _money(cells[3])))
            items = {}
        else:
            items[cells[0]] = _money(cells[3])
    return tables


# ---------------------------------------------------------------- network


def test_low_cost_profile_is_the_default_and_has_no_nat(terraform: Terraform) -> None:
    profile = terraform.variables["network_profile"]
    assert profile["default"] == "public"
    assert terraform.locals["tasks_in_public_subnets"] == '${var.network_profile == "public"}'
    # No NAT gateway, address or route in the public profile; private is one variable away.
    assert terraform.locals["nat_gateway_count"].startswith("${local.tasks_in_public_subnets ? 0 :")
    assert terraform.resource("aws_nat_gateway", "this")["count"] == "${local.nat_gateway_count}"
    assert terraform.resource("aws_eip", "nat")["count"] == "${local.nat_gateway_count}"
    assert terraform.resource("aws_route", "private_nat")["count"].startswith(
        "${local.nat_gateway_count > 0 ?"
    )
    assert terraform.locals["task_subnet_ids"] == (
        "${local.tasks_in_public_subnets ? aws_subnet.public[*].id : aws_subnet.private[*].id}"
    )
    (network,) = terraform.resource("aws_ecs_service", "this")["network_configuration"]
    assert network["assign_public_ip"] == "${local.tasks_in_public_subnets}"
    assert network["security_groups"] == ["${aws_security_group.service.id}"]


def test_low_cost_profile_exposes_nothing_but_the_alb(terraform: Terraform) -> None:
    # Inline or legacy rules would escape the checks below.
    assert "aws_security_group_rule" not in terraform.resources
    for name, group in terraform.resources["aws_security_group"].items():
        assert "ingress" not in group, name
        assert "egress" not in group, name
    assert set(terraform.resources["aws_security_group"]) == {"alb", "service"}
    assert "ingress" not in terraform.resource("aws_default_security_group", "this")

    container_port = terraform.resolve("${local.container_port}")
    rules = terraform.resources["aws_vpc_security_group_ingress_rule"]
    for name, rule in rules.items():
        if rule["security_group_id"] == "${aws_security_group.service.id}":
            # The tasks: only the ALB's security group, only the container port.
            assert rule["referenced_security_group_id"] == "${aws_security_group.alb.id}", name
            assert "cidr_ipv4" not in rule, name
            assert "cidr_ipv6" not in rule, name
            assert terraform.resolve(rule["from_port"]) == container_port, name
            assert terraform.resolve(rule["to_port"]) == container_port, name
        else:
            # Anything open to addresses is the ALB's, on 80 or 443.
            assert rule["security_group_id"] == "${aws_security_group.alb.id}", name
            assert rule["from_port"] == rule["to_port"], name
            assert rule["from_port"] in ALB_PORTS, name
            assert rule["cidr_ipv4"] == "${each.value}", name
            assert "var.allowed_ingress_cidrs" in rule["for_each"], name
    assert any(
        rule["security_group_id"] == "${aws_security_group.service.id}" for rule in rules.values()
    )
    # The ALB itself can only reach the tasks' port.
    (alb_egress,) = [
        rule
        for rule in terraform.resources["aws_vpc_security_group_egress_rule"].values()
        if rule["security_group_id"] == "${aws_security_group.alb.id}"
    ]
    assert alb_egress["referenced_security_group_id"] == "${aws_security_group.service.id}"
    # The one load balancer is the public entry point; nothing else is given an address.
    assert set(terraform.resources["aws_lb"]) == {"this"}
    assert terraform.resource("aws_subnet", "public")["map_public_ip_on_launch"] is False
    assert not {"aws_instance", "aws_eip_association"} & set(terraform.resources)


def test_container_insights_is_off_by_default(terraform: Terraform) -> None:
    assert terraform.variables["container_insights"]["default"] is False
    (setting,) = terraform.resource("aws_ecs_cluster", "this")["setting"]
    assert setting["name"] == "containerInsights"
    assert setting["value"] == '${var.container_insights ? "enabled" : "disabled"}'


# ---------------------------------------------------------------- cost in the README


def test_readme_prices_both_profiles_item_by_item() -> None:
    section = _section(README, "## Cost")
    assert re.search(r"\b20\d\d-\d\d-\d\d\b", section), "state the date of the prices"
    assert "US East (N. Virginia)" in section
    assert "Assumptions" in section
    tables = _cost_tables(section)
    assert len(tables) == 2, "one table per network profile"
    (default_items, default_total), (private_items, private_total) = tables
    assert abs(sum(default_items.values()) - default_total) < 0.05, "items add up to the total"
    assert default_total <= MONTHLY_BUDGET_DEFAULT_STACK
    nat = [value for item, value in default_items.items() if item.startswith("NAT gateway")]
    assert nat == [0.0], "the default profile has no NAT gateway"
    assert any(item.startswith("Fargate task") for item in default_items)
    assert default_items.get("Container Insights") == 0.0
    # The private profile lists what differs: the NAT's hours, data and address.
    assert private_items["NAT gateway"] > 0
    changed = {**default_items, **private_items}
    assert abs(sum(changed.values()) - private_total) < 0.05
    assert private_total > default_total
    # The profile table quotes the same totals.
    profiles = _section(README, "## Network profiles")
    assert f"≈ ${default_total:.2f}" in profiles
    assert f"≈ ${private_total:.2f}" in profiles


# ---------------------------------------------------------------- autoscaling


def measured_capacity() -> tuple[float, str]:
    """One task's throughput at the Fargate limits, and the docs/benchmarks.md section
    it comes from: the live harness's median for the current image once it has run,
    else the previous container measurement it replaced."""
    current = _section(BENCHMARKS, CURRENT_SECTION)
    median = re.search(
        r"Median good req/s over the rounds:[^\n]*\bcurrent (\d+(?:\.\d+)?)", current
    )
    if median:
        return float(median.group(1)), CURRENT_SECTION
    heading = next(
        line
        for line in BENCHMARKS.read_text(encoding="utf-8").splitlines()
        if line.startswith(PREVIOUS_SECTION)
    )
    previous = _section(BENCHMARKS, heading)
    row = re.search(r"\| Throughput of that load[^|]*\| (\d+(?:\.\d+)?) req/s \|", previous)
    assert row, "docs/benchmarks.md states no container throughput"
    return float(row.group(1)), heading


def test_requests_per_target_derives_from_measured_capacity(terraform: Terraform) -> None:
    capacity, source = measured_capacity()

    autoscaling = _section(README, "## Autoscaling")
    stated = re.search(r"capacity: (\d+(?:\.\d+)?) req/s", autoscaling)
    headroom = re.search(r"headroom: (\d+) %", autoscaling)
    assert stated, "terraform/README.md must show the arithmetic"
    assert headroom, "terraform/README.md must state the headroom"
    assert float(stated.group(1)) == capacity, (
        f"README says {stated.group(1)} req/s, docs/benchmarks.md ({source}) {capacity:g}"
    )
    assert "docs/benchmarks.md" in autoscaling
    assert source.removeprefix("## ").split(" (")[0] in autoscaling, "name the section"
    fraction = 1 - int(headroom.group(1)) / 100
    assert 0.3 <= fraction <= 0.8, "leave headroom, but not so much that scaling never stops"

    target = terraform.variables["requests_per_target"]["default"]
    expected = capacity * 60 * fraction
    assert expected - 100 < target <= expected, (
        f"requests_per_target {target} should be {capacity:g} req/s x 60 x {fraction} "
        f"= {expected:.0f}, rounded down"
    )
    assert f"{target:,}" in autoscaling
    policy = terraform.resource("aws_appautoscaling_policy", "requests_per_target")
    (config,) = policy["target_tracking_scaling_policy_configuration"]
    assert config["target_value"] == "${var.requests_per_target}"
