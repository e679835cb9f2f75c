"""Extraction + pseudonymization + writers on a generated campaign with every bad-record kind.

One pipeline run (module fixture, the session Spark, the jobs called in-process exactly as
spark-submit would call them) feeds every assertion here; the spark-submit test reuses its
unhashed work tables. Expected values come from the raw JSON and Python's hmac, never from
the code under test.

Leak-scan rule (documented in docs/decisions.md): for every pseudonymized account,
- its raw userid must not occur as a digit token anywhere (raw CSV bytes and Parquet values);
- its screen names must not occur as an ASCII word token (case-insensitive) in any value,
  except inside ``user_display_name`` cells of accounts that are *not* pseudonymized (common
  first names like "Leila" are screen names of some accounts and real names of others);
- its display name must not occur in free text, and as a whole ``user_display_name`` cell only
  on rows of a non-pseudonymized account whose own raw display name is that same string.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import zipfile
from collections import Counter
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from ioarchive import reconcile
from ioarchive.pseudonymize.pseudonym import pseudonym, write_key_file
from ioarchive.schema import ACCOUNT_COLUMNS, POST_COLUMNS
from ioarchive.staging import StagingLayout
from support.release import extract_both_variants

RELEASE = "synthetic_202102"
KEY = b"test-only key: 0123456789abcdef0123456789abcdef"
KEY_ID = "test-key-1"
PART_BYTES = 200_000
TOKEN_EDGE = "[A-Za-z0-9_]"


def _json_lines(path: Path) -> list[tuple[int, dict]]:
    out = []
    for n, line in enumerate(path.read_text(encoding="utf-8").split("\n"), start=1):
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if isinstance(obj, dict):
            out.append((n, obj))
    return out


@pytest.fixture(scope="module")
def run(spark, invalid_campaign_dir, tmp_path_factory):
    """Extract + pseudonymize + write both variants once; returns paths and raw inputs."""
    staging = tmp_path_factory.mktemp("staging")
    key_file = write_key_file(KEY, tmp_path_factory.mktemp("key") / "key")
    extract_both_variants(spark, invalid_campaign_dir, staging, RELEASE, key_file, KEY_ID, csv_part_max_bytes=PART_BYTES)
    campaign = json.loads((invalid_campaign_dir / "campaign.json").read_text())
    sidecar = json.loads((invalid_campaign_dir / "injected_invalid.json").read_text())
    bad_lines = {(r["file"], r["line"]) for r in sidecar["records"]}
    accounts = {o["id_str"]: o for n, o in _json_lines(invalid_campaign_dir / "accounts.jsonl")
                if ("accounts.jsonl", n) not in bad_lines}
    posts = {o["id_str"]: o for n, o in _json_lines(invalid_campaign_dir / "posts.jsonl")
             if ("posts.jsonl", n) not in bad_lines}
    deletions = [json.loads(x) for x in (invalid_campaign_dir / "deletions.jsonl").read_text().splitlines() if x]
    return {
        "layout": StagingLayout(staging, RELEASE), "campaign_dir": invalid_campaign_dir, "campaign": campaign,
        "sidecar": sidecar, "accounts": accounts, "posts": posts, "deletions": deletions,
    }


def _csv_rows(layout: StagingLayout, variant: str, table: str) -> list[dict[str, str]]:
    rows: list[dict[str, str]] = []
    for z in sorted(layout.release_dir(variant).glob(f"{RELEASE}_{table}_csv_{variant}*.zip")):
        with zipfile.ZipFile(z) as zf:
            (name,) = zf.namelist()
            rows.extend(csv.DictReader(io.StringIO(zf.read(name).decode("utf-8"), newline="")))
    return rows


def _csv_bytes(layout: StagingLayout, variant: str) -> bytes:
    blob = b""
    for z in sorted(layout.release_dir(variant).glob("*.zip")):
        with zipfile.ZipFile(z) as zf:
            blob += b"".join(zf.read(n) for n in zf.namelist())
    return blob


def _parquet_values(layout: StagingLayout, variant: str) -> list[dict]:
    rows = []
    for path in [layout.parquet_dir(variant) / "users.parquet", *sorted((layout.parquet_dir(variant) / "tweets").glob("*.parquet"))]:
        rows.extend(pq.read_table(path).to_pylist())
    return rows


def _pseudonymized(run) -> dict[str, dict]:
    """Raw account records of accounts that must be pseudonymized (campaign, < 5000)."""
    campaign_ids = set(run["campaign"]["account_ids"])
    return {i: a for i, a in run["accounts"].items() if i in campaign_ids and a["followers_count"] < 5000}


# ---- quarantine and reconciliation ----------------------------------------------------------
def test_every_injected_bad_record_is_quarantined_with_its_reason(run):
    layout, sidecar = run["layout"], run["sidecar"]
    got = Counter((r["source_file"], r["line"], r["reason"])
                  for r in map(json.loads, layout.quarantine_records.read_text().splitlines()))
    packer_kinds = {"size_mismatch", "sha256_mismatch"}  # found by pack-media, not extraction
    expected = Counter((r["file"], r["line"], r["kind"]) for r in sidecar["records"]
                       if r["disposition"] == "quarantined" and r["kind"] not in packer_kinds)
    assert got == expected
    assert {k for _, _, k in expected} >= {"invalid_json", "missing_id", "duplicate_id", "unparseable_timestamp",
                                           "negative_count", "path_escape", "symlink", "missing_file"}
    books = reconcile.load(layout)
    excluded_injected = sum(1 for r in sidecar["records"] if r["kind"] == "not_campaign_account")
    assert books["tables"]["posts"]["excluded"]["not_campaign_account"] == excluded_injected
    record = next(r for r in map(json.loads, layout.quarantine_records.read_text().splitlines()))
    raw_lines = (run["campaign_dir"] / record["source_file"]).read_text(encoding="utf-8").split("\n")
    assert raw_lines[record["line"] - 1][:10_000] == record["record"]


def test_reconciliation_balances_against_files_and_tables(run, spark):
    layout, books = run["layout"], reconcile.load(run["layout"])
    assert books["release_id"] == RELEASE and books["balanced"] is True
    for table in ("accounts", "posts", "media"):
        entry = books["tables"][table]
        lines = [x for x in (run["campaign_dir"] / f"{table}.jsonl").read_text(encoding="utf-8").split("\n") if x.strip()]
        assert entry["read"] == len(lines)
        assert entry["read"] == entry["released"] + sum(entry["excluded"].values()) + sum(entry["quarantined"].values())
        assert spark.read.parquet(str(layout.work_table("unhashed", table))).count() == entry["released"]
    deleted_posts = {d["id"] for d in run["deletions"] if d["kind"] == "post"}
    assert books["tables"]["posts"]["excluded"]["deleted"] == len(deleted_posts & set(run["posts"]))
    assert books["tables"]["media"]["excluded"]["deleted"] == sum(1 for d in run["deletions"] if d["kind"] == "media")


def test_deleted_never_released_and_silent_accounts_are(run, spark):
    layout = run["layout"]
    deleted = {d["id"] for d in run["deletions"]}
    for variant in ("hashed", "unhashed"):
        tweet_ids = {r["tweetid"] for r in _csv_rows(layout, variant, "tweets")}
        assert tweet_ids and not tweet_ids & deleted
        media = spark.read.parquet(str(layout.work_table(variant, "media"))).collect()
        assert media and not {m["media_key"] for m in media} & deleted
        assert not {m["tweetid"] for m in media if m["tweetid"]} - tweet_ids
    posters = {p["user"]["id_str"] for p in run["posts"].values()}
    silent = set(run["campaign"]["account_ids"]) & set(run["accounts"]) - posters
    users = {r["userid"] for r in _csv_rows(layout, "unhashed", "users")}
    assert silent and silent <= users
    files = json.loads(layout.work_files("unhashed").read_text())
    assert files["counts"]["accounts"] == len(users)
    assert files["counts"]["accounts_that_posted"] == len(users & posters)


# ---- pseudonymization -----------------------------------------------------------------------
def test_expected_pseudonym_appears_in_every_place(run):
    layout, small = run["layout"], _pseudonymized(run)
    users = {r["userid"]: r for r in _csv_rows(layout, "hashed", "users")}
    tweets = {r["tweetid"]: r for r in _csv_rows(layout, "hashed", "tweets")}
    raw_tweets = {r["tweetid"]: r for r in _csv_rows(layout, "unhashed", "tweets")}
    ps = {uid: pseudonym(KEY, uid) for uid in small}
    for p in ps.values():
        assert re.fullmatch(r"[A-Za-z0-9_-]{43}", p)
        assert users[p]["user_display_name"] == p and users[p]["user_screen_name"] == p
    seen = Counter()
    for tid, raw in raw_tweets.items():
        out = tweets[tid]
        if raw["userid"] in ps:
            assert (out["userid"], out["user_display_name"], out["user_screen_name"]) == (ps[raw["userid"]],) * 3
            seen["own"] += 1
        for col in ("in_reply_to_userid", "retweet_userid"):
            if raw[col] in ps:
                assert out[col] == ps[raw[col]]
                seen[col] += 1
        raw_mentions, out_mentions = json.loads(raw["user_mentions"]), json.loads(out["user_mentions"])
        assert out_mentions == [ps.get(m, m) for m in raw_mentions]
        seen["user_mentions"] += sum(m in ps for m in raw_mentions)
        for uid in set(raw_mentions) & set(ps):
            sn = small[uid]["screen_name"]
            if re.search(rf"(?i)@{sn}(?!{TOKEN_EDGE})", raw["tweet_text"]):
                assert f"@{ps[uid]}" in out["tweet_text"]
                seen["text"] += 1
    assert min(seen[k] for k in ("own", "in_reply_to_userid", "retweet_userid", "user_mentions", "text")) > 0, seen
    record = json.loads((layout.root / "work" / "hashed" / "pseudonymization.json").read_text())
    campaign_ids = set(run["campaign"]["account_ids"])
    unknown = campaign_ids - set(run["accounts"])  # quarantined account records: protected too
    assert record == {"key_id": KEY_ID, "threshold": 5000, "method": record["method"],
                      "pseudonymized_accounts": len(small) + len(unknown)}


def test_mention_case_and_prefix_traps(run):
    layout, small = run["layout"], _pseudonymized(run)
    raw_tweets = {r["tweetid"]: r for r in _csv_rows(layout, "unhashed", "tweets")}
    tweets = {r["tweetid"]: r for r in _csv_rows(layout, "hashed", "tweets")}
    by_sn = {a["screen_name"].lower(): uid for uid, a in small.items()}
    checked = 0
    for tid, raw in raw_tweets.items():
        expected = re.sub(rf"(?i)(?<!{TOKEN_EDGE}){TOKEN_EDGE}+(?!{TOKEN_EDGE})",
                          lambda m: pseudonym(KEY, by_sn[m.group(0).lower()]) if m.group(0).lower() in by_sn
                          else pseudonym(KEY, m.group(0)) if m.group(0) in small else m.group(0),
                          raw["tweet_text"])
        assert tweets[tid]["tweet_text"] == expected
        checked += expected != raw["tweet_text"]
    assert checked > 10


def test_threshold_boundary(run):
    layout = run["layout"]
    users = {r["userid"] for r in _csv_rows(layout, "hashed", "users")}
    by_followers = {a["followers_count"]: uid for uid, a in run["accounts"].items()}
    assert pseudonym(KEY, by_followers[4999]) in users and by_followers[4999] not in users
    assert by_followers[5000] in users and pseudonym(KEY, by_followers[5000]) not in users


def test_no_raw_identifier_of_a_pseudonymized_account_anywhere(run):
    layout, small = run["layout"], _pseudonymized(run)
    blob = _csv_bytes(layout, "hashed").decode("utf-8")
    rows = _csv_rows(layout, "hashed", "users") + _csv_rows(layout, "hashed", "tweets")
    parquet = _parquet_values(layout, "hashed")
    assert len(parquet) == len(rows)
    pseudonyms = {pseudonym(KEY, uid) for uid in small}
    raw_display = {uid: a["name"] for uid, a in run["accounts"].items()}

    def cells(row: dict):
        for col, value in row.items():
            for v in value if isinstance(value, list) else [value]:
                if isinstance(v, str):
                    yield col, v

    ids = re.compile(r"(?<![0-9])(" + "|".join(small) + r")(?![0-9])")
    names = re.compile(rf"(?i)(?<!{TOKEN_EDGE})(" + "|".join(re.escape(a["screen_name"]) for a in small.values())
                       + rf")(?!{TOKEN_EDGE})")
    displays = [a["name"] for a in small.values()]
    assert not ids.search(blob), "a raw userid of a pseudonymized account is in the hashed CSV bytes"
    # The statistics and their charts are published bytes too (issue #19): no raw id, screen name
    # or display name of a pseudonymized account in stats.json or any SVG of charts/.
    stats_files = [layout.release_stats("hashed"), *sorted(layout.charts_dir("hashed").glob("*"))]
    assert len(stats_files) > 1 and all(p.is_file() for p in stats_files), stats_files
    for path in stats_files:
        text = path.read_bytes().decode("utf-8")
        assert not ids.search(text), f"raw userid in {path.name}"
        assert not names.search(text), f"screen name leaked in {path.name}"
        assert not [d for d in displays if d in text], f"display name leaked in {path.name}"
        assert not [p for p in pseudonyms if p in text], f"pseudonym named in {path.name}"
    for row in rows + parquet:
        for col, v in cells(row):
            assert not ids.search(v), f"raw userid in {col}"
            if col == "user_display_name" and row["userid"] not in pseudonyms:
                assert v == raw_display[row["userid"]]  # another account's own real name
                continue
            assert not names.search(v), f"screen name leaked in {col}"
            if col != "user_display_name":
                assert not [d for d in displays if d in v], f"display name leaked in {col}"


# ---- writers --------------------------------------------------------------------------------
def test_csv_reads_back_exactly_with_pandas_and_csv(run):
    layout, posts, accounts = run["layout"], run["posts"], run["accounts"]
    rows = _csv_rows(layout, "unhashed", "tweets")
    frames = []
    for z in sorted(layout.release_dir("unhashed").glob(f"{RELEASE}_tweets_csv_unhashed*.zip")):
        with zipfile.ZipFile(z) as zf:
            frames.append(pd.read_csv(zf.open(zf.namelist()[0]), dtype=str, keep_default_na=False))
    frame = pd.concat(frames, ignore_index=True)
    assert list(frame.columns) == list(POST_COLUMNS)
    assert frame.to_dict("records") == rows
    nasty = 0
    for row in rows:
        src = posts[row["tweetid"]]
        acc = accounts.get(src["user"]["id_str"], {})
        assert row["tweet_text"] == src["full_text"]
        assert row["user_display_name"] == (acc.get("name") or "")
        assert row["user_profile_description"] == (acc.get("description") or "")
        assert row["userid"] == src["user"]["id_str"]
        assert row["in_reply_to_userid"] == (src.get("in_reply_to_user_id_str") or "")
        assert row["is_retweet"] == ("true" if src.get("retweeted_status") else "false")
        assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d", row["tweet_time"])
        assert row["like_count"] == str(src["favorite_count"])
        assert json.loads(row["hashtags"]) == [h["text"] for h in src["entities"]["hashtags"]]
        assert row["tweet_client_name"] == re.sub(r"<[^>]+>", "", src["source"])
        if src.get("coordinates"):
            lon, lat = src["coordinates"]["coordinates"]
            assert (float(row["latitude"]), float(row["longitude"])) == (lat, lon)
        nasty += any(c in src["full_text"] for c in ("\n", '"', "\u202e", "\U0001f525", "\u05e9"))
    assert nasty >= 4
    users = _csv_rows(layout, "unhashed", "users")
    assert all(u["account_creation_date"] == _v11_date(accounts[u["userid"]]["created_at"]) for u in users)
    assert [int(u["userid"]) for u in users] == sorted(int(u["userid"]) for u in users)


def _v11_date(created_at: str) -> str:
    from datetime import datetime

    return datetime.strptime(created_at, "%a %b %d %H:%M:%S %z %Y").strftime("%Y-%m-%d")


def test_csv_bytes_layout_and_parts(run):
    layout = run["layout"]
    zips = sorted(layout.release_dir("hashed").glob(f"{RELEASE}_tweets_csv_hashed_part*.zip"))
    assert len(zips) >= 2 and zips[0].name.endswith("_part001.zip")
    files = json.loads(layout.work_files("hashed").read_text())["files"]
    total = 0
    for z in zips:
        with zipfile.ZipFile(z) as zf:
            (info,) = zf.infolist()
            assert info.filename == z.name[:-4] + ".csv" and info.date_time == (1980, 1, 1, 0, 0, 0)
            data = zf.read(info)
        assert not data.startswith(b"\xef\xbb\xbf")
        assert len(data) <= PART_BYTES
        assert data.startswith(b'"tweetid","userid","user_display_name"') and data.endswith(b'"\n') and not data.endswith(b'\r\n')
        n = sum(1 for _ in csv.reader(io.StringIO(data.decode(), newline=""))) - 1
        assert files[z.name]["rows"] == n
        total += n
    assert total == json.loads(layout.work_files("hashed").read_text())["counts"]["posts"]
    assert layout.users_csv_zip("hashed").exists()
    raw = _csv_bytes(layout, "hashed")
    assert b'"absent"' in raw and b'"present"' in raw


def test_parquet_types_and_same_rows(run):
    layout = run["layout"]
    users = pq.read_table(layout.parquet_dir("unhashed") / "users.parquet")
    assert users.column_names == list(ACCOUNT_COLUMNS)
    assert str(users.schema.field("follower_count").type) == "int64"
    assert str(users.schema.field("account_creation_date").type) == "date32[day]"
    tweets = pq.read_table(layout.parquet_dir("hashed") / "tweets")
    assert tweets.column_names == list(POST_COLUMNS)
    types = {f.name: str(f.type) for f in tweets.schema}
    assert types["tweet_time"].startswith("timestamp[us") and types["is_retweet"] == "bool"
    assert types["hashtags"].startswith("list<") and types["latitude"] == "string"
    unhashed = pq.read_table(layout.parquet_dir("unhashed") / "tweets")
    assert str(unhashed.schema.field("latitude").type) == "double"
    assert tweets.column("tweetid").to_pylist() == [r["tweetid"] for r in _csv_rows(layout, "hashed", "tweets")]
    assert not [p for p in layout.release_dir("hashed").rglob("*") if p.name.startswith((".", "_"))]


def test_rewrite_gives_identical_bytes(run, spark):
    from ioarchive.tables.writers import write_release_tables

    layout = run["layout"]
    folder = layout.release_dir("hashed")

    def digests() -> dict[str, str]:
        return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted(folder.rglob("*")) if p.is_file()}

    before = digests()
    write_release_tables(spark, layout.root, RELEASE, "hashed", csv_part_max_bytes=PART_BYTES)
    assert digests() == before


def test_key_never_in_event_log_logs_argv_or_outputs(run, tmp_path):
    """The pseudonymize job under spark-submit (own JVM), event log on, key from a file."""
    import shutil

    from ioarchive.spark.session import run_job, spark_submit_command

    layout = run["layout"]
    staging = tmp_path / "staging"
    shutil.copytree(layout.root / "work" / "unhashed", staging / "work" / "unhashed")
    events = tmp_path / "events"
    events.mkdir()
    key_file = write_key_file(KEY, tmp_path / "key")
    args = ["--staging", str(staging), "--release-id", RELEASE, "--key-file", str(key_file), "--key-id", KEY_ID,
            "--csv-part-max-bytes", str(PART_BYTES)]
    # Uncompressed: Spark 4 compresses event logs (zstd) by default, which would hide the key.
    conf = {"spark.eventLog.enabled": "true", "spark.eventLog.dir": events.as_uri(), "spark.eventLog.compress": "false",
            "spark.sql.shuffle.partitions": "4", "spark.driver.memory": "1g"}
    cmd = spark_submit_command("pseudonymize", args, master="local[2]", conf=conf)
    proc = run_job("pseudonymize", args, master="local[2]", conf=conf)
    log_files = [p for p in events.rglob("*") if p.is_file()]
    assert log_files, "Spark wrote no event log"
    needles = [KEY, KEY.hex().encode(), __import__("base64").b64encode(KEY)]
    haystacks = {"event log": b"".join(p.read_bytes() for p in log_files),
                 "stdout": proc.stdout.encode(), "stderr": proc.stderr.encode(), "argv": " ".join(cmd).encode()}
    for p in staging.rglob("*"):
        if p.is_file():
            haystacks[str(p)] = p.read_bytes()
    assert b"hmac" in haystacks["event log"].lower()  # the plan is there, the key is not
    for where, data in haystacks.items():
        for needle in needles:
            assert needle not in data, f"key found in {where}"
    # Same job, same inputs, other JVM: byte-identical tables.
    for name in ("parquet/users.parquet", f"{RELEASE}_users_csv_hashed.zip"):
        assert (staging / "release" / "hashed" / name).read_bytes() == (layout.release_dir("hashed") / name).read_bytes()
