"""S3 model mirror: push, pull and promote BentoML model store entries.

Layout of the mirror (built only by :class:`MirrorLayout`)::

    s3://<bucket>/<prefix>/<model_name>/<version>/model-<sha256>.bentomodel   exported entry
    s3://<bucket>/<prefix>/<model_name>/<version>/manifest.json               written last
    s3://<bucket>/<prefix>/<model_name>/champion.json                         mutable pointer

A version is visible only once its manifest exists, and a manifest is never replaced:
pushing a version again is a no-op when the model directory's content digest matches
the manifest and a :class:`ConflictError` otherwise.  Exports are not compared byte for
byte because the tarball records file mtimes, which change when an entry is imported
into another store; the content digest (every file's path and sha256, ``model.yaml``
with labels, metadata and creation time included) does not.

The export is stored under its own sha256 and the manifest names that file, so two
pushes of one version that race never write different bytes to the same key: the
loser's upload lands beside the winner's, whose manifest still matches its artifact.

Credentials come from the standard AWS chain and the endpoint from boto3's standard
``AWS_ENDPOINT_URL``.  The serving image imports this module at start-up, so it imports
nothing but the standard library, boto3/botocore, bentoml, pydantic and the
standard-library-only ``training.artifacts`` and ``training.checksums``.
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
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Final, Literal, TypeVar

import bentoml
import boto3
import boto3.exceptions
from bentoml.exceptions import BentoMLException
from bentoml.exceptions import NotFound as StoreEntryNotFound
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from training.artifacts import MODEL_NAME, ArtifactError, verify_artifacts
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
MAX_ATTEMPTS: Final = 5

_NAME_RE: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_SHA256_PATTERN: Final = r"^[0-9a-f]{64}$"
_MISSING_KEY_CODES: Final = frozenset({"NoSuchKey", "404", "NotFound"})
# Without s3:ListBucket (the service's task role) S3 answers a missing key with 403.
_DENIED_CODES: Final = frozenset({"AccessDenied", "403", "Forbidden"})


class MirrorError(Exception):
    """Base of every error the mirror raises on purpose."""


class InvalidNameError(MirrorError, ValueError):
    """A bucket, model name, version or ``s3://`` URI that names no place in the mirror."""


class NotFoundError(MirrorError):
    """No such version or champion in the mirror, or no such entry in the local store.

    A reader without ``s3:ListBucket`` gets AccessDenied for a missing key, so a missing
    version and an unreadable one are reported alike.
    """


class ConflictError(MirrorError):
    """The version exists with other content: in the mirror (push) or the local store (pull)."""


class IntegrityError(MirrorError):
    """An artifact, manifest or champion pointer fails its checks (schema, size, sha256)."""


class S3AccessError(MirrorError):
    """S3 could not be reached or refused a request; ``code`` is S3's error code, if any."""

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


def _check_name(kind: str, value: str) -> str:
    if not _NAME_RE.fullmatch(value):
        raise InvalidNameError(f"invalid {kind} {value!r}: use letters, digits, '.', '_', '-'")
    return value


def _check_version(version: str) -> str:
    return _check_name("version", version)


def _check_artifact_filename(filename: str) -> str:
    """One key segment, and not one of the mirror's own JSON files."""
    if filename in (MANIFEST_FILENAME, CHAMPION_FILENAME):
        raise InvalidNameError(f"invalid artifact filename {filename!r}")
    return _check_name("artifact filename", filename)


def artifact_filename(sha256: str) -> str:
    """Content-addressed file name of an export: different bytes never share a key."""
    if not re.fullmatch(_SHA256_PATTERN, sha256):
        raise InvalidNameError(f"invalid artifact sha256 {sha256!r}: expected 64 hex digits")
    return f"model-{sha256}.bentomodel"


# Field types of the mirror's JSON documents; a name check's ValueError fails validation.
Sha256 = Annotated[str, Field(pattern=_SHA256_PATTERN)]
VersionName = Annotated[str, AfterValidator(_check_version)]
ArtifactName = Annotated[str, AfterValidator(_check_artifact_filename)]


class ArtifactRecord(BaseModel):
    """The exported entry a manifest names: its key's file name, sha256 and size."""

    model_config = ConfigDict(frozen=True)

    filename: ArtifactName
    sha256: Sha256
    size: Annotated[int, Field(strict=True, ge=0)]


