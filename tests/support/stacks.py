"""Starting and stopping end-to-end stacks (Airflow + S3) on SQLite or a fresh PostgreSQL database.

Every stack gets a drill folder (``IOARCHIVE_DRILL_DIR``, see ``ioarchive.devtools.drills``); hold points
stay inert until a test arms one.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import pytest
from ioarchive.devtools.drills import DRILL_DIR_ENV
from ioarchive.devtools.stack import Stack, free_port

PG_ADMIN_DSN = "host=127.0.0.1 port=5432 user=root dbname=postgres"


def _create_pg_database() -> str:
    psycopg2 = pytest.importorskip("psycopg2")
    name = f"ioarchive_e2e_{secrets.token_hex(4)}"
    try:
        conn = psycopg2.connect(PG_ADMIN_DSN, connect_timeout=5)
    except psycopg2.OperationalError as exc:
        pytest.skip(f"no local PostgreSQL on 127.0.0.1:5432 ({exc})")
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    conn.close()
    return name


def _drop_pg_database(name: str) -> None:
    import psycopg2

    conn = psycopg2.connect(PG_ADMIN_DSN, connect_timeout=5)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    conn.close()


SESSION_PSEUDONYM_KEY = secrets.token_urlsafe(48)
"""One key for every stack of a test session, so that two stacks publish the same hashed bytes
(the drill compares the SQLite stack's publication with the PostgreSQL stack's)."""


def start_stack(state: Path, metadata: str) -> Stack:
    """A started stack on ``metadata`` (``sqlite`` or ``postgresql``: a fresh database)."""
    pg_name = _create_pg_database() if metadata == "postgresql" else None
    (state / "drills").mkdir(exist_ok=True)
    key_file = state / "pseudonym.key"  # where Stack looks first (0600, as Stack would create it)
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(SESSION_PSEUDONYM_KEY)
    stack = Stack(
        state_dir=state,
        api_port=free_port(),
        metadata_db=f"postgresql://root@127.0.0.1:5432/{pg_name}" if pg_name else "",
        s3_store="memory",  # a fresh, empty S3 per stack; the folder store is tested in tests/devtools/test_s3server.py
        registry_poke_seconds=15,  # longer than the scheduler's event lag under load (see wait_scheduler_saw)
        extra_env={"AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL": "600", DRILL_DIR_ENV: str(state / "drills")},
    )
    stack.pg_database = pg_name  # type: ignore[attr-defined]
    try:
        stack.up(timeout=240)
    except BaseException:
        stop_stack(stack)
        raise
    return stack


def stop_stack(stack: Stack) -> None:
    """Stop the stack's process groups (an interrupted Spark step need not finish) and its database."""
    try:
        stack.down(grace=5)
    finally:
        if getattr(stack, "pg_database", None):
            _drop_pg_database(stack.pg_database)  # type: ignore[attr-defined]

