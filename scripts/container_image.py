"""Build, tag, run and measure the service image (used by `make containerize`, tests, bench).

One place for the facts the Makefile, the container tests and the benchmark share: the
image tag (``wine-quality:<model version>-<git short sha>``, never ``latest``), how the
real ``bentoml build`` + ``bentoml containerize`` are run, and how a container is started
under the Fargate task's limits and waited for.

    python scripts/container_image.py build [--force]   # prints the image tag
    python scripts/container_image.py tag               # the tag the next build gets
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

if __package__ in (None, ""):  # run as a file: make `training` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# How an image is built (bentoml, its environment, labels, bundled models) is said once,
# in the deploy code that ships it; this tool adds only what local use needs.
from training.artifacts import MODEL_NAME
from training.deploy import (
    DEFAULT_REPOSITORY,
    DeployError,
    bentoml_cli,
    build_bento,
    bundled_model_versions,
    containerize,
    image_reference,
    run_command,
)
from training.deploy import REPO_ROOT as REPO_ROOT
from training.deploy import build_env as build_env
from training.deploy import git_revision as git_revision

IMAGE_NAME: Final = DEFAULT_REPOSITORY
CONTAINER_PORT: Final = 3000
# The ECS Fargate task: a quarter of a vCPU and 512 MB.
FARGATE_CPUS: Final = "0.25"
FARGATE_MEMORY_MIB: Final = 512
FARGATE_MEMORY: Final = f"{FARGATE_MEMORY_MIB}m"
# Host ports the container tests and the benchmark publish on (127.0.0.1 only).
HOST_PORTS: Final = range(3300, 3400)
BASE_IMAGE_SCRIPT: Final = REPO_ROOT / "scripts" / "build_base_image.sh"

# `bentoml build` / `containerize` (or a docker command here) failed or made no image.
ImageBuildError = DeployError


def image_tag(model_version: str, sha: str, dirty: bool = False) -> str:
    """``wine-quality:<model version>-<git short sha>`` (``-dirty`` for uncommitted code)."""
    return image_reference(IMAGE_NAME, model_version, f"{sha}-dirty" if dirty else sha)


def latest_model_version(env: Mapping[str, str]) -> str:
    """Version `bentoml build` will bundle: the store's latest ``wine_quality`` entry."""
    command = [bentoml_cli(), "models", "get", f"{MODEL_NAME}:latest", "-o", "json"]
    return str(json.loads(run_command(command, env, echo=False))["version"])


def image_label(tag: str, label: str) -> str:
    """Value of one label of a local image ('' when it has none)."""
    out = run_command(
        ["docker", "image", "inspect", "--format", f'{{{{index .Config.Labels "{label}"}}}}', tag],
        echo=False,
    )
    return out.strip()


def image_exists(tag: str) -> bool:
    """True when the local engine has an image with this tag."""
    return subprocess.run(["docker", "image", "inspect", tag], capture_output=True).returncode == 0


def image_size_bytes(tag: str) -> int:
    """Uncompressed size of the image, as `docker image ls` reports it."""
    out = run_command(["docker", "image", "inspect", "--format", "{{.Size}}", tag], echo=False)
    return int(out.strip())


def ensure_base_image(env: Mapping[str, str]) -> None:
    """Make the stand-in base image when the engine cannot pull it (idempotent)."""
    run_command(["bash", str(BASE_IMAGE_SCRIPT)], env)


def ensure_image(*, force: bool = False, env: Mapping[str, str] | None = None) -> str:
    """Build (or reuse, for a clean tree) the image of the store's latest model; its tag."""
    env = build_env(env)
    sha, dirty = git_revision()
    expected = image_tag(latest_model_version(env), sha, dirty)
    if not force and not dirty and image_exists(expected):
        print(f"reusing {expected}", file=sys.stderr)
        return expected
    ensure_base_image(env)
    bento_tag = build_bento(env)
    versions = bundled_model_versions(bento_tag, env)
    if len(versions) != 1:
        raise ImageBuildError(f"{bento_tag} bundles {versions}; expected exactly one model")
    tag = image_tag(versions[0], sha, dirty)
    containerize(bento_tag, tag, revision=sha, model_version=versions[0], env=env)
    return tag


# --- running a container under the task's limits -------------------------------------


@dataclass
class Container:
    """A container started from the image, published on 127.0.0.1:<port>."""

    id: str
    port: int

    @property
    def url(self) -> str:
        """Base URL of the service."""
        return f"http://127.0.0.1:{self.port}"

    def logs(self) -> str:
        """stdout and stderr so far."""
        result = subprocess.run(["docker", "logs", self.id], capture_output=True, text=True)
        return result.stdout + result.stderr

    def state(self) -> dict[str, object]:
        """`docker inspect` .State (Status, ExitCode, OOMKilled, ...)."""
        command = ["docker", "inspect", "--format", "{{json .State}}", self.id]
        out = run_command(command, echo=False)
        state: dict[str, object] = json.loads(out)
        return state

    def remove(self) -> None:
        """Stop and delete it (no-op when already gone)."""
        subprocess.run(["docker", "rm", "-f", self.id], capture_output=True)


