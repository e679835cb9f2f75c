"""``ioarchive render``: write manifest.json, SHA256SUMS and README.md of each release variant."""

from __future__ import annotations

import argparse

from ioarchive.schema import VARIANTS

HELP = "render README.md, SHA256SUMS and manifest.json into release/<variant>/ of a staging folder"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--staging", required=True, help="staging folder of the release")
    parser.add_argument("--campaign", required=True, help="campaign folder (title, attribution from campaign.json)")
    parser.add_argument("--release-id", required=True, help="release id, e.g. iran_202102")
    parser.add_argument("--version", type=int, default=1, help="release version N (default 1)")
    parser.add_argument("--variant", choices=[*VARIANTS, "both"], default="both", help="default: both")
    parser.add_argument("--changelog", default=None,
                        help="JSON file: list of {version, date, text} (previous versions' entries included)")
    parser.add_argument("--change", default=None,
                        help="changelog text of this version (added to --changelog; required for v2+ without it)")
    parser.add_argument("--change-date", default=None, help="date of --change (default: the disclosure month)")
    parser.add_argument("--generated-at", default=None,
                        help="timestamp recorded in the manifest (default: time of the latest sign-off)")
    parser.add_argument("--threshold", type=int, default=None,
                        help="follower threshold; must match the one the hashed variant was built with")
    parser.add_argument("--archive-target-bytes", type=int, default=None,
                        help="media archive target (default: from media_plan.json)")
    parser.add_argument("--public-base-url", default=None, help="public URL of the bucket, for README links")


def run(args: argparse.Namespace) -> int:
    import json
    import logging
    from pathlib import Path

    from ioarchive.render.documents import render_release
    from ioarchive.render.manifest import ManifestError
    from ioarchive.request.campaign import Campaign, InvalidRelease, check_release_id

    log = logging.getLogger("ioarchive.render.documents")
    try:
        check_release_id(args.release_id)
        changelog = None
        if args.changelog:
            changelog = json.loads(Path(args.changelog).read_text(encoding="utf-8"))
        if args.change:
            date = args.change_date or Campaign.load(args.campaign).disclosure_month
            changelog = [*(changelog or []), {"version": args.version, "date": date, "text": args.change}]
        manifests = render_release(
            args.staging, args.campaign, args.release_id, version=args.version,
            variants=list(VARIANTS) if args.variant == "both" else [args.variant],
            changelog=changelog, generated_at=args.generated_at, threshold=args.threshold,
            archive_target_bytes=args.archive_target_bytes, public_base_url=args.public_base_url,
        )
    except (InvalidRelease, ManifestError, OSError, json.JSONDecodeError) as exc:
        log.error("render of %s failed: %s", args.release_id, exc)
        return 1
    for variant, m in manifests.items():
        print(json.dumps({"variant": variant, "version": m["version"], "files": len(m["files"]), **m["counts"]},
                         sort_keys=True))
    return 0
