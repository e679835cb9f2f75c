"""Reviewer gates: what a HITL response means for the release, and the sign-off record.

The end-to-end module drives the same operator through a real Airflow; these tests pin the
decision rules (four eyes, visible rejects) and the file the manifest reads, without a stack.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from ioarchive.gates.signoffs import (
    APPROVE,
    REJECT,
    FourEyesViolation,
    GateFailed,
    GateRejected,
    ReleaseGateOperator,
    Signoff,
    decide,
    load_signoffs,
    record_signoff,
    reviewer_users,
)
from ioarchive.render.manifest import load_signoffs as manifest_signoffs
from ioarchive.staging import StagingLayout

AT = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def test_approval_by_another_user_becomes_a_signoff():
    signoff = decide("attribution", [APPROVE], {"id": "reviewer_a", "name": "reviewer_a"}, AT, "trigger_user", " ok ")
    assert signoff == Signoff(gate="attribution", decision="approved", by="reviewer_a",
                              at="2026-11-30T12:00:00+00:00", comment="ok")


@pytest.mark.parametrize("choice", [APPROVE, REJECT])
def test_the_triggering_user_cannot_answer_their_own_run(choice):
    with pytest.raises(FourEyesViolation, match="'trigger_user' triggered this run and cannot also approve it"):
        decide("publication", [choice], {"id": "trigger_user", "name": "trigger_user"}, AT, "trigger_user")


def test_four_eyes_matches_the_user_id_too():
    """FAB users have numeric ids and display names: either matching the trigger is refused."""
    with pytest.raises(FourEyesViolation):
        decide("attribution", [APPROVE], {"id": "alice", "name": "Alice A."}, AT, "alice")


def test_anonymous_responder_cannot_show_four_eyes():
    with pytest.raises(FourEyesViolation, match="anonymous"):
        decide("attribution", [APPROVE], {"id": "", "name": ""}, AT, "trigger_user")


def test_reject_names_who_and_why():
    with pytest.raises(GateRejected) as err:
        decide("attribution", [REJECT], {"id": "reviewer_b", "name": "reviewer_b"}, AT, "trigger_user",
               "attribution disputed")
    message = str(err.value)
    assert "rejected by 'reviewer_b'" in message
    assert "attribution disputed" in message
    assert "Nothing was published" in message


def test_reject_without_comment_says_so():
    with pytest.raises(GateRejected, match="no reason given"):
        decide("publication", [REJECT], {"id": "reviewer_b", "name": "reviewer_b"}, AT, "trigger_user")


def test_unknown_or_missing_option_fails():
    with pytest.raises(GateFailed, match="unexpected option"):
        decide("attribution", ["Maybe"], {"id": "r", "name": "r"}, AT, "t")
    with pytest.raises(GateFailed, match="chose no option"):
        decide("attribution", [], {"id": "r", "name": "r"}, AT, "t")


def test_reviewer_users_from_list_or_comma_string():
    assert reviewer_users(["reviewer_a", "reviewer_b"]) == [
        {"id": "reviewer_a", "name": "reviewer_a"},
        {"id": "reviewer_b", "name": "reviewer_b"},
    ]
    assert reviewer_users("reviewer_a, reviewer_b,") == reviewer_users(["reviewer_a", "reviewer_b"])
    assert reviewer_users([]) is None
    assert reviewer_users(None) is None


def test_record_signoff_keeps_the_latest_decision_per_gate_and_the_manifest_reads_it(tmp_path):
    layout = StagingLayout(tmp_path / "staging", "iran_202102")
    rejected = Signoff("attribution", "rejected", "reviewer_b", "2026-11-30T10:00:00+00:00", "wait")
    approved = Signoff("attribution", "approved", "reviewer_a", "2026-11-30T11:00:00+00:00", "")
    publication = Signoff("publication", "approved", "reviewer_b", "2026-11-30T12:00:00+00:00", "fine")
    record_signoff(layout.signoffs, rejected)
    record_signoff(layout.signoffs, approved)
    record_signoff(layout.signoffs, publication)
    assert load_signoffs(layout.signoffs) == [approved.to_dict(), publication.to_dict()]
    assert json.loads(layout.signoffs.read_text()) == [approved.to_dict(), publication.to_dict()]
    assert not [p for p in layout.signoffs.parent.iterdir() if p.name.startswith(".signoffs.")]
    # The renderer's reader accepts exactly this shape.
    assert [s["by"] for s in manifest_signoffs(layout)] == ["reviewer_a", "reviewer_b"]


def test_gate_operator_cannot_be_built_with_fixed_options():
    gate = ReleaseGateOperator(task_id="g", gate="attribution", subject="s")
    assert gate.options == [APPROVE, REJECT]
    assert gate.fail_on_reject is False  # rejects fail via AirflowFailException with a message instead
    with pytest.raises(ValueError):
        ReleaseGateOperator(task_id="g2", gate="attribution", subject="s", options=["x"])


class _Run:
    triggering_user_name = "trigger_user"


def _event(user: str, option: str, comment: str = "") -> dict:
    return {
        "chosen_options": [option],
        "params_input": {"comment": comment},
        "responded_at": AT,
        "responded_by_user": {"id": user, "name": user},
    }


def _gate(tmp_path):
    from airflow.sdk import Param

    path = tmp_path / "signoffs.json"
    gate = ReleaseGateOperator(
        task_id="attribution_signoff", gate="attribution", subject="s",
        params={"comment": Param("", type=["string", "null"])}, signoffs_path=lambda context: path,
    )
    return gate, path


def test_gate_operator_records_approval_and_returns_it(tmp_path):
    gate, path = _gate(tmp_path)
    out = gate.execute_complete({"dag_run": _Run(), "params": {}, "run_id": "r1"},
                                _event("reviewer_a", APPROVE, "confirmed"))
    assert out == {"gate": "attribution", "decision": "approved", "by": "reviewer_a",
                   "at": "2026-11-30T12:00:00+00:00", "comment": "confirmed"}
    assert json.loads(path.read_text()) == [{**out, "run_id": "r1"}]


def test_gate_operator_fails_without_retry_on_reject_and_records_it(tmp_path):
    from airflow.sdk.exceptions import AirflowFailException

    gate, path = _gate(tmp_path)
    with pytest.raises(AirflowFailException, match="rejected by 'reviewer_b'.*legal hold"):
        gate.execute_complete({"dag_run": _Run(), "params": {}, "run_id": "r1"},
                              _event("reviewer_b", REJECT, "legal hold"))
    assert [(s["decision"], s["by"], s["comment"]) for s in json.loads(path.read_text())] == [
        ("rejected", "reviewer_b", "legal hold")
    ]


def test_gate_operator_refuses_self_approval_and_records_nothing(tmp_path):
    from airflow.sdk.exceptions import AirflowFailException

    gate, path = _gate(tmp_path)
    with pytest.raises(AirflowFailException, match="four eyes"):
        gate.execute_complete({"dag_run": _Run(), "params": {}, "run_id": "r1"}, _event("trigger_user", APPROVE))
    assert not path.exists()


class _Try:
    def __init__(self, try_number: int) -> None:
        self.try_number = try_number


def test_a_retried_gate_returns_the_approval_its_run_already_recorded(tmp_path):
    """Airflow can mark a resumed gate UP_FOR_RETRY after the answer; the retry must not ask again."""
    gate, path = _gate(tmp_path)
    approved = gate.execute_complete({"dag_run": _Run(), "params": {}, "run_id": "r1"},
                                     _event("reviewer_a", APPROVE, "confirmed"))
    retry = {"dag_run": _Run(), "params": {}, "run_id": "r1", "ti": _Try(2)}
    assert gate.execute(retry) == approved
    # Another run of the same release (or a rejection) is never reused: those gates ask again.
    from ioarchive.gates.signoffs import approval_in_run

    assert approval_in_run(path, "attribution", "r2") is None
    assert approval_in_run(path, "publication", "r1") is None
    from airflow.sdk.exceptions import AirflowFailException

    with pytest.raises(AirflowFailException):
        gate.execute_complete({"dag_run": _Run(), "params": {}, "run_id": "r1"}, _event("reviewer_b", REJECT, "no"))
    assert approval_in_run(path, "attribution", "r1") is None


def test_each_run_keeps_its_own_decisions_in_the_record(tmp_path):
    """Issue #17: a later run must not inherit an earlier run's approvals (nor erase them)."""
    from ioarchive.gates.signoffs import run_signoffs

    path = tmp_path / "signoffs.json"
    first = Signoff("attribution", "approved", "reviewer_a", "2026-11-30T10:00:00+00:00")
    record_signoff(path, first, run_id="r1")
    record_signoff(path, Signoff("publication", "approved", "reviewer_b", "2026-11-30T11:00:00+00:00"), run_id="r1")
    second = Signoff("attribution", "rejected", "reviewer_b", "2026-12-01T10:00:00+00:00", "no")
    record_signoff(path, second, run_id="r2")
    again = Signoff("attribution", "approved", "reviewer_a", "2026-12-01T11:00:00+00:00")
    record_signoff(path, again, run_id="r2")  # the same run's gate cleared and answered again
    assert run_signoffs(path, "r2") == [{**again.to_dict(), "run_id": "r2"}]
    assert [e["gate"] for e in run_signoffs(path, "r1")] == ["attribution", "publication"]
    assert run_signoffs(path, "r3") == []
