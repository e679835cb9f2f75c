"""Scale-out by configuration: the same Spark step on local, cluster and EMR Serverless backends.

Each backend's command or request is built from configuration only and checked: master, conf,
script, arguments, and never the key in argv. EMR Serverless goes through the Amazon provider's
hook to a real moto_server over HTTP, and the job run moto recorded is asserted. A fake
``spark-submit`` (a real process) shows the key file a cluster job gets: 0600, gone afterwards.
Real Spark runs of these paths are in tests/devtools/test_drill_spark_death.py.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from ioarchive.errors import ConfigurationError, SparkJobFailed
from ioarchive.pseudonymize.pseudonym import load_key_secret
from ioarchive.resources import jobs_dir
from ioarchive.spark.cluster import cluster_command
from ioarchive.spark.config import BackendConfig, backend_config
from ioarchive.spark.emr_serverless import emr_request, remote_path
from ioarchive.spark.job_settings import StepSettings, job_args
from ioarchive.spark.local import local_command
from ioarchive.spark.steps import run_spark_step
from support.s3 import CREDENTIALS, MotoServer

KEY = b"k3y-" + b"s" * 40
RELEASE = "scale_202102"
ROLE = "arn:aws:iam::123456789012:role/ioarchive-emr"
PAYLOAD = {"staging_dir": "/data/staging/scale_202102/v1", "release_id": RELEASE, "threshold": 5000,
           "key_id": "k2026"}


def lookup(values: dict[str, str]):
    return values.get


def emr_settings(application_id: str = "00app") -> dict[str, str]:
    return {
        "IOARCHIVE_SPARK_BACKEND": "emr-serverless",
        "IOARCHIVE_EMR_APPLICATION_ID": application_id,
        "IOARCHIVE_EMR_EXECUTION_ROLE_ARN": ROLE,
        "IOARCHIVE_EMR_JOBS_URI": "s3://ioarchive-code/jobs/",
        "IOARCHIVE_EMR_PATH_MAP": json.dumps({"/data/staging": "s3://ioarchive-staging/staging",
                                              "/data/campaigns": "s3://ioarchive-raw/campaigns"}),
        "IOARCHIVE_EMR_KEY_SECRET": "arn:aws:secretsmanager:us-east-1:123456789012:secret:ioarchive-key",
        "IOARCHIVE_EMR_LOG_URI": "s3://ioarchive-logs/emr/",
        "IOARCHIVE_EMR_PYTHON_ARCHIVE": "s3://ioarchive-code/ioarchive-env.tar.gz",
        "IOARCHIVE_SPARK_CONF": json.dumps({"spark.executor.memory": "8g"}),
    }


def test_backend_is_chosen_by_configuration():
    assert backend_config(lookup({})) == BackendConfig("local", "local[*]")
    assert backend_config(lookup({"IOARCHIVE_LOCAL_MASTER": "local[2]"})).master == "local[2]"
    # deployments that only set a master (docker-compose) keep running on it
    inferred = backend_config(lookup({"IOARCHIVE_SPARK_MASTER": "spark://spark-master:7077"}))
    assert (inferred.backend, inferred.master) == ("cluster", "spark://spark-master:7077")
    forced_local = backend_config(lookup({"IOARCHIVE_SPARK_BACKEND": "local",
                                          "IOARCHIVE_SPARK_MASTER": "spark://spark-master:7077"}))
    assert forced_local == BackendConfig("local", "local[*]")
    emr = backend_config(lookup(emr_settings()))
    assert emr.backend == "emr-serverless" and emr.emr is not None
    assert (emr.emr.application_id, emr.emr.execution_role_arn, emr.emr.jobs_uri) == (
        "00app", ROLE, "s3://ioarchive-code/jobs")
    assert emr.spark_conf == {"spark.executor.memory": "8g"}


@pytest.mark.parametrize(("values", "message"), [
    ({"IOARCHIVE_SPARK_BACKEND": "yarn"}, "expected one of local, connect, cluster, emr-serverless"),
    ({"IOARCHIVE_SPARK_BACKEND": "cluster"}, "needs IOARCHIVE_SPARK_MASTER"),
    ({**emr_settings(), "IOARCHIVE_EMR_APPLICATION_ID": ""}, "needs IOARCHIVE_EMR_APPLICATION_ID"),
    ({**emr_settings(), "IOARCHIVE_EMR_JOBS_URI": "/repo/jobs"}, "not an s3:// URI"),
    ({**emr_settings(), "IOARCHIVE_SPARK_CONF": "[1]"}, "IOARCHIVE_SPARK_CONF must be a JSON object"),
])
def test_incomplete_configuration_names_the_setting(values, message):
    with pytest.raises(ConfigurationError, match=message):
        backend_config(lookup(values))


def test_settings_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("IOARCHIVE_SPARK_BACKEND", "cluster")
    monkeypatch.setenv("IOARCHIVE_SPARK_MASTER", "spark://spark-master:7077")
    assert backend_config() == BackendConfig("cluster", "spark://spark-master:7077")


def test_local_backend_runs_the_step_in_a_child_python():
    payload = {**PAYLOAD, "key_file": "/tmp/ioarchive-key-x/pseudonym.key"}
    cmd = local_command("pseudonymize", payload)
    assert cmd[:5] == [sys.executable, "-m", "ioarchive.spark.local", "spark-step", "pseudonymize"]
    assert StepSettings.of(json.loads(cmd[5])) == StepSettings.of(payload)
    assert KEY.decode() not in " ".join(cmd)


def test_cluster_backend_spark_submits_the_job_script():
    config = BackendConfig("cluster", "spark://spark-master:7077", {"spark.executor.memory": "8g"})
    payload = {**PAYLOAD, "key_file": "/tmp/ioarchive-key-x/pseudonym.key"}
    cmd = cluster_command("pseudonymize", payload, config)
    assert Path(cmd[0]).name == "spark-submit"
    assert cmd[cmd.index("--master") + 1] == "spark://spark-master:7077"
    confs = dict(cmd[i + 1].split("=", 1) for i, a in enumerate(cmd) if a == "--conf")
    assert confs["spark.submit.deployMode"] == "client"
    assert confs["spark.executor.memory"] == "8g"
    assert confs["spark.sql.session.timeZone"] == "UTC"
    script = jobs_dir() / "pseudonymize.py"
    assert cmd[cmd.index(str(script)) + 1:] == [
        "--staging", "/data/staging/scale_202102/v1", "--release-id", RELEASE, "--threshold", "5000",
        "--key-file", "/tmp/ioarchive-key-x/pseudonym.key", "--key-id", "k2026"]
    extract = cluster_command("extract", {**PAYLOAD, "campaign_dir": "/data/campaigns/x"}, config)
    assert extract[-7:] == [str(jobs_dir() / "extract.py"), "--campaign", "/data/campaigns/x",
                            "--staging", "/data/staging/scale_202102/v1", "--release-id", RELEASE]


FAKE_SUBMIT = """#!{python}
import json, os, stat, sys
args = sys.argv[1:]
key_file = args[args.index("--key-file") + 1]
st = os.stat(key_file)
with open(os.environ["FAKE_SUBMIT_RECORD"], "w") as fh:
    json.dump({{"argv": args, "mode": stat.S_IMODE(st.st_mode), "key": open(key_file, "rb").read().hex(),
               "dir_mode": stat.S_IMODE(os.stat(os.path.dirname(key_file)).st_mode),
               "master_env": os.environ.get("SPARK_SUBMIT_CONF_MASTER")}}, fh)
