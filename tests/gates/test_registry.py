"""Investigations registry on real SQLite and the local PostgreSQL: migrations, CLI, gate 2."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import uuid

import pytest
from ioarchive.cli.main import main
from ioarchive.gates.registry import (
    MIGRATIONS,
    Registry,
    RegistryError,
    open_investigations,
    open_investigations_async,
    registry_url,
    retracted_accounts,
)

PG_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/test"


@pytest.fixture()
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'registry.db'}"


@pytest.fixture()
def pg_schema():
    """A throwaway schema in database ``test``, dropped afterwards; skips if PostgreSQL is down."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import OperationalError

    schema = f"ioarchive_test_{uuid.uuid4().hex[:12]}"
    engine = create_engine(PG_URL)
    try:
        with engine.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    except OperationalError as exc:
        engine.dispose()
        pytest.skip(f"PostgreSQL on 127.0.0.1:5432 is not reachable: {exc.orig}")
    yield schema
    with engine.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    engine.dispose()


def test_migration_is_idempotent_and_versioned(sqlite_url):
    with Registry(sqlite_url) as registry:
        assert registry.applied_versions() == []
        assert registry.migrate() == [n for n, _, _ in MIGRATIONS]
        registry.set_status("iran_2021", "INV-1", "open", "alice")
        assert registry.migrate() == []
        assert registry.applied_versions() == [n for n, _, _ in MIGRATIONS]
        assert [r.investigation_id for r in registry.list()] == ["INV-1"]  # data survives a re-run


def test_unmigrated_registry_says_what_to_do(sqlite_url):
    with Registry(sqlite_url) as registry, pytest.raises(RegistryError, match="ioarchive investigations migrate"):
        registry.open_investigations("c", ["INV-1"])


def exercise_gate(registry: Registry) -> None:
    """The behaviour gate 2 relies on, shared by the SQLite and PostgreSQL tests."""
    registry.migrate()
    ids = ["INV-1", "INV-2", "INV-3"]
    assert registry.open_investigations("iran_2021", ids) == ids  # nothing recorded: all open
    registry.set_status("iran_2021", "INV-1", "concluded", "alice")
    registry.set_status("iran_2021", "INV-2", "open", "bob")
    registry.set_status("other_2020", "INV-3", "concluded", "carol")  # another campaign's row
    assert registry.open_investigations("iran_2021", ids + ["INV-1"]) == ["INV-2", "INV-3"]
    registry.set_status("iran_2021", "INV-2", "concluded", "bob")
    registry.set_status("iran_2021", "INV-3", "concluded", "bob")
    assert registry.open_investigations("iran_2021", ids) == []
    assert registry.open_investigations("iran_2021", []) == []

    first = registry.list("iran_2021")[0]
    assert first.concluded_at is not None and first.concluded_at.tzinfo is not None
    later = first.concluded_at + dt.timedelta(days=1)
    again = registry.set_status("iran_2021", "INV-1", "concluded", "dave", now=later)
    assert again.concluded_at == first.concluded_at and again.updated_by == "dave"
    reopened = registry.set_status("iran_2021", "INV-1", "open", "erin", now=later)
    assert reopened.status == "open" and reopened.concluded_at is None
    assert registry.open_investigations("iran_2021", ids) == ["INV-1"]
    with pytest.raises(ValueError):
        registry.set_status("iran_2021", "INV-1", "closed", "erin")
    with pytest.raises(ValueError):
        registry.set_status("iran_2021", "INV-1", "open", " ")


def test_gate_on_sqlite(sqlite_url):
    with Registry(sqlite_url) as registry:
        exercise_gate(registry)
    assert open_investigations("iran_2021", ["INV-1", "INV-9"], db_url=sqlite_url) == ["INV-1", "INV-9"]
    assert asyncio.run(open_investigations_async("iran_2021", ["INV-2"], db_url=sqlite_url)) == []


def test_gate_on_postgresql(pg_schema):
    with Registry(PG_URL, schema=pg_schema) as registry:
        exercise_gate(registry)
        assert registry.migrate() == []
        exercise_retractions(registry)
    from sqlalchemy import create_engine, inspect

    engine = create_engine(PG_URL)
    try:
        tables = set(inspect(engine).get_table_names(schema=pg_schema))
        assert {"ioarchive_investigations", "ioarchive_schema_version"} <= tables
        assert "ioarchive_investigations" not in inspect(engine).get_table_names(schema="public")
    finally:
        engine.dispose()
    assert open_investigations("iran_2021", ["INV-1", "INV-2"], db_url=PG_URL, schema=pg_schema) == ["INV-1"]


