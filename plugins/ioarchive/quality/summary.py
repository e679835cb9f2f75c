"""``validation/<variant>/summary.json``: the data-quality gate's verdict (RELEASE_SPEC section 7.3).

The only module that writes or reads summary.json. The summary is a pure function of the staged
bytes (the gate verdict is deterministic): it holds no timestamp, duration, temporary path or
run id, and is written with sorted keys, so validating the same staged bytes again writes the
same file byte for byte. What varies from run to run (when, how long, which Spark application)
goes to ``validation/<variant>/run.json`` beside it, which nothing decides on.

Layout (``format`` 2)::

    {
      "format": 2, "release_id": ..., "variant": ..., "threshold": ..., "success": bool,
      "suites": {suite: {"success": bool, "evaluated": n, "failed": [
          {"expectation": ..., "column": ..., "observed": ..., "examples": [row keys]}]}},
      "files": {"<path relative to release/<variant>/>": "<sha256>"},
      "inputs": {"reconciliation.json": "<sha256>", "deletions.jsonl": "<sha256>"},
      "notes": [...]
    }

``files`` names every file of ``release/<variant>/`` the suites read (the Parquet files Spark
listed, the CSV zips, the media index), by the same relative names as the manifest and
SHA256SUMS, with the SHA-256 hashed before validation; the gate fails with
``StagedFilesChanged`` when any of them changed while it ran. Publication compares
``validated_checksums`` with the bytes it uploads. ``inputs`` are the other files the verdict
depends on (the reconciliation counts in the staging folder, the campaign's deletions).
Summaries written before ``format`` 2 have no ``files``: ``validated_checksums`` refuses them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ioarchive.errors import SummaryError
from ioarchive.files import atomic_write_bytes, sha256_file
from ioarchive.schema import VARIANTS
from ioarchive.staging import StagingLayout

SUMMARY_FORMAT = 2
RUN_INFO_NAME = "run.json"






def summary_path(layout: StagingLayout, variant: str) -> Path:
    return layout.validation_summary(variant)


def run_info_path(layout: StagingLayout, variant: str) -> Path:
    return layout.validation_dir(variant) / RUN_INFO_NAME


def summary_bytes(summary: dict[str, Any]) -> bytes:
    """The canonical encoding: sorted keys, two-space indent, ASCII, one trailing newline."""
    return (json.dumps(summary, indent=2, sort_keys=True, default=str) + "\n").encode("ascii")


def write_summary(layout: StagingLayout, variant: str, summary: dict[str, Any]) -> Path:
    path = summary_path(layout, variant)
    atomic_write_bytes(path, summary_bytes(summary))
    return path


def write_run_info(layout: StagingLayout, variant: str, info: dict[str, Any]) -> Path:
    """Facts of this run only (times, durations, Spark application): never part of the verdict."""
    path = run_info_path(layout, variant)
    atomic_write_bytes(path, summary_bytes(info))
    return path


def load_summary(layout: StagingLayout, variant: str) -> dict[str, Any]:
    """The parsed summary of ``variant``; ``SummaryError`` naming the file when absent or broken."""
    path = summary_path(layout, variant)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SummaryError(
            f"{path} is missing: the data-quality gate has not run on release {layout.release_id}"
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SummaryError(f"{path} is unreadable ({exc}): rerun the data-quality gate") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("success"), bool):
        raise SummaryError(f"{path} is not a data-quality summary (no boolean 'success')")
    return doc


def passed(layout: StagingLayout, variant: str) -> bool:
    """``True`` only for a readable summary that says ``success: true``."""
    return load_summary(layout, variant)["success"] is True


def validated_checksums(layout: StagingLayout, variant: str) -> dict[str, str]:
    """``{path relative to release/<variant>/: sha256}`` of every file the gate validated.

    ``SummaryError`` if the summary records no checksums (written before they were recorded,
    or by a gate run on tables it did not read from this staging folder).
    """
    summary = load_summary(layout, variant)
    files = summary.get("files")
    if summary.get("format", 1) < SUMMARY_FORMAT or not isinstance(files, dict) or not files:
        raise SummaryError(
            f"{summary_path(layout, variant)} records no checksums of the validated files: rerun the gate"
        )
    return {str(name): str(digest) for name, digest in files.items()}


def changed_since_validation(layout: StagingLayout, variant: str) -> dict[str, str]:
    """Validated files of ``release/<variant>/`` whose bytes differ now: ``{name: why}``."""
    changed = {}
    release_dir = layout.release_dir(variant)
    for name, digest in sorted(validated_checksums(layout, variant).items()):
        path = release_dir / name
        if not path.is_file():
            changed[name] = "missing"
        elif sha256_file(path) != digest:
            changed[name] = "changed"
    return changed


# --- used by the gate while it runs ----------------------------------------------------------
def file_state(path: Path) -> tuple[int, int, int]:
    """What would change if the file were rewritten or replaced: inode, size, mtime (ns)."""
    st = os.stat(path)
    return st.st_ino, st.st_size, st.st_mtime_ns


def hash_files(paths: Iterable[Path], workers: int = 2) -> dict[Path, str]:
    """SHA-256 of each file, ``workers`` at a time (hashlib releases the GIL on large reads)."""
    paths = sorted(set(paths))
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="ioarchive-sha256") as pool:
        return dict(zip(paths, pool.map(sha256_file, paths), strict=True))


def variant_of(layout: StagingLayout, path: Path) -> tuple[str, str] | None:
    """``(variant, name relative to release/<variant>/)`` of a release file, or ``None``."""
    for variant in VARIANTS:
        try:
            return variant, path.relative_to(layout.release_dir(variant)).as_posix()
        except ValueError:
            continue
    return None
