"""BentoML with the image build's import trim (docker/trim_bentoml_imports.py) loads the
service without its BentoCloud client, and the code that needs the client still gets it.

A trimmed copy of this venv's BentoML goes first on PYTHONPATH of a fresh interpreter,
which loads the service and builds its ASGI app the way a worker does, then calls the
two functions whose imports the trim moved. The untrimmed BentoML, loaded the same way,
shows what the trim removes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fixtures.bentoml_copy import DEFERRED_AT_START, copy_bentoml, is_under, load_trim
from tests.fixtures.cli import REPO_ROOT
from tests.fixtures.server import private_home

pytestmark = pytest.mark.integration

CLOUD_EMAIL = "ops@example.com"

_LOAD_LIKE_A_WORKER = """
import json, sys
import bentoml
from _bentoml_impl.loader import load
load("bento.service:WineQualityService").to_asgi(is_main=True)
loaded = sorted(sys.modules)
schema = bentoml.models.BentoModel(sys.argv[1]).to_create_schema()
from bentoml._internal.utils.analytics.schemas import get_yatai_user_email
print(json.dumps({
    "bentoml": bentoml.__file__,
    "loaded_at_start": loaded,
    "schema": {"version": schema.version, "module": schema.manifest.module},
    "email": get_yatai_user_email(),
}))
"""


@pytest.fixture(scope="module")
def trimmed_bentoml(tmp_path_factory: pytest.TempPathFactory) -> Path:
    site = copy_bentoml(tmp_path_factory.mktemp("trimmed") / "site-packages")
    assert load_trim().apply(site), "the trim changed nothing"
    return site


def _load(bentoml_home: Path, model_tag: str, home: Path, python_path: Path | None) -> Any:
    env = private_home(bentoml_home, home)
    # A signed-in BentoCloud user, as `bentoml cloud login` leaves it.
    (home / ".yatai.yaml").write_text(
        yaml.safe_dump(
            {
                "current_context_name": "default",
                "contexts": [
                    {
                        "name": "default",
                        "endpoint": "https://cloud.invalid",
                        "api_token": "not-a-token",
                        "email": CLOUD_EMAIL,
                    }
                ],
            }
        )
    )
    env["PYTHONPATH"] = os.pathsep.join(
        str(path) for path in (python_path, REPO_ROOT) if path is not None
    )
    result = subprocess.run(
        [sys.executable, "-c", _LOAD_LIKE_A_WORKER, model_tag],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_trimmed_bentoml_starts_without_its_cloud_client_and_still_reaches_it(
    trimmed_bentoml: Path, bentoml_home: Path, trained_model_tag: str, tmp_path: Path
) -> None:
    trimmed = _load(bentoml_home, trained_model_tag, tmp_path / "trimmed", trimmed_bentoml)
    untrimmed = _load(bentoml_home, trained_model_tag, tmp_path / "untrimmed", None)
    assert Path(trimmed["bentoml"]).is_relative_to(trimmed_bentoml)
    assert not Path(untrimmed["bentoml"]).is_relative_to(trimmed_bentoml)

    assert [m for m in trimmed["loaded_at_start"] if is_under(m, DEFERRED_AT_START)] == []
    assert "bentoml._internal.cloud.client" in untrimmed["loaded_at_start"]
    assert "pyparsing" in untrimmed["loaded_at_start"]
    assert "_bentoml_impl.server.proxy" in untrimmed["loaded_at_start"]
    # The moved imports still resolve where they are used, with the same results.
    assert trimmed["schema"]["version"] == trained_model_tag.split(":")[1]
    assert trimmed["schema"] == untrimmed["schema"]
    assert trimmed["email"] == untrimmed["email"] == CLOUD_EMAIL
