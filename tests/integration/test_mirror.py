"""The S3 model mirror against a real moto server process, with real boto3 and BentoML stores.

Each BentoML store is used only by processes of its own, as on separate machines: runs of
the training CLI, and one worker process per store that runs this module's helpers
(``Store.call``).  The test process itself reads and damages the bucket, and reads
entries from their folders.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import bentoml
import boto3
import pytest

from tests.fixtures.cli import REPO_ROOT, run_training_cli
from training import mirror
from training.checksums import sha256_bytes, sha256_file

pytestmark = pytest.mark.integration

PREFIX = "models"
ORIGINAL_FILES = {"model.onnx": b"onnx-bytes " * 300, "model.joblib": b"joblib-bytes " * 200}
DEFAULT_METRICS = {"leakage_free": {"red": {"accuracy": 0.66}, "white": {"accuracy": 0.64}}}


# --- Helpers run inside a store's own process (Store.call) -------------------------------


def create_entry(
    version: str, files: dict[str, str], metrics: dict[str, Any], created_at: str, sound: bool
) -> str:
    """Create wine_quality:<version> shaped like training's entries (files hex-encoded).

    ``sound=False`` records a wrong checksum for model.onnx, as a damaged entry would.
    """
    contents = {name: bytes.fromhex(data) for name, data in files.items()}
    checksums = {name: sha256_bytes(data) for name, data in contents.items()}
    if not sound:
        checksums["model.onnx"] = "0" * 64
    metadata: dict[str, Any] = {
        "metrics": metrics,
        "data_sha256": "d" * 64,
        "library_versions": {"scikit-learn": "1.5.2", "numpy": "2.1.0"},
        "git_commit": "0123abcd",
        "created_at": created_at,
        "artifacts": checksums,
        "classes": [3, 4, 5, 6, 7, 8, 9],
    }
    with bentoml.models.create(
        f"wine_quality:{version}",
        labels={"stage": "candidate", "wine_types": "red,white"},
        metadata=metadata,
    ) as model:
        for name, content in contents.items():
            Path(model.path_of(name)).write_bytes(content)
    return f"wine_quality:{version}"


def export_entry(tag: str, path: str) -> str:
    """Export an entry of this process's store to ``path``."""
    return str(bentoml.models.export_model(tag, path))


def import_entry(path: str) -> str:
    """Import an exported entry into this process's store."""
    return str(bentoml.models.import_model(path).tag)


def call_mirror(function: str, args: list[Any], kwargs: dict[str, Any]) -> Any:
    """Call ``training.mirror.<function>``; its result, or the mirror error's type and text."""
    try:
        result = getattr(mirror, function)(*args, **kwargs)
    except mirror.MirrorError as exc:
        return {"error": type(exc).__name__, "message": str(exc)}
    if isinstance(result, mirror.PushResult):
        manifest = result.manifest.model_dump(mode="json")
        return {"uri": result.uri, "uploaded": result.uploaded, "manifest": manifest}
    return result


def serve_calls() -> None:
    """A store's worker: run the helper each stdin line names; one JSON reply line each."""
    for line in sys.stdin:
        name, args = json.loads(line)
        try:
            reply = {"result": globals()[name](*args)}
        except Exception:
            reply = {"crash": traceback.format_exc()}
        print(json.dumps(reply), flush=True)


