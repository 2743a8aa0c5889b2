"""Model loading (with checksum verification) and the two inference engines."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from training.artifacts import (
    JOBLIB_FILENAME,
    ONNX_FILENAME,
    ONNX_INPUT_NAME,
    ONNX_PROBABILITIES_OUTPUT,
    ArtifactError,
    verify_artifacts,
)
from training.features import FEATURE_NAMES, MODEL_COLUMNS

logger = logging.getLogger("bentoml.wineq")

ARTIFACT_FILES = {"onnx": ONNX_FILENAME, "sklearn": JOBLIB_FILENAME}


class ModelLoadError(RuntimeError):
    """The model could not be loaded: missing files, wrong contract or wrong checksum."""


class Engine(Protocol):
    """Anything that turns a float32 matrix in MODEL_COLUMNS order into class probabilities."""

    def predict_proba(self, rows: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]: ...


class OnnxEngine:
    """ONNX Runtime session of the exported forest: about 0.01 ms per row."""

    def __init__(self, path: Path) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        # One task has a quarter of a core: extra threads only contend.
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        # The graph is one tree-ensemble node: extended optimisation passes only cost start-up.
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        self._session = ort.InferenceSession(
            str(path), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self._input = ONNX_INPUT_NAME
        self._output = ONNX_PROBABILITIES_OUTPUT

    def predict_proba(self, rows: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Class probabilities, one row per input row."""
        result = self._session.run([self._output], {self._input: rows})[0]
        return np.asarray(result, dtype=np.float32)


class SklearnEngine:
    """The original sklearn forest (about 5 ms per call whatever the row count)."""

    def __init__(self, path: Path) -> None:
        import joblib

        self._model = joblib.load(path)
        self._model.n_jobs = 1

    def predict_proba(self, rows: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Class probabilities, one row per input row."""
        return np.asarray(self._model.predict_proba(rows), dtype=np.float32)


@dataclass(frozen=True)
class LoadedModel:
    """A verified model store entry, ready to predict."""

    tag: str
    version: str
    engine_name: str
    classes: tuple[int, ...]
    feature_ranges: dict[str, tuple[float, float]]
    engine: Engine


def load_model(model: Any, engine_name: str) -> LoadedModel:
    """Verify a bentoml Model's artifact checksum and contract, then load its engine."""
    metadata: dict[str, Any] = dict(model.info.metadata)
    filename = ARTIFACT_FILES[engine_name]
    try:
        path = verify_artifacts(model, [filename])[filename]
    except ArtifactError as exc:
        raise ModelLoadError(str(exc)) from exc
    columns = tuple(metadata.get("feature_columns", ()))
    if columns != MODEL_COLUMNS:
        raise ModelLoadError(f"{model.tag}: feature columns {columns} do not match the contract")
    ranges = {
        name: (float(bounds[0]), float(bounds[1]))
        for name, bounds in metadata.get("feature_ranges", {}).items()
        if name in FEATURE_NAMES
    }
    engine: Engine = OnnxEngine(path) if engine_name == "onnx" else SklearnEngine(path)
    loaded = LoadedModel(
        tag=str(model.tag),
        version=str(model.tag.version),
        engine_name=engine_name,
        classes=tuple(int(c) for c in metadata["classes"]),
        feature_ranges=ranges,
        engine=engine,
    )
    logger.info("Loaded %s with the %s engine (checksum verified)", loaded.tag, engine_name)
    return loaded
