# Logs, alarms and where they go. The dashboard lives in dashboard.tf.

resource "aws_cloudwatch_log_group" "service" {
  # checkov:skip=CKV_AWS_158: CloudWatch Logs already encrypts at rest; a customer key adds cost and key-policy wiring, and the service never logs secrets or request bodies.
  # checkov:skip=CKV_AWS_338: operational logs; 30 days by default (log_retention_days) keeps storage cost flat, a year buys nothing the S3 model history does not keep.
  name              = "/ecs/${local.name}"
  retention_in_days = var.log_retention_days
}

resource "aws_sns_topic" "alarms" {
  # checkov:skip=CKV_AWS_26: CloudWatch cannot publish to a topic encrypted with the AWS-managed aws/sns key, and alarm messages carry no sensitive data; a customer key would cost more than the topic.
  name = "${local.name}-alarms"

  lifecycle {
    precondition {
      condition     = var.environment != "production" || var.alarm_email != null || var.allow_production_without_alarm_email
      error_message = "A production stack needs someone to receive its alarms: set alarm_email, or set allow_production_without_alarm_email = true if that is intended (e.g. another subscriber is added outside Terraform)."
    }
  }
}

resource "aws_sns_topic_subscription" "alarm_email" {
  count = var.alarm_email == null ? 0 : 1

  topic_arn = aws_sns_topic.alarms.arn
  protocol  = "email"
  endpoint  = var.alarm_email
}

locals {
  alb_dimensions = { LoadBalancer = aws_lb.this.arn_suffix }
  target_group_dimensions = {
    LoadBalancer = aws_lb.this.arn_suffix
    TargetGroup  = aws_lb_target_group.service.arn_suffix
  }
  ecs_service_dimensions = {
    ClusterName = aws_ecs_cluster.this.name
    ServiceName = aws_ecs_service.this.name
  }
  alarm_actions = [aws_sns_topic.alarms.arn]

  # ALB TargetResponseTime is in seconds; the variable is in milliseconds.
  p99_latency_threshold_s = var.p99_latency_threshold_ms / 1000
  # Quieter minutes than this count as 0 % errors in the 5xx-rate alarm.
  error_rate_min_requests = 10
}

# 5xx share of all requests (the service's and the ALB's own, e.g. 503 with no
# healthy target). Quiet minutes (< 10 requests) count as 0 so one failed request
# at night does not page anyone. Used by the ECS service to roll back a deployment.
resource "aws_cloudwatch_metric_alarm" "error_rate" {
  alarm_name          = "${local.name}-5xx-rate"
  alarm_description   = "More than ${var.error_rate_threshold_percent}% of requests answered 5xx in 2 of 3 minutes."
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.error_rate_threshold_percent
  evaluation_periods  = 3
  datapoints_to_alarm = 2
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions

  metric_query {
    id          = "error_rate"
    label       = "5xx %"
    expression  = "IF(FILL(requests, 0) >= ${local.error_rate_min_requests}, 100 * (FILL(target_5xx, 0) + FILL(elb_5xx, 0)) / requests, 0)"
    return_data = true
  }

  metric_query {
    id = "requests"
    metric {
      namespace   = "AWS/ApplicationELB"
      metric_name = "RequestCount"
      dimensions  = local.alb_dimensions
      period      = 60
      stat        = "Sum"
    }
  }

  metric_query {
    id = "target_5xx"
    metric {
      namespace   = "AWS/ApplicationELB"
      metric_name = "HTTPCode_Target_5XX_Count"
      dimensions  = local.alb_dimensions
      period      = 60
      stat        = "Sum"
    }
  }

  metric_query {
    id = "elb_5xx"
    metric {
      namespace   = "AWS/ApplicationELB"
      metric_name = "HTTPCode_ELB_5XX_Count"
      dimensions  = local.alb_dimensions
      period      = 60
      stat        = "Sum"
    }
  }
}

