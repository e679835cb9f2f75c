"""Check a release version against its own manifest, as a researcher or on-call engineer would.

A version (``s3://bucket/releases/<id>/v<N>/`` or a local folder, e.g. the staged
``release/<variant>/`` or a researcher's download) is sound when:

- ``manifest.json`` parses and lists ``files[]`` with ``name``, ``bytes``, ``sha256``;
- ``SHA256SUMS`` (``sha256sum -c`` format) agrees with the manifest for every file both list;
- every listed file exists, has the listed size, and its bytes hash to the listed SHA-256
  (every byte is read: this is the check that catches a silently corrupted object);
- nothing else is there: an unlisted object fails the check (it was never vetted, and a reader
  cannot tell it from a release file). ``README.md`` unlisted only warns: it is rendered prose,
  not data, but is normally listed in ``SHA256SUMS``.

Publication runs the same check on the staged folder before uploading, so what is published
is exactly what ``ioarchive verify`` accepts.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

from ioarchive.errors import StoreError
from ioarchive.publish.store import ObjectStore, RetryPolicy, parse_s3_url, stream_sha256, with_retries

MANIFEST_NAME = "manifest.json"
SUMS_NAME = "SHA256SUMS"
README_NAME = "README.md"
READ_CHUNK = 4 * 1024**2

_SUMS_LINE = re.compile(r"^([0-9a-fA-F]{64}) [ *](.+)$")
_VERSION_PREFIX = re.compile(r"(?:^|/)releases/([^/]+)/v(\d+)/?$")


class VerifySource(Protocol):
    """Where a version's files are read from (a local folder or an S3 prefix)."""

    location: str

    def listing(self) -> dict[str, int]:
        """Relative name -> size of every file of the version."""
        ...

    def read(self, name: str) -> bytes: ...

    def chunks(self, name: str) -> Iterator[bytes]: ...


class RangeSource(VerifySource, Protocol):
    """A source that can also read part of a file (``ioarchive diff`` reads Parquet id columns only)."""

    def read_range(self, name: str, start: int, length: int) -> bytes:
        """Up to ``length`` bytes of ``name`` from byte ``start`` (fewer only at the end of the file)."""
        ...


class LocalSource:
    """A version as a folder on disk."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.location = str(self.folder)
        self.symlinks: list[str] = []

    def listing(self) -> dict[str, int]:
        if not self.folder.is_dir():
            raise FileNotFoundError(f"{self.folder} is not a folder")
        out: dict[str, int] = {}
        for path in sorted(self.folder.rglob("*")):
            name = path.relative_to(self.folder).as_posix()
            if path.is_symlink():
                self.symlinks.append(name)
            elif path.is_file():
                out[name] = path.stat().st_size
        return out

    def read(self, name: str) -> bytes:
        return (self.folder / name).read_bytes()

    def chunks(self, name: str) -> Iterator[bytes]:
        with open(self.folder / name, "rb") as fh:
            while chunk := fh.read(READ_CHUNK):
                yield chunk

    def read_range(self, name: str, start: int, length: int) -> bytes:
        with open(self.folder / name, "rb") as fh:
            fh.seek(start)
            return fh.read(length)


class S3Source:
    """A version as the objects under ``s3://bucket/prefix``."""

    def __init__(self, store: ObjectStore, bucket: str, prefix: str) -> None:
        self.store = store
        self.bucket = bucket
        self.prefix = prefix if prefix.endswith("/") or not prefix else prefix + "/"
        self.location = f"s3://{bucket}/{self.prefix}"
        self.symlinks: list[str] = []

    def listing(self) -> dict[str, int]:
        return {key[len(self.prefix):]: size for key, size in self.store.list_keys(self.bucket, self.prefix)}

    def read(self, name: str) -> bytes:
        return self.store.get_bytes(self.bucket, self.prefix + name)

    def chunks(self, name: str) -> Iterator[bytes]:
        return self.store.iter_bytes(self.bucket, self.prefix + name)

    def read_range(self, name: str, start: int, length: int) -> bytes:
        """One ranged GET (retried like every store call); a store without a client reads the whole object."""
        if length <= 0:
            return b""
        key = self.prefix + name
        client = getattr(self.store, "client", None)
        if client is None:
            return self.read(name)[start:start + length]
        from botocore.exceptions import ClientError

        what = f"GET s3://{self.bucket}/{key} bytes {start}-{start + length - 1}"
        policy = getattr(self.store, "retry", None) or RetryPolicy.from_env()

        def get() -> bytes:
            body = client.get_object(Bucket=self.bucket, Key=key, Range=f"bytes={start}-{start + length - 1}")["Body"]
            try:
                return bytes(body.read())
            finally:
                body.close()

        try:
            return with_retries(policy, what, get, str(getattr(self.store, "endpoint", "S3")))
        except ClientError as exc:
            err = exc.response.get("Error", {})
            raise StoreError(f"{what} failed: {err.get('Code', '?')}: {err.get('Message', exc)}") from exc


