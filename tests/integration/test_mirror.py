"""The S3 model mirror against a real moto server process, with real boto3 and BentoML stores."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import bentoml
import boto3
import pytest
from bentoml._internal.configuration.containers import BentoMLContainer
from bentoml._internal.models import ModelStore

from tests.fixtures.cli import run_training_cli
from training import mirror
from training.checksums import sha256_bytes, sha256_file

pytestmark = pytest.mark.integration

PREFIX = "models"
ORIGINAL_FILES = {"model.onnx": b"onnx-bytes " * 300, "model.joblib": b"joblib-bytes " * 200}


class Stores:
    """Temporary BentoML homes; ``use(name)`` makes one the in-process model store."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def home(self, name: str) -> Path:
        """BENTOML_HOME of store ``name`` (for subprocesses)."""
        path = self.root / name
        (path / "models").mkdir(parents=True, exist_ok=True)
        return path

    def use(self, name: str) -> Path:
        """Switch the in-process model store to ``name``; its models folder."""
        models = self.home(name) / "models"
        BentoMLContainer.model_store.set(ModelStore(str(models)))
        return models


@pytest.fixture
def stores(tmp_path: Path) -> Iterator[Stores]:
    """Model stores under tmp_path; the in-process store starts as the empty store 'a'."""
    result = Stores(tmp_path / "bentoml")
    result.use("a")
    try:
        yield result
    finally:
        BentoMLContainer.model_store.reset()


def make_entry(
    version: str,
    files: dict[str, bytes] | None = None,
    metrics: dict[str, float] | None = None,
    created_at: str = "2026-01-01T00:00:00+00:00",
) -> str:
    """Create wine_quality:<version> in the current store, shaped like training's entries."""
    files = ORIGINAL_FILES if files is None else files
    metadata: dict[str, Any] = {
        "metrics": metrics if metrics is not None else {"accuracy": 0.66, "f1_macro": 0.41},
        "data_sha256": "d" * 64,
        "library_versions": {"scikit-learn": "1.5.2", "numpy": "2.1.0"},
        "git_commit": "0123abcd",
        "created_at": created_at,
        "artifacts": {},
        "classes": [3, 4, 5, 6, 7, 8, 9],
    }
    with bentoml.models.create(
        f"wine_quality:{version}",
        labels={"stage": "candidate", "wine_types": "red,white"},
        metadata=metadata,
    ) as model:
        for name, content in files.items():
            Path(model.path_of(name)).write_bytes(content)
    return f"wine_quality:{version}"


def snapshot(models_dir: Path) -> dict[str, bytes]:
    """Every file under a models folder with its bytes: 'untouched' means equal snapshots."""
    return {
        p.relative_to(models_dir).as_posix(): p.read_bytes()
        for p in sorted(models_dir.rglob("*"))
        if p.is_file()
    }


def artifact_versions(bucket: str, key: str) -> int:
    """How many S3 object versions a key has (the bucket is versioned)."""
    listing = boto3.client("s3").list_object_versions(Bucket=bucket, Prefix=key)
    return sum(1 for v in listing.get("Versions", []) if v["Key"] == key)


def layout(bucket: str) -> mirror.MirrorLayout:
    return mirror.MirrorLayout(bucket, PREFIX)


def stored_manifest(bucket: str, version: str) -> mirror.Manifest:
    """The manifest of ``version`` as it is in the bucket."""
    key = layout(bucket).manifest_key(version)
    body = boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    return mirror.Manifest.from_dict(json.loads(body))


def artifact_key(bucket: str, version: str) -> str:
    """Key of the artifact that the version's manifest names."""
    return layout(bucket).artifact_key(version, stored_manifest(bucket, version).artifact_filename)


def keys_under(bucket: str, prefix: str) -> list[str]:
    """Every key (current versions) under a prefix."""
    listing = boto3.client("s3").list_objects_v2(Bucket=bucket, Prefix=prefix)
    return sorted(str(item["Key"]) for item in listing.get("Contents", []))


def object_sha256(bucket: str, key: str) -> str:
    body = boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    return sha256_bytes(body)


