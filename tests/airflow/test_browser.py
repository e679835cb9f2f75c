"""The release browser app (FastAPI TestClient) with Airflow's real token check.

Users sign in as Airflow's API server would see them: a JWT made by the auth manager, in the
UI's ``_token`` cookie, validated by Airflow's own ``get_user`` dependency (the simple auth
manager here: the FAB one needs the whole metadata DB, and the FAB roles are exercised in
Chromium against the stack, tests/e2e/test_reviewer_browser.py). Data: a staging root with
three versions of one release and a local S3 server (moto) holding v1 as a withdrawal record
and v2 as published; v3 staged and waiting at the publication sign-off.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import pytest
from ioarchive.airflow.browser.runs import classify
from ioarchive.airflow.browser.versions import Sources
from ioarchive.staging import StagingLayout
from support.s3 import MotoServer

RELEASE = "iran_202102"
PUBLIC, MEMBERS = "pub-bucket", "member-bucket"
HOSTILE_TITLE = 'Iran <script>alert("t")</script> (February 2021)'
HOSTILE_TEXT = '<img src=x onerror=alert(1)> [click](javascript:alert(2))'
CHART = b'<svg xmlns="http://www.w3.org/2000/svg" id="posts_per_day"><rect data-key="2021-01-02" data-value="7"/></svg>'


def _posts_parquet(variant: str) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({
        "tweetid": [str(1000 + i) for i in range(30)],
        "userid": [("PSEUDO" if variant == "hashed" else "4711") + str(i % 3) for i in range(30)],
        "tweet_text": [HOSTILE_TEXT if i == 0 else f"post {i}" for i in range(30)],
        "hashtags": [["news", "x"] for _ in range(30)],
    })
    out = io.BytesIO()
    pq.write_table(table, out)
    return out.getvalue()


def _users_parquet(variant: str) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = io.BytesIO()
    pq.write_table(pa.table({"userid": [("PSEUDO" if variant == "hashed" else "4711") + str(i) for i in range(3)]}), out)
    return out.getvalue()


def _files(variant: str, version: int) -> dict[str, tuple[bytes, str]]:
    readme = (f"# {HOSTILE_TITLE.replace('<', '&lt;')}\n\nVersion {version} of the {variant} variant.\n\n"
              "| count | n |\n|---|---|\n| posts | 30 |\n\n![Posts per day](charts/posts_per_day.svg)\n\n"
              f"Raw text in a README line: {HOSTILE_TEXT}\n")
    files = {
        "README.md": (readme.encode(), "readme"),
        f"{RELEASE}_users_csv_{variant}.zip": (b"PK users " * 40, "accounts_csv"),
        f"{RELEASE}_tweets_csv_{variant}.zip": (b"PK tweets " * 400 + bytes([version]), "posts_csv"),
        "parquet/users.parquet": (_users_parquet(variant), "accounts_parquet"),
        "parquet/tweets/part-00000.parquet": (_posts_parquet(variant), "posts_parquet"),
        "charts/posts_per_day.svg": (CHART, "chart"),
        "stats.json": (b'{"posts": 30}', "stats"),
    }
    return files


def _manifest(variant: str, version: int, files: dict[str, tuple[bytes, str]]) -> dict:
    return {
        "release_id": RELEASE, "version": version, "variant": variant, "title": HOSTILE_TITLE,
        "country": "Iran", "disclosure_month": "2021-02",
        "counts": {"accounts": 3, "accounts_that_posted": 3, "posts": 30, "media_files": 0, "archives": 0},
        "files": [{"name": n, "bytes": len(d), "sha256": hashlib.sha256(d).hexdigest(), "kind": k,
                   **({"rows": 30} if n.endswith(".parquet") else {})} for n, (d, k) in sorted(files.items())],
        "signoffs": [{"gate": "attribution", "decision": "approved", "by": "reviewer_a", "at": "2021-02-01T10:00:00",
                      "comment": HOSTILE_TEXT}],
    }


def _stage(root: Path, version: int) -> StagingLayout:
    layout = StagingLayout.for_version(root, RELEASE, version)
    for variant in ("hashed", "unhashed"):
        files = _files(variant, version)
        for name, (data, _kind) in files.items():
            path = layout.release_dir(variant) / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        layout.manifest(variant).write_text(json.dumps(_manifest(variant, version, files)))
        vdir = layout.validation_dir(variant)
        (vdir / "gx" / "data_docs").mkdir(parents=True, exist_ok=True)
        (vdir / "summary.json").write_text(json.dumps({
            "format": 2, "release_id": RELEASE, "variant": variant, "threshold": 5000, "success": True,
            "suites": {f"posts_{variant}": {"success": True, "evaluated": 12, "failed": []}},
            "files": {"parquet/tweets/part-00000.parquet": "ab" * 32}}))
        (vdir / "gx" / "data_docs" / "index.html").write_text(
            '<html><head><script src="https://cdn.jsdelivr.net/npm/jquery.min.js"></script>'
            '<link rel="stylesheet" href="//maxcdn.bootstrapcdn.com/b.css">'
            f'<img src="https://superconductive-public.s3.amazonaws.com/x.png"></head><body>GX docs {variant}</body></html>')
    layout.reconciliation.write_text(json.dumps({"release_id": RELEASE, "balanced": True, "tables": {
        "posts": {"read": 40, "released": 30, "excluded": {"deleted": 4, "not_campaign_account": 2},
                  "quarantined": {"invalid_json": 3, "duplicate_id": 1}}}}))
    layout.signoffs.write_text(json.dumps([{"gate": "attribution", "decision": "approved", "by": "reviewer_a",
                                            "at": "2021-03-01T09:00:00", "comment": "", "run_id": "r3"}]))
    return layout


@pytest.fixture(scope="module")
def s3():
    with MotoServer() as server:
        yield server


@pytest.fixture(scope="module")
def sources(tmp_path_factory, s3) -> Sources:
    from ioarchive.publish.store import RetryPolicy, S3ObjectStore

    root = tmp_path_factory.mktemp("staging")
    client = s3.client()
    for bucket in (PUBLIC, MEMBERS):
        client.create_bucket(Bucket=bucket)
    # v1: withdrawn (only the withdrawal record is left in both buckets; no staging folder here).
    for bucket, variant in ((PUBLIC, "hashed"), (MEMBERS, "unhashed")):
        record = {**_manifest(variant, 1, _files(variant, 1)), "withdrawn_at": "2021-06-01T00:00:00Z",
                  "reason": "retraction after appeal <b>R-17</b>", "superseded_by": 2,
                  "withdrawn_files": [{"name": f"{RELEASE}_users_csv_{variant}.zip", "sha256": "00" * 32}]}
        client.put_object(Bucket=bucket, Key=f"releases/{RELEASE}/v1/manifest.json", Body=json.dumps(record).encode())
    # v2: published in both buckets (no staging folder: read from the buckets); v3: staged, waiting.
    for bucket, variant in ((PUBLIC, "hashed"), (MEMBERS, "unhashed")):
        files = _files(variant, 2)
        for name, (data, _kind) in files.items():
            client.put_object(Bucket=bucket, Key=f"releases/{RELEASE}/v2/{name}", Body=data)
        client.put_object(Bucket=bucket, Key=f"releases/{RELEASE}/v2/manifest.json",
                          Body=json.dumps(_manifest(variant, 2, files)).encode())
    _stage(root, 3)
    runs = {(RELEASE, 3): classify("r3", "running", {"render": "success", "publication_signoff": "awaiting_input"},
                                   "trigger_user")}
    store = S3ObjectStore(client, retry=RetryPolicy(attempts=1, base_seconds=0))
    return Sources(staging_root=root, store=store, buckets={"hashed": PUBLIC, "unhashed": MEMBERS},
                   runs=lambda: runs)


@pytest.fixture(scope="module")
def auth(tmp_path_factory):
    """Airflow's auth manager (simple) with a JWT secret; the revoked-token table it checks."""
    import os

    os.environ["AIRFLOW__API_AUTH__JWT_SECRET"] = "browser-test-secret-" + "x" * 48
    os.environ["AIRFLOW__CORE__AUTH_MANAGER"] = (
        "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager")
    from airflow import settings
    from airflow.api_fastapi.app import create_auth_manager
    from airflow.models.revoked_token import RevokedToken

    RevokedToken.__table__.create(settings.engine, checkfirst=True)
    manager = create_auth_manager()
    yield manager
    for key in ("AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__CORE__AUTH_MANAGER"):
        os.environ.pop(key, None)


