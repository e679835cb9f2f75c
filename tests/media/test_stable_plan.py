"""Stable media plan (RELEASE_SPEC 8): removing one account's media changes only its archives.

Version 1 is packed from the synthetic media release; version 2 is the same release without
one account's media, planned from v1's plan. Every v2 archive that holds none of the removed
files has v1's bytes (SHA-256), every removed file is gone, nothing else is; a fresh greedy
plan of the same v2 (the old behaviour) would have changed archives that never held them.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from ioarchive.media.stage import pack_media
from ioarchive.staging import StagingLayout
from support.media import RAW_IDS, RELEASE, TARGET, build_release, sha

VARIANT = "unhashed"
REMOVED = RAW_IDS[1]


def members(staging: Path) -> dict[str, tuple[str, frozenset[str]]]:
    """Archive name -> (SHA-256, member paths)."""
    media_dir = StagingLayout(staging, RELEASE).media_dir(VARIANT)
    out = {}
    for path in sorted(media_dir.glob("*.zip")):
        with zipfile.ZipFile(path) as zf:
            out[path.name] = (sha(path.read_bytes()), frozenset(zf.namelist()))
    return out


def without_account(root: Path) -> tuple[Path, Path]:
    campaign, staging = build_release(root)
    table = StagingLayout(staging, RELEASE).work_table(VARIANT, "media")
    rows = pq.read_table(table)
    kept = rows.filter(pa.array([u != REMOVED for u in rows.column("userid").to_pylist()]))
    for part in list(table.rglob("*.parquet")) if table.is_dir() else [table]:
        part.unlink()
    pq.write_table(kept, table / "part-0.parquet" if table.is_dir() else table)
    return campaign, staging


@pytest.fixture(scope="module")
def versions(tmp_path_factory):
    campaign1, v1 = build_release(tmp_path_factory.mktemp("v1"))
    pack_media(campaign1, v1, RELEASE, VARIANT, target_bytes=TARGET)
    campaign2, v2 = without_account(tmp_path_factory.mktemp("v2"))
    pack_media(campaign2, v2, RELEASE, VARIANT, target_bytes=TARGET, previous_staging=v1)
    campaign3, fresh = without_account(tmp_path_factory.mktemp("fresh"))
    pack_media(campaign3, fresh, RELEASE, VARIANT, target_bytes=TARGET)
    return members(v1), members(v2), members(fresh)


def test_only_the_archives_that_held_the_account_change(versions):
    v1, v2, _ = versions
    removed = {p for _, paths in v1.values() for p in paths if p.startswith(f"{REMOVED}/")}
    assert removed
    held = {sha_ for sha_, paths in v1.values() if paths & removed}
    untouched = {sha_ for sha_, paths in v1.values() if not paths & removed}
    v2_shas = {sha_ for sha_, _ in v2.values()}
    assert untouched and untouched <= v2_shas  # every archive without the account keeps its bytes
    assert not held & v2_shas  # every archive that held it changed (or is gone)
    all_v1 = {p for _, paths in v1.values() for p in paths}
    all_v2 = {p for _, paths in v2.values() for p in paths}
    assert all_v2 == all_v1 - removed
    assert len(v2) == len(untouched) + sum(1 for _, paths in v1.values() if paths & removed and paths - removed)


def test_a_fresh_greedy_plan_would_change_more(versions):
    """Why the plan keeps v1's archives: re-packing from scratch shifts every later archive."""
    v1, v2, fresh = versions
    v1_shas = {s for s, _ in v1.values()}
    assert sum(s in v1_shas for s, _ in fresh.values()) < sum(s in v1_shas for s, _ in v2.values())
