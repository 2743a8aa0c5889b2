"""``python -m training <command>``: ingest, train, evaluate, ensure-model (and the mirror's).

Every command returns an exit code.  Expected failures (a checksum mismatch, invalid
data, a network error, a broken store entry) print one line on stderr and exit
non-zero; they never print a traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Final

from training.settings import TrainingSettings

logger = logging.getLogger(__name__)

Command = Callable[[argparse.Namespace], int]

EXIT_OK: Final = 0
EXIT_FAILURE: Final = 1
EXIT_BELOW_REFERENCE: Final = 3
DEFAULT_REPORT: Final = Path("docs/model.md")


def one_line(exc: BaseException) -> str:
    """An exception's message on one line (its type when it has none)."""
    return " ".join(str(exc).split()) or type(exc).__name__


def _cmd_ingest(args: argparse.Namespace) -> int:
    from training.pipeline import ingest

    ingested = ingest(TrainingSettings())
    for wine_type, source in ingested.data.sources.items():
        print(f"{wine_type}: {source} sha256 {ingested.data.file_sha256[wine_type]}")
    print(f"data sha256: {ingested.data.data_sha256}")
    print(ingested.report.render())
    return EXIT_OK


def _cmd_train(args: argparse.Namespace) -> int:
    from training.pipeline import train_and_save

    print(train_and_save(TrainingSettings(), full_evaluation=args.full_evaluation))
    return EXIT_OK


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from training.evaluate import PROTOCOL_TITLES, PROTOCOLS
    from training.pipeline import write_model_card

    results = write_model_card(TrainingSettings(), args.output)
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


def _cmd_ensure_model(args: argparse.Namespace) -> int:
    from training.pipeline import ensure_model

    tag, trained = ensure_model(TrainingSettings())
    logger.info("%s %s", "trained" if trained else "found", tag)
    print(tag)
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every sub-command (the mirror's included)."""
    from training import mirror_cli

    parser = argparse.ArgumentParser(
        prog="python -m training",
        description="Wine-quality training: data, model, evaluation and the model store.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    ingest = subparsers.add_parser(
        "ingest", help="download or read, verify and validate the data; print a summary"
    )
    ingest.set_defaults(func=_cmd_ingest)

    train = subparsers.add_parser(
        "train", help="ingest, train and save a model store entry; print its tag"
    )
    train.add_argument(
        "--full-evaluation",
        action="store_true",
        help="store cross-validated metrics of both protocols (slower) instead of the "
        "quick grouped hold-out estimate",
    )
    train.set_defaults(func=_cmd_train)

    evaluate = subparsers.add_parser(
        "evaluate", help="cross-validate both protocols per wine type and write the report"
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
    evaluate.set_defaults(func=_cmd_evaluate)

    ensure = subparsers.add_parser(
        "ensure-model", help="train only if the store has no entry of the model; print the tag"
    )
    ensure.set_defaults(func=_cmd_ensure_model)

    mirror_cli.register(subparsers)
    return parser


def _run(command: Command, args: argparse.Namespace) -> int:
    """Run a command; map expected failures to one line on stderr and a non-zero exit."""
    from pydantic import ValidationError

    from training.data import DataError
    from training.store import ArtifactError
    from training.validate import DataValidationError

    try:
        return command(args)
    except DataValidationError as exc:
        print(f"error: {one_line(exc)} (run with -v for the full report)", file=sys.stderr)
        logger.debug("%s", exc.report.render())
        return EXIT_FAILURE
    except (DataError, ArtifactError, ValidationError, OSError) as exc:
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # the CLI contract: one line, never a traceback
        logger.debug("unexpected failure", exc_info=True)
        print(f"error: unexpected {type(exc).__name__}: {one_line(exc)}", file=sys.stderr)
        return EXIT_FAILURE


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments, run the chosen command, return its exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
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
