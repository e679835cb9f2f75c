"""Least privilege (issue #17): each user of the stack can do their job over REST, and nothing more.

The session's SQLite stack (FAB auth manager, roles from ``ioarchive.airflow.access``). One run of
``io_release`` is triggered by ``trigger_user`` with ``reviewers: [reviewer_a]`` and parks at the
attribution gate. Then, through the REST API:

- every role reads the run, its tasks and its gate;
- only ``admin`` reads or writes Variables and connections: the others get 403 for the
  pseudonymization key's Variable (which is not even in the metadata DB: it comes from the
  environment of the Airflow processes);
- ``reviewer_a`` (a reviewer) cannot trigger, mark the gate success, clear it, or change the run;
- ``trigger_user`` cannot answer the gate, mark it, or clear it;
- ``reviewer_b`` (a reviewer not named in ``reviewers``) cannot answer: 403 from the HITL
  assignment;
- ``oncall_user`` cannot trigger or answer;
- ``reviewer_a`` answers (Reject: the run fails at once, nothing else runs);
- ``oncall_user`` clears the failed gate (it waits again, try 2) and marks the run failed.
"""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
from ioarchive.airflow import access
from ioarchive.devtools.stack import (
    ADMIN_USER,
    ONCALL_USER,
    REVIEWERS,
    TRIGGER_USER,
    USER_ROLES,
    AirflowClient,
    ApiError,
    Stack,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

DAG_ID = "io_release"
GATE = "attribution_signoff"
REVIEWER_A, REVIEWER_B = REVIEWERS
RELEASE = "roles_202102"
KEY_VARIABLE = "ioarchive_pseudonym_key"


@pytest.fixture(scope="module")
def roles_campaign(tmp_path_factory) -> Path:
    from ioarchive.devtools.generate.campaign import generate_campaign

    out = tmp_path_factory.mktemp("roles_campaign") / "campaign"
    generate_campaign(out, seed=37, accounts=20, posts=200, media_bytes=256 * 1024)
    return out


@pytest.fixture(scope="module")
def gated(sqlite_stack: Stack, roles_campaign: Path):
    """(stack, client, run id): a run triggered by trigger_user, parked at the attribution gate."""
    client = AirflowClient.for_stack(sqlite_stack)
    client.wait_for_dag(DAG_ID, TRIGGER_USER)
    client.unpause(DAG_ID, TRIGGER_USER)
    run_id = f"{RELEASE}__{secrets.token_hex(3)}"
    conf = {
        "campaign_dir": str(roles_campaign),
        "release_id": RELEASE,
        "version": 1,
        "threshold": 5000,
        "archive_target_bytes": 512 * 1024,
        "reviewers": [REVIEWER_A],
    }
    run = client.trigger(DAG_ID, run_id, conf, TRIGGER_USER)
    assert run["triggering_user_name"] == TRIGGER_USER
    try:
        client.wait_task_state(DAG_ID, run_id, GATE, {"awaiting_input"}, TRIGGER_USER, timeout=300)
        sqlite_stack.wait_scheduler_saw(run_id, GATE, "awaiting_input")
        yield sqlite_stack, client, run_id
    finally:
        if client.run(DAG_ID, run_id, ADMIN_USER)["state"] not in ("success", "failed"):
            client.call("PATCH", f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}", ADMIN_USER, {"state": "failed"})


def _status(client: AirflowClient, method: str, path: str, user: str, body=None) -> int:
    """HTTP status of one call as ``user`` (200 family as 200)."""
    try:
        client.call(method, path, user, body)
    except ApiError as exc:
        return exc.status
    return 200


def _denied(client: AirflowClient, method: str, path: str, user: str, body=None) -> str:
    """Assert 403 and return Airflow's explanation."""
    with pytest.raises(ApiError) as err:
        client.call(method, path, user, body)
    assert err.value.status == 403, f"{user} {method} {path}: expected 403, got {err.value}"
    return err.value.detail


def _run_path(run_id: str) -> str:
    return f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}"


def _answer_path(run_id: str) -> str:
    return f"{_run_path(run_id)}/taskInstances/{GATE}/-1/hitlDetails"


def _trigger_body() -> dict:
    return {"logical_date": None, "dag_run_id": f"roles_denied__{secrets.token_hex(3)}", "conf": {}}


def _clear_body(run_id: str) -> dict:
    return {"dag_run_id": run_id, "task_ids": [GATE], "include_downstream": False, "dry_run": False}


APPROVE = {"chosen_options": ["Approve"], "params_input": {}}
MARK_SUCCESS = {"new_state": "success"}


def test_the_stack_gives_each_user_one_role(gated):
    assert USER_ROLES == {
        TRIGGER_USER: access.ROLE_INTEGRITY,
        REVIEWER_A: access.ROLE_REVIEWER,
        REVIEWER_B: access.ROLE_REVIEWER,
        ONCALL_USER: access.ROLE_ONCALL,
        ADMIN_USER: access.ROLE_ADMIN,
    }


@pytest.mark.parametrize("user", list(USER_ROLES))
def test_every_role_reads_runs_tasks_and_gates(gated, user):
    _stack, client, run_id = gated
    assert client.run(DAG_ID, run_id, user)["state"] == "running"
    assert client.task_states(DAG_ID, run_id, user)[GATE] == "awaiting_input"
    [gate] = [d for d in client.hitl_details(DAG_ID, run_id, user) if d["task_instance"]["task_id"] == GATE]
    assert [u["name"] for u in gate["assigned_users"]] == [REVIEWER_A]
    assert _status(client, "GET", f"{_run_path(run_id)}/taskInstances/{GATE}/logs/1?full_content=true", user) == 200


