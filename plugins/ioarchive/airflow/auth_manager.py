"""The auth manager of every ioarchive deployment: Airflow's FAB auth manager, gates assigned by user name.

A release gate names its reviewers by user name (``reviewers`` in the run's conf, HITL
``assigned_users`` ``{"id": name, "name": name}``): that is what the integrity team types and
what the audit trail shows. The FAB auth manager's user id is the row number of ``ab_user``,
which differs per deployment, so the stock check (``user.get_id() in assigned_users``) would
refuse every reviewer. FAB user names are unique, so a gate assigned to a name may be answered
by the user of that name (and, as before, by the user of that id).
"""

from __future__ import annotations

from airflow.providers.fab.auth_manager.fab_auth_manager import FabAuthManager


class IoarchiveFabAuthManager(FabAuthManager):
    """``FabAuthManager`` whose HITL assignment check accepts the user name as well as the id."""

    def is_authorized_hitl_task(self, *, assigned_users: set[str], user) -> bool:  # type: ignore[override]
        return user.get_name() in assigned_users or str(user.get_id()) in assigned_users
