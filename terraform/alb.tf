locals {
  tls_enabled = var.domain_name != null
  service_url = local.tls_enabled ? "https://${var.domain_name}" : "http://${aws_lb.this.dns_name}"

  # The listener that serves (its rules forward to the tasks): HTTPS with a domain,
  # else HTTP. With a domain, port 80 only redirects to it.
  serving_listener_arn = local.tls_enabled ? aws_lb_listener.https[0].arn : aws_lb_listener.http.arn

  # ALB rules take at most 3 values per condition and 5 per rule: public paths go 3
  # to a rule; operator paths 3 to a rule, combined with source IPs 2 at a time.
  public_path_groups   = chunklist(local.public_paths, 3)
  operator_path_groups = chunklist(local.operator_paths, 3)
  operator_cidr_groups = chunklist(var.operator_cidrs, 2)
  operator_rules = {
    for pair in setproduct(range(length(local.operator_path_groups)), range(length(local.operator_cidr_groups))) :
    "paths${pair[0]}-cidrs${pair[1]}" => {
      priority = 100 + pair[0] * length(local.operator_cidr_groups) + pair[1]
      paths    = local.operator_path_groups[pair[0]]
      cidrs    = local.operator_cidr_groups[pair[1]]
    }
  }

  # Unmatched paths get the service's own error shape (bento/errors.py), from the ALB.
  not_found_body = jsonencode({
    error   = "not_found"
    message = "No such route."
    detail  = []
  })
}

resource "aws_lb" "this" {
  # checkov:skip=CKV_AWS_91: access logs need a second bucket and cost per GB; request counts, codes and latency are on the dashboard, and the service logs every error.
  # checkov:skip=CKV2_AWS_28: WAF costs ~$10/month before traffic; the service validates every field itself and caps body size (413). Add a web ACL when abuse appears.
  # checkov:skip=CKV2_AWS_76: same WAF decision as above (no Java in the stack either, so Log4j rules protect nothing).
  name               = local.name
  internal           = false
  load_balancer_type = "application"
  security_groups    = [aws_security_group.alb.id]
  subnets            = aws_subnet.public[*].id

  # Malformed headers never reach the service.
  drop_invalid_header_fields = true
  enable_deletion_protection = var.alb_deletion_protection
  # Shorter than the service's keep-alive (main.tf), far above the longest request.
  idle_timeout = local.alb_idle_timeout_seconds

  tags = { Name = local.name }

  lifecycle {
    precondition {
      condition     = var.environment != "production" || local.tls_enabled || var.allow_production_without_https
      error_message = "A production stack needs HTTPS: set domain_name and hosted_zone_id, or set allow_production_without_https = true if plain HTTP is intended."
    }
  }
}

resource "aws_lb_target_group" "service" {
  # checkov:skip=CKV_AWS_378: TLS ends at the ALB; the hop to the task stays inside the VPC, the task's security group admits only the ALB's, and the image carries no certificate.
  # A prefix, not a name: create_before_destroy needs the replacement to coexist with the old group.
  name_prefix = "${substr(replace(var.project, "-", ""), 0, 5)}-"
  port        = local.container_port
  protocol    = "HTTP"
  vpc_id      = aws_vpc.this.id
  # Fargate tasks (awsvpc) register by IP address.
  target_type = "ip"

  # Matched to the service's graceful shutdown (locals in main.tf): long enough for
  # in-flight requests, short enough that deployments do not stall.
  deregistration_delay = local.deregistration_delay_seconds

  health_check {
    # /readyz is 200 only with the model loaded and warmed, and 503 from SIGTERM on.
    path                = local.readiness_path
    matcher             = "200"
    interval            = 10
    timeout             = 5
    healthy_threshold   = 2
    unhealthy_threshold = 3
  }

  tags = { Name = local.name }

  lifecycle {
    create_before_destroy = true
  }
}

# ---------------------------------------------------------------- listeners

