"""The investigations registry: gate 2 waits until every linked investigation is concluded.

One SQL table, ``ioarchive_investigations`` (campaign_id, investigation_id, status,
concluded_at, updated_by, updated_at), reached through the Airflow connection
``ioarchive_registry`` (SQLite in the embedded default, PostgreSQL in production) or an
explicit SQLAlchemy URL (CLI ``--db-url``, tests).

The schema is created by versioned migrations (:data:`MIGRATIONS`, recorded in
``ioarchive_schema_version``); ``migrate()`` applies only the missing ones, so it is safe to
run at every deployment.

An investigation id that is not in the table counts as *not concluded*: the integrity team
has not recorded it yet, so the release must keep waiting (fail closed).

SQLAlchemy is imported lazily; the DAG imports this module at parse time.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ioarchive.errors import RegistryError

REGISTRY_CONN_ID = "ioarchive_registry"
TABLE = "ioarchive_investigations"
RETRACTIONS = "ioarchive_retractions"
VERSION_TABLE = "ioarchive_schema_version"
STATUSES: tuple[str, ...] = ("open", "concluded")


@dataclass(frozen=True)
class Retraction:
    """One retracted account of one release (RELEASE_SPEC 8): never published again."""

    release_id: str
    account_id: str
    reason: str
    approved_by: str
    recorded_at: dt.datetime | None


@dataclass(frozen=True)
class Investigation:
    """One row of the registry."""

    campaign_id: str
    investigation_id: str
    status: str
    concluded_at: dt.datetime | None
    updated_by: str
    updated_at: dt.datetime | None


def _tables(metadata: Any) -> tuple[Any, Any]:
    from sqlalchemy import CheckConstraint, Column, DateTime, Integer, String, Table

    version = Table(
        VERSION_TABLE,
        metadata,
        Column("version", Integer, primary_key=True, autoincrement=False),
        Column("description", String(200), nullable=False),
        Column("applied_at", DateTime(timezone=True), nullable=False),
    )
    investigations = Table(
        TABLE,
        metadata,
        Column("campaign_id", String(200), primary_key=True),
        Column("investigation_id", String(200), primary_key=True),
        Column("status", String(20), nullable=False),
        Column("concluded_at", DateTime(timezone=True), nullable=True),
        Column("updated_by", String(200), nullable=False),
        Column("updated_at", DateTime(timezone=True), nullable=False),
        CheckConstraint("status IN ('open', 'concluded')", name="ck_ioarchive_investigations_status"),
    )
    return version, investigations


def _retractions_table(metadata: Any) -> Any:
    from sqlalchemy import Column, DateTime, String, Table, Text

    return Table(
        RETRACTIONS,
        metadata,
        Column("release_id", String(200), primary_key=True),
        Column("account_id", String(64), primary_key=True),
        Column("reason", Text, nullable=False),
        Column("approved_by", String(200), nullable=False),
        Column("recorded_at", DateTime(timezone=True), nullable=False),
    )


def _migration_1(conn: Any, tables: dict[str, Any]) -> None:
    tables[TABLE].create(conn, checkfirst=True)


def _migration_2(conn: Any, tables: dict[str, Any]) -> None:
    from sqlalchemy import Index

    Index("ix_ioarchive_investigations_status", tables[TABLE].c.campaign_id, tables[TABLE].c.status).create(
        conn, checkfirst=True
    )


def _migration_3(conn: Any, tables: dict[str, Any]) -> None:
    tables[RETRACTIONS].create(conn, checkfirst=True)


MIGRATIONS: tuple[tuple[int, str, Callable[[Any, dict[str, Any]], None]], ...] = (
    (1, "create ioarchive_investigations", _migration_1),
    (2, "index investigations by campaign and status", _migration_2),
    (3, "create ioarchive_retractions", _migration_3),
)
"""Append only: never edit an applied migration, add the next number."""


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    """SQLite returns naive datetimes; everything stored is UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=dt.UTC)


