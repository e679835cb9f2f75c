"""The build-and-publish part of a release, wired once for ``io_release`` and ``io_retract``.

Both DAGs build a version the same way (RELEASE_SPEC 8: "through the same extract, quality,
render and publication stages and gates"): extract -> pseudonymize -> plan_media -> pack_media
(one mapped task per archive) -> finalize_media -> quality_gate -> render ->
publication_signoff -> publish_member + publish_public -> update_catalog. They differ in what
comes before (attribution and investigations, or the retraction sign-off) and after, and in
where a task finds the run's *form* (the release parameters): ``io_release`` takes its trigger
params, ``io_retract`` the form its validation task derived from the published release. So
:func:`build_and_publish` takes ``form_from(context) -> dict`` and every task body passes that
form to the same ``ioarchive.airflow.tasks`` function.

Imported by DAG files at parse time: nothing heavy here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from airflow.sdk import Param, get_current_context, task

from ioarchive.airflow import tasks
from ioarchive.airflow.notifiers import GateWaitingNotifier
from ioarchive.gates.signoffs import GATE_PUBLICATION, ReleaseGateOperator

FormFrom = Callable[[Any], dict[str, Any]]

COMMENT_PARAM = {
    "comment": Param(
        "",
        type=["string", "null"],
        title="Comment",
        description="Why you approve or reject (recorded in the manifest; required in spirit for a reject).",
    )
}
GATE_TIMEOUT = timedelta(days=14)


def params_form(context: Any) -> dict[str, Any]:
    """``io_release``: the trigger form is the run's params."""
    return dict(context["params"])


def signoffs_path_of(form_from: FormFrom) -> Callable[[Any], Path]:
    """Where a gate of this DAG records its decision: the run's version's ``signoffs.json``."""

    def signoffs_path(context: Any) -> Path:
        return tasks.layout_for(form_from(context)).signoffs

    return signoffs_path


@dataclass
class Built:
    """The ends of the wired part, for the DAG to attach what comes before and after."""

    first: Any
    public: Any
    member: Any
    catalog: Any


def build_and_publish(form_from: FormFrom, publication_subject: str) -> Built:
    """Create and wire the shared tasks inside the current ``with DAG(...)`` block."""

    def form() -> dict[str, Any]:
        return form_from(get_current_context())

    @task
    def extract() -> dict:
        return tasks.extract(form())

    @task
    def pseudonymize() -> None:
        tasks.pseudonymize(form())

    @task
    def plan_media() -> list[dict]:
        return tasks.plan_media(form())

    @task(map_index_template="{{ archive_name }}")
    def pack_media(archive: dict) -> dict:
        """One archive; the UI labels the mapped instance with the archive's name."""
        context = get_current_context()
        context["archive_name"] = archive["archive_name"]
        return tasks.pack_media(form_from(context), archive["variant"], archive["archive_name"])

    @task(trigger_rule="none_failed")
    def finalize_media() -> None:
        tasks.finalize_media(form())

    @task
    def quality_gate() -> dict:
        return tasks.quality_gate(form())

    @task
    def render() -> dict:
        return tasks.render(form())

    publication_signoff = ReleaseGateOperator(
        task_id="publication_signoff",
        gate=GATE_PUBLICATION,
        subject=publication_subject,
        body="{{ ti.xcom_pull(task_ids='render')['publication_body'] }}",
        params=COMMENT_PARAM,
        notifiers=[GateWaitingNotifier(GATE_PUBLICATION)],
        signoffs_path=signoffs_path_of(form_from),
        response_timeout=GATE_TIMEOUT,
    )

    @task
    def publish(variant: str, dag_run=None) -> dict:
        """Re-checks every gate from the audit trail (this run's sign-offs, registry, quality), then uploads."""
        return tasks.publish(form(), variant, dag_run)

    @task
    def update_catalog() -> list[str]:
        return tasks.update_catalog(form())

    first = extract()
    archives = plan_media()
    packed = pack_media.expand(archive=archives)
    public = publish.override(task_id="publish_public")("hashed")
    member = publish.override(task_id="publish_member")("unhashed")
    catalog = update_catalog()
    # The quality gate reads the published tables and the media index, so it follows packing.
    first >> pseudonymize() >> archives
    packed >> finalize_media() >> quality_gate() >> render() >> publication_signoff >> [member, public]
    public >> catalog
    return Built(first=first, public=public, member=member, catalog=catalog)
