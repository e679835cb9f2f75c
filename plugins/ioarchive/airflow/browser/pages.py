"""What one version's page shows, read from its staging folder or its bucket.

Every function returns plain data for the Jinja2 templates (autoescaped) or, for the README,
HTML that markdown-it-py rendered with raw HTML disabled: text from accounts and campaigns is
escaped either way. Missing pieces come back as None with a reason, never as an exception:
a page with one part missing is still worth reading.
"""

from __future__ import annotations

import io
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ioarchive.airflow.browser.versions import Sources, VersionEntry

log = logging.getLogger(__name__)

SAMPLE_ROWS = 20
SAMPLE_MAX_OBJECT_BYTES = 64 * 1024**2
"""A sample from the bucket reads one Parquet file whole: only when it is at most this big."""
CHART_NAME = re.compile(r"^charts/[a-z0-9_]+\.svg$")


@dataclass(frozen=True)
class VariantFiles:
    """Reads the files of one variant of one version: staging folder first, else its bucket."""

    entry: VersionEntry
    variant: str
    sources: Sources

    @property
    def local_dir(self) -> Path | None:
        layout = self.entry.layout
        if layout is not None and self.entry.variants[self.variant].staged is not None:
            return layout.release_dir(self.variant)
        return None

    @property
    def bucket_prefix(self) -> tuple[str, str] | None:
        bucket = self.sources.buckets.get(self.variant)
        if self.sources.store is not None and bucket and self.entry.variants[self.variant].published:
            return bucket, f"releases/{self.entry.release_id}/v{self.entry.version}/"
        return None

    @property
    def where(self) -> str:
        if self.local_dir is not None:
            return "staging folder"
        bp = self.bucket_prefix
        return f"s3://{bp[0]}/{bp[1]}" if bp else "nowhere"

    def listed(self, name: str) -> dict[str, Any] | None:
        return next((f for f in self.entry.variants[self.variant].files if f.get("name") == name), None)

    def read(self, name: str, max_bytes: int | None = None) -> bytes | None:
        """The bytes of ``name`` (a manifest-relative file name), or None when unavailable or too big."""
        local = self.local_dir
        if local is not None:
            path = (local / name).resolve()
            if not path.is_relative_to(local.resolve()) or not path.is_file():
                return None
            if max_bytes is not None and path.stat().st_size > max_bytes:
                return None
            return path.read_bytes()
        bp = self.bucket_prefix
        if bp is None:
            return None
        entry = self.listed(name)
        if entry is None:
            return None
        if max_bytes is not None and int(entry.get("bytes") or 0) > max_bytes:
            return None
        try:
            return self.sources.store.get_bytes(bp[0], bp[1] + name)
        except Exception as exc:  # noqa: BLE001 - shown as "not available"
            log.warning("release browser: cannot read s3://%s/%s%s: %s", bp[0], bp[1], name, exc)
            return None


def readme_html(markdown_text: str | None) -> str | None:
    """The README as HTML: CommonMark plus tables, raw HTML disabled (shown as text), unsafe links refused."""
    if markdown_text is None:
        return None
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False}).enable("table")
    return md.render(markdown_text)


def charts(files: VariantFiles) -> list[dict[str, str]]:
    """``[{name, title}]`` of the variant's charts in README order (served by the app, same origin)."""
    from ioarchive.render.documents import readme_charts

    manifest = files.entry.variants[files.variant].manifest or {"files": []}
    return [c for c in readme_charts(manifest) if CHART_NAME.match(c["name"])]


