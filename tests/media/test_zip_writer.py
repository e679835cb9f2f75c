"""The stored-zip writer: exact planned sizes, readable by zipfile and unzip, ZIP64 when needed."""

from __future__ import annotations

import os
import random
import shutil
import struct
import subprocess
import sys
import zipfile
import zlib

import pytest
from ioarchive.media.zip_writer import StoredZipWriter, ZipSizer


def _write(path, members, limit, drop=()):
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    sizer = ZipSizer(limit)
    try:
        w = StoredZipWriter(fd, limit)
        for name, data in members:
            w.begin(name, len(data))
            w.write(data[: len(data) // 2])
            if name in drop:
                w.abort()
                continue
            w.write(data[len(data) // 2 :])
            w.commit(zlib.crc32(data))
            sizer.add(name, len(data))
        total = w.finish()
    finally:
        os.close(fd)
    return total, sizer.total


@pytest.mark.parametrize("limit", [(1 << 31) - 1, 1000, 1])
def test_sizes_match_and_archive_is_valid(tmp_path, limit):
    rng = random.Random(limit)
    members = [(f"u{i}/images/{i}-3_{i}.jpg", rng.randbytes(rng.randint(0, 3000))) for i in range(12)]
    members.append(("u1/profile/u1_profile.jpg", rng.randbytes(5000)))
    path = tmp_path / "a.zip"
    total, planned = _write(path, members, limit, drop={"u3/images/3-3_3.jpg"})
    assert total == planned == path.stat().st_size
    kept = [(n, d) for n, d in members if n != "u3/images/3-3_3.jpg"]
    with zipfile.ZipFile(path) as zf:
        assert zf.testzip() is None
        assert [i.filename for i in zf.infolist()] == [n for n, _ in kept]
        for info, (name, data) in zip(zf.infolist(), kept, strict=True):
            assert info.compress_type == zipfile.ZIP_STORED
            assert info.date_time == (1980, 1, 1, 0, 0, 0)
            assert info.external_attr >> 16 == 0o100644
            assert zf.read(name) == data
        zip64_members = [i for i in zf.infolist() if len(i.extra) >= 4 and struct.unpack("<H", i.extra[:2])[0] == 1]
        if limit == 1000:
            # sizes above 1000 and every offset above 1000 carry ZIP64 extras
            assert zip64_members and any(i.header_offset > 1000 for i in zip64_members)
        if limit == (1 << 31) - 1:
            assert not zip64_members
    raw = path.read_bytes()
    assert (b"PK\x06\x06" in raw) == (limit < 100000)  # ZIP64 end of central directory
    subprocess.run([sys.executable, "-m", "zipfile", "-t", str(path)], check=True, capture_output=True)
    if shutil.which("unzip"):
        out = subprocess.run(["unzip", "-t", str(path)], capture_output=True, text=True)
        assert out.returncode == 0, out.stdout + out.stderr
        assert "No errors detected" in out.stdout


def test_sizer_predicts_before_adding():
    sizer = ZipSizer()
    predicted = sizer.size_if_added("a/images/1-2.jpg", 10)
    assert predicted == 30 + 16 + 10 + 46 + 16 + 22
    assert sizer.add("a/images/1-2.jpg", 10) == predicted


def test_writer_refuses_more_bytes_than_declared(tmp_path):
    fd = os.open(tmp_path / "x.zip", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        w = StoredZipWriter(fd)
        w.begin("a", 3)
        with pytest.raises(ValueError):
            w.write(b"abcd")
    finally:
        os.close(fd)
