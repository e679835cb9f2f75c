"""Every ``IOARCHIVE_*`` setting in one place: name, default, meaning, and where it may be set.

Why one module: a deployment moves from a laptop to a cluster by configuration, so an on-call
engineer must find every knob in one list (docs/deploy.md points here), and no stage may read
the environment its own way.

Lookup order for a setting marked ``variable=True``: the Airflow Variable named as the setting in
lower case (``ioarchive_staging_root``), then the environment variable, then the default.
Settings read inside Spark jobs or before Airflow exists (session memory, drills) are
environment-only (``variable=False``): a Spark child has no Airflow context, and asking the
API server for a Variable there would only add latency and a failure mode.

Nothing here imports Airflow at module level: the DAG file and the CLI import this module.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from ioarchive.errors import ConfigurationError


@dataclass(frozen=True)
class Setting:
    """One configuration knob."""

    name: str
    default: str | None
    help: str
    variable: bool = True
    """May also be set as an Airflow Variable (the lower-case name)."""

    @property
    def variable_name(self) -> str:
        return self.name.lower()


def _s(name: str, default: str | None, help: str, variable: bool = True) -> Setting:
    return Setting(name, default, help, variable)


SETTINGS: dict[str, Setting] = {s.name: s for s in (
    # where a release stages and publishes
    _s("IOARCHIVE_STAGING_ROOT", None, "root folder of the staging folders (default $AIRFLOW_HOME/../staging)"),
    _s("IOARCHIVE_PUBLIC_BUCKET", None, "bucket of the hashed (public) variant"),
    _s("IOARCHIVE_MEMBER_BUCKET", None, "bucket of the unhashed (members) variant"),
    _s("IOARCHIVE_REVIEWERS", "reviewer_a,reviewer_b", "default reviewers of the trigger form (comma-separated)"),
    _s("IOARCHIVE_REGISTRY_POKE_SECONDS", "300", "how often the investigations wait re-checks the registry"),
    # notifications
    _s("IOARCHIVE_SNS_TOPIC_ARN", None, "SNS topic for gate, failure and publication messages (unset: task log)", variable=False),
    _s("IOARCHIVE_SNS_CONN_ID", "aws_default", "Airflow AWS connection used for SNS", variable=False),
    _s("IOARCHIVE_RUNBOOK_URL", "docs/runbook.md", "where failure messages point on-call (the runbook's URL in "
                                                   "your docs site or repository browser)", variable=False),
    # S3 retries (publication)
    _s("IOARCHIVE_S3_RETRY_ATTEMPTS", "8", "tries of one S3 call before publication gives up", variable=False),
    _s("IOARCHIVE_S3_RETRY_BASE_SECONDS", "1", "first wait between S3 tries (doubles each try)", variable=False),
    _s("IOARCHIVE_S3_RETRY_MAX_SECONDS", "30", "longest wait between S3 tries", variable=False),
    # where Spark steps run
    _s("IOARCHIVE_SPARK_BACKEND", None, "local | connect | cluster | emr-serverless (default: connect if "
                                        "IOARCHIVE_SPARK_REMOTE is set, cluster if a non-local "
                                        "IOARCHIVE_SPARK_MASTER is set, else local)"),
    _s("IOARCHIVE_SPARK_MASTER", None, "Spark master URL of the cluster backend"),
    _s("IOARCHIVE_SPARK_REMOTE", None, "Spark Connect server of the connect backend, sc://host:port"),
    _s("IOARCHIVE_LOCAL_MASTER", "local[*]", "Spark master of the local backend"),
    _s("IOARCHIVE_SPARK_CONF", None, 'extra Spark conf as a JSON object, e.g. {"spark.executor.memory": "4g"}'),
    _s("IOARCHIVE_SPARK_SUBMIT", None, "path of spark-submit (default: the one of this environment)", variable=False),
    _s("IOARCHIVE_EMR_APPLICATION_ID", None, "EMR Serverless application"),
    _s("IOARCHIVE_EMR_EXECUTION_ROLE_ARN", None, "EMR Serverless job execution role"),
    _s("IOARCHIVE_EMR_JOBS_URI", None, "s3:// prefix holding a copy of jobs/*.py"),
    _s("IOARCHIVE_EMR_PATH_MAP", None, "JSON object: worker folder -> s3:// prefix, for every path a step reads"),
    _s("IOARCHIVE_EMR_KEY_SECRET", None, "Secrets Manager id/ARN or ssm:<name> of the pseudonymization key"),
    _s("IOARCHIVE_EMR_LOG_URI", None, "s3:// prefix for driver logs"),
    _s("IOARCHIVE_EMR_PYTHON_ARCHIVE", None, "s3:// URI of a packed virtualenv holding ioarchive"),
    _s("IOARCHIVE_EMR_AWS_CONN_ID", "aws_default", "Airflow AWS connection for EMR Serverless"),
    _s("IOARCHIVE_EMR_POLL_SECONDS", "30", "how often a waiting task polls its EMR job run"),
    _s("IOARCHIVE_EMR_TIMEOUT_MINUTES", "720", "EMR job run timeout"),
    # the Spark session (read inside jobs: environment only)
    _s("IOARCHIVE_DRIVER_MEMORY", "4g", "spark.driver.memory", variable=False),
    _s("IOARCHIVE_SHUFFLE_PARTITIONS", "8", "spark.sql.shuffle.partitions", variable=False),
    _s("IOARCHIVE_MAX_PARTITION_BYTES", "32m", "spark.sql.files.maxPartitionBytes (input split size)", variable=False),
    _s("IOARCHIVE_SPARK_JAVA_OPTIONS", "-XX:+UseParallelGC", "driver and executor JVM options", variable=False),
    _s("IOARCHIVE_SPARK_LOG_LEVEL", "WARN", "Spark log level", variable=False),
    # where the package data is (overrides for development)
    _s("IOARCHIVE_JOBS_DIR", None, "folder of the Spark job scripts (default: packaged jobs/)", variable=False),
    _s("IOARCHIVE_TEMPLATES", None, "folder of the Jinja2 templates (default: packaged templates/)", variable=False),
    _s("IOARCHIVE_EXPECTATIONS_DIR", None, "folder of the GX suites (default: packaged expectations/)",
       variable=False),
    _s("IOARCHIVE_GIT_COMMIT", None, "code version recorded in manifests (default: git rev-parse HEAD)",
       variable=False),
    # Airflow users (python -m ioarchive.airflow.access apply; docker-compose's airflow-init)
    _s("IOARCHIVE_AIRFLOW_USERS", None, "user:role,... to create in Airflow (passwords from <USER>_PASSWORD)",
       variable=False),
    # the local development stack (ioarchive.devtools.stack, make up / make demo)
    _s("IOARCHIVE_API_PORT", "8080", "port of the local stack's Airflow API server", variable=False),
    _s("IOARCHIVE_S3_PORT", "0", "port of the local stack's S3 server (0: any free port)", variable=False),
    _s("IOARCHIVE_METADATA_DB", "", "SQLAlchemy URL of the local stack's metadata DB (empty: SQLite)",
       variable=False),
    # fault drills (tests only)
    _s("IOARCHIVE_DRILL_DIR", None, "folder of drill hold points; unset in production", variable=False),
    _s("IOARCHIVE_DRILL_HOLD_SECONDS", "600", "longest a drill hold point waits", variable=False),
)}

Lookup = Callable[[str], "str | None"]
T = TypeVar("T")


def airflow_variable(name: str) -> str | None:
    """An Airflow Variable, or None outside an Airflow task (CLI, Spark child, tests)."""
    try:
        from airflow.sdk import Variable

        return Variable.get(name, default=None)
    except Exception:  # noqa: BLE001 - no Airflow context: the environment decides
        return None


def _setting(name: str) -> Setting:
    try:
        return SETTINGS[name]
    except KeyError:
        raise ConfigurationError(f"{name} is not an ioarchive setting; known: see ioarchive.settings") from None


def get(name: str, env: Mapping[str, str] | None = None) -> str | None:
    """The value of a setting: Airflow Variable (if allowed), environment, default; '' counts as unset."""
    setting = _setting(name)
    if setting.variable and env is None:
        value = airflow_variable(setting.variable_name)
        if value:
            return value
    value = (os.environ if env is None else env).get(name)
    return value if value else setting.default


def _number(name: str, env: Mapping[str, str] | None, cast: Callable[[str], T], kind: str) -> T:
    raw = get(name, env)
    try:
        return cast(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ConfigurationError(f"{name}={raw!r} is not a number{kind}") from None


def get_int(name: str, env: Mapping[str, str] | None = None) -> int:
    return _number(name, env, int, " (a whole number is expected)")


def get_float(name: str, env: Mapping[str, str] | None = None) -> float:
    return _number(name, env, float, "")


def get_json_object(name: str, value: str | None) -> dict[str, str]:
    """A setting holding a JSON object (string values), e.g. IOARCHIVE_SPARK_CONF."""
    if not value:
        return {}
    try:
        data = json.loads(value)
    except json.JSONDecodeError as exc:
        raise ConfigurationError(f"{name} is not valid JSON ({exc}); expected an object like "
                                 '{"spark.executor.memory": "4g"}') from None
    if not isinstance(data, dict):
        raise ConfigurationError(f"{name} must be a JSON object, got {type(data).__name__}")
    return {str(k): str(v) for k, v in data.items()}


def require(name: str, why: str, lookup: Lookup = get) -> str:
    """A setting that must be set for ``why``; the error names both places to set it."""
    value = lookup(name)
    if not value:
        raise ConfigurationError(f"{why} needs {name} (Airflow Variable {name.lower()} or environment "
                                 f"variable {name})")
    return value


# --- derived settings the stages share ---------------------------------------------------------

def staging_root() -> Path:
    """Root folder under which each release version stages its files."""
    value = get("IOARCHIVE_STAGING_ROOT")
    if value:
        return Path(value)
    home = Path(os.environ.get("AIRFLOW_HOME", Path.home() / "airflow"))
    return (home / ".." / "staging").resolve()


AUDIENCE_BUCKET = {"hashed": "IOARCHIVE_PUBLIC_BUCKET", "unhashed": "IOARCHIVE_MEMBER_BUCKET"}


def bucket_for(variant: str) -> str:
    """Bucket of a variant's audience (hashed: public, unhashed: members)."""
    return require(AUDIENCE_BUCKET[variant], f"publishing the {variant} variant")


def default_reviewers() -> list[str]:
    """Reviewers pre-filled in the trigger form."""
    return [r.strip() for r in (get("IOARCHIVE_REVIEWERS", env=os.environ) or "").split(",") if r.strip()]
