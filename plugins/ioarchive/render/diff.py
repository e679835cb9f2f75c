"""What changed between two published versions of one variant (RELEASE_SPEC section 8).

A side is a version as published: a release folder holding ``manifest.json`` (a staging
folder's ``release/<variant>/`` or a researcher's download) or ``s3://<bucket>/releases/<id>/v<N>/``.
:func:`open_version` turns a location into a source (``ioarchive.publish.verify`` sources);
:func:`diff_versions` compares two sources:

- accounts by ``userid`` as published in that variant (pseudonym or raw id), from
  ``parquet/users.parquet``;
- posts by ``tweetid``, from every ``parquet/tweets/*.parquet`` the manifest lists;
- media by the media index's ``(media_key, path_in_archive)``, from ``parquet/media_index.parquet``
  (a version without a media index has no media);
- files by name from the two manifests' ``files`` lists: added, removed, and changed SHA-256
  (``manifest.json`` does not list itself, so it is never reported).

Only the id columns are read (pyarrow, column projection: a Parquet column chunk is read on its
own, so the text columns of a few million posts are never fetched; over S3 each column chunk is
one ranged GET). Sets are compared as arrays, never Python sets: canonical decimal ids as uint64
by sort and binary search (numpy), other ids with ``pyarrow.compute.is_in``. Output is deterministic: ids in numeric order when decimal, otherwise in byte order; media
by path in archive; files by name.

:meth:`ReleaseDiff.summary_markdown` gives counts and file names only, never ids: the hashed
variant's changelog is public and the unhashed one's ids are raw.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ioarchive.errors import DiffError, ReleaseError
from ioarchive.publish.verify import MANIFEST_NAME, LocalSource, RangeSource, S3Source
from ioarchive.schema import VARIANTS
from ioarchive.staging import StagingLayout

if TYPE_CHECKING:
    import pyarrow as pa

    from ioarchive.publish.store import ObjectStore

USERS_PARQUET = "parquet/users.parquet"
TWEETS_PARQUET_DIR = "parquet/tweets/"
MEDIA_INDEX_PARQUET = "parquet/media_index.parquet"
MEDIA_FIELDS: tuple[str, ...] = ("path_in_archive", "media_key", "archive", "kind", "tweetid", "userid")
"""Columns of a media row in the diff (identity: media_key and path_in_archive)."""

DEFAULT_SHOW = 50
"""Ids listed per section by the readable table (``--json`` lists all)."""


# --- the result ------------------------------------------------------------------------------

@dataclass(frozen=True)
class VersionInfo:
    """One side of a diff, as its manifest describes it."""

    location: str
    release_id: str | None
    version: int | None
    variant: str | None

    def label(self) -> str:
        return f"{self.release_id or '?'} v{self.version if self.version is not None else '?'} ({self.variant or '?'})"

    def to_dict(self) -> dict[str, Any]:
        return {"location": self.location, "release_id": self.release_id, "version": self.version,
                "variant": self.variant}


@dataclass
class ReleaseDiff:
    """Accounts, posts, media and files added and removed between ``old`` and ``new``."""

    old: VersionInfo
    new: VersionInfo
    accounts_added: list[str] = field(default_factory=list)
    accounts_removed: list[str] = field(default_factory=list)
    posts_added: list[str] = field(default_factory=list)
    posts_removed: list[str] = field(default_factory=list)
    media_added: list[dict[str, Any]] = field(default_factory=list)
    media_removed: list[dict[str, Any]] = field(default_factory=list)
    files_added: list[dict[str, Any]] = field(default_factory=list)
    files_removed: list[dict[str, Any]] = field(default_factory=list)
    files_changed: list[dict[str, Any]] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not any((self.accounts_added, self.accounts_removed, self.posts_added, self.posts_removed,
                        self.media_added, self.media_removed, self.files_added, self.files_removed,
                        self.files_changed))

    def counts(self) -> dict[str, dict[str, int]]:
        return {
            "accounts": {"added": len(self.accounts_added), "removed": len(self.accounts_removed)},
            "posts": {"added": len(self.posts_added), "removed": len(self.posts_removed)},
            "media": {"added": len(self.media_added), "removed": len(self.media_removed)},
            "files": {"added": len(self.files_added), "removed": len(self.files_removed),
                      "changed": len(self.files_changed)},
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "old": self.old.to_dict(),
            "new": self.new.to_dict(),
            "empty": self.empty,
            "counts": self.counts(),
            "accounts": {"added": self.accounts_added, "removed": self.accounts_removed},
            "posts": {"added": self.posts_added, "removed": self.posts_removed},
            "media": {"added": self.media_added, "removed": self.media_removed},
            "files": {"added": self.files_added, "removed": self.files_removed, "changed": self.files_changed},
        }

    def to_json(self) -> str:
        """Canonical JSON: sorted keys, sorted lists, 2-space indent, trailing newline."""
        return json.dumps(self.to_dict(), sort_keys=True, indent=2, ensure_ascii=False) + "\n"

    def summary_lines(self) -> list[str]:
        """Counts only (no ids), one line per kind that changed; ``["No changes."]`` when empty."""
        lines = []
        for what, label in (("accounts", "accounts"), ("posts", "posts"), ("media", "media files")):
            c = self.counts()[what]
            parts = [f"{c[k]} {k}" for k in ("added", "removed") if c[k]]
            if parts:
                lines.append(f"{label.capitalize()}: {', '.join(parts)}")
        c = self.counts()["files"]
        parts = [f"{c[k]} {k}" for k in ("added", "removed", "changed") if c[k]]
        if parts:
            lines.append(f"Files: {', '.join(parts)}")
        return lines or ["No changes."]

    def summary_markdown(self) -> str:
        """A short Markdown block for the changelog and the reviewer's page: counts and file names, no ids."""
        head = f"Changes from v{self.old.version} to v{self.new.version}" if self.old.version is not None else "Changes"
        if self.empty:
            return f"{head}: none (same files, accounts, posts and media).\n"
        out = [f"{head}:", ""]
        out += [f"- {line}" for line in self.summary_lines()]
        for key, verb in (("files_added", "added"), ("files_removed", "removed"), ("files_changed", "changed")):
            names = [f["name"] for f in getattr(self, key)]
            if names:
                out.append(f"- Files {verb}: " + ", ".join(f"`{n}`" for n in names))
        return "\n".join(out) + "\n"

    def format(self, show: int | None = DEFAULT_SHOW) -> str:
        """The readable table: counts, then each list (at most ``show`` entries each; None = all)."""
        lines = [f"diff  old: {self.old.label()}  {self.old.location}",
                 f"      new: {self.new.label()}  {self.new.location}", ""]
        counts = self.counts()
        lines.append(f"  {'':<10}{'added':>10}{'removed':>10}{'changed':>10}")
        for what in ("accounts", "posts", "media", "files"):
            c = counts[what]
            changed = str(c["changed"]) if "changed" in c else ""
            lines.append(f"  {what:<10}{c['added']:>10}{c['removed']:>10}{changed:>10}")
        sections: list[tuple[str, str, list[str]]] = [
            ("accounts added", "+", self.accounts_added),
            ("accounts removed", "-", self.accounts_removed),
            ("posts added", "+", self.posts_added),
            ("posts removed", "-", self.posts_removed),
            ("media added", "+", [_media_line(m) for m in self.media_added]),
            ("media removed", "-", [_media_line(m) for m in self.media_removed]),
            ("files added", "+", [f"{f['name']}  ({f['bytes']} bytes)" for f in self.files_added]),
            ("files removed", "-", [f"{f['name']}  ({f['bytes']} bytes)" for f in self.files_removed]),
            ("files changed", "~", [f"{f['name']}  ({f['old_bytes']} -> {f['new_bytes']} bytes, sha256 "
                                    f"{f['old_sha256'][:12]}.. -> {f['new_sha256'][:12]}..)"
                                    for f in self.files_changed]),
        ]
        for title, mark, items in sections:
            if not items:
                continue
            lines += ["", f"{title} ({len(items)}):"]
            shown = items if show is None else items[:show]
            lines += [f"  {mark} {item}" for item in shown]
            if len(shown) < len(items):
                lines.append(f"  ... and {len(items) - len(shown)} more (--json or --show 0 lists all)")
        lines += ["", "no differences" if self.empty else "; ".join(self.summary_lines())]
        return "\n".join(lines)