resource "aws_lb_listener" "http" {
  # checkov:skip=CKV_AWS_2: port 80 serves plain HTTP only while no domain is configured; with a domain it answers with a redirect to 443.
  # checkov:skip=CKV_AWS_103: the HTTP listener has no TLS to configure; the HTTPS listener uses a TLS 1.2+ policy.
  # checkov:skip=CKV2_AWS_20: see CKV_AWS_2; the redirect is conditional on domain_name.
  load_balancer_arn = aws_lb.this.arn
  port              = 80
  protocol          = "HTTP"

  # With a domain: redirect everything to HTTPS. Without: the serving listener, whose
  # rules (below) forward the known routes; anything else is a 404.
  default_action {
    type = local.tls_enabled ? "redirect" : "fixed-response"

    dynamic "redirect" {
      for_each = local.tls_enabled ? [1] : []
      content {
        port        = "443"
        protocol    = "HTTPS"
        status_code = "HTTP_301"
      }
    }

    dynamic "fixed_response" {
      for_each = local.tls_enabled ? [] : [1]
      content {
        content_type = "application/json"
        message_body = local.not_found_body
        status_code  = "404"
      }
    }
  }
}

resource "aws_lb_listener" "https" {
  count = local.tls_enabled ? 1 : 0

  load_balancer_arn = aws_lb.this.arn
  port              = 443
  protocol          = "HTTPS"
  ssl_policy        = "ELBSecurityPolicy-TLS13-1-2-2021-06"
  certificate_arn   = aws_acm_certificate_validation.this[0].certificate_arn

  default_action {
    type = "fixed-response"

    fixed_response {
      content_type = "application/json"
      message_body = local.not_found_body
      status_code  = "404"
    }
  }
}

# ---------------------------------------------------------------- what the serving listener forwards

# Prediction and health routes, from anywhere the ALB's security group admits.
resource "aws_lb_listener_rule" "public" {
  count = length(local.public_path_groups)

  listener_arn = local.serving_listener_arn
  priority     = 10 + count.index

  action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.service.arn
  }

  condition {
    path_pattern {
      values = local.public_path_groups[count.index]
    }
  }
}

# The web UI and /metrics, only from var.operator_cidrs (none by default).
resource "aws_lb_listener_rule" "operator" {
  for_each = local.operator_rules

  listener_arn = local.serving_listener_arn
  priority     = each.value.priority

  action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.service.arn
  }

  condition {
    path_pattern {
      values = each.value.paths
    }
  }

  condition {
    source_ip {
      values = each.value.cidrs
    }
  }
}

# ---------------------------------------------------------------- certificate and DNS

resource "aws_acm_certificate" "this" {
  count = local.tls_enabled ? 1 : 0

  domain_name       = var.domain_name
  validation_method = "DNS"

  lifecycle {
    create_before_destroy = true

    precondition {
      condition     = var.hosted_zone_id != null
      error_message = "hosted_zone_id is required when domain_name is set (it validates the certificate)."
    }
  }
}

resource "aws_route53_record" "certificate_validation" {
  for_each = {
    for option in(local.tls_enabled ? aws_acm_certificate.this[0].domain_validation_options : []) :
    option.domain_name => option
  }

  zone_id         = var.hosted_zone_id
  name            = each.value.resource_record_name
  type            = each.value.resource_record_type
  records         = [each.value.resource_record_value]
  ttl             = 300
  allow_overwrite = true
}

resource "aws_acm_certificate_validation" "this" {
  count = local.tls_enabled ? 1 : 0

  certificate_arn         = aws_acm_certificate.this[0].arn
  validation_record_fqdns = [for record in aws_route53_record.certificate_validation : record.fqdn]
}

resource "aws_route53_record" "service" {
  count = local.tls_enabled ? 1 : 0

  zone_id = var.hosted_zone_id
  name    = var.domain_name
  type    = "A"

  alias {
    name                   = aws_lb.this.dns_name
    zone_id                = aws_lb.this.zone_id
    evaluate_target_health = true
  }
}
