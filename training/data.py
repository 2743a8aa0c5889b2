"""Ingestion of the UCI wine-quality CSVs: download or read, verify SHA-256, parse.

The two files are the published originals of Cortez et al. (2009).  Their SHA-256
digests are pinned here, so a changed mirror, a truncated download or an edited copy
in ``WINEQ_TRAIN_DATA_DIR`` is refused instead of silently training on different data.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

import pandas as pd

from training.checksums import sha256_bytes, sha256_file
from training.features import (
    CSV_HEADER_TO_NAME,
    FEATURE_NAMES,
    REQUEST_FIELDS,
    TARGET,
    WINE_TYPE_FIELD,
    WINE_TYPES,
)

if TYPE_CHECKING:
    from training.settings import TrainingSettings

logger = logging.getLogger(__name__)

CSV_FILENAMES: Final[dict[str, str]] = {
    "red": "winequality-red.csv",
    "white": "winequality-white.csv",
}
# SHA-256 of the UCI originals (the archive has served the same bytes since 2009).
EXPECTED_SHA256: Final[dict[str, str]] = {
    "red": "4a402cf041b025d4566d954c3b9ba8635a3a8a01e039005d97d6a710278cf05e",
    "white": "76c3f809815c17c07212622f776311faeb31e87610d52c26d87d6e361b169836",
}
EXPECTED_ROWS: Final[dict[str, int]] = {"red": 1599, "white": 4898}
CSV_SEPARATOR: Final = ";"
DOWNLOAD_TIMEOUT_S: Final = 30.0
# Column order of the frame every loader returns: the measurements, the label, the type.
FRAME_COLUMNS: Final[tuple[str, ...]] = (*FEATURE_NAMES, TARGET, WINE_TYPE_FIELD)


class DataError(Exception):
    """The wine-quality data could not be obtained or read."""


class ChecksumMismatchError(DataError):
    """A CSV's SHA-256 differs from the pinned UCI original."""

    def __init__(self, path: Path, expected: str, actual: str) -> None:
        self.path = path
        self.expected = expected
        self.actual = actual
        super().__init__(
            f"checksum mismatch for {path}: expected sha256 {expected}, got {actual}; "
            "the file is not the UCI original (edited, truncated or a different version)"
        )


class DownloadError(DataError):
    """A CSV could not be downloaded."""


@dataclass(frozen=True)
class WineData:
    """Both wine types in one frame, with the digests that identify the input data."""

    frame: pd.DataFrame
    file_sha256: dict[str, str]
    data_sha256: str
    sources: dict[str, str]

    def rows_by_type(self) -> dict[str, int]:
        """Row count per wine type."""
        counts = self.frame[WINE_TYPE_FIELD].value_counts()
        return {wine_type: int(counts.get(wine_type, 0)) for wine_type in WINE_TYPES}


def combined_sha256(file_sha256: dict[str, str]) -> str:
    """One digest for the data set: SHA-256 over the per-type file digests, in WINE_TYPES order."""
    joined = "\n".join(f"{wine_type}:{file_sha256[wine_type]}" for wine_type in WINE_TYPES)
    return sha256_bytes(joined.encode("ascii"))


def verify_checksum(path: Path, expected: str) -> str:
    """Return the file's SHA-256, or raise ChecksumMismatchError when it differs from expected."""
    actual = sha256_file(path)
    if actual != expected:
        raise ChecksumMismatchError(path, expected, actual)
    return actual


def _download(url: str, target: Path) -> None:
    """Download url into target atomically (a partial file never takes target's name)."""
    if not url.startswith(("https://", "http://", "file://")):
        raise DownloadError(f"refusing to download {url!r}: only http(s) and file URLs are allowed")
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    try:
        with (
            os.fdopen(fd, "wb") as out,
            urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response,  # noqa: S310 - scheme checked above
        ):
            shutil.copyfileobj(response, out)
        Path(tmp_name).replace(target)
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        raise DownloadError(f"could not download {url}: {exc}") from exc
    finally:
        Path(tmp_name).unlink(missing_ok=True)


def fetch_csv(wine_type: str, settings: TrainingSettings) -> tuple[Path, str]:
    """Path and verified SHA-256 of one wine type's CSV, from data_dir or the download cache."""
    filename = CSV_FILENAMES[wine_type]
    expected = EXPECTED_SHA256[wine_type]
    if settings.data_dir is not None:
        path = settings.data_dir / filename
        if not path.is_file():
            raise DataError(f"{path} not found (WINEQ_TRAIN_DATA_DIR={settings.data_dir})")
        return path, verify_checksum(path, expected)

    path = settings.cache_dir / filename
    if path.is_file():
        try:
            return path, verify_checksum(path, expected)
        except ChecksumMismatchError:
            logger.warning("cached %s does not match its checksum; downloading again", path)
    url = f"{settings.data_url.rstrip('/')}/{filename}"
    logger.info("downloading %s", url)
    _download(url, path)
    try:
        return path, verify_checksum(path, expected)
    except ChecksumMismatchError:
        # Keep a bad download out of the cache so the next run tries again.
        path.unlink(missing_ok=True)
        raise


def read_wine_csv(path: Path, wine_type: str) -> pd.DataFrame:
    """Parse one UCI CSV, map its headers onto the contract's names and add wine_type."""
    try:
        raw = pd.read_csv(path, sep=CSV_SEPARATOR)
    except (OSError, ValueError) as exc:
        raise DataError(f"could not parse {path}: {exc}") from exc
    expected_headers = {*CSV_HEADER_TO_NAME, TARGET}
    missing = sorted(expected_headers - set(raw.columns))
    unexpected = sorted(set(raw.columns) - expected_headers)
    if missing or unexpected:
        raise DataError(
            f"{path} has unexpected headers: missing {missing}, unexpected {unexpected}"
        )
    frame = raw.rename(columns=CSV_HEADER_TO_NAME)
    frame[WINE_TYPE_FIELD] = wine_type
    return frame.loc[:, list(FRAME_COLUMNS)]


def load_wine_data(settings: TrainingSettings) -> WineData:
    """Fetch, verify and parse both CSVs into one frame (red rows first, then white)."""
    frames: list[pd.DataFrame] = []
    file_sha256: dict[str, str] = {}
    sources: dict[str, str] = {}
    for wine_type in WINE_TYPES:
        path, digest = fetch_csv(wine_type, settings)
        frames.append(read_wine_csv(path, wine_type))
        file_sha256[wine_type] = digest
        sources[wine_type] = str(path)
    frame = pd.concat(frames, ignore_index=True)
    return WineData(
        frame=frame,
        file_sha256=file_sha256,
        data_sha256=combined_sha256(file_sha256),
        sources=sources,
    )


def request_features(frame: pd.DataFrame) -> list[dict[str, float | str]]:
    """Each row as the ``features`` object /predict takes: the measurements and wine_type."""
    columns = list(REQUEST_FIELDS)
    return [
        {
            name: (value if name == WINE_TYPE_FIELD else float(value))
            for name, value in zip(columns, values, strict=True)
        }
        for values in frame[columns].itertuples(index=False)
    ]
