"""S3 model mirror: push, pull and promote BentoML model store entries.

Layout of the mirror (built only by :class:`MirrorLayout`)::

    s3://<bucket>/<prefix>/<model_name>/<version>/model-<sha256>.bentomodel   exported entry
    s3://<bucket>/<prefix>/<model_name>/<version>/manifest.json               written last
    s3://<bucket>/<prefix>/<model_name>/champion.json                         mutable pointer

A version is visible only once its manifest exists, and a manifest is never replaced:
pushing a version again is a no-op when the model directory's content digest matches
the manifest and a :class:`VersionConflictError` otherwise.  Exports are not compared
byte for byte because the tarball records file mtimes, which change when an entry is
imported into another store; the content digest (every file's path and sha256,
``model.yaml`` with labels, metadata and creation time included) does not.

The export is stored under its own sha256 and the manifest names that file, so two
pushes of one version that race never write different bytes to the same key: the
loser's upload lands beside the winner's, whose manifest still matches its artifact.

Credentials come from the standard AWS chain and the endpoint from boto3's standard
``AWS_ENDPOINT_URL``.  The serving image imports this module at start-up, so it
imports nothing but the standard library, boto3/botocore and bentoml.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import re
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import bentoml
import boto3
import boto3.exceptions
from bentoml.exceptions import BentoMLException, NotFound
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from training.artifacts import MODEL_NAME
from training.checksums import sha256_bytes, sha256_file

logger = logging.getLogger(__name__)

ARTIFACT_FILENAME: Final = "model.bentomodel"  # local file; in S3: artifact_filename(sha256)
MANIFEST_FILENAME: Final = "manifest.json"
CHAMPION_FILENAME: Final = "champion.json"
MANIFEST_SCHEMA_VERSION: Final = 1

MIB: Final = 1024 * 1024
DEFAULT_MULTIPART_THRESHOLD: Final = 64 * MIB
# S3 rejects multipart parts below 5 MiB (except the last one).
MIN_MULTIPART_CHUNKSIZE: Final = 5 * MIB
DEFAULT_MAX_ATTEMPTS: Final = 5

_NAME_RE: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_SHA256_RE: Final = re.compile(r"^[0-9a-f]{64}$")
_MISSING_KEY_CODES: Final = frozenset({"NoSuchKey", "404", "NotFound"})
# Without s3:ListBucket (the service's task role) S3 answers a missing key with 403.
_DENIED_CODES: Final = frozenset({"AccessDenied", "403", "Forbidden"})


class MirrorError(Exception):
    """Base of every error the mirror raises on purpose."""


class InvalidS3UriError(MirrorError, ValueError):
    """An ``s3://`` URI does not name a model version in the mirror layout."""


class InvalidNameError(MirrorError, ValueError):
    """A model name or version cannot be used as an S3 key segment."""


class LocalModelNotFoundError(MirrorError):
    """The model store entry to push does not exist."""


class VersionNotFoundError(MirrorError):
    """No complete version (no manifest) exists in the mirror, or its manifest is not readable.

    A reader without ``s3:ListBucket`` gets AccessDenied for a missing key, so the two
    cannot be told apart and are reported alike.
    """


class ChampionNotSetError(MirrorError):
    """The mirror has no champion pointer yet."""


class VersionConflictError(MirrorError):
    """The version already exists in the mirror with different content."""


class LocalStoreConflictError(MirrorError):
    """The local store holds the version with content different from the mirror."""


class ManifestError(MirrorError):
    """A manifest or champion pointer is malformed."""


class ArtifactIntegrityError(MirrorError):
    """The downloaded artifact does not match its manifest (size, sha256 or content)."""


class S3AccessError(MirrorError):
    """S3 could not be reached or refused a request; ``code`` is S3's error code, if any."""

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


def _check_name(kind: str, value: str) -> str:
    if not _NAME_RE.fullmatch(value):
        raise InvalidNameError(f"invalid {kind} {value!r}: use letters, digits, '.', '_', '-'")
    return value


def artifact_filename(sha256: str) -> str:
    """Content-addressed file name of an export: different bytes never share a key."""
    if not _SHA256_RE.fullmatch(sha256):
        raise InvalidNameError(f"invalid artifact sha256 {sha256!r}: expected 64 hex digits")
    return f"model-{sha256}.bentomodel"