def orphan_key(bucket: str, version: str, content: bytes) -> str:
    """Where an interrupted push (artifact uploaded, manifest never written) leaves its bytes."""
    sha256 = sha256_bytes(content)
    return layout(bucket).artifact_key(version, mirror.artifact_filename(sha256))


def test_push_then_pull_into_empty_store_restores_the_entry(s3_env: str, stores: Stores) -> None:
    tag = make_entry("v1")
    original = bentoml.models.get(tag)

    result = mirror.push(tag, s3_env, PREFIX)

    assert result.uploaded
    assert result.uri == f"s3://{s3_env}/models/wine_quality/v1/"
    s3 = boto3.client("s3")
    manifest = json.loads(
        s3.get_object(Bucket=s3_env, Key=layout(s3_env).manifest_key("v1"))["Body"].read()
    )
    assert manifest["tag"] == tag
    assert manifest["metrics"] == {"accuracy": 0.66, "f1_macro": 0.41}
    assert manifest["data_sha256"] == "d" * 64
    assert manifest["git_commit"] == "0123abcd"
    assert manifest["created_at"] == "2026-01-01T00:00:00+00:00"
    assert manifest["library_versions"]["scikit-learn"] == "1.5.2"
    # The artifact is stored under its own sha256, and the manifest names it.
    assert manifest["artifact"]["filename"] == f"model-{manifest['artifact']['sha256']}.bentomodel"
    key = artifact_key(s3_env, "v1")
    assert key == f"models/wine_quality/v1/{manifest['artifact']['filename']}"
    head = s3.head_object(Bucket=s3_env, Key=key)
    assert head["ContentLength"] == manifest["artifact"]["size"]
    assert object_sha256(s3_env, key) == manifest["artifact"]["sha256"]

    empty = stores.use("b")
    assert snapshot(empty) == {}
    pulled_tag = mirror.pull(s3_env, PREFIX, "v1")

    assert pulled_tag == tag
    pulled = bentoml.models.get(tag)
    assert Path(pulled.path) != Path(original.path)
    for name, content in ORIGINAL_FILES.items():
        assert Path(pulled.path_of(name)).read_bytes() == content
    assert pulled.info.metadata == original.info.metadata
    assert pulled.info.labels == original.info.labels


def test_pull_refuses_a_tampered_artifact_and_leaves_the_store_untouched(
    s3_env: str, stores: Stores
) -> None:
    tag = make_entry("v1")
    mirror.push(tag, s3_env, PREFIX)
    key = artifact_key(s3_env, "v1")
    s3 = boto3.client("s3")
    genuine = s3.get_object(Bucket=s3_env, Key=key)["Body"].read()
    tampered = bytes([genuine[0] ^ 0xFF]) + genuine[1:]  # same size, different bytes
    s3.put_object(Bucket=s3_env, Key=key, Body=tampered)

    models = stores.use("b")
    make_entry("v0")  # the store is not empty: it must stay exactly as it was
    before = snapshot(models)

    with pytest.raises(mirror.ArtifactIntegrityError, match="sha256"):
        mirror.pull(s3_env, PREFIX, "v1")

    assert snapshot(models) == before
    assert [str(m.tag) for m in bentoml.models.list("wine_quality")] == ["wine_quality:v0"]