@pytest.fixture(scope="module")
def client(sources, auth):
    from fastapi import FastAPI
    from fastapi.testclient import TestClient
    from ioarchive.airflow.browser.app import create_app

    root = FastAPI()
    root.mount("/ioarchive", create_app(lambda: sources))  # as Airflow's init_plugins mounts it
    return TestClient(root, follow_redirects=False)


def _as(client, auth, role: str | None):
    """Cookies of a signed-in user with ``role`` (admin may read member data; viewer may not)."""
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    client.cookies.clear()
    if role:
        client.cookies.set("_token", auth.generate_jwt(SimpleAuthManagerUser(username=f"u_{role}", role=role)))
    return client


def test_no_page_without_login_sends_to_airflows_login(client, auth):
    for path in ("/ioarchive/", f"/ioarchive/releases/{RELEASE}/v3/hashed/", f"/ioarchive/releases/{RELEASE}/v3/unhashed/",
                 f"/ioarchive/releases/{RELEASE}/v3/hashed/charts/posts_per_day.svg", "/ioarchive/catalog/"):
        r = _as(client, auth, None).get(path)
        assert r.status_code == 303, (path, r.status_code)
        assert "/auth/login" in r.headers["location"] and "next=" in r.headers["location"]
    client.cookies.set("_token", "forged.token.value")
    assert client.get("/ioarchive/").status_code == 303


