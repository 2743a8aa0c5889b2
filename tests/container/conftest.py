"""Fixtures: the real image (bentoml build + containerize) run under the Fargate task's limits."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from scripts.container_image import (
    Container,
    ImageBuildError,
    ensure_image,
    run_container,
    wait_ready,
)

# Far above the measured cold start (docs/benchmarks.md): room for a slow CI machine.
READY_TIMEOUT_S = 120.0
# The image's only writable place besides the bento's model store (an ECS task mounts a
# volume there when its root file system is read-only).
READ_ONLY_ARGS = ("--read-only", "--tmpfs", "/tmp")


def _docker_answers() -> bool:
    try:
        return subprocess.run(["docker", "info"], capture_output=True).returncode == 0
    except FileNotFoundError:
        return False


def run_in_image(
    image: str, *command: str, mounts: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    """Run ``command`` in a throwaway container of ``image`` (through its entrypoint, no
    network); ``mounts`` are ``docker run -v`` specifications."""
    volumes = [arg for mount in mounts for arg in ("-v", mount)]
    return subprocess.run(
        ["docker", "run", "--rm", "--network", "none", *volumes, image, *command],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="session")
def docker_engine() -> None:
    """A reachable Docker engine; its absence fails the tests (`make test` starts one)."""
    if not _docker_answers():
        pytest.fail("no Docker engine answers; `make setup` (run by `make test`) starts one")


@pytest.fixture(scope="session")
def service_image(docker_engine: None, bentoml_home: Path, trained_model_tag: str) -> str:
    """Tag of the image bundling the session's model (built once, reused when it exists)."""
    env = {**os.environ, "BENTOML_HOME": str(bentoml_home)}
    try:
        tag = ensure_image(env=env)
    except ImageBuildError as exc:
        pytest.fail(f"image build failed: {exc}")
    assert tag.split(":", 1)[1].startswith(trained_model_tag.split(":", 1)[1] + "-")
    return tag


@pytest.fixture
def container_factory(service_image: str) -> Iterator[Callable[..., Container]]:
    """Start containers of the image (removed at teardown); they are not waited for."""
    started: list[Container] = []

    def start(
        env: dict[str, str] | None = None, extra_args: tuple[str, ...] = READ_ONLY_ARGS
    ) -> Container:
        container = run_container(service_image, env=env, extra_args=extra_args)
        started.append(container)
        return container

    yield start
    for container in started:
        container.remove()


@pytest.fixture(scope="module")
def ready_container(service_image: str) -> Iterator[Container]:
    """One container with a read-only root file system, ready; shared by a test module."""
    container = run_container(service_image, extra_args=READ_ONLY_ARGS)
    try:
        wait_ready(container, timeout=READY_TIMEOUT_S)
        yield container
    finally:
        container.remove()


# --- S3 from inside a container ------------------------------------------------------


@pytest.fixture(scope="session")
def docker_network(docker_engine: None) -> Iterator[tuple[str, str]]:
    """A user-defined bridge network; yields (name, the host's gateway address on it)."""
    name = f"wineq-test-{uuid.uuid4().hex[:8]}"
    subprocess.run(["docker", "network", "create", name], check=True, capture_output=True)
    try:
        gateway = subprocess.run(
            [
                "docker", "network", "inspect", name, "--format",
                "{{range .IPAM.Config}}{{.Gateway}}{{end}}",
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()  # fmt: skip
        yield name, gateway
    finally:
        subprocess.run(["docker", "network", "rm", name], capture_output=True)


def _pump(source: socket.socket, target: socket.socket) -> None:
    try:
        while chunk := source.recv(65536):
            target.sendall(chunk)
    except OSError:
        pass
    finally:
        for sock in (source, target):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class TcpRelay:
    """Forwards connections from ``listen_host`` to a server on the host's loopback.

    The moto fixture binds 127.0.0.1 only (as it should); a container reaches the host
    through its network's gateway address, so the relay listens there and nowhere else.
    """

    def __init__(self, listen_host: str, target: tuple[str, int]) -> None:
        self._target = target
        self._server = socket.create_server((listen_host, 0))
        self.address = self._server.getsockname()[:2]
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self._target, timeout=10)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pump, args=(a, b), daemon=True).start()

    def close(self) -> None:
        """Stop accepting connections."""
        self._server.close()


@pytest.fixture(scope="session")
def moto_for_containers(moto_server: str, docker_network: tuple[str, str]) -> Iterator[str]:
    """moto's endpoint as a container on ``docker_network`` reaches it."""
    host, port = moto_server.removeprefix("http://").rsplit(":", 1)
    relay = TcpRelay(docker_network[1], (host, int(port)))
    try:
        yield f"http://{relay.address[0]}:{relay.address[1]}"
    finally:
        relay.close()
