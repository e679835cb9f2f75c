"""The reviewer flow in a real browser: Chromium (Playwright) against the local stack's Airflow UI.

One SQLite stack for the module; two runs of ``io_release`` are triggered by ``trigger_user``
and park at the attribution sign-off. Both reviewers sign in through the login form (each in a
browser context of their own). Then, as a reviewer would, through the UI only:

- ``reviewer_a`` finds the gate under Required Actions, reads the summary (campaign
  title, attribution statement, counts), approves with a comment; REST then shows the gate
  done, the investigations sensor passed and extraction started: the run proceeds;
- ``reviewer_b`` rejects the other run; the run fails, the reject is recorded with
  reviewer_b's name (``hitlDetails.responded_by_user``, ``signoffs.json``), nothing is published.

Both reviewers answer first (the reject first: its run has the longer way to its end state) and
the outcomes are checked afterwards, so the two runs' resumption (worker starts, slow on a loaded
2-core machine) overlaps. Screenshots of every step land
in ``tests/artifacts/browser/`` (gitignored).

The approved run then goes all the way, and shows what reviewers, researchers and on-call look
at (issue #19):

- its ``extract`` fails once, honestly: the campaign's ``posts.jsonl`` is moved away after the
  request was validated (an export volume that went missing), so the task fails on try 1 and its
  failure notification (in the task log: no SNS topic on the stack) names the release, the task,
  the cause and the runbook section and links to the failed try's log. On-call follows that
  link in Chromium, the file is put back, and on-call presses "Clear Task Instance" in the UI:
  the run goes on;
- at the publication sign-off, the gate page links to the version's page in the release
  browser (the Airflow plugin): the reviewer follows it and sees the README, the charts, both
  variants' Data Docs, sample rows and the reconciliation, then approves;
- the run finishes; the browser lists the version as published with both sign-offs, and shows
  the public catalog; a FAB "Viewer" gets HTTP 403 on the unhashed pages that a reviewer reads,
  and nobody gets a page without signing in.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from ioarchive.devtools.stack import (
    MEMBER_BUCKET,
    ONCALL_USER,
    PUBLIC_BUCKET,
    REVIEWERS,
    TRIGGER_USER,
    AirflowClient,
    Stack,
)
from support.browser import (
    ReviewerBrowser,
    chromium,
    chromium_missing_reason,
    clear_artifacts,
    failure_screenshot,
)

_MISSING = chromium_missing_reason()
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.timeout(1800),  # the approved run goes all the way on a loaded 2-core machine
    pytest.mark.skipif(_MISSING is not None, reason=_MISSING or ""),
]

DAG_ID = "io_release"
GATE = "attribution_signoff"
REVIEWER_A, REVIEWER_B = REVIEWERS
RELEASE_APPROVE = "browserok_202102"
RELEASE_REJECT = "browserreject_202102"
FAILED_STATES = {"failed", "up_for_retry", "upstream_failed"}
POSTS_AWAY = "posts.jsonl.unmounted"
VIEWER = "viewer"


@dataclass
class GatedRuns:
    """The running stack and the runs waiting at the attribution gate."""

    stack: Stack
    client: AirflowClient
    campaign: dict[str, Any]
    runs: dict[str, str]  # release id -> run id
    campaign_dir: Path


@pytest.fixture(scope="module")
def browser_campaign(tmp_path_factory) -> Path:
    """A small generated campaign (20 accounts, 200 posts, 1 MiB of media)."""
    from ioarchive.devtools.generate.campaign import generate_campaign

    out = tmp_path_factory.mktemp("browser_campaign") / "campaign"
    generate_campaign(out, seed=31, accounts=20, posts=200, media_bytes=1 * 1024**2)
    return out


@pytest.fixture(scope="module")
def gated(sqlite_stack, browser_campaign) -> GatedRuns:
    """Two runs on their way to the attribution gate of the session's SQLite stack.

    The fixture does not wait for the gates: the reviewers' login forms load meanwhile (see
    ``reviewers``). Afterwards on-call marks the runs failed so that the approved one stops its
    extraction instead of competing with later tests for the 2 cores.
    """
    campaign = json.loads((browser_campaign / "campaign.json").read_text())
    stack = sqlite_stack
    # Investigations concluded up front: once approved, the run goes straight on to extraction.
    for investigation in campaign["investigation_ids"]:
        stack.set_investigation(campaign["campaign_id"], investigation, "concluded", "integrity_lead")
    client = AirflowClient.for_stack(stack)
    client.wait_for_dag(DAG_ID, TRIGGER_USER)
    client.unpause(DAG_ID, TRIGGER_USER)
    runs = {release_id: _trigger(client, browser_campaign, release_id) for release_id in (RELEASE_APPROVE, RELEASE_REJECT)}
    try:
        yield GatedRuns(stack=stack, client=client, campaign=campaign, runs=runs, campaign_dir=browser_campaign)
    finally:
        for run_id in runs.values():
            if client.run(DAG_ID, run_id, TRIGGER_USER)["state"] not in ("success", "failed"):
                client.call("PATCH", f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}", ONCALL_USER, {"state": "failed"})


@pytest.fixture(scope="module")
def browser():
    """One headless system Chromium for the module (Playwright's sync API allows one at a time)."""
    with chromium() as the_browser:
        yield the_browser


@pytest.fixture(scope="module")
def reviewers(gated, browser):
    """user -> that reviewer's browser session (own cookies), signed in through the login form.

    One headless system Chromium for all; screenshots of earlier runs are removed first. The
    login form is loaded and filled while the runs are still on their way to the gate, and
    submitted once both gates wait, so Required Actions opens with them listed.
    """
    clear_artifacts()
    sessions = {
        user: ReviewerBrowser(browser, gated.stack.base_url, user, prefix)
        for user, prefix in ((REVIEWER_A, "approve"), (REVIEWER_B, "reject"))
    }
    try:
        passwords = gated.stack.passwords()
        for session in sessions.values():
            with failure_screenshot(session):
                session.fill_login(passwords[session.user])
        for run_id in gated.runs.values():  # sign in once the gates wait: the list shows them at once
            gated.client.wait_task_state(DAG_ID, run_id, GATE, {"awaiting_input"}, TRIGGER_USER, timeout=300)
            gated.stack.wait_scheduler_saw(run_id, GATE, "awaiting_input")
        # The request is validated: now the export's posts file goes missing, so the approved
        # run's extract fails once (test_oncall_follows_the_failure_notification_and_clears_extract).
        (gated.campaign_dir / "posts.jsonl").rename(gated.campaign_dir / POSTS_AWAY)
        for session in sessions.values():
            with failure_screenshot(session):
                session.submit_login()
        yield sessions
    finally:
        for session in sessions.values():
            session.close()


def _trigger(client: AirflowClient, campaign: Path, release_id: str) -> str:
    run_id = f"{release_id}__{secrets.token_hex(3)}"
    conf = {
        "campaign_dir": str(campaign),
        "release_id": release_id,
        "version": 1,
        "threshold": 5000,
        "archive_target_bytes": 512 * 1024,
        "reviewers": list(REVIEWERS),
    }
    run = client.trigger(DAG_ID, run_id, conf, TRIGGER_USER)
    assert run["triggering_user_name"] == TRIGGER_USER
    return run_id


def _gate_details(client: AirflowClient, run_id: str) -> dict[str, Any]:
    details = [d for d in client.hitl_details(DAG_ID, run_id, TRIGGER_USER) if d["task_instance"]["task_id"] == GATE]
    assert len(details) == 1, details
    return details[0]


def _wait_started(client: AirflowClient, run_id: str, task_id: str, timeout: float = 240.0) -> str:
    """Wait until ``task_id`` runs or ran; fail at once (with its log) if it failed."""
    deadline = time.monotonic() + timeout
    while True:
        state = client.task_states(DAG_ID, run_id, TRIGGER_USER).get(task_id)
        if state in ("running", "success"):
            return str(state)
        if state in FAILED_STATES:
            log = client.task_log(DAG_ID, run_id, task_id, TRIGGER_USER)
            pytest.fail(f"{task_id} of {run_id} is {state} after the browser approval:\n{log[-3000:]}")
        if time.monotonic() > deadline:
            pytest.fail(f"{task_id} of {run_id} still {state} {timeout:.0f} s after the approval")
        time.sleep(1.0)


def _signoffs(stack: Stack, release_id: str) -> list[dict[str, str]]:
    path = stack.staging_root / release_id / "v1" / "signoffs.json"
    return json.loads(path.read_text()) if path.exists() else []


def _published_keys(stack: Stack, release_id: str) -> list[str]:
    s3 = stack.s3_client()
    keys: list[str] = []
    for bucket in (PUBLIC_BUCKET, MEMBER_BUCKET):
        listing = s3.list_objects_v2(Bucket=bucket, Prefix=f"releases/{release_id}/")
        keys += [f"{bucket}/{obj['Key']}" for obj in listing.get("Contents", [])]
    return keys


def _read_gate_in_browser(reviewer: ReviewerBrowser, gated: GatedRuns, release_id: str) -> None:
    """Wait for the gate, find it under Required Actions, open it, check the summary is shown."""
    run_id = gated.runs[release_id]
    gated.client.wait_task_state(DAG_ID, run_id, GATE, {"awaiting_input"}, TRIGGER_USER, timeout=300)
    gated.stack.wait_scheduler_saw(run_id, GATE, "awaiting_input")
    row = reviewer.open_required_actions(run_id)
    assert f"Attribution sign-off: {release_id} v1" in row, row
    reviewer.open_gate_from_list(run_id, GATE)
    statement = gated.campaign["attribution"].strip().splitlines()[0]
    assert reviewer.gate_is_showing(gated.campaign["title"]), "campaign title not on the gate page"
    assert reviewer.gate_is_showing(statement), "attribution statement not on the gate page"
    counts = reviewer.page.locator("tr", has_text="attributed accounts").first.inner_text()
    assert counts.split() == ["attributed", "accounts", str(len(gated.campaign["account_ids"]))], counts


def _assert_answered(gated: GatedRuns, release_id: str, user: str, option: str, comment: str) -> None:
    """Airflow recorded the browser's answer under the reviewer's own name (not Anonymous)."""
    gate = _gate_details(gated.client, gated.runs[release_id])
    assert gate["response_received"] is True, f"the browser {option} of {release_id} was not recorded: {gate}"
    assert gate["responded_by_user"]["name"] == user
    assert gate["chosen_options"] == [option]
    assert gate["params_input"] == {"comment": comment}
    run = gated.client.run(DAG_ID, gated.runs[release_id], TRIGGER_USER)
    assert run["triggering_user_name"] == TRIGGER_USER != user  # four eyes


APPROVE_COMMENT = "attribution confirmed in the browser"
REJECT_COMMENT = "attribution disputed by legal (browser)"


def test_reviewer_b_rejects_another_run_in_the_browser(gated, reviewers):
    reviewer = reviewers[REVIEWER_B]
    with failure_screenshot(reviewer):
        _read_gate_in_browser(reviewer, gated, RELEASE_REJECT)
        received = reviewer.answer("Reject", REJECT_COMMENT)
    assert received.endswith(f"from {REVIEWER_B}"), received
    _assert_answered(gated, RELEASE_REJECT, REVIEWER_B, "Reject", REJECT_COMMENT)


def test_reviewer_a_approves_in_the_browser(gated, reviewers):
    reviewer = reviewers[REVIEWER_A]
    with failure_screenshot(reviewer):
        _read_gate_in_browser(reviewer, gated, RELEASE_APPROVE)
        received = reviewer.answer("Approve", APPROVE_COMMENT)
    assert received.endswith(f"from {REVIEWER_A}"), received
    _assert_answered(gated, RELEASE_APPROVE, REVIEWER_A, "Approve", APPROVE_COMMENT)


def test_the_rejected_run_fails_and_publishes_nothing(gated, reviewers):
    client, stack = gated.client, gated.stack
    run_id = gated.runs[RELEASE_REJECT]
    if not _gate_details(client, run_id)["response_received"]:
        pytest.fail("the attribution gate was never answered: see test_reviewer_b_rejects_another_run_in_the_browser")
    assert client.wait_run(DAG_ID, run_id, TRIGGER_USER, timeout=180) == "failed"
    states = client.task_states(DAG_ID, run_id, TRIGGER_USER)
    assert states[GATE] == "failed", states
    assert states["extract"] == "upstream_failed" and states["publish_public"] == "upstream_failed", states
    [signoff] = _signoffs(stack, RELEASE_REJECT)
    assert (signoff["gate"], signoff["decision"], signoff["by"], signoff["comment"]) == (
        "attribution", "rejected", REVIEWER_B, REJECT_COMMENT
    )
    assert _published_keys(stack, RELEASE_REJECT) == []
    assert not (stack.staging_root / RELEASE_REJECT / "v1" / "release").exists()
    reviewer = reviewers[REVIEWER_B]
    with failure_screenshot(reviewer):
        reviewer.open_run(DAG_ID, run_id)
        reviewer.page.locator("tr", has_text=GATE).filter(has_text="Failed").first.wait_for()
        reviewer.screenshot("run_failed")


def test_the_approved_run_proceeds(gated, reviewers):
    """After the browser approval: gate done, (concluded) investigations pass, extraction starts."""
    client, stack = gated.client, gated.stack
    run_id = gated.runs[RELEASE_APPROVE]
    if not _gate_details(client, run_id)["response_received"]:
        pytest.fail("the attribution gate was never answered: see test_reviewer_a_approves_in_the_browser")
    client.wait_task_state(DAG_ID, run_id, GATE, {"success"}, TRIGGER_USER, timeout=180)
    client.wait_task_state(DAG_ID, run_id, "wait_for_investigations", {"success"}, TRIGGER_USER, timeout=180)
    [signoff] = _signoffs(stack, RELEASE_APPROVE)
    assert (signoff["gate"], signoff["decision"], signoff["by"], signoff["comment"]) == (
        "attribution", "approved", REVIEWER_A, APPROVE_COMMENT
    )
    reviewer = reviewers[REVIEWER_A]
    with failure_screenshot(reviewer):
        reviewer.open_run(DAG_ID, run_id)
        reviewer.page.locator("tr", has_text="wait_for_investigations").filter(has_text="Success").first.wait_for()
        reviewer.screenshot("run_proceeds")


# --- issue #19: on-call from a notification to a rerun; the release browser; the catalog ----------

@pytest.fixture(scope="module")
def oncall(gated, reviewers, browser):
    """On-call's own browser context (signed in when they follow the notification's link)."""
    session = ReviewerBrowser(browser, gated.stack.base_url, ONCALL_USER, "oncall")
    try:
        yield session
    finally:
        session.close()


def _notification(log: str, release_id: str) -> dict[str, str]:
    """The failure message's fields (``Release``, ``Cause``, ``Log``, ``Runbook``...) from a task log."""
    start = log.index(f"NOTIFY [ioarchive] {release_id}: extract failed")
    fields = {"subject": log[start:].splitlines()[0]}
    for line in log[start:].splitlines()[1:8]:
        key, _, value = line.strip().partition(": ")
        if key in ("Cause", "Log", "Runbook", "What to do"):
            fields[key] = value
        elif line.strip().startswith("Release "):
            fields["Release"] = line.strip()
    return fields


def test_oncall_follows_the_failure_notification_and_clears_extract(gated, reviewers, oncall):
    client, stack = gated.client, gated.stack
    run_id = gated.runs[RELEASE_APPROVE]
    try:
        client.wait_task_state(DAG_ID, run_id, "extract", {"failed"}, TRIGGER_USER, timeout=300)
    finally:  # the export comes back whatever happened, as the storage team restores the volume
        if (gated.campaign_dir / POSTS_AWAY).exists():
            (gated.campaign_dir / POSTS_AWAY).rename(gated.campaign_dir / "posts.jsonl")
    ti = client.call("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/extract", TRIGGER_USER)
    assert ti["try_number"] == 1, "extract was retried: a missing campaign file must fail at once"
    message = _notification(client.task_log(DAG_ID, run_id, "extract", ONCALL_USER, 1), RELEASE_APPROVE)
    assert message["Release"].startswith(f"Release {RELEASE_APPROVE} v1: task extract failed (DAG io_release, run {run_id}, try 1)")
    assert "has no posts.jsonl" in message["Cause"], message
    assert message["Runbook"] == "docs/runbook.md#after-a-failure-notification"
    log_url = message["Log"]
    assert log_url.startswith(f"{stack.base_url}/dags/{DAG_ID}/runs/") and log_url.endswith("/tasks/extract?try_number=1")
    with failure_screenshot(oncall):
        oncall.fill_login(stack.passwords()[ONCALL_USER], quote(log_url[len(stack.base_url):], safe="/"))
        oncall.submit_login()
        if "/tasks/extract" not in oncall.page.url:
            oncall.page.goto(log_url)
        oncall.page.get_by_text("has no posts.jsonl").first.wait_for(state="visible")
        oncall.screenshot("failure_log")
        # The task page's clear button: labelled "Clear Task Instance", or by its shortcut's tooltip.
        oncall.page.get_by_role("button", name=re.compile(r"^(Clear Task Instance|Press shift\+c to clear)$")).first.click()
        dialog = oncall.page.get_by_role("dialog")
        dialog.wait_for(state="visible")
        downstream = dialog.get_by_text("Downstream", exact=True).first
        dialog.get_by_text(re.compile(r"Affected Tasks: [1-9]")).first.wait_for()  # extract and its downstream
        oncall.screenshot("clear_dialog")
        if downstream.count() and downstream.get_attribute("data-state") not in (None, "on", "checked"):
            downstream.click()
        dialog.get_by_role("button", name="Confirm").click()
        dialog.wait_for(state="hidden")
        oncall.screenshot("cleared")
    _wait_started(client, run_id, "extract")
    states = client.task_states(DAG_ID, run_id, TRIGGER_USER)
    assert states["pseudonymize"] not in FAILED_STATES, f"downstream tasks were not cleared with extract: {states}"


def test_publication_gate_links_to_the_release_browser(gated, reviewers):
    """The reviewer follows the gate's link and reads the version before approving it."""
    client, stack = gated.client, gated.stack
    run_id = gated.runs[RELEASE_APPROVE]
    client.wait_task_state(DAG_ID, run_id, "publication_signoff", {"awaiting_input"}, TRIGGER_USER, timeout=1500)
    stack.wait_scheduler_saw(run_id, "publication_signoff", "awaiting_input")
    reviewer = reviewers[REVIEWER_B]
    page_path = f"/ioarchive/releases/{RELEASE_APPROVE}/v1/hashed/"
    with failure_screenshot(reviewer):
        reviewer.open_required_actions(run_id)
        reviewer.open_gate_from_list(run_id, "publication_signoff")
        link = reviewer.page.get_by_role("link", name=f"{RELEASE_APPROVE} v1")
        assert link.first.get_attribute("href") == stack.base_url + page_path
        reviewer.screenshot("publication_gate")
        gate_url = reviewer.page.url
        reviewer.page.goto(str(link.first.get_attribute("href")))
        page = reviewer.page
        page.locator("#readme h1").wait_for()
        assert gated.campaign["title"] in page.locator("#readme h1").inner_text()
        assert "waiting at the publication sign-off" in page.locator("#state").inner_text()
        charts = page.locator("#charts img")
        assert charts.count() >= 6
        for i in range(charts.count()):  # every chart loaded (an SVG served by the plugin), none broken
            assert charts.nth(i).evaluate("img => img.complete && img.naturalWidth > 0"), charts.nth(i).get_attribute("src")
        quality = {v: page.locator(f'#quality tr[data-variant="{v}"]').inner_text() for v in ("hashed", "unhashed")}
        assert "passed" in quality["hashed"] and "passed" in quality["unhashed"], quality
        assert page.locator("#sample tbody tr").count() == 20
        assert page.locator("#sample th").first.inner_text() == "tweetid"
        recon = {t: page.locator(f'#reconciliation tr[data-table="{t}"]').inner_text() for t in ("accounts", "posts", "media")}
        assert all(recon.values()) and "Books balance" in page.content()
        assert "first version of this release" in page.locator("#diff-missing").inner_text()
        reviewer.screenshot("release_page")
        for variant in ("hashed", "unhashed"):  # both variants' Data Docs
            page.goto(stack.base_url + page_path.replace("/hashed/", f"/{variant}/") + "quality/")
            assert "passed" in page.locator("#verdict").inner_text()
            assert page.locator("#suites tbody tr").count() >= 3
            reviewer.screenshot(f"data_docs_{variant}")
        page.goto(gate_url)
        page.get_by_role("button", name="Approve").wait_for(state="visible")
        reviewer.answer("Approve", "README, charts, Data Docs and samples read in the release browser")


def test_the_run_finishes_and_the_browser_and_catalog_show_it(gated, reviewers):
    client = gated.client
    run_id = gated.runs[RELEASE_APPROVE]
    assert client.wait_run(DAG_ID, run_id, TRIGGER_USER, timeout=600) == "success", \
        client.task_states(DAG_ID, run_id, TRIGGER_USER)
    reviewer = reviewers[REVIEWER_B]
    with failure_screenshot(reviewer):
        reviewer.goto("/ioarchive/")
        row = reviewer.page.locator(f'#releases tr[data-release="{RELEASE_APPROVE}"][data-version="1"]')
        text = " ".join(row.inner_text().split())
        assert row.get_attribute("data-state") == "published" and "published (public, members)" in text, text
        assert f"attribution: approved by {REVIEWER_A}" in text and f"publication: approved by {REVIEWER_B}" in text
        rejected = reviewer.page.locator(f'#releases tr[data-release="{RELEASE_REJECT}"]')
        assert "attribution: rejected by reviewer_b" in " ".join(rejected.inner_text().split())
        reviewer.screenshot("browser_list")
        response = reviewer.goto("/ioarchive/catalog/")
        assert response.status == 200
        section = reviewer.page.locator(f"section#{RELEASE_APPROVE}")
        accounts = json.loads((gated.campaign_dir / "campaign.json").read_text())["account_ids"]
        assert section.locator("h4").inner_text().startswith(gated.campaign["title"] + " - ")
        assert [li.inner_text() for li in section.locator("ul.files li").all()][0].startswith("Account Information (")
        assert section.get_by_role("link", name="README").get_attribute("href") == \
            f"../releases/{RELEASE_APPROVE}/v1/README.md"
        assert len(accounts) > 0
        reviewer.screenshot("catalog")


def test_viewer_is_refused_the_unhashed_pages_a_reviewer_reads(gated, reviewers, browser):
    stack = gated.stack
    password = secrets.token_urlsafe(12)
    _add_viewer(stack, password)
    unhashed = f"/ioarchive/releases/{RELEASE_APPROVE}/v1/unhashed/"
    anonymous = ReviewerBrowser(browser, stack.base_url, "nobody", "anonymous")
    viewer = ReviewerBrowser(browser, stack.base_url, VIEWER, "viewer")
    try:
        with failure_screenshot(anonymous):
            anonymous.goto("/ioarchive/")
            assert "/auth/login" in anonymous.page.url  # no page without signing in
        with failure_screenshot(viewer):
            viewer.login(password, "/ioarchive/")
            for path in (unhashed, unhashed + "quality/"):
                response = viewer.goto(path)
                assert response.status == 403, (path, response.status)
                assert "reviewers and administrators only" in viewer.page.locator("#message").inner_text()
            viewer.screenshot("unhashed_refused")
            assert viewer.goto(f"/ioarchive/releases/{RELEASE_APPROVE}/v1/hashed/").status == 200
            assert "reviewers and administrators only" in viewer.page.locator('#quality tr[data-variant="unhashed"]').inner_text()
    finally:
        anonymous.close()
        viewer.close()
    reviewer = reviewers[REVIEWER_A]
    with failure_screenshot(reviewer):
        response = reviewer.goto(unhashed)
        assert response.status == 200
        assert "members (unhashed)" in reviewer.page.locator("#title").inner_text()
        raw_ids = set(json.loads((gated.campaign_dir / "campaign.json").read_text())["account_ids"])
        userids = {c.inner_text() for c in reviewer.page.locator("#sample tbody tr td:nth-child(2)").all()}
        assert userids and userids <= raw_ids  # raw account ids: the members' variant
        reviewer.screenshot("unhashed_page")


def _add_viewer(stack: Stack, password: str) -> None:
    """A user with FAB's built-in Viewer role, added to the running stack as docker-compose's init would."""
    import subprocess
    import sys

    users = stack.state_dir / "viewer_user.json"
    users.write_text(json.dumps({VIEWER: {"role": "Viewer", "password": password}}))
    try:
        done = subprocess.run([sys.executable, "-m", "ioarchive.airflow.access", "apply", "--users-json", str(users)],
                              env=stack.env(), cwd=stack.state_dir, capture_output=True, text=True, timeout=300)
    finally:
        users.unlink(missing_ok=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_browser_is_in_the_ui_navigation_for_every_role(gated):
    """The API server loaded the plugin (no import error) and offers "Releases" to each role's UI."""
    client = gated.client
    assert client.call("GET", "/api/v2/plugins/importErrors", ONCALL_USER)["import_errors"] == []
    for user in (TRIGGER_USER, REVIEWER_A, ONCALL_USER):
        plugins = client.call("GET", "/api/v2/plugins", user)["plugins"]
        [plugin] = [p for p in plugins if p["name"] == "ioarchive_release_browser"]
        assert [(v["name"], v["href"]) for v in plugin["external_views"]] == [("Releases", "/ioarchive/")]
        assert [a["url_prefix"] for a in plugin["fastapi_apps"]] == ["/ioarchive"]