def _check_artifact_filename(filename: str) -> str:
    """One key segment, and not one of the mirror's own JSON files."""
    if filename in (MANIFEST_FILENAME, CHAMPION_FILENAME):
        raise InvalidNameError(f"invalid artifact filename {filename!r}")
    return _check_name("artifact filename", filename)


@dataclass(frozen=True)
class MirrorLayout:
    """The one description of where a model's versions live in the bucket."""

    bucket: str
    prefix: str = "models"
    model_name: str = MODEL_NAME

    def __post_init__(self) -> None:
        if not self.bucket:
            raise InvalidNameError("no S3 bucket given")
        object.__setattr__(self, "prefix", self.prefix.strip("/"))
        _check_name("model name", self.model_name)

    @property
    def model_root(self) -> str:
        """Key prefix holding every version of the model (ends with '/')."""
        return f"{self.prefix}/{self.model_name}/" if self.prefix else f"{self.model_name}/"

    def version_prefix(self, version: str) -> str:
        """Key prefix of one version (ends with '/')."""
        return f"{self.model_root}{_check_name('version', version)}/"

    def artifact_key(self, version: str, filename: str) -> str:
        """Key of a version's exported model, ``filename`` as its manifest records it."""
        return self.version_prefix(version) + _check_artifact_filename(filename)

    def manifest_key(self, version: str) -> str:
        """Key of a version's manifest."""
        return self.version_prefix(version) + MANIFEST_FILENAME

    @property
    def champion_key(self) -> str:
        """Key of the champion pointer."""
        return self.model_root + CHAMPION_FILENAME

    def version_uri(self, version: str) -> str:
        """``s3://`` URI of a version, as accepted by :func:`parse_s3_uri`."""
        return f"s3://{self.bucket}/{self.version_prefix(version)}"


@dataclass(frozen=True)
class ModelLocation:
    """A layout plus one version: what an ``s3://`` model URI names."""

    layout: MirrorLayout
    version: str


def parse_s3_uri(uri: str) -> ModelLocation:
    """Split ``s3://bucket/prefix/<model_name>/<version>/`` into layout and version."""
    scheme, sep, rest = uri.partition("://")
    if scheme != "s3" or not sep:
        raise InvalidS3UriError(f"not an s3:// URI: {uri!r}")
    bucket, _, path = rest.partition("/")
    parts = [part for part in path.split("/") if part]
    if not bucket or len(parts) < 2:
        raise InvalidS3UriError(
            f"expected s3://<bucket>/<prefix>/<model_name>/<version>/, got {uri!r}"
        )
    *prefix_parts, model_name, version = parts
    try:
        layout = MirrorLayout(bucket, "/".join(prefix_parts), model_name)
        _check_name("version", version)
    except InvalidNameError as exc:
        raise InvalidS3UriError(f"{exc} in {uri!r}") from None
    return ModelLocation(layout, version)


def directory_digest(root: str | os.PathLike[str]) -> tuple[str, dict[str, str]]:
    """Content digest of a directory and its files' sha256, keyed by POSIX relative path.

    Independent of mtimes, owners and walk order, so an entry re-imported into another
    store has the same digest as the original.
    """
    base = Path(root)
    files = {
        path.relative_to(base).as_posix(): sha256_file(path)
        for path in sorted(base.rglob("*"))
        if path.is_file()
    }
    canonical = json.dumps(files, sort_keys=True, separators=(",", ":")).encode()
    return sha256_bytes(canonical), files


