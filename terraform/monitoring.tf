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
  alarm_actions = [aws_sns_topic.alarms.arn]

  # ALB TargetResponseTime is in seconds; the variable is in milliseconds.
  p99_latency_threshold_s = var.p99_latency_threshold_ms / 1000
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
    expression  = "IF(FILL(requests, 0) >= 10, 100 * (FILL(target_5xx, 0) + FILL(elb_5xx, 0)) / requests, 0)"
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
# roll a slow release back before most clients notice.
resource "aws_cloudwatch_metric_alarm" "latency_p99" {
  alarm_name          = "${local.name}-p99-latency"
  alarm_description   = "p99 target response time above ${var.p99_latency_threshold_ms} ms for 3 minutes."
  namespace           = "AWS/ApplicationELB"
  metric_name         = "TargetResponseTime"
  dimensions          = local.target_group_dimensions
  extended_statistic  = "p99"
  period              = 60
  evaluation_periods  = 3
  comparison_operator = "GreaterThanThreshold"
  threshold           = local.p99_latency_threshold_s
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
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