def _media_line(m: dict[str, Any]) -> str:
    return f"{m['path_in_archive']}  (media_key {m['media_key']}, {m['archive']})"


# --- opening a version -----------------------------------------------------------------------

def open_version(location: str, *, variant: str = "hashed", store: ObjectStore | None = None) -> RangeSource:
    """The source of ``location``: an ``s3://`` version, a release folder, or a staging folder's variant."""
    if variant not in VARIANTS:
        raise DiffError(f"unknown variant {variant!r}; expected one of {VARIANTS}")
    if location.startswith("s3://"):
        if store is None:
            raise DiffError(f"{location}: an s3:// location needs an object store (--endpoint-url or --aws-conn-id)")
        from ioarchive.publish.store import parse_s3_url

        try:
            bucket, prefix = parse_s3_url(location)
        except ValueError as exc:
            raise DiffError(str(exc)) from None
        return S3Source(store, bucket, prefix)
    path = Path(location)
    if (path / MANIFEST_NAME).is_file():
        return LocalSource(path)
    staged = StagingLayout(path, "").release_dir(variant)
    if (staged / MANIFEST_NAME).is_file():
        return LocalSource(staged)
    if not path.is_dir():
        raise DiffError(f"{location} is neither a folder nor an s3:// URL")
    if staged.is_dir():
        raise DiffError(f"{staged} has no {MANIFEST_NAME}: the {variant} variant of this staging folder is not "
                        "rendered yet (run `ioarchive render`)")
    raise DiffError(f"{location} holds no {MANIFEST_NAME} and no release/{variant}/{MANIFEST_NAME}: "
                    "not a release folder nor a staging folder")


