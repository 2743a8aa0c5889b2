"""What a model store entry is: its name, its files and the ONNX graph's input and output names.

One definition for the training side that writes an entry and the service that loads it.
Standard library only: the serving image imports it.
"""

from __future__ import annotations

from typing import Final

# The model store name of every entry (its versions are the store's tags).
MODEL_NAME: Final = "wine_quality"
ONNX_FILENAME: Final = "model.onnx"
JOBLIB_FILENAME: Final = "model.joblib"
ARTIFACT_FILENAMES: Final[tuple[str, ...]] = (ONNX_FILENAME, JOBLIB_FILENAME)

ONNX_INPUT_NAME: Final = "input"
ONNX_LABEL_OUTPUT: Final = "label"
ONNX_PROBABILITIES_OUTPUT: Final = "probabilities"
