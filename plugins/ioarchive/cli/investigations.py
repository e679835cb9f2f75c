"""``ioarchive investigations``: list, update and migrate the investigations registry (gate 2)."""

from __future__ import annotations

import argparse
import logging

HELP = "list/set investigation status in the registry (gate 2), or migrate its schema"

log = logging.getLogger("ioarchive.gates.registry")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db-url", default=None,
                        help="SQLAlchemy URL (default: Airflow connection ioarchive_registry, e.g. from env "
                             "AIRFLOW_CONN_IOARCHIVE_REGISTRY)")
    parser.add_argument("--conn-id", default="ioarchive_registry", help="Airflow connection id of the registry")
    parser.add_argument("--schema", default=None, help="PostgreSQL schema holding the tables (default: search path)")
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = sub.add_parser("list", help="list investigations")
    listing.add_argument("--campaign", default=None, help="only this campaign id")
    setter = sub.add_parser("set", help="record the status of one investigation")
    setter.add_argument("--campaign", required=True)
    setter.add_argument("--investigation", required=True)
    setter.add_argument("--status", required=True, choices=("open", "concluded"))
    setter.add_argument("--by", required=True, help="who records it (audit trail)")
    sub.add_parser("migrate", help="create or upgrade the registry tables (idempotent)")


def run(args: argparse.Namespace) -> int:
    from ioarchive.gates.registry import Registry, RegistryError

    try:
        registry = (Registry(args.db_url, schema=args.schema) if args.db_url
                    else Registry.from_connection(args.conn_id, schema=args.schema))
        with registry:
            if args.action == "migrate":
                applied = registry.migrate()
                versions = registry.applied_versions()
                print(f"registry {registry.where}: schema version {max(versions)}"
                      + (f" (applied {', '.join(map(str, applied))})" if applied else " (up to date)"))
            elif args.action == "set":
                row = registry.set_status(args.campaign, args.investigation, args.status, args.by)
                print(_format_row(row))
            else:
                rows = registry.list(args.campaign)
                print(f"{'campaign':<24} {'investigation':<20} {'status':<10} {'concluded_at':<25} updated_by")
                for row in rows:
                    print(_format_row(row))
                if not rows:
                    print("(no investigations recorded" + (f" for {args.campaign})" if args.campaign else ")"))
    except (RegistryError, ValueError) as exc:
        log.error("%s", exc)
        return 2
    return 0


def _format_row(row) -> str:  # noqa: ANN001 - Investigation, imported lazily
    concluded = row.concluded_at.isoformat() if row.concluded_at else "-"
    return f"{row.campaign_id:<24} {row.investigation_id:<20} {row.status:<10} {concluded:<25} {row.updated_by}"
