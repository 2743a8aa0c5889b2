"""Benchmark variant (d): an API service in front of a batchable runner service.

The API process validates the body with the project's schemas and calls the runner
through ``bentoml.depends``; the runner process holds the model and merges concurrent
calls with adaptive batching.  Two processes in one 0.25 vCPU task.  Never deployed.
"""

from __future__ import annotations

from typing import Any

import bentoml

from benchmarks.variants.common import (
    SETTINGS,
    ModelService,
    service_options,
    validated_row,
)
from bento.guard import Row


@bentoml.service(name="wine_quality_runner", **service_options())
class WineQualityRunner(ModelService):
    """Holds the model; scores adaptively batched lists of encoded rows."""

    @bentoml.api(
        batchable=True,
        max_batch_size=SETTINGS.batch_max_size,
        max_latency_ms=SETTINGS.batch_max_latency_ms,
    )
    async def score(self, vectors: list[list[float]]) -> list[dict[str, Any]]:
        """One model call for every row merged into this batch."""
        return await self.predictor.score([Row(tuple(v), None) for v in vectors])


@bentoml.service(name="wine_quality_api", **service_options())
class WineQualityApi:
    """Validates requests and forwards each row to the runner service."""

    runner = bentoml.depends(WineQualityRunner)

    @bentoml.api(route="/predict")
    async def predict(
        self, features: dict[str, Any], request_id: str | None = None
    ) -> dict[str, Any]:
        """Predict the quality of one wine through the runner process."""
        row = validated_row(features, request_id)
        [answer] = await self.runner.to_async.score([list(row.vector)])
        answer["request_id"] = row.request_id
        return dict(answer)
