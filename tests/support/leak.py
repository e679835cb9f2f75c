"""Leak scan of published bytes for retracted accounts (RELEASE_SPEC 8).

Every object is scanned as bytes, every zip member as bytes (recursively), and every Parquet
file decoded to text (each value of each column, lists and structs as JSON), so an id hidden
in a compressed Parquet page is found too. Needles:

- ``ids`` and ``pseudonyms``: plain substrings (long, unique);
- ``names``: screen names as whole ASCII word tokens, case-insensitive (generated screen names
  come in prefix pairs, so a plain substring would also match the other account);
- ``texts``: exact post texts; ``media``: each media file's bytes.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field


@dataclass
class Needles:
    ids: set[str] = field(default_factory=set)
    pseudonyms: set[str] = field(default_factory=set)
    names: set[str] = field(default_factory=set)
    texts: set[str] = field(default_factory=set)
    media: dict[str, bytes] = field(default_factory=dict)


def expand(name: str, data: bytes) -> Iterator[tuple[str, bytes]]:
    """The object itself, its zip members (recursively) and the decoded text of Parquet files."""
    yield name, data
    if data[:4] == b"PK\x03\x04":
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            for member in zf.namelist():
                yield from expand(f"{name}!{member}", member.encode())
                yield from expand(f"{name}!{member}", zf.read(member))
    if data[:4] == b"PAR1":
        import pyarrow.parquet as pq

        table = pq.read_table(io.BytesIO(data))
        rows = table.to_pylist()
        yield f"{name} (decoded)", json.dumps(rows, default=str, ensure_ascii=False).encode()


def scan(objects: dict[str, bytes], needles: Needles) -> list[str]:
    """``object: kind value`` for every needle found anywhere; empty means no leak."""
    found: list[str] = []
    name_res = {n: re.compile(rb"(?<![A-Za-z0-9_])" + re.escape(n.encode()) + rb"(?![A-Za-z0-9_])", re.I)
                for n in needles.names}
    for obj, data in sorted(objects.items()):
        for where, blob in expand(obj, data):
            for kind, values in (("id", needles.ids), ("pseudonym", needles.pseudonyms)):
                found += [f"{where}: {kind} {v}" for v in values if v.encode() in blob]
            found += [f"{where}: screen name {n}" for n, rx in name_res.items() if rx.search(blob)]
            found += [f"{where}: post text {t[:40]!r}" for t in needles.texts
                      if t.encode() in blob or json.dumps(t, ensure_ascii=False)[1:-1].encode() in blob]
            found += [f"{where}: media {k}" for k, chunk in needles.media.items() if chunk in blob]
    return sorted(set(found))


def folder_objects(root) -> dict[str, bytes]:
    """Every file below ``root`` (a release folder) by relative name."""
    from pathlib import Path

    root = Path(root)
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}