@dataclass(frozen=True)
class Manifest:
    """What the mirror knows about one pushed version (``manifest.json``)."""

    tag: str
    version: str
    artifact_sha256: str
    artifact_size: int
    content_sha256: str
    artifact_filename: str
    files: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    data_sha256: str | None = None
    library_versions: dict[str, Any] = field(default_factory=dict)
    created_at: str | None = None
    git_commit: str | None = None
    labels: dict[str, Any] = field(default_factory=dict)
    bentoml_version: str | None = None
    pushed_at: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON document stored in S3."""
        return {
            "schema_version": MANIFEST_SCHEMA_VERSION,
            "tag": self.tag,
            "version": self.version,
            "artifact": {
                "filename": self.artifact_filename,
                "sha256": self.artifact_sha256,
                "size": self.artifact_size,
            },
            "content_sha256": self.content_sha256,
            "files": self.files,
            "metrics": self.metrics,
            "data_sha256": self.data_sha256,
            "library_versions": self.library_versions,
            "created_at": self.created_at,
            "git_commit": self.git_commit,
            "labels": self.labels,
            "bentoml_version": self.bentoml_version,
            "pushed_at": self.pushed_at,
        }

    @classmethod
    def from_dict(cls, doc: Any) -> Manifest:
        """Validate and read a manifest document; raise ManifestError when malformed."""
        try:
            artifact = doc["artifact"]
            manifest = cls(
                tag=str(doc["tag"]),
                version=str(doc["version"]),
                artifact_sha256=str(artifact["sha256"]),
                artifact_size=artifact["size"],
                content_sha256=str(doc["content_sha256"]),
                artifact_filename=str(artifact["filename"]),
                files=dict(doc.get("files") or {}),
                metrics=dict(doc.get("metrics") or {}),
                data_sha256=doc.get("data_sha256"),
                library_versions=dict(doc.get("library_versions") or {}),
                created_at=doc.get("created_at"),
                git_commit=doc.get("git_commit"),
                labels=dict(doc.get("labels") or {}),
                bentoml_version=doc.get("bentoml_version"),
                pushed_at=doc.get("pushed_at"),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ManifestError(f"malformed manifest: missing or invalid {exc}") from None
        if not (
            _SHA256_RE.fullmatch(manifest.artifact_sha256)
            and _SHA256_RE.fullmatch(manifest.content_sha256)
        ):
            raise ManifestError("malformed manifest: sha256 fields must be 64 hex digits")
        if type(manifest.artifact_size) is not int or manifest.artifact_size < 0:
            raise ManifestError("malformed manifest: artifact size must be a whole number")
        try:
            _check_artifact_filename(manifest.artifact_filename)
        except InvalidNameError as exc:
            raise ManifestError(f"malformed manifest: {exc}") from None
        if manifest.tag != f"{manifest.tag.partition(':')[0]}:{manifest.version}":
            raise ManifestError(
                f"malformed manifest: tag {manifest.tag!r} does not carry version "
                f"{manifest.version!r}"
            )
        return manifest


@dataclass(frozen=True)
class PushResult:
    """Outcome of :func:`push`: where the version lives and whether bytes were uploaded."""

    uri: str
    manifest: Manifest
    uploaded: bool


@dataclass(frozen=True)
class VersionInfo:
    """One complete version in the mirror, as :func:`list_versions` reports it."""

    version: str
    tag: str
    created_at: str | None
    metrics: dict[str, Any]
    artifact_size: int
    is_champion: bool


def make_s3_client(*, max_attempts: int = DEFAULT_MAX_ATTEMPTS) -> Any:
    """An S3 client from the standard AWS chain; ``max_attempts`` tries in all, with backoff."""
    config = Config(
        retries={"mode": "standard", "total_max_attempts": max_attempts},
        connect_timeout=10,
        read_timeout=60,
    )
    return boto3.client("s3", config=config)


def _transfer_config(multipart_threshold: int) -> TransferConfig:
    if multipart_threshold < 1:
        raise ValueError("multipart_threshold must be positive")
    return TransferConfig(
        multipart_threshold=multipart_threshold,
        multipart_chunksize=max(multipart_threshold, MIN_MULTIPART_CHUNKSIZE),
    )


@contextlib.contextmanager
def _s3_errors(action: str) -> Iterator[None]:
    """Turn botocore/boto3 failures into one-line S3AccessError messages."""
    try:
        yield
    except ClientError as exc:
        code = _code(exc)
        message = exc.response.get("Error", {}).get("Message") or exc.operation_name
        raise S3AccessError(f"{action}: {code or '?'}: {message}", code) from exc
    except (BotoCoreError, boto3.exceptions.Boto3Error) as exc:
        raise S3AccessError(f"{action}: {exc}") from exc


def _code(exc: ClientError) -> str | None:
    """S3's error code of a failed call (e.g. NoSuchKey, AccessDenied, PreconditionFailed)."""
    code = exc.response.get("Error", {}).get("Code")
    return None if code is None else str(code)


def _get_json(client: Any, bucket: str, key: str) -> Any | None:
    """Read a small JSON object; None when the key does not exist."""
    with _s3_errors(f"reading s3://{bucket}/{key}"):
        try:
            response = client.get_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            if _code(exc) in _MISSING_KEY_CODES:
                return None
            raise
        body = response["Body"].read()
    try:
        return json.loads(body)
    except ValueError:
        raise ManifestError(f"s3://{bucket}/{key} is not valid JSON") from None


