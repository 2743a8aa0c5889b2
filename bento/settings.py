"""Serving settings: the one place the service reads its environment (prefix ``WINEQ_``)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from training.artifacts import MODEL_NAME
from training.envvars import SERVING_PREFIX, reject_unknown

ENV_PREFIX = SERVING_PREFIX


class ServiceSettings(BaseSettings):
    """Runtime configuration of the wine-quality service.

    Terraform's container environment uses exactly these names (prefixed with
    ``WINEQ_``); ``tests/infra`` proves it by reading this class.
    """

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", frozen=True)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ServiceSettings:
        """The settings from the environment (default: this process's), read once at start-up.

        A ``WINEQ_*`` variable that names no setting stops the start, naming the closest
        valid one: a misspelt limit must not silently leave the default in force.
        """
        env = os.environ if environ is None else environ
        reject_unknown(ENV_PREFIX, cls.model_fields, env)
        given = {
            name: env[f"{ENV_PREFIX}{name.upper()}"]
            for name in cls.model_fields
            if f"{ENV_PREFIX}{name.upper()}" in env
        }
        return cls.model_validate(given)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Values come only from :meth:`from_env` (or the caller): one read, one check."""
        return (init_settings,)

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
    keep_alive_s: int = Field(
        75,
        ge=1,
        description=(
            "Seconds an idle HTTP connection is kept open. Longer than the load balancer's "
            "idle timeout (Terraform derives that from this value), so the balancer, not "
            "the service, closes idle connections and never reuses one the service closed."
        ),
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
