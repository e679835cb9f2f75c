"""One way to get a Spark session for the release jobs.

Local by default (``local[*]``); a cluster master comes from configuration
(``IOARCHIVE_SPARK_MASTER`` or ``spark-submit --master``), a Spark Connect server from
``IOARCHIVE_SPARK_REMOTE`` (``ioarchive.spark.connect``), never from code changes. Which
backend runs a DAG step (local, cluster, EMR Serverless) is decided in ``ioarchive.spark.steps``.
The UI is off and the session time zone is UTC, so timestamps in outputs do not depend on the host.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ioarchive import resources, settings
from ioarchive.errors import SparkJobFailed

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


JVM_OPTIONS = "-XX:+UseParallelGC"
"""Driver and executor JVM options (``IOARCHIVE_SPARK_JAVA_OPTIONS`` overrides). The release
jobs are batch work, so the throughput collector: measured on the 1 M-post quality gate, the
executors' run time fell from 90.3 s to 79.4 s (12 %) against Java 17's default G1."""


def local_or_cluster_master() -> str:
    """The master of a session started directly (environment only: a Spark process has no Airflow context)."""
    return (settings.get("IOARCHIVE_SPARK_MASTER", env=os.environ)
            or settings.get("IOARCHIVE_LOCAL_MASTER", env=os.environ) or "local[*]")


def launch_conf() -> dict[str, str]:
    """Settings a Spark driver must have when its JVM starts (a session or ``spark-submit``)."""
    java_options = settings.get("IOARCHIVE_SPARK_JAVA_OPTIONS") or JVM_OPTIONS
    return {
        "spark.sql.session.timeZone": "UTC",
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.driver.memory": settings.get("IOARCHIVE_DRIVER_MEMORY"),
        "spark.driver.extraJavaOptions": java_options,
        "spark.executor.extraJavaOptions": java_options,
    }


def get_spark(app_name: str = "ioarchive", extra_conf: dict[str, str] | None = None) -> SparkSession:
    """Return (or reuse) a Spark session configured for release jobs."""
    from pyspark.sql import SparkSession

    from ioarchive.spark import connect

    under_submit = os.environ.get("SPARK_SUBMIT_CONF_MASTER") or os.environ.get("PYSPARK_GATEWAY_PORT")
    remote = connect.remote_url()
    if remote and not under_submit and "spark.master" not in (extra_conf or {}):
        return connect.connect_session(remote, app_name, {**session_conf(), **(extra_conf or {})})
    builder = SparkSession.builder.appName(app_name)
    if not under_submit and "spark.master" not in (extra_conf or {}):
        # Under spark-submit ``--master`` is authoritative (the backend chose it); only a
        # session started directly picks the configured or the local master.
        master = local_or_cluster_master()
        builder = builder.master(master)
    conf = {**launch_conf(), **session_conf()}
    conf.update(extra_conf or {})
    for key, value in conf.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel(settings.get("IOARCHIVE_SPARK_LOG_LEVEL") or "WARN")
    return spark


def session_conf() -> dict[str, str]:
    """SQL settings of every release session, set per session (also on a shared Connect server).

    Input splits of 32 MiB, not Spark's 128: a 1 M-post campaign's 620 MB of posts made 5
    splits, i.e. 3 waves on 2 cores with one core idle in the last, and every later scan of the
    scratch Parquet inherited it. At 32 MiB the 1 M-post extraction benchmark took 124 s
    instead of 136 (docs/performance.md, "Extraction"); a cluster's many cores cut splits
    smaller than this anyway (Spark caps a split at the input's bytes per core).
    """
    return {
        "spark.sql.shuffle.partitions": settings.get("IOARCHIVE_SHUFFLE_PARTITIONS"),
        "spark.sql.files.maxPartitionBytes": settings.get("IOARCHIVE_MAX_PARTITION_BYTES"),
        "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    }


def application_id(spark: SparkSession) -> str:
    """The Spark application a session runs in (recorded in run facts); works over Spark Connect too."""
    return str(spark.conf.get("spark.app.id", "unknown"))


# --- running a job script in its own JVM (spark-submit) --------------------------------------

def spark_submit_binary() -> str:
    """``IOARCHIVE_SPARK_SUBMIT``, else the venv's ``spark-submit``, else the one on PATH."""
    env = settings.get("IOARCHIVE_SPARK_SUBMIT")
    if env:
        return env
    beside = Path(sys.executable).parent / "spark-submit"
    if beside.exists():
        return str(beside)
    found = shutil.which("spark-submit")
    if not found:
        raise SparkJobFailed("spark-submit not found: install pyspark in this environment or set IOARCHIVE_SPARK_SUBMIT")
    return found


def spark_submit_command(
    job: str, args: list[str], master: str | None = None, conf: dict[str, str] | None = None
) -> list[str]:
    """The ``spark-submit`` command line running ``jobs/<job>.py args`` on ``master``.

    ``master`` defaults to ``IOARCHIVE_SPARK_MASTER``, then ``IOARCHIVE_LOCAL_MASTER``, then
    ``local[*]``; the job script is the same whatever the master. Never put secrets in ``args``:
    pass files (e.g. ``--key-file``).
    """
    script = resources.jobs_dir() / f"{job}.py"
    if not script.exists():
        raise SparkJobFailed(f"no job script {script}: expected one of {sorted(p.stem for p in resources.jobs_dir().glob('*.py'))}")
    master = master or local_or_cluster_master()
    cmd = [spark_submit_binary(), "--master", master, "--name", f"ioarchive-{job}"]
    for key, value in {**launch_conf(), **(conf or {})}.items():
        cmd += ["--conf", f"{key}={value}"]
    return [*cmd, str(script), *args]


def connect_server_command(port: int, master: str, conf: dict[str, str] | None = None,
                   host: str = "127.0.0.1") -> list[str]:
    """``spark-submit --class SparkConnectServer``: the server of the local stack and docker-compose.

    The same launch settings as every ioarchive driver (``session.launch_conf``: UTC, no UI
    progress, driver memory, JVM options), plus the server's own (``ioarchive.spark.connect.SERVER_CONF``).
    """
    from ioarchive.spark.connect import SERVER_CLASS, SERVER_CONF

    merged = {
        **launch_conf(),
        "spark.ui.enabled": "false",
        "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
        **SERVER_CONF,
        "spark.connect.grpc.binding.address": host,
        "spark.connect.grpc.binding.port": str(port),
        **(conf or {}),
    }
    cmd = [spark_submit_binary(), "--class", SERVER_CLASS, "--master", master, "--name", "ioarchive-spark-connect"]
    for key, value in merged.items():
        if value is not None:
            cmd += ["--conf", f"{key}={value}"]
    return cmd


def submit_env(cmd: list[str], env: dict[str, str] | None = None) -> dict[str, str]:
    """Environment of a ``spark-submit`` child built by :func:`spark_submit_command`.

    The executors' Python is this interpreter (same library, same pins), and
    ``SPARK_SUBMIT_CONF_MASTER`` tells :func:`get_spark` inside the job that the master is set
    already, so the job's own default (``local[*]``) never overrides ``--master``.
    """
    child_env = {**os.environ, **(env or {})}
    child_env.setdefault("PYSPARK_PYTHON", sys.executable)
    child_env["SPARK_SUBMIT_CONF_MASTER"] = cmd[cmd.index("--master") + 1]
    return child_env


def run_job(
    job: str,
    args: list[str],
    master: str | None = None,
    conf: dict[str, str] | None = None,
    env: dict[str, str] | None = None,
    timeout: float | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a job with ``spark-submit`` in a separate JVM; raise SparkJobFailed on failure."""
    cmd = spark_submit_command(job, args, master, conf)
    proc = subprocess.run(cmd, capture_output=True, text=True, env=submit_env(cmd, env), timeout=timeout, check=False)
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or "").splitlines()[-30:])
        raise SparkJobFailed(
            f"spark job {job!r} exited with {proc.returncode} (command: {' '.join(cmd[:3])} ... {cmd[-len(args)-1]}); "
            f"last log lines:\n{tail}"
        )
    return proc


submit_job = run_job
"""Name used in docs/architecture.md."""
