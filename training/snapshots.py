"""Validated data snapshots in S3, one per data date: what the ingestion DAG writes.

Layout (built only by :class:`SnapshotLayout`)::

    s3://<bucket>/<prefix>/wine-quality/ds=<YYYY-MM-DD>/winequality-red.csv
    s3://<bucket>/<prefix>/wine-quality/ds=<YYYY-MM-DD>/winequality-white.csv
    s3://<bucket>/<prefix>/wine-quality/ds=<YYYY-MM-DD>/manifest.json    written last

The CSVs are the verified input files, byte for byte; the manifest records each file's
sha256, size and rows, the data set digest and the validation summary.  A snapshot is
visible once its manifest exists and is never replaced: uploading the same data for a
date again writes nothing, other data for that date is a :class:`ConflictError`.
"""

from __future__ import annotations

import datetime as dt
import logging
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final, Literal

import pandas as pd
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, ConfigDict, ValidationError

from training.checksums import sha256_bytes, sha256_file
from training.data import (
    CSV_FILENAMES,
    ChecksumMismatchError,
    WineData,
    fetch_csv,
    load_wine_data,
    read_wine_csv,
)
from training.features import WINE_TYPES
from training.mirror import (
    ConflictError,
    IntegrityError,
    InvalidNameError,
    NotFoundError,
    S3AccessError,
    make_s3_client,
)
from training.pipeline import Ingested
from training.settings import TrainingSettings
from training.validate import DataValidationError, ValidationReport, check_frame

logger = logging.getLogger(__name__)

DATASET: Final = "wine-quality"
DEFAULT_DATA_PREFIX: Final = "data"
MANIFEST_FILENAME: Final = "manifest.json"
SCHEMA_VERSION: Final = 1


class SnapshotFile(BaseModel):
    """One input file of a snapshot."""

    model_config = ConfigDict(frozen=True)

    filename: str
    sha256: str
    size: int
    rows: int


class SnapshotManifest(BaseModel):
    """What a snapshot holds (``manifest.json``)."""

    model_config = ConfigDict(frozen=True)

    schema_version: Literal[1] = SCHEMA_VERSION
    data_date: str
    data_sha256: str
    files: dict[str, SnapshotFile]
    n_rows: int
    n_duplicates: int
    validation: str
    created_at: str


@dataclass(frozen=True)
class SnapshotLayout:
    """Where one bucket keeps the validated data, partitioned by data date."""

    bucket: str
    prefix: str = DEFAULT_DATA_PREFIX

    def __post_init__(self) -> None:
        if not self.bucket:
            raise InvalidNameError("no S3 bucket given for the data snapshots")
        object.__setattr__(self, "prefix", self.prefix.strip("/"))

    def date_prefix(self, data_date: str) -> str:
        """Key prefix of one date's snapshot (ends with '/')."""
        day = check_date(data_date)
        root = f"{self.prefix}/{DATASET}" if self.prefix else DATASET
        return f"{root}/ds={day}/"

    def file_key(self, data_date: str, filename: str) -> str:
        """Key of one input file of a date's snapshot."""
        return self.date_prefix(data_date) + filename

    def manifest_key(self, data_date: str) -> str:
        """Key of a date's manifest."""
        return self.date_prefix(data_date) + MANIFEST_FILENAME

    def uri(self, data_date: str) -> str:
        """``s3://`` URI of a date's snapshot, as :func:`parse_snapshot_uri` reads it."""
        return f"s3://{self.bucket}/{self.date_prefix(data_date)}"


def check_date(value: str) -> str:
    """A data date as YYYY-MM-DD; InvalidNameError for anything else."""
    try:
        return dt.date.fromisoformat(value).isoformat()
    except (TypeError, ValueError):
        raise InvalidNameError(f"invalid data date {value!r}: expected YYYY-MM-DD") from None


def parse_snapshot_uri(uri: str) -> tuple[SnapshotLayout, str]:
    """Split ``s3://bucket/<prefix>/wine-quality/ds=<date>/`` into layout and date."""
    scheme, sep, rest = uri.partition("://")
    bucket, _, path = rest.partition("/")
    parts = [part for part in path.split("/") if part]
    if scheme != "s3" or not sep or len(parts) < 2 or parts[-2] != DATASET:
        raise InvalidNameError(f"expected s3://<bucket>/<prefix>/{DATASET}/ds=<date>/, got {uri!r}")
    *prefix_parts, _, partition = parts
    name, _, day = partition.partition("=")
    if name != "ds":
        raise InvalidNameError(f"expected a ds=<date> partition in {uri!r}")
    return SnapshotLayout(bucket, "/".join(prefix_parts)), check_date(day)


