"""Object storage behind publication and verification: one code path for Airflow and the CLI.

The DAG reaches S3 through the Amazon provider (``S3Hook(aws_conn_id).get_conn()``), the CLI
through a plain boto3 client built from an endpoint URL (a local MinIO or moto server). Both end
up as a boto3 S3 client wrapped by :class:`S3ObjectStore`, so publication and verification code
never knows which one it got. :class:`ObjectStore` is the small protocol that code relies on;
tests use the real S3 implementation against a real local S3 HTTP endpoint.

boto3 is imported lazily: this module is imported by modules a DAG file imports.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

from ioarchive import settings
from ioarchive.errors import StoreError

log = logging.getLogger(__name__)
T = TypeVar("T")

SHA256_METADATA_KEY = "sha256"
"""User metadata key (``x-amz-meta-sha256``) holding the hex SHA-256 of an object's bytes."""

DEFAULT_MULTIPART_THRESHOLD = 64 * 1024**2
DEFAULT_MULTIPART_CHUNKSIZE = 64 * 1024**2
READ_CHUNK = 4 * 1024**2
COPY_OBJECT_MAX_BYTES = 5 * 1000**3
"""S3's cap for a single-request CopyObject (5 GB); larger objects use the managed multipart copy."""
DELETE_BATCH = 1000
"""Keys per DeleteObjects request (S3's maximum)."""


RETRY_ENV = {
    "attempts": "IOARCHIVE_S3_RETRY_ATTEMPTS",
    "base_seconds": "IOARCHIVE_S3_RETRY_BASE_SECONDS",
    "max_seconds": "IOARCHIVE_S3_RETRY_MAX_SECONDS",
}
_RETRYABLE_CODES = frozenset({
    "500", "502", "503", "504", "InternalError", "ServiceUnavailable", "SlowDown", "RequestTimeout",
    "RequestTimeoutException", "Throttling", "ThrottlingException", "RequestLimitExceeded",
})


