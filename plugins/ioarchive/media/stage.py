"""Media archives of a release (RELEASE_SPEC section 5): plan, pack, index.

The step is split so that one archive is one unit of work:

1. :func:`plan_media` (``ioarchive.media.plan``) assigns the released media of a variant to
   archives and writes ``work/media_plan.json``; :func:`list_archives` reads it back (the DAG
   maps one task per name);
2. :func:`pack_archive` (``ioarchive.media.pack``) writes one deterministic zip, verifying and
   quarantining files as it streams them;
3. :func:`finalize_media` (``ioarchive.media.index``) writes the media index and the summary
   the renderer reads.

:func:`pack_media` runs the three in order for the CLI. This module imports no heavy library at
import time, so DAG files may import it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from ioarchive.media.index import finalize_media
from ioarchive.media.pack import (
    ArchiveResult,
    MediaDiskFullError,
    pack_archive,
    pack_archives,
    quarantine_rejected,
)
from ioarchive.media.plan import MediaPlanError, list_archives, plan_media
from ioarchive.media.zip_writer import ZIP64_LIMIT
from ioarchive.schema import DEFAULT_ARCHIVE_TARGET_BYTES

__all__ = [
    "ArchiveResult",
    "MediaDiskFullError",
    "MediaPlanError",
    "finalize_media",
    "list_archives",
    "pack_archive",
    "pack_archives",
    "pack_media",
    "plan_media",
    "quarantine_rejected",
]

log = logging.getLogger(__name__)


def pack_media(
    campaign_dir: str | Path,
    staging_dir: str | Path,
    release_id: str,
    variant: str,
    target_bytes: int = DEFAULT_ARCHIVE_TARGET_BYTES,
    workers: int = 1,
    zip64_limit: int = ZIP64_LIMIT,
    previous_staging: str | Path | None = None,
) -> dict[str, Any]:
    """Plan, pack (``workers`` processes) and index the media of one variant.

    ``previous_staging``: the previous version's staging folder, whose archives are kept
    (``ioarchive.media.plan``).

    Returns the ``media_files.json`` summary. Rerunning skips archives already packed for the
    same plan.
    """
    plan_media(staging_dir, release_id, variant, target_bytes=target_bytes, zip64_limit=zip64_limit,
               previous_staging=previous_staging)
    quarantine_rejected(campaign_dir, staging_dir, release_id, variant)
    names = list_archives(staging_dir, release_id, variant)
    results = pack_archives(campaign_dir, staging_dir, release_id, variant, names, workers=workers)
    reused = sum(1 for r in results if r.reused)
    log.info(
        "release %s/%s: %d archives packed, %d reused from a previous run, %d files quarantined",
        release_id, variant, len(results) - reused, reused, sum(len(r.quarantined) for r in results),
    )
    return finalize_media(staging_dir, release_id, variant)