# --- comparing -------------------------------------------------------------------------------

@dataclass
class _Version:
    source: RangeSource
    info: VersionInfo
    files: dict[str, dict[str, Any]]


def _load(source: RangeSource) -> _Version:
    try:
        data = source.read(MANIFEST_NAME)
    except FileNotFoundError:
        raise DiffError(f"{source.location}: {MANIFEST_NAME} is missing: not a published version "
                        "(or its publication did not finish)") from None
    except OSError as exc:
        raise DiffError(f"{source.location}: cannot read {MANIFEST_NAME}: {exc}") from None
    except Exception as exc:
        if _is_missing_object(exc):
            raise DiffError(f"{source.location}: {MANIFEST_NAME} is missing: not a published version "
                            "(or its publication did not finish)") from None
        if isinstance(exc, ReleaseError):  # a StoreError after its retries: keeps its own retry verdict
            raise
        raise DiffError(f"{source.location}: cannot read {MANIFEST_NAME}: {type(exc).__name__}: {exc}") from exc
    try:
        manifest = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DiffError(f"{source.location}: {MANIFEST_NAME} is not valid JSON ({exc})") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), list):
        raise DiffError(f"{source.location}: {MANIFEST_NAME} has no files[] list: not a release manifest")
    if manifest.get("withdrawn_at"):
        raise DiffError(
            f"{source.location}: v{manifest.get('version')} was withdrawn at {manifest['withdrawn_at']} "
            f"(superseded by {manifest.get('superseded_by')}); its data is gone, only the withdrawal record stays"
        )
    files: dict[str, dict[str, Any]] = {}
    for entry in manifest["files"]:
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) or not entry.get("sha256"):
            raise DiffError(f"{source.location}: {MANIFEST_NAME} has a malformed file entry {entry!r}")
        files[entry["name"]] = {"bytes": entry.get("bytes"), "sha256": str(entry["sha256"]).lower()}
    version = manifest.get("version")
    info = VersionInfo(source.location, manifest.get("release_id"),
                       version if isinstance(version, int) else None, manifest.get("variant"))
    return _Version(source, info, files)


