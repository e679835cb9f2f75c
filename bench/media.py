"""Benchmark: media packing throughput next to `cp`, peak RSS of a packing worker, 1 vs 2 workers.

Generates ``--gb`` GB of media files (sizes log-uniform between 30 kB and 40 MB, like photos and
videos; distinct bytes per file), the ``work/unhashed/media/`` table extraction would write, and
plans archives of ``--target-mb``. Then, in one run on the same disk, ``--reps`` rounds of three
measurements, interleaved and in a rotating order so that drift of the disk or of the machine's
load hits all three alike:

* ``cp -r`` of the media folder to the same disk, then ``sync``;
* packing with 1 worker (a subprocess: its peak RSS from ``/proc/self/status`` VmHWM);
* packing with 2 workers (subprocess + process pool; peak RSS of the largest process).

Cache state is equalized before every measurement: the previous outputs are deleted and synced,
and the source files are evicted from the page cache (``posix_fadvise(DONTNEED)``), so every
measurement reads its sources from disk and starts with no dirty pages of another run. Packing
fsyncs its archives; ``cp`` is followed by ``sync``: both end with the bytes on disk.

Prints the median time of each, the median of the per-round ratios pack/cp throughput (target
>= 0.8), the 1 -> 2 worker speed-up, CPU seconds per GB, and peak RSS (target <= 200 MB). The
archives' SHA-256 (recorded by the packer while writing) must be identical across every packing
run, 1 and 2 workers alike, or the benchmark fails. Not run by the test suite.

    .venv/bin/python bench/media.py --gb 5                     # full size, ~6 min
    .venv/bin/python bench/media.py --gb 5 --dir /work/b --keep  # keep (and later reuse) the media
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RELEASE = "bench_202101"
VARIANT = "unhashed"
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


def media_rows(campaign: Path, total_bytes: int, seed: int) -> list[dict]:
    """The generated media's rows; reuses a previous ``--keep`` run with the same size and seed."""
    stamp = campaign / "bench_rows.json"
    key = {"bytes": total_bytes, "seed": seed}
    if stamp.exists():
        saved = json.loads(stamp.read_text())
        if saved["key"] == key:
            print(f"reusing {len(saved['rows'])} media files generated earlier in {campaign / 'media'}", flush=True)
            return saved["rows"]
    shutil.rmtree(campaign, ignore_errors=True)
    print(f"generating {total_bytes / 1e9:.1f} GB of media in {campaign / 'media'} ...", flush=True)
    t0 = time.perf_counter()
    rows = generate(campaign / "media", total_bytes, seed)
    stamp.write_text(json.dumps({"key": key, "rows": rows}))
    print(f"  {len(rows)} files in {time.perf_counter() - t0:.0f} s", flush=True)
    return rows


def evict(folder: Path) -> None:
    """Drop a folder's files from the page cache so every measurement reads from disk."""
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
    assert proc.stdout is not None
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{argv[:3]} failed with exit code {os.waitstatus_to_exitcode(status)}")
    rss = max(int(x) for x in next(line for line in out.splitlines() if line.startswith("RSS")).split()[1:])
    return elapsed, rss, usage.ru_utime + usage.ru_stime


PACK_CODE = """
import resource, sys
from ioarchive.media.stage import list_archives, pack_archives
campaign, staging, release, variant, workers = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
if __name__ == "__main__":
    names = list_archives(staging, release, variant)
    pack_archives(campaign, staging, release, variant, names, workers=workers)
    # VmHWM: this process's own peak since exec (ru_maxrss would include the forking parent's)
    hwm = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print("RSS", hwm * 1024, children * 1024, flush=True)
"""


