"""The pseudonymize stage: unhashed work tables -> hashed work tables and hashed table files.

The one composition of the step, called by the DAG task (through ``jobs/pseudonymize.py`` on the
configured Spark backend), by ``ioarchive extract`` and by ``spark-submit jobs/pseudonymize.py``.
The key comes from the source the settings name (file, secret reference, Airflow secrets
backend) and is dropped as soon as the pseudonyms are written.
"""

from __future__ import annotations

from typing import Any

from ioarchive.devtools import drills
from ioarchive.pseudonymize.pseudonym import load_key
from ioarchive.spark.job_settings import StepSettings


def pseudonymize_stage(spark: Any, settings: StepSettings) -> dict[str, Any]:
    """Pseudonymize below the threshold, then write the hashed variant's tables."""
    from ioarchive.pseudonymize.variant import pseudonymize_release
    from ioarchive.tables.writers import write_release_tables

    key, key_id = load_key(settings.key_file, settings.key_id, settings.key_secret)
    record = pseudonymize_release(spark, settings.staging_dir, settings.release_id, key, key_id,
                                  threshold=settings.threshold)
    del key
    drills.hold(drills.PSEUDONYMIZE)  # work tables written, release tables not yet
    files = write_release_tables(spark, settings.staging_dir, settings.release_id, "hashed",
                                 csv_part_max_bytes=settings.csv_part_max_bytes)
    return {"pseudonymization": record, "hashed": files["counts"]}
