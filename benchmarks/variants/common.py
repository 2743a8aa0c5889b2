"""What the benchmark variants share: the service options, the model-holding service
body, and request validation with the project's schemas."""

from __future__ import annotations

from typing import Any

import bentoml
from bentoml.exceptions import InvalidArgument
from pydantic import ValidationError

from bento.guard import Row, to_row
from bento.schemas import PredictRequest
from bento.settings import get_settings
from bento.state import STATE

SETTINGS = get_settings()


def service_options() -> dict[str, Any]:
    """What every variant's @bentoml.service takes besides its name (fresh dicts each)."""
    return {
        "workers": 1,
        "traffic": {"timeout": 30, "max_concurrency": SETTINGS.max_concurrency},
        "metrics": {"enabled": True},
    }


class ModelService:
    """Loads and warms the bundled model like bento.service; ready once it can predict."""

    bundled_model = bentoml.models.BentoModel(SETTINGS.model_tag)

    def __init__(self) -> None:
        from bento.runtime import Predictor

        self.predictor = Predictor.start(SETTINGS, self.bundled_model)

    def __is_ready__(self) -> bool:
        """Ready once the predictor is loaded and warmed up."""
        return STATE.serving


def validated_row(features: dict[str, Any], request_id: str | None) -> Row:
    """Validate one /predict body with bento.schemas and encode it for the model (BentoML's
    400 when it is invalid)."""
    try:
        request = PredictRequest.model_validate({"features": features, "request_id": request_id})
    except ValidationError as exc:
        raise InvalidArgument(f"{exc.error_count()} invalid field(s)") from None
    return to_row(request.features, request.request_id)
