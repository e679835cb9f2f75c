"""Run one Spark step of a release (extract, pseudonymize, quality) where configuration says.

Why a module of its own: the DAG's tasks must not know where Spark runs. Moving a deployment
from a laptop to a Spark cluster or to EMR Serverless is a configuration change, not a code
change. Backends (``IOARCHIVE_SPARK_BACKEND``):

- ``local``: a child Python process on the worker (``python -m ioarchive.spark.steps
  spark-step <step> '<json>'``) running the step's ``jobs/<step>.py`` in-process, Spark master
  ``IOARCHIVE_LOCAL_MASTER`` (default ``local[*]``);
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

import json
import logging
import os
import runpy
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ioarchive.spark.session import SparkJobFailed, jobs_dir, spark_submit_command, submit_env

log = logging.getLogger(__name__)

BACKENDS: tuple[str, ...] = ("local", "cluster", "emr-serverless")
STEPS: tuple[str, ...] = ("extract", "pseudonymize", "quality")
CHILD_MODULE = "ioarchive.spark.steps"
SSM_PREFIX = "ssm:"

Lookup = Callable[[str], "str | None"]


class SparkBackendConfigError(ValueError):
    """The Spark backend configuration is incomplete or inconsistent; the message names the setting."""


# --- configuration ---------------------------------------------------------------------------

def setting(name: str) -> str | None:
    """A setting: Airflow Variable ``name.lower()`` first, then environment variable ``name``."""
    from ioarchive.airflow.tasks import _variable  # lazy: release_tasks imports this module

    return _variable(name.lower()) or os.environ.get(name) or None


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


def _json_object(name: str, value: str | None) -> dict[str, str]:
    if not value:
        return {}
    try:
        data = json.loads(value)
    except json.JSONDecodeError as exc:
        raise SparkBackendConfigError(f"{name} is not valid JSON ({exc}); expected an object like "
                                      '{"spark.executor.memory": "4g"}') from None
    if not isinstance(data, dict):
        raise SparkBackendConfigError(f"{name} must be a JSON object, got {type(data).__name__}")
    return {str(k): str(v) for k, v in data.items()}


def _require(get: Lookup, name: str, backend: str) -> str:
    value = get(name)
    if not value:
        raise SparkBackendConfigError(f"IOARCHIVE_SPARK_BACKEND={backend} needs {name} (Airflow Variable "
                                      f"{name.lower()} or environment variable {name})")
    return value


def backend_config(get: Lookup = setting) -> BackendConfig:
    """Read the backend configuration; raise SparkBackendConfigError naming what is missing.

    Without ``IOARCHIVE_SPARK_BACKEND`` the backend is ``cluster`` when ``IOARCHIVE_SPARK_MASTER``
    names a non-local master (deployments before this setting existed), else ``local``.
    """
    master = get("IOARCHIVE_SPARK_MASTER") or ""
    backend = (get("IOARCHIVE_SPARK_BACKEND") or "").strip().lower()
    if not backend:
        backend = "cluster" if master and not master.startswith("local") else "local"
    if backend not in BACKENDS:
        raise SparkBackendConfigError(f"IOARCHIVE_SPARK_BACKEND is {backend!r}; expected one of {', '.join(BACKENDS)}")
    spark_conf = _json_object("IOARCHIVE_SPARK_CONF", get("IOARCHIVE_SPARK_CONF"))
    if backend == "local":
        return BackendConfig("local", get("IOARCHIVE_LOCAL_MASTER") or "local[*]", spark_conf)
    if backend == "cluster":
        return BackendConfig("cluster", _require(get, "IOARCHIVE_SPARK_MASTER", backend), spark_conf)
    path_map = _json_object("IOARCHIVE_EMR_PATH_MAP", _require(get, "IOARCHIVE_EMR_PATH_MAP", backend))
    for local, remote in path_map.items():
        if not remote.startswith("s3://"):
            raise SparkBackendConfigError(f"IOARCHIVE_EMR_PATH_MAP maps {local} to {remote!r}, not an s3:// URI")
    jobs_uri = _require(get, "IOARCHIVE_EMR_JOBS_URI", backend)
    if not jobs_uri.startswith("s3://"):
        raise SparkBackendConfigError(f"IOARCHIVE_EMR_JOBS_URI is {jobs_uri!r}, not an s3:// URI")
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


# --- what a step is given ------------------------------------------------------------------

def job_script(step: str) -> Path | None:
    """``jobs/<step>.py`` if the repository has it (the same file on every backend)."""
    if step not in STEPS:
        raise SparkJobFailed(f"unknown Spark step {step!r}; expected one of {', '.join(STEPS)}")
    path = jobs_dir() / f"{step}.py"
    return path if path.exists() else None


def job_args(step: str, payload: dict[str, Any], key_args: list[str] | None = None) -> list[str]:
    """Command-line arguments of ``jobs/<step>.py`` for a step's payload.

    ``key_args`` is how the pseudonymize job finds the key (``--key-file <path>`` or
    ``--key-secret <reference>``), never the key itself.
    """
    common = ["--staging", str(payload["staging_dir"]), "--release-id", str(payload["release_id"])]
    if step == "extract":
        args = ["--campaign", str(payload["campaign_dir"]), *common]
    elif step == "pseudonymize":
        args = [*common, "--threshold", str(int(payload["threshold"])), *(key_args or []),
                "--key-id", str(payload["key_id"])]
    elif step == "quality":
        args = [*common, "--threshold", str(int(payload["threshold"]))]
        if payload.get("campaign_dir"):
            args += ["--campaign", str(payload["campaign_dir"])]
    else:
        raise SparkJobFailed(f"unknown Spark step {step!r}; expected one of {', '.join(STEPS)}")
    if payload.get("csv_part_max_bytes") and step != "quality":
        args += ["--csv-part-max-bytes", str(int(payload["csv_part_max_bytes"]))]
    return args


# --- local and cluster: a child process on the worker ---------------------------------------

def local_command(step: str, payload: dict[str, Any]) -> list[str]:
    """The local backend's child: this interpreter, the ``spark-step`` entry point."""
    return [sys.executable, "-m", CHILD_MODULE, "spark-step", step, json.dumps(payload, sort_keys=True)]