class Manifest(BaseModel):
    """What the mirror knows about one pushed version (``manifest.json``)."""

    model_config = ConfigDict(frozen=True)

    schema_version: Literal[1] = MANIFEST_SCHEMA_VERSION
    tag: str
    version: VersionName
    artifact: ArtifactRecord
    content_sha256: Sha256
    files: dict[str, str] = {}
    metrics: dict[str, Any] = {}
    data_sha256: str | None = None
    library_versions: dict[str, Any] = {}
    created_at: str | None = None
    git_commit: str | None = None
    labels: dict[str, Any] = {}
    bentoml_version: str | None = None
    pushed_at: str | None = None

    @model_validator(mode="after")
    def _tag_carries_the_version(self) -> Manifest:
        if self.tag.partition(":")[2] != self.version:
            raise ValueError(f"tag {self.tag!r} does not carry version {self.version!r}")
        return self


class ChampionPointer(BaseModel):
    """The champion pointer (``champion.json``): which complete version serves."""

    model_config = ConfigDict(frozen=True)

    schema_version: Literal[1] = MANIFEST_SCHEMA_VERSION
    version: VersionName
    tag: str
    artifact_sha256: Sha256
    promoted_at: str


_Document = TypeVar("_Document", bound=BaseModel)


def _parse(document: type[_Document], body: bytes, uri: str) -> _Document:
    """Validate a JSON document of the mirror; IntegrityError naming every problem."""
    try:
        return document.model_validate_json(body)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, error['loc'])) or 'document'}: {error['msg']}"
            for error in exc.errors()
        )
        raise IntegrityError(f"malformed {uri}: {problems}") from None


def _json_bytes(document: BaseModel) -> bytes:
    return document.model_dump_json(indent=2).encode() + b"\n"


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
        return f"{self.model_root}{_check_version(version)}/"

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

    def uri(self, key: str) -> str:
        """``s3://`` URI of a key in the bucket."""
        return f"s3://{self.bucket}/{key}"


def parse_s3_uri(uri: str) -> tuple[MirrorLayout, str]:
    """Split ``s3://bucket/prefix/<model_name>/<version>/`` into layout and version."""
    scheme, sep, rest = uri.partition("://")
    bucket, _, path = rest.partition("/")
    parts = [part for part in path.split("/") if part]
    if scheme != "s3" or not sep or not bucket or len(parts) < 2:
        raise InvalidNameError(
            f"expected s3://<bucket>/<prefix>/<model_name>/<version>/, got {uri!r}"
        )
    *prefix_parts, model_name, version = parts
    try:
        return MirrorLayout(bucket, "/".join(prefix_parts), model_name), _check_version(version)
    except InvalidNameError as exc:
        raise InvalidNameError(f"{exc} in {uri!r}") from None


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
class PushResult:
    """Outcome of :func:`push`: where the version lives and whether bytes were uploaded."""

    uri: str
    manifest: Manifest
    uploaded: bool


@dataclass(frozen=True)
class VersionInfo:
    """One complete version in the mirror, as :func:`list_versions` reports it."""

    manifest: Manifest
    is_champion: bool


def make_s3_client() -> Any:
    """An S3 client from the standard AWS chain that retries transient failures."""
    config = Config(
        retries={"mode": "standard", "total_max_attempts": MAX_ATTEMPTS},
        connect_timeout=10,
        read_timeout=60,
    )
    return boto3.client("s3", config=config)


def _transfer_config(multipart_threshold: int) -> TransferConfig:
    return TransferConfig(
        multipart_threshold=multipart_threshold,
        multipart_chunksize=max(multipart_threshold, MIN_MULTIPART_CHUNKSIZE),
    )


def _code(exc: ClientError) -> str | None:
    """S3's error code of a failed call (e.g. NoSuchKey, AccessDenied, PreconditionFailed)."""
    code = exc.response.get("Error", {}).get("Code")
    return None if code is None else str(code)


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


def _get(client: Any, layout: MirrorLayout, key: str) -> bytes | None:
    """A small object's bytes; None when the key does not exist."""
    with _s3_errors(f"reading {layout.uri(key)}"):
        try:
            response = client.get_object(Bucket=layout.bucket, Key=key)
        except ClientError as exc:
            if _code(exc) in _MISSING_KEY_CODES:
                return None
            raise
        return bytes(response["Body"].read())


def _read_manifest(client: Any, layout: MirrorLayout, version: str) -> Manifest | None:
    key = layout.manifest_key(version)
    body = _get(client, layout, key)
    if body is None:
        return None
    manifest = _parse(Manifest, body, layout.uri(key))
    expected_tag = f"{layout.model_name}:{version}"
    if manifest.tag != expected_tag:
        raise IntegrityError(f"{layout.uri(key)} names {manifest.tag!r}, expected {expected_tag!r}")
    return manifest


