"""The EMR Serverless backend: a step as a job run through the Amazon provider's ``EmrServerlessHook``.

Entry point ``<IOARCHIVE_EMR_JOBS_URI>/<step>.py`` on S3, the same arguments as every backend with
local paths mapped to S3 (``IOARCHIVE_EMR_PATH_MAP``); the task waits for a terminal state. The
pseudonymization key never enters the request: the job gets only a reference to a secret
(``--key-secret``) that it reads with its execution role.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

from ioarchive.errors import ConfigurationError, SparkJobFailed
from ioarchive.spark.config import BackendConfig
from ioarchive.spark.job_settings import StepSettings, job_script

log = logging.getLogger(__name__)


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
    raise ConfigurationError(
        f"{path} is on the worker's disk, which EMR Serverless cannot read: add its folder to "
        f"IOARCHIVE_EMR_PATH_MAP (mapped now: {', '.join(sorted(path_map)) or 'nothing'})"
    )


def _submit_parameters(conf: dict[str, str]) -> str:
    for key, value in conf.items():
        if any(c.isspace() for c in key + value):
            raise ConfigurationError(f"Spark conf {key}={value!r} contains whitespace, which "
                                          "sparkSubmitParameters cannot carry")
    return " ".join(f"--conf {k}={v}" for k, v in conf.items())


def emr_request(step: str, step_settings: StepSettings | dict[str, Any], config: BackendConfig,
                client_token: str | None = None) -> dict[str, Any]:
    """The ``StartJobRun`` request of a step on EMR Serverless (no key, only its reference)."""
    emr = config.emr
    if emr is None:
        raise ConfigurationError("the emr-serverless backend needs its EMR settings")
    if job_script(step) is None:
        raise SparkJobFailed(f"step {step} has no jobs/{step}.py, so it cannot run on EMR Serverless; "
                             "set IOARCHIVE_SPARK_BACKEND=local or cluster for it")
    step_settings = StepSettings.of(step_settings)
    mapped = replace(
        step_settings,
        staging_dir=remote_path(step_settings.staging_dir, emr.path_map),
        campaign_dir=remote_path(step_settings.campaign_dir, emr.path_map) if step_settings.campaign_dir else None,
        key_file=None,
    )
    if step == "pseudonymize":
        if not emr.key_secret:
            raise ConfigurationError("IOARCHIVE_EMR_KEY_SECRET must name the secret holding the "
                                          "pseudonymization key (Secrets Manager ARN or ssm:<parameter>)")
        mapped = mapped.with_key(key_secret=emr.key_secret)
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
        "name": f"ioarchive-{step}-{step_settings.release_id}",
        "clientToken": client_token or uuid.uuid4().hex,
        "executionTimeoutMinutes": emr.timeout_minutes,
        "jobDriver": {"sparkSubmit": {
            "entryPoint": f"{emr.jobs_uri}/{step}.py",
            "entryPointArguments": mapped.to_argv(step),
            "sparkSubmitParameters": _submit_parameters(conf),
        }},
    }
    if emr.log_uri:
        request["configurationOverrides"] = {
            "monitoringConfiguration": {"s3MonitoringConfiguration": {"logUri": emr.log_uri}}}
    return request


def run_on_emr_serverless(step: str, step_settings: StepSettings, config: BackendConfig,
                          timeout: float | None = None) -> str:
    """Start the step's job run, wait for a terminal state; return the job run id."""
    from airflow.providers.amazon.aws.hooks.emr import EmrServerlessHook

    assert config.emr is not None
    emr = config.emr
    request = emr_request(step, step_settings, config)
    release = step_settings.release_id
    hook = EmrServerlessHook(aws_conn_id=emr.aws_conn_id)
    client = hook.conn
    run_id = client.start_job_run(**request)["jobRunId"]
    where = f"application {emr.application_id} job run {run_id}"
    log.info("Spark step %s of %s started on EMR Serverless, %s (entry point %s; logs %s). To inspect: "
             "aws emr-serverless get-job-run --application-id %s --job-run-id %s", step, release,
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
            raise SparkJobFailed(f"Spark step {step} of {release} ended {state} on EMR Serverless "
                                 f"({where}): {job.get('stateDetails') or 'no details'}; driver logs under "
                                 f"{emr.log_uri or 'the application (no IOARCHIVE_EMR_LOG_URI set)'}")
        if time.monotonic() > deadline:
            raise SparkJobFailed(f"{where} still {state} after the wait limit; it was not cancelled: check it "
                                 "before clearing the task")
        time.sleep(emr.poll_seconds)
