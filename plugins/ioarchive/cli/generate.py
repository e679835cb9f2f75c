"""``ioarchive generate``: write a synthetic raw campaign folder (for demos, tests, benchmarks)."""

from __future__ import annotations

import argparse
import json
import logging

HELP = "write a synthetic raw campaign folder (RELEASE_SPEC s.2), optionally with injected bad records"

log = logging.getLogger(__name__)


def _size(text: str) -> int:
    """Bytes from ``12582912``, ``12MiB``, ``1GiB``, ``500KiB`` (binary units)."""
    units = {"kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4, "k": 1024, "m": 1024**2, "g": 1024**3}
    lowered = text.strip().lower()
    for suffix, factor in sorted(units.items(), key=lambda kv: -len(kv[0])):
        if lowered.endswith(suffix):
            return int(float(lowered[: -len(suffix)]) * factor)
    return int(lowered)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="campaign folder to create (must be empty or absent)")
    parser.add_argument("--seed", type=int, required=True, help="same seed and arguments give identical files")
    parser.add_argument("--accounts", type=int, required=True, help="campaign accounts (>= 15)")
    parser.add_argument("--posts", type=int, required=True, help="clean posts (>= 100)")
    parser.add_argument("--media-bytes", type=_size, required=True,
                        help="approximate total media size, e.g. 12MiB, 2GiB or a byte count")
    parser.add_argument("--invalid-rate", type=float, default=0.0,
                        help="fraction of bad records to inject per file (0 = clean); listed in injected_invalid.json")
    parser.add_argument("--release-month", default="2021-02", help="disclosure month YYYY-MM")
    parser.add_argument("--compress", action="store_true", help="write accounts/posts as .jsonl.gz")
    parser.add_argument("--force", action="store_true", help="replace --out if it is not empty")


def run(args: argparse.Namespace) -> int:
    from ioarchive.devtools.generate.campaign import generate_campaign

    try:
        summary = generate_campaign(
            args.out,
            seed=args.seed,
            accounts=args.accounts,
            posts=args.posts,
            media_bytes=args.media_bytes,
            invalid_rate=args.invalid_rate,
            release_month=args.release_month,
            compress=args.compress,
            overwrite=args.force,
        )
    except (ValueError, FileExistsError) as exc:
        log.error("generate failed: %s", exc)
        return 2
    print(json.dumps(summary, indent=1))
    return 0
