"""A small synthetic media release as extraction leaves it, for the media tests.

The campaign's ``media/`` files and ``media.jsonl``, ``work/<variant>/media/`` Parquet written
with pyarrow and a balanced reconciliation, plus bad media of every kind the packer must refuse.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import subprocess
from pathlib import Path

from ioarchive import reconcile
from ioarchive.pseudonymize.pseudonym import pseudonym
from ioarchive.staging import StagingLayout

RELEASE = "testop_202102"
KEY = b"k" * 32
TARGET = 200_000
RAW_IDS = [f"12000000000000000{i:02d}" for i in range(6)]
SMALL = set(RAW_IDS[:4])  # fewer followers than the threshold: pseudonymized in hashed
BAD_REASONS = {
    "3_900001": "size_mismatch",
    "3_900002": "sha256_mismatch",
    "3_900003": "symlink",  # the file is a symlink
    "3_900004": "symlink",  # a folder on the path is a symlink
    "3_900005": "path_escape",  # ../
    "3_900006": "path_escape",  # absolute
    "3_900007": "missing_file",
}


UNZIP = shutil.which("unzip")


def unzip_test(path: Path) -> None:
    """Info-ZIP's ``unzip -t`` (researchers' usual tool) must accept the archive, beside Python's zipfile."""
    assert UNZIP, "unzip is missing: install Debian's unzip (the Dockerfile and `make test` do)"
    out = subprocess.run([UNZIP, "-t", str(path)], capture_output=True, text=True)
    assert out.returncode == 0 and "No errors detected" in out.stdout, out.stdout + out.stderr


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _user_key(userid: str, variant: str) -> str:
    return pseudonym(KEY, userid) if variant == "hashed" and userid in SMALL else userid


def build_release(root: Path, seed: int = 3, big_bytes: int = 300_000) -> tuple[Path, Path]:
    """A campaign folder and a staging folder as extraction leaves them (both variants)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = random.Random(seed)
    campaign, staging = root / "campaign", root / "staging"
    media = campaign / "media"
    rows: list[dict] = []

    def add(media_key, tweetid, userid, kind, rel, data, declared_bytes=None, declared_sha=None):
        if data is not None:
            (media / rel).parent.mkdir(parents=True, exist_ok=True)
            (media / rel).write_bytes(data)
        rows.append(
            {
                "media_key": media_key,
                "tweetid": tweetid,
                "userid": userid,
                "kind": kind,
                "source_path": rel,
                "bytes": declared_bytes if declared_bytes is not None else len(data),
                "sha256": declared_sha or sha(data),
            }
        )

    n = 0
    for u, userid in enumerate(RAW_IDS):
        for _ in range(8):
            n += 1
            kind = rng.choice(["photo", "photo", "video", "animated_gif"])
            ext = {"photo": "jpg", "video": "mp4", "animated_gif": "mp4"}[kind]
            tweetid = str(1_500_000_000_000_000_000 + n)
            add(f"3_{100000 + n}", tweetid, userid, kind, f"posts/{userid}/{n}.{ext}", rng.randbytes(rng.randint(500, 40_000)))
        add(f"3_{200000 + u}", None, userid, "profile_image", f"profiles/{userid}/p.jpg", rng.randbytes(rng.randint(500, 9000)))
        if u % 2 == 0:
            add(f"3_{300000 + u}", None, userid, "profile_banner", f"profiles/{userid}/b.png", rng.randbytes(rng.randint(500, 9000)))
    # one post file larger than the archive target: an archive of its own
    add("7_999999", str(1_600_000_000_000_000_000), RAW_IDS[0], "video", "posts/big.mp4", rng.randbytes(big_bytes))

    # bad media the packer must refuse on its own
    good = rng.randbytes(3000)
    add("3_900001", "1700000000000000001", RAW_IDS[1], "photo", "bad/size.jpg", good + b"x", declared_bytes=3000, declared_sha=sha(good))
    tampered = bytearray(good)
    tampered[100] ^= 0xFF
    add("3_900002", "1700000000000000002", RAW_IDS[1], "photo", "bad/hash.jpg", bytes(tampered), declared_sha=sha(good))
    (media / "bad").mkdir(parents=True, exist_ok=True)
    outside = root / "outside.jpg"
    outside.write_bytes(good)
    os.symlink(outside, media / "bad" / "link.jpg")
    add("3_900003", "1700000000000000003", RAW_IDS[2], "photo", "bad/link.jpg", None, declared_bytes=3000, declared_sha=sha(good))
    (root / "outside_dir").mkdir()
    (root / "outside_dir" / "x.jpg").write_bytes(good)
    os.symlink(root / "outside_dir", media / "bad" / "dirlink")
    add("3_900004", "1700000000000000004", RAW_IDS[2], "photo", "bad/dirlink/x.jpg", None, declared_bytes=3000, declared_sha=sha(good))
    add("3_900005", "1700000000000000005", RAW_IDS[3], "photo", "../outside.jpg", None, declared_bytes=3000, declared_sha=sha(good))
    add("3_900006", "1700000000000000006", RAW_IDS[3], "photo", str(outside), None, declared_bytes=3000, declared_sha=sha(good))
    add("3_900007", "1700000000000000007", RAW_IDS[3], "photo", "bad/gone.jpg", None, declared_bytes=3000, declared_sha=sha(good))

    campaign.mkdir(parents=True, exist_ok=True)
    with open(campaign / "media.jsonl", "w") as fh:
        for r in rows:
            fh.write(json.dumps({"media_key": r["media_key"], "post_id": r["tweetid"], "user_id": r["userid"],
                                 "kind": r["kind"], "path": r["source_path"], "bytes": r["bytes"], "sha256": r["sha256"]}) + "\n")
    schema = pa.schema([("media_key", pa.string()), ("tweetid", pa.string()), ("userid", pa.string()), ("kind", pa.string()),
                        ("source_path", pa.string()), ("bytes", pa.int64()), ("sha256", pa.string())])
    for variant in ("unhashed", "hashed"):
        vrows = [dict(r, userid=_user_key(r["userid"], variant)) for r in rows]
        rng.shuffle(vrows)  # Spark gives no order: the plan must not depend on it
        out = staging / "work" / variant / "media"
        out.mkdir(parents=True)
        half = len(vrows) // 2
        for i, part in enumerate((vrows[:half], vrows[half:])):  # Spark-like part files
            pq.write_table(pa.Table.from_pylist(part, schema=schema), out / f"part-0000{i}.parquet")
        (out / "_SUCCESS").write_text("")
    layout = StagingLayout(staging, RELEASE)
    data = reconcile.empty(RELEASE)
    data["tables"]["media"].update(read=len(rows), released=len(rows))
    reconcile.save(layout, data)
    return campaign, staging
