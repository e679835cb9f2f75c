"""The threaded archive stream: same bytes whatever the chunk size, read-ahead or I/O mode.

Each case packs the same members, good and bad, through :func:`stream_archive` and compares the
archive byte for byte with the reference: the zip writer fed only the good members, whole. A bad
large member is streamed before its SHA-256 is known, so dropping it exercises the truncation
back to its header; the archive SHA-256 must be that of the bytes on disk.
"""

from __future__ import annotations

import errno
import hashlib
import os
import random
import zipfile
import zlib
from pathlib import Path

import pytest
from ioarchive.media import stream as media_stream
from ioarchive.media.stream import stream_archive
from ioarchive.media.zip_writer import ZIP64_LIMIT, StoredZipWriter


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _reference(path: Path, members: list[tuple[str, bytes]]) -> bytes:
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        writer = StoredZipWriter(fd)
        for name, data in members:
            crc = zlib.crc32(data)
            writer.begin(name, len(data), crc)
            writer.write(data)
            writer.commit(crc)
        writer.finish()
    finally:
        os.close(fd)
    return path.read_bytes()


def _members(src: Path) -> tuple[list[dict], list[tuple[str, bytes]], dict[str, str]]:
    """Members in archive order (good and bad), the good ones' (path, bytes), and the expected refusals."""
    rng = random.Random(7)
    members: list[dict] = []
    good: list[tuple[str, bytes]] = []
    bad: dict[str, str] = {}

    def add(key: str, on_disk: bytes | None, declared: bytes, reason: str | None = None) -> None:
        if on_disk is not None:
            (src / key).write_bytes(on_disk)
        path = f"u/images/{len(members)}-{key}.jpg"
        members.append({"path": path, "source_path": key, "bytes": len(declared), "sha256": _sha(declared),
                        "media_key": key})
        if reason:
            bad[key] = reason
        else:
            good.append((path, declared))

    for i, size in enumerate([0, 1, 4095, 4096, 4097, 3 * 4096, 100_000]):
        data = rng.randbytes(size)
        add(f"g{i}", data, data)
    big = rng.randbytes(150_000)
    add("bad_big", big[:-1] + bytes([big[-1] ^ 1]), big, "sha256_mismatch")  # differs in its last byte
    data = rng.randbytes(70_000)
    add("g7", data, data)
    small = rng.randbytes(3000)
    add("bad_small", small[:100] + b"x" + small[101:], small, "sha256_mismatch")
    add("shrunk", small[:2000], small, "size_mismatch")
    add("missing", None, small, "missing_file")
    for i, size in enumerate([200_000, 8192]):
        data = rng.randbytes(size)
        add(f"h{i}", data, data)
    return members, good, bad


def _stream_members(tmp_path):
    """Stream ``_members`` into ``out.zip``; returns the path, the expected members and the result."""
    src = tmp_path / "media"
    src.mkdir()
    members, good, bad = _members(src)
    out = tmp_path / "out.zip"
    fd = os.open(out, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    root_fd = os.open(src, os.O_RDONLY | os.O_DIRECTORY)
    try:
        result = stream_archive(fd, root_fd, members, ZIP64_LIMIT)
    finally:
        os.close(fd)
        os.close(root_fd)
    return out, good, bad, result


@pytest.mark.parametrize(
    ("chunk", "read_ahead", "direct"),
    [(4096, 1, True), (4096, 4, False), (65536, 2, True), (media_stream.CHUNK_BYTES, media_stream.READ_AHEAD, True)],
)
def test_stream_writes_the_good_members_exactly(tmp_path, monkeypatch, chunk, read_ahead, direct):
    monkeypatch.setattr(media_stream, "CHUNK_BYTES", chunk)
    monkeypatch.setattr(media_stream, "READ_AHEAD", read_ahead)
    if not direct:
        monkeypatch.setattr(media_stream, "_direct_io", lambda fd: False)
    out, good, bad, (size, digest, rejected) = _stream_members(tmp_path)
    written = out.read_bytes()
    assert written == _reference(tmp_path / "ref.zip", good)
    assert (size, digest) == (len(written), _sha(written))
    assert {m["media_key"]: rej.reason for m, rej in rejected} == bad
    with zipfile.ZipFile(out) as zf:
        assert zf.testzip() is None
        assert [(i.filename, zf.read(i)) for i in zf.infolist()] == good


def test_stream_falls_back_to_buffered_reads_when_direct_reads_are_refused(tmp_path, monkeypatch):
    """Some filesystems accept the O_DIRECT flag but refuse the reads (EINVAL): same archive, buffered."""
    monkeypatch.setattr(media_stream, "CHUNK_BYTES", 4096)
    refusing: set[int] = set()
    real_readv = os.readv

    def direct_io(fd: int, on: bool = True) -> bool:
        (refusing.add if on else refusing.discard)(fd)
        return on

    def readv(fd: int, buffers):
        if fd in refusing:
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_readv(fd, buffers)

    monkeypatch.setattr(media_stream, "_direct_io", direct_io)
    monkeypatch.setattr(media_stream.os, "readv", readv)
    out, good, bad, (_, digest, rejected) = _stream_members(tmp_path)
    assert out.read_bytes() == _reference(tmp_path / "ref.zip", good) and digest == _sha(out.read_bytes())
    assert {m["media_key"]: rej.reason for m, rej in rejected} == bad
    assert not refusing  # every source was switched back to buffered reads
