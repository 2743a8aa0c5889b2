"""Data validation: the real data passes; each kind of bad data is caught and explained."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

from training.features import FEATURE_NAMES, TARGET, WINE_TYPE_FIELD
from training.validate import DataValidationError, ValidationReport, check_frame, validate_frame


def test_real_data_passes(wine_frame: pd.DataFrame):
    report = validate_frame(wine_frame)
    assert report.ok
    assert report.rows_by_type == {"red": 1599, "white": 4898}
    assert "validation: passed" in report.render()


def test_duplicates_are_counted_not_rejected(wine_frame: pd.DataFrame):
    report = validate_frame(wine_frame)
    assert report.n_duplicates == 1177
    assert "1177" in report.render()


def test_added_duplicate_is_counted(wine_frame: pd.DataFrame):
    frame = pd.concat([wine_frame, wine_frame.iloc[[0]]], ignore_index=True)
    assert validate_frame(frame).n_duplicates == 1178


def _set(column: str, row: int, value: object) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def change(frame: pd.DataFrame) -> pd.DataFrame:
        if not isinstance(value, int | float) and column != WINE_TYPE_FIELD:
            frame[column] = frame[column].astype(object)
        frame.loc[row, column] = value
        return frame

    return change


def _drop(column: str) -> Callable[[pd.DataFrame], pd.DataFrame]:
    return lambda frame: frame.drop(columns=[column])


def _add(column: str) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def change(frame: pd.DataFrame) -> pd.DataFrame:
        frame[column] = 1.0
        return frame

    return change


def _reorder(frame: pd.DataFrame) -> pd.DataFrame:
    columns = list(frame.columns)
    columns[0], columns[1] = columns[1], columns[0]
    return frame[columns]


def _float_quality(frame: pd.DataFrame) -> pd.DataFrame:
    frame[TARGET] = frame[TARGET].astype(float)
    frame.loc[3, TARGET] = 5.5
    return frame


def _text_column(frame: pd.DataFrame) -> pd.DataFrame:
    frame["alcohol"] = frame["alcohol"].astype(str)
    return frame


BAD_DATA = [
    pytest.param(_drop("alcohol"), "missing columns: alcohol", id="missing-column"),
    pytest.param(_add("colour"), "unexpected columns: colour", id="unexpected-column"),
    pytest.param(_reorder, "columns out of order", id="column-order"),
    pytest.param(_text_column, "column alcohol must be numeric", id="non-numeric-dtype"),
    pytest.param(_set("density", 7, np.nan), "column density has 1 missing value", id="missing"),
    pytest.param(_set("chlorides", 9, np.inf), "column chlorides has 1 non-finite", id="inf"),
    pytest.param(_set("ph", 11, 15.0), "ph must be between 0 and 14", id="ph-above-14"),
    pytest.param(_set("alcohol", 12, 120.0), "alcohol must be between 0 and 100", id="alcohol"),
    pytest.param(_set("sulphates", 13, -0.1), "sulphates must be between 0 and 120", id="neg"),
    pytest.param(
        _set("free_sulfur_dioxide", 14, 10_000.0),
        "free_sulfur_dioxide must not exceed total_sulfur_dioxide",
        id="free-above-total-so2",
    ),
    pytest.param(_float_quality, "quality labels must be integers", id="fractional-quality"),
    pytest.param(_set(TARGET, 15, 11), "quality labels must lie within 0-10", id="quality-scale"),
    pytest.param(_set(TARGET, 16, np.nan), "column quality has 1 missing value", id="no-label"),
    pytest.param(
        _set(WINE_TYPE_FIELD, 17, "rose"), "wine_type must be one of red, white", id="wine-type"
    ),
]


@pytest.mark.parametrize(("corrupt", "expected"), BAD_DATA)
def test_bad_data_is_caught_with_a_readable_message(
    wine_frame: pd.DataFrame, corrupt: Callable[[pd.DataFrame], pd.DataFrame], expected: str
):
    frame = corrupt(wine_frame.copy())

    with pytest.raises(DataValidationError) as caught:
        validate_frame(frame)

    error = caught.value
    assert any(expected in problem for problem in error.problems), error.problems
    assert expected in error.report.render()
    assert "FAILED" in error.report.render()
    assert str(error).startswith("data validation failed: ")


def test_problem_names_the_offending_rows(wine_frame: pd.DataFrame):
    frame = wine_frame.copy()
    frame.loc[[5, 6, 7], "ph"] = 14.5
    problems = check_frame(frame).problems
    assert problems == [
        "ph must be between 0 and 14 pH: 3 row(s) violate this physical limit: rows 5, 6, 7"
    ]


def test_every_problem_is_reported_at_once(wine_frame: pd.DataFrame):
    frame = wine_frame.copy()
    frame.loc[1, "alcohol"] = -1.0
    frame.loc[2, "density"] = np.nan
    frame.loc[3, WINE_TYPE_FIELD] = "blue"
    report = check_frame(frame)
    assert isinstance(report, ValidationReport)
    assert len(report.problems) == 3
    assert not report.ok


def test_infinite_values_are_not_reported_twice(wine_frame: pd.DataFrame):
    frame = wine_frame.copy()
    frame.loc[0, "alcohol"] = np.inf
    assert len(check_frame(frame).problems) == 1


@pytest.mark.parametrize("name", FEATURE_NAMES)
def test_every_feature_is_checked_for_missing_values(wine_frame: pd.DataFrame, name: str):
    frame = wine_frame.copy()
    frame.loc[0, name] = np.nan
    assert check_frame(frame).problems == [f"column {name} has 1 missing value(s): rows 0"]
