terraform {
  # 1.10: the S3 backend's use_lockfile (environments/*.s3.tfbackend). CI runs 1.11.
  required_version = ">= 1.10.0"

  required_providers {
    aws = {
      source = "hashicorp/aws"
      # Pinned to one major: a provider major can rename arguments under us.
      version = "~> 6.0"
    }
  }

  # Partial configuration: bucket, key, region and lock settings come from
  # `terraform init -backend-config=environments/<env>.s3.tfbackend`, so one
  # root serves every environment and no account detail is committed here.
  backend "s3" {}
}
