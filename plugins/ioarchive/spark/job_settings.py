"""The settings object of a Spark step, and the one place its job arguments are built and parsed.

A Spark step (extract, pseudonymize, quality) is called three ways: by a DAG task (through
:mod:`ioarchive.spark.steps`, on the local, cluster or EMR Serverless backend), by the CLI (in
process) and by ``spark-submit jobs/<step>.py`` (the job entry point). All three build one
:class:`StepSettings` and call the same stage function with it; the job's command line is only
its serialized form (:meth:`StepSettings.to_argv` / :meth:`StepSettings.from_argv`), so what the
DAG sends and what the job parses cannot drift apart.

The key is never a field: ``key_file`` (a 0600 file) or ``key_secret`` (a secret reference) say
where the pseudonymize step reads it, ``key_id`` names it in the outputs.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from ioarchive import resources
from ioarchive.errors import EXIT_NOT_RETRYABLE, ConfigurationError, NotRetryable
from ioarchive.schema import CSV_PART_MAX_BYTES, DEFAULT_THRESHOLD

STEPS: tuple[str, ...] = ("extract", "pseudonymize", "quality")


@dataclass(frozen=True)
class StepSettings:
    """Everything a Spark step needs; the same object for the DAG, the CLI and the job."""

    staging_dir: str
    release_id: str
    campaign_dir: str | None = None
    threshold: int = DEFAULT_THRESHOLD
    csv_part_max_bytes: int = CSV_PART_MAX_BYTES
    key_id: str | None = None
    key_file: str | None = None
    key_secret: str | None = None

    @classmethod
    def of(cls, value: StepSettings | Mapping[str, Any]) -> StepSettings:
        """Settings from a settings object or a plain mapping of its fields (unknown keys refused)."""
        if isinstance(value, StepSettings):
            return value
        known = {f.name for f in fields(cls)}
        unknown = set(value) - known
        if unknown:
            raise ConfigurationError(f"unknown Spark step settings {sorted(unknown)}; known: {sorted(known)}")
        data = {k: v for k, v in value.items() if v is not None}
        for name in ("staging_dir", "release_id", "campaign_dir", "key_id", "key_file", "key_secret"):
            if name in data:
                data[name] = str(data[name])
        for name in ("threshold", "csv_part_max_bytes"):
            if name in data:
                data[name] = int(data[name])
        return cls(**data)

    def with_key(self, key_file: str | None = None, key_secret: str | None = None) -> StepSettings:
        return replace(self, key_file=key_file, key_secret=key_secret)

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    # --- the job's command line ------------------------------------------------------------

    def to_argv(self, step: str) -> list[str]:
        """Arguments of ``jobs/<step>.py`` for these settings (what spark-submit and EMR receive)."""
        _check_step(step)
        argv = ["--staging", self.staging_dir, "--release-id", self.release_id]
        if step == "extract":
            argv = ["--campaign", _required(self.campaign_dir, "campaign_dir", step), *argv]
        if step in ("pseudonymize", "quality"):
            argv += ["--threshold", str(int(self.threshold))]
        if step == "quality" and self.campaign_dir:
            argv += ["--campaign", self.campaign_dir]
        if step == "pseudonymize":
            if self.key_file:
                argv += ["--key-file", self.key_file]
            if self.key_secret:
                argv += ["--key-secret", self.key_secret]
            if self.key_id:
                argv += ["--key-id", self.key_id]
        if step in ("extract", "pseudonymize") and self.csv_part_max_bytes != CSV_PART_MAX_BYTES:
            argv += ["--csv-part-max-bytes", str(int(self.csv_part_max_bytes))]
        return argv

    @classmethod
    def from_argv(cls, step: str, argv: list[str] | None) -> StepSettings:
        """Parse ``jobs/<step>.py``'s command line (the inverse of :meth:`to_argv`)."""
        args = parser(step).parse_args(argv)
        return cls(
            staging_dir=args.staging,
            release_id=args.release_id,
            campaign_dir=args.campaign,
            threshold=args.threshold,
            csv_part_max_bytes=args.csv_part_max_bytes,
            key_id=args.key_id,
            key_file=args.key_file,
            key_secret=args.key_secret,
        )


def job_script(step: str) -> Path | None:
    """``jobs/<step>.py`` of the package data (the same file on every backend), None if absent."""
    _check_step(step)
    path = resources.jobs_dir() / f"{step}.py"
    return path if path.exists() else None


def _check_step(step: str) -> None:
    if step not in STEPS:
        raise ConfigurationError(f"unknown Spark step {step!r}; expected one of {', '.join(STEPS)}")


def _required(value: str | None, name: str, step: str) -> str:
    if not value:
        raise ConfigurationError(f"the {step} step needs {name}")
    return value


def parser(step: str) -> argparse.ArgumentParser:
    """The argument parser of ``jobs/<step>.py``."""
    _check_step(step)
    p = argparse.ArgumentParser(prog=f"jobs/{step}.py", description=f"ioarchive Spark step: {step}")
    p.add_argument("--staging", required=True, help="staging folder of the release")
    p.add_argument("--release-id", required=True)
    p.add_argument("--campaign", required=step == "extract",
                   help="raw campaign folder (RELEASE_SPEC section 2)" if step == "extract"
                   else "raw campaign folder (for the 'no deleted post released' check)")
    p.add_argument("--threshold", type=int, default=DEFAULT_THRESHOLD)
    p.add_argument("--csv-part-max-bytes", type=int, default=CSV_PART_MAX_BYTES)
    p.add_argument("--key-file", help="file holding the pseudonymization key (default: Airflow secrets backend)")
    p.add_argument("--key-secret", help="Secrets Manager id or ssm:<name> holding the key (EMR Serverless)")
    p.add_argument("--key-id", help="name of the key, recorded instead of the key (required with a key source)")
    return p


def job_args(step: str, settings: StepSettings | Mapping[str, Any]) -> list[str]:
    """``StepSettings.of(settings).to_argv(step)``: the job arguments of a step."""
    return StepSettings.of(settings).to_argv(step)


StageFunction = Callable[[Any, StepSettings], Any]
"""A stage function: a mapping to report (or a report object with ``success``)."""


def run_job(step: str, stage: StageFunction, argv: list[str] | None = None, spark: Any = None) -> int:
    """The body of every ``jobs/<step>.py``: parse, run the stage function, report.

    Returns 0, or :data:`ioarchive.errors.EXIT_NOT_RETRYABLE` after printing the error when the
    stage refused its input (so the task that launched the job fails without retrying).
    """
    settings = StepSettings.from_argv(step, argv)
    own_session = spark is None
    if own_session:
        from ioarchive.spark.session import get_spark

        spark = get_spark(f"ioarchive-{step}-{settings.release_id}")
    try:
        result = stage(spark, settings)
    except Exception as exc:
        if not isinstance(exc, NotRetryable):
            raise
        logging.getLogger(f"ioarchive.jobs.{step}").error("%s", exc)
        print(f"ioarchive {step} {settings.release_id}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_NOT_RETRYABLE
    summary = dict(result) if isinstance(result, Mapping) else {"success": bool(getattr(result, "success", True))}
    print(json.dumps({"step": step, "release_id": settings.release_id, **summary}, sort_keys=True, default=str))
    return 0
