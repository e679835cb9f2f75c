"""Manifest and SHA256SUMS of a hand-built release folder: content, order, determinism, errors."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from ioarchive.render.documents import render_release, render_variant
from ioarchive.render.manifest import ManifestError, build_manifest, load_manifest, sha256sums_text
from ioarchive.request.campaign import Campaign
from support.render import (
    PSEUDONYMS,
    RAW_IDS,
    RAW_NAMES,
    RELEASE_ID,
    make_campaign,
    make_staging,
    write_json,
)


@pytest.fixture()
def release(tmp_path):
    layout = make_staging(tmp_path)
    campaign = make_campaign(tmp_path)
    return layout, campaign


def test_manifest_lists_every_file_with_real_sizes_checksums_and_rows(release) -> None:
    layout, campaign = release
    manifests = render_release(layout.root, campaign, RELEASE_ID)
    for variant in ("hashed", "unhashed"):
        rel = layout.release_dir(variant)
        on_disk = json.loads(layout.manifest(variant).read_text())
        assert on_disk == manifests[variant]
        names = [f["name"] for f in on_disk["files"]]
        expected = sorted(
            p.relative_to(rel).as_posix() for p in rel.rglob("*")
            if p.is_file() and p.name != "manifest.json" and not p.name.startswith((".", "_"))
        )
        assert names == expected
        assert "README.md" in names and "SHA256SUMS" in names
        for f in on_disk["files"]:
            data = (rel / f["name"]).read_bytes()
            assert f["bytes"] == len(data)
            assert f["sha256"] == hashlib.sha256(data).hexdigest()
        rows = {f["name"]: f["rows"] for f in on_disk["files"]}
        assert rows[f"{RELEASE_ID}_users_csv_{variant}.zip"] == 3
        assert rows[f"{RELEASE_ID}_tweets_csv_{variant}_part001.zip"] == 30
        assert rows["media/media_index.csv"] == 7
        assert rows["parquet/tweets/part-00000.parquet"] is None
        assert rows["README.md"] is None
        assert on_disk["directories"] == {"parquet/tweets": {"rows": 42}}
        kinds = {f["name"]: f["kind"] for f in on_disk["files"]}
        assert kinds[f"media/{RELEASE_ID}_profile_media_{variant}_001.zip"] == "media_archive"
        assert kinds[f"{RELEASE_ID}_tweets_csv_{variant}_part002.zip"] == "posts_csv"
        assert on_disk["counts"] == {"accounts": 3, "accounts_that_posted": 2, "posts": 42, "media_files": 7,
                                     "archives": 3, "tweet_archives": 2, "profile_archives": 1}
        assert on_disk["exclusions"]["posts"]["excluded"] == {"deleted": 3, "not_campaign_account": 2}
        assert on_disk["exclusions"]["media"]["quarantined"] == {"sha256_mismatch": 1}
        assert on_disk["title"] == "Testland (March 2021)" and on_disk["disclosure_month"] == "2021-03"
        assert [s["gate"] for s in on_disk["signoffs"]] == ["attribution", "publication"]
        assert on_disk["generated_at"] == "2021-03-02T10:00:00+00:00"  # latest sign-off, not wall time
        assert on_disk["changelog"] == [{"version": 1, "date": "2021-03", "text": "Initial release."}]
        assert on_disk["schema_version"] == "1.0"
    hashed, unhashed = manifests["hashed"], manifests["unhashed"]
    assert hashed["key_id"] == "test-key-2021"
    assert hashed["pseudonymization"]["pseudonymized_accounts"] == 3
    assert unhashed["key_id"] is None and unhashed["pseudonymization"] is None
    assert hashed["parameters"] == unhashed["parameters"] == {"threshold": 5000, "archive_target_bytes": 2 * 1024**3}


def test_sha256sums_passes_sha256sum_c_and_catches_tampering(release) -> None:
    layout, campaign = release
    render_release(layout.root, campaign, RELEASE_ID, variants=["hashed"])
    rel = layout.release_dir("hashed")
    manifest = load_manifest(layout.manifest("hashed"))
    listed = [line.split("  ", 1)[1] for line in layout.sha256sums("hashed").read_text().splitlines()]
    assert listed == sorted(f["name"] for f in manifest["files"] if f["name"] != "SHA256SUMS")
    assert "README.md" in listed and "manifest.json" not in listed
    ok = subprocess.run(["sha256sum", "-c", "--strict", "SHA256SUMS"], cwd=rel, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert ok.stdout.count(": OK") == len(listed)
    # The manifest vouches for SHA256SUMS itself, so the chain reaches every byte.
    sums = next(f for f in manifest["files"] if f["name"] == "SHA256SUMS")
    assert sums["sha256"] == hashlib.sha256(layout.sha256sums("hashed").read_bytes()).hexdigest()
    readme = next(f for f in manifest["files"] if f["name"] == "README.md")
    assert readme["sha256"] == hashlib.sha256(layout.readme("hashed").read_bytes()).hexdigest()
    (rel / "media" / "media_index.csv").write_bytes(b"tampered\n")
    bad = subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=rel, capture_output=True, text=True)
    assert bad.returncode != 0 and "media/media_index.csv: FAILED" in bad.stdout


def test_rerun_is_byte_identical(release) -> None:
    layout, campaign = release
    render_release(layout.root, campaign, RELEASE_ID)
    first = {p: p.read_bytes() for v in ("hashed", "unhashed")
             for p in (layout.manifest(v), layout.readme(v), layout.sha256sums(v))}
    render_release(layout.root, campaign, RELEASE_ID)
    assert {p: p.read_bytes() for p in first} == first


def test_publication_signoff_changes_manifest_but_not_readme(release) -> None:
    """The reviewer approves the README they saw: a re-render after the sign-off keeps its bytes."""
    layout, campaign = release
    signoffs = json.loads(layout.signoffs.read_text())
    write_json(layout.signoffs, signoffs[1:])  # only the attribution gate so far
    render_release(layout.root, campaign, RELEASE_ID, variants=["hashed"])
    readme_before = layout.readme("hashed").read_bytes()
    write_json(layout.signoffs, signoffs)
    manifest = render_release(layout.root, campaign, RELEASE_ID, variants=["hashed"])["hashed"]
    assert layout.readme("hashed").read_bytes() == readme_before
    assert [s["by"] for s in manifest["signoffs"]] == ["reviewer-a", "reviewer-b"]


def test_refresh_signoffs_before_publication_equals_a_render_after_the_signoff(release) -> None:
    """The publish step records the publication sign-off in the manifest, changing nothing else."""
    from ioarchive.render.manifest import refresh_signoffs

    layout, campaign = release
    signoffs = json.loads(layout.signoffs.read_text())
    write_json(layout.signoffs, signoffs[1:])  # rendered while only the attribution gate was answered
    render_release(layout.root, campaign, RELEASE_ID)
    others = {p: p.read_bytes() for v in ("hashed", "unhashed") for p in (layout.readme(v), layout.sha256sums(v))}
    write_json(layout.signoffs, signoffs)  # then the publication sign-off
    refreshed = {v: refresh_signoffs(layout, v, RAW_IDS) for v in ("hashed", "unhashed")}
    refreshed_bytes = {v: layout.manifest(v).read_bytes() for v in ("hashed", "unhashed")}
    assert [s["gate"] for s in refreshed["hashed"]["signoffs"]] == ["attribution", "publication"]
    assert refreshed["hashed"]["generated_at"] == "2021-03-02T10:00:00+00:00"
    assert {p: p.read_bytes() for p in others} == others
    refresh_signoffs(layout, "hashed", RAW_IDS)  # a rerun of the publish task: same bytes
    assert layout.manifest("hashed").read_bytes() == refreshed_bytes["hashed"]
    render_release(layout.root, campaign, RELEASE_ID)  # a full re-render agrees byte for byte
    assert {v: layout.manifest(v).read_bytes() for v in ("hashed", "unhashed")} == refreshed_bytes
    # A sign-off comment naming a raw account id never reaches the public manifest.
    signoffs[0]["comment"] = f"see account {RAW_IDS[0]}"
    write_json(layout.signoffs, signoffs)
    with pytest.raises(ManifestError, match="raw campaign account id"):
        refresh_signoffs(layout, "hashed", RAW_IDS)
    assert layout.manifest("hashed").read_bytes() == refreshed_bytes["hashed"]


def test_hashed_render_reads_nothing_of_the_unhashed_side(release) -> None:
    layout, campaign = release
    seen: list[str] = []
    recording = [True]

    def hook(event: str, args: tuple) -> None:
        if recording[0] and event in ("open", "os.scandir", "os.listdir") and args and args[0] is not None:
            seen.append(str(args[0]))

    sys.addaudithook(hook)  # cannot be removed; switched off below
    try:
        render_variant(layout, Campaign.load(campaign), "hashed")
    finally:
        recording[0] = False
    assert any("release/hashed" in p for p in seen), "the hook saw nothing: the test would be vacuous"
    assert [p for p in seen if "unhashed" in p] == []
    # And without an unhashed side at all, the hashed render still works.
    shutil.rmtree(layout.root / "work" / "unhashed")
    shutil.rmtree(layout.release_dir("unhashed"))
    manifest = render_variant(layout, Campaign.load(campaign), "hashed")
    published = [layout.readme("hashed").read_text(), layout.manifest("hashed").read_text(),
                 layout.sha256sums("hashed").read_text()]
    for text in published:
        for raw in (*RAW_IDS, *RAW_NAMES):
            assert raw not in text
    assert PSEUDONYMS[0] not in json.dumps(manifest)  # manifests hold no identifiers at all


def test_raw_account_id_in_campaign_text_is_refused_for_hashed(tmp_path) -> None:
    layout = make_staging(tmp_path)
    campaign = make_campaign(tmp_path, attribution=f"Network led by account {RAW_IDS[1]}.")
    with pytest.raises(ManifestError, match="raw campaign account id"):
        render_release(layout.root, campaign, RELEASE_ID, variants=["hashed"])
    assert not layout.manifest("hashed").exists()
    # The member-only variant may name it.
    render_release(layout.root, campaign, RELEASE_ID, variants=["unhashed"])
    assert RAW_IDS[1] in layout.readme("unhashed").read_text()


def test_inconsistent_inputs_fail_with_actionable_messages(tmp_path) -> None:
    layout = make_staging(tmp_path)
    campaign = Campaign.load(make_campaign(tmp_path))
    # An archive the media list does not know about.
    extra = layout.media_dir("hashed") / layout.media_archive_name("tweet", "hashed", 3)
    extra.write_bytes(b"PK")
    with pytest.raises(ManifestError, match="counts 3 archives but .* holds 4.*pack-media"):
        build_manifest(layout, campaign, "hashed")
    extra.unlink()
    # A file listed by the table writer that is not there.
    users_parquet = layout.release_dir("hashed") / "parquet" / "users.parquet"
    users_parquet.rename(users_parquet.with_name("users.parquet.moved"))
    with pytest.raises(ManifestError, match="lists 'parquet/users.parquet' but .* does not exist"):
        build_manifest(layout, campaign, "hashed")
    users_parquet.with_name("users.parquet.moved").rename(users_parquet)
    # Version 2 without saying what changed.
    with pytest.raises(ManifestError, match="version 2 needs a changelog"):
        build_manifest(layout, campaign, "unhashed", version=2)
    with pytest.raises(ManifestError, match="no entry for version 2"):
        build_manifest(layout, campaign, "unhashed", version=2,
                       changelog=[{"version": 1, "date": "2021-03", "text": "Initial release."}])
    # A threshold other than the one the hashed variant was built with.
    with pytest.raises(ManifestError, match="threshold 1000 was requested"):
        build_manifest(layout, campaign, "unhashed", threshold=1000)
    # No pseudonymization record: the hashed variant cannot name its key.
    (layout.work_files("hashed").with_name("pseudonymization.json")).unlink()
    with pytest.raises(ManifestError, match="pseudonymization.json does not exist: run `ioarchive extract`"):
        build_manifest(layout, campaign, "hashed")


def test_symlink_in_release_folder_is_refused(tmp_path) -> None:
    layout = make_staging(tmp_path)
    campaign = Campaign.load(make_campaign(tmp_path))
    (layout.release_dir("hashed") / "leak.csv").symlink_to(layout.users_csv_zip("unhashed"))
    with pytest.raises(ManifestError, match="is a symlink"):
        build_manifest(layout, campaign, "hashed")


def test_version_two_with_changelog(tmp_path) -> None:
    layout = make_staging(tmp_path)
    changelog = [{"version": 1, "date": "2021-03", "text": "Initial release."},
                 {"version": 2, "date": "2021-09", "text": "Removed 1 account after appeal."}]
    m = render_release(layout.root, make_campaign(tmp_path), RELEASE_ID, version=2, changelog=changelog)["hashed"]
    assert m["version"] == 2 and m["changelog"] == changelog
    readme = layout.readme("hashed").read_text()
    assert "This is version 2." in readme
    assert readme.index("- v2 (2021-09): Removed 1 account after appeal.") < readme.index("- v1 (2021-03)")


def test_sha256sums_text_refuses_unsafe_names() -> None:
    manifest = {"files": [{"name": "a b.csv", "sha256": "0" * 64}]}
    with pytest.raises(ManifestError):
        sha256sums_text(manifest)


def test_cli_render_writes_both_variants(tmp_path, capsys) -> None:
    from ioarchive.cli.main import main

    layout = make_staging(tmp_path)
    campaign = make_campaign(tmp_path)
    rc = main(["render", "--staging", str(layout.root), "--campaign", str(campaign), "--release-id", RELEASE_ID])
    assert rc == 0
    out = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(o["variant"], o["posts"], o["archives"]) for o in out] == [("hashed", 42, 3), ("unhashed", 42, 3)]
    for v in ("hashed", "unhashed"):
        assert load_manifest(layout.manifest(v))["variant"] == v
    rc = main(["render", "--staging", str(layout.root), "--campaign", str(campaign), "--release-id", RELEASE_ID,
               "--version", "2", "--variant", "hashed"])
    assert rc == 1  # v2 without --change: refused, logged
    rc = main(["render", "--staging", str(layout.root), "--campaign", str(campaign), "--release-id", RELEASE_ID,
               "--version", "2", "--variant", "hashed", "--change", "Fixed a thing.", "--change-date", "2021-04"])
    assert rc == 0
    assert load_manifest(layout.manifest("hashed"))["changelog"] == [
        {"version": 2, "date": "2021-04", "text": "Fixed a thing."}]


def test_manifest_is_canonical_json(release) -> None:
    layout, campaign = release
    render_release(layout.root, campaign, RELEASE_ID, variants=["hashed"])
    raw = layout.manifest("hashed").read_bytes()
    data = json.loads(raw)
    assert raw == (json.dumps(data, sort_keys=True, indent=2, ensure_ascii=True) + "\n").encode()
    assert Path(layout.release_dir("hashed") / ".manifest.json.tmp").exists() is False
