"""The members' withdrawal notice (RELEASE_SPEC 8): which files to delete, by name and SHA-256.

Consortium members who downloaded a withdrawn version must delete their local copies (data-use
agreement). The notice lists every withdrawn file of the member (unhashed) variant and of the
public one, with its SHA-256 so a member can find copies that were renamed, and names the
version that supersedes them. It names no account: the notice travels by e-mail/SNS.
Sent through ``ioarchive.airflow.notifiers.send`` like every other notification.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ioarchive.airflow.notifiers import Message


def withdrawal_notice(release_id: str, superseded_by: int, reason: str,
                      withdrawn: Iterable[dict[str, Any]]) -> Message:
    """``withdrawn``: one entry per withdrawn version and bucket: ``{version, variant, url, files}``
    (``files``: ``[{name, bytes, sha256}]``, as in the withdrawal record)."""
    entries = sorted(withdrawn, key=lambda w: (int(w["version"]), str(w["variant"])))
    versions = sorted({int(w["version"]) for w in entries})
    shown = ", ".join(f"v{v}" for v in versions)
    lines = [
        f"Release {release_id}: {shown} withdrawn, superseded by v{superseded_by}.",
        f"Reason: {reason}",
        "Under the data-use agreement, delete every local copy of the files below (compare SHA-256",
        f"with `sha256sum`), and use v{superseded_by} instead.",
    ]
    for w in entries:
        lines += ["", f"v{w['version']} {w['variant']} ({w['url']}):"]
        lines += [f"  {f['sha256']}  {f['name']}  ({f['bytes']} bytes)" for f in w["files"]]
    subject = f"[ioarchive] {release_id} {shown} withdrawn: delete local copies"
    return Message(subject=subject[:100], body="\n".join(lines))
