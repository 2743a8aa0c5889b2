"""``python -m training <command>``: the training commands and the S3 model mirror's.

Every command reads :class:`TrainingSettings` once and returns an exit code.  Expected
failures (an unknown setting, a checksum mismatch, invalid data, a network error, a
broken store entry, a refusal of the mirror) print one line on stderr and exit with the
code :func:`exit_code` gives them; they never print a traceback.  Commands import the
heavy libraries (pandas, scikit-learn, BentoML, boto3) when they run, so ``--help`` and
the mirror's commands do not pay for the others' imports.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from training.artifacts import HEADLINE_METRICS, MODEL_NAME
from training.features import WINE_TYPES
from training.settings import TrainingSettings

if TYPE_CHECKING:
    from training.mirror import VersionInfo

logger = logging.getLogger(__name__)

Command = Callable[[argparse.Namespace, TrainingSettings], int]

EXIT_OK: Final = 0
EXIT_FAILURE: Final = 1
EXIT_USAGE: Final = 2
EXIT_BELOW_REFERENCE: Final = 3
EXIT_INTERRUPTED: Final = 130
DEFAULT_REPORT: Final = Path("docs/model.md")
# The metrics every entry records (training.pipeline.train_and_save); list-versions shows
# their accuracy per wine type.


class UsageError(Exception):
    """A command cannot run with the given arguments and settings."""


def one_line(exc: BaseException) -> str:
    """An exception's message on one line (its type when it has none)."""
    return " ".join(str(exc).split()) or type(exc).__name__


def exit_code(exc: Exception) -> int | None:
    """The exit code of an expected failure, None for a bug: the CLI's one error table."""
    from bentoml.exceptions import BentoMLException

    from training.artifacts import ArtifactError
    from training.data import DataError
    from training.envvars import UnknownSettingError
    from training.mirror import MirrorError
    from training.settings import InvalidSettingError
    from training.validate import DataValidationError

    # The settings are read before any work: a bad variable is a usage error.
    table: dict[int, tuple[type[Exception], ...]] = {
        EXIT_USAGE: (UsageError, UnknownSettingError, InvalidSettingError),
        EXIT_FAILURE: (
            DataError,
            DataValidationError,
            ArtifactError,
            MirrorError,
            BentoMLException,
            OSError,
        ),
    }
    return next((code for code, types in table.items() if isinstance(exc, types)), None)


def _cmd_ingest(args: argparse.Namespace, settings: TrainingSettings) -> int:
    from training.pipeline import ingest

    ingested = ingest(settings)
    for wine_type, source in ingested.data.sources.items():
        print(f"{wine_type}: {source} sha256 {ingested.data.file_sha256[wine_type]}")
    print(f"data sha256: {ingested.data.data_sha256}")
    print(ingested.report.render())
    return EXIT_OK


def _cmd_train(args: argparse.Namespace, settings: TrainingSettings) -> int:
    from training.pipeline import train_and_save

    print(train_and_save(settings, full_evaluation=args.full_evaluation))
    return EXIT_OK


def _cmd_evaluate(args: argparse.Namespace, settings: TrainingSettings) -> int:
    from training.evaluate import PROTOCOL_TITLES, PROTOCOLS
    from training.pipeline import write_model_card

    results = write_model_card(settings, args.output)
    for result in results:
        print(PROTOCOL_TITLES[result.protocol])
        for wine_type, m in result.per_type.items():
            print(
                f"  {wine_type:5s} accuracy {m.accuracy:.3f}  macro-F1 {m.macro_f1:.3f}  "
                f"MAD {m.mad:.3f}  (n={m.n})"
            )
    print(f"wrote {args.output}")
    paper = next(r for r in results if r.protocol == PROTOCOLS[0])
    beaten = paper.beats_reference()
    if not all(beaten.values()):
        missed = ", ".join(t for t, ok in beaten.items() if not ok)
        print(f"warning: the paper's accuracy is not beaten for {missed}", file=sys.stderr)
        if args.require_reference:
            return EXIT_BELOW_REFERENCE
    return EXIT_OK


