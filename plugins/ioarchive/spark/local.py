"""The local backend: a Spark step in a child process of the task, on the worker.

The connect backend runs the same child, a client of a Spark Connect server (``ioarchive.spark.connect``).

The child (``python -m ioarchive.spark.local spark-step <step> '<settings json>'``) runs the step's
``jobs/<step>.py`` in-process with its own Spark session, so the Airflow worker never hosts a JVM
across tasks. The child dies with the task process (``PR_SET_PDEATHSIG``): a killed worker
leaves no orphaned Spark job writing into the staging folder that the retried task rewrites.
:func:`run_logged` is also how the cluster backend's ``spark-submit`` runs.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import runpy
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

from ioarchive.errors import EXIT_NOT_RETRYABLE, SparkJobFailed, SparkStepRejected
from ioarchive.resources import jobs_dir
from ioarchive.spark.config import BackendConfig
from ioarchive.spark.job_settings import StepSettings, job_script
from ioarchive.staging import StagingLayout

log = logging.getLogger(__name__)

CHILD_MODULE = "ioarchive.spark.local"


def local_command(step: str, step_settings: StepSettings | dict[str, Any]) -> list[str]:
    """The local backend's child: this interpreter, the ``spark-step`` entry point."""
    payload = StepSettings.of(step_settings).to_dict()
    return [sys.executable, "-m", CHILD_MODULE, "spark-step", step, json.dumps(payload, sort_keys=True)]


def _die_with_parent(parent: int) -> None:
    """``preexec_fn``: SIGKILL this child when the task process ``parent`` dies (Linux ``PR_SET_PDEATHSIG``).

    Without it a killed Airflow worker leaves its Spark job running, and the retried task would
    share the staging folder with a writer nobody watches. pyspark's JVM exits when its Python
    parent's pipe closes, so the whole step stops. A parent that died between the fork and the
    ``prctl`` sends no signal (seen on a loaded machine): the child then sees a new parent and exits.
    """
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, int(signal.SIGKILL))  # 1 = PR_SET_PDEATHSIG
    except OSError:
        return
    if os.getppid() != parent:
        os._exit(1)


def run_logged(cmd: list[str], env: dict[str, str], label: str, timeout: float | None = None) -> None:
    """Run ``cmd``, stream its output into the task log as ``[label] ...``; raise on failure.

    The exception carries the last 30 lines, so the task's failure message alone says why.
    """
    tail: deque[str] = deque(maxlen=30)
    timed_out = threading.Event()
    with subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          preexec_fn=functools.partial(_die_with_parent, os.getpid())) as proc:  # noqa: PLW1509 - prctl only, no locks

        def expire() -> None:
            timed_out.set()
            proc.kill()

        timer = threading.Timer(timeout, expire) if timeout else None
        if timer:
            timer.start()
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                line = line.rstrip("\n")
                tail.append(line)
                log.info("[%s] %s", label, line)
            code = proc.wait()
        finally:
            if timer:
                timer.cancel()
    if timed_out.is_set():
        raise SparkJobFailed(f"{label} did not finish within {timeout:.0f} s and was killed; last lines:\n"
                             + "\n".join(tail))
    if code == EXIT_NOT_RETRYABLE:
        raise SparkStepRejected(f"{label} refused its input (a retry gives the same result); last lines:\n"
                                + "\n".join(tail))
    if code != 0:
        raise SparkJobFailed(f"{label} exited with code {code}; last lines:\n" + "\n".join(tail))


def _child_env(config: BackendConfig) -> dict[str, str]:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.pop("IOARCHIVE_SPARK_REMOTE", None)  # only the connect backend's child is a Connect client
    if config.backend == "local":
        env.pop("IOARCHIVE_SPARK_MASTER", None)  # local means local, whatever the worker's env says
        env["IOARCHIVE_LOCAL_MASTER"] = config.master
    elif config.backend == "connect":
        env.pop("IOARCHIVE_SPARK_MASTER", None)
        env["IOARCHIVE_SPARK_REMOTE"] = config.master
    else:
        env["IOARCHIVE_SPARK_MASTER"] = config.master
    return env


def _spark_step_main(step: str, payload: dict[str, Any]) -> int:
    """The ``spark-step`` child: run ``jobs/<step>.py`` in this process (library call if none)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from ioarchive.spark import connect
    from ioarchive.spark.session import get_spark

    script = job_script(step)
    step_settings = StepSettings.of(payload)
    remote = connect.remote_url()
    record = StagingLayout(Path(step_settings.staging_dir), step_settings.release_id).spark_session_record(step)
    if remote:
        connect.stop_previous(remote, record)
    started = time.monotonic()
    spark = get_spark(f"ioarchive-{step}-{step_settings.release_id}")
    log.info("Spark session for %s ready in %.1f s (%s)", step, time.monotonic() - started,
             f"Spark Connect server {remote}" if remote else "JVM started for this step")
    if remote:
        connect.record_session(spark, record)
    try:
        if script is not None:
            main = runpy.run_path(str(script), run_name=f"ioarchive_job_{step}")["main"]
            return int(main(step_settings.to_argv(step), spark=spark) or 0)
        raise SparkJobFailed(f"no job script {jobs_dir() / (step + '.py')} for step {step}")
    finally:
        spark.stop()
        if remote:
            record.unlink(missing_ok=True)



if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "spark-step":
        sys.exit(_spark_step_main(sys.argv[2], json.loads(sys.argv[3])))
    sys.exit(f"usage: python -m {CHILD_MODULE} spark-step <step> '<json args>'")
