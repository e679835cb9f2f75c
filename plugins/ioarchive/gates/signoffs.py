"""Reviewer gates of a release: who may decide, what a decision means, and the audit trail.

RELEASE_SPEC section 7: nothing is published before the attribution and publication sign-offs
are approved, and the approver of a gate may not be the person who triggered the run (four
eyes). A gate is an Airflow human-in-the-loop ``ApprovalOperator`` (the task waits in
``awaiting_input`` and holds no worker slot); this module adds what the stock operator lacks:

- the reviewers come from the run's ``reviewers`` parameter, not from the DAG file;
- a reject fails the run visibly, naming who rejected and why, instead of quietly skipping;
- an approval by the user who triggered the run fails the run (four eyes);
- every decision is written to ``StagingLayout.signoffs`` so the manifest can show who
  approved what, and when.

The decision logic is plain functions (``decide``, ``record_signoff``) so it is tested
without a scheduler; ``ReleaseGateOperator`` only wires them into the HITL task.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from airflow.providers.standard.operators.hitl import ApprovalOperator, HITLOperator

from ioarchive.errors import FourEyesViolation, GateFailed, GateRejected
from ioarchive.files import atomic_write_json

log = logging.getLogger(__name__)

APPROVE = ApprovalOperator.APPROVE
REJECT = ApprovalOperator.REJECT

GATE_ATTRIBUTION = "attribution"
GATE_PUBLICATION = "publication"
GATE_RETRACTION = "retraction"
"""io_retract's first gate (RELEASE_SPEC 8): a reviewer approves removing the accounts."""


@dataclass(frozen=True)
class Signoff:
    """One reviewer decision, as recorded in ``signoffs.json`` and the manifest."""

    gate: str
    decision: str  # "approved" | "rejected"
    by: str
    at: str  # ISO 8601, UTC
    comment: str = ""

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def reviewer_users(names: Iterable[str] | str | None) -> list[dict[str, str]] | None:
    """HITL ``assigned_users`` for reviewer user names (``id`` = name: ``IoarchiveFabAuthManager``
    matches a gate's assignment by user name, since FAB ids are row numbers).

    ``None`` (anyone allowed to answer HITL tasks of the DAG) when no names are given; the
    four-eyes check still applies then.
    """
    if names is None:
        return None
    if isinstance(names, str):
        names = [n for n in (part.strip() for part in names.split(",")) if n]
    users = [{"id": str(n), "name": str(n)} for n in names if str(n).strip()]
    return users or None


def user_name(user: Mapping[str, Any] | str | None) -> str:
    """Name of a HITL user (``{"id": ..., "name": ...}``), falling back to its id."""
    if user is None:
        return ""
    if isinstance(user, str):
        return user
    return str(user.get("name") or user.get("id") or "")


def decide(
    gate: str,
    chosen_options: list[str],
    responded_by: Mapping[str, Any] | str | None,
    responded_at: datetime | str | None,
    triggering_user: str | None,
    comment: str = "",
) -> Signoff:
    """Turn a HITL response into a sign-off; raise if the release must stop.

    Raises ``FourEyesViolation`` when the responder triggered the run (whatever they chose:
    a self-reject is equally not a second pair of eyes), ``GateRejected`` on Reject.
    """
    by = user_name(responded_by)
    by_id = str(responded_by.get("id", "")) if isinstance(responded_by, Mapping) else by
    at = responded_at.isoformat() if isinstance(responded_at, datetime) else str(responded_at or "")
    if not chosen_options:
        raise GateFailed(f"{gate} sign-off: the response from {by!r} chose no option")
    choice = chosen_options[0]
    if not by:
        raise FourEyesViolation(
            f"{gate} sign-off was answered by an anonymous user: four eyes cannot be shown. "
            "Run Airflow with named users (the FAB auth manager; with the simple auth manager, "
            "simple_auth_manager_all_admins must be False)."
        )
    if triggering_user and triggering_user in {by, by_id}:
        raise FourEyesViolation(
            f"{gate} sign-off refused: {by!r} triggered this run and cannot also approve it "
            "(four eyes). Clear this gate task and ask another reviewer to answer."
        )
    if choice == REJECT:
        reason = comment.strip() or "no reason given"
        raise GateRejected(f"{gate} sign-off rejected by {by!r} at {at}: {reason}. Nothing was published.")
    if choice != APPROVE:
        raise GateFailed(f"{gate} sign-off: unexpected option {choice!r} from {by!r}")
    return Signoff(gate=gate, decision="approved", by=by, at=at, comment=comment.strip())


def load_signoffs(path: str | Path) -> list[dict[str, str]]:
    """The recorded sign-offs (empty when none yet)."""
    path = Path(path)
    if not path.exists():
        return []
    return list(json.loads(path.read_text(encoding="utf-8")))


def record_signoff(path: str | Path, signoff: Signoff, run_id: str | None = None) -> list[dict[str, str]]:
    """Write ``signoff`` into the JSON list at ``path``; the latest decision per gate *and run* wins.

    One staging folder (one release version) can see several runs: a rejected or failed run and
    the run that is finally published. Each run's decisions are kept apart under its ``run_id``
    (the publication re-check and the manifest read only the publishing run's entries, see
    :func:`run_signoffs`); a rerun of a gate within the same run (a cleared task) replaces that
    run's entry for the gate. Written atomically.
    """
    path = Path(path)
    entries = [e for e in load_signoffs(path) if not (e.get("gate") == signoff.gate and e.get("run_id") == run_id)]
    entries.append({**signoff.to_dict(), **({"run_id": run_id} if run_id else {})})
    atomic_write_json(path, entries, sort_keys=False)
    return entries


