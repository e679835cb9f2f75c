"""Streaming the members of one archive: read ahead, verify, write and hash on four threads.

Why threads: per byte, packing costs two SHA-256 passes (the member, checked against the media
index, and the whole archive, recorded for the renderer and reruns), a CRC-32, a read and a
write. On one thread these run one after the other and the disk idles while the CPU hashes
(measured: about half the throughput of ``cp``). ``hashlib``, ``zlib.crc32`` and the ``os``
read/write calls release the GIL on large buffers, so four threads overlap them:

* the reader opens each source safely (:func:`open_media_source`), reads it (``O_DIRECT`` where
  the filesystem allows: read once, no page-cache copy) into buffers from a bounded pool
  (``READ_AHEAD`` buffers of ``CHUNK_BYTES``: constant memory whatever the file sizes) and
  computes the member's SHA-256;
* the checksummer computes the members' CRC-32 from the same buffers;
* the writer (the calling thread) checks size and SHA-256 and writes the zip;
* the archive hasher hashes each committed stretch of the archive (a small member from the
  reader's buffer, a large one read back from the page cache with ``preadv``), then starts its
  writeback without waiting (``POSIX_FADV_DONTNEED``), so the disk writes overlap with the rest
  and the final fsync has little left to do.

A member up to ``CHUNK_BYTES`` is read and verified before anything is written (its CRC goes
straight into its header). A larger one is streamed, its CRC patched in afterwards, and on a
size or SHA-256 mismatch the archive is truncated back to the member's header, so the archive
is exactly what the plan would give without that file. A large member's header is final only
after its last byte, hence the read-back for the archive's hash.

The fault drills' hold point ``pack_media.mid_archive`` (:mod:`ioarchive.devtools.drills`) sits after
the first bytes of member data are written.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import logging
import mmap
import os
import queue
import stat
import threading
import zlib
from pathlib import PurePosixPath
from typing import Any

from ioarchive.devtools import drills
from ioarchive.media.plan import safe_source_path
from ioarchive.media.zip_writer import StoredZipWriter

log = logging.getLogger(__name__)

CHUNK_BYTES = 1024 * 1024
"""Read/write/hash unit; members up to this size are verified before being written. Small enough
that a chunk is still in the CPU cache when the next thread hashes or writes it: measured 1.3-1.5x
the throughput of 8 MiB chunks on this project's 2-core VMs."""
DIRECT_ALIGN = 4096
"""O_DIRECT reads: buffer addresses and lengths are multiples of this (any logical block size up to 4 KiB)."""
READ_AHEAD = 16
"""Buffers in the pool (16 MiB): the reader runs at most this many chunks ahead of the writer."""
KICK_BYTES = 16 * 1024 * 1024
"""Start the writeback of the archive every this many hashed bytes."""


class MediaRejected(Exception):
    """A member cannot be packed; ``reason`` is a quarantine reason name."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def open_media_source(media_root_fd: int, source_path: str) -> int:
    """Open ``source_path`` below the directory ``media_root_fd`` without following any symlink.

    Each component is opened with ``O_NOFOLLOW`` relative to its parent's descriptor, so a
    symlinked directory or file, ``..`` and absolute paths are refused (``MediaRejected``) even
    if the file system changes meanwhile.
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


def _direct_io(fd: int, on: bool = True) -> bool:
    """Switch a source to (or back from) O_DIRECT; False if the filesystem does not allow it.

    Why: sources are read once; going around the page cache saves a copy and, on a 2 TB
    release, keeps the cache for the archives being written (measured on this project's VMs:
    0.06 instead of 0.23 s of kernel CPU per GB read).
    """
    flag = getattr(os, "O_DIRECT", 0)
    if not flag:
        return False
    try:
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        fcntl.fcntl(fd, fcntl.F_SETFL, flags | flag if on else flags & ~flag)
    except OSError:
        return False
    return on


def _read_into(fd: int, buf: memoryview, request: int, direct: bool) -> int:
    """Read up to ``request`` bytes into ``buf``; fewer only at the end of the file."""
    got = 0
    while got < request:
        try:
            n = os.readv(fd, [buf[got:request]])
        except OSError as exc:
            if not (direct and exc.errno == errno.EINVAL):
                raise
            direct = _direct_io(fd, on=False)  # the filesystem took the flag but refuses the reads
            continue
        got += n
        if not n or (direct and got % DIRECT_ALIGN):  # O_DIRECT: a short read is the end of the file
            break
    return got