def _require_manifest(client: Any, layout: MirrorLayout, version: str) -> Manifest:
    """The version's manifest; NotFoundError when it is missing or access is denied."""
    try:
        manifest = _read_manifest(client, layout, version)
    except S3AccessError as exc:
        # A 403 (AccessDenied) is what a missing key looks like without ListBucket; other
        # 403s (InvalidAccessKeyId, SignatureDoesNotMatch) are credential problems.
        if exc.code not in _DENIED_CODES:
            raise
        manifest = None
    if manifest is None:
        raise NotFoundError(
            f"version {version!r} not found or not readable at {layout.version_uri(version)} "
            f"(no readable {layout.uri(layout.manifest_key(version))}; "
            "without s3:ListBucket S3 reports a missing key as AccessDenied)"
        )
    return manifest


def _read_champion(client: Any, layout: MirrorLayout) -> str | None:
    body = _get(client, layout, layout.champion_key)
    if body is None:
        return None
    return _parse(ChampionPointer, body, layout.uri(layout.champion_key)).version


def _require_champion(client: Any, layout: MirrorLayout) -> str:
    version = _read_champion(client, layout)
    if version is None:
        raise NotFoundError(
            f"no champion at {layout.uri(layout.champion_key)}; promote a version first"
        )
    return version


def champion_version(bucket: str, prefix: str, *, s3_client: Any = None) -> str:
    """The version the champion pointer names; NotFoundError when there is none."""
    return _require_champion(s3_client or make_s3_client(), MirrorLayout(bucket, prefix))


def _utc_now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _local_model(tag: str) -> bentoml.Model:
    try:
        return bentoml.models.get(tag)
    except StoreEntryNotFound:
        raise NotFoundError(f"model {tag!r} is not in the local BentoML store") from None


def _build_manifest(
    model: bentoml.Model, artifact: Path, content_sha256: str, files: dict[str, str]
) -> Manifest:
    metadata: Mapping[str, Any] = model.info.metadata or {}
    sha256 = sha256_file(artifact)
    return Manifest(
        tag=str(model.tag),
        version=str(model.tag.version),
        artifact=ArtifactRecord(
            filename=artifact_filename(sha256), sha256=sha256, size=artifact.stat().st_size
        ),
        content_sha256=content_sha256,
        files=files,
        metrics=dict(metadata.get("metrics") or {}),
        data_sha256=metadata.get("data_sha256"),
        library_versions=dict(metadata.get("library_versions") or {}),
        created_at=str(metadata.get("created_at") or model.creation_time.isoformat()),
        git_commit=metadata.get("git_commit"),
        labels=dict(model.info.labels or {}),
        bentoml_version=model.info.context.bentoml_version,
        pushed_at=_utc_now(),
    )


