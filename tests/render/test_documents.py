"""README, catalog and reviewer summary: golden files, numbers parsed back, escaping, historic shape.

Golden files live in tests/golden/; regenerate them with ``IOARCHIVE_UPDATE_GOLDEN=1 pytest
tests/render/test_documents.py`` and review the diff by eye before committing.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from ioarchive.humanize import human_size
from ioarchive.render.documents import (
    catalog_entries,
    catalog_lines,
    load_manifests,
    md_escape,
    md_url,
    render_catalog,
    render_readme,
    render_release,
    render_reviewer_summary,
)
from ioarchive.render.manifest import ManifestError
from ioarchive.schema import ACCOUNT_COLUMNS, MEDIA_INDEX_COLUMNS, POST_COLUMNS
from markdown_it import MarkdownIt
from support.render import RAW_IDS, RAW_NAMES, RELEASE_ID, make_campaign, make_staging, write_json

GOLDEN = Path(__file__).parents[1] / "golden"
UPDATE = os.environ.get("IOARCHIVE_UPDATE_GOLDEN") == "1"
EVIL_TITLE = 'Evil <script>alert(1)</script> [click](http://evil.example) **bold** | `code` & "q"'
EVIL_TEXT = "# Heading\n- list item\n<img src=x onerror=alert(1)>\n![img](http://evil.example/x.png) &lt;b&gt;"


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"golden file {path} missing: run with IOARCHIVE_UPDATE_GOLDEN=1 and review it"
    assert text == path.read_text(encoding="utf-8"), f"{name} differs from its golden file"


# --- fixed manifests shaped like historic releases -----------------------------------------

def _split(total: int, parts: int) -> list[int]:
    base, rest = divmod(total, parts)
    return [base + (1 if i < rest else 0) for i in range(parts)]


def _entry(name: str, kind: str, size: int, rows: int | None = None) -> dict:
    return {"name": name, "kind": kind, "bytes": size, "rows": rows,
            "sha256": hashlib.sha256(name.encode()).hexdigest()}


def fixed_manifest(
    release_id: str, title: str, month: str, accounts: int, users_bytes: int, tweet_parts: list[int],
    archives: list[int], *, variant: str = "hashed", version: int = 1, changelog: list | None = None,
    posts: int = 1000,
) -> dict:
    files = [_entry(f"{release_id}_users_csv_{variant}.zip", "accounts_csv", users_bytes, accounts)]
    if len(tweet_parts) == 1:
        files.append(_entry(f"{release_id}_tweets_csv_{variant}.zip", "posts_csv", tweet_parts[0], posts))
    else:
        files += [_entry(f"{release_id}_tweets_csv_{variant}_part{i:03d}.zip", "posts_csv", b, None)
                  for i, b in enumerate(tweet_parts, start=1)]
    files += [_entry(f"media/{release_id}_tweet_media_{variant}_{i:03d}.zip", "media_archive", b)
              for i, b in enumerate(archives, start=1)]
    files += [_entry("media/media_index.csv", "media_index_csv", 2048, 40),
              _entry("parquet/users.parquet", "accounts_parquet", 4096, accounts)]
    files.sort(key=lambda f: f["name"])
    hashed = variant == "hashed"
    return {
        "manifest_format": 1, "release_id": release_id, "version": version, "variant": variant,
        "title": title, "country": title.split(" (")[0], "disclosure_month": month,
        "attribution": f"Attributed to a state-linked network operating from {title.split(' (')[0]}.",
        "schema_version": "1.0", "code_version": {"ioarchive": "0.1.0", "git_commit": "0" * 40},
        "generated_at": None,
        "parameters": {"threshold": 5000, "archive_target_bytes": 2 * 1024**3},
        "key_id": "key-2021" if hashed else None,
        "pseudonymization": {"method": "x", "key_id": "key-2021", "threshold": 5000,
                             "pseudonymized_accounts": max(accounts - 2, 0),
                             "fields": ["userid", "user_display_name", "user_screen_name"],
                             "coordinates": "present/absent"} if hashed else None,
        "counts": {"accounts": accounts, "accounts_that_posted": max(accounts - 1, 0), "posts": posts,
                   "media_files": 40, "archives": len(archives), "tweet_archives": len(archives),
                   "profile_archives": 0},
        "exclusions": {"posts": {"read": posts + 7, "released": posts, "excluded": {"deleted": 5},
                                 "quarantined": {"invalid_json": 2}},
                       "accounts": {"read": accounts, "released": accounts, "excluded": {}, "quarantined": {}}},
        "reconciliation_balanced": True,
        "signoffs": [],
        "changelog": changelog or [{"version": 1, "date": month, "text": "Initial release."}],
        "directories": {},
        "files": files,
    }


def iran() -> dict:
    return fixed_manifest("iran_202102", "Iran (February 2021)", "2021-02", 238, 38 * 1024,
                          [round(285.2 * 1024**2)], _split(round(32.4 * 1024**3), 16))


def largeland() -> dict:
    return fixed_manifest("largeland_201912", "Largeland (December 2019)", "2019-12", 5929, round(1.2 * 1024**2),
                          _split(round(5.7 * 1024**3), 6), _split(round(2.3 * 1024**4), 981), posts=32_054_255)


def smallland(version: int = 1) -> dict:
    changelog = [{"version": 1, "date": "2019-06", "text": "Initial release."}]
    if version == 2:
        changelog.append({"version": 2, "date": "2020-01", "text": "Retracted 1 account after appeal."})
    return fixed_manifest("smallland_201906", "Smallland (June 2019)", "2019-06", 1 if version == 2 else 2,
                          round(2.1 * 1024), [512], [round(1.5 * 1024**3)], version=version, changelog=changelog)


# --- README --------------------------------------------------------------------------------

def _table(markdown: str, header: str) -> list[list[str]]:
    """Rows of the Markdown table whose header line starts with ``header``."""
    lines = markdown.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in line.strip("|").split(" | ")])
    return rows


def test_readme_golden_and_every_number_matches_the_manifest() -> None:
    for manifest, golden in ((iran(), "readme_iran_202102_hashed.md"),
                             (fixed_manifest("iran_202102", "Iran (February 2021)", "2021-02", 238, 38 * 1024,
                                             [round(285.2 * 1024**2)], _split(round(32.4 * 1024**3), 16),
                                             variant="unhashed"), "readme_iran_202102_unhashed.md")):
        readme = render_readme(manifest)
        check_golden(golden, readme)
        counts = {r[0]: int(r[1].replace(",", "")) for r in _table(readme, "| What | Count |")}
        assert counts == {"Accounts": manifest["counts"]["accounts"],
                          "Accounts that posted": manifest["counts"]["accounts_that_posted"],
                          "Posts": manifest["counts"]["posts"],
                          "Media files": manifest["counts"]["media_files"],
                          "Media archives": manifest["counts"]["archives"]}
        listed = _table(readme, "| File | Size |")
        assert [r[0].strip("`") for r in listed] == [f["name"] for f in manifest["files"]]
        for row, f in zip(listed, manifest["files"], strict=True):
            assert row[1] == human_size(f["bytes"], 2)
            assert int(row[2]) == f["bytes"]
            assert row[3] == ("n/a" if f["rows"] is None else f"{f['rows']:,}")
            assert row[4] == f"`{f['sha256']}`"
        columns = [r[0].strip("`") for r in _table(readme, "| Column | Description |")]
        assert columns == list(ACCOUNT_COLUMNS)  # first dictionary table: accounts
        for col in (*POST_COLUMNS, *MEDIA_INDEX_COLUMNS):
            assert f"| `{col}` |" in readme
        assert "Initial release." in readme and "disclosed February 2021" in readme
    hashed, unhashed = render_readme(iran()), render_readme(unhashed_iran())
    assert "key-2021" in hashed and "HMAC-SHA256" in hashed and "fewer than 5,000 followers" in hashed
    assert "`present` or\n`absent`" in hashed
    assert "data-use agreement" in unhashed and "data-use agreement" not in hashed
    assert "HMAC" not in unhashed


def unhashed_iran() -> dict:
    return fixed_manifest("iran_202102", "Iran (February 2021)", "2021-02", 238, 38 * 1024,
                          [round(285.2 * 1024**2)], _split(round(32.4 * 1024**3), 16), variant="unhashed")


def test_rendered_release_readme_matches_its_own_manifest(tmp_path) -> None:
    layout = make_staging(tmp_path)
    manifest = render_release(layout.root, make_campaign(tmp_path), RELEASE_ID)["hashed"]
    readme = layout.readme("hashed").read_text()
    listed = {r[0].strip("`"): r for r in _table(readme, "| File | Size |")}
    data_files = [f for f in manifest["files"] if f["name"] not in ("README.md", "SHA256SUMS")]
    assert sorted(listed) == [f["name"] for f in data_files]
    for f in data_files:
        assert listed[f["name"]][4] == f"`{f['sha256']}`" and int(listed[f["name"]][2]) == f["bytes"]
    assert "| posts | 50 | 42 | excluded | deleted | 3 |" in readme.replace("\\_", "_")
    assert "`parquet/tweets/`: 42 rows" in readme


# --- untrusted text -----------------------------------------------------------------------

class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs) -> None:
        self.tags.append((tag, dict(attrs)))


def _tags(html: str) -> list[tuple[str, dict]]:
    parser = _Tags()
    parser.feed(html)
    return parser.tags


def test_untrusted_text_is_inert_in_markdown() -> None:
    manifest = iran()
    manifest["title"] = EVIL_TITLE
    manifest["attribution"] = EVIL_TEXT
    manifest["changelog"] = [{"version": 1, "date": "2021-02", "text": "[x](javascript:alert(1)) <b>hi</b>"}]
    readme = render_readme(manifest)
    html = MarkdownIt("commonmark").enable("table").render(readme)
    tags = _tags(html)
    assert not [t for t, _ in tags if t in ("script", "img", "b", "strong", "em", "code") and t != "code"]
    assert [a for t, a in tags if t == "a"] == []  # no link at all: the README itself has none
    assert sum(1 for t, _ in tags if t == "h1") == 1  # "# Heading" in the attribution did not become one
    assert "<li>list item" not in html
    # The reader sees the literal characters.
    text = re.sub(r"<[^>]+>", "", html)
    import html as html_lib
    text = html_lib.unescape(text)
    assert EVIL_TITLE in text
    assert "# Heading - list item <img src=x onerror=alert(1)> ![img](http://evil.example/x.png) &lt;b&gt;" in text
    assert "[x](javascript:alert(1)) <b>hi</b>" in text


@pytest.mark.parametrize("raw", [EVIL_TITLE, EVIL_TEXT, "1. first", "+ plus", "=== setext", "\\`*_{}[]#|!~$",
                                 "line\u2028sep", "ctrl\x00\x1b[31m"])
def test_md_escape_renders_literally(raw: str) -> None:
    html = MarkdownIt("commonmark").enable(["table", "strikethrough"]).render(f"Text: {md_escape(raw)}\n\n{md_escape(raw)}\n")
    paragraphs = re.findall(r"<p>(.*?)</p>", html, re.S)
    import html as html_lib
    expected = re.sub(r"\s*[\n\u2028]+\s*", " ", re.sub(r"[\x00-\x08\x0b\x0c\x0e-\x1f]", "", raw))
    assert [html_lib.unescape(p) for p in paragraphs] == [f"Text: {expected}", expected]


def test_md_url_refuses_script_schemes_and_cannot_break_out() -> None:
    with pytest.raises(ValueError):
        md_url("javascript:alert(1)")
    assert md_url("https://docs.example/a b>c)") == "<https://docs.example/a%20b%3Ec%29>"
    assert md_url("file:///staging/validation/hashed/index.html") == "<file:///staging/validation/hashed/index.html>"


def test_untrusted_text_is_escaped_in_catalog_html(tmp_path) -> None:
    manifest = iran()
    manifest["title"] = EVIL_TITLE
    manifest["changelog"] = [{"version": 1, "date": "2021-02", "text": "<img src=x onerror=alert(1)>"}]
    other = smallland(2)
    other["changelog"][1]["text"] = "<script>alert(2)</script>"
    html_path, json_path = render_catalog([manifest, smallland(1), other], tmp_path)
    html = html_path.read_text()
    tags = _tags(html)
    assert {t for t, _ in tags} <= {"html", "head", "meta", "title", "style", "body", "h1", "h2", "h3", "h4", "p",
                                   "a", "section", "ul", "li", "details", "summary", "table", "tr", "th", "td",
                                   "code", "span"}
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "&lt;script&gt;alert(2)&lt;/script&gt;" in html
    hrefs = [a["href"] for t, a in tags if t == "a"]
    assert all(h == "releases.json" or h.startswith(("../releases/", "#year-")) for h in hrefs), hrefs
    assert json.loads(json_path.read_text())["releases"][0]["title"] == EVIL_TITLE  # data, not markup


# --- catalog -------------------------------------------------------------------------------

def test_catalog_lines_of_historic_releases_exactly() -> None:
    assert catalog_lines(iran()) == {
        "heading": "Iran (February 2021) - 238 Accounts",
        "lines": ["Account Information (38 KB)", "post Information (285.2 MB)", "Media (32.4 GB, 16 archives)"],
    }
    assert catalog_lines(largeland()) == {
        "heading": "Largeland (December 2019) - 5,929 Accounts",
        "lines": ["Account Information (1.2 MB)", "post Information (5.7 GB)", "Media (2.3 TB, 981 archives)"],
    }
    assert catalog_lines(smallland(2)) == {
        "heading": "Smallland (June 2019) - 1 Account",
        "lines": ["Account Information (2.1 KB)", "post Information (512 B)", "Media (1.5 GB, 1 archive)"],
    }
    no_media = fixed_manifest("quiet_202001", "Quiet (January 2020)", "2020-01", 3, 900, [700], [])
    assert catalog_lines(no_media)["lines"] == ["Account Information (900 B)", "post Information (700 B)"]


def test_catalog_golden_html_and_json(tmp_path) -> None:
    paths = render_catalog([smallland(1), iran(), largeland(), smallland(2)], tmp_path / "catalog")
    assert [p.name for p in paths] == ["index.html", "releases.json"]
    html, doc = paths[0].read_text(), json.loads(paths[1].read_text())
    check_golden("catalog_index.html", html)
    check_golden("catalog_releases.json", paths[1].read_text())
    assert [r["release_id"] for r in doc["releases"]] == ["iran_202102", "largeland_201912", "smallland_201906"]
    small = doc["releases"][2]
    assert small["latest_version"] == 2 and [v["version"] for v in small["versions"]] == [2, 1]
    assert small["heading"] == "Smallland (June 2019) - 1 Account"
    assert small["versions"][1]["heading"] == "Smallland (June 2019) - 2 Accounts"
    assert small["versions"][0]["readme"] == "releases/smallland_201906/v2/README.md"
    for entry in doc["releases"]:
        assert f"<h4>{entry['heading']}</h4>" in html
        for line in entry["lines"]:
            assert f"<li>{line}</li>" in html
    assert "<script" not in html.lower()


def test_catalog_groups_by_year_and_country_lists_files_and_marks_withdrawn(tmp_path) -> None:
    """A withdrawn version (its withdrawal record) is marked "withdrawn, superseded by v2"; the
    latest standing version gives the heading, the README link and the file and checksum list."""
    from html.parser import HTMLParser

    v1 = smallland(1)
    v1.update({"withdrawn_at": "2021-06-01T00:00:00Z", "reason": "retraction after appeal <b>R-1</b>",
               "superseded_by": 2, "withdrawn_files": [{"name": "x.zip", "sha256": "00" * 32}]})
    html_path, json_path = render_catalog([v1, smallland(2), iran(), largeland()], tmp_path)
    html = html_path.read_text()
    doc = json.loads(json_path.read_text())

    class Text(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.parts: list[str] = []

        def handle_data(self, data: str) -> None:
            self.parts.append(data)

    parser = Text()
    parser.feed(html)
    text = " ".join(" ".join(parser.parts).split())
    # years newest first, then countries
    assert [m for m in re.findall(r'<h2 id="year-(\d{4})">', html)] == ["2021", "2019"]
    assert text.index("Iran (February 2021) - 238 Accounts") < text.index("Largeland (December 2019)") \
        < text.index("Smallland (June 2019) - 1 Account")
    small = next(r for r in doc["releases"] if r["release_id"] == "smallland_201906")
    assert small["latest_version"] == 2 and small["withdrawn"] is False
    assert small["versions"][1]["withdrawn"]["text"] == "withdrawn, superseded by v2"
    assert "v1: withdrawn, superseded by v2 (2021-06-01T00:00:00Z: retraction after appeal &lt;b&gt;R-1&lt;/b&gt;)" \
        in " ".join(html.replace('<span class="withdrawn">', "").replace("</span>", "").split())
    assert 'href="../releases/smallland_201906/v1/manifest.json">withdrawal record</a>' in html
    assert 'href="../releases/smallland_201906/v1/README.md"' not in html  # its data objects are gone
    assert 'href="../releases/smallland_201906/v2/README.md">README</a>' in html
    for f in smallland(2)["files"]:
        assert f'<code>{f["sha256"]}</code>' in html
        assert f'href="../releases/smallland_201906/v2/{f["name"]}"' in html
    # every version withdrawn: the release says so instead of offering downloads
    html_path, _ = render_catalog([v1], tmp_path / "only_withdrawn")
    only = html_path.read_text()
    assert "Version 1 withdrawn, superseded by v2 (2021-06-01T00:00:00Z)." in only
    assert "README.md" not in only


def test_catalog_refuses_unhashed_and_conflicting_manifests(tmp_path) -> None:
    with pytest.raises(ManifestError, match="only hashed"):
        render_catalog([iran(), unhashed_iran()], tmp_path)
    changed = iran()
    changed["counts"]["accounts"] = 1
    with pytest.raises(ManifestError, match="two different manifests"):
        catalog_entries([iran(), changed])
    assert not (tmp_path / "index.html").exists()


def test_cli_render_catalog_from_published_folders(tmp_path) -> None:
    from ioarchive.cli.main import main

    layout = make_staging(tmp_path)
    render_release(layout.root, make_campaign(tmp_path), RELEASE_ID, variants=["hashed"])
    bucket = tmp_path / "bucket" / "releases" / RELEASE_ID / "v1"
    bucket.mkdir(parents=True)
    (bucket / "manifest.json").write_bytes(layout.manifest("hashed").read_bytes())
    write_json(tmp_path / "iran.json", iran())
    out = tmp_path / "catalog"
    assert main(["render-catalog", "--manifests", str(tmp_path / "bucket"), str(tmp_path / "iran.json"),
                 "--out", str(out)]) == 0
    doc = json.loads((out / "releases.json").read_text())
    assert [r["heading"] for r in doc["releases"]] == ["Testland (March 2021) - 3 Accounts",
                                                      "Iran (February 2021) - 238 Accounts"]
    assert doc["releases"][0]["lines"] == ["Account Information (4.1 KB)", "post Information (26.6 KB)",
                                           "Media (6.5 KB, 3 archives)"]  # 4500+1800+400 B
    published = (out / "index.html").read_text() + (out / "releases.json").read_text()
    for raw in (*RAW_IDS, *RAW_NAMES):
        assert raw not in published
    assert main(["render-catalog", "--manifests", str(tmp_path / "empty"), "--out", str(out)]) == 1
    assert len(load_manifests([tmp_path / "bucket"])) == 1


# --- reviewer summary ----------------------------------------------------------------------

def test_reviewer_summary_counts_changes_quality_and_links(tmp_path) -> None:
    layout = make_staging(tmp_path)
    manifests = render_release(layout.root, make_campaign(tmp_path, title=EVIL_TITLE), RELEASE_ID)
    previous = copy.deepcopy(manifests["hashed"])
    previous["version"] = 0
    previous["counts"]["posts"] = 40
    previous["files"] = [f for f in previous["files"] if f["name"] != "media/media_index.csv"]
    previous["files"].append({"name": "old.csv", "bytes": 1, "sha256": "0" * 64, "rows": 1, "kind": "other"})
    for f in previous["files"]:
        if f["name"] == "parquet/users.parquet":
            f["sha256"] = "f" * 64
    write_json(layout.validation_summary("hashed"),
               {"success": False, "suites": {
                   "posts": {"success": False, "failed": [{"expectation": "expect_column_values_to_not_be_null",
                                                           "column": "tweet_time", "observed": 2, "examples": []}]},
                   "accounts": {"success": True, "failed": []}}})
    text = render_reviewer_summary(
        layout.root, RELEASE_ID, previous_manifest=previous,
        readme_urls={"hashed": "https://review.example/hashed/README.md"},
        data_docs_urls={"hashed": "https://review.example/docs/index.html?x=1&y=2"},
    )
    hashed, unhashed = text.split("### unhashed variant")
    assert "| Posts | 42 |" in hashed and "| Media archives | 3 |" in hashed
    assert "- posts: 40 -> 42 (+2)" in hashed
    assert "- added `media/media_index.csv`" in hashed
    assert "- removed `old.csv`" in hashed
    assert "- changed `parquet/users.parquet`" in hashed
    assert "Data quality: **FAILED**" in hashed and "| posts | FAILED |" in hashed and "| accounts | passed |" in hashed
    assert "- posts: expect\\_column\\_values\\_to\\_not\\_be\\_null on tweet\\_time\n" in hashed
    assert "Pseudonymized accounts: 3 (threshold 5,000 followers, key id test-key-2021)" in hashed
    assert "- [README](<https://review.example/hashed/README.md>)" in hashed
    assert "- [Data Docs](<https://review.example/docs/index.html?x=1&y=2>)" in hashed
    assert "Data quality: **not available**" in unhashed  # absent summary is never a pass
    assert "no previous version given" in unhashed
    html = MarkdownIt("commonmark").enable("table").render(text)
    assert "<script" not in html
    assert {a["href"] for t, a in _tags(html) if t == "a"} == {
        "https://review.example/hashed/README.md", "https://review.example/docs/index.html?x=1&y=2"}
    passed = render_reviewer_summary(layout.root, RELEASE_ID, variants=["unhashed"],
                                     quality={"unhashed": {"success": True, "suites": {}}})
    assert "Data quality: **passed**." in passed


def test_templates_folder_override(tmp_path, monkeypatch) -> None:
    (tmp_path / "README.md.j2").write_text("# {{ m.title }}\n", encoding="utf-8")
    monkeypatch.setenv("IOARCHIVE_TEMPLATES", str(tmp_path))
    manifest = iran()
    manifest["title"] = "A [b](c)"
    assert render_readme(manifest) == "# A \\[b\\](c)\n"  # escaped by default even in a custom template
    monkeypatch.setenv("IOARCHIVE_TEMPLATES", str(tmp_path / "missing"))
    with pytest.raises(ManifestError, match="IOARCHIVE_TEMPLATES"):
        render_readme(manifest)


def test_catalog_marks_a_withdrawn_version(tmp_path) -> None:
    """RELEASE_SPEC 8: a withdrawal record is listed as withdrawn, superseded by its successor."""
    from ioarchive.publish.withdraw import withdrawal_record

    record = withdrawal_record(smallland(1), reason="appeal", superseded_by=2, withdrawn_at="2026-12-05T08:00:00Z")
    html_path, json_path = render_catalog([record, smallland(2)], tmp_path)
    entry = json.loads(json_path.read_text())["releases"][0]
    assert entry["latest_version"] == 2
    v1 = entry["versions"][1]
    assert (v1["version"], v1["withdrawn"]["at"], v1["withdrawn"]["superseded_by"], v1["files"]) \
        == (1, "2026-12-05T08:00:00Z", 2, [])
    assert [f["name"] for f in v1["withdrawn"]["files"]] == [f["name"] for f in smallland(1)["files"]]
    html = " ".join(html_path.read_text().replace('<span class="withdrawn">', "").replace("</span>", "").split())
    assert "v1: withdrawn, superseded by v2 (2026-12-05T08:00:00Z: appeal)" in html
    assert 'href="../releases/smallland_201906/v1/README.md"' not in html
