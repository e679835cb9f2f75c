"""Small published versions of one release, for ``ioarchive diff`` tests (no Spark).

:func:`build_version` writes a staging folder whose ``release/hashed/`` holds real files in the
published layout: CSV zips, typed Parquet (``parquet/users.parquet``, ``parquet/tweets/part-NNNNN.parquet``,
``parquet/media_index.parquet``), stored media zips and ``media/media_index.csv``; then the real
manifest builder (``ioarchive.render.manifest``) writes manifest.json and SHA256SUMS in the
renderer's order (README.md is a one-line stand-in). Every byte is a function of the inputs, so
files whose rows did not change are byte-identical between versions, as in a real N+1.

The fixture campaign: ``ACCOUNTS`` accounts (raw ids, pseudonyms from the real HMAC), each with
``POSTS_PER_ACCOUNT`` posts carrying a large, incompressible ``tweet_text`` (so that reading it
would show), two photos on its first two posts, and a profile image.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

from ioarchive.pseudonymize.pseudonym import pseudonym
from ioarchive.render.manifest import (
    README_NAME,
    add_file,
    build_manifest,
    write_manifest,
    write_sha256sums,
)
from ioarchive.request.campaign import Campaign
from ioarchive.schema import ACCOUNT_COLUMNS, MEDIA_INDEX_COLUMNS, POST_COLUMNS
from ioarchive.staging import StagingLayout

RELEASE_ID = "diffland_202104"
KEY = b"diff-test-key-0123456789abcdef01"
ACCOUNTS = 6
POSTS_PER_ACCOUNT = 5
TEXT_BYTES = 96 * 1024
RAW_IDS = tuple(str(7_000_000_001 + i * 17) for i in range(ACCOUNTS))
PSEUDONYMS = tuple(pseudonym(KEY, raw) for raw in RAW_IDS)
ZIP_DATE = (1980, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class Post:
    tweetid: str
    account: int  # index into RAW_IDS


def base_posts() -> list[Post]:
    return [Post(str(1_100_000_000_000 + a * 1000 + k), a) for a in range(ACCOUNTS) for k in range(POSTS_PER_ACCOUNT)]


def media_rows(variant_accounts: list[int], posts: list[Post]) -> list[dict]:
    """Media index rows: two photos per account (first two posts) and a profile image.

    Tweet media of accounts 0-2 go to tweet archive 001, of accounts 3+ to 002; every profile
    image to profile archive 001.
    """
    rows = []
    for a in variant_accounts:
        user = PSEUDONYMS[a]
        own = [p for p in posts if p.account == a][:2]
        series_no = 1 if a < 3 else 2
        for i, p in enumerate(own):
            key = f"3_{p.tweetid}{i}"
            rows.append({"media_key": key, "tweetid": p.tweetid, "userid": user, "kind": "photo",
                         "archive": f"{RELEASE_ID}_tweet_media_hashed_{series_no:03d}.zip",
                         "path_in_archive": f"{user}/images/{p.tweetid}-{key}.jpg"})
        rows.append({"media_key": f"p_{RAW_IDS[a]}", "tweetid": "", "userid": user, "kind": "profile_image",
                     "archive": f"{RELEASE_ID}_profile_media_hashed_001.zip",
                     "path_in_archive": f"{user}/profile/{user}_profile.jpg"})
    for r in rows:
        r["content"] = hashlib.sha256(r["media_key"].encode()).digest() * 64
        r["bytes"] = len(r["content"])
        r["sha256"] = hashlib.sha256(r["content"]).hexdigest()
    return rows


def _text(tweetid: str) -> str:
    """Incompressible text: hex of a hash chain, TEXT_BYTES long."""
    out, h = [], tweetid.encode()
    for _ in range(-(-TEXT_BYTES // 64)):
        h = hashlib.sha256(h).digest()
        out.append(h.hex())
    return "".join(out)[:TEXT_BYTES]


def _zip(members: list[tuple[str, bytes]], deflate: bool) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members:
            info = zipfile.ZipInfo(name, ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED if deflate else zipfile.ZIP_STORED
            zf.writestr(info, data)
    return buf.getvalue()


def _csv(header: tuple[str, ...], rows: list[list[str]]) -> bytes:
    buf = io.StringIO(newline="")
    w = csv.writer(buf, quoting=csv.QUOTE_ALL, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue().encode("utf-8")


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _write_json(path: Path, data: object) -> None:
    _write(path, (json.dumps(data, indent=1, sort_keys=True) + "\n").encode())


def make_campaign(root: Path) -> Campaign:
    folder = root / "campaign"
    _write_json(folder / "campaign.json", {
        "campaign_id": "c-diff", "title": "Diffland (April 2021)", "country": "Diffland",
        "attribution": "Attributed to a state-linked actor in Diffland.", "disclosure_month": "2021-04",
        "investigation_ids": ["inv-9"], "account_ids": list(RAW_IDS),
    })
    return Campaign.load(folder)


def build_version(
    root: Path,
    campaign: Campaign,
    version: int,
    *,
    drop_accounts: tuple[int, ...] = (),
    extra_posts: tuple[Post, ...] = (),
    tweets_csv_parts: int = 1,
) -> StagingLayout:
    """Staging folder ``root/<id>/v<version>`` with a rendered, self-consistent ``release/hashed/``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    layout = StagingLayout.for_version(root, RELEASE_ID, version)
    variant = "hashed"
    rel = layout.release_dir(variant)
    accounts = [a for a in range(ACCOUNTS) if a not in drop_accounts]
    posts = [p for p in base_posts() if p.account in accounts] + list(extra_posts)
    posts.sort(key=lambda p: (p.account >= 3, int(p.tweetid)))  # part 0: accounts 0-2, part 1: 3+

    def account_row(a: int) -> dict:
        return {"userid": PSEUDONYMS[a], "user_display_name": PSEUDONYMS[a], "user_screen_name": PSEUDONYMS[a],
                "user_reported_location": "Diffland", "user_profile_description": f"account {a}",
                "user_profile_url": "", "follower_count": 10 + a, "following_count": 5,
                "account_creation_date": "2019-01-01", "account_language": "en"}

    def post_row(p: Post) -> dict:
        row = {"tweetid": p.tweetid, **account_row(p.account)}
        row.update({c: "" for c in POST_COLUMNS if c not in row})
        row.update({"tweet_language": "en", "tweet_text": _text(p.tweetid), "tweet_time": "2021-01-01 00:00",
                    "is_retweet": "false", "latitude": "absent", "longitude": "absent",
                    "quote_count": 0, "reply_count": 0, "like_count": 0, "retweet_count": 0,
                    "hashtags": "[]", "urls": "[]", "user_mentions": "[]", "poll_choices": "[]"})
        return row

    users = [account_row(a) for a in accounts]
    tweet_rows = [post_row(p) for p in posts]
    pq.write_table(pa.Table.from_pylist(users), _mk(rel / "parquet" / "users.parquet"), compression="snappy")
    parts = [[r for r, p in zip(tweet_rows, posts, strict=True) if (p.account >= 3) == bool(i)] for i in (0, 1)]
    for i, part in enumerate(parts):
        pq.write_table(pa.Table.from_pylist(part), _mk(rel / "parquet" / "tweets" / f"part-{i:05d}.parquet"),
                       compression="snappy")

    users_csv = _csv(ACCOUNT_COLUMNS, [[str(u[c]) for c in ACCOUNT_COLUMNS] for u in users])
    _write(layout.users_csv_zip(variant), _zip([(layout.users_csv_zip(variant).stem + ".csv", users_csv)], True))
    files: dict[str, dict] = {layout.users_csv_zip(variant).name: {"rows": len(users)},
                              "parquet/users.parquet": {"rows": len(users)},
                              "parquet/tweets": {"rows": len(tweet_rows)}}
    chunks = [tweet_rows[i::tweets_csv_parts] for i in range(tweets_csv_parts)]
    for i, chunk in enumerate(chunks, start=1):
        path = layout.tweets_csv_zip(variant, None if tweets_csv_parts == 1 else i)
        data = _csv(POST_COLUMNS, [[str(r[c]) for c in POST_COLUMNS] for r in chunk])
        _write(path, _zip([(path.stem + ".csv", data)], True))
        files[path.name] = {"rows": len(chunk)}
    _write_json(layout.work_files(variant), {
        "files": files,
        "counts": {"accounts": len(users), "accounts_that_posted": len({p.account for p in posts}),
                   "posts": len(tweet_rows)},
    })

    media = media_rows(accounts, posts)
    media.sort(key=lambda r: (r["archive"], r["path_in_archive"]))
    archives = sorted({r["archive"] for r in media})
    for name in archives:
        _write(layout.media_dir(variant) / name,
               _zip([(r["path_in_archive"], r["content"]) for r in media if r["archive"] == name], False))
    index = [{c: r[c] for c in MEDIA_INDEX_COLUMNS} for r in media]
    _write(layout.media_index_csv(variant), _csv(MEDIA_INDEX_COLUMNS, [[str(r[c]) for c in MEDIA_INDEX_COLUMNS]
                                                                       for r in index]))
    schema = pa.schema([(c, pa.int64() if c == "bytes" else pa.string()) for c in MEDIA_INDEX_COLUMNS])
    pq.write_table(pa.Table.from_pylist(index, schema=schema), _mk(rel / "parquet" / "media_index.parquet"),
                   compression="zstd")
    _write_json(layout.media_files_json(variant), {
        "files": {**{f"media/{n}": {"rows": sum(r["archive"] == n for r in media)} for n in archives},
                  "media/media_index.csv": {"rows": len(media)},
                  "parquet/media_index.parquet": {"rows": len(media)}},
        "counts": {"media_files": len(media), "archives": len(archives),
                   "tweet_archives": sum("_tweet_media_" in n for n in archives),
                   "profile_archives": sum("_profile_media_" in n for n in archives)},
    })
    _write_json(layout.work_files("hashed").with_name("pseudonymization.json"),
                {"key_id": "diff-key-2021", "threshold": 5000, "pseudonymized_accounts": len(users)})
    _write_json(layout.reconciliation, {"release_id": RELEASE_ID, "balanced": True, "tables": {
        "accounts": {"read": ACCOUNTS, "released": len(users), "excluded": {"retracted": ACCOUNTS - len(users)}},
        "posts": {"read": len(tweet_rows), "released": len(tweet_rows)},
    }})
    for v in ("hashed", "unhashed"):
        _write_json(layout.validation_summary(v), {"success": True, "suites": {}})

    changelog = [{"version": 1, "date": "2021-04", "text": "Initial release."}]
    changelog += [{"version": n, "date": "2021-05", "text": f"Version {n}."} for n in range(2, version + 1)]
    manifest = build_manifest(layout, campaign, variant, version=version, changelog=changelog,
                              generated_at="2021-05-01T00:00:00+00:00")
    _write(layout.readme(variant), f"# {campaign.title} v{version} ({variant})\n".encode())
    add_file(manifest, rel, README_NAME)
    write_sha256sums(manifest, rel)
    add_file(manifest, rel, "SHA256SUMS")
    write_manifest(manifest, rel)
    return layout


def _mk(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path
