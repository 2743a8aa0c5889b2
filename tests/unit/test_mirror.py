"""The S3 mirror's own parts: layout, URIs, digests, manifest checks, S3 error mapping."""

from __future__ import annotations

import ast
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.response import StreamingBody
from botocore.stub import Stubber
from pydantic import ValidationError

from tests.fixtures.cli import REPO_ROOT
from training import mirror
from training.checksums import sha256_file

SHA_A = "a" * 64
SHA_B = "b" * 64


def manifest_doc(**overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "schema_version": 1,
        "tag": "wine_quality:v1",
        "version": "v1",
        "artifact": {"filename": f"model-{SHA_A}.bentomodel", "sha256": SHA_A, "size": 123},
        "content_sha256": SHA_B,
        "metrics": {"leakage_free": {"red": {"accuracy": 0.6}}},
    }
    doc.update(overrides)
    return doc


@pytest.mark.parametrize(
    ("prefix", "root"),
    [("models", "models/"), ("/a/b/", "a/b/"), ("", "")],
)
def test_layout_builds_every_key_from_one_place(prefix: str, root: str) -> None:
    layout = mirror.MirrorLayout("bucket", prefix)

    assert layout.model_root == f"{root}wine_quality/"
    assert (
        layout.artifact_key("v1", mirror.artifact_filename(SHA_A))
        == f"{root}wine_quality/v1/model-{SHA_A}.bentomodel"
    )
    assert layout.manifest_key("v1") == f"{root}wine_quality/v1/manifest.json"
    assert layout.champion_key == f"{root}wine_quality/champion.json"
    assert layout.version_uri("v1") == f"s3://bucket/{root}wine_quality/v1/"


@pytest.mark.parametrize("version", ["", "../v1", "a/b", "v 1", ".hidden", "champion.json/x"])
def test_layout_refuses_versions_that_are_not_one_key_segment(version: str) -> None:
    with pytest.raises(mirror.InvalidNameError):
        mirror.MirrorLayout("bucket").artifact_key(version, mirror.artifact_filename(SHA_A))


@pytest.mark.parametrize("filename", ["", "../x", "a/b", "manifest.json", "champion.json"])
def test_layout_refuses_artifact_filenames_outside_the_version(filename: str) -> None:
    with pytest.raises(mirror.InvalidNameError):
        mirror.MirrorLayout("bucket").artifact_key("v1", filename)


def test_artifact_filename_is_addressed_by_content() -> None:
    assert mirror.artifact_filename(SHA_A) == f"model-{SHA_A}.bentomodel"
    assert mirror.artifact_filename(SHA_A) != mirror.artifact_filename(SHA_B)
    with pytest.raises(mirror.InvalidNameError):
        mirror.artifact_filename("../" + SHA_A[3:])


@pytest.mark.parametrize("prefix", ["models", "team/models", ""])
def test_parse_s3_uri_inverts_version_uri(prefix: str) -> None:
    layout = mirror.MirrorLayout("bucket", prefix)
    uri = layout.version_uri("20260101T000000Z-ab12")

    for candidate in (uri, uri.rstrip("/")):
        assert mirror.parse_s3_uri(candidate) == (layout, "20260101T000000Z-ab12")


@pytest.mark.parametrize(
    "uri",
    [
        "https://bucket/models/wine_quality/v1/",
        "bucket/models/wine_quality/v1/",
        "s3://bucket/",
        "s3://bucket/wine_quality/",
        "s3:///models/wine_quality/v1/",
        "s3://bucket/models/wine_quality/v%201/",
    ],
)
def test_parse_s3_uri_refuses_uris_without_a_version(uri: str) -> None:
    with pytest.raises(mirror.InvalidNameError):
        mirror.parse_s3_uri(uri)


def write_tree(root: Path, files: dict[str, bytes]) -> Path:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    return root


