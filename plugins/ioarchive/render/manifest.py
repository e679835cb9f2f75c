"""The release manifest: the single source of truth for what one variant of a version holds.

``manifest.json`` lists every published file (name, bytes, sha256, rows), the counts, the
parameters, the schema and code versions, the pseudonymization key id, the sign-offs, the
exclusions and the changelog. The README, the catalog and the reviewer summary are rendered
from it and never count anything themselves (RELEASE_SPEC section 6).

Order of writing (``ioarchive.render.documents.render_variant`` drives it)::

    build_manifest()             data files only (no README.md, SHA256SUMS, manifest.json)
    -> render README.md from it  (README lists the data files with size and checksum)
    -> add_file("README.md")
    -> write_sha256sums()        every file except SHA256SUMS and manifest.json
    -> add_file("SHA256SUMS")
    -> write_manifest()          every file except manifest.json itself

so the manifest vouches for every other byte of the folder, and ``sha256sum -c SHA256SUMS``
works for a researcher who has no JSON tooling. Output is deterministic: sorted keys, sorted
files, no wall-clock time (``generated_at`` is a parameter, by default the latest sign-off),
so a rerun on the same inputs gives byte-identical files and publication reruns verify.

Only the variant's own side of the staging folder is read: the hashed manifest never opens
anything under ``work/unhashed`` or ``release/unhashed``.
"""

from __future__ import annotations

import json
import logging
import re
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import ioarchive
from ioarchive import settings
from ioarchive.errors import ManifestError
from ioarchive.files import atomic_write_bytes, sha256_file
from ioarchive.request.campaign import Campaign, check_release_id
from ioarchive.schema import DEFAULT_ARCHIVE_TARGET_BYTES, DEFAULT_THRESHOLD, SCHEMA_VERSION, VARIANTS
from ioarchive.staging import StagingLayout

log = logging.getLogger(__name__)

MANIFEST_FORMAT = 1
"""Version of the manifest's own shape (bumped when keys change meaning)."""

MANIFEST_NAME = "manifest.json"
SHA256SUMS_NAME = "SHA256SUMS"
README_NAME = "README.md"
NOT_IN_SHA256SUMS = frozenset({MANIFEST_NAME, SHA256SUMS_NAME})

SAFE_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)*$")
"""Published file names: no spaces, no leading dot, no ``..``; safe in SHA256SUMS, URLs, Markdown."""

PSEUDONYMIZATION_METHOD = "base64url(HMAC-SHA256(key, userid)), no padding, 43 characters"


# --- reading the staging folder ------------------------------------------------------------

