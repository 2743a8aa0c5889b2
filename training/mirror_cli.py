"""CLI commands of the S3 model mirror (push, pull, promote, list-versions)."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the mirror's sub-commands to the training CLI."""
