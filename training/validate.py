"""Validation of the training frame: fails loudly, with a report a person can read.

Every check runs and every problem is collected, so one run shows everything that is
wrong instead of the first thing.  Duplicated rows are reported but allowed: the UCI
files contain them, and the leakage-free evaluation protocol deals with them.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Final

import numpy as np
import pandas as pd

from training.data import FRAME_COLUMNS
from training.features import (
    FEATURE_NAMES,
    REQUEST_FIELDS,
    TARGET,
    WINE_TYPE_FIELD,
    WINE_TYPES,
    physical_violations,
)

# The UCI sensory panel grades on a 0 (very bad) to 10 (excellent) scale.
QUALITY_MIN: Final = 0
QUALITY_MAX: Final = 10
# How many offending row indices a report lists per problem before summarising.
MAX_EXAMPLES: Final = 5
# Identical measurements of the same wine type (the label is not part of the identity).
IDENTITY_COLUMNS: Final[tuple[str, ...]] = REQUEST_FIELDS


@dataclass(frozen=True)
class ValidationReport:
    """Outcome of validating a frame: problems (errors) plus informational counts."""

    n_rows: int
    rows_by_type: dict[str, int]
    n_duplicates: int
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no problem was found."""
        return not self.problems

    def render(self) -> str:
        """Multi-line, human-readable report."""
        by_type = ", ".join(f"{n} {wine_type}" for wine_type, n in self.rows_by_type.items())
        lines = [
            f"rows: {self.n_rows} ({by_type})",
            f"duplicated rows (same measurements and wine type as an earlier row): "
            f"{self.n_duplicates}",
        ]
        if self.ok:
            lines.append("validation: passed")
        else:
            lines.append(f"validation: FAILED with {len(self.problems)} problem(s)")
            lines.extend(f"  - {problem}" for problem in self.problems)
        return "\n".join(lines)


class DataValidationError(Exception):
    """The frame failed validation; ``problems`` lists each failure, ``report`` explains all."""

    def __init__(self, report: ValidationReport) -> None:
        self.report = report
        self.problems = list(report.problems)
        first = self.problems[0] if self.problems else "unknown problem"
        more = f" (and {len(self.problems) - 1} more)" if len(self.problems) > 1 else ""
        super().__init__(f"data validation failed: {first}{more}")


def _examples(index: pd.Index) -> str:
    shown = ", ".join(str(i) for i in index[:MAX_EXAMPLES])
    return f"rows {shown}" + (", ..." if len(index) > MAX_EXAMPLES else "")


def _check_columns(frame: pd.DataFrame) -> list[str]:
    expected = list(FRAME_COLUMNS)
    actual = [str(c) for c in frame.columns]
    missing = [c for c in expected if c not in actual]
    unexpected = [c for c in actual if c not in expected]
    problems: list[str] = []
    if missing:
        problems.append(f"missing columns: {', '.join(missing)}")
    if unexpected:
        problems.append(f"unexpected columns: {', '.join(unexpected)}")
    if not missing and not unexpected and actual != expected:
        problems.append(f"columns out of order: expected {expected}, got {actual}")
    return problems


def _is_numeric(series: pd.Series) -> bool:
    return bool(pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series))


def _check_numeric(frame: pd.DataFrame, columns: list[str]) -> list[str]:
    problems: list[str] = []
    for column in columns:
        series = frame[column]
        if not _is_numeric(series):
            problems.append(f"column {column} must be numeric, got dtype {series.dtype}")
            continue
        missing = series.index[series.isna().to_numpy()]
        if len(missing):
            problems.append(
                f"column {column} has {len(missing)} missing value(s): {_examples(missing)}"
            )
        values = series.to_numpy(dtype=np.float64, na_value=np.nan)
        infinite = series.index[np.isinf(values)]
        if len(infinite):
            problems.append(
                f"column {column} has {len(infinite)} non-finite value(s): {_examples(infinite)}"
            )
    return problems


