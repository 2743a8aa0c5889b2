# The one definition of the service's CloudWatch dashboard. Widgets are grouped in
# lists and concatenated at the bottom; CloudWatch lays them out left to right in
# that order. To extend it (e.g. the service's custom metrics in
# var.metrics_namespace), add a list here and append it to local.dashboard_widgets.

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

  dashboard_widgets = concat(
    local.dashboard_alb_widgets,
    local.dashboard_ecs_widgets,
  )
}

resource "aws_cloudwatch_dashboard" "service" {
  dashboard_name = local.name
  dashboard_body = jsonencode({ widgets = local.dashboard_widgets })
}
