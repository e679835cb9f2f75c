"""Where each release version's latest run stands, from Airflow's metadata DB (API server side).

The browser shows "waiting at the publication sign-off" and the like: that is a task state, so
it is read from the metadata DB the API server already holds a session to, not guessed from
files. Only the latest run of each ``(release_id, version)`` counts.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

DAG_ID = "io_release"
GATE_TASKS = {"attribution_signoff": "attribution sign-off", "publication_signoff": "publication sign-off"}
MAX_RUNS = 500
"""Runs read per page view (newest first): enough for every version a team has in flight."""


@dataclass(frozen=True)
class RunInfo:
    """The latest run of one release version and where it stands."""

    run_id: str
    state: str  # the DAG run's state: queued, running, success, failed
    waiting_at: str = ""  # "attribution sign-off", "publication sign-off", "investigations", ""
    failed_tasks: tuple[str, ...] = ()
    running_tasks: tuple[str, ...] = field(default_factory=tuple)
    triggered_by: str = ""

    def describe(self) -> str:
        """One phrase for the list: what the run is doing or waiting for."""
        if self.waiting_at:
            return f"waiting at the {self.waiting_at}"
        if self.state == "failed":
            return "run failed" + (f" at {', '.join(self.failed_tasks)}" if self.failed_tasks else "")
        if self.state in ("running", "queued"):
            return "running" + (f": {', '.join(self.running_tasks)}" if self.running_tasks else "")
        return f"run {self.state}"


def classify(run_id: str, run_state: str, task_states: dict[str, str | None], triggered_by: str = "") -> RunInfo:
    """A run's standing from its task states (pure: tested without a database)."""
    waiting = ""
    for task_id, label in GATE_TASKS.items():
        if task_states.get(task_id) == "awaiting_input":
            waiting = label
    if not waiting and task_states.get("wait_for_investigations") in ("up_for_reschedule", "deferred"):
        waiting = "investigations (registry)"
    failed = tuple(sorted(t for t, s in task_states.items() if s in ("failed", "up_for_retry")))
    running = tuple(sorted(t for t, s in task_states.items() if s in ("running", "queued", "scheduled")))
    return RunInfo(run_id, run_state, waiting, failed, running, triggered_by)


def latest_runs() -> dict[tuple[str, int], RunInfo]:
    """``(release_id, version)`` -> its latest run, from the metadata DB (empty when unreadable)."""
    try:
        from airflow.models.dagrun import DagRun
        from airflow.models.taskinstance import TaskInstance
        from airflow.utils.session import create_session
        from sqlalchemy import select
    except Exception:  # noqa: BLE001 - outside an Airflow deployment (CLI, tests): no run states
        return {}
    found: dict[tuple[str, int], RunInfo] = {}
    try:
        with create_session() as session:
            runs = session.execute(
                select(DagRun.run_id, DagRun.state, DagRun.conf, DagRun.triggering_user_name)
                .where(DagRun.dag_id == DAG_ID).order_by(DagRun.id.desc()).limit(MAX_RUNS)
            ).all()
            latest: dict[tuple[str, int], tuple[str, str, str]] = {}
            for run_id, state, conf, user in runs:
                key = _version_key(conf)
                if key is not None and key not in latest:
                    latest[key] = (run_id, _text(state), str(user or ""))
            if not latest:
                return {}
            rows = session.execute(
                select(TaskInstance.run_id, TaskInstance.task_id, TaskInstance.state)
                .where(TaskInstance.dag_id == DAG_ID, TaskInstance.run_id.in_([r for r, _, _ in latest.values()]))
            ).all()
    except Exception as exc:  # noqa: BLE001 - the page still shows files and buckets
        log.warning("release browser: cannot read run states from the metadata DB (%s); showing files only", exc)
        return {}
    states: dict[str, dict[str, str | None]] = {}
    for run_id, task_id, state in rows:
        states.setdefault(run_id, {})[task_id] = None if state is None else _text(state)
    for key, (run_id, state, user) in latest.items():
        found[key] = classify(run_id, state, states.get(run_id, {}), user)
    return found


def _version_key(conf: Any) -> tuple[str, int] | None:
    if not isinstance(conf, dict) or not conf.get("release_id"):
        return None
    try:
        return str(conf["release_id"]), int(conf.get("version") or 1)
    except (TypeError, ValueError):
        return None


def _text(state: Any) -> str:
    """An Airflow state enum or string as its plain value (``running``)."""
    return str(getattr(state, "value", state))