def push_losing_the_race(tag: str, bucket: str, winner_home: str) -> dict[str, Any]:
    """Push ``tag``, but the winner's whole push (its own store) runs just before our upload."""
    exported: list[str] = []

    class UploadsAfterTheWinner:
        """The real S3 client; its upload_file first lets the winner push."""

        def __init__(self) -> None:
            self._client = mirror.make_s3_client()

        def __getattr__(self, name: str) -> Any:
            return getattr(self._client, name)

        def upload_file(self, filename: str, bucket: str, key: str, **kwargs: Any) -> None:
            env = {
                "BENTOML_HOME": winner_home,
                "WINEQ_TRAIN_S3_BUCKET": bucket,
                "WINEQ_TRAIN_S3_PREFIX": PREFIX,
            }
            winner = run_training_cli("push", "--tag", tag, env=env)
            assert winner.returncode == 0, winner.stderr
            exported.append(sha256_file(filename))
            self._client.upload_file(filename, bucket, key, **kwargs)

    outcome = call_mirror("push", [tag, bucket, PREFIX], {"s3_client": UploadsAfterTheWinner()})
    return {"outcome": outcome, "loser_export_sha256": exported[0]}


# --- The test process's side ---------------------------------------------------------------


class Store:
    """A BentoML home used only by processes started for it: CLI runs and one worker."""

    def __init__(self, home: Path, bucket: str) -> None:
        self.home = home
        self.models = home / "models"
        self.log = home.with_suffix(".log")
        self._worker: subprocess.Popen[str] | None = None
        self.env = {
            "BENTOML_HOME": str(home),
            "WINEQ_TRAIN_S3_BUCKET": bucket,
            "WINEQ_TRAIN_S3_PREFIX": PREFIX,
        }

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run the training CLI on this store."""
        return run_training_cli(*args, env=self.env)

    def call(self, helper: Callable[..., Any], *args: Any) -> Any:
        """Run a helper of this module in the store's worker process; its JSON result."""
        if self._worker is None:
            self.home.mkdir(parents=True, exist_ok=True)
            self._log_file = self.log.open("w")
            self._worker = subprocess.Popen(
                [sys.executable, "-c", f"from {__name__} import serve_calls; serve_calls()"],
                cwd=REPO_ROOT,
                env={**os.environ, "BENTOML_DO_NOT_TRACK": "True", **self.env},
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self._log_file,
                text=True,
            )
        assert self._worker.stdin is not None
        assert self._worker.stdout is not None
        self._worker.stdin.write(json.dumps([helper.__name__, args]) + "\n")
        self._worker.stdin.flush()
        line = self._worker.stdout.readline()
        assert line, f"the worker of {self.home} exited: {self.log.read_text()}"
        reply = json.loads(line)
        assert "crash" not in reply, reply.get("crash")
        return reply["result"]

    def close(self) -> None:
        """Let the worker process (if any) finish."""
        if self._worker is not None:
            assert self._worker.stdin is not None
            self._worker.stdin.close()
            try:
                self._worker.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self._worker.kill()
                self._worker.wait()
            self._log_file.close()

    def mirror(self, function: str, *args: Any, **kwargs: Any) -> Any:
        """``training.mirror.<function>(...)`` in the store's worker."""
        return self.call(call_mirror, function, list(args), kwargs)

    def push(self, tag: str) -> dict[str, Any]:
        """Push ``tag`` from this store into the test's bucket; the push's outcome."""
        result: dict[str, Any] = self.mirror("push", tag, self.env["WINEQ_TRAIN_S3_BUCKET"], PREFIX)
        assert "error" not in result, result
        return result

    def make_entry(
        self,
        version: str,
        files: dict[str, bytes] | None = None,
        metrics: dict[str, Any] | None = None,
        created_at: str = "2026-01-01T00:00:00+00:00",
        *,
        sound: bool = True,
    ) -> str:
        """Create wine_quality:<version> in this store; its tag."""
        contents = ORIGINAL_FILES if files is None else files
        hexed = {name: data.hex() for name, data in contents.items()}
        metrics = DEFAULT_METRICS if metrics is None else metrics
        return str(self.call(create_entry, version, hexed, metrics, created_at, sound))

    def entry(self, version: str) -> bentoml.Model:
        """The stored entry wine_quality:<version>, read from its folder."""
        return bentoml.Model.from_path(str(self.models / "wine_quality" / version))

    def snapshot(self) -> dict[str, bytes]:
        """Every file of the store with its bytes: 'untouched' means equal snapshots."""
        return {
            p.relative_to(self.models).as_posix(): p.read_bytes()
            for p in sorted(self.models.rglob("*"))
            if p.is_file()
        }


