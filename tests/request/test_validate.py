"""The request check before the attribution gate, and what the attribution reviewer reads."""

from __future__ import annotations

import json

import pytest
from airflow.sdk.exceptions import AirflowFailException
from ioarchive.airflow import tasks as release_tasks
from ioarchive.request.campaign import InvalidRelease


@pytest.fixture(scope="module")
def small_campaign(tmp_path_factory):
    from ioarchive.devtools.generate.campaign import generate_campaign

    out = tmp_path_factory.mktemp("request") / "campaign"
    generate_campaign(out, seed=5, accounts=20, posts=150, media_bytes=256 * 1024, release_month="2021-02")
    return out


def _params(campaign, **over):
    params = {"campaign_dir": str(campaign), "release_id": "synthetic_202102", "version": 2,
              "changelog": "Corrected export: two deleted posts removed.", "threshold": 5000, "archive_target_bytes": 1024, "reviewers": ["reviewer_a"]}
    params.update(over)
    return params


def test_valid_request_stages_per_version_and_shows_campaign_and_counts(small_campaign, tmp_path, monkeypatch):
    monkeypatch.setenv("IOARCHIVE_STAGING_ROOT", str(tmp_path / "staging"))
    campaign = json.loads((small_campaign / "campaign.json").read_text())
    posts = sum(1 for line in (small_campaign / "posts.jsonl").read_text().splitlines() if line.strip())
    out = release_tasks.validate_request(_params(small_campaign))
    assert out["staging_dir"] == str(tmp_path / "staging" / "synthetic_202102" / "v2")
    assert (tmp_path / "staging" / "synthetic_202102" / "v2").is_dir()
    assert out["investigation_ids"] == campaign["investigation_ids"]
    assert out["counts"]["attributed accounts"] == len(campaign["account_ids"])
    assert out["counts"]["post records"] == posts
    body = out["attribution_body"]
    assert f"| post records | {posts} |" in body
    assert "Synthetic \\(February 2021\\)" in body or "Synthetic (February 2021)" in body
    assert "Example Agency" in body  # the attribution statement is quoted for the reviewer
    assert release_tasks.signoffs_path({"params": _params(small_campaign)}) == (
        tmp_path / "staging" / "synthetic_202102" / "v2" / "signoffs.json"
    )


@pytest.mark.parametrize(
    "override, message",
    [
        ({"release_id": "Iran-2021"}, "is not <campaign_slug>_<YYYYMM>"),
        ({"version": 0}, "version must be >= 1"),
        ({"threshold": -1}, "threshold must be >= 0"),
        ({"changelog": ""}, "version 2 of synthetic_202102 needs a changelog"),
        ({"changelog": None}, "set the 'changelog' param"),
    ],
)
def test_invalid_form_values_are_refused(small_campaign, override, message):
    with pytest.raises(AirflowFailException, match=message) as failed:  # fails on try 1, no retry
        release_tasks.validate_request(_params(small_campaign, **override))
    assert isinstance(failed.value.__cause__, InvalidRelease)


def test_campaign_without_posts_is_refused(small_campaign, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "campaign.json").write_bytes((small_campaign / "campaign.json").read_bytes())
    (broken / "accounts.jsonl").write_text('{"id_str": "1"}\n')
    with pytest.raises(AirflowFailException, match=r"InvalidRelease: .*lacks post records"):
        release_tasks.validate_request(_params(broken))
    with pytest.raises(AirflowFailException, match="InvalidRelease: .*is not a folder"):
        release_tasks.validate_request(_params(tmp_path / "nowhere"))
