"""Run one Spark step of a release (extract, pseudonymize, quality) where configuration says.

Why a module of its own: the DAG's tasks must not know where Spark runs. Moving a deployment
from a laptop to a Spark cluster or to EMR Serverless is a configuration change, not a code
change. Backends (``IOARCHIVE_SPARK_BACKEND``):

- ``local``: a child Python process on the worker (``python -m ioarchive.spark.local
  spark-step <step> '<json>'``) running the step's ``jobs/<step>.py`` in-process, Spark master
  ``IOARCHIVE_LOCAL_MASTER`` (default ``local[*]``);
- ``connect``: the same child as a client of the Spark Connect server ``IOARCHIVE_SPARK_REMOTE``
  (``sc://host:port``), whose JVM outlives the tasks: no JVM start and no cold JIT per step;
- ``cluster``: ``spark-submit --master <IOARCHIVE_SPARK_MASTER> --deploy-mode client
  jobs/<step>.py <args>``: the driver runs on the worker (it reads and writes the staging
  folder, which must be mounted at the same path on the executors), executors on the cluster;
- ``emr-serverless``: a job run on an EMR Serverless application through the Amazon provider's
  ``EmrServerlessHook``: entry point ``<IOARCHIVE_EMR_JOBS_URI>/<step>.py`` on S3, the same
  arguments with local paths mapped to S3 (``IOARCHIVE_EMR_PATH_MAP``); the task waits for it.

Every setting is read as an Airflow Variable (the lower-case name) first, then from the
environment; docs/deploy.md ("Scale-out") lists them.

The pseudonymization key never enters argv, the log or a request: local and cluster get a 0600
file in a private temporary folder (``--key-file``), deleted after the step; EMR Serverless gets
only a reference to a secret (``--key-secret``: a Secrets Manager ARN/name or
``ssm:<parameter name>``) that the job reads with its execution role (:func:`load_key_secret`).

A step's process dies with the task process (``PR_SET_PDEATHSIG``): when a worker is killed,
no orphaned Spark job keeps writing into the staging folder that the retried task rewrites.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

from ioarchive.errors import SparkJobFailed
from ioarchive.spark.cluster import cluster_command
from ioarchive.spark.config import BackendConfig, backend_config
from ioarchive.spark.connect import require_server
from ioarchive.spark.emr_serverless import run_on_emr_serverless
from ioarchive.spark.job_settings import StepSettings, job_script
from ioarchive.spark.local import _child_env, local_command, run_logged
from ioarchive.spark.session import submit_env

log = logging.getLogger(__name__)


def run_spark_step(step: str, step_settings: StepSettings | dict[str, Any], key: bytes | None = None,
                   timeout: float | None = None, config: BackendConfig | None = None) -> None:
    """Run one Spark step on the configured backend and wait for it; raise SparkJobFailed.

    ``key`` (pseudonymize on local/cluster) is written to a 0600 file in a private temporary
    folder, deleted afterwards; EMR Serverless jobs read the configured secret instead.
    """
    config = config or backend_config()
    step_settings = StepSettings.of(step_settings)
    release = step_settings.release_id
    log.info("Spark step %s of %s: backend %s%s", step, release, config.backend,
             f", master {config.master}" if config.backend != "emr-serverless" else "")
    if config.backend == "emr-serverless":
        run_on_emr_serverless(step, step_settings, config, timeout)
        return
    keydir = tempfile.mkdtemp(prefix="ioarchive-key-")  # 0700
    try:
        payload = step_settings
        if key is not None:
            from ioarchive.pseudonymize.pseudonym import write_key_file

            payload = payload.with_key(key_file=str(write_key_file(key, Path(keydir) / "pseudonym.key")))
        env = _child_env(config)
        if config.backend == "connect":
            require_server(config.master)
        if config.backend == "cluster" and job_script(step) is not None:
            cmd = cluster_command(step, payload, config)
            env = submit_env(cmd, env)
        else:
            if config.backend == "cluster":
                log.warning("step %s has no jobs/%s.py: its driver runs in a child process on this worker, "
                            "connected to %s", step, step, config.master)
            cmd = local_command(step, payload)
        try:
            run_logged(cmd, env, f"{step} {release}", timeout)
        except SparkJobFailed as exc:
            raise type(exc)(f"Spark step {step} of release {release} failed on backend {config.backend}: "
                                 f"{exc}") from None
    finally:
        shutil.rmtree(keydir, ignore_errors=True)
