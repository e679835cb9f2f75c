"""``ioarchive render-catalog``: the public catalog page and releases.json from published manifests."""

from __future__ import annotations

import argparse

HELP = "render catalog/index.html and catalog/releases.json from hashed manifest.json files"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--manifests", required=True, nargs="+",
                        help="manifest.json files, or folders searched for manifest.json")
    parser.add_argument("--out", required=True, help="output folder (becomes catalog/ in the public bucket)")


def run(args: argparse.Namespace) -> int:
    import logging

    from ioarchive.render.documents import load_manifests, render_catalog
    from ioarchive.render.manifest import ManifestError

    log = logging.getLogger("ioarchive.render.documents")
    try:
        manifests = load_manifests(args.manifests)
        if not manifests:
            log.error("no manifest.json found in %s: nothing to list", " ".join(args.manifests))
            return 1
        paths = render_catalog(manifests, args.out)
    except (ManifestError, OSError) as exc:
        log.error("catalog rendering failed: %s", exc)
        return 1
    for path in paths:
        print(path)
    return 0
