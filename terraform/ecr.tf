resource "aws_ecr_repository" "service" {
  name = local.name
  # A tag names one image forever: the task definition's tag is a deployment record.
  image_tag_mutability = "IMMUTABLE"
  # Guard against deleting the images that running tasks still use.
  force_delete = false

  image_scanning_configuration {
    scan_on_push = true
  }

  # AWS-managed key (aws/ecr): encryption at rest with KMS at no key cost, and no
  # key-policy plumbing for the roles that pull.
  encryption_configuration {
    encryption_type = "KMS"
  }
}

resource "aws_ecr_lifecycle_policy" "service" {
  repository = aws_ecr_repository.service.name

  policy = jsonencode({
    rules = [
      {
        rulePriority = 1
        description  = "Untagged layers left by failed pushes"
        selection = {
          tagStatus   = "untagged"
          countType   = "sinceImagePushed"
          countUnit   = "days"
          countNumber = 7
        }
        action = { type = "expire" }
      },
      {
        rulePriority = 2
        description  = "Keep the newest tagged images for rollbacks"
        selection = {
          tagStatus   = "any"
          countType   = "imageCountMoreThan"
          countNumber = var.ecr_keep_images
        }
        action = { type = "expire" }
      },
    ]
  })
}
