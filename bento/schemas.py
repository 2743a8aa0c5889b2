"""Request and response schemas of the HTTP API, built from the feature contract."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, create_model, model_validator
from pydantic_core import PydanticCustomError

from training.features import (
    DEFAULT_WINE_TYPE,
    EXAMPLE_FEATURES,
    FEATURES,
    WINE_TYPE_FIELD,
    WineType,
    cross_field_violations,
)

REQUEST_ID_MAX_LENGTH = 128
_EXAMPLE: dict[str, Any] = dict(EXAMPLE_FEATURES)
CROSS_FIELD_ERROR = "cross_field"

# Strict: "7.4", true and null are not numbers; NaN and Infinity are not measurements.
_STRICT = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, frozen=True)


class _FeaturesBase(BaseModel):
    model_config = _STRICT

    @model_validator(mode="after")
    def _free_so2_within_total(self) -> _FeaturesBase:
        for field, reason in cross_field_violations(self.__dict__):
            # The field travels in the context so the error names it, not the whole object.
            raise PydanticCustomError(
                CROSS_FIELD_ERROR, "{reason}", {"field": field, "reason": reason}
            )
        return self


def _feature_fields() -> dict[str, Any]:
    fields: dict[str, Any] = {
        feature.name: (
            float,
            Field(
                ge=feature.hard_min,
                le=feature.hard_max,
                description=f"{feature.description} Unit: {feature.unit}.",
                examples=[feature.example],
            ),
        )
        for feature in FEATURES
    }
    fields[WINE_TYPE_FIELD] = (
        WineType,
        Field(DEFAULT_WINE_TYPE, description="Which of the two UCI wines this sample is."),
    )
    return fields


# The model class is generated from the contract so the 11 names are never retyped.
WineFeatures: type[BaseModel] = create_model(
    "WineFeatures",
    __base__=_FeaturesBase,
    __doc__="The 11 physico-chemical measurements of one wine, plus its type.",
    **_feature_fields(),
)


class PredictRequest(BaseModel):
    """One wine to score: the request shape existing clients already send."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={"example": {"features": _EXAMPLE, "request_id": "demo-1"}},
    )

    features: WineFeatures
    request_id: str | None = Field(
        None, max_length=REQUEST_ID_MAX_LENGTH, description="Echoed back in the response."
    )


class BatchPredictRequest(BaseModel):
    """Several wines in one request; answered in the same order."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={
            "example": {
                "features_list": [_EXAMPLE, {**_EXAMPLE, "wine_type": "white"}],
                "request_id": "demo-batch-1",
            }
        },
    )

    features_list: list[WineFeatures] = Field(
        min_length=1, description="The wines to score (at most WINEQ_MAX_BATCH_ROWS)."
    )
    request_id: str | None = Field(
        None, max_length=REQUEST_ID_MAX_LENGTH, description="Echoed back in every response."
    )


class Prediction(BaseModel):
    """The model's answer for one wine."""

    prediction: int = Field(description="Predicted quality score (3-9).")
    confidence: float = Field(description="Probability of the predicted class.")
    probabilities: dict[str, float] = Field(description="Probability of every quality class.")
    model_version: str = Field(description="Version of the model store entry that answered.")
    out_of_distribution: list[str] = Field(
        description="Features outside the range seen in training (still predicted)."
    )
    request_id: str | None = Field(None, description="The request's request_id, if any.")


class FieldError(BaseModel):
    """Why one part of a request was refused."""

    field: str = Field(description="Dotted path of the offending field, or body/service.")
    reason: str = Field(description="What is wrong with it, in words.")


class ErrorResponse(BaseModel):
    """The one body of every refusal and failure."""

    error: str = Field(
        description="Machine-readable code, e.g. validation_error, payload_too_large, "
        "unsupported_media_type, malformed_json, overloaded, not_ready, internal_error."
    )
    message: str = Field(description="One sentence for a human.")
    detail: list[FieldError] = Field(description="Per-field reasons (may be empty).")


class HealthResponse(BaseModel):
    """GET /health: the earlier FastAPI service's health contract, kept for its monitors."""

    status: str = Field(
        description="healthy (model loaded and verified), degraded (model loading, or "
        "shutting down), unhealthy (the model failed to load).",
        json_schema_extra={"enum": ["healthy", "degraded", "unhealthy"]},
    )
    timestamp: int = Field(description="Unix time in seconds when the answer was made.")
    checks: dict[str, bool] = Field(
        description="model_loaded, model_verified (checksum and contract), draining."
    )
    version: str = Field(description="Version of the model this worker serves.")
