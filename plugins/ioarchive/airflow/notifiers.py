"""Tell people when a release needs them: a gate waiting, a task failing, a version published.

Where messages go is configuration, not code: with ``IOARCHIVE_SNS_TOPIC_ARN`` set they are
published to that Amazon SNS topic (production; AWS connection ``IOARCHIVE_SNS_CONN_ID``,
default ``aws_default``); otherwise they are written to the task log (the embedded default),
prefixed ``NOTIFY`` so an on-call engineer can grep for them.

Every message says what happened, to which release, where to look and what to do next.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from airflow.sdk.bases.notifier import BaseNotifier

from ioarchive import settings

log = logging.getLogger("ioarchive.airflow.notifiers")

SNS_TOPIC_ENV = "IOARCHIVE_SNS_TOPIC_ARN"
SNS_CONN_ENV = "IOARCHIVE_SNS_CONN_ID"

# What an on-call engineer should do when a task of the release DAG fails, by task id prefix.
FAILURE_HINTS: dict[str, str] = {
    "validate_request": "Fix the trigger form (campaign location, release id) and trigger a new run.",
    "attribution_signoff": "Read the gate message: a reject or a self-approval stops the run. "
    "If the attribution must be reconsidered, trigger a new run after it is fixed.",
    "wait_for_investigations": "The registry could not be read or the wait timed out: check the "
    "ioarchive_registry connection, then clear this task.",
    "extract": "Check the campaign folder and the quarantine counts in the log; clear the task to retry.",
    "pseudonymize": "Check the Airflow Variable ioarchive_pseudonym_key; clear the task to retry.",
    "quality_gate": "A data quality expectation failed: open the Data Docs under "
    "validation/<variant>/ in the staging folder; fix the input and trigger a new run.",
    "plan_media": "Check the media plan in the staging folder (work/media_plan.json).",
    "pack_media": "A media archive could not be packed: check free disk space and the campaign media/ folder, "
    "then clear the failed mapped task.",
    "finalize_media": "Check the media index and reconciliation in the staging folder.",
    "render": "Check the staging release folder and the templates; clear the task to retry.",
    "publication_signoff": "Read the gate message: a reject or a self-approval stops the run.",
    "publish": "Upload or verification failed; nothing is visible until manifest.json is written. "
    "Check the S3 connection ioarchive_s3 and clear the task: reruns skip objects already uploaded.",
    "update_catalog": "The release is published; only the public catalog is stale. Clear the task.",
}


@dataclass(frozen=True)
class Message:
    """A notification: short subject (SNS subjects are limited to 100 characters) and body."""

    subject: str
    body: str


def sns_topic() -> str | None:
    """The SNS topic ARN when configured (production), else None (log only)."""
    return settings.get(SNS_TOPIC_ENV)


def send(message: Message, context: Any = None) -> str:
    """Deliver ``message`` to the configured channel; returns ``"sns"`` or ``"log"``.

    Delivery problems are logged, never raised: a notification must not fail the release.
    """
    topic = sns_topic()
    log.warning("NOTIFY %s\n%s", message.subject, message.body)
    if not topic:
        return "log"
    try:
        from airflow.providers.amazon.aws.notifications.sns import SnsNotifier

        notifier = SnsNotifier(
            aws_conn_id=settings.get(SNS_CONN_ENV) or "aws_default",
            target_arn=topic,
            subject=message.subject[:100],
            message=message.body,
        )
        notifier.notify(context or {})
    except Exception:  # noqa: BLE001 - a failed notification must not fail the release
        log.exception("could not publish the notification to SNS topic %s; it is in this log", topic)
        return "log"
    return "sns"


def _hint(task_id: str) -> str:
    for prefix, hint in FAILURE_HINTS.items():
        if task_id == prefix or task_id.startswith(prefix):
            return hint
    return "Read the task log, fix the cause and clear the task to retry."


def _release_id(context: Any) -> str:
    params = context.get("params") or {}
    return str(params.get("release_id", "?"))


def failure_message(context: Any) -> Message:
    """What failed, for which release, where the log is, what to do."""
    ti = context.get("ti") or context.get("task_instance")
    task_id = getattr(ti, "task_id", "?")
    map_index = getattr(ti, "map_index", -1)
    where = task_id if map_index in (None, -1) else f"{task_id}[{map_index}]"
    run_id = getattr(ti, "run_id", "?")
    release = _release_id(context)
    exc = context.get("exception")
    log_url = getattr(ti, "log_url", "") or ""
    body = "\n".join(
        [
            f"Release {release}: task {where} failed (run {run_id}, try {getattr(ti, 'try_number', '?')}).",
            f"Error: {exc}" if exc else "Error: see the log.",
            f"Log: {log_url}" if log_url else "Log: open the run in the Airflow UI.",
            f"What to do: {_hint(task_id)}",
            "Nothing is published until both sign-offs pass and publish completes.",
        ]
    )
    return Message(subject=f"[ioarchive] {release}: {where} failed", body=body)


def on_task_failure(context: Any) -> None:
    """``on_failure_callback`` for every task of the release DAG."""
    send(failure_message(context), context)


def gate_message(gate: str, context: Any, reviewers: Iterable[str] | None, link: str) -> Message:
    release = _release_id(context)
    who = ", ".join(reviewers) if reviewers else "any reviewer"
    body = "\n".join(
        [
            f"Release {release}: the {gate} sign-off is waiting for a reviewer ({who}).",
            f"Review and answer: {link}" if link else "Answer in the Airflow UI: Browse > Required Actions.",
            "The user who triggered the run cannot approve it (four eyes).",
        ]
    )
    return Message(subject=f"[ioarchive] {release}: {gate} sign-off waiting", body=body)


class GateWaitingNotifier(BaseNotifier):
    """HITL ``notifiers=`` entry: announces that a gate waits for a reviewer, with the link."""

    def __init__(self, gate: str, reviewers_param: str = "reviewers") -> None:
        super().__init__()
        self.gate = gate
        self.reviewers_param = reviewers_param

    def notify(self, context: Any) -> None:
        link = ""
        try:
            from airflow.providers.standard.operators.hitl import HITLOperator

            link = HITLOperator.generate_link_to_ui_from_context(context=context)
        except Exception:  # noqa: BLE001 - no api.base_url configured: the message says where instead
            link = ""
        reviewers = (context.get("params") or {}).get(self.reviewers_param)
        send(gate_message(self.gate, context, reviewers, link), context)


def published_message(release_id: str, version: int, locations: dict[str, str]) -> Message:
    lines = [f"Release {release_id} v{version} is published:"]
    lines += [f"  {variant}: {url}" for variant, url in sorted(locations.items())]
    lines.append("Verify with: ioarchive verify <url>")
    return Message(subject=f"[ioarchive] {release_id} v{version} published", body="\n".join(lines))
