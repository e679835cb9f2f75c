"""Render what people read: the dataset README, the public catalog and the reviewer summary.

Everything is rendered from manifests (``ioarchive.render.manifest``), never from separate counting.
Templates are Jinja2 files in the repository's ``templates/`` folder, shipped as package data (override with
``IOARCHIVE_TEMPLATES``).

Untrusted text (campaign title, attribution, changelog text, sign-off comments: they can carry
``<script>`` or Markdown link syntax) is made harmless in two ways:

- HTML templates (``*.html.j2``) are autoescaped by Jinja.
- Markdown templates (``*.md.j2``) escape *every* ``{{ ... }}`` output with ``md_escape`` by
  default (Jinja ``finalize``); values the template knows to be safe (generated file names,
  hex checksums) are marked with the ``verbatim`` filter, which refuses anything outside
  ``[A-Za-z0-9._/-]``. See ``md_escape`` for the exact rule.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from ioarchive import resources
from ioarchive.errors import SummaryError
from ioarchive.files import atomic_write_text
from ioarchive.humanize import CATALOG_DECIMALS, README_DECIMALS, human_size
from ioarchive.render.manifest import (
    README_NAME,
    SHA256SUMS_NAME,
    ManifestError,
    add_file,
    build_manifest,
    load_manifest,
    write_manifest,
    write_sha256sums,
)
from ioarchive.request.campaign import Campaign
from ioarchive.schema import ACCOUNT_COLUMNS, MEDIA_INDEX_COLUMNS, POST_COLUMNS, VARIANTS
from ioarchive.staging import StagingLayout

log = logging.getLogger(__name__)

TEMPLATES_ENV = resources.TEMPLATES_ENV
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September",
          "October", "November", "December")


# --- escaping ------------------------------------------------------------------------------

class MdSafe(str):
    """A string already safe to place in Markdown (escaped, or known to be plain)."""


_MD_SPECIALS = re.compile(r"([\\`*_{}\[\]#|!~$])")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_LEADING_MARKER = re.compile(r"^(\s*)([-+=])")
_LEADING_ORDERED = re.compile(r"^(\s*\d{1,9})([.)])(?=\s|$)")
_VERBATIM_RE = re.compile(r"^[A-Za-z0-9._/:-]*$")


def md_escape(value: Any) -> MdSafe:
    """Make text inert in Markdown (CommonMark / GitHub): it renders as the literal characters.

    Rule: control characters are dropped; line breaks become spaces (text cannot open a new
    block); ``&``, ``<``, ``>`` become ``&amp;``, ``&lt;``, ``&gt;`` (no raw HTML, no autolinks,
    no entity tricks); ``\\ ` * _ { } [ ] # | ! ~ $`` get a backslash (no emphasis, links, images,
    code, headings, table cells, strikethrough or math); a leading list/quote/setext marker
    (``-``, ``+``, ``=``, the ``.``/``)`` of ``1.``) gets a backslash too (``>`` is already an
    entity). Parentheses stay: without ``[`` they
    cannot form a link, and titles like "Iran (February 2021)" stay readable in the raw file.
    """
    if value is None:
        return MdSafe("")
    if isinstance(value, MdSafe):
        return value
    text = _CONTROL.sub("", str(value))
    text = re.sub(r"\s*[\r\n\u2028\u2029]+\s*", " ", text)
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = _MD_SPECIALS.sub(r"\\\1", text)
    text = _LEADING_MARKER.sub(r"\1\\\2", text)
    text = _LEADING_ORDERED.sub(r"\1\\\2", text)
    return MdSafe(text)


def verbatim(value: Any) -> MdSafe:
    """Mark a generated token (file name, checksum, release id, URL path) as Markdown-safe.

    Refuses anything outside ``[A-Za-z0-9._/:-]`` so that a mistake in a template cannot let
    untrusted text through unescaped.
    """
    text = str(value)
    if not _VERBATIM_RE.match(text):
        raise ValueError(f"refusing to place {text!r} verbatim in Markdown; use md_escape")
    return MdSafe(text)


def _md_finalize(value: Any) -> Any:
    """Escape every expression output of a Markdown template unless marked safe."""
    if value is None:
        return ""
    if isinstance(value, MdSafe | int | float):
        return value
    return md_escape(value)


def md_url(value: Any) -> MdSafe:
    """A link destination for Markdown: http(s), file (local Data Docs) or relative,
    percent-encoded, in ``<...>``.

    URLs come from configuration, not from accounts, but the rule is still checked: no
    ``javascript:`` or other schemes, nothing that can close the destination.
    """
    from urllib.parse import quote, urlsplit

    text = str(value)
    scheme = urlsplit(text).scheme.lower()
    if scheme not in ("", "http", "https", "file"):
        raise ValueError(f"refusing link with scheme {scheme!r} in Markdown: {text!r}")
    return MdSafe("<" + quote(text, safe=":/?#@!$&'*+,;=%-._~") + ">")


def month_name(disclosure_month: str) -> str:
    """``2021-02`` -> ``February 2021``."""
    m = re.fullmatch(r"(\d{4})-(\d{2})", disclosure_month or "")
    if not m or not 1 <= int(m.group(2)) <= 12:
        return disclosure_month
    return f"{MONTHS[int(m.group(2)) - 1]} {m.group(1)}"


def thousands(n: int) -> str:
    """``23750`` -> ``23,750`` (catalog and README counts)."""
    return f"{int(n):,}"


# --- templates -----------------------------------------------------------------------------

def templates_dir() -> Path:
    """The packaged ``templates/`` (``ioarchive.resources``) or $IOARCHIVE_TEMPLATES."""
    path = resources.templates_dir()
    if not path.is_dir():
        raise ManifestError(f"templates folder {path} does not exist; set {TEMPLATES_ENV} to the repo's templates/")
    return path


def _autoescape(name: str | None) -> bool:
    return bool(name) and (name.endswith(".html.j2") or name.endswith(".html"))


def environment(markdown: bool):
    """A Jinja environment: HTML autoescape, or Markdown escape-by-default (see module doc)."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir())),
        autoescape=False if markdown else _autoescape,
        finalize=_md_finalize if markdown else None,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        md_escape=md_escape,
        verbatim=verbatim,
        md_url=md_url,
        human_size=human_size,
        month_name=month_name,
        thousands=thousands,
    )
    return env


def _render(name: str, **context: Any) -> str:
    env = environment(markdown=name.endswith(".md.j2"))
    return env.get_template(name).render(**context)


# --- column dictionary ---------------------------------------------------------------------

COLUMN_DESCRIPTIONS: dict[str, str] = {
    "userid": "Account id (decimal string). Hashed variant: the pseudonym for accounts below the follower threshold.",
    "user_display_name": "Display name as of suspension. Hashed variant: the pseudonym for pseudonymized accounts.",
    "user_screen_name": "Handle without @ as of suspension. Hashed variant: the pseudonym for pseudonymized accounts.",
    "user_reported_location": "Free-text location from the profile.",
    "user_profile_description": "Profile bio text.",
    "user_profile_url": "URL from the profile.",
    "follower_count": "Followers at suspension.",
    "following_count": "Accounts followed at suspension.",
    "account_creation_date": "Account creation date, UTC, YYYY-MM-DD.",
    "account_language": "Account interface language (BCP 47 code).",
    "tweetid": "Post id (decimal string).",
    "tweet_language": "Detected language of the post.",
    "tweet_text": "Full text; @mentions of pseudonymized accounts are replaced in the hashed variant.",
    "tweet_time": "Post time, UTC, YYYY-MM-DD HH:MM (Parquet: full-precision timestamp).",
    "tweet_client_name": "Name of the client app that posted.",
    "in_reply_to_tweetid": "Id of the post replied to, or empty.",
    "in_reply_to_userid": "Account id (or pseudonym) replied to, or empty.",
    "quoted_tweet_tweetid": "Id of the quoted post, or empty.",
    "is_retweet": "true or false.",
    "retweet_userid": "Account id (or pseudonym) of the retweeted post's author, or empty.",
    "retweet_tweetid": "Id of the retweeted post, or empty.",
    "latitude": "Hashed variant: present or absent. Unhashed variant: decimal degrees, or empty.",
    "longitude": "Hashed variant: present or absent. Unhashed variant: decimal degrees, or empty.",
    "quote_count": "Quotes at suspension.",
    "reply_count": "Replies at suspension.",
    "like_count": "Likes at suspension.",
    "retweet_count": "Retweets at suspension.",
    "hashtags": "JSON array of hashtags (without #).",
    "urls": "JSON array of expanded URLs.",
    "user_mentions": "JSON array of mentioned account ids (pseudonyms for pseudonymized accounts).",
    "poll_choices": "JSON array of poll choice texts, or [].",
    "media_key": "Media id.",
    "kind": "photo, video, animated_gif, profile_image or profile_banner.",
    "bytes": "File size in bytes.",
    "sha256": "SHA-256 of the file (hex).",
    "archive": "Name of the zip archive holding the file.",
    "path_in_archive": "Path of the file inside the archive.",
}
"""One sentence per published column. Media index ``tweetid``/``userid`` reuse the post columns."""


def column_dictionary() -> dict[str, list[dict[str, str]]]:
    def rows(columns: Sequence[str]) -> list[dict[str, str]]:
        return [{"name": c, "description": COLUMN_DESCRIPTIONS[c]} for c in columns]

    return {
        "accounts": rows(ACCOUNT_COLUMNS),
        "posts": rows(POST_COLUMNS),
        "media_index": rows(MEDIA_INDEX_COLUMNS),
    }


REASONS: dict[str, str] = {
    "deleted": "deleted on the platform before disclosure; deleted content is never released",
    "not_campaign_account": "posted by an account outside the campaign",
    "post_not_released": "media of a post that was not released",
    "invalid_json": "the record was not valid JSON",
    "missing_id": "the record had no id",
    "duplicate_id": "a later copy of a record already seen (the first is kept)",
    "unparseable_timestamp": "a timestamp could not be read",
    "negative_count": "a count was negative",
    "path_escape": "the media path pointed outside the media folder",
    "symlink": "the media file was a symbolic link",
    "size_mismatch": "the media file's size did not match the export",
    "sha256_mismatch": "the media file's checksum did not match the export",
    "missing_file": "the media file was missing",
}
"""Why a record was excluded or quarantined, in words (reason names: docs/contracts-for-helpers.md)."""


# --- README --------------------------------------------------------------------------------

def render_readme(manifest: dict[str, Any], public_base_url: str | None = None) -> str:
    """The dataset README (Markdown) of one variant, from its manifest only.

    Lists the data files of the manifest; README.md and SHA256SUMS are added to the manifest
    after rendering (their checksums cannot appear in the README), manifest.json is never
    listed in itself.
    """
    files = [f for f in manifest["files"] if f["name"] not in (README_NAME, SHA256SUMS_NAME)]
    location = f"releases/{manifest['release_id']}/v{manifest['version']}/"
    return _render(
        "README.md.j2",
        m=manifest,
        files=files,
        charts=readme_charts(manifest),
        has_stats=any(f.get("kind") == "stats" for f in files),
        columns=column_dictionary(),
        location=location,
        url=(public_base_url.rstrip("/") + "/" + location) if public_base_url else None,
        readme_decimals=README_DECIMALS,
        reasons=REASONS,
    )


def readme_charts(manifest: dict[str, Any]) -> list[dict[str, str]]:
    """The manifest's charts in README order: ``[{name, title}]`` (unknown charts last, by name)."""
    from ioarchive.render.charts import CHARTS

    order = list(CHARTS)
    charts = [f["name"] for f in manifest["files"] if f.get("kind") == "chart"]
    stem = {n: n.rsplit("/", 1)[-1].removesuffix(".svg") for n in charts}
    charts.sort(key=lambda n: (order.index(stem[n]) if stem[n] in order else len(order), n))
    return [{"name": n, "title": CHARTS.get(stem[n], stem[n].replace("_", " ").capitalize())} for n in charts]


def render_variant(
    layout: StagingLayout,
    campaign: Campaign,
    variant: str,
    *,
    version: int = 1,
    changelog: list[dict[str, Any]] | None = None,
    generated_at: str | None = None,
    archive_target_bytes: int | None = None,
    threshold: int | None = None,
    public_base_url: str | None = None,
) -> dict[str, Any]:
    """Write README.md, SHA256SUMS and manifest.json into ``release/<variant>/`` (in that order).

    Returns the manifest. Rerunning on the same staging folder rewrites identical bytes.
    """
    release_dir = layout.release_dir(variant)
    manifest = build_manifest(
        layout, campaign, variant, version=version, changelog=changelog, generated_at=generated_at,
        archive_target_bytes=archive_target_bytes, threshold=threshold,
    )
    readme = render_readme(manifest, public_base_url=public_base_url)
    atomic_write_text(release_dir / README_NAME, readme)
    add_file(manifest, release_dir, README_NAME)
    write_sha256sums(manifest, release_dir)
    add_file(manifest, release_dir, SHA256SUMS_NAME)
    write_manifest(manifest, release_dir)
    log.info(
        "rendered %s v%d %s: %d files, %d accounts, %d posts, %d media files in %d archives -> %s",
        layout.release_id, version, variant, len(manifest["files"]), manifest["counts"]["accounts"],
        manifest["counts"]["posts"], manifest["counts"]["media_files"], manifest["counts"]["archives"],
        release_dir,
    )
    return manifest


def render_release(
    staging_dir: str | Path,
    campaign_dir: str | Path,
    release_id: str,
    *,
    version: int = 1,
    variants: Iterable[str] = VARIANTS,
    changelog: list[dict[str, Any]] | None = None,
    generated_at: str | None = None,
    archive_target_bytes: int | None = None,
    threshold: int | None = None,
    public_base_url: str | None = None,
) -> dict[str, dict[str, Any]]:
    """Render every requested variant; returns ``{variant: manifest}``."""
    from ioarchive.devtools import drills

    layout = StagingLayout(Path(staging_dir), release_id)
    campaign = Campaign.load(campaign_dir)
    manifests: dict[str, dict[str, Any]] = {}
    for variant in variants:
        if manifests:
            drills.hold(drills.RENDER)  # one variant rendered, the next not yet
        manifests[variant] = render_variant(
            layout, campaign, variant, version=version, changelog=changelog, generated_at=generated_at,
            archive_target_bytes=archive_target_bytes, threshold=threshold, public_base_url=public_base_url,
        )
    return manifests


# --- catalog -------------------------------------------------------------------------------

def _bytes_of(manifest: dict[str, Any], kind: str) -> int:
    return sum(f["bytes"] for f in manifest["files"] if f.get("kind") == kind)


def catalog_lines(manifest: dict[str, Any]) -> dict[str, Any]:
    """The historic catalog shape of one version, e.g.::

        Iran (February 2021) - 238 Accounts
        Account Information (38 KB)
        post Information (285.2 MB)
        Media (32.4 GB, 16 archives)

    Account/post information are the CSV zips (the historic downloads; Parquet is listed in the
    README); media are the archives (tweet and profile), and the Media line is left out when a
    release has none. Sizes: ``human_size(n, 1)``; counts with thousands separators.
    """
    accounts = manifest["counts"]["accounts"]
    archives = manifest["counts"]["archives"]
    media_bytes = _bytes_of(manifest, "media_archive")
    heading = f"{manifest['title']} - {thousands(accounts)} Account{'' if accounts == 1 else 's'}"
    lines = [
        f"Account Information ({human_size(_bytes_of(manifest, 'accounts_csv'), CATALOG_DECIMALS)})",
        f"post Information ({human_size(_bytes_of(manifest, 'posts_csv'), CATALOG_DECIMALS)})",
    ]
    if archives:
        lines.append(
            f"Media ({human_size(media_bytes, CATALOG_DECIMALS)}, {thousands(archives)} "
            f"archive{'' if archives == 1 else 's'})"
        )
    return {"heading": heading, "lines": lines}


def catalog_entries(manifests: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per release (newest disclosure first), every version listed, latest shown.

    Only ``hashed`` manifests are accepted: the catalog is public.
    """
    by_release: dict[str, dict[int, dict[str, Any]]] = {}
    for m in manifests:
        if m.get("variant") != "hashed":
            raise ManifestError(
                f"catalog input {m.get('release_id')} v{m.get('version')} is variant {m.get('variant')!r}; "
                "the public catalog lists only hashed manifests"
            )
        versions = by_release.setdefault(m["release_id"], {})
        if m["version"] in versions and versions[m["version"]] != m:
            raise ManifestError(f"two different manifests for {m['release_id']} v{m['version']}")
        versions[m["version"]] = m
    entries = []
    for release_id, versions in by_release.items():
        live = [n for n, m in versions.items() if not m.get("withdrawn_at")] or list(versions)
        latest = versions[max(live)]
        version_rows = []
        for n in sorted(versions, reverse=True):
            m = versions[n]
            prefix = f"releases/{release_id}/v{n}/"
            if m.get("withdrawn_at"):  # RELEASE_SPEC 8: only the withdrawal record is left
                version_rows.append({
                    "version": n, "heading": catalog_lines(m)["heading"], "lines": [],
                    "withdrawn_at": m["withdrawn_at"], "superseded_by": m.get("superseded_by"),
                    "changes": [e["text"] for e in m.get("changelog", []) if e["version"] == n],
                    "manifest": prefix + "manifest.json",
                })
                continue
            version_rows.append({
                "version": n,
                **catalog_lines(m),
                "counts": {k: m["counts"][k] for k in ("accounts", "accounts_that_posted", "posts",
                                                        "media_files", "archives")},
                "changes": [e["text"] for e in m.get("changelog", []) if e["version"] == n],
                "readme": prefix + README_NAME,
                "manifest": prefix + "manifest.json",
                "sha256sums": prefix + SHA256SUMS_NAME,
            })
        entries.append({
            "release_id": release_id,
            "title": latest["title"],
            "country": latest.get("country", ""),
            "disclosure_month": latest["disclosure_month"],
            "disclosure": month_name(latest["disclosure_month"]),
            "latest_version": max(live),
            **catalog_lines(latest),
            "versions": version_rows,
        })
    entries.sort(key=lambda e: (e["disclosure_month"], e["release_id"]))
    entries.reverse()
    return entries


def render_catalog(manifests: list[dict[str, Any]], out_dir: str | Path) -> list[Path]:
    """Write ``index.html`` (no JavaScript) and ``releases.json`` into ``out_dir``; return paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    entries = catalog_entries(manifests)
    html_path = out / "index.html"
    json_path = out / "releases.json"
    html_path.write_text(_render("catalog/index.html.j2", entries=entries), encoding="utf-8")
    doc = {"catalog_format": 1, "releases": entries}
    json_path.write_text(json.dumps(doc, sort_keys=True, indent=2, ensure_ascii=True) + "\n", encoding="utf-8")
    log.info("catalog: %d releases, %d versions -> %s", len(entries), sum(len(e["versions"]) for e in entries), out)
    return [html_path, json_path]


def load_manifests(sources: Iterable[str | Path]) -> list[dict[str, Any]]:
    """Manifests from files, or every ``manifest.json`` below each folder (sorted)."""
    found: list[dict[str, Any]] = []
    for source in sources:
        path = Path(source)
        paths = sorted(path.rglob("manifest.json")) if path.is_dir() else [path]
        found.extend(load_manifest(p) for p in paths)
    return found


# --- reviewer summary ----------------------------------------------------------------------

def _diff(previous: dict[str, Any] | None, current: dict[str, Any]) -> dict[str, Any] | None:
    if previous is None:
        return None
    counts = []
    for key in current["counts"]:
        old, new = previous.get("counts", {}).get(key), current["counts"][key]
        if old != new:
            delta = new - old if isinstance(old, int) and isinstance(new, int) else None
            counts.append({"name": key, "old": old, "new": new,
                           "delta": None if delta is None else MdSafe(f"{delta:+,d}")})
    old_files = {f["name"]: f for f in previous.get("files", [])}
    new_files = {f["name"]: f for f in current["files"]}
    generated = {README_NAME, SHA256SUMS_NAME}
    return {
        "previous_version": previous.get("version"),
        "counts": counts,
        "added": sorted(n for n in new_files.keys() - old_files.keys()),
        "removed": sorted(n for n in old_files.keys() - new_files.keys()),
        "changed": sorted(
            n for n in new_files.keys() & old_files.keys()
            if new_files[n]["sha256"] != old_files[n]["sha256"] and n not in generated
        ),
    }


def load_quality(layout: StagingLayout, variant: str) -> dict[str, Any] | None:
    """The variant's quality summary (``ioarchive.quality.summary``), or None if the gate has not run."""
    from ioarchive.quality.summary import load_summary

    if not layout.validation_summary(variant).exists():
        return None
    try:
        return load_summary(layout, variant)
    except SummaryError as exc:
        log.warning("data-quality summary of %s is unreadable (%s); the reviewer summary says so", variant, exc)
        return {"success": False, "unreadable": str(exc), "suites": {}}


def render_reviewer_summary(
    staging_dir: str | Path,
    release_id: str,
    *,
    variants: Iterable[str] = VARIANTS,
    previous_manifest: dict[str, Any] | dict[str, dict[str, Any]] | None = None,
    quality: dict[str, Any] | None = None,
    readme_urls: dict[str, str] | None = None,
    data_docs_urls: dict[str, str] | None = None,
) -> str:
    """Markdown shown at the publication sign-off: counts, changes, data quality, links.

    Reads the rendered manifests of ``release/<variant>/``. ``previous_manifest`` is one
    manifest (compared with the same variant) or ``{variant: manifest}``. ``quality`` is
    ``{variant: {success, suites}}``; by default each variant's ``validation/<variant>/summary.json``
    is read, and a missing one is reported as "not available", never as a pass.
    """
    layout = StagingLayout(Path(staging_dir), release_id)
    if isinstance(previous_manifest, dict) and "variant" in previous_manifest:
        previous_manifest = {previous_manifest["variant"]: previous_manifest}
    sections = []
    for variant in variants:
        manifest = load_manifest(layout.manifest(variant))
        q = (quality or {}).get(variant) if quality is not None else load_quality(layout, variant)
        sections.append({
            "variant": variant,
            "m": manifest,
            "diff": _diff((previous_manifest or {}).get(variant), manifest),
            "quality": q,
            "readme_url": (readme_urls or {}).get(variant),
            "data_docs_url": (data_docs_urls or {}).get(variant),
        })
    return _render("reviewer_summary.md.j2", release_id=release_id, sections=sections)
