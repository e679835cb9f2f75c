"""Publish a staged, validated release variant to ``s3://<bucket>/releases/<id>/v<N>/``.

Order of one publication (RELEASE_SPEC sections 6-7; docs/decisions.md "Publication: verify,
upload, verify, manifest last"):

1. policy (cheap, first): the public audience takes only the ``hashed`` variant; every
   audience needs both variants' quality gate (``validation/<variant>/summary.json``
   ``success: true``); a member bucket must block public access and encrypt by default;
2. the staged folder ``release/<variant>/`` passes :func:`ioarchive.publish.verify.verify_source`
   (manifest, SHA256SUMS and bytes agree; nothing unlisted) and its manifest records the
   requested release, variant (``hashed`` for public) and version;
3. the remote version is scanned *before any upload*: an object at the version's prefix with
   other bytes, an object that is not part of the release, or a ``manifest.json`` with other
   content means the version exists with different content: refused, "a change is a new
   version"; nothing is overwritten;
4. missing objects are uploaded (managed transfer, multipart for large files, S3-side SHA-256
   per request/part, ``sha256`` metadata, server-side encryption);
5. every object is verified: HEAD size + ``sha256`` metadata, the server's full-object
   checksum when it has one, and a full read-back for objects up to ``read_back_max_bytes``;
6. ``manifest.json`` is written last and read back. A reader who finds a manifest finds a
   complete, verified version; a failure anywhere before leaves no manifest.

Reruns skip objects already present with the same size and SHA-256, so a retried task costs
HEAD requests only. Every S3 call rides out a transient outage (connection refused, timeouts,
5xx, throttling) under the store's :class:`ioarchive.publish.store.RetryPolicy`
(``IOARCHIVE_S3_RETRY_*``); each retry is logged with the policy, and when the policy is
exhausted the task fails before the manifest, so nothing half-published is visible.
"""

from __future__ import annotations

import base64
import json
import logging
import mimetypes
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ioarchive.devtools import drills
from ioarchive.errors import PublishConflict, PublishFailed, PublishRefused, SummaryError
from ioarchive.publish.store import (
    Encryption,
    ObjectInfo,
    ObjectStore,
    RetryPolicy,
    S3ObjectStore,
    s3_client,
    stream_sha256,
)
from ioarchive.publish.verify import MANIFEST_NAME, LocalSource, verify_source
from ioarchive.schema import VARIANTS
from ioarchive.staging import StagingLayout

log = logging.getLogger(__name__)

AUDIENCES: tuple[str, ...] = ("public", "member")
DEFAULT_AUDIENCE = {"hashed": "public", "unhashed": "member"}
"""Where a variant goes when the caller does not say (RELEASE_SPEC section 1)."""

DEFAULT_READ_BACK_MAX_BYTES = 256 * 1024**2
"""Objects up to this size are downloaded and hashed after upload; larger ones rely on S3's
per-part SHA-256 checks at upload plus HEAD size and ``sha256`` metadata (see decisions.md)."""

CATALOG_FILES: tuple[tuple[str, str], ...] = (
    ("releases.json", "application/json"),
    ("index.html", "text/html; charset=utf-8"),
)
_MANIFEST_KEY = re.compile(r"^releases/([^/]+)/v(\d+)/manifest\.json$")


@dataclass
class PublishResult:
    """What one publication did, in order (the DAG logs it; tests assert on it)."""

    bucket: str
    prefix: str
    release_id: str
    version: int
    variant: str
    audience: str
    uploaded: list[str] = field(default_factory=list)
    """Relative names in upload order; ``manifest.json`` last when it was written."""
    skipped: list[str] = field(default_factory=list)
    """Already present with the same size and SHA-256."""
    copied: dict[str, str] = field(default_factory=dict)
    """Name -> key of an earlier version's object with the same bytes, copied server-side."""
    verified: list[str] = field(default_factory=list)
    read_back: list[str] = field(default_factory=list)
    """Verified by downloading and hashing every byte."""
    multipart: list[str] = field(default_factory=list)
    manifest_written: bool = False
    already_published: bool = False

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def summary(self) -> str:
        state = "already published, verified" if self.already_published else "published"
        return (
            f"{self.release_id} v{self.version} ({self.variant}, {self.audience}) {state} at {self.url}: "
            f"{len(self.uploaded)} uploaded, {len(self.copied)} copied server-side from earlier versions, "
            f"{len(self.skipped)} already present, {len(self.verified)} verified "
            f"({len(self.read_back)} read back, {len(self.multipart)} multipart)"
        )


