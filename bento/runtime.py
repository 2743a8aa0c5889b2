"""The predictor behind the batchable APIs: model start-up, warm-up, scoring, metrics."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from bento.guard import Row
from bento.inference import LoadedModel, load_model
from bento.metrics import ServingMetrics
from bento.settings import ServiceSettings
from training.features import (
    EXAMPLE_FEATURES,
    FEATURE_NAMES,
    MODEL_COLUMNS,
    encode_row,
)

logger = logging.getLogger("bentoml.wineq")


class Predictor:
    """Scores encoded rows with a verified model and records what it predicted."""

    def __init__(self, model: LoadedModel, metrics: ServingMetrics) -> None:
        self.model = model
        self.metrics = metrics
        lows = [model.feature_ranges.get(n, (-np.inf, np.inf))[0] for n in FEATURE_NAMES]
        highs = [model.feature_ranges.get(n, (-np.inf, np.inf))[1] for n in FEATURE_NAMES]
        self._lows = np.asarray(lows, dtype=np.float32)
        self._highs = np.asarray(highs, dtype=np.float32)
        self._labels = [str(c) for c in model.classes]
        self._classes = np.asarray(model.classes)

    @classmethod
    def start(cls, settings: ServiceSettings, bundled: Any, metrics: ServingMetrics) -> Predictor:
        """Load (bundled, or pulled from S3), verify and warm up a model; count into ``metrics``."""
        import bentoml

        if settings.model_s3_uri:
            from training.mirror import pull_from_uri

            logger.info("Pulling the model from %s", settings.model_s3_uri)
            tag = pull_from_uri(settings.model_s3_uri, work_dir=settings.model_cache_dir)
            stored = bentoml.models.get(tag)
        else:
            stored = bundled
        predictor = cls(load_model(stored, settings.engine), metrics)
        predictor.warm_up()
        metrics.model_info(predictor.model.version, predictor.model.engine_name)
        return predictor

    def warm_up(self) -> None:
        """One real prediction so the first client does not pay for lazy initialisation."""
        example = encode_row(EXAMPLE_FEATURES)
        probabilities = self.model.engine.predict_proba(np.asarray([example], dtype=np.float32))
        if probabilities.shape != (1, len(self._labels)):
            raise RuntimeError(f"warm-up returned shape {probabilities.shape}")

    async def score(self, rows: list[Row]) -> list[dict[str, Any]]:
        """One model call for the whole (adaptively batched) list of rows."""
        matrix = np.asarray([row.vector for row in rows], dtype=np.float32)
        if matrix.shape[1:] != (len(MODEL_COLUMNS),):
            raise ValueError(f"expected {len(MODEL_COLUMNS)} columns, got {matrix.shape}")
        probabilities = self.model.engine.predict_proba(matrix)
        best = probabilities.argmax(axis=1)
        predicted = self._classes[best]
        measurements = matrix[:, : len(FEATURE_NAMES)]
        outside = (measurements < self._lows) | (measurements > self._highs)
        # Python values once per batch (same floats as float(np.float32)), not numpy
        # scalars per row and class.
        rows_probabilities: list[list[float]] = probabilities.tolist()
        best_columns: list[int] = best.tolist()
        flagged: list[list[str]] = [[] for _ in rows]
        outside_rows, outside_columns = np.nonzero(outside)
        for i, j in zip(outside_rows.tolist(), outside_columns.tolist(), strict=True):
            flagged[i].append(FEATURE_NAMES[j])
        version = self.model.version
        answers: list[dict[str, Any]] = []
        for row, probs, column, quality, row_flagged in zip(
            rows, rows_probabilities, best_columns, predicted.tolist(), flagged, strict=True
        ):
            answers.append(
                {
                    "prediction": quality,
                    "confidence": round(probs[column], 6),
                    "probabilities": {
                        label: round(p, 6) for label, p in zip(self._labels, probs, strict=True)
                    },
                    "model_version": version,
                    "out_of_distribution": row_flagged,
                    "request_id": row.request_id,
                }
            )
        self.metrics.model_call(predicted, outside)
        return answers
