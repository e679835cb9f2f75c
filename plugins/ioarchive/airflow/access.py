"""Who may do what in Airflow: roles (FAB auth manager) and the named users of a deployment.

Least privilege (issue #17), one role per job:

- ``ioarchive_integrity`` (the integrity team, ``trigger_user``): reads the DAG, runs, tasks,
  logs and gates; triggers runs (FAB needs ``can_edit`` on DAGs for that, which also allows
  pausing). Cannot answer a gate, clear, or mark a task.
- ``ioarchive_reviewer``: reads the same; answers the gates assigned to them (``HITL Detail``
  ``can_edit``; FAB also demands ``can_edit`` on DAGs for any write below a DAG). Cannot trigger,
  clear, mark a task success or change a run.
- ``ioarchive_oncall``: reads the same; clears and reruns tasks and runs (``Task Instances`` and
  ``DAG Runs`` ``can_edit``). Cannot trigger or answer a gate.
- ``Admin`` (FAB's own): everything, including connections and Variables.

No role but Admin has any permission on ``Variables``, ``Connections`` or ``Configurations``:
the pseudonymization key (Variable ``ioarchive_pseudonym_key``) is out of every other user's
reach, in the REST API and in the UI. The roles are data (``roles.json`` next to this file, the
format of ``airflow roles import``); the local stack and docker-compose's ``airflow-init`` both
apply them with ``python -m ioarchive.airflow.access apply``.

Nothing here imports Airflow at module level (the CLI imports this module); ``apply`` runs in
a process configured like the api-server (same metadata DB).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path

ROLES_FILE = Path(__file__).with_name("roles.json")

AUTH_MANAGER = "ioarchive.airflow.auth_manager.IoarchiveFabAuthManager"
"""``[core] auth_manager`` of every deployment (the FAB auth manager; see auth_manager.py)."""

ROLE_INTEGRITY = "ioarchive_integrity"
ROLE_REVIEWER = "ioarchive_reviewer"
ROLE_ONCALL = "ioarchive_oncall"
ROLE_ADMIN = "Admin"

USERS_ENV = "IOARCHIVE_AIRFLOW_USERS"
"""``user:role,user:role`` (docker-compose's airflow-init); each password from ``<USER>_PASSWORD``."""

MEMBER_DATA_ROLES = frozenset({ROLE_REVIEWER, ROLE_ADMIN})
"""Roles that may read the unhashed (member) variant in the release browser: reviewers approve
what members receive, administrators run the deployment. Everyone else signed in (integrity
team, on-call, FAB's Viewer) sees the public (hashed) variant only."""


def may_read_member_data(user: object) -> bool:
    """Whether an Airflow user (FAB: ``roles``; simple auth manager: ``role``) holds a member-data role."""
    names = {str(getattr(r, "name", r)) for r in (getattr(user, "roles", None) or [])}
    names.add(str(getattr(user, "role", None) or ""))
    return bool(names & MEMBER_DATA_ROLES) or "ADMIN" in {n.upper() for n in names}


SECRET_RESOURCES = ("Variables", "Connections", "Configurations")
"""Resources only an administrator may see: the pseudonymization key is a Variable."""


def role_permissions(path: Path = ROLES_FILE) -> dict[str, set[tuple[str, str]]]:
    """Role name -> {(action, resource)} from ``roles.json``."""
    perms: dict[str, set[tuple[str, str]]] = {}
    for entry in json.loads(path.read_text()):
        actions = [a for a in entry.get("action", "").split(",") if a]
        perms.setdefault(entry["name"], set()).update((a, entry["resource"]) for a in actions)
    return perms


def parse_users(spec: str) -> dict[str, str]:
    """``"a:role1, b:role2"`` -> {user: role}."""
    users = {}
    for item in (part.strip() for part in spec.split(",")):
        if not item:
            continue
        user, _, role = item.partition(":")
        if not user or not role:
            raise ValueError(f"{USERS_ENV}: {item!r} is not user:role")
        users[user.strip()] = role.strip()
    return users


def password_env(user: str) -> str:
    """Environment variable holding ``user``'s password (``reviewer_a`` -> ``REVIEWER_A_PASSWORD``)."""
    return f"{user.upper()}_PASSWORD"


def apply(users: Mapping[str, tuple[str, str]], roles_file: Path = ROLES_FILE) -> list[str]:
    """Create or update the roles of ``roles_file`` and the users ``{name: (role, password)}``.

    Idempotent: a role's permissions are set to exactly the file's (unlike ``airflow roles
    import``, which skips existing roles), an existing user gets the given role and password.
    Returns what was done, one line each.
    """
    from airflow.providers.fab.auth_manager.cli_commands.utils import get_application_builder

    wanted = role_permissions(roles_file)
    done: list[str] = []
    with get_application_builder() as appbuilder:
        sm = appbuilder.sm
        sm.sync_roles()  # FAB's resources, actions and default roles (Admin...) exist from here on
        for name, perms in wanted.items():
            if any(resource in SECRET_RESOURCES for _action, resource in perms):
                raise ValueError(f"role {name} may not hold a permission on {SECRET_RESOURCES}")
            role = sm.find_role(name) or sm.add_role(name)
            current = {(p.action.name, p.resource.name): p for p in role.permissions}
            for key in sorted(perms - current.keys()):
                sm.add_permission_to_role(role, sm.create_permission(*key))
            for key in sorted(current.keys() - perms):
                sm.remove_permission_from_role(role, current[key])
            done.append(f"role {name}: {len(perms)} permissions")
        for user, (role_name, password) in users.items():
            role = sm.find_role(role_name)
            if role is None:
                raise ValueError(f"user {user}: unknown role {role_name}")
            existing = sm.find_user(username=user)
            if existing is None:
                if not sm.add_user(user, user, "ioarchive", f"{user}@ioarchive.invalid", role, password):
                    raise RuntimeError(f"could not create Airflow user {user}")
                done.append(f"user {user}: created with role {role_name}")
            else:
                existing.roles = [role]
                sm.update_user(existing)
                sm.reset_password(existing.id, password)
                done.append(f"user {user}: role {role_name}, password reset")
    return done


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ioarchive.airflow.access", description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("apply",))
    parser.add_argument("--users-json", help="file {user: {role, password}} (0600); default: "
                        f"${USERS_ENV} with passwords from <USER>_PASSWORD")
    args = parser.parse_args(argv)
    if args.users_json:
        data = json.loads(Path(args.users_json).read_text())
        users = {u: (v["role"], v["password"]) for u, v in data.items()}
    else:
        from ioarchive import settings

        spec = parse_users(settings.get(USERS_ENV) or "")
        missing = [password_env(u) for u in spec if not os.environ.get(password_env(u))]
        if missing:
            print(f"access: set {', '.join(missing)}", file=sys.stderr)
            return 2
        users = {u: (role, os.environ[password_env(u)]) for u, role in spec.items()}
    for line in apply(users):
        print(f"access: {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
