"""Serving settings: the one place the service reads its environment (prefix ``WINEQ_``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from training.artifacts import MODEL_NAME

ENV_PREFIX = "WINEQ_"


class ServiceSettings(BaseSettings):
    """Runtime configuration of the wine-quality service.

    Terraform's container environment uses exactly these names (prefixed with
    ``WINEQ_``); ``tests/infra`` proves it by reading this class.
    """

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)

    model_tag: str = Field(
        f"{MODEL_NAME}:latest",
        description="BentoML model store tag to serve; the bento pins the version it bundles.",
    )
    engine: Literal["onnx", "sklearn"] = Field(
        "onnx",
        description="Inference runtime: ONNX Runtime (fast) or the original sklearn forest.",
    )
    max_batch_rows: int = Field(
        256,
        ge=1,
        le=10_000,
        description="Most rows one /predict/batch request may carry (413 above).",
    )
    max_body_bytes: int = Field(
        262_144, ge=1_024, description="Largest accepted request body in bytes (413 above)."
    )
    max_json_depth: int = Field(
        8, ge=3, description="Deepest JSON nesting accepted (400 above); the contract needs 3."
    )
    batch_max_size: int = Field(
        512, ge=2, description="Most rows BentoML's adaptive batching merges into one model call."
    )
    batch_max_latency_ms: int = Field(
        2_000,
        ge=10,
        description="Latency budget of the adaptive batcher before it sheds load (503).",
    )
    max_concurrency: int = Field(
        256,
        ge=1,
        description="Prediction requests in progress per worker before new ones get 503.",
    )
    drain_seconds: float = Field(
        5.0,
        ge=0,
        description="After SIGTERM: seconds /readyz answers 503 while requests are still served.",
    )
    model_s3_uri: str | None = Field(
        None,
        description=(
            "Optional s3://bucket/prefix/wine_quality/<version>/ to pull at start-up instead of "
            "serving the bundled model; checked against its manifest's sha256."
        ),
    )
    model_cache_dir: str = Field(
        "/tmp/wineq-models",  # noqa: S108 - the container's only writable place besides $BENTOML_HOME
        description="Where a model pulled from S3 at start-up is unpacked.",
    )


def get_settings() -> ServiceSettings:
    """Read the settings from the environment (cheap; call where needed, not at import)."""
    return ServiceSettings()
