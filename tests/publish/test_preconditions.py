"""Publication re-checks every gate from the audit trail (RELEASE_SPEC 7), before any upload.

Real staged files (``support.release``), a real SQLite investigations registry and a real S3
HTTP endpoint (moto_server). Each refusal is exercised as the DAG's two publish tasks would
run: guard, then upload, for both variants; a refusal must leave both buckets empty.
"""

from __future__ import annotations

import functools
import hashlib
import json
import uuid

import pytest
from ioarchive.gates import registry as registry_mod
from ioarchive.gates.signoffs import Signoff, record_signoff
from ioarchive.publish.preconditions import (
    ATTRIBUTION_SIGNOFF,
    FOUR_EYES,
    INVESTIGATIONS_CONCLUDED,
    PUBLICATION_SIGNOFF,
    QUALITY_SUMMARY,
    PublicationPreconditionFailed,
    check_publication,
)
from ioarchive.publish.store import S3ObjectStore, ensure_buckets
from ioarchive.publish.upload import PublishRefused, publish_release
from ioarchive.quality.summary import SUMMARY_FORMAT, write_summary
from ioarchive.render.manifest import refresh_signoffs
from support.release import VARIANTS, rewrite_release, write_release
from support.s3 import MotoServer

RELEASE = "audit_202102"
CAMPAIGN = "audit-campaign"
INVESTIGATIONS = ["INV-1", "INV-2"]
TRIGGER = "trigger_user"
REVIEWERS = ["reviewer_a", "reviewer_b"]
RUN = "audit_202102__run2"
EARLIER_RUN = "audit_202102__run1"


@pytest.fixture(scope="module")
def s3_server():
    with MotoServer() as server:
        yield server


@pytest.fixture()
def buckets(s3_server):
    suffix = uuid.uuid4().hex[:10]
    public, member = f"pub-{suffix}", f"mem-{suffix}"
    ensure_buckets(s3_server.client(), public, member)
    return public, member


@pytest.fixture()
def registry_url(tmp_path):
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    with registry_mod.Registry(url) as reg:
        reg.migrate()
        for investigation in INVESTIGATIONS:
            reg.set_status(CAMPAIGN, investigation, "concluded", "integrity_lead")
    return url


def _with_checksums(layout) -> None:
    """Quality summaries as the quality gate writes them once it records the validated files' SHA-256."""
    for variant in VARIANTS:
        release_dir = layout.release_dir(variant)
        files = {
            p.relative_to(release_dir).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(release_dir.rglob("*"))
            if p.is_file() and (p.name.endswith(f"_csv_{variant}.zip") or "parquet/" in p.relative_to(release_dir).as_posix())
        }
        write_summary(layout, variant, {"format": SUMMARY_FORMAT, "release_id": layout.release_id, "variant": variant,
                                        "success": True, "suites": {}, "files": files})


@pytest.fixture()
def layout(tmp_path):
    layout = write_release(tmp_path / "staging", RELEASE)
    _with_checksums(layout)
    # The incident of issue #17: an earlier run of the same release was approved by both reviewers.
    record_signoff(layout.signoffs, Signoff("attribution", "approved", "reviewer_a", "2026-11-01T10:00:00+00:00"),
                   run_id=EARLIER_RUN)
    record_signoff(layout.signoffs, Signoff("publication", "approved", "reviewer_b", "2026-11-01T11:00:00+00:00"),
                   run_id=EARLIER_RUN)
    return layout


def _approve(layout, attribution_by="reviewer_a", publication_by="reviewer_b", run_id=RUN) -> None:
    record_signoff(layout.signoffs, Signoff("attribution", "approved", attribution_by, "2026-12-01T10:00:00+00:00",
                                            "ok"), run_id=run_id)
    record_signoff(layout.signoffs, Signoff("publication", "approved", publication_by, "2026-12-01T11:00:00+00:00",
                                            "fine"), run_id=run_id)


