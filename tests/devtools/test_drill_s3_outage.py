"""Drill: the S3 endpoint becomes unreachable in the middle of a publication.

A real moto_server process is frozen with SIGSTOP after a few objects are uploaded (its socket
still accepts connections, nothing answers: requests time out, as with a black-holed network)
and resumed with SIGCONT on the same port. The publication must ride it out under its retry
policy, publish bytes equal to the staged ones, and never show a manifest.json before every
object is there. A second drill exhausts the policy: the task fails with a message on-call can
act on, nothing is visible as published, and a rerun after the outage completes it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import signal
import threading
import time
import uuid
from pathlib import Path

import pytest
from ioarchive.publish.store import RetryPolicy, S3ObjectStore, StoreError, ensure_buckets
from ioarchive.publish.upload import PublishFailed, publish_release, version_prefix
from support.release import write_release
from support.s3 import CREDENTIALS, MotoServer

RELEASE = "outage_202102"
OUTAGE_SECONDS = 3.0


@pytest.fixture(scope="module")
def s3_server():
    """A moto_server of this module's own: the drills freeze it."""
    with MotoServer() as server:
        yield server


def fast_failing_client(server: MotoServer):
    """Short timeouts and no botocore retries, so the store's own policy is what rides it out."""
    import boto3
    from botocore.config import Config

    config = Config(connect_timeout=0.5, read_timeout=1, retries={"total_max_attempts": 1})
    return boto3.client("s3", endpoint_url=server.endpoint_url, config=config, **CREDENTIALS)


class Outage:
    """Freeze the server (SIGSTOP) and thaw it (SIGCONT) after ``seconds`` from a timer thread."""

    def __init__(self, server: MotoServer, seconds: float | None) -> None:
        assert server.process is not None
        self.pid = server.process.pid
        self.seconds = seconds
        self.started = threading.Event()
        self.ended = threading.Event()

    def begin(self) -> None:
        os.kill(self.pid, signal.SIGSTOP)
        self.started.set()
        if self.seconds is not None:
            threading.Timer(self.seconds, self.end).start()

    def end(self) -> None:
        os.kill(self.pid, signal.SIGCONT)
        self.ended.set()


class OutageAfter(S3ObjectStore):
    """The real S3 store; the outage begins right after the ``n``-th object upload returns."""

    def __init__(self, client, outage: Outage, n: int, retry: RetryPolicy) -> None:
        super().__init__(client, retry=retry)
        self.outage, self.n, self.uploads = outage, n, 0

    def upload_file(self, bucket, key, path, sha256, **kwargs):
        super().upload_file(bucket, key, path, sha256, **kwargs)
        self.uploads += 1
        if self.uploads == self.n:
            self.outage.begin()


class Watcher(threading.Thread):
    """A researcher listing ``releases/<id>/`` while the publication runs (when the server answers)."""

    def __init__(self, client, bucket: str, outage: Outage) -> None:
        super().__init__(daemon=True)
        self.client, self.bucket, self.outage = client, bucket, outage
        self.snapshots: list[tuple[bool, dict[str, int]]] = []  # (taken after the outage?, key -> size)
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            if self.outage.started.is_set() and not self.outage.ended.is_set():
                time.sleep(0.01)
                continue
            after = self.outage.ended.is_set()
            try:
                resp = self.client.list_objects_v2(Bucket=self.bucket, Prefix=f"releases/{RELEASE}/")
            except Exception:  # noqa: BLE001 - the listing itself may hit the freeze; skip that one
                continue
            self.snapshots.append((after, {o["Key"]: o["Size"] for o in resp.get("Contents", [])}))
            time.sleep(0.02)


def staged_digests(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def published_digests(client, bucket: str, prefix: str) -> dict[str, str]:
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])]
    return {k[len(prefix):]: hashlib.sha256(client.get_object(Bucket=bucket, Key=k)["Body"].read()).hexdigest()
            for k in keys}


def fresh_bucket(server: MotoServer) -> str:
    suffix = uuid.uuid4().hex[:10]
    ensure_buckets(server.client(), f"pub-{suffix}", f"mem-{suffix}")
    return f"pub-{suffix}"


