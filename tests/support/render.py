"""Hand-built staging folders for the render and manifest tests (no Spark: small known files).

Follows docs/contracts-for-helpers.md: ``work/<variant>/files.json``, ``media_files.json``,
``work/hashed/pseudonymization.json``, ``reconciliation.json``, ``signoffs.json``.
"""

from __future__ import annotations

import json
from pathlib import Path

from ioarchive.staging import StagingLayout

RELEASE_ID = "testland_202103"
RAW_IDS = ("1357924680", "2468013579", "9988776655")
"""Raw account ids of the fixture campaign; all three are pseudonymized in the hashed variant."""
RAW_NAMES = ("Raw Display Name", "raw_screen_name")
PSEUDONYMS = ("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb")


def write_json(path: Path, data: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1), encoding="utf-8")


def make_campaign(root: Path, title: str = "Testland (March 2021)", attribution: str | None = None,
                  country: str = "Testland") -> Path:
    campaign = root / "campaign"
    write_json(campaign / "campaign.json", {
        "campaign_id": "c-1",
        "title": title,
        "country": country,
        "attribution": attribution if attribution is not None else
        "Attributed to a state-linked actor in Testland by the integrity team.",
        "disclosure_month": "2021-03",
        "investigation_ids": ["inv-1"],
        "account_ids": list(RAW_IDS),
    })
    return campaign


def _file(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def make_staging(root: Path, *, signoffs: bool = True) -> StagingLayout:
    """Both variants with small files of known content; returns the layout."""
    layout = StagingLayout(root / "staging", RELEASE_ID)
    for variant in ("hashed", "unhashed"):
        ident = PSEUDONYMS[0] if variant == "hashed" else RAW_IDS[0]
        name = PSEUDONYMS[0] if variant == "hashed" else RAW_NAMES[0]
        rel = layout.release_dir(variant)
        _file(layout.users_csv_zip(variant), f"users-zip {variant} {ident} {name}\n".encode() * 40)
        _file(layout.tweets_csv_zip(variant, 1), f"tweets-zip part1 {variant} {ident}\n".encode() * 300)
        _file(layout.tweets_csv_zip(variant, 2), f"tweets-zip part2 {variant} {ident}\n".encode() * 100)
        _file(rel / "parquet" / "users.parquet", f"PAR1 users {variant} {ident}".encode())
        _file(rel / "parquet" / "tweets" / "part-00000.parquet", f"PAR1 tweets0 {variant}".encode())
        _file(rel / "parquet" / "tweets" / "part-00001.parquet", f"PAR1 tweets1 {variant}".encode())
        _file(rel / "parquet" / "tweets" / "_SUCCESS", b"")
        _file(rel / "parquet" / "tweets" / ".part-00000.parquet.crc", b"crc")
        _file(rel / "parquet" / "media_index.parquet", f"PAR1 media index {variant}".encode())
        _file(layout.media_dir(variant) / layout.media_archive_name("tweet", variant, 1), b"PK tweet1" * 500)
        _file(layout.media_dir(variant) / layout.media_archive_name("tweet", variant, 2), b"PK tweet2" * 200)
        _file(layout.media_dir(variant) / layout.media_archive_name("profile", variant, 1), b"PK prof1" * 50)
        _file(layout.media_index_csv(variant), f'"media_key","userid"\n"3_1","{ident}"\n'.encode())
        write_json(layout.work_files(variant), {
            "files": {
                layout.users_csv_zip(variant).name: {"rows": 3},
                layout.tweets_csv_zip(variant, 1).name: {"rows": 30},
                layout.tweets_csv_zip(variant, 2).name: {"rows": 12},
                "parquet/users.parquet": {"rows": 3},
                "parquet/tweets": {"rows": 42},
            },
            "counts": {"accounts": 3, "accounts_that_posted": 2, "posts": 42},
        })
        write_json(layout.work_files(variant).with_name("media_files.json"), {
            "files": {"media/media_index.csv": {"rows": 7}, "parquet/media_index.parquet": {"rows": 7}},
            "counts": {"media_files": 7, "archives": 3, "tweet_archives": 2, "profile_archives": 1},
        })
    write_json(layout.work_files("hashed").with_name("pseudonymization.json"),
               {"key_id": "test-key-2021", "threshold": 5000, "pseudonymized_accounts": 3})
    write_json(layout.reconciliation, {
        "release_id": RELEASE_ID,
        "tables": {
            "accounts": {"read": 4, "released": 3, "excluded": {}, "quarantined": {"invalid_json": 1}},
            "posts": {"read": 50, "released": 42, "excluded": {"deleted": 3, "not_campaign_account": 2},
                      "quarantined": {"duplicate_id": 1, "unparseable_timestamp": 2}},
            "media": {"read": 10, "released": 7, "excluded": {"deleted": 1, "post_not_released": 1},
                      "quarantined": {"sha256_mismatch": 1}},
        },
        "balanced": True,
    })
    if signoffs:
        write_json(layout.signoffs, [
            {"gate": "publication", "decision": "approved", "by": "reviewer-b", "at": "2021-03-02T10:00:00+00:00",
             "comment": "ok"},
            {"gate": "attribution", "decision": "approved", "by": "reviewer-a", "at": "2021-03-01T09:00:00+00:00",
             "comment": "<b>looks right</b>"},
        ])
    return layout