def version_prefix(release_id: str, version: int) -> str:
    """``releases/<release_id>/v<N>/``: where a version lives in its bucket."""
    return f"releases/{release_id}/v{int(version)}/"


def check_quality_gate(layout: StagingLayout) -> None:
    """Refuse unless every variant's quality summary says ``success: true`` (gate 3)."""
    from ioarchive.quality.summary import load_summary

    for variant in VARIANTS:
        try:
            summary = load_summary(layout, variant)
        except SummaryError as exc:
            raise PublishRefused(f"quality gate: {exc}") from None
        if summary["success"] is not True:
            raise PublishRefused(
                f"quality gate: the {variant} variant of {layout.release_id} did not pass validation "
                f"({layout.validation_summary(variant)}); fix the data and rerun the release, nothing was published"
            )


def check_member_bucket(store: ObjectStore, bucket: str) -> None:
    """A member bucket must block public access and encrypt by default, or nothing goes in."""
    blocked = getattr(store, "public_access_blocked", None)
    encryption = getattr(store, "default_encryption", None)
    if blocked is None or encryption is None:
        raise PublishRefused(f"cannot check the posture of member bucket {bucket}: store has no bucket API")
    if not blocked(bucket):
        raise PublishRefused(
            f"member bucket {bucket} does not block public access (PublicAccessBlock with all four settings); "
            "unhashed data is never published there. Run ensure_buckets / fix the bucket policy first"
        )
    if encryption(bucket) is None:
        raise PublishRefused(
            f"member bucket {bucket} has no default server-side encryption; configure SSE-KMS (or AES256) first"
        )


