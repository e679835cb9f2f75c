"""URLs of the release browser and of the Airflow UI, built from the API server's base URL.

Light on purpose (no FastAPI, no Airflow import at module level): gate bodies and failure
notifications are built in task processes and need only these strings.
"""

from __future__ import annotations

from urllib.parse import quote

URL_PREFIX = "/ioarchive"
"""Where the plugin's FastAPI app is mounted on the API server (not one of Airflow's reserved prefixes)."""


def api_base_url() -> str:
    """The API server's public base URL (``[api] base_url``), which serves the UI and the browser."""
    try:
        from airflow.configuration import conf

        return str(conf.get("api", "base_url", fallback="") or "").rstrip("/")
    except Exception:  # noqa: BLE001 - a link must never fail a task or a notification
        return ""


def browser_url(base_url: str | None = None) -> str:
    """The browser's list of every release and version."""
    base = api_base_url() if base_url is None else base_url.rstrip("/")
    return f"{base}{URL_PREFIX}/"


def version_url(release_id: str, version: int, variant: str = "hashed", base_url: str | None = None) -> str:
    """One version's page for ``variant`` (the unhashed one is for members' reviewers only)."""
    base = api_base_url() if base_url is None else base_url.rstrip("/")
    return f"{base}{URL_PREFIX}/releases/{quote(release_id, safe='')}/v{int(version)}/{quote(variant, safe='')}/"


def task_log_url(base_url: str, dag_id: str, run_id: str, task_id: str, map_index: int | None = -1,
                 try_number: int | None = None) -> str:
    """The task instance's log in the Airflow 3 UI (the route Airflow's own ``ti.log_url`` builds)."""
    url = (f"{base_url.rstrip('/')}/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}"
           f"/tasks/{quote(task_id, safe='')}")
    if map_index is not None and map_index >= 0:
        url += f"/mapped/{map_index}"
    if try_number:
        url += f"?try_number={int(try_number)}"
    return url
