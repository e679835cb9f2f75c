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


# Recorded from `make demo` on 2026-12-05 (GET .../dagRuns/{run}/hitlDetails, Airflow 3.3), in its order.
RECORDED = [
    _detail("attribution_signoff", "2026-12-05T07:15:05.527187Z", "2026-12-05T07:15:07.238085Z"),
    _detail("publication_signoff", "2026-12-05T07:24:44.680356Z", "2026-12-05T07:24:51.351532Z"),
]


def test_seconds_from_the_attribution_approval_to_the_publication_gate_parking():
    # 07:15:07.238085 -> 07:24:44.680356 (the demo printed 577 s): the reviewers' own delays
    # (before the first answer, between parking and the second answer) are not counted.
    assert approval_to_gate_seconds(RECORDED) == pytest.approx(577.442271)
    assert approval_to_gate_seconds(RECORDED[::-1]) == pytest.approx(577.442271)


def test_offsets_are_honoured():
    details = [
        _detail("attribution_signoff", "2026-12-05T08:00:00+01:00", "2026-12-05T08:00:30+01:00"),
        _detail("publication_signoff", "2026-12-05T07:02:00Z", None),
    ]
    assert approval_to_gate_seconds(details) == 90.0


def test_a_run_not_yet_at_the_publication_gate_is_named():
    with pytest.raises(ValueError, match="publication_signoff"):
        approval_to_gate_seconds(RECORDED[:1])


def test_an_unanswered_attribution_gate_is_named():
    details = [_detail("attribution_signoff", "2026-12-05T07:15:05Z", None), RECORDED[1]]
    with pytest.raises(ValueError, match="attribution_signoff has not been answered"):
        approval_to_gate_seconds(details)


def test_next_version_is_one_above_the_highest_in_either_bucket():
    from ioarchive.devtools.demo import next_version
    from support.s3 import MotoServer

    with MotoServer() as server:
        client = server.client()
        for bucket in ("demo-public", "demo-members"):
            client.create_bucket(Bucket=bucket)
        buckets = ("demo-public", "demo-members")
        assert next_version(client, "iran_202102", buckets) == 1
        client.put_object(Bucket="demo-public", Key="releases/iran_202102/v1/manifest.json", Body=b"{}")
        assert next_version(client, "iran_202102", buckets) == 2
        # v10 only in the member bucket (a publication cut short) beats v9 in the public one;
        # numbers compare as numbers, and other releases and non-version folders do not count.
        client.put_object(Bucket="demo-public", Key="releases/iran_202102/v9/README.md", Body=b"x")
        client.put_object(Bucket="demo-members", Key="releases/iran_202102/v10/README.md", Body=b"x")
        client.put_object(Bucket="demo-public", Key="releases/iran_2021020/v50/README.md", Body=b"x")
        client.put_object(Bucket="demo-public", Key="releases/iran_202102/vnext/README.md", Body=b"x")
        client.put_object(Bucket="demo-public", Key="releases/russia_202102/v77/README.md", Body=b"x")
        assert next_version(client, "iran_202102", buckets) == 11