def test_pull_refuses_a_truncated_artifact(s3_env: str, stores: Stores) -> None:
    tag = make_entry("v1")
    mirror.push(tag, s3_env, PREFIX)
    key = artifact_key(s3_env, "v1")
    s3 = boto3.client("s3")
    genuine = s3.get_object(Bucket=s3_env, Key=key)["Body"].read()
    s3.put_object(Bucket=s3_env, Key=key, Body=genuine[: len(genuine) // 2])

    models = stores.use("b")
    with pytest.raises(mirror.ArtifactIntegrityError, match="bytes"):
        mirror.pull(s3_env, PREFIX, "v1")
    assert snapshot(models) == {}


def test_second_identical_push_is_a_no_op(s3_env: str, stores: Stores) -> None:
    tag = make_entry("v1")
    first = mirror.push(tag, s3_env, PREFIX)

    second = mirror.push(tag, s3_env, PREFIX)

    assert not second.uploaded
    assert second.manifest.artifact_sha256 == first.manifest.artifact_sha256
    assert artifact_versions(s3_env, artifact_key(s3_env, "v1")) == 1
    assert artifact_versions(s3_env, layout(s3_env).manifest_key("v1")) == 1
    assert len(keys_under(s3_env, layout(s3_env).version_prefix("v1"))) == 2


def test_push_from_a_store_that_pulled_the_version_is_a_no_op(s3_env: str, stores: Stores) -> None:
    """Re-exports are not byte-identical (mtimes change on import); the content digest is."""
    tag = make_entry("v1")
    first = mirror.push(tag, s3_env, PREFIX)
    stores.use("b")
    mirror.pull(s3_env, PREFIX, "v1")
    reexport = bentoml.models.export_model(tag, str(stores.root / "reexport.bentomodel"))
    assert sha256_file(reexport) != first.manifest.artifact_sha256

    again = mirror.push(tag, s3_env, PREFIX)

    assert not again.uploaded
    assert artifact_versions(s3_env, artifact_key(s3_env, "v1")) == 1
    assert len(keys_under(s3_env, layout(s3_env).version_prefix("v1"))) == 2


def test_push_of_different_content_under_an_existing_version_is_refused(
    s3_env: str, stores: Stores
) -> None:
    tag = make_entry("v1")
    first = mirror.push(tag, s3_env, PREFIX)
    stores.use("b")
    make_entry("v1", files={"model.onnx": b"retrained", "model.joblib": b"other"})

    with pytest.raises(mirror.VersionConflictError, match="different content"):
        mirror.push(tag, s3_env, PREFIX)

    assert stored_manifest(s3_env, "v1") == first.manifest
    assert artifact_versions(s3_env, artifact_key(s3_env, "v1")) == 1
    assert len(keys_under(s3_env, layout(s3_env).version_prefix("v1"))) == 2


class UploadsAfterTheWinner:
    """The real S3 client, but a whole competing push runs just before our artifact upload."""

    def __init__(self, before_upload: Callable[[str], None]) -> None:
        self._client = mirror.make_s3_client()
        self._before_upload = before_upload

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def upload_file(self, filename: str, bucket: str, key: str, **kwargs: Any) -> None:
        self._before_upload(filename)
        self._client.upload_file(filename, bucket, key, **kwargs)


@pytest.mark.parametrize("same_content", [True, False])
def test_a_push_that_loses_the_race_leaves_the_winners_artifact_pullable(
    s3_env: str, stores: Stores, same_content: bool
) -> None:
    """Two real pushes of v1: both find no manifest, the loser uploads after the winner.

    The loser's store holds v1 either imported from the winner's (same content, but the
    export differs in mtimes, so in bytes) or retrained (different content).
    """
    tag = make_entry("v1")
    if same_content:
        export = bentoml.models.export_model(tag, str(stores.root / "v1.bentomodel"))
        stores.use("b")
        bentoml.models.import_model(export)
    else:
        stores.use("b")
        make_entry("v1", files={"model.onnx": b"retrained", "model.joblib": b"other"})
    winners: list[mirror.PushResult] = []

    def winner_pushes_first(loser_export: str) -> None:
        stores.use("a")
        winners.append(mirror.push(tag, s3_env, PREFIX))
        stores.use("b")
        assert sha256_file(loser_export) != winners[0].manifest.artifact_sha256

    loser_client = UploadsAfterTheWinner(winner_pushes_first)
    if same_content:
        lost = mirror.push(tag, s3_env, PREFIX, s3_client=loser_client)
        assert not lost.uploaded
    else:
        with pytest.raises(mirror.VersionConflictError):
            mirror.push(tag, s3_env, PREFIX, s3_client=loser_client)

    (winner,) = winners
    assert winner.uploaded
    # The winner's artifact still verifies and pulls into an empty store.
    models = stores.use("c")
    assert mirror.pull(s3_env, PREFIX, "v1") == tag
    for name, content in ORIGINAL_FILES.items():
        assert Path(bentoml.models.get(tag).path_of(name)).read_bytes() == content
    assert mirror.directory_digest(models / "wine_quality" / "v1")[0] == (
        winner.manifest.content_sha256
    )
    # Nothing was overwritten: the manifest is the winner's, and so are its artifact's bytes.
    assert stored_manifest(s3_env, "v1") == winner.manifest
    key = artifact_key(s3_env, "v1")
    assert object_sha256(s3_env, key) == winner.manifest.artifact_sha256
    assert artifact_versions(s3_env, key) == 1
    assert artifact_versions(s3_env, layout(s3_env).manifest_key("v1")) == 1


def test_promote_then_pull_without_version_takes_the_champion(s3_env: str, stores: Stores) -> None:
    for version in ("v1", "v2"):
        mirror.push(make_entry(version), s3_env, PREFIX)
    with pytest.raises(mirror.ChampionNotSetError):
        mirror.pull(s3_env, PREFIX)

    mirror.promote(s3_env, PREFIX, "v1")
    stores.use("b")
    assert mirror.pull(s3_env, PREFIX) == "wine_quality:v1"
    assert [str(m.tag) for m in bentoml.models.list("wine_quality")] == ["wine_quality:v1"]

    mirror.promote(s3_env, PREFIX, "v2")
    assert mirror.champion_version(s3_env, PREFIX) == "v2"
    assert mirror.pull(s3_env, PREFIX) == "wine_quality:v2"


def test_promote_refuses_a_version_without_manifest(s3_env: str, stores: Stores) -> None:
    mirror.push(make_entry("v1"), s3_env, PREFIX)
    mirror.promote(s3_env, PREFIX, "v1")
    s3 = boto3.client("s3")
    # An interrupted push: the artifact is there, the manifest never arrived.
    s3.put_object(Bucket=s3_env, Key=orphan_key(s3_env, "v2", b"partial"), Body=b"partial")

    for version in ("v2", "v9"):
        with pytest.raises(mirror.VersionNotFoundError):
            mirror.promote(s3_env, PREFIX, version)
    assert mirror.champion_version(s3_env, PREFIX) == "v1"


def test_list_versions_reports_metrics_created_at_and_champion(s3_env: str, stores: Stores) -> None:
    mirror.push(
        make_entry("v2", metrics={"accuracy": 0.7}, created_at="2026-02-01T00:00:00+00:00"),
        s3_env,
        PREFIX,
    )
    mirror.push(
        make_entry("v1", metrics={"accuracy": 0.6}, created_at="2026-01-01T00:00:00+00:00"),
        s3_env,
        PREFIX,
    )
    boto3.client("s3").put_object(
        Bucket=s3_env, Key=orphan_key(s3_env, "v3", b"interrupted push"), Body=b"interrupted push"
    )
    assert [v.is_champion for v in mirror.list_versions(s3_env, PREFIX)] == [False, False]

    mirror.promote(s3_env, PREFIX, "v2")
    versions = mirror.list_versions(s3_env, PREFIX)

    assert [(v.version, v.created_at, v.metrics, v.is_champion) for v in versions] == [
        ("v1", "2026-01-01T00:00:00+00:00", {"accuracy": 0.6}, False),
        ("v2", "2026-02-01T00:00:00+00:00", {"accuracy": 0.7}, True),
    ]
    assert mirror.list_versions(s3_env, "other-prefix") == []


def test_large_artifact_goes_through_multipart_upload_and_download(
    s3_env: str, stores: Stores
) -> None:
    big = os.urandom(6 * mirror.MIB)  # incompressible: the export stays above 5 MiB
    tag = make_entry("big", files={"model.onnx": big, "model.joblib": b"j"})

    result = mirror.push(tag, s3_env, PREFIX, multipart_threshold=mirror.MIB)

    head = boto3.client("s3").head_object(Bucket=s3_env, Key=artifact_key(s3_env, "big"))
    assert head["ETag"].strip('"').endswith("-2"), head["ETag"]  # two parts: 5 MiB + rest
    assert head["ContentLength"] == result.manifest.artifact_size
    stores.use("b")
    mirror.pull(s3_env, PREFIX, "big", multipart_threshold=mirror.MIB)
    assert Path(bentoml.models.get(tag).path_of("model.onnx")).read_bytes() == big


def test_pull_of_a_version_already_in_the_store_does_not_download(
    s3_env: str, stores: Stores
) -> None:
    tag = make_entry("v1")
    mirror.push(tag, s3_env, PREFIX)
    # Were pull to download, this would make it fail.
    boto3.client("s3").put_object(Bucket=s3_env, Key=artifact_key(s3_env, "v1"), Body=b"garbage")
    models = stores.use("a")
    before = snapshot(models)

    assert mirror.pull(s3_env, PREFIX, "v1") == tag
    assert snapshot(models) == before


def test_pull_refuses_when_the_store_holds_different_content_under_the_version(
    s3_env: str, stores: Stores
) -> None:
    mirror.push(make_entry("v1"), s3_env, PREFIX)
    models = stores.use("b")
    make_entry("v1", files={"model.onnx": b"local experiment", "model.joblib": b"x"})
    before = snapshot(models)

    with pytest.raises(mirror.LocalStoreConflictError):
        mirror.pull(s3_env, PREFIX, "v1")
    assert snapshot(models) == before


def test_pull_from_uri_as_the_service_does_at_start_up(
    s3_env: str, stores: Stores, tmp_path: Path
) -> None:
    tag = make_entry("v1")
    uri = mirror.push(tag, s3_env, PREFIX).uri
    stores.use("b")
    cache = tmp_path / "wineq-models"

    assert mirror.pull_from_uri(uri, work_dir=cache) == tag
    assert mirror.pull_from_uri(uri, work_dir=cache) == tag
    assert (
        Path(bentoml.models.get(tag).path_of("model.onnx")).read_bytes()
        == (ORIGINAL_FILES["model.onnx"])
    )
    assert list(cache.iterdir()) == []  # the download is cleaned up


def test_missing_bucket_is_a_typed_error(s3_env: str, stores: Stores) -> None:
    tag = make_entry("v1")
    with pytest.raises(mirror.S3AccessError, match="NoSuchBucket"):
        mirror.push(tag, "no-such-bucket-wineq", PREFIX)


def test_cli_round_trip(s3_env: str, stores: Stores) -> None:
    make_entry("v1", metrics={"accuracy": 0.6})
    make_entry("v2", metrics={"accuracy": 0.7}, created_at="2026-02-01T00:00:00+00:00")
    env = {
        "BENTOML_HOME": str(stores.home("a")),
        "WINEQ_TRAIN_S3_BUCKET": s3_env,
        "WINEQ_TRAIN_S3_PREFIX": "cli-models",
    }

    pushed = run_training_cli("push", env=env)  # default: the latest entry
    assert pushed.returncode == 0, pushed.stderr
    assert "wine_quality:v2" in pushed.stdout
    assert run_training_cli("push", "--tag", "wine_quality:v1", env=env).returncode == 0
    again = run_training_cli("push", "--tag", "wine_quality:v1", env=env)
    assert again.returncode == 0, again.stderr
    assert "identical" in again.stdout

    assert run_training_cli("promote", "--version", "v1", env=env).returncode == 0
    listed = run_training_cli("list-versions", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    assert [(row["version"], row["champion"]) for row in json.loads(listed.stdout)] == [
        ("v1", True),
        ("v2", False),
    ]

    env_b = {**env, "BENTOML_HOME": str(stores.home("b"))}
    pulled = run_training_cli("pull", env=env_b)  # default: the champion
    assert pulled.returncode == 0, pulled.stderr
    assert pulled.stdout.strip() == "wine_quality:v1"
    assert (stores.home("b") / "models" / "wine_quality" / "v1" / "model.onnx").read_bytes() == (
        ORIGINAL_FILES["model.onnx"]
    )

    other_bucket = run_training_cli("list-versions", "--bucket", "no-such-bucket-wineq", env=env)
    failed = run_training_cli("promote", "--version", "v9", env=env)
    no_bucket = run_training_cli("pull", env={**env, "WINEQ_TRAIN_S3_BUCKET": None})
    for result in (other_bucket, failed, no_bucket):
        assert result.returncode != 0
        assert "Traceback" not in result.stderr
        # The training CLI may log INFO lines too; the failure itself is one line.
        errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1, result.stderr
    assert "v9" in failed.stderr
    assert "WINEQ_TRAIN_S3_BUCKET" in no_bucket.stderr
