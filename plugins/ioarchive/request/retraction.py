"""A retraction request (RELEASE_SPEC 8): which release, which accounts, why; checked before review.

``io_retract`` is triggered with ``release_id``, ``account_ids``, ``reason`` and ``reviewers``.
This stage checks that the release is published (its latest version not withdrawn, in the
public bucket) and that every account belongs to its campaign, and derives the *form* of the
new version: the published version's own request (``request.json`` of its staging folder:
campaign folder, threshold, archive target) with ``version`` N+1, the reason as changelog, the
run's reviewers and the gates its publication requires (retraction + publication sign-offs).
Every later task of the run builds version N+1 from that form with ``io_release``'s stages.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ioarchive.errors import RetractionRefused
from ioarchive.gates.signoffs import GATE_PUBLICATION, GATE_RETRACTION
from ioarchive.request.campaign import Campaign, check_release_id
from ioarchive.staging import StagingLayout

log = logging.getLogger(__name__)


def live_versions(manifests: Iterable[dict[str, Any]], release_id: str) -> list[int]:
    """Published, not withdrawn versions of ``release_id`` (from the bucket's manifests)."""
    return sorted(int(m["version"]) for m in manifests
                  if m.get("release_id") == release_id and not m.get("withdrawn_at"))


def plan_retraction(
    release_id: str,
    account_ids: Iterable[str],
    reason: str,
    reviewers: list[str],
    *,
    published: list[dict[str, Any]],
    staging_root: str | Path,
) -> dict[str, Any]:
    """The form of version N+1 and the retraction reviewer's page; raises RetractionRefused."""
    check_release_id(release_id)
    ids = sorted({str(a).strip() for a in account_ids if str(a).strip()})
    if not ids:
        raise RetractionRefused(f"retraction of {release_id}: account_ids is empty; name the restored accounts")
    if not reason or not str(reason).strip():
        raise RetractionRefused(f"retraction of {release_id}: a reason is required (it becomes the changelog)")
    live = live_versions(published, release_id)
    if not live:
        raise RetractionRefused(f"{release_id} has no published version in the public bucket: nothing to retract "
                                "from (an unpublished release is fixed by rerunning io_release)")
    current = live[-1]
    previous = StagingLayout.for_version(staging_root, release_id, current)
    if not previous.request.exists():
        raise RetractionRefused(
            f"{previous.request} is missing: v{current} of {release_id} was not staged on this staging root, so its "
            "campaign folder and parameters are unknown; run io_release with version "
            f"{current + 1}, the corrected campaign and a changelog instead")
    request = json.loads(previous.request.read_text(encoding="utf-8"))
    campaign = Campaign.load(request["campaign_dir"])
    outside = [a for a in ids if a not in set(campaign.account_ids)]
    if outside:
        raise RetractionRefused(f"accounts {', '.join(outside)} are not accounts of campaign {campaign.campaign_id} "
                                f"({release_id}); check the ids (nothing was changed)")
    form = {
        **request,
        "version": current + 1,
        "changelog": str(reason).strip(),
        "reviewers": list(reviewers),
        "signoff_gates": [GATE_RETRACTION, GATE_PUBLICATION],
        "retraction": {"account_ids": ids, "reason": str(reason).strip(), "supersedes": current},
    }
    body = (
        f"### Retraction from {release_id}\n\n"
        f"Published version: v{current} ({campaign.title}). This run builds **v{current + 1}** without the "
        f"{len(ids)} account(s) below, their posts and their media, publishes it after the publication sign-off, "
        f"then withdraws every earlier version holding them from both buckets and notifies members.\n\n"
        f"Accounts: {', '.join(f'`{a}`' for a in ids)}\n\n"
        f"Reason (becomes the changelog entry): {str(reason).strip()}\n\n"
        "Approve only if the appeal was granted; Reject stops the run and nothing changes."
    )
    log.info("retraction of %d accounts from %s: v%d will supersede v%d", len(ids), release_id, current + 1, current)
    return {"form": form, "retraction_body": body, "supersedes": current}