def _read_json(path: Path, what: str, producer: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ManifestError(f"{what} {path} does not exist: run `{producer}` for this release first") from None
    except json.JSONDecodeError as exc:
        raise ManifestError(f"{what} {path} is not valid JSON ({exc}): rerun `{producer}`") from None


def media_files_path(layout: StagingLayout, variant: str) -> Path:
    """``work/<variant>/media_files.json``: written by pack-media beside ``files.json``."""
    return layout.work_files(variant).with_name("media_files.json")


def pseudonymization_path(layout: StagingLayout) -> Path:
    """``work/hashed/pseudonymization.json``: ``{key_id, threshold, pseudonymized_accounts}``."""
    return layout.work_files("hashed").with_name("pseudonymization.json")


def is_hidden(name: str) -> bool:
    """Hadoop/Spark side files (``_SUCCESS``, ``.part-0.crc``): never published."""
    return any(part.startswith((".", "_")) for part in name.split("/"))


def list_release_files(release_dir: Path) -> list[str]:
    """Names (relative, ``/``-separated, sorted) of the publishable files of ``release_dir``.

    Excludes manifest.json, SHA256SUMS and README.md (the renderer adds those itself) and Spark
    side files (logged). Refuses symlinks and unsafe names: what is listed is what is published.
    """
    if not release_dir.is_dir():
        raise ManifestError(f"release folder {release_dir} does not exist: run extract and pack-media first")
    names: list[str] = []
    skipped: list[str] = []
    for path in sorted(release_dir.rglob("*")):
        rel = path.relative_to(release_dir).as_posix()
        if path.is_symlink():
            raise ManifestError(
                f"{path} is a symlink; a release folder holds only regular files. "
                "Remove it and rerun the step that wrote it."
            )
        if path.is_dir():
            continue
        if rel in (MANIFEST_NAME, SHA256SUMS_NAME, README_NAME):
            continue
        if is_hidden(rel):
            skipped.append(rel)
            continue
        if not SAFE_NAME_RE.match(rel):
            raise ManifestError(f"{path}: file name {rel!r} is not publishable (allowed: [A-Za-z0-9._-] and /)")
        names.append(rel)
    if skipped:
        log.warning(
            "release folder %s: %d Spark/Hadoop side file(s) are not listed in the manifest (e.g. %s); "
            "verify and publish refuse unlisted files: delete them (the table writer should not leave "
            "them) and rerun render", release_dir, len(skipped), skipped[0],
        )
    return sorted(names)


def classify(name: str, release_id: str, variant: str) -> str:
    """What a published file is, so README and catalog can group files without guessing."""
    base = name.rsplit("/", 1)[-1]
    if name == README_NAME:
        return "readme"
    if name == SHA256SUMS_NAME:
        return "sha256sums"
    if re.fullmatch(rf"{re.escape(release_id)}_users_csv_{variant}(_part\d{{3}})?\.zip", name):
        return "accounts_csv"
    if re.fullmatch(rf"{re.escape(release_id)}_tweets_csv_{variant}(_part\d{{3}})?\.zip", name):
        return "posts_csv"
    if name.startswith("parquet/users"):
        return "accounts_parquet"
    if name.startswith("parquet/tweets"):
        return "posts_parquet"
    if name.startswith("parquet/media_index"):
        return "media_index_parquet"
    if name.startswith("media/") and re.fullmatch(
        rf"{re.escape(release_id)}_(tweet|profile)_media_{variant}_\d{{3}}\.zip", base
    ):
        return "media_archive"
    if name == "media/media_index.csv":
        return "media_index_csv"
    if name == "stats.json":
        return "stats"
    if re.fullmatch(r"charts/[a-z0-9_]+\.svg", name):
        return "chart"
    return "other"


def file_entry(release_dir: Path, name: str, rows: int | None, release_id: str, variant: str) -> dict[str, Any]:
    path = release_dir / name
    return {
        "name": name,
        "kind": classify(name, release_id, variant),
        "bytes": path.stat().st_size,
        "sha256": sha256_file(path),
        "rows": rows,
    }


def _rows_by_name(release_dir: Path, *docs: tuple[Path, dict[str, Any]]) -> tuple[dict[str, int], dict[str, int]]:
    """Rows per file and per directory (a Parquet dataset folder) from files.json-like documents."""
    files: dict[str, int] = {}
    directories: dict[str, int] = {}
    for path, doc in docs:
        for name, info in sorted((doc.get("files") or {}).items()):
            rows = info.get("rows") if isinstance(info, dict) else None
            clean = name.strip("/")
            target = release_dir / clean
            if not target.exists():
                raise ManifestError(
                    f"{path} lists {name!r} but {target} does not exist: the release folder is "
                    "incomplete; rerun the step that writes it"
                )
            if rows is not None and (isinstance(rows, bool) or not isinstance(rows, int) or rows < 0):
                raise ManifestError(f"{path}: rows of {name!r} is {rows!r}, not a count")
            (directories if target.is_dir() else files)[clean] = rows
    return files, directories


def git_commit() -> str | None:
    """Commit of the code that rendered the release: IOARCHIVE_GIT_COMMIT, else ``git rev-parse``."""
    env = settings.get("IOARCHIVE_GIT_COMMIT")
    if env:
        return env
    try:
        out = subprocess.run(
            ["git", "-C", str(Path(ioarchive.__file__).resolve().parent), "rev-parse", "HEAD"],
            capture_output=True, text=True, timeout=10, check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = out.stdout.strip()
    return commit if out.returncode == 0 and re.fullmatch(r"[0-9a-f]{40}", commit) else None


def load_signoffs(layout: StagingLayout) -> list[dict[str, Any]]:
    """Sign-offs recorded by the DAG (``[{gate, decision, by, at, comment}]``), sorted by time."""
    path = layout.signoffs
    if not path.exists():
        return []
    raw = _read_json(path, "sign-off record", "the DAG's sign-off tasks")
    if not isinstance(raw, list):
        raise ManifestError(f"{path} must hold a JSON list of sign-offs, got {type(raw).__name__}")
    signoffs = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict) or not {"gate", "decision", "by", "at"} <= item.keys():
            raise ManifestError(f"{path}: entry {i} lacks gate/decision/by/at: {item!r}")
        signoffs.append({k: item.get(k) for k in ("gate", "decision", "by", "at", "comment")})
    return sorted(signoffs, key=lambda s: (str(s["at"]), str(s["gate"]), str(s["by"])))


def default_changelog(version: int, campaign: Campaign) -> list[dict[str, Any]]:
    """Version 1 needs no explicit changelog; later versions must say what changed."""
    if version != 1:
        raise ManifestError(
            f"version {version} needs a changelog entry saying what changed since v{version - 1} "
            "(pass --change TEXT or --changelog FILE)"
        )
    return [{"version": 1, "date": campaign.disclosure_month, "text": "Initial release."}]


def check_changelog(changelog: list[dict[str, Any]], version: int) -> list[dict[str, Any]]:
    out = []
    for i, entry in enumerate(changelog):
        if not isinstance(entry, dict) or not {"version", "date", "text"} <= entry.keys():
            raise ManifestError(f"changelog entry {i} must have version, date and text: {entry!r}")
        out.append({"version": int(entry["version"]), "date": str(entry["date"]), "text": str(entry["text"])})
    if version not in {e["version"] for e in out}:
        raise ManifestError(f"the changelog has no entry for version {version}: say what this version changes")
    return sorted(out, key=lambda e: (e["version"], e["date"]))


# --- building ------------------------------------------------------------------------------

def build_manifest(
    layout: StagingLayout,
    campaign: Campaign,
    variant: str,
    *,
    version: int = 1,
    changelog: list[dict[str, Any]] | None = None,
    generated_at: str | None = None,
    archive_target_bytes: int | None = None,
    threshold: int | None = None,
) -> dict[str, Any]:
    """The manifest of ``release/<variant>/`` without README.md and SHA256SUMS entries.

    Reads only this variant's files.json / media_files.json / release folder, the shared
    reconciliation and sign-offs, ``work/hashed/pseudonymization.json`` and the campaign's
    descriptive fields (never its account ids).
    """
    check_release_id(layout.release_id)
    if variant not in VARIANTS:
        raise ManifestError(f"unknown variant {variant!r}; expected one of {VARIANTS}")
    if version < 1:
        raise ManifestError(f"version must be >= 1, got {version}")
    release_dir = layout.release_dir(variant)
    names = list_release_files(release_dir)

    files_path = layout.work_files(variant)
    files_doc = _read_json(files_path, "table file list", "ioarchive extract")
    media_path = media_files_path(layout, variant)
    media_doc: dict[str, Any] = {}
    if media_path.exists():
        media_doc = _read_json(media_path, "media file list", "ioarchive pack-media")
    rows, directories = _rows_by_name(release_dir, (files_path, files_doc), (media_path, media_doc))

    table_counts = files_doc.get("counts") or {}
    media_counts = media_doc.get("counts") or {}
    missing = [k for k in ("accounts", "accounts_that_posted", "posts") if k not in table_counts]
    if missing:
        raise ManifestError(f"{files_path} lacks counts {missing}: rerun `ioarchive extract`")
    archive_names = [n for n in names if classify(n, layout.release_id, variant) == "media_archive"]
    if not media_doc and archive_names:
        raise ManifestError(
            f"{release_dir}/media holds {len(archive_names)} archives but {media_path} is missing: "
            "rerun `ioarchive pack-media`"
        )
    if not media_doc:
        log.warning("release %s/%s has no media (no %s); counting 0 media files", layout.release_id, variant, media_path)
    archives = int(media_counts.get("archives", 0))
    if archives != len(archive_names):
        raise ManifestError(
            f"{media_path} counts {archives} archives but {release_dir}/media holds {len(archive_names)}: "
            "the media folder and its file list disagree; rerun `ioarchive pack-media`"
        )
    counts = {
        "accounts": int(table_counts["accounts"]),
        "accounts_that_posted": int(table_counts["accounts_that_posted"]),
        "posts": int(table_counts["posts"]),
        "media_files": int(media_counts.get("media_files", 0)),
        "archives": archives,
        "tweet_archives": int(media_counts.get("tweet_archives", 0)),
        "profile_archives": int(media_counts.get("profile_archives", 0)),
    }

    recon = _read_json(layout.reconciliation, "reconciliation", "ioarchive extract")
    exclusions = {
        table: {
            "read": int(t.get("read", 0)),
            "released": int(t.get("released", 0)),
            "excluded": {k: int(v) for k, v in sorted((t.get("excluded") or {}).items())},
            "quarantined": {k: int(v) for k, v in sorted((t.get("quarantined") or {}).items())},
        }
        for table, t in sorted((recon.get("tables") or {}).items())
    }

    pseudo_path = pseudonymization_path(layout)
    pseudo_doc: dict[str, Any] | None = None
    if pseudo_path.exists() or variant == "hashed":
        pseudo_doc = _read_json(pseudo_path, "pseudonymization record", "ioarchive extract")
    recorded_threshold = None if pseudo_doc is None else pseudo_doc.get("threshold")
    if threshold is not None and recorded_threshold is not None and int(recorded_threshold) != threshold:
        raise ManifestError(
            f"threshold {threshold} was requested but {pseudo_path} says the hashed variant was built "
            f"with {recorded_threshold}: rerun extract with the intended threshold"
        )
    used_threshold = int(recorded_threshold if recorded_threshold is not None else (threshold or DEFAULT_THRESHOLD))
    pseudonymization = None
    key_id = None
    if variant == "hashed":
        assert pseudo_doc is not None
        key_id = pseudo_doc.get("key_id")
        if not key_id:
            raise ManifestError(f"{pseudo_path} has no key_id: the hashed variant cannot be described")
        pseudonymization = {
            "method": PSEUDONYMIZATION_METHOD,
            "key_id": str(key_id),
            "threshold": used_threshold,
            "pseudonymized_accounts": int(pseudo_doc.get("pseudonymized_accounts", 0)),
            "fields": ["userid", "user_display_name", "user_screen_name"],
            "coordinates": "present/absent",
        }

    signoffs = load_signoffs(layout)
    if generated_at is None and signoffs:
        generated_at = str(signoffs[-1]["at"])
    entries = changelog if changelog is not None else default_changelog(version, campaign)

    manifest: dict[str, Any] = {
        "manifest_format": MANIFEST_FORMAT,
        "release_id": layout.release_id,
        "version": version,
        "variant": variant,
        "title": campaign.title,
        "country": campaign.country,
        "attribution": campaign.attribution,
        "disclosure_month": campaign.disclosure_month,
        "schema_version": SCHEMA_VERSION,
        "code_version": {"ioarchive": ioarchive.__version__, "git_commit": git_commit()},
        "generated_at": generated_at,
        "parameters": {
            "threshold": used_threshold,
            "archive_target_bytes": int(archive_target_bytes or _planned_target(layout, variant)),
        },
        "key_id": None if key_id is None else str(key_id),
        "pseudonymization": pseudonymization,
        "counts": counts,
        "exclusions": exclusions,
        "reconciliation_balanced": bool(recon.get("balanced", False)),
        "signoffs": signoffs,
        "changelog": check_changelog(entries, version),
        "directories": {name: {"rows": n} for name, n in sorted(directories.items())},
        "files": [file_entry(release_dir, n, rows.get(n), layout.release_id, variant) for n in names],
    }
    if variant == "hashed":
        check_no_raw_ids(manifest, campaign.account_ids)
    return manifest


MIN_ID_DIGITS = 6
"""Shorter ids are not searched for in text (they would match years and small numbers)."""


def check_no_raw_ids(manifest: dict[str, Any], account_ids: Iterable[str]) -> None:
    """Refuse a hashed manifest whose free text (title, attribution, changelog, sign-off
    comments) names a campaign account id: the README and the public catalog repeat that text.

    The manifest's own fields hold no identifiers by construction; this guards the text that
    people type. Names and handles cannot be checked here without reading the unhashed side,
    which the hashed renderer never does; the published-bytes identifier scan covers those.
    """
    texts = [manifest.get("title"), manifest.get("attribution"), manifest.get("country")]
    texts += [e.get("text") for e in manifest.get("changelog", [])]
    texts += [s.get("comment") for s in manifest.get("signoffs", [])] + [s.get("by") for s in manifest.get("signoffs", [])]
    blob = "\n".join(str(t) for t in texts if t)
    for account_id in account_ids:
        if len(account_id) >= MIN_ID_DIGITS and re.search(rf"(?<![0-9A-Za-z]){re.escape(account_id)}(?![0-9A-Za-z])", blob):
            raise ManifestError(
                f"release {manifest['release_id']} (hashed): the title, attribution, changelog or a sign-off "
                "comment contains a raw campaign account id; the public README would disclose it. "
                "Edit the text (campaign.json, changelog or sign-off) and rerun render"
            )


def _planned_target(layout: StagingLayout, variant: str) -> int:
    """Archive target pack-media used (``media_plan.json`` ``variants.<variant>.target_bytes``), else the default."""
    if layout.media_plan.exists():
        plan = _read_json(layout.media_plan, "media plan", "ioarchive pack-media")
        if isinstance(plan, dict):
            vplan = (plan.get("variants") or {}).get(variant) or plan
            for key in ("target_bytes", "archive_target_bytes"):
                if isinstance(vplan.get(key), int):
                    return vplan[key]
    return DEFAULT_ARCHIVE_TARGET_BYTES


def add_file(manifest: dict[str, Any], release_dir: Path, name: str) -> dict[str, Any]:
    """Add (or refresh) the entry of ``name``; keeps files sorted. Returns the manifest."""
    entry = file_entry(release_dir, name, None, manifest["release_id"], manifest["variant"])
    files = [f for f in manifest["files"] if f["name"] != name] + [entry]
    manifest["files"] = sorted(files, key=lambda f: f["name"])
    return manifest


def sha256sums_text(manifest: dict[str, Any]) -> str:
    """``sha256sum -c`` input: ``<hex>  <name>`` (two spaces: text mode) per file, sorted."""
    lines = []
    for f in manifest["files"]:
        if f["name"] in NOT_IN_SHA256SUMS:
            continue
        if not SAFE_NAME_RE.match(f["name"]):
            raise ManifestError(f"file name {f['name']!r} cannot be written to SHA256SUMS")
        lines.append(f"{f['sha256']}  {f['name']}\n")
    return "".join(lines)


def write_sha256sums(manifest: dict[str, Any], release_dir: Path) -> Path:
    path = release_dir / SHA256SUMS_NAME
    atomic_write_bytes(path, sha256sums_text(manifest).encode("ascii"))
    return path


def refresh_signoffs(
    layout: StagingLayout,
    variant: str,
    account_ids: Iterable[str] = (),
    signoffs: Iterable[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Bring the staged manifest's sign-offs up to date before it is published.

    The manifest is rendered before the publication sign-off (the reviewer reads it), so the
    publish step adds that sign-off here: ``signoffs`` and ``generated_at`` change, nothing else
    does (files, SHA256SUMS and README do not list sign-offs). Idempotent: a rerun with the same
    sign-offs rewrites the same bytes.

    ``signoffs``: the publishing run's own decisions (``ioarchive.publish.preconditions``); when
    omitted, every decision in the staging folder's record (several runs may have written it).
    """
    release_dir = layout.release_dir(variant)
    manifest = load_manifest(release_dir / MANIFEST_NAME)
    if signoffs is None:
        signoffs = load_signoffs(layout)
    else:
        signoffs = sorted(
            ({k: s.get(k) for k in ("gate", "decision", "by", "at", "comment")} for s in signoffs),
            key=lambda s: (str(s["at"]), str(s["gate"]), str(s["by"])),
        )
    manifest["signoffs"] = signoffs
    if signoffs:
        manifest["generated_at"] = str(signoffs[-1]["at"])
    if variant == "hashed":
        check_no_raw_ids(manifest, account_ids)
    data = dumps(manifest)
    if (release_dir / MANIFEST_NAME).read_bytes() != data:
        write_manifest(manifest, release_dir)
    return manifest


def dumps(manifest: dict[str, Any]) -> bytes:
    """Canonical bytes: sorted keys, 2-space indent, ASCII (\\u escapes), trailing newline."""
    return (json.dumps(manifest, sort_keys=True, indent=2, ensure_ascii=True) + "\n").encode("ascii")


def write_manifest(manifest: dict[str, Any], release_dir: Path) -> Path:
    path = release_dir / MANIFEST_NAME
    atomic_write_bytes(path, dumps(manifest))
    return path


def load_manifest(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ManifestError(f"cannot read manifest {path}: {exc}") from None
    if not isinstance(data, dict) or "release_id" not in data or "files" not in data:
        raise ManifestError(f"{path} is not a release manifest (no release_id/files)")
    return data