def _is_missing_object(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        code = str(getattr(seen, "response", {}).get("Error", {}).get("Code", ""))
        if code in ("404", "NoSuchKey", "NotFound"):
            return True
        seen = seen.__cause__
    return False


def diff_versions(old_source: RangeSource, new_source: RangeSource) -> ReleaseDiff:
    """Compare two versions of one variant; raises DiffError if either cannot be read."""
    old, new = _load(old_source), _load(new_source)
    if old.info.variant != new.info.variant:
        raise DiffError(
            f"{old.info.location} is variant {old.info.variant!r} but {new.info.location} is {new.info.variant!r}: "
            "ids differ between variants, compare two versions of the same variant"
        )
    diff = ReleaseDiff(old.info, new.info)
    diff.files_added, diff.files_removed, diff.files_changed = _diff_files(old.files, new.files)

    diff.accounts_added, diff.accounts_removed = _diff_ids(
        _read_ids(old, _required(old, [USERS_PARQUET]), "userid"),
        _read_ids(new, _required(new, [USERS_PARQUET]), "userid"))
    diff.posts_added, diff.posts_removed = _diff_ids(
        _read_ids(old, _required(old, _tweets_files(old)), "tweetid"),
        _read_ids(new, _required(new, _tweets_files(new)), "tweetid"))
    diff.media_added, diff.media_removed = _diff_media(_read_media(old), _read_media(new))
    return diff


def _diff_files(old: dict[str, dict[str, Any]], new: dict[str, dict[str, Any]]) -> tuple[list, list, list]:
    added = [{"name": n, "bytes": new[n]["bytes"], "sha256": new[n]["sha256"]} for n in sorted(set(new) - set(old))]
    removed = [{"name": n, "bytes": old[n]["bytes"], "sha256": old[n]["sha256"]} for n in sorted(set(old) - set(new))]
    changed = [
        {"name": n, "old_bytes": old[n]["bytes"], "new_bytes": new[n]["bytes"],
         "old_sha256": old[n]["sha256"], "new_sha256": new[n]["sha256"]}
        for n in sorted(set(old) & set(new)) if old[n]["sha256"] != new[n]["sha256"]
    ]
    return added, removed, changed


def _tweets_files(v: _Version) -> list[str]:
    names = sorted(n for n in v.files if n.startswith(TWEETS_PARQUET_DIR) and n.endswith(".parquet"))
    if not names:
        raise DiffError(f"{v.info.location}: {MANIFEST_NAME} lists no {TWEETS_PARQUET_DIR}*.parquet: "
                        "posts cannot be compared without the Parquet tables")
    return names


def _required(v: _Version, names: list[str]) -> list[str]:
    for name in names:
        if name not in v.files:
            raise DiffError(f"{v.info.location}: {MANIFEST_NAME} does not list {name}: "
                            "this version has no Parquet table to compare")
    return names


# --- reading id columns ----------------------------------------------------------------------

class _RangeFile(io.RawIOBase):
    """A read-only, seekable file over ``source.read_range`` (one read per column chunk)."""

    def __init__(self, source: RangeSource, name: str, size: int) -> None:
        super().__init__()
        self.source, self.name, self.size, self.pos = source, name, size, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.pos, io.SEEK_END: self.size}[whence]
        self.pos = max(0, base + offset)
        return self.pos

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            n = self.size - self.pos
        n = min(n, self.size - self.pos)
        if n <= 0:
            return b""
        data = self.source.read_range(self.name, self.pos, n)
        self.pos += len(data)
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def _parquet_file(v: _Version, name: str) -> Any:
    import pyarrow.parquet as pq

    if isinstance(v.source, LocalSource):
        path = v.source.folder / name
        if not path.is_file():
            raise DiffError(f"{v.info.location}: {name} is listed in {MANIFEST_NAME} but missing")
        return pq.ParquetFile(path, memory_map=True)
    size = v.files[name]["bytes"]
    if not isinstance(size, int):
        raise DiffError(f"{v.info.location}: {MANIFEST_NAME} gives no size for {name}")
    return pq.ParquetFile(_RangeFile(v.source, name, size))


def _read_columns(v: _Version, name: str, columns: Iterable[str]) -> pa.Table:
    """Only ``columns`` of one Parquet file (other column chunks are never read)."""
    import pyarrow as pa

    columns = list(columns)
    try:
        pf = _parquet_file(v, name)
        missing = [c for c in columns if c not in pf.schema_arrow.names]
        if missing:
            raise DiffError(f"{v.info.location}: {name} has no column(s) {missing}")
        table = pf.read(columns=columns)
    except ReleaseError:
        raise
    except Exception as exc:
        if _is_missing_object(exc):
            raise DiffError(f"{v.info.location}: {name} is listed in {MANIFEST_NAME} but missing") from None
        raise DiffError(f"{v.info.location}: cannot read {name} as Parquet: {type(exc).__name__}: {exc}") from exc
    return table.cast(pa.schema([(c, pa.string()) for c in columns]))