def run_signoffs(path: str | Path, run_id: str) -> list[dict[str, str]]:
    """The decisions recorded for ``run_id`` (with their ``run_id``); other runs' entries are ignored."""
    return [e for e in load_signoffs(path) if isinstance(e, dict) and e.get("run_id") == run_id]


def approval_in_run(path: str | Path, gate: str, run_id: str) -> dict[str, str] | None:
    """The approval of ``gate`` already recorded for ``run_id``, if any."""
    for entry in load_signoffs(path):
        if entry.get("gate") == gate and entry.get("run_id") == run_id and entry.get("decision") == "approved":
            return {k: v for k, v in entry.items() if k != "run_id"}
    return None


class ReleaseGateOperator(ApprovalOperator):
    """A reviewer sign-off: HITL approval with run-time reviewers, visible rejects, four eyes.

    ``reviewers_param`` names the DAG param holding the reviewer user names;
    ``signoffs_path`` is a callable ``(context) -> Path`` giving where to record the decision
    (kept out of this module so it does not need to know the staging root).
    """

    def __init__(
        self,
        *,
        gate: str,
        reviewers_param: str = "reviewers",
        signoffs_path: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(fail_on_reject=False, **kwargs)
        self.gate = gate
        self.reviewers_param = reviewers_param
        self.signoffs_path = signoffs_path

    def execute(self, context: Any) -> Any:
        earlier = self._earlier_approval(context)
        if earlier is not None:
            return earlier
        names = context["params"].get(self.reviewers_param)
        self.assigned_users = reviewer_users(names)
        trigger = getattr(context["dag_run"], "triggering_user_name", None)
        if trigger and self.assigned_users and trigger in {u["id"] for u in self.assigned_users}:
            log.warning(
                "%s gate: %r triggered this run and is also listed as a reviewer; their answer "
                "will be refused (four eyes)",
                self.gate,
                trigger,
            )
        self.body = with_browser_link(self.body, context["params"])
        log.info(
            "%s gate waiting for one of %s",
            self.gate,
            [u["name"] for u in self.assigned_users] if self.assigned_users else "any reviewer",
        )
        return super().execute(context)

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        from airflow.sdk.exceptions import AirflowFailException

        # The base HITL handling validates the response; ApprovalOperator's own handling would
        # only skip downstream on reject, which hides the decision: we fail instead.
        payload = HITLOperator.execute_complete(self, context=context, event=event)
        params_input = payload.get("params_input") or {}
        trigger = getattr(context["dag_run"], "triggering_user_name", None)
        try:
            signoff = decide(
                self.gate,
                list(payload["chosen_options"]),
                payload.get("responded_by_user"),
                payload.get("responded_at"),
                trigger,
                str(params_input.get("comment") or ""),
            )
        except GateRejected as exc:
            self._record(context, Signoff(
                gate=self.gate,
                decision="rejected",
                by=user_name(payload.get("responded_by_user")),
                at=_iso(payload.get("responded_at")),
                comment=str(params_input.get("comment") or ""),
            ))
            log.error("%s", exc)
            raise AirflowFailException(str(exc)) from None
        except GateFailed as exc:
            log.error("%s", exc)
            raise AirflowFailException(str(exc)) from None
        self._record(context, signoff)
        log.info("%s gate approved by %s at %s", self.gate, signoff.by, signoff.at)
        return signoff.to_dict()

    def _path(self, context: Any) -> Path | None:
        if self.signoffs_path is None:
            return None
        return Path(self.signoffs_path(context) if callable(self.signoffs_path) else self.signoffs_path)

    def _record(self, context: Any, signoff: Signoff) -> None:
        path = self._path(context)
        if path is not None:
            record_signoff(path, signoff, run_id=context["run_id"])

    def _earlier_approval(self, context: Any) -> dict[str, str] | None:
        """An approval an earlier try of this task already recorded for this run.

        Airflow 3.3 can lose a gate's success: when the scheduler processes the "parked for
        input" event after the reviewer has already answered, it marks the resumed task
        UP_FOR_RETRY (seen on a loaded machine), and the retry would ask the reviewers again.
        The decision was made and recorded for this run, so the retry returns it instead.
        """
        path = self._path(context)
        if path is None or context["ti"].try_number <= 1:
            return None
        earlier = approval_in_run(path, self.gate, context["run_id"])
        if earlier is not None:
            log.warning("%s gate was approved by %s at %s in an earlier try of run %s; not asking again "
                        "(to ask again, trigger a new run)", self.gate, earlier["by"], earlier["at"], context["run_id"])
        return earlier


def with_browser_link(body: str | None, params: Mapping[str, Any]) -> str:
    """The gate's body with a link to the version's page in the release browser appended.

    The reviewer reads the README, charts, Data Docs of both variants, sample rows and the
    reconciliation there before answering. Without ``[api] base_url`` the body names the
    navigation entry instead of a link that would not resolve.
    """
    from ioarchive.airflow.browser.links import api_base_url, version_url

    release_id, version = str(params.get("release_id", "")), int(params.get("version") or 1)
    base = api_base_url()
    if base and release_id:
        line = f"**Release browser:** [{release_id} v{version}]({version_url(release_id, version, base_url=base)})"
    else:
        line = "**Release browser:** Releases in the Airflow UI's navigation."
    return f"{body or ''}\n\n{line}\n"


def _iso(value: Any) -> str:
    return value.isoformat() if isinstance(value, datetime) else str(value or "")