@dataclass(frozen=True)
class RetryPolicy:
    """How long a store call rides out an unreachable, failing or throttling S3 endpoint.

    Attempt ``n`` that fails with a transient error (connection refused or reset, timeout, 5xx,
    throttling) waits ``min(max_seconds, base_seconds * 2**(n-1))`` and tries again, up to
    ``attempts`` tries in all. Deterministic (no jitter): one publisher per bucket prefix, and
    the waits in the log are the ones configured. botocore's own retries happen inside each
    attempt. Settings: ``IOARCHIVE_S3_RETRY_ATTEMPTS`` (8), ``IOARCHIVE_S3_RETRY_BASE_SECONDS`` (1),
    ``IOARCHIVE_S3_RETRY_MAX_SECONDS`` (30): by default about 2.5 minutes of waiting.
    """

    attempts: int = 8
    base_seconds: float = 1.0
    max_seconds: float = 30.0

    def __post_init__(self) -> None:
        if self.attempts < 1 or self.base_seconds < 0 or self.max_seconds < 0:
            raise ValueError(f"invalid S3 retry policy {self}: attempts >= 1, seconds >= 0")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> RetryPolicy:
        """The policy from ``IOARCHIVE_S3_RETRY_*`` (defaults for unset ones)."""
        return cls(attempts=settings.get_int(RETRY_ENV["attempts"], env),
                   base_seconds=settings.get_float(RETRY_ENV["base_seconds"], env),
                   max_seconds=settings.get_float(RETRY_ENV["max_seconds"], env))

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt ``attempt`` (1-based)."""
        return float(min(self.max_seconds, self.base_seconds * 2 ** (attempt - 1)))

    @property
    def total_wait(self) -> float:
        return sum(self.delay(n) for n in range(1, self.attempts))

    def describe(self) -> str:
        return (f"{RETRY_ENV['attempts']}={self.attempts}, {RETRY_ENV['base_seconds']}={self.base_seconds:g}, "
                f"{RETRY_ENV['max_seconds']}={self.max_seconds:g} (up to {self.total_wait:.0f} s of waiting)")


def is_transient(exc: BaseException) -> bool:
    """True for errors a later attempt can cure: no connection, timeouts, 5xx, throttling.

    boto3's managed upload wraps client errors in ``S3UploadFailedError``, so the chain of
    causes is searched too.
    """
    from botocore.exceptions import ClientError, HTTPClientError
    from botocore.exceptions import ConnectionError as BotoConnectionError

    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, (HTTPClientError, BotoConnectionError, ConnectionError, TimeoutError)):
            return True
        if isinstance(seen, ClientError):
            status = str(seen.response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
            return _error_code(seen) in _RETRYABLE_CODES or status in _RETRYABLE_CODES
        seen = seen.__cause__ or seen.__context__
    return False


def with_retries(policy: RetryPolicy, what: str, call: Callable[[], T], endpoint: str = "S3") -> T:
    """``call()`` under ``policy``; transient failures are logged with what on-call can do.

    Other errors propagate unchanged at once. When the attempts run out, StoreError says how
    long it tried, the last error, and that a rerun resumes.
    """
    start = time.monotonic()
    for attempt in range(1, policy.attempts + 1):
        try:
            result = call()
        except Exception as exc:
            if not is_transient(exc):
                raise
            reason = f"{type(exc).__name__}: {exc}"
            if attempt == policy.attempts:
                raise StoreError(
                    f"{what} failed {attempt} times over {time.monotonic() - start:.1f} s, giving up; last error "
                    f"{reason}. Check that {endpoint} is reachable, then rerun the task: objects already "
                    f"uploaded and verified are skipped. Retry policy: {policy.describe()}"
                ) from exc
            wait = policy.delay(attempt)
            log.warning("S3 retry: %s failed (%s); attempt %d of %d, next in %.1f s. Retry policy: %s",
                        what, reason, attempt, policy.attempts, wait, policy.describe())
            time.sleep(wait)
            continue
        if attempt > 1:
            log.warning("S3 retry: %s succeeded on attempt %d after %.1f s of transient errors", what, attempt,
                        time.monotonic() - start)
        return result
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises


@dataclass(frozen=True)
class ObjectInfo:
    """What a HEAD tells about one object."""

    key: str
    size: int
    sha256: str | None
    """Hex SHA-256 from our ``sha256`` metadata, None when the object was not put by us."""
    checksum_sha256: str | None = None
    """Server-computed base64 SHA-256 (full-object for single-part uploads), if returned."""
    parts: int = 1
    """Number of multipart parts (from the ETag suffix); 1 for a single-part upload."""
    server_side_encryption: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Encryption:
    """Server-side encryption requested for every object put in a bucket.

    ``kms_key_id`` set: SSE-KMS with that key; otherwise SSE-S3 (AES256).
    """

    kms_key_id: str | None = None

    def put_args(self) -> dict[str, str]:
        if self.kms_key_id:
            return {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": self.kms_key_id}
        return {"ServerSideEncryption": "AES256"}


class ObjectStore(Protocol):
    """The object operations publication, verification and the catalog need."""

    def head(self, bucket: str, key: str) -> ObjectInfo | None: ...

    def list_keys(self, bucket: str, prefix: str) -> list[tuple[str, int]]: ...

    def upload_file(
        self, bucket: str, key: str, path: Path, sha256: str, *, encryption: Encryption | None = None,
        content_type: str | None = None,
    ) -> None: ...

    def put_bytes(
        self, bucket: str, key: str, data: bytes, *, encryption: Encryption | None = None,
        content_type: str | None = None,
    ) -> None: ...

    def get_bytes(self, bucket: str, key: str) -> bytes: ...

    def iter_bytes(self, bucket: str, key: str) -> Iterator[bytes]: ...

    def copy_object(
        self, bucket: str, source_key: str, key: str, size: int, sha256: str, *,
        encryption: Encryption | None = None, content_type: str | None = None,
    ) -> None: ...

    def delete_keys(self, bucket: str, keys: list[str]) -> None: ...


def stream_sha256(chunks: Iterator[bytes]) -> tuple[str, int]:
    """Hex SHA-256 and byte count of a stream, in constant memory."""
    h = hashlib.sha256()
    size = 0
    for chunk in chunks:
        h.update(chunk)
        size += len(chunk)
    return h.hexdigest(), size


class S3ObjectStore:
    """:class:`ObjectStore` over a boto3 S3 client (from S3Hook or built from an endpoint URL).

    Uploads go through boto3's managed transfer (multipart above ``multipart_threshold``), ask S3
    to check a SHA-256 of every request/part (``ChecksumAlgorithm=SHA256``), and record the
    whole-file hex SHA-256 as ``sha256`` metadata so a later HEAD can compare it cheaply.
    Every call rides out transient endpoint failures under ``retry`` (:class:`RetryPolicy`,
    from the environment by default); a read interrupted mid-object resumes at its offset.
    """

    def __init__(
        self,
        client: Any,
        *,
        multipart_threshold: int = DEFAULT_MULTIPART_THRESHOLD,
        multipart_chunksize: int = DEFAULT_MULTIPART_CHUNKSIZE,
        max_concurrency: int = 4,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.client = client
        self.multipart_threshold = multipart_threshold
        self.multipart_chunksize = multipart_chunksize
        self.max_concurrency = max_concurrency
        self.retry = retry or RetryPolicy.from_env()
        self.copy_object_max_bytes = COPY_OBJECT_MAX_BYTES
        self.requests: dict[str, int] = {}
        """S3 requests sent through this store, by operation (PutObject, CopyObject, UploadPart...)."""
        events = getattr(getattr(client, "meta", None), "events", None)
        if events is not None:
            events.register("before-call.s3", self._count_request, unique_id=f"ioarchive-requests-{id(self)}")

    def _count_request(self, model: Any = None, **_: Any) -> None:
        name = getattr(model, "name", "unknown")
        self.requests[name] = self.requests.get(name, 0) + 1

    @property
    def endpoint(self) -> str:
        """The S3 endpoint this store talks to (for messages)."""
        return str(getattr(getattr(self.client, "meta", None), "endpoint_url", None) or "the S3 endpoint")

    def _call(self, what: str, call: Callable[[], T]) -> T:
        return with_retries(self.retry, what, call, self.endpoint)

    # -- reads --------------------------------------------------------------------------
    def head(self, bucket: str, key: str) -> ObjectInfo | None:
        from botocore.exceptions import ClientError

        try:
            resp = self._call(f"HEAD s3://{bucket}/{key}",
                              lambda: self.client.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED"))
        except ClientError as exc:
            if _error_code(exc) in ("404", "NoSuchKey", "NotFound"):
                return None
            raise StoreError(f"HEAD s3://{bucket}/{key} failed: {_error_text(exc)}") from exc
        metadata = {k.lower(): v for k, v in (resp.get("Metadata") or {}).items()}
        etag = str(resp.get("ETag", "")).strip('"')
        parts = int(etag.rsplit("-", 1)[1]) if "-" in etag and etag.rsplit("-", 1)[1].isdigit() else 1
        return ObjectInfo(
            key=key,
            size=int(resp["ContentLength"]),
            sha256=metadata.get(SHA256_METADATA_KEY),
            checksum_sha256=resp.get("ChecksumSHA256"),
            parts=parts,
            server_side_encryption=resp.get("ServerSideEncryption"),
            metadata=metadata,
        )

    def list_keys(self, bucket: str, prefix: str) -> list[tuple[str, int]]:
        """Every (key, size) under ``prefix``, sorted by key."""
        from botocore.exceptions import ClientError

        def listing() -> list[tuple[str, int]]:
            out: list[tuple[str, int]] = []
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
                out.extend((obj["Key"], int(obj["Size"])) for obj in page.get("Contents", []))
            return out

        try:
            return sorted(self._call(f"listing s3://{bucket}/{prefix}", listing))
        except ClientError as exc:
            raise StoreError(f"listing s3://{bucket}/{prefix} failed: {_error_text(exc)}") from exc

    def get_bytes(self, bucket: str, key: str) -> bytes:
        return b"".join(self.iter_bytes(bucket, key))

    def iter_bytes(self, bucket: str, key: str) -> Iterator[bytes]:
        """The object's bytes in chunks; a transfer cut mid-object resumes at its offset (Range)."""
        from botocore.exceptions import ClientError

        offset = 0
        interruptions = 0
        while True:
            extra = {"Range": f"bytes={offset}-"} if offset else {}
            what = f"GET s3://{bucket}/{key}" + (f" from byte {offset}" if offset else "")
            try:
                body = self._call(what, lambda extra=extra: self.client.get_object(Bucket=bucket, Key=key,
                                                                                   **extra)["Body"])
            except ClientError as exc:
                raise StoreError(f"GET s3://{bucket}/{key} failed: {_error_text(exc)}") from exc
            try:
                for chunk in body.iter_chunks(READ_CHUNK):
                    offset += len(chunk)
                    yield chunk
                return
            except Exception as exc:
                interruptions += 1
                if not is_transient(exc) or interruptions >= self.retry.attempts:
                    raise StoreError(f"reading s3://{bucket}/{key} broke off at byte {offset}: {exc}. "
                                     f"Retry policy: {self.retry.describe()}") from exc
                log.warning("S3 retry: reading s3://%s/%s broke off at byte %d (%s); resuming there in %.1f s",
                            bucket, key, offset, exc, self.retry.delay(interruptions))
                time.sleep(self.retry.delay(interruptions))
            finally:
                body.close()

    # -- writes -------------------------------------------------------------------------
    def upload_file(
        self,
        bucket: str,
        key: str,
        path: Path,
        sha256: str,
        *,
        encryption: Encryption | None = None,
        content_type: str | None = None,
    ) -> None:
        from boto3.exceptions import S3UploadFailedError
        from boto3.s3.transfer import TransferConfig
        from botocore.exceptions import BotoCoreError, ClientError

        extra: dict[str, Any] = {"ChecksumAlgorithm": "SHA256", "Metadata": {SHA256_METADATA_KEY: sha256}}
        if encryption is not None:
            extra.update(encryption.put_args())
        if content_type:
            extra["ContentType"] = content_type
        config = TransferConfig(
            multipart_threshold=self.multipart_threshold,
            multipart_chunksize=self.multipart_chunksize,
            max_concurrency=self.max_concurrency,
        )
        try:
            self._call(f"upload of {path.name} to s3://{bucket}/{key}",
                       lambda: self.client.upload_file(str(path), bucket, key, ExtraArgs=extra, Config=config))
        except (ClientError, BotoCoreError, S3UploadFailedError) as exc:
            raise StoreError(f"upload of {path} to s3://{bucket}/{key} failed: {exc}") from exc

    def put_bytes(
        self,
        bucket: str,
        key: str,
        data: bytes,
        *,
        encryption: Encryption | None = None,
        content_type: str | None = None,
    ) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        args: dict[str, Any] = {
            "Bucket": bucket,
            "Key": key,
            "Body": data,
            "ChecksumAlgorithm": "SHA256",
            "Metadata": {SHA256_METADATA_KEY: hashlib.sha256(data).hexdigest()},
        }
        if encryption is not None:
            args.update(encryption.put_args())
        if content_type:
            args["ContentType"] = content_type
        try:
            self._call(f"PUT s3://{bucket}/{key}", lambda: self.client.put_object(**args))
        except (ClientError, BotoCoreError) as exc:
            raise StoreError(f"PUT s3://{bucket}/{key} failed: {exc}") from exc

    def copy_object(
        self,
        bucket: str,
        source_key: str,
        key: str,
        size: int,
        sha256: str,
        *,
        encryption: Encryption | None = None,
        content_type: str | None = None,
    ) -> None:
        """Server-side copy within ``bucket`` (no byte passes through this machine).

        CopyObject up to 5 GB, boto3's managed multipart copy (UploadPartCopy) above. The
        ``sha256`` metadata and encryption are set explicitly (a managed copy does not carry the
        source's metadata), so the copy verifies like an upload.
        """
        from boto3.s3.transfer import TransferConfig
        from botocore.exceptions import BotoCoreError, ClientError

        meta = {SHA256_METADATA_KEY: sha256}
        extra: dict[str, Any] = dict(encryption.put_args()) if encryption is not None else {}
        if content_type:
            extra["ContentType"] = content_type
        source = {"Bucket": bucket, "Key": source_key}
        what = f"copy of s3://{bucket}/{source_key} to {key}"
        try:
            if size <= self.copy_object_max_bytes:
                self._call(what, lambda: self.client.copy_object(
                    CopySource=source, Bucket=bucket, Key=key, MetadataDirective="REPLACE", Metadata=meta,
                    ChecksumAlgorithm="SHA256", **extra))
            else:
                config = TransferConfig(multipart_threshold=self.copy_object_max_bytes,
                                        multipart_chunksize=self.multipart_chunksize,
                                        max_concurrency=self.max_concurrency)
                self._call(what, lambda: self.client.copy(source, bucket, key, ExtraArgs={**extra, "Metadata": meta},
                                                          Config=config))
        except (ClientError, BotoCoreError) as exc:
            raise StoreError(f"{what} failed: {exc}") from exc

    def delete_keys(self, bucket: str, keys: list[str]) -> None:
        """Delete ``keys`` (DeleteObjects, 1,000 per request); any key not deleted is an error."""
        from botocore.exceptions import BotoCoreError, ClientError

        for start in range(0, len(keys), DELETE_BATCH):
            batch = keys[start:start + DELETE_BATCH]
            request = {"Objects": [{"Key": k} for k in batch], "Quiet": True}
            try:
                resp = self._call(f"delete of {len(batch)} objects in s3://{bucket}",
                                  lambda request=request: self.client.delete_objects(Bucket=bucket, Delete=request))
            except (ClientError, BotoCoreError) as exc:
                raise StoreError(f"delete of {len(batch)} objects in s3://{bucket} failed: {exc}") from exc
            errors = resp.get("Errors") or []
            if errors:
                first = errors[0]
                raise StoreError(f"s3://{bucket}: {len(errors)} objects not deleted, e.g. {first.get('Key')}: "
                                 f"{first.get('Code')} {first.get('Message')}")

    # -- bucket posture -----------------------------------------------------------------
    def public_access_blocked(self, bucket: str) -> bool:
        """True when all four public access block settings are on for ``bucket``."""
        from botocore.exceptions import ClientError

        try:
            conf = self._call(f"reading the public access block of s3://{bucket}",
                              lambda: self.client.get_public_access_block(Bucket=bucket))["PublicAccessBlockConfiguration"]
        except ClientError as exc:
            if _error_code(exc) == "NoSuchPublicAccessBlockConfiguration":
                return False
            if _error_code(exc) == "NotImplemented":
                # MinIO has no public access block API; there a bucket is private when no
                # bucket policy grants anything to everyone ("Principal": "*").
                return not self._policy_grants_everyone(bucket)
            raise StoreError(f"reading the public access block of s3://{bucket} failed: {_error_text(exc)}") from exc
        return all(conf.get(k) for k in _PUBLIC_ACCESS_BLOCK)

    def _policy_grants_everyone(self, bucket: str) -> bool:
        import json

        from botocore.exceptions import ClientError

        try:
            policy = json.loads(self._call(f"reading the bucket policy of s3://{bucket}",
                                           lambda: self.client.get_bucket_policy(Bucket=bucket))["Policy"])
        except ClientError as exc:
            if _error_code(exc) == "NoSuchBucketPolicy":
                return False
            raise StoreError(f"reading the bucket policy of s3://{bucket} failed: {_error_text(exc)}") from exc
        for statement in policy.get("Statement", []):
            principal = statement.get("Principal")
            if statement.get("Effect") == "Allow" and (
                principal == "*" or (isinstance(principal, dict) and "*" in _as_list(principal.get("AWS")))
            ):
                return True
        return False

    def default_encryption(self, bucket: str) -> str | None:
        """The bucket's default SSE algorithm (``AES256``, ``aws:kms``...), None if not configured."""
        from botocore.exceptions import ClientError

        try:
            rules = self._call(f"reading the default encryption of s3://{bucket}",
                               lambda: self.client.get_bucket_encryption(Bucket=bucket))[
                "ServerSideEncryptionConfiguration"]["Rules"]
        except ClientError as exc:
            if _error_code(exc) == "ServerSideEncryptionConfigurationNotFoundError":
                return None
            raise StoreError(f"reading the default encryption of s3://{bucket} failed: {_error_text(exc)}") from exc
        for rule in rules:
            algo = rule.get("ApplyServerSideEncryptionByDefault", {}).get("SSEAlgorithm")
            if algo:
                return str(algo)
        return None