@dataclass
class FileCheck:
    """One listed file: what was expected, what was found."""

    name: str
    expected_bytes: int | None
    expected_sha256: str
    actual_bytes: int | None = None
    actual_sha256: str | None = None
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None


@dataclass
class VerifyReport:
    """The outcome of verifying one version; ``ok`` is False on any problem."""

    location: str
    manifest: dict[str, Any] = field(default_factory=dict)
    manifest_bytes: bytes = b""
    files: list[FileCheck] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def all_problems(self) -> list[str]:
        """Version-level problems, then one line per failed file."""
        return self.problems + [f"{c.name}: {c.problem}" for c in self.files if c.problem]

    @property
    def ok(self) -> bool:
        return not self.all_problems

    def sha256_of(self, name: str) -> str | None:
        """Hex SHA-256 computed for ``name`` during the check (publication reuses it)."""
        for check in self.files:
            if check.name == name:
                return check.actual_sha256
        return None

    def format(self) -> str:
        """Readable report: one line per file, then problems, warnings and the verdict."""
        m = self.manifest
        lines = [f"verify {self.location}"]
        if m:
            lines.append(
                f"  release {m.get('release_id', '?')} v{m.get('version', '?')} variant {m.get('variant', '?')}, "
                f"{len(self.files)} listed files"
            )
        for check in self.files:
            if check.ok:
                lines.append(f"  OK    {check.name} ({check.actual_bytes} bytes, sha256 {check.actual_sha256})")
            else:
                lines.append(f"  FAIL  {check.name}: {check.problem}")
        for problem in self.problems:
            lines.append(f"  PROBLEM {problem}")
        for warning in self.warnings:
            lines.append(f"  WARN  {warning}")
        verdict = "PASSED" if self.ok else f"FAILED ({len(self.all_problems)} problem(s))"
        lines.append(f"{verdict}: {self.location}")
        return "\n".join(lines)


def parse_sha256sums(text: str) -> tuple[dict[str, str], list[str]]:
    """Entries of a ``sha256sum`` file (name -> lowercase hex) and the lines that did not parse."""
    entries: dict[str, str] = {}
    bad: list[str] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        match = _SUMS_LINE.match(line)
        if match:
            entries[match.group(2)] = match.group(1).lower()
        else:
            bad.append(line)
    return entries, bad


def _safe_name(name: Any) -> bool:
    if not isinstance(name, str) or not name or name.startswith("/") or "\\" in name:
        return False
    return ".." not in PurePosixPath(name).parts