print("fake spark-submit done")
"""


def test_cluster_step_gets_the_key_as_a_private_file_removed_afterwards(tmp_path, monkeypatch):
    submit = tmp_path / "spark-submit"
    submit.write_text(FAKE_SUBMIT.format(python=sys.executable))
    submit.chmod(0o755)
    record = tmp_path / "record.json"
    monkeypatch.setenv("IOARCHIVE_SPARK_SUBMIT", str(submit))
    monkeypatch.setenv("FAKE_SUBMIT_RECORD", str(record))

    run_spark_step("pseudonymize", PAYLOAD, key=KEY, config=BackendConfig("cluster", "spark://spark-master:7077"))

    seen = json.loads(record.read_text())
    argv = " ".join(seen["argv"])
    assert KEY.decode() not in argv and KEY.hex() not in argv
    assert (seen["mode"], seen["dir_mode"], bytes.fromhex(seen["key"])) == (0o600, 0o700, KEY)
    assert seen["master_env"] == "spark://spark-master:7077"
    key_file = Path(seen["argv"][seen["argv"].index("--key-file") + 1])
    assert not key_file.exists() and not key_file.parent.exists()


def test_a_failed_step_names_backend_release_and_log_tail(tmp_path, monkeypatch):
    submit = tmp_path / "spark-submit"
    submit.write_text(f"#!{sys.executable}\nimport sys\nprint('Py4JJavaError: boom on executor 3')\nsys.exit(3)\n")
    submit.chmod(0o755)
    monkeypatch.setenv("IOARCHIVE_SPARK_SUBMIT", str(submit))
    with pytest.raises(SparkJobFailed) as err:
        run_spark_step("extract", {**PAYLOAD, "campaign_dir": "/c"}, config=BackendConfig("cluster", "spark://m:7077"))
    message = str(err.value)
    assert f"Spark step extract of release {RELEASE} failed on backend cluster" in message
    assert "exited with code 3" in message and "boom on executor 3" in message


def test_step_process_dies_with_the_task_process(tmp_path):
    """A SIGKILLed task leaves no Spark child writing on: PR_SET_PDEATHSIG."""
    script = ("import os, sys\nfrom ioarchive.spark.local import run_logged\n"
              "run_logged(['sleep', '300'], dict(os.environ), 'orphan-check')\n")
    task = subprocess.Popen([sys.executable, "-c", script], start_new_session=True)
    try:
        children: list[int] = []
        deadline = time.monotonic() + 60
        while not children and time.monotonic() < deadline:
            time.sleep(0.1)
            path = Path(f"/proc/{task.pid}/task/{task.pid}/children")
            children = [int(p) for p in path.read_text().split()] if path.exists() else []
        assert children, "the task process started no child"
        os.kill(task.pid, signal.SIGKILL)
        task.wait(10)
        deadline = time.monotonic() + 10
        while Path(f"/proc/{children[0]}").exists() and time.monotonic() < deadline:
            status = Path(f"/proc/{children[0]}/status").read_text() if Path(f"/proc/{children[0]}").exists() else ""
            if "State:\tZ" in status:
                break
            time.sleep(0.1)
        alive = Path(f"/proc/{children[0]}/status")
        assert not alive.exists() or "State:\tZ" in alive.read_text(), "the step outlived its task"
    finally:
        if task.poll() is None:
            os.killpg(task.pid, signal.SIGKILL)


# --- EMR Serverless ----------------------------------------------------------------------------

def test_emr_paths_are_mapped_or_refused():
    mapping = {"/data/staging": "s3://b/staging", "/data": "s3://other/data"}
    assert remote_path("/data/staging/x_202102/v1", mapping) == "s3://b/staging/x_202102/v1"
    assert remote_path("/data/campaigns/x", mapping) == "s3://other/data/campaigns/x"
    assert remote_path("s3://raw/campaigns/x", mapping) == "s3://raw/campaigns/x"
    with pytest.raises(ConfigurationError, match="EMR Serverless cannot read: add its folder to IOARCHIVE_EMR_PATH_MAP"):
        remote_path("/home/me/campaign", mapping)


def test_emr_request_carries_a_secret_reference_never_the_key():
    config = backend_config(lookup(emr_settings()))
    request = emr_request("pseudonymize", PAYLOAD, config, client_token="t1")
    driver = request["jobDriver"]["sparkSubmit"]
    assert driver["entryPoint"] == "s3://ioarchive-code/jobs/pseudonymize.py"
    assert driver["entryPointArguments"] == [
        "--staging", "s3://ioarchive-staging/staging/scale_202102/v1", "--release-id", RELEASE,
        "--threshold", "5000", "--key-secret", emr_settings()["IOARCHIVE_EMR_KEY_SECRET"], "--key-id", "k2026"]
    params = driver["sparkSubmitParameters"].split()
    assert params[1::2] == [
        "spark.sql.session.timeZone=UTC",
        "spark.archives=s3://ioarchive-code/ioarchive-env.tar.gz#environment",
        "spark.emr-serverless.driverEnv.PYSPARK_DRIVER_PYTHON=./environment/bin/python",
        "spark.emr-serverless.driverEnv.PYSPARK_PYTHON=./environment/bin/python",
        "spark.executorEnv.PYSPARK_PYTHON=./environment/bin/python",
        "spark.executor.memory=8g"]
    assert set(params[0::2]) == {"--conf"}
    assert KEY.decode() not in json.dumps(request)


def test_emr_refuses_a_step_without_a_job_script(tmp_path, monkeypatch):
    (tmp_path / "extract.py").write_text("")
    monkeypatch.setenv("IOARCHIVE_JOBS_DIR", str(tmp_path))
    config = backend_config(lookup(emr_settings()))
    with pytest.raises(SparkJobFailed, match="no jobs/quality.py, so it cannot run on EMR Serverless"):
        emr_request("quality", PAYLOAD, config)
    assert emr_request("extract", {**PAYLOAD, "campaign_dir": "/data/campaigns/c"}, config)["name"] == (
        f"ioarchive-extract-{RELEASE}")


@pytest.fixture(scope="module")
def aws_server():
    with MotoServer() as server:
        yield server


def test_emr_serverless_job_run_through_the_provider_hook(aws_server, monkeypatch, caplog):
    import boto3

    emr = boto3.client("emr-serverless", endpoint_url=aws_server.endpoint_url, **CREDENTIALS)
    app = emr.create_application(name="ioarchive", releaseLabel="emr-7.5.0", type="SPARK")["applicationId"]
    monkeypatch.setenv("AIRFLOW_CONN_IOARCHIVE_EMR_TEST", json.dumps({
        "conn_type": "aws", "login": "testing", "password": "testing",
        "extra": {"endpoint_url": aws_server.endpoint_url, "region_name": "us-east-1"}}))
    settings = {**emr_settings(app), "IOARCHIVE_EMR_AWS_CONN_ID": "ioarchive_emr_test",
                "IOARCHIVE_EMR_POLL_SECONDS": "0.2"}
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    caplog.set_level("INFO", logger="ioarchive.spark.steps")

    args = {**PAYLOAD, "campaign_dir": "/data/campaigns/scale"}
    run_spark_step("extract", args)
    run_spark_step("pseudonymize", PAYLOAD, key=KEY)

    runs = sorted(emr.list_job_runs(applicationId=app)["jobRuns"], key=lambda r: r["name"])
    assert [r["name"] for r in runs] == [f"ioarchive-extract-{RELEASE}", f"ioarchive-pseudonymize-{RELEASE}"]
    recorded = [emr.get_job_run(applicationId=app, jobRunId=r["id"])["jobRun"] for r in runs]
    for job in recorded:
        assert (job["applicationId"], job["executionRole"], job["state"]) == (app, ROLE, "SUCCESS")
        overrides = job["configurationOverrides"]["monitoringConfiguration"]["s3MonitoringConfiguration"]
        assert overrides["logUri"] == "s3://ioarchive-logs/emr/"
        assert KEY.decode() not in json.dumps(job, default=str)
    extract, pseudo = (job["jobDriver"]["sparkSubmit"] for job in recorded)
    assert extract["entryPoint"] == "s3://ioarchive-code/jobs/extract.py"
    assert extract["entryPointArguments"] == [
        "--campaign", "s3://ioarchive-raw/campaigns/scale", "--staging", "s3://ioarchive-staging/staging/scale_202102/v1",
        "--release-id", RELEASE]
    assert pseudo["entryPoint"] == "s3://ioarchive-code/jobs/pseudonymize.py"
    assert pseudo["entryPointArguments"][-4:] == ["--key-secret", settings["IOARCHIVE_EMR_KEY_SECRET"],
                                                  "--key-id", "k2026"]
    assert "spark.executor.memory=8g" in pseudo["sparkSubmitParameters"]
    started = [r.getMessage() for r in caplog.records if "started on EMR Serverless" in r.getMessage()]
    assert len(started) == 2 and f"--application-id {app} --job-run-id" in started[0]


def test_job_reads_the_key_from_secrets_manager_or_ssm(aws_server, monkeypatch):
    import boto3
    from ioarchive.pseudonymize.pseudonym import KeyUnavailable

    monkeypatch.setenv("AWS_ENDPOINT_URL", aws_server.endpoint_url)
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv("AWS_DEFAULT_REGION" if name == "region_name" else name.upper(), value)
    secret = boto3.client("secretsmanager").create_secret(Name="ioarchive-key", SecretString=KEY.decode())["ARN"]
    boto3.client("ssm").put_parameter(Name="/ioarchive/key", Value=KEY.decode(), Type="SecureString")
    boto3.client("ssm").put_parameter(Name="/ioarchive/short", Value="short", Type="SecureString")

    assert load_key_secret(secret) == KEY
    assert load_key_secret("ssm:/ioarchive/key") == KEY
    with pytest.raises(KeyUnavailable, match="shorter than 32 bytes") as err:
        load_key_secret("ssm:/ioarchive/short")
    assert "short'" not in str(err.value)
    with pytest.raises(KeyUnavailable, match="cannot read the pseudonymization key from ssm:/missing"):
        load_key_secret("ssm:/missing")



@pytest.mark.parametrize("step", ["extract", "pseudonymize", "quality"])
def test_every_step_has_a_job_script_that_accepts_its_arguments(step):
    """The same jobs/<step>.py runs on every backend: its parser takes what job_args builds."""
    import runpy

    payload = {**PAYLOAD, "campaign_dir": "/data/campaigns/c", "key_id": "k1"}
    if step == "pseudonymize":
        payload["key_file"] = "/run/key"
    script = jobs_dir() / f"{step}.py"
    assert "main" in runpy.run_path(str(script), run_name="ioarchive_job_test")
    args = StepSettings.from_argv(step, job_args(step, payload))
    assert args.staging_dir == PAYLOAD["staging_dir"] and args.release_id == RELEASE
    if step != "extract":
        assert args.threshold == 5000
    if step != "pseudonymize":
        assert args.campaign_dir == "/data/campaigns/c"