def publish_release(
    store: ObjectStore,
    *,
    staging: str | Path,
    release_id: str,
    variant: str,
    bucket: str,
    version: int | None = None,
    audience: str | None = None,
    kms_key_id: str | None = None,
    read_back_max_bytes: int = DEFAULT_READ_BACK_MAX_BYTES,
    require_quality_gate: bool = True,
) -> PublishResult:
    """Publish ``<staging>/release/<variant>/`` as ``releases/<id>/v<N>/`` in ``bucket``.

    ``version`` defaults to the manifest's; if given it must match it (the renderer wrote the
    version into README and manifest). Raises PublishRefused/PublishConflict before any upload,
    PublishFailed when an upload or verification fails (no manifest then).
    """
    if variant not in VARIANTS:
        raise PublishRefused(f"unknown variant {variant!r}; expected one of {VARIANTS}")
    audience = audience or DEFAULT_AUDIENCE[variant]
    if audience not in AUDIENCES:
        raise PublishRefused(f"unknown audience {audience!r}; expected one of {AUDIENCES}")
    layout = StagingLayout(Path(staging), release_id)
    release_dir = layout.release_dir(variant)
    if audience == "public" and variant != "hashed":
        raise PublishRefused(
            f"bucket {bucket} is public: only the hashed variant may go there, not {variant!r} of {release_id}; "
            "nothing was uploaded"
        )

    # Cheap policy checks first: they need no hashing of multi-GB files.
    if require_quality_gate:
        check_quality_gate(layout)
    if audience == "member":
        check_member_bucket(store, bucket)

    # The staged folder is self-consistent (this also hashes every file once).
    local = verify_source(LocalSource(release_dir))
    if not local.ok:
        raise PublishRefused(
            f"staged folder {release_dir} does not match its manifest; rerun render for {release_id} "
            "(problems: " + "; ".join(local.all_problems[:10]) + ")"
        )
    manifest = local.manifest
    manifest_variant = manifest.get("variant")
    if audience == "public" and manifest_variant != "hashed":
        raise PublishRefused(
            f"bucket {bucket} is public: only the hashed variant may go there, and {layout.manifest(variant)} "
            f"records variant {manifest_variant!r}"
        )
    if manifest.get("release_id") != release_id or manifest_variant != variant:
        raise PublishRefused(
            f"{layout.manifest(variant)} describes release {manifest.get('release_id')!r} variant "
            f"{manifest_variant!r}, not {release_id!r} {variant!r}"
        )
    manifest_version = manifest.get("version")
    if not isinstance(manifest_version, int) or manifest_version < 1:
        raise PublishRefused(f"{layout.manifest(variant)} has no valid version ({manifest_version!r})")
    if version is not None and int(version) != manifest_version:
        raise PublishRefused(
            f"asked to publish v{version} but {layout.manifest(variant)} is v{manifest_version}; "
            "render the release with the new version first"
        )
    version = manifest_version

    encryption = Encryption(kms_key_id if audience == "member" else None)

    prefix = version_prefix(release_id, version)
    result = PublishResult(bucket, prefix, release_id, version, variant, audience)
    local_files = {c.name: (c.actual_bytes or 0, c.actual_sha256 or "") for c in local.files}
    for name, size in LocalSource(release_dir).listing().items():
        if name not in local_files and name != MANIFEST_NAME:  # SHA256SUMS, unlisted README.md
            local_files[name] = (size, stream_sha256(LocalSource(release_dir).chunks(name))[0])

    retry = getattr(store, "retry", None)
    log.info("publishing %s v%d (%s) to s3://%s/%s: %d files, manifest.json last%s", release_id, version, variant,
             bucket, prefix, len(local_files), f"; S3 retry policy {retry.describe()}" if retry else "")

    # Scan the remote version before touching it.
    present = _scan_remote(store, bucket, prefix, local_files, local.manifest_bytes, result)

    # Upload what is missing (or copy it server-side from an earlier version holding the same
    # bytes, RELEASE_SPEC 8), verify everything, manifest last.
    earlier = earlier_objects(store, bucket, release_id, version) if not result.already_published else {}
    for name in sorted(local_files):
        if name in present:
            result.skipped.append(name)
            continue
        size, sha = local_files[name]
        if _copy_earlier(store, bucket, prefix, name, (size, sha), earlier, encryption, result):
            continue
        log.info("uploading %s (%d bytes) to s3://%s/%s%s", name, size, bucket, prefix, name)
        try:
            store.upload_file(bucket, prefix + name, release_dir / name, sha, encryption=encryption,
                              content_type=_content_type(name))
        except Exception as exc:
            raise PublishFailed(
                f"upload of {name} for {release_id} v{version} to s3://{bucket}/{prefix} failed: {exc}. "
                "No manifest was written; rerun the publish task (verified objects are skipped)"
            ) from exc
        result.uploaded.append(name)
        if len(result.uploaded) == 1:
            drills.hold(drills.PUBLISH)  # one object up, the rest and the manifest not yet
    for name in sorted(local_files):
        _verify_object(store, bucket, prefix, name, local_files[name], read_back_max_bytes, result)

    if result.already_published:
        log.info("%s", result.summary())
        return result
    store.put_bytes(bucket, prefix + MANIFEST_NAME, local.manifest_bytes, encryption=encryption,
                    content_type="application/json")
    if store.get_bytes(bucket, prefix + MANIFEST_NAME) != local.manifest_bytes:
        raise PublishFailed(
            f"manifest.json of {release_id} v{version} read back from s3://{bucket}/{prefix} differs from the "
            "staged one; investigate the bucket before rerunning"
        )
    result.uploaded.append(MANIFEST_NAME)
    result.manifest_written = True
    log.info("%s", result.summary())
    return result


def earlier_objects(store: ObjectStore, bucket: str, release_id: str, version: int) -> dict[str, str]:
    """SHA-256 -> key of each file of the earlier, not withdrawn, versions of the release (newest wins)."""
    versions = []
    for key, _size in store.list_keys(bucket, f"releases/{release_id}/"):
        match = _MANIFEST_KEY.match(key)
        if match and match.group(1) == release_id and int(match.group(2)) < version:
            versions.append(int(match.group(2)))
    found: dict[str, str] = {}
    for n in sorted(versions, reverse=True):
        try:
            manifest = json.loads(store.get_bytes(bucket, version_prefix(release_id, n) + MANIFEST_NAME))
        except (json.JSONDecodeError, UnicodeDecodeError):
            continue
        if manifest.get("withdrawn_at"):
            continue
        for entry in manifest.get("files", []):
            if isinstance(entry, dict) and entry.get("sha256") and entry.get("name"):
                found.setdefault(str(entry["sha256"]), version_prefix(release_id, n) + entry["name"])
    return found


