"""Shared helpers for the static infra checks: parsed Terraform, workflows and scanner paths."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hcl2
import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
TERRAFORM_DIR = REPO_ROOT / "terraform"
WORKFLOWS_DIR = REPO_ROOT / ".github" / "workflows"
TOOLS_DIR = REPO_ROOT / ".tools"
TOOLS_HINT = (
    "run `make tools` (installs requirements/tools.lock and the pinned npm tool into .tools/)"
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test in this folder `infra`, so `-m infra` selects them."""
    for item in items:
        if Path(str(item.fspath)).is_relative_to(Path(__file__).parent):
            item.add_marker(pytest.mark.infra)


# ---------------------------------------------------------------- HCL


def _unquote(value: Any) -> Any:
    """Normalise python-hcl2 output: newer releases keep string quotes and add `__` meta keys."""
    if isinstance(value, str):
        if len(value) >= 2 and value[0] == value[-1] == '"':
            return value[1:-1]
        return value
    if isinstance(value, list):
        return [_unquote(item) for item in value]
    if isinstance(value, dict):
        return {
            _unquote(key): _unquote(item)
            for key, item in value.items()
            if not (isinstance(key, str) and key.startswith("__"))
        }
    return value


def parse_hcl(path: Path) -> dict[str, Any]:
    """Parse one .tf/.tfvars file into plain Python values."""
    with path.open(encoding="utf-8") as handle:
        parsed: dict[str, Any] = _unquote(hcl2.load(handle))
    return parsed


@dataclass
class Terraform:
    """Every block of the terraform/ root, merged across its files."""

    resources: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    data: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    variables: dict[str, dict[str, Any]] = field(default_factory=dict)
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    locals: dict[str, Any] = field(default_factory=dict)
    terraform_blocks: list[dict[str, Any]] = field(default_factory=list)
    text: dict[str, str] = field(default_factory=dict)

    def resource(self, kind: str, name: str) -> dict[str, Any]:
        """One resource's arguments; a clear failure when it is missing."""
        assert name in self.resources.get(kind, {}), f"terraform/ has no {kind}.{name}"
        return self.resources[kind][name]

    def resolve(self, value: Any) -> Any:
        """Follow a bare `${local.x}` / `${var.x}` reference to its literal value or default."""
        for _ in range(10):
            if not isinstance(value, str):
                return value
            match = re.fullmatch(r"\$\{(local|var)\.([A-Za-z0-9_]+)\}", value)
            if match is None:
                return value
            kind, name = match.groups()
            if kind == "local":
                assert name in self.locals, f"local.{name} is not defined"
                value = self.locals[name]
            else:
                assert name in self.variables, f"var.{name} is not declared"
                value = self.variables[name].get("default")
        return value


def _merge_named(target: dict[str, dict[str, dict[str, Any]]], blocks: list[Any]) -> None:
    for block in blocks:
        for kind, named in block.items():
            for name, body in named.items():
                assert name not in target.get(kind, {}), f"{kind}.{name} is declared twice"
                target.setdefault(kind, {})[name] = body


def load_terraform() -> Terraform:
    """Parse every .tf file of terraform/ (python-hcl2) and merge the blocks."""
    tf = Terraform()
    files = sorted(TERRAFORM_DIR.glob("*.tf"))
    assert files, f"no .tf files in {TERRAFORM_DIR}"
    for path in files:
        tf.text[path.name] = path.read_text(encoding="utf-8")
        parsed = parse_hcl(path)
        _merge_named(tf.resources, parsed.get("resource", []))
        _merge_named(tf.data, parsed.get("data", []))
        for block in parsed.get("variable", []):
            tf.variables.update(block)
        for block in parsed.get("output", []):
            tf.outputs.update(block)
        for block in parsed.get("locals", []):
            for key in block:
                assert key not in tf.locals, f"local.{key} is defined twice"
            tf.locals.update(block)
        tf.terraform_blocks.extend(parsed.get("terraform", []))
    return tf


@pytest.fixture(scope="session")
def terraform() -> Terraform:
    """The terraform/ root, parsed once per session."""
    return load_terraform()


# ---------------------------------------------------------------- workflows


def workflow_files() -> list[Path]:
    """Every GitHub workflow file of the repository."""
    return sorted([*WORKFLOWS_DIR.glob("*.yml"), *WORKFLOWS_DIR.glob("*.yaml")])


def load_workflow(path: Path) -> dict[str, Any]:
    """A workflow as a dict; PyYAML reads the bare key `on` as True, so it is renamed back."""
    parsed = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(parsed, dict), f"{path.name} is not a YAML mapping"
    if True in parsed:
        parsed["on"] = parsed.pop(True)
    return parsed


def iter_steps(workflow: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(job id, step) for every step of every job."""
    for job_id, job in workflow.get("jobs", {}).items():
        for step in job.get("steps", []):
            yield job_id, step


# ---------------------------------------------------------------- scanners


def tool_path(relative: str) -> Path:
    """Path of a scanner under .tools/; fails (never skips) when it is not installed."""
    path = TOOLS_DIR / relative
    if not path.exists():
        pytest.fail(f"{path.relative_to(REPO_ROOT)} is missing: {TOOLS_HINT}", pytrace=False)
    return path


def run_tool(
    args: list[str | Path], cwd: Path = REPO_ROOT, timeout: int = 300
) -> subprocess.CompletedProcess[str]:
    """Run a scanner as a subprocess and capture its output."""
    return subprocess.run(
        [str(arg) for arg in args],
        cwd=cwd,
        # checkov would otherwise try to download its guideline mapping.
        env={**os.environ, "BC_SKIP_MAPPING": "TRUE"},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
