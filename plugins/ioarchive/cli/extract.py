"""``ioarchive extract``: raw campaign -> both variants' work tables and table files."""

from __future__ import annotations

import argparse
import logging
import sys

from ioarchive.schema import CSV_PART_MAX_BYTES, DEFAULT_THRESHOLD

HELP = "extract a raw campaign, pseudonymize it and write both variants' CSV and Parquet tables"
log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--campaign", required=True, help="raw campaign folder (campaign.json, *.jsonl[.gz], media/)")
    parser.add_argument("--staging", required=True, help="staging folder of the release (created if absent)")
    parser.add_argument("--release-id", required=True, help="<campaign_slug>_<YYYYMM>, e.g. iran_202102")
    parser.add_argument("--threshold", type=int, default=DEFAULT_THRESHOLD,
                        help=f"accounts with fewer followers are pseudonymized (default {DEFAULT_THRESHOLD})")
    parser.add_argument("--key-file", help="pseudonymization key file (default: Airflow Variable)")
    parser.add_argument("--key-id", help="name of the key recorded in outputs (required with --key-file)")
    parser.add_argument("--csv-part-max-bytes", type=int, default=CSV_PART_MAX_BYTES, help=argparse.SUPPRESS)


def run(args: argparse.Namespace) -> int:
    from ioarchive.errors import ReleaseError
    from ioarchive.extract.stage import extract_stage
    from ioarchive.pseudonymize.pseudonym import load_key
    from ioarchive.pseudonymize.stage import pseudonymize_stage
    from ioarchive.spark.job_settings import StepSettings
    from ioarchive.spark.session import get_spark

    if args.key_file and not args.key_id:
        print("ioarchive extract: --key-id is required with --key-file", file=sys.stderr)
        return 2
    settings = StepSettings(staging_dir=args.staging, release_id=args.release_id, campaign_dir=args.campaign,
                            threshold=args.threshold, csv_part_max_bytes=args.csv_part_max_bytes,
                            key_id=args.key_id, key_file=args.key_file)
    try:
        load_key(settings.key_file, settings.key_id)  # fail before the long part
        spark = get_spark("ioarchive-extract")
        extract_stage(spark, settings)
        pseudonymize_stage(spark, settings)
    except ReleaseError as exc:
        print(f"ioarchive extract: {exc}", file=sys.stderr)
        return 1
    return 0