def _port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def run_container(
    tag: str,
    *,
    env: Mapping[str, str] | None = None,
    extra_args: Sequence[str] = (),
    cpus: str | None = FARGATE_CPUS,
    memory: str | None = FARGATE_MEMORY,
    command: Sequence[str] = (),
) -> Container:
    """`docker run -d` with the Fargate task's CPU and memory (None: unlimited), on a free
    loopback port; `command` replaces the image's CMD (e.g. ``["serve"]``)."""
    env_args = [arg for key, value in (env or {}).items() for arg in ("-e", f"{key}={value}")]
    limits = [*(["--cpus", cpus] if cpus else []), *(["--memory", memory] if memory else [])]
    if memory:
        limits += ["--memory-swap", memory]  # no swap: the task has none
    last_error = ""
    for port in HOST_PORTS:
        if not _port_is_free(port):
            continue
        result = subprocess.run(
            [
                "docker", "run", "-d", *limits, "-p", f"127.0.0.1:{port}:{CONTAINER_PORT}",
                *env_args, *extra_args, tag, *command,
            ],
            capture_output=True,
            text=True,
        )  # fmt: skip
        if result.returncode == 0:
            return Container(result.stdout.strip(), port)
        last_error = result.stderr
        if "port is already allocated" not in last_error and "address already in use" not in (
            last_error
        ):
            break
    raise RuntimeError(f"docker run {tag} failed: {last_error.strip()}")


def http_status(url: str, timeout: float = 2.0) -> int | None:
    """Status code of a GET, or None when nothing answered."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (urllib.error.URLError, OSError):
        return None


def wait_ready(container: Container, timeout: float = 90.0, interval: float = 0.1) -> float:
    """Poll /readyz until 200; seconds waited. Raises if the container exits or times out."""
    start = checked = time.monotonic()
    while time.monotonic() - start < timeout:
        if http_status(f"{container.url}/readyz", timeout=1.0) == 200:
            return time.monotonic() - start
        # `docker inspect` is a process and an engine call: once a second, not every poll,
        # so the host's CPU goes to the start being timed.
        if time.monotonic() - checked >= 1.0:
            checked = time.monotonic()
            if container.state().get("Status") not in ("created", "running"):
                raise RuntimeError(f"container exited before ready:\n{container.logs()[-4000:]}")
        time.sleep(interval)
    raise TimeoutError(f"not ready within {timeout:.0f} s:\n{container.logs()[-4000:]}")


def memory_usage_mb(container: Container) -> float:
    """Memory the cgroup charges the container (what the 512 MB limit counts), in MB.

    cgroup v2 ``memory.current`` minus inactive file cache, or cgroup v1
    ``usage_in_bytes`` minus ``total_inactive_file`` - what `docker stats` shows.
    """
    script = (
        "import os\n"
        "def stat(p):\n"
        "    return dict((l.split()[0], int(l.split()[1])) for l in open(p))\n"
        "if os.path.exists('/sys/fs/cgroup/memory.current'):\n"
        "    used = int(open('/sys/fs/cgroup/memory.current').read())\n"
        "    used -= stat('/sys/fs/cgroup/memory.stat').get('inactive_file', 0)\n"
        "else:\n"
        "    used = int(open('/sys/fs/cgroup/memory/memory.usage_in_bytes').read())\n"
        "    used -= stat('/sys/fs/cgroup/memory/memory.stat').get('total_inactive_file', 0)\n"
        "print(used)\n"
    )
    out = run_command(["docker", "exec", container.id, "python3", "-c", script], echo=False)
    return int(out.strip()) / 1e6


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: ``build`` the image (printing its tag) or print the ``tag`` it would get."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="bentoml build + containerize; prints the image tag")
    build.add_argument("--force", action="store_true", help="rebuild even if the tag exists")
    sub.add_parser("tag", help="print the tag the store's latest model would get")
    args = parser.parse_args(argv)
    # The build's commands, echoed as `+ ...` on stderr while stdout carries only the tag.
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    if shutil.which("docker") is None:
        print("docker CLI not found", file=sys.stderr)
        return 1
    try:
        if args.command == "build":
            print(ensure_image(force=args.force))
        else:
            sha, dirty = git_revision()
            print(image_tag(latest_model_version(build_env()), sha, dirty))
    except ImageBuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
