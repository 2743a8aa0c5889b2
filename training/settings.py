"""Training settings, read from ``WINEQ_TRAIN_*`` environment variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from training.envvars import (
    TRAINING_PREFIX,
    InvalidSettingError,
    invalid_setting,
    reject_unknown,
)

__all__ = ["InvalidSettingError", "TrainingSettings"]

UCI_BASE_URL = "https://archive.ics.uci.edu/ml/machine-learning-databases/wine-quality"


class TrainingSettings(BaseSettings):
    """Where the data comes from, how the forest is trained and where models are mirrored.

    Commands read it with :meth:`from_env`; keyword construction (tests, benchmarks)
    still fills the other fields from the environment but refuses unknown keywords.
    """

    # "forbid" catches a misspelt keyword; a misspelt variable is from_env's to catch,
    # since pydantic-settings reads only the variables it knows.
    model_config = SettingsConfigDict(
        env_prefix=TRAINING_PREFIX, extra="forbid", frozen=True, env_ignore_empty=True
    )

    data_dir: Path | None = Field(
        None,
        description="Read the UCI CSVs from this folder instead of downloading them "
        "(CI points it at ../shared/data/wine-quality).",
    )
    data_url: str = Field(UCI_BASE_URL, description="Base URL the UCI CSVs are downloaded from.")
    cache_dir: Path = Field(
        Path.home() / ".cache" / "wineq", description="Where downloaded CSVs are cached."
    )
    # Forest size is serving memory and start-up CPU: the default is the smallest forest
    # that scores like a large one (docs/benchmarks.md, the retired forest-size experiment).
    n_estimators: int = Field(60, ge=1, description="Trees in the forest.")
    max_depth: int | None = Field(None, ge=1, description="Deepest tree; None grows fully.")
    min_samples_leaf: int = Field(3, ge=1, description="Fewest samples in a leaf.")
    max_features: str | float = Field("sqrt", description="Features tried at each split.")
    class_weight: str | None = Field(None, description="sklearn class_weight, e.g. 'balanced'.")
    random_state: int = Field(42, description="Seed: the same data and seed give the same model.")
    cv_folds: int = Field(5, ge=2, description="Folds for cross-validated evaluation.")
    n_jobs: int = Field(-1, description="Parallel jobs for fitting (-1: all cores).")
    s3_bucket: str | None = Field(None, description="Bucket of the S3 model mirror.")
    s3_prefix: str = Field("models", description="Key prefix of the S3 model mirror.")

    @classmethod
    def from_env(cls) -> TrainingSettings:
        """The settings of one command; an unknown or invalid ``WINEQ_TRAIN_*`` stops it."""
        reject_unknown(TRAINING_PREFIX, cls.model_fields)
        try:
            return cls()
        except ValidationError as exc:
            raise invalid_setting(TRAINING_PREFIX, exc.errors()) from None
