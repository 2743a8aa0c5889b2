"""The promotion gate: is the challenger at least as good as the champion, scored alike?

Both are scored on the same data under the leakage-free protocol (b): the same grouped
folds of the challenger's snapshot, each model's recipe (its recorded hyper-parameters)
fitted on a fold's training rows and scored on the rows held out.  The champion's fitted
forest is not scored directly: it was trained on rows of this data, so it would partly
recall them and look better than it is on wines it has not seen.

The gate promotes when, for every wine type, the challenger's accuracy is not below the
champion's by more than ``threshold``.  It keeps the champion when the challenger repeats
the champion's data and recipe (nothing to gain, a new image for nothing).  A forced
promotion promotes regardless and says so in the decision's reason and the log.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final, Literal

from pydantic import BaseModel, ConfigDict

from training.features import WINE_TYPES
from training.settings import TrainingSettings

if TYPE_CHECKING:
    import pandas as pd

logger = logging.getLogger(__name__)

METRIC: Final = "accuracy"
PROTOCOL: Final = "grouped"
# Recipe fields a model's metadata records (training.train.hyperparameters).
RECIPE_FIELDS: Final = (
    "n_estimators",
    "max_depth",
    "min_samples_leaf",
    "max_features",
    "class_weight",
    "random_state",
)
PROMOTED: Final = "promoted"
KEPT_CHAMPION: Final = "kept_champion"
Outcome = Literal["promoted", "kept_champion"]


class GateError(Exception):
    """The gate cannot compare: e.g. the champion records no recipe."""


class Comparison(BaseModel):
    """Leakage-free accuracy per wine type of both recipes on the same folds."""

    model_config = ConfigDict(frozen=True)

    protocol: str = PROTOCOL
    folds: int
    data_sha256: str
    challenger: dict[str, float]
    champion: dict[str, float] | None
    rows: dict[str, int]
    identical: bool = False


class Decision(BaseModel):
    """What the gate decided for one data date, and why (also the record kept in S3)."""

    model_config = ConfigDict(frozen=True)

    data_date: str
    outcome: Outcome
    forced: bool
    reason: str
    threshold: float
    challenger_tag: str
    challenger_version: str
    champion_version: str | None
    comparison: Comparison | None
    decided_at: str

    @property
    def promoted(self) -> bool:
        """True when the challenger becomes the champion."""
        return self.outcome == PROMOTED


def recipe_of(hyperparameters: Mapping[str, Any]) -> dict[str, Any]:
    """The recipe fields of recorded hyper-parameters; None where metadata says 'None'."""
    missing = [name for name in RECIPE_FIELDS if name not in hyperparameters]
    if missing:
        raise GateError(f"the model's metadata records no {', '.join(missing)}")
    return {
        name: None if hyperparameters[name] == "None" else hyperparameters[name]
        for name in RECIPE_FIELDS
    }


def recipe_settings(base: TrainingSettings, hyperparameters: Mapping[str, Any]) -> TrainingSettings:
    """``base`` (folds, seed of the splits, jobs) with a model's recipe."""
    recipe = recipe_of(hyperparameters)
    if recipe["max_features"] is None:
        recipe["max_features"] = "none"  # the settings' spelling of sklearn's None
    return base.model_copy(update=recipe)


def compare(
    frame: pd.DataFrame,
    data_sha256: str,
    base: TrainingSettings,
    challenger: Mapping[str, Any],
    champion: Mapping[str, Any] | None,
) -> Comparison:
    """Score both recipes (hyper-parameters) on the same grouped folds of ``frame``."""
    from training.evaluate import fold_splits, out_of_fold_predictions, per_type_metrics

    splits = fold_splits(frame, PROTOCOL, base)

    def accuracy(hyperparameters: Mapping[str, Any]) -> dict[str, float]:
        settings = recipe_settings(base, hyperparameters)
        predictions = out_of_fold_predictions(frame, splits, settings)
        return {t: m.accuracy for t, m in per_type_metrics(frame, predictions).items()}

    counts = frame["wine_type"].value_counts()
    rows = {t: int(counts.get(t, 0)) for t in WINE_TYPES}
    logger.info("scoring the challenger's recipe on %d grouped folds", len(splits))
    challenger_accuracy = accuracy(challenger)
    champion_accuracy = None
    if champion is not None:
        logger.info("scoring the champion's recipe on the same folds")
        champion_accuracy = accuracy(champion)
    return Comparison(
        folds=len(splits),
        data_sha256=data_sha256,
        challenger=challenger_accuracy,
        champion=champion_accuracy,
        rows=rows,
    )