def test_list_shows_every_version_with_state_signoffs_and_sizes(client, auth):
    from bs4 import BeautifulSoup

    r = _as(client, auth, "viewer").get("/ioarchive/")
    assert r.status_code == 200
    assert "script-src 'none'" in r.headers["content-security-policy"]
    soup = BeautifulSoup(r.text, "html.parser")
    rows = {row["data-version"]: row for row in soup.select("#releases tbody tr")}
    assert sorted(rows) == ["1", "2", "3"]
    assert [rows[v]["data-state"] for v in ("1", "2", "3")] == ["withdrawn", "published", "waiting"]
    assert "withdrawn 2021-06-01T00:00:00Z, superseded by v2" in " ".join(rows["1"].get_text().split())
    assert "reason: retraction after appeal <b>R-17</b>" in rows["1"].get_text()  # escaped, shown as text
    assert "published (public, members)" in rows["2"].get_text()
    assert "waiting at the publication sign-off" in rows["3"].get_text()
    assert "attribution: approved by reviewer_a at 2021-03-01T09:00:00" in rows["3"].get_text()
    total = sum(len(d) for d, _ in _files("hashed", 3).values())
    from ioarchive.humanize import human_size

    assert f"7 files, {human_size(total)}" in rows["3"].get_text()
    assert "<script>" not in r.text and "&lt;script&gt;" in r.text
    # a viewer gets no link to the members' variant
    assert not soup.select('a[href$="/unhashed/"]')


def test_version_page_shows_readme_charts_quality_sample_reconciliation(client, auth):
    from bs4 import BeautifulSoup

    r = _as(client, auth, "viewer").get(f"/ioarchive/releases/{RELEASE}/v3/hashed/")
    assert r.status_code == 200, r.text
    soup = BeautifulSoup(r.text, "html.parser")
    readme = soup.select_one("#readme")
    assert readme.select_one("h1").get_text() == HOSTILE_TITLE
    assert readme.select_one("table td").get_text() == "posts"
    assert not soup.select("script") and not readme.select("img[onerror]")
    assert HOSTILE_TEXT in readme.get_text()  # raw HTML in the Markdown is shown as text
    assert not [a for a in soup.select("a") if a.get("href", "").startswith("javascript")]
    assert [i["src"] for i in soup.select("#charts img")] == [
        f"/ioarchive/releases/{RELEASE}/v3/hashed/charts/posts_per_day.svg"]
    quality = {tr["data-variant"]: " ".join(tr.get_text(" ").split()) for tr in soup.select("#quality tbody tr")}
    assert "passed" in quality["hashed"] and "1 suites, 12 expectations evaluated" in quality["hashed"]
    assert "reviewers and administrators only" in quality["unhashed"]
    sample = soup.select("#sample tbody tr")
    assert len(sample) == 20
    assert [td.get_text() for td in sample[0].select("td")] == ["1000", "PSEUDO0", HOSTILE_TEXT, '["news", "x"]']
    recon = " ".join(soup.select_one('#reconciliation tr[data-table="posts"]').get_text(" ").split())
    assert recon.startswith("posts 40 30 deleted: 4 not_campaign_account: 2 duplicate_id: 1 invalid_json: 3")
    assert "From v2 to v3 (hashed):" in r.text
    diff = [li.get_text() for li in soup.select("#diff li")]
    assert diff == ["Files: 2 changed", f"Files changed: README.md, {RELEASE}_tweets_csv_hashed.zip"]


