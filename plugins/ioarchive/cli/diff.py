"""``ioarchive diff OLD NEW``: accounts, posts, media and files added and removed between two versions.

Exit status as diff(1): 0 no differences, 1 differences, 2 trouble (one line on stderr).
"""

from __future__ import annotations

import argparse
import sys

HELP = ("compare two versions (staging folder, release folder or s3://BUCKET/releases/<id>/v<N>/): "
        "accounts, posts, media and files added and removed")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("old", help="older version: staging folder, release folder or s3:// URL")
    parser.add_argument("new", help="newer version: staging folder, release folder or s3:// URL")
    parser.add_argument("--variant", default="hashed", choices=("hashed", "unhashed"),
                        help="variant compared when a side is a staging folder (default: hashed)")
    parser.add_argument("--json", action="store_true", help="machine-readable output (sorted keys, sorted lists)")
    parser.add_argument("--show", type=int, default=50, metavar="N",
                        help="entries listed per section in the table (0: all; default 50)")
    parser.add_argument("--summary", action="store_true",
                        help="print only the Markdown summary for the changelog (counts, file names, no ids)")
    conn = parser.add_mutually_exclusive_group()
    conn.add_argument("--endpoint-url", default=None, help="S3 endpoint (MinIO, moto) with boto3 env credentials")
    conn.add_argument("--aws-conn-id", default=None, help="Airflow AWS connection id (S3Hook)")


def run(args: argparse.Namespace) -> int:
    from ioarchive.errors import ReleaseError
    from ioarchive.render.diff import diff_versions, open_version

    try:
        store = None
        if args.old.startswith("s3://") or args.new.startswith("s3://"):
            from ioarchive.publish.upload import s3_store

            store = s3_store(aws_conn_id=args.aws_conn_id, endpoint_url=args.endpoint_url)
        old = open_version(args.old, variant=args.variant, store=store)
        new = open_version(args.new, variant=args.variant, store=store)
        result = diff_versions(old, new)
    except ReleaseError as exc:
        print(f"ioarchive diff: {exc}", file=sys.stderr)
        return 2
    if args.json:
        sys.stdout.write(result.to_json())
    elif args.summary:
        sys.stdout.write(result.summary_markdown())
    else:
        print(result.format(show=None if args.show <= 0 else args.show))
    return 0 if result.empty else 1
