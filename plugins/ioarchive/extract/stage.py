"""The extract stage: raw campaign -> unhashed work tables, quarantine, books, unhashed table files.

The one composition of the step, called by the DAG task (through ``jobs/extract.py`` on the
configured Spark backend), by ``ioarchive extract`` and by ``spark-submit jobs/extract.py``.
"""

from __future__ import annotations

from typing import Any

from ioarchive.devtools import drills
from ioarchive.spark.job_settings import StepSettings


def extract_stage(spark: Any, settings: StepSettings) -> dict[str, Any]:
    """Extract the campaign, then write the unhashed variant's CSV and Parquet tables."""
    from ioarchive.extract.extraction import extract_campaign
    from ioarchive.tables.writers import write_release_tables

    books = extract_campaign(spark, settings.campaign_dir, settings.staging_dir, settings.release_id)
    drills.hold(drills.EXTRACT)  # work tables written, release tables not yet
    files = write_release_tables(spark, settings.staging_dir, settings.release_id, "unhashed",
                                 csv_part_max_bytes=settings.csv_part_max_bytes)
    return {"reconciliation": books, "unhashed": files["counts"]}
