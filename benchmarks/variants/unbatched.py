"""Benchmark variant (c): one service, no adaptive batching, one model call per request.

Same request body, same validation (the project's ``bento.schemas``), same predictor
and engine as ``bento.service``; only the batching is gone.  Never deployed.
"""

from __future__ import annotations

from typing import Any

import bentoml
from bentoml.exceptions import InvalidArgument

from benchmarks.variants.common import InvalidRequestError, validated_row
from bento.settings import get_settings
from bento.state import STATE

SETTINGS = get_settings()


@bentoml.service(
    name="wine_quality_unbatched",
    workers=1,
    traffic={"timeout": 30, "max_concurrency": SETTINGS.max_concurrency},
    metrics={"enabled": True},
)
class UnbatchedService:
    """Validates each request and scores it alone, on the event loop."""

    bundled_model = bentoml.models.BentoModel(SETTINGS.model_tag)

    def __init__(self) -> None:
        from bento.runtime import Predictor

        self.predictor = Predictor.start(get_settings(), self.bundled_model)

    def __is_ready__(self) -> bool:
        """Ready once the predictor is loaded and warmed up."""
        return STATE.serving

    @bentoml.api(route="/predict")
    async def predict(
        self, features: dict[str, Any], request_id: str | None = None
    ) -> dict[str, Any]:
        """Predict the quality of one wine with its own model call."""
        try:
            row = validated_row(features, request_id)
        except InvalidRequestError as exc:
            raise InvalidArgument(str(exc)) from None
        [answer] = await self.predictor.score([row])
        return answer
