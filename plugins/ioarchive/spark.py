"""One way to get a Spark session for the release jobs.

Local by default (``local[*]``); a cluster master comes from configuration
(``IOARCHIVE_SPARK_MASTER`` or ``spark-submit --master``), never from code changes. The UI is
off and the session time zone is UTC, so timestamps in outputs do not depend on the host.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def get_spark(app_name: str = "ioarchive", extra_conf: dict[str, str] | None = None) -> SparkSession:
    """Return (or reuse) a Spark session configured for release jobs."""
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.appName(app_name)
    master = os.environ.get("IOARCHIVE_SPARK_MASTER")
    if master:
        builder = builder.master(master)
    elif not os.environ.get("SPARK_SUBMIT_CONF_MASTER") and "spark.master" not in (extra_conf or {}):
        # Under spark-submit the master is already set; only default it when run directly.
        builder = builder.master(os.environ.get("IOARCHIVE_LOCAL_MASTER", "local[*]"))
    conf = {
        "spark.sql.session.timeZone": "UTC",
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.shuffle.partitions": os.environ.get("IOARCHIVE_SHUFFLE_PARTITIONS", "8"),
        "spark.driver.memory": os.environ.get("IOARCHIVE_DRIVER_MEMORY", "4g"),
        "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    }
    conf.update(extra_conf or {})
    for key, value in conf.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel(os.environ.get("IOARCHIVE_SPARK_LOG_LEVEL", "WARN"))
    return spark
