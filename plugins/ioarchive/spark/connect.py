"""The connect backend: Spark steps as clients of a Spark Connect server that outlives the tasks.

Why: at the demo's size (1,500 posts) a release's Spark steps were almost all fixed cost: each
step started its own JVM (about 15 s on a loaded 2-core machine) and then ran dozens of small
queries in a cold JVM (interpreted Catalyst, every generated class compiled afresh), about 90 s
for extract alone. A Spark Connect server keeps one warm JVM for every step of every release
(docs/performance.md, "Small releases"; docs/decisions.md). It is also how a team shares a
cluster: the server's own master may be ``local[*]``, a standalone cluster or YARN.

What stays the same: the step still runs ``jobs/<step>.py`` with the same stage function in a
child process of the task (``ioarchive.spark.local``), only its session is a Connect client
(``IOARCHIVE_SPARK_REMOTE``, ``sc://host:port``). The server must see the staging and campaign
folders at the same paths as the worker (one machine, or a shared mount), as for the cluster
backend's executors.

A killed step must not leave a query writing into the staging folder that its retry rewrites.
The server finishes an operation whose client died (measured: the running query completed 4 s
after the client's SIGKILL), so each step records its session id in the staging folder
(``StagingLayout.spark_session_record``) and the next try of the step first interrupts every
operation of that session and closes it (:func:`stop_previous`), as on-call would by hand.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from ioarchive import settings
from ioarchive.errors import ConfigurationError, SparkJobFailed

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

SERVER_CLASS = "org.apache.spark.sql.connect.service.SparkConnectServer"
DEFAULT_PORT = 15002

SERVER_CONF: dict[str, str] = {
    # A client that went away without closing its session (a killed task) frees the server's
    # session state after a minute instead of the default hour.
    "spark.connect.session.manager.defaultSessionTimeout": "60s",
    # Reattachable executions of a vanished client are dropped after this long (ours are not
    # reattachable, see the module docstring: this is the second line).
    "spark.connect.execute.manager.detachedTimeout": "30s",
}
"""Server settings besides those of every ioarchive driver (``session.launch_conf``)."""


def remote_url() -> str | None:
    """``IOARCHIVE_SPARK_REMOTE`` of this process's environment (a Spark process has no Airflow context)."""
    return settings.get("IOARCHIVE_SPARK_REMOTE", env=os.environ) or None


def host_port(url: str) -> tuple[str, int]:
    """``sc://host:port[/;params]`` -> (host, port); ConfigurationError on anything else."""
    parsed = urlparse(url)
    if parsed.scheme != "sc" or not parsed.hostname:
        raise ConfigurationError(f"IOARCHIVE_SPARK_REMOTE is {url!r}; expected sc://<host>:<port>, e.g. "
                                 f"sc://127.0.0.1:{DEFAULT_PORT}")
    return parsed.hostname, parsed.port or DEFAULT_PORT


def reachable(url: str, timeout: float = 3.0) -> bool:
    """Whether something accepts TCP connections at the server's address."""
    host, port = host_port(url)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def require_server(url: str, timeout: float = 10.0) -> None:
    """Raise SparkJobFailed (retryable) naming the address when no server answers there."""
    deadline = time.monotonic() + timeout
    while not reachable(url):
        if time.monotonic() > deadline:
            raise SparkJobFailed(
                f"no Spark Connect server answers at {url} (IOARCHIVE_SPARK_REMOTE): start it (`make up` starts "
                "one with the local stack; docker-compose runs the spark-connect service) or set "
                "IOARCHIVE_SPARK_BACKEND=local to run the step in a Spark of its own; see docs/runbook.md"
            )
        time.sleep(0.5)


def connect_session(url: str, app_name: str, conf: dict[str, str]) -> SparkSession:
    """A new Connect session on ``url`` with the SQL settings of ``conf`` (the rest is the server's).

    A fresh server-side session per step: temp views, cached frames and settings of one step
    never leak into the next. Operations are tagged with ``app_name`` so the server's UI and logs
    group them by step and release.
    """
    from pyspark.sql import SparkSession

    spark = SparkSession.builder.remote(url).create()
    spark.conf.set("spark.sql.session.timeZone", "UTC")
    for key, value in conf.items():
        if key.startswith("spark.sql.") and value is not None:
            spark.conf.set(key, value)
    spark.addTag(app_name.replace(",", "_"))
    log.info("Spark Connect session %s on %s (server Spark %s)", spark.session_id, url, spark.version)
    return spark


def is_connect(spark: object) -> bool:
    """Whether ``spark`` is a Spark Connect session (no SparkContext, no JVM in this process)."""
    return type(spark).__module__.startswith("pyspark.sql.connect")


def _session_url(url: str, session_id: str) -> str:
    base = url.rstrip("/")
    return f"{base};session_id={session_id}" if "/;" in base else f"{base}/;session_id={session_id}"


def record_session(spark: SparkSession, record: Path) -> None:
    """Write the step's session id where its next try looks (:func:`stop_previous`)."""
    from ioarchive.files import atomic_write_text

    record.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(record, spark.session_id + "\n")


def stop_previous(url: str, record: Path, timeout: float = 30.0) -> list[str]:
    """Interrupt and close the session an earlier try of this step recorded; return the interrupted ids.

    Nothing recorded, or a session the server already closed: nothing to do. The session is
    closed only once its operations have stopped (the server refuses to close it before), so on
    return no earlier try writes any more; after ``timeout`` the step goes on with a warning.
    """
    if not record.exists():
        return []
    session_id = record.read_text(encoding="utf-8").strip()
    try:
        uuid.UUID(session_id)
    except ValueError:
        log.warning("ignoring %s: %r is not a Spark Connect session id", record, session_id)
        return []
    from pyspark.sql.connect.client import SparkConnectClient

    client = SparkConnectClient(_session_url(url, session_id))
    try:
        try:
            interrupted = list(client.interrupt_all() or [])
        except Exception as exc:  # closed or unknown session: the earlier try ended cleanly
            log.info("earlier Spark Connect session %s of this step is gone (%s)", session_id, type(exc).__name__)
            return []
        deadline = time.monotonic() + timeout
        while True:
            try:
                client.release_session()
                break
            except Exception as exc:
                text = str(exc)
                if "SESSION_CLOSED" in text or "SESSION_NOT_FOUND" in text:
                    break
                if time.monotonic() > deadline:
                    log.warning("Spark Connect session %s of an earlier try did not close within %.0f s: %s",
                                session_id, timeout, text.splitlines()[0] if text else type(exc).__name__)
                    break
                time.sleep(0.5)
    finally:
        client.close()
    if interrupted:
        log.warning("interrupted %d operation(s) that an earlier, killed try of this step left running on %s "
                    "(session %s)", len(interrupted), url, session_id)
    record.unlink(missing_ok=True)
    return interrupted
