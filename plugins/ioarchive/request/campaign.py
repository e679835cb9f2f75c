"""Release identity and parameters: release id rules, campaign.json, release parameters.

Kept free of heavy imports: the DAG imports it at parse time to validate the trigger form.
"""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

from ioarchive.errors import InvalidRelease
from ioarchive.schema import DEFAULT_ARCHIVE_TARGET_BYTES, DEFAULT_THRESHOLD

RELEASE_ID_RE = re.compile(r"^[a-z0-9_]+_(\d{4})(0[1-9]|1[0-2])$")
"""``<campaign_slug>_<YYYYMM>``, lowercase ascii ``[a-z0-9_]``, e.g. ``iran_202102``."""


def check_release_id(release_id: str) -> str:
    """Return ``release_id`` if it is ``<slug>_<YYYYMM>``; raise InvalidRelease otherwise."""
    if not isinstance(release_id, str) or not RELEASE_ID_RE.match(release_id):
        raise InvalidRelease(
            f"release id {release_id!r} is not <campaign_slug>_<YYYYMM> in [a-z0-9_] "
            "(e.g. iran_202102)"
        )
    return release_id


@dataclass(frozen=True)
class Campaign:
    """The parts of ``campaign.json`` a release relies on."""

    campaign_id: str
    title: str
    country: str
    attribution: str
    disclosure_month: str
    investigation_ids: tuple[str, ...]
    account_ids: tuple[str, ...]

    @classmethod
    def load(cls, campaign_dir: str | Path) -> Campaign:
        path = Path(campaign_dir) / "campaign.json"
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise InvalidRelease(f"{path} does not exist: is the campaign location right?") from exc
        except json.JSONDecodeError as exc:
            raise InvalidRelease(f"{path} is not valid JSON: {exc}") from exc
        missing = [k for k in ("campaign_id", "title", "disclosure_month", "account_ids") if k not in raw]
        if missing:
            raise InvalidRelease(f"{path} lacks required fields: {', '.join(missing)}")
        if not re.match(r"^\d{4}-(0[1-9]|1[0-2])$", str(raw["disclosure_month"])):
            raise InvalidRelease(f"{path}: disclosure_month {raw['disclosure_month']!r} is not YYYY-MM")
        return cls(
            campaign_id=str(raw["campaign_id"]),
            title=str(raw["title"]),
            country=str(raw.get("country", "")),
            attribution=str(raw.get("attribution", "")),
            disclosure_month=str(raw["disclosure_month"]),
            investigation_ids=tuple(str(i) for i in raw.get("investigation_ids", [])),
            account_ids=tuple(str(i) for i in raw["account_ids"]),
        )


@dataclass(frozen=True)
class ReleaseParams:
    """Parameters of one release run; recorded in the manifest."""

    release_id: str
    campaign_dir: str
    version: int = 1
    threshold: int = DEFAULT_THRESHOLD
    archive_target_bytes: int = DEFAULT_ARCHIVE_TARGET_BYTES
    key_id: str = ""
    changelog: str = ""
    """What this version changes (RELEASE_SPEC 8): required from version 2 on."""
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_release_id(self.release_id)
        if self.version < 1:
            raise InvalidRelease(f"version must be >= 1, got {self.version}")
        if self.threshold < 0:
            raise InvalidRelease(f"threshold must be >= 0, got {self.threshold}")
        if self.archive_target_bytes < 1:
            raise InvalidRelease(f"archive target must be positive, got {self.archive_target_bytes}")
        if self.version > 1 and not self.changelog.strip():
            raise InvalidRelease(
                f"version {self.version} of {self.release_id} needs a changelog: set the 'changelog' param to what "
                f"changed since v{self.version - 1} (a published version never changes; the README says why the "
                "new one exists)"
            )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_form(cls, params: Mapping[str, Any]) -> ReleaseParams:
        """The run's trigger-form values (a plain dict), validated; the defaults are the form's."""
        try:
            return cls(
                release_id=str(params["release_id"]),
                campaign_dir=str(params["campaign_dir"]),
                version=int(params.get("version", 1)),
                threshold=int(params.get("threshold", DEFAULT_THRESHOLD)),
                archive_target_bytes=int(params.get("archive_target_bytes", DEFAULT_ARCHIVE_TARGET_BYTES)),
                changelog=str(params.get("changelog") or ""),
            )
        except KeyError as exc:
            raise InvalidRelease(f"the trigger form lacks {exc.args[0]!r}") from None
        except (TypeError, ValueError) as exc:
            if isinstance(exc, InvalidRelease):
                raise
            raise InvalidRelease(f"the trigger form has a malformed value: {exc}") from None

def find_raw_file(campaign_dir: Path, table: str, required: bool = True) -> Path | None:
    """``<table>.jsonl`` or ``<table>.jsonl.gz`` of a campaign (RELEASE_SPEC 2): the one raw-file lookup.

    Both present is ambiguous and refused; a missing optional table (``required=False``) is None.
    """
    plain, gz = campaign_dir / f"{table}.jsonl", campaign_dir / f"{table}.jsonl.gz"
    if plain.exists() and gz.exists():
        raise InvalidRelease(f"{campaign_dir} has both {plain.name} and {gz.name}; keep one")
    if plain.exists():
        return plain
    if gz.exists():
        return gz
    if required:
        raise InvalidRelease(f"{campaign_dir} has no {table}.jsonl[.gz]: is this a campaign export?")
    return None


def open_raw_text(path: Path, errors: str = "strict") -> IO[str]:
    """Open a raw campaign file (plain or gzipped JSON Lines) as UTF-8 text."""
    opener = gzip.open if path.name.endswith(".gz") else open
    return opener(path, "rt", encoding="utf-8", errors=errors)  # type: ignore[return-value]
