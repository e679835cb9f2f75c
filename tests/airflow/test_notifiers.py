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
    task_id = "pack_media"
    map_index = 3
    run_id = "manual__2026-11-30"
    try_number = 2
    log_url = "http://airflow.example/dags/io_release/runs/manual__2026-11-30/tasks/pack_media?try_number=2"


def _context(exc: Exception | None = None) -> dict:
    return {"ti": _TI(), "params": {"release_id": "iran_202102", "version": 1}, "exception": exc}


def test_failure_message_says_what_where_and_what_to_do():
    msg = notify.failure_message(_context(OSError("No space left on device")))
    assert msg.subject == "[ioarchive] iran_202102: pack_media[3] failed"
    assert "Release iran_202102: task pack_media[3] failed (run manual__2026-11-30, try 2)." in msg.body
    assert "Error: No space left on device" in msg.body
    assert f"Log: {_TI.log_url}" in msg.body
    assert "What to do: A media archive could not be packed: check free disk space" in msg.body


def test_failure_of_an_unknown_task_gets_the_generic_advice():
    ti = _TI()
    ti.task_id = "something_new"
    msg = notify.failure_message({"ti": ti, "params": {"release_id": "x_202101"}})
    assert "What to do: Read the task log, fix the cause and clear the task to retry." in msg.body


def test_without_sns_topic_messages_go_to_the_log(monkeypatch, caplog):
    monkeypatch.delenv(notify.SNS_TOPIC_ENV, raising=False)
    with caplog.at_level(logging.WARNING, logger="ioarchive.airflow.notifiers"):
        channel = notify.send(notify.published_message("iran_202102", 2, {"hashed": "s3://pub/releases/iran_202102/v2/"}))
    assert channel == "log"
    text = caplog.text
    assert "NOTIFY [ioarchive] iran_202102 v2 published" in text
    assert "hashed: s3://pub/releases/iran_202102/v2/" in text


def test_gate_message_names_reviewers_and_link():
    msg = notify.gate_message("attribution", {"params": {"release_id": "iran_202102"}}, ["reviewer_a", "reviewer_b"],
                              "http://airflow/required_actions")
    assert msg.subject == "[ioarchive] iran_202102: attribution sign-off waiting"
    assert "(reviewer_a, reviewer_b)" in msg.body and "http://airflow/required_actions" in msg.body
    assert "four eyes" in msg.body


@pytest.fixture(scope="module")
def sns_server():
    with MotoServer() as server:
        yield server


def test_with_sns_topic_the_message_is_published_to_it(sns_server, monkeypatch):
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
    assert "Error: boom" in envelope["Message"] and _TI.log_url in envelope["Message"]


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
