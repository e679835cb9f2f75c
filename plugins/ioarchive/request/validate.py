"""The request stage: check the trigger form and the campaign folder before anyone reviews it.

Returns what the attribution reviewer decides on (the gate's body). Bad input raises
``InvalidRelease`` (NotRetryable: the task fails on try 1 and says why).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from ioarchive.files import atomic_write_bytes
from ioarchive.request.campaign import Campaign, InvalidRelease, ReleaseParams, find_raw_file, open_raw_text
from ioarchive.staging import StagingLayout

log = logging.getLogger(__name__)


def count_records(campaign_dir: Path, table: str) -> int | None:
    """Non-blank lines of the campaign's ``<table>.jsonl[.gz]`` (None when the table is absent)."""
    path = find_raw_file(campaign_dir, table, required=False)
    if path is None:
        return None
    with open_raw_text(path, errors="replace") as fh:
        return sum(1 for line in fh if line.strip())


def _md(text: Any) -> str:
    """Markdown-escaped text for gate bodies (campaign text is not ours to format)."""
    from ioarchive.render.documents import md_escape

    return str(md_escape(text))


def attribution_body(campaign: Campaign, params: ReleaseParams, counts: dict[str, Any]) -> str:
    """Markdown the attribution reviewer decides on."""
    statement = "\n".join(f"> {_md(line)}" if line.strip() else ">" for line in campaign.attribution.splitlines())
    rows = "\n".join(f"| {_md(k)} | {v if v is not None else 'missing'} |" for k, v in counts.items())
    investigations = ", ".join(_md(i) for i in campaign.investigation_ids) or "none"
    return (
        f"### {_md(campaign.title)}\n\n"
        f"Release **{params.release_id}** v{params.version} — country {_md(campaign.country)}, "
        f"disclosure {_md(campaign.disclosure_month)}.\n\n"
        f"**Attribution statement**\n\n{statement or '> (empty)'}\n\n"
        f"| input | count |\n|---|---|\n{rows}\n\n"
        f"Linked investigations (must all be concluded before extraction): {investigations}\n\n"
        f"Campaign folder: `{params.campaign_dir}`. Pseudonymization threshold: {params.threshold} followers.\n\n"
        "Approve only if the attribution is signed off; Reject stops the run and nothing is published. "
        "Add the reason in the comment field."
    )


def validate_request(rp: ReleaseParams, layout: StagingLayout) -> dict[str, Any]:
    """Check the campaign folder of a validated form; create the staging folder; return the gate's view."""
    campaign_dir = Path(rp.campaign_dir)
    if not campaign_dir.is_dir():
        raise InvalidRelease(f"campaign location {campaign_dir} is not a folder on the worker")
    campaign = Campaign.load(campaign_dir)
    counts: dict[str, Any] = {
        "attributed accounts": len(campaign.account_ids),
        "account records": count_records(campaign_dir, "accounts"),
        "post records": count_records(campaign_dir, "posts"),
        "media records": count_records(campaign_dir, "media"),
        "deletions": count_records(campaign_dir, "deletions"),
    }
    missing = [name for name in ("account records", "post records") if counts[name] is None]
    if missing:
        raise InvalidRelease(
            f"campaign {campaign_dir} lacks {' and '.join(missing)} (accounts.jsonl[.gz], posts.jsonl[.gz])"
        )
    expected_suffix = campaign.disclosure_month.replace("-", "")
    if not rp.release_id.endswith(expected_suffix):
        log.warning(
            "release id %s does not end with the campaign's disclosure month %s: check the trigger form",
            rp.release_id,
            campaign.disclosure_month,
        )
    layout.root.mkdir(parents=True, exist_ok=True)
    form = {k: v for k, v in rp.to_dict().items() if k not in ("key_id", "extra")}
    atomic_write_bytes(layout.request, (json.dumps(form, indent=1, sort_keys=True) + "\n").encode())
    log.info("release %s v%d stages in %s", rp.release_id, rp.version, layout.root)
    return {
        "release_id": rp.release_id,
        "version": rp.version,
        "campaign_id": campaign.campaign_id,
        "title": campaign.title,
        "investigation_ids": list(campaign.investigation_ids),
        "counts": counts,
        "staging_dir": str(layout.root),
        "attribution_body": attribution_body(campaign, rp, counts),
    }
