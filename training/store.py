"""The BentoML model store entry: the contract between training and the service.

One entry ``wine_quality:<version>`` (``MODEL_NAME``) holds two files and describes itself
in metadata:

- ``model.onnx``: the forest in ONNX (input ``input`` float32 [None, 12], outputs
  ``label`` int64 [None] and ``probabilities`` float32 [None, n_classes]).
- ``model.joblib``: the fitted sklearn forest (``joblib.dump``).

Labels: ``stage`` and ``wine_types``.  Metadata keys: see ``METADATA_KEYS``.  The
service verifies ``artifacts`` (sha256 per file) before it reports ready.
"""

from __future__ import annotations

import io
import subprocess
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import pandas as pd

from training.artifacts import JOBLIB_FILENAME, MODEL_NAME, ONNX_FILENAME, verify_artifacts
from training.checksums import sha256_bytes
from training.features import FEATURE_NAMES, MODEL_COLUMNS, WINE_TYPES

if TYPE_CHECKING:
    from sklearn.ensemble import RandomForestClassifier

STAGE_CANDIDATE: Final = "candidate"
METADATA_KEYS: Final[tuple[str, ...]] = (
    "feature_columns",
    "classes",
    "feature_ranges",
    "artifacts",
    "metrics",
    "data_sha256",
    "library_versions",
    "hyperparameters",
    "git_commit",
    "created_at",
)
# zlib level 3: a several times smaller file for little extra load time.
JOBLIB_COMPRESS: Final = ("zlib", 3)
GIT_TIMEOUT_S: Final = 5.0


def feature_ranges(frame: pd.DataFrame) -> dict[str, list[float]]:
    """Per-feature [min, max] over the training rows (the service's soft limits)."""
    return {name: [float(frame[name].min()), float(frame[name].max())] for name in FEATURE_NAMES}


def library_versions() -> dict[str, str]:
    """Versions of the libraries that produced (and must read) the artifacts."""
    import bentoml
    import numpy
    import onnxruntime
    import skl2onnx
    import sklearn

    return {
        "sklearn": sklearn.__version__,
        "numpy": numpy.__version__,
        "onnxruntime": onnxruntime.__version__,
        "skl2onnx": skl2onnx.__version__,
        "bentoml": bentoml.__version__,
    }


def git_commit(repo_dir: Path | None = None) -> str:
    """HEAD commit of the repository holding this package, or 'unknown'."""
    cwd = repo_dir or Path(__file__).resolve().parent.parent
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT_S,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    commit = result.stdout.strip()
    return commit or "unknown"


def _plain(value: Any) -> Any:
    """Convert numpy scalars, tuples and None into types BentoML's metadata accepts."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy scalar
        return value.item()
    if value is None:  # BentoML rejects None in metadata; "None" is sklearn's own spelling
        return "None"
    return value


def build_metadata(
    *,
    forest: RandomForestClassifier,
    artifacts: Mapping[str, str],
    frame: pd.DataFrame,
    metrics: Mapping[str, Any],
    data_sha256: str,
    hyperparameters: Mapping[str, Any],
    created_at: datetime | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The entry's metadata, as plain JSON/YAML-serialisable values."""
    metadata = {
        **(extra or {}),
        "feature_columns": list(MODEL_COLUMNS),
        "classes": [int(c) for c in forest.classes_],
        "feature_ranges": feature_ranges(frame),
        "artifacts": dict(artifacts),
        "metrics": metrics,
        "data_sha256": data_sha256,
        "library_versions": library_versions(),
        "hyperparameters": hyperparameters,
        "git_commit": git_commit(),
        "created_at": (created_at or datetime.now(UTC)).isoformat(timespec="seconds"),
    }
    plain: dict[str, Any] = _plain(metadata)
    return plain


def model_labels() -> dict[str, str]:
    """Labels of a freshly trained entry."""
    return {"stage": STAGE_CANDIDATE, "wine_types": ",".join(WINE_TYPES)}


def save_model(
    *,
    forest: RandomForestClassifier,
    onnx_model: bytes,
    frame: pd.DataFrame,
    metrics: Mapping[str, Any],
    data_sha256: str,
    hyperparameters: Mapping[str, Any],
    extra_metadata: Mapping[str, Any] | None = None,
) -> str:
    """Write one model store entry (both artifacts, labels, metadata); return its tag."""
    import bentoml
    import joblib

    buffer = io.BytesIO()
    joblib.dump(forest, buffer, compress=JOBLIB_COMPRESS)
    payloads = {ONNX_FILENAME: onnx_model, JOBLIB_FILENAME: buffer.getvalue()}
    metadata = build_metadata(
        forest=forest,
        artifacts={filename: sha256_bytes(data) for filename, data in payloads.items()},
        frame=frame,
        metrics=metrics,
        data_sha256=data_sha256,
        hyperparameters=hyperparameters,
        extra=extra_metadata,
    )
    with bentoml.models.create(name=MODEL_NAME, labels=model_labels(), metadata=metadata) as model:
        for filename, data in payloads.items():
            Path(model.path_of(filename)).write_bytes(data)
    return str(model.tag)


def latest_model_tag(name: str) -> str | None:
    """Tag of the newest entry named ``name`` in the store, or None when there is none."""
    import bentoml
    from bentoml.exceptions import NotFound

    try:
        return str(bentoml.models.get(f"{name}:latest").tag)
    except NotFound:
        return None


def _verified_files(tag: str) -> dict[str, Path]:
    """The entry's artifact paths, once every file matches its recorded sha256."""
    import bentoml

    return verify_artifacts(bentoml.models.get(tag))


def load_sklearn(tag: str) -> RandomForestClassifier:
    """Load the entry's sklearn forest after verifying its artifacts."""
    import joblib

    forest: RandomForestClassifier = joblib.load(_verified_files(tag)[JOBLIB_FILENAME])
    return forest


def onnx_path(tag: str) -> Path:
    """Path of the entry's verified ONNX file."""
    return _verified_files(tag)[ONNX_FILENAME]
