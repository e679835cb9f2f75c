"""Task bodies fail at once on errors no retry can fix, and leave the rest to Airflow's retries.

Each non-retryable kind is produced for real (a real campaign folder, a real Spark child, real
staging files), through the task body the DAG calls. ``AirflowFailException`` is how Airflow is
told not to retry: the task ends ``failed`` on try 1 with the message shown in its log.
"""

from __future__ import annotations

import json
import shutil

import pytest
from airflow.sdk.exceptions import AirflowFailException
from ioarchive.airflow import tasks
from ioarchive.errors import (
    ConfigurationError,
    DiffError,
    FourEyesViolation,
    GateRejected,
    KeyUnavailable,
    ManifestError,
    MediaDiskFullError,
    MediaPlanError,
    MissingStageOutput,
    PublishConflict,
    QualityGateFailed,
    ReconciliationError,
    RegistryError,
    SparkJobFailed,
    SparkStepRejected,
    StagedFilesChanged,
    SummaryError,
    is_retryable,
)
from ioarchive.gates.registry import Registry

RELEASE = "kinds_202102"


@pytest.fixture(scope="module")
def campaign(tmp_path_factory):
    from ioarchive.devtools.generate.campaign import generate_campaign

    out = tmp_path_factory.mktemp("kinds") / "campaign"
    generate_campaign(out, seed=11, accounts=15, posts=100, media_bytes=64 * 1024, release_month="2021-02")
    return out


@pytest.fixture
def params(campaign, tmp_path, monkeypatch):
    monkeypatch.setenv("IOARCHIVE_STAGING_ROOT", str(tmp_path / "staging"))
    monkeypatch.setenv("IOARCHIVE_PUBLIC_BUCKET", "public-bucket")
    monkeypatch.setenv("IOARCHIVE_MEMBER_BUCKET", "member-bucket")
    registry = f"sqlite:///{tmp_path / 'registry.db'}"
    with Registry(registry) as db:
        db.migrate()
    monkeypatch.setenv("AIRFLOW_CONN_IOARCHIVE_REGISTRY", json.dumps({"conn_type": "sqlite", "host": str(tmp_path / "registry.db")}))
    return {"campaign_dir": str(campaign), "release_id": RELEASE, "version": 1, "threshold": 5000,
            "archive_target_bytes": 1024 * 1024, "reviewers": ["reviewer_a", "reviewer_b"]}


def fails_on_try_1(call, kind: type[Exception], *words: str) -> AirflowFailException:
    with pytest.raises(AirflowFailException) as failed:
        call()
    assert isinstance(failed.value.__cause__, kind), repr(failed.value.__cause__)
    message = str(failed.value)
    assert message.startswith(f"{kind.__name__}: ")
    for word in words:
        assert word in message
    return failed.value


def test_missing_key_fails_at_once(params):
    """No ``ioarchive_pseudonym_key`` in the secrets backend: nobody can fix that by waiting."""
    fails_on_try_1(lambda: tasks.pseudonymize(params), KeyUnavailable, "ioarchive_pseudonym_key")


def test_bad_input_inside_a_spark_step_fails_at_once(params, campaign, tmp_path):
    """The Spark child refuses the campaign (two posts files): exit code 65 -> not retried."""
    import gzip

    broken = tmp_path / "broken"
    shutil.copytree(campaign, broken)
    (broken / "posts.jsonl.gz").write_bytes(gzip.compress((broken / "posts.jsonl").read_bytes()))
    err = fails_on_try_1(lambda: tasks.extract({**params, "campaign_dir": str(broken)}), SparkStepRejected,
                         "Spark step extract of release kinds_202102", "has both posts.jsonl and posts.jsonl.gz")
    assert "a retry gives the same result" in str(err)


def test_wrong_setting_fails_at_once(params, monkeypatch):
    """A misconfigured Spark backend names the setting; waiting does not fix a typo."""
    monkeypatch.setenv("IOARCHIVE_SPARK_BACKEND", "emr")
    fails_on_try_1(lambda: tasks.extract(params), ConfigurationError, "IOARCHIVE_SPARK_BACKEND is 'emr'")


def test_media_plan_mismatch_fails_at_once(params):
    """A packing task whose archive is not in the plan: replanning is a person's decision."""
    fails_on_try_1(lambda: tasks.pack_media(params, "hashed", "kinds_202102_media_99_hashed.zip"), MediaPlanError,
                   "kinds_202102")


def test_render_without_staged_tables_fails_at_once(params):
    tasks.layout_for(params).root.mkdir(parents=True)
    fails_on_try_1(lambda: tasks.render(params), ManifestError, "kinds_202102")


def test_failed_quality_summary_fails_the_gate_at_once(params):
    """The verdict is read from the summaries; a failed one is final (the data must change)."""
    layout = tasks.layout_for(params)
    for variant, success in (("hashed", False), ("unhashed", True)):
        layout.validation_summary(variant).parent.mkdir(parents=True)
        layout.validation_summary(variant).write_text(json.dumps({"success": success}))
    verdict = tasks.release_task(tasks.quality_verdict)
    fails_on_try_1(lambda: verdict(layout), QualityGateFailed, "data quality gate failed for hashed", "Nothing was published")
    layout.validation_summary("hashed").write_text(json.dumps({"success": True}))
    assert verdict(layout) == {"hashed": True, "unhashed": True}


def test_errors_that_can_heal_are_left_to_retries():
    """A database or Spark worker hiccup propagates unchanged: Airflow retries it."""

    @tasks.release_task
    def flaky(kind: type[Exception]) -> None:
        raise kind("connection reset")

    for kind in (RegistryError, SparkJobFailed, OSError):
        with pytest.raises(kind):
            flaky(kind)
    assert is_retryable(SparkJobFailed("x")) and not is_retryable(SparkStepRejected("x"))
    wrapped = RuntimeError("wrapper")
    wrapped.__cause__ = KeyUnavailable("no key")
    assert not is_retryable(wrapped)


@pytest.mark.parametrize("error", [
    GateRejected("reviewer_a rejected the attribution: attribution not confirmed"),
    FourEyesViolation("trigger_user triggered this run and cannot answer its gate"),
    MediaDiskFullError("release kinds_202102/hashed: not enough disk space to pack archive a.zip", archive="a.zip",
                       needed=10, free=1),
    MissingStageOutput("release kinds_202102: work table work/unhashed/posts is missing; run `extract` first"),
    ReconciliationError("reconciliation.json would stop balancing"),
    PublishConflict("v1 already exists with different content: a change is a new version"),
    SummaryError("validation/hashed/summary.json is missing: the data-quality gate has not run"),
    StagedFilesChanged("release/hashed/parquet/users.parquet changed while the gate read it"),
    DiffError("no manifest.json in /nowhere"),
])
def test_every_other_kind_that_needs_a_person_fails_at_once(error):
    """The kinds raised deep inside a stage (their own tests raise them for real) keep the marker."""

    @tasks.release_task
    def stage() -> None:
        raise error

    failed = fails_on_try_1(stage, type(error), str(error))
    assert failed.__cause__ is error
