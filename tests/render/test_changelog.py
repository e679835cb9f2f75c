"""The changelog entry of version N+1: the run's text plus ``ioarchive diff``'s counts (no ids)."""

from __future__ import annotations

import json

import pytest
from ioarchive.errors import InvalidRelease
from ioarchive.render.changelog import changelog_for, diff_previous
from ioarchive.request.campaign import ReleaseParams
from support.versions import POSTS_PER_ACCOUNT, PSEUDONYMS, RAW_IDS, build_version, make_campaign


def test_entry_carries_the_diff_counts_and_earlier_entries(tmp_path):
    campaign = make_campaign(tmp_path)
    v1 = build_version(tmp_path, campaign, 1)
    v2 = build_version(tmp_path, campaign, 2, drop_accounts=(1,))
    v2.signoffs.write_text(json.dumps([{"gate": "retraction", "decision": "approved", "by": "reviewer_a",
                                        "at": "2026-12-05T07:30:00+00:00"}]))
    diff = diff_previous(v1, v2)
    assert diff is not None and diff.accounts_removed == [PSEUDONYMS[1]]
    entries = changelog_for(v2, v1, 2, "Retraction after a successful appeal.", diff)
    assert [e["version"] for e in entries] == [1, 2]
    new = entries[-1]
    assert new["date"] == "2026-12-05"
    assert new["text"].startswith("Retraction after a successful appeal. (changes from v1: Accounts: 1 removed; "
                                  f"Posts: {POSTS_PER_ACCOUNT} removed; Media files: 3 removed; Files: ")
    assert PSEUDONYMS[1] not in new["text"] and RAW_IDS[1] not in new["text"]  # counts only: the README is public


def test_no_previous_staging_means_no_diff(tmp_path):
    campaign = make_campaign(tmp_path)
    v2 = build_version(tmp_path, campaign, 2)
    missing = v2.for_version(tmp_path / "elsewhere", v2.release_id, 1)
    assert diff_previous(missing, v2) is None
    assert changelog_for(v2, missing, 2, "Fix.")[-1]["text"] == "Fix."


def test_version_2_without_changelog_is_refused():
    with pytest.raises(InvalidRelease, match="needs a changelog"):
        ReleaseParams(release_id="x_202102", campaign_dir="/c", version=2)
    assert ReleaseParams(release_id="x_202102", campaign_dir="/c", version=2, changelog="fix").changelog == "fix"
