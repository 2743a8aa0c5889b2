"""Terraform's model prefix and the task role's S3 read match the mirror's key layout."""

from __future__ import annotations

import re

from tests.infra.conftest import Terraform
from training import mirror
from training.artifacts import MODEL_NAME
from training.settings import TrainingSettings

BUCKET_ARN = "${aws_s3_bucket.models.arn}"
_LOCAL_REF = re.compile(r"\$\{local\.([A-Za-z0-9_]+)\}")


def _expand_locals(terraform: Terraform, value: str) -> str:
    """Replace every ``${local.x}`` inside a string by its value, recursively."""

    def expand(match: re.Match[str]) -> str:
        resolved = terraform.resolve(match.group(0))
        assert isinstance(resolved, str), f"local.{match.group(1)} is not a string"
        return _expand_locals(terraform, resolved)

    return _LOCAL_REF.sub(expand, value)


def test_terraform_model_prefix_and_task_role_read_match_the_mirror_layout(
    terraform: Terraform,
) -> None:
    # The defaults the trainer pushes with (environment overrides left out on purpose).
    layout = mirror.MirrorLayout(
        "bucket", TrainingSettings.model_fields["s3_prefix"].default, MODEL_NAME
    )

    model_prefix = _expand_locals(terraform, terraform.locals["model_prefix"])
    assert f"{model_prefix}/" == layout.model_root, (
        f"terraform local.model_prefix is {model_prefix!r}, the mirror writes under "
        f"{layout.model_root!r} (training/settings.py s3_prefix, training/artifacts.py MODEL_NAME)"
    )

    statements = terraform.data["aws_iam_policy_document"]["task"]["statement"]
    (read,) = [s for s in statements if "s3:GetObject" in s["actions"]]
    resources = [_expand_locals(terraform, resource) for resource in read["resources"]]
    assert resources == [f"{BUCKET_ARN}/{layout.model_root}*"]

    # Every key the service reads (pull and the champion pointer) is under that grant.
    keys = [
        layout.manifest_key("v1"),
        layout.artifact_key("v1", mirror.artifact_filename("0" * 64)),
        layout.champion_key,
    ]
    assert all(key.startswith(layout.model_root) for key in keys), keys