def _read_ids(v: _Version, names: list[str], column: str) -> pa.Array:
    import pyarrow as pa
    import pyarrow.compute as pc

    chunks: list[Any] = []
    for name in names:
        chunks.extend(_read_columns(v, name, [column]).column(column).chunks)
    ids = pa.chunked_array(chunks, type=pa.string()).combine_chunks() if chunks else pa.array([], pa.string())
    return pc.drop_null(ids)


def _as_integers(ids: pa.Array) -> Any:
    """``ids`` as a numpy uint64 array when every one is a canonical decimal (no sign, no leading
    zero, below 2**64), else None: post ids always are, and integers compare far faster."""
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        ints = pc.cast(ids, pa.uint64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    same = pc.all(pc.equal(pc.cast(ints, pa.string()), ids)).as_py()
    return ints.to_numpy(zero_copy_only=False) if same in (True, None) else None


def _not_in(values: Any, others: Any) -> Any:
    """Boolean mask of ``values`` absent from ``others`` (numpy integer arrays): sort + binary search.

    pyarrow's ``is_in`` hashes the value set (about 2 s for 3 M ids on one core); a sort and
    ``searchsorted`` take a tenth of that.
    """
    import numpy as np

    if len(others) == 0:
        return np.ones(len(values), dtype=bool)
    ordered = np.sort(others)
    pos = np.searchsorted(ordered, values)
    np.minimum(pos, len(ordered) - 1, out=pos)
    return ordered[pos] != values


def _diff_ids(old: pa.Array, new: pa.Array) -> tuple[list[str], list[str]]:
    """(added, removed), each sorted by :func:`id_sort_key`; duplicates reported once."""
    import pyarrow as pa
    import pyarrow.compute as pc

    old_ints, new_ints = _as_integers(old), _as_integers(new)
    if old_ints is not None and new_ints is not None:
        added_mask, removed_mask = pa.array(_not_in(new_ints, old_ints)), pa.array(_not_in(old_ints, new_ints))
    else:
        added_mask = pc.invert(pc.is_in(new, value_set=old))
        removed_mask = pc.invert(pc.is_in(old, value_set=new))
    added = pc.unique(new.filter(added_mask)).to_pylist()
    removed = pc.unique(old.filter(removed_mask)).to_pylist()
    return sorted(added, key=id_sort_key), sorted(removed, key=id_sort_key)


def id_sort_key(value: str) -> tuple[int, int, str]:
    """Decimal ids in numeric order (shorter first), then everything else in code-point order."""
    return (0, len(value), value) if value.isdigit() and value.isascii() else (1, 0, value)


def _read_media(v: _Version) -> pa.Table:
    import pyarrow as pa

    if MEDIA_INDEX_PARQUET not in v.files:
        return pa.table({c: pa.array([], pa.string()) for c in MEDIA_FIELDS})
    return _read_columns(v, MEDIA_INDEX_PARQUET, MEDIA_FIELDS)


def _diff_media(old: pa.Table, new: pa.Table) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    import pyarrow.compute as pc

    def keys(t: pa.Table) -> Any:
        return pc.binary_join_element_wise(pc.fill_null(t["media_key"], ""), pc.fill_null(t["path_in_archive"], ""),
                                           "\n")

    old_keys, new_keys = keys(old), keys(new)

    def rows(t: pa.Table, mask: Any) -> list[dict[str, Any]]:
        out = t.filter(mask).select(list(MEDIA_FIELDS)).to_pylist()
        return sorted(out, key=lambda r: (r["path_in_archive"] or "", r["media_key"] or "", r["archive"] or ""))

    added = rows(new, pc.invert(pc.is_in(new_keys, value_set=old_keys.combine_chunks())))
    removed = rows(old, pc.invert(pc.is_in(old_keys, value_set=new_keys.combine_chunks())))
    return added, removed
