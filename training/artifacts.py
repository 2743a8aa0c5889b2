"""What a model store entry is: its name, its files and the ONNX graph's input and output names.

One definition for the training side that writes an entry and the service that loads it.
Standard library only: the serving image imports it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Final

from training.checksums import sha256_file

# The model store name of every entry (its versions are the store's tags).
MODEL_NAME: Final = "wine_quality"
ONNX_FILENAME: Final = "model.onnx"
JOBLIB_FILENAME: Final = "model.joblib"
ARTIFACT_FILENAMES: Final[tuple[str, ...]] = (ONNX_FILENAME, JOBLIB_FILENAME)

# The metadata/manifest key of the accuracy estimate to expect on unseen wines.
HEADLINE_METRICS: Final = "leakage_free"

ONNX_INPUT_NAME: Final = "input"
ONNX_LABEL_OUTPUT: Final = "label"
ONNX_PROBABILITIES_OUTPUT: Final = "probabilities"


class ArtifactError(Exception):
    """A model store entry lacks a file, a recorded checksum, or a file fails its sha256."""


def verify_artifacts(model: Any, filenames: Iterable[str] = ARTIFACT_FILENAMES) -> dict[str, Path]:
    """Check ``filenames`` of a BentoML model against the sha256 its metadata records.

    The one verification the store, the mirror and the service use before trusting an
    entry; returns each file's path.  Raises :class:`ArtifactError` naming the entry.
    """
    recorded = model.info.metadata.get("artifacts")
    if not isinstance(recorded, Mapping):
        raise ArtifactError(f"{model.tag}: metadata records no artifact checksums")
    paths: dict[str, Path] = {}
    for filename in filenames:
        expected = recorded.get(filename)
        path = Path(model.path) / filename
        if not expected:
            raise ArtifactError(f"{model.tag}: metadata records no checksum for {filename}")
        if not path.is_file():
            raise ArtifactError(f"{model.tag}: {filename} is missing")
        actual = sha256_file(path)
        if actual != expected:
            raise ArtifactError(
                f"{model.tag}: checksum mismatch for {filename}: sha256 {actual}, "
                f"metadata records {expected}"
            )
        paths[filename] = path
    return paths
