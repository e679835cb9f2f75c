"""Streaming checksums: one helper for every step that verifies bytes."""

from __future__ import annotations

import hashlib
from pathlib import Path

CHUNK = 4 * 1024 * 1024


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file, read in 4 MiB chunks (constant memory)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()
