"""Tell people when a release needs them: a gate waiting, a task failing, a version published.

Where messages go is configuration, not code: with ``IOARCHIVE_SNS_TOPIC_ARN`` set they are
published to that Amazon SNS topic (production; AWS connection ``IOARCHIVE_SNS_CONN_ID``,
default ``aws_default``); otherwise they are written to the task log (the embedded default),
prefixed ``NOTIFY`` so an on-call engineer can grep for them.

Every message says what happened, to which release, where to look and what to do next.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from airflow.sdk.bases.notifier import BaseNotifier

from ioarchive import settings
from ioarchive.airflow.browser.links import api_base_url, task_log_url, version_url

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


RUNBOOK_SECTIONS: dict[str, str] = {
    "validate_request": "common-failures",
    "attribution_signoff": "common-failures",
    "publication_signoff": "common-failures",
    "wait_for_investigations": "commands",
    "publish": "common-failures",
}
"""Runbook section (a heading anchor of docs/runbook.md) per task id prefix; tests check each exists."""
DEFAULT_RUNBOOK_SECTION = "after-a-failure-notification"
"""The runbook's walk from this message to a rerun: open the log, fix the cause, clear the task."""


def _for_task(table: dict[str, str], task_id: str) -> str | None:
    for prefix, value in table.items():
        if task_id == prefix or task_id.startswith(prefix):
            return value
    return None


def _hint(task_id: str) -> str:
    return _for_task(FAILURE_HINTS, task_id) or "Read the task log, fix the cause and clear the task to retry."


def runbook_section(task_id: str) -> str:
    """``<runbook>#<anchor>`` of the section an on-call engineer reads for a failure of ``task_id``."""
    base = settings.get("IOARCHIVE_RUNBOOK_URL") or "docs/runbook.md"
    return f"{base}#{_for_task(RUNBOOK_SECTIONS, task_id) or DEFAULT_RUNBOOK_SECTION}"


_KIND_PREFIX = re.compile(r"^[A-Z][a-z]+(?:[A-Z][A-Za-z0-9]*)+: ")
"""An error kind already leads the text (``InvalidRelease: ...``, as ``release_task`` words it)."""


def _error_line(lines: list[str]) -> str:
    """The last line naming an error kind (``InvalidRelease: ...``, ``OSError: ...``), from there on."""
    from ioarchive import errors

    kinds = sorted(n for n, o in vars(errors).items() if isinstance(o, type) and issubclass(o, BaseException))
    pattern = re.compile(r"\b(?:" + "|".join(kinds) + r"|[A-Z]\w*(?:Error|Exception)): ")
    for line in reversed(lines):
        m = pattern.search(line)
        if m:
            return line[m.start():].strip()
    return ""


def one_line(exc: BaseException | str | None, limit: int = 400) -> str:
    """The cause in one line: the error's first line, plus, when that line only announces the
    details ("...; last lines:", as a failed Spark child's error does), the last line of the
    details that names an error kind (the child's own error). Shortened to ``limit``."""
    if exc is None:
        return "no error was passed to the callback: see the log"
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    first = lines[0] if lines else ""
    if isinstance(exc, BaseException) and not _KIND_PREFIX.match(first):
        kind = type(exc).__name__
        first = f"{kind}: {first}" if first else kind
    detail = _error_line(lines[1:]) if first.endswith(":") and len(lines) > 1 else ""
    if not detail:
        return first if len(first) <= limit else first[: limit - 3] + "..."
    detail = detail[: limit // 2]
    room = limit - len(detail) - 1
    return (first if len(first) <= room else first[: room - 3] + "...") + " " + detail


def _release_id(context: Any) -> str:
    params = context.get("params") or {}
    return str(params.get("release_id", "?"))


def failure_message(context: Any) -> Message:
    """What failed (release, task, one-line cause), where the log is, which runbook section, what to do."""
    ti = context.get("ti") or context.get("task_instance")
    task_id = getattr(ti, "task_id", "?")
    map_index = getattr(ti, "map_index", -1)
    where = task_id if map_index in (None, -1) else f"{task_id}[{map_index}]"
    run_id = getattr(ti, "run_id", "?")
    dag_id = getattr(ti, "dag_id", None) or getattr(context.get("dag"), "dag_id", None) or "io_release"
    try_number = getattr(ti, "try_number", None)
    release = _release_id(context)
    version = (context.get("params") or {}).get("version")
    base = api_base_url()
    log_url = task_log_url(base, dag_id, run_id, task_id, map_index, try_number) if base else ""
    body = "\n".join(
        [
            f"Release {release}{f' v{version}' if version else ''}: task {where} failed "
            f"(DAG {dag_id}, run {run_id}, try {try_number if try_number is not None else '?'}).",
            f"Cause: {one_line(context.get('exception'))}",
            f"Log: {log_url}" if log_url else "Log: open the run in the Airflow UI ([api] base_url is not set).",
            f"Runbook: {runbook_section(task_id)}",
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
    params = context.get("params") or {}
    base = api_base_url()
    browse = version_url(release, int(params.get("version") or 1), base_url=base) if base else ""
    body = "\n".join(
        [
            f"Release {release}: the {gate} sign-off is waiting for a reviewer ({who}).",
            f"Review and answer: {link}" if link else "Answer in the Airflow UI: Browse > Required Actions.",
            f"Release browser (README, charts, data quality, sample rows): {browse}" if browse
            else "Release browser: Releases in the Airflow UI's navigation.",
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
