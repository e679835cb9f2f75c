"""Zipped CSV parts written from ready-made CSV record bytes, deflated on every core.

The table writers (``ioarchive.tables.writers``) hand over CSV records that Spark already formatted,
in their final order, as Arrow string arrays whose values end with a single LF
(``CSV_RECORD_END``, RELEASE_SPEC section 3): the data buffer of such an array *is* the CSV
body, so records are never copied one by one in Python.
This module cuts that stream into parts (RELEASE_SPEC section 3: a CSV above the limit is split
on row boundaries, a header in every part) and writes each part as a zip with one deflated
entry.

Why not :mod:`zipfile` alone: its deflate runs on one core, and for a release of millions of
posts it was the longest single step. Here each part's deflate stream is made of 4 MiB blocks
compressed in parallel threads (zlib releases the GIL), pigz-style: every block but the last
ends with a sync flush and is primed with the previous block's last 32 KiB, so the
concatenation is one valid deflate stream. Block boundaries depend only on the bytes, never on
threads or Spark partitions, so the same rows give the same archive on any machine with the same
zlib. A part smaller than one block is a single ``compress + finish``: byte-identical to what
:mod:`zipfile` writes. Zip headers follow :mod:`zipfile` field by field (fixed 1980-01-01
timestamp, 0644 attributes, no data descriptor).

Crash safety: a part is written under a temporary name in a scratch folder and only renamed to
its final name once complete, so a killed writer never leaves a truncated zip behind.
"""

from __future__ import annotations

import os
import shutil
import struct
import zlib
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

ZIP_DATE_TIME = (1980, 1, 1, 0, 0, 0)
ZIP_COMPRESSLEVEL = 6
CSV_RECORD_END = b"\n"
"""Every record (header included) ends with one LF; CR and LF inside quoted text stay as they are."""
DEFLATE_BLOCK = 4 << 20
"""Uncompressed bytes per parallel deflate block (fixed: part of the output format)."""
WINDOW = 32 << 10
ZIP64_LIMIT = (1 << 31) - 1
FORCE_ZIP64_FROM = 0xFFFF0000
"""Parts allowed to reach this size get ZIP64 headers up front, as ``zipfile(force_zip64)`` did."""
_COPY_CHUNK = 8 << 20


def _deflate_block(block: bytes, level: int, zdict: bytes, final: bool) -> bytes:
    comp = zlib.compressobj(level, zlib.DEFLATED, -15, zdict=zdict) if zdict else \
        zlib.compressobj(level, zlib.DEFLATED, -15)
    return comp.compress(block) + comp.flush(zlib.Z_FINISH if final else zlib.Z_SYNC_FLUSH)


class DeflateStream:
    """One raw deflate stream written to ``out``, its blocks compressed by ``pool`` in order."""

    def __init__(self, out: BinaryIO, pool: ThreadPoolExecutor, level: int, workers: int) -> None:
        self.out, self.pool, self.level = out, pool, level
        self.max_pending = 2 * workers
        self.crc = 0
        self.size = 0
        self.compressed = 0
        self._pieces: list[bytes | memoryview] = []
        self._buffered = 0
        self._tail = b""
        self._pending: deque[Future[bytes]] = deque()

    def write(self, data: bytes | memoryview) -> None:
        if not len(data):
            return
        self.crc = zlib.crc32(data, self.crc)
        self.size += len(data)
        view = memoryview(data)
        while len(view):
            take = min(len(view), DEFLATE_BLOCK - self._buffered)
            self._pieces.append(view[:take])
            self._buffered += take
            view = view[take:]
            if self._buffered == DEFLATE_BLOCK:
                self._submit(final=False)

    def _submit(self, final: bool) -> None:
        block = b"".join(self._pieces)
        self._pieces.clear()
        self._buffered = 0
        zdict, self._tail = self._tail, block[-WINDOW:]
        self._pending.append(self.pool.submit(_deflate_block, block, self.level, zdict, final))
        while len(self._pending) > self.max_pending:
            self._drain_one()

    def _drain_one(self) -> None:
        data = self._pending.popleft().result()
        self.out.write(data)
        self.compressed += len(data)

    def finish(self) -> None:
        """Compress what is buffered as the final block and wait for every block."""
        self._submit(final=True)
        while self._pending:
            self._drain_one()


def _zip_info(name: str, crc: int, size: int, compressed: int) -> Any:
    import zipfile

    info = zipfile.ZipInfo(name, date_time=ZIP_DATE_TIME)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.create_system = 3
    info.external_attr = 0o100644 << 16
    info.flag_bits = 0
    info.CRC, info.file_size, info.compress_size = crc, size, compressed
    info.header_offset = 0
    return info


def write_zip(dest: Path, entry_name: str, stream_file: Path, crc: int, size: int, compressed: int,
              force_zip64: bool) -> None:
    """A one-entry deflated zip at ``dest`` around an already deflated stream (zipfile's layout)."""
    info = _zip_info(entry_name, crc, size, compressed)
    zip64 = force_zip64 or size > ZIP64_LIMIT or compressed > ZIP64_LIMIT
    local = info.FileHeader(zip64)
    name, flags = info._encodeFilenameFlags()
    extra = b""
    csize, fsize = compressed, size
    min_version = 0
    if size > ZIP64_LIMIT or compressed > ZIP64_LIMIT:
        extra = struct.pack("<HHQQ", 1, 16, size, compressed)
        csize = fsize = 0xFFFFFFFF
        min_version = 45
    central = struct.pack(
        "<4s4B4HL2L5H2L", b"PK\001\002", max(min_version, info.create_version), info.create_system,
        max(min_version, info.extract_version), info.reserved, flags, info.compress_type, 0, 33,
        info.CRC, csize, fsize, len(name), len(extra), 0, 0, info.internal_attr, info.external_attr, 0,
    ) + name + extra
    start_dir = len(local) + compressed
    end = b""
    if start_dir > ZIP64_LIMIT:  # zipfile's ZIP64 end records
        end = struct.pack("<4sQ2H2L4Q", b"PK\006\006", 44, 45, 45, 0, 0, 1, 1, len(central), start_dir)
        end += struct.pack("<4sLQL", b"PK\006\007", 0, start_dir + len(central), 1)
    end += struct.pack("<4s4H2LH", b"PK\005\006", 0, 0, 1, 1, len(central), min(start_dir, 0xFFFFFFFF), 0)
    with open(dest, "wb") as out, open(stream_file, "rb") as src:
        out.write(local)
        shutil.copyfileobj(src, out, _COPY_CHUNK)
        out.write(central)
        out.write(end)
        out.flush()
        os.fsync(out.fileno())


