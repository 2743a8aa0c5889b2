"""Data ingestion: checksums, header mapping, row counts, download cache."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from tests.fixtures.cli import copy_data
from training.data import (
    CSV_FILENAMES,
    EXPECTED_ROWS,
    EXPECTED_SHA256,
    FRAME_COLUMNS,
    ChecksumMismatchError,
    DataError,
    WineData,
    combined_sha256,
    load_wine_data,
    read_wine_csv,
)
from training.features import CSV_HEADER_TO_NAME, FEATURE_NAMES, TARGET, WINE_TYPE_FIELD
from training.settings import TrainingSettings


def test_rows_per_wine_type(wine_data: WineData):
    assert wine_data.rows_by_type() == {"red": 1599, "white": 4898}
    assert len(wine_data.frame) == 6497 == sum(EXPECTED_ROWS.values())


def test_frame_columns_are_the_contract_names(wine_frame: pd.DataFrame):
    assert list(wine_frame.columns) == [*FEATURE_NAMES, TARGET, WINE_TYPE_FIELD]
    assert tuple(wine_frame.columns) == FRAME_COLUMNS


def test_headers_map_onto_feature_names(data_dir: Path):
    raw = pd.read_csv(data_dir / CSV_FILENAMES["red"], sep=";")
    parsed = read_wine_csv(data_dir / CSV_FILENAMES["red"], "red")
    for header, name in CSV_HEADER_TO_NAME.items():
        pd.testing.assert_series_equal(parsed[name], raw[header], check_names=False)
    assert (parsed[WINE_TYPE_FIELD] == "red").all()
    # The raw 'pH' header is the one that changes case.
    assert "pH" in raw.columns
    assert "ph" in parsed.columns


def test_file_digests_are_the_pinned_originals(wine_data: WineData):
    assert wine_data.file_sha256 == EXPECTED_SHA256
    assert wine_data.data_sha256 == combined_sha256(EXPECTED_SHA256)
    assert len(wine_data.data_sha256) == 64


@pytest.mark.parametrize("wine_type", ["red", "white"])
def test_tampered_copy_is_refused(data_dir: Path, tmp_path: Path, wine_type: str):
    copy = copy_data(data_dir, tmp_path / "data")
    target = copy / CSV_FILENAMES[wine_type]
    text = target.read_text()
    # One digit changed in one measurement: the file still parses fine.
    target.write_text(text.replace("7.4;", "7.5;", 1) if "7.4;" in text else text + "\n")

    with pytest.raises(ChecksumMismatchError) as caught:
        load_wine_data(TrainingSettings(data_dir=copy))

    assert caught.value.path == target
    assert caught.value.expected == EXPECTED_SHA256[wine_type]
    message = str(caught.value)
    assert "checksum mismatch" in message
    assert str(target) in message


def test_untouched_copy_is_accepted(data_dir: Path, tmp_path: Path):
    copy = copy_data(data_dir, tmp_path / "data")
    assert load_wine_data(TrainingSettings(data_dir=copy)).file_sha256 == EXPECTED_SHA256


def test_missing_file_in_data_dir_is_a_data_error(tmp_path: Path):
    with pytest.raises(DataError, match="not found"):
        load_wine_data(TrainingSettings(data_dir=tmp_path))


def test_download_is_cached_and_verified(data_dir: Path, tmp_path: Path):
    cache = tmp_path / "cache"
    settings = TrainingSettings(data_dir=None, data_url=data_dir.as_uri(), cache_dir=cache)

    first = load_wine_data(settings)

    assert sorted(p.name for p in cache.iterdir()) == sorted(CSV_FILENAMES.values())
    assert first.sources["red"] == str(cache / CSV_FILENAMES["red"])
    # The second load is served from the cache: the source is gone.
    second = load_wine_data(
        TrainingSettings(data_dir=None, data_url=(tmp_path / "gone").as_uri(), cache_dir=cache)
    )
    assert second.data_sha256 == first.data_sha256


def test_tampered_download_is_refused_and_not_cached(data_dir: Path, tmp_path: Path):
    source = copy_data(data_dir, tmp_path / "mirror")
    red = source / CSV_FILENAMES["red"]
    red.write_bytes(red.read_bytes()[:-100])  # a truncated download
    cache = tmp_path / "cache"

    with pytest.raises(ChecksumMismatchError):
        load_wine_data(TrainingSettings(data_dir=None, data_url=source.as_uri(), cache_dir=cache))

    assert not (cache / CSV_FILENAMES["red"]).exists()


def test_corrupted_cache_is_downloaded_again(data_dir: Path, tmp_path: Path):
    cache = copy_data(data_dir, tmp_path / "cache")
    (cache / CSV_FILENAMES["white"]).write_text("not the data")

    data = load_wine_data(
        TrainingSettings(data_dir=None, data_url=data_dir.as_uri(), cache_dir=cache)
    )

    assert data.file_sha256 == EXPECTED_SHA256


def test_unreachable_source_is_a_data_error(tmp_path: Path):
    settings = TrainingSettings(
        data_dir=None, data_url="http://127.0.0.1:9/wine", cache_dir=tmp_path
    )
    with pytest.raises(DataError, match="could not download"):
        load_wine_data(settings)
