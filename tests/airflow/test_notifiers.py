"""Notifications: the message an on-call engineer gets, and where configuration sends it.

The SNS path is exercised against a real SNS endpoint (moto_server) with an SQS queue
subscribed to the topic, so the test reads back exactly what was published.
"""

from __future__ import annotations

import json
import logging

import pytest
from ioarchive.airflow import notifiers as notify
from support.s3 import CREDENTIALS, MotoServer


class _TI:
    dag_id = "io_release"
    task_id = "pack_media"
    map_index = 3
    run_id = "manual__2026-11-30T10:00:00+00:00"
    try_number = 2


def _context(exc: Exception | None = None) -> dict:
    return {"ti": _TI(), "params": {"release_id": "iran_202102", "version": 1}, "exception": exc}


BASE = "http://airflow.example:8080"


@pytest.fixture
def base_url(monkeypatch):
    """The API server's base URL as a deployment sets it (``[api] base_url``)."""
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", BASE)
    return BASE


def test_failure_message_says_what_where_and_what_to_do(base_url):
    msg = notify.failure_message(_context(OSError("No space left on device\nsecond line")))
    assert msg.subject == "[ioarchive] iran_202102: pack_media[3] failed"
    lines = msg.body.splitlines()
    assert lines[0] == ("Release iran_202102 v1: task pack_media[3] failed "
                        "(DAG io_release, run manual__2026-11-30T10:00:00+00:00, try 2).")
    assert lines[1] == "Cause: OSError: No space left on device"
    # The failed try's log in the Airflow 3 UI, from the API server's base URL (run id quoted).
    assert lines[2] == ("Log: http://airflow.example:8080/dags/io_release/runs/manual__2026-11-30T10%3A00%3A00%2B00%3A00"
                        "/tasks/pack_media/mapped/3?try_number=2")
    assert lines[3] == "Runbook: docs/runbook.md#after-a-failure-notification"
    assert lines[4].startswith("What to do: A media archive could not be packed: check free disk space")


def test_failure_cause_keeps_the_error_kind_release_task_already_named(base_url):
    from airflow.sdk.exceptions import AirflowFailException

    exc = AirflowFailException("InvalidRelease: campaign location /x is not a folder on the worker\nmore")
    ti = _TI()
    ti.task_id, ti.map_index, ti.try_number = "extract", -1, 1
    msg = notify.failure_message({"ti": ti, "params": {"release_id": "iran_202102", "version": 2}, "exception": exc})
    assert "Cause: InvalidRelease: campaign location /x is not a folder on the worker\n" in msg.body
    assert f"Log: {BASE}/dags/io_release/runs/manual__2026-11-30T10%3A00%3A00%2B00%3A00/tasks/extract?try_number=1" in msg.body
    assert "Release iran_202102 v2: task extract failed" in msg.body


def test_failure_cause_of_a_spark_child_names_the_childs_error():
    from ioarchive.errors import SparkStepRejected

    exc = SparkStepRejected(
        "Spark step extract of release r_202102 failed on backend local: extract r_202102 refused its input "
        "(a retry gives the same result); last lines:\n26/12/05 INFO SparkContext: Running Spark\n"
        "ioarchive extract r_202102: InvalidRelease: /data/c has no posts.jsonl[.gz]: is this a campaign export?\n"
        "26/12/05 INFO ShutdownHookManager: Shutdown hook called")
    cause = notify.one_line(exc)
    assert cause.startswith("SparkStepRejected: Spark step extract of release r_202102 failed")
    assert cause.endswith("last lines: InvalidRelease: /data/c has no posts.jsonl[.gz]: is this a campaign export?")
    assert "\n" not in cause and len(notify.one_line(SparkStepRejected("x" * 900 + "; last lines:\nOSError: disk"))) <= 400


def test_failure_log_link_is_the_route_airflow_itself_builds(base_url):
    """Our link equals the SDK's ``RuntimeTaskInstance.log_url`` for the same task instance."""
    from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

    ours = notify.task_log_url(BASE, "io_release", _TI.run_id, "pack_media", 3, 2)
    theirs = RuntimeTaskInstance.log_url.fget(_TI())  # type: ignore[attr-defined]
    assert ours == theirs


