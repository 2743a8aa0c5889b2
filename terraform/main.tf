provider "aws" {
  region = var.aws_region

  # Every resource carries the same tags, so cost reports split by project and environment.
  default_tags {
    tags = local.tags
  }
}

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
# Named zones, not "the first two available": the subnets must not move when AWS
# adds a zone to the region.
data "aws_availability_zones" "available" {
  state = "available"

  filter {
    name   = "zone-name"
    values = [for suffix in var.availability_zone_suffixes : "${var.aws_region}${suffix}"]
  }
}

locals {
  name = "${var.project}-${var.environment}"

  tags = merge(var.tags, {
    Project     = var.project
    Environment = var.environment
    ManagedBy   = "terraform"
  })

  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  region     = var.aws_region

  # Two AZs: the ALB needs two, and a second task in another AZ survives an AZ outage.
  azs = sort(data.aws_availability_zones.available.names)

  # The service's contract (bento/service.py): one port, these health paths.
  container_name    = "wine-quality"
  container_port    = 3000
  readiness_path    = "/readyz"
  liveness_path     = "/livez"
  model_name        = "wine_quality"
  model_prefix      = "models/${local.model_name}"
  model_bucket_name = "${local.name}-models-${local.account_id}"

  # Fargate's smallest size; tests/container runs the image under the same limits.
  task_cpu    = 256
  task_memory = 512

  # Timing, from measurements of the image at 0.25 vCPU (see README "Sizing"):
  # - start-up to the first /readyz 200 takes 8-13 s (model load, checksum, warm-up);
  # - on SIGTERM /readyz turns 503 and in-flight requests drain within a few seconds,
  #   the longest allowed request being the batcher's 2 s latency budget.
  # The ALB keeps a draining target for `deregistration_delay` before ECS sends SIGTERM,
  # so 20 s covers any request in flight; stopTimeout then gives the process 30 s
  # (drain plus margin) before SIGKILL.
  deregistration_delay_seconds = 20
  stop_timeout_seconds         = 30
  # Grace: worst start-up (13 s) + two passing ALB checks (2 x 10 s) + slack for a
  # cold image pull; a shorter grace lets ECS kill tasks that were only slow to start.
  health_check_grace_seconds = 60

  # Keep-alive: the service (WINEQ_KEEP_ALIVE_S) keeps idle connections longer than
  # the ALB does, so the ALB always closes an idle connection first and never sends a
  # request down one the service has just closed (a 502). One variable sets both.
  keep_alive_margin_seconds = 15
  alb_idle_timeout_seconds  = var.keep_alive_s - local.keep_alive_margin_seconds

  # What the ALB forwards (alb.tf). Everyone: the prediction and health routes.
  # Only var.operator_cidrs: BentoML's web UI (index page, its OpenAPI document and
  # schema, its static files) and the Prometheus metrics. Anything else: a 404 from the
  # ALB, costing the 0.25 vCPU task nothing. Exact paths, case-sensitive, as served.
  public_paths   = ["/predict", "/predict/batch", "/healthz", "/livez", "/readyz", "/health"]
  operator_paths = ["/", "/docs.json", "/schema.json", "/static_content/*", "/metrics"]

  # Built from names, not from the resource, so the deploy role can be created before the service (README: bootstrap).
  ecs_service_arn = "arn:${local.partition}:ecs:${local.region}:${local.account_id}:service/${local.name}/${local.name}"
  # Every revision of the service's task definition family (the deploy workflow registers them).
  task_definition_revisions_arn = "arn:${local.partition}:ecs:${local.region}:${local.account_id}:task-definition/${local.name}:*"
}