class Runs:
    """Interleaved measurements on one set of generated media."""

    def __init__(self, base: Path, campaign: Path, staging: Path) -> None:
        from ioarchive.staging import StagingLayout

        self.base, self.campaign, self.staging = base, campaign, staging
        self.media_out = StagingLayout(staging, RELEASE).media_dir(VARIANT)
        self.results = staging / "work" / VARIANT / "media_archives"
        self.script = base / "pack.py"
        self.script.write_text(PACK_CODE)
        self.digests: dict[str, str] | None = None

    def _fresh_start(self) -> None:
        """No outputs of a previous run, nothing dirty in the page cache, sources evicted."""
        for path in (self.base / "cp_out", self.media_out, self.results):
            shutil.rmtree(path, ignore_errors=True)
        subprocess.run(["sync"], check=True)
        evict(self.campaign / "media")

    def cp(self) -> float:
        self._fresh_start()
        t = time.perf_counter()
        subprocess.run(["cp", "-r", str(self.campaign / "media"), str(self.base / "cp_out")], check=True)
        subprocess.run(["sync"], check=True)
        return time.perf_counter() - t

    def pack(self, workers: int) -> tuple[float, int, float]:
        self._fresh_start()
        argv = [sys.executable, str(self.script), str(self.campaign), str(self.staging), RELEASE, VARIANT, str(workers)]
        elapsed, rss, cpu = timed_child(argv)
        digests = {p.stem: json.loads(p.read_text())["sha256"] for p in sorted(self.results.glob("*.json"))}
        if self.digests is None:
            self.digests = digests
        elif digests != self.digests:
            raise SystemExit(f"packing with {workers} worker(s) gave archives different from the first run")
        return elapsed, rss, cpu


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--gb", type=float, default=5.0, help="GB of media to generate (default 5)")
    ap.add_argument("--target-mb", type=int, default=512, help="archive target in MiB (default 512)")
    ap.add_argument("--reps", type=int, default=3, help="rounds of cp / 1 worker / 2 workers (default 3)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--dir", default=None, help="work folder (default: a temp folder under /work)")
    ap.add_argument("--keep", action="store_true", help="keep the generated media for a later run with --dir")
    args = ap.parse_args()

    import pyarrow as pa
    import pyarrow.parquet as pq
    from ioarchive.media.plan import plan_media

    base = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="ioarchive-bench-media-", dir="/work"))
    base.mkdir(parents=True, exist_ok=True)
    campaign, staging = base / "campaign", base / "staging"
    try:
        total = int(args.gb * 1e9)
        rows = media_rows(campaign, total, args.seed)
        shutil.rmtree(staging, ignore_errors=True)
        work = staging / "work" / VARIANT / "media"
        work.mkdir(parents=True)
        pq.write_table(pa.Table.from_pylist(rows), work / "part-00000.parquet")
        plan = plan_media(staging, RELEASE, VARIANT, target_bytes=args.target_mb * 1024 * 1024)
        archived = sum(a["planned_bytes"] for a in plan["archives"])
        print(f"  planned {len(plan['archives'])} archives of <= {args.target_mb} MiB ({archived / 1e9:.2f} GB)", flush=True)

        runs = Runs(base, campaign, staging)
        load_before = os.getloadavg()[0]
        cp_t: list[float] = []
        pack_t: dict[int, list[float]] = {1: [], 2: []}
        cpu: dict[int, list[float]] = {1: [], 2: []}
        rss: dict[int, int] = {1: 0, 2: 0}
        # Warm-up, not counted: the first copy after generating (or reusing) the media ran 1.5-3x
        # slower than the later ones on this project's VMs; whichever ran first would pay it alone.
        print(f"  warm-up (not counted): cp -r + sync {runs.cp():6.1f} s", flush=True)
        orders = [("cp", 1, 2), (1, 2, "cp"), (2, "cp", 1)]
        for rep in range(args.reps):
            for what in orders[rep % len(orders)]:
                if what == "cp":
                    cp_t.append(runs.cp())
                    print(f"  round {rep + 1}: cp -r + sync  {cp_t[-1]:6.1f} s", flush=True)
                else:
                    w = int(what)
                    t, r, c = runs.pack(w)
                    pack_t[w].append(t)
                    cpu[w].append(c)
                    rss[w] = max(rss[w], r)
                    print(f"  round {rep + 1}: pack, {w} worker{'s' if w > 1 else ' '} {t:6.1f} s", flush=True)
        gb = total / 1e9
        med = statistics.median
        ratio1 = med(c / p for c, p in zip(cp_t, pack_t[1], strict=True))
        ratio2 = med(c / p for c, p in zip(cp_t, pack_t[2], strict=True))
        speedup = med(a / b for a, b in zip(pack_t[1], pack_t[2], strict=True))
        print()
        print(f"media: {gb:.2f} GB, {len(rows)} files, {len(plan['archives'])} archives ({archived / 1e9:.2f} GB);"
              f" {args.reps} interleaved rounds, medians; load average {load_before:.1f} -> {os.getloadavg()[0]:.1f}"
              f" on {os.cpu_count()} cores")
        print(f"cp -r + sync           : {med(cp_t):6.1f} s -> {gb / med(cp_t):.3f} GB/s   (all: "
              + ", ".join(f"{t:.1f}" for t in cp_t) + ")")
        for w, ratio in ((1, ratio1), (2, ratio2)):
            print(f"pack, {w} worker{'s' if w > 1 else ' '}         : {med(pack_t[w]):6.1f} s -> {gb / med(pack_t[w]):.3f} GB/s"
                  f"   pack/cp {ratio:.2f} (target >= 0.8)   (all: " + ", ".join(f"{t:.1f}" for t in pack_t[w]) + ")")
        print(f"speed-up 1 -> 2 workers: {speedup:.2f}x")
        print(f"pack CPU (user+sys)    : {med(cpu[1]) / gb:.2f} s/GB with 1 worker, {med(cpu[2]) / gb:.2f} s/GB with 2")
        print(f"peak RSS               : {rss[1] / 1e6:.0f} MB with 1 worker, {rss[2] / 1e6:.0f} MB with 2 (largest"
              " process; target <= 200 MB)")
        print(f"archives identical across all {2 * args.reps} packing runs (1 and 2 workers): yes")
    finally:
        if args.keep:
            for path in (base / "cp_out", staging):
                shutil.rmtree(path, ignore_errors=True)
        else:
            shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
