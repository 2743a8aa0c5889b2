"""Training: encode the frame as the model's input, fit the forest, export it to ONNX."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.ensemble import RandomForestClassifier

from training.artifacts import MODEL_NAME, ONNX_INPUT_NAME
from training.features import FEATURE_NAMES, MODEL_COLUMNS, TARGET, WINE_TYPE_FIELD
from training.settings import TrainingSettings

if TYPE_CHECKING:
    from onnx import ModelProto

logger = logging.getLogger(__name__)

# Opsets every onnxruntime >= 1.14 executes (ai.onnx.ml 3 is the TreeEnsembleClassifier
# with float thresholds, the form skl2onnx converts forests to by default).
ONNX_TARGET_OPSET: Final[dict[str, int]] = {"": 17, "ai.onnx.ml": 3}

FloatMatrix = npt.NDArray[np.float32]
IntVector = npt.NDArray[np.int64]


def model_matrix(frame: pd.DataFrame) -> FloatMatrix:
    """Encode rows as float32 [n, 12] in MODEL_COLUMNS order (vectorised encode_row)."""
    measurements = frame.loc[:, list(FEATURE_NAMES)].to_numpy(dtype=np.float64)
    is_white = (frame[WINE_TYPE_FIELD] == "white").to_numpy(dtype=np.float64)
    matrix = np.column_stack([measurements, is_white]).astype(np.float32)
    if matrix.shape[1] != len(MODEL_COLUMNS):  # guards the contract if features change
        raise ValueError(f"encoded {matrix.shape[1]} columns, the model expects {MODEL_COLUMNS}")
    return matrix


def labels(frame: pd.DataFrame) -> IntVector:
    """Quality labels as int64."""
    return np.asarray(frame[TARGET].to_numpy(), dtype=np.int64)


def _max_features(value: str | float) -> str | float | int | None:
    """Accept 'sqrt', 'log2', 'none', an int count or a float fraction (env vars are strings)."""
    if isinstance(value, float):
        return value
    text = value.strip().lower()
    if text in {"sqrt", "log2"}:
        return text
    if text in {"none", "all"}:
        return None
    try:
        return int(text)
    except ValueError:
        return float(text)


def hyperparameters(settings: TrainingSettings) -> dict[str, Any]:
    """The forest's hyper-parameters, as plain values (for metadata and reports)."""
    return {
        "n_estimators": settings.n_estimators,
        "max_depth": settings.max_depth,
        "min_samples_leaf": settings.min_samples_leaf,
        "max_features": _max_features(settings.max_features),
        "class_weight": settings.class_weight,
        "random_state": settings.random_state,
    }


def build_forest(settings: TrainingSettings) -> RandomForestClassifier:
    """An unfitted forest configured from settings."""
    return RandomForestClassifier(**hyperparameters(settings), n_jobs=settings.n_jobs)


def fit_forest(
    features: FloatMatrix, target: IntVector, settings: TrainingSettings
) -> RandomForestClassifier:
    """Fit a forest on an encoded matrix (no feature names, so numpy input predicts cleanly)."""
    forest = build_forest(settings)
    forest.fit(features, target)
    return forest


def train_forest(frame: pd.DataFrame, settings: TrainingSettings) -> RandomForestClassifier:
    """Fit the forest on both wine types of the frame."""
    logger.info(
        "fitting %d trees on %d rows (seed %d)",
        settings.n_estimators,
        len(frame),
        settings.random_state,
    )
    return fit_forest(model_matrix(frame), labels(frame), settings)


def to_onnx(forest: RandomForestClassifier, *, compact: bool = True) -> bytes:
    """Serialised ONNX model: input 'input' float32 [None, 12]; outputs label and probabilities.

    ``compact`` leaves out the zero entries skl2onnx writes (see compact_tree_ensembles).
    """
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    onnx_model = convert_sklearn(
        forest,
        name=MODEL_NAME,
        initial_types=[(ONNX_INPUT_NAME, FloatTensorType([None, len(MODEL_COLUMNS)]))],
        final_types=None,
        options={id(forest): {"zipmap": False}},
        target_opset=ONNX_TARGET_OPSET,
    )
    if compact:
        compact_tree_ensembles(onnx_model)
    onnx_model.doc_string = "Wine quality forest; input columns: " + ",".join(MODEL_COLUMNS)
    entry = onnx_model.metadata_props.add()
    entry.key = "feature_columns"
    entry.value = ",".join(MODEL_COLUMNS)
    payload: bytes = onnx_model.SerializeToString()
    return payload


# Per-leaf class entries of a TreeEnsembleClassifier, one value each.
_CLASS_ENTRY_ATTRIBUTES: Final = ("class_ids", "class_nodeids", "class_treeids", "class_weights")


def compact_tree_ensembles(model: ModelProto) -> None:
    """Drop what a TreeEnsembleClassifier stores but never adds to a score, in place.

    skl2onnx writes one class entry per leaf and class (7 per leaf here), although most
    leaves of a forest with at least 3 rows per leaf hold one to three classes: about three
    quarters of the entries have weight 0.  A score is the sum of a leaf's entries, so
    leaving the zeros out gives bit-identical outputs as long as no weight is negative (a
    forest's leaf probabilities never are; a node with a negative weight, or weights stored
    as a tensor, is left as it is).  ``nodes_hitrates`` (optional, unused by onnxruntime)
    and an all-zero ``nodes_missing_value_tracks_true`` (the default) go too.  The file is
    smaller and onnxruntime builds its session with less CPU, which is start-up time on
    a quarter of a core (docs/benchmarks.md, the retired forest-size experiment).
    """
    for node in model.graph.node:
        if node.op_type != "TreeEnsembleClassifier":
            continue
        attributes = {attribute.name: attribute for attribute in node.attribute}
        weights = attributes["class_weights"].floats if "class_weights" in attributes else []
        keep = [index for index, weight in enumerate(weights) if weight != 0.0]
        if len(keep) < len(weights) and min(weights) >= 0.0:
            for name in _CLASS_ENTRY_ATTRIBUTES:
                field = "floats" if name == "class_weights" else "ints"
                values = getattr(attributes[name], field)
                kept = [values[index] for index in keep]
                attributes[name].ClearField(field)
                getattr(attributes[name], field).extend(kept)
        droppable = [attributes.get("nodes_hitrates")]
        tracks = attributes.get("nodes_missing_value_tracks_true")
        if tracks is not None and not any(tracks.ints):
            droppable.append(tracks)
        for attribute in droppable:
            if attribute is not None:
                node.attribute.remove(attribute)