def _publish_both(layout, store, buckets, registry_url) -> list[dict]:
    """What publish_member and publish_public do: guard (this run), manifest sign-offs, upload."""
    approvals = None
    for variant, bucket in zip(VARIANTS, buckets, strict=True):  # hashed -> public, unhashed -> member
        approvals = check_publication(
            layout, run_id=RUN, triggering_user=TRIGGER, reviewers=REVIEWERS, campaign_id=CAMPAIGN,
            investigation_ids=INVESTIGATIONS,
            open_investigations=functools.partial(registry_mod.open_investigations, db_url=registry_url),
        )
        refresh_signoffs(layout, variant, (), signoffs=approvals)
        publish_release(store, staging=layout.root, release_id=RELEASE, variant=variant, bucket=bucket, version=1)
    return approvals or []


def _objects(s3_server, bucket) -> list[str]:
    return sorted(o["Key"] for o in s3_server.client().list_objects_v2(Bucket=bucket).get("Contents", []))


def _refused(layout, s3_server, buckets, registry_url) -> PublicationPreconditionFailed:
    with pytest.raises(PublicationPreconditionFailed) as info:
        _publish_both(layout, S3ObjectStore(s3_server.client()), buckets, registry_url)
    assert isinstance(info.value, PublishRefused)  # the DAG fails it without retry
    assert "Nothing was uploaded" in str(info.value)
    for bucket in buckets:
        assert _objects(s3_server, bucket) == []
    return info.value


def test_all_preconditions_met_publishes_with_this_runs_signoffs_only(layout, s3_server, buckets, registry_url):
    _approve(layout)
    _publish_both(layout, S3ObjectStore(s3_server.client()), buckets, registry_url)
    public, member = buckets
    for bucket, variant in ((public, "hashed"), (member, "unhashed")):
        keys = _objects(s3_server, bucket)
        assert f"releases/{RELEASE}/v1/manifest.json" in keys
        manifest = json.loads(s3_server.client().get_object(
            Bucket=bucket, Key=f"releases/{RELEASE}/v1/manifest.json")["Body"].read())
        assert manifest["variant"] == variant
        assert [(s["gate"], s["by"], s["at"]) for s in manifest["signoffs"]] == [
            ("attribution", "reviewer_a", "2026-12-01T10:00:00+00:00"),
            ("publication", "reviewer_b", "2026-12-01T11:00:00+00:00"),
        ]


def test_gates_marked_success_without_an_answer_refuse_even_with_an_earlier_runs_approvals(
        layout, s3_server, buckets, registry_url):
    error = _refused(layout, s3_server, buckets, registry_url)
    assert error.preconditions == sorted([ATTRIBUTION_SIGNOFF, PUBLICATION_SIGNOFF])
    assert f"no attribution decision is recorded for run {RUN}" in str(error)
    assert f"no publication decision is recorded for run {RUN}" in str(error)


def test_an_approval_by_the_triggering_user_written_by_hand_is_refused(layout, s3_server, buckets, registry_url):
    _approve(layout, publication_by=TRIGGER)
    error = _refused(layout, s3_server, buckets, registry_url)
    assert error.preconditions == [PUBLICATION_SIGNOFF]
    assert f"is by '{TRIGGER}', who is not one of the run's reviewers" in str(error)


def test_four_eyes_holds_even_when_the_triggering_user_is_listed_as_reviewer(layout):
    _approve(layout, attribution_by=TRIGGER)
    with pytest.raises(PublicationPreconditionFailed, match="who triggered the run") as info:
        check_publication(layout, run_id=RUN, triggering_user=TRIGGER, reviewers=[TRIGGER, "reviewer_b"],
                          campaign_id=CAMPAIGN, investigation_ids=[], open_investigations=lambda c, i: [])
    assert info.value.preconditions == [ATTRIBUTION_SIGNOFF]


