"""Media archive packing: one planned archive -> one deterministic zip (RELEASE_SPEC section 5).

:func:`pack_archive` is the unit of work (one DAG task per archive via dynamic task mapping,
or one process-pool job from the CLI). For each planned archive it:

* checks that the release's media folder has room for the archive's exact planned size, and
  fails before writing anything otherwise (:class:`MediaDiskFullError` names the release, the
  archive and the space needed);
* streams the members into a temporary ``.<archive>.<pid>.partial`` in that folder
  (:func:`ioarchive.media.stream.stream_archive`: sources opened without following symlinks,
  size, CRC-32 and SHA-256 computed on the way, read-ahead, writing and archive hashing
  overlapped on four threads, constant memory);
* quarantines members whose size or SHA-256 does not match the media index (dropped from the
  archive as if never planned; ``quarantine/media.jsonl`` plus ``reconciliation.json`` through
  :func:`ioarchive.reconcile.move_to_quarantine`, once per media key even though both variants
  pack the same file);
* fsyncs, renames atomically to the final name, fsyncs the folder, and records the archive's
  size and SHA-256 in ``work/<variant>/media_archives/<archive>.json``. A rerun skips an archive
  whose file still matches that record for the same plan, and repacks it otherwise.

If the disk fills up anyway (another writer on the same disk, a quota), the temporary file is
removed and :class:`MediaDiskFullError` says how much space the archive needs and how much is
free: nothing half-written is left, let alone under the final name.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ioarchive.errors import MediaDiskFullError
from ioarchive.files import atomic_write_bytes, fsync_dir, sha256_file
from ioarchive.humanize import human_size
from ioarchive.media.plan import PLAN_FORMAT, MediaPlanError, variant_plan
from ioarchive.media.stream import MediaRejected, open_media_source, stream_archive
from ioarchive.request.campaign import find_raw_file, open_raw_text
from ioarchive.staging import StagingLayout

__all__ = [
    "ArchiveResult",
    "MediaDiskFullError",
    "MediaRejected",
    "open_media_source",
    "pack_archive",
    "pack_archives",
    "quarantine_media",
    "quarantine_rejected",
]

log = logging.getLogger(__name__)

QUARANTINE_REASONS = ("size_mismatch", "sha256_mismatch", "missing_file", "path_escape", "symlink")


@dataclass
class ArchiveResult:
    """What happened to one planned archive (also the sidecar under work/<variant>/media_archives/)."""

    archive: str
    variant: str
    plan_digest: str
    bytes: int
    sha256: str
    files: int
    planned_files: int
    planned_bytes: int
    quarantined: list[dict[str, Any]] = field(default_factory=list)
    reused: bool = False

    @property
    def empty(self) -> bool:
        return self.files == 0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("reused")
        return d


def results_dir(layout: StagingLayout, variant: str) -> Path:
    return layout.media_results(variant)


def result_path(layout: StagingLayout, variant: str, archive_name: str) -> Path:
    return results_dir(layout, variant) / f"{archive_name}.json"


def _plan_digest(entry: dict[str, Any], vplan: dict[str, Any]) -> str:
    """What determines an archive's bytes: its member list and the ZIP64 rule."""
    basis = json.dumps(
        {"format": PLAN_FORMAT, "members_sha256": entry["members_sha256"], "zip64_limit": vplan["zip64_limit"]},
        sort_keys=True,
    )
    return hashlib.sha256(basis.encode()).hexdigest()


def clean_stale_partials(media_dir: Path, archive_name: str = "*") -> None:
    """Remove temporaries (``.<archive>.<pid>.partial``) left by crashed packers, never a live one's."""
    for tmp in media_dir.glob(f".{archive_name}.*.partial"):
        pid = tmp.name[: -len(".partial")].rsplit(".", 1)[-1]
        alive = False
        if pid.isdigit() and int(pid) != os.getpid():
            try:
                os.kill(int(pid), 0)
                alive = True
            except ProcessLookupError:
                alive = False
            except PermissionError:
                alive = True
        if not alive:
            log.info("removing %s left by an interrupted packer", tmp)
            tmp.unlink(missing_ok=True)