def _cmd_ensure_model(args: argparse.Namespace, settings: TrainingSettings) -> int:
    from training.pipeline import ensure_model

    tag, trained = ensure_model(settings)
    logger.info("%s %s", "trained" if trained else "found", tag)
    print(tag)
    return EXIT_OK


def _mirror_target(args: argparse.Namespace, settings: TrainingSettings) -> tuple[str, str]:
    """Bucket and prefix of the mirror: the command line's, else the settings'."""
    bucket = args.bucket or settings.s3_bucket
    if not bucket:
        raise UsageError("no S3 bucket: set WINEQ_TRAIN_S3_BUCKET or pass --bucket")
    return bucket, settings.s3_prefix if args.prefix is None else args.prefix


def _cmd_push(args: argparse.Namespace, settings: TrainingSettings) -> int:
    from training import mirror

    result = mirror.push(args.tag or f"{MODEL_NAME}:latest", *_mirror_target(args, settings))
    state = "pushed" if result.uploaded else "already mirrored (identical)"
    print(f"{state}: {result.manifest.tag} -> {result.uri}")
    return EXIT_OK


def _cmd_pull(args: argparse.Namespace, settings: TrainingSettings) -> int:
    from training import mirror

    print(mirror.pull(*_mirror_target(args, settings), args.version))
    return EXIT_OK


def _cmd_promote(args: argparse.Namespace, settings: TrainingSettings) -> int:
    from training import mirror

    manifest = mirror.promote(*_mirror_target(args, settings), args.version)
    print(f"champion: {manifest.tag}")
    return EXIT_OK


def _cmd_list_versions(args: argparse.Namespace, settings: TrainingSettings) -> int:
    from training import mirror

    infos = mirror.list_versions(*_mirror_target(args, settings))
    if args.json:
        rows = [{**i.manifest.model_dump(mode="json"), "champion": i.is_champion} for i in infos]
        print(json.dumps(rows, indent=2, sort_keys=True))
    elif infos:
        print(render_versions(infos))
    else:
        print("no versions", file=sys.stderr)
    return EXIT_OK


def _created(value: str | None) -> str:
    """An ISO creation time as 'YYYY-MM-DD HH:MM' in UTC (as recorded when not ISO)."""
    try:
        moment = datetime.fromisoformat(value or "")
    except ValueError:
        return value or "-"
    return (moment.astimezone(UTC) if moment.tzinfo else moment).strftime("%Y-%m-%d %H:%M")


def _accuracy(metrics: Mapping[str, Any], wine_type: str) -> str:
    """A wine type's headline accuracy as a percentage; '-' when the entry has none."""
    per_type = metrics.get(HEADLINE_METRICS)
    measured = per_type.get(wine_type) if isinstance(per_type, Mapping) else None
    value = measured.get("accuracy") if isinstance(measured, Mapping) else None
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    return f"{value:.1%}" if is_number else "-"