def _json_bytes(doc: Mapping[str, Any]) -> bytes:
    return json.dumps(doc, indent=2, sort_keys=True, default=str).encode() + b"\n"


def _read_manifest(client: Any, layout: MirrorLayout, version: str) -> Manifest | None:
    doc = _get_json(client, layout.bucket, layout.manifest_key(version))
    if doc is None:
        return None
    manifest = Manifest.from_dict(doc)
    expected_tag = f"{layout.model_name}:{version}"
    if manifest.tag != expected_tag:
        raise ManifestError(
            f"manifest at {layout.version_uri(version)} names {manifest.tag!r}, "
            f"expected {expected_tag!r}"
        )
    return manifest


def _require_manifest(client: Any, layout: MirrorLayout, version: str) -> Manifest:
    """The version's manifest; VersionNotFoundError when it is missing or access is denied."""
    try:
        manifest = _read_manifest(client, layout, version)
    except S3AccessError as exc:
        # A 403 (AccessDenied) is what a missing key looks like without ListBucket; other
        # 403s (InvalidAccessKeyId, SignatureDoesNotMatch) are credential problems.
        if exc.code not in _DENIED_CODES:
            raise
        raise VersionNotFoundError(_version_not_found(layout, version)) from exc
    if manifest is None:
        raise VersionNotFoundError(_version_not_found(layout, version))
    return manifest


def _version_not_found(layout: MirrorLayout, version: str) -> str:
    return (
        f"version {version!r} not found or not readable at {layout.version_uri(version)} "
        f"(no readable s3://{layout.bucket}/{layout.manifest_key(version)}; "
        "without s3:ListBucket S3 reports a missing key as AccessDenied)"
    )


def _read_champion(client: Any, layout: MirrorLayout) -> str | None:
    doc = _get_json(client, layout.bucket, layout.champion_key)
    if doc is None:
        return None
    version = doc.get("version") if isinstance(doc, dict) else None
    if not isinstance(version, str):
        raise ManifestError(f"s3://{layout.bucket}/{layout.champion_key} names no version")
    return _check_name("version", version)


def champion_version(
    bucket: str, prefix: str, *, model_name: str = MODEL_NAME, s3_client: Any = None
) -> str:
    """The version the champion pointer names; ChampionNotSetError when there is none."""
    layout = MirrorLayout(bucket, prefix, model_name)
    version = _read_champion(s3_client or make_s3_client(), layout)
    if version is None:
        raise ChampionNotSetError(
            f"no champion at s3://{layout.bucket}/{layout.champion_key}; promote a version first"
        )
    return version


def _utc_now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _local_model(tag: str) -> bentoml.Model:
    try:
        return bentoml.models.get(tag)
    except NotFound:
        raise LocalModelNotFoundError(f"model {tag!r} is not in the local BentoML store") from None


def _build_manifest(
    model: bentoml.Model, artifact: Path, content_sha256: str, files: dict[str, str]
) -> Manifest:
    metadata: Mapping[str, Any] = model.info.metadata or {}
    created_at = metadata.get("created_at") or model.creation_time.isoformat()
    artifact_sha256 = sha256_file(artifact)
    return Manifest(
        tag=str(model.tag),
        version=str(model.tag.version),
        artifact_sha256=artifact_sha256,
        artifact_size=artifact.stat().st_size,
        content_sha256=content_sha256,
        artifact_filename=artifact_filename(artifact_sha256),
        files=files,
        metrics=dict(metadata.get("metrics") or {}),
        data_sha256=metadata.get("data_sha256"),
        library_versions=dict(metadata.get("library_versions") or {}),
        created_at=str(created_at),
        git_commit=metadata.get("git_commit"),
        labels=dict(model.info.labels or {}),
        bentoml_version=model.info.context.bentoml_version,
        pushed_at=_utc_now(),
    )


def _compare_existing(existing: Manifest, content_sha256: str, uri: str) -> None:
    if existing.content_sha256 != content_sha256:
        raise VersionConflictError(
            f"{existing.tag} already exists at {uri} with different content "
            f"(mirror {existing.content_sha256[:12]}, local {content_sha256[:12]}); "
            "versions are immutable, train a new version instead"
        )


