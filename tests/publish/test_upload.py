"""Publication to a real local S3 HTTP endpoint (moto_server): order, reruns, immutability, policy."""

from __future__ import annotations

import hashlib
import json
import uuid
from pathlib import Path

import pytest
from ioarchive.publish.store import S3ObjectStore, ensure_buckets
from ioarchive.publish.upload import (
    PublishConflict,
    PublishFailed,
    PublishRefused,
    list_published_manifests,
    publish_catalog,
    publish_release,
    version_prefix,
)
from support.release import data_files, rewrite_release, write_release
from support.s3 import MotoServer

RELEASE = "testland_202102"
MiB = 1024**2


@pytest.fixture(scope="module")
def s3_server():
    with MotoServer() as server:
        yield server


@pytest.fixture()
def client(s3_server):
    return s3_server.client()


@pytest.fixture()
def store(client):
    return S3ObjectStore(client)


@pytest.fixture()
def buckets(client):
    """A fresh (public, member) bucket pair per test; member encrypted and access-blocked."""
    suffix = uuid.uuid4().hex[:10]
    public, member = f"pub-{suffix}", f"mem-{suffix}"
    ensure_buckets(client, public, member)
    return public, member


def object_bytes(client, bucket: str, key: str) -> bytes:
    return client.get_object(Bucket=bucket, Key=key)["Body"].read()


