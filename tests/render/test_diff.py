"""``ioarchive diff``: two small published versions (real Parquet, real manifests), as folders and on S3."""

from __future__ import annotations

import json
import shutil
import uuid

import pytest
from ioarchive.cli.main import main
from ioarchive.errors import DiffError, NotRetryable, ReleaseError
from ioarchive.publish.store import S3ObjectStore, ensure_buckets
from ioarchive.publish.upload import publish_release
from ioarchive.publish.verify import LocalSource
from ioarchive.render.diff import diff_versions, id_sort_key, open_version
from support.s3 import MotoServer
from support.versions import (
    PSEUDONYMS,
    RELEASE_ID,
    Post,
    base_posts,
    build_version,
    make_campaign,
    media_rows,
)

DROPPED = (1, 2)
NEW_POST = Post("1100000000999", 0)
CHANGED_FILES = sorted([
    f"{RELEASE_ID}_users_csv_hashed.zip",
    f"{RELEASE_ID}_tweets_csv_hashed.zip",
    "parquet/users.parquet",
    "parquet/tweets/part-00000.parquet",  # part-00001 (accounts 3+) is byte-identical
    "parquet/media_index.parquet",
    "media/media_index.csv",
    f"media/{RELEASE_ID}_tweet_media_hashed_001.zip",  # 002 (accounts 3+) is byte-identical
    f"media/{RELEASE_ID}_profile_media_hashed_001.zip",
    "README.md",
    "SHA256SUMS",
])


@pytest.fixture(scope="module")
def versions(tmp_path_factory):
    root = tmp_path_factory.mktemp("diff")
    campaign = make_campaign(root)
    v1 = build_version(root / "staging", campaign, 1)
    v2 = build_version(root / "staging", campaign, 2, drop_accounts=DROPPED, extra_posts=(NEW_POST,))
    return root, campaign, v1, v2


def expected_removed_media() -> list[dict]:
    rows = media_rows(list(DROPPED), base_posts())
    keep = ("path_in_archive", "media_key", "archive", "kind", "tweetid", "userid")
    return sorted(({k: r[k] for k in keep} for r in rows), key=lambda r: r["path_in_archive"])


def manifest_files(layout) -> dict[str, dict]:
    doc = json.loads(layout.manifest("hashed").read_text())
    return {f["name"]: f for f in doc["files"]}