def test_directory_digest_ignores_mtimes_and_creation_order(tmp_path: Path) -> None:
    files = {"model.yaml": b"name: wine_quality", "model.onnx": b"o", "sub/x.bin": b"x"}
    first = write_tree(tmp_path / "a", files)
    second = write_tree(tmp_path / "b", dict(reversed(list(files.items()))))
    os.utime(second / "model.onnx", (0, 0))

    digest, listing = mirror.directory_digest(first)

    assert mirror.directory_digest(second) == (digest, listing)
    assert listing == {name: sha256_file(first / name) for name in files}


@pytest.mark.parametrize(
    "change",
    [
        {"model.onnx": b"O"},  # content
        {"model.onnx2": b"o"},  # an extra file
    ],
)
def test_directory_digest_changes_with_content(tmp_path: Path, change: dict[str, bytes]) -> None:
    base = {"model.yaml": b"name: wine_quality", "model.onnx": b"o"}
    original = write_tree(tmp_path / "a", base)
    changed = write_tree(tmp_path / "b", {**base, **change})

    assert mirror.directory_digest(original)[0] != mirror.directory_digest(changed)[0]


def test_directory_digest_changes_when_a_file_is_renamed(tmp_path: Path) -> None:
    original = write_tree(tmp_path / "a", {"model.onnx": b"o"})
    renamed = write_tree(tmp_path / "b", {"model.joblib": b"o"})
    assert mirror.directory_digest(original)[0] != mirror.directory_digest(renamed)[0]


def test_manifest_document_keeps_its_layout_and_reads_back_unchanged() -> None:
    """push writes what pull reads; readers of the raw JSON (the container tests) rely
    on the nested ``artifact`` record."""
    manifest = mirror.Manifest.model_validate(manifest_doc())

    assert manifest.artifact.filename == f"model-{SHA_A}.bentomodel"
    assert manifest.artifact.size == 123
    written = json.loads(mirror._json_bytes(manifest))
    assert written["schema_version"] == 1
    assert written["artifact"] == manifest_doc()["artifact"]
    assert mirror.Manifest.model_validate(written) == manifest


def test_manifest_of_an_earlier_push_with_a_fixed_artifact_name_is_still_read() -> None:
    doc = manifest_doc(artifact={"filename": "model.bentomodel", "sha256": SHA_A, "size": 1})
    manifest = mirror.Manifest.model_validate(doc)
    assert mirror.MirrorLayout("b").artifact_key("v1", manifest.artifact.filename) == (
        "models/wine_quality/v1/model.bentomodel"
    )


MALFORMED: list[dict[str, Any]] = [
    {"artifact": None},
    {"artifact": {"sha256": SHA_A}},
    {"artifact": {"sha256": "not-hex", "size": 1}},
    {"artifact": {"filename": f"model-{SHA_A}.bentomodel", "sha256": SHA_A, "size": -1}},
    {"artifact": {"filename": f"model-{SHA_A}.bentomodel", "sha256": SHA_A, "size": "12"}},
    {"artifact": {"filename": f"model-{SHA_A}.bentomodel", "sha256": SHA_A, "size": True}},
    {"artifact": {"sha256": SHA_A, "size": 1}},  # no filename
    {"artifact": {"filename": "../../other/model.bentomodel", "sha256": SHA_A, "size": 1}},
    {"artifact": {"filename": "manifest.json", "sha256": SHA_A, "size": 1}},
    {"content_sha256": "short"},
    {"version": "v2"},  # tag and version disagree
    {"version": "../v1", "tag": "wine_quality:../v1"},
    {"schema_version": 2},
    {"tag": None},
]


