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