class _Reader(threading.Thread):
    """Opens, reads and SHA-256-checks the sources ahead of the writer, in member order.

    Events: ``("begin", i)``, ``("data", i, buffer, n)`` (the buffer goes back to the pool once
    used), ``("end", i, sha256 hex)``, ``("reject", i, MediaRejected)`` (may follow some data),
    ``("done",)``, ``("error", exception)``.
    """

    def __init__(self, root_fd: int, members: list[dict[str, Any]], pool: queue.Queue, events: queue.Queue) -> None:
        super().__init__(name="media-reader", daemon=True)
        self.root_fd = root_fd
        self.members = members
        self.pool = pool
        self.events = events
        self.stopping = threading.Event()

    def stop(self) -> None:
        self.stopping.set()
        self.pool.put(None)  # wakes a reader waiting for a buffer

    def run(self) -> None:
        try:
            for i, member in enumerate(self.members):
                if self.stopping.is_set() or not self._member(i, member):
                    return
            self.events.put(("done",))
        except BaseException as exc:  # handed to the writer thread, which raises it
            self.events.put(("error", exc))

    def _reject(self, i: int, reason: str, detail: str) -> bool:
        self.events.put(("reject", i, MediaRejected(reason, detail)))
        return True

    def _member(self, i: int, member: dict[str, Any]) -> bool:
        """Read one member; False if asked to stop."""
        try:
            fd = open_media_source(self.root_fd, member["source_path"])
        except MediaRejected as rej:
            self.events.put(("reject", i, rej))
            return True
        try:
            size, where = member["bytes"], repr(member["source_path"])
            actual = os.fstat(fd).st_size
            if actual != size:
                return self._reject(i, "size_mismatch", f"{where} has {actual} bytes, index says {size}")
            direct = _direct_io(fd)
            if not direct:
                with contextlib.suppress(OSError):
                    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
            self.events.put(("begin", i))
            sha, remaining = hashlib.sha256(), size
            while True:
                buf = self.pool.get()
                if buf is None or self.stopping.is_set():
                    return False
                last = remaining <= CHUNK_BYTES
                want = remaining if last else CHUNK_BYTES
                # the last read asks for more than is left, so that it also sees a file that grew
                request = (_align_up(want + 1) if direct else want + 1) if last else want
                got = _read_into(fd, buf, request, direct)
                if got != want:
                    self.pool.put(buf)
                    if got < want:
                        return self._reject(i, "size_mismatch", f"{where} ended before its {size} bytes")
                    return self._reject(i, "size_mismatch", f"{where} grew while being packed")
                sha.update(buf[:want])
                remaining -= want
                self.events.put(("data", i, buf, want))
                if last:
                    break
            self.events.put(("end", i, sha.hexdigest()))
            return True
        finally:
            os.close(fd)


class _Checksummer(threading.Thread):
    """CRC-32 of each member, between the reader and the writer (its own thread: one less hash
    on the writer's path). Forwards the reader's events; ``end`` gains the CRC: ``("end", i, sha, crc)``."""

    def __init__(self, source: queue.Queue, sink: queue.Queue) -> None:
        super().__init__(name="media-crc", daemon=True)
        self.source = source
        self.sink = sink

    def run(self) -> None:
        crc = 0
        while True:
            event = self.source.get()
            kind = event[0]
            if kind == "begin":
                crc = 0
            elif kind == "data":
                crc = zlib.crc32(event[2][: event[3]], crc)
            elif kind == "end":
                event = (*event, crc)
            self.sink.put(event)
            if kind in ("done", "error", "stop"):
                return