def identical_comparison(data_sha256: str, rows: Mapping[str, int]) -> Comparison:
    """The comparison of a challenger that repeats the champion's data and recipe."""
    return Comparison(
        folds=0, data_sha256=data_sha256, challenger={}, champion=None, rows=dict(rows),
        identical=True,
    )  # fmt: skip


def verdict(comparison: Comparison | None, threshold: float) -> tuple[Outcome, str]:
    """The gate's own outcome and reason, before any forcing."""
    if comparison is None or (comparison.champion is None and not comparison.identical):
        return PROMOTED, "no champion yet"
    if comparison.identical:
        return KEPT_CHAMPION, "the challenger repeats the champion's data and hyper-parameters"
    champion = comparison.champion or {}
    worse = {
        t: champion[t] - comparison.challenger[t]
        for t in champion
        if champion[t] - comparison.challenger[t] > threshold
    }
    if worse:
        detail = ", ".join(
            f"{t} {comparison.challenger[t]:.3f} vs {champion[t]:.3f}" for t in sorted(worse)
        )
        return KEPT_CHAMPION, (
            f"the challenger's {METRIC} is below the champion's by more than {threshold:g}: "
            f"{detail}"
        )
    detail = ", ".join(
        f"{t} {comparison.challenger[t]:.3f} vs {champion[t]:.3f}" for t in sorted(champion)
    )
    return PROMOTED, f"not worse than the champion by more than {threshold:g} ({METRIC}: {detail})"


def decide(
    *,
    data_date: str,
    challenger_tag: str,
    champion_version: str | None,
    comparison: Comparison | None,
    threshold: float,
    force: bool,
    decided_at: str,
) -> Decision:
    """The gate's decision; a forced promotion is logged as such and says so in its reason."""
    if threshold < 0:
        raise GateError(f"threshold must not be negative, got {threshold}")
    outcome, reason = verdict(comparison, threshold)
    if force:
        gate_alone = "promote too" if outcome == PROMOTED else "keep the champion"
        reason = (
            f"FORCED promotion (force_promotion is set); the gate alone would {gate_alone}: "
            f"{reason}"
        )
        outcome = PROMOTED
        logger.warning("%s: %s", challenger_tag, reason)
    decision = Decision(
        data_date=data_date,
        outcome=outcome,
        forced=force,
        reason=reason,
        threshold=threshold,
        challenger_tag=challenger_tag,
        challenger_version=challenger_tag.rpartition(":")[2],
        champion_version=champion_version,
        comparison=comparison,
        decided_at=decided_at,
    )
    logger.info("gate: %s %s (%s)", decision.outcome, challenger_tag, reason)
    return decision


def render_markdown(decision: Decision | None, model_tag: str | None) -> list[str]:
    """The model card's section on the gate decision that promoted the bundled model."""
    lines = ["## Promotion gate", ""]
    if decision is None:
        return [
            *lines,
            f"No gate decision is recorded for the bundled model (`{model_tag or 'none'}`): it "
            "was trained by `make train` rather than promoted by the `wine_retrain_rebuild` DAG, "
            "or `WINEQ_TRAIN_S3_BUCKET` names no mirror holding its decision.",
        ]
    comparison = decision.comparison
    lines += [
        f"`{decision.challenger_tag}` was promoted by the `wine_retrain_rebuild` DAG on "
        f"{decision.decided_at} (data of {decision.data_date}), replacing champion "
        f"`{decision.champion_version or 'none'}`"
        + (" **by a forced promotion**" if decision.forced else "")
        + f": {decision.reason}.",
    ]
    if comparison is not None and comparison.champion is not None:
        lines += [
            "",
            f"Both recipes were fitted and scored on the same {comparison.folds} grouped folds "
            f"of that data (protocol (b)); the gate accepts an accuracy drop of at most "
            f"{decision.threshold:g} (a share of rows) per wine type.",
            "",
            "| wine type | rows | challenger accuracy | champion accuracy | difference |",
            "|---|---:|---:|---:|---:|",
            *(
                f"| {t} | {comparison.rows.get(t, 0)} | {100 * comparison.challenger[t]:.1f} % "
                f"| {100 * comparison.champion[t]:.1f} % "
                f"| {100 * (comparison.challenger[t] - comparison.champion[t]):+.1f} points |"
                for t in sorted(comparison.champion)
            ),
        ]
    return lines
