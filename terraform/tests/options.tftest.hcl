# The variables one step away from the defaults: operator access to the web UI and
# /metrics, the private network profile, Container Insights.

mock_provider "aws" {
  source = "./tests/mocks"
}

# Distinct listener ARNs, so a test can tell which listener a rule sits on.
override_resource {
  target = aws_lb_listener.http
  values = { arn = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:listener/app/mock/0123456789abcdef/0000000000000080" }
}

override_resource {
  target = aws_lb_listener.https
  values = { arn = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:listener/app/mock/0123456789abcdef/0000000000000443" }
}

variables {
  environment       = "staging"
  github_repository = "example/wine-quality"
  image_tag         = "0123456789ab-1.1"
}

run "operator_routes_only_from_operator_cidrs" {
  command = apply

  variables {
    operator_cidrs = ["203.0.113.0/24", "198.51.100.0/24", "192.0.2.0/24"]
  }

  assert {
    # 5 paths in groups of 3, 3 ranges in groups of 2: 2 x 2 rules.
    condition     = length(aws_lb_listener_rule.operator) == 4
    error_message = "every path group is combined with every range group"
  }
  assert {
    condition = alltrue([
      for rule in aws_lb_listener_rule.operator : length([for condition in rule.condition : condition if length(condition.source_ip) > 0]) == 1
    ])
    error_message = "every operator rule is limited by source address"
  }
  assert {
    condition = toset(flatten([
      for rule in aws_lb_listener_rule.operator : [for condition in rule.condition : condition.source_ip[0].values if length(condition.source_ip) > 0]
    ])) == toset(["203.0.113.0/24", "198.51.100.0/24", "192.0.2.0/24"])
    error_message = "the operator rules admit exactly operator_cidrs"
  }
  assert {
    condition = toset(flatten([
      for rule in aws_lb_listener_rule.operator : [for condition in rule.condition : condition.path_pattern[0].values if length(condition.path_pattern) > 0]
    ])) == toset(["/", "/docs.json", "/schema.json", "/static_content/*", "/metrics"])
    error_message = "the operator rules cover the web UI and /metrics"
  }
  assert {
    condition     = length(distinct(concat([for rule in aws_lb_listener_rule.operator : rule.priority], [for rule in aws_lb_listener_rule.public : rule.priority]))) == 6
    error_message = "rule priorities are unique"
  }
}

run "malformed_operator_cidrs_are_refused" {
  command = plan

  variables {
    operator_cidrs = ["office"]
  }

  expect_failures = [var.operator_cidrs]
}

run "private_profile_runs_tasks_behind_nat" {
  command = apply

  variables {
    network_profile = "private"
  }

  assert {
    condition     = aws_ecs_service.this.network_configuration[0].assign_public_ip == false
    error_message = "private tasks get no public IP"
  }
  assert {
    condition     = toset(aws_ecs_service.this.network_configuration[0].subnets) == toset(aws_subnet.private[*].id)
    error_message = "private tasks run in the private subnets"
  }
  assert {
    condition     = length(aws_nat_gateway.this) == 1 && length(aws_route.private_nat) == 2
    error_message = "one shared NAT gateway routes both private subnets"
  }
}

run "private_profile_with_a_nat_per_az" {
  command = plan

  variables {
    network_profile    = "private"
    nat_gateway_per_az = true
  }

  assert {
    condition     = length(aws_nat_gateway.this) == 2
    error_message = "one NAT gateway per AZ"
  }
}

run "tasks_below_desired_uses_container_insights_when_on" {
  command = plan

  variables {
    container_insights = true
  }

  assert {
    condition     = toset([for query in aws_cloudwatch_metric_alarm.tasks_below_desired.metric_query : query.metric[0].metric_name if length(query.metric) > 0]) == toset(["DesiredTaskCount", "RunningTaskCount"])
    error_message = "with Container Insights the alarm compares running with desired tasks"
  }
}
