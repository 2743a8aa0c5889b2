"""The bento build stays consistent with the project's lock and settings."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from bento.settings import ServiceSettings
from training.settings import TrainingSettings

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
    assert served_name == TrainingSettings().model_name
    assert [str(m).split(":")[0] for m in bentofile["models"]] == [served_name]
    assert bentofile["service"] == "bento.service:WineQualityService"
