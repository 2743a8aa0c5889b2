"""CLI commands of the S3 model mirror (push, pull, promote, list-versions).

Bucket and prefix come from :class:`training.settings.TrainingSettings`
(``WINEQ_TRAIN_S3_BUCKET``, ``WINEQ_TRAIN_S3_PREFIX``); ``--bucket`` and ``--prefix`` override them.
The mirror module (and so boto3 and bentoml) is imported only when a command runs, so
the other training commands do not pay for it.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from dataclasses import dataclass

from training.cli import Command, one_line
from training.settings import TrainingSettings


@dataclass(frozen=True)
class _Target:
    bucket: str
    prefix: str
    model_name: str


class _UsageError(Exception):
    """A command cannot run with the given arguments and settings."""


def _target(args: argparse.Namespace) -> _Target:
    settings = TrainingSettings()
    bucket = args.bucket or settings.s3_bucket
    if not bucket:
        raise _UsageError("no S3 bucket: set WINEQ_TRAIN_S3_BUCKET or pass --bucket")
    prefix = settings.s3_prefix if args.prefix is None else args.prefix
    return _Target(bucket, prefix, settings.model_name)


def _reporting_errors(command: Command) -> Command:
    """Map the mirror's own failures to one line on stderr and an exit code.

    A usage error exits 2 and a mirror or BentoML store failure exits 1; everything else
    goes on to the CLI's common handler (training.cli._run)."""

    @functools.wraps(command)
    def run(args: argparse.Namespace) -> int:
        from bentoml.exceptions import BentoMLException

        from training.mirror import MirrorError

        try:
            return command(args)
        except _UsageError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        except (MirrorError, BentoMLException) as exc:
            print(f"error: {one_line(exc)}", file=sys.stderr)
            return 1

    return run


@_reporting_errors
def _cmd_push(args: argparse.Namespace) -> int:
    from training import mirror

    target = _target(args)
    tag = args.tag or f"{target.model_name}:latest"
    result = mirror.push(tag, target.bucket, target.prefix)
    state = "pushed" if result.uploaded else "already mirrored (identical)"
    print(f"{state}: {result.manifest.tag} -> {result.uri}")
    return 0


@_reporting_errors
def _cmd_pull(args: argparse.Namespace) -> int:
    from training import mirror

    target = _target(args)
    tag = mirror.pull(target.bucket, target.prefix, args.version, model_name=target.model_name)
    print(tag)
    return 0


@_reporting_errors
def _cmd_promote(args: argparse.Namespace) -> int:
    from training import mirror

    target = _target(args)
    manifest = mirror.promote(
        target.bucket, target.prefix, args.version, model_name=target.model_name
    )
    print(f"champion: {manifest.tag}")
    return 0


@_reporting_errors
def _cmd_list_versions(args: argparse.Namespace) -> int:
    from training import mirror

    target = _target(args)
    infos = mirror.list_versions(target.bucket, target.prefix, model_name=target.model_name)
    if args.json:
        rows = [
            {
                "version": info.version,
                "tag": info.tag,
                "created_at": info.created_at,
                "metrics": info.metrics,
                "artifact_size": info.artifact_size,
                "champion": info.is_champion,
            }
            for info in infos
        ]
        print(json.dumps(rows, indent=2, sort_keys=True, default=str))
        return 0
    if not infos:
        print("no versions", file=sys.stderr)
        return 0
    for info in infos:
        marker = "*" if info.is_champion else " "
        metrics = " ".join(f"{name}={value}" for name, value in sorted(info.metrics.items()))
        print(f"{marker} {info.version}  {info.created_at or '-'}  {metrics}".rstrip())
    return 0


def _add_target_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bucket", help="S3 bucket (default: WINEQ_TRAIN_S3_BUCKET)")
    parser.add_argument("--prefix", help="S3 key prefix (default: WINEQ_TRAIN_S3_PREFIX or 'models')")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the mirror's sub-commands to the training CLI."""
    push = subparsers.add_parser(
        "push",
        help="upload a model store entry to the S3 mirror (immutable)",
        description="Export a model store entry and upload it with its manifest. "
        "Pushing a version again is a no-op when identical and an error when different.",
    )
    push.add_argument(
        "--tag", help="model store tag (default: the latest entry of WINEQ_MODEL_NAME)"
    )
    _add_target_args(push)
    push.set_defaults(func=_cmd_push)

    pull = subparsers.add_parser(
        "pull",
        help="import a version from the S3 mirror into the local store",
        description="Download a version, check its size and sha256 against the manifest, "
        "then import it into the local BentoML store.",
    )
    pull.add_argument("--version", help="version to pull (default: the champion)")
    _add_target_args(pull)
    pull.set_defaults(func=_cmd_pull)

    promote = subparsers.add_parser(
        "promote",
        help="make a mirrored version the champion",
        description="Point the champion pointer at a version whose manifest exists.",
    )
    promote.add_argument("--version", required=True, help="version to promote")
    _add_target_args(promote)
    promote.set_defaults(func=_cmd_promote)

    list_versions = subparsers.add_parser(
        "list-versions",
        help="list mirrored versions with metrics; '*' marks the champion",
        description="List complete versions in the S3 mirror, oldest first.",
    )
    list_versions.add_argument("--json", action="store_true", help="print JSON")
    _add_target_args(list_versions)
    list_versions.set_defaults(func=_cmd_list_versions)