def test_an_approver_who_is_not_an_assigned_reviewer_or_a_rejection_is_refused(layout, s3_server, buckets,
                                                                                registry_url):
    _approve(layout, attribution_by="someone_else")
    record_signoff(layout.signoffs, Signoff("publication", "rejected", "reviewer_b", "2026-12-01T12:00:00+00:00"),
                   run_id=RUN)
    error = _refused(layout, s3_server, buckets, registry_url)
    assert error.preconditions == sorted([ATTRIBUTION_SIGNOFF, PUBLICATION_SIGNOFF])
    assert "'someone_else', who is not one of the run's reviewers" in str(error)
    assert "is 'rejected'" in str(error)


def test_a_run_without_a_triggering_user_cannot_show_four_eyes(layout):
    _approve(layout)
    with pytest.raises(PublicationPreconditionFailed) as info:
        check_publication(layout, run_id=RUN, triggering_user=None, reviewers=REVIEWERS, campaign_id=CAMPAIGN,
                          investigation_ids=[], open_investigations=lambda c, i: [])
    assert info.value.preconditions == [FOUR_EYES]


def test_an_investigation_reopened_after_the_wait_stops_publication(layout, s3_server, buckets, registry_url):
    _approve(layout)
    with registry_mod.Registry(registry_url) as reg:
        reg.set_status(CAMPAIGN, "INV-2", "open", "integrity_lead")
    error = _refused(layout, s3_server, buckets, registry_url)
    assert error.preconditions == [INVESTIGATIONS_CONCLUDED]
    assert "INV-2" in str(error) and "INV-1" not in str(error)


def test_a_file_changed_after_the_quality_gate_is_refused_on_both_buckets(layout, s3_server, buckets, registry_url):
    """The member variant's tweets changed and were re-rendered consistently: only the summary catches it."""
    _approve(layout)
    release_dir = layout.release_dir("unhashed")
    files = {p.relative_to(release_dir).as_posix(): p.read_bytes() for p in release_dir.rglob("*")
             if p.is_file() and p.name not in ("README.md", "SHA256SUMS", "manifest.json")}
    files[f"{RELEASE}_tweets_csv_unhashed.zip"] += b"one more row"
    rewrite_release(layout, "unhashed", files)
    error = _refused(layout, s3_server, buckets, registry_url)
    assert error.preconditions == [QUALITY_SUMMARY]
    assert f"unhashed files changed after the quality gate: {RELEASE}_tweets_csv_unhashed.zip" in str(error)


def test_a_parquet_part_added_after_validation_is_not_validated(layout):
    _approve(layout)
    (layout.parquet_dir("hashed") / "tweets" / "part-00001.parquet").write_bytes(b"PAR1 late PAR1")
    with pytest.raises(PublicationPreconditionFailed, match=r"parquet/tweets/part-00001.parquet \(not validated\)"):
        check_publication(layout, run_id=RUN, triggering_user=TRIGGER, reviewers=REVIEWERS, campaign_id=CAMPAIGN,
                          investigation_ids=[], open_investigations=lambda c, i: [])


def test_a_summary_without_checksums_is_refused(layout):
    """A summary that does not say which bytes were validated cannot vouch for the staged ones."""
    _approve(layout)
    for variant in VARIANTS:
        layout.validation_summary(variant).write_text(json.dumps({"success": True, "suites": {}}))
    with pytest.raises(PublicationPreconditionFailed, match="records no checksums of the validated files"):
        check_publication(layout, run_id=RUN, triggering_user=TRIGGER, reviewers=REVIEWERS, campaign_id=CAMPAIGN,
                          investigation_ids=[], open_investigations=lambda c, i: [])


def test_a_failed_or_missing_summary_is_refused(layout):
    _approve(layout)
    (layout.validation_dir("hashed") / "summary.json").write_text(json.dumps({"success": False, "suites": {}}))
    (layout.validation_dir("unhashed") / "summary.json").unlink()
    with pytest.raises(PublicationPreconditionFailed) as info:
        check_publication(layout, run_id=RUN, triggering_user=TRIGGER, reviewers=REVIEWERS, campaign_id=CAMPAIGN,
                          investigation_ids=[], open_investigations=lambda c, i: [])
    assert "does not record a passed validation of the hashed variant" in str(info.value)
    assert "unhashed: " in str(info.value) and "summary.json is missing" in str(info.value)
