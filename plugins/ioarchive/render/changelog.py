"""The changelog of version N+1 (RELEASE_SPEC 8): the run's text plus what ``ioarchive diff`` found.

Version 1 needs no changelog. From version 2 on, the trigger form's ``changelog`` text is the
new entry; the entries of earlier versions come from the previous version's manifest; the
entry's date is the day of the run's first sign-off (the same on every rerun, so reruns render
the same bytes). The entry ends with the counts of ``ioarchive diff`` against the previous
version (accounts, posts, media files removed or added, files changed; counts only, never ids,
because the hashed README is public), and the publication gate's page shows the diff's summary
with file names.

The diff needs both versions rendered (it reads their manifests and Parquet files), so the
render task renders once with the bare entry, diffs, and renders again with the counts.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import TYPE_CHECKING, Any

from ioarchive.render.manifest import load_signoffs
from ioarchive.staging import StagingLayout

if TYPE_CHECKING:
    from ioarchive.render.diff import ReleaseDiff

log = logging.getLogger(__name__)

DIFF_VARIANT = "hashed"
"""The diff shown in changelogs and on the gate page (counts are the same in both variants)."""


def entry_date(layout: StagingLayout) -> str:
    """Day of the run's first sign-off (stable across reruns), today if none is recorded yet."""
    signoffs = load_signoffs(layout)
    if signoffs:
        return str(signoffs[0]["at"])[:10]
    return dt.datetime.now(dt.UTC).date().isoformat()


def previous_entries(previous: StagingLayout) -> list[dict[str, Any]]:
    """Changelog entries of the previous version's staged hashed manifest ([] when not staged)."""
    path = previous.manifest(DIFF_VARIANT)
    if not path.exists():
        log.warning("no staged manifest at %s: the changelog starts at this version", path)
        return []
    return list(json.loads(path.read_text(encoding="utf-8")).get("changelog", []))


def changelog_for(layout: StagingLayout, previous: StagingLayout, version: int, text: str,
                  diff: ReleaseDiff | None = None) -> list[dict[str, Any]]:
    """Every entry up to ``version``; the new one is ``text`` plus the diff's counts."""
    body = text.strip()
    if diff is not None:
        body += " (changes from v{}: {})".format(diff.old.version, "; ".join(diff.summary_lines()))
    entries = [e for e in previous_entries(previous) if int(e.get("version", 0)) < version]
    return [*entries, {"version": version, "date": entry_date(layout), "text": body}]


def diff_previous(previous: StagingLayout, layout: StagingLayout) -> ReleaseDiff | None:
    """``ioarchive diff`` of the previous version's staged release folder and this one (hashed)."""
    from ioarchive.render.diff import diff_versions, open_version

    if not previous.manifest(DIFF_VARIANT).exists():
        log.warning("no staged v-1 release folder at %s: the changelog and the gate page show no diff",
                    previous.release_dir(DIFF_VARIANT))
        return None
    return diff_versions(open_version(str(previous.release_dir(DIFF_VARIANT))),
                         open_version(str(layout.release_dir(DIFF_VARIANT))))
