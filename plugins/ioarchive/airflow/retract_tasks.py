"""Task bodies of ``io_retract`` (RELEASE_SPEC 8) before and after the shared build.

The build of version N+1 (extract ... publish) is ``io_release``'s, wired by
``ioarchive.airflow.wiring`` and run with the form :func:`validate_retraction` derives. Here:
checking the request, recording the approved retraction in the registry (only from the
recorded sign-off, never from task states), withdrawing the superseded versions, and the
members' notice. Every body runs through ``tasks.release_task`` (NotRetryable fails on try 1).
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from ioarchive import settings
from ioarchive.airflow.tasks import S3_CONN_ID, layout_for, release_task, update_catalog
from ioarchive.errors import GateFailed

log = logging.getLogger(__name__)

VALIDATE_TASK = "validate_retraction"


def retraction_form(context: Any) -> dict[str, Any]:
    """The form of the version this run builds (``validate_retraction``'s result)."""
    return dict(context["ti"].xcom_pull(task_ids=VALIDATE_TASK)["form"])


@release_task
def validate_retraction(params: dict[str, Any]) -> dict[str, Any]:
    """The release is published, the accounts are its; the form of v N+1 and the reviewer's page."""
    from ioarchive.publish.upload import list_published_manifests, s3_store
    from ioarchive.request.retraction import plan_retraction

    store = s3_store(aws_conn_id=S3_CONN_ID)
    published = list_published_manifests(store, settings.bucket_for("hashed"))
    plan = plan_retraction(params["release_id"], params.get("account_ids") or [], params.get("reason") or "",
                           list(params.get("reviewers") or []), published=published,
                           staging_root=settings.staging_root())
    layout_for(plan["form"]).root.mkdir(parents=True, exist_ok=True)
    return plan


@release_task
def record_retraction(form: dict[str, Any], dag_run: Any) -> dict[str, Any]:
    """Write the approved retraction to the registry, from this run's recorded sign-off (four eyes)."""
    from ioarchive.gates.registry import Registry
    from ioarchive.gates.signoffs import GATE_RETRACTION, run_signoffs
    from ioarchive.publish.preconditions import check_signoffs

    layout = layout_for(form)
    approvals, problems = check_signoffs(
        run_signoffs(layout.signoffs, str(dag_run.run_id)), run_id=str(dag_run.run_id),
        triggering_user=getattr(dag_run, "triggering_user_name", None), reviewers=form.get("reviewers"),
        gates=[GATE_RETRACTION])
    if problems:
        raise GateFailed("retraction not recorded: " + "; ".join(str(p) for p in problems))
    retraction = form["retraction"]
    with Registry.from_connection() as registry:
        rows = registry.record_retraction(form["release_id"], retraction["account_ids"], retraction["reason"],
                                          approvals[0]["by"])
    mine = [r for r in rows if r.account_id in set(retraction["account_ids"])]
    log.info("release %s: %d accounts recorded as retracted (approved by %s)", form["release_id"], len(mine),
             approvals[0]["by"])
    return {"account_ids": [r.account_id for r in mine],
            "recorded_at": min(r.recorded_at for r in mine).astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}


def _identifiers(form: dict[str, Any], account_ids: list[str]) -> list[str]:
    """Raw ids, pseudonyms and screen names of the retracted accounts (scrubbed from withdrawal records)."""
    import pyarrow.parquet as pq

    from ioarchive.pseudonymize.pseudonym import load_key_from_airflow, pseudonym
    from ioarchive.staging import StagingLayout

    key, _key_id = load_key_from_airflow()
    out = set(account_ids) | {pseudonym(key, a) for a in account_ids}
    previous = StagingLayout.for_version(settings.staging_root(), form["release_id"],
                                         int(form["retraction"]["supersedes"]))
    table = previous.work_table("unhashed", "identities")
    if table.exists():
        for row in pq.read_table(table, columns=["userid", "screen_name"]).to_pylist():
            if row["userid"] in set(account_ids) and row["screen_name"]:
                out.add(row["screen_name"])
    return sorted(out)


@release_task
def withdraw(form: dict[str, Any], recorded: dict[str, Any]) -> list[dict[str, Any]]:
    """Withdraw every earlier version holding the accounts from both buckets; returns what went."""
    from ioarchive.publish.store import Encryption
    from ioarchive.publish.upload import s3_store
    from ioarchive.publish.withdraw import withdraw_superseded

    store = s3_store(aws_conn_id=S3_CONN_ID)
    account_ids = list(form["retraction"]["account_ids"])
    withdrawn = withdraw_superseded(
        store, {v: settings.bucket_for(v) for v in ("hashed", "unhashed")}, form["release_id"], int(form["version"]),
        account_ids, reason=form["retraction"]["reason"], withdrawn_at=recorded["recorded_at"],
        identifiers=_identifiers(form, account_ids), encryption={"unhashed": Encryption(), "hashed": None})
    log.info("release %s: withdrew %s", form["release_id"],
             ", ".join(f"v{w['version']} ({w['variant']}, {w['deleted']} objects)" for w in withdrawn) or "nothing")
    update_catalog(form)  # the catalog now lists the withdrawn versions as such
    return withdrawn


def notify_members(form: dict[str, Any], withdrawn: list[dict[str, Any]]) -> str:
    """The members' notice (names and SHA-256 of every withdrawn file) through ``notifiers.send``."""
    from ioarchive.airflow.member_notice import withdrawal_notice
    from ioarchive.airflow.notifiers import send

    if not withdrawn:
        log.info("release %s: nothing was withdrawn, no notice", form["release_id"])
        return "none"
    return send(withdrawal_notice(form["release_id"], int(form["version"]), form["retraction"]["reason"], withdrawn))