def verify_source(source: VerifySource) -> VerifyReport:
    """Check every file of ``source`` against its manifest and SHA256SUMS (reads every byte)."""
    report = VerifyReport(location=source.location)
    try:
        listing = source.listing()
    except Exception as exc:  # noqa: BLE001 - any listing failure is a report line, not a crash
        report.problems.append(f"cannot list {source.location}: {exc}")
        return report
    for name in getattr(source, "symlinks", []):
        report.problems.append(f"{name}: is a symlink; a release folder holds regular files only")
    if MANIFEST_NAME not in listing:
        report.problems.append(f"{MANIFEST_NAME} is missing: this is not a published version (or publication did "
                               "not finish)")
        return report
    try:
        report.manifest_bytes = source.read(MANIFEST_NAME)
        manifest = json.loads(report.manifest_bytes)
    except Exception as exc:  # noqa: BLE001 - unreadable or not JSON: the version cannot be checked
        report.problems.append(f"{MANIFEST_NAME} cannot be read as JSON: {exc}")
        return report
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), list):
        report.problems.append(f"{MANIFEST_NAME} has no files[] list")
        return report
    report.manifest = manifest
    _check_location(source.location, manifest, report)

    expected: dict[str, FileCheck] = {}
    for entry in manifest["files"]:
        name = entry.get("name") if isinstance(entry, dict) else None
        sha = str(entry.get("sha256", "")).lower() if isinstance(entry, dict) else ""
        if not _safe_name(name) or not re.fullmatch(r"[0-9a-f]{64}", sha):
            report.problems.append(f"{MANIFEST_NAME}: malformed entry {entry!r} (needs a relative name and a sha256)")
            continue
        size = entry.get("bytes")
        expected[name] = FileCheck(name, int(size) if isinstance(size, int) else None, sha)

    if SUMS_NAME in listing:
        sums, bad_lines = parse_sha256sums(source.read(SUMS_NAME).decode("utf-8", errors="replace"))
        for line in bad_lines:
            report.problems.append(f"{SUMS_NAME}: unparseable line {line[:120]!r}")
        for name, sha in sums.items():
            if name in (MANIFEST_NAME, SUMS_NAME):
                continue
            if not _safe_name(name):
                report.problems.append(f"{SUMS_NAME}: unsafe file name {name!r}")
            elif name in expected:
                if expected[name].expected_sha256 != sha:
                    report.problems.append(
                        f"{name}: {SUMS_NAME} says {sha}, {MANIFEST_NAME} says {expected[name].expected_sha256}"
                    )
            else:
                expected[name] = FileCheck(name, None, sha)
        for name in expected:
            if name not in sums and name != SUMS_NAME:
                report.problems.append(f"{name}: listed in {MANIFEST_NAME} but missing from {SUMS_NAME}")
    else:
        report.problems.append(f"{SUMS_NAME} is missing")

    for name in sorted(expected):
        check = expected[name]
        report.files.append(check)
        if name not in listing:
            check.problem = "missing"
        else:
            try:
                check.actual_sha256, check.actual_bytes = stream_sha256(source.chunks(name))
            except Exception as exc:  # noqa: BLE001 - an unreadable object is a failed file, not a crash
                check.problem = f"cannot be read: {exc}"
                continue
            if check.expected_bytes is not None and check.actual_bytes != check.expected_bytes:
                check.problem = f"size {check.actual_bytes} bytes, manifest says {check.expected_bytes}"
            elif check.actual_sha256 != check.expected_sha256:
                check.problem = f"sha256 {check.actual_sha256}, listed {check.expected_sha256} (bytes were changed)"

    for name in sorted(set(listing) - set(expected) - {MANIFEST_NAME, SUMS_NAME}):
        if name == README_NAME:
            report.warnings.append(f"{README_NAME} is not listed in {MANIFEST_NAME} or {SUMS_NAME}")
        else:
            report.problems.append(f"{name}: unlisted object (not in {MANIFEST_NAME} or {SUMS_NAME})")
    return report


def _check_location(location: str, manifest: dict[str, Any], report: VerifyReport) -> None:
    """A version under ``releases/<id>/v<N>/`` must carry that id and version in its manifest."""
    match = _VERSION_PREFIX.search(location.rstrip("/") + "/")
    if not match:
        return
    release_id, version = match.group(1), int(match.group(2))
    if manifest.get("release_id") != release_id or manifest.get("version") != version:
        report.problems.append(
            f"{MANIFEST_NAME} describes {manifest.get('release_id')!r} v{manifest.get('version')} but sits at "
            f"releases/{release_id}/v{version}/"
        )


def verify_location(location: str, *, store: ObjectStore | None = None) -> VerifyReport:
    """Verify ``s3://bucket/releases/<id>/v<N>/`` (through ``store``) or a local folder."""
    if location.startswith("s3://"):
        if store is None:
            raise ValueError("an s3:// location needs an object store")
        bucket, prefix = parse_s3_url(location)
        return verify_source(S3Source(store, bucket, prefix))
    return verify_source(LocalSource(location))