def validated_input(settings: TrainingSettings) -> Ingested:
    """Fetch (or read) both CSVs, verify and validate them; DataValidationError otherwise.

    A file that is not the pinned UCI original is still parsed and validated, so the
    report names what is wrong in it besides the checksum.
    """
    mismatches: list[str] = []
    frames: list[pd.DataFrame] = []
    for wine_type in WINE_TYPES:
        try:
            path, _ = fetch_csv(wine_type, settings)
        except ChecksumMismatchError as exc:
            mismatches.append(str(exc))
            path = exc.path
        if path.is_file():
            frames.append(read_wine_csv(path, wine_type))
    if mismatches:
        report = check_frame(pd.concat(frames, ignore_index=True)) if frames else None
        raise DataValidationError(
            ValidationReport(
                n_rows=report.n_rows if report else 0,
                rows_by_type=report.rows_by_type if report else {},
                n_duplicates=report.n_duplicates if report else 0,
                problems=[*mismatches, *(report.problems if report else [])],
            )
        )
    data = load_wine_data(settings)
    report = check_frame(data.frame)
    if not report.ok:
        raise DataValidationError(report)
    return Ingested(data=data, report=report)


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", "?"))


def read_object(client: Any, bucket: str, key: str) -> bytes | None:
    """A small object's bytes; None when the key does not exist; S3AccessError otherwise."""
    try:
        return bytes(client.get_object(Bucket=bucket, Key=key)["Body"].read())
    except ClientError as exc:
        if _code(exc) in ("NoSuchKey", "404", "NotFound"):
            return None
        raise S3AccessError(f"reading s3://{bucket}/{key}: {_code(exc)}", _code(exc)) from exc
    except BotoCoreError as exc:
        raise S3AccessError(f"reading s3://{bucket}/{key}: {exc}") from exc


def write_object(client: Any, bucket: str, key: str, body: bytes, **extra: Any) -> None:
    """Put one object; S3AccessError carrying S3's error code on failure."""
    try:
        client.put_object(Bucket=bucket, Key=key, Body=body, **extra)
    except ClientError as exc:
        raise S3AccessError(f"writing s3://{bucket}/{key}: {_code(exc)}", _code(exc)) from exc
    except BotoCoreError as exc:
        raise S3AccessError(f"writing s3://{bucket}/{key}: {exc}") from exc


def _read_manifest(client: Any, layout: SnapshotLayout, data_date: str) -> SnapshotManifest | None:
    key = layout.manifest_key(data_date)
    body = read_object(client, layout.bucket, key)
    if body is None:
        return None
    try:
        return SnapshotManifest.model_validate_json(body)
    except ValidationError as exc:
        raise IntegrityError(f"malformed s3://{layout.bucket}/{key}: {exc}") from None


def _build_manifest(
    ingested: Ingested, data_date: str
) -> tuple[SnapshotManifest, dict[str, bytes]]:
    data: WineData = ingested.data
    rows = data.rows_by_type()
    payloads: dict[str, bytes] = {}
    files: dict[str, SnapshotFile] = {}
    for wine_type in WINE_TYPES:
        payload = Path(data.sources[wine_type]).read_bytes()
        digest = sha256_bytes(payload)
        if digest != data.file_sha256[wine_type]:  # the file changed since it was verified
            raise IntegrityError(f"{data.sources[wine_type]} changed after it was validated")
        filename = CSV_FILENAMES[wine_type]
        payloads[filename] = payload
        files[wine_type] = SnapshotFile(
            filename=filename, sha256=digest, size=len(payload), rows=rows[wine_type]
        )
    manifest = SnapshotManifest(
        data_date=check_date(data_date),
        data_sha256=data.data_sha256,
        files=files,
        n_rows=ingested.report.n_rows,
        n_duplicates=ingested.report.n_duplicates,
        validation=ingested.report.render(),
        created_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    )
    return manifest, payloads


