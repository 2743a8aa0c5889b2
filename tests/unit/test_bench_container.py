"""The container benchmark's report: verdicts, the side-by-side table, its doc section."""

from __future__ import annotations

from pathlib import Path

import pytest

from scripts.bench_container import (
    SECTION_TITLE,
    ColdStarts,
    Result,
    render,
    variants,
)
from scripts.doc_sections import replace_section

IMAGE = "wine-quality:abc-123"
BASELINE = "wine-quality:old-122"


def _result(launcher_s: list[float], with_baseline: bool = True) -> Result:
    chosen = variants(IMAGE, BASELINE if with_baseline else None)
    ready = [launcher_s, [13.0, 14.0, 15.0], [9.0, 9.5, 10.0]]
    cpu = [[1.7, 1.8, 1.9], [3.4, 3.5, 3.6], [2.1, 2.2, 2.3]]
    processes = [{"python -m bento.launch": 1.3}, {"bentoml serve": 1.5, "worker": 1.6}, {}]
    cold = [
        ColdStarts(variant, ready[i], cpu[i], 1.3 + i, processes[i])
        for i, variant in enumerate(chosen)
    ]
    return Result(
        image=IMAGE, image_mb=510.0, cold_starts=cold, idle_mb=150.0, idle_rss_mb=197.0,
        load_mb=160.0, load_rss_mb=205.0, load_requests=3000, load_rps=120.0, load_failures=0,
        speed_probe_s=(0.31, 0.27),
    )  # fmt: skip


def _row(section: str, measure: str) -> list[str]:
    line = next(line for line in section.splitlines() if line.startswith(f"| {measure}"))
    return [cell.strip() for cell in line.strip("|").split("|")]


def test_variants_put_the_image_cmd_first_and_the_baseline_last():
    chosen = variants(IMAGE, BASELINE)
    assert [v.image for v in chosen] == [IMAGE, IMAGE, BASELINE]
    assert [v.command for v in chosen] == [(), ("serve",), ()]
    assert len(variants(IMAGE)) == 2


@pytest.mark.parametrize(
    ("runs", "median", "met"),
    [([7.2, 7.6, 9.9], "7.6 s", "yes"), ([8.1, 8.4, 7.0], "8.1 s", "**no**")],
)
def test_cold_start_verdict_follows_the_median(runs: list[float], median: str, met: str):
    section = render(_result(runs))
    cells = _row(section, "Cold start")
    assert cells[1] == median
    assert cells[3] == met
    target_note = "target is met." if met == "yes" else "target is **not met**"
    assert target_note in section


def test_side_by_side_table_has_every_start_with_its_runs():
    section = render(_result([7.0, 7.5, 8.0]))
    rows = [line for line in section.splitlines() if line.startswith("| image CMD")]
    assert len(rows) == 1
    assert "7.0, 7.5, 8.0" in rows[0]
    assert "| 1.80 |" in rows[0]
    assert any(line.startswith("| `bentoml serve`") for line in section.splitlines())
    assert any(f"`{BASELINE}`" in line for line in section.splitlines())
    # The arbiter-free CMD against `bentoml serve`, from the same rounds: 14.0 - 7.5.
    assert "ready 6.5 s sooner" in section
    assert "starts 2.0 s sooner" in section  # the baseline's median 9.5 - 7.5


def test_the_speed_probe_is_reported():
    assert "0.310 s at the start, 0.270 s at the end" in render(_result([7.0, 7.5, 8.0]))


def test_without_a_baseline_there_is_no_baseline_row():
    section = render(_result([7.0, 7.5, 8.0], with_baseline=False))
    assert "baseline" not in section


def test_update_doc_replaces_only_its_own_section(tmp_path: Path):
    doc = tmp_path / "benchmarks.md"
    doc.write_text(
        f"# Benchmarks\n\n## Before\n\nkept 1\n\n{SECTION_TITLE}\n\nold numbers\n\n"
        "## After\n\nkept 2\n"
    )
    replace_section(doc, SECTION_TITLE, render(_result([7.0, 7.5, 8.0])))
    text = doc.read_text()
    assert "old numbers" not in text
    assert text.index("## Before") < text.index(SECTION_TITLE) < text.index("## After")
    assert "kept 1" in text
    assert "kept 2" in text
    assert text.count(SECTION_TITLE) == 1