class Registry:
    """The investigations table behind one SQLAlchemy URL.

    ``schema``: a PostgreSQL schema (namespace) to use instead of the default one; tests use a
    throwaway schema, deployments normally leave it unset.
    """

    def __init__(self, url: str, *, schema: str | None = None) -> None:
        from sqlalchemy import MetaData, create_engine

        self.url = url
        self.schema = schema
        engine = create_engine(url, pool_pre_ping=True)
        if schema:
            engine = engine.execution_options(schema_translate_map={None: schema})
        self.engine = engine
        version, investigations = _tables(MetaData())
        metadata = investigations.metadata
        self.tables = {VERSION_TABLE: version, TABLE: investigations, RETRACTIONS: _retractions_table(metadata)}

    @classmethod
    def from_connection(cls, conn_id: str = REGISTRY_CONN_ID, *, schema: str | None = None) -> Registry:
        return cls(registry_url(conn_id), schema=schema)

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def where(self) -> str:
        """The database, for messages (never the password)."""
        from sqlalchemy.engine import make_url

        shown = make_url(self.url).render_as_string(hide_password=True)
        return f"{shown} (schema {self.schema})" if self.schema else shown

    # -- migrations ---------------------------------------------------------------------
    def applied_versions(self) -> list[int]:
        from sqlalchemy import inspect, select

        with self.engine.connect() as conn:
            if not inspect(conn).has_table(VERSION_TABLE, schema=self.schema):
                return []
            rows = conn.execute(select(self.tables[VERSION_TABLE].c.version)).scalars()
            return sorted(int(v) for v in rows)

    def migrate(self) -> list[int]:
        """Apply the missing migrations, each in its own transaction; return those applied now."""
        from sqlalchemy import insert

        with self.engine.begin() as conn:
            self.tables[VERSION_TABLE].create(conn, checkfirst=True)
        done = set(self.applied_versions())
        applied = []
        for number, description, step in MIGRATIONS:
            if number in done:
                continue
            with self.engine.begin() as conn:
                step(conn, self.tables)
                conn.execute(
                    insert(self.tables[VERSION_TABLE]).values(
                        version=number, description=description, applied_at=_now()
                    )
                )
            applied.append(number)
        return applied

    def _require_migrated(self) -> None:
        latest = MIGRATIONS[-1][0]
        versions = self.applied_versions()
        if not versions or max(versions) < latest:
            raise RegistryError(
                f"investigations registry at {self.where} is at schema version {max(versions, default=0)}, "
                f"code needs {latest}: run `ioarchive investigations migrate`"
            )

    # -- rows ---------------------------------------------------------------------------
    def list(self, campaign_id: str | None = None) -> list[Investigation]:
        from sqlalchemy import select

        self._require_migrated()
        table = self.tables[TABLE]
        query = select(table).order_by(table.c.campaign_id, table.c.investigation_id)
        if campaign_id is not None:
            query = query.where(table.c.campaign_id == campaign_id)
        with self.engine.connect() as conn:
            return [_row(r) for r in conn.execute(query).mappings()]

    def set_status(
        self,
        campaign_id: str,
        investigation_id: str,
        status: str,
        updated_by: str,
        *,
        now: dt.datetime | None = None,
    ) -> Investigation:
        """Record ``status`` for one investigation (insert or update); returns the stored row.

        ``concluded_at`` is set when an investigation becomes concluded (kept if it already
        was) and cleared when it is reopened.
        """
        from sqlalchemy import insert, select, update

        if status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {status!r}")
        if not updated_by or not updated_by.strip():
            raise ValueError("updated_by must name who changed the status (audit trail)")
        if not campaign_id or not investigation_id:
            raise ValueError("campaign_id and investigation_id are required")
        self._require_migrated()
        now = now or _now()
        table = self.tables[TABLE]
        key = (table.c.campaign_id == campaign_id) & (table.c.investigation_id == investigation_id)
        with self.engine.begin() as conn:
            current = conn.execute(select(table).where(key)).mappings().first()
            if status == "concluded":
                concluded_at = (current["concluded_at"] if current and current["status"] == "concluded" else None) or now
            else:
                concluded_at = None
            values = {"status": status, "concluded_at": concluded_at, "updated_by": updated_by, "updated_at": now}
            if current is None:
                conn.execute(insert(table).values(campaign_id=campaign_id, investigation_id=investigation_id, **values))
            else:
                conn.execute(update(table).where(key).values(**values))
            return _row(conn.execute(select(table).where(key)).mappings().one())

    def open_investigations(self, campaign_id: str, investigation_ids: Iterable[str]) -> list[str]:
        """The ids (in the given order, without repeats) that are not concluded for ``campaign_id``."""
        from sqlalchemy import select

        wanted = list(dict.fromkeys(str(i) for i in investigation_ids))
        if not wanted:
            return []
        self._require_migrated()
        table = self.tables[TABLE]
        query = select(table.c.investigation_id).where(
            (table.c.campaign_id == campaign_id)
            & (table.c.status == "concluded")
            & (table.c.investigation_id.in_(wanted))
        )
        with self.engine.connect() as conn:
            concluded = set(conn.execute(query).scalars())
        return [i for i in wanted if i not in concluded]


    # -- retractions (RELEASE_SPEC 8) ------------------------------------------------------
    def record_retraction(
        self,
        release_id: str,
        account_ids: Iterable[str],
        reason: str,
        approved_by: str,
        *,
        now: dt.datetime | None = None,
    ) -> list[Retraction]:
        """Record that ``account_ids`` leave ``release_id`` for good; returns the release's rows.

        Idempotent: an account already retracted keeps its first row (reason, approver, time),
        so a rerun of the recording task changes nothing and the audit trail stays the first one.
        """
        from sqlalchemy import insert, select

        ids = sorted({str(i).strip() for i in account_ids if str(i).strip()})
        if not ids:
            raise ValueError("a retraction names at least one account id")
        if not reason or not reason.strip():
            raise ValueError("a retraction needs a reason (audit trail, changelog)")
        if not approved_by or not approved_by.strip():
            raise ValueError("approved_by must name the reviewer who approved the retraction")
        self._require_migrated()
        now = now or _now()
        table = self.tables[RETRACTIONS]
        with self.engine.begin() as conn:
            present = set(conn.execute(
                select(table.c.account_id).where((table.c.release_id == release_id) & table.c.account_id.in_(ids))
            ).scalars())
            for account_id in ids:
                if account_id not in present:
                    conn.execute(insert(table).values(release_id=release_id, account_id=account_id, reason=reason,
                                                      approved_by=approved_by, recorded_at=now))
        return self.retractions(release_id)

    def retractions(self, release_id: str) -> list[Retraction]:
        """Every retracted account of ``release_id``, by account id."""
        from sqlalchemy import select

        self._require_migrated()
        table = self.tables[RETRACTIONS]
        query = select(table).where(table.c.release_id == release_id).order_by(table.c.account_id)
        with self.engine.connect() as conn:
            return [
                Retraction(r["release_id"], r["account_id"], r["reason"], r["approved_by"], _utc(r["recorded_at"]))
                for r in conn.execute(query).mappings()
            ]


