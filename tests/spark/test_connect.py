"""The connect backend: the same stage code as a client of a real Spark Connect server.

One server (a real JVM, ``spark-submit --class SparkConnectServer``, as the local stack starts
it) serves the module. A step run through ``run_spark_step`` on it writes the same table bytes as
the same stage in the test session's classic Spark; a step whose process was SIGKILLed in the
middle of a query leaves that query running on the server, and the next try stops it before it
writes anything.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from ioarchive.errors import ConfigurationError, SparkJobFailed
from ioarchive.spark import connect
from ioarchive.spark.config import BackendConfig, backend_config
from ioarchive.spark.job_settings import StepSettings
from ioarchive.spark.local import _child_env
from ioarchive.spark.session import application_id, connect_server_command
from ioarchive.spark.steps import run_spark_step
from ioarchive.staging import StagingLayout

RELEASE = "conn_202102"


@pytest.fixture(autouse=True)
def _classic_mode_after_each_test():
    """A Connect session marks the whole process as a Connect client (pyspark sets
    ``SPARK_CONNECT_MODE_ENABLED``), after which ``pyspark.sql.functions`` builds Connect columns
    for the classic test session and every child inherits the mark. Tasks never mix the two in
    one process; this test module does, so it takes the mark away again."""
    had = "SPARK_CONNECT_MODE_ENABLED" in os.environ
    yield
    if not had:
        os.environ.pop("SPARK_CONNECT_MODE_ENABLED", None)


def lookup(values: dict[str, str]):
    return values.get


# --- configuration (no server) ------------------------------------------------------------------

def test_connect_backend_is_chosen_by_configuration():
    remote = "sc://spark-connect:15002"
    assert backend_config(lookup({"IOARCHIVE_SPARK_REMOTE": remote})) == BackendConfig("connect", remote)
    # an explicit backend wins over a configured server
    assert backend_config(lookup({"IOARCHIVE_SPARK_REMOTE": remote, "IOARCHIVE_SPARK_BACKEND": "local"})).backend == "local"
    with pytest.raises(ConfigurationError, match="needs IOARCHIVE_SPARK_REMOTE"):
        backend_config(lookup({"IOARCHIVE_SPARK_BACKEND": "connect"}))
    with pytest.raises(ConfigurationError, match="expected sc://<host>:<port>"):
        backend_config(lookup({"IOARCHIVE_SPARK_BACKEND": "connect", "IOARCHIVE_SPARK_REMOTE": "spark://m:7077"}))


def test_only_the_connect_child_is_a_connect_client(monkeypatch):
    monkeypatch.setenv("IOARCHIVE_SPARK_REMOTE", "sc://elsewhere:1")
    monkeypatch.setenv("IOARCHIVE_SPARK_MASTER", "spark://m:7077")
    env = _child_env(BackendConfig("connect", "sc://127.0.0.1:15002"))
    assert env["IOARCHIVE_SPARK_REMOTE"] == "sc://127.0.0.1:15002" and "IOARCHIVE_SPARK_MASTER" not in env
    local = _child_env(BackendConfig("local", "local[2]"))
    assert "IOARCHIVE_SPARK_REMOTE" not in local and local["IOARCHIVE_LOCAL_MASTER"] == "local[2]"


def test_a_missing_server_fails_the_step_naming_where_it_looked(tmp_path):
    from ioarchive.devtools.stack import free_port

    url = f"sc://127.0.0.1:{free_port()}"
    with pytest.raises(SparkJobFailed, match=f"no Spark Connect server answers at {url}.*make up"):
        connect.require_server(url, timeout=0.5)


def test_server_command_listens_on_loopback_with_the_release_settings():
    cmd = connect_server_command(15099, "local[2]", {"spark.driver.memory": "2g"})
    assert cmd[cmd.index("--class") + 1] == connect.SERVER_CLASS
    assert cmd[cmd.index("--master") + 1] == "local[2]"
    confs = dict(cmd[i + 1].split("=", 1) for i, a in enumerate(cmd) if a == "--conf")
    assert confs["spark.connect.grpc.binding.address"] == "127.0.0.1"
    assert confs["spark.connect.grpc.binding.port"] == "15099"
    assert confs["spark.sql.session.timeZone"] == "UTC"
    assert confs["spark.driver.memory"] == "2g"


# --- a real server ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A Spark Connect server on loopback, started as the local stack starts it."""
    from ioarchive.devtools.stack import free_port

    port = free_port()
    url = f"sc://127.0.0.1:{port}"
    folder = tmp_path_factory.mktemp("spark_connect")
    cmd = connect_server_command(port, "local[2]", {"spark.driver.memory": "1g", "spark.log.level": "WARN"})
    with open(folder / "server.log", "wb") as out:
        proc = subprocess.Popen(cmd, cwd=folder, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                env={**os.environ, "PYSPARK_PYTHON": sys.executable, "SPARK_LOCAL_IP": "127.0.0.1"})
    try:
        deadline = time.monotonic() + 240
        while not connect.reachable(url, timeout=1.0):
            assert proc.poll() is None, (folder / "server.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the Spark Connect server did not start"
            time.sleep(0.5)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture(scope="module")
def small_campaign(tmp_path_factory) -> Path:
    from ioarchive.devtools.generate.campaign import generate_campaign

    out = tmp_path_factory.mktemp("conn_campaign") / "campaign"
    generate_campaign(out, seed=11, accounts=15, posts=150, media_bytes=256 * 1024, release_month="2021-02")
    return out


def _digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_step_on_the_server_writes_the_bytes_of_a_classic_session(server, small_campaign, spark, tmp_path):
    from ioarchive.extract.stage import extract_stage

    settings = {}
    for name in ("connect", "classic"):
        layout = StagingLayout(tmp_path / name / RELEASE / "v1", RELEASE)
        layout.quarantine_dir.mkdir(parents=True)
        settings[name] = StepSettings(staging_dir=str(layout.root), release_id=RELEASE,
                                      campaign_dir=str(small_campaign))
    run_spark_step("extract", settings["connect"], config=BackendConfig("connect", server))
    extract_stage(spark, settings["classic"])

    released = {name: _digests(StagingLayout(Path(s.staging_dir), RELEASE).release_dir("unhashed"))
                for name, s in settings.items()}
    assert released["connect"] == released["classic"]
    assert any(name.endswith(".zip") for name in released["connect"])  # the CSV zips are among them
    books = {name: json.loads(StagingLayout(Path(s.staging_dir), RELEASE).reconciliation.read_text())
             for name, s in settings.items()}
    assert books["connect"] == books["classic"] and books["connect"]["balanced"] is True
    assert books["connect"]["tables"]["posts"]["read"] == 150
    # the step closed its session and removed its record
    assert not StagingLayout(Path(settings["connect"].staging_dir), RELEASE).spark_session_record("extract").exists()


KILLED_STEP = """
import sys
from pathlib import Path
from ioarchive.spark import connect
spark = connect.connect_session(sys.argv[1], "ioarchive-test-killed", {})
connect.record_session(spark, Path(sys.argv[2]))
print("recorded", flush=True)
spark.range(0, 50_000_000_000).selectExpr("sum(id * 7 % 13)").collect()  # minutes: killed long before
"""


def test_the_next_try_stops_what_a_killed_step_left_running(server, tmp_path):
    record = StagingLayout(tmp_path / RELEASE / "v1", RELEASE).spark_session_record("extract")
    proc = subprocess.Popen([sys.executable, "-c", KILLED_STEP, server, str(record)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "recorded"
    session_id = record.read_text().strip()
    time.sleep(3)  # the query is running on the server
    proc.kill()
    proc.wait()

    interrupted = connect.stop_previous(server, record)
    assert len(interrupted) == 1  # the orphaned query was still running, and is stopped now
    assert not record.exists()
    assert connect.stop_previous(server, record) == []  # nothing recorded: nothing to do

    # the session is closed on the server: attaching to it again is refused
    from pyspark.sql.connect.client import SparkConnectClient

    client = SparkConnectClient(f"{server}/;session_id={session_id}")
    with pytest.raises(Exception, match="SESSION_CLOSED|SESSION_NOT_FOUND"):
        client.interrupt_all()
    client.close()


def test_application_id_over_connect_and_classic(server, spark):
    remote = connect.connect_session(server, "ioarchive-test-appid", {"spark.sql.shuffle.partitions": "3"})
    try:
        assert connect.is_connect(remote) and not connect.is_connect(spark)
        assert application_id(remote).startswith("local-")
        assert application_id(spark) == spark.sparkContext.applicationId
        assert remote.conf.get("spark.sql.shuffle.partitions") == "3"
        assert remote.conf.get("spark.sql.session.timeZone") == "UTC"
    finally:
        remote.stop()