def test_every_runbook_section_a_message_names_exists():
    """Each anchor the failure messages use is a heading of docs/runbook.md (GitHub's slug rule)."""
    import re
    from pathlib import Path

    runbook = (Path(__file__).resolve().parents[2] / "docs" / "runbook.md").read_text()
    anchors = set()
    for heading in re.findall(r"^#{1,6} (.+)$", runbook, flags=re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower().replace("`", "")).replace(" ", "-")
        anchors.add(slug)
    used = {*notify.RUNBOOK_SECTIONS.values(), notify.DEFAULT_RUNBOOK_SECTION}
    assert used <= anchors, f"runbook lacks {sorted(used - anchors)}; it has {sorted(anchors)}"
    for task in ("extract", "publish_public", "attribution_signoff", "pack_media", "something_new"):
        assert notify.runbook_section(task).split("#")[1] in anchors


def test_failure_of_an_unknown_task_gets_the_generic_advice():
    ti = _TI()
    ti.task_id = "something_new"
    msg = notify.failure_message({"ti": ti, "params": {"release_id": "x_202101"}})
    assert "What to do: Read the task log, fix the cause and clear the task to retry." in msg.body
    assert "Cause: no error was passed to the callback: see the log" in msg.body


def test_without_sns_topic_messages_go_to_the_log(monkeypatch, caplog):
    monkeypatch.delenv(notify.SNS_TOPIC_ENV, raising=False)
    with caplog.at_level(logging.WARNING, logger="ioarchive.airflow.notifiers"):
        channel = notify.send(notify.published_message("iran_202102", 2, {"hashed": "s3://pub/releases/iran_202102/v2/"}))
    assert channel == "log"
    text = caplog.text
    assert "NOTIFY [ioarchive] iran_202102 v2 published" in text
    assert "hashed: s3://pub/releases/iran_202102/v2/" in text


def test_gate_message_names_reviewers_and_link(base_url):
    msg = notify.gate_message("attribution", {"params": {"release_id": "iran_202102", "version": 2}},
                              ["reviewer_a", "reviewer_b"], "http://airflow/required_actions")
    assert f"Release browser (README, charts, data quality, sample rows): {BASE}/ioarchive/releases/iran_202102/v2/hashed/" \
        in msg.body.splitlines()
    assert msg.subject == "[ioarchive] iran_202102: attribution sign-off waiting"
    assert "(reviewer_a, reviewer_b)" in msg.body and "http://airflow/required_actions" in msg.body
    assert "four eyes" in msg.body


@pytest.fixture(scope="module")
def sns_server():
    with MotoServer() as server:
        yield server


def test_with_sns_topic_the_message_is_published_to_it(sns_server, monkeypatch, base_url):
    import boto3

    sns = boto3.client("sns", endpoint_url=sns_server.endpoint_url, **CREDENTIALS)
    sqs = boto3.client("sqs", endpoint_url=sns_server.endpoint_url, **CREDENTIALS)
    topic = sns.create_topic(Name="ioarchive-oncall")["TopicArn"]
    queue_url = sqs.create_queue(QueueName="oncall-inbox")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)

    conn = {"conn_type": "aws", "login": "testing", "password": "testing",
            "extra": {"endpoint_url": sns_server.endpoint_url, "region_name": "us-east-1"}}
    monkeypatch.setenv("AIRFLOW_CONN_IOARCHIVE_SNS_TEST", json.dumps(conn))
    monkeypatch.setenv(notify.SNS_CONN_ENV, "ioarchive_sns_test")
    monkeypatch.setenv(notify.SNS_TOPIC_ENV, topic)

    notify.on_task_failure(_context(RuntimeError("boom")))

    messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=2).get("Messages", [])
    assert len(messages) == 1
    envelope = json.loads(messages[0]["Body"])
    assert envelope["Subject"] == "[ioarchive] iran_202102: pack_media[3] failed"
    assert "Cause: RuntimeError: boom" in envelope["Message"]
    assert f"Log: {BASE}/dags/io_release/runs/" in envelope["Message"]


def test_an_unreachable_sns_topic_falls_back_to_the_log(monkeypatch, caplog):
    conn = {"conn_type": "aws", "login": "testing", "password": "testing",
            "extra": {"endpoint_url": "http://127.0.0.1:9", "region_name": "us-east-1",
                      "config_kwargs": {"connect_timeout": 1, "retries": {"max_attempts": 1}}}}
    monkeypatch.setenv("AIRFLOW_CONN_IOARCHIVE_SNS_DOWN", json.dumps(conn))
    monkeypatch.setenv(notify.SNS_CONN_ENV, "ioarchive_sns_down")
    monkeypatch.setenv(notify.SNS_TOPIC_ENV, "arn:aws:sns:us-east-1:123456789012:nowhere")
    with caplog.at_level(logging.WARNING, logger="ioarchive.airflow.notifiers"):
        assert notify.send(notify.Message("s", "b")) == "log"
    assert "could not publish the notification to SNS topic" in caplog.text
