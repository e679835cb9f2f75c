"""Spark job: the extract stage of a release (``ioarchive.extract.stage.extract_stage``).

Thin over the library: the arguments are a serialized ``StepSettings``
(``ioarchive.spark.job_settings``), the work is the stage function the DAG task and the CLI
call too. Runs unchanged in-process (the local backend, tests), under
``spark-submit --master <cluster>`` and on EMR Serverless.
"""

from __future__ import annotations

import logging
import sys


def main(argv: list[str] | None = None, spark=None) -> int:
    """Run the job; ``spark`` lets the caller pass its session (otherwise one is created)."""
    from ioarchive.extract.stage import extract_stage
    from ioarchive.spark.job_settings import run_job

    return run_job("extract", extract_stage, argv, spark)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    sys.exit(main())
