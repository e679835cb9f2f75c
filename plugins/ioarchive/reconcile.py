"""Exact accounting of every input record: ``reconciliation.json`` and the quarantine files.

Each table of a release must balance: ``read == released + sum(excluded) + sum(quarantined)``
(RELEASE_SPEC section 2). Extraction writes the first version; later steps (the media packer)
only *move* records from ``released`` to ``quarantined`` through :func:`move_to_quarantine`, so
the books stay balanced by construction and no step edits the JSON by hand.

Writes are atomic (temp file + rename) and serialized with an advisory lock, because the
packer may quarantine from several tasks of the same run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ioarchive.errors import ReconciliationError
from ioarchive.files import atomic_write_json, file_lock
from ioarchive.staging import StagingLayout

TABLES: tuple[str, ...] = ("accounts", "posts", "media")
MAX_RECORD_CHARS = 10_000
"""Raw record text kept in a quarantine record (contract: at most 10 kB)."""


def empty(release_id: str) -> dict[str, Any]:
    """A reconciliation with zero counts for every table."""
    return {
        "release_id": release_id,
        "tables": {
            t: {"read": 0, "released": 0, "excluded": {}, "quarantined": {}} for t in TABLES
        },
        "balanced": True,
    }


def table_balances(entry: dict[str, Any]) -> bool:
    """True when ``read == released + excluded + quarantined`` for one table entry."""
    return entry["read"] == (
        entry["released"] + sum(entry["excluded"].values()) + sum(entry["quarantined"].values())
    )


def is_balanced(data: dict[str, Any]) -> bool:
    return all(table_balances(entry) for entry in data["tables"].values())


def load(layout: StagingLayout) -> dict[str, Any]:
    """Read ``reconciliation.json`` of a release (written by extraction)."""
    path = layout.reconciliation
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ReconciliationError(
            f"{path} does not exist: run `ioarchive extract` for release {layout.release_id} first"
        ) from None
    except json.JSONDecodeError as exc:
        raise ReconciliationError(f"{path} is not valid JSON ({exc}); rerun extraction") from None


def save(layout: StagingLayout, data: dict[str, Any]) -> dict[str, Any]:
    """Write ``reconciliation.json`` atomically; ``balanced`` is recomputed, never trusted."""
    data["balanced"] = is_balanced(data)
    atomic_write_json(layout.reconciliation, data)
    return data


def quarantine_record(source_file: str, line: int, reason: str, record: str) -> dict[str, Any]:
    """One quarantine record in the contract's shape (raw text truncated to 10 kB)."""
    return {
        "source_file": source_file,
        "line": int(line),
        "reason": reason,
        "record": (record or "")[:MAX_RECORD_CHARS],
    }


def append_quarantine(path: Path, records: list[dict[str, Any]]) -> None:
    """Append quarantine records (JSON Lines) to ``path``."""
    if not records:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as fh:
        for rec in records:
            fh.write(json.dumps(rec, ensure_ascii=False, sort_keys=True) + "\n")


def move_to_quarantine(
    layout: StagingLayout,
    table: str,
    reason: str,
    count: int,
    records: list[dict] | None = None,
) -> dict:
    """Move ``count`` released records of ``table`` to ``quarantined[reason]``.

    Used by steps after extraction that find a released record unusable (e.g. the packer
    finding a media file whose sha256 does not match). ``records`` (contract shape, see
    :func:`quarantine_record`) are appended to ``quarantine/media.jsonl`` for the media table
    and to ``quarantine/records.jsonl`` otherwise. Returns the saved reconciliation.
    """
    if table not in TABLES:
        raise ValueError(f"unknown table {table!r}; expected one of {TABLES}")
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    if records is not None and len(records) != count:
        raise ValueError(f"{len(records)} quarantine records given for count {count} ({table}/{reason})")
    with file_lock(layout.root / ".reconciliation.lock"):
        data = load(layout)
        entry = data["tables"][table]
        if count > entry["released"]:
            raise ReconciliationError(
                f"release {layout.release_id}: cannot quarantine {count} {table} records for {reason}: "
                f"only {entry['released']} are released; was this step run twice without rerunning extract?"
            )
        entry["released"] -= count
        entry["quarantined"][reason] = entry["quarantined"].get(reason, 0) + count
        if records:
            target = layout.quarantine_media if table == "media" else layout.quarantine_records
            append_quarantine(target, records)
        return save(layout, data)