# Three slow minutes in a row: long enough to ignore one cold task, short enough to
# roll a slow release back before most clients notice. Only busy minutes count (at
# least var.p99_alarm_min_requests requests to the service): at low traffic the p99
# is one or two requests, and a few slow ones must not roll back a good deployment.
# Used by the ECS service to roll back a deployment.
resource "aws_cloudwatch_metric_alarm" "latency_p99" {
  alarm_name          = "${local.name}-p99-latency"
  alarm_description   = "p99 target response time above ${var.p99_latency_threshold_ms} ms for 3 minutes with at least ${var.p99_alarm_min_requests} requests each."
  comparison_operator = "GreaterThanThreshold"
  threshold           = local.p99_latency_threshold_s
  evaluation_periods  = 3
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions

  metric_query {
    id          = "guarded_p99"
    label       = "p99 (s), busy minutes only"
    expression  = "IF(FILL(requests, 0) >= ${var.p99_alarm_min_requests}, p99, 0)"
    return_data = true
  }

  metric_query {
    id = "p99"
    metric {
      namespace   = "AWS/ApplicationELB"
      metric_name = "TargetResponseTime"
      dimensions  = local.target_group_dimensions
      period      = 60
      stat        = "p99"
    }
  }

  metric_query {
    id = "requests"
    metric {
      namespace   = "AWS/ApplicationELB"
      metric_name = "RequestCount"
      dimensions  = local.target_group_dimensions
      period      = 60
      stat        = "Sum"
    }
  }
}

# A task failing its health checks for 5 minutes: longer than any deployment's
# start-up, so a rollout alone never raises it.
resource "aws_cloudwatch_metric_alarm" "unhealthy_hosts" {
  alarm_name          = "${local.name}-unhealthy-hosts"
  alarm_description   = "At least one target failed its /readyz health check for 5 minutes."
  namespace           = "AWS/ApplicationELB"
  metric_name         = "UnHealthyHostCount"
  dimensions          = local.target_group_dimensions
  statistic           = "Maximum"
  period              = 60
  evaluation_periods  = 5
  comparison_operator = "GreaterThanOrEqualToThreshold"
  threshold           = 1
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
}

# No healthy target at all: the service is down for every client.
resource "aws_cloudwatch_metric_alarm" "no_healthy_hosts" {
  alarm_name          = "${local.name}-no-healthy-hosts"
  alarm_description   = "No target passes its /readyz health check."
  namespace           = "AWS/ApplicationELB"
  metric_name         = "HealthyHostCount"
  dimensions          = local.target_group_dimensions
  statistic           = "Minimum"
  period              = 60
  evaluation_periods  = 2
  comparison_operator = "LessThanThreshold"
  threshold           = 1
  treat_missing_data  = "breaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
}

# Memory is what kills a 512 MB task (OOM), and it creeps: the highest task's share of
# its limit above the threshold for 5 minutes. Notifies only; a deployment that runs out
# of memory is caught by the circuit breaker when its tasks die.
resource "aws_cloudwatch_metric_alarm" "memory_high" {
  alarm_name          = "${local.name}-memory-high"
  alarm_description   = "A task used more than ${var.memory_alarm_threshold_percent}% of its memory for 5 minutes (at 100% it is killed)."
  namespace           = "AWS/ECS"
  metric_name         = "MemoryUtilization"
  dimensions          = local.ecs_service_dimensions
  statistic           = "Maximum"
  period              = 60
  evaluation_periods  = 5
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.memory_alarm_threshold_percent
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
}

# Fewer tasks serving than wanted for 5 minutes (placement failures, crash loops, a
# task that never turns ready): longer than a task's replacement takes. ECS publishes
# running and desired task counts only with Container Insights; without it (the
# default) the free ALB metric stands in: healthy targets below min_tasks.
locals {
  tasks_below_desired_expression = var.container_insights ? "FILL(desired, 0) - FILL(running, 0)" : "${var.min_tasks} - FILL(healthy, 0)"
  tasks_below_desired_metrics = var.container_insights ? {
    desired = { namespace = "ECS/ContainerInsights", metric_name = "DesiredTaskCount", dimensions = tomap(local.ecs_service_dimensions), stat = "Average" }
    running = { namespace = "ECS/ContainerInsights", metric_name = "RunningTaskCount", dimensions = tomap(local.ecs_service_dimensions), stat = "Average" }
    } : {
    healthy = { namespace = "AWS/ApplicationELB", metric_name = "HealthyHostCount", dimensions = tomap(local.target_group_dimensions), stat = "Minimum" }
  }
}