@pytest.fixture
def stores(s3_env: str, tmp_path: Path) -> Iterator[Callable[[str], Store]]:
    """Store ``name`` mirroring into the test's bucket; its worker stops after the test."""
    opened: list[Store] = []

    def open_store(name: str) -> Store:
        opened.append(Store(tmp_path / "bentoml" / name, s3_env))
        return opened[-1]

    yield open_store
    for store in opened:
        store.close()


def failure(result: subprocess.CompletedProcess[str]) -> str:
    """The one error line of a CLI run that failed as the CLI promises (no traceback)."""
    assert result.returncode == 1, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    return errors[0]


def succeeded(result: subprocess.CompletedProcess[str]) -> str:
    """The stdout of a CLI run that succeeded."""
    assert result.returncode == 0, result.stderr
    return result.stdout


def layout(bucket: str) -> mirror.MirrorLayout:
    return mirror.MirrorLayout(bucket, PREFIX)


def stored_bytes(bucket: str, key: str) -> bytes:
    return bytes(boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read())


def stored_manifest(bucket: str, version: str) -> mirror.Manifest:
    """The manifest of ``version`` as it is in the bucket."""
    return mirror.Manifest.model_validate_json(
        stored_bytes(bucket, layout(bucket).manifest_key(version))
    )


def artifact_key(bucket: str, version: str) -> str:
    """Key of the artifact that the version's manifest names."""
    return layout(bucket).artifact_key(version, stored_manifest(bucket, version).artifact.filename)


def artifact_versions(bucket: str, key: str) -> int:
    """How many S3 object versions a key has (the bucket is versioned)."""
    listing = boto3.client("s3").list_object_versions(Bucket=bucket, Prefix=key)
    return sum(1 for v in listing.get("Versions", []) if v["Key"] == key)


def keys_under(bucket: str, prefix: str) -> list[str]:
    """Every key (current versions) under a prefix."""
    listing = boto3.client("s3").list_objects_v2(Bucket=bucket, Prefix=prefix)
    return sorted(str(item["Key"]) for item in listing.get("Contents", []))


def orphan_key(bucket: str, version: str, content: bytes) -> str:
    """Where an interrupted push (artifact uploaded, manifest never written) leaves its bytes."""
    return layout(bucket).artifact_key(version, mirror.artifact_filename(sha256_bytes(content)))


def assert_pushed_once(bucket: str, version: str) -> None:
    """The version holds one artifact and one manifest, each written once."""
    assert artifact_versions(bucket, artifact_key(bucket, version)) == 1
    assert artifact_versions(bucket, layout(bucket).manifest_key(version)) == 1
    assert len(keys_under(bucket, layout(bucket).version_prefix(version))) == 2


def test_push_then_pull_into_an_empty_store_restores_the_entry(
    s3_env: str, stores: Callable[[str], Store]
) -> None:
    a, b = stores("a"), stores("b")
    tag = a.make_entry("v1")

    pushed = succeeded(a.cli("push", "--tag", tag))

    assert f"pushed: {tag} -> s3://{s3_env}/models/wine_quality/v1/" in pushed
    manifest = json.loads(stored_bytes(s3_env, layout(s3_env).manifest_key("v1")))
    assert manifest["schema_version"] == 1
    assert manifest["tag"] == tag
    assert manifest["metrics"] == DEFAULT_METRICS
    assert manifest["data_sha256"] == "d" * 64
    assert manifest["git_commit"] == "0123abcd"
    assert manifest["created_at"] == "2026-01-01T00:00:00+00:00"
    assert manifest["library_versions"]["scikit-learn"] == "1.5.2"
    # The artifact is stored under its own sha256, and the manifest names it.
    artifact = manifest["artifact"]
    assert artifact["filename"] == f"model-{artifact['sha256']}.bentomodel"
    key = artifact_key(s3_env, "v1")
    assert key == f"models/wine_quality/v1/{artifact['filename']}"
    body = stored_bytes(s3_env, key)
    assert (len(body), sha256_bytes(body)) == (artifact["size"], artifact["sha256"])

    assert b.snapshot() == {}
    assert succeeded(b.cli("pull", "--version", "v1")).strip() == tag

    for name, content in ORIGINAL_FILES.items():
        assert (b.models / "wine_quality" / "v1" / name).read_bytes() == content
    original, pulled = a.entry("v1"), b.entry("v1")
    assert pulled.info.metadata == original.info.metadata
    assert pulled.info.labels == original.info.labels


