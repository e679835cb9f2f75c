"""``ioarchive pack-media``: plan, pack and index the media archives of a release."""

from __future__ import annotations

import argparse

from ioarchive.schema import DEFAULT_ARCHIVE_TARGET_BYTES, VARIANTS

HELP = "pack the released media into deterministic zip archives and write the media index"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--campaign", required=True, help="raw campaign folder (its media/ holds the files)")
    parser.add_argument("--staging", required=True, help="staging folder of the release")
    parser.add_argument("--release-id", required=True, help="release id, e.g. iran_202102")
    parser.add_argument(
        "--target-bytes",
        type=int,
        default=DEFAULT_ARCHIVE_TARGET_BYTES,
        help=f"maximum archive size, zip overhead included (default {DEFAULT_ARCHIVE_TARGET_BYTES})",
    )
    parser.add_argument("--workers", type=int, default=1, help="archives packed in parallel (processes)")
    parser.add_argument("--variant", choices=[*VARIANTS, "both"], default="both", help="default: both")
    parser.add_argument("--previous-staging",
                        help="staging folder of the previous version: its archives are kept where nothing left them")


def run(args: argparse.Namespace) -> int:
    import json
    import logging
    import sys

    from ioarchive.media.stage import MediaDiskFullError, MediaPlanError, pack_media
    from ioarchive.request.campaign import InvalidRelease, check_release_id

    log = logging.getLogger("ioarchive.pack_media")
    try:
        check_release_id(args.release_id)
    except InvalidRelease as exc:
        print(f"ioarchive pack-media: {exc}", file=sys.stderr)
        return 2
    if args.target_bytes < 1 or args.workers < 1:
        log.error("--target-bytes and --workers must be positive")
        return 2
    variants = list(VARIANTS) if args.variant == "both" else [args.variant]
    for variant in variants:
        try:
            summary = pack_media(
                args.campaign, args.staging, args.release_id, variant,
                target_bytes=args.target_bytes, workers=args.workers, previous_staging=args.previous_staging,
            )
        except (MediaPlanError, MediaDiskFullError) as exc:
            log.error("%s", exc)
            return 1
        print(json.dumps({"variant": variant, **summary["counts"]}, sort_keys=True))
    return 0