def cluster_command(step: str, payload: dict[str, Any], config: BackendConfig) -> list[str]:
    """``spark-submit --master <url> --deploy-mode client jobs/<step>.py <args>``.

    The payload's ``key_file`` becomes ``--key-file``; the key itself is never in it.
    """
    key_args = ["--key-file", str(payload["key_file"])] if payload.get("key_file") else []
    conf = {"spark.submit.deployMode": "client", **config.spark_conf}
    return spark_submit_command(step, job_args(step, payload, key_args), master=config.master, conf=conf)


def _die_with_parent() -> None:
    """``preexec_fn``: SIGKILL this child when the task process dies (Linux ``PR_SET_PDEATHSIG``).

    Without it a killed Airflow worker leaves its Spark job running, and the retried task would
    share the staging folder with a writer nobody watches. pyspark's JVM exits when its Python
    parent's pipe closes, so the whole step stops.
    """
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, int(signal.SIGKILL))  # 1 = PR_SET_PDEATHSIG
    except OSError:
        pass


def run_logged(cmd: list[str], env: dict[str, str], label: str, timeout: float | None = None) -> None:
    """Run ``cmd``, stream its output into the task log as ``[label] ...``; raise on failure.

    The exception carries the last 30 lines, so the task's failure message alone says why.
    """
    tail: deque[str] = deque(maxlen=30)
    timed_out = threading.Event()
    with subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          preexec_fn=_die_with_parent) as proc:  # noqa: PLW1509 - prctl only, no locks

        def expire() -> None:
            timed_out.set()
            proc.kill()

        timer = threading.Timer(timeout, expire) if timeout else None
        if timer:
            timer.start()
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                line = line.rstrip("\n")
                tail.append(line)
                log.info("[%s] %s", label, line)
            code = proc.wait()
        finally:
            if timer:
                timer.cancel()
    if timed_out.is_set():
        raise SparkJobFailed(f"{label} did not finish within {timeout:.0f} s and was killed; last lines:\n"
                             + "\n".join(tail))
    if code != 0:
        raise SparkJobFailed(f"{label} exited with code {code}; last lines:\n" + "\n".join(tail))


def _child_env(config: BackendConfig) -> dict[str, str]:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    if config.backend == "local":
        env.pop("IOARCHIVE_SPARK_MASTER", None)  # local means local, whatever the worker's env says
        env["IOARCHIVE_LOCAL_MASTER"] = config.master
    else:
        env["IOARCHIVE_SPARK_MASTER"] = config.master
    return env


# --- EMR Serverless ----------------------------------------------------------------------------