def test_push_refuses_an_entry_whose_files_fail_their_checksums(
    s3_env: str, stores: Callable[[str], Store]
) -> None:
    a = stores("a")
    tag = a.make_entry("v1", sound=False)

    refused = a.mirror("push", tag, s3_env, PREFIX)

    assert refused["error"] == "IntegrityError"
    assert "refusing to push" in refused["message"]
    assert "model.onnx" in refused["message"]
    assert keys_under(s3_env, layout(s3_env).model_root) == []


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda body: bytes([body[0] ^ 0xFF]) + body[1:], "sha256"),  # same size
        (lambda body: body[: len(body) // 2], "bytes"),  # truncated
    ],
)
def test_pull_refuses_a_damaged_artifact_and_leaves_the_store_untouched(
    s3_env: str, stores: Callable[[str], Store], damage: Callable[[bytes], bytes], reason: str
) -> None:
    a, b = stores("a"), stores("b")
    a.push(a.make_entry("v1"))
    key = artifact_key(s3_env, "v1")
    boto3.client("s3").put_object(Bucket=s3_env, Key=key, Body=damage(stored_bytes(s3_env, key)))
    b.make_entry("v0")  # the store is not empty: it must stay exactly as it was
    before = b.snapshot()

    refused = b.mirror("pull", s3_env, PREFIX, "v1")

    assert refused["error"] == "IntegrityError"
    assert reason in refused["message"]
    assert "refusing to import" in refused["message"]
    assert b.snapshot() == before
    assert "refusing to import" in failure(b.cli("pull", "--version", "v1"))


def test_pull_refuses_a_malformed_manifest(s3_env: str, stores: Callable[[str], Store]) -> None:
    a, b = stores("a"), stores("b")
    a.push(a.make_entry("v1"))
    manifest_key = layout(s3_env).manifest_key("v1")
    doc = json.loads(stored_bytes(s3_env, manifest_key))
    doc["artifact"]["size"] = str(doc["artifact"]["size"])  # a number as text
    boto3.client("s3").put_object(Bucket=s3_env, Key=manifest_key, Body=json.dumps(doc))

    line = failure(b.cli("pull", "--version", "v1"))

    assert "malformed" in line
    assert "artifact.size" in line
    assert b.snapshot() == {}


def test_second_identical_push_is_a_no_op(s3_env: str, stores: Callable[[str], Store]) -> None:
    a = stores("a")
    tag = a.make_entry("v1")
    assert a.push(tag)["uploaded"] is True
    first = stored_manifest(s3_env, "v1")

    assert a.push(tag)["uploaded"] is False
    assert stored_manifest(s3_env, "v1") == first
    assert_pushed_once(s3_env, "v1")


def test_push_from_a_store_that_pulled_the_version_is_a_no_op(
    s3_env: str, stores: Callable[[str], Store], tmp_path: Path
) -> None:
    """Re-exports are not byte-identical (mtimes change on import); the content digest is."""
    a, b = stores("a"), stores("b")
    tag = a.make_entry("v1")
    a.push(tag)
    assert b.mirror("pull", s3_env, PREFIX, "v1") == tag
    reexport = b.call(export_entry, tag, str(tmp_path / "reexport.bentomodel"))
    assert sha256_file(reexport) != stored_manifest(s3_env, "v1").artifact.sha256

    assert b.push(tag)["uploaded"] is False
    assert_pushed_once(s3_env, "v1")