def retracted_accounts(
    release_id: str, *, db_url: str | None = None, conn_id: str = REGISTRY_CONN_ID, schema: str | None = None
) -> list[Retraction]:
    """The registry's retractions of ``release_id`` (the extraction leaves these accounts out)."""
    registry = Registry(db_url, schema=schema) if db_url else Registry.from_connection(conn_id, schema=schema)
    with registry:
        return registry.retractions(release_id)


def _row(r: Any) -> Investigation:
    return Investigation(
        campaign_id=r["campaign_id"],
        investigation_id=r["investigation_id"],
        status=r["status"],
        concluded_at=_utc(r["concluded_at"]),
        updated_by=r["updated_by"],
        updated_at=_utc(r["updated_at"]),
    )


def url_from_connection(conn: Any) -> str:
    """SQLAlchemy URL of an Airflow connection (sqlite: ``host`` is the file path).

    Airflow's own ``get_uri()`` is not a SQLAlchemy URL for sqlite, and the sqlite/postgres
    providers are not installed here, so the mapping is explicit. An extra
    ``{"sqlalchemy_url": ...}`` overrides everything.
    """
    from sqlalchemy.engine import URL

    extra = getattr(conn, "extra_dejson", None) or {}
    if extra.get("sqlalchemy_url"):
        return str(extra["sqlalchemy_url"])
    conn_type = (conn.conn_type or "").lower()
    if conn_type == "sqlite":
        if not conn.host:
            raise RegistryError(f"connection {conn.conn_id}: a sqlite registry needs host = the database file path")
        return f"sqlite:///{conn.host}"
    if conn_type in ("postgres", "postgresql"):
        return URL.create(
            "postgresql+psycopg2",
            username=conn.login or None,
            password=conn.password or None,
            host=conn.host or None,
            port=conn.port or None,
            database=conn.schema or None,
        ).render_as_string(hide_password=False)
    hook = conn.get_hook()
    url = getattr(hook, "sqlalchemy_url", None)
    if url is None:
        raise RegistryError(f"connection {conn.conn_id} of type {conn_type!r} is not a SQL database connection")
    return url.render_as_string(hide_password=False) if hasattr(url, "render_as_string") else str(url)


def registry_url(conn_id: str = REGISTRY_CONN_ID) -> str:
    """SQLAlchemy URL of the registry's Airflow connection (env ``AIRFLOW_CONN_IOARCHIVE_REGISTRY`` works)."""
    from airflow.sdk import BaseHook

    try:
        conn = BaseHook.get_connection(conn_id)
    except Exception as exc:  # noqa: BLE001 - Airflow raises several types for a missing connection
        raise RegistryError(
            f"Airflow connection {conn_id!r} is not defined: create it (Admin > Connections) or set "
            f"AIRFLOW_CONN_{conn_id.upper()}"
        ) from exc
    return url_from_connection(conn)


def open_investigations(
    campaign_id: str,
    investigation_ids: Sequence[str],
    *,
    db_url: str | None = None,
    conn_id: str = REGISTRY_CONN_ID,
    schema: str | None = None,
) -> list[str]:
    """Ids of ``investigation_ids`` not yet concluded for ``campaign_id`` (missing rows count as open).

    The DAG's wait step calls this (a sensor in reschedule mode, or a trigger via
    :func:`open_investigations_async`); an empty list means gate 2 is passed.
    """
    registry = Registry(db_url, schema=schema) if db_url else Registry.from_connection(conn_id, schema=schema)
    with registry:
        return registry.open_investigations(campaign_id, investigation_ids)


async def open_investigations_async(
    campaign_id: str,
    investigation_ids: Sequence[str],
    *,
    db_url: str | None = None,
    conn_id: str = REGISTRY_CONN_ID,
    schema: str | None = None,
) -> list[str]:
    """:func:`open_investigations` for an async trigger: runs the blocking query in a thread."""
    return await asyncio.to_thread(
        open_investigations, campaign_id, investigation_ids, db_url=db_url, conn_id=conn_id, schema=schema
    )