def render_versions(infos: Sequence[VersionInfo]) -> str:
    """The list-versions table: champion mark, version, creation date, accuracy per type."""
    header = ("", "version", "created (UTC)", *(f"accuracy {t}" for t in WINE_TYPES))
    rows = [header] + [
        (
            "*" if info.is_champion else "",
            info.manifest.version,
            _created(info.manifest.created_at),
            *(_accuracy(info.manifest.metrics, t) for t in WINE_TYPES),
        )
        for info in infos
    ]
    widths = [max(len(row[column]) for row in rows) for column in range(len(header))]
    lines = [
        "  ".join(
            cell.rjust(width) if column > 2 else cell.ljust(width)
            for column, (cell, width) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in rows
    ]
    lines.append(f"* champion; accuracy: the {HEADLINE_METRICS} estimate per wine type")
    return "\n".join(lines)


def _add_mirror_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bucket", help="S3 bucket (default: WINEQ_TRAIN_S3_BUCKET)")
    parser.add_argument(
        "--prefix", help="S3 key prefix (default: WINEQ_TRAIN_S3_PREFIX or 'models')"
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every sub-command."""
    parser = argparse.ArgumentParser(
        prog="python -m training",
        description="Wine-quality training: data, model, evaluation and the model mirror.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, command: Command, summary: str, **kwargs: Any) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=summary, **kwargs)
        sub.set_defaults(func=command)
        return sub

    add("ingest", _cmd_ingest, "download or read, verify and validate the data; print a summary")
    train = add("train", _cmd_train, "ingest, train and save a model store entry; print its tag")
    train.add_argument(
        "--full-evaluation",
        action="store_true",
        help="store cross-validated metrics of both protocols (slower) instead of the "
        "quick grouped hold-out estimate",
    )
    evaluate = add(
        "evaluate", _cmd_evaluate, "cross-validate both protocols per wine type; write the report"
    )
    evaluate.add_argument(
        "--output",
        type=Path,
        default=DEFAULT_REPORT,
        help=f"Markdown file to write (default {DEFAULT_REPORT})",
    )
    evaluate.add_argument(
        "--require-reference",
        action="store_true",
        help=f"exit {EXIT_BELOW_REFERENCE} unless the paper's accuracy is beaten for both types",
    )
    add(
        "ensure-model",
        _cmd_ensure_model,
        "train only if the store has no entry of the model; print the tag",
    )

    push = add(
        "push",
        _cmd_push,
        "upload a model store entry to the S3 mirror (immutable)",
        description="Export a model store entry and upload it with its manifest. "
        "Pushing a version again is a no-op when identical and an error when different.",
    )
    push.add_argument("--tag", help=f"model store tag (default: {MODEL_NAME}:latest)")
    pull = add(
        "pull",
        _cmd_pull,
        "import a version from the S3 mirror into the local store",
        description="Download a version, check its size and sha256 against the manifest, "
        "then import it into the local BentoML store.",
    )
    pull.add_argument("--version", help="version to pull (default: the champion)")
    promote = add(
        "promote",
        _cmd_promote,
        "make a mirrored version the champion",
        description="Point the champion pointer at a version whose manifest exists.",
    )
    promote.add_argument("--version", required=True, help="version to promote")
    list_versions = add(
        "list-versions",
        _cmd_list_versions,
        "list mirrored versions, oldest first; '*' marks the champion",
        description="A table of the complete versions in the S3 mirror: creation date "
        "and accuracy per wine type; --json prints every manifest instead.",
    )
    list_versions.add_argument("--json", action="store_true", help="print the manifests as JSON")
    for mirror_command in (push, pull, promote, list_versions):
        _add_mirror_args(mirror_command)
    return parser


def _run(command: Command, args: argparse.Namespace) -> int:
    """Read the settings and run a command; an expected failure is one line on stderr."""
    try:
        return command(args, TrainingSettings.from_env())
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # the CLI contract: one line, never a traceback
        code = exit_code(exc)
        if code is None:
            logger.debug("unexpected failure", exc_info=True)
            print(f"error: unexpected {type(exc).__name__}: {one_line(exc)}", file=sys.stderr)
            return EXIT_FAILURE
        from training.validate import DataValidationError

        if isinstance(exc, DataValidationError):
            logger.debug("%s", exc.report.render())
            print(f"error: {one_line(exc)} (run with -v for the full report)", file=sys.stderr)
        else:
            print(f"error: {one_line(exc)}", file=sys.stderr)
        return code


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments, run the chosen command, return its exit code."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if not args.verbose:
        # boto's INFO lines (where credentials and endpoints were found) are noise here.
        for noisy in ("botocore", "boto3", "s3transfer"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
    command: Command = args.func
    return _run(command, args)
