"""The image build's BentoML import trim (docker/trim_bentoml_imports.py), on copies of
the four files it edits: what it moves, that it is exact, idempotent and all-or-nothing."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tests.fixtures.bentoml_copy import (
    TRIM_SCRIPT,
    copy_bentoml,
    installed_site_packages,
    load_trim,
)

EDITED = [
    "_bentoml_sdk/models/base.py",
    "_bentoml_sdk/models/huggingface.py",
    "bentoml/_internal/utils/analytics/schemas.py",
    "_bentoml_impl/server/app.py",
]
# What no edited file may import when it is itself imported.
DEFERRED = ("bentoml._internal.cloud", "_bentoml_impl.server.proxy", "pyparsing")


@pytest.fixture(scope="module")
def trim() -> ModuleType:
    return load_trim()


@pytest.fixture
def site(tmp_path: Path) -> Path:
    return copy_bentoml(tmp_path / "site-packages", EDITED)


def _module_level_imports(source: str, package: str) -> set[str]:
    """Modules imported by the statements at a module's top level (not in functions,
    not under `if TYPE_CHECKING`), relative imports resolved against ``package``."""
    found: set[str] = set()
    for node in ast.parse(source).body:
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            found.add(".".join(part for part in (base, node.module) if part))
    return found


def _package_of(relative: str) -> str:
    return ".".join(Path(relative).with_suffix("").parts[:-1])


def test_the_installed_bentoml_imports_the_cloud_client_at_module_level() -> None:
    # Without this, the trim would have nothing to do: the edits are for this version.
    imports = _module_level_imports(
        (installed_site_packages() / EDITED[0]).read_text(), _package_of(EDITED[0])
    )
    assert "bentoml._internal.cloud.client" in imports


def test_moves_every_cloud_and_proxy_import_out_of_module_level(
    trim: ModuleType, site: Path
) -> None:
    assert sorted(trim.apply(site)) == sorted(EDITED)
    for relative in EDITED:
        source = (site / relative).read_text()
        compile(source, relative, "exec")
        imports = _module_level_imports(source, _package_of(relative))
        leaked = [name for name in imports if name.startswith(DEFERRED)]
        assert not leaked, f"{relative} still imports {leaked} at module level"


def test_the_moved_imports_are_where_they_are_used(trim: ModuleType, site: Path) -> None:
    trim.apply(site)
    base = (site / EDITED[0]).read_text()
    method = '    def to_create_schema(self) -> CreateModelSchema:\n        """'
    body = base[base.index(method) :]
    assert body.index("import CreateModelSchema") < body.index("return CreateModelSchema(")
    analytics = (site / EDITED[2]).read_text()
    assert analytics.index("import CloudClientConfig") < analytics.index(
        "return CloudClientConfig.get_config"
    )
    app = (site / EDITED[3]).read_text()
    assert app.index("import create_proxy_app") < app.index("create_proxy_app(self.service)")


def test_a_second_run_changes_nothing(trim: ModuleType, site: Path) -> None:
    trim.apply(site)
    once = {relative: (site / relative).read_text() for relative in EDITED}
    assert trim.apply(site) == []
    assert {relative: (site / relative).read_text() for relative in EDITED} == once


def test_check_writes_nothing(trim: ModuleType, site: Path) -> None:
    before = {relative: (site / relative).read_text() for relative in EDITED}
    assert sorted(trim.apply(site, check_only=True)) == sorted(EDITED)
    assert {relative: (site / relative).read_text() for relative in EDITED} == before


def test_a_file_that_no_longer_matches_stops_every_edit(trim: ModuleType, site: Path) -> None:
    # As after an upgrade that rewrote one of the functions: nothing may be half-applied.
    app = site / EDITED[3]
    app.write_text(app.read_text().replace("has_custom_command()", "has_command()"))
    before = {relative: (site / relative).read_text() for relative in EDITED}
    with pytest.raises(trim.TrimError, match=r"_bentoml_impl/server/app\.py: 0 matches"):
        trim.apply(site)
    assert {relative: (site / relative).read_text() for relative in EDITED} == before


def test_another_bentoml_version_is_refused(trim: ModuleType, site: Path) -> None:
    dist_info = next(site.glob("bentoml-*.dist-info"))
    metadata_file = dist_info / "METADATA"
    metadata_file.write_text(
        metadata_file.read_text().replace(f"Version: {trim.BENTOML_VERSION}", "Version: 1.5.0")
    )
    with pytest.raises(trim.TrimError, match=r"holds BentoML 1\.5\.0"):
        trim.apply(site)


def test_the_command_line_reports_and_fails_clearly(site: Path) -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(TRIM_SCRIPT), "--site-packages", str(site), *args],
            capture_output=True,
            text=True,
            check=False,
        )

    checked = run("--check")
    assert checked.returncode == 0, checked.stderr
    assert "would change 4 file(s)" in checked.stdout
    applied = run()
    assert applied.returncode == 0, applied.stderr
    assert "changed 4 file(s)" in applied.stdout
    (site / EDITED[1]).unlink()
    missing = run()
    assert missing.returncode == 1
    assert "Traceback" not in missing.stderr
