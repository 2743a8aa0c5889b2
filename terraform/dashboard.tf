# The one definition of the service's CloudWatch dashboard. Widgets are grouped in
# lists and concatenated at the bottom; CloudWatch lays them out left to right in
# that order: the ALB, ECS, then the service's own metrics (var.metrics_namespace).
# To extend it, add a list here and append it to local.dashboard_widgets.

locals {
  dashboard_alb_widgets = [
    {
      type   = "metric"
      width  = 12
      height = 6
      properties = {
        title   = "Requests (per minute)"
        region  = local.region
        stat    = "Sum"
        period  = 60
        metrics = [["AWS/ApplicationELB", "RequestCount", "LoadBalancer", aws_lb.this.arn_suffix]]
      }
    },
    {
      type   = "metric"
      width  = 12
      height = 6
      properties = {
        title  = "5xx responses (per minute)"
        region = local.region
        stat   = "Sum"
        period = 60
        metrics = [
          ["AWS/ApplicationELB", "HTTPCode_Target_5XX_Count", "LoadBalancer", aws_lb.this.arn_suffix, { label = "from tasks" }],
          ["AWS/ApplicationELB", "HTTPCode_ELB_5XX_Count", "LoadBalancer", aws_lb.this.arn_suffix, { label = "from the ALB" }],
        ]
      }
    },
    {
      type   = "metric"
      width  = 12
      height = 6
      properties = {
        title  = "Target response time (seconds)"
        region = local.region
        period = 60
        metrics = [
          ["AWS/ApplicationELB", "TargetResponseTime", "LoadBalancer", aws_lb.this.arn_suffix, "TargetGroup", aws_lb_target_group.service.arn_suffix, { stat = "p50", label = "p50" }],
          ["AWS/ApplicationELB", "TargetResponseTime", "LoadBalancer", aws_lb.this.arn_suffix, "TargetGroup", aws_lb_target_group.service.arn_suffix, { stat = "p99", label = "p99" }],
        ]
        annotations = {
          horizontal = [{ label = "p99 alarm", value = local.p99_latency_threshold_s }]
        }
      }
    },
    {
      type   = "metric"
      width  = 12
      height = 6
      properties = {
        title  = "Targets"
        region = local.region
        period = 60
        metrics = [
          ["AWS/ApplicationELB", "HealthyHostCount", "LoadBalancer", aws_lb.this.arn_suffix, "TargetGroup", aws_lb_target_group.service.arn_suffix, { stat = "Minimum", label = "healthy" }],
          ["AWS/ApplicationELB", "UnHealthyHostCount", "LoadBalancer", aws_lb.this.arn_suffix, "TargetGroup", aws_lb_target_group.service.arn_suffix, { stat = "Maximum", label = "unhealthy" }],
        ]
      }
    },
  ]

  dashboard_ecs_widgets = [
    {
      type   = "metric"
      width  = 12
      height = 6
      properties = {
        title  = "ECS service CPU and memory (% of 256 CPU / 512 MB per task)"
        region = local.region
        period = 60
        yAxis  = { left = { min = 0, max = 100 } }
        metrics = [
          ["AWS/ECS", "CPUUtilization", "ClusterName", aws_ecs_cluster.this.name, "ServiceName", aws_ecs_service.this.name, { stat = "Average", label = "CPU" }],
          ["AWS/ECS", "MemoryUtilization", "ClusterName", aws_ecs_cluster.this.name, "ServiceName", aws_ecs_service.this.name, { stat = "Average", label = "memory" }],
        ]
      }
    },
  ]

  # The service's own metrics, sent by its in-process exporter (bento/exporter.py
  # METRICS; monitoring.tf has their alarms). Series carrying ModelVersion are found with
  # SEARCH, so a new model version shows without a Terraform change; a SEARCH schema
  # matches metrics with exactly its dimensions, so the Service-only rollups the alarms
  # read are never counted twice.
  service_search = {
    per_route = "{${var.metrics_namespace},ModelVersion,Route,Service}"
    version   = "{${var.metrics_namespace},ModelVersion,Service}"
    quality   = "{${var.metrics_namespace},ModelVersion,Quality,Service}"
    feature   = "{${var.metrics_namespace},Feature,ModelVersion,Service}"
  }

  dashboard_service_widgets = [
    {
      type   = "metric"
      width  = 12
      height = 6
      properties = {
        title  = "Service: prediction requests by status class (per minute)"
        region = local.region
        period = 60
        metrics = [
          [{ id = "ok", label = "2xx", expression = "SUM(SEARCH('${local.service_search.per_route} MetricName=\"Requests2xx\"', 'Sum', 60))" }],
          [{ id = "refused", label = "4xx", expression = "SUM(SEARCH('${local.service_search.per_route} MetricName=\"Requests4xx\"', 'Sum', 60))" }],
          [{ id = "failed", label = "5xx", expression = "SUM(SEARCH('${local.service_search.per_route} MetricName=\"Requests5xx\"', 'Sum', 60))" }],
          [{ id = "shed", label = "503 (overloaded, not ready)", expression = "SUM(SEARCH('${local.service_search.version} MetricName=\"Refusals503\"', 'Sum', 60))" }],
        ]
      }
    },
    {
      type   = "metric"
      width  = 12
      height = 6
      properties = {
        title  = "Service: prediction latency (ms, measured in the service)"
        region = local.region
        period = 60
        metrics = [
          [var.metrics_namespace, "Latency", "Service", local.service_metrics_service, { stat = "p50", label = "p50" }],
          [var.metrics_namespace, "Latency", "Service", local.service_metrics_service, { stat = "p99", label = "p99" }],
        ]
        annotations = {
          horizontal = [{ label = "p99 alarm", value = var.p99_latency_threshold_ms }]
        }
      }
    },
    {
      type   = "metric"
      width  = 12
      height = 6
      properties = {
        title  = "Service: predictions by quality class (per minute; WINEQ_METRICS_BY_CLASS)"
        region = local.region
        period = 60
        metrics = [
          [{ id = "classes", expression = "SEARCH('${local.service_search.quality} MetricName=\"Predictions\"', 'Sum', 60)" }],
        ]
      }
    },
    {
      type   = "metric"
      width  = 12
      height = 6
      properties = {
        title  = "Service: out-of-distribution values per 100 rows predicted"
        region = local.region
        period = 60
        metrics = [
          [{ id = "ood", label = "out-of-range values per 100 rows", expression = "100 * SUM(SEARCH('${local.service_search.feature} MetricName=\"OutOfDistribution\"', 'Sum', 60)) / SUM(SEARCH('${local.service_search.version} MetricName=\"RowsPerModelCall\"', 'Sum', 60))" }],
        ]
      }
    },
    {
      type   = "metric"
      width  = 12
      height = 6
      properties = {
        title  = "Service: rows per model call (adaptive batch size)"
        region = local.region
        period = 60
        metrics = [
          [{ id = "mean_rows", label = "average", expression = "SEARCH('${local.service_search.version} MetricName=\"RowsPerModelCall\"', 'Average', 60)" }],
          [{ id = "max_rows", label = "maximum", expression = "SEARCH('${local.service_search.version} MetricName=\"RowsPerModelCall\"', 'Maximum', 60)" }],
        ]
      }
    },
    {
      type   = "metric"
      width  = 12
      height = 6
      properties = {
        title  = "Service: exporter's failed PutMetricData calls (reported once it sends again)"
        region = local.region
        period = 60
        metrics = [
          [{ id = "exporter", label = "failed calls", expression = "SUM(SEARCH('${local.service_search.version} MetricName=\"ExporterFailures\"', 'Sum', 60))" }],
        ]
      }
    },
  ]

  dashboard_widgets = concat(
    local.dashboard_alb_widgets,
    local.dashboard_ecs_widgets,
    local.dashboard_service_widgets,
  )
}

resource "aws_cloudwatch_dashboard" "service" {
  dashboard_name = local.name
  dashboard_body = jsonencode({ widgets = local.dashboard_widgets })
}
