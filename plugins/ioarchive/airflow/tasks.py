"""Task bodies of the ``io_release`` DAG: thin glue between Airflow and the stage functions.

Each body takes the run's params (the trigger form, a plain dict), builds the one settings object
of its stage (``ReleaseParams``; ``StepSettings`` for Spark steps) and calls the stage function
the CLI and the Spark job call too. The DAG file only wires them.

Every body runs through :func:`release_task`: an error marked ``NotRetryable``
(``ioarchive.errors``: bad input, a failed or bypassed gate, a missing key, a bad media plan or
manifest, a refused publication) fails the task at once, on try 1, with its message; anything else
(a lost worker, an S3 or database hiccup) is left to Airflow's retries.

Spark steps run on the configured backend (``ioarchive.spark.steps``: a child process on the
worker, ``spark-submit`` to a cluster, or EMR Serverless), so the Airflow worker never hosts a
JVM across tasks; the pseudonymization key reaches the job as a 0600 file that is deleted
afterwards, or as a secret reference on EMR (never argv, never the log).

Settings (``ioarchive.settings``): staging root, buckets, Spark backend, notifications.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any, TypeVar

from ioarchive import settings
from ioarchive.errors import QualityGateFailed, ReconciliationError, SummaryError, is_retryable
from ioarchive.request.campaign import Campaign, ReleaseParams
from ioarchive.schema import VARIANTS
from ioarchive.spark.job_settings import StepSettings
from ioarchive.staging import StagingLayout

log = logging.getLogger(__name__)

S3_CONN_ID = "ioarchive_s3"

F = TypeVar("F", bound=Callable[..., Any])


def release_task(func: F) -> F:
    """Fail a task at once on an error no retry can fix; leave the rest to Airflow's retries."""

    @functools.wraps(func)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except Exception as exc:
            if is_retryable(exc):
                raise
            from airflow.sdk.exceptions import AirflowFailException

            log.error("%s: %s (not retried: a retry cannot fix this; see docs/runbook.md)",
                      type(exc).__name__, exc)
            raise AirflowFailException(f"{type(exc).__name__}: {exc}") from exc

    return run  # type: ignore[return-value]


# --- the run's settings ------------------------------------------------------------------------

def release_params(params: dict[str, Any]) -> ReleaseParams:
    """The run's form values as validated ``ReleaseParams`` (raises InvalidRelease)."""
    return ReleaseParams.from_form(params)


def layout_for(params: dict[str, Any]) -> StagingLayout:
    """The staging folder of the run's release version."""
    return StagingLayout.for_version(settings.staging_root(), str(params["release_id"]),
                                     int(params.get("version") or 1))


def step_settings(params: dict[str, Any], **extra: Any) -> StepSettings:
    """The Spark step settings of a run (the same object the CLI and the job build)."""
    rp = release_params(params)
    layout = layout_for(params)
    return StepSettings(staging_dir=str(layout.root), release_id=rp.release_id, campaign_dir=rp.campaign_dir,
                        threshold=rp.threshold, **extra)


def previous_layout(rp: ReleaseParams) -> StagingLayout:
    """The staging folder of version N-1 (its media plan is kept where it still fits, RELEASE_SPEC 8)."""
    return StagingLayout.for_version(settings.staging_root(), rp.release_id, max(1, rp.version - 1))


def signoffs_path(context: Any) -> Path:
    """Where the gates record decisions for this run (``StagingLayout.signoffs``)."""
    return layout_for(context["params"]).signoffs


# --- request and investigations ------------------------------------------------------------------

@release_task
def validate_request(params: dict[str, Any]) -> dict[str, Any]:
    """Check the trigger form and the campaign folder; returns what the gates show."""
    from ioarchive.request.validate import validate_request as validate

    return validate(release_params(params), layout_for(params))


def open_investigations(params: dict[str, Any]) -> list[str]:
    """Linked investigations of the campaign that are not concluded yet."""
    from ioarchive.gates import registry

    campaign = Campaign.load(params["campaign_dir"])
    still_open = list(registry.open_investigations(campaign.campaign_id, list(campaign.investigation_ids)))
    if still_open:
        log.info(
            "release %s waits: investigations %s of campaign %s are not concluded; "
            "the task is rescheduled and holds no worker slot meanwhile",
            params["release_id"], ", ".join(still_open), campaign.campaign_id,
        )
    else:
        log.info("all %d investigations of campaign %s are concluded", len(campaign.investigation_ids),
                 campaign.campaign_id)
    return still_open


# --- Spark steps ----------------------------------------------------------------------------------

