"""``ioarchive verify``: check a published version (S3 URL or local folder) against its manifest."""

from __future__ import annotations

import argparse

HELP = "verify s3://BUCKET/releases/<id>/v<N>/ or a local release folder against manifest.json and SHA256SUMS"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("location", help="s3://bucket/releases/<id>/v<N>/ or a folder")
    conn = parser.add_mutually_exclusive_group()
    conn.add_argument("--endpoint-url", default=None, help="S3 endpoint (MinIO, moto) with boto3 env credentials")
    conn.add_argument("--aws-conn-id", default=None, help="Airflow AWS connection id (S3Hook)")


def run(args: argparse.Namespace) -> int:
    from ioarchive.publish.verify import verify_location

    store = None
    if args.location.startswith("s3://"):
        from ioarchive.publish.upload import s3_store

        store = s3_store(aws_conn_id=args.aws_conn_id, endpoint_url=args.endpoint_url)
    report = verify_location(args.location, store=store)
    print(report.format())
    return 0 if report.ok else 1
