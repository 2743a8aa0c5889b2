"""What the image's start-up imports: BentoML's BentoCloud client and httpx's command-line
client are left out (docker/trim_bentoml_imports.py at build, bento/launch.py at start).

The container runs with PYTHONPROFILEIMPORTTIME=1, so the interpreter writes one line
per imported module to stderr; the lines written until /readyz turns 200 are the start-up.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from scripts.container_image import Container, wait_ready
from tests.container.conftest import READY_TIMEOUT_S, run_in_image
from tests.fixtures.bentoml_copy import DEFERRED_AT_START, TRIM_SCRIPT, is_under

pytestmark = pytest.mark.container

_IMPORT_LINE = re.compile(r"^import time:\s+\d+ \|\s+\d+ \|\s*(\S+)\s*$", re.MULTILINE)
# Imported by BentoML 1.4.40 at start-up unless trimmed (tests/integration/
# test_trimmed_bentoml.py shows the untrimmed import), and by httpx's command-line client
# (rich, pygments) unless the launcher refuses it. The refused `httpx._main` itself still
# shows up, as an attempt of a few microseconds with nothing under it.
LEFT_OUT = (*DEFERRED_AT_START, "rich", "pygments")
# What a start must import: proof the log was read at all.
SERVED_BY = ("_bentoml_impl.worker.service", "onnxruntime", "bento.guard", "httpx")


def test_start_up_leaves_the_cloud_and_cli_clients_out(
    container_factory: Callable[..., Container],
) -> None:
    container = container_factory(env={"PYTHONPROFILEIMPORTTIME": "1"})
    wait_ready(container, timeout=READY_TIMEOUT_S)
    imported = set(_IMPORT_LINE.findall(container.logs()))
    assert set(SERVED_BY) <= imported, sorted(imported)[:50]
    unexpected = sorted(name for name in imported if is_under(name, LEFT_OUT))
    assert unexpected == []


def test_the_image_holds_the_trimmed_bentoml(service_image: str) -> None:
    # The build ran the script and removed it; the repository's copy checks the result.
    mount = f"{TRIM_SCRIPT}:/opt/trim.py:ro"
    result = run_in_image(service_image, "python", "/opt/trim.py", "--check", mounts=(mount,))
    assert result.returncode == 0, result.stderr
    assert "would change 0 file(s)" in result.stdout