def read_members(layout: StagingLayout, entry: dict[str, Any]) -> list[dict[str, Any]]:
    """The member list of a planned archive, checked against the digest in the plan."""
    path = layout.root / entry["members"]
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise MediaPlanError(f"release {layout.release_id}: member list {path} is missing; replan the media") from None
    if hashlib.sha256(data).hexdigest() != entry["members_sha256"]:
        raise MediaPlanError(
            f"release {layout.release_id}: member list {path} does not match the plan's digest; replan the media"
        )
    return [json.loads(line) for line in data.splitlines() if line]


def _load_result(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def _reuse(layout: StagingLayout, variant: str, entry: dict[str, Any], digest: str, verify: bool) -> ArchiveResult | None:
    """The recorded result if the archive on disk still matches it for this plan, else None."""
    rec = _load_result(result_path(layout, variant, entry["name"]))
    if not rec or rec.get("plan_digest") != digest:
        return None
    final = layout.media_dir(variant) / entry["name"]
    if rec["files"] == 0:
        ok = not final.exists()
    else:
        ok = final.is_file() and final.stat().st_size == rec["bytes"] and (not verify or sha256_file(final) == rec["sha256"])
    if not ok:
        log.warning(
            "release %s/%s: %s does not match its recorded size/sha256; repacking it",
            layout.release_id, variant, final,
        )
        return None
    return ArchiveResult(**rec, reused=True)


# --- disk space ------------------------------------------------------------------------------
DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
"""Write errors that mean "no room": full disk, quota, file size limit."""


def free_bytes(folder: Path) -> int:
    """Bytes an unprivileged process may still write on ``folder``'s filesystem (``df``'s Avail)."""
    st = os.statvfs(folder)
    return st.f_bavail * st.f_frsize


def _space_advice(needed: int, free: int) -> str:
    short = needed - free
    if short <= 0:
        return "there is room now (another writer freed space): rerun the task"
    return (
        f"free at least {short:,} bytes ({human_size(short)}) there, or move the staging folder to a bigger "
        "disk, then rerun the task"
    )


def check_free_space(layout: StagingLayout, variant: str, archive_name: str, folder: Path, needed: int) -> None:
    """Fail before writing anything if ``folder`` cannot hold ``needed`` bytes (the exact planned size)."""
    free = free_bytes(folder)
    if free >= needed:
        return
    raise MediaDiskFullError(
        f"release {layout.release_id}/{variant}: not enough disk space to pack archive {archive_name} into "
        f"{folder}: it needs {needed:,} bytes ({human_size(needed)}), {free:,} bytes ({human_size(free)}) are "
        f"free; nothing was written: {_space_advice(needed, free)}",
        archive=archive_name, needed=needed, free=free,
    )


def _disk_full_error(
    layout: StagingLayout, variant: str, archive_name: str, folder: Path, needed: int, written: int, exc: OSError
) -> MediaDiskFullError:
    free = free_bytes(folder)
    if exc.errno == errno.EFBIG:
        advice = (
            "the file size limit (`ulimit -f` of the worker, or the filesystem's) is below the archive's size: "
            "raise it, or replan with a smaller --target-bytes, then rerun the task"
        )
    else:
        advice = _space_advice(needed, free)
    return MediaDiskFullError(
        f"release {layout.release_id}/{variant}: out of space ({exc.strerror}) after writing {written:,} bytes of "
        f"archive {archive_name} into {folder}; the partial file was removed. The archive needs {needed:,} bytes "
        f"({human_size(needed)}), {free:,} bytes ({human_size(free)}) are free now: {advice}",
        archive=archive_name, needed=needed, free=free,
    )


def pack_archive(
    campaign_dir: str | Path,
    staging_dir: str | Path,
    release_id: str,
    variant: str,
    archive_name: str,
    verify_existing: bool = True,
) -> ArchiveResult:
    """Pack one planned archive into ``release/<variant>/media/`` (skipped if already done).

    Raises :class:`MediaDiskFullError` when the disk cannot hold the archive (checked before
    writing, and on a full disk while writing), leaving no partial or final file behind.
    """
    layout = StagingLayout(staging_dir, release_id)
    vplan = variant_plan(layout, variant)
    entry = next((a for a in vplan["archives"] if a["name"] == archive_name), None)
    if entry is None:
        raise MediaPlanError(
            f"release {release_id}/{variant}: archive {archive_name} is not in {layout.media_plan}; "
            "was the plan rebuilt after the task list was made? Rerun the planning task"
        )
    digest = _plan_digest(entry, vplan)
    reused = _reuse(layout, variant, entry, digest, verify_existing)
    if reused is not None:
        log.info("release %s/%s: %s already packed and verified; skipping", release_id, variant, archive_name)
        return reused

    members = read_members(layout, entry)
    media_dir = layout.media_dir(variant)
    media_dir.mkdir(parents=True, exist_ok=True)
    clean_stale_partials(media_dir, archive_name)
    final = media_dir / archive_name
    if final.exists():  # not reusable (see _reuse): its space is needed and its bytes are wrong
        log.warning("release %s/%s: removing %s before repacking it", release_id, variant, final)
        final.unlink()
    planned = entry["planned_bytes"]
    check_free_space(layout, variant, archive_name, media_dir, planned)
    tmp = media_dir / f".{archive_name}.{os.getpid()}.partial"
    media_root = Path(campaign_dir) / "media"
    try:
        root_fd = os.open(media_root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise MediaPlanError(f"release {release_id}: cannot open campaign media folder {media_root}: {exc.strerror}") from None

    out_fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        size, sha, rejected = stream_archive(out_fd, root_fd, members, vplan["zip64_limit"])
        if len(rejected) < len(members):
            os.replace(tmp, final)
    except BaseException as exc:
        written = os.fstat(out_fd).st_size
        os.close(out_fd)
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS:
            error = _disk_full_error(layout, variant, archive_name, media_dir, planned, written, exc)
            log.error("%s", error)
            raise error from exc
        raise
    finally:
        os.close(root_fd)
    os.close(out_fd)

    quarantined = [_quarantine_item(m, rej) for m, rej in rejected]
    files = len(members) - len(quarantined)
    if files == 0:
        # Nothing left to publish: no empty zip (the number stays unused; see docs/decisions.md).
        tmp.unlink()
        size, sha = 0, ""
    fsync_dir(media_dir)
    for q in quarantined:
        log.error(
            "release %s/%s: media %s (%s) not packed into %s: %s; quarantined as %s (fix or accept the "
            "source file, then rerun pack-media)",
            release_id, variant, q["media_key"], q["source_path"], archive_name, q["detail"], q["reason"],
        )
    if quarantined:
        quarantine_media(layout, campaign_dir, variant, archive_name, quarantined)
    result = ArchiveResult(
        archive=archive_name,
        variant=variant,
        plan_digest=digest,
        bytes=size,
        sha256=sha,
        files=files,
        planned_files=entry["files"],
        planned_bytes=planned,
        quarantined=quarantined,
    )
    if size > planned:  # cannot happen: dropping members only shrinks an archive
        raise RuntimeError(f"{final}: {size} bytes exceeds the planned {planned}")
    atomic_write_bytes(
        result_path(layout, variant, archive_name),
        (json.dumps(result.to_dict(), indent=1, sort_keys=True) + "\n").encode(),
    )
    log.info(
        "release %s/%s: packed %s: %d files, %d bytes (planned %d), %d quarantined",
        release_id, variant, archive_name, files, size, planned, len(quarantined),
    )
    return result


# --- quarantine ------------------------------------------------------------------------------
def _quarantine_item(member: dict[str, Any], rej: MediaRejected) -> dict[str, Any]:
    return {
        "media_key": member["media_key"],
        "source_path": member["source_path"],
        "path": member["path"],
        "reason": rej.reason,
        "detail": rej.detail,
    }


@contextlib.contextmanager
def _media_quarantine_lock(layout: StagingLayout) -> Iterator[None]:
    layout.quarantine_dir.mkdir(parents=True, exist_ok=True)
    with open(layout.quarantine_dir / ".media.lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def quarantined_media_keys(layout: StagingLayout) -> set[str]:
    """Media keys already in ``quarantine/media.jsonl`` (by the packer of either variant)."""
    keys: set[str] = set()
    try:
        with open(layout.quarantine_media, encoding="utf-8") as fh:
            for line in fh:
                with contextlib.suppress(json.JSONDecodeError):
                    key = json.loads(line).get("media_key")
                    if key is not None:
                        keys.add(str(key))
    except FileNotFoundError:
        pass
    return keys


def _media_input_lines(campaign_dir: str | Path, media_keys: set[str]) -> dict[str, tuple[int, str]]:
    """Line number and raw text of the given media keys in the campaign's media.jsonl(.gz)."""
    found: dict[str, tuple[int, str]] = {}
    path = find_raw_file(Path(campaign_dir), "media", required=False)
    if path is None:
        return found
    line_no = 0
    with open_raw_text(path, errors="replace") as fh:
        for line in fh:
            if not line.strip():
                continue  # reconciliation counts non-blank lines
            line_no += 1
            if not any(k in line for k in media_keys):
                continue
            try:
                key = str(json.loads(line).get("media_key"))
            except (json.JSONDecodeError, AttributeError):
                continue
            if key in media_keys and key not in found:
                found[key] = (line_no, line.rstrip("\n"))
    return found


def quarantine_media(
    layout: StagingLayout,
    campaign_dir: str | Path,
    variant: str,
    archive_name: str,
    items: list[dict[str, Any]],
) -> int:
    """Record media the packer refused, once per media key; returns how many were new.

    Both variants pack the same source files and reruns repeat the checks, but reconciliation
    counts input records: a media key is moved from ``released`` to ``quarantined`` only the
    first time it is refused.
    """
    from ioarchive.reconcile import MAX_RECORD_CHARS, move_to_quarantine

    with _media_quarantine_lock(layout):
        known = quarantined_media_keys(layout)
        new = {}
        for item in items:
            if item["media_key"] not in known and item["media_key"] not in new:
                new[item["media_key"]] = item
        if not new:
            return 0
        lines = _media_input_lines(campaign_dir, set(new))
        by_reason: dict[str, list[dict[str, Any]]] = {}
        for key in sorted(new):
            item = new[key]
            line, raw = lines.get(key, (0, json.dumps({"media_key": key, "path": item["source_path"]})))
            by_reason.setdefault(item["reason"], []).append(
                {
                    "source_file": "media.jsonl",
                    "line": line,
                    "reason": item["reason"],
                    "record": raw[:MAX_RECORD_CHARS],
                    "media_key": key,
                    "detail": item.get("detail", ""),
                    "found_by": f"pack-media {variant} {archive_name}",
                }
            )
        for reason in sorted(by_reason):
            records = by_reason[reason]
            move_to_quarantine(layout, "media", reason, len(records), records)
        return len(new)


def quarantine_rejected(campaign_dir: str | Path, staging_dir: str | Path, release_id: str, variant: str) -> int:
    """Quarantine the rows the planner rejected before packing (escaping paths, duplicates)."""
    layout = StagingLayout(staging_dir, release_id)
    rejected = variant_plan(layout, variant).get("rejected", [])
    items = [
        {
            "media_key": r["row"]["media_key"],
            "source_path": r["row"].get("source_path"),
            "path": None,
            "reason": r["reason"],
            "detail": f"refused by the planner: {r['reason']} (source path {r['row'].get('source_path')!r})",
        }
        for r in rejected
    ]
    return quarantine_media(layout, campaign_dir, variant, "(planning)", items) if items else 0


# --- many archives ---------------------------------------------------------------------------
def _init_worker(level: int) -> None:
    """Spawned workers start without logging configured; keep their messages in the task log."""
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s")


def _pack_job(args: tuple[str, str, str, str, str]) -> ArchiveResult:
    return pack_archive(*args)


def pack_archives(
    campaign_dir: str | Path,
    staging_dir: str | Path,
    release_id: str,
    variant: str,
    archive_names: list[str],
    workers: int = 1,
) -> list[ArchiveResult]:
    """Pack several archives, in a process pool of ``workers`` (1: in this process)."""
    jobs = [(str(campaign_dir), str(staging_dir), release_id, variant, name) for name in archive_names]
    if workers <= 1 or len(jobs) <= 1:
        return [_pack_job(j) for j in jobs]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # spawn: the caller may hold threads (Spark's py4j, Airflow) that fork would copy unsafely.
    ctx = multiprocessing.get_context("spawn")
    level = logging.getLogger().getEffectiveLevel()
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker, initargs=(level,)) as pool:
        return list(pool.map(_pack_job, jobs))