def expected_json(old_location: str, new_location: str, v1, v2) -> dict:
    old_files, new_files = manifest_files(v1), manifest_files(v2)
    removed_posts = sorted((p.tweetid for p in base_posts() if p.account in DROPPED), key=int)
    media = expected_removed_media()
    return {
        "old": {"location": old_location, "release_id": RELEASE_ID, "version": 1, "variant": "hashed"},
        "new": {"location": new_location, "release_id": RELEASE_ID, "version": 2, "variant": "hashed"},
        "empty": False,
        "counts": {"accounts": {"added": 0, "removed": 2}, "posts": {"added": 1, "removed": len(removed_posts)},
                   "media": {"added": 0, "removed": len(media)},
                   "files": {"added": 0, "removed": 0, "changed": len(CHANGED_FILES)}},
        "accounts": {"added": [], "removed": sorted(PSEUDONYMS[a] for a in DROPPED)},
        "posts": {"added": [NEW_POST.tweetid], "removed": removed_posts},
        "media": {"added": [], "removed": media},
        "files": {"added": [], "removed": [], "changed": [
            {"name": n, "old_bytes": old_files[n]["bytes"], "new_bytes": new_files[n]["bytes"],
             "old_sha256": old_files[n]["sha256"], "new_sha256": new_files[n]["sha256"]} for n in CHANGED_FILES]},
    }


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["diff", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_diff_of_two_release_folders_names_exactly_what_changed(versions):
    _root, _campaign, v1, v2 = versions
    old, new = LocalSource(v1.release_dir("hashed")), LocalSource(v2.release_dir("hashed"))
    diff = diff_versions(old, new)
    assert diff.accounts_removed == sorted(PSEUDONYMS[a] for a in DROPPED)
    assert diff.accounts_added == []
    assert diff.posts_added == [NEW_POST.tweetid]
    assert diff.posts_removed == sorted((p.tweetid for p in base_posts() if p.account in DROPPED), key=int)
    assert len(diff.posts_removed) == 2 * 5
    assert diff.media_added == []
    assert diff.media_removed == expected_removed_media()
    assert len(diff.media_removed) == 2 * 3  # two photos and a profile image each
    assert [f["name"] for f in diff.files_changed] == CHANGED_FILES
    assert diff.files_added == [] and diff.files_removed == []
    assert not diff.empty
    # the reverse direction swaps added and removed
    back = diff_versions(new, old)
    assert back.accounts_added == diff.accounts_removed and back.posts_removed == diff.posts_added
    assert back.media_added == diff.media_removed
    assert [f["name"] for f in back.files_changed] == CHANGED_FILES


def test_cli_table_and_json_on_staging_and_release_folders(versions, capsys):
    _root, _campaign, v1, v2 = versions
    # staging folders (variant hashed by default)
    code, out, err = run_cli(capsys, str(v1.root), str(v2.root), "--json")
    assert code == 1, err
    assert json.loads(out) == expected_json(str(v1.release_dir("hashed")), str(v2.release_dir("hashed")), v1, v2)
    assert out == json.dumps(json.loads(out), sort_keys=True, indent=2, ensure_ascii=False) + "\n"
    # release folders, readable table
    code, out, err = run_cli(capsys, str(v1.release_dir("hashed")), str(v2.release_dir("hashed")))
    assert code == 1, err
    lines = out.splitlines()
    assert any(line.split() == ["accounts", "0", "2"] for line in lines), out
    assert any(line.split() == ["posts", "1", "10"] for line in lines), out
    assert any(line.split() == ["media", "0", "6"] for line in lines), out
    assert any(line.split() == ["files", "0", "0", str(len(CHANGED_FILES))] for line in lines), out
    for a in DROPPED:
        assert f"  - {PSEUDONYMS[a]}" in lines
    assert f"  + {NEW_POST.tweetid}" in lines
    changed = [line.split()[1] for line in lines if line.startswith("  ~ ")]
    assert changed == CHANGED_FILES
    for row in expected_removed_media():
        assert any(line.startswith(f"  - {row['path_in_archive']}  (media_key {row['media_key']}") for line in lines)
    # --show limits the listed ids, never the counts
    code, out, _ = run_cli(capsys, str(v1.root), str(v2.root), "--show", "3")
    assert "  ... and 7 more (--json or --show 0 lists all)" in out.splitlines()


def test_identical_versions_give_an_empty_diff(versions, tmp_path, capsys):
    _root, _campaign, v1, _v2 = versions
    copy = tmp_path / "copy"
    shutil.copytree(v1.release_dir("hashed"), copy)
    code, out, err = run_cli(capsys, str(v1.root), str(copy), "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["empty"] is True
    assert doc["accounts"] == doc["posts"] == doc["media"] == {"added": [], "removed": []}
    assert doc["files"] == {"added": [], "removed": [], "changed": []}
    code, out, _ = run_cli(capsys, str(v1.root), str(copy))
    assert code == 0 and out.strip().endswith("no differences")
    diff = diff_versions(LocalSource(v1.release_dir("hashed")), LocalSource(copy))
    assert diff.summary_lines() == ["No changes."]
    assert "none" in diff.summary_markdown()


def test_files_added_and_removed_when_the_tweets_csv_is_split(versions, tmp_path):
    _root, campaign, v1, _v2 = versions
    v2 = build_version(tmp_path / "staging", campaign, 2, tweets_csv_parts=2)
    diff = diff_versions(LocalSource(v1.release_dir("hashed")), LocalSource(v2.release_dir("hashed")))
    assert [f["name"] for f in diff.files_removed] == [f"{RELEASE_ID}_tweets_csv_hashed.zip"]
    assert [f["name"] for f in diff.files_added] == [f"{RELEASE_ID}_tweets_csv_hashed_part001.zip",
                                                     f"{RELEASE_ID}_tweets_csv_hashed_part002.zip"]
    assert [f["name"] for f in diff.files_changed] == ["README.md", "SHA256SUMS"]
    assert diff.accounts_added == diff.accounts_removed == diff.posts_added == diff.posts_removed == []
    assert diff.media_added == diff.media_removed == []
    assert diff.summary_lines() == ["Files: 2 added, 1 removed, 2 changed"]


class CountingSource(LocalSource):
    """A folder read only through ranged reads (like S3), counting the bytes read per file."""

    def __init__(self, folder) -> None:
        super().__init__(folder)
        self.bytes_read: dict[str, int] = {}

    def read_range(self, name: str, start: int, length: int) -> bytes:
        data = super().read_range(name, start, length)
        self.bytes_read[name] = self.bytes_read.get(name, 0) + len(data)
        return data


def test_only_id_columns_are_read(versions, monkeypatch):
    import ioarchive.render.diff as diff_module

    _root, _campaign, v1, v2 = versions
    # make the sources look remote: the diff reads Parquet through read_range only
    monkeypatch.setattr(diff_module, "LocalSource", type("NotLocal", (), {}))
    old, new = CountingSource(v1.release_dir("hashed")), CountingSource(v2.release_dir("hashed"))
    diff = diff_versions(old, new)
    assert diff.posts_added == [NEW_POST.tweetid]
    for source in (old, new):
        for name in ("parquet/tweets/part-00000.parquet", "parquet/tweets/part-00001.parquet"):
            size = (source.folder / name).stat().st_size
            assert 0 < source.bytes_read[name] < size / 4, (name, source.bytes_read[name], size)
        assert not any(n.endswith(".zip") for n in source.bytes_read)  # archives and CSV zips: manifest only


def test_summary_markdown_has_counts_and_file_names_but_no_ids(versions):
    _root, _campaign, v1, v2 = versions
    diff = diff_versions(LocalSource(v1.release_dir("hashed")), LocalSource(v2.release_dir("hashed")))
    md = diff.summary_markdown()
    assert md.splitlines()[0] == "Changes from v1 to v2:"
    assert "- Accounts: 2 removed" in md.splitlines()
    assert "- Posts: 1 added, 10 removed" in md.splitlines()
    assert "- Media files: 6 removed" in md.splitlines()
    assert f"`{RELEASE_ID}_users_csv_hashed.zip`" in md
    for ident in [*PSEUDONYMS, NEW_POST.tweetid, *diff.posts_removed]:
        assert ident not in md


def test_errors_are_one_line_and_exit_2(versions, tmp_path, capsys):
    _root, _campaign, v1, v2 = versions
    code, out, err = run_cli(capsys, str(tmp_path / "nowhere"), str(v2.root))
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and "nowhere" in err

    empty = tmp_path / "staging-without-render"
    (empty / "release" / "hashed").mkdir(parents=True)
    code, _out, err = run_cli(capsys, str(empty), str(v2.root))
    assert code == 2 and "has no manifest.json" in err and len(err.strip().splitlines()) == 1

    code, _out, err = run_cli(capsys, str(v1.root), str(v2.root), "--variant", "unhashed")
    assert code == 2 and "unhashed" in err

    broken = tmp_path / "broken"
    shutil.copytree(v2.release_dir("hashed"), broken)
    (broken / "parquet" / "users.parquet").unlink()
    with pytest.raises(DiffError, match="users.parquet is listed in manifest.json but missing") as info:
        diff_versions(LocalSource(v1.release_dir("hashed")), LocalSource(broken))
    assert isinstance(info.value, ReleaseError) and isinstance(info.value, NotRetryable)

    withdrawn = json.loads((broken / "manifest.json").read_text())
    withdrawn.update(withdrawn_at="2021-06-01T00:00:00+00:00", reason="appeal", superseded_by="v3")
    (broken / "manifest.json").write_text(json.dumps(withdrawn))
    code, _out, err = run_cli(capsys, str(v1.root), str(broken))
    assert code == 2 and "was withdrawn" in err and "superseded by v3" in err

    (broken / "manifest.json").write_text("{not json")
    code, _out, err = run_cli(capsys, str(v1.root), str(broken))
    assert code == 2 and "not valid JSON" in err


def test_two_variants_are_not_compared(versions, tmp_path):
    _root, _campaign, v1, v2 = versions
    other = tmp_path / "other-variant"
    shutil.copytree(v2.release_dir("hashed"), other)
    manifest = json.loads((other / "manifest.json").read_text())
    manifest["variant"] = "unhashed"
    (other / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(DiffError, match="same variant"):
        diff_versions(LocalSource(v1.release_dir("hashed")), LocalSource(other))


def test_ids_sort_numerically_when_decimal():
    assert sorted(["10", "9", "100", "abc", "Abc"], key=id_sort_key) == ["9", "10", "100", "Abc", "abc"]


@pytest.mark.parametrize(("old", "new", "added", "removed"), [
    (["1", "2", "3"], ["2", "3", "4", "4"], ["4"], ["1"]),  # integer path; a duplicate is reported once
    (["7"], ["007"], ["007"], ["7"]),  # not canonical decimals: compared as strings, never as numbers
    (["18446744073709551616", "5"], ["5"], [], ["18446744073709551616"]),  # beyond uint64: strings
    (["aQ", "b-"], ["b-", "c_"], ["c_"], ["aQ"]),  # pseudonyms
    ([], ["1"], ["1"], []),
])
def test_id_sets(old, new, added, removed):
    import pyarrow as pa
    from ioarchive.render.diff import _diff_ids

    assert _diff_ids(pa.array(old, pa.string()), pa.array(new, pa.string())) == (added, removed)


# --- S3 ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def s3_server():
    with MotoServer() as server:
        yield server


def test_diff_of_published_versions_on_s3(versions, s3_server, capsys, monkeypatch):
    _root, _campaign, v1, v2 = versions
    for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"),
                        ("AWS_DEFAULT_REGION", "us-east-1")):
        monkeypatch.setenv(name, value)
    client = s3_server.client()
    bucket = f"pub-{uuid.uuid4().hex[:10]}"
    ensure_buckets(client, bucket, f"mem-{uuid.uuid4().hex[:10]}")
    store = S3ObjectStore(client)
    urls = []
    for layout in (v1, v2):
        result = publish_release(store, staging=layout.root, release_id=RELEASE_ID, variant="hashed", bucket=bucket)
        assert result.manifest_written
        urls.append(f"s3://{bucket}/{result.prefix}")
    assert urls == [f"s3://{bucket}/releases/{RELEASE_ID}/v1/", f"s3://{bucket}/releases/{RELEASE_ID}/v2/"]

    code, out, err = run_cli(capsys, *urls, "--json", "--endpoint-url", s3_server.endpoint_url)
    assert code == 1, err
    assert json.loads(out) == expected_json(urls[0], urls[1], v1, v2)

    # a folder against a bucket URL: same version, nothing differs
    code, out, err = run_cli(capsys, str(v2.root), urls[1], "--endpoint-url", s3_server.endpoint_url)
    assert code == 0, err
    assert out.strip().endswith("no differences")

    # a version that was never published: one line, exit 2
    code, out, err = run_cli(capsys, urls[0], f"s3://{bucket}/releases/{RELEASE_ID}/v9/",
                             "--endpoint-url", s3_server.endpoint_url)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and "manifest.json is missing" in err

    source = open_version(urls[1], store=store)
    assert diff_versions(source, LocalSource(v2.release_dir("hashed"))).empty
