"""Build, push and roll out the service image: one implementation for the retrain DAG and CLI.

    python -m training.deploy build   --bucket B [--prefix P] [--version V] --repository R
    python -m training.deploy push    IMAGE
    python -m training.deploy rollout --cluster C --service S --image IMAGE [--container N]
                                      [--family F] [--timeout-minutes M]
    python -m training.deploy release --bucket B --repository R --cluster C --service S

``build`` pulls a mirrored version (default: the champion), with its checksum checked,
into a fresh BentoML home, so ``bentoml build`` bundles exactly that model and nothing
else the machine's store holds; ``bentoml containerize`` then tags the image
``<repository>:<model version>-<git short sha>`` (``-dirty`` for an uncommitted tree),
never ``latest``.  A clean tag already in the registry is not built or pushed again.

``rollout`` registers a revision of the service's running task definition that differs
from it only in the container's image (``--family``: the family's newest revision, the
one Terraform registered last, instead), points the service at it and waits until the
service is stable; past the time limit it fails (the service's deployment circuit
breaker rolls a failing deployment back).

AWS is reached through boto3's standard chain and ``AWS_ENDPOINT_URL`` (moto in tests);
the registry through the Docker CLI's own credentials (``docker login``; ECR logs in here).
"""

from __future__ import annotations

import argparse
import base64
import json
import logging
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from training.artifacts import MODEL_NAME

logger = logging.getLogger(__name__)

REPO_ROOT: Final = Path(__file__).resolve().parents[1]
DEFAULT_REPOSITORY: Final = "wine-quality"
DEFAULT_ROLLOUT_TIMEOUT_S: Final = 20 * 60
POLL_INTERVAL_S: Final = 5.0
COMMAND_TIMEOUT_S: Final = 30 * 60
# `bentoml containerize` resolves docker.dockerfile_template inside a temporary copy of
# the bento but only accepts paths under the current directory (bentoml/BentoML#5566,
# open in 1.4.40); a TMPDIR below the repository keeps that copy "inside" it.
CONTAINERIZE_TMP: Final = REPO_ROOT / "build" / "containerize-tmp"
# Fields of describe_task_definition that register_task_definition does not take.
READ_ONLY_TASK_FIELDS: Final = frozenset(
    {
        "taskDefinitionArn",
        "revision",
        "status",
        "requiresAttributes",
        "compatibilities",
        "registeredAt",
        "registeredBy",
        "deregisteredAt",
    }
)
_TAG_RE: Final = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_ECR_RE: Final = re.compile(r"^\d{12}\.dkr\.ecr\.([a-z0-9-]+)\.amazonaws\.com(\.cn)?$")
_LOOPBACK_RE: Final = re.compile(r"^(localhost|127\.\d+\.\d+\.\d+)(:\d+)?$")


class DeployError(Exception):
    """A build, push or rollout step failed; the message says which and why."""


class RolloutTimeoutError(DeployError):
    """The service did not become stable within the time limit."""


@dataclass(frozen=True)
class BuiltImage:
    """The image of one model version at one commit, and whether this call made it."""

    image: str
    model_version: str
    commit: str
    built: bool
    pushed: bool

    def as_dict(self) -> dict[str, Any]:
        """Small JSON for a task's XCom."""
        return {
            "image": self.image,
            "model_version": self.model_version,
            "commit": self.commit,
            "built": self.built,
            "pushed": self.pushed,
        }


@dataclass(frozen=True)
class Rollout:
    """The task definition revision the service runs after a rollout."""

    service: str
    task_definition: str
    image: str
    changed: bool

    def as_dict(self) -> dict[str, Any]:
        """Small JSON for a task's XCom."""
        return {
            "service": self.service,
            "task_definition": self.task_definition,
            "image": self.image,
            "changed": self.changed,
        }


