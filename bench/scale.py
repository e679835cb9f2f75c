"""Benchmark: an IRA-size release on one machine, every release step, at growing sizes.

For each size (default 1 M, 3 M and 9 M posts; 3,800 accounts; media scaled so that the
largest size holds ``--media`` bytes, 20 GB by default, the same media bytes per post at every
size) this generates a raw campaign, then runs every release step through the same stage code
as the DAG, each step as the ``ioarchive`` CLI in a process of its own (the CLI, the DAG tasks
and the Spark jobs call the same stage functions):

  extract (extract + pseudonymize + both variants' tables), pack-media, validate (the quality
  gate, both variants, media index included), render, publish (both variants, to a local S3
  endpoint that keeps objects on disk: ``--endpoint-url``; skipped without it), verify.

Per step it reports wall time, CPU seconds and peak resident memory of the step's whole process
tree (the Python driver and the Spark JVM, sampled every 0.2 s from /proc, so a peak shorter
than that can be missed), split into JVM and Python, and the peak disk used by the staging
folder. Then the time per post at each size against the smallest one (target: the largest size
within 1.2 x of the smallest, i.e. cost grows linearly) and the peak memory (target <= 8 GiB).

    .venv/bin/python bench/scale.py                                  # 1 M, 3 M, 9 M
    .venv/bin/python bench/scale.py --sizes 20000 --media 64MiB      # dry run, a minute
    .venv/bin/python bench/scale.py --endpoint-url http://127.0.0.1:9000 --bucket-prefix bench

Not run by the tests. Needs about 2.5 x the media size free on disk per size (raw media,
both variants' archives); each size's folder is removed before the next unless ``--keep``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

RELEASE = "scale_202102"
KEY = "scale bench key, not a secret: 0123456789abcdef0123456789"
GIB = 1024**3


def parse_bytes(text: str) -> int:
    """``20GB``, ``20GiB``, ``64MiB`` or a byte count."""
    units = {"gib": GIB, "gb": 10**9, "mib": 1024**2, "mb": 10**6, "kib": 1024, "kb": 1000}
    low = text.strip().lower()
    for suffix, factor in units.items():
        if low.endswith(suffix):
            return int(float(low[: -len(suffix)]) * factor)
    return int(low)


@dataclass
class StepMeasure:
    """What one step cost: wall, CPU and peak memory of its process tree, peak staging disk."""

    step: str
    wall: float = 0.0
    cpu: float = 0.0
    peak_rss_jvm: int = 0
    peak_rss_python: int = 0
    peak_rss_total: int = 0
    peak_disk: int = 0
    load: float = 0.0
    extra: dict = field(default_factory=dict)


def folder_bytes(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except FileNotFoundError:
                pass  # a temporary file renamed or removed while we walked
    return total


class TreeSampler(threading.Thread):
    """Samples a process tree: RSS summed per kind (java / other) and the CPU of every pid seen.

    CPU of a process that exits between two samples is counted up to its last sample; the step's
    children are long-lived (one Spark JVM per step), so the loss is a fraction of a second.
    """

    def __init__(self, pid: int, staging: Path, interval: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.root = psutil.Process(pid)
        self.staging = staging
        self.interval = interval
        self.cpu_by_pid: dict[int, float] = {}
        self.peak = {"java": 0, "python": 0, "total": 0}
        self.peak_disk = 0
        self.stop = threading.Event()

    def sample(self) -> None:
        try:
            procs = [self.root, *self.root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return
        rss = {"java": 0, "python": 0}
        for proc in procs:
            try:
                with proc.oneshot():
                    kind = "java" if proc.name().startswith("java") else "python"
                    rss[kind] += proc.memory_info().rss
                    times = proc.cpu_times()
                    self.cpu_by_pid[proc.pid] = times.user + times.system  # own only: no double count
            except psutil.Error:
                continue
        for kind in ("java", "python"):
            self.peak[kind] = max(self.peak[kind], rss[kind])
        self.peak["total"] = max(self.peak["total"], rss["java"] + rss["python"])

    def run(self) -> None:
        ticks = 0
        while not self.stop.is_set():
            self.sample()
            if ticks % 25 == 0 and self.staging.exists():  # the disk walk is slower: every 5 s
                self.peak_disk = max(self.peak_disk, folder_bytes(self.staging))
            ticks += 1
            self.stop.wait(self.interval)


def run_step(step: str, argv: list[str], staging: Path, log: Path) -> StepMeasure:
    """Run one CLI step, sampled; a failing step stops the benchmark with its log's tail."""
    measure = StepMeasure(step)
    t0 = time.monotonic()
    with open(log, "ab") as out:
        out.write(f"\n== {step}: {' '.join(argv)}\n".encode())
        out.flush()
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
        sampler = TreeSampler(proc.pid, staging)
        sampler.start()
        rc = proc.wait()
        sampler.stop.set()
        sampler.join()
    measure.wall = time.monotonic() - t0
    measure.load = os.getloadavg()[0]  # the 1-minute load at the step's end: how shared the machine was
    measure.cpu = sum(sampler.cpu_by_pid.values())
    measure.peak_rss_jvm = sampler.peak["java"]
    measure.peak_rss_python = sampler.peak["python"]
    measure.peak_rss_total = sampler.peak["total"]
    measure.peak_disk = max(sampler.peak_disk, folder_bytes(staging) if staging.exists() else 0)
    if rc != 0:
        tail = log.read_text(errors="replace").splitlines()[-30:]
        sys.exit(f"step {step} failed (exit {rc}); last lines of {log}:\n" + "\n".join(tail))
    return measure


