"""The S3 mirror's pure parts: layout, URIs, digests, manifests, client config and CLI wiring."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from tests.fixtures.cli import REPO_ROOT
from training import mirror, mirror_cli
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
        "metrics": {"accuracy": 0.6},
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
        location = mirror.parse_s3_uri(candidate)
        assert location.layout == layout
        assert location.version == "20260101T000000Z-ab12"


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
    with pytest.raises(mirror.InvalidS3UriError):
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


def test_manifest_round_trips_through_its_json_document() -> None:
    manifest = mirror.Manifest.from_dict(manifest_doc())

    assert manifest.tag == "wine_quality:v1"
    assert manifest.artifact_size == 123
    assert manifest.artifact_filename == f"model-{SHA_A}.bentomodel"
    assert mirror.Manifest.from_dict(manifest.to_dict()) == manifest


def test_manifest_of_an_earlier_push_with_a_fixed_artifact_name_is_still_read() -> None:
    doc = manifest_doc(artifact={"filename": "model.bentomodel", "sha256": SHA_A, "size": 1})
    manifest = mirror.Manifest.from_dict(doc)
    assert mirror.MirrorLayout("b").artifact_key("v1", manifest.artifact_filename) == (
        "models/wine_quality/v1/model.bentomodel"
    )


@pytest.mark.parametrize(
    "broken",
    [
        {"artifact": None},
        {"artifact": {"sha256": SHA_A}},
        {"artifact": {"sha256": "not-hex", "size": 1}},
        {"artifact": {"sha256": SHA_A, "size": -1}},
        {"artifact": {"sha256": SHA_A, "size": "12"}},
        {"artifact": {"sha256": SHA_A, "size": 1}},  # no filename
        {"artifact": {"filename": "../../other/model.bentomodel", "sha256": SHA_A, "size": 1}},
        {"artifact": {"filename": "manifest.json", "sha256": SHA_A, "size": 1}},
        {"content_sha256": "short"},
        {"version": "v2"},  # tag and version disagree
    ],
)
def test_malformed_manifests_are_refused(broken: dict[str, Any]) -> None:
    with pytest.raises(mirror.ManifestError):
        mirror.Manifest.from_dict(manifest_doc(**broken))


def test_manifest_without_a_tag_is_refused() -> None:
    doc = manifest_doc()
    del doc["tag"]
    with pytest.raises(mirror.ManifestError, match="tag"):
        mirror.Manifest.from_dict(doc)


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

    with stub, pytest.raises(mirror.VersionNotFoundError) as caught:
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


def test_s3_client_takes_endpoint_from_aws_env_and_retries(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:5999")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")

    client = mirror.make_s3_client(max_attempts=7)

    assert client.meta.endpoint_url == "http://127.0.0.1:5999"
    assert client.meta.config.retries == {"mode": "standard", "total_max_attempts": 7}


def test_importing_the_mirror_does_no_work_and_pulls_in_no_training_libraries(
    tmp_path: Path,
) -> None:
    home = tmp_path / "bentoml-home"
    code = (
        "import sys, training.mirror, training.mirror_cli; "
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


def cli_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="training")
    subparsers = parser.add_subparsers(dest="command", required=True)
    mirror_cli.register(subparsers)
    return parser


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["push"], {"tag": None, "bucket": None, "prefix": None}),
        (["push", "--tag", "wine_quality:v1", "--bucket", "b"], {"tag": "wine_quality:v1"}),
        (["pull"], {"version": None}),
        (["pull", "--version", "v3", "--prefix", "p"], {"version": "v3", "prefix": "p"}),
        (["promote", "--version", "v3"], {"version": "v3"}),
        (["list-versions", "--json"], {"json": True}),
    ],
)
def test_cli_registers_each_command_with_a_func(argv: list[str], expected: dict[str, Any]) -> None:
    args = cli_parser().parse_args(argv)

    assert callable(args.func)
    for name, value in expected.items():
        assert getattr(args, name) == value


def test_cli_promote_requires_a_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli_parser().parse_args(["promote"])
    assert "--version" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["push", "pull", "list-versions"])
def test_cli_without_a_bucket_fails_with_one_line(
    command: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("WINEQ_TRAIN_S3_BUCKET", raising=False)
    args = cli_parser().parse_args([command])

    assert args.func(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "WINEQ_TRAIN_S3_BUCKET" in err


def test_cli_reports_a_bad_version_in_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("WINEQ_TRAIN_S3_BUCKET", "bucket")
    args = cli_parser().parse_args(["promote", "--version", "../escape"])

    assert args.func(args) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: invalid version '../escape'")
    assert err.count("\n") == 1


def test_mirror_module_names_its_allowed_imports() -> None:
    """Guard the serving image's start-up cost: the module's own imports stay minimal."""
    source = Path(mirror.__file__).read_text()
    imported = {
        line.split()[1].split(".")[0]
        for line in source.splitlines()
        if line.startswith(("import ", "from ")) and not line.startswith("from __future__")
    }
    stdlib = set(sys.stdlib_module_names)
    # `training` here is training.checksums, itself standard library only.
    assert imported - stdlib <= {"bentoml", "boto3", "botocore", "training"}
