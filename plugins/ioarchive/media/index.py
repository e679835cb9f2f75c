"""The published media index and the packer's summary for the renderer (RELEASE_SPEC section 5).

Written once every archive of a variant is packed, from the plan's member lists minus what the
packer quarantined, so the index lists exactly the members of the archives on disk:

* ``release/<variant>/media/media_index.csv`` (every field quoted, records ended by one LF, as
  the table CSVs) and
  ``release/<variant>/parquet/media_index.parquet``, columns ``schema.MEDIA_INDEX_COLUMNS``,
  sorted by archive then path inside the archive;
* ``work/<variant>/media_archives.json``: size and SHA-256 of every archive (for checks);
* ``work/<variant>/media_files.json``: rows per published media file and counts (for the
  README and manifest).
"""

from __future__ import annotations

import csv
import io
import json
import logging
from pathlib import Path
from typing import Any

from ioarchive.files import atomic_path, atomic_write_bytes
from ioarchive.media.pack import _load_result, _plan_digest, clean_stale_partials, read_members, result_path
from ioarchive.media.plan import MediaPlanError, variant_plan
from ioarchive.schema import MEDIA_INDEX_COLUMNS
from ioarchive.staging import StagingLayout

log = logging.getLogger(__name__)

MEDIA_INDEX_PARQUET = "media_index.parquet"


def media_index_parquet(layout: StagingLayout, variant: str) -> Path:
    return layout.parquet_dir(variant) / MEDIA_INDEX_PARQUET


def media_files_json(layout: StagingLayout, variant: str) -> Path:
    return layout.media_files_json(variant)


def media_archives_json(layout: StagingLayout, variant: str) -> Path:
    return layout.media_archives_json(variant)


def index_rows(staging_dir: str | Path, release_id: str, variant: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Index rows (sorted) and the per-archive results; raises if an archive is not packed yet."""
    layout = StagingLayout(staging_dir, release_id)
    vplan = variant_plan(layout, variant)
    rows: list[dict[str, Any]] = []
    results: list[dict[str, Any]] = []
    for entry in vplan["archives"]:
        rec = _load_result(result_path(layout, variant, entry["name"]))
        if rec is None or rec.get("plan_digest") != _plan_digest(entry, vplan):
            raise MediaPlanError(
                f"release {release_id}/{variant}: archive {entry['name']} is not packed for the current plan; "
                "run its pack task (or `ioarchive pack-media`) before writing the media index"
            )
        archive_path = layout.media_dir(variant) / entry["name"]
        if rec["files"] and (not archive_path.is_file() or archive_path.stat().st_size != rec["bytes"]):
            raise MediaPlanError(
                f"release {release_id}/{variant}: {archive_path} is missing or its size differs from the "
                "packer's record; rerun `ioarchive pack-media` to repack it"
            )
        results.append(rec)
        dropped = {q["media_key"] for q in rec.get("quarantined", [])}
        for m in read_members(layout, entry):
            if m["media_key"] in dropped:
                continue
            rows.append(
                {
                    "media_key": m["media_key"],
                    "tweetid": m["tweetid"],
                    "userid": m["userid"],
                    "kind": m["kind"],
                    "bytes": m["bytes"],
                    "sha256": m["sha256"],
                    "archive": entry["name"],
                    "path_in_archive": m["path"],
                }
            )
    rows.sort(key=lambda r: (r["archive"], r["path_in_archive"].encode("utf-8")))
    return rows, results


def _csv_bytes(rows: list[dict[str, Any]]) -> bytes:
    buf = io.StringIO(newline="")
    w = csv.writer(buf, quoting=csv.QUOTE_ALL, lineterminator="\n")
    w.writerow(MEDIA_INDEX_COLUMNS)
    for r in rows:
        w.writerow(["" if r[c] is None else str(r[c]) for c in MEDIA_INDEX_COLUMNS])
    return buf.getvalue().encode("utf-8")


def _write_parquet(rows: list[dict[str, Any]], path: Path) -> None:
    import pyarrow as pa  # lazy: DAG files import this module
    import pyarrow.parquet as pq

    schema = pa.schema(
        [
            ("media_key", pa.string()),
            ("tweetid", pa.string()),
            ("userid", pa.string()),
            ("kind", pa.string()),
            ("bytes", pa.int64()),
            ("sha256", pa.string()),
            ("archive", pa.string()),
            ("path_in_archive", pa.string()),
        ]
    )
    table = pa.Table.from_pydict({c: [r[c] for r in rows] for c in MEDIA_INDEX_COLUMNS}, schema=schema)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd")


def finalize_media(staging_dir: str | Path, release_id: str, variant: str) -> dict[str, Any]:
    """Write the media index (CSV, Parquet) and the summaries once all archives are packed.

    Also removes archives left in the release's media folder by an older plan, so the folder
    holds exactly what the index lists. Returns the ``media_files.json`` content.
    """
    layout = StagingLayout(staging_dir, release_id)
    rows, results = index_rows(staging_dir, release_id, variant)
    media_dir = layout.media_dir(variant)
    media_dir.mkdir(parents=True, exist_ok=True)
    series = {a["name"]: a["series"] for a in variant_plan(layout, variant)["archives"]}
    published = [r for r in results if r["files"]]
    keep = {r["archive"] for r in published}
    clean_stale_partials(media_dir)
    for stale in sorted(media_dir.glob("*.zip")):
        if stale.name not in keep:
            log.warning("release %s/%s: removing %s, not part of the current media plan", release_id, variant, stale)
            stale.unlink()

    atomic_write_bytes(layout.media_index_csv(variant), _csv_bytes(rows))
    _write_parquet(rows, media_index_parquet(layout, variant))

    archives = {r["archive"]: {"bytes": r["bytes"], "sha256": r["sha256"], "files": r["files"]} for r in published}
    atomic_write_bytes(
        media_archives_json(layout, variant), (json.dumps(archives, indent=1, sort_keys=True) + "\n").encode()
    )
    files: dict[str, dict[str, int]] = {f"media/{name}": {"rows": a["files"]} for name, a in sorted(archives.items())}
    files["media/media_index.csv"] = {"rows": len(rows)}
    files[f"parquet/{MEDIA_INDEX_PARQUET}"] = {"rows": len(rows)}
    summary = {
        "files": files,
        "counts": {
            "media_files": len(rows),
            "archives": len(published),
            "tweet_archives": sum(1 for a in series.items() if a[0] in keep and a[1] == "tweet"),
            "profile_archives": sum(1 for a in series.items() if a[0] in keep and a[1] == "profile"),
        },
    }
    atomic_write_bytes(media_files_json(layout, variant), (json.dumps(summary, indent=1, sort_keys=True) + "\n").encode())
    log.info(
        "release %s/%s: media index written: %d files in %d archives (%s)",
        release_id, variant, len(rows), len(published), layout.media_index_csv(variant),
    )
    return summary
