"""terraform itself over terraform/: fmt where a binary is on the PATH; validate and the
`terraform test` files where the machine also has the AWS provider in a plugin mirror.

GitHub CI runs the same three (ci.yml, job iac-scan) with the pinned provider from the
registry; its test job has no terraform, so these skip there, with the reason shown.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.infra.conftest import TERRAFORM_DIR

TERRAFORM = shutil.which("terraform")
# The machine image's provider mirror; the registry is out of reach here.
PLUGIN_MIRROR = Path("/opt/tf-plugins")
PROVIDER_DIR = PLUGIN_MIRROR / "registry.terraform.io" / "hashicorp" / "aws"
TEST_FILES = sorted((TERRAFORM_DIR / "tests").glob("*.tftest.hcl"))
UNFORMATTED = 'resource "aws_s3_bucket" "x" {\nbucket="x"\n  force_destroy   = false\n}\n'

needs_terraform = pytest.mark.skipif(
    TERRAFORM is None, reason="no terraform on the PATH (GitHub CI's iac-scan job runs it)"
)


def _mirrored_versions() -> list[str]:
    """Provider versions in the mirror, oldest first."""
    versions = [path.name for path in PROVIDER_DIR.glob("*") if path.is_dir()]
    return sorted(versions, key=lambda v: tuple(int(p) if p.isdigit() else 0 for p in v.split(".")))


needs_provider = pytest.mark.skipif(
    TERRAFORM is None or not _mirrored_versions(),
    reason=f"no terraform or no AWS provider under {PLUGIN_MIRROR} "
    "(GitHub CI's iac-scan job runs validate and test with the registry's provider)",
)


def _terraform(*args: str, cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    assert TERRAFORM is not None
    return subprocess.run(
        [TERRAFORM, *args],
        cwd=cwd,
        # No checkpoint calls home; plain output to read.
        env={**os.environ, "CHECKPOINT_DISABLE": "1", "TF_IN_AUTOMATION": "1"},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@needs_terraform
def test_terraform_fmt_is_clean() -> None:
    result = _terraform(
        "fmt", "-check", "-recursive", "-diff", str(TERRAFORM_DIR), cwd=TERRAFORM_DIR
    )
    assert result.returncode == 0, f"run `terraform fmt -recursive terraform`:\n{result.stdout}"


@needs_terraform
def test_terraform_fmt_check_catches_a_misformatted_file(tmp_path: Path) -> None:
    (tmp_path / "main.tf").write_text(UNFORMATTED, encoding="utf-8")
    result = _terraform("fmt", "-check", "-recursive", str(tmp_path), cwd=tmp_path)
    assert result.returncode != 0
    assert "main.tf" in result.stdout


@pytest.fixture(scope="module")
def initialised_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """terraform/ copied and initialised against the mirrored provider.

    The copy's provider pin is set to the mirrored version (the root pins the current
    major; the machine may carry an older one): validate and the tests then check the
    configuration against that version's schema.
    """
    root = tmp_path_factory.mktemp("terraform") / "root"
    shutil.copytree(TERRAFORM_DIR, root, ignore=shutil.ignore_patterns(".terraform*"))
    versions = root / "versions.tf"
    text = versions.read_text(encoding="utf-8")
    pinned, count = re.subn(
        r'(source\s*=\s*"hashicorp/aws"\s*\n\s*(?:#[^\n]*\n\s*)*version\s*=\s*)"[^"]+"',
        rf'\g<1>"{_mirrored_versions()[-1]}"',
        text,
    )
    assert count == 1, "versions.tf no longer pins hashicorp/aws where expected"
    versions.write_text(pinned, encoding="utf-8")
    result = _terraform(
        "init",
        "-backend=false",
        "-input=false",
        "-no-color",
        f"-plugin-dir={PLUGIN_MIRROR}",
        cwd=root,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return root


@needs_provider
def test_terraform_validate(initialised_copy: Path) -> None:
    result = _terraform("validate", "-no-color", cwd=initialised_copy)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "The configuration is valid" in result.stdout


def test_there_are_terraform_test_files() -> None:
    assert {path.name for path in TEST_FILES} >= {
        "defaults.tftest.hcl",
        "options.tftest.hcl",
        "production.tftest.hcl",
    }


@needs_provider
@pytest.mark.parametrize("test_file", TEST_FILES, ids=lambda path: path.name)
def test_terraform_test_file_passes(initialised_copy: Path, test_file: Path) -> None:
    relative = f"tests/{test_file.name}"
    result = _terraform("test", "-no-color", f"-filter={relative}", cwd=initialised_copy)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    runs = len(re.findall(r'^run "', test_file.read_text(encoding="utf-8"), flags=re.MULTILINE))
    assert runs, f"{relative} has no run blocks"
    assert re.search(rf"Success! {runs} passed, 0 failed\.", output), output[-3000:]
