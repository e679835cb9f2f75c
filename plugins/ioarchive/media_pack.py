"""Media archive packing: one planned archive -> one deterministic zip (RELEASE_SPEC section 5).

:func:`pack_archive` is the unit of work (one DAG task per archive via dynamic task mapping,
or one process-pool job from the CLI). For each member of the plan it:

* opens the source below the campaign's ``media/`` one path component at a time with
  ``O_NOFOLLOW`` relative to the parent directory's descriptor, so ``..``, absolute paths and
  symlinks anywhere in the path are refused even if the file system changes meanwhile;
* streams the bytes (4 MiB buffer: constant memory whatever the file size) into a temporary
  ``.<archive>.<pid>.partial`` in the release's media folder while computing CRC-32 and SHA-256;
* drops a member whose size or SHA-256 does not match the media index by truncating the
  temporary file back to the member's header, and quarantines it (``quarantine/media.jsonl``
  plus ``reconciliation.json`` through :func:`ioarchive.reconcile.move_to_quarantine`, once per
  media key even though both variants pack the same file);
* fsyncs, renames atomically to the final name, fsyncs the folder, and records the archive's
  size and SHA-256 in ``work/<variant>/media_archives/<archive>.json``. A rerun skips an archive
  whose file still matches that record for the same plan, and repacks it otherwise.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import gzip
import hashlib
import json
import logging
import os
import stat
import time
import zlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from ioarchive.checksums import sha256_file
from ioarchive.media_plan import (
    PLAN_FORMAT,
    MediaPlanError,
    atomic_write_bytes,
    safe_source_path,
    variant_plan,
)
from ioarchive.media_zip import StoredZipWriter
from ioarchive.staging import StagingLayout

log = logging.getLogger(__name__)

BUFFER_BYTES = 4 * 1024 * 1024
TEST_PAUSE_ENV = "IOARCHIVE_MEDIA_TEST_PAUSE_AFTER_BYTES"
"""Test hook: after this many archive bytes are written, sleep (so a test can SIGKILL the packer)."""

QUARANTINE_REASONS = ("size_mismatch", "sha256_mismatch", "missing_file", "path_escape", "symlink")


class MediaRejected(Exception):
    """A member cannot be packed; ``reason`` is a quarantine reason name."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


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
    return layout.root / "work" / variant / "media_archives"


def result_path(layout: StagingLayout, variant: str, archive_name: str) -> Path:
    return results_dir(layout, variant) / f"{archive_name}.json"


def _plan_digest(entry: dict[str, Any], vplan: dict[str, Any]) -> str:
    """What determines an archive's bytes: its member list and the ZIP64 rule."""
    basis = json.dumps(
        {"format": PLAN_FORMAT, "members_sha256": entry["members_sha256"], "zip64_limit": vplan["zip64_limit"]},
        sort_keys=True,
    )
    return hashlib.sha256(basis.encode()).hexdigest()


# --- safe opening of sources -----------------------------------------------------------------
def open_media_source(media_root_fd: int, source_path: str) -> int:
    """Open ``source_path`` below the directory ``media_root_fd`` without following any symlink.

    Each component is opened with ``O_NOFOLLOW`` relative to its parent's descriptor, so a
    symlinked directory or file, ``..`` and absolute paths are refused (``MediaRejected``).
    """
    if not safe_source_path(source_path):
        raise MediaRejected("path_escape", f"{source_path!r} is absolute or contains '..'")
    parts = PurePosixPath(source_path).parts
    dir_fd = os.dup(media_root_fd)
    try:
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | (0 if last else os.O_DIRECTORY)
            try:
                fd = os.open(part, flags, dir_fd=dir_fd)
            except FileNotFoundError:
                raise MediaRejected("missing_file", f"{source_path!r} does not exist") from None
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.EMLINK):
                    raise MediaRejected("symlink", f"{source_path!r}: {part!r} is a symlink") from None
                if exc.errno == errno.ENOTDIR:
                    if stat.S_ISLNK(os.lstat(part, dir_fd=dir_fd).st_mode):
                        raise MediaRejected("symlink", f"{source_path!r}: {part!r} is a symlink") from None
                    raise MediaRejected("missing_file", f"{source_path!r}: {part!r} is not a folder") from None
                raise MediaRejected("missing_file", f"{source_path!r}: {exc.strerror}") from None
            os.close(dir_fd)
            dir_fd = fd
        st = os.fstat(dir_fd)
        if not stat.S_ISREG(st.st_mode):
            raise MediaRejected("missing_file", f"{source_path!r} is not a regular file")
        fd, dir_fd = dir_fd, -1
        return fd
    finally:
        if dir_fd >= 0:
            os.close(dir_fd)


