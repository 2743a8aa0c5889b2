output "service_url" {
  description = "Public URL of the service (HTTPS when a domain is set)."
  value       = local.service_url
}

output "alb_dns_name" {
  description = "DNS name of the load balancer."
  value       = aws_lb.this.dns_name
}

output "ecr_repository_url" {
  description = "ECR repository the deploy workflow pushes to."
  value       = aws_ecr_repository.service.repository_url
}

output "model_bucket" {
  description = "S3 bucket of the model mirror and data (the training settings' s3_bucket)."
  value       = aws_s3_bucket.models.bucket
}

output "ecs_cluster_name" {
  description = "ECS cluster name."
  value       = aws_ecs_cluster.this.name
}

output "ecs_service_name" {
  description = "ECS service name."
  value       = aws_ecs_service.this.name
}

output "task_definition_family" {
  description = "Task definition family the deploy workflow renders new revisions from."
  value       = aws_ecs_task_definition.service.family
}

output "log_group_name" {
  description = "CloudWatch log group of the service."
  value       = aws_cloudwatch_log_group.service.name
}

output "dashboard_name" {
  description = "CloudWatch dashboard of the service."
  value       = aws_cloudwatch_dashboard.service.dashboard_name
}

output "alarm_topic_arn" {
  description = "SNS topic the alarms notify."
  value       = aws_sns_topic.alarms.arn
}

output "github_deploy_role_arn" {
  description = "Role the deploy workflow assumes through GitHub OIDC."
  value       = aws_iam_role.github_deploy.arn
}

# Paste these into the GitHub environment's variables (README: "GitHub setup").
output "github_environment_variables" {
  description = "Variables the deploy and status workflows read from the GitHub environment."
  value = {
    AWS_REGION          = local.region
    AWS_DEPLOY_ROLE_ARN = aws_iam_role.github_deploy.arn
    ECR_REPOSITORY      = aws_ecr_repository.service.name
    ECS_CLUSTER         = aws_ecs_cluster.this.name
    ECS_SERVICE         = aws_ecs_service.this.name
    TASK_FAMILY         = aws_ecs_task_definition.service.family
    CONTAINER_NAME      = local.container_name
    MODEL_BUCKET        = aws_s3_bucket.models.bucket
    SERVICE_URL         = local.service_url
  }
}
