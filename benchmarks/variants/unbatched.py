"""Benchmark variant (c): one service, no adaptive batching, one model call per request.

Same request body, same validation (the project's ``bento.schemas``), same predictor
and engine as ``bento.service``; only the batching is gone.  Never deployed.
"""

from __future__ import annotations

from typing import Any

import bentoml

from benchmarks.variants.common import (
    ModelService,
    service_options,
    validated_row,
)


@bentoml.service(name="wine_quality_unbatched", **service_options())
class UnbatchedService(ModelService):
    """Validates each request and scores it alone, on the event loop."""

    @bentoml.api(route="/predict")
    async def predict(
        self, features: dict[str, Any], request_id: str | None = None
    ) -> dict[str, Any]:
        """Predict the quality of one wine with its own model call."""
        row = validated_row(features, request_id)
        [answer] = await self.predictor.score([row])
        return answer
