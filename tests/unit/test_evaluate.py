"""Evaluation: the two protocols' folds, the metrics and the Markdown report."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from training.evaluate import (
    PAPER_REFERENCE,
    ProtocolResult,
    TypeMetrics,
    evaluate_protocol,
    fold_splits,
    identity_groups,
    leaked_rows,
    render_markdown,
    type_metrics,
)
from training.settings import TrainingSettings

SETTINGS = TrainingSettings(n_estimators=10, cv_folds=5, random_state=42)


@pytest.fixture(scope="module")
def splits(wine_frame: pd.DataFrame):
    return {
        protocol: fold_splits(wine_frame, protocol, SETTINGS) for protocol in ("paper", "grouped")
    }


def test_identical_rows_share_a_group(wine_frame: pd.DataFrame):
    groups = identity_groups(wine_frame)
    assert len(groups) - len(np.unique(groups)) == 1177


@pytest.mark.parametrize("protocol", ["paper", "grouped"])
def test_every_row_is_tested_exactly_once(splits, wine_frame: pd.DataFrame, protocol):
    tested = np.concatenate([test for _, test in splits[protocol]])
    assert len(splits[protocol]) == 5
    assert np.array_equal(np.sort(tested), np.arange(len(wine_frame)))
    for train, test in splits[protocol]:
        assert not np.intersect1d(train, test).size


def test_grouped_protocol_never_leaks_identical_rows(splits, wine_frame: pd.DataFrame):
    assert leaked_rows(wine_frame, splits["grouped"]) == 0


def test_paper_protocol_leaks_identical_rows(splits, wine_frame: pd.DataFrame):
    # The reason protocol (b) exists: shown on the data, not assumed.
    assert leaked_rows(wine_frame, splits["paper"]) > 1000


@pytest.mark.parametrize("protocol", ["paper", "grouped"])
def test_folds_are_stratified_by_type(splits, wine_frame: pd.DataFrame, protocol):
    white_share = (wine_frame["wine_type"] == "white").mean()
    for _, test in splits[protocol]:
        fold_share = (wine_frame["wine_type"].to_numpy()[test] == "white").mean()
        assert abs(fold_share - white_share) < 0.03


def test_splits_are_reproducible(wine_frame: pd.DataFrame):
    subset = wine_frame[wine_frame["wine_type"] == "red"].reset_index(drop=True)
    first = fold_splits(subset, "grouped", SETTINGS)
    again = fold_splits(subset, "grouped", SETTINGS)
    for (train_a, test_a), (train_b, test_b) in zip(first, again, strict=True):
        assert np.array_equal(train_a, train_b)
        assert np.array_equal(test_a, test_b)


def test_type_metrics_by_hand():
    true = np.array([5, 5, 6, 7], dtype=np.int64)
    predicted = np.array([5, 6, 6, 5], dtype=np.int64)
    metrics = type_metrics(true, predicted)
    assert metrics.accuracy == pytest.approx(0.5)
    assert metrics.mad == pytest.approx((0 + 1 + 0 + 2) / 4)
    # F1 per class: 5 -> P 1/2, R 1/2 -> 1/2; 6 -> P 1/2, R 1 -> 2/3; 7 -> 0
    assert metrics.macro_f1 == pytest.approx((1 / 2 + 2 / 3 + 0) / 3)
    assert metrics.majority_baseline == pytest.approx(0.5)


def test_small_grouped_evaluation_runs_per_type(wine_frame: pd.DataFrame):
    result = evaluate_protocol(wine_frame, "grouped", SETTINGS)
    assert set(result.per_type) == {"red", "white"}
    assert result.per_type["red"].n == 1599
    assert result.leaked_test_rows == 0
    for metrics in result.per_type.values():
        assert metrics.accuracy > metrics.majority_baseline


def _result(protocol, accuracy: float) -> ProtocolResult:
    metrics = TypeMetrics(n=100, accuracy=accuracy, macro_f1=0.3, mad=0.4, majority_baseline=0.45)
    return ProtocolResult(protocol, 5, {"red": metrics, "white": metrics}, leaked_test_rows=7)


def test_markdown_report_has_both_tables_reference_and_provenance():
    markdown = render_markdown(
        [_result("paper", 0.70), _result("grouped", 0.60)],
        settings=SETTINGS,
        data_sha256="ab" * 32,
        file_sha256={"red": "cd" * 32, "white": "ef" * 32},
        n_duplicates=1177,
        generated_at=datetime(2025, 1, 2, 3, 4, tzinfo=UTC),
    )
    assert "2025-01-02 03:04 UTC" in markdown
    assert "ab" * 32 in markdown
    assert "### (a)" in markdown
    assert "### (b)" in markdown
    assert markdown.count("| red | 100 | 70.0 %") == 1
    assert markdown.count("| white | 100 | 60.0 %") == 1
    assert "Cortez" in markdown
    assert "62.4 %" in markdown
    assert "64.6 %" in markdown
    assert "| `n_estimators` | `10` |" in markdown


def test_beats_reference_compares_with_the_paper():
    assert _result("paper", 0.70).beats_reference() == {"red": True, "white": True}
    assert _result("paper", 0.63).beats_reference() == {"red": True, "white": False}
    assert PAPER_REFERENCE["red"]["accuracy"] == 0.624
