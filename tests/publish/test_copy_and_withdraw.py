"""Incremental republication and withdrawal against a real S3 endpoint (moto server).

Version 2 of a release publishes the files whose bytes equal a file of version 1 with a
server-side copy (CopyObject; managed multipart copy above the single-request cap), counted
from the requests the store's client really sent (a botocore event hook); withdrawal then
removes version 1's data objects and leaves its withdrawal record.
"""

from __future__ import annotations

import hashlib
import json
import uuid

import pytest
from ioarchive.publish.store import S3ObjectStore, ensure_buckets
from ioarchive.publish.upload import publish_release
from support.release import data_files, rewrite_release, write_release
from support.s3 import MotoServer

RELEASE = "copyop_202102"
ARCHIVE = f"media/{RELEASE}_tweet_media_hashed_001.zip"


@pytest.fixture(scope="module")
def s3_server():
    with MotoServer() as server:
        yield server


@pytest.fixture()
def client(s3_server):
    return s3_server.client()


@pytest.fixture()
def bucket(client):
    suffix = uuid.uuid4().hex[:10]
    ensure_buckets(client, f"pub-{suffix}", f"mem-{suffix}")
    return f"pub-{suffix}"


def keys(client, bucket: str, prefix: str = "") -> list[str]:
    return sorted(o["Key"] for o in client.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", []))


def publish_v2(tmp_path, client, bucket, copy_object_max_bytes=None):
    layout = write_release(tmp_path, RELEASE, variants=("hashed",))
    v1 = publish_release(S3ObjectStore(client), staging=tmp_path, release_id=RELEASE, variant="hashed", bucket=bucket)
    files = data_files(RELEASE, "hashed")
    files["parquet/users.parquet"] = b"PAR1 one account fewer PAR1"
    rewrite_release(layout, "hashed", files, version=2)
    store = S3ObjectStore(client)
    if copy_object_max_bytes is not None:
        store.copy_object_max_bytes = copy_object_max_bytes
    v2 = publish_release(store, staging=tmp_path, release_id=RELEASE, variant="hashed", bucket=bucket, version=2)
    return v1, v2, store, files


def test_unchanged_files_are_copied_not_uploaded(tmp_path, client, bucket):
    v1, v2, store, files = publish_v2(tmp_path, client, bucket)
    same = sorted(n for n, data in files.items() if n != "parquet/users.parquet")
    assert sorted(v2.copied) == same and ARCHIVE in v2.copied
    assert v2.copied[ARCHIVE] == f"releases/{RELEASE}/v1/{ARCHIVE}"
    assert "parquet/users.parquet" in v2.uploaded and not set(v2.uploaded) & set(v2.copied)
    # What the client really sent: one CopyObject per copy, one PutObject per upload (manifest included).
    assert store.requests.get("CopyObject") == len(same)
    assert store.requests.get("PutObject") == len(v2.uploaded)
    assert "UploadPart" not in store.requests and "UploadPartCopy" not in store.requests
    for name in same:
        key = f"releases/{RELEASE}/v2/{name}"
        head = client.head_object(Bucket=bucket, Key=key)
        body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
        assert body == files[name] and head["Metadata"]["sha256"] == hashlib.sha256(files[name]).hexdigest()
    assert v1.copied == {}


def test_large_objects_use_the_managed_copy(tmp_path, client, bucket):
    """Above the single-request cap (5 GB; lowered here) the copy goes by parts (UploadPartCopy)."""
    _, v2, store, files = publish_v2(tmp_path, client, bucket, copy_object_max_bytes=1)
    assert ARCHIVE in v2.copied
    assert store.requests.get("UploadPartCopy", 0) >= len(v2.copied) and "CopyObject" not in store.requests
    key = f"releases/{RELEASE}/v2/{ARCHIVE}"
    assert client.get_object(Bucket=bucket, Key=key)["Body"].read() == files[ARCHIVE]
    assert client.head_object(Bucket=bucket, Key=key)["Metadata"]["sha256"] == hashlib.sha256(files[ARCHIVE]).hexdigest()


def test_a_withdrawn_version_is_no_copy_source(tmp_path, client, bucket):
    write_release(tmp_path, RELEASE, variants=("hashed",))
    publish_release(S3ObjectStore(client), staging=tmp_path, release_id=RELEASE, variant="hashed", bucket=bucket)
    manifest_key = f"releases/{RELEASE}/v1/manifest.json"
    record = json.loads(client.get_object(Bucket=bucket, Key=manifest_key)["Body"].read())
    record.update(withdrawn_at="2026-12-05T08:00:00Z", reason="appeal", superseded_by=2, files=[])
    client.put_object(Bucket=bucket, Key=manifest_key, Body=json.dumps(record).encode())
    rewrite_release(write_release(tmp_path / "v2", RELEASE, variants=("hashed",)), "hashed",
                    data_files(RELEASE, "hashed"), version=2)
    store = S3ObjectStore(client)
    v2 = publish_release(store, staging=tmp_path / "v2", release_id=RELEASE, variant="hashed", bucket=bucket,
                         version=2)
    assert v2.copied == {} and "CopyObject" not in store.requests


def test_withdrawal_leaves_only_the_record_and_is_idempotent(tmp_path, client, bucket, s3_server, capsys,
                                                             monkeypatch):
    from ioarchive.cli.main import main
    from ioarchive.publish.withdraw import leftovers, withdraw_version

    layout = write_release(tmp_path, RELEASE, variants=("hashed",))
    manifest = json.loads(layout.manifest("hashed").read_text())
    manifest.update(title="Op (February 2021)", counts={"accounts": 12},
                    signoffs=[{"gate": "retraction", "by": "reviewer_a", "comment": "restore 184467440 and @Zahra_12"}])
    layout.manifest("hashed").write_text(json.dumps(manifest))
    v1 = publish_release(S3ObjectStore(client), staging=tmp_path, release_id=RELEASE, variant="hashed", bucket=bucket)
    store = S3ObjectStore(client)
    result = withdraw_version(store, bucket, RELEASE, 1, reason="appeal granted for @zahra_12", superseded_by=2,
                              withdrawn_at="2026-12-05T08:00:00Z", identifiers=["184467440", "Zahra_12"])
    prefix = f"releases/{RELEASE}/v1/"
    assert keys(client, bucket, prefix) == [prefix + "manifest.json"]
    assert sorted(result.deleted) == sorted(prefix + n for n in v1.uploaded if n != "manifest.json")
    record = json.loads(client.get_object(Bucket=bucket, Key=prefix + "manifest.json")["Body"].read())
    assert record["withdrawn_at"] == "2026-12-05T08:00:00Z" and record["superseded_by"] == 2
    assert record["reason"] == "appeal granted for @[removed]" and record["files"] == []
    assert record["title"] == "Op (February 2021)" and record["counts"] == {"accounts": 12}
    assert {f["name"]: f["sha256"] for f in record["withdrawn_files"]} == {
        f["name"]: f["sha256"] for f in manifest["files"]}
    text = json.dumps(record)
    assert "184467440" not in text and "zahra_12" not in text.lower()
    assert store.requests.get("DeleteObjects") == 1

    # A rerun keeps the first record and deletes what a crash may have left.
    client.put_object(Bucket=bucket, Key=prefix + "media/late.zip", Body=b"left behind")
    assert leftovers(store, bucket) == {prefix: [prefix + "media/late.zip"]}
    for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"),
                        ("AWS_DEFAULT_REGION", "us-east-1")):
        monkeypatch.setenv(name, value)
    endpoint = ["--endpoint-url", s3_server.endpoint_url]
    assert main(["withdrawal-check", bucket, *endpoint]) == 1
    assert f"s3://{bucket}/{prefix}media/late.zip" in capsys.readouterr().out
    again = withdraw_version(store, bucket, RELEASE, 1, reason="other", superseded_by=3, withdrawn_at="2027-01-01T00:00:00Z")
    assert again.already_withdrawn and again.deleted == [prefix + "media/late.zip"]
    assert json.loads(client.get_object(Bucket=bucket, Key=prefix + "manifest.json")["Body"].read()) == record
    assert leftovers(store, bucket) == {}
    assert main(["withdrawal-check", bucket, "--release-id", RELEASE, *endpoint]) == 0