def test_cli_migrate_set_list(sqlite_url, capsys):
    assert main(["investigations", "--db-url", sqlite_url, "migrate"]) == 0
    assert "schema version 3 (applied 1, 2, 3)" in capsys.readouterr().out
    assert main(["investigations", "--db-url", sqlite_url, "migrate"]) == 0
    assert "(up to date)" in capsys.readouterr().out

    base = ["investigations", "--db-url", sqlite_url, "set", "--campaign", "iran_2021"]
    assert main([*base, "--investigation", "INV-1", "--status", "concluded", "--by", "alice"]) == 0
    assert main([*base, "--investigation", "INV-2", "--status", "open", "--by", "bob"]) == 0
    assert main(["investigations", "--db-url", sqlite_url, "set", "--campaign", "x_2020", "--investigation",
                 "INV-7", "--status", "open", "--by", "bob"]) == 0
    capsys.readouterr()

    assert main(["investigations", "--db-url", sqlite_url, "list", "--campaign", "iran_2021"]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()[1:]]
    assert [(r[0], r[1], r[2], r[-1]) for r in rows] == [
        ("iran_2021", "INV-1", "concluded", "alice"),
        ("iran_2021", "INV-2", "open", "bob"),
    ]
    assert rows[1][3] == "-"  # open: no concluded_at
    assert open_investigations("iran_2021", ["INV-1", "INV-2"], db_url=sqlite_url) == ["INV-2"]

    with pytest.raises(SystemExit):
        main([*base, "--investigation", "INV-1", "--status", "closed", "--by", "alice"])


def test_cli_and_library_read_the_airflow_connection(tmp_path, monkeypatch, capsys):
    db = tmp_path / "from_conn.db"
    monkeypatch.setenv("AIRFLOW_CONN_IOARCHIVE_REGISTRY", json.dumps({"conn_type": "sqlite", "host": str(db)}))
    assert registry_url() == f"sqlite:///{db}"
    assert main(["investigations", "migrate"]) == 0
    assert main(["investigations", "set", "--campaign", "c_2021", "--investigation", "I-1",
                 "--status", "concluded", "--by", "alice"]) == 0
    assert db.exists()
    assert open_investigations("c_2021", ["I-1", "I-2"]) == ["I-2"]

    monkeypatch.setenv("AIRFLOW_CONN_IOARCHIVE_REGISTRY", "postgresql://postgres:s3cret@db.example:5433/registry")
    assert registry_url() == "postgresql+psycopg2://postgres:s3cret@db.example:5433/registry"
    assert "s3cret" not in Registry(registry_url()).where


def test_missing_connection_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_IOARCHIVE_NOPE", raising=False)
    with pytest.raises(RegistryError, match="AIRFLOW_CONN_IOARCHIVE_NOPE"):
        registry_url("ioarchive_nope")


def exercise_retractions(registry: Registry) -> None:
    """Retractions (RELEASE_SPEC 8): recorded once per account, the first record kept, per release."""
    registry.migrate()
    t0 = dt.datetime(2026, 12, 1, 9, 30, tzinfo=dt.UTC)
    rows = registry.record_retraction("iran_202102", ["22", "11", "11"], "appeal granted", "reviewer_a", now=t0)
    assert [(r.account_id, r.reason, r.approved_by, r.recorded_at) for r in rows] == [
        ("11", "appeal granted", "reviewer_a", t0), ("22", "appeal granted", "reviewer_a", t0)]
    later = t0 + dt.timedelta(hours=1)
    rows = registry.record_retraction("iran_202102", ["22", "33"], "second appeal", "reviewer_b", now=later)
    assert [(r.account_id, r.reason, r.recorded_at) for r in rows] == [
        ("11", "appeal granted", t0), ("22", "appeal granted", t0), ("33", "second appeal", later)]
    assert registry.retractions("other_202102") == []
    with pytest.raises(ValueError, match="reason"):
        registry.record_retraction("iran_202102", ["44"], " ", "reviewer_a")
    with pytest.raises(ValueError, match="approved_by"):
        registry.record_retraction("iran_202102", ["44"], "x", "")


def test_retractions_sqlite(sqlite_url):
    with Registry(sqlite_url) as registry:
        exercise_retractions(registry)
    assert [r.account_id for r in retracted_accounts("iran_202102", db_url=sqlite_url)] == ["11", "22", "33"]
