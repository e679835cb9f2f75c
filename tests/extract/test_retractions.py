"""Retracted accounts (RELEASE_SPEC 8) at the stage level, with real Spark and a real registry.

The registry records the retraction; the extraction task's copy (``retractions.json``) is what
the Spark job honours. One extraction + pseudonymization of the shared clean campaign, then:
the books count every line of the retracted accounts under ``retracted``; no table row of
theirs is left; posts of others that referred to them stay, with the references blanked; and
no byte of either variant's table files holds their ids, pseudonyms, screen names or texts.
This is also what keeps them out of any later ``io_release`` of the same release id.
"""

from __future__ import annotations

import io
import json
import zipfile

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from ioarchive import reconcile
from ioarchive.extract import retractions
from ioarchive.gates.registry import Registry, retracted_accounts
from ioarchive.pseudonymize.pseudonym import write_key_file
from ioarchive.staging import StagingLayout
from support.leak import folder_objects, scan
from support.release import extract_both_variants
from support.retraction import needles, pick_accounts, raw

RELEASE = "retract_202102"
KEY = b"retraction test key 0123456789abcdef"


@pytest.fixture(scope="module")
def retracted(spark, campaign_dir, tmp_path_factory):
    small, large = pick_accounts(campaign_dir)
    db_url = f"sqlite:///{tmp_path_factory.mktemp('registry') / 'registry.db'}"
    with Registry(db_url) as registry:
        registry.migrate()
        registry.record_retraction(RELEASE, [small, large], "appeal granted", "reviewer_a")
    staging = tmp_path_factory.mktemp("staging")
    layout = StagingLayout(staging, RELEASE)
    retractions.write(layout, [r.account_id for r in retracted_accounts(RELEASE, db_url=db_url)])
    key_file = write_key_file(KEY, tmp_path_factory.mktemp("key") / "key")
    extract_both_variants(spark, campaign_dir, staging, RELEASE, key_file, "k1")
    return {"layout": layout, "ids": [small, large], "raw": raw(campaign_dir), "campaign_dir": campaign_dir}


def _rows(layout: StagingLayout, variant: str, table: str) -> list[dict]:
    return pq.read_table(layout.work_table(variant, table)).to_pylist()


def test_books_count_retracted_lines(retracted):
    gone = set(retracted["ids"])
    data, deletions = retracted["raw"], retracted["campaign_dir"] / "deletions.jsonl"
    deleted = {json.loads(x)["id"] for x in deletions.read_text().splitlines() if x.strip()} if deletions.exists() else set()
    posts = sum(1 for p in data["posts"] if p["user"]["id_str"] in gone and p["id_str"] not in deleted)
    media = sum(1 for m in data["media"] if m.get("user_id") in gone and m["media_key"] not in deleted)
    books = reconcile.load(retracted["layout"])
    assert books["balanced"] is True
    assert books["tables"]["accounts"]["excluded"]["retracted"] == 2
    assert books["tables"]["posts"]["excluded"]["retracted"] == posts > 0
    assert books["tables"]["media"]["excluded"]["retracted"] == media > 0


def test_no_row_and_no_reference_left(retracted):
    gone = set(retracted["ids"])
    layout = retracted["layout"]
    for variant in ("unhashed", "hashed"):
        assert not [a for a in _rows(layout, variant, "accounts") if a["userid"] in gone]
        assert not [m for m in _rows(layout, variant, "media") if m["userid"] in gone]
    posts = _rows(layout, "unhashed", "posts")
    assert not [p for p in posts if p["userid"] in gone]
    assert not [p for p in posts if p["in_reply_to_userid"] in gone or p["retweet_userid"] in gone
                or gone & set(p["user_mentions"])]
    # Retweets of and replies to them stay (campaign activity), without naming them.
    referring = {p["id_str"] for p in retracted["raw"]["posts"] if p["user"]["id_str"] not in gone and (
        (p.get("retweeted_status") or {}).get("user", {}).get("id_str") in gone
        or p.get("in_reply_to_user_id_str") in gone)}
    kept = {p["tweetid"]: p for p in posts if p["tweetid"] in referring}
    assert kept, "the campaign has no post referring to a retracted account: the test proves nothing"
    assert all(p["retweet_userid"] is None and p["in_reply_to_userid"] is None for p in kept.values())
    assert all(p["tweet_text"] == "" for p in kept.values() if p["is_retweet"])
    identities = {r["userid"] for r in _rows(layout, "unhashed", "identities")}
    assert not identities & gone


def test_no_published_byte_names_them(retracted):
    layout = retracted["layout"]
    n = needles(retracted["campaign_dir"], retracted["ids"], KEY)
    assert n.names and n.texts and n.pseudonyms
    for variant in ("unhashed", "hashed"):
        objects = folder_objects(layout.release_dir(variant))
        assert any(name.endswith(".parquet") for name in objects)
        assert scan(objects, n) == [], variant


def test_leak_scan_can_fail(retracted):
    """The scanner finds each kind of needle in the raw export and inside a zipped Parquet."""
    n = needles(retracted["campaign_dir"], retracted["ids"], KEY)
    found = scan({"posts.jsonl": (retracted["campaign_dir"] / "posts.jsonl").read_bytes()}, n)
    assert any(": id " in f for f in found) and any("screen name" in f for f in found)
    assert any("post text" in f for f in found)
    buf = io.BytesIO()
    pq.write_table(pa.table({"x": [sorted(n.pseudonyms)[0]]}), buf, compression="zstd")
    zipped = io.BytesIO()
    with zipfile.ZipFile(zipped, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("t.parquet", buf.getvalue())
    assert any("pseudonym" in f for f in scan({"a.zip": zipped.getvalue()}, n))
