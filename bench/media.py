"""Benchmark: media packing throughput next to `cp`, peak RSS of a packing worker, 1 vs 2 workers.

Generates ``--gb`` GB of media files (sizes log-uniform between 30 kB and 40 MB, like photos and
videos; distinct bytes per file), the ``work/unhashed/media/`` table extraction would write, and
plans archives of ``--target-mb``. Then, in one run on the same disk, with the source files
evicted from the page cache before each measurement (posix_fadvise DONTNEED) and all writes
synced:

* ``cp -r`` of the media folder, then ``sync``;
* packing with 1 worker (a subprocess: its peak RSS from ``wait4``);
* packing with 2 workers (subprocess + pool; peak RSS of the largest process);
* ``cp`` again, to show the disk did not drift during the run.

Prints ratios: packing / cp throughput (target >= 0.8), 2-worker speed-up, peak RSS (target
<= 200 MB). Not run by the test suite. Usage: ``python bench/media.py --gb 5``.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RELEASE = "bench_202101"
BLOCK = 64 * 1024 * 1024


def generate(media: Path, total_bytes: int, seed: int = 1) -> list[dict]:
    """Write files until ``total_bytes``; returns work-media rows (sha256 computed while writing)."""
    rng = random.Random(seed)
    ring = memoryview(rng.randbytes(BLOCK) * 2)  # any BLOCK-long window is a slice, no copy
    rows, written, n = [], 0, 0
    while written < total_bytes:
        n += 1
        size = int(math.exp(rng.uniform(math.log(30_000), math.log(40_000_000))))
        size = min(size, total_bytes - written) if total_bytes - written > 30_000 else size
        kind = "video" if size > 3_000_000 else "photo"
        userid = str(1_200_000_000_000_000_000 + n % 97)
        rel = f"u{n % 97}/{n}.{'mp4' if kind == 'video' else 'jpg'}"
        path = media / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        h = hashlib.sha256()
        header = f"media {n}\n".encode()
        offset = rng.randrange(BLOCK)
        with open(path, "wb") as fh:
            fh.write(header)
            h.update(header)
            left = size - len(header)
            while left > 0:
                chunk = ring[offset : offset + min(left, 8 * 1024 * 1024)]
                offset = (offset + len(chunk)) % BLOCK
                fh.write(chunk)
                h.update(chunk)
                left -= len(chunk)
        rows.append({"media_key": f"3_{n}", "tweetid": str(1_500_000_000_000_000_000 + n), "userid": userid,
                     "kind": kind, "source_path": rel, "bytes": size, "sha256": h.hexdigest()})
        written += size
    return rows


def evict(folder: Path) -> None:
    """Drop a folder's files from the page cache so every measurement reads from disk."""
    subprocess.run(["sync"], check=True)
    for dirpath, _, files in os.walk(folder):
        for f in files:
            fd = os.open(os.path.join(dirpath, f), os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def timed_child(argv: list[str]) -> tuple[float, int, float]:
    """Run the packing script: wall seconds, peak RSS (bytes) of the packing processes, CPU seconds."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{argv[:3]} failed with exit code {os.waitstatus_to_exitcode(status)}")
    rss = max(int(x) for x in next(line for line in out.splitlines() if line.startswith("RSS")).split()[1:])
    return elapsed, rss, usage.ru_utime + usage.ru_stime


PACK_CODE = """
import resource, sys
from ioarchive.media import list_archives, pack_archives
campaign, staging, release, workers = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
if __name__ == "__main__":
    names = list_archives(staging, release, "unhashed")
    pack_archives(campaign, staging, release, "unhashed", names, workers=workers)
    # VmHWM: this process's own peak since exec (ru_maxrss would include the forking parent's)
    hwm = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print("RSS", hwm * 1024, children * 1024, flush=True)
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gb", type=float, default=5.0, help="GB of media to generate (default 5)")
    ap.add_argument("--target-mb", type=int, default=512, help="archive target in MiB (default 512)")
    ap.add_argument("--dir", default=None, help="work folder (default: a temp folder under /work)")
    ap.add_argument("--keep", action="store_true", help="keep the generated data")
    args = ap.parse_args()

    import pyarrow as pa
    import pyarrow.parquet as pq
    from ioarchive.media_plan import plan_media
    from ioarchive.staging import StagingLayout

    base = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="ioarchive-bench-media-", dir="/work"))
    base.mkdir(parents=True, exist_ok=True)
    campaign, staging = base / "campaign", base / "staging"
    script = base / "pack.py"
    script.write_text(PACK_CODE)
    try:
        total = int(args.gb * 1e9)
        print(f"generating {total / 1e9:.1f} GB of media in {campaign / 'media'} ...", flush=True)
        t0 = time.perf_counter()
        rows = generate(campaign / "media", total)
        print(f"  {len(rows)} files in {time.perf_counter() - t0:.0f} s", flush=True)
        work = staging / "work" / "unhashed" / "media"
        work.mkdir(parents=True)
        pq.write_table(pa.Table.from_pylist(rows), work / "part-00000.parquet")
        plan = plan_media(staging, RELEASE, "unhashed", target_bytes=args.target_mb * 1024 * 1024)
        print(f"  planned {len(plan['archives'])} archives of <= {args.target_mb} MiB", flush=True)
        layout = StagingLayout(staging, RELEASE)
        media_out = layout.media_dir("unhashed")

        def measure_cp(tag: str) -> float:
            dst = base / f"cp_{tag}"
            evict(campaign / "media")
            t = time.perf_counter()
            subprocess.run(["cp", "-r", str(campaign / "media"), str(dst)], check=True)
            subprocess.run(["sync"], check=True)
            elapsed = time.perf_counter() - t
            shutil.rmtree(dst)
            return elapsed

        def measure_pack(workers: int) -> tuple[float, int, float]:
            shutil.rmtree(media_out, ignore_errors=True)
            shutil.rmtree(staging / "work" / "unhashed" / "media_archives", ignore_errors=True)
            evict(campaign / "media")
            elapsed, rss, cpu = timed_child([sys.executable, str(script), str(campaign), str(staging), RELEASE, str(workers)])
            subprocess.run(["sync"], check=True)
            return elapsed, rss, cpu

        t_cp1 = measure_cp("a")
        t_p1, rss1, cpu1 = measure_pack(1)
        archived = sum(p.stat().st_size for p in media_out.glob("*.zip"))
        digests1 = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(media_out.glob("*.zip"))} if args.gb <= 2 else None
        t_p2, rss2, cpu2 = measure_pack(2)
        if digests1 is not None:
            digests2 = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(media_out.glob("*.zip"))}
            assert digests1 == digests2, "1 and 2 workers gave different archives"
        t_cp2 = measure_cp("b")

        gb = total / 1e9
        cp_rate = gb / ((t_cp1 + t_cp2) / 2)
        print()
        print(f"media: {gb:.2f} GB, {len(rows)} files, {len(plan['archives'])} archives ({archived / 1e9:.2f} GB)")
        print(f"cp -r + sync         : {t_cp1:6.1f} s and {t_cp2:6.1f} s  -> {cp_rate:.3f} GB/s (mean)")
        print(f"pack, 1 worker       : {t_p1:6.1f} s  -> {gb / t_p1:.3f} GB/s   ratio to cp {gb / t_p1 / cp_rate:.2f} (target >= 0.8)")
        print(f"pack, 2 workers      : {t_p2:6.1f} s  -> {gb / t_p2:.3f} GB/s   ratio to cp {gb / t_p2 / cp_rate:.2f}")
        print(f"speed-up 1 -> 2 workers: {t_p1 / t_p2:.2f}x")
        print(f"pack CPU (user+sys)  : {cpu1 / gb:.2f} s/GB with 1 worker, {cpu2 / gb:.2f} s/GB with 2"
              f" (load average now {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")
        print(f"peak RSS, 1 worker   : {rss1 / 1e6:.0f} MB (target <= 200 MB)")
        print(f"peak RSS, 2 workers  : {rss2 / 1e6:.0f} MB (largest process)")
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
