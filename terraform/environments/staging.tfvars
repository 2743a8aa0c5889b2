environment       = "staging"
aws_region        = "eu-west-1"
github_repository = "CHANGE-ME/wine-quality"
# Only the production stack creates the account's GitHub OIDC provider.
create_github_oidc_provider = false
github_environment          = "staging"

# Set by the bootstrap push (README), then owned by the deploy workflow.
image_tag = "CHANGE-ME-bootstrap-tag"

min_tasks = 1
max_tasks = 2

# Staging shows the web UI and /metrics through the ALB; narrow this to your office or
# VPN ranges. Production leaves it empty: only /predict* and the health routes.
operator_cidrs = ["0.0.0.0/0"]

# Staging is torn down often.
alb_deletion_protection = false
log_retention_days      = 14
