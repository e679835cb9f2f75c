"""io_release's optional ``changelog`` param: the README changelog of a version N > 1."""

from __future__ import annotations

import json

from ioarchive.airflow.tasks import changelog_entries
from ioarchive.request.campaign import ReleaseParams


def _params(tmp_path, version: int) -> ReleaseParams:
    campaign = tmp_path / "campaign"
    campaign.mkdir(exist_ok=True)
    (campaign / "campaign.json").write_text(json.dumps({
        "campaign_id": "IRAN", "country": "Iran", "disclosure_month": "2021-02", "title": "t",
        "attribution": "a", "investigation_ids": ["INV-1"], "account_ids": ["1"]}))
    return ReleaseParams(release_id="iran_202102", campaign_dir=str(campaign), version=version)


def test_no_text_leaves_render_its_default(tmp_path):
    assert changelog_entries(_params(tmp_path, 1), None, {}) is None
    assert changelog_entries(_params(tmp_path, 2), "  ", {}) is None


def test_v2_keeps_v1s_entry_and_adds_its_own(tmp_path):
    entries = changelog_entries(_params(tmp_path, 2), "Corrected export.", {})
    assert entries == [{"version": 1, "date": "2021-02", "text": "Initial release."},
                       {"version": 2, "date": "2021-02", "text": "Corrected export."}]


def test_earlier_entries_come_from_the_previous_manifest(tmp_path):
    previous = {"hashed": {"changelog": [{"version": 1, "date": "2021-02", "text": "Initial release."},
                                         {"version": 2, "date": "2021-03", "text": "Fixed dates."},
                                         {"version": 3, "date": "2021-04", "text": "stale entry of a rerun"}]}}
    entries = changelog_entries(_params(tmp_path, 3), "Retracted two accounts.", previous)
    assert [(e["version"], e["text"]) for e in entries] == [
        (1, "Initial release."), (2, "Fixed dates."), (3, "Retracted two accounts.")]
