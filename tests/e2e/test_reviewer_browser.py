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
in ``tests/artifacts/browser/`` (gitignored). Runs reach only the first gate (plus the start of
extraction), so the module stays short.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
    pytest.mark.timeout(900),
    pytest.mark.skipif(_MISSING is not None, reason=_MISSING or ""),
]

DAG_ID = "io_release"
GATE = "attribution_signoff"
REVIEWER_A, REVIEWER_B = REVIEWERS
RELEASE_APPROVE = "browserok_202102"
RELEASE_REJECT = "browserreject_202102"
FAILED_STATES = {"failed", "up_for_retry", "upstream_failed"}


@dataclass
class GatedRuns:
    """The running stack and the runs waiting at the attribution gate."""

    stack: Stack
    client: AirflowClient
    campaign: dict[str, Any]
    runs: dict[str, str]  # release id -> run id


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
        yield GatedRuns(stack=stack, client=client, campaign=campaign, runs=runs)
    finally:
        for run_id in runs.values():
            if client.run(DAG_ID, run_id, TRIGGER_USER)["state"] not in ("success", "failed"):
                client.call("PATCH", f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}", ONCALL_USER, {"state": "failed"})


@pytest.fixture(scope="module")
def reviewers(gated):
    """user -> that reviewer's browser session (own cookies), signed in through the login form.

    One headless system Chromium for all; screenshots of earlier runs are removed first. The
    login form is loaded and filled while the runs are still on their way to the gate, and
    submitted once both gates wait, so Required Actions opens with them listed.
    """
    clear_artifacts()
    with chromium() as browser:
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
    _wait_started(client, run_id, "extract")
    [signoff] = _signoffs(stack, RELEASE_APPROVE)
    assert (signoff["gate"], signoff["decision"], signoff["by"], signoff["comment"]) == (
        "attribution", "approved", REVIEWER_A, APPROVE_COMMENT
    )
    reviewer = reviewers[REVIEWER_A]
    with failure_screenshot(reviewer):
        reviewer.open_run(DAG_ID, run_id)
        reviewer.page.locator("tr", has_text="wait_for_investigations").filter(has_text="Success").first.wait_for()
        reviewer.screenshot("run_proceeds")
