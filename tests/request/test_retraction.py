"""io_retract's request check: published release, accounts of its campaign; the form of v N+1."""

from __future__ import annotations

import json

import pytest
from ioarchive.errors import RetractionRefused
from ioarchive.request.retraction import plan_retraction
from ioarchive.staging import StagingLayout

RELEASE = "retr_202102"


@pytest.fixture()
def staged(tmp_path):
    campaign = tmp_path / "campaign"
    campaign.mkdir()
    (campaign / "campaign.json").write_text(json.dumps({
        "campaign_id": "c1", "title": "Retr (February 2021)", "country": "X", "attribution": "a",
        "disclosure_month": "2021-02", "investigation_ids": ["i1"], "account_ids": ["111", "222", "333"]}))
    layout = StagingLayout.for_version(tmp_path / "staging", RELEASE, 2)
    layout.root.mkdir(parents=True)
    layout.request.write_text(json.dumps({"release_id": RELEASE, "campaign_dir": str(campaign), "version": 2,
                                          "threshold": 5000, "archive_target_bytes": 1000, "changelog": "fix"}))
    published = [{"release_id": RELEASE, "version": 1, "withdrawn_at": "2026-01-01T00:00:00Z"},
                 {"release_id": RELEASE, "version": 2}, {"release_id": "other_202102", "version": 7}]
    return tmp_path / "staging", published


def test_form_of_the_next_version(staged):
    root, published = staged
    plan = plan_retraction(RELEASE, ["222", " 111 ", "222"], "Appeal granted.", ["reviewer_a"], published=published,
                           staging_root=root)
    form = plan["form"]
    assert plan["supersedes"] == 2 and form["version"] == 3 and form["changelog"] == "Appeal granted."
    assert form["archive_target_bytes"] == 1000 and form["reviewers"] == ["reviewer_a"]
    assert form["signoff_gates"] == ["retraction", "publication"]
    assert form["retraction"] == {"account_ids": ["111", "222"], "reason": "Appeal granted.", "supersedes": 2}
    assert "`111`" in plan["retraction_body"] and "**v3**" in plan["retraction_body"]


@pytest.mark.parametrize("ids, reason, published, message", [
    (["999"], "r", None, "999 are not accounts of campaign c1"),
    ([], "r", None, "account_ids is empty"),
    (["111"], " ", None, "a reason is required"),
    (["111"], "r", [{"release_id": RELEASE, "version": 1, "withdrawn_at": "x"}], "has no published version"),
])
def test_refusals(staged, ids, reason, published, message):
    root, default = staged
    with pytest.raises(RetractionRefused, match=message):
        plan_retraction(RELEASE, ids, reason, ["r"], published=default if published is None else published,
                        staging_root=root)