resource "aws_cloudwatch_metric_alarm" "tasks_below_desired" {
  alarm_name          = "${local.name}-tasks-below-desired"
  alarm_description   = var.container_insights ? "Fewer tasks running than desired for 5 minutes." : "Fewer healthy tasks than min_tasks (${var.min_tasks}) for 5 minutes."
  comparison_operator = "GreaterThanOrEqualToThreshold"
  threshold           = 1
  evaluation_periods  = 5
  treat_missing_data  = "breaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions

  metric_query {
    id          = "missing_tasks"
    label       = "tasks missing"
    expression  = local.tasks_below_desired_expression
    return_data = true
  }

  dynamic "metric_query" {
    for_each = local.tasks_below_desired_metrics
    content {
      id = metric_query.key
      metric {
        namespace   = metric_query.value.namespace
        metric_name = metric_query.value.metric_name
        dimensions  = metric_query.value.dimensions
        period      = 60
        stat        = metric_query.value.stat
      }
    }
  }
}

# ---------------------------------------------------------------- the service's own metrics

# What the in-process exporter sends (bento/exporter.py METRICS; the project README,
# "Metrics and logs in CloudWatch"). Its per-version series carry ModelVersion, which
# changes with every model, so the alarms read the rollups it also sends under the
# Service dimension alone. Quiet minutes count as 0, as in the ALB alarms above.
locals {
  # The exporter's Service dimension: the BentoML service's name (bento/service.py).
  service_metrics_service = "wine_quality"
  service_metrics_rollup  = { Service = local.service_metrics_service }
}

# 5xx share of prediction requests as the service counts them (health checks and the
# ALB's own answers excluded). Notifies; the ALB alarms roll deployments back.
resource "aws_cloudwatch_metric_alarm" "service_error_rate" {
  alarm_name          = "${local.name}-service-5xx-rate"
  alarm_description   = "More than ${var.error_rate_threshold_percent}% of prediction requests answered 5xx in 2 of 3 minutes, as the service counts them."
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.error_rate_threshold_percent
  evaluation_periods  = 3
  datapoints_to_alarm = 2
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions

  metric_query {
    id          = "error_rate"
    label       = "service 5xx %"
    expression  = "IF(FILL(requests, 0) >= ${local.error_rate_min_requests}, 100 * FILL(errors, 0) / requests, 0)"
    return_data = true
  }

  # Every prediction request is one latency sample.
  metric_query {
    id = "requests"
    metric {
      namespace   = var.metrics_namespace
      metric_name = "Latency"
      dimensions  = local.service_metrics_rollup
      period      = 60
      stat        = "SampleCount"
    }
  }

  metric_query {
    id = "errors"
    metric {
      namespace   = var.metrics_namespace
      metric_name = "Requests5xx"
      dimensions  = local.service_metrics_rollup
      period      = 60
      stat        = "Sum"
    }
  }
}

# p99 of prediction requests as the service measures them (without the ALB's share),
# in busy minutes only, like the ALB's p99 alarm. Notifies.
resource "aws_cloudwatch_metric_alarm" "service_latency_p99" {
  alarm_name          = "${local.name}-service-p99-latency"
  alarm_description   = "Service-measured p99 latency of prediction requests above ${var.p99_latency_threshold_ms} ms for 3 minutes with at least ${var.p99_alarm_min_requests} requests each."
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.p99_latency_threshold_ms
  evaluation_periods  = 3
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions

  metric_query {
    id          = "guarded_p99"
    label       = "service p99 (ms), busy minutes only"
    expression  = "IF(FILL(requests, 0) >= ${var.p99_alarm_min_requests}, p99, 0)"
    return_data = true
  }

  metric_query {
    id = "p99"
    metric {
      namespace   = var.metrics_namespace
      metric_name = "Latency"
      dimensions  = local.service_metrics_rollup
      period      = 60
      stat        = "p99"
    }
  }

  metric_query {
    id = "requests"
    metric {
      namespace   = var.metrics_namespace
      metric_name = "Latency"
      dimensions  = local.service_metrics_rollup
      period      = 60
      stat        = "SampleCount"
    }
  }
}