def remote_path(path: str, path_map: dict[str, str]) -> str:
    """The S3 URI EMR Serverless reads for a worker path (longest mapped folder wins)."""
    if path.startswith("s3://"):
        return path
    local = Path(path)
    for folder in sorted(path_map, key=len, reverse=True):
        try:
            rel = local.relative_to(folder)
        except ValueError:
            continue
        base = path_map[folder].rstrip("/")
        return base if rel == Path(".") else f"{base}/{rel.as_posix()}"
    raise SparkBackendConfigError(
        f"{path} is on the worker's disk, which EMR Serverless cannot read: add its folder to "
        f"IOARCHIVE_EMR_PATH_MAP (mapped now: {', '.join(sorted(path_map)) or 'nothing'})"
    )


def _submit_parameters(conf: dict[str, str]) -> str:
    for key, value in conf.items():
        if any(c.isspace() for c in key + value):
            raise SparkBackendConfigError(f"Spark conf {key}={value!r} contains whitespace, which "
                                          "sparkSubmitParameters cannot carry")
    return " ".join(f"--conf {k}={v}" for k, v in conf.items())


def emr_request(step: str, payload: dict[str, Any], config: BackendConfig,
                client_token: str | None = None) -> dict[str, Any]:
    """The ``StartJobRun`` request of a step on EMR Serverless (no key, only its reference)."""
    emr = config.emr
    if emr is None:
        raise SparkBackendConfigError("the emr-serverless backend needs its EMR settings")
    if job_script(step) is None:
        raise SparkJobFailed(f"step {step} has no jobs/{step}.py, so it cannot run on EMR Serverless; "
                             "set IOARCHIVE_SPARK_BACKEND=local or cluster for it")
    mapped = dict(payload)
    for name in ("staging_dir", "campaign_dir"):
        if mapped.get(name):
            mapped[name] = remote_path(str(mapped[name]), emr.path_map)
    key_args: list[str] = []
    if step == "pseudonymize":
        if not emr.key_secret:
            raise SparkBackendConfigError("IOARCHIVE_EMR_KEY_SECRET must name the secret holding the "
                                          "pseudonymization key (Secrets Manager ARN or ssm:<parameter>)")
        key_args = ["--key-secret", emr.key_secret]
    conf = {"spark.sql.session.timeZone": "UTC"}
    if emr.python_archive:
        python = "./environment/bin/python"
        conf.update({
            "spark.archives": f"{emr.python_archive}#environment",
            "spark.emr-serverless.driverEnv.PYSPARK_DRIVER_PYTHON": python,
            "spark.emr-serverless.driverEnv.PYSPARK_PYTHON": python,
            "spark.executorEnv.PYSPARK_PYTHON": python,
        })
    conf.update(config.spark_conf)
    request: dict[str, Any] = {
        "applicationId": emr.application_id,
        "executionRoleArn": emr.execution_role_arn,
        "name": f"ioarchive-{step}-{payload.get('release_id')}",
        "clientToken": client_token or uuid.uuid4().hex,
        "executionTimeoutMinutes": emr.timeout_minutes,
        "jobDriver": {"sparkSubmit": {
            "entryPoint": f"{emr.jobs_uri}/{step}.py",
            "entryPointArguments": job_args(step, mapped, key_args),
            "sparkSubmitParameters": _submit_parameters(conf),
        }},
    }
    if emr.log_uri:
        request["configurationOverrides"] = {
            "monitoringConfiguration": {"s3MonitoringConfiguration": {"logUri": emr.log_uri}}}
    return request


def run_on_emr_serverless(step: str, payload: dict[str, Any], config: BackendConfig,
                          timeout: float | None = None) -> str:
    """Start the step's job run, wait for a terminal state; return the job run id."""
    from airflow.providers.amazon.aws.hooks.emr import EmrServerlessHook

    assert config.emr is not None
    emr = config.emr
    request = emr_request(step, payload, config)
    hook = EmrServerlessHook(aws_conn_id=emr.aws_conn_id)
    client = hook.conn
    run_id = client.start_job_run(**request)["jobRunId"]
    where = f"application {emr.application_id} job run {run_id}"
    log.info("Spark step %s of %s started on EMR Serverless, %s (entry point %s; logs %s). To inspect: "
             "aws emr-serverless get-job-run --application-id %s --job-run-id %s", step, payload.get("release_id"),
             where, request["jobDriver"]["sparkSubmit"]["entryPoint"], emr.log_uri or "not configured",
             emr.application_id, run_id)
    deadline = time.monotonic() + (timeout or (emr.timeout_minutes + 10) * 60)
    state = ""
    while True:
        job = client.get_job_run(applicationId=emr.application_id, jobRunId=run_id)["jobRun"]
        if job["state"] != state:
            state = job["state"]
            log.info("EMR Serverless %s: %s", where, state)
        if state in hook.JOB_SUCCESS_STATES:
            return str(run_id)
        if state in hook.JOB_FAILURE_STATES:
            raise SparkJobFailed(f"Spark step {step} of {payload.get('release_id')} ended {state} on EMR Serverless "
                                 f"({where}): {job.get('stateDetails') or 'no details'}; driver logs under "
                                 f"{emr.log_uri or 'the application (no IOARCHIVE_EMR_LOG_URI set)'}")
        if time.monotonic() > deadline:
            raise SparkJobFailed(f"{where} still {state} after the wait limit; it was not cancelled: check it "
                                 "before clearing the task")
        time.sleep(emr.poll_seconds)


