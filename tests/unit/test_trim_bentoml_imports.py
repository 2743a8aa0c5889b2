"""The image build's BentoML import trim (docker/trim_bentoml_imports.py), on copies of
the four files it edits: what it moves, that it is exact, idempotent and all-or-nothing."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.bentoml_copy import (
    DEFERRED_AT_START,
    TRIM_SCRIPT,
    copy_bentoml,
    installed_site_packages,
    is_under,
    load_trim,
)

TRIM = load_trim()
EDITED = list(dict.fromkeys(edit.path for edit in TRIM.EDITS))
MODEL_BASE = "_bentoml_sdk/models/base.py"
HUGGING_FACE = "_bentoml_sdk/models/huggingface.py"
SERVER_APP = "_bentoml_impl/server/app.py"


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


def _texts(site: Path) -> dict[str, str]:
    """The edited files' contents in the copy."""
    return {relative: (site / relative).read_text() for relative in EDITED}


def _undefined_names(*files: Path) -> subprocess.CompletedProcess[str]:
    """pyflakes' undefined-name check (ruff F821) over `files`."""
    return subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--isolated", "--select", "F821", *map(str, files)],
        capture_output=True,
        text=True,
        check=False,
    )


def test_the_installed_bentoml_imports_the_cloud_client_at_module_level() -> None:
    # Without this, the trim would have nothing to do: the edits are for this version.
    imports = _module_level_imports(
        (installed_site_packages() / MODEL_BASE).read_text(), _package_of(MODEL_BASE)
    )
    assert "bentoml._internal.cloud.client" in imports


def test_moves_every_cloud_and_proxy_import_out_of_module_level(site: Path) -> None:
    assert sorted(TRIM.apply(site)) == sorted(EDITED)
    for relative in EDITED:
        source = (site / relative).read_text()
        compile(source, relative, "exec")
        imports = _module_level_imports(source, _package_of(relative))
        leaked = [name for name in imports if is_under(name, DEFERRED_AT_START)]
        assert not leaked, f"{relative} still imports {leaked} at module level"


def test_every_name_the_edited_files_use_is_still_defined(site: Path) -> None:
    # An import moved away from a function that uses its name would be a NameError
    # there at run time: pyflakes' undefined-name check (ruff F821) finds it statically.
    TRIM.apply(site)
    result = _undefined_names(*(site / relative for relative in EDITED))
    assert result.returncode == 0, result.stdout


def test_the_undefined_name_check_finds_a_dropped_import(site: Path) -> None:
    # The check above can fail: without one of the moved imports, F821 reports its name.
    TRIM.apply(site)
    base = site / MODEL_BASE
    base.write_text(
        base.read_text().replace(
            "        from bentoml._internal.cloud.schemas.modelschemas import LabelItemSchema\n", ""
        )
    )
    result = _undefined_names(base)
    assert result.returncode == 1
    assert "LabelItemSchema" in result.stdout


def test_a_second_run_changes_nothing(site: Path) -> None:
    TRIM.apply(site)
    once = _texts(site)
    assert TRIM.apply(site) == []
    assert _texts(site) == once


def test_check_writes_nothing(site: Path) -> None:
    before = _texts(site)
    assert sorted(TRIM.apply(site, check_only=True)) == sorted(EDITED)
    assert _texts(site) == before


def test_a_file_that_no_longer_matches_stops_every_edit(site: Path) -> None:
    # As after an upgrade that rewrote one of the functions: nothing may be half-applied.
    app = site / SERVER_APP
    app.write_text(app.read_text().replace("has_custom_command()", "has_command()"))
    before = _texts(site)
    with pytest.raises(TRIM.TrimError, match=r"_bentoml_impl/server/app\.py: 0 matches"):
        TRIM.apply(site)
    assert _texts(site) == before


def test_a_file_partly_as_expected_is_refused(site: Path) -> None:
    # One import line no longer as written (say, a lint comment added upstream): the other
    # edits of that file would leave it at module level, so none is made.
    base = site / MODEL_BASE
    base.write_text(
        base.read_text().replace(
            "import LabelItemSchema\n", "import LabelItemSchema  # noqa: F401\n", 1
        )
    )
    before = _texts(site)
    with pytest.raises(TRIM.TrimError, match=r"_bentoml_sdk/models/base\.py: 0 matches"):
        TRIM.apply(site)
    assert _texts(site) == before


def test_another_bentoml_version_is_refused(site: Path) -> None:
    dist_info = next(site.glob("bentoml-*.dist-info"))
    metadata_file = dist_info / "METADATA"
    metadata_file.write_text(
        metadata_file.read_text().replace(f"Version: {TRIM.BENTOML_VERSION}", "Version: 1.5.0")
    )
    with pytest.raises(TRIM.TrimError, match=r"holds BentoML 1\.5\.0"):
        TRIM.apply(site)


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
    (site / HUGGING_FACE).unlink()
    missing = run()
    assert missing.returncode == 1
    assert HUGGING_FACE in missing.stderr
    assert "Traceback" not in missing.stderr
