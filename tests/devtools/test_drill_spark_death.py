"""Drill: the extract Spark job dies (SIGKILL) while it writes the release tables; then a rerun.

The job runs as the cluster backend runs it (``spark-submit --master local[2] jobs/extract.py``)
and is killed, JVM and Python driver together, the moment the users CSV zip appears in
``release/unhashed/``: work tables, reconciliation and the accounts table are written, the posts
table is being built. Then the step is rerun the way the DAG reruns it (``run_spark_step`` on the local
backend). The rerun's outputs must be byte-identical to an undisturbed run of the same job, and
the killed run must not have left anything that claims to be finished.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import time
import zipfile
from pathlib import Path

import pytest
from ioarchive.spark.cluster import cluster_command
from ioarchive.spark.config import BackendConfig
from ioarchive.spark.job_settings import job_args
from ioarchive.spark.local import run_logged
from ioarchive.spark.session import submit_env
from ioarchive.spark.steps import run_spark_step
from ioarchive.staging import StagingLayout

RELEASE = "drill_202102"
MASTER = os.environ.get("IOARCHIVE_LOCAL_MASTER", "local[2]")


def outputs(root: Path) -> dict[str, str]:
    """SHA-256 of every file the extract step is responsible for (Spark's own work Parquet aside:
    its part-file names are random by design; the release tables are what gets published)."""
    layout = StagingLayout(root, RELEASE)
    files = [layout.reconciliation, layout.quarantine_records, layout.work_files("unhashed")]
    files += sorted(p for p in layout.release_dir("unhashed").rglob("*") if p.is_file())
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def looks_finished_but_is_not(root: Path) -> list[str]:
    """Files at their final names whose content is incomplete, and completion markers that lie."""
    layout = StagingLayout(root, RELEASE)
    problems = []
    release = layout.release_dir("unhashed")
    for path in sorted(release.rglob("*.zip")) if release.exists() else []:
        try:
            with zipfile.ZipFile(path) as zf:
                bad = zf.testzip()
            if bad:
                problems.append(f"{path.relative_to(root)}: entry {bad} is corrupt")
        except zipfile.BadZipFile as exc:
            problems.append(f"{path.relative_to(root)}: truncated zip ({exc})")
    for path in sorted(release.rglob("*.parquet")) if release.exists() else []:
        import pyarrow.parquet as pq

        try:
            pq.ParquetFile(path)
        except Exception as exc:  # noqa: BLE001 - any read failure means a partial file
            problems.append(f"{path.relative_to(root)}: unreadable Parquet ({type(exc).__name__})")
    files_json = layout.work_files("unhashed")
    if files_json.exists():
        listed = set(json.loads(files_json.read_text())["files"])
        present = {p.relative_to(release).as_posix() for p in release.rglob("*")
                   if p.is_file() and p.suffix in (".zip", ".parquet")}  # the table files (not stats, charts)
        if listed != present:
            problems.append(f"{files_json.relative_to(root)} lists files that are not all there")
    return problems


@pytest.fixture(scope="module")
def undisturbed(spark, campaign_dir, tmp_path_factory) -> Path:
    """The same job, run to completion in-process (the session's Spark)."""
    import runpy

    from ioarchive.resources import jobs_dir

    staging = tmp_path_factory.mktemp("undisturbed") / "staging"
    main = runpy.run_path(str(jobs_dir() / "extract.py"), run_name="drill_extract")["main"]
    payload = {"campaign_dir": str(campaign_dir), "staging_dir": str(staging), "release_id": RELEASE}
    assert main(job_args("extract", payload), spark=spark) == 0
    return staging


def test_extract_killed_mid_write_then_rerun_gives_identical_bytes(undisturbed, campaign_dir, tmp_path):
    staging = tmp_path / "staging"
    payload = {"campaign_dir": str(campaign_dir), "staging_dir": str(staging), "release_id": RELEASE}
    cmd = cluster_command("extract", payload, BackendConfig("cluster", MASTER, {"spark.driver.memory": "1g"}))
    watched = StagingLayout(staging, RELEASE).release_dir("unhashed")

    def writing() -> bool:
        # The writers finish a table under temporary names, then rename it: once the accounts
        # table is in place, the posts table is being built (a Spark job, then its files).
        return watched.exists() and any(watched.glob(f"{RELEASE}_users_csv_unhashed*.zip"))

    job = subprocess.Popen(cmd, env=submit_env(cmd), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           start_new_session=True)
    try:
        deadline = time.monotonic() + 600
        while not writing() and job.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        assert job.poll() is None, f"the job ended ({job.returncode}) before the kill: it wrote the posts table too fast to interrupt"
        assert writing(), "the job wrote no accounts table within 10 minutes"
        os.killpg(job.pid, signal.SIGKILL)  # the JVM and the Python driver it started
        job.wait(30)
    finally:
        if job.poll() is None:
            os.killpg(job.pid, signal.SIGKILL)
            job.wait(30)
    assert job.returncode == -signal.SIGKILL

    killed_state = looks_finished_but_is_not(staging)
    assert not StagingLayout(staging, RELEASE).work_files("unhashed").exists(), \
        "files.json (the writer's completion record) exists after the writer was killed"

    run_spark_step("extract", payload, config=BackendConfig("local", MASTER))

    assert outputs(staging) == outputs(undisturbed)
    assert looks_finished_but_is_not(staging) == []
    leftovers = [p.relative_to(staging).as_posix() for p in staging.rglob("*")
                 if p.name.startswith("_tmp_") or p.name == "_temporary"]
    assert leftovers == []
    # Nothing the killed writer left claims to be finished (temp names until complete, files.json last).
    assert killed_state == []


def test_run_logged_kills_a_step_that_exceeds_its_timeout(tmp_path):
    """The step timeout on-call can rely on: the child is killed and the error says so."""
    from ioarchive.spark.session import SparkJobFailed

    with pytest.raises(SparkJobFailed, match="did not finish within 1 s and was killed"):
        run_logged(["sleep", "30"], dict(os.environ), "timeout-check", timeout=1)
