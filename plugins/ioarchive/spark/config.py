"""Which backend runs the Spark steps, and its settings (local, cluster, EMR Serverless).

Backends (``IOARCHIVE_SPARK_BACKEND``; every setting is in ``ioarchive.settings``):

- ``local``: a child Python process on the worker runs ``jobs/<step>.py`` in-process
  (``ioarchive.spark.local``), Spark master ``IOARCHIVE_LOCAL_MASTER`` (default ``local[*]``);
- ``connect``: the same child, its session a client of the Spark Connect server
  ``IOARCHIVE_SPARK_REMOTE`` (``ioarchive.spark.connect``): one warm JVM for every step;
- ``cluster``: ``spark-submit --master <IOARCHIVE_SPARK_MASTER> --deploy-mode client
  jobs/<step>.py`` (``ioarchive.spark.cluster``): the driver on the worker, executors on the cluster;
- ``emr-serverless``: a job run on an EMR Serverless application (``ioarchive.spark.emr_serverless``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ioarchive import settings
from ioarchive.errors import ConfigurationError

BACKENDS: tuple[str, ...] = ("local", "connect", "cluster", "emr-serverless")

Lookup = Callable[[str], "str | None"]





def setting(name: str) -> str | None:
    """A setting (``ioarchive.settings``: Airflow Variable, environment, default)."""
    return settings.get(name)


@dataclass(frozen=True)
class EmrServerlessConfig:
    """Where and as whom a step runs on EMR Serverless."""

    application_id: str
    execution_role_arn: str
    jobs_uri: str
    """``s3://bucket/prefix`` holding a copy of the repository's ``jobs/*.py``."""
    path_map: dict[str, str]
    """Local folder -> S3 prefix, for every path a step is given (staging, campaign)."""
    key_secret: str | None = None
    log_uri: str | None = None
    python_archive: str | None = None
    """``s3://.../env.tar.gz``: a packed virtualenv holding ``ioarchive`` (``venv-pack``)."""
    aws_conn_id: str = "aws_default"
    poll_seconds: float = 30.0
    timeout_minutes: int = 720


@dataclass(frozen=True)
class BackendConfig:
    """Which backend runs the Spark steps, and its parameters."""

    backend: str
    master: str
    spark_conf: dict[str, str] = field(default_factory=dict)
    emr: EmrServerlessConfig | None = None




def _require(get: Lookup, name: str, backend: str) -> str:
    return settings.require(name, f"IOARCHIVE_SPARK_BACKEND={backend}", get)


def backend_config(get: Lookup = setting) -> BackendConfig:
    """Read the backend configuration; raise ConfigurationError naming what is missing.

    Without ``IOARCHIVE_SPARK_BACKEND`` the backend is ``connect`` when ``IOARCHIVE_SPARK_REMOTE``
    names a server, ``cluster`` when ``IOARCHIVE_SPARK_MASTER`` names a non-local master
    (deployments before this setting existed), else ``local``. For ``connect``, ``master`` is the
    server's ``sc://`` URL.
    """
    master = get("IOARCHIVE_SPARK_MASTER") or ""
    remote = (get("IOARCHIVE_SPARK_REMOTE") or "").strip()
    backend = (get("IOARCHIVE_SPARK_BACKEND") or "").strip().lower()
    if not backend:
        backend = "connect" if remote else "cluster" if master and not master.startswith("local") else "local"
    if backend not in BACKENDS:
        raise ConfigurationError(f"IOARCHIVE_SPARK_BACKEND is {backend!r}; expected one of {', '.join(BACKENDS)}")
    spark_conf = settings.get_json_object("IOARCHIVE_SPARK_CONF", get("IOARCHIVE_SPARK_CONF"))
    if backend == "local":
        return BackendConfig("local", get("IOARCHIVE_LOCAL_MASTER") or "local[*]", spark_conf)
    if backend == "connect":
        from ioarchive.spark.connect import host_port

        url = _require(get, "IOARCHIVE_SPARK_REMOTE", backend)
        host_port(url)  # refuse a malformed URL here, not in the child
        return BackendConfig("connect", url, spark_conf)
    if backend == "cluster":
        return BackendConfig("cluster", _require(get, "IOARCHIVE_SPARK_MASTER", backend), spark_conf)
    path_map = settings.get_json_object("IOARCHIVE_EMR_PATH_MAP", _require(get, "IOARCHIVE_EMR_PATH_MAP", backend))
    for local, remote in path_map.items():
        if not remote.startswith("s3://"):
            raise ConfigurationError(f"IOARCHIVE_EMR_PATH_MAP maps {local} to {remote!r}, not an s3:// URI")
    jobs_uri = _require(get, "IOARCHIVE_EMR_JOBS_URI", backend)
    if not jobs_uri.startswith("s3://"):
        raise ConfigurationError(f"IOARCHIVE_EMR_JOBS_URI is {jobs_uri!r}, not an s3:// URI")
    emr = EmrServerlessConfig(
        application_id=_require(get, "IOARCHIVE_EMR_APPLICATION_ID", backend),
        execution_role_arn=_require(get, "IOARCHIVE_EMR_EXECUTION_ROLE_ARN", backend),
        jobs_uri=jobs_uri.rstrip("/"),
        path_map=path_map,
        key_secret=get("IOARCHIVE_EMR_KEY_SECRET"),
        log_uri=get("IOARCHIVE_EMR_LOG_URI"),
        python_archive=get("IOARCHIVE_EMR_PYTHON_ARCHIVE"),
        aws_conn_id=get("IOARCHIVE_EMR_AWS_CONN_ID") or "aws_default",
        poll_seconds=float(get("IOARCHIVE_EMR_POLL_SECONDS") or 30),
        timeout_minutes=int(get("IOARCHIVE_EMR_TIMEOUT_MINUTES") or 720),
    )
    return BackendConfig("emr-serverless", master, spark_conf, emr)
