"""Shared fixtures: an isolated Airflow home, a Spark session, generated campaigns.

Airflow reads its configuration at import time, so the environment is set here, before any
test module imports airflow.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
_AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="ioarchive-airflow-home-"))
os.environ.setdefault("AIRFLOW_HOME", str(_AIRFLOW_HOME))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(REPO / "dags"))
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "True")
os.environ.setdefault("IOARCHIVE_LOCAL_MASTER", "local[2]")
os.environ.setdefault("IOARCHIVE_DRIVER_MEMORY", "2g")
os.environ.setdefault("IOARCHIVE_SHUFFLE_PARTITIONS", "4")
os.environ.setdefault("PYSPARK_PYTHON", str(Path(os.sys.executable)))


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def spark():
    """One local Spark session for the whole test run (starting one costs ~5 s)."""
    from ioarchive.spark.session import get_spark

    session = get_spark("ioarchive-tests")
    yield session
    session.stop()


@pytest.fixture(scope="session")
def campaign_dir(tmp_path_factory) -> Path:
    """A default-size generated campaign (clean, fixed seed), shared read-only by tests."""
    from ioarchive.devtools.generate.campaign import generate_campaign

    out = tmp_path_factory.mktemp("campaign") / "campaign"
    generate_campaign(out, seed=7, accounts=120, posts=3000, media_bytes=12 * 1024**2)
    return out


@pytest.fixture(scope="session")
def invalid_campaign_dir(tmp_path_factory) -> Path:
    """A generated campaign with every kind of bad record injected (see its sidecar)."""
    from ioarchive.devtools.generate.campaign import generate_campaign

    out = tmp_path_factory.mktemp("campaign_invalid") / "campaign"
    generate_campaign(out, seed=11, accounts=80, posts=2000, media_bytes=6 * 1024**2, invalid_rate=0.02)
    return out


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """``make test``'s two workers (``-n 2 --dist loadscope``): the end-to-end tests on one, in order.

    The end-to-end modules share their stacks and runs (a session's SQLite stack, the release
    that the retraction builds on), so they form one scope that one worker runs in collection
    order; they mostly wait for Airflow (task starts, gates, sensors), so the other modules
    (each a scope of its own, as in plain ``loadscope``: module fixtures are built once) run on
    the other worker meanwhile. (xdist's ``loadgroup`` marks do not take
    with pytest 9.2, whose node ids can no longer be rewritten.) Plain ``pytest`` is serial.
    """
    if config.getvalue("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class EndToEndApart(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return "e2e" if nodeid.startswith("tests/e2e/") else nodeid.split("::", 1)[0]

    return EndToEndApart(config, log)