def push(
    tag: str,
    bucket: str,
    prefix: str,
    *,
    multipart_threshold: int = DEFAULT_MULTIPART_THRESHOLD,
    s3_client: Any = None,
) -> PushResult:
    """Export a model store entry and upload it with its manifest (immutable, idempotent)."""
    model = _local_model(tag)
    version = str(model.tag.version)
    layout = MirrorLayout(bucket, prefix, model.tag.name)
    uri = layout.version_uri(version)
    client = s3_client or make_s3_client()
    content_sha256, files = directory_digest(model.path)

    existing = _read_manifest(client, layout, version)
    if existing is not None:
        _compare_existing(existing, content_sha256, uri)
        logger.info("%s is already mirrored at %s (identical content)", model.tag, uri)
        return PushResult(uri, existing, uploaded=False)

    with tempfile.TemporaryDirectory(prefix="wineq-push-") as tmp:
        artifact = Path(
            bentoml.models.export_model(str(model.tag), str(Path(tmp) / ARTIFACT_FILENAME))
        )
        manifest = _build_manifest(model, artifact, content_sha256, files)
        # A content-addressed key: a racing pusher's different bytes go to another key.
        artifact_key = layout.artifact_key(version, manifest.artifact_filename)
        with _s3_errors(f"uploading {artifact_key}"):
            client.upload_file(
                str(artifact),
                layout.bucket,
                artifact_key,
                ExtraArgs={"ContentType": "application/x-xz"},
                Config=_transfer_config(multipart_threshold),
            )

    # The manifest goes last and only if absent, so a version becomes visible once,
    # complete; a concurrent pusher that wins the race is compared like any other, and
    # our artifact, under its own key, is left unreferenced beside the winner's.
    try:
        with _s3_errors(f"writing {layout.manifest_key(version)}"):
            client.put_object(
                Bucket=layout.bucket,
                Key=layout.manifest_key(version),
                Body=_json_bytes(manifest.to_dict()),
                ContentType="application/json",
                IfNoneMatch="*",
            )
    except S3AccessError as exc:
        if exc.code != "PreconditionFailed":
            raise
        winner = _require_manifest(client, layout, version)
        _compare_existing(winner, content_sha256, uri)
        return PushResult(uri, winner, uploaded=False)
    logger.info("pushed %s to %s (%d bytes)", model.tag, uri, manifest.artifact_size)
    return PushResult(uri, manifest, uploaded=True)


def _check_local_copy(tag: str, manifest: Manifest) -> bool:
    """True when the local store already holds the manifest's content under ``tag``."""
    try:
        local = bentoml.models.get(tag)
    except NotFound:
        return False
    digest, _ = directory_digest(local.path)
    if digest != manifest.content_sha256:
        raise LocalStoreConflictError(
            f"local store already holds {tag} with different content "
            f"(local {digest[:12]}, mirror {manifest.content_sha256[:12]}); "
            f"delete it with `bentoml models delete {tag}` to pull the mirrored one"
        )
    return True


def _verify_download(path: Path, manifest: Manifest, uri: str) -> None:
    size = path.stat().st_size
    if size != manifest.artifact_size:
        raise ArtifactIntegrityError(
            f"{uri}{manifest.artifact_filename} is {size} bytes, "
            f"manifest says {manifest.artifact_size}; "
            "refusing to import (truncated or replaced object)"
        )
    sha256 = sha256_file(path)
    if sha256 != manifest.artifact_sha256:
        raise ArtifactIntegrityError(
            f"{uri}{manifest.artifact_filename} has sha256 {sha256[:12]}…, manifest says "
            f"{manifest.artifact_sha256[:12]}…; refusing to import (corrupted or replaced object)"
        )


def _import_verified(path: Path, manifest: Manifest, uri: str) -> None:
    try:
        imported = bentoml.models.import_model(str(path))
    except BentoMLException:
        # Another process (e.g. a second service worker) imported it meanwhile.
        if _check_local_copy(manifest.tag, manifest):
            return
        raise
    digest, _ = directory_digest(imported.path)
    if str(imported.tag) != manifest.tag or digest != manifest.content_sha256:
        bentoml.models.delete(imported.tag)
        raise ArtifactIntegrityError(
            f"{uri}{manifest.artifact_filename} unpacked to {imported.tag} with content "
            f"{digest[:12]}, manifest says {manifest.tag} / {manifest.content_sha256[:12]}"
        )


