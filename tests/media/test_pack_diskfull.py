"""Drill (issue #8): the disk fills up while packing media.

On a real small filesystem (a tmpfs mounted over the release's media folder; needs root, which
these machines and CI have), and through a file size limit (``RLIMIT_FSIZE``, no privileges):

* too little space before starting: refused before writing anything;
* the disk fills up mid-archive (another writer, held at the drill's hold point): the packer
  fails, removes its partial file and leaves no record;
* either way the message names the release, the archive and the space needed, no file with the
  archive's name exists, and a rerun with space packs exactly the planned bytes.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import pickle
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from ioarchive.devtools import drills
from ioarchive.media import stream as media_stream
from ioarchive.media.pack import result_path
from ioarchive.media.stage import MediaDiskFullError, pack_archive, plan_media
from ioarchive.staging import StagingLayout
from support.media import RELEASE, TARGET, build_release, unzip_test

BIG = 6 * 1024 * 1024  # several chunks: the drill holds after the first one
VARIANT = "unhashed"
PACK = ("import sys; from ioarchive.media.stage import pack_archive; "
        "pack_archive(sys.argv[1], sys.argv[2], sys.argv[3], 'unhashed', sys.argv[4])")


def _release(root: Path) -> tuple[Path, Path, dict]:
    """A release whose big file has an archive of its own; returns campaign, staging, plan entry."""
    campaign, staging = build_release(root, seed=11, big_bytes=BIG)
    vplan = plan_media(staging, RELEASE, VARIANT, target_bytes=TARGET)
    return campaign, staging, next(a for a in vplan["archives"] if a["payload_bytes"] == BIG)


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> tuple[str, int]:
    """SHA-256 and size of the big archive packed with room to spare."""
    campaign, staging, entry = _release(tmp_path_factory.mktemp("reference"))
    result = pack_archive(campaign, staging, RELEASE, VARIANT, entry["name"])
    assert result.bytes == entry["planned_bytes"]
    return result.sha256, result.bytes


@contextlib.contextmanager
def tmpfs(folder: Path, mib: int) -> Iterator[None]:
    folder.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={mib}m,mode=0755", "tmpfs", str(folder)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs (needs root; the RLIMIT_FSIZE drill still runs): {mounted.stderr.strip()}")
    try:
        yield
    finally:
        subprocess.run(["umount", "--lazy", str(folder)], check=True)


def _fill(folder: Path) -> None:
    """Another writer takes every free byte of the filesystem."""
    fd = os.open(folder / "filler", os.O_WRONLY | os.O_CREAT, 0o644)
    block = b"\0" * (1 << 20)
    try:
        while True:
            os.write(fd, block)
    except OSError as exc:
        assert exc.errno == errno.ENOSPC
    finally:
        os.close(fd)


def _assert_rerun_packs_the_plan(campaign: Path, staging: Path, entry: dict, reference: tuple[str, int]) -> None:
    result = pack_archive(campaign, staging, RELEASE, VARIANT, entry["name"])
    assert not result.reused and (result.sha256, result.bytes) == reference
    archive = StagingLayout(staging, RELEASE).media_dir(VARIANT) / entry["name"]
    assert hashlib.sha256(archive.read_bytes()).hexdigest() == reference[0]
    unzip_test(archive)


def test_disk_full_before_and_while_packing(tmp_path, reference):
    campaign, staging, entry = _release(tmp_path)
    name, planned = entry["name"], entry["planned_bytes"]
    media = StagingLayout(staging, RELEASE).media_dir(VARIANT)
    record = result_path(StagingLayout(staging, RELEASE), VARIANT, name)
    with tmpfs(media, 4):
        # 1. too little room from the start: refused before a byte is written
        with pytest.raises(MediaDiskFullError) as refused:
            pack_archive(campaign, staging, RELEASE, VARIANT, name)
        err = refused.value
        assert err.needed == planned and 3 * 2**20 < err.free <= 4 * 2**20
        message = str(err)
        assert message.startswith(f"release {RELEASE}/{VARIANT}: not enough disk space to pack archive {name} into {media}: ")
        assert f"it needs {planned:,} bytes (6 MB), {err.free:,} bytes (" in message
        assert f"nothing was written: free at least {planned - err.free:,} bytes" in message
        assert message.endswith("then rerun the task")
        assert os.listdir(media) == [] and not record.exists()

        # 2. room at the start, then another writer fills the disk while the archive is half written
        subprocess.run(["mount", "-o", "remount,size=8m", str(media)], check=True)
        drill = tmp_path / "drill"
        drill.mkdir()
        (drill / f"{drills.PACK_MEDIA}.hold").write_text("")
        env = dict(os.environ, **{drills.DRILL_DIR_ENV: str(drill)})
        proc = subprocess.Popen([sys.executable, "-c", PACK, str(campaign), str(staging), RELEASE, name], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            reached = drill / f"{drills.PACK_MEDIA}.reached"
            deadline = time.monotonic() + 60
            while not (reached.exists() and reached.read_text().endswith("}")):
                assert proc.poll() is None and time.monotonic() < deadline, "packer did not reach the hold point"
                time.sleep(0.05)
            partial = media / f".{name}.{proc.pid}.partial"
            assert media_stream.CHUNK_BYTES < partial.stat().st_size < planned
            _fill(media)
            (drill / f"{drills.PACK_MEDIA}.release").write_text("")
            _, stderr = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert proc.returncode == 1, stderr
        message = next(line for line in stderr.splitlines() if line.startswith("ioarchive.errors.MediaDiskFullError"))
        assert f"release {RELEASE}/{VARIANT}: out of space (No space left on device) after writing " in message
        assert f"bytes of archive {name} into {media}; the partial file was removed" in message
        assert f"The archive needs {planned:,} bytes (6 MB)" in message
        assert "free at least " in message and "then rerun the task" in message
        assert os.listdir(media) == ["filler"] and not record.exists()  # no partial, no archive, no record

        # 3. space freed: the rerun packs exactly the planned bytes
        (media / "filler").unlink()
        _assert_rerun_packs_the_plan(campaign, staging, entry, reference)
        assert sorted(os.listdir(media)) == [name]


def _limit_file_size() -> None:  # runs in the child between fork and exec
    resource.setrlimit(resource.RLIMIT_FSIZE, (3 * 2**20, 3 * 2**20))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # else the kernel kills the child instead of EFBIG


def test_file_size_limit_mid_write_leaves_nothing(tmp_path, reference):
    campaign, staging, entry = _release(tmp_path)
    name, planned = entry["name"], entry["planned_bytes"]
    layout = StagingLayout(staging, RELEASE)
    proc = subprocess.run([sys.executable, "-c", PACK, str(campaign), str(staging), RELEASE, name],
                          preexec_fn=_limit_file_size, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr
    message = next(line for line in proc.stderr.splitlines() if line.startswith("ioarchive.errors.MediaDiskFullError"))
    assert f"release {RELEASE}/{VARIANT}: out of space (File too large) after writing " in message
    assert f"archive {name}" in message and f"needs {planned:,} bytes" in message
    assert "the file size limit (`ulimit -f` of the worker" in message
    media = layout.media_dir(VARIANT)
    assert os.listdir(media) == [] and not result_path(layout, VARIANT, name).exists()
    _assert_rerun_packs_the_plan(campaign, staging, entry, reference)


def test_disk_full_error_survives_a_process_pool():
    """``pack-media --workers 2`` raises it in a pool worker: the parent must get the same error."""
    err = MediaDiskFullError("release x_202101/hashed: not enough disk space ...", archive="a.zip", needed=10, free=3)
    back = pickle.loads(pickle.dumps(err))
    assert (type(back), str(back), back.archive, back.needed, back.free) == (
        MediaDiskFullError, str(err), "a.zip", 10, 3)
