"""``ioarchive withdrawal-check``: list every object a withdrawal left behind (exit 1 if any)."""

from __future__ import annotations

import argparse

HELP = "list objects still present under withdrawn versions (only the withdrawal record may stay)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("buckets", nargs="+", help="bucket names (public and member)")
    parser.add_argument("--release-id", default=None, help="only this release (default: every release)")
    conn = parser.add_mutually_exclusive_group()
    conn.add_argument("--endpoint-url", default=None, help="S3 endpoint (MinIO, moto) with boto3 env credentials")
    conn.add_argument("--aws-conn-id", default=None, help="Airflow AWS connection id (S3Hook)")


def run(args: argparse.Namespace) -> int:
    from ioarchive.publish.upload import s3_store
    from ioarchive.publish.withdraw import leftovers

    store = s3_store(aws_conn_id=args.aws_conn_id, endpoint_url=args.endpoint_url)
    total = 0
    for bucket in args.buckets:
        for prefix, keys in leftovers(store, bucket, args.release_id).items():
            for key in keys:
                print(f"s3://{bucket}/{key}")
            total += len(keys)
            print(f"# s3://{bucket}/{prefix} is withdrawn but still holds {len(keys)} objects")
    if total:
        print(f"# {total} leftover objects: rerun the withdrawal task (docs/runbook.md, 'Withdrawal left objects')")
        return 1
    print("no leftover object under any withdrawn version")
    return 0