def pull(
    bucket: str,
    prefix: str,
    version: str | None = None,
    *,
    model_name: str = MODEL_NAME,
    work_dir: str | os.PathLike[str] | None = None,
    multipart_threshold: int = DEFAULT_MULTIPART_THRESHOLD,
    s3_client: Any = None,
) -> str:
    """Import a version (default: the champion) into the local store after checking it.

    The artifact is downloaded into ``work_dir`` (default: the system temp folder) and
    imported only once its size and sha256 match the manifest.  A version already in the
    local store with the same content is a no-op.  Returns the model tag.
    """
    layout = MirrorLayout(bucket, prefix, model_name)
    client = s3_client or make_s3_client()
    if version is None:
        version = champion_version(bucket, prefix, model_name=model_name, s3_client=client)
    uri = layout.version_uri(version)
    manifest = _require_manifest(client, layout, version)
    if _check_local_copy(manifest.tag, manifest):
        logger.info("%s is already in the local store", manifest.tag)
        return manifest.tag

    if work_dir is not None:
        os.makedirs(work_dir, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="wineq-pull-", dir=work_dir) as tmp:
        artifact = Path(tmp) / ARTIFACT_FILENAME
        artifact_key = layout.artifact_key(version, manifest.artifact_filename)
        with _s3_errors(f"downloading {artifact_key}"):
            client.download_file(
                layout.bucket,
                artifact_key,
                str(artifact),
                Config=_transfer_config(multipart_threshold),
            )
        _verify_download(artifact, manifest, uri)
        _import_verified(artifact, manifest, uri)
    logger.info("pulled %s from %s", manifest.tag, uri)
    return manifest.tag


def pull_from_uri(uri: str, *, work_dir: str | os.PathLike[str] | None = None) -> str:
    """Pull the version an ``s3://…/<model_name>/<version>/`` URI names; returns its tag."""
    location = parse_s3_uri(uri)
    return pull(
        location.layout.bucket,
        location.layout.prefix,
        location.version,
        model_name=location.layout.model_name,
        work_dir=work_dir,
    )


def promote(
    bucket: str,
    prefix: str,
    version: str,
    *,
    model_name: str = MODEL_NAME,
    s3_client: Any = None,
) -> Manifest:
    """Point the champion at a complete version (one whose manifest exists)."""
    layout = MirrorLayout(bucket, prefix, model_name)
    client = s3_client or make_s3_client()
    manifest = _require_manifest(client, layout, version)
    pointer = {
        "schema_version": MANIFEST_SCHEMA_VERSION,
        "version": version,
        "tag": manifest.tag,
        "artifact_sha256": manifest.artifact_sha256,
        "promoted_at": _utc_now(),
    }
    with _s3_errors(f"writing {layout.champion_key}"):
        client.put_object(
            Bucket=layout.bucket,
            Key=layout.champion_key,
            Body=_json_bytes(pointer),
            ContentType="application/json",
        )
    logger.info("champion of s3://%s/%s is now %s", bucket, layout.model_root, version)
    return manifest


def _list_version_names(client: Any, layout: MirrorLayout) -> list[str]:
    names: list[str] = []
    with _s3_errors(f"listing s3://{layout.bucket}/{layout.model_root}"):
        paginator = client.get_paginator("list_objects_v2")
        pages = paginator.paginate(Bucket=layout.bucket, Prefix=layout.model_root, Delimiter="/")
        for page in pages:
            for common in page.get("CommonPrefixes", []):
                name = str(common["Prefix"])[len(layout.model_root) :].rstrip("/")
                if _NAME_RE.fullmatch(name):
                    names.append(name)
    return names


def list_versions(
    bucket: str, prefix: str, *, model_name: str = MODEL_NAME, s3_client: Any = None
) -> list[VersionInfo]:
    """Complete versions in the mirror, oldest first, with metrics and the champion flag."""
    layout = MirrorLayout(bucket, prefix, model_name)
    client = s3_client or make_s3_client()
    champion = _read_champion(client, layout)
    infos: list[VersionInfo] = []
    for name in _list_version_names(client, layout):
        manifest = _read_manifest(client, layout, name)
        if manifest is None:  # an interrupted push: not a version
            continue
        infos.append(
            VersionInfo(
                version=name,
                tag=manifest.tag,
                created_at=manifest.created_at,
                metrics=manifest.metrics,
                artifact_size=manifest.artifact_size,
                is_champion=name == champion,
            )
        )
    infos.sort(key=lambda info: (info.created_at or "", info.version))
    return infos