# --- streaming -------------------------------------------------------------------------------
class _PauseHook:
    """Sleeps once after N archive bytes (only when the test env var is set)."""

    def __init__(self) -> None:
        raw = os.environ.get(TEST_PAUSE_ENV)
        self.after = int(raw) if raw else None

    def check(self, offset: int) -> None:
        if self.after is not None and offset >= self.after:
            self.after = None
            log.warning("%s reached (%d bytes written): pausing for a crash test", TEST_PAUSE_ENV, offset)
            time.sleep(600)


class _ArchiveStream:
    """Streams members into one archive, hashing the archive as it goes (no second read pass).

    A member that fits the buffer is read and verified *before* anything is written (its CRC
    goes straight into the header). A larger member is streamed in buffer-sized chunks, its
    CRC patched into the header afterwards; once committed its bytes are hashed back from the
    page cache. After each committed stretch, writeback is started without waiting
    (``POSIX_FADV_DONTNEED``), so the disk writes overlap with reading and hashing the next
    files and the final fsync has little left to do.
    """

    KICK_BYTES = 16 * 1024 * 1024

    def __init__(self, out_fd: int, zip64_limit: int) -> None:
        self.fd = out_fd
        self.writer = StoredZipWriter(out_fd, zip64_limit)
        self.buf = bytearray(BUFFER_BYTES)
        self.view = memoryview(self.buf)
        self.archive_sha = hashlib.sha256()
        self.hook = _PauseHook()
        self.kicked = 0

    def add(self, src_fd: int, member: dict[str, Any]) -> None:
        """Pack one member or raise MediaRejected (the archive is then as if it was never tried)."""
        size = member["bytes"]
        st = os.fstat(src_fd)
        if st.st_size != size:
            raise MediaRejected("size_mismatch", f"{member['source_path']!r} has {st.st_size} bytes, index says {size}")
        with contextlib.suppress(OSError):
            os.posix_fadvise(src_fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
        src = os.fdopen(src_fd, "rb", buffering=0, closefd=False)
        if size <= len(self.buf):
            self._add_small(src, member)
        else:
            start = self.writer.offset
            self.writer.begin(member["path"], size)
            try:
                crc = self._stream_large(src, member)
            except MediaRejected:
                self.writer.abort()
                raise
            self.writer.commit(crc)
            self._hash_back(start, self.writer.offset)
        if self.writer.offset - self.kicked >= self.KICK_BYTES:
            self._kick_writeback()

    def _read_exact(self, src: Any, member: dict[str, Any], view: memoryview) -> int:
        n = src.readinto(view)
        if not n:
            raise MediaRejected("size_mismatch", f"{member['source_path']!r} ended before its {member['bytes']} bytes")
        return n

    def _verify_tail(self, src: Any, member: dict[str, Any], digest: str) -> None:
        if src.read(1):
            raise MediaRejected("size_mismatch", f"{member['source_path']!r} grew while being packed")
        if digest != member["sha256"]:
            raise MediaRejected(
                "sha256_mismatch", f"{member['source_path']!r} sha256 {digest}, index says {member['sha256']}"
            )

    def _add_small(self, src: Any, member: dict[str, Any]) -> None:
        size = member["bytes"]
        got = 0
        while got < size:
            got += self._read_exact(src, member, self.view[got:size])
        data = self.view[:size]
        self._verify_tail(src, member, hashlib.sha256(data).hexdigest())
        crc = zlib.crc32(data)
        header = self.writer.begin(member["path"], size, crc)
        self.writer.write(data)
        self.writer.commit(crc)
        self.archive_sha.update(header)
        self.archive_sha.update(data)

    def _stream_large(self, src: Any, member: dict[str, Any]) -> int:
        sha = hashlib.sha256()
        crc = 0
        remaining = member["bytes"]
        while remaining:
            n = self._read_exact(src, member, self.view[: min(len(self.buf), remaining)])
            chunk = self.view[:n]
            sha.update(chunk)
            crc = zlib.crc32(chunk, crc)
            self.writer.write(chunk)
            remaining -= n
            self.hook.check(self.writer.offset)
        self._verify_tail(src, member, sha.hexdigest())
        return crc

    def _hash_back(self, start: int, end: int) -> None:
        pos = start
        while pos < end:
            n = os.preadv(self.fd, [self.view[: min(len(self.buf), end - pos)]], pos)
            if n <= 0:
                raise OSError(f"short read hashing back the archive at offset {pos}")
            self.archive_sha.update(self.view[:n])
            pos += n

    def _kick_writeback(self) -> None:
        with contextlib.suppress(OSError):
            os.posix_fadvise(self.fd, self.kicked, self.writer.offset - self.kicked, os.POSIX_FADV_DONTNEED)
        self.kicked = self.writer.offset

    def finish(self) -> tuple[int, str]:
        """Central directory and end records; fsync. Returns (archive bytes, archive sha256)."""
        size = self.writer.finish()
        self.archive_sha.update(self.writer.trailer)
        os.fsync(self.fd)
        return size, self.archive_sha.hexdigest()


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


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


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


def pack_archive(
    campaign_dir: str | Path,
    staging_dir: str | Path,
    release_id: str,
    variant: str,
    archive_name: str,
    verify_existing: bool = True,
) -> ArchiveResult:
    """Pack one planned archive into ``release/<variant>/media/`` (skipped if already done)."""
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
    tmp = media_dir / f".{archive_name}.{os.getpid()}.partial"
    media_root = Path(campaign_dir) / "media"
    try:
        root_fd = os.open(media_root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise MediaPlanError(f"release {release_id}: cannot open campaign media folder {media_root}: {exc.strerror}") from None

    quarantined: list[dict[str, Any]] = []
    out_fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        stream = _ArchiveStream(out_fd, vplan["zip64_limit"])
        for m in members:
            try:
                src_fd = open_media_source(root_fd, m["source_path"])
            except MediaRejected as rej:
                quarantined.append(_quarantine_item(m, rej))
                continue
            try:
                stream.add(src_fd, m)
            except MediaRejected as rej:
                quarantined.append(_quarantine_item(m, rej))
            finally:
                os.close(src_fd)
        size, sha = stream.finish()
    except BaseException:
        os.close(out_fd)
        tmp.unlink(missing_ok=True)
        raise
    finally:
        os.close(root_fd)
    os.close(out_fd)

    files = len(members) - len(quarantined)
    if files == 0:
        # Nothing left to publish: no empty zip (the number stays unused; see docs/decisions.md).
        tmp.unlink()
        final.unlink(missing_ok=True)
        size, sha = 0, ""
    else:
        os.replace(tmp, final)
    _fsync_dir(media_dir)
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
        planned_bytes=entry["planned_bytes"],
        quarantined=quarantined,
    )
    if size > entry["planned_bytes"]:  # cannot happen: dropping members only shrinks an archive
        raise RuntimeError(f"{final}: {size} bytes exceeds the planned {entry['planned_bytes']}")
    atomic_write_bytes(
        result_path(layout, variant, archive_name),
        (json.dumps(result.to_dict(), indent=1, sort_keys=True) + "\n").encode(),
    )
    log.info(
        "release %s/%s: packed %s: %d files, %d bytes (planned %d), %d quarantined",
        release_id, variant, archive_name, files, size, entry["planned_bytes"], len(quarantined),
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
    for name in ("media.jsonl", "media.jsonl.gz"):
        path = Path(campaign_dir) / name
        if not path.exists():
            continue
        opener = gzip.open if name.endswith(".gz") else open
        line_no = 0
        with opener(path, "rt", encoding="utf-8", errors="replace") as fh:
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
        break
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
