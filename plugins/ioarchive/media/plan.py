"""Media archive planning (RELEASE_SPEC section 5): which file goes into which zip, and where.

Input: the released media of a variant, ``work/<variant>/media/`` (Parquet written by
extraction: media_key, tweetid, userid = user key of the variant, kind, source_path, bytes,
sha256). Output, so that one archive is one unit of work for a DAG task or a pool worker:

* ``work/media_plan.json``: per variant, the archive list (name, series, number of files,
  planned bytes, digest of its member list) and the parameters (target, ZIP64 limit);
* ``work/<variant>/media_plan/<archive>.jsonl``: the members of one archive, in archive order.
  Member lists live beside the plan instead of inside it because a 2 TB release has millions
  of files: a packing worker reads only its own archive's list and stays at constant memory.

Order is deterministic: post media and profile media are separate series, each sorted by the
path inside the archive; archives are filled greedily up to the target, with the exact zip
overhead (:class:`ioarchive.media.zip_writer.ZipSizer`), so a planned archive is never larger than the
target unless it holds one file that is larger by itself.

Stable under removal (RELEASE_SPEC 8): version N+1 is planned from version N's plan when it is
staged (``previous_staging``). Each archive of N keeps exactly the members of N that are still
released with the same path, size and SHA-256, in the same order, so an archive that lost
nothing has the same member list and therefore the same bytes (the zip writer is
deterministic), and publication copies it server-side instead of uploading it. Archives that
lost every member disappear; media new in N+1 are packed greedily after the kept archives.
Archives are numbered in that order (a name may shift; the bytes, which are what is
compared, do not).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from ioarchive.errors import MediaPlanError
from ioarchive.files import atomic_write_bytes, file_lock
from ioarchive.media.zip_writer import ZIP64_LIMIT, ZipSizer
from ioarchive.schema import DEFAULT_ARCHIVE_TARGET_BYTES
from ioarchive.staging import StagingLayout

log = logging.getLogger(__name__)

PLAN_FORMAT = 1
MEDIA_WORK_COLUMNS: tuple[str, ...] = ("media_key", "tweetid", "userid", "kind", "source_path", "bytes", "sha256")

POST_FOLDERS = {"photo": "images", "video": "videos", "animated_gif": "videos"}
PROFILE_SUFFIX = {"profile_image": "profile", "profile_banner": "banner"}
DEFAULT_EXT = {"photo": "jpg", "video": "mp4", "animated_gif": "mp4", "profile_image": "jpg", "profile_banner": "jpg"}

_KEY_RE = re.compile(r"^[A-Za-z0-9_-]+$")
"""User keys (raw ids or 43-char pseudonyms) and media keys: safe in a path, no separators."""
_TWEETID_RE = re.compile(r"^[0-9]+$")
"""Researcher tools read the post id as the file name up to the first ``-``."""
_EXT_RE = re.compile(r"^[a-z0-9]{1,8}$")
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class PlannedArchive:
    """One archive of the plan: the unit of work of a packing task."""

    name: str
    series: str
    number: int
    files: int
    payload_bytes: int
    planned_bytes: int
    members: str  # member list, relative to the staging root
    members_sha256: str

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def plan_members_dir(layout: StagingLayout, variant: str) -> Path:
    return layout.media_plan_members(variant)


def safe_source_path(source_path: str) -> bool:
    """True if ``source_path`` is a plain relative path below media/ (no ``..``, not absolute)."""
    if not source_path or "\x00" in source_path or "\\" in source_path:
        return False
    p = PurePosixPath(source_path)
    if p.is_absolute():
        return False
    return all(part not in ("", ".", "..") for part in p.parts)


def path_in_archive(row: dict[str, Any]) -> str | None:
    """The member path of a media row (RELEASE_SPEC section 5), or None if it cannot be built safely.

    ``<user_key>/images|videos/<tweetid>-<media_key>.<ext>`` for post media,
    ``<user_key>/profile/<user_key>_profile|banner.<ext>`` for profile media.
    """
    kind = row.get("kind")
    user_key = str(row.get("userid") or "")
    media_key = str(row.get("media_key") or "")
    if not _KEY_RE.match(user_key) or not _KEY_RE.match(media_key) or kind not in DEFAULT_EXT:
        return None
    ext = PurePosixPath(str(row.get("source_path") or "")).suffix.lower().lstrip(".")
    if not _EXT_RE.match(ext):
        ext = DEFAULT_EXT[kind]
    if kind in PROFILE_SUFFIX:
        return f"{user_key}/profile/{user_key}_{PROFILE_SUFFIX[kind]}.{ext}"
    tweetid = str(row.get("tweetid") or "")
    if not _TWEETID_RE.match(tweetid):
        return None
    return f"{user_key}/{POST_FOLDERS[kind]}/{tweetid}-{media_key}.{ext}"


def read_work_media(layout: StagingLayout, variant: str) -> list[dict[str, Any]]:
    """Rows of ``work/<variant>/media/`` (a Spark part-file directory or a single Parquet file)."""
    import pyarrow.parquet as pq  # lazy: DAG files import this module

    path = layout.work_table(variant, "media")
    if not path.exists():
        raise MediaPlanError(
            f"release {layout.release_id}: {path} does not exist; run `ioarchive extract` first"
        )
    table = pq.read_table(path, columns=list(MEDIA_WORK_COLUMNS))
    return table.to_pylist()


def _row_problem(row: dict[str, Any]) -> str | None:
    """Reason to quarantine a work row before planning (cheap string checks, no I/O)."""
    if not safe_source_path(str(row.get("source_path") or "")):
        return "path_escape"
    if path_in_archive(row) is None:
        return "path_escape"
    if row.get("bytes") is None or int(row["bytes"]) < 0:
        return "size_mismatch"
    if not _SHA256_RE.match(str(row.get("sha256") or "")):
        return "sha256_mismatch"
    return None


def _member_record(row: dict[str, Any], path: str) -> dict[str, Any]:
    return {
        "path": path,
        "source_path": row["source_path"],
        "bytes": int(row["bytes"]),
        "sha256": row["sha256"],
        "media_key": row["media_key"],
        "tweetid": row["tweetid"],
        "userid": row["userid"],
        "kind": row["kind"],
    }


def assign_archives(
    members: list[dict[str, Any]], target_bytes: int, zip64_limit: int = ZIP64_LIMIT
) -> list[tuple[list[dict[str, Any]], int]]:
    """Greedy fill in the given order: archives of at most ``target_bytes``, overhead included.

    A member that does not fit in the current archive closes it; a member larger than the target
    by itself gets an archive of its own. Returns (members, exact archive size) per archive.
    """
    archives: list[tuple[list[dict[str, Any]], int]] = []
    current: list[dict[str, Any]] = []
    sizer = ZipSizer(zip64_limit)
    for m in members:
        if current and sizer.size_if_added(m["path"], m["bytes"]) > target_bytes:
            archives.append((current, sizer.total))
            current, sizer = [], ZipSizer(zip64_limit)
        current.append(m)
        sizer.add(m["path"], m["bytes"])
    if current:
        archives.append((current, sizer.total))
    return archives


def _same_member(old: dict[str, Any], new: dict[str, Any]) -> bool:
    return all(old.get(k) == new.get(k) for k in ("path", "bytes", "sha256", "source_path", "media_key"))


def previous_groups(previous: StagingLayout | None, variant: str, series: str,
                    target_bytes: int) -> list[list[dict[str, Any]]]:
    """Member lists of the previous version's archives of one series, in plan order.

    None when there is no previous plan or it was made for another archive target (its
    archives could be larger than the new target).
    """
    if previous is None or not previous.media_plan.exists():
        return []
    try:
        vplan = variant_plan(previous, variant)
    except MediaPlanError:
        return []
    if vplan.get("target_bytes") != target_bytes:
        log.warning("release %s/%s: the previous plan used archive target %s, this one %d: planning afresh",
                    previous.release_id, variant, vplan.get("target_bytes"), target_bytes)
        return []
    archives = vplan["archives"]
    groups = []
    for archive in archives:
        if archive.get("series") != series:
            continue
        path = previous.root / archive["members"]
        groups.append([json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line])
    return groups


def assign_stable(
    members: list[dict[str, Any]], previous: list[list[dict[str, Any]]], target_bytes: int,
    zip64_limit: int = ZIP64_LIMIT,
) -> tuple[list[tuple[list[dict[str, Any]], int]], int]:
    """Archives of ``members`` that keep the previous version's archives; returns (archives, kept).

    A previous archive keeps its still-released members in its order (``kept`` counts those that
    kept all of them: same bytes); the rest is packed greedily after them.
    """
    by_path = {m["path"]: m for m in members}
    used: set[str] = set()
    archives: list[tuple[list[dict[str, Any]], int]] = []
    kept = 0
    for old in previous:
        group = [by_path[o["path"]] for o in old
                 if o["path"] in by_path and o["path"] not in used and _same_member(o, by_path[o["path"]])]
        if not group:
            continue
        used.update(m["path"] for m in group)
        kept += len(group) == len(old)
        sizer = ZipSizer(zip64_limit)
        for m in group:
            sizer.add(m["path"], m["bytes"])
        archives.append((group, sizer.total))
    archives += assign_archives([m for m in members if m["path"] not in used], target_bytes, zip64_limit)
    return archives, kept


def _jsonl_bytes(members: list[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(m, sort_keys=True, separators=(",", ":")).encode() + b"\n" for m in members)






def load_plan(layout: StagingLayout) -> dict[str, Any]:
    try:
        return json.loads(layout.media_plan.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MediaPlanError(
            f"release {layout.release_id}: {layout.media_plan} does not exist; run the media planning "
            "step (`ioarchive pack-media`) first"
        ) from None


def variant_plan(layout: StagingLayout, variant: str) -> dict[str, Any]:
    plan = load_plan(layout)
    try:
        return plan["variants"][variant]
    except KeyError:
        raise MediaPlanError(
            f"release {layout.release_id}: {layout.media_plan} has no plan for variant {variant!r}; "
            "rerun `ioarchive pack-media --variant " + variant + "`"
        ) from None


def plan_media(
    staging_dir: str | Path,
    release_id: str,
    variant: str,
    target_bytes: int = DEFAULT_ARCHIVE_TARGET_BYTES,
    zip64_limit: int = ZIP64_LIMIT,
    previous_staging: str | Path | None = None,
) -> dict[str, Any]:
    """Plan the media archives of one variant and write the plan; returns the variant's plan.

    ``previous_staging``: the staging folder of the previous version, whose archives are kept
    where their members still are (see the module doc); none or absent means a fresh plan.

    Rows that cannot be packed safely whatever their bytes (a source path escaping media/, a
    name that would not parse back, two files for one path) are listed under ``rejected`` with
    their reason; the packer quarantines them (:func:`ioarchive.media.pack.quarantine_rejected`).
    """
    if target_bytes < 1:
        raise MediaPlanError(f"archive target must be positive, got {target_bytes}")
    layout = StagingLayout(staging_dir, release_id)
    rows = read_work_media(layout, variant)
    by_series: dict[str, list[dict[str, Any]]] = {"tweet": [], "profile": []}
    rejected: list[dict[str, Any]] = []
    for row in rows:
        reason = _row_problem(row)
        if reason:
            rejected.append({"reason": reason, "row": row})
            continue
        path = path_in_archive(row)
        assert path is not None
        series = "profile" if row["kind"] in PROFILE_SUFFIX else "tweet"
        by_series[series].append(_member_record(row, path))

    previous = StagingLayout(previous_staging, release_id) if previous_staging else None
    if previous is not None and not previous.media_plan.exists():
        log.warning("release %s/%s: no media plan in %s; planning afresh, so archives of the previous version "
                    "are not reused (they are uploaded, not copied)", release_id, variant, previous.root)
    kept_archives = 0
    archives: list[PlannedArchive] = []
    members_dir = plan_members_dir(layout, variant)
    members_dir.mkdir(parents=True, exist_ok=True)
    for series in ("tweet", "profile"):
        members = sorted(by_series[series], key=lambda m: (m["path"].encode("utf-8"), m["media_key"]))
        unique: list[dict[str, Any]] = []
        for m in members:
            if unique and unique[-1]["path"] == m["path"]:
                rejected.append({"reason": "duplicate_id", "row": {k: m[k] for k in MEDIA_WORK_COLUMNS}})
                continue
            unique.append(m)
        assigned, kept = assign_stable(unique, previous_groups(previous, variant, series, target_bytes),
                                        target_bytes, zip64_limit)
        kept_archives += kept
        for number, (group, size) in enumerate(assigned, start=1):
            name = layout.media_archive_name(series, variant, number)
            data = _jsonl_bytes(group)
            members_path = members_dir / f"{name}.jsonl"
            atomic_write_bytes(members_path, data)
            archives.append(
                PlannedArchive(
                    name=name,
                    series=series,
                    number=number,
                    files=len(group),
                    payload_bytes=sum(m["bytes"] for m in group),
                    planned_bytes=size,
                    members=str(members_path.relative_to(layout.root)),
                    members_sha256=hashlib.sha256(data).hexdigest(),
                )
            )
    keep = {f"{a.name}.jsonl" for a in archives}
    for stale in members_dir.glob("*.jsonl"):
        if stale.name not in keep:
            stale.unlink()
    rejected.sort(key=lambda r: (str(r["row"].get("media_key")), r["reason"]))
    vplan = {
        "variant": variant,
        "target_bytes": target_bytes,
        "zip64_limit": zip64_limit,
        "media_rows": len(rows),
        "previous": str(previous.root) if previous is not None and previous.media_plan.exists() else None,
        "kept_archives": kept_archives,
        "archives": [a.to_dict() for a in archives],
        "rejected": rejected,
    }
    with file_lock(layout.media_plan_lock):
        try:
            plan = load_plan(layout)
        except (MediaPlanError, json.JSONDecodeError):
            plan = {}
        if plan.get("release_id") != release_id or plan.get("format") != PLAN_FORMAT:
            plan = {"format": PLAN_FORMAT, "release_id": release_id, "variants": {}}
        plan["variants"][variant] = vplan
        atomic_write_bytes(layout.media_plan, (json.dumps(plan, indent=1, sort_keys=True) + "\n").encode())
    n_over = sum(1 for a in archives if a.planned_bytes > target_bytes)
    log.info(
        "release %s/%s: planned %d media files into %d archives (%d tweet, %d profile; %d single oversized "
        "files); %d rows rejected before packing",
        release_id,
        variant,
        sum(a.files for a in archives),
        len(archives),
        sum(1 for a in archives if a.series == "tweet"),
        sum(1 for a in archives if a.series == "profile"),
        n_over,
        len(rejected),
    )
    return vplan


def list_archives(staging_dir: str | Path, release_id: str, variant: str) -> list[str]:
    """Archive names of a variant's plan, in plan order (tweet series, then profile series)."""
    return [a["name"] for a in variant_plan(StagingLayout(staging_dir, release_id), variant)["archives"]]
