"""ONNX Runtime and the sklearn forest agree on every row of both UCI files."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest
from sklearn.ensemble import RandomForestClassifier

from training.artifacts import ONNX_INPUT_NAME, ONNX_LABEL_OUTPUT, ONNX_PROBABILITIES_OUTPUT
from training.features import MODEL_COLUMNS
from training.store import onnx_path
from training.train import model_matrix

PROBABILITY_TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def session(trained_model_tag: str) -> ort.InferenceSession:
    return ort.InferenceSession(
        str(onnx_path(trained_model_tag)), providers=["CPUExecutionProvider"]
    )


@pytest.fixture(scope="module")
def outputs(session: ort.InferenceSession, wine_frame: pd.DataFrame) -> dict[str, np.ndarray]:
    label, probabilities = session.run(
        [ONNX_LABEL_OUTPUT, ONNX_PROBABILITIES_OUTPUT],
        {ONNX_INPUT_NAME: model_matrix(wine_frame)},
    )
    return {"label": label, "probabilities": probabilities}


def test_signature(session: ort.InferenceSession, trained_model_tag: str):
    (model_input,) = session.get_inputs()
    assert model_input.name == "input"
    assert model_input.type == "tensor(float)"
    assert model_input.shape[1] == len(MODEL_COLUMNS)
    assert [o.name for o in session.get_outputs()] == ["label", "probabilities"]
    assert session.get_modelmeta().custom_metadata_map["feature_columns"] == ",".join(MODEL_COLUMNS)


def test_same_class_on_every_row(
    outputs: dict[str, np.ndarray], forest: RandomForestClassifier, wine_frame: pd.DataFrame
):
    expected = forest.predict(model_matrix(wine_frame))
    assert len(outputs["label"]) == len(wine_frame) == 6497
    mismatched = np.flatnonzero(outputs["label"] != expected)
    assert mismatched.size == 0, f"{mismatched.size} rows differ, e.g. {mismatched[:10]}"


def test_probabilities_within_tolerance(
    outputs: dict[str, np.ndarray], forest: RandomForestClassifier, wine_frame: pd.DataFrame
):
    expected = forest.predict_proba(model_matrix(wine_frame))
    probabilities = outputs["probabilities"]
    assert probabilities.dtype == np.float32
    assert probabilities.shape == expected.shape == (6497, len(forest.classes_))
    np.testing.assert_allclose(probabilities, expected, rtol=0, atol=PROBABILITY_TOLERANCE)


def test_probability_argmax_is_the_label(
    outputs: dict[str, np.ndarray], forest: RandomForestClassifier
):
    argmax = forest.classes_[outputs["probabilities"].argmax(axis=1)]
    np.testing.assert_array_equal(argmax, outputs["label"])


def test_single_row_equals_batch(session: ort.InferenceSession, wine_frame: pd.DataFrame):
    matrix = model_matrix(wine_frame.iloc[:64])
    (batch,) = session.run([ONNX_PROBABILITIES_OUTPUT], {ONNX_INPUT_NAME: matrix})
    for i in (0, 17, 63):
        (single,) = session.run([ONNX_PROBABILITIES_OUTPUT], {ONNX_INPUT_NAME: matrix[i : i + 1]})
        np.testing.assert_allclose(single[0], batch[i], rtol=0, atol=PROBABILITY_TOLERANCE)