@pytest.mark.parametrize("broken", MALFORMED)
def test_malformed_manifests_are_refused(broken: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        mirror.Manifest.model_validate(manifest_doc(**broken))


@pytest.mark.parametrize("field", ["tag", "version", "artifact", "content_sha256"])
def test_manifest_without_a_required_field_is_refused(field: str) -> None:
    doc = manifest_doc()
    del doc[field]
    with pytest.raises(ValidationError, match=field):
        mirror.Manifest.model_validate(doc)


def stubbed_s3() -> tuple[Any, Stubber]:
    """A real boto3 S3 client whose answers the test scripts (no network)."""
    client = boto3.client(
        "s3",
        region_name="us-east-1",
        endpoint_url="http://127.0.0.1:9",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    return client, Stubber(client)


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("AccessDenied", 403),  # what the task role (no s3:ListBucket) gets for a missing key
        ("NoSuchKey", 404),
    ],
)
def test_pull_of_a_missing_or_unreadable_manifest_is_version_not_found(
    code: str, status: int
) -> None:
    client, stub = stubbed_s3()
    key = "models/wine_quality/v9/manifest.json"
    stub.add_client_error(
        "get_object",
        service_error_code=code,
        http_status_code=status,
        expected_params={"Bucket": "bucket", "Key": key},
    )

    with stub, pytest.raises(mirror.NotFoundError) as caught:
        mirror.pull("bucket", "models", "v9", s3_client=client)

    assert "'v9' not found or not readable" in str(caught.value)
    assert f"s3://bucket/{key}" in str(caught.value)
    stub.assert_no_pending_responses()


@pytest.mark.parametrize("code", ["InvalidAccessKeyId", "SignatureDoesNotMatch"])
def test_pull_reports_credential_failures_on_the_manifest_as_access_errors(code: str) -> None:
    """Other 403s are not a missing version: the message must point at the credentials."""
    client, stub = stubbed_s3()
    stub.add_client_error("get_object", service_error_code=code, http_status_code=403)

    with stub, pytest.raises(mirror.S3AccessError, match=code):
        mirror.pull("bucket", "models", "v9", s3_client=client)


def stub_object(stub: Stubber, key: str, body: bytes) -> None:
    """Script S3's answer to reading ``key`` from bucket 'bucket'."""
    stub.add_response(
        "get_object",
        {"Body": StreamingBody(io.BytesIO(body), len(body))},
        expected_params={"Bucket": "bucket", "Key": key},
    )


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        json.dumps(manifest_doc(**MALFORMED[4])).encode(),  # size as text
        json.dumps(manifest_doc(tag="other_model:v1")).encode(),  # another model's manifest
    ],
)
def test_pull_refuses_a_malformed_manifest_before_touching_the_store(body: bytes) -> None:
    client, stub = stubbed_s3()
    stub_object(stub, "models/wine_quality/v1/manifest.json", body)

    with stub, pytest.raises(mirror.IntegrityError) as caught:
        mirror.pull("bucket", "models", "v1", s3_client=client)

    message = str(caught.value)
    assert "s3://bucket/models/wine_quality/v1/manifest.json" in message
    assert "\n" not in message  # one line for the CLI and the service's log


def test_pull_refuses_a_champion_pointer_that_names_no_valid_version() -> None:
    client, stub = stubbed_s3()
    stub_object(stub, "models/wine_quality/champion.json", b'{"version": "../v1"}')

    with stub, pytest.raises(mirror.IntegrityError, match=r"champion\.json"):
        mirror.pull("bucket", "models", s3_client=client)


def test_importing_the_mirror_does_no_work_and_pulls_in_no_training_libraries(
    tmp_path: Path,
) -> None:
    home = tmp_path / "bentoml-home"
    code = (
        "import sys, training.mirror, training.cli; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'pandas', 'sklearn'}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO_ROOT,
        env={**os.environ, "BENTOML_HOME": str(home)},
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert result.stdout.strip() == "[]"
    assert not home.exists()


def test_mirror_module_names_its_allowed_imports() -> None:
    """Guard the serving image's start-up cost: the module's own imports stay minimal."""
    tree = ast.parse(Path(mirror.__file__).read_text())
    nodes = list(ast.walk(tree))
    imported = {a.name for n in nodes if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module for n in nodes if isinstance(n, ast.ImportFrom) and n.module}
    third_party = {name for name in imported if name.split(".")[0] not in sys.stdlib_module_names}
    assert {name.split(".")[0] for name in third_party} - {"training"} <= {
        "bentoml",
        "boto3",
        "botocore",
        "pydantic",
    }
    # Both are standard library only (training/artifacts.py says so and is imported too).
    assert {name for name in third_party if name.startswith("training")} <= {
        "training.artifacts",
        "training.checksums",
    }