def test_publication_rides_out_an_outage_and_no_manifest_shows_early(tmp_path, s3_server, caplog):
    bucket = fresh_bucket(s3_server)
    layout = write_release(tmp_path, RELEASE, variants=("hashed",))
    staged = staged_digests(layout.release_dir("hashed"))
    outage = Outage(s3_server, OUTAGE_SECONDS)
    policy = RetryPolicy(attempts=12, base_seconds=0.25, max_seconds=1.0)
    store = OutageAfter(fast_failing_client(s3_server), outage, n=3, retry=policy)
    watcher = Watcher(s3_server.client(), bucket, outage)
    watcher.start()
    caplog.set_level(logging.WARNING, logger="ioarchive.publish.store")
    try:
        result = publish_release(store, staging=tmp_path, release_id=RELEASE, variant="hashed", bucket=bucket)
    finally:
        watcher.stop.set()
        watcher.join(5)
        if outage.started.is_set() and not outage.ended.is_set():
            outage.end()

    assert outage.started.is_set() and outage.ended.is_set(), "the outage did not happen mid-upload"
    assert result.manifest_written and result.uploaded[-1] == "manifest.json"
    assert published_digests(s3_server.client(), bucket, version_prefix(RELEASE, 1)) == staged

    # on-call sees each failed attempt with the policy, and the recovery
    retries = [r.getMessage() for r in caplog.records if r.getMessage().startswith("S3 retry:")]
    assert any("failed" in m and "IOARCHIVE_S3_RETRY_ATTEMPTS=12" in m for m in retries), retries
    assert any("succeeded on attempt" in m for m in retries), retries

    # a reader never found a manifest before every object was there
    manifest_key = version_prefix(RELEASE, 1) + "manifest.json"
    full = {version_prefix(RELEASE, 1) + name for name in staged}
    after = [keys for was_after, keys in watcher.snapshots if was_after]
    assert after, "the watcher listed nothing after the outage"
    assert manifest_key not in after[0], "a manifest was visible right after the outage"
    for _, keys in watcher.snapshots:
        if manifest_key in keys:
            assert set(keys) == full, f"manifest visible with only {len(keys)} of {len(full)} objects"


def test_outage_longer_than_the_policy_fails_cleanly_and_a_rerun_completes(tmp_path, s3_server):
    bucket = fresh_bucket(s3_server)
    layout = write_release(tmp_path, RELEASE, variants=("hashed",))
    outage = Outage(s3_server, None)  # thawed only after the publication gave up
    policy = RetryPolicy(attempts=2, base_seconds=0.1, max_seconds=0.1)
    store = OutageAfter(fast_failing_client(s3_server), outage, n=2, retry=policy)
    try:
        with pytest.raises((PublishFailed, StoreError)) as err:
            publish_release(store, staging=tmp_path, release_id=RELEASE, variant="hashed", bucket=bucket)
    finally:
        outage.end()
    message = str(err.value)
    assert "failed 2 times" in message and "rerun" in message, message
    assert "IOARCHIVE_S3_RETRY_ATTEMPTS=2" in message and s3_server.endpoint_url in message, message

    client = s3_server.client()
    prefix = version_prefix(RELEASE, 1)
    assert prefix + "manifest.json" not in published_digests(client, bucket, prefix)

    rerun = publish_release(S3ObjectStore(client, retry=policy), staging=tmp_path, release_id=RELEASE,
                            variant="hashed", bucket=bucket)
    assert rerun.manifest_written and len(rerun.skipped) >= 2
    assert published_digests(client, bucket, prefix) == staged_digests(layout.release_dir("hashed"))


def test_retry_policy_from_the_environment():
    policy = RetryPolicy.from_env({"IOARCHIVE_S3_RETRY_ATTEMPTS": "4", "IOARCHIVE_S3_RETRY_BASE_SECONDS": "2",
                                   "IOARCHIVE_S3_RETRY_MAX_SECONDS": "5"})
    assert (policy.attempts, policy.base_seconds, policy.max_seconds) == (4, 2.0, 5.0)
    assert [policy.delay(n) for n in (1, 2, 3)] == [2.0, 4.0, 5.0]
    assert policy.describe() == ("IOARCHIVE_S3_RETRY_ATTEMPTS=4, IOARCHIVE_S3_RETRY_BASE_SECONDS=2, "
                                 "IOARCHIVE_S3_RETRY_MAX_SECONDS=5 (up to 11 s of waiting)")
    assert RetryPolicy.from_env({}) == RetryPolicy()
    with pytest.raises(ValueError, match="IOARCHIVE_S3_RETRY_ATTEMPTS='many' is not a number"):
        RetryPolicy.from_env({"IOARCHIVE_S3_RETRY_ATTEMPTS": "many"})
