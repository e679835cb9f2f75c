"""``ioarchive publish``: upload a staged, validated release variant to its bucket."""

from __future__ import annotations

import argparse
import logging

HELP = "publish release/<variant>/ of a staging folder to s3://BUCKET/releases/<id>/v<N>/ (manifest last)"

log = logging.getLogger("ioarchive.publish.upload")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--staging", required=True, help="staging folder of the release")
    parser.add_argument("--release-id", required=True, help="e.g. iran_202102")
    parser.add_argument("--variant", required=True, choices=("hashed", "unhashed"))
    parser.add_argument("--bucket", required=True, help="target bucket")
    parser.add_argument("--version", type=int, default=None,
                        help="version to publish (default: the one in manifest.json; must match it)")
    parser.add_argument("--audience", choices=("public", "member"), default=None,
                        help="bucket role (default: public for hashed, member for unhashed)")
    parser.add_argument("--kms-key-id", default=None, help="SSE-KMS key for the member bucket (default AES256)")
    conn = parser.add_mutually_exclusive_group()
    conn.add_argument("--aws-conn-id", default=None, help="Airflow AWS connection id (S3Hook)")
    conn.add_argument("--endpoint-url", default=None, help="S3 endpoint (MinIO, moto) with boto3 env credentials")
    parser.add_argument("--multipart-threshold-mb", type=int, default=None,
                        help="upload files above this size in parts (default 64)")


def run(args: argparse.Namespace) -> int:
    from ioarchive.publish.store import StoreError
    from ioarchive.publish.upload import PublishFailed, PublishRefused, publish_release, s3_store

    mb = args.multipart_threshold_mb
    store = s3_store(
        aws_conn_id=args.aws_conn_id,
        endpoint_url=args.endpoint_url,
        multipart_threshold=mb * 1024**2 if mb else None,
        multipart_chunksize=mb * 1024**2 if mb else None,
    )
    try:
        result = publish_release(
            store,
            staging=args.staging,
            release_id=args.release_id,
            variant=args.variant,
            bucket=args.bucket,
            version=args.version,
            audience=args.audience,
            kms_key_id=args.kms_key_id,
        )
    except PublishRefused as exc:
        log.error("publication refused: %s", exc)
        return 2
    except (PublishFailed, StoreError) as exc:
        log.error("publication failed: %s", exc)
        return 1
    print(result.summary())
    for name in result.uploaded:
        print(f"  uploaded {name}")
    return 0
