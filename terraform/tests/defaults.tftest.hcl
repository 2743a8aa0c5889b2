# The default stack, planned and applied against a mock AWS provider (no account, no
# network): low-cost network, keep-alive against the ALB, and what the ALB exposes.
# `terraform test` runs these (GitHub CI's iac-scan job; tests/infra here).

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

run "default_stack" {
  command = apply

  assert {
    condition     = aws_ecs_service.this.network_configuration[0].assign_public_ip == true
    error_message = "by default the tasks get a public IP (no NAT gateway)"
  }
  assert {
    condition     = toset(aws_ecs_service.this.network_configuration[0].subnets) == toset(aws_subnet.public[*].id)
    error_message = "by default the tasks run in the public subnets"
  }
  assert {
    condition     = length(aws_nat_gateway.this) == 0 && length(aws_eip.nat) == 0 && length(aws_route.private_nat) == 0
    error_message = "the low-cost profile creates no NAT gateway, address or route"
  }
  assert {
    condition     = aws_ecs_service.this.network_configuration[0].security_groups == toset([aws_security_group.service.id])
    error_message = "the tasks carry only the service security group"
  }
  assert {
    condition     = aws_vpc_security_group_ingress_rule.service_from_alb.referenced_security_group_id == aws_security_group.alb.id && aws_vpc_security_group_ingress_rule.service_from_alb.from_port == 3000 && aws_vpc_security_group_ingress_rule.service_from_alb.to_port == 3000
    error_message = "the service security group admits the ALB's security group on port 3000"
  }
  assert {
    condition     = length(aws_vpc_security_group_ingress_rule.alb_https) == 0 && keys(aws_vpc_security_group_ingress_rule.alb_http) == ["0.0.0.0/0"]
    error_message = "without a domain the ALB accepts port 80 only"
  }
  assert {
    condition     = one([for setting in aws_ecs_cluster.this.setting : setting.value if setting.name == "containerInsights"]) == "disabled"
    error_message = "Container Insights is off by default"
  }

  # Keep-alive: one variable, the ALB shorter than the service.
  assert {
    condition     = aws_lb.this.idle_timeout == 60
    error_message = "the ALB idle timeout is keep_alive_s (75) minus 15"
  }
  assert {
    condition     = contains(jsondecode(aws_ecs_task_definition.service.container_definitions)[0].environment, { name = "WINEQ_KEEP_ALIVE_S", value = "75" })
    error_message = "the container gets WINEQ_KEEP_ALIVE_S from the same variable"
  }

  # Exposure: only the prediction and health routes.
  assert {
    condition     = aws_lb_listener.http.default_action[0].type == "fixed-response" && aws_lb_listener.http.default_action[0].fixed_response[0].status_code == "404"
    error_message = "without a domain the HTTP listener answers unknown paths with a 404 itself"
  }
  assert {
    condition = toset(flatten([
      for rule in aws_lb_listener_rule.public : [for condition in rule.condition : condition.path_pattern[0].values if length(condition.path_pattern) > 0]
    ])) == toset(["/predict", "/predict/batch", "/healthz", "/livez", "/readyz", "/health"])
    error_message = "the public rules forward exactly the prediction and health routes"
  }
  assert {
    condition     = alltrue([for rule in aws_lb_listener_rule.public : rule.listener_arn == aws_lb_listener.http.arn && rule.action[0].type == "forward" && rule.action[0].target_group_arn == aws_lb_target_group.service.arn])
    error_message = "the public rules forward to the service from the serving listener"
  }
  assert {
    condition     = length(aws_lb_listener_rule.operator) == 0
    error_message = "with no operator_cidrs the web UI and /metrics are not forwarded at all"
  }
  assert {
    condition     = toset([for query in aws_cloudwatch_metric_alarm.tasks_below_desired.metric_query : query.metric[0].metric_name if length(query.metric) > 0]) == toset(["HealthyHostCount"])
    error_message = "without Container Insights the tasks-below-desired alarm counts healthy targets"
  }
}

run "keep_alive_follows_the_variable" {
  command = apply

  variables {
    keep_alive_s = 120
  }

  assert {
    condition     = aws_lb.this.idle_timeout == 105
    error_message = "the ALB idle timeout follows keep_alive_s"
  }
  assert {
    condition     = contains(jsondecode(aws_ecs_task_definition.service.container_definitions)[0].environment, { name = "WINEQ_KEEP_ALIVE_S", value = "120" })
    error_message = "the container's keep-alive follows keep_alive_s"
  }
}

run "a_keep_alive_that_leaves_no_shorter_idle_timeout_is_refused" {
  command = plan

  variables {
    keep_alive_s = 15
  }

  expect_failures = [var.keep_alive_s]
}

