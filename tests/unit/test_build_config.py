"""The bento build stays consistent with the project's lock and settings."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from bento.settings import ServiceSettings
from training.artifacts import MODEL_NAME

REPO = Path(__file__).resolve().parents[2]


def _locked_versions() -> dict[str, str]:
    text = (REPO / "requirements" / "dev.lock").read_text()
    return {
        name.lower(): version
        for name, version in re.findall(r"^([A-Za-z0-9_.\-]+)==([^\s\\]+)", text, re.M)
    }


def test_bentofile_pins_the_versions_the_tests_run_with() -> None:
    bentofile = yaml.safe_load((REPO / "bentofile.yaml").read_text())
    locked = _locked_versions()
    pins = dict(p.split("==") for p in bentofile["python"]["packages"])
    assert pins, "bentofile.yaml pins no packages"
    mismatched = {
        n: (v, locked.get(n.lower())) for n, v in pins.items() if locked.get(n.lower()) != v
    }
    assert not mismatched, f"bentofile pin vs requirements/dev.lock: {mismatched}"


def test_bentofile_bundles_the_model_the_service_serves() -> None:
    bentofile = yaml.safe_load((REPO / "bentofile.yaml").read_text())
    served_name = ServiceSettings().model_tag.split(":")[0]
    assert served_name == MODEL_NAME
    assert [str(m).split(":")[0] for m in bentofile["models"]] == [served_name]
    assert bentofile["service"] == "bento.service:WineQualityService"


def test_the_bento_includes_every_project_module_the_service_imports() -> None:
    # What a worker imports from the repository must be in the bento, or the image fails.
    import subprocess
    import sys

    import pathspec

    probe = (
        "import sys, bento.service, bento.runtime, bento.inference, training.mirror; "
        "print('\\n'.join(m.__file__ for m in list(sys.modules.values()) "
        "if getattr(m, '__file__', None)))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    ours = sorted(
        str(Path(path).relative_to(REPO))
        for path in loaded
        if Path(path).is_relative_to(REPO) and not Path(path).is_relative_to(REPO / ".venv")
    )
    assert "bento/service.py" in ours
    include = yaml.safe_load((REPO / "bentofile.yaml").read_text())["include"]
    # BentoML reads `include` as gitignore-style patterns.
    spec = pathspec.PathSpec.from_lines("gitwildmatch", include)
    missing = [path for path in ours if not spec.match_file(path)]
    assert missing == [], f"bentofile.yaml does not include {missing}"
