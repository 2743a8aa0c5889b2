"""scripts/doc_sections.py: rewriting one "## ..." section of a Markdown document."""

from __future__ import annotations

from pathlib import Path

from scripts.doc_sections import replace_section

SECTION_TITLE = "## Forest size"

DOC = (
    "# Benchmarks\n"
    "\n"
    "## Service design at 0.25 vCPU\n"
    "\n"
    "service text  \n"
    "```\n"
    "## not a heading inside code\n"
    "```\n"
    "\n"
    "## Forest size\n"
    "\n"
    "old forest text\n"
    "### a subsection of it\n"
    "more old text\n"
    "\n"
    "## Container (Fargate limits)\n"
    "\n"
    "container text, no trailing newline"
)


def test_section_rewrite_replaces_only_its_own_section(tmp_path: Path):
    doc = tmp_path / "benchmarks.md"
    doc.write_text(DOC)
    replace_section(doc, SECTION_TITLE, "## Forest size\n\nnew text\n")
    text = doc.read_text()
    before, after = DOC.split("## Forest size\n")[0], DOC.split("more old text\n\n")[1]
    assert text == before + "## Forest size\n\nnew text\n\n" + after
    assert "old forest text" not in text
    assert "### a subsection of it" not in text


def test_section_rewrite_is_stable_when_repeated(tmp_path: Path):
    doc = tmp_path / "benchmarks.md"
    doc.write_text(DOC)
    replace_section(doc, SECTION_TITLE, "## Forest size\n\nnew text\n")
    once = doc.read_text()
    replace_section(doc, SECTION_TITLE, "## Forest size\n\nnew text\n")
    assert doc.read_text() == once


def test_section_as_the_last_one_keeps_everything_before_it(tmp_path: Path):
    doc = tmp_path / "benchmarks.md"
    head = "# Benchmarks\n\n## Other\n\nother text\n\n"
    doc.write_text(head + "## Forest size\n\nold\n")
    replace_section(doc, SECTION_TITLE, "## Forest size\n\nnew\n")
    assert doc.read_text() == head + "## Forest size\n\nnew\n"


def test_section_is_appended_when_missing(tmp_path: Path):
    doc = tmp_path / "benchmarks.md"
    doc.write_text("# Benchmarks\n\n## Other\n\ntext\n")
    replace_section(doc, SECTION_TITLE, "## Forest size\n\nnew\n")
    assert doc.read_text() == "# Benchmarks\n\n## Other\n\ntext\n\n## Forest size\n\nnew\n"
