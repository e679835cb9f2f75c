"""Running stacks for the end-to-end modules.

Starting Airflow and S3 costs about a minute on 2 cores, so the SQLite stack is started once per
session and shared: the whole-release module uses it last (its drill run) and the browser module
after that. The PostgreSQL stack lives only as long as the release module needs it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from ioarchive.devtools.stack import Stack
from support.stacks import start_stack, stop_stack


@pytest.fixture(scope="session")
def sqlite_stack(tmp_path_factory) -> Iterator[Stack]:
    """The SQLite stack shared by the e2e modules (each triggers its own runs)."""
    stack = start_stack(tmp_path_factory.mktemp("stack_sqlite"), "sqlite")
    try:
        yield stack
    finally:
        stop_stack(stack)
