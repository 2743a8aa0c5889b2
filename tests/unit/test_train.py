"""Training: the input encoding follows the feature contract; the seed makes fits repeatable."""

from __future__ import annotations

import numpy as np
import onnx
import pandas as pd
import pytest

from training.artifacts import ONNX_INPUT_NAME
from training.features import FEATURE_NAMES, MODEL_COLUMNS, encode_row
from training.settings import TrainingSettings
from training.train import (
    build_forest,
    compact_tree_ensembles,
    hyperparameters,
    labels,
    model_matrix,
    to_onnx,
    train_forest,
)

FAST_TREES = 15


def test_model_matrix_matches_encode_row(wine_frame: pd.DataFrame):
    matrix = model_matrix(wine_frame)
    assert matrix.shape == (len(wine_frame), len(MODEL_COLUMNS))
    assert matrix.dtype == np.float32
    sample = wine_frame.sample(200, random_state=0)
    for position, row in zip(sample.index, sample.to_dict(orient="records"), strict=True):
        expected = np.asarray(encode_row(row), dtype=np.float32)
        np.testing.assert_array_equal(matrix[position], expected)


def test_is_white_is_the_last_column(wine_frame: pd.DataFrame):
    matrix = model_matrix(wine_frame)
    assert MODEL_COLUMNS[-1] == "is_white"
    is_white = (wine_frame["wine_type"] == "white").to_numpy()
    np.testing.assert_array_equal(matrix[:, -1], is_white.astype(np.float32))
    np.testing.assert_array_equal(
        matrix[:, : len(FEATURE_NAMES)],
        wine_frame[list(FEATURE_NAMES)].to_numpy(dtype=np.float32),
    )


def test_labels_are_integer_grades(wine_frame: pd.DataFrame):
    y = labels(wine_frame)
    assert y.dtype == np.int64
    assert set(np.unique(y)) == {3, 4, 5, 6, 7, 8, 9}


def test_hyperparameters_come_from_settings():
    settings = TrainingSettings(
        n_estimators=7,
        max_depth=4,
        min_samples_leaf=3,
        max_features="0.5",
        class_weight="balanced",
        random_state=3,
    )
    forest = build_forest(settings)
    assert hyperparameters(settings)["max_features"] == 0.5
    params = forest.get_params()
    assert (params["n_estimators"], params["max_depth"], params["min_samples_leaf"]) == (7, 4, 3)
    assert (params["max_features"], params["class_weight"]) == (0.5, "balanced")
    assert params["random_state"] == 3


@pytest.mark.parametrize(
    ("raw", "parsed"),
    [("sqrt", "sqrt"), ("LOG2", "log2"), ("none", None), ("3", 3), ("0.25", 0.25)],
)
def test_max_features_from_environment_strings(raw: str, parsed: object):
    assert hyperparameters(TrainingSettings(max_features=raw))["max_features"] == parsed


def test_same_seed_gives_identical_predictions(wine_frame: pd.DataFrame):
    settings = TrainingSettings(n_estimators=FAST_TREES, random_state=7, n_jobs=2)
    first = train_forest(wine_frame, settings)
    # A different degree of parallelism must not change the model either.
    second = train_forest(wine_frame, settings.model_copy(update={"n_jobs": 1}))
    features = model_matrix(wine_frame)
    # Predict single-threaded: threads add the trees' votes in varying order (last-bit noise).
    first.n_jobs = second.n_jobs = 1
    np.testing.assert_array_equal(first.predict(features), second.predict(features))
    np.testing.assert_array_equal(first.predict_proba(features), second.predict_proba(features))


def test_other_seed_gives_another_forest(wine_frame: pd.DataFrame):
    # Guards the determinism test: the seed must actually reach the forest.
    features = model_matrix(wine_frame)
    one = train_forest(wine_frame, TrainingSettings(n_estimators=FAST_TREES, random_state=1))
    two = train_forest(wine_frame, TrainingSettings(n_estimators=FAST_TREES, random_state=2))
    assert not np.array_equal(one.predict_proba(features), two.predict_proba(features))


def test_forest_learns_both_wine_types(wine_frame: pd.DataFrame):
    forest = train_forest(wine_frame, TrainingSettings(n_estimators=FAST_TREES))
    assert forest.n_features_in_ == len(MODEL_COLUMNS)
    assert not hasattr(forest, "feature_names_in_")  # numpy input predicts without warnings
    assert list(forest.classes_) == [3, 4, 5, 6, 7, 8, 9]


def _attributes(node: onnx.NodeProto) -> dict[str, onnx.AttributeProto]:
    return {a.name: a for a in node.attribute}


def _tree_node(model_bytes: bytes) -> onnx.NodeProto:
    model = onnx.load_from_string(model_bytes)
    nodes: list[onnx.NodeProto] = [
        n for n in model.graph.node if n.op_type == "TreeEnsembleClassifier"
    ]
    assert len(nodes) == 1
    return nodes[0]


def test_compact_onnx_scores_every_row_exactly_like_the_full_export(wine_frame: pd.DataFrame):
    import onnxruntime as ort

    settings = TrainingSettings(n_estimators=FAST_TREES)
    forest = train_forest(wine_frame, settings)
    full, compact = to_onnx(forest, compact=False), to_onnx(forest)
    matrix = model_matrix(wine_frame)
    full_out, compact_out = (
        ort.InferenceSession(payload, providers=["CPUExecutionProvider"]).run(
            None, {ONNX_INPUT_NAME: matrix}
        )
        for payload in (full, compact)
    )
    np.testing.assert_array_equal(compact_out[0], full_out[0])
    np.testing.assert_array_equal(compact_out[1], full_out[1])  # bit-identical sums

    attributes = _attributes(_tree_node(compact))
    assert 0.0 not in attributes["class_weights"].floats
    index_fields = ("class_ids", "class_nodeids", "class_treeids")
    lengths = {len(attributes[name].ints) for name in index_fields}
    assert lengths == {len(attributes["class_weights"].floats)}
    assert "nodes_hitrates" not in attributes
    assert "nodes_missing_value_tracks_true" not in attributes
    full_weights = _attributes(_tree_node(full))["class_weights"].floats
    assert len(attributes["class_weights"].floats) < len(full_weights) / 2
    assert len(compact) < len(full) * 0.7


def test_compaction_leaves_class_entries_with_a_negative_weight_alone():
    # Another converter's ensemble (not a forest's probabilities): a zero entry can decide
    # the label when the others are negative, so the class entries must stay.
    node = onnx.helper.make_node(
        "TreeEnsembleClassifier",
        ["X"],
        ["Y", "Z"],
        domain="ai.onnx.ml",
        class_ids=[0, 1],
        class_nodeids=[0, 0],
        class_treeids=[0, 0],
        class_weights=[0.0, -0.5],
        classlabels_int64s=[0, 1],
        nodes_hitrates=[1.0],
        nodes_missing_value_tracks_true=[0],
    )
    model = onnx.helper.make_model(onnx.helper.make_graph([node], "g", [], []))
    compact_tree_ensembles(model)
    attributes = _attributes(model.graph.node[0])
    assert list(attributes["class_weights"].floats) == [0.0, -0.5]
    assert list(attributes["class_ids"].ints) == [0, 1]
    assert "nodes_hitrates" not in attributes
    assert "nodes_missing_value_tracks_true" not in attributes