def sample_rows(files: VariantFiles, n: int = SAMPLE_ROWS) -> tuple[list[str], list[list[str]], str | None]:
    """The first ``n`` rows of the posts table (Parquet), as text cells; or a reason they are missing."""
    import pyarrow.parquet as pq

    names = sorted(f["name"] for f in files.entry.variants[files.variant].files
                   if f.get("name", "").startswith("parquet/tweets/") and f["name"].endswith(".parquet"))
    if not names:
        return [], [], "the posts table is not written yet"
    data = files.read(names[0], max_bytes=None if files.local_dir else SAMPLE_MAX_OBJECT_BYTES)
    if data is None:
        return [], [], f"{names[0]} could not be read from {files.where}"
    table = pq.ParquetFile(io.BytesIO(data)).read_row_group(0) if data else None
    if table is None:
        return [], [], f"{names[0]} is empty"
    table = table.slice(0, n)
    columns = list(table.column_names)
    rows = []
    for record in table.to_pylist():
        rows.append([_cell(record[c]) for c in columns])
    return columns, rows, None


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def reconciliation(entry: VersionEntry) -> tuple[list[dict[str, Any]], bool | None, str | None]:
    """Per table: read, released, excluded and quarantined by reason; whether the books balance."""
    if entry.layout is None or not entry.layout.reconciliation.is_file():
        return [], None, "reconciliation.json is in the staging folder, which is not on this server"
    try:
        data = json.loads(entry.layout.reconciliation.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return [], None, f"reconciliation.json is unreadable: {exc}"
    rows = []
    for table, counts in (data.get("tables") or {}).items():
        rows.append({
            "table": table,
            "read": counts.get("read", 0),
            "released": counts.get("released", 0),
            "excluded": sorted((counts.get("excluded") or {}).items()),
            "quarantined": sorted((counts.get("quarantined") or {}).items()),
        })
    return rows, data.get("balanced"), None


def quality(entry: VersionEntry, variant: str) -> tuple[dict[str, Any] | None, list[str], str | None]:
    """The variant's quality summary, the GX Data Docs pages on disk, or why they are missing."""
    if entry.layout is None:
        return None, [], "Data Docs stay in the staging folder, which is not on this server"
    folder = entry.layout.validation_dir(variant)
    summary_path = entry.layout.validation_summary(variant)
    if not summary_path.is_file():
        return None, [], "the quality gate has not run for this version yet"
    try:
        summary = json.loads(summary_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return None, [], f"summary.json is unreadable: {exc}"
    pages = sorted(str(p.relative_to(folder)) for p in folder.rglob("*.html") if p.is_file())
    return summary, pages, None


def data_docs_file(entry: VersionEntry, variant: str, relative: str) -> Path | None:
    """A file of the variant's Data Docs folder, or None if it is outside it or missing."""
    if entry.layout is None:
        return None
    root = entry.layout.validation_dir(variant).resolve()
    path = (root / relative).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        return None
    return path


_THIRD_PARTY = re.compile(
    r"""<(script|link|img|iframe)\b[^>]*\b(?:src|href)\s*=\s*["']?\s*(?:https?:)?//[^>]*>(?:\s*</script>)?""",
    re.IGNORECASE,
)


def offline_html(html: str) -> str:
    """GX's own HTML without any tag that would load from a third party (CDNs, GX's tracking image)."""
    return _THIRD_PARTY.sub("", html)


def diff_lines(entry: VersionEntry, versions: list[VersionEntry], sources: Sources, variant: str = "hashed"
               ) -> tuple[int | None, list[str], str | None]:
    """Changes from the previous version (counts and file names, no ids), or why there is no diff."""
    from ioarchive.render.diff import diff_versions, open_version

    previous = [e for e in versions if e.version < entry.version]
    if not previous:
        return None, [], "first version of this release"
    prev = max(previous, key=lambda e: e.version)
    try:
        old = _diff_source(prev, sources, variant, open_version)
        new = _diff_source(entry, sources, variant, open_version)
        if old is None or new is None:
            return prev.version, [], f"v{prev.version} or v{entry.version} has no readable {variant} files"
        result = diff_versions(old, new)
    except Exception as exc:  # noqa: BLE001 - e.g. a withdrawn version whose data objects are gone
        return prev.version, [], f"diff to v{prev.version} unavailable: {exc}"
    lines = list(result.summary_lines())
    for key, verb in (("files_added", "added"), ("files_removed", "removed"), ("files_changed", "changed")):
        names = [f["name"] for f in getattr(result, key)]
        if names:
            lines.append(f"Files {verb}: " + ", ".join(names))
    return prev.version, lines, None


def _diff_source(entry: VersionEntry, sources: Sources, variant: str, open_version: Any) -> Any:
    files = VariantFiles(entry, variant, sources)
    if files.local_dir is not None:
        return open_version(str(files.local_dir), variant=variant)
    bp = files.bucket_prefix
    if bp is not None and not (entry.variants[variant].published or {}).get("withdrawn_at"):
        return open_version(f"s3://{bp[0]}/{bp[1]}", variant=variant, store=sources.store)
    return None
