"""Spark job: extract one raw campaign into the staging folder and write the unhashed tables.

Thin over ``ioarchive.extract.extraction`` and ``ioarchive.tables.writers``; runs unchanged in-process (tests,
``ioarchive extract``) and under ``spark-submit --master <cluster>`` (the DAG, via
``ioarchive.spark.session.run_job("extract", [...])``).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from ioarchive.schema import CSV_PART_MAX_BYTES


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="jobs/extract.py", description=__doc__.splitlines()[0])
    parser.add_argument("--campaign", required=True, help="raw campaign folder (RELEASE_SPEC section 2)")
    parser.add_argument("--staging", required=True, help="staging folder of the release")
    parser.add_argument("--release-id", required=True)
    parser.add_argument("--csv-part-max-bytes", type=int, default=CSV_PART_MAX_BYTES)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None, spark=None) -> int:
    """Run the job; ``spark`` lets tests pass their session (otherwise one is created)."""
    from ioarchive.devtools import drills
    from ioarchive.extract.extraction import extract_campaign
    from ioarchive.spark.session import get_spark
    from ioarchive.tables.writers import write_release_tables

    args = parse_args(argv)
    spark = spark or get_spark("ioarchive-extract")
    books = extract_campaign(spark, args.campaign, args.staging, args.release_id)
    drills.hold(drills.EXTRACT)  # work tables written, release tables not yet
    files = write_release_tables(spark, args.staging, args.release_id, "unhashed",
                                 csv_part_max_bytes=args.csv_part_max_bytes)
    print(json.dumps({"reconciliation": books, "unhashed": files["counts"]}, sort_keys=True))
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    sys.exit(main())