@release_task
def extract(params: dict[str, Any]) -> dict[str, Any]:
    """Raw campaign -> unhashed work tables and release tables, quarantine, reconciliation."""
    from ioarchive import reconcile
    from ioarchive.extract import retractions
    from ioarchive.spark.steps import run_spark_step

    layout = layout_for(params)
    layout.quarantine_dir.mkdir(parents=True, exist_ok=True)  # extraction expects it (clean input: empty)
    settings_ = step_settings(params)
    retracted = retractions.write_from_registry(layout)  # RELEASE_SPEC 8: never published again
    if retracted:
        log.info("release %s: %d accounts retracted in the registry are left out (%s)", layout.release_id,
                 len(retracted), layout.retractions)
    run_spark_step("extract", settings_)
    data = reconcile.load(layout)
    if not data.get("balanced"):
        raise ReconciliationError(
            f"release {layout.release_id}: reconciliation does not balance ({layout.reconciliation}); "
            "input != released + excluded + quarantined: inspect the extraction log"
        )
    return {t: {"read": v.get("read"), "released": v.get("released")} for t, v in data.get("tables", {}).items()}


@release_task
def pseudonymize(params: dict[str, Any]) -> None:
    """Unhashed -> hashed work and release tables, key from the secrets backend (Spark child)."""
    from ioarchive.pseudonymize.pseudonym import load_key_from_airflow
    from ioarchive.spark.steps import run_spark_step

    key, key_id = load_key_from_airflow()
    run_spark_step("pseudonymize", step_settings(params, key_id=key_id), key=key)


@release_task
def quality_gate(params: dict[str, Any]) -> dict[str, Any]:
    """Run every expectation suite on both variants; fail unless all pass (gate 3)."""
    from ioarchive.spark.steps import run_spark_step

    layout = layout_for(params)
    run_spark_step("quality", step_settings(params))
    return quality_verdict(layout)


def quality_verdict(layout: StagingLayout) -> dict[str, bool]:
    """Each variant's verdict from its quality summary; raise QualityGateFailed unless all passed."""
    from ioarchive.quality.summary import load_summary

    results: dict[str, bool] = {}
    for variant in VARIANTS:
        try:
            results[variant] = load_summary(layout, variant)["success"] is True
        except SummaryError as exc:
            raise QualityGateFailed(f"release {layout.release_id}: {exc}; see the quality step's log above") from None
    failed = [f"{v} ({layout.validation_summary(v)})" for v, ok in results.items() if not ok]
    if failed:
        raise QualityGateFailed(
            f"release {layout.release_id}: data quality gate failed for {', '.join(failed)}; "
            f"open the Data Docs under {layout.root / 'validation'}. Nothing was published."
        )
    return results


# --- media ----------------------------------------------------------------------------------------

@release_task
def plan_media(params: dict[str, Any]) -> list[dict[str, str]]:
    """Plan both variants' archives; one entry per archive for dynamic task mapping."""
    from ioarchive.media.stage import list_archives, quarantine_rejected
    from ioarchive.media.stage import plan_media as plan

    rp = release_params(params)
    layout = layout_for(params)
    archives = []
    for variant in VARIANTS:
        plan(layout.root, layout.release_id, variant, target_bytes=rp.archive_target_bytes,
             previous_staging=previous_layout(rp).root if rp.version > 1 else None)
        quarantine_rejected(rp.campaign_dir, layout.root, layout.release_id, variant)
        archives += [{"variant": variant, "archive_name": name}
                     for name in list_archives(layout.root, layout.release_id, variant)]
    log.info("release %s: %d media archives to pack", layout.release_id, len(archives))
    return archives


@release_task
def pack_media(params: dict[str, Any], variant: str, archive_name: str) -> dict[str, Any]:
    """Pack one archive (one mapped task instance per archive)."""
    from ioarchive.media.stage import pack_archive

    layout = layout_for(params)
    result = pack_archive(params["campaign_dir"], layout.root, layout.release_id, variant, archive_name)
    return {"variant": variant, "archive_name": archive_name, **_jsonable(result)}


@release_task
def finalize_media(params: dict[str, Any]) -> None:
    """Media index, quarantine of rejected files and reconciliation, per variant."""
    from ioarchive.media.stage import finalize_media as finalize

    layout = layout_for(params)
    for variant in VARIANTS:
        summary = finalize(layout.root, layout.release_id, variant)
        log.info("release %s/%s media: %s", layout.release_id, variant, summary.get("counts", summary))


# --- render and publish ---------------------------------------------------------------------------