def _as_list(value: object) -> list:
    return value if isinstance(value, list) else [value]


_PUBLIC_ACCESS_BLOCK = ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets")


def s3_client(*, endpoint_url: str | None = None, aws_conn_id: str | None = None, region: str | None = None) -> Any:
    """A boto3 S3 client: from an Airflow AWS connection, or plain boto3 (env credentials).

    ``aws_conn_id`` wins when given (its extra ``endpoint_url`` points it at a local server);
    otherwise boto3's usual credential chain is used, with ``endpoint_url`` if given.
    """
    if aws_conn_id:
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook

        return S3Hook(aws_conn_id=aws_conn_id).get_conn()
    import boto3

    return boto3.client("s3", endpoint_url=endpoint_url, region_name=region)


def ensure_buckets(
    client: Any, public_bucket: str, member_bucket: str, *, kms_key_id: str | None = None
) -> None:
    """Create the public and member buckets if missing (local stack / first deployment).

    The member bucket gets default encryption (SSE-KMS with ``kms_key_id`` if given, else
    AES256) and a full public access block; publication refuses a member bucket without them.
    Idempotent: existing buckets are kept, their member settings (re)applied.
    """
    from botocore.exceptions import ClientError

    for bucket in (public_bucket, member_bucket):
        try:
            client.head_bucket(Bucket=bucket)
        except ClientError:
            client.create_bucket(Bucket=bucket)
    rule: dict[str, Any] = {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": kms_key_id} if kms_key_id else {
        "SSEAlgorithm": "AES256"
    }
    client.put_bucket_encryption(
        Bucket=member_bucket,
        ServerSideEncryptionConfiguration={"Rules": [{"ApplyServerSideEncryptionByDefault": rule}]},
    )
    client.put_public_access_block(
        Bucket=member_bucket,
        PublicAccessBlockConfiguration={k: True for k in _PUBLIC_ACCESS_BLOCK},
    )


def parse_s3_url(url: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix/`` -> (``bucket``, ``some/prefix/``)."""
    if not url.startswith("s3://"):
        raise ValueError(f"{url!r} is not an s3:// URL")
    bucket, _, prefix = url[len("s3://"):].partition("/")
    if not bucket:
        raise ValueError(f"{url!r} names no bucket")
    return bucket, prefix


def _error_code(exc: Exception) -> str:
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))


def _error_text(exc: Exception) -> str:
    err = getattr(exc, "response", {}).get("Error", {})
    return f"{err.get('Code', '?')}: {err.get('Message', exc)}"
