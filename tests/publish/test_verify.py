"""``ioarchive verify`` on a published version (real local S3 endpoint) and on local folders."""

from __future__ import annotations

import shutil
import uuid

import pytest
from ioarchive.cli.main import main
from ioarchive.publish.store import S3ObjectStore, ensure_buckets
from ioarchive.publish.upload import publish_release
from ioarchive.publish.verify import parse_sha256sums, verify_location
from support.release import write_release
from support.s3 import MotoServer

RELEASE = "verifyland_202305"


@pytest.fixture(scope="module")
def s3_server():
    with MotoServer() as server:
        yield server


@pytest.fixture()
def published(tmp_path, s3_server, monkeypatch):
    """A release published to a fresh public bucket; returns (client, bucket, prefix, layout)."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    client = s3_server.client()
    suffix = uuid.uuid4().hex[:10]
    ensure_buckets(client, f"pub-{suffix}", f"mem-{suffix}")
    layout = write_release(tmp_path / "staging", RELEASE, variants=("hashed",))
    result = publish_release(S3ObjectStore(client), staging=tmp_path / "staging", release_id=RELEASE,
                             variant="hashed", bucket=f"pub-{suffix}")
    return client, f"pub-{suffix}", result.prefix, layout


def run_verify(location: str, s3_server, capsys) -> tuple[int, str]:
    code = main(["verify", location, "--endpoint-url", s3_server.endpoint_url])
    return code, capsys.readouterr().out


def test_verify_passes_on_a_published_version(published, s3_server, capsys):
    _client, bucket, prefix, layout = published
    code, out = run_verify(f"s3://{bucket}/{prefix}", s3_server, capsys)
    assert code == 0, out
    assert out.strip().endswith(f"PASSED: s3://{bucket}/{prefix}")
    listed = sorted(p.relative_to(layout.release_dir("hashed")).as_posix()
                    for p in layout.release_dir("hashed").rglob("*") if p.is_file())
    ok_lines = [line.split()[1] for line in out.splitlines() if line.strip().startswith("OK")]
    assert ok_lines == [n for n in listed if n != "manifest.json"]  # SHA256SUMS is listed too


def test_verify_fails_on_a_tampered_object_and_names_it(published, s3_server, capsys):
    client, bucket, prefix, _layout = published
    victim = "parquet/tweets/part-00000.parquet"
    original = client.get_object(Bucket=bucket, Key=prefix + victim)["Body"].read()
    tampered = original[:-5] + b"EVIL!"  # same size: only hashing every byte catches it
    client.put_object(Bucket=bucket, Key=prefix + victim, Body=tampered)

    code, out = run_verify(f"s3://{bucket}/{prefix}", s3_server, capsys)
    assert code == 1
    fail_lines = [line for line in out.splitlines() if "FAIL" in line]
    assert len(fail_lines) == 2  # the file line and the verdict
    assert victim in fail_lines[0] and "bytes were changed" in fail_lines[0]


def test_verify_fails_on_an_unlisted_object_and_a_missing_one(published, s3_server, capsys):
    client, bucket, prefix, _layout = published
    client.put_object(Bucket=bucket, Key=prefix + "extra/backdoor.csv", Body=b"1,2\n")
    client.delete_object(Bucket=bucket, Key=prefix + "media/media_index.csv")
    code, out = run_verify(f"s3://{bucket}/{prefix}", s3_server, capsys)
    assert code == 1
    assert "extra/backdoor.csv: unlisted object" in out
    assert "FAIL  media/media_index.csv: missing" in out


def test_verify_fails_when_manifest_sits_at_the_wrong_version(published, s3_server, capsys):
    client, bucket, prefix, _layout = published
    for obj in client.list_objects_v2(Bucket=bucket, Prefix=prefix)["Contents"]:
        client.copy_object(Bucket=bucket, Key=obj["Key"].replace("/v1/", "/v7/"),
                           CopySource={"Bucket": bucket, "Key": obj["Key"]})
    code, out = run_verify(f"s3://{bucket}/{prefix.replace('/v1/', '/v7/')}", s3_server, capsys)
    assert code == 1
    assert "sits at releases/verifyland_202305/v7/" in out


def test_verify_local_copy_passes_then_fails_on_a_tampered_file(published, tmp_path, capsys):
    _client, _bucket, _prefix, layout = published
    copy = tmp_path / "download"
    shutil.copytree(layout.release_dir("hashed"), copy)
    assert main(["verify", str(copy)]) == 0
    capsys.readouterr()

    victim = copy / f"{RELEASE}_users_csv_hashed.zip"
    data = bytearray(victim.read_bytes())
    data[10] ^= 0x01
    victim.write_bytes(bytes(data))
    assert main(["verify", str(copy)]) == 1
    out = capsys.readouterr().out
    assert f"FAIL  {RELEASE}_users_csv_hashed.zip: sha256" in out


def test_sha256sums_that_disagree_with_the_manifest_fail(published, tmp_path):
    _client, _bucket, _prefix, layout = published
    copy = tmp_path / "download"
    shutil.copytree(layout.release_dir("hashed"), copy)
    sums = (copy / "SHA256SUMS").read_text().splitlines()
    digest, name = sums[0].split("  ", 1)
    sums[0] = f"{'0' * 64}  {name}"
    (copy / "SHA256SUMS").write_text("\n".join(sums) + "\n")
    report = verify_location(str(copy))
    assert not report.ok
    assert any(p.startswith(f"{name}: SHA256SUMS says {'0' * 64}") for p in report.problems)
    assert digest != "0" * 64


def test_parse_sha256sums_accepts_binary_mode_and_reports_garbage():
    entries, bad = parse_sha256sums(f"{'a' * 64}  x.zip\n{'B' * 64} *dir/y.bin\nnot a line\n\n")
    assert entries == {"x.zip": "a" * 64, "dir/y.bin": "b" * 64}
    assert bad == ["not a line"]


def test_verify_of_a_folder_without_manifest_fails(tmp_path):
    (tmp_path / "a.csv").write_text("x")
    report = verify_location(str(tmp_path))
    assert not report.ok and "manifest.json is missing" in report.problems[0]
