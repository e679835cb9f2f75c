"""The local stack's persistent S3 server: what it acknowledged survives a stop and a kill -9.

A real server process (``ioarchive.devtools.s3server``) on loopback, reached with boto3 and with
publish/store.py's own calls: bucket settings by ``ensure_buckets``, uploads by
``S3ObjectStore`` (a multipart one, with SHA-256 checksums and metadata), a CopyObject, a
DeleteObject, a DeleteObjects and a bucket policy. Then the server is stopped (SIGTERM) and
started again on the same folder, then killed (SIGKILL) and started again: every key, byte,
ETag, checksum, metadata item, last-modified time and bucket setting is as acknowledged.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest
from ioarchive.publish.store import S3ObjectStore, ensure_buckets
from support.s3 import MotoServer

PUBLIC, MEMBER = "persist-public", "persist-members"
POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Sid": "PublicRead", "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
                   "Resource": f"arn:aws:s3:::{PUBLIC}/releases/*"}],
}


def _state(client: Any) -> dict[str, Any]:
    """Everything the release code reads back, per bucket and key."""
    state: dict[str, Any] = {"buckets": sorted(b["Name"] for b in client.list_buckets()["Buckets"])}
    for bucket in (PUBLIC, MEMBER):
        objects = {}
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for obj in page.get("Contents", []):
                head = client.head_object(Bucket=bucket, Key=obj["Key"], ChecksumMode="ENABLED")
                objects[obj["Key"]] = {
                    "etag": obj["ETag"],
                    "size": obj["Size"],
                    "last_modified": obj["LastModified"],
                    "sha256_of_bytes": hashlib.sha256(
                        client.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()).hexdigest(),
                    "metadata": head.get("Metadata"),
                    "checksum": head.get("ChecksumSHA256"),
                    "content_type": head.get("ContentType"),
                    "encryption": head.get("ServerSideEncryption"),
                }
        state[bucket] = objects
    state["member_encryption"] = client.get_bucket_encryption(Bucket=MEMBER)["ServerSideEncryptionConfiguration"]
    state["member_block"] = client.get_public_access_block(Bucket=MEMBER)["PublicAccessBlockConfiguration"]
    state["public_policy"] = json.loads(client.get_bucket_policy(Bucket=PUBLIC)["Policy"])
    return state


def _publish_representative_set(client: Any, tmp_path: Path) -> None:
    ensure_buckets(client, PUBLIC, MEMBER)
    client.put_bucket_policy(Bucket=PUBLIC, Policy=json.dumps(POLICY))
    store = S3ObjectStore(client, multipart_threshold=5 * 1024**2, multipart_chunksize=5 * 1024**2)
    big = tmp_path / "media_1.zip"
    big.write_bytes(os.urandom(11 * 1024**2 + 123))  # three parts
    store.upload_file(MEMBER, "releases/r/v1/media_1.zip", big, hashlib.sha256(big.read_bytes()).hexdigest(),
                      content_type="application/zip")
    store.put_bytes(PUBLIC, "releases/r/v1/README.md", b"# r v1\n", content_type="text/markdown")
    store.put_bytes(PUBLIC, "releases/r/v1/gone.txt", b"deleted below\n")
    for i in range(3):
        store.put_bytes(PUBLIC, f"tmp/{i}.txt", f"batch {i}\n".encode())
    client.copy_object(Bucket=PUBLIC, Key="releases/r/v2/media_1.zip",
                       CopySource={"Bucket": MEMBER, "Key": "releases/r/v1/media_1.zip"}, ChecksumAlgorithm="SHA256")
    store.put_bytes(PUBLIC, "catalog/index.html", b"<p>v1</p>")
    store.put_bytes(PUBLIC, "catalog/index.html", b"<p>v1, v2</p>")  # overwritten in place
    client.delete_object(Bucket=PUBLIC, Key="releases/r/v1/gone.txt")
    client.delete_objects(Bucket=PUBLIC, Delete={"Objects": [{"Key": f"tmp/{i}.txt"} for i in range(3)]})


def test_state_survives_a_stop_and_a_kill_9(tmp_path):
    data = tmp_path / "s3"
    with MotoServer(data_dir=data) as server:
        client = server.client()
        _publish_representative_set(client, tmp_path)
        before = _state(client)
        server.stop()
    # What the test wrote is really there (a test that cannot fail is a defect).
    assert sorted(before[PUBLIC]) == ["catalog/index.html", "releases/r/v1/README.md", "releases/r/v2/media_1.zip"]
    assert sorted(before[MEMBER]) == ["releases/r/v1/media_1.zip"]
    multipart = before[MEMBER]["releases/r/v1/media_1.zip"]
    assert multipart["etag"].endswith('-3"') and multipart["checksum"]
    assert before[PUBLIC]["releases/r/v2/media_1.zip"]["sha256_of_bytes"] == multipart["sha256_of_bytes"]
    assert before["member_encryption"]["Rules"][0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    assert all(before["member_block"].values())

    with MotoServer(data_dir=data) as server:  # after a clean stop
        client = server.client()
        assert _state(client) == before
        client.put_object(Bucket=PUBLIC, Key="releases/r/v2/README.md", Body=b"# r v2\n")
        client.delete_object(Bucket=PUBLIC, Key="catalog/index.html")
        expected = _state(client)
        server.kill()  # no chance to flush anything: each change was on disk when acknowledged

    assert "releases/r/v2/README.md" in expected[PUBLIC] and "catalog/index.html" not in expected[PUBLIC]
    with MotoServer(data_dir=data) as server:
        assert _state(server.client()) == expected


def test_another_moto_version_refuses_the_folder(tmp_path):
    from ioarchive.devtools.s3server import FolderStore

    data = tmp_path / "s3"
    data.mkdir()
    (data / "FORMAT").write_text("moto 0.0.1\n")
    with pytest.raises(SystemExit, match=r"written by moto 0\.0\.1.*make clean-s3"):
        FolderStore(data).check_format()
