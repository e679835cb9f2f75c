"""The cluster backend: ``spark-submit --master <url> --deploy-mode client jobs/<step>.py <args>``.

The driver runs on the worker (it reads and writes the staging folder, which must be mounted at the
same path on the executors); executors run on the cluster. The process is run and logged like
the local backend's child (``ioarchive.spark.local.run_logged``).
"""

from __future__ import annotations

from typing import Any

from ioarchive.spark.config import BackendConfig
from ioarchive.spark.job_settings import StepSettings, job_args
from ioarchive.spark.session import spark_submit_command


def cluster_command(step: str, step_settings: StepSettings | dict[str, Any], config: BackendConfig) -> list[str]:
    """``spark-submit --master <url> --deploy-mode client jobs/<step>.py <args>``.

    The settings' ``key_file`` becomes ``--key-file``; the key itself is never in them.
    """
    conf = {"spark.submit.deployMode": "client", **config.spark_conf}
    return spark_submit_command(step, job_args(step, step_settings), master=config.master, conf=conf)
