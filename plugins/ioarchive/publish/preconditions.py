"""Publication re-checks every gate from the audit trail (RELEASE_SPEC section 7).

Airflow task states are not evidence: any user who may edit a run can mark a gate task
``success`` (UI "Mark as success", REST ``PATCH .../taskInstances/{task}``), and downstream
tasks then run with no reviewer having answered. So the publish step, before it uploads
anything to either bucket, reads the records only the gates write and refuses unless:

1. **attribution sign-off** and 2. **publication sign-off**: *this run's* entry in the
   sign-off record (``StagingLayout.signoffs``, written by ``ReleaseGateOperator`` with the
   ``run_id``) is ``approved``, by a user in the run's ``reviewers``, who is not the user who
   triggered the run (four eyes). Entries of other runs of the same release version are
   ignored, and the manifest lists this run's sign-offs only;
3. **investigations concluded**: every investigation linked to the campaign is ``concluded`` in
   the registry *now* (one reopened after the wait stops publication);
4. **quality summary**: both variants' ``validation/<variant>/summary.json`` passed, and the
   checksums it recorded for the validated files equal the staged bytes (a file changed after
   validation is refused). Both variants are checked by both publish tasks, so a defect in
   either variant keeps both buckets empty.

Every failed precondition is reported at once, each named, in one
:class:`PublicationPreconditionFailed` (a ``PublishRefused``: the DAG fails the task without
retry). Everything here reads files and the registry; nothing is uploaded or changed except the
staged manifest's sign-offs, which :func:`prepare_publication` writes only after every check
passed.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ioarchive.errors import PublishRefused, SummaryError
from ioarchive.gates.signoffs import GATE_ATTRIBUTION, GATE_PUBLICATION, GATE_RETRACTION, run_signoffs
from ioarchive.schema import VARIANTS
from ioarchive.staging import StagingLayout

log = logging.getLogger(__name__)

ATTRIBUTION_SIGNOFF = "attribution sign-off"
PUBLICATION_SIGNOFF = "publication sign-off"
INVESTIGATIONS_CONCLUDED = "investigations concluded"
QUALITY_SUMMARY = "quality summary"
FOUR_EYES = "four eyes"
ASSIGNED_REVIEWERS = "assigned reviewers"
RETRACTION_SIGNOFF = "retraction sign-off"
GATE_PRECONDITION = {GATE_ATTRIBUTION: ATTRIBUTION_SIGNOFF, GATE_RETRACTION: RETRACTION_SIGNOFF,
                     GATE_PUBLICATION: PUBLICATION_SIGNOFF}
RELEASE_GATES: tuple[str, ...] = (GATE_ATTRIBUTION, GATE_PUBLICATION)
"""The sign-offs an ``io_release`` run needs; an ``io_retract`` run needs retraction + publication
(its form's ``signoff_gates``)."""


@dataclass(frozen=True)
class Problem:
    """One unmet precondition: which one, and what the record shows."""

    precondition: str
    detail: str

    def __str__(self) -> str:
        return f"[{self.precondition}] {self.detail}"


class PublicationPreconditionFailed(PublishRefused):
    """The audit trail does not allow publication; nothing was uploaded.

    A ``PublishRefused`` (``ioarchive.errors``), so NotRetryable: the task fails on try 1, a person must act.
    """

    def __init__(self, release_id: str, run_id: str, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        self.preconditions = sorted({p.precondition for p in self.problems})
        super().__init__(
            f"publication of {release_id} refused for run {run_id}: precondition(s) not met: "
            f"{', '.join(self.preconditions)}. Nothing was uploaded to either bucket. "
            + " ".join(str(p) for p in self.problems)
        )


# --- 1-2: sign-offs ---------------------------------------------------------------------------

def check_signoffs(
    entries: Iterable[Mapping[str, Any]],
    *,
    run_id: str,
    triggering_user: str | None,
    reviewers: Iterable[str] | str | None,
    gates: Iterable[str] = RELEASE_GATES,
) -> tuple[list[dict[str, Any]], list[Problem]]:
    """This run's approvals of both gates, and the problems found in the record.

    ``entries``: the sign-off record (entries of other runs are skipped here too).
    """
    if isinstance(reviewers, str):
        reviewers = [r.strip() for r in reviewers.split(",")]
    assigned = sorted({str(r).strip() for r in reviewers or () if str(r).strip()})
    trigger = (triggering_user or "").strip()
    approvals: list[dict[str, Any]] = []
    problems: list[Problem] = []
    if not trigger:
        problems.append(Problem(
            FOUR_EYES,
            f"run {run_id} records no triggering user, so four eyes cannot be shown; trigger the run as a named user",
        ))
    if not assigned:
        problems.append(Problem(ASSIGNED_REVIEWERS, f"run {run_id} has no assigned reviewers (param 'reviewers')"))
    mine = [dict(e) for e in entries if e.get("run_id") == run_id]
    for gate in gates:
        name = GATE_PRECONDITION[gate]
        decisions = [e for e in mine if e.get("gate") == gate]
        if not decisions:
            problems.append(Problem(
                name,
                f"no {gate} decision is recorded for run {run_id}: no reviewer answered this run's gate "
                "(a gate task marked 'success' by hand records none). Trigger a new run and let an assigned "
                "reviewer answer",
            ))
            continue
        entry = decisions[-1]
        by = str(entry.get("by") or "").strip()
        if entry.get("decision") != "approved":
            problems.append(Problem(name, f"the {gate} decision recorded for run {run_id} is "
                                          f"{entry.get('decision')!r} (by {by!r}), not 'approved'"))
            continue
        if not by:
            problems.append(Problem(name, f"the {gate} approval of run {run_id} names no reviewer"))
            continue
        if assigned and by not in assigned:
            problems.append(Problem(name, f"the {gate} approval of run {run_id} is by {by!r}, who is not one of "
                                          f"the run's reviewers ({', '.join(assigned)})"))
            continue
        if trigger and by == trigger:
            problems.append(Problem(name, f"the {gate} approval of run {run_id} is by {by!r}, who triggered the "
                                          "run (four eyes)"))
            continue
        approvals.append(entry)
    return approvals, problems


# --- 3: investigations --------------------------------------------------------------------------

def check_investigations(
    campaign_id: str, investigation_ids: Sequence[str], open_investigations: Callable[[str, list[str]], list[str]]
) -> list[Problem]:
    """Every linked investigation concluded in the registry now (missing rows count as open).

    A registry that cannot be reached raises (``RegistryError``): that is an outage, retried,
    not a verdict.
    """
    still_open = list(open_investigations(campaign_id, list(investigation_ids)))
    if not still_open:
        return []
    return [Problem(
        INVESTIGATIONS_CONCLUDED,
        f"investigation(s) {', '.join(still_open)} of campaign {campaign_id} are not concluded in the registry "
        "now (reopened after the wait?); publish only once the integrity team has concluded them again",
    )]


# --- 4: quality summary -------------------------------------------------------------------------

_VALIDATED = re.compile(r"^(parquet/.+|[a-z0-9_]+_(users|tweets)_csv_(hashed|unhashed)(_part\d{3})?\.zip)$")
"""Release files the quality gate reads (``ioarchive.quality.data``): Parquet tables and CSV zips."""


def _release_files(release_dir: Path) -> list[str]:
    if not release_dir.is_dir():
        return []
    return sorted(p.relative_to(release_dir).as_posix() for p in release_dir.rglob("*")
                  if p.is_file() and not any(part.startswith(".") for part in p.relative_to(release_dir).parts))


def check_quality_summaries(layout: StagingLayout, variants: Iterable[str] = VARIANTS) -> list[Problem]:
    """Both variants' summaries passed, and the staged files are the bytes the gate validated.

    The summary (``ioarchive.quality.summary``, written only by the gate) records the SHA-256 of
    every file the suites read; a validated file changed or removed since, or a table file added
    after the gate, refuses publication.
    """
    from ioarchive.quality.summary import changed_since_validation, load_summary, validated_checksums

    problems: list[Problem] = []
    for variant in variants:
        try:
            summary = load_summary(layout, variant)
            if summary["success"] is not True:
                problems.append(Problem(QUALITY_SUMMARY, f"{layout.validation_summary(variant)} does not record a "
                                                         f"passed validation of the {variant} variant"))
                continue
            recorded = validated_checksums(layout, variant)
            changed = [f"{name} (validated, now {why})" for name, why in changed_since_validation(layout, variant).items()]
        except SummaryError as exc:
            problems.append(Problem(QUALITY_SUMMARY, f"{variant}: {exc}"))
            continue
        staged = [n for n in _release_files(layout.release_dir(variant)) if _VALIDATED.match(n)]
        changed += [f"{name} (not validated)" for name in staged if name not in recorded]
        if changed:
            problems.append(Problem(QUALITY_SUMMARY, f"{variant} files changed after the quality gate: "
                                                     f"{', '.join(sorted(changed)[:10])}; rerun the quality gate and "
                                                     "the publication sign-off"))
    return problems


# --- all of them --------------------------------------------------------------------------------

def check_publication(
    layout: StagingLayout,
    *,
    run_id: str,
    triggering_user: str | None,
    reviewers: Iterable[str] | str | None,
    campaign_id: str,
    investigation_ids: Sequence[str],
    open_investigations: Callable[[str, list[str]], list[str]],
    gates: Iterable[str] = RELEASE_GATES,
) -> list[dict[str, Any]]:
    """Re-check every gate from the audit trail; return this run's approvals or raise naming what is missing."""
    approvals, problems = check_signoffs(
        run_signoffs(layout.signoffs, run_id), run_id=run_id, triggering_user=triggering_user, reviewers=reviewers,
        gates=gates,
    )
    problems += check_investigations(campaign_id, investigation_ids, open_investigations)
    problems += check_quality_summaries(layout)
    if problems:
        for problem in problems:
            log.error("publication precondition not met: %s", problem)
        raise PublicationPreconditionFailed(layout.release_id, run_id, problems)
    log.info("publication preconditions met for run %s: %s", run_id,
             "; ".join(f"{a['gate']} approved by {a['by']} at {a['at']}" for a in approvals)
             + f"; {len(investigation_ids)} investigation(s) concluded; quality summaries match the staged bytes")
    return approvals


def prepare_publication(layout: StagingLayout, variant: str, params: Mapping[str, Any], dag_run: Any) -> list[dict]:
    """The publish task's guard: check (:func:`check_publication`), then put this run's sign-offs in the manifest.

    ``dag_run``: the Airflow run (``run_id``, ``triggering_user_name``); ``params``: the run's
    params (``campaign_dir``, ``reviewers``). The registry is read through its Airflow connection.
    """
    from ioarchive.gates import registry
    from ioarchive.render.manifest import refresh_signoffs
    from ioarchive.request.campaign import Campaign

    campaign = Campaign.load(Path(params["campaign_dir"]))
    approvals = check_publication(
        layout,
        run_id=str(dag_run.run_id),
        triggering_user=getattr(dag_run, "triggering_user_name", None),
        reviewers=params.get("reviewers"),
        campaign_id=campaign.campaign_id,
        investigation_ids=list(campaign.investigation_ids),
        open_investigations=registry.open_investigations,
        gates=tuple(params.get("signoff_gates") or RELEASE_GATES),
    )
    refresh_signoffs(layout, variant, campaign.account_ids, signoffs=approvals)
    return approvals
