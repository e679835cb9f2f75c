"""Retract accounts restored after an appeal from a published release (RELEASE_SPEC 8).

Reads as the retraction: validate (the release is published, the accounts are its) ->
retraction sign-off (four eyes) -> record the retraction in the registry -> build version N+1
exactly as io_release builds a version (extract honouring the registry's retractions,
pseudonymize, media plan keeping N's archives, quality gate, render with the changelog,
publication sign-off, publish both variants with every gate re-checked, catalog) -> withdraw
every earlier version holding the accounts -> notify members.

Params: ``release_id``, ``account_ids`` (list of strings), ``reason``, ``reviewers``. Task
bodies: ``ioarchive.airflow.retract_tasks`` and the shared ``ioarchive.airflow.wiring``.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import DAG, Param, task
from ioarchive import settings
from ioarchive.airflow import retract_tasks
from ioarchive.airflow.notifiers import GateWaitingNotifier, on_task_failure
from ioarchive.airflow.wiring import COMMENT_PARAM, GATE_TIMEOUT, build_and_publish, signoffs_path_of
from ioarchive.gates.signoffs import GATE_RETRACTION, ReleaseGateOperator

with DAG(
    dag_id="io_retract",
    description="Retract restored accounts: publish version N+1 without them, withdraw earlier versions.",
    schedule=None,
    catchup=False,
    tags=["ioarchive", "retraction", "human-in-the-loop"],
    doc_md=__doc__,
    max_active_runs=1,
    default_args={
        "owner": "integrity-data",
        "retries": 2,
        "retry_delay": timedelta(minutes=1),
        "retry_exponential_backoff": True,
        "on_failure_callback": on_task_failure,
    },
    params={
        "release_id": Param(type="string", pattern=r"^[a-z0-9_]+_(\d{4})(0[1-9]|1[0-2])$", title="Release id",
                            description="The published release, e.g. iran_202102."),
        "account_ids": Param(type="array", items={"type": "string"}, minItems=1, title="Account ids",
                             description="Raw user ids of the accounts restored after a successful appeal."),
        "reason": Param(type="string", minLength=1, title="Reason",
                        description="Why they leave (becomes the changelog entry and the withdrawal reason)."),
        "reviewers": Param(settings.default_reviewers(), type="array", items={"type": "string"}, minItems=1,
                           title="Reviewers", description="Who may answer the sign-offs; never the triggering user."),
    },
) as dag:

    @task
    def validate_retraction(params=None) -> dict:
        return retract_tasks.validate_retraction(params)

    retraction_signoff = ReleaseGateOperator(
        task_id="retraction_signoff",
        gate=GATE_RETRACTION,
        subject="Retraction sign-off: {{ params.release_id }}",
        body="{{ ti.xcom_pull(task_ids='validate_retraction')['retraction_body'] }}",
        params=COMMENT_PARAM,
        notifiers=[GateWaitingNotifier(GATE_RETRACTION)],
        signoffs_path=signoffs_path_of(retract_tasks.retraction_form),
        response_timeout=GATE_TIMEOUT,
    )

    @task
    def record_retraction(plan: dict, dag_run=None) -> dict:
        return retract_tasks.record_retraction(plan["form"], dag_run)

    built = build_and_publish(retract_tasks.retraction_form, "Publication sign-off: {{ params.release_id }} "
                              "(retraction, v{{ ti.xcom_pull(task_ids='validate_retraction')['form']['version'] }})")

    @task
    def withdraw(plan: dict, recorded: dict) -> list[dict]:
        return retract_tasks.withdraw(plan["form"], recorded)

    @task
    def notify_members(plan: dict, withdrawn: list[dict]) -> str:
        return retract_tasks.notify_members(plan["form"], withdrawn)

    plan = validate_retraction()
    recorded = record_retraction(plan)
    plan >> retraction_signoff >> recorded >> built.first
    withdrawn = withdraw(plan, recorded)
    [built.public, built.member, built.catalog] >> withdrawn
    notify_members(plan, withdrawn)