@release_task
def render(params: dict[str, Any]) -> dict[str, Any]:
    """Manifest, README and SHA256SUMS per variant; returns the publication gate's body."""
    from ioarchive.render.changelog import changelog_for, diff_previous
    from ioarchive.render.documents import render_release, render_reviewer_summary

    rp = release_params(params)
    layout = layout_for(params)

    def render_with(changelog: list[dict[str, Any]] | None) -> dict[str, dict[str, Any]]:
        return render_release(layout.root, rp.campaign_dir, layout.release_id, version=rp.version,
                              archive_target_bytes=rp.archive_target_bytes, threshold=rp.threshold,
                              changelog=changelog)

    diff = None
    if rp.version > 1:  # RELEASE_SPEC 8: the changelog says what changed, with the diff's counts
        previous = previous_layout(rp)
        render_with(changelog_for(layout, previous, rp.version, rp.changelog))
        diff = diff_previous(previous, layout)
        manifests = render_with(changelog_for(layout, previous, rp.version, rp.changelog, diff))
    else:
        manifests = render_with(None)
    readme_urls = {v: layout.readme(v).resolve().as_uri() for v in VARIANTS}
    data_docs_urls = {}
    for variant in VARIANTS:
        index = sorted(layout.validation_dir(variant).rglob("index.html"))
        if index:
            data_docs_urls[variant] = index[0].resolve().as_uri()
    previous_manifests = _previous_manifests(rp)
    body = render_reviewer_summary(
        layout.root, layout.release_id, readme_urls=readme_urls, data_docs_urls=data_docs_urls,
        previous_manifest=previous_manifests or None,
    )
    if diff is not None:
        body += f"\n\n### `ioarchive diff` against v{diff.old.version}\n\n{diff.summary_markdown()}"
    return {
        "publication_body": body,
        "files": {v: len(m.get("files", [])) for v, m in manifests.items()},
    }


def _previous_manifests(rp: ReleaseParams) -> dict[str, Any]:
    """Manifests of version N-1 staged on this machine, so the reviewer sees what changed."""
    if rp.version < 2:
        return {}
    previous = StagingLayout.for_version(settings.staging_root(), rp.release_id, rp.version - 1)
    found = {}
    for variant in VARIANTS:
        path = previous.manifest(variant)
        if path.exists():
            found[variant] = json.loads(path.read_text(encoding="utf-8"))
    if not found:
        log.warning("no staged manifest of v%d of %s: the reviewer summary cannot show changes", rp.version - 1,
                    rp.release_id)
    return found


@release_task
def publish(params: dict[str, Any], variant: str, dag_run: Any) -> dict[str, Any]:
    """Upload, verify, manifest last: ``s3://<bucket>/releases/<id>/v<N>/``."""
    from ioarchive.publish.preconditions import prepare_publication
    from ioarchive.publish.upload import publish_release, s3_store

    rp = release_params(params)
    layout = layout_for(params)
    # Re-check every gate from the audit trail before any upload (RELEASE_SPEC 7), then record
    # this run's sign-offs in the manifest (rendered before the publication sign-off).
    prepare_publication(layout, variant, params, dag_run)
    store = s3_store(aws_conn_id=S3_CONN_ID)
    result = publish_release(
        store,
        staging=layout.root,
        release_id=layout.release_id,
        variant=variant,
        bucket=settings.bucket_for(variant),
        version=rp.version,
    )
    log.info("%s", result.summary())
    return {"variant": variant, "url": result.url, "uploaded": len(result.uploaded), "skipped": len(result.skipped),
            "copied": len(result.copied), "copied_files": sorted(result.copied), "requests": dict(store.requests)}


@release_task
def update_catalog(params: dict[str, Any]) -> list[str]:
    """Rebuild the public catalog from every manifest in the public bucket and upload it."""
    from ioarchive.publish.upload import list_published_manifests, publish_catalog, s3_store
    from ioarchive.render.documents import render_catalog

    store = s3_store(aws_conn_id=S3_CONN_ID)
    bucket = settings.bucket_for("hashed")
    manifests = list_published_manifests(store, bucket)
    out = layout_for(params).catalog_dir
    render_catalog(manifests, out)
    return publish_catalog(store, bucket, out)


# --- helpers -------------------------------------------------------------------------------------

def _jsonable(value: Any) -> dict[str, Any]:
    if is_dataclass(value) and not isinstance(value, type):
        data = asdict(value)
    elif isinstance(value, dict):
        data = dict(value)
    else:
        return {"result": str(value)}
    return json.loads(json.dumps(data, default=str))
