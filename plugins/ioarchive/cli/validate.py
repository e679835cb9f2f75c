"""``ioarchive validate``: the data-quality gate on both variants of a staged release."""

from __future__ import annotations

import argparse
import logging

from ioarchive.schema import DEFAULT_THRESHOLD

HELP = "run every Great Expectations suite on both variants; exit non-zero on any failure"
log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--staging", required=True, help="staging folder of the release")
    parser.add_argument("--release-id", required=True, help="<campaign_slug>_<YYYYMM>")
    parser.add_argument("--threshold", type=int, default=DEFAULT_THRESHOLD,
                        help=f"follower count below which accounts are pseudonymized (default {DEFAULT_THRESHOLD})")
    parser.add_argument("--campaign", default=None,
                        help="campaign folder (its deletions.jsonl feeds 'no deleted post present')")
    parser.add_argument("--expectations", default=None, help="suite folder (default: the repository's expectations/)")
    parser.add_argument("--suite", action="append", default=None,
                        help="run only this suite (repeatable), e.g. posts_hashed")
    parser.add_argument("--no-media-index", action="store_true",
                        help="do not require the media index (before pack-media has run)")


def run(args: argparse.Namespace) -> int:
    from ioarchive.request.campaign import InvalidRelease, check_release_id

    try:
        check_release_id(args.release_id)
    except InvalidRelease as exc:
        log.error("%s", exc)
        return 2
    if args.threshold < 0:
        log.error("--threshold must be >= 0, got %d", args.threshold)
        return 2

    from ioarchive.quality.stage import quality_stage
    from ioarchive.spark.job_settings import StepSettings
    from ioarchive.spark.session import get_spark

    spark = get_spark("ioarchive-validate")
    settings = StepSettings(staging_dir=args.staging, release_id=args.release_id, campaign_dir=args.campaign,
                            threshold=args.threshold)
    report = quality_stage(
        spark,
        settings,
        expectations_dir=args.expectations,
        require_media_index=not args.no_media_index,
        suites=args.suite,
    )
    print("\n".join(report.summary_lines()))
    return 0 if report.success else 1