def test_withdraw_superseded_finds_the_versions_holding_the_accounts(tmp_path, client):
    """Which versions go is read from the member bucket's published ids; both buckets lose them."""
    import shutil

    from ioarchive.publish.withdraw import withdraw_superseded
    from support.versions import PSEUDONYMS, build_version, make_campaign

    suffix = uuid.uuid4().hex[:8]
    public, member = f"pub-{suffix}", f"mem-{suffix}"
    ensure_buckets(client, public, member)
    v1 = build_version(tmp_path, make_campaign(tmp_path), 1)
    shutil.copytree(v1.release_dir("hashed"), v1.release_dir("unhashed"))  # same files, member variant
    manifest = json.loads(v1.manifest("unhashed").read_text())
    v1.manifest("unhashed").write_text(json.dumps({**manifest, "variant": "unhashed"}))
    store = S3ObjectStore(client)
    for variant, bucket in (("hashed", public), ("unhashed", member)):
        publish_release(store, staging=v1.root, release_id=v1.release_id, variant=variant, bucket=bucket,
                        require_quality_gate=False)
    buckets = {"hashed": public, "unhashed": member}
    kwargs = {"reason": "appeal", "withdrawn_at": "2026-12-05T08:00:00Z"}
    assert withdraw_superseded(store, buckets, v1.release_id, 2, ["no-such-account"], **kwargs) == []
    out = withdraw_superseded(store, buckets, v1.release_id, 2, [PSEUDONYMS[1]], **kwargs)
    assert [(o["version"], o["variant"], o["deleted"]) for o in out] == [(1, "hashed", 12), (1, "unhashed", 12)]
    assert out[0]["files"] == [{k: f[k] for k in ("name", "bytes", "sha256")} for f in manifest["files"]]
    for bucket in buckets.values():
        assert keys(client, bucket, "releases/") == [f"releases/{v1.release_id}/v1/manifest.json"]
    again = withdraw_superseded(store, buckets, v1.release_id, 2, [PSEUDONYMS[1]], **kwargs)  # a cleared rerun
    assert [(o["version"], o["deleted"]) for o in again] == [(1, 0), (1, 0)]
