"""Withdrawal of a published version (RELEASE_SPEC 8): its data leaves, a record stays.

A version holding accounts restored after an appeal is withdrawn from both buckets once its
successor is published. Order, so that a reader never finds a manifest promising files that
are gone, and a rerun after a crash finishes the job:

1. ``releases/<id>/v<N>/manifest.json`` is replaced by the withdrawal record: the original
   manifest's non-identifying fields (title, counts, parameters, sign-offs, changelog...) plus
   ``withdrawn_at`` (ISO 8601 UTC), ``reason``, ``superseded_by`` (the new version number) and
   ``withdrawn_files`` (name, bytes, SHA-256 of every file that was published, for members who
   must delete local copies); ``files`` is empty. Any removed account's identifier (raw id,
   pseudonym, screen name) found in the record's text is replaced by ``[removed]``.
2. Every other object under the version's prefix is deleted, then the prefix is listed again:
   anything left fails the task (retried), so "withdrawn" always means "only the record is left".

A rerun finds the record already there (kept as it is: the first ``withdrawn_at`` stands) and
deletes whatever is left. :func:`leftovers` lists objects of withdrawn versions that are still
there (``ioarchive withdrawal-check``).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ioarchive.devtools import drills
from ioarchive.errors import WithdrawalError
from ioarchive.publish.store import Encryption, ObjectStore
from ioarchive.publish.upload import _MANIFEST_KEY, version_prefix
from ioarchive.publish.verify import MANIFEST_NAME

log = logging.getLogger(__name__)

KEPT_FIELDS: tuple[str, ...] = (
    "manifest_format", "release_id", "version", "variant", "title", "country", "attribution",
    "disclosure_month", "schema_version", "code_version", "generated_at", "parameters", "key_id",
    "pseudonymization", "counts", "exclusions", "reconciliation_balanced", "signoffs", "changelog",
)
"""Fields of the original manifest kept in the record: aggregates and release-level text only."""
REMOVED = "[removed]"


@dataclass
class WithdrawResult:
    bucket: str
    prefix: str
    version: int
    record: dict[str, Any]
    deleted: list[str] = field(default_factory=list)
    already_withdrawn: bool = False

    @property
    def withdrawn_files(self) -> list[dict[str, Any]]:
        return list(self.record.get("withdrawn_files", []))


def _scrub(value: Any, pattern: re.Pattern[str] | None) -> Any:
    if pattern is None:
        return value
    if isinstance(value, str):
        return pattern.sub(REMOVED, value)
    if isinstance(value, list):
        return [_scrub(v, pattern) for v in value]
    if isinstance(value, dict):
        return {k: _scrub(v, pattern) for k, v in value.items()}
    return value


def withdrawal_record(manifest: dict[str, Any], *, reason: str, superseded_by: int, withdrawn_at: str,
                      identifiers: Iterable[str] = ()) -> dict[str, Any]:
    """The record that replaces a withdrawn version's manifest (see the module doc)."""
    tokens = sorted({str(t) for t in identifiers if str(t)}, key=len, reverse=True)
    pattern = (re.compile(r"(?<![A-Za-z0-9_])(?:" + "|".join(re.escape(t) for t in tokens) + r")(?![A-Za-z0-9_])",
                          re.IGNORECASE) if tokens else None)
    record = {k: _scrub(manifest[k], pattern) for k in KEPT_FIELDS if k in manifest}
    record.update(
        files=[],
        withdrawn_at=withdrawn_at,
        reason=_scrub(reason, pattern),
        superseded_by=int(superseded_by),
        withdrawn_files=[{"name": f["name"], "bytes": f["bytes"], "sha256": f["sha256"]}
                         for f in manifest.get("files", []) if isinstance(f, dict) and "name" in f],
    )
    return record


