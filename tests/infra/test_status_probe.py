"""The status page's probe, run as GitHub runs it (its shell, its env) against servers here."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.server import free_port
from tests.infra.conftest import WORKFLOWS_DIR, load_workflow

pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="the probe uses curl")


def run_probe(service_url: str, work: Path) -> tuple[dict[str, str], dict[str, Any]]:
    """Run the probe step in ``work``; its step outputs and the status.json it wrote."""
    status = load_workflow(WORKFLOWS_DIR / "status.yml")
    (step,) = [s for s in status["jobs"]["probe"]["steps"] if s.get("id") == "probe"]
    script = work / "probe.sh"
    script.write_text(step["run"], encoding="utf-8")
    shell = status["defaults"]["run"]["shell"].replace("{0}", str(script)).split()
    outputs, runner_temp = work / "outputs", work / "runner-temp"
    runner_temp.mkdir()
    result = subprocess.run(
        shell,
        cwd=work,
        env={
            "PATH": "/usr/bin:/bin",
            **{name: str(value) for name, value in step["env"].items()},
            "SERVICE_URL": service_url,
            "GITHUB_OUTPUT": str(outputs),
            "RUNNER_TEMP": str(runner_temp),
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    values = dict(line.split("=", 1) for line in outputs.read_text().splitlines())
    page = json.loads((work / "site" / "status.json").read_text())
    assert (work / "site" / "index.html").is_file()
    return values, page


def test_probe_reports_a_ready_service_that_predicts_as_operational(
    service_url: str, tmp_path: Path
) -> None:
    outputs, page = run_probe(service_url, tmp_path)
    assert outputs["up"] == "true"
    assert page["status"] == "Operational"
    assert page["readyz_http_status"] == 200
    assert page["predict_http_status"] == 200


def test_probe_reports_an_unreachable_service_as_down(tmp_path: Path) -> None:
    outputs, page = run_probe(f"http://127.0.0.1:{free_port()}", tmp_path)
    assert outputs["up"] == "false"
    assert page["status"] == "Down"


class _AliveButNotReady(BaseHTTPRequestHandler):
    """Answers like a process that is alive but has no model: /healthz 200, /readyz 503."""

    def _answer(self, code: int, body: bytes) -> None:
        self.send_response(code)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self._answer(200 if self.path == "/healthz" else 503, b"{}")

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self._answer(503, b'{"error": "not_ready"}')

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the test reads the probe's results, not this log."""


@pytest.fixture
def alive_but_not_ready() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _AliveButNotReady)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    thread.join(10)


def test_probe_reports_a_live_process_without_a_model_as_down(
    alive_but_not_ready: str, tmp_path: Path
) -> None:
    outputs, page = run_probe(alive_but_not_ready, tmp_path)
    assert outputs["up"] == "false"
    assert page["readyz_http_status"] == 503
