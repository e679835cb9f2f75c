"""Benchmark: the data-quality gate (both variants) next to extraction of the same data.

Generates a campaign of ``--posts`` posts, then in ONE run and one Spark session measures:

* extraction: ``extract_campaign`` + unhashed table writers + ``pseudonymize_release`` + hashed
  table writers (everything that produces what the gate validates);
* validation: ``validate_release`` on both variants (all suites, Data Docs, summaries; the media
  index is not required because the media step is not part of this benchmark);
* the gate's read floor: the CSV zips unpacked as the gate does, then one plain Spark scan
  (``noop`` write: every column decoded) of every table the gate reads, nothing else.

Prints the times, the ratio validation / extraction (target <= 0.5) and validation / read floor
(what the gate costs beyond reading its input once). Not run by the tests.
Usage: ``python bench/validate.py --posts 1000000`` (``--posts 20000`` for a dry run).
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

RELEASE = "bench_202102"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=1_000_000)
    parser.add_argument("--accounts", type=int, default=2_000)
    parser.add_argument("--workdir", default=None, help="where to generate (default: a temp folder)")
    parser.add_argument("--campaign", default=None,
                        help="reuse this generated campaign (seed 3, --posts/--accounts as given) instead of generating")
    parser.add_argument("--validate-only", action="store_true",
                        help="skip extraction: validate the staging folder a previous run left in --workdir")
    parser.add_argument("--debug", action="store_true", help="per-suite phase timings (ioarchive.quality.runner at DEBUG)")
    args = parser.parse_args()
    if args.validate_only and not args.workdir:
        parser.error("--validate-only needs --workdir")
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    level = logging.DEBUG if args.debug else logging.INFO  # INFO: per-suite times
    for name in ("ioarchive.quality.runner", "ioarchive.quality.expectations"):
        logging.getLogger(name).setLevel(level)

    from ioarchive.devtools.generate.campaign import generate_campaign
    from ioarchive.extract.extraction import extract_campaign
    from ioarchive.pseudonymize.variant import pseudonymize_release
    from ioarchive.quality.runner import validate_release
    from ioarchive.spark.session import get_spark
    from ioarchive.tables.writers import write_release_tables

    work = Path(args.workdir or tempfile.mkdtemp(prefix="ioarchive-bench-validate-"))
    campaign, staging = Path(args.campaign) if args.campaign else work / "campaign", work / "staging"
    if args.campaign or args.validate_only:
        print(f"reusing campaign {campaign} (staging in {work})")
    else:
        t0 = time.monotonic()
        generate_campaign(campaign, seed=3, accounts=args.accounts, posts=args.posts, media_bytes=1024**2,
                          overwrite=True)
        print(f"generated {args.posts} posts, {args.accounts} accounts in {time.monotonic() - t0:.1f} s ({work})")

    spark = get_spark("ioarchive-bench-validate")
    spark.range(10).count()  # session warm-up outside both measurements
    key = b"bench-key-" + b"x" * 32

    extraction = float("nan")
    if not args.validate_only:
        (staging / "quarantine").mkdir(parents=True, exist_ok=True)  # extract_campaign expects it today
        t0 = time.monotonic()
        extract_campaign(spark, campaign, staging, RELEASE)
        write_release_tables(spark, staging, RELEASE, "unhashed")
        pseudonymize_release(spark, staging, RELEASE, key, "bench")
        write_release_tables(spark, staging, RELEASE, "hashed")
        extraction = time.monotonic() - t0

    t0 = time.monotonic()
    report = validate_release(spark, staging, RELEASE, campaign_dir=campaign, require_media_index=False)
    validation = time.monotonic() - t0

    floor = read_floor(spark, staging)

    print("\n".join(report.summary_lines()))
    print(f"extraction (extract + pseudonymize + table writers): {extraction:8.1f} s")
    print(f"validation (all suites, both variants, Data Docs):   {validation:8.1f} s")
    print(f"read floor (unpack CSV zips, one scan per table):    {floor:8.1f} s")
    print(f"ratio validation / extraction: {validation / extraction:.2f} (target <= 0.50)")
    print(f"ratio validation / read floor: {validation / floor:.2f}")
    return 0 if report.success else 1


def read_floor(spark, staging: Path) -> float:
    """Seconds to read every table the gate reads once: the CSV zips unpacked (as the gate
    does), then a ``noop`` write of each frame (Spark decodes every column, writes nothing)."""
    import shutil

    from ioarchive.quality.data import load_release_tables
    from ioarchive.staging import StagingLayout

    scratch = staging / "validation" / "_floor_scratch"
    t0 = time.monotonic()
    try:
        tables = load_release_tables(spark, StagingLayout(staging, RELEASE), scratch)
        for key in sorted(tables.frames):
            if (frame := tables.frames[key]) is not None:
                frame.write.format("noop").mode("overwrite").save()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return time.monotonic() - t0


if __name__ == "__main__":
    sys.exit(main())
