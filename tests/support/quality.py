"""A small clean release (both variants) that follows the staging contract, for the GX gate tests.

Built from in-test rows with Spark: Parquet tables with real types, CSV zips in the published
format, reconciliation.json and a campaign deletions.jsonl. Pseudonyms come from the reference
``ioarchive.pseudonymize.pseudonym.pseudonym``; display names and screen names are distinctive (as the
generator makes them) so the leak check has no false positives.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import zipfile
from pathlib import Path

from ioarchive.pseudonymize.pseudonym import pseudonym
from ioarchive.schema import ACCOUNT_COLUMNS, LIST_COLUMNS, MEDIA_INDEX_COLUMNS, POST_COLUMNS
from ioarchive.staging import StagingLayout

RELEASE_ID = "qualitytest_202102"
THRESHOLD = 5000
KEY = b"k" * 32
DELETED_POST = "1500000000000000999"
DELETED_MEDIA = "3_1500000000000000999"

ACCOUNT_SCHEMA = (
    "userid string, user_display_name string, user_screen_name string, user_reported_location string, "
    "user_profile_description string, user_profile_url string, follower_count long, following_count long, "
    "account_creation_date date, account_language string"
)
POST_TAIL = (
    "tweet_language string, tweet_text string, tweet_time timestamp, tweet_client_name string, "
    "in_reply_to_tweetid string, in_reply_to_userid string, quoted_tweet_tweetid string, is_retweet boolean, "
    "retweet_userid string, retweet_tweetid string, latitude {geo}, longitude {geo}, quote_count long, "
    "reply_count long, like_count long, retweet_count long, hashtags array<string>, urls array<string>, "
    "user_mentions array<string>, poll_choices array<string>"
)
MEDIA_SCHEMA = (
    "media_key string, tweetid string, userid string, kind string, bytes long, sha256 string, "
    "archive string, path_in_archive string"
)


POSTING_ACCOUNTS = 6
"""The first accounts post; the others (public, never posted, no media) exist so that a test
can corrupt an account's key without orphaning posts or media (campaigns list such accounts)."""


def raw_accounts() -> list[dict]:
    """Four pseudonymized accounts (below the threshold), two public ones, six silent public ones."""
    rows = []
    for i, followers in enumerate([12, 340, 4999, 0, 5000, 120000, *(7000 + i for i in range(6))]):
        rows.append(
            {
                "userid": str(1000000000000000001 + i),
                "user_display_name": f"Zorblat Quinnary{i}",
                "user_screen_name": f"qzx_vortan{i}",
                "user_reported_location": "Tehran, Iran",
                "user_profile_description": "News, views & \"quotes\"\nsecond line",
                "user_profile_url": f"https://example.org/u{i}",
                "follower_count": followers,
                "following_count": 10 * i,
                "account_creation_date": dt.date(2015, 1, 1 + i),
                "account_language": "fa",
            }
        )
    return rows


def raw_posts(accounts: list[dict]) -> list[dict]:
    rows = []
    posting = accounts[:POSTING_ACCOUNTS]
    for n in range(24):
        author = posting[n % len(posting)]
        other = posting[(n + 1) % len(posting)]
        retweet = n % 5 == 4
        rows.append(
            {
                "tweetid": str(1500000000000000000 + n),
                **{c: author[c] for c in ACCOUNT_COLUMNS},
                "tweet_language": "en",
                "tweet_text": f"post {n} about #topic{n % 3} with @{other['user_screen_name']} 🌍\nline two",
                "tweet_time": dt.datetime(2020, 5, 1, 12, n, 30),
                "tweet_client_name": "Twitter Web App",
                "in_reply_to_tweetid": str(1500000000000000000 + n - 1) if n % 4 == 1 else None,
                "in_reply_to_userid": other["userid"] if n % 4 == 1 else None,
                "quoted_tweet_tweetid": None,
                "is_retweet": retweet,
                "retweet_userid": other["userid"] if retweet else None,
                "retweet_tweetid": str(1400000000000000000 + n) if retweet else None,
                "latitude": 35.7 if n % 6 == 0 else None,
                "longitude": 51.4 if n % 6 == 0 else None,
                "quote_count": n,
                "reply_count": 0,
                "like_count": 2 * n,
                "retweet_count": 1,
                "hashtags": [f"topic{n % 3}"],
                "urls": [] if n % 2 else ["https://example.com/a?b=1"],
                "user_mentions": [other["userid"]],
                "poll_choices": [],
            }
        )
    return rows


def pseudonymize(accounts: list[dict], posts: list[dict]) -> tuple[list[dict], list[dict]]:
    """The hashed variant as RELEASE_SPEC section 4 defines it."""
    hidden = {a["userid"]: a for a in accounts if a["follower_count"] < THRESHOLD}
    pseudo = {u: pseudonym(KEY, u) for u in hidden}
    screen = {a["user_screen_name"]: pseudo[u] for u, a in hidden.items()}

    def account(a: dict) -> dict:
        a = dict(a)
        if a["userid"] in pseudo:
            p = pseudo[a["userid"]]
            a.update(userid=p, user_display_name=p, user_screen_name=p)
        return a

    hashed_posts = []
    for p in posts:
        h = dict(p)
        h.update({c: account(p)[c] for c in ACCOUNT_COLUMNS})
        for c in ("in_reply_to_userid", "retweet_userid"):
            h[c] = pseudo.get(p[c], p[c])
        h["user_mentions"] = [pseudo.get(u, u) for u in p["user_mentions"]]
        for name, value in screen.items():
            h["tweet_text"] = h["tweet_text"].replace(f"@{name}", f"@{value}")
        h["latitude"] = "present" if p["latitude"] is not None else "absent"
        h["longitude"] = "present" if p["longitude"] is not None else "absent"
        hashed_posts.append(h)
    return [account(a) for a in accounts], hashed_posts


