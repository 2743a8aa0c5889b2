"""Model behaviour (Made-With-ML style): minimum functionality, invariance, direction.

These run against the forest as stored (``trained_model_tag``), so they check what the
service will load, not a model re-fitted inside the test.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import RandomForestClassifier

from training.features import WINE_TYPES
from training.train import labels, model_matrix

SAMPLE_ROWS = 600
SEED = 0


def _of_type(frame: pd.DataFrame, wine_type: str) -> pd.DataFrame:
    return frame[frame["wine_type"] == wine_type]


def _sample(frame: pd.DataFrame, wine_type: str) -> pd.DataFrame:
    rows = _of_type(frame, wine_type)
    return rows.sample(min(SAMPLE_ROWS, len(rows)), random_state=SEED).copy()


def _predict(forest: RandomForestClassifier, frame: pd.DataFrame) -> np.ndarray:
    return np.asarray(forest.predict(model_matrix(frame)))


# --- minimum functionality -------------------------------------------------------------


@pytest.mark.parametrize("wine_type", WINE_TYPES)
def test_accuracy_well_above_majority_baseline(
    forest: RandomForestClassifier, wine_frame: pd.DataFrame, wine_type: str
):
    rows = _of_type(wine_frame, wine_type)
    true = labels(rows)
    majority = np.bincount(true).max() / len(true)
    accuracy = float(np.mean(_predict(forest, rows) == true))
    assert accuracy >= majority + 0.3, (accuracy, majority)


@pytest.mark.parametrize("wine_type", WINE_TYPES)
def test_held_out_accuracy_beats_majority_baseline(trained_model_tag: str, wine_type: str):
    import bentoml

    metadata: dict[str, Any] = dict(bentoml.models.get(trained_model_tag).info.metadata)
    metrics = metadata["metrics"]["leakage_free"]
    assert metrics[wine_type]["accuracy"] >= metrics[wine_type]["majority_baseline"] + 0.05


@pytest.mark.parametrize(
    ("grades", "low", "high"),
    [pytest.param((3, 4), 3.0, 5.5, id="poor-wines"), pytest.param((8, 9), 6.5, 9.0, id="great")],
)
def test_extreme_grades_are_recognised(
    forest: RandomForestClassifier, wine_frame: pd.DataFrame, grades, low, high
):
    rows = wine_frame[wine_frame["quality"].isin(grades)]
    assert low <= _predict(forest, rows).mean() <= high


# --- invariance --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("feature", "delta"),
    [
        ("density", 1e-6),  # far below the 5th decimal the data is reported in
        ("ph", 1e-4),
        ("chlorides", 1e-5),
        ("alcohol", 1e-3),
    ],
)
@pytest.mark.parametrize("wine_type", WINE_TYPES)
def test_measurement_noise_rarely_changes_the_prediction(
    forest: RandomForestClassifier, wine_frame: pd.DataFrame, wine_type, feature, delta
):
    rows = _sample(wine_frame, wine_type)
    before = _predict(forest, rows)
    noise = np.random.default_rng(SEED).uniform(-delta, delta, size=len(rows))
    rows[feature] = rows[feature] + noise
    flipped = float(np.mean(_predict(forest, rows) != before))
    assert flipped <= 0.01, f"{flipped:.1%} of predictions flipped"


def test_prediction_does_not_depend_on_batch_or_order(
    forest: RandomForestClassifier, wine_frame: pd.DataFrame
):
    # Adaptive batching merges requests; a row's answer must not depend on its neighbours.
    rows = wine_frame.sample(300, random_state=SEED)
    matrix = model_matrix(rows)
    batch = forest.predict_proba(matrix)
    order = np.random.default_rng(SEED).permutation(len(rows))
    # Tree votes are summed in thread order, so only the last bit may differ.
    np.testing.assert_allclose(forest.predict_proba(matrix[order]), batch[order], atol=1e-12)
    for i in range(0, 300, 37):
        single = forest.predict_proba(matrix[i : i + 1])[0]
        np.testing.assert_allclose(single, batch[i], atol=1e-12)
        assert single.argmax() == batch[i].argmax()


def test_wine_type_matters(forest: RandomForestClassifier, wine_frame: pd.DataFrame):
    # Guards the invariance tests: the model must not ignore every input either.
    rows = _sample(wine_frame, "white")
    before = forest.predict_proba(model_matrix(rows))
    rows["wine_type"] = "red"
    assert not np.array_equal(forest.predict_proba(model_matrix(rows)), before)


# --- direction ---------------------------------------------------------------------------


def _mean_quality_before_after(
    forest: RandomForestClassifier, frame: pd.DataFrame, wine_type: str, feature: str, by: float
) -> tuple[float, float]:
    """Mean predicted quality of a sample of one wine type, then with ``feature`` raised."""
    rows = _sample(frame, wine_type)
    before = float(_predict(forest, rows).mean())
    rows[feature] = rows[feature] + by
    return before, float(_predict(forest, rows).mean())


@pytest.mark.parametrize("raise_by", [1.0, 2.0, 3.0])
@pytest.mark.parametrize("wine_type", WINE_TYPES)
def test_more_alcohol_does_not_lower_mean_quality(
    forest: RandomForestClassifier, wine_frame: pd.DataFrame, wine_type: str, raise_by: float
):
    before, after = _mean_quality_before_after(forest, wine_frame, wine_type, "alcohol", raise_by)
    assert after >= before


@pytest.mark.parametrize("raise_by", [0.5, 1.0])
@pytest.mark.parametrize("wine_type", WINE_TYPES)
def test_much_more_volatile_acidity_does_not_raise_mean_quality(
    forest: RandomForestClassifier, wine_frame: pd.DataFrame, wine_type: str, raise_by: float
):
    before, after = _mean_quality_before_after(
        forest, wine_frame, wine_type, "volatile_acidity", raise_by
    )
    assert after <= before