def release_steps(cli: list[str], campaign: Path, staging: Path, key_file: Path, args: argparse.Namespace
                  ) -> list[tuple[str, list[str]]]:
    """Every release step as the CLI runs it, in the DAG's order."""
    common = ["--staging", str(staging), "--release-id", RELEASE]
    steps = [
        ("extract", [*cli, "extract", "--campaign", str(campaign), *common,
                     "--key-file", str(key_file), "--key-id", "scale-bench"]),
        ("pack-media", [*cli, "pack-media", "--campaign", str(campaign), *common]),
        ("validate", [*cli, "validate", "--campaign", str(campaign), *common]),
        ("render", [*cli, "render", "--campaign", str(campaign), *common,
                    "--generated-at", "2021-02-23T00:00:00+00:00"]),
    ]
    if args.endpoint_url and campaign_posts(campaign) <= args.publish_max_posts:
        for variant, bucket in zip(("hashed", "unhashed"), buckets(args), strict=True):
            steps.append((f"publish {variant}", [*cli, "publish", *common, "--variant", variant, "--bucket", bucket,
                                                 "--endpoint-url", args.endpoint_url]))
            steps.append((f"verify {variant}", [*cli, "verify", f"s3://{bucket}/releases/{RELEASE}/v1/",
                                                "--endpoint-url", args.endpoint_url]))
    return steps


def campaign_posts(campaign: Path) -> int:
    """Posts of a generated campaign, from the folder name the benchmark gave it."""
    return int(campaign.name.rsplit("-", 1)[1])


def buckets(args: argparse.Namespace) -> tuple[str, str]:
    """(public, member) bucket of the benchmark's publications."""
    return f"{args.bucket_prefix}-public", f"{args.bucket_prefix}-member"


def ensure_buckets(args: argparse.Namespace) -> None:
    """The product's bucket setup (member bucket encrypted, public access blocked)."""
    from ioarchive.publish.store import ensure_buckets as ensure
    from ioarchive.publish.store import s3_client

    ensure(s3_client(endpoint_url=args.endpoint_url), *buckets(args))


def delete_published(args: argparse.Namespace) -> None:
    """Remove one size's publication, so the next size's disk budget holds (the server keeps
    objects on disk)."""
    from ioarchive.publish.store import S3ObjectStore, s3_client

    store = S3ObjectStore(s3_client(endpoint_url=args.endpoint_url))
    for bucket in buckets(args):
        store.delete_keys(bucket, [key for key, _size in store.list_keys(bucket, f"releases/{RELEASE}/")])


def mib(n: int) -> str:
    return f"{n / 1024**2:,.0f}"