def _compare_existing(existing: Manifest, content_sha256: str, uri: str) -> None:
    if existing.content_sha256 != content_sha256:
        raise ConflictError(
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
    """Export a verified model store entry and upload it with its manifest (immutable)."""
    model = _local_model(tag)
    try:
        verify_artifacts(model)
    except ArtifactError as exc:
        raise IntegrityError(f"refusing to push {exc}") from None
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
        artifact_key = layout.artifact_key(version, manifest.artifact.filename)
        with _s3_errors(f"uploading {layout.uri(artifact_key)}"):
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
    manifest_key = layout.manifest_key(version)
    try:
        with _s3_errors(f"writing {layout.uri(manifest_key)}"):
            client.put_object(
                Bucket=layout.bucket,
                Key=manifest_key,
                Body=_json_bytes(manifest),
                ContentType="application/json",
                IfNoneMatch="*",
            )
    except S3AccessError as exc:
        if exc.code != "PreconditionFailed":
            raise
        winner = _require_manifest(client, layout, version)
        _compare_existing(winner, content_sha256, uri)
        return PushResult(uri, winner, uploaded=False)
    logger.info("pushed %s to %s (%d bytes)", model.tag, uri, manifest.artifact.size)
    return PushResult(uri, manifest, uploaded=True)


def _holds_locally(manifest: Manifest) -> bool:
    """True when the local store holds the manifest's content; ConflictError for other."""
    try:
        local = bentoml.models.get(manifest.tag)
    except StoreEntryNotFound:
        return False
    digest, _ = directory_digest(local.path)
    if digest != manifest.content_sha256:
        raise ConflictError(
            f"local store already holds {manifest.tag} with different content "
            f"(local {digest[:12]}, mirror {manifest.content_sha256[:12]}); "
            f"delete it with `bentoml models delete {manifest.tag}` to pull the mirrored one"
        )
    return True


def _verify_download(path: Path, manifest: Manifest, uri: str) -> None:
    size = path.stat().st_size
    if size != manifest.artifact.size:
        raise IntegrityError(
            f"{uri} is {size} bytes, manifest says {manifest.artifact.size}; "
            "refusing to import (truncated or replaced object)"
        )
    sha256 = sha256_file(path)
    if sha256 != manifest.artifact.sha256:
        raise IntegrityError(
            f"{uri} has sha256 {sha256[:12]}…, manifest says {manifest.artifact.sha256[:12]}…; "
            "refusing to import (corrupted or replaced object)"
        )


def _import_verified(path: Path, manifest: Manifest, uri: str) -> None:
    try:
        imported = bentoml.models.import_model(str(path))
    except BentoMLException:
        # Another process (e.g. a second service worker) imported it meanwhile.
        if _holds_locally(manifest):
            return
        raise
    digest, _ = directory_digest(imported.path)
    if str(imported.tag) != manifest.tag or digest != manifest.content_sha256:
        bentoml.models.delete(imported.tag)
        raise IntegrityError(
            f"{uri} unpacked to {imported.tag} with content {digest[:12]}, "
            f"manifest says {manifest.tag} / {manifest.content_sha256[:12]}"
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
        version = _require_champion(client, layout)
    manifest = _require_manifest(client, layout, version)
    if _holds_locally(manifest):
        logger.info("%s is already in the local store", manifest.tag)
        return manifest.tag

    if work_dir is not None:
        os.makedirs(work_dir, exist_ok=True)
    artifact_key = layout.artifact_key(version, manifest.artifact.filename)
    with tempfile.TemporaryDirectory(prefix="wineq-pull-", dir=work_dir) as tmp:
        artifact = Path(tmp) / ARTIFACT_FILENAME
        with _s3_errors(f"downloading {layout.uri(artifact_key)}"):
            client.download_file(
                layout.bucket,
                artifact_key,
                str(artifact),
                Config=_transfer_config(multipart_threshold),
            )
        _verify_download(artifact, manifest, layout.uri(artifact_key))
        _import_verified(artifact, manifest, layout.uri(artifact_key))
    logger.info("pulled %s from %s", manifest.tag, layout.version_uri(version))
    return manifest.tag


def pull_from_uri(uri: str, *, work_dir: str | os.PathLike[str] | None = None) -> str:
    """Pull the version an ``s3://…/<model_name>/<version>/`` URI names; returns its tag."""
    layout, version = parse_s3_uri(uri)
    return pull(
        layout.bucket, layout.prefix, version, model_name=layout.model_name, work_dir=work_dir
    )


def promote(bucket: str, prefix: str, version: str, *, s3_client: Any = None) -> Manifest:
    """Point the champion at a complete version (one whose manifest exists)."""
    layout = MirrorLayout(bucket, prefix)
    client = s3_client or make_s3_client()
    manifest = _require_manifest(client, layout, version)
    pointer = ChampionPointer(
        version=version,
        tag=manifest.tag,
        artifact_sha256=manifest.artifact.sha256,
        promoted_at=_utc_now(),
    )
    with _s3_errors(f"writing {layout.uri(layout.champion_key)}"):
        client.put_object(
            Bucket=layout.bucket,
            Key=layout.champion_key,
            Body=_json_bytes(pointer),
            ContentType="application/json",
        )
    logger.info("champion of %s is now %s", layout.uri(layout.model_root), version)
    return manifest


def list_versions(bucket: str, prefix: str, *, s3_client: Any = None) -> list[VersionInfo]:
    """Complete versions in the mirror, oldest first, each with the champion flag."""
    layout = MirrorLayout(bucket, prefix)
    client = s3_client or make_s3_client()
    champion = _read_champion(client, layout)
    manifests: list[Manifest] = []
    with _s3_errors(f"listing {layout.uri(layout.model_root)}"):
        pages = client.get_paginator("list_objects_v2").paginate(
            Bucket=layout.bucket, Prefix=layout.model_root, Delimiter="/"
        )
        names = [
            str(common["Prefix"])[len(layout.model_root) :].rstrip("/")
            for page in pages
            for common in page.get("CommonPrefixes", [])
        ]
    for name in filter(_NAME_RE.fullmatch, names):
        manifest = _read_manifest(client, layout, name)
        if manifest is not None:  # None: an interrupted push, not a version
            manifests.append(manifest)
    manifests.sort(key=lambda m: (m.created_at or "", m.version))
    return [VersionInfo(m, is_champion=m.version == champion) for m in manifests]