def test_chart_and_published_only_version_come_from_the_bucket(client, auth):
    c = _as(client, auth, "viewer")
    svg = c.get(f"/ioarchive/releases/{RELEASE}/v3/hashed/charts/posts_per_day.svg")
    assert svg.status_code == 200 and svg.content == CHART and svg.headers["content-type"] == "image/svg+xml"
    assert c.get(f"/ioarchive/releases/{RELEASE}/v3/hashed/charts/..%2Fstats.json").status_code == 404
    page = c.get(f"/ioarchive/releases/{RELEASE}/v2/hashed/")
    assert page.status_code == 200
    assert f"s3://{PUBLIC}/releases/{RELEASE}/v2/" in page.text  # read from the bucket
    assert "Version 2 of the hashed variant." in page.text
    assert "PSEUDO0" in page.text  # sample rows from the bucket's Parquet
    assert c.get(f"/ioarchive/releases/{RELEASE}/v2/hashed/charts/posts_per_day.svg").content == CHART
    withdrawn = c.get(f"/ioarchive/releases/{RELEASE}/v1/hashed/")
    assert "Withdrawn at 2021-06-01T00:00:00Z, superseded by" in withdrawn.text
    assert f'href="/ioarchive/releases/{RELEASE}/v2/hashed/">v2</a>' in withdrawn.text


def test_unhashed_pages_are_for_member_roles_only(client, auth):
    paths = [f"/ioarchive/releases/{RELEASE}/v3/unhashed/", f"/ioarchive/releases/{RELEASE}/v3/unhashed/quality/",
             f"/ioarchive/releases/{RELEASE}/v3/unhashed/datadocs/gx/data_docs/index.html",
             f"/ioarchive/releases/{RELEASE}/v3/unhashed/charts/posts_per_day.svg"]
    for role in ("viewer", "op", "user"):
        c = _as(client, auth, role)
        for path in paths:
            r = c.get(path)
            assert r.status_code == 403, (role, path, r.status_code)
            assert "reviewers and administrators only" in r.text
    c = _as(client, auth, "admin")
    page = c.get(paths[0])
    assert page.status_code == 200 and "4711" in page.text and "members (unhashed)" in page.text
    assert c.get(paths[3]).content == CHART


def test_data_docs_are_served_without_third_party_requests(client, auth):
    c = _as(client, auth, "admin")
    q = c.get(f"/ioarchive/releases/{RELEASE}/v3/hashed/quality/")
    assert q.status_code == 200 and "posts_hashed" in q.text and "Verdict: <strong>passed</strong>" in q.text
    assert "gx/data_docs/index.html" in q.text
    page = c.get(f"/ioarchive/releases/{RELEASE}/v3/hashed/datadocs/gx/data_docs/index.html")
    assert page.status_code == 200 and "GX docs hashed" in page.text
    for third_party in ("cdn.jsdelivr.net", "bootstrapcdn", "superconductive-public", "<script"):
        assert third_party not in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert c.get(f"/ioarchive/releases/{RELEASE}/v3/hashed/datadocs/../../../signoffs.json").status_code == 404


def test_unknown_version_is_404_with_a_message(client, auth):
    r = _as(client, auth, "admin").get(f"/ioarchive/releases/{RELEASE}/v9/hashed/")
    assert r.status_code == 404 and f"no release {RELEASE} v9" in r.text


def test_plugin_registers_the_app_and_a_navigation_link():
    from ioarchive.airflow.browser.plugin import LazyApp, ReleaseBrowserPlugin

    [app] = ReleaseBrowserPlugin.fastapi_apps
    assert app["url_prefix"] == "/ioarchive" and isinstance(app["app"], LazyApp)
    [view] = ReleaseBrowserPlugin.external_views
    assert view["href"] == "/ioarchive/" and view["destination"] == "nav" and view["name"] == "Releases"
    shim = Path(__file__).resolve().parents[2] / "plugins" / "ioarchive_browser_plugin.py"
    assert "ReleaseBrowserPlugin" in shim.read_text()


def test_run_states_in_words():
    assert classify("r", "running", {"attribution_signoff": "awaiting_input"}).describe() == \
        "waiting at the attribution sign-off"
    assert classify("r", "running", {"wait_for_investigations": "up_for_reschedule"}).describe() == \
        "waiting at the investigations (registry)"
    assert classify("r", "failed", {"extract": "failed", "validate_request": "success"}).describe() == \
        "run failed at extract"