def load_key_secret(reference: str, session: Any = None) -> bytes:
    """The pseudonymization key from a secret reference (for jobs on EMR Serverless).

    ``ssm:<name>``: an SSM SecureString parameter; otherwise a Secrets Manager secret id or ARN
    (``SecretBinary`` or ``SecretString``). Errors name the reference, never the value.
    """
    from ioarchive.pseudonymize.pseudonym import MIN_KEY_BYTES, KeyUnavailable

    if session is None:
        import boto3

        session = boto3.session.Session()
    try:
        if reference.startswith(SSM_PREFIX):
            resp = session.client("ssm").get_parameter(Name=reference[len(SSM_PREFIX):], WithDecryption=True)
            raw: bytes = resp["Parameter"]["Value"].encode("utf-8")
        else:
            resp = session.client("secretsmanager").get_secret_value(SecretId=reference)
            raw = resp["SecretBinary"] if resp.get("SecretBinary") is not None else resp["SecretString"].encode("utf-8")
    except Exception as exc:  # noqa: BLE001 - botocore raises many types; the message must stay key-free
        raise KeyUnavailable(f"cannot read the pseudonymization key from {reference}: {type(exc).__name__}") from None
    key = raw.strip()
    if len(key) < MIN_KEY_BYTES:
        raise KeyUnavailable(f"the pseudonymization key in {reference} is shorter than {MIN_KEY_BYTES} bytes")
    return key


# --- the entry point the DAG's tasks call ---------------------------------------------------

def run_spark_step(step: str, args: dict[str, Any], key: bytes | None = None, timeout: float | None = None,
                   config: BackendConfig | None = None) -> None:
    """Run one Spark step on the configured backend and wait for it; raise SparkJobFailed.

    ``key`` (pseudonymize on local/cluster) is written to a 0600 file in a private temporary
    folder, deleted afterwards; EMR Serverless jobs read the configured secret instead.
    """
    config = config or backend_config()
    release = args.get("release_id")
    log.info("Spark step %s of %s: backend %s%s", step, release, config.backend,
             f", master {config.master}" if config.backend != "emr-serverless" else "")
    if config.backend == "emr-serverless":
        run_on_emr_serverless(step, dict(args), config, timeout)
        return
    keydir = tempfile.mkdtemp(prefix="ioarchive-key-")  # 0700
    try:
        payload = dict(args)
        if key is not None:
            from ioarchive.pseudonymize.pseudonym import write_key_file

            payload["key_file"] = str(write_key_file(key, Path(keydir) / "pseudonym.key"))
        env = _child_env(config)
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
            raise SparkJobFailed(f"Spark step {step} of release {release} failed on backend {config.backend}: "
                                 f"{exc}") from None
    finally:
        shutil.rmtree(keydir, ignore_errors=True)


def _spark_step_main(step: str, payload: dict[str, Any]) -> int:
    """The ``spark-step`` child: run ``jobs/<step>.py`` in this process (library call if none)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from ioarchive.spark.session import get_spark

    script = job_script(step)
    spark = get_spark(f"ioarchive-{step}-{payload.get('release_id')}")
    try:
        if script is not None:
            key_args = ["--key-file", str(payload["key_file"])] if payload.get("key_file") else []
            main = runpy.run_path(str(script), run_name=f"ioarchive_job_{step}")["main"]
            return int(main(job_args(step, payload, key_args), spark=spark) or 0)
        raise SparkJobFailed(f"no job script {jobs_dir() / (step + '.py')} for step {step}")
    finally:
        spark.stop()


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "spark-step":
        sys.exit(_spark_step_main(sys.argv[2], json.loads(sys.argv[3])))
    sys.exit(f"usage: python -m {CHILD_MODULE} spark-step <step> '<json args>'")