def _check_physical_limits(frame: pd.DataFrame, columns: list[str]) -> list[str]:
    violations: dict[tuple[str, str], list[int]] = defaultdict(list)
    values = frame.loc[:, columns].to_numpy(dtype=np.float64).tolist()
    for position, measured in zip(frame.index, values, strict=True):
        # Missing and infinite values are reported by the numeric check; not twice.
        row = {k: v for k, v in zip(columns, measured, strict=True) if math.isfinite(v)}
        for name, reason in physical_violations(row):
            violations[(name, reason)].append(position)
    return [
        f"{name} {reason}: {len(rows)} row(s) violate this physical limit: "
        f"{_examples(pd.Index(rows))}"
        for (name, reason), rows in violations.items()
    ]


def _check_quality(frame: pd.DataFrame) -> list[str]:
    quality = frame[TARGET]
    values = quality.to_numpy(dtype=np.float64, na_value=np.nan)
    finite = np.isfinite(values)
    problems: list[str] = []
    fractional = quality.index[finite & (values != np.round(values))]
    if len(fractional):
        problems.append(
            f"{TARGET} labels must be integers: {len(fractional)} are not: {_examples(fractional)}"
        )
    out_of_scale = quality.index[finite & ((values < QUALITY_MIN) | (values > QUALITY_MAX))]
    if len(out_of_scale):
        problems.append(
            f"{TARGET} labels must lie within {QUALITY_MIN}-{QUALITY_MAX}: "
            f"{len(out_of_scale)} do not: {_examples(out_of_scale)}"
        )
    if not problems and not pd.api.types.is_integer_dtype(quality):
        problems.append(f"{TARGET} must have an integer dtype, got {quality.dtype}")
    return problems


def _check_wine_type(frame: pd.DataFrame) -> list[str]:
    wine_type = frame[WINE_TYPE_FIELD]
    bad = wine_type.index[~wine_type.isin(WINE_TYPES).to_numpy()]
    if not len(bad):
        return []
    seen = sorted({str(v) for v in wine_type.loc[bad].head(MAX_EXAMPLES)})
    return [
        f"{WINE_TYPE_FIELD} must be one of {', '.join(WINE_TYPES)}: {len(bad)} row(s) are not "
        f"(e.g. {seen}): {_examples(bad)}"
    ]


def check_frame(frame: pd.DataFrame) -> ValidationReport:
    """Run every check and return the report (never raises for bad data)."""
    problems = _check_columns(frame)
    present = set(map(str, frame.columns))
    numeric = [c for c in (*FEATURE_NAMES, TARGET) if c in present]
    problems += _check_numeric(frame, numeric)
    usable = {c for c in numeric if _is_numeric(frame[c])}
    measured = [c for c in FEATURE_NAMES if c in usable]
    if measured:
        problems += _check_physical_limits(frame, measured)
    if TARGET in usable:
        problems += _check_quality(frame)
    if WINE_TYPE_FIELD in present:
        problems += _check_wine_type(frame)

    identity = [c for c in IDENTITY_COLUMNS if c in present]
    n_duplicates = int(frame.duplicated(subset=identity).sum()) if identity else 0
    if WINE_TYPE_FIELD in present:
        counts = frame[WINE_TYPE_FIELD].value_counts()
        rows_by_type = {str(t): int(counts.get(t, 0)) for t in WINE_TYPES}
    else:
        rows_by_type = {}
    return ValidationReport(
        n_rows=len(frame),
        rows_by_type=rows_by_type,
        n_duplicates=n_duplicates,
        problems=problems,
    )


def validate_frame(frame: pd.DataFrame) -> ValidationReport:
    """Validate the frame; raise DataValidationError carrying every problem when any is found."""
    report = check_frame(frame)
    if not report.ok:
        raise DataValidationError(report)
    return report
