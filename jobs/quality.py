"""Spark job: validate both variants of a staged release with the Great Expectations suites.

Thin over ``ioarchive.quality.runner.validate_release``; runs unchanged in-process (the DAG's local
backend), under ``spark-submit --master <cluster>`` and on EMR Serverless. It writes Data Docs
and ``validation/<variant>/summary.json``; the gate's verdict is read from those files by the
quality_gate task, so a completed validation exits 0 whether or not expectations failed (a
non-zero exit means the job itself broke, which a retry may fix; a failed expectation it cannot).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from ioarchive.schema import DEFAULT_THRESHOLD


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="jobs/quality.py", description=__doc__.splitlines()[0])
    parser.add_argument("--staging", required=True, help="staging folder of the release")
    parser.add_argument("--release-id", required=True)
    parser.add_argument("--threshold", type=int, default=DEFAULT_THRESHOLD)
    parser.add_argument("--campaign", help="raw campaign folder (for the 'no deleted post released' check)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None, spark=None) -> int:
    """Run the job; ``spark`` lets the caller pass its session (otherwise one is created)."""
    from ioarchive.quality.runner import validate_release
    from ioarchive.spark.session import get_spark

    args = parse_args(argv)
    spark = spark or get_spark("ioarchive-quality")
    report = validate_release(spark, args.staging, args.release_id, args.threshold, campaign_dir=args.campaign)
    print(json.dumps({"release_id": args.release_id, "success": bool(report.success)}, sort_keys=True))
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    sys.exit(main())