def _copy_earlier(store: ObjectStore, bucket: str, prefix: str, name: str, expected: tuple[int, str],
                  earlier: dict[str, str], encryption: Encryption, result: PublishResult) -> bool:
    """Copy ``name`` server-side from an earlier version with the same bytes; False to upload it."""
    size, sha = expected
    source = earlier.get(sha)
    if source is None or not hasattr(store, "copy_object"):
        return False
    info = store.head(bucket, source)
    if info is None or info.size != size or info.sha256 != sha:
        log.warning("s3://%s/%s does not match its manifest (size or sha256); uploading %s instead of copying it",
                    bucket, source, name)
        return False
    log.info("copying %s (%d bytes) server-side from s3://%s/%s (same SHA-256)", name, size, bucket, source)
    try:
        store.copy_object(bucket, source, prefix + name, size, sha, encryption=encryption,
                          content_type=_content_type(name))
    except Exception as exc:
        raise PublishFailed(
            f"server-side copy of {name} from s3://{bucket}/{source} to s3://{bucket}/{prefix} failed: {exc}. "
            "No manifest was written; rerun the publish task (verified objects are skipped)"
        ) from exc
    result.copied[name] = source
    return True


def _scan_remote(
    store: ObjectStore,
    bucket: str,
    prefix: str,
    local_files: dict[str, tuple[int, str]],
    manifest_bytes: bytes,
    result: PublishResult,
) -> set[str]:
    """Names already published with the same bytes; raise PublishConflict on any difference."""
    where = f"s3://{bucket}/{prefix}"
    new_version_hint = f"a change is a new version: render and publish v{result.version + 1} instead"
    remote = dict(store.list_keys(bucket, prefix))
    manifest_key = prefix + MANIFEST_NAME
    if manifest_key in remote:
        if store.get_bytes(bucket, manifest_key) != manifest_bytes:
            raise PublishConflict(
                f"{where} is already published with a different manifest.json; {new_version_hint}. Nothing was uploaded"
            )
        result.already_published = True
    unknown = sorted(k[len(prefix):] for k in remote if k != manifest_key and k[len(prefix):] not in local_files)
    if unknown:
        raise PublishConflict(
            f"{where} holds objects that are not part of this release ({', '.join(unknown[:5])}); "
            f"{new_version_hint}, or, if no manifest.json exists there, remove them after checking why they exist. "
            "Nothing was uploaded"
        )
    present: set[str] = set()
    differing: list[str] = []
    for name, (size, sha) in local_files.items():
        if prefix + name not in remote:
            continue
        info = store.head(bucket, prefix + name)
        if info is not None and info.size == size and info.sha256 == sha:
            present.add(name)
        else:
            differing.append(name)
    if differing and result.already_published:
        raise PublishConflict(
            f"{where} is published but {', '.join(sorted(differing)[:5])} no longer match its manifest: the "
            f"published version is damaged. Run `ioarchive verify {where}` and page the release owner; "
            "nothing was uploaded or overwritten"
        )
    if differing:
        raise PublishConflict(
            f"{where} already holds {', '.join(sorted(differing)[:5])} with different bytes; {new_version_hint}. "
            "Nothing was uploaded or overwritten"
        )
    if result.already_published and len(present) != len(local_files):
        missing = sorted(set(local_files) - present)
        raise PublishConflict(
            f"{where} has a manifest.json but lacks {', '.join(missing[:5])}: the published version is damaged; "
            "page the release owner, do not republish over it"
        )
    return present


