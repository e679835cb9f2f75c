"""``ioarchive extract``: raw campaign -> both variants' work tables and table files."""

from __future__ import annotations

import argparse
import importlib.util
import logging
import sys
from types import ModuleType

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


def load_job(name: str) -> ModuleType:
    """Import ``jobs/<name>.py`` (the same script spark-submit runs) as a module."""
    from ioarchive.spark.session import jobs_dir

    path = jobs_dir() / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"ioarchive_job_{name}", path)
    if spec is None or spec.loader is None:
        raise FileNotFoundError(f"job script {path} not found; set IOARCHIVE_JOBS_DIR to the jobs/ folder")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(args: argparse.Namespace) -> int:
    from ioarchive.pseudonymize.pseudonym import KeyUnavailable
    from ioarchive.request.campaign import InvalidRelease
    from ioarchive.spark.session import get_spark

    if args.key_file and not args.key_id:
        print("ioarchive extract: --key-id is required with --key-file", file=sys.stderr)
        return 2
    extract_job, pseudo_job = load_job("extract"), load_job("pseudonymize")
    try:
        key_check = pseudo_job.load_key(args.key_file, args.key_id)  # fail before the long part
        del key_check
        spark = get_spark("ioarchive-extract")
        common = ["--staging", args.staging, "--release-id", args.release_id,
                  "--csv-part-max-bytes", str(args.csv_part_max_bytes)]
        extract_job.main(["--campaign", args.campaign, *common], spark=spark)
        pseudo = [*common, "--threshold", str(args.threshold)]
        if args.key_file:
            pseudo += ["--key-file", args.key_file, "--key-id", args.key_id]
        elif args.key_id:
            pseudo += ["--key-id", args.key_id]
        pseudo_job.main(pseudo, spark=spark)
    except (InvalidRelease, KeyUnavailable, FileNotFoundError) as exc:
        print(f"ioarchive extract: {exc}", file=sys.stderr)
        return 1
    return 0