def run_command(
    args: Sequence[str],
    env: Mapping[str, str] | None = None,
    stdin: str | None = None,
    *,
    echo: bool = True,
) -> str:
    """Run a command from the repository root; DeployError with its output's tail on failure."""
    logger.log(logging.INFO if echo else logging.DEBUG, "+ %s", " ".join(args))
    try:
        result = subprocess.run(
            list(args),
            cwd=REPO_ROOT,
            env=dict(env) if env is not None else None,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DeployError(f"{args[0]} could not run: {exc}") from exc
    if result.returncode != 0:
        tail = (result.stdout[-2000:] + result.stderr[-3000:]).strip()
        raise DeployError(f"{' '.join(args[:3])} exited {result.returncode}:\n{tail}")
    return result.stdout


def bentoml_cli() -> str:
    """The `bentoml` of this interpreter's environment (else the one on PATH)."""
    beside = Path(sys.executable).with_name("bentoml")
    return str(beside) if beside.exists() else "bentoml"


def git_revision(repo: Path = REPO_ROOT) -> tuple[str, bool]:
    """Short commit sha of HEAD and whether the working tree differs from it."""
    sha = run_command(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"], echo=False)
    status = run_command(["git", "-C", str(repo), "status", "--porcelain"], echo=False)
    return sha.strip(), bool(status.strip())


def repo_commit(repo: Path = REPO_ROOT) -> str:
    """Short sha of HEAD, with ``-dirty`` when the working tree differs from it."""
    sha, dirty = git_revision(repo)
    return f"{sha}-dirty" if dirty else sha


def image_reference(repository: str, model_version: str, commit: str) -> str:
    """``<repository>:<model version>-<commit>``: immutable, never ``latest``."""
    tag = f"{model_version}-{commit}"
    if not _TAG_RE.fullmatch(tag) or not repository:
        raise DeployError(f"cannot tag {repository!r} with {tag!r}")
    return f"{repository}:{tag}"


def _registry_of(image: str) -> str:
    """The registry host of an image reference ('' for a local name)."""
    first, sep, _ = image.partition("/")
    return first if sep and ("." in first or ":" in first or first == "localhost") else ""


def build_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment `bentoml build` / `containerize` run in (``base``: os.environ)."""
    env = dict(os.environ if base is None else base)
    env.setdefault("BENTOML_DO_NOT_TRACK", "True")
    CONTAINERIZE_TMP.mkdir(parents=True, exist_ok=True)
    env["TMPDIR"] = str(CONTAINERIZE_TMP)
    if "DOCKER_BUILDKIT" not in env:
        # BentoML asks for BuildKit; without the buildx plugin the classic builder is
        # the one that works (the Dockerfile template needs no BuildKit feature).
        has_buildx = subprocess.run(
            ["docker", "buildx", "version"], capture_output=True, check=False
        ).returncode
        env["DOCKER_BUILDKIT"] = "1" if has_buildx == 0 else "0"
    return env


def image_in_registry(image: str) -> bool:
    """True when the registry already holds ``image`` (its manifest answers)."""
    insecure = ["--insecure"] if _LOOPBACK_RE.match(_registry_of(image)) else []
    result = subprocess.run(
        ["docker", "manifest", "inspect", *insecure, image],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.returncode == 0


def registry_login(image: str) -> None:
    """Log the Docker CLI in to ECR when ``image`` lives there (other registries: as set up)."""
    registry = _registry_of(image)
    match = _ECR_RE.match(registry)
    if match is None:
        return
    import boto3

    token = boto3.client("ecr", region_name=match.group(1)).get_authorization_token()
    user, _, password = (
        base64.b64decode(token["authorizationData"][0]["authorizationToken"])
        .decode()
        .partition(":")
    )
    run_command(
        ["docker", "login", "--username", user, "--password-stdin", registry], stdin=password
    )


def build_image(
    *,
    bucket: str,
    prefix: str,
    repository: str,
    version: str | None = None,
    commit: str | None = None,
) -> BuiltImage:
    """``bentoml build`` + ``containerize`` of a mirrored version (default: the champion)."""
    commit = commit or repo_commit()
    env = build_env()
    with tempfile.TemporaryDirectory(prefix="wineq-release-", dir=CONTAINERIZE_TMP) as home:
        env["BENTOML_HOME"] = home
        pull = [sys.executable, "-m", "training", "pull", "--bucket", bucket, "--prefix", prefix]
        tag = run_command([*pull, *(["--version", version] if version else [])], env).strip()
        model_version = tag.rpartition(":")[2]
        image = image_reference(repository, model_version, commit)
        bento = build_bento(env)
        bundled = bundled_model_versions(bento, env)
        if bundled != [model_version]:
            raise DeployError(f"{bento} bundles {bundled}, expected only {model_version}")
        containerize(bento, image, revision=commit, model_version=model_version, env=env)
    logger.info("built %s", image)
    return BuiltImage(image, model_version, commit, built=True, pushed=False)


def build_bento(env: Mapping[str, str]) -> str:
    """Run the real `bentoml build` on bentofile.yaml; returns the bento tag."""
    out = run_command([bentoml_cli(), "build", str(REPO_ROOT), "--output", "tag"], env)
    found = re.search(r"__tag__:(\S+)", out)
    if found is None:
        raise DeployError(f"bentoml build printed no tag:\n{out[-2000:]}")
    return found.group(1)


def containerize(
    bento: str, image: str, *, revision: str, model_version: str, env: Mapping[str, str]
) -> None:
    """`bentoml containerize` ``bento`` as ``image``, labelled; fails if no image results."""
    run_command(
        [
            bentoml_cli(), "containerize", bento, "--image-tag", image,
            "--label", f"org.opencontainers.image.revision={revision}",
            "--label", f"wineq.model_version={model_version}",
            "--label", f"wineq.bento={bento}",
        ],
        env,
    )  # fmt: skip
    # Exit code 0 alone does not prove the engine holds the tag; the inspect does.
    run_command(["docker", "image", "inspect", "--format", "{{.Id}}", image])


def bundled_model_versions(bento: str, env: Mapping[str, str]) -> list[str]:
    """Versions of the models a bento bundles (services' models included)."""
    info = json.loads(run_command([bentoml_cli(), "get", bento, "-o", "json"], env, echo=False))
    tags = {m["tag"] for m in info.get("models", [])}
    for service in info.get("services", []):
        tags.update(m["tag"] for m in service.get("models", []))
    return sorted(str(t).split(":", 1)[1] for t in tags if str(t).startswith(f"{MODEL_NAME}:"))


def push_image(image: str) -> bool:
    """Push ``image`` unless the registry holds its clean tag already; True when pushed."""
    registry_login(image)
    if not image.endswith("-dirty") and image_in_registry(image):
        logger.info("%s is in the registry already; tags are immutable", image)
        return False
    run_command(["docker", "push", image])
    return True


def build_and_push(
    *, bucket: str, prefix: str, repository: str, version: str, commit: str | None = None
) -> BuiltImage:
    """The image of ``version`` in the registry: built and pushed unless it is there already."""
    commit = commit or repo_commit()
    image = image_reference(repository, version, commit)
    registry_login(image)
    if not commit.endswith("-dirty") and image_in_registry(image):
        logger.info("%s is in the registry already; nothing to build", image)
        return BuiltImage(image, version, commit, built=False, pushed=False)
    built = build_image(
        bucket=bucket, prefix=prefix, repository=repository, version=version, commit=commit
    )
    return BuiltImage(built.image, version, commit, built=True, pushed=push_image(built.image))


def _ecs_client(region: str | None) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        "ecs", region_name=region, config=Config(retries={"mode": "standard", "max_attempts": 5})
    )


def _describe_service(ecs: Any, cluster: str, service: str) -> dict[str, Any]:
    response = ecs.describe_services(cluster=cluster, services=[service])
    found = [s for s in response.get("services", []) if s.get("status") == "ACTIVE"]
    if not found:
        raise DeployError(f"no active service {service!r} in cluster {cluster!r}")
    described: dict[str, Any] = found[0]
    return described


def revision_with_image(
    task_definition: Mapping[str, Any], image: str, container: str | None = None
) -> dict[str, Any]:
    """register_task_definition arguments: the running revision with only the image changed."""
    containers = [dict(c) for c in task_definition["containerDefinitions"]]
    if container is None:
        if len(containers) != 1:
            names = [c["name"] for c in containers]
            raise DeployError(f"the task definition has containers {names}; name one")
        container = containers[0]["name"]
    matching = [c for c in containers if c["name"] == container]
    if not matching:
        raise DeployError(f"the task definition has no container {container!r}")
    matching[0]["image"] = image
    fields = {k: v for k, v in task_definition.items() if k not in READ_ONLY_TASK_FIELDS}
    return {**fields, "containerDefinitions": containers}


def _container_image(task_definition: Mapping[str, Any], container: str | None) -> str | None:
    for definition in task_definition["containerDefinitions"]:
        if container in (None, definition["name"]):
            return str(definition["image"])
    return None


def wait_until_stable(
    ecs: Any,
    cluster: str,
    service: str,
    task_definition: str,
    *,
    timeout_s: float,
    poll_s: float = POLL_INTERVAL_S,
) -> None:
    """Poll until the service runs only ``task_definition`` at its desired count.

    Raises DeployError when the deployment failed or was rolled back, and
    RolloutTimeoutError when it is still under way at the deadline.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        described = _describe_service(ecs, cluster, service)
        if described.get("taskDefinition") != task_definition:
            raise DeployError(
                f"{service} now runs {described.get('taskDefinition')}, not {task_definition}: "
                "the deployment was rolled back (circuit breaker) or replaced"
            )
        deployments = described.get("deployments", [])
        primary = [d for d in deployments if d.get("status") == "PRIMARY"]
        if primary and primary[0].get("rolloutState") == "FAILED":
            reason = primary[0].get("rolloutStateReason", "")
            raise DeployError(f"deployment of {task_definition} failed: {reason}")
        if len(deployments) == 1 and described.get("runningCount") == described.get("desiredCount"):
            return
        if time.monotonic() >= deadline:
            raise RolloutTimeoutError(
                f"{service} did not become stable within {timeout_s:.0f} s "
                f"({described.get('runningCount')}/{described.get('desiredCount')} tasks, "
                f"{len(deployments)} deployments); the deployment circuit breaker rolls "
                "a failing deployment back"
            )
        time.sleep(poll_s)


def rollout(
    *,
    cluster: str,
    service: str,
    image: str,
    container: str | None = None,
    timeout_s: float = DEFAULT_ROLLOUT_TIMEOUT_S,
    poll_s: float = POLL_INTERVAL_S,
    region: str | None = None,
    family: str | None = None,
) -> Rollout:
    """Run ``image`` in the service: a new task definition revision, then wait for stability."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        ecs = _ecs_client(region)
        return _rollout(ecs, cluster, service, image, container, timeout_s, poll_s, family)
    except (ClientError, BotoCoreError) as exc:
        raise DeployError(f"ECS refused the rollout of {image} to {service}: {exc}") from exc


def _rollout(
    ecs: Any,
    cluster: str,
    service: str,
    image: str,
    container: str | None,
    timeout_s: float,
    poll_s: float,
    family: str | None = None,
) -> Rollout:
    running = _describe_service(ecs, cluster, service)["taskDefinition"]
    # A family name resolves to its newest ACTIVE revision: Terraform registers one on
    # each change but leaves the service on the revision it runs (ignore_changes).
    base = family or running
    described = ecs.describe_task_definition(taskDefinition=base, include=["TAGS"])
    current = described["taskDefinition"]
    if current["taskDefinitionArn"] == running and _container_image(current, container) == image:
        logger.info("%s already runs %s (%s)", service, image, running)
        wait_until_stable(ecs, cluster, service, running, timeout_s=timeout_s, poll_s=poll_s)
        return Rollout(service, running, image, changed=False)
    arguments = revision_with_image(current, image, container)
    if described.get("tags"):
        arguments["tags"] = described["tags"]
    registered = ecs.register_task_definition(**arguments)["taskDefinition"]["taskDefinitionArn"]
    logger.info("registered %s with %s", registered, image)
    ecs.update_service(cluster=cluster, service=service, taskDefinition=registered)
    wait_until_stable(ecs, cluster, service, registered, timeout_s=timeout_s, poll_s=poll_s)
    logger.info("%s is stable on %s", service, registered)
    return Rollout(service, registered, image, changed=True)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m training.deploy",
        description="Build, push and roll out the wine-quality service image.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    build = commands.add_parser("build", help="bentoml build + containerize a mirrored version")
    push = commands.add_parser("push", help="push an image unless the registry has its tag")
    roll = commands.add_parser("rollout", help="run an image in an ECS service and wait")
    release = commands.add_parser("release", help="build, push and roll out a mirrored version")
    for sub in (build, release):
        sub.add_argument("--bucket", required=True, help="bucket of the S3 model mirror")
        sub.add_argument("--prefix", default="models", help="key prefix of the mirror")
        sub.add_argument("--version", help="model version (default: the champion)")
        sub.add_argument(
            "--repository", required=True, help="image repository, e.g. <registry>/wine-quality"
        )
    push.add_argument("image")
    roll.add_argument("--image", required=True)
    for sub in (roll, release):
        sub.add_argument("--cluster", required=True)
        sub.add_argument("--service", required=True)
        sub.add_argument("--container", help="container to update (default: the only one)")
        sub.add_argument(
            "--family", help="base the revision on this family's newest one, not the running one"
        )
        sub.add_argument("--timeout-minutes", type=float, default=DEFAULT_ROLLOUT_TIMEOUT_S / 60)
    return parser


def _command(args: argparse.Namespace) -> str:
    """Run the parsed command; what it prints."""
    if args.command == "push":
        push_image(args.image)
        return str(args.image)
    if args.command == "rollout":
        image = str(args.image)
    else:
        from training.mirror import champion_version

        version = args.version or champion_version(args.bucket, args.prefix)
        where = {"bucket": args.bucket, "prefix": args.prefix, "repository": args.repository}
        if args.command == "build":
            return build_image(**where, version=version).image
        image = build_and_push(**where, version=version).image
    return rollout(
        cluster=args.cluster,
        service=args.service,
        image=image,
        container=args.container,
        timeout_s=args.timeout_minutes * 60,
        family=args.family,
    ).task_definition


def main(argv: Sequence[str] | None = None) -> int:
    """Run one deploy command; a failure is one message on stderr and exit code 1."""
    from training.mirror import MirrorError

    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s", stream=sys.stderr)
    try:
        print(_command(args))
    except (DeployError, MirrorError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