def _verify_object(
    store: ObjectStore,
    bucket: str,
    prefix: str,
    name: str,
    expected: tuple[int, str],
    read_back_max_bytes: int,
    result: PublishResult,
) -> None:
    size, sha = expected
    key = prefix + name
    info: ObjectInfo | None = store.head(bucket, key)
    problem = None
    if info is None:
        problem = "object is missing after upload"
    elif info.size != size:
        problem = f"object has {info.size} bytes, staged file {size}"
    elif info.sha256 != sha:
        problem = f"object metadata sha256 {info.sha256}, staged file {sha}"
    elif info.parts == 1 and info.checksum_sha256 and "-" not in info.checksum_sha256:
        if info.checksum_sha256 != base64.b64encode(bytes.fromhex(sha)).decode("ascii"):
            problem = "S3's SHA-256 of the object differs from the staged file"
    if problem is None and info is not None and size <= read_back_max_bytes:
        actual, actual_size = stream_sha256(store.iter_bytes(bucket, key))
        if actual != sha or actual_size != size:
            problem = f"bytes read back hash to {actual} ({actual_size} bytes), staged file {sha} ({size} bytes)"
        else:
            result.read_back.append(name)
    if problem:
        raise PublishFailed(
            f"verification of s3://{bucket}/{key} failed: {problem}. No manifest was written; check the object "
            "store and rerun the publish task"
        )
    assert info is not None
    if info.parts > 1:
        result.multipart.append(name)
    result.verified.append(name)


def _content_type(name: str) -> str | None:
    if name == "SHA256SUMS":
        return "text/plain; charset=utf-8"
    if name.endswith(".md"):
        return "text/markdown; charset=utf-8"
    if name.endswith(".parquet"):
        return "application/vnd.apache.parquet"
    guessed, _ = mimetypes.guess_type(name)
    return guessed


def publish_catalog(store: ObjectStore, public_bucket: str, rendered_dir: str | Path) -> list[str]:
    """Upload ``catalog/releases.json`` then ``catalog/index.html`` from the rendered catalog.

    The catalog is the one mutable thing in the public bucket: it is rewritten after every
    publication. ``rendered_dir`` is the folder ``render_catalog`` wrote (files directly in it,
    or in its ``catalog/`` subfolder). Returns the keys written.
    """
    rendered = Path(rendered_dir)
    if not (rendered / "index.html").exists() and (rendered / "catalog" / "index.html").exists():
        rendered = rendered / "catalog"
    keys = []
    for name, content_type in CATALOG_FILES:
        path = rendered / name
        if not path.is_file():
            raise PublishRefused(f"catalog file {path} is missing; run the catalog render step first")
        data = path.read_bytes()
        key = f"catalog/{name}"
        store.put_bytes(public_bucket, key, data, content_type=content_type)
        if store.get_bytes(public_bucket, key) != data:
            raise PublishFailed(f"s3://{public_bucket}/{key} read back differs from {path}; rerun the catalog task")
        keys.append(key)
        if len(keys) == 1:
            drills.hold(drills.CATALOG)  # releases.json replaced, index.html not yet
    log.info("catalog published to s3://%s/catalog/ (%s)", public_bucket, ", ".join(keys))
    return keys


def list_published_manifests(store: ObjectStore, bucket: str) -> list[dict[str, Any]]:
    """Every ``releases/<id>/v<N>/manifest.json`` in ``bucket``, parsed, ordered by id then version."""
    found = []
    for key, _size in store.list_keys(bucket, "releases/"):
        match = _MANIFEST_KEY.match(key)
        if match:
            found.append((match.group(1), int(match.group(2)), key))
    manifests = []
    for _release_id, _version, key in sorted(found):
        try:
            manifests.append(json.loads(store.get_bytes(bucket, key)))
        except json.JSONDecodeError as exc:
            raise PublishFailed(f"s3://{bucket}/{key} is not valid JSON ({exc}); run `ioarchive verify` on it") from exc
    return manifests


def s3_store(
    *,
    aws_conn_id: str | None = None,
    endpoint_url: str | None = None,
    multipart_threshold: int | None = None,
    multipart_chunksize: int | None = None,
    retry: RetryPolicy | None = None,
) -> S3ObjectStore:
    """The object store a DAG task (``aws_conn_id``) or the CLI (``endpoint_url``) publishes through.

    ``retry`` defaults to :meth:`RetryPolicy.from_env` (``IOARCHIVE_S3_RETRY_*``).
    """
    kwargs: dict[str, Any] = {"retry": retry or RetryPolicy.from_env()}
    if multipart_threshold:
        kwargs["multipart_threshold"] = multipart_threshold
    if multipart_chunksize:
        kwargs["multipart_chunksize"] = multipart_chunksize
    return S3ObjectStore(s3_client(aws_conn_id=aws_conn_id, endpoint_url=endpoint_url), **kwargs)
