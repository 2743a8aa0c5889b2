"""The image's dependencies are installed as released: every file a package's RECORD lists
is there, byte for byte (its sha256), for every distribution in the image's venv.

Nothing in the build edits or trims an installed package; this proves it for the image
a task runs, BentoML included.
"""

from __future__ import annotations

import json

import pytest

from tests.container.conftest import run_in_image

pytestmark = pytest.mark.container

# Run inside the image by its own Python: RECORD hashes are urlsafe base64 sha256 digests.
_VERIFY = r"""
import base64, hashlib, importlib.metadata as md, json
checked, problems = {}, []
for dist in md.distributions():
    name = dist.metadata["Name"]
    count = 0
    for entry in dist.files or []:
        if entry.hash is None:
            continue
        path = entry.locate()
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            problems.append(f"{name}: {entry} is missing")
            continue
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        if digest != entry.hash.value:
            problems.append(f"{name}: {entry} differs from its RECORD")
        count += 1
    checked[name.lower()] = count
print(json.dumps({"checked": checked, "problems": problems}))
"""


def test_every_installed_file_matches_its_package_record(service_image: str) -> None:
    result = run_in_image(service_image, "python", "-c", _VERIFY)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["problems"] == []
    # The check read the packages that matter, not an empty environment.
    for package in ("bentoml", "onnxruntime", "numpy", "pydantic", "uvicorn", "starlette"):
        assert report["checked"].get(package, 0) > 10, f"{package} not verified"