@dataclass(frozen=True)
class SnapshotResult:
    """Where a date's snapshot lives, what it holds and whether this call wrote it."""

    uri: str
    manifest: SnapshotManifest
    uploaded: bool

    def summary(self) -> dict[str, Any]:
        """Small JSON for a task's XCom: URI, digest, row counts."""
        return {
            "uri": self.uri,
            "data_date": self.manifest.data_date,
            "data_sha256": self.manifest.data_sha256,
            "rows": {t: f.rows for t, f in self.manifest.files.items()},
            "uploaded": self.uploaded,
        }


def upload_snapshot(
    ingested: Ingested, bucket: str, prefix: str, data_date: str, *, s3_client: Any = None
) -> SnapshotResult:
    """Upload validated data as the date's snapshot; a no-op when it is there already."""
    layout = SnapshotLayout(bucket, prefix)
    client = s3_client or make_s3_client()
    uri = layout.uri(data_date)
    existing = _read_manifest(client, layout, data_date)
    if existing is not None:
        _same_data(existing, ingested.data.data_sha256, uri)
        logger.info("snapshot %s exists with the same data; nothing to upload", uri)
        return SnapshotResult(uri, existing, uploaded=False)

    manifest, payloads = _build_manifest(ingested, data_date)
    for filename, payload in payloads.items():
        key = layout.file_key(data_date, filename)
        write_object(client, layout.bucket, key, payload, ContentType="text/csv")
    try:
        # Last and only if absent: a racing upload of the same date is compared, not replaced.
        write_object(
            client,
            layout.bucket,
            layout.manifest_key(data_date),
            manifest.model_dump_json(indent=2).encode() + b"\n",
            ContentType="application/json",
            IfNoneMatch="*",
        )
    except S3AccessError as exc:
        if exc.code != "PreconditionFailed":
            raise
        winner = _read_manifest(client, layout, data_date)
        if winner is None:
            raise
        _same_data(winner, ingested.data.data_sha256, uri)
        return SnapshotResult(uri, winner, uploaded=False)
    logger.info("uploaded snapshot %s (%d rows)", uri, manifest.n_rows)
    return SnapshotResult(uri, manifest, uploaded=True)


def _same_data(existing: SnapshotManifest, data_sha256: str, uri: str) -> None:
    if existing.data_sha256 != data_sha256:
        raise ConflictError(
            f"{uri} already holds other data (data sha256 {existing.data_sha256[:12]}, "
            f"now {data_sha256[:12]}); snapshots are immutable"
        )


def read_snapshot_manifest(uri: str, *, s3_client: Any = None) -> SnapshotManifest:
    """The manifest of the snapshot at ``uri``; NotFoundError when there is none."""
    layout, data_date = parse_snapshot_uri(uri)
    manifest = _read_manifest(s3_client or make_s3_client(), layout, data_date)
    if manifest is None:
        raise NotFoundError(f"no snapshot at {uri} (its {MANIFEST_FILENAME} is missing)")
    return manifest


def load_snapshot(uri: str, settings: TrainingSettings, *, s3_client: Any = None) -> Ingested:
    """Download a snapshot, check it against its manifest, then verify and validate it."""
    layout, data_date = parse_snapshot_uri(uri)
    client = s3_client or make_s3_client()
    manifest = read_snapshot_manifest(uri, s3_client=client)
    with tempfile.TemporaryDirectory(prefix="wineq-snapshot-") as tmp:
        for record in manifest.files.values():
            target = Path(tmp) / record.filename
            key = layout.file_key(data_date, record.filename)
            try:
                client.download_file(layout.bucket, key, str(target))
            except (ClientError, BotoCoreError) as exc:
                raise S3AccessError(f"downloading s3://{layout.bucket}/{key}: {exc}") from exc
            if sha256_file(target) != record.sha256:
                raise IntegrityError(f"s3://{layout.bucket}/{key} differs from its manifest")
        ingested = validated_input(settings.model_copy(update={"data_dir": Path(tmp)}))
    # The frame is in memory; its sources named the temporary folder, now gone.
    data = replace(
        ingested.data, sources={t: f"{uri}{f.filename}" for t, f in manifest.files.items()}
    )
    if data.data_sha256 != manifest.data_sha256:
        raise IntegrityError(f"{uri}: data sha256 differs from its manifest")
    return Ingested(data=data, report=ingested.report)
