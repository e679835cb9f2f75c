"""Bad-record injection for the synthetic campaign, and the ``injected_invalid.json`` sidecar.

Injection draws from its own random stream, and bad records are only ever *extra* lines (or
extra media records/files): the clean records of a campaign are the same bytes whatever the
invalid rate, so a test can compare a clean and a dirty campaign of one seed. Each injected
record carries exactly one defect, so its expected disposition is unambiguous.
"""

from __future__ import annotations

import gzip
import io
import random
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from ioarchive.devtools.generate.text import dumps

ACCOUNT_KINDS = ("invalid_json", "missing_id", "duplicate_id", "unparseable_timestamp", "negative_count")
POST_KINDS = (*ACCOUNT_KINDS, "not_campaign_account")
MEDIA_KINDS = ("invalid_json", "missing_id", "path_escape", "symlink", "size_mismatch", "sha256_mismatch", "missing_file")
EXCLUDED_KINDS = frozenset({"not_campaign_account"})
"""Kinds that are excluded (by design) rather than quarantined (bad input)."""

BAD_TIMESTAMPS = (
    "not a timestamp",
    "2021-02-31 25:61:00",
    "Wed Foo 10 20:19:24 +0000 2018",
    "Wed Oct 10 20:19:24 +0000",
    "yesterday",
    "1612137600",
)


def schedule(rng: random.Random, kinds: tuple[str, ...], n_clean: int, rate: float) -> dict[int, list[str]]:
    """Where bad records go: position p means "after the p-th clean line" (0 = before all).

    At least one of each kind whenever ``rate > 0``; otherwise about ``rate * n_clean``.
    Duplicates go after at least one clean line (the first occurrence is the one kept).
    """
    if rate <= 0:
        return {}
    total = max(len(kinds), round(rate * n_clean))
    chosen = list(kinds) + [rng.choice(kinds) for _ in range(total - len(kinds))]
    plan: dict[int, list[str]] = {}
    for kind in chosen:
        lo = 1 if kind == "duplicate_id" else 0
        plan.setdefault(rng.randint(lo, max(n_clean, lo)), []).append(kind)
    return plan


def truncated_json(rng: random.Random, record: dict) -> str:
    """A line no JSON parser accepts (a truncated object, or prose), never blank."""
    choice = rng.random()
    if choice < 0.6:
        text = dumps(record)
        return text[: rng.randint(2, len(text) - 1)].rstrip() or "{"
    if choice < 0.8:
        return "this line is not JSON, it was cut by the export"
    text = dumps(record)
    return text.replace(",", " ", 1)  # missing separator between members


def open_jsonl(path: Path, compress: bool) -> IO[bytes]:
    """A binary handle; gzip with a fixed header (no mtime, no name) so output is reproducible."""
    raw = open(path, "wb", buffering=1024 * 1024)  # noqa: SIM115 - closed by the writer
    if not compress:
        return raw
    return _ClosingGzip(raw)


class _ClosingGzip(gzip.GzipFile):
    """GzipFile that also closes the underlying file (GzipFile leaves a passed fileobj open)."""

    def __init__(self, raw: io.BufferedWriter) -> None:
        super().__init__(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6)
        self._raw = raw

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._raw.close()


BadFactory = Callable[[str, "deque[tuple[str, dict, str]]"], tuple[str, str | None]]
"""(kind, recent clean (id, record, line)) -> (bad line, id or None)."""


class InjectingWriter:
    """Writes clean JSON Lines and slots scheduled bad lines between them, noting each one."""

    def __init__(
        self,
        folder: Path,
        name: str,
        *,
        compress: bool,
        plan: dict[int, list[str]],
        factory: BadFactory | None,
        sidecar: list[dict[str, Any]],
    ) -> None:
        self.file_name = name + (".gz" if compress else "")
        self.fh = open_jsonl(folder / self.file_name, compress)
        self.plan = plan
        self.factory = factory
        self.sidecar = sidecar
        self.recent: deque[tuple[str, dict, str]] = deque(maxlen=32)
        self.clean = 0
        self.line = 0
        self.buffer: list[bytes] = []
        self._inject(0)

    def _emit(self, line: str) -> None:
        self.line += 1
        self.buffer.append(line.encode("utf-8") + b"\n")
        if len(self.buffer) >= 4096:
            self.fh.write(b"".join(self.buffer))
            self.buffer.clear()

    def _inject(self, position: int) -> None:
        for kind in self.plan.get(position, ()):
            assert self.factory is not None
            line, record_id = self.factory(kind, self.recent)
            self._emit(line)
            self.sidecar.append(
                {
                    "file": self.file_name,
                    "line": self.line,
                    "kind": kind,
                    "id": record_id,
                    "disposition": "excluded" if kind in EXCLUDED_KINDS else "quarantined",
                }
            )

    def write(self, record_id: str, record: dict) -> None:
        """Write one clean record, then any bad lines scheduled after it."""
        line = dumps(record)
        self._emit(line)
        self.clean += 1
        self.recent.append((record_id, record, line))
        self._inject(self.clean)

    def close(self) -> None:
        # Positions beyond the clean count cannot happen (schedule caps at n_clean), but flush
        # anything left rather than silently dropping a planned bad record.
        for pos in sorted(p for p in self.plan if p > self.clean):
            self._inject(pos)
        if self.buffer:
            self.fh.write(b"".join(self.buffer))
        self.fh.close()


def sidecar_document(seed: int, rate: float, records: list[dict[str, Any]]) -> dict[str, Any]:
    """The ``injected_invalid.json`` content (docs/contracts-for-helpers.md)."""
    counts: dict[str, dict[str, int]] = {}
    for rec in records:
        per_file = counts.setdefault(rec["file"], {})
        per_file[rec["kind"]] = per_file.get(rec["kind"], 0) + 1
    return {"seed": seed, "invalid_rate": rate, "records": records, "counts": counts}