def withdraw_version(
    store: ObjectStore,
    bucket: str,
    release_id: str,
    version: int,
    *,
    reason: str,
    superseded_by: int,
    withdrawn_at: str,
    identifiers: Iterable[str] = (),
    encryption: Encryption | None = None,
) -> WithdrawResult:
    """Withdraw ``releases/<release_id>/v<version>/`` from ``bucket`` (idempotent)."""
    if int(superseded_by) <= int(version):
        raise WithdrawalError(f"v{version} of {release_id} cannot be superseded by v{superseded_by}")
    prefix = version_prefix(release_id, version)
    manifest_key = prefix + MANIFEST_NAME
    where = f"s3://{bucket}/{prefix}"
    present = [k for k, _ in store.list_keys(bucket, prefix)]
    if manifest_key not in present:
        raise WithdrawalError(f"{where} has no manifest.json: v{version} of {release_id} was never published here "
                              "(nothing to withdraw); check the version and the bucket")
    manifest = json.loads(store.get_bytes(bucket, manifest_key))
    already = bool(manifest.get("withdrawn_at"))
    if already:
        record = manifest
    else:
        record = withdrawal_record(manifest, reason=reason, superseded_by=superseded_by, withdrawn_at=withdrawn_at,
                                   identifiers=identifiers)
        data = (json.dumps(record, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()
        store.put_bytes(bucket, manifest_key, data, encryption=encryption, content_type="application/json")
        if store.get_bytes(bucket, manifest_key) != data:
            raise WithdrawalError(f"{manifest_key} read back from s3://{bucket} differs from the withdrawal record")
        drills.hold(drills.WITHDRAW)  # the record is there, the data objects not yet deleted
    result = WithdrawResult(bucket, prefix, int(version), record, already_withdrawn=already)
    doomed = [k for k in present if k != manifest_key]
    if doomed:
        store.delete_keys(bucket, doomed)
    result.deleted = doomed
    left = [k for k, _ in store.list_keys(bucket, prefix) if k != manifest_key]
    if left:
        raise WithdrawalError(f"{where}: {len(left)} objects are still there after the delete (e.g. {left[0]}); "
                              "rerun the withdrawal task, then `ioarchive withdrawal-check`")
    log.info("%s v%d withdrawn from %s: %d objects deleted, withdrawal record kept (superseded by v%d)%s",
             release_id, version, where, len(doomed), superseded_by, " (record already there)" if already else "")
    return result


def leftovers(store: ObjectStore, bucket: str, release_id: str | None = None) -> dict[str, list[str]]:
    """Objects other than the record under every withdrawn version: ``{version prefix: [keys]}``."""
    found: dict[str, list[str]] = {}
    listing = store.list_keys(bucket, f"releases/{release_id}/" if release_id else "releases/")
    by_prefix: dict[str, list[str]] = {}
    for key, _size in listing:
        parts = key.split("/")
        if len(parts) >= 4:
            by_prefix.setdefault("/".join(parts[:3]) + "/", []).append(key)
    for prefix, keys in sorted(by_prefix.items()):
        manifest_key = prefix + MANIFEST_NAME
        if manifest_key not in keys or not _MANIFEST_KEY.match(manifest_key):
            continue
        try:
            manifest = json.loads(store.get_bytes(bucket, manifest_key))
        except (json.JSONDecodeError, UnicodeDecodeError):
            continue
        if manifest.get("withdrawn_at"):
            rest = sorted(k for k in keys if k != manifest_key)
            if rest:
                found[prefix] = rest
    return found


def withdrawn_versions(store: ObjectStore, bucket: str, release_id: str) -> dict[int, dict[str, Any]]:
    """Withdrawal records of a release in ``bucket``, by version."""
    out = {}
    for key, _size in store.list_keys(bucket, f"releases/{release_id}/"):
        match = _MANIFEST_KEY.match(key)
        if match and match.group(1) == release_id:
            manifest = json.loads(store.get_bytes(bucket, key))
            if manifest.get("withdrawn_at"):
                out[int(match.group(2))] = manifest
    return out


def version_holds(store: ObjectStore, bucket: str, release_id: str, version: int, account_ids: Iterable[str]) -> bool:
    """True if the published unhashed version names any of ``account_ids`` as an account or poster.

    Reads only the ``userid`` columns of ``parquet/users.parquet`` and ``parquet/tweets/`` (ranged
    reads, as ``ioarchive diff`` does).
    """
    from ioarchive.render import diff

    source = diff.open_version(f"s3://{bucket}/{version_prefix(release_id, version)}", variant="unhashed",
                               store=store)
    v = diff._load(source)
    wanted = {str(a) for a in account_ids}
    for names in ([diff.USERS_PARQUET], diff._tweets_files(v)):
        ids = diff._read_ids(v, diff._required(v, names), "userid").to_pylist()
        if wanted & {str(i) for i in ids}:
            return True
    return False


def withdraw_superseded(
    store: ObjectStore,
    buckets: dict[str, str],
    release_id: str,
    new_version: int,
    account_ids: Iterable[str],
    *,
    reason: str,
    withdrawn_at: str,
    identifiers: Iterable[str] = (),
    encryption: dict[str, Encryption | None] | None = None,
) -> list[dict[str, Any]]:
    """Withdraw every earlier version holding ``account_ids`` from every bucket (``{variant: bucket}``).

    Which versions hold them is read from the member (unhashed) bucket, whose ids are raw; the same
    versions are withdrawn from every bucket. Returns one entry per withdrawn version and bucket:
    ``{version, variant, url, files}`` (``files`` from the withdrawal record, for the members' notice).
    """
    ids = sorted({str(a) for a in account_ids})
    member = buckets["unhashed"]
    live = []
    for key, _size in store.list_keys(member, f"releases/{release_id}/"):
        match = _MANIFEST_KEY.match(key)
        if match and match.group(1) == release_id and int(match.group(2)) < new_version:
            if not json.loads(store.get_bytes(member, key)).get("withdrawn_at"):
                live.append(int(match.group(2)))
    holding = [n for n in sorted(live) if version_holds(store, member, release_id, n, ids)]
    # A rerun (the task cleared after a crash) finds its own records: finish those too.
    already = [v for v, rec in withdrawn_versions(store, member, release_id).items()
               if rec.get("superseded_by") == new_version]
    out = []
    for n in sorted(set(holding) | set(already)):
        for variant, bucket in sorted(buckets.items()):
            enc = (encryption or {}).get(variant)
            try:
                result = withdraw_version(store, bucket, release_id, n, reason=reason, superseded_by=new_version,
                                          withdrawn_at=withdrawn_at, identifiers=identifiers, encryption=enc)
            except WithdrawalError as exc:
                if "has no manifest.json" in str(exc):  # never published to this bucket
                    log.warning("%s", exc)
                    continue
                raise
            out.append({"version": n, "variant": variant, "url": f"s3://{bucket}/{result.prefix}",
                        "files": result.withdrawn_files, "deleted": len(result.deleted)})
    return out