def test_push_of_different_content_under_an_existing_version_is_refused(
    s3_env: str, stores: Callable[[str], Store]
) -> None:
    a, b = stores("a"), stores("b")
    tag = a.make_entry("v1")
    a.push(tag)
    first = stored_manifest(s3_env, "v1")
    b.make_entry("v1", files={"model.onnx": b"retrained", "model.joblib": b"other"})

    refused = b.mirror("push", tag, s3_env, PREFIX)

    assert refused["error"] == "ConflictError"
    assert "different content" in refused["message"]
    assert stored_manifest(s3_env, "v1") == first
    assert_pushed_once(s3_env, "v1")


@pytest.mark.parametrize("same_content", [True, False])
def test_a_push_that_loses_the_race_leaves_the_winners_artifact_pullable(
    s3_env: str, stores: Callable[[str], Store], tmp_path: Path, same_content: bool
) -> None:
    """Two real pushes of v1: both find no manifest, the loser uploads after the winner.

    The loser's store holds v1 either imported from the winner's (same content, but the
    export differs in mtimes, so in bytes) or retrained (different content).
    """
    winner_store, loser_store, fresh = stores("winner"), stores("loser"), stores("fresh")
    tag = winner_store.make_entry("v1")
    if same_content:
        export = winner_store.call(export_entry, tag, str(tmp_path / "v1.bentomodel"))
        loser_store.call(import_entry, export)
    else:
        loser_store.make_entry("v1", files={"model.onnx": b"retrained", "model.joblib": b"x"})

    race = loser_store.call(push_losing_the_race, tag, s3_env, str(winner_store.home))

    winner = stored_manifest(s3_env, "v1")
    assert race["loser_export_sha256"] != winner.artifact.sha256
    if same_content:
        assert race["outcome"]["uploaded"] is False
    else:
        assert race["outcome"]["error"] == "ConflictError"
    # The winner's artifact still verifies and pulls into an empty store.
    assert fresh.mirror("pull", s3_env, PREFIX, "v1") == tag
    for name, content in ORIGINAL_FILES.items():
        assert (fresh.models / "wine_quality" / "v1" / name).read_bytes() == content
    pulled_digest = mirror.directory_digest(fresh.models / "wine_quality" / "v1")[0]
    assert pulled_digest == winner.content_sha256
    # Nothing was overwritten: the manifest and its artifact's bytes are the winner's.
    key = artifact_key(s3_env, "v1")
    assert sha256_bytes(stored_bytes(s3_env, key)) == winner.artifact.sha256
    assert artifact_versions(s3_env, key) == 1
    assert artifact_versions(s3_env, layout(s3_env).manifest_key("v1")) == 1


def test_promote_then_pull_without_version_takes_the_champion(
    s3_env: str, stores: Callable[[str], Store]
) -> None:
    a, b = stores("a"), stores("b")
    for version in ("v1", "v2"):
        a.push(a.make_entry(version))
    no_champion = b.mirror("pull", s3_env, PREFIX)
    assert no_champion["error"] == "NotFoundError"
    assert "no champion" in no_champion["message"]

    assert mirror.promote(s3_env, PREFIX, "v1").tag == "wine_quality:v1"
    assert b.mirror("pull", s3_env, PREFIX) == "wine_quality:v1"
    assert sorted(p.name for p in (b.models / "wine_quality").iterdir()) == ["latest", "v1"]

    mirror.promote(s3_env, PREFIX, "v2")
    assert mirror.champion_version(s3_env, PREFIX) == "v2"
    assert b.mirror("pull", s3_env, PREFIX) == "wine_quality:v2"


