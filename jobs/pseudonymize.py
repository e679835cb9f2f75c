"""Spark job: pseudonymize the unhashed work tables and write the hashed variant's tables.

The key is read from ``--key-file`` (the DAG writes it from the secrets backend to a 0600 file)
or, without it, from the Airflow Variable; it is never an argument, never logged. Runs
in-process or under ``spark-submit`` unchanged.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from ioarchive.schema import CSV_PART_MAX_BYTES, DEFAULT_THRESHOLD


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="jobs/pseudonymize.py", description=__doc__.splitlines()[0])
    parser.add_argument("--staging", required=True, help="staging folder of the release")
    parser.add_argument("--release-id", required=True)
    parser.add_argument("--threshold", type=int, default=DEFAULT_THRESHOLD)
    parser.add_argument("--key-file", help="file holding the pseudonymization key (default: Airflow Variable)")
    parser.add_argument("--key-secret", help="Secrets Manager id or ssm:<name> holding the key (EMR Serverless)")
    parser.add_argument("--key-id", help="name of the key, recorded in the manifest (required with --key-file)")
    parser.add_argument("--csv-part-max-bytes", type=int, default=CSV_PART_MAX_BYTES)
    args = parser.parse_args(argv)
    if args.key_file and args.key_secret:
        parser.error("give --key-file or --key-secret, not both")
    if (args.key_file or args.key_secret) and not args.key_id:
        parser.error("--key-id is required with --key-file or --key-secret (it is recorded instead of the key)")
    return args


def load_key(key_file: str | None, key_id: str | None, key_secret: str | None = None) -> tuple[bytes, str]:
    """The key and its id: from the file, the secret reference, or the Airflow secrets backend."""
    from ioarchive.pseudonymize.pseudonym import load_key_file, load_key_from_airflow

    if key_secret:
        from ioarchive.spark.steps import load_key_secret

        return load_key_secret(key_secret), str(key_id)
    if key_file:
        return load_key_file(key_file), str(key_id)
    key, airflow_key_id = load_key_from_airflow()
    return key, key_id or airflow_key_id


def main(argv: list[str] | None = None, spark=None) -> int:
    from ioarchive.devtools import drills
    from ioarchive.pseudonymize.variant import pseudonymize_release
    from ioarchive.spark.session import get_spark
    from ioarchive.tables.writers import write_release_tables

    args = parse_args(argv)
    key, key_id = load_key(args.key_file, args.key_id, args.key_secret)
    spark = spark or get_spark("ioarchive-pseudonymize")
    record = pseudonymize_release(spark, args.staging, args.release_id, key, key_id, threshold=args.threshold)
    del key
    drills.hold(drills.PSEUDONYMIZE)  # work tables written, release tables not yet
    files = write_release_tables(spark, args.staging, args.release_id, "hashed",
                                 csv_part_max_bytes=args.csv_part_max_bytes)
    print(json.dumps({"pseudonymization": record, "hashed": files["counts"]}, sort_keys=True))
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    sys.exit(main())
