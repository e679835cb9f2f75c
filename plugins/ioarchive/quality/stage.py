"""The quality stage: every expectation suite on both variants (RELEASE_SPEC 7.3).

The one composition of the step, called by the DAG task (through ``jobs/quality.py`` on the
configured Spark backend), by ``ioarchive validate`` and by ``spark-submit jobs/quality.py``.
It writes ``validation/<variant>/summary.json``; whether the gate passed is decided by the
task that reads them (``ioarchive.airflow.tasks.quality_gate``).
"""

from __future__ import annotations

from typing import Any

from ioarchive.spark.job_settings import StepSettings


def quality_stage(spark: Any, settings: StepSettings, **options: Any) -> Any:
    """Validate both variants; ``options`` are the CLI's extras (suites, expectations folder)."""
    from ioarchive.quality.runner import validate_release

    return validate_release(spark, settings.staging_dir, settings.release_id, settings.threshold,
                            campaign_dir=settings.campaign_dir, **options)
