"""The project's Prometheus metrics, exposed on /metrics next to BentoML's own."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from training.features import FEATURE_NAMES

PREDICTIONS = "wineq_predictions"
OUT_OF_DISTRIBUTION = "wineq_out_of_distribution"
MODEL_INFO = "wineq_model_info"


class ServiceMetrics:
    """Counters of predictions by class and out-of-distribution values by feature."""

    def __init__(self) -> None:
        import bentoml

        self._predictions: Any = bentoml.metrics.Counter(
            name=PREDICTIONS,
            documentation="Predictions served, by predicted quality class.",
            labelnames=["quality"],
        )
        self._ood: Any = bentoml.metrics.Counter(
            name=OUT_OF_DISTRIBUTION,
            documentation="Feature values outside the training data's range, by feature.",
            labelnames=["feature"],
        )
        self._info: Any = bentoml.metrics.Gauge(
            name=MODEL_INFO,
            documentation="The model this worker serves (value is always 1).",
            labelnames=["model_version", "engine"],
            multiprocess_mode="livemax",
        )

    def model_info(self, version: str, engine: str) -> None:
        """Record which model version and engine this worker serves."""
        self._info.labels(model_version=version, engine=engine).set(1)

    def observe(self, predicted: npt.NDArray[Any], outside: npt.NDArray[np.bool_]) -> None:
        """Count one scored batch: its predicted classes and its out-of-range values."""
        classes, counts = np.unique(predicted, return_counts=True)
        for quality, count in zip(classes, counts, strict=True):
            self._predictions.labels(quality=str(int(quality))).inc(int(count))
        for j in np.flatnonzero(outside.any(axis=0)):
            self._ood.labels(feature=FEATURE_NAMES[j]).inc(int(outside[:, j].sum()))
