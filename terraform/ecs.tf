resource "aws_ecs_cluster" "this" {
  # checkov:skip=CKV_AWS_65: Container Insights bills every metric as a custom metric (README "Cost"); the free service CPU and memory metrics, the ALB metrics and the alarms cover one small service. container_insights = true turns it on.
  name = local.name

  setting {
    name  = "containerInsights"
    value = var.container_insights ? "enabled" : "disabled"
  }
}

locals {
  image = "${aws_ecr_repository.service.repository_url}:${var.image_tag}"

  # Every name here is a field of bento/settings.py:ServiceSettings with the WINEQ_
  # prefix; tests/infra reads that class and fails on any other name.
  container_environment = {
    WINEQ_ENGINE               = var.inference_engine
    WINEQ_MAX_BATCH_ROWS       = tostring(var.max_batch_rows)
    WINEQ_BATCH_MAX_SIZE       = tostring(var.batch_max_size)
    WINEQ_BATCH_MAX_LATENCY_MS = tostring(var.batch_max_latency_ms)
    # The ALB's idle timeout is derived from the same variable (main.tf).
    WINEQ_KEEP_ALIVE_S = tostring(var.keep_alive_s)
    # The in-process exporter writes here; the task role may write to this namespace only.
    WINEQ_METRICS_NAMESPACE = var.metrics_namespace
  }

  # Only set when a version is chosen: absent, the service serves the bundled model.
  optional_container_environment = {
    WINEQ_MODEL_S3_URI = var.serve_model_version == null ? null : "s3://${local.model_bucket_name}/${local.model_prefix}/${var.serve_model_version}/"
  }

  task_environment = [
    for key, value in merge(local.container_environment, local.optional_container_environment) :
    { name = key, value = value } if value != null
  ]
}

resource "aws_ecs_task_definition" "service" {
  # checkov:skip=CKV_AWS_336: The bento's model store under $BENTO_PATH/models must stay writable (a model pulled from S3 at start-up, WINEQ_MODEL_S3_URI, is imported there) and BentoML writes Prometheus multiprocess files under $BENTOML_HOME (/tmp/bentoml).
  family                   = local.name
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = local.task_cpu
  memory                   = local.task_memory
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = aws_iam_role.task.arn

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = "X86_64"
  }

  container_definitions = jsonencode([
    {
      name        = local.container_name
      image       = local.image
      essential   = true
      environment = local.task_environment

      portMappings = [
        { containerPort = local.container_port, protocol = "tcp" }
      ]

      # Seconds between SIGTERM and SIGKILL: the drain takes a few seconds (main.tf).
      stopTimeout = local.stop_timeout_seconds

      # Liveness inside the task (the ALB checks readiness): restarts a wedged process.
      # The image's own Python does the probe, no curl needed.
      healthCheck = {
        command     = ["CMD", "python3", "-c", "import urllib.request as u; u.urlopen('http://127.0.0.1:${local.container_port}${local.liveness_path}', timeout=3)"]
        interval    = 15
        timeout     = 5
        retries     = 3
        startPeriod = local.health_check_grace_seconds
      }

      logConfiguration = {
        logDriver = "awslogs"
        options = {
          awslogs-group         = aws_cloudwatch_log_group.service.name
          awslogs-region        = local.region
          awslogs-stream-prefix = "service"
          # Never block the service on CloudWatch Logs: buffer, and drop when full.
          mode            = "non-blocking"
          max-buffer-size = "4m"
        }
      }
    }
  ])
}

resource "aws_ecs_service" "this" {
  name             = local.name
  cluster          = aws_ecs_cluster.this.id
  task_definition  = aws_ecs_task_definition.service.arn
  desired_count    = var.min_tasks
  launch_type      = "FARGATE"
  platform_version = "LATEST"
  propagate_tags   = "SERVICE"

  # Ignore ALB health checks while a task starts (main.tf: 13 s worst start-up + two checks).
  health_check_grace_period_seconds = local.health_check_grace_seconds

  # Rolling update that never drops below the current capacity.
  deployment_minimum_healthy_percent = 100
  deployment_maximum_percent         = 200

  # Tasks that never become healthy stop the rollout and bring the last good revision back.
  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  # Tasks that start but serve badly (errors, slow) roll back too.
  alarms {
    enable      = true
    rollback    = true
    alarm_names = [aws_cloudwatch_metric_alarm.error_rate.alarm_name, aws_cloudwatch_metric_alarm.latency_p99.alarm_name]
  }

  # network.tf: public subnets with a public IP (low cost) or private subnets behind NAT.
  # Either way the security group admits only the ALB.
  network_configuration {
    subnets          = local.task_subnet_ids
    security_groups  = [aws_security_group.service.id]
    assign_public_ip = local.tasks_in_public_subnets
  }

  load_balancer {
    target_group_arn = aws_lb_target_group.service.arn
    container_name   = local.container_name
    container_port   = local.container_port
  }

  lifecycle {
    # The deploy workflow registers new revisions and autoscaling moves the count;
    # Terraform must not undo either on its next apply (README: "Deploys").
    ignore_changes = [task_definition, desired_count]
  }

  # The target group must be attached before the service registers tasks: the rules
  # that forward to it sit on the serving listener (HTTPS with a domain, where port 80
  # only redirects).
  depends_on = [aws_lb_listener_rule.public, aws_iam_role_policy.execution]
}

# ---------------------------------------------------------------- autoscaling

resource "aws_appautoscaling_target" "service" {
  service_namespace  = "ecs"
  resource_id        = "service/${aws_ecs_cluster.this.name}/${aws_ecs_service.this.name}"
  scalable_dimension = "ecs:service:DesiredCount"
  min_capacity       = var.min_tasks
  max_capacity       = var.max_tasks
}

resource "aws_appautoscaling_policy" "requests_per_target" {
  name               = "${local.name}-requests-per-target"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.service.service_namespace
  resource_id        = aws_appautoscaling_target.service.resource_id
  scalable_dimension = aws_appautoscaling_target.service.scalable_dimension

  target_tracking_scaling_policy_configuration {
    target_value = var.requests_per_target
    # Scale out fast (a new task is ready in ~15 s), scale in slowly to avoid flapping.
    scale_out_cooldown = 60
    scale_in_cooldown  = 300

    predefined_metric_specification {
      predefined_metric_type = "ALBRequestCountPerTarget"
      resource_label         = "${aws_lb.this.arn_suffix}/${aws_lb_target_group.service.arn_suffix}"
    }
  }
}
