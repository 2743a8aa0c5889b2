"""scripts/bench_forest.py: the pure parts (options, order, table, section text); no timings."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict

import pytest

from scripts.bench_forest import (
    NOT_RUN,
    SECTION_TITLE,
    ConfigResult,
    Export,
    Probe,
    Run,
    default_config,
    markdown_table,
    parse_args,
    parse_configs,
    probe_order,
    render_section,
    run_from_dict,
)


def _probe(session_mib: float, cpu_s: float, digest: str = "same") -> Probe:
    baseline = 56 * 1024
    after = baseline + int(session_mib * 1024)
    return Probe(
        baseline_kib=baseline,
        after_kib=after,
        peak_kib=after + 1024,
        cpu_s=cpu_s,
        wall_s=cpu_s,
        digest=digest,
    )


def _result(
    trees: int, min_leaf: int, nodes: int, *, accuracy: bool = True, digest: str = "same"
) -> ConfigResult:
    scale = nodes / 100_000
    return ConfigResult(
        trees=trees,
        min_leaf=min_leaf,
        nodes=nodes,
        accuracy=(
            {
                "paper": {"red": 0.60 + 0.08 * scale / 10, "white": 0.64 + 0.05 * scale / 10},
                "grouped": {"red": 0.605, "white": 0.557},
            }
            if accuracy
            else None
        ),
        full=Export(
            int(8_000_000 * scale), tuple(_probe(87 * scale, 0.2 * scale) for _ in range(3))
        ),
        compact=Export(
            int(4_000_000 * scale),
            tuple(_probe(60 * scale, 0.13 * scale, digest) for _ in range(3)),
        ),
    )


def _run(*results: ConfigResult, skipped: tuple[tuple[int, int], ...] = ()) -> Run:
    return Run(
        started="2026-11-26 06:00 UTC",
        wall_s=600.0,
        rounds=3,
        rows=6497,
        environment={
            "cpu": "AMD EPYC",
            "cores": "2",
            "platform": "Linux",
            "python": "3.11.7",
            "onnxruntime": "1.32.0",
            "skl2onnx": "1.20.0",
            "scikit-learn": "1.9.1",
            "onnx": "1.23.2",
        },
        settings={
            "max_features": "sqrt",
            "max_depth": "None",
            "class_weight": "None",
            "cv_folds": "5",
        },
        load_before=(0.5, 0.4, 0.3),
        load_after=(0.6, 0.5, 0.4),
        other_load=0.12,
        accuracy_skipped=skipped,
        results=results,
        default=(60, 3),
    )


@pytest.fixture
def run() -> Run:
    return _run(
        _result(300, 1, 890_000),
        _result(100, 5, 119_910),
        _result(60, 3, 106_462),
        _result(60, 2, 136_606),
    )


def test_configs_parse_in_the_given_order():
    assert parse_configs("60x3,100x1") == ((60, 3), (100, 1))
    assert parse_configs(" 300X1 , 60x2 ,") == ((300, 1), (60, 2))


@pytest.mark.parametrize(
    "text", ["60", "60x", "x3", "60x3x1", "sixtyx3", "0x3", "60x0", "", "60x3,60x3"]
)
def test_malformed_configs_are_refused(text: str):
    with pytest.raises(argparse.ArgumentTypeError):
        parse_configs(text)


def test_command_line_takes_configs_and_defaults_to_the_documented_list():
    assert parse_args(["--configs", "60x3,100x1"]).configs == ((60, 3), (100, 1))
    configs = parse_args([]).configs
    assert configs[0] == (300, 1)
    assert default_config() in configs
    with pytest.raises(SystemExit):
        parse_args(["--configs", "60by3"])


def test_default_config_is_the_training_default():
    assert default_config() == (60, 3)  # training/settings.py: 60 trees, leaves of 3 rows


def test_every_round_measures_every_export_and_alternates_which_goes_first():
    configs = [(60, 3), (100, 1)]
    order = list(probe_order(configs, 4))
    assert len(order) == 4 * 2 * 2
    for config in configs:
        for name in ("full", "compact"):
            assert order.count((config, name)) == 4
    first_of_pair = [order[i] for i in range(0, len(order), 2) if order[i][0] == (60, 3)]
    assert {name for _, name in first_of_pair} == {"full", "compact"}


def test_table_puts_the_default_row_in_bold_and_only_it(run: Run):
    lines = markdown_table(run)
    rows = lines[2:]
    assert len(rows) == 4
    default_row = next(row for row in rows if row.startswith("| **60** | **3** |"))
    cells = [cell.strip() for cell in default_row.strip("|").split("|")]
    assert all(cell.startswith("**") and cell.endswith("**") for cell in cells)
    assert "**106,462**" in cells
    assert sum("**" in row for row in rows) == 1
    header_cells = lines[0].count("|") - 1
    assert all(row.count("|") - 1 == header_cells for row in rows)


def test_accuracy_not_run_shows_in_both_protocol_columns():
    run = _run(_result(60, 3, 106_462, accuracy=False), _result(100, 1, 296_270, accuracy=False))
    for row in markdown_table(run)[2:]:
        assert row.count(NOT_RUN) == 2
    section = render_section(run)
    assert "`--no-accuracy`" in section


def test_skipped_accuracy_is_named_in_the_section():
    run = _run(
        _result(300, 1, 890_000, accuracy=False), _result(60, 3, 106_462), skipped=((300, 1),)
    )
    section = render_section(run)
    assert "300 fully grown trees was left out of this run" in section


def test_section_has_its_heading_the_command_and_the_reasoning(run: Run):
    section = render_section(run)
    assert section.startswith(SECTION_TITLE + "\n\n")
    assert section.endswith("\n")
    assert "python scripts/bench_forest.py --update-doc docs/benchmarks.md" in section
    assert "62.4 % red, 64.6 % white" in section  # the paper's figures
    assert "512 MiB task" in section
    assert "same for the full and the compact export" in section


def test_differing_outputs_are_flagged():
    run = _run(_result(60, 3, 106_462, digest="other"))
    assert "**differ**" in render_section(run)


def test_saved_run_renders_the_same_after_a_json_round_trip(run: Run):
    restored = run_from_dict(json.loads(json.dumps(asdict(run))))
    assert restored == run
    assert render_section(restored) == render_section(run)
