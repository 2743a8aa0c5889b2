"""Rewrite one section of a Markdown document, leaving the rest byte for byte.

Each benchmark script owns one "## ..." section of docs/benchmarks.md; running it with
``--update-doc`` replaces that section only (or appends it when the document lacks it).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

_HEADING = re.compile(r"^#{1,2} ")


def replace_section(doc: Path, title: str, section: str) -> None:
    """Replace the section headed ``title`` with ``section`` (its heading included).

    The section runs from its heading to the next heading of level 1 or 2 outside a code
    block. A missing section is appended; a missing document is created.
    """
    text = doc.read_text() if doc.exists() else "# Benchmarks\n"
    lines = text.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.rstrip() == title), None)
    if start is None:
        new = text.rstrip("\n") + "\n\n" + section
    else:
        in_code = False
        end = len(lines)
        for i in range(start + 1, len(lines)):
            if lines[i].lstrip().startswith("```"):
                in_code = not in_code
            if not in_code and _HEADING.match(lines[i]):
                end = i
                break
        tail = "".join(lines[end:])
        new = "".join(lines[:start]) + section + ("\n" + tail if tail else "")
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(new)


def publish(section: str, title: str, doc: Path | None) -> None:
    """Print a benchmark's section; with ``doc``, also write it there in place of the old one."""
    print(section)
    if doc is not None:
        replace_section(doc, title, section)
        print(f"updated '{title}' in {doc}", file=sys.stderr)
