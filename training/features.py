"""The feature contract: names, order, units and limits of the 11 wine measurements.

This module is the single source of truth for the feature list.  Training, serving,
load tests and DAGs import it; nothing else spells the feature names out.  It is
pure Python (no numpy, no pandas) so the serving image can import it cheaply.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Literal

WineType = Literal["red", "white"]
WINE_TYPES: Final[tuple[WineType, ...]] = ("red", "white")
DEFAULT_WINE_TYPE: Final[WineType] = "red"
WINE_TYPE_FIELD: Final = "wine_type"
TARGET: Final = "quality"


@dataclass(frozen=True)
class Feature:
    """One physico-chemical measurement with its unit and physical (hard) limits."""

    name: str
    csv_header: str
    unit: str
    description: str
    hard_min: float
    hard_max: float
    example: float


# Hard limits are physical, not statistical: a value outside them cannot describe a
# liquid (negative masses, pH outside 0-14, more solute than dissolves in water), so
# the service rejects it.  Statistical (soft) limits come from the training data and
# live in the model's metadata instead.
FEATURES: Final[tuple[Feature, ...]] = (
    Feature(
        "fixed_acidity",
        "fixed acidity",
        "g(tartaric acid)/dm3",
        "Non-volatile acids, mostly tartaric.",
        0.0,
        100.0,
        7.4,
    ),
    Feature(
        "volatile_acidity",
        "volatile acidity",
        "g(acetic acid)/dm3",
        "Acetic acid; too much tastes of vinegar.",
        0.0,
        100.0,
        0.7,
    ),
    Feature("citric_acid", "citric acid", "g/dm3", "Citric acid, adds freshness.", 0.0, 100.0, 0.0),
    Feature(
        "residual_sugar",
        "residual sugar",
        "g/dm3",
        "Sugar left after fermentation.",
        0.0,
        1000.0,
        1.9,
    ),
    # Sodium chloride dissolves up to about 360 g per litre of water.
    Feature("chlorides", "chlorides", "g(sodium chloride)/dm3", "Salt content.", 0.0, 360.0, 0.076),
    # Sulfur dioxide dissolves up to roughly 100 g per litre of water at 20 degrees C.
    Feature(
        "free_sulfur_dioxide",
        "free sulfur dioxide",
        "mg/dm3",
        "Free SO2, the part that protects the wine.",
        0.0,
        100_000.0,
        11.0,
    ),
    Feature(
        "total_sulfur_dioxide",
        "total sulfur dioxide",
        "mg/dm3",
        "Free plus bound SO2.",
        0.0,
        100_000.0,
        34.0,
    ),
    # Between pure ethanol (0.789) and a saturated sugar syrup (about 1.4).
    Feature("density", "density", "g/cm3", "Density of the wine.", 0.75, 1.5, 0.9978),
    Feature("ph", "pH", "pH", "Acidity on the pH scale.", 0.0, 14.0, 3.51),
    # Potassium sulphate dissolves up to about 120 g per litre of water.
    Feature(
        "sulphates",
        "sulphates",
        "g(potassium sulphate)/dm3",
        "Potassium sulphate, an additive.",
        0.0,
        120.0,
        0.56,
    ),
    Feature("alcohol", "alcohol", "% vol", "Alcohol by volume.", 0.0, 100.0, 9.4),
)

FEATURE_NAMES: Final[tuple[str, ...]] = tuple(f.name for f in FEATURES)
CSV_HEADER_TO_NAME: Final[dict[str, str]] = {f.csv_header: f.name for f in FEATURES}

# The model sees the 11 measurements followed by a 0/1 encoding of the wine type.
IS_WHITE_COLUMN: Final = "is_white"
MODEL_COLUMNS: Final[tuple[str, ...]] = (*FEATURE_NAMES, IS_WHITE_COLUMN)
# One wine as a client describes it: the 11 measurements followed by its type.
REQUEST_FIELDS: Final[tuple[str, ...]] = (*FEATURE_NAMES, WINE_TYPE_FIELD)

EXAMPLE_FEATURES: Final[dict[str, float | str]] = {
    **{f.name: f.example for f in FEATURES},
    WINE_TYPE_FIELD: DEFAULT_WINE_TYPE,
}


def physical_violations(row: Mapping[str, float]) -> list[tuple[str, str]]:
    """Return (field, reason) for every hard-limit violation in one row of measurements."""
    problems: list[tuple[str, str]] = []
    for feature in FEATURES:
        value = row.get(feature.name)
        if value is None:
            continue
        if not math.isfinite(value):
            problems.append((feature.name, "must be a finite number"))
        elif not feature.hard_min <= value <= feature.hard_max:
            problems.append(
                (
                    feature.name,
                    f"must be between {feature.hard_min:g} and {feature.hard_max:g} {feature.unit}",
                )
            )
    problems.extend(cross_field_violations(row))
    return problems


def cross_field_violations(row: Mapping[str, float]) -> list[tuple[str, str]]:
    """Return (field, reason) for rules that tie two measurements together."""
    free = row.get("free_sulfur_dioxide")
    total = row.get("total_sulfur_dioxide")
    if free is not None and total is not None and free > total:
        return [("free_sulfur_dioxide", "must not exceed total_sulfur_dioxide")]
    return []


def encode_row(row: Mapping[str, float | str]) -> list[float]:
    """Encode one row (its measurements and its own wine type) in MODEL_COLUMNS order."""
    is_white = 1.0 if row[WINE_TYPE_FIELD] == "white" else 0.0
    return [float(row[name]) for name in FEATURE_NAMES] + [is_white]
