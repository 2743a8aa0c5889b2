environment        = "production"
aws_region         = "eu-west-1"
github_repository  = "CHANGE-ME/wine-quality"
github_environment = "production"

# Set by the bootstrap push (README), then owned by the deploy workflow.
image_tag = "CHANGE-ME-bootstrap-tag"

# Two tasks keep one in each AZ; four absorb ~4x the single-task load.
min_tasks = 2
max_tasks = 4

# A production plan is refused without both (or the allow_production_without_* waiver).
domain_name    = null # e.g. "wine.example.com"
hosted_zone_id = null # its Route 53 zone
alarm_email    = null # e.g. "oncall@example.com"

# "private" puts the tasks behind a NAT gateway (fixed egress addresses; README "Cost").
network_profile = "public"