@pytest.mark.parametrize("user", [TRIGGER_USER, *REVIEWERS, ONCALL_USER])
def test_only_the_administrator_reaches_variables_and_connections(gated, user):
    _stack, client, _run_id = gated
    _denied(client, "GET", f"/api/v2/variables/{KEY_VARIABLE}", user)
    _denied(client, "GET", "/api/v2/variables", user)
    _denied(client, "POST", "/api/v2/variables", user, {"key": "roles_probe", "value": "x"})
    _denied(client, "GET", "/api/v2/connections", user)
    _denied(client, "GET", "/api/v2/connections/ioarchive_s3", user)
    _denied(client, "GET", "/api/v2/config", user)


def test_the_administrator_edits_variables_and_the_key_is_not_in_the_metadata_db(gated):
    _stack, client, _run_id = gated
    # The key reaches the task processes as AIRFLOW_VAR_IOARCHIVE_PSEUDONYM_KEY only.
    assert _status(client, "GET", f"/api/v2/variables/{KEY_VARIABLE}", ADMIN_USER) == 404
    key = f"roles_probe_{secrets.token_hex(3)}"
    client.call("POST", "/api/v2/variables", ADMIN_USER, {"key": key, "value": "x"})
    assert client.call("GET", f"/api/v2/variables/{key}", ADMIN_USER)["value"] == "x"
    client.call("DELETE", f"/api/v2/variables/{key}", ADMIN_USER)
    assert _status(client, "GET", "/api/v2/connections", ADMIN_USER) == 200


def test_a_reviewer_cannot_trigger_mark_clear_or_change_the_run(gated):
    _stack, client, run_id = gated
    _denied(client, "POST", f"/api/v2/dags/{DAG_ID}/dagRuns", REVIEWER_A, _trigger_body())
    _denied(client, "PATCH", f"{_run_path(run_id)}/taskInstances/{GATE}", REVIEWER_A, MARK_SUCCESS)
    _denied(client, "POST", f"/api/v2/dags/{DAG_ID}/clearTaskInstances", REVIEWER_A, _clear_body(run_id))
    _denied(client, "PATCH", _run_path(run_id), REVIEWER_A, {"state": "failed"})
    assert client.task_states(DAG_ID, run_id, REVIEWER_A)[GATE] == "awaiting_input"


def test_the_triggering_user_cannot_answer_mark_or_clear(gated):
    _stack, client, run_id = gated
    _denied(client, "PATCH", _answer_path(run_id), TRIGGER_USER, APPROVE)
    _denied(client, "PATCH", f"{_run_path(run_id)}/taskInstances/{GATE}", TRIGGER_USER, MARK_SUCCESS)
    _denied(client, "POST", f"/api/v2/dags/{DAG_ID}/clearTaskInstances", TRIGGER_USER, _clear_body(run_id))


def test_a_reviewer_not_named_in_reviewers_cannot_answer(gated):
    _stack, client, run_id = gated
    detail = _denied(client, "PATCH", _answer_path(run_id), REVIEWER_B, APPROVE)
    assert "not a respondent" in detail, detail  # refused by the gate's assignment, not the role


def test_on_call_cannot_trigger_or_answer(gated):
    _stack, client, run_id = gated
    _denied(client, "POST", f"/api/v2/dags/{DAG_ID}/dagRuns", ONCALL_USER, _trigger_body())
    _denied(client, "PATCH", _answer_path(run_id), ONCALL_USER, APPROVE)
    [gate] = [d for d in client.hitl_details(DAG_ID, run_id, ONCALL_USER) if d["task_instance"]["task_id"] == GATE]
    assert gate["response_received"] is False  # none of the refused answers was recorded


def test_the_assigned_reviewer_answers(gated):
    _stack, client, run_id = gated
    client.answer(DAG_ID, run_id, GATE, REVIEWER_A, "Reject", "roles test: reject to end the run")
    [gate] = [d for d in client.hitl_details(DAG_ID, run_id, REVIEWER_A) if d["task_instance"]["task_id"] == GATE]
    assert gate["responded_by_user"]["name"] == REVIEWER_A  # by name, though FAB's user id is a number
    assert client.wait_run(DAG_ID, run_id, ONCALL_USER, timeout=300) == "failed"
    assert client.task_states(DAG_ID, run_id, ONCALL_USER)[GATE] == "failed"


def test_on_call_clears_a_failed_task(gated):
    _stack, client, run_id = gated
    if client.task_states(DAG_ID, run_id, ONCALL_USER)[GATE] != "failed":
        pytest.fail("the gate did not fail: see test_the_assigned_reviewer_answers")
    body = {**_clear_body(run_id), "only_failed": True}
    cleared = client.call("POST", f"/api/v2/dags/{DAG_ID}/clearTaskInstances", ONCALL_USER, body)
    assert [t["task_id"] for t in cleared["task_instances"]] == [GATE], cleared
    client.wait_task_state(DAG_ID, run_id, GATE, {"awaiting_input"}, ONCALL_USER, timeout=300)
    assert client.task_instance(DAG_ID, run_id, GATE, ONCALL_USER)["try_number"] == 2
    # The rerun waits for a reviewer again; on-call stops the run (DAG Runs can_edit).
    client.call("PATCH", _run_path(run_id), ONCALL_USER, {"state": "failed"})
    assert client.run(DAG_ID, run_id, TRIGGER_USER)["state"] == "failed"
