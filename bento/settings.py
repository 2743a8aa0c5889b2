"""Serving settings: the one place the service reads its environment (prefix ``WINEQ_``)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from training.artifacts import MODEL_NAME
from training.envvars import SERVING_PREFIX, invalid_setting, reject_unknown

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
        try:
            return cls.model_validate(given)
        except ValidationError as exc:
            raise invalid_setting(ENV_PREFIX, exc.errors()) from None

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
    admission_target_ms: float = Field(
        100.0,
        ge=0,
        allow_inf_nan=False,
        description=(
            "Latency the worker keeps its admitted prediction requests to: it takes on only "
            "as much work at once as it answers within this time, and refuses the rest at "
            "once with 503 and Retry-After (bento/admission.py). 0 turns the adaptive "
            "limit off (only max_concurrency applies)."
        ),
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

    # CloudWatch metrics and logs (bento/exporter.py, bento/logs.py). Off unless named.
    metrics_namespace: str | None = Field(
        None,
        min_length=1,
        max_length=255,
        pattern=r"^[A-Za-z0-9.\-_/#:]+$",
        description=(
            "CloudWatch namespace the in-process exporter writes to; unset turns the "
            "exporter off. Terraform sets it to its metrics_namespace variable."
        ),
    )
    metrics_interval_s: float = Field(
        60.0,
        gt=0,
        allow_inf_nan=False,
        description="Seconds between two PutMetricData batches of a worker.",
    )
    metrics_by_class: bool = Field(
        False,
        description=(
            "Also send predictions by quality class (7 more metric/dimension "
            "combinations, each billed by CloudWatch)."
        ),
    )
    metrics_by_feature: bool = Field(
        False,
        description=(
            "Also send out-of-distribution values by feature (11 more metric/dimension "
            "combinations, each billed by CloudWatch)."
        ),
    )
    metrics_buffer_points: int = Field(
        2_000,
        ge=1,
        description=(
            "Most data points a worker keeps while CloudWatch is unreachable; beyond it "
            "the oldest are dropped and counted (wineq_exporter_dropped_points_total)."
        ),
    )
    metrics_flush_timeout_s: float = Field(
        2.0,
        gt=0,
        allow_inf_nan=False,
        le=30,
        description=(
            "Longest the final flush of metrics (and of queued log events) may take at "
            "shutdown, after the drain period; also each CloudWatch call's timeout."
        ),
    )
    log_group: str | None = Field(
        None,
        min_length=1,
        max_length=512,
        description=(
            "CloudWatch Logs group the service ships its JSON log lines to (one stream per "
            "task); unset writes them to stdout only."
        ),
    )
    log_every_request: bool = Field(
        False,
        description=(
            "A log line for every request; by default only refused, failed and slow "
            "requests get one (the metrics count the rest)."
        ),
    )
    log_slow_ms: float = Field(
        1_000.0,
        gt=0,
        allow_inf_nan=False,
        description="A successful request slower than this many milliseconds gets a log line.",
    )

    @field_validator("metrics_namespace")
    @classmethod
    def _not_an_aws_namespace(cls, value: str | None) -> str | None:
        """CloudWatch refuses custom metrics under the AWS/ prefix."""
        if value is not None and value.startswith("AWS/"):
            raise ValueError("AWS/ namespaces are reserved for AWS services")
        return value
