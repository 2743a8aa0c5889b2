"""Training settings, read from ``WINEQ_TRAIN_*`` environment variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from training.artifacts import MODEL_NAME
from training.envvars import TRAINING_PREFIX

UCI_BASE_URL = "https://archive.ics.uci.edu/ml/machine-learning-databases/wine-quality"


class TrainingSettings(BaseSettings):
    """Where the data comes from, how the forest is trained and where models are mirrored."""

    model_config = SettingsConfigDict(
        env_prefix=TRAINING_PREFIX, extra="ignore", frozen=True, env_ignore_empty=True
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
    model_name: str = Field(MODEL_NAME, description="BentoML model store name.")
    # Forest size is serving memory and start-up CPU: ONNX Runtime holds about 0.6 KB per
    # node of the compact export, so 300 fully grown trees would leave a 512 MB task ~75 MB
    # for everything else.  60 trees with leaves of at least 3 rows score within a point of
    # them under the leakage-free protocol with an eighth of the nodes (docs/benchmarks.md,
    # "Forest size", `make bench-forest`).
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
