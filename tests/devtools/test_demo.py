"""``make demo``: the timing line of issue #20, computed from the run's own HITL records."""

from __future__ import annotations

import pytest
from ioarchive.devtools.demo import approval_to_gate_seconds


def _detail(task_id: str, created_at: str, responded_at: str | None) -> dict:
    """One item of ``GET /api/v2/dags/io_release/dagRuns/{run}/hitlDetails`` (the fields used)."""
    return {
        "task_instance": {"task_id": task_id, "map_index": -1, "state": "success" if responded_at else "deferred"},
        "subject": f"{task_id} for iran_202102 v1",
        "options": ["Approve", "Reject"],
        "created_at": created_at,
        "responded_at": responded_at,
        "response_received": responded_at is not None,
    }


# As the Airflow 3.3 REST API returns them (microseconds, a "Z" suffix), in its order (not by time).
RECORDED = [
    _detail("publication_signoff", "2026-12-05T07:31:49.482113Z", "2026-12-05T07:31:52.006621Z"),
    _detail("attribution_signoff", "2026-12-05T07:26:40.118210Z", "2026-12-05T07:26:52.739004Z"),
]


def test_seconds_from_the_attribution_approval_to_the_publication_gate_parking():
    # 07:26:52.739004 -> 07:31:49.482113: the reviewers' own delays (before the first answer,
    # between parking and the second answer) are not counted.
    assert approval_to_gate_seconds(RECORDED) == pytest.approx(296.743109)


def test_offsets_are_honoured():
    details = [
        _detail("attribution_signoff", "2026-12-05T08:00:00+01:00", "2026-12-05T08:00:30+01:00"),
        _detail("publication_signoff", "2026-12-05T07:02:00Z", None),
    ]
    assert approval_to_gate_seconds(details) == 90.0


def test_a_run_not_yet_at_the_publication_gate_is_named():
    with pytest.raises(ValueError, match="publication_signoff"):
        approval_to_gate_seconds(RECORDED[1:])


def test_an_unanswered_attribution_gate_is_named():
    details = [_detail("attribution_signoff", "2026-12-05T07:26:40Z", None), RECORDED[0]]
    with pytest.raises(ValueError, match="attribution_signoff has not been answered"):
        approval_to_gate_seconds(details)
