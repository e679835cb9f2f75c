"""Roles (plugins/ioarchive/airflow/roles.json) and the gate assignment check, without Airflow running.

What the FAB auth manager demands for each REST call (measured in Airflow 3.3.2 / FAB 3.10.2,
``FabAuthManager.is_authorized_dag``): any write below a DAG (trigger, answer a gate, clear,
mark) needs ``can_edit`` on ``DAGs`` plus the sub-resource's permission; so the sub-resource
permissions are what separate the jobs. tests/e2e/test_roles.py shows them on a running stack.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from ioarchive.airflow import access

READ = "can_read"
EDIT = "can_edit"
CREATE = "can_create"


@pytest.fixture(scope="module")
def roles() -> dict[str, set[tuple[str, str]]]:
    return access.role_permissions()


def holders(roles, action: str, resource: str) -> set[str]:
    return {name for name, perms in roles.items() if (action, resource) in perms}


def test_the_roles_are_the_three_jobs(roles):
    assert set(roles) == {access.ROLE_INTEGRITY, access.ROLE_REVIEWER, access.ROLE_ONCALL}


def test_no_role_reaches_variables_connections_or_configuration(roles):
    """The pseudonymization key is a Variable: only FAB's Admin role may see one."""
    for name, perms in roles.items():
        assert not [p for p in perms if p[1] in access.SECRET_RESOURCES], name


def test_each_write_belongs_to_one_job(roles):
    assert holders(roles, CREATE, "DAG Runs") == {access.ROLE_INTEGRITY}  # trigger
    assert holders(roles, EDIT, "HITL Detail") == {access.ROLE_REVIEWER}  # answer a gate
    assert holders(roles, EDIT, "Task Instances") == {access.ROLE_ONCALL}  # clear, mark
    assert holders(roles, EDIT, "DAG Runs") == {access.ROLE_ONCALL}  # clear or stop a run
    assert not [p for perms in roles.values() for p in perms if p[0] in ("can_delete", "can_create")
                and p != (CREATE, "DAG Runs")]


def test_every_role_reads_what_a_release_shows(roles):
    for name, perms in roles.items():
        for resource in ("DAGs", "DAG Runs", "Task Instances", "Task Logs", "HITL Detail"):
            assert (READ, resource) in perms, (name, resource)
        assert (EDIT, "DAGs") in perms, name  # FAB: needed for the role's one write below the DAG


def test_parse_users_and_password_names():
    assert access.parse_users(" a:ioarchive_reviewer, admin:Admin,") == {"a": "ioarchive_reviewer", "admin": "Admin"}
    with pytest.raises(ValueError):
        access.parse_users("reviewer_a")
    assert access.password_env("reviewer_a") == "REVIEWER_A_PASSWORD"


@dataclass
class FabUser:
    id: int
    username: str

    def get_id(self) -> str:
        return str(self.id)

    def get_name(self) -> str:
        return self.username


def test_a_gate_assigned_by_name_accepts_that_user_only():
    """FAB user ids are row numbers; gates assign reviewers by name (ioarchive.gates.signoffs)."""
    from ioarchive.airflow.auth_manager import IoarchiveFabAuthManager

    check = IoarchiveFabAuthManager.is_authorized_hitl_task
    assert check(None, assigned_users={"reviewer_a"}, user=FabUser(3, "reviewer_a"))
    assert not check(None, assigned_users={"reviewer_a"}, user=FabUser(4, "reviewer_b"))
    assert check(None, assigned_users={"4"}, user=FabUser(4, "reviewer_b"))  # stock behaviour kept


def test_the_roles_file_ships_in_the_wheel():
    import tomllib
    from pathlib import Path

    pyproject = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())
    assert "airflow/roles.json" in pyproject["tool"]["setuptools"]["package-data"]["ioarchive"]
    assert access.ROLES_FILE.exists()


def test_apply_from_the_environment_needs_every_password(monkeypatch, capsys):
    """docker-compose's airflow-init: users from IOARCHIVE_AIRFLOW_USERS, refused before any DB work."""
    monkeypatch.setenv(access.USERS_ENV, "admin:Admin,reviewer_a:ioarchive_reviewer")
    monkeypatch.setenv("ADMIN_PASSWORD", "x" * 16)
    monkeypatch.delenv("REVIEWER_A_PASSWORD", raising=False)
    assert access.main(["apply"]) == 2
    assert "REVIEWER_A_PASSWORD" in capsys.readouterr().err
