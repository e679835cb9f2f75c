"""Media archives end to end on a small synthetic release: plan, pack, quarantine, index, reruns.

The fixture builds what extraction would leave behind (``work/<variant>/media/`` Parquet with
pyarrow, the campaign's ``media/`` files and ``media.jsonl``, a balanced reconciliation) plus
bad media of every kind the packer must refuse on its own.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
from ioarchive import reconcile
from ioarchive.devtools import drills
from ioarchive.media import stream as media_stream
from ioarchive.media.stage import finalize_media, list_archives, pack_archive, pack_media, plan_media
from ioarchive.pseudonymize.pseudonym import pseudonym
from ioarchive.schema import MEDIA_INDEX_COLUMNS
from ioarchive.staging import StagingLayout
from support.media import BAD_REASONS, KEY, RAW_IDS, RELEASE, SMALL, TARGET, build_release, sha, unzip_test


def zip_members(path: Path) -> dict[str, tuple[int, str]]:
    with zipfile.ZipFile(path) as zf:
        return {i.filename: (i.file_size, sha(zf.read(i))) for i in zf.infolist()}


def archive_digests(staging: Path, variant: str) -> dict[str, str]:
    media_dir = StagingLayout(staging, RELEASE).media_dir(variant)
    return {p.name: sha(p.read_bytes()) for p in sorted(media_dir.iterdir())}


@pytest.fixture(scope="module")
def packed(tmp_path_factory):
    """One release, both variants packed with one worker."""
    root = tmp_path_factory.mktemp("media")
    campaign, staging = build_release(root)
    summaries = {v: pack_media(campaign, staging, RELEASE, v, target_bytes=TARGET, workers=1) for v in ("hashed", "unhashed")}
    return root, campaign, staging, summaries


def read_index(staging: Path, variant: str) -> list[dict]:
    with open(StagingLayout(staging, RELEASE).media_index_csv(variant), newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


@pytest.mark.parametrize("variant", ["hashed", "unhashed"])
def test_archives_within_target_valid_and_equal_to_index(packed, variant):
    _, _, staging, summaries = packed
    layout = StagingLayout(staging, RELEASE)
    plan = json.loads(layout.media_plan.read_text())["variants"][variant]
    names = list_archives(staging, RELEASE, variant)
    assert names == [a["name"] for a in plan["archives"]]
    tweet = [n for n in names if "_tweet_media_" in n]
    profile = [n for n in names if "_profile_media_" in n]
    assert tweet[0] == f"{RELEASE}_tweet_media_{variant}_001.zip" and profile == [f"{RELEASE}_profile_media_{variant}_001.zip"]
    assert tweet == [f"{RELEASE}_tweet_media_{variant}_{i:03d}.zip" for i in range(1, len(tweet) + 1)]
    assert len(tweet) >= 4  # ~1 MB of post media into 200 kB archives

    index = read_index(staging, variant)
    assert list(index[0].keys()) == list(MEDIA_INDEX_COLUMNS)
    by_archive: dict[str, dict[str, tuple[int, str]]] = {}
    for row in index:
        by_archive.setdefault(row["archive"], {})[row["path_in_archive"]] = (int(row["bytes"]), row["sha256"])
    media_dir = layout.media_dir(variant)
    assert sorted(p.name for p in media_dir.iterdir()) == sorted([*names, "media_index.csv"])
    oversized = 0
    for name in names:
        path = media_dir / name
        size = path.stat().st_size
        members = zip_members(path)
        assert members == by_archive[name]  # names, sizes and sha256 of every member
        if size > TARGET:
            assert len(members) == 1 and next(iter(members.values()))[0] > TARGET
            oversized += 1
        subprocess.run([sys.executable, "-m", "zipfile", "-t", str(path)], check=True, capture_output=True)
        unzip_test(path)
        planned = next(a for a in plan["archives"] if a["name"] == name)
        if planned["files"] == len(members):
            assert planned["planned_bytes"] == size  # the planner's overhead accounting is exact
        else:
            assert size < planned["planned_bytes"]
    assert oversized == 1
    assert set(by_archive) == set(names)

    # series and path shapes researchers' tools parse
    for row in index:
        p = row["path_in_archive"]
        if row["archive"] in tweet:
            folder = {"photo": "images", "video": "videos", "animated_gif": "videos"}[row["kind"]]
            assert p == f"{row['userid']}/{folder}/{row['tweetid']}-{row['media_key']}.{p.rsplit('.', 1)[1]}"
            assert p.split("/")[2].split("-")[0] == row["tweetid"]
        else:
            assert row["tweetid"] == "" and row["kind"] in ("profile_image", "profile_banner")
            suffix = "profile" if row["kind"] == "profile_image" else "banner"
            assert re.fullmatch(rf"{re.escape(row['userid'])}/profile/{re.escape(row['userid'])}_{suffix}\.(jpg|png)", p)
            assert p.split("/")[2].rsplit("_", 1)[0] == row["userid"]

    # Parquet index equals the CSV; media_files.json matches
    import pyarrow.parquet as pq

    table = pq.read_table(layout.parquet_dir(variant) / "media_index.parquet")
    assert table.column_names == list(MEDIA_INDEX_COLUMNS)
    assert [{k: ("" if v is None else str(v)) for k, v in r.items()} for r in table.to_pylist()] == index
    summary = json.loads((staging / "work" / variant / "media_files.json").read_text())
    assert summary == summaries[variant]
    assert summary["counts"] == {"media_files": len(index), "archives": len(names),
                                 "tweet_archives": len(tweet), "profile_archives": 1}
    assert summary["files"]["media/media_index.csv"] == {"rows": len(index)}
    assert all(summary["files"][f"media/{n}"]["rows"] == len(by_archive[n]) for n in names)
    csv_text = layout.media_index_csv(variant).read_bytes()
    assert csv_text.startswith(b'"media_key","tweetid","userid"') and b'"\n"3_' in csv_text and b"\r" not in csv_text


def test_hashed_archives_hold_no_raw_identifier(packed):
    _, _, staging, _ = packed
    layout = StagingLayout(staging, RELEASE)
    hashed_blobs = [p.read_bytes() for p in sorted(layout.media_dir("hashed").iterdir())]
    hashed_blobs.append((layout.parquet_dir("hashed") / "media_index.parquet").read_bytes())
    for raw in SMALL:
        assert not any(raw.encode() in blob for blob in hashed_blobs), raw
        assert any(pseudonym(KEY, raw).encode() in blob for blob in hashed_blobs)
    # accounts above the threshold keep their ids; the unhashed variant has every raw id
    unhashed_csv = layout.media_index_csv("unhashed").read_bytes()
    assert all(raw.encode() in unhashed_csv for raw in RAW_IDS)
    assert RAW_IDS[5].encode() in layout.media_index_csv("hashed").read_bytes()


def test_bad_media_quarantined_once_and_never_packed(packed):
    _, _, staging, _ = packed
    layout = StagingLayout(staging, RELEASE)
    records = [json.loads(line) for line in layout.quarantine_media.read_text().splitlines()]
    assert {r["media_key"]: r["reason"] for r in records} == BAD_REASONS  # once, though both variants met them
    media_lines = (staging.parent / "campaign" / "media.jsonl").read_text().splitlines()
    for r in records:
        assert r["source_file"] == "media.jsonl" and media_lines[r["line"] - 1] == r["record"]
    books = reconcile.load(layout)
    media = books["tables"]["media"]
    assert media["quarantined"] == {"size_mismatch": 1, "sha256_mismatch": 1, "symlink": 2, "path_escape": 2, "missing_file": 1}
    assert media["released"] == media["read"] - 7 and books["balanced"]
    for variant in ("hashed", "unhashed"):
        index = read_index(staging, variant)
        assert not {row["media_key"] for row in index} & set(BAD_REASONS)
        assert len(index) == media["released"]
        for p in layout.media_dir(variant).glob("*.zip"):
            assert not any("-3_9000" in n for n in zipfile.ZipFile(p).namelist())


def test_rerun_reuses_and_other_worker_count_gives_same_bytes(packed, tmp_path):
    root, campaign, staging, summaries = packed
    before = {v: archive_digests(staging, v) for v in ("hashed", "unhashed")}
    books_before = reconcile.load(StagingLayout(staging, RELEASE))
    # rerun in place: everything reused, nothing re-quarantined
    assert pack_media(campaign, staging, RELEASE, "hashed", target_bytes=TARGET) == summaries["hashed"]
    assert archive_digests(staging, "hashed") == before["hashed"]
    assert reconcile.load(StagingLayout(staging, RELEASE)) == books_before
    # a fresh staging folder, two workers, through the CLI: byte-identical archives and index
    from ioarchive.cli.main import main

    fresh = tmp_path / "staging2"
    shutil.copytree(staging / "work", fresh / "work", ignore=shutil.ignore_patterns("media_plan*", "media_archives*", "media_files.json"))
    shutil.copy(staging / "reconciliation.json", fresh / "reconciliation.json")
    data = reconcile.load(StagingLayout(fresh, RELEASE))
    data["tables"]["media"].update(released=data["tables"]["media"]["read"], quarantined={})
    reconcile.save(StagingLayout(fresh, RELEASE), data)
    rc = main(["pack-media", "--campaign", str(campaign), "--staging", str(fresh), "--release-id", RELEASE,
               "--target-bytes", str(TARGET), "--workers", "2"])
    assert rc == 0
    for v in ("hashed", "unhashed"):
        assert archive_digests(fresh, v) == before[v]
    assert (fresh / "work" / "media_plan.json").read_bytes() == (staging / "work" / "media_plan.json").read_bytes()
    assert reconcile.load(StagingLayout(fresh, RELEASE))["tables"] == books_before["tables"]


def test_corrupted_archive_is_repacked_on_rerun(packed):
    _, campaign, staging, _ = packed
    layout = StagingLayout(staging, RELEASE)
    name = list_archives(staging, RELEASE, "unhashed")[1]
    path = layout.media_dir("unhashed") / name
    good = path.read_bytes()
    corrupted = bytearray(good)
    corrupted[len(good) // 2] ^= 0x01  # same size, different bytes
    path.write_bytes(bytes(corrupted))
    result = pack_archive(campaign, staging, RELEASE, "unhashed", name)
    assert not result.reused and path.read_bytes() == good
    assert pack_archive(campaign, staging, RELEASE, "unhashed", name).reused


def test_zip64_forced_by_low_limit(tmp_path):
    campaign, staging = build_release(tmp_path, seed=5, big_bytes=20_000)
    pack_media(campaign, staging, RELEASE, "unhashed", target_bytes=TARGET, zip64_limit=10_000)
    layout = StagingLayout(staging, RELEASE)
    index = read_index(staging, "unhashed")
    seen_zip64_offsets = 0
    for name in list_archives(staging, RELEASE, "unhashed"):
        path = layout.media_dir("unhashed") / name
        raw = path.read_bytes()
        assert b"PK\x06\x06" in raw and b"PK\x06\x07" in raw  # ZIP64 end records
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                row = next(r for r in index if r["path_in_archive"] == info.filename and r["archive"] == name)
                assert (info.file_size, sha(zf.read(info))) == (int(row["bytes"]), row["sha256"])
                seen_zip64_offsets += info.header_offset > 10_000
        unzip_test(path)
        subprocess.run([sys.executable, "-m", "zipfile", "-t", str(path)], check=True, capture_output=True)
    assert seen_zip64_offsets > 0


def test_killed_packer_leaves_no_finished_looking_file(tmp_path):
    big = 24 * 1024 * 1024
    ref_campaign, ref_staging = build_release(tmp_path / "ref", seed=9, big_bytes=big)
    campaign, staging = build_release(tmp_path / "run", seed=9, big_bytes=big)
    for st in (ref_staging, staging):
        plan_media(st, RELEASE, "unhashed", target_bytes=TARGET)
    names = list_archives(staging, RELEASE, "unhashed")
    layout = StagingLayout(staging, RELEASE)
    plan = json.loads(layout.media_plan.read_text())["variants"]["unhashed"]
    name = next(a["name"] for a in plan["archives"] if a["payload_bytes"] == big)
    assert name in names
    expected = pack_archive(ref_campaign, ref_staging, RELEASE, "unhashed", name)

    code = ("import sys; from ioarchive.media.stage import pack_archive; "
            "pack_archive(sys.argv[1], sys.argv[2], sys.argv[3], 'unhashed', sys.argv[4])")
    drill = tmp_path / "drill"  # the fault drill's hold point: after the big file's first chunk
    drill.mkdir()
    (drill / f"{drills.PACK_MEDIA}.hold").write_text("")
    env = dict(os.environ, **{drills.DRILL_DIR_ENV: str(drill)})
    proc = subprocess.Popen([sys.executable, "-c", code, str(campaign), str(staging), RELEASE, name], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    media_dir = layout.media_dir("unhashed")
    partial = media_dir / f".{name}.{proc.pid}.partial"
    reached = drill / f"{drills.PACK_MEDIA}.reached"
    deadline = time.monotonic() + 60
    while not (reached.exists() and reached.read_text().endswith("}")):
        assert proc.poll() is None and time.monotonic() < deadline, "packer did not reach the hold point"
        time.sleep(0.05)
    assert json.loads(reached.read_text())["pid"] == proc.pid
    assert media_stream.CHUNK_BYTES < partial.stat().st_size < big  # mid-member: header and some of the data
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (media_dir / name).exists()
    assert not (staging / "work" / "unhashed" / "media_archives" / f"{name}.json").exists()
    assert [p.name for p in media_dir.iterdir()] == [partial.name]  # only a hidden, clearly partial file
    with pytest.raises(zipfile.BadZipFile):
        zipfile.ZipFile(partial)

    result = pack_archive(campaign, staging, RELEASE, "unhashed", name)
    assert not result.reused and (result.sha256, result.bytes) == (expected.sha256, expected.bytes)
    assert sha((media_dir / name).read_bytes()) == expected.sha256
    assert [p.name for p in media_dir.iterdir()] == [name]  # the stale partial was cleaned up


def test_index_refuses_unpacked_archives(tmp_path):
    from ioarchive.media.stage import MediaPlanError

    campaign, staging = build_release(tmp_path, seed=1, big_bytes=1000)
    plan_media(staging, RELEASE, "hashed", target_bytes=TARGET)
    with pytest.raises(MediaPlanError, match="not packed"):
        finalize_media(staging, RELEASE, "hashed")
