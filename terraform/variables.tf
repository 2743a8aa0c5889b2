# ---------------------------------------------------------------- identity

variable "project" {
  description = "Project name; prefixes every resource name."
  type        = string
  default     = "wine-quality"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,20}$", var.project))
    error_message = "Use 2-21 lowercase letters, digits or dashes (ALB names are capped at 32 characters)."
  }
}

variable "environment" {
  description = "Deployment environment: staging or production."
  type        = string

  validation {
    condition     = contains(["staging", "production"], var.environment)
    error_message = "environment must be staging or production."
  }
}

variable "aws_region" {
  description = "AWS region to deploy into."
  type        = string
  default     = "eu-west-1"
}

variable "tags" {
  description = "Extra tags added to every resource (Project, Environment and ManagedBy are always set)."
  type        = map(string)
  default     = {}
}

# ---------------------------------------------------------------- network

variable "vpc_cidr" {
  description = "CIDR block of the VPC; split into two public and two private /20 subnets."
  type        = string
  default     = "10.40.0.0/16"

  validation {
    condition     = can(cidrhost(var.vpc_cidr, 0)) && tonumber(split("/", var.vpc_cidr)[1]) <= 18
    error_message = "vpc_cidr must be a valid CIDR of size /18 or larger."
  }
}

variable "availability_zone_suffixes" {
  description = "The two availability zones to use, as suffixes of the region name (a and b give eu-west-1a and eu-west-1b)."
  type        = list(string)
  default     = ["a", "b"]

  validation {
    condition     = length(var.availability_zone_suffixes) == 2
    error_message = "Exactly two availability zones: one public and one private subnet each."
  }
}

variable "network_profile" {
  description = "Where the tasks run. public (default, low cost): public subnets with a public IP, reachable only from the ALB's security group, no NAT gateway. private: private subnets with egress through a NAT gateway (fixed egress addresses; its cost is in terraform/README.md, \"Cost\")."
  type        = string
  default     = "public"

  validation {
    condition     = contains(["public", "private"], var.network_profile)
    error_message = "network_profile must be public or private."
  }
}

variable "nat_gateway_per_az" {
  description = "With network_profile = private: one NAT gateway per AZ (AZ-independent egress) instead of a single shared one."
  type        = bool
  default     = false
}

variable "allowed_ingress_cidrs" {
  description = "CIDR blocks allowed to reach the public load balancer."
  type        = list(string)
  default     = ["0.0.0.0/0"]
}

# ---------------------------------------------------------------- load balancer and DNS

variable "domain_name" {
  description = "Public DNS name for the service (e.g. wine.example.com). When set, an ACM certificate is issued and port 443 serves TLS; null keeps plain HTTP on port 80."
  type        = string
  default     = null
}

variable "hosted_zone_id" {
  description = "Route 53 hosted zone that holds domain_name; used to validate the certificate and create the alias record. Required when domain_name is set."
  type        = string
  default     = null
}

variable "operator_cidrs" {
  description = "CIDR blocks that may reach the web UI (/, /docs.json, /schema.json, /static_content/*) and /metrics through the ALB. Empty (default): only the prediction and health routes are forwarded; everything else gets a 404."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for cidr in var.operator_cidrs : can(cidrhost(cidr, 0)) && can(regex("^[0-9.]+/[0-9]+$", cidr))])
    error_message = "operator_cidrs must be IPv4 CIDR blocks such as 203.0.113.0/24."
  }
}

variable "keep_alive_s" {
  description = "Seconds the service keeps an idle HTTP connection open (WINEQ_KEEP_ALIVE_S). The ALB's idle timeout is derived from it and is always shorter, so the ALB never reuses a connection the service has closed."
  type        = number
  default     = 75

  validation {
    # idle_timeout = keep_alive_s - 15 (main.tf) must stay within the ALB's 1-4000 s.
    condition     = var.keep_alive_s == floor(var.keep_alive_s) && var.keep_alive_s >= 16 && var.keep_alive_s <= 4015
    error_message = "keep_alive_s must be a whole number from 16 to 4015 (the ALB idle timeout, 15 s shorter, must stay between 1 and 4000)."
  }
}

variable "allow_production_without_https" {
  description = "Accept a production stack without domain_name (plain HTTP on port 80). Without it, such a plan is refused."
  type        = bool
  default     = false
}

variable "alb_deletion_protection" {
  description = "Refuse to delete the load balancer (turn off before `terraform destroy`)."
  type        = bool
  default     = true
}

# ---------------------------------------------------------------- service

variable "image_tag" {
  description = "Immutable ECR image tag the task definition starts with (the deploy workflow registers later revisions)."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$", var.image_tag)) && !contains(["latest", "main", "stable"], var.image_tag)
    error_message = "image_tag must be a valid, immutable tag such as a commit-based one; moving tags like latest are refused."
  }
}

