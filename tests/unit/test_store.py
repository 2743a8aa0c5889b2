"""The model store entry: the contract the service relies on."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import bentoml
import pytest
import yaml

from training.artifacts import ARTIFACT_FILENAMES, ArtifactError, verify_artifacts
from training.checksums import sha256_file
from training.features import FEATURE_NAMES, MODEL_COLUMNS
from training.store import METADATA_KEYS, latest_model_tag, load_sklearn, onnx_path


@pytest.fixture(scope="module")
def entry(trained_model_tag: str) -> bentoml.Model:
    return bentoml.models.get(trained_model_tag)


@pytest.fixture(scope="module")
def metadata(entry: bentoml.Model) -> dict[str, Any]:
    return dict(entry.info.metadata)


def test_entry_lives_in_the_session_store(entry: bentoml.Model, bentoml_home: Path):
    assert Path(entry.path).is_relative_to(bentoml_home / "models" / "wine_quality")
    assert entry.tag.name == "wine_quality"


def test_entry_holds_both_artifacts(entry: bentoml.Model):
    files = {p.name for p in Path(entry.path).iterdir()}
    assert set(ARTIFACT_FILENAMES) <= files
    import onnx

    onnx.checker.check_model(entry.path_of("model.onnx"))


def test_labels(entry: bentoml.Model):
    assert entry.info.labels == {"stage": "candidate", "wine_types": "red,white"}


def test_metadata_has_every_key(metadata: dict[str, Any]):
    assert set(METADATA_KEYS) <= set(metadata)


def test_metadata_values(metadata: dict[str, Any], wine_frame):
    assert metadata["feature_columns"] == list(MODEL_COLUMNS)
    assert metadata["classes"] == [3, 4, 5, 6, 7, 8, 9]
    assert all(type(c) is int for c in metadata["classes"])
    assert set(metadata["feature_ranges"]) == set(FEATURE_NAMES)
    assert metadata["feature_ranges"]["alcohol"] == [
        float(wine_frame["alcohol"].min()),
        float(wine_frame["alcohol"].max()),
    ]
    assert re.fullmatch(r"[0-9a-f]{64}", metadata["data_sha256"])
    assert set(metadata["library_versions"]) == {
        "sklearn",
        "numpy",
        "onnxruntime",
        "skl2onnx",
        "bentoml",
    }
    assert metadata["hyperparameters"]["n_estimators"] == 60
    assert re.fullmatch(r"[0-9a-f]{40}|unknown", metadata["git_commit"])
    assert datetime.fromisoformat(metadata["created_at"]).utcoffset() == timedelta(0)


def test_metrics_hold_leakage_free_floats_per_type(metadata: dict[str, Any]):
    leakage_free = metadata["metrics"]["leakage_free"]
    assert set(leakage_free) == {"red", "white"}
    for metrics in leakage_free.values():
        assert all(isinstance(v, float) for v in metrics.values())
        assert 0.4 < metrics["accuracy"] <= 1.0
        assert metrics["accuracy"] > metrics["majority_baseline"]


def test_metadata_survives_json_and_the_yaml_on_disk(
    entry: bentoml.Model, metadata: dict[str, Any]
):
    on_disk = yaml.safe_load(Path(entry.path_of("model.yaml")).read_text())
    assert on_disk["metadata"] == metadata
    assert json.loads(json.dumps(metadata)) == metadata


def test_artifact_hashes_match_the_files(entry: bentoml.Model, metadata: dict[str, Any]):
    recorded = metadata["artifacts"]
    assert set(recorded) == set(ARTIFACT_FILENAMES)
    for filename, digest in recorded.items():
        assert sha256_file(Path(entry.path_of(filename))) == digest
    verify_artifacts(entry)


def test_tampered_artifact_is_detected(trained_model_tag: str, bentoml_home: Path, tmp_path):
    import shutil

    entry = bentoml.models.get(trained_model_tag)
    copy = tmp_path / "entry"
    shutil.copytree(entry.path, copy)
    tampered = bentoml.Model.from_path(copy)
    with (copy / "model.joblib").open("ab") as handle:
        handle.write(b"\0")
    with pytest.raises(ArtifactError, match=r"model\.joblib.*sha256"):
        verify_artifacts(tampered)
    (copy / "model.onnx").unlink()
    with pytest.raises(ArtifactError, match=r"model\.onnx is missing"):
        verify_artifacts(tampered)


def test_latest_tag_and_verified_loads(trained_model_tag: str, entry: bentoml.Model):
    assert latest_model_tag("wine_quality") == trained_model_tag
    assert latest_model_tag("no_such_model") is None
    forest = load_sklearn(trained_model_tag)
    assert forest.n_features_in_ == len(MODEL_COLUMNS)
    assert onnx_path(trained_model_tag) == Path(entry.path) / "model.onnx"
