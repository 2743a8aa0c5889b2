# A production stack is refused at plan time without HTTPS or an alarm recipient, unless
# a variable says so; with a domain the HTTPS listener serves and port 80 redirects.

mock_provider "aws" {
  source = "./tests/mocks"
}

# Distinct listener ARNs, so a test can tell which listener a rule sits on. Every run
# here is a plan, so the values are given at plan time.
override_resource {
  target          = aws_lb_listener.http
  override_during = plan
  values          = { arn = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:listener/app/mock/0123456789abcdef/0000000000000080" }
}

override_resource {
  target          = aws_lb_listener.https
  override_during = plan
  values          = { arn = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:listener/app/mock/0123456789abcdef/0000000000000443" }
}

variables {
  environment       = "production"
  github_repository = "example/wine-quality"
  image_tag         = "0123456789ab-1.1"
}

run "production_without_https_or_alarm_recipient_is_refused" {
  command         = plan
  expect_failures = [aws_lb.this, aws_sns_topic.alarms]
}

run "production_without_https_is_refused_even_with_an_alarm_recipient" {
  command = plan

  variables {
    alarm_email = "oncall@example.com"
  }

  expect_failures = [aws_lb.this]
}

run "production_without_them_is_accepted_when_stated" {
  command = plan

  variables {
    allow_production_without_https       = true
    allow_production_without_alarm_email = true
  }
}

run "staging_needs_neither" {
  command = plan

  variables {
    environment = "staging"
  }
}

run "production_with_a_domain_serves_https_and_redirects_http" {
  command = plan

  variables {
    domain_name    = "wine.example.com"
    hosted_zone_id = "Z0123456789ABCDEFGHIJ"
    alarm_email    = "oncall@example.com"
  }

  # The real provider knows the validation record's name at plan time; the mock does not.
  override_resource {
    target          = aws_acm_certificate.this
    override_during = plan
    values = {
      arn = "arn:aws:acm:eu-west-1:123456789012:certificate/mock"
      domain_validation_options = [{
        domain_name           = "wine.example.com"
        resource_record_name  = "_0123.wine.example.com."
        resource_record_type  = "CNAME"
        resource_record_value = "_4567.acm-validations.aws."
      }]
    }
  }

  assert {
    condition     = aws_lb_listener.http.default_action[0].type == "redirect" && aws_lb_listener.http.default_action[0].redirect[0].protocol == "HTTPS"
    error_message = "with a domain port 80 only redirects to HTTPS"
  }
  assert {
    condition     = aws_lb_listener.https[0].default_action[0].type == "fixed-response" && aws_lb_listener.https[0].default_action[0].fixed_response[0].status_code == "404"
    error_message = "the HTTPS listener answers unknown paths with a 404 itself"
  }
  assert {
    condition     = alltrue([for rule in aws_lb_listener_rule.public : rule.listener_arn == aws_lb_listener.https[0].arn])
    error_message = "the forwarding rules sit on the HTTPS listener"
  }
  assert {
    condition     = length(aws_lb_listener_rule.operator) == 0
    error_message = "production exposes no web UI or /metrics by default"
  }
  assert {
    condition     = length(aws_vpc_security_group_ingress_rule.alb_https) == 1
    error_message = "the ALB accepts port 443 with a domain"
  }
}