def test_promote_refuses_a_version_without_manifest(
    s3_env: str, stores: Callable[[str], Store]
) -> None:
    a = stores("a")
    a.push(a.make_entry("v1"))
    mirror.promote(s3_env, PREFIX, "v1")
    # An interrupted push: the artifact is there, the manifest never arrived.
    boto3.client("s3").put_object(
        Bucket=s3_env, Key=orphan_key(s3_env, "v2", b"partial"), Body=b"partial"
    )

    for version in ("v2", "v9"):
        with pytest.raises(mirror.NotFoundError, match=f"{version}' not found"):
            mirror.promote(s3_env, PREFIX, version)
    assert mirror.champion_version(s3_env, PREFIX) == "v1"


def push_two_versions(store: Store, bucket: str) -> None:
    """v2 (created in February) and v1 (January), pushed in that order, and an orphan v3."""
    for version, month, red, white in (("v2", 2, 0.7, 0.655), ("v1", 1, 0.6, 0.5)):
        metrics = {"leakage_free": {"red": {"accuracy": red}, "white": {"accuracy": white}}}
        tag = store.make_entry(version, metrics=metrics, created_at=f"2026-0{month}-01T09:30:00Z")
        store.push(tag)
    boto3.client("s3").put_object(
        Bucket=bucket, Key=orphan_key(bucket, "v3", b"interrupted"), Body=b"interrupted"
    )


def test_list_versions_reports_metrics_created_at_and_champion(
    s3_env: str, stores: Callable[[str], Store]
) -> None:
    push_two_versions(stores("a"), s3_env)
    assert [v.is_champion for v in mirror.list_versions(s3_env, PREFIX)] == [False, False]

    mirror.promote(s3_env, PREFIX, "v2")
    versions = mirror.list_versions(s3_env, PREFIX)

    assert [(v.manifest.version, v.manifest.created_at, v.is_champion) for v in versions] == [
        ("v1", "2026-01-01T09:30:00Z", False),
        ("v2", "2026-02-01T09:30:00Z", True),
    ]
    assert versions[1].manifest.metrics["leakage_free"]["white"] == {"accuracy": 0.655}
    assert mirror.list_versions(s3_env, "other-prefix") == []


def test_list_versions_prints_a_table_with_the_champion_and_accuracy_per_wine_type(
    s3_env: str, stores: Callable[[str], Store]
) -> None:
    a = stores("a")
    push_two_versions(a, s3_env)
    mirror.promote(s3_env, PREFIX, "v2")

    lines = succeeded(a.cli("list-versions")).splitlines()

    cells = [[cell.strip() for cell in line.split("  ") if cell.strip()] for line in lines]
    assert cells[0] == ["version", "created (UTC)", "accuracy red", "accuracy white"]
    assert cells[1] == ["v1", "2026-01-01 09:30", "60.0%", "50.0%"]
    assert cells[2] == ["*", "v2", "2026-02-01 09:30", "70.0%", "65.5%"]
    assert lines[3].startswith("* champion")
    assert len(lines) == 4
    # The columns line up: every row's cells start where the header's do.
    assert lines[1].index("2026") == lines[2].index("2026") == lines[0].index("created")


def test_large_artifact_goes_through_multipart_upload_and_download(
    s3_env: str, stores: Callable[[str], Store]
) -> None:
    a, b = stores("a"), stores("b")
    big = os.urandom(6 * mirror.MIB)  # incompressible: the export stays above 5 MiB
    tag = a.make_entry("big", files={"model.onnx": big, "model.joblib": b"j"})

    result = a.mirror("push", tag, s3_env, PREFIX, multipart_threshold=mirror.MIB)
    assert result["uploaded"] is True

    head = boto3.client("s3").head_object(Bucket=s3_env, Key=artifact_key(s3_env, "big"))
    assert head["ETag"].strip('"').endswith("-2"), head["ETag"]  # two parts: 5 MiB + rest
    assert head["ContentLength"] == result["manifest"]["artifact"]["size"]
    assert b.mirror("pull", s3_env, PREFIX, "big", multipart_threshold=mirror.MIB) == tag
    assert (b.models / "wine_quality" / "big" / "model.onnx").read_bytes() == big