def print_table(size: int, measures: list[StepMeasure]) -> None:
    print(f"\n{size:,} posts")
    print(f"{'step':<18}{'wall s':>9}{'CPU s':>9}{'JVM MiB':>10}{'Py MiB':>9}{'tree MiB':>10}{'disk MiB':>11}"
          f"{'load':>6}")
    for m in measures:
        print(f"{m.step:<18}{m.wall:>9.1f}{m.cpu:>9.1f}{mib(m.peak_rss_jvm):>10}{mib(m.peak_rss_python):>9}"
              f"{mib(m.peak_rss_total):>10}{mib(m.peak_disk):>11}{m.load:>6.1f}")
    total_wall = sum(m.wall for m in measures if m.step != "generate")
    total_cpu = sum(m.cpu for m in measures if m.step != "generate")
    print(f"{'release (no gen.)':<18}{total_wall:>9.1f}{total_cpu:>9.1f}")
    sys.stdout.flush()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000000,3000000,9000000", help="posts per size, comma-separated")
    parser.add_argument("--accounts", type=int, default=3_800)
    parser.add_argument("--media", default="20GB", help="media bytes at the largest size (scaled per post below it)")
    parser.add_argument("--workdir", default=None, help="where to generate and stage (default: a temp folder)")
    parser.add_argument("--endpoint-url", default=None,
                        help="local S3 endpoint that keeps objects on disk (publish + verify); omitted: not published")
    parser.add_argument("--bucket-prefix", default="scale-bench")
    parser.add_argument("--publish-max-posts", type=int, default=10**12,
                        help="publish only sizes up to this many posts (an in-memory S3 server holds only so much)")
    parser.add_argument("--keep", action="store_true", help="keep each size's campaign and staging folders")
    parser.add_argument("--json", dest="json_out", default=None, help="also write the measures as JSON here")
    args = parser.parse_args()

    sizes = [int(s) for s in args.sizes.split(",")]
    media_total = parse_bytes(args.media)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="ioarchive-bench-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    key_file = work / "key"
    key_file.write_text(KEY)
    cli = [sys.executable, "-m", "ioarchive.cli.main"]
    if args.endpoint_url:
        ensure_buckets(args)
    print(f"machine: {os.cpu_count()} cores, {psutil.virtual_memory().total / GIB:.1f} GiB; work folder {work}")

    results: dict[int, list[StepMeasure]] = {}
    for size in sizes:
        media = max(1024**2, media_total * size // max(sizes))
        campaign, staging, log = work / f"campaign-{size}", work / f"staging-{size}", work / f"steps-{size}.log"
        gen = run_step("generate", [*cli, "generate", "--out", str(campaign), "--seed", "9", "--accounts",
                                    str(args.accounts), "--posts", str(size), "--media-bytes", str(media), "--force"],
                       campaign, log)
        measures = [gen]
        for step, argv in release_steps(cli, campaign, staging, key_file, args):
            print(f"  {size:,} posts: {step} ...", flush=True)
            measures.append(run_step(step, argv, staging, log))
        results[size] = measures
        print_table(size, measures)
        if args.json_out:  # after every size: a long run cut short keeps what it measured
            Path(args.json_out).write_text(json.dumps(
                {str(s): [m.__dict__ for m in ms] for s, ms in results.items()}, indent=2))
        if not args.keep:
            shutil.rmtree(campaign, ignore_errors=True)
            shutil.rmtree(staging, ignore_errors=True)
            if args.endpoint_url:
                delete_published(args)

    print_per_post(sizes, results)
    return 0


def print_per_post(sizes: list[int], results: dict[int, list[StepMeasure]]) -> None:
    """Wall and CPU time per post against the smallest size (same steps at every size).

    Publication runs only up to ``--publish-max-posts``, so only the steps every size ran are
    compared. CPU seconds are the steadier measure on a shared machine (wall time also counts
    waiting for a core that another process holds); both are printed.
    """
    common = set.intersection(*({m.step for m in results[s]} for s in sizes)) - {"generate"}
    base = sizes[0]
    print(f"\ntime per post ({', '.join(sorted(common))}), against the smallest size:")
    for what in ("wall", "cpu"):
        base_per_post = sum(getattr(m, what) for m in results[base] if m.step in common) / base
        for size in sizes:
            per_post = sum(getattr(m, what) for m in results[size] if m.step in common) / size
            print(f"  {what:>4} {size:>11,} posts: {per_post * 1e6:8.1f} us/post  ratio {per_post / base_per_post:.2f}"
                  f"  (target for the largest <= 1.20)")
    peak = max(m.peak_rss_total for ms in results.values() for m in ms)
    print(f"peak memory of any step's process tree: {peak / GIB:.2f} GiB (target <= 8 GiB)")


if __name__ == "__main__":
    sys.exit(main())
