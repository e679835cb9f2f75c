"""Every release version the browser lists: where its files are and what state it is in.

Two sources (docs/decisions.md, "Release browser: where its data comes from"):

- the staging folders under the staging root (``<root>/<release_id>/v<N>/``): every version
  being built, waiting at a gate or published from this deployment, with everything a reviewer
  reads (README, charts, stats, Data Docs, reconciliation, the tables);
- the buckets' ``releases/<id>/v<N>/manifest.json``: what is published, and withdrawal records
  (top-level ``withdrawn_at``, ``reason``, ``superseded_by``, ``withdrawn_files``). A bucket
  manifest decides "published" and "withdrawn"; a version found only in a bucket (its staging
  folder is gone) is shown from its published files.

The run state (waiting at which gate, failed, running) comes from ``runs.latest_runs``.
Nothing here raises on an unreadable source: the page says what could not be read.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ioarchive.airflow.browser.runs import RunInfo
from ioarchive.schema import VARIANTS
from ioarchive.staging import StagingLayout

log = logging.getLogger(__name__)

RELEASE_ID = re.compile(r"^[a-z0-9_]+_\d{6}$")
VERSION_DIR = re.compile(r"^v([1-9]\d*)$")
WITHDRAWAL_FIELDS = ("withdrawn_at", "reason", "superseded_by", "withdrawn_files")
"""Top-level fields of a withdrawal record (the manifest left in place of a withdrawn version)."""


@dataclass
class Sources:
    """Where the browser looks: staging root, object store and buckets, run states."""

    staging_root: Path | None
    store: Any = None  # ioarchive.publish.store.ObjectStore
    buckets: dict[str, str] = field(default_factory=dict)  # variant -> bucket
    runs: Callable[[], dict[tuple[str, int], RunInfo]] = dict


@dataclass
class VariantInfo:
    """One variant of one version: its manifest (staged or published) and where it was found."""

    variant: str
    staged: dict[str, Any] | None = None
    published: dict[str, Any] | None = None

    @property
    def manifest(self) -> dict[str, Any] | None:
        return self.published or self.staged

    @property
    def files(self) -> list[dict[str, Any]]:
        return list((self.manifest or {}).get("files") or [])

    @property
    def total_bytes(self) -> int:
        return sum(int(f.get("bytes") or 0) for f in self.files)


@dataclass
class VersionEntry:
    """One release version as the list and its page show it."""

    release_id: str
    version: int
    variants: dict[str, VariantInfo]
    layout: StagingLayout | None = None
    run: RunInfo | None = None
    signoffs: list[dict[str, Any]] = field(default_factory=list)

    @property
    def manifest(self) -> dict[str, Any]:
        """The best description of the version: hashed first (it is the public one), then unhashed."""
        for variant in VARIANTS:
            m = self.variants[variant].manifest
            if m:
                return m
        return {}

    @property
    def title(self) -> str:
        return str(self.manifest.get("title") or self.release_id)

    @property
    def withdrawn(self) -> dict[str, Any] | None:
        """The withdrawal record (from either bucket's manifest), or None."""
        for variant in VARIANTS:
            m = self.variants[variant].published
            if m and m.get("withdrawn_at"):
                return {k: m.get(k) for k in WITHDRAWAL_FIELDS}
        return None

    @property
    def published_variants(self) -> list[str]:
        return [v for v in VARIANTS if self.variants[v].published and not self.variants[v].published.get("withdrawn_at")]

    @property
    def state_kind(self) -> str:
        """withdrawn, published, waiting, failed, running, staged or preparing."""
        if self.withdrawn:
            return "withdrawn"
        if self.published_variants:
            return "published"
        if self.run and self.run.waiting_at:
            return "waiting"
        if self.run and self.run.state == "failed":
            return "failed"
        if self.run and self.run.state in ("running", "queued"):
            return "running"
        if any(self.variants[v].staged for v in VARIANTS):
            return "staged"
        return "preparing"

    @property
    def state(self) -> str:
        """The state in words, as the list shows it."""
        kind = self.state_kind
        if kind == "withdrawn":
            w = self.withdrawn or {}
            successor = f", superseded by v{w['superseded_by']}" if w.get("superseded_by") else ""
            return f"withdrawn {w.get('withdrawn_at')}{successor}"
        if kind == "published":
            names = {"hashed": "public", "unhashed": "members"}
            return "published (" + ", ".join(names[v] for v in self.published_variants) + ")"
        if kind in ("waiting", "failed", "running") and self.run:
            return self.run.describe()
        return "staged, not yet at a gate" if kind == "staged" else "in preparation"


def staged_layouts(staging_root: Path | None) -> dict[tuple[str, int], StagingLayout]:
    """Every ``<root>/<release_id>/v<N>/`` folder."""
    found: dict[tuple[str, int], StagingLayout] = {}
    if staging_root is None or not Path(staging_root).is_dir():
        return found
    for release in sorted(Path(staging_root).iterdir()):
        if not release.is_dir() or not RELEASE_ID.match(release.name):
            continue
        for version_dir in sorted(release.iterdir()):
            m = VERSION_DIR.match(version_dir.name)
            if m and version_dir.is_dir():
                found[(release.name, int(m.group(1)))] = StagingLayout(version_dir, release.name)
    return found


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        if path.exists():
            log.warning("release browser: %s is unreadable (%s)", path, exc)
        return None


def bucket_manifests(store: Any, bucket: str) -> dict[tuple[str, int], dict[str, Any]]:
    """Every ``releases/<id>/v<N>/manifest.json`` of ``bucket`` (unparseable ones skipped, logged)."""
    key_re = re.compile(r"^releases/([^/]+)/v(\d+)/manifest\.json$")
    found: dict[tuple[str, int], dict[str, Any]] = {}
    for key, _size in store.list_keys(bucket, "releases/"):
        m = key_re.match(key)
        if not m:
            continue
        try:
            found[(m.group(1), int(m.group(2)))] = json.loads(store.get_bytes(bucket, key))
        except ValueError as exc:
            log.warning("release browser: s3://%s/%s is not JSON (%s); run `ioarchive verify` on it", bucket, key, exc)
    return found


def collect(sources: Sources) -> tuple[list[VersionEntry], list[str]]:
    """Every version (newest release first, then version descending) and the sources that failed."""
    problems: list[str] = []
    layouts = staged_layouts(sources.staging_root)
    published: dict[str, dict[tuple[str, int], dict[str, Any]]] = {}
    for variant, bucket in sources.buckets.items():
        if sources.store is None or not bucket:
            continue
        try:
            published[variant] = bucket_manifests(sources.store, bucket)
        except Exception as exc:  # noqa: BLE001 - show the rest, say which bucket failed
            problems.append(f"bucket {bucket} ({variant}) could not be listed: {exc}")
    try:
        runs = sources.runs() or {}
    except Exception as exc:  # noqa: BLE001
        problems.append(f"run states could not be read: {exc}")
        runs = {}
    keys = set(layouts) | {k for m in published.values() for k in m}
    entries = []
    for key in keys:
        layout = layouts.get(key)
        variants = {}
        for variant in VARIANTS:
            staged = _read_json(layout.manifest(variant)) if layout else None
            variants[variant] = VariantInfo(variant, staged, published.get(variant, {}).get(key))
        entry = VersionEntry(key[0], key[1], variants, layout, runs.get(key))
        entry.signoffs = _signoffs(entry)
        entries.append(entry)
    entries.sort(key=lambda e: (e.manifest.get("disclosure_month", ""), e.release_id, e.version), reverse=True)
    return entries, problems


def find(sources: Sources, release_id: str, version: int) -> tuple[VersionEntry | None, list[VersionEntry]]:
    """The entry of ``release_id`` v``version`` and every version of that release."""
    entries, _problems = collect(sources)
    same = [e for e in entries if e.release_id == release_id]
    return next((e for e in same if e.version == version), None), same


def _signoffs(entry: VersionEntry) -> list[dict[str, Any]]:
    """Who signed what and when: the published manifest's record, else the staging folder's."""
    for variant in VARIANTS:
        m = entry.variants[variant].published
        if m and m.get("signoffs"):
            return list(m["signoffs"])
    if entry.layout is not None:
        data = _read_json(entry.layout.signoffs)
        if isinstance(data, list):
            return [s for s in data if isinstance(s, dict)]
    return []
