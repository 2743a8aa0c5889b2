# Models and data: s3://<bucket>/models/wine_quality/<version>/ (immutable, with a
# manifest) plus the champion pointer, and data/ for the training inputs.

resource "aws_s3_bucket" "models" {
  # checkov:skip=CKV_AWS_18: server access logs need a second bucket; versioning keeps every object's history and CloudTrail records who changed what.
  # checkov:skip=CKV_AWS_144: cross-region replication doubles storage for artifacts that training can reproduce from the versioned data and the recorded seed.
  # checkov:skip=CKV2_AWS_62: nothing consumes bucket events; the deploy workflow reads the champion pointer when it runs.
  bucket = local.model_bucket_name

  # Model history is the audit trail: a destroy must not take it along silently.
  force_destroy = false
}

resource "aws_s3_bucket_versioning" "models" {
  bucket = aws_s3_bucket.models.id

  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "models" {
  bucket = aws_s3_bucket.models.id

  rule {
    # SSE-KMS with the AWS-managed aws/s3 key: its key policy lets principals of this
    # account decrypt through S3, so the task role needs no kms:* action.
    apply_server_side_encryption_by_default {
      sse_algorithm = "aws:kms"
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_public_access_block" "models" {
  bucket = aws_s3_bucket.models.id

  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "models" {
  bucket = aws_s3_bucket.models.id

  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "models" {
  bucket = aws_s3_bucket.models.id

  rule {
    id     = "abort-incomplete-uploads"
    status = "Enabled"
    filter {}

    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }

  # Published versions are never overwritten; old noncurrent copies only come from
  # the champion pointer moving, and a year of those is plenty of history.
  rule {
    id     = "expire-old-noncurrent-versions"
    status = "Enabled"
    filter {}

    noncurrent_version_expiration {
      noncurrent_days = 365
    }
  }

  depends_on = [aws_s3_bucket_versioning.models]
}

data "aws_iam_policy_document" "models_bucket" {
  statement {
    sid     = "DenyInsecureTransport"
    effect  = "Deny"
    actions = ["s3:*"]
    resources = [
      aws_s3_bucket.models.arn,
      "${aws_s3_bucket.models.arn}/*",
    ]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }

  statement {
    sid     = "DenyOldTls"
    effect  = "Deny"
    actions = ["s3:*"]
    resources = [
      aws_s3_bucket.models.arn,
      "${aws_s3_bucket.models.arn}/*",
    ]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "NumericLessThan"
      variable = "s3:TlsVersion"
      values   = ["1.2"]
    }
  }
}

resource "aws_s3_bucket_policy" "models" {
  bucket = aws_s3_bucket.models.id
  policy = data.aws_iam_policy_document.models_bucket.json

  # The policy is refused while the public-access block is still being applied.
  depends_on = [aws_s3_bucket_public_access_block.models]
}