variable "min_tasks" {
  description = "Fewest running tasks; autoscaling never goes below it (2 keeps a task in each AZ)."
  type        = number
  default     = 1

  validation {
    condition     = var.min_tasks >= 1
    error_message = "min_tasks must be at least 1."
  }
}

variable "max_tasks" {
  description = "Most running tasks autoscaling may start."
  type        = number
  default     = 4

  validation {
    condition     = var.max_tasks >= 1 && var.max_tasks <= 50
    error_message = "max_tasks must be between 1 and 50."
  }
}

variable "requests_per_target" {
  description = "Autoscaling target: ALB requests per task per minute (ALBRequestCountPerTarget); half of one task's measured capacity (terraform/README.md, \"Autoscaling\")."
  type        = number
  default     = 9800

  validation {
    condition     = var.requests_per_target > 0
    error_message = "requests_per_target must be positive."
  }
}

variable "inference_engine" {
  description = "Inference runtime the service uses (WINEQ_ENGINE): onnx or sklearn."
  type        = string
  default     = "onnx"

  validation {
    condition     = contains(["onnx", "sklearn"], var.inference_engine)
    error_message = "inference_engine must be onnx or sklearn."
  }
}

variable "max_batch_rows" {
  description = "Most rows one /predict/batch request may carry (WINEQ_MAX_BATCH_ROWS)."
  type        = number
  default     = 256
}

variable "batch_max_size" {
  description = "Most rows the adaptive batcher merges into one model call (WINEQ_BATCH_MAX_SIZE)."
  type        = number
  default     = 512
}

variable "batch_max_latency_ms" {
  description = "Latency budget of the adaptive batcher before it sheds load (WINEQ_BATCH_MAX_LATENCY_MS)."
  type        = number
  default     = 2000
}

variable "serve_model_version" {
  description = "Model version to fetch from the S3 mirror at start-up (sets WINEQ_MODEL_S3_URI); null serves the model bundled in the image."
  type        = string
  default     = null
}

# ---------------------------------------------------------------- observability

variable "metrics_namespace" {
  description = "CloudWatch namespace of the service's custom metrics; the task role may write to this namespace only."
  type        = string
  default     = "WineQuality"
}

variable "log_retention_days" {
  description = "Days CloudWatch keeps the service's logs."
  type        = number
  default     = 30

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a retention period CloudWatch Logs accepts."
  }
}

variable "container_insights" {
  description = "Enable ECS Container Insights on the cluster (per-task metrics, billed as custom metrics). Off by default; with it on, the tasks-below-desired alarm compares running with desired tasks instead of healthy targets with min_tasks."
  type        = bool
  default     = false
}

variable "alarm_email" {
  description = "E-mail address subscribed to the alarm topic; null creates the topic without a subscription (refused in production unless allow_production_without_alarm_email)."
  type        = string
  default     = null
}

variable "allow_production_without_alarm_email" {
  description = "Accept a production stack whose alarms notify nobody (alarm_email = null). Without it, such a plan is refused."
  type        = bool
  default     = false
}

variable "error_rate_threshold_percent" {
  description = "Alarm (and roll back a deployment) when 5xx responses exceed this share of requests."
  type        = number
  default     = 5
}

variable "p99_latency_threshold_ms" {
  description = "Alarm (and roll back a deployment) when the p99 target response time exceeds this many milliseconds."
  type        = number
  default     = 500
}

variable "p99_alarm_min_requests" {
  description = "Fewest requests in a minute for the p99 alarm to judge it: quieter minutes count as fast, so a few slow requests at low traffic never roll back a good deployment."
  type        = number
  default     = 100

  validation {
    condition     = var.p99_alarm_min_requests >= 1
    error_message = "p99_alarm_min_requests must be at least 1."
  }
}

variable "memory_alarm_threshold_percent" {
  description = "Alarm when a task's memory use (the highest task's, of the 512 MB limit) stays above this share for 5 minutes; at 100 % the task is killed (OOM)."
  type        = number
  default     = 85

  validation {
    condition     = var.memory_alarm_threshold_percent > 0 && var.memory_alarm_threshold_percent < 100
    error_message = "memory_alarm_threshold_percent must be between 0 and 100."
  }
}

# ---------------------------------------------------------------- delivery

variable "github_repository" {
  description = "GitHub repository (owner/name) whose deploy workflow may assume the deploy role."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$", var.github_repository))
    error_message = "github_repository must look like owner/name."
  }
}

variable "github_environment" {
  description = "GitHub environment the deploy job runs in; only that environment's OIDC tokens, from the deploy workflow on main, may assume the deploy role."
  type        = string
  default     = "production"
}

variable "create_github_oidc_provider" {
  description = "Create the account's GitHub OIDC identity provider; set false when another stack already created it (one per account)."
  type        = bool
  default     = true
}

variable "ecr_keep_images" {
  description = "Tagged images the ECR lifecycle policy keeps (older ones expire; rollbacks need a few)."
  type        = number
  default     = 30
}