class CsvPartWriter:
    """Cuts CSV record arrays into zipped parts of at most ``max_bytes`` of CSV each.

    ``path_for_part(None)`` names the single file, ``path_for_part(n)`` part ``n`` (from 1);
    parts are used only when the whole CSV (header included) exceeds ``max_bytes``. A record
    larger than the limit gets a part of its own. Parts are built in ``scratch`` and renamed
    into place by :meth:`close`, which returns ``{zip name: rows}``.
    """

    def __init__(self, path_for_part: Callable[[int | None], Path], header: bytes, max_bytes: int,
                 scratch: Path, pool: ThreadPoolExecutor, workers: int,
                 compresslevel: int = ZIP_COMPRESSLEVEL) -> None:
        if max_bytes < 1:
            raise ValueError(f"csv_part_max_bytes must be positive, got {max_bytes}")
        self.path_for_part, self.header, self.max_bytes = path_for_part, header, max_bytes
        self.scratch, self.pool, self.workers, self.level = scratch, pool, workers, compresslevel
        self.total = 0
        self._parts: list[tuple[Path, DeflateStream, int]] = []  # stream file, stream, rows
        self._fh: BinaryIO | None = None
        self._stream: DeflateStream | None = None
        self._size = self._rows = 0

    def _open(self) -> None:
        path = self.scratch / f"part{len(self._parts) + 1:05d}.deflate"
        self._fh = open(path, "wb")  # noqa: SIM115 - closed in _end_part
        self._stream = DeflateStream(self._fh, self.pool, self.level, self.workers)
        self._parts.append((path, self._stream, 0))
        self._size = self._rows = 0
        self._put(memoryview(self.header))

    def _put(self, data: memoryview) -> None:
        assert self._stream is not None
        self._stream.write(data)
        self._size += len(data)
        self.total += len(data)

    def _end_part(self) -> None:
        assert self._stream is not None and self._fh is not None
        self._stream.finish()
        self._fh.close()
        path, stream, _ = self._parts[-1]
        self._parts[-1] = (path, stream, self._rows)
        self._fh = self._stream = None

    def write_records(self, values: Any) -> None:
        """Append an Arrow string/binary array (or chunked array) of LF-terminated records."""
        chunks: Iterable[Any] = values.chunks if hasattr(values, "chunks") else [values]
        for arr in chunks:
            if len(arr):
                self._write_chunk(arr)

    def _write_chunk(self, arr: Any) -> None:
        if arr.null_count:
            raise ValueError("CSV records must not be null")
        _, offsets_buf, data_buf = arr.buffers()[:3]
        width = _offset_width(arr)
        offsets = np.frombuffer(offsets_buf, dtype=np.int32 if width == 4 else np.int64,
                                count=len(arr) + 1, offset=arr.offset * width)
        data = memoryview(data_buf) if data_buf is not None else memoryview(b"")
        i, n = 0, len(arr)
        while i < n:
            if self._stream is None:
                self._open()
            room = self.max_bytes - self._size
            # Records i..j-1 fit when offsets[j] - offsets[i] <= room.
            j = int(np.searchsorted(offsets, offsets[i] + room, side="right")) - 1
            j = min(j, n)
            if j <= i:
                if self._rows == 0:  # a record larger than the limit: a part of its own
                    j = i + 1
                else:
                    self._end_part()
                    continue
            self._put(data[int(offsets[i]):int(offsets[j])])
            self._rows += j - i
            i = j
            if i < n:
                self._end_part()

    def close(self) -> dict[str, int]:
        """Finish the last part, build the zips and move them into place."""
        if self._stream is None and not self._parts:
            self._open()  # an empty table still gets a CSV with its header
        if self._stream is not None:
            self._end_part()
        single = self.total <= self.max_bytes and len(self._parts) == 1
        force_zip64 = self.max_bytes >= FORCE_ZIP64_FROM
        built: list[tuple[Path, Path]] = []
        files: dict[str, int] = {}
        for number, (stream_file, stream, rows) in enumerate(self._parts, start=1):
            dest = self.path_for_part(None if single else number)
            tmp = self.scratch / f"{dest.name}.zip-building"
            write_zip(tmp, dest.with_suffix(".csv").name, stream_file, stream.crc, stream.size,
                      stream.compressed, force_zip64)
            stream_file.unlink()
            built.append((tmp, dest))
            files[dest.name] = rows
        for tmp, dest in built:
            os.replace(tmp, dest)
        return files


def _offset_width(arr: Any) -> int:
    """4 for string/binary, 8 for large_string/large_binary."""
    import pyarrow as pa

    return 8 if pa.types.is_large_string(arr.type) or pa.types.is_large_binary(arr.type) else 4