def media_rows(accounts: list[dict], posts: list[dict], variant: str) -> list[dict]:
    """Photos of the first four posts; a profile image and a banner per posting account.

    Keys do not depend on the variant (``3_<tweetid>``, ``7_<account index>_profile|banner``).
    """
    rows = []
    for p in posts[:4]:
        rows.append(
            {
                "media_key": f"3_{p['tweetid']}",
                "tweetid": p["tweetid"],
                "userid": p["userid"],
                "kind": "photo",
                "bytes": 1000,
                "sha256": "ab" * 32,
                "archive": f"{RELEASE_ID}_tweet_media_{variant}_001.zip",
                "path_in_archive": f"{p['userid']}/images/{p['tweetid']}-3_{p['tweetid']}.jpg",
            }
        )
    for i, a in enumerate(accounts[:POSTING_ACCOUNTS]):
        for kind in ("profile", "banner"):
            rows.append(
                {
                    "media_key": f"7_{i}_{kind}",
                    "tweetid": None,
                    "userid": a["userid"],
                    "kind": f"profile_{'image' if kind == 'profile' else kind}",
                    "bytes": 50,
                    "sha256": "cd" * 32,
                    "archive": f"{RELEASE_ID}_profile_media_{variant}_001.zip",
                    "path_in_archive": f"{a['userid']}/profile/{a['userid']}_{kind}.jpg",
                }
            )
    return rows


def csv_value(column: str, value) -> str:
    """The published CSV formatting (RELEASE_SPEC section 3)."""
    if value is None:
        return ""
    if column in LIST_COLUMNS:
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def write_csv_zip(path: Path, columns: tuple[str, ...], rows: list[dict]) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf, quoting=csv.QUOTE_ALL, lineterminator="\n")
    writer.writerow(columns)
    for r in rows:
        writer.writerow([csv_value(c, r[c]) for c in columns])
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(path.stem + ".csv", buf.getvalue().encode("utf-8"))


def build_clean_release(spark, staging: Path, campaign: Path) -> StagingLayout:
    """Write a clean release of both variants to ``staging``; deletions to ``campaign``."""
    layout = StagingLayout(staging, RELEASE_ID)
    accounts = raw_accounts()
    posts = raw_posts(accounts)
    hashed_accounts, hashed_posts = pseudonymize(accounts, posts)
    for variant, acc, pst, geo in (
        ("unhashed", accounts, posts, "double"),
        ("hashed", hashed_accounts, hashed_posts, "string"),
    ):
        pq = layout.parquet_dir(variant)
        post_schema = "tweetid string, " + ACCOUNT_SCHEMA + ", " + POST_TAIL.format(geo=geo)
        spark.createDataFrame([tuple(a[c] for c in ACCOUNT_COLUMNS) for a in acc], ACCOUNT_SCHEMA).coalesce(
            1
        ).write.parquet(str(pq / "users.parquet"))
        spark.createDataFrame([tuple(p[c] for c in POST_COLUMNS) for p in pst], post_schema).coalesce(
            1
        ).write.parquet(str(pq / "tweets"))
        media = media_rows(acc, pst, variant)
        spark.createDataFrame([tuple(m[c] for c in MEDIA_INDEX_COLUMNS) for m in media], MEDIA_SCHEMA).coalesce(
            1
        ).write.parquet(str(pq / "media_index.parquet"))
        write_csv_zip(layout.users_csv_zip(variant), ACCOUNT_COLUMNS, acc)
        write_csv_zip(layout.tweets_csv_zip(variant), POST_COLUMNS, pst)
    layout.reconciliation.write_text(
        json.dumps(
            {
                "release_id": RELEASE_ID,
                "tables": {
                    "accounts": {"read": len(accounts) + 1, "released": len(accounts), "excluded": {},
                                 "quarantined": {"invalid_json": 1}},
                    "posts": {"read": len(posts) + 2, "released": len(posts),
                              "excluded": {"deleted": 1, "not_campaign_account": 1}, "quarantined": {}},
                    "media": {"read": len(media) + 1, "released": len(media), "excluded": {"deleted": 1},
                              "quarantined": {}},
                },
                "balanced": True,
            }
        )
    )
    campaign.mkdir(parents=True, exist_ok=True)
    (campaign / "deletions.jsonl").write_text(
        json.dumps({"kind": "post", "id": DELETED_POST, "deleted_at": "2020-06-01"})
        + "\n"
        + json.dumps({"kind": "media", "id": DELETED_MEDIA, "deleted_at": "2020-06-01"})
        + "\n"
    )
    return layout