def test_pull_of_a_version_already_in_the_store_does_not_download(
    s3_env: str, stores: Callable[[str], Store]
) -> None:
    a = stores("a")
    tag = a.make_entry("v1")
    a.push(tag)
    # Were pull to download, this would make it fail.
    boto3.client("s3").put_object(Bucket=s3_env, Key=artifact_key(s3_env, "v1"), Body=b"garbage")
    before = a.snapshot()

    assert a.mirror("pull", s3_env, PREFIX, "v1") == tag
    assert a.snapshot() == before


def test_pull_refuses_when_the_store_holds_different_content_under_the_version(
    s3_env: str, stores: Callable[[str], Store]
) -> None:
    a, b = stores("a"), stores("b")
    a.push(a.make_entry("v1"))
    b.make_entry("v1", files={"model.onnx": b"local experiment", "model.joblib": b"x"})
    before = b.snapshot()

    refused = b.mirror("pull", s3_env, PREFIX, "v1")

    assert refused["error"] == "ConflictError"
    assert "bentoml models delete wine_quality:v1" in refused["message"]
    assert b.snapshot() == before


def test_pull_from_uri_as_the_service_does_at_start_up(
    s3_env: str, stores: Callable[[str], Store], tmp_path: Path
) -> None:
    a, b = stores("a"), stores("b")
    tag = a.make_entry("v1")
    uri = a.push(tag)["uri"]
    cache = tmp_path / "wineq-models"

    assert b.mirror("pull_from_uri", uri, work_dir=str(cache)) == tag
    assert b.mirror("pull_from_uri", uri, work_dir=str(cache)) == tag
    assert (b.models / "wine_quality" / "v1" / "model.onnx").read_bytes() == (
        ORIGINAL_FILES["model.onnx"]
    )
    assert list(cache.iterdir()) == []  # the download is cleaned up


def test_missing_bucket_is_a_typed_error(s3_env: str) -> None:
    with pytest.raises(mirror.S3AccessError, match="NoSuchBucket") as caught:
        mirror.list_versions("no-such-bucket-wineq", PREFIX)
    assert caught.value.code == "NoSuchBucket"


def test_cli_round_trip(s3_env: str, stores: Callable[[str], Store]) -> None:
    a, b = stores("a"), stores("b")
    a.make_entry("v1")
    a.make_entry("v2", created_at="2026-02-01T00:00:00+00:00")
    a.env["WINEQ_TRAIN_S3_PREFIX"] = b.env["WINEQ_TRAIN_S3_PREFIX"] = "cli-models"

    assert "wine_quality:v2" in succeeded(a.cli("push"))  # default: the latest entry
    succeeded(a.cli("push", "--tag", "wine_quality:v1"))
    assert "identical" in succeeded(a.cli("push", "--tag", "wine_quality:v1"))

    succeeded(a.cli("promote", "--version", "v1"))
    listed = json.loads(succeeded(a.cli("list-versions", "--json")))
    assert [(row["version"], row["champion"]) for row in listed] == [("v1", True), ("v2", False)]
    assert listed[0]["artifact"]["filename"].startswith("model-")

    assert succeeded(b.cli("pull")).strip() == "wine_quality:v1"  # default: the champion
    assert (b.models / "wine_quality" / "v1" / "model.onnx").read_bytes() == (
        ORIGINAL_FILES["model.onnx"]
    )

    other_bucket = failure(a.cli("list-versions", "--bucket", "no-such-bucket-wineq"))
    assert "NoSuchBucket" in other_bucket
    assert "'v9' not found" in failure(a.cli("promote", "--version", "v9"))
