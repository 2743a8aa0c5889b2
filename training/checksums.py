"""SHA-256 of files and bytes, the one checksum every artifact and data file is verified with.

Standard library only: the serving image imports it to verify the bundled model.
"""

from __future__ import annotations

import hashlib
import os

_CHUNK = 1 << 20


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_bytes(payload: bytes) -> str:
    """Hex SHA-256 of bytes."""
    return hashlib.sha256(payload).hexdigest()
