"""The container benchmark's computations: round order, percentiles, the JSON the harness
writes as the table writer reads it, and the rewrite of exactly one document section."""

from __future__ import annotations

import json
from dataclasses import asdict

from scripts.bench_container import Capacity, Start, percentile, round_order
from scripts.bench_table import SECTION_TITLE, good_rates, render, replace_section

OTHER = "## Retired: forest size\n\nforest text  \n```\n## not a heading inside code\n```\n"
OLD = f"{SECTION_TITLE}\n\nold container text\n### a subsection of it\nmore old text\n"
DOC = f"# Benchmarks\n\nintro\n\n{OLD}\n{OTHER}"
NEW = f"{SECTION_TITLE}\n\nnew text\n"


def test_order_alternates_round_by_round():
    assert [round_order("abc", n) for n in range(3)] == [list("abc"), list("cba"), list("abc")]


def test_percentile_is_nearest_rank():
    values = [float(v) for v in range(100, 0, -1)]
    assert (percentile(values, 50), percentile(values, 99), percentile(values, 100)) == (
        50.0,
        99.0,
        100.0,
    )
    assert percentile([7.0], 99) == 7.0
    assert percentile([], 50) is None


def test_only_the_container_section_is_replaced():
    assert replace_section(DOC, SECTION_TITLE, NEW) == f"# Benchmarks\n\nintro\n\n{NEW}\n{OTHER}"


def test_a_heading_inside_a_code_block_does_not_end_the_section():
    doc = f"# Benchmarks\n\n{SECTION_TITLE}\n\n```\n## inside\n```\nold\n\n## Next\n\nkept\n"
    assert replace_section(doc, SECTION_TITLE, NEW) == f"# Benchmarks\n\n{NEW}\n## Next\n\nkept\n"


def test_rewriting_twice_gives_the_same_document():
    once = replace_section(DOC, SECTION_TITLE, NEW)
    assert replace_section(once, SECTION_TITLE, NEW) == once


def test_a_missing_section_is_appended():
    assert replace_section("# Benchmarks\n\n", SECTION_TITLE, NEW) == f"# Benchmarks\n\n{NEW}"


def _report() -> dict[str, object]:
    current, baseline = "wine-quality:m-new", "wine-quality:m-old"
    starts = [
        Start("current", current, [], [9.0, 7.0, 8.0], [2.0, 1.5, 1.75]),
        Start("baseline", baseline, [], [6.0, 6.6, 6.3], [1.0, 1.2, 1.1]),
    ]
    images = [
        Capacity("current", current, 0, 500.0, "m", 130.0, 180.0, 140.0, 190.0, 20.0, 2000, 3, 1),
        Capacity("current", current, 1, 500.0, "m", 130.0, 180.0, 140.0, 190.0, 10.0, 900),
        Capacity("current", current, 2, 500.0, "m", 130.0, 180.0, 140.0, 190.0, 10.0, 1100),
        Capacity("baseline", baseline, 0, 510.0, "m", 135.0, 185.0, 145.0, 195.0, 20.0, 1000),
    ]
    report = {
        "conditions": {
            "date": "2026-01-01T00:00:00+00:00",
            "commit": "abc1234",
            "cpu_model": "cpu",
            "cores": 2,
            "kernel": "6",
            "docker": "28",
            "load_average_start": [0.1, 0.2, 0.3],
            "load_average_end": [0.4, 0.5, 0.6],
        },
        "limits": {"cpus": "0.25", "memory": "512m"},
        "load": {"connections": 32, "warmup_s": 5.0, "duration_s": 20.0},
        "starts": [asdict(s) for s in starts],
        "images": [asdict(c) for c in images],
    }
    # What the table writer reads is what went through JSON.
    loaded: dict[str, object] = json.loads(json.dumps(report))
    return loaded


def _row(section: str, first_cell: str, occurrence: int = 0) -> list[str]:
    rows = [line for line in section.splitlines() if line.startswith(f"| {first_cell} |")]
    return [cell.strip() for cell in rows[occurrence].strip("|").split("|")]


def test_the_table_holds_medians_and_rates_computed_from_the_raw_results():
    section = render(_report(), "build/bench/x.json")
    assert section.startswith(SECTION_TITLE + "\n")
    current_start, baseline_start = _row(section, "current"), _row(section, "baseline")
    assert (current_start[2], current_start[4]) == ("8.0", "1.75")
    assert (baseline_start[2], baseline_start[4]) == ("6.3", "1.10")
    current_load, baseline_load = _row(section, "current", 1), _row(section, "baseline", 1)
    assert current_load[1] == "1"
    assert current_load[7:12] == ["100", "–", "–", "1", "3"]  # 2000 good in 20 s
    assert baseline_load[7] == "50"


def test_the_median_rate_of_each_image_is_over_its_rounds():
    assert good_rates(_report()) == {"current": 100.0, "baseline": 50.0}  # 100, 90, 110 req/s