def _align_up(n: int) -> int:
    return -(-n // DIRECT_ALIGN) * DIRECT_ALIGN


class _ArchiveHasher(threading.Thread):
    """SHA-256 of the archive from its committed stretches, in order.

    A small member arrives with its bytes (header and the reader's buffer, which goes back to
    the pool once hashed); a large one as a byte range, read back from the page cache.
    """

    def __init__(self, fd: int, pool: queue.Queue) -> None:
        super().__init__(name="media-archive-hasher", daemon=True)
        self.fd = fd
        self.pool = pool
        self.items: queue.Queue = queue.Queue()
        self.sha = hashlib.sha256()
        self.error: BaseException | None = None
        self.hashed = 0
        self.submitted = 0

    def submit(self, start: int, end: int, parts: tuple[bytes, memoryview, int] | None = None) -> None:
        """Hash bytes ``[start, end)`` of the archive, final by now; ``parts``: (header, buffer, n) if in memory."""
        if start != self.submitted:
            raise RuntimeError(f"archive stretches must be contiguous: {start} submitted after {self.submitted}")
        self.submitted = end
        self.items.put((start, end, parts))

    def run(self) -> None:
        view = memoryview(bytearray(CHUNK_BYTES))
        kicked = 0
        try:
            while (item := self.items.get()) is not None:
                pos, end, parts = item
                if parts is not None:
                    header, buf, n = parts
                    self.sha.update(header)
                    self.sha.update(buf[:n])
                    self.pool.put(buf)
                    pos += len(header) + n
                while pos < end:
                    n = os.preadv(self.fd, [view[: min(len(view), end - pos)]], pos)
                    if n <= 0:
                        raise OSError(f"short read hashing back the archive at offset {pos}")
                    self.sha.update(view[:n])
                    pos += n
                self.hashed = pos
                if pos - kicked >= KICK_BYTES:
                    with contextlib.suppress(OSError):
                        os.posix_fadvise(self.fd, kicked, pos - kicked, os.POSIX_FADV_DONTNEED)
                    kicked = pos
        except BaseException as exc:  # reported by digest()
            self.error = exc

    def close(self) -> None:
        self.items.put(None)
        self.join()

    def digest(self) -> str:
        self.close()
        if self.error is not None:
            raise self.error
        if self.hashed != self.submitted:
            raise RuntimeError(f"archive hasher stopped at {self.hashed} of {self.submitted} bytes")
        return self.sha.hexdigest()


def stream_archive(
    out_fd: int, root_fd: int, members: list[dict[str, Any]], zip64_limit: int
) -> tuple[int, str, list[tuple[dict[str, Any], MediaRejected]]]:
    """Write ``members`` as a stored zip to ``out_fd`` (empty, at offset 0) and fsync it.

    Returns the archive's size, its SHA-256 and the members refused with their reason. Any
    OSError (a full disk included) propagates after the helper threads are stopped; the caller
    removes the file.
    """
    pool: queue.Queue = queue.Queue()
    for _ in range(READ_AHEAD):
        # mmap: page-aligned, as O_DIRECT needs; one block more for the read past the end
        pool.put(memoryview(mmap.mmap(-1, CHUNK_BYTES + DIRECT_ALIGN, flags=mmap.MAP_PRIVATE)))
    read: queue.Queue = queue.Queue()
    events: queue.Queue = queue.Queue()
    writer = StoredZipWriter(out_fd, zip64_limit)
    reader = _Reader(root_fd, members, pool, read)
    checksummer = _Checksummer(read, events)
    hasher = _ArchiveHasher(out_fd, pool)
    hold = True  # the fault drill's hold point: once, after the first bytes of data are written
    rejected: list[tuple[dict[str, Any], MediaRejected]] = []
    reader.start()
    checksummer.start()
    hasher.start()
    try:
        start = 0
        held: memoryview | None = None  # a small member's bytes, written once verified
        while True:
            event = events.get()
            kind = event[0]
            if kind == "data":
                _, i, buf, n = event
                if members[i]["bytes"] <= CHUNK_BYTES:
                    held = buf
                else:
                    writer.write(buf[:n])
                    pool.put(buf)
                    if hold:
                        hold = False
                        drills.hold(drills.PACK_MEDIA)
            elif kind == "begin":
                member = members[event[1]]
                start = writer.offset
                if member["bytes"] > CHUNK_BYTES:
                    writer.begin(member["path"], member["bytes"])
            elif kind == "end":
                _, i, digest, crc = event
                member = members[i]
                if digest != member["sha256"]:
                    rejected.append((member, MediaRejected(
                        "sha256_mismatch", f"{member['source_path']!r} sha256 {digest}, index says {member['sha256']}")))
                    writer.abort()  # no-op for a small member: nothing was written
                elif held is not None:
                    size = member["bytes"]
                    header = writer.begin(member["path"], size, crc)
                    writer.write(held[:size])
                    writer.commit(crc)
                    hasher.submit(start, writer.offset, (header, held, size))
                    held = None
                    if hold:
                        hold = False
                        drills.hold(drills.PACK_MEDIA)
                else:
                    writer.commit(crc)
                    hasher.submit(start, writer.offset)
                if held is not None:
                    pool.put(held)
                    held = None
            elif kind == "reject":
                _, i, rej = event
                writer.abort()  # no-op unless a large member was begun
                if held is not None:
                    pool.put(held)
                    held = None
                rejected.append((members[i], rej))
            elif kind == "done":
                break
            else:
                raise event[1]
        cd_offset = writer.offset
        size = writer.finish()
        hasher.submit(cd_offset, size)
        archive_sha = hasher.digest()
        os.fsync(out_fd)
        return size, archive_sha, rejected
    finally:
        reader.stop()
        reader.join()
        read.put(("stop",))  # the checksummer has passed "done" on already, or stops here
        checksummer.join()
        if hasher.is_alive():
            hasher.close()
