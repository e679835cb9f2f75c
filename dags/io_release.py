"""Release a removed information operation as a research dataset (RELEASE_SPEC).

Reads as the release process: validate the request and campaign -> attribution sign-off ->
wait until every linked investigation is concluded -> extract -> pseudonymize -> pack media
(plan, one task per archive, index) -> quality gate (both variants, every published table and
the media index) -> render -> publication sign-off -> publish member and public -> update the
public catalog -> notify.

Triggered from the UI form or the REST API (``conf`` with the params below). Business logic is
in ``ioarchive.airflow.tasks`` (task bodies), ``ioarchive.gates.signoffs`` (sign-offs, four eyes) and
``ioarchive.airflow.notifiers``; nothing heavy is imported at parse time.
"""

from __future__ import annotations

import os
from datetime import timedelta

from airflow.sdk import DAG, Param, PokeReturnValue, task
from ioarchive import settings
from ioarchive.airflow import tasks
from ioarchive.airflow.notifiers import GateWaitingNotifier, on_task_failure
from ioarchive.airflow.wiring import COMMENT_PARAM, GATE_TIMEOUT, build_and_publish, params_form
from ioarchive.gates.signoffs import GATE_ATTRIBUTION, ReleaseGateOperator
from ioarchive.schema import DEFAULT_ARCHIVE_TARGET_BYTES, DEFAULT_THRESHOLD

DEFAULT_REVIEWERS = settings.default_reviewers()
REGISTRY_POKE_SECONDS = settings.get_int("IOARCHIVE_REGISTRY_POKE_SECONDS", env=os.environ)



with DAG(
    dag_id="io_release",
    description="Turn a removed information operation into a published research dataset (two variants).",
    schedule=None,
    catchup=False,
    tags=["ioarchive", "release", "human-in-the-loop"],
    doc_md=__doc__,
    max_active_runs=4,
    default_args={
        "owner": "integrity-data",
        "retries": 2,
        "retry_delay": timedelta(minutes=1),
        "retry_exponential_backoff": True,
        "on_failure_callback": on_task_failure,
    },
    params={
        "campaign_dir": Param(
            type="string",
            minLength=1,
            title="Campaign location",
            description="Folder of the campaign export on the workers (campaign.json, accounts.jsonl, posts.jsonl, media/).",
        ),
        "release_id": Param(
            type="string",
            pattern=r"^[a-z0-9_]+_(\d{4})(0[1-9]|1[0-2])$",
            title="Release id",
            description="<campaign_slug>_<YYYYMM>, lowercase, e.g. iran_202102.",
        ),
        "version": Param(1, type="integer", minimum=1, title="Version",
                         description="Release version; a published version is immutable, a change is a new version."),
        "changelog": Param("", type=["string", "null"], title="Changelog",
                           description="What this version changes (required from version 2 on; shown in the README "
                                       "with the `ioarchive diff` counts against the previous version)."),
        "threshold": Param(DEFAULT_THRESHOLD, type="integer", minimum=0, title="Pseudonymization threshold",
                           description="Accounts with fewer followers than this are pseudonymized in the public variant."),
        "archive_target_bytes": Param(DEFAULT_ARCHIVE_TARGET_BYTES, type="integer", minimum=1,
                                      title="Media archive target size (bytes)",
                                      description="Media zip archives are at most this large (default 2 GiB)."),
        "reviewers": Param(DEFAULT_REVIEWERS, type="array", items={"type": "string"}, minItems=1,
                           title="Reviewers",
                           description="User names allowed to answer the sign-offs; never the user who triggers."),
    },
) as dag:

    @task
    def validate_request(params=None) -> dict:
        """Check the form and the campaign folder; returns what the attribution reviewer sees."""
        return tasks.validate_request(params)

    attribution_signoff = ReleaseGateOperator(
        task_id="attribution_signoff",
        gate=GATE_ATTRIBUTION,
        subject="Attribution sign-off: {{ params.release_id }} v{{ params.version }}",
        body="{{ ti.xcom_pull(task_ids='validate_request')['attribution_body'] }}",
        params=COMMENT_PARAM,
        notifiers=[GateWaitingNotifier(GATE_ATTRIBUTION)],
        signoffs_path=tasks.signoffs_path,
        response_timeout=GATE_TIMEOUT,
    )

    @task.sensor(poke_interval=REGISTRY_POKE_SECONDS, mode="reschedule", timeout=timedelta(days=90).total_seconds())
    def wait_for_investigations(params=None) -> PokeReturnValue:
        """Every linked investigation concluded; rescheduled (no worker slot) while any is open."""
        still_open = tasks.open_investigations(params)
        return PokeReturnValue(is_done=not still_open, xcom_value={"open": still_open})

    built = build_and_publish(params_form, "Publication sign-off: {{ params.release_id }} v{{ params.version }}")

    @task
    def notify_published(published: list[dict], params=None) -> None:
        from ioarchive.airflow.notifiers import published_message, send

        locations = {p["variant"]: p["url"] for p in published}
        send(published_message(params["release_id"], int(params["version"]), locations))

    (
        validate_request()
        >> attribution_signoff
        >> wait_for_investigations()
        >> built.first
    )
    built.catalog >> notify_published([built.public, built.member])