def keys(client, bucket: str) -> list[str]:
    return sorted(o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", []))


def staged_names(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def test_publish_uploads_every_file_then_manifest_last_and_rerun_skips(tmp_path, client, store, buckets):
    public, _ = buckets
    layout = write_release(tmp_path, RELEASE)
    folder = layout.release_dir("hashed")

    result = publish_release(store, staging=tmp_path, release_id=RELEASE, variant="hashed", bucket=public)

    names = staged_names(folder)
    assert result.uploaded[-1] == "manifest.json"
    assert result.uploaded == sorted(n for n in names if n != "manifest.json") + ["manifest.json"]
    assert result.manifest_written and result.audience == "public"
    prefix = version_prefix(RELEASE, 1)
    assert prefix == f"releases/{RELEASE}/v1/"
    assert keys(client, public) == sorted(prefix + n for n in names)
    for name in names:
        assert object_bytes(client, public, prefix + name) == (folder / name).read_bytes(), name
        head = client.head_object(Bucket=public, Key=prefix + name)
        assert head["Metadata"]["sha256"] == hashlib.sha256((folder / name).read_bytes()).hexdigest()
    assert set(result.verified) == set(names) - {"manifest.json"}

    again = publish_release(store, staging=tmp_path, release_id=RELEASE, variant="hashed", bucket=public)
    assert again.uploaded == []
    assert again.already_published and not again.manifest_written
    assert sorted(again.skipped) == sorted(n for n in names if n != "manifest.json")


def test_changed_bytes_for_a_published_version_are_refused_and_nothing_is_overwritten(
    tmp_path, client, store, buckets
):
    public, _ = buckets
    layout = write_release(tmp_path, RELEASE, variants=("hashed",))
    publish_release(store, staging=tmp_path, release_id=RELEASE, variant="hashed", bucket=public)
    prefix = version_prefix(RELEASE, 1)
    before = {k: object_bytes(client, public, k) for k in keys(client, public)}

    # A consistent re-render with one changed byte: same version, different content.
    files = data_files(RELEASE, "hashed")
    name = f"{RELEASE}_users_csv_hashed.zip"
    files[name] = b"X" + files[name][1:]
    rewrite_release(layout, "hashed", files, version=1)

    with pytest.raises(PublishConflict, match="a change is a new version"):
        publish_release(store, staging=tmp_path, release_id=RELEASE, variant="hashed", bucket=public)
    assert {k: object_bytes(client, public, k) for k in keys(client, public)} == before
    assert object_bytes(client, public, prefix + name) != files[name]

    # The same change as v2 is a new version and goes through.
    rewrite_release(layout, "hashed", files, version=2)
    v2 = publish_release(store, staging=tmp_path, release_id=RELEASE, variant="hashed", bucket=public, version=2)
    assert v2.prefix == f"releases/{RELEASE}/v2/"
    assert object_bytes(client, public, v2.prefix + name) == files[name]
    assert object_bytes(client, public, prefix + name) == before[prefix + name]


class FailingStore(S3ObjectStore):
    """The real S3 store, with the connection 'dropping' on the n-th file upload."""

    def __init__(self, client, fail_on: int) -> None:
        super().__init__(client)
        self.fail_on = fail_on
        self.uploads = 0

    def upload_file(self, bucket, key, path, sha256, **kwargs):
        self.uploads += 1
        if self.uploads == self.fail_on:
            raise ConnectionError("connection reset by peer (injected)")
        return super().upload_file(bucket, key, path, sha256, **kwargs)


def test_failure_mid_upload_leaves_no_manifest_and_rerun_resumes(tmp_path, client, store, buckets):
    public, _ = buckets
    write_release(tmp_path, RELEASE, variants=("hashed",))
    with pytest.raises(PublishFailed, match="No manifest was written"):
        publish_release(FailingStore(client, fail_on=3), staging=tmp_path, release_id=RELEASE,
                        variant="hashed", bucket=public)
    present = keys(client, public)
    assert len(present) == 2
    assert not any(k.endswith("manifest.json") for k in present)

    resumed = publish_release(store, staging=tmp_path, release_id=RELEASE, variant="hashed", bucket=public)
    assert len(resumed.skipped) == 2
    assert resumed.uploaded[-1] == "manifest.json"
    assert not set(resumed.skipped) & set(resumed.uploaded)


def test_unpublished_leftover_with_other_bytes_is_refused(tmp_path, client, store, buckets):
    """Objects from an aborted attempt with other bytes are never overwritten either."""
    public, _ = buckets
    write_release(tmp_path, RELEASE, variants=("hashed",))
    key = version_prefix(RELEASE, 1) + "parquet/users.parquet"
    client.put_object(Bucket=public, Key=key, Body=b"left over from another attempt")
    with pytest.raises(PublishConflict, match="different bytes"):
        publish_release(store, staging=tmp_path, release_id=RELEASE, variant="hashed", bucket=public)
    assert keys(client, public) == [key]
    assert object_bytes(client, public, key) == b"left over from another attempt"


def test_large_file_goes_multipart_and_is_verified(tmp_path, client, buckets):
    public, _ = buckets
    layout = write_release(tmp_path, RELEASE, variants=("hashed",), big_bytes=11 * MiB)
    store = S3ObjectStore(client, multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB)
    big = f"media/{RELEASE}_tweet_media_hashed_002.zip"

    result = publish_release(store, staging=tmp_path, release_id=RELEASE, variant="hashed", bucket=public)

    assert result.multipart == [big]
    assert big in result.read_back
    head = client.head_object(Bucket=public, Key=result.prefix + big)
    assert head["ETag"].strip('"').endswith("-3")  # 11 MiB in 5 MiB parts
    assert head["ContentLength"] == 11 * MiB
    data = object_bytes(client, public, result.prefix + big)
    assert hashlib.sha256(data).digest() == hashlib.sha256((layout.release_dir("hashed") / big).read_bytes()).digest()


def test_member_bucket_objects_are_encrypted(tmp_path, client, store, buckets):
    _, member = buckets
    write_release(tmp_path, RELEASE, variants=("unhashed",))
    result = publish_release(store, staging=tmp_path, release_id=RELEASE, variant="unhashed", bucket=member)
    assert result.audience == "member" and result.manifest_written
    for key in keys(client, member):
        assert client.head_object(Bucket=member, Key=key)["ServerSideEncryption"] == "AES256", key


def test_member_bucket_without_public_access_block_is_refused(tmp_path, client, store):
    bucket = f"open-{uuid.uuid4().hex[:10]}"
    client.create_bucket(Bucket=bucket)
    write_release(tmp_path, RELEASE, variants=("unhashed",))
    with pytest.raises(PublishRefused, match="does not block public access"):
        publish_release(store, staging=tmp_path, release_id=RELEASE, variant="unhashed", bucket=bucket)
    assert keys(client, bucket) == []


def test_public_bucket_refuses_the_unhashed_variant(tmp_path, client, store, buckets):
    public, _ = buckets
    write_release(tmp_path, RELEASE)
    with pytest.raises(PublishRefused, match="only the hashed variant"):
        publish_release(store, staging=tmp_path, release_id=RELEASE, variant="unhashed", bucket=public,
                        audience="public")
    with pytest.raises(PublishRefused, match="only the hashed variant"):  # before any version check
        publish_release(store, staging=tmp_path, release_id=RELEASE, variant="unhashed", bucket=public,
                        audience="public", version=2)
    assert keys(client, public) == []


def test_public_bucket_refuses_a_folder_whose_manifest_is_not_hashed(tmp_path, client, store, buckets):
    """The recorded variant counts, not the folder it sits in."""
    public, _ = buckets
    layout = write_release(tmp_path, RELEASE, variants=("hashed",))
    manifest = json.loads(layout.manifest("hashed").read_text())
    manifest["variant"] = "unhashed"
    layout.manifest("hashed").write_text(json.dumps(manifest))
    with pytest.raises(PublishRefused, match="records variant 'unhashed'"):
        publish_release(store, staging=tmp_path, release_id=RELEASE, variant="hashed", bucket=public)
    assert keys(client, public) == []


@pytest.mark.parametrize("failing", ["hashed", "unhashed", "missing"])
def test_release_that_failed_or_skipped_the_quality_gate_is_refused(tmp_path, client, store, buckets, failing):
    public, _ = buckets
    layout = write_release(tmp_path, RELEASE, validation_success={failing: False})
    if failing == "missing":
        (layout.validation_dir("unhashed") / "summary.json").unlink()
    with pytest.raises(PublishRefused, match="quality gate"):
        publish_release(store, staging=tmp_path, release_id=RELEASE, variant="hashed", bucket=public)
    assert keys(client, public) == []


def test_staged_folder_that_disagrees_with_its_manifest_is_refused(tmp_path, client, store, buckets):
    public, _ = buckets
    layout = write_release(tmp_path, RELEASE, variants=("hashed",))
    (layout.release_dir("hashed") / "parquet" / "users.parquet").write_bytes(b"changed after render")
    (layout.release_dir("hashed") / "stray.tmp").write_bytes(b"x")
    with pytest.raises(PublishRefused) as err:
        publish_release(store, staging=tmp_path, release_id=RELEASE, variant="hashed", bucket=public)
    assert "parquet/users.parquet" in str(err.value) and "stray.tmp" in str(err.value)
    assert keys(client, public) == []


def test_catalog_and_published_manifests(tmp_path, client, store, buckets):
    public, _ = buckets
    write_release(tmp_path / "a", "alpha_202101", variants=("hashed",))
    write_release(tmp_path / "b", "beta_202203", variants=("hashed",), version=3)
    publish_release(store, staging=tmp_path / "b", release_id="beta_202203", variant="hashed", bucket=public)
    publish_release(store, staging=tmp_path / "a", release_id="alpha_202101", variant="hashed", bucket=public)
    client.put_object(Bucket=public, Key="releases/alpha_202101/v1/parquet/manifest.json", Body=b"{}")

    manifests = list_published_manifests(store, public)
    assert [(m["release_id"], m["version"]) for m in manifests] == [("alpha_202101", 1), ("beta_202203", 3)]

    rendered = tmp_path / "catalog"
    rendered.mkdir()
    (rendered / "index.html").write_text("<h1>Catalog &lt;b&gt;</h1>")
    (rendered / "releases.json").write_text(json.dumps(manifests))
    assert publish_catalog(store, public, rendered) == ["catalog/releases.json", "catalog/index.html"]
    assert object_bytes(client, public, "catalog/index.html") == b"<h1>Catalog &lt;b&gt;</h1>"
    assert client.head_object(Bucket=public, Key="catalog/index.html")["ContentType"].startswith("text/html")
    assert json.loads(object_bytes(client, public, "catalog/releases.json")) == manifests


def test_cli_publish(tmp_path, s3_server, client, buckets, monkeypatch, capsys):
    from ioarchive.cli.main import main

    public, _ = buckets
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    write_release(tmp_path, RELEASE)
    argv = ["publish", "--staging", str(tmp_path), "--release-id", RELEASE, "--variant", "hashed",
            "--bucket", public, "--endpoint-url", s3_server.endpoint_url]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert out.strip().splitlines()[-1] == "  uploaded manifest.json"
    assert f"releases/{RELEASE}/v1/manifest.json" in keys(client, public)

    refused = ["publish", "--staging", str(tmp_path), "--release-id", RELEASE, "--variant", "unhashed",
               "--bucket", public, "--audience", "public", "--endpoint-url", s3_server.endpoint_url]
    assert main(refused) == 2
    assert not any("unhashed" in k for k in keys(client, public))


class CorruptingStore(S3ObjectStore):
    """The real S3 store, but one object's bytes get damaged on the way (same size, same metadata)."""

    def __init__(self, client, victim: str, scratch: Path) -> None:
        super().__init__(client)
        self.victim = victim
        self.scratch = scratch

    def upload_file(self, bucket, key, path, sha256, **kwargs):
        if key.endswith(self.victim):
            damaged = bytearray(Path(path).read_bytes())
            damaged[len(damaged) // 2] ^= 0xFF
            path = self.scratch / "damaged"
            path.write_bytes(bytes(damaged))
        return super().upload_file(bucket, key, path, sha256, **kwargs)


def test_object_damaged_in_transit_fails_verification_and_leaves_no_manifest(tmp_path, client, buckets):
    public, _ = buckets
    write_release(tmp_path / "staging", RELEASE, variants=("hashed",))
    store = CorruptingStore(client, "parquet/users.parquet", tmp_path)
    with pytest.raises(PublishFailed, match="parquet/users.parquet"):
        publish_release(store, staging=tmp_path / "staging", release_id=RELEASE, variant="hashed", bucket=public)
    assert not any(k.endswith("manifest.json") for k in keys(client, public))


def test_publish_through_the_airflow_s3hook_with_sse_kms(tmp_path, s3_server, client, monkeypatch):
    """The DAG's path: an Airflow AWS connection (endpoint in its extra) -> S3Hook -> same code."""
    from ioarchive.publish.upload import s3_store

    monkeypatch.setenv("AIRFLOW_CONN_IOARCHIVE_S3_TEST", json.dumps({
        "conn_type": "aws", "login": "testing", "password": "testing",
        "extra": {"endpoint_url": s3_server.endpoint_url, "region_name": "us-east-1"},
    }))
    key_id = "arn:aws:kms:us-east-1:123456789012:key/0000-test"
    suffix = uuid.uuid4().hex[:10]
    store = s3_store(aws_conn_id="ioarchive_s3_test")
    ensure_buckets(store.client, f"pub-{suffix}", f"mem-{suffix}", kms_key_id=key_id)
    write_release(tmp_path, RELEASE, variants=("unhashed",))

    result = publish_release(store, staging=tmp_path, release_id=RELEASE, variant="unhashed",
                             bucket=f"mem-{suffix}", kms_key_id=key_id)

    assert result.manifest_written
    for key in keys(client, f"mem-{suffix}"):
        head = client.head_object(Bucket=f"mem-{suffix}", Key=key)
        assert (head["ServerSideEncryption"], head["SSEKMSKeyId"]) == ("aws:kms", key_id), key


def test_rerun_over_a_damaged_published_version_refuses_and_says_so(tmp_path, client, store, buckets):
    public, _ = buckets
    write_release(tmp_path, RELEASE, variants=("hashed",))
    result = publish_release(store, staging=tmp_path, release_id=RELEASE, variant="hashed", bucket=public)
    key = result.prefix + "media/media_index.csv"
    client.put_object(Bucket=public, Key=key, Body=b"tampered")
    with pytest.raises(PublishConflict, match="published version is damaged"):
        publish_release(store, staging=tmp_path, release_id=RELEASE, variant="hashed", bucket=public)
    assert object_bytes(client, public, key) == b"tampered"  # evidence left for the investigation
