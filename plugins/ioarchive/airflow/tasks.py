"""Task callables of the ``io_release`` DAG: thin glue between Airflow and the library.

Each function takes the run's params (a plain dict) and calls the step's library function;
the DAG file only wires them. Where a step runs Spark, ``ioarchive.spark.steps`` runs its
``jobs/<step>.py`` on the configured backend (``IOARCHIVE_SPARK_BACKEND``: a child process on
the worker, ``spark-submit`` to a cluster, or EMR Serverless), so the Airflow worker never hosts
a JVM across tasks; the pseudonymization key reaches the job as a 0600 file that is deleted
afterwards, or as a secret reference on EMR (never argv, never the log).

Configuration (Airflow Variable first, then environment):

- staging root: Variable ``ioarchive_staging_root`` / env ``IOARCHIVE_STAGING_ROOT`` (default
  ``$AIRFLOW_HOME/../staging``); one release version stages in ``<root>/<release_id>/v<N>``;
- buckets: ``IOARCHIVE_PUBLIC_BUCKET``, ``IOARCHIVE_MEMBER_BUCKET``; S3 connection ``ioarchive_s3``;
- registry poll interval: ``IOARCHIVE_REGISTRY_POKE_SECONDS``.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from ioarchive.request.campaign import Campaign, InvalidRelease, ReleaseParams
from ioarchive.schema import VARIANTS
from ioarchive.staging import StagingLayout

log = logging.getLogger(__name__)

S3_CONN_ID = "ioarchive_s3"
STAGING_ROOT_VARIABLE = "ioarchive_staging_root"
PUBLIC_BUCKET_ENV = "IOARCHIVE_PUBLIC_BUCKET"
MEMBER_BUCKET_ENV = "IOARCHIVE_MEMBER_BUCKET"
AUDIENCE_BUCKET_ENV = {"hashed": PUBLIC_BUCKET_ENV, "unhashed": MEMBER_BUCKET_ENV}


# --- configuration ---------------------------------------------------------------------------

def _variable(name: str) -> str | None:
    """An Airflow Variable, or None outside Airflow / when unset."""
    try:
        from airflow.sdk import Variable

        return Variable.get(name, default=None)
    except Exception:  # noqa: BLE001 - no Airflow context (CLI, tests): fall back to env
        return None


def staging_root() -> Path:
    """Root folder under which each release version stages its files."""
    value = _variable(STAGING_ROOT_VARIABLE) or os.environ.get("IOARCHIVE_STAGING_ROOT")
    if value:
        return Path(value)
    home = Path(os.environ.get("AIRFLOW_HOME", Path.home() / "airflow"))
    return (home / ".." / "staging").resolve()


def bucket_for(variant: str) -> str:
    """Bucket of a variant's audience (hashed: public, unhashed: members)."""
    env = AUDIENCE_BUCKET_ENV[variant]
    bucket = _variable(env.lower()) or os.environ.get(env)
    if not bucket:
        raise RuntimeError(f"{env} is not set: configure the {variant} variant's bucket (env or Variable)")
    return bucket


def release_params(params: dict[str, Any]) -> ReleaseParams:
    """The run's form values as validated ``ReleaseParams`` (raises InvalidRelease)."""
    return ReleaseParams(
        release_id=str(params["release_id"]),
        campaign_dir=str(params["campaign_dir"]),
        version=int(params.get("version", 1)),
        threshold=int(params.get("threshold", 5000)),
        archive_target_bytes=int(params.get("archive_target_bytes", 2 * 1024**3)),
    )


def staging_dir(params: dict[str, Any]) -> Path:
    return staging_root() / str(params["release_id"]) / f"v{int(params.get('version', 1))}"


def layout_for(params: dict[str, Any]) -> StagingLayout:
    return StagingLayout(staging_dir(params), str(params["release_id"]))


def signoffs_path(context: Any) -> Path:
    """Where the gates record decisions for this run (``StagingLayout.signoffs``)."""
    return layout_for(context["params"]).signoffs


# --- validate the request ------------------------------------------------------------------

def _count_lines(campaign_dir: Path, stem: str) -> int | None:
    """Non-blank lines of ``<stem>.jsonl`` or ``<stem>.jsonl.gz`` (None when absent)."""
    for name, opener in ((f"{stem}.jsonl", open), (f"{stem}.jsonl.gz", gzip.open)):
        path = campaign_dir / name
        if path.exists():
            with opener(path, "rb") as fh:
                return sum(1 for line in fh if line.strip())
    return None


def _md(text: Any) -> str:
    """Markdown-escaped text for gate bodies (campaign text is not ours to format)."""
    from ioarchive.render.documents import md_escape

    return str(md_escape(text))


def attribution_body(campaign: Campaign, params: ReleaseParams, counts: dict[str, Any]) -> str:
    """Markdown the attribution reviewer decides on."""
    statement = "\n".join(f"> {_md(line)}" if line.strip() else ">" for line in campaign.attribution.splitlines())
    rows = "\n".join(f"| {_md(k)} | {v if v is not None else 'missing'} |" for k, v in counts.items())
    investigations = ", ".join(_md(i) for i in campaign.investigation_ids) or "none"
    return (
        f"### {_md(campaign.title)}\n\n"
        f"Release **{params.release_id}** v{params.version} — country {_md(campaign.country)}, "
        f"disclosure {_md(campaign.disclosure_month)}.\n\n"
        f"**Attribution statement**\n\n{statement or '> (empty)'}\n\n"
        f"| input | count |\n|---|---|\n{rows}\n\n"
        f"Linked investigations (must all be concluded before extraction): {investigations}\n\n"
        f"Campaign folder: `{params.campaign_dir}`. Pseudonymization threshold: {params.threshold} followers.\n\n"
        "Approve only if the attribution is signed off; Reject stops the run and nothing is published. "
        "Add the reason in the comment field."
    )


def validate_request(params: dict[str, Any]) -> dict[str, Any]:
    """Check the trigger form and the campaign folder; returns what the gates show.

    Bad input raises ``InvalidRelease`` (the DAG turns it into a failure without retry).
    """
    rp = release_params(params)
    campaign_dir = Path(rp.campaign_dir)
    if not campaign_dir.is_dir():
        raise InvalidRelease(f"campaign location {campaign_dir} is not a folder on the worker")
    campaign = Campaign.load(campaign_dir)
    counts: dict[str, Any] = {
        "attributed accounts": len(campaign.account_ids),
        "account records": _count_lines(campaign_dir, "accounts"),
        "post records": _count_lines(campaign_dir, "posts"),
        "media records": _count_lines(campaign_dir, "media"),
        "deletions": _count_lines(campaign_dir, "deletions"),
    }
    missing = [name for name in ("account records", "post records") if counts[name] is None]
    if missing:
        raise InvalidRelease(
            f"campaign {campaign_dir} lacks {' and '.join(missing)} (accounts.jsonl[.gz], posts.jsonl[.gz])"
        )
    expected_suffix = campaign.disclosure_month.replace("-", "")
    if not rp.release_id.endswith(expected_suffix):
        log.warning(
            "release id %s does not end with the campaign's disclosure month %s: check the trigger form",
            rp.release_id,
            campaign.disclosure_month,
        )
    layout = layout_for(params)
    layout.root.mkdir(parents=True, exist_ok=True)
    log.info("release %s v%d stages in %s", rp.release_id, rp.version, layout.root)
    return {
        "release_id": rp.release_id,
        "version": rp.version,
        "campaign_id": campaign.campaign_id,
        "title": campaign.title,
        "investigation_ids": list(campaign.investigation_ids),
        "counts": counts,
        "staging_dir": str(layout.root),
        "attribution_body": attribution_body(campaign, rp, counts),
    }


# --- investigations gate -------------------------------------------------------------------

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


# --- Spark steps (child process) ----------------------------------------------------------

# The Spark step dispatch (local child, spark-submit to a cluster, EMR Serverless) lives in
# ioarchive.spark.steps; these names stay importable here for the DAG, tests and the CLI entry.
from ioarchive.spark.steps import _spark_step_main, run_spark_step  # noqa: E402, F401


def extract(params: dict[str, Any]) -> dict[str, Any]:
    """Raw campaign -> unhashed work tables and release tables, quarantine, reconciliation."""
    layout = layout_for(params)
    layout.quarantine_dir.mkdir(parents=True, exist_ok=True)  # extraction expects it (clean input: empty)
    run_spark_step(
        "extract",
        {"campaign_dir": str(params["campaign_dir"]), "staging_dir": str(layout.root), "release_id": layout.release_id},
    )
    from ioarchive import reconcile

    data = reconcile.load(layout)
    if not data.get("balanced"):
        raise RuntimeError(
            f"release {layout.release_id}: reconciliation does not balance ({layout.reconciliation}); "
            "input != released + excluded + quarantined: inspect the extraction log"
        )
    return {t: {"read": v.get("read"), "released": v.get("released")} for t, v in data.get("tables", {}).items()}


def pseudonymize(params: dict[str, Any]) -> None:
    """Unhashed -> hashed work and release tables, key from the secrets backend (Spark child)."""
    from ioarchive.pseudonymize.pseudonym import load_key_from_airflow

    key, key_id = load_key_from_airflow()
    layout = layout_for(params)
    run_spark_step(
        "pseudonymize",
        {"staging_dir": str(layout.root), "release_id": layout.release_id, "key_id": key_id,
         "threshold": int(params.get("threshold", 5000))},
        key=key,
    )


def quality_gate(params: dict[str, Any]) -> dict[str, Any]:
    """Run every expectation suite on both variants; fail unless all pass (gate 3)."""
    layout = layout_for(params)
    run_spark_step(
        "quality",
        {"staging_dir": str(layout.root), "release_id": layout.release_id,
         "threshold": int(params.get("threshold", 5000)), "campaign_dir": str(params["campaign_dir"])},
    )
    results: dict[str, Any] = {}
    failed = []
    for variant in VARIANTS:
        path = layout.validation_dir(variant) / "summary.json"
        if not path.exists():
            raise RuntimeError(f"quality step wrote no {path}; see the log above")
        summary = json.loads(path.read_text(encoding="utf-8"))
        results[variant] = bool(summary.get("success"))
        if not summary.get("success"):
            failed.append(f"{variant} ({path})")
    if failed:
        raise QualityGateFailed(
            f"release {layout.release_id}: data quality gate failed for {', '.join(failed)}; "
            f"open the Data Docs under {layout.root / 'validation'}. Nothing was published."
        )
    return results


class QualityGateFailed(RuntimeError):
    """An expectation suite failed: retrying cannot help, the data must change."""


# --- media --------------------------------------------------------------------------------

def plan_media(params: dict[str, Any]) -> list[dict[str, str]]:
    """Plan both variants' archives; one entry per archive for dynamic task mapping."""
    from ioarchive.media.stage import list_archives, quarantine_rejected
    from ioarchive.media.stage import plan_media as plan

    layout = layout_for(params)
    archives = []
    for variant in VARIANTS:
        plan(layout.root, layout.release_id, variant, target_bytes=int(params.get("archive_target_bytes", 2 * 1024**3)))
        quarantine_rejected(params["campaign_dir"], layout.root, layout.release_id, variant)
        archives += [{"variant": variant, "archive_name": name}
                     for name in list_archives(layout.root, layout.release_id, variant)]
    log.info("release %s: %d media archives to pack", layout.release_id, len(archives))
    return archives


def pack_media(params: dict[str, Any], variant: str, archive_name: str) -> dict[str, Any]:
    """Pack one archive (one mapped task instance per archive)."""
    from ioarchive.media.stage import pack_archive

    layout = layout_for(params)
    result = pack_archive(params["campaign_dir"], layout.root, layout.release_id, variant, archive_name)
    return {"variant": variant, "archive_name": archive_name, **_jsonable(result)}


def finalize_media(params: dict[str, Any]) -> None:
    """Media index, quarantine of rejected files and reconciliation, per variant."""
    from ioarchive.media.stage import finalize_media as finalize

    layout = layout_for(params)
    for variant in VARIANTS:
        summary = finalize(layout.root, layout.release_id, variant)
        log.info("release %s/%s media: %s", layout.release_id, variant, summary.get("counts", summary))


# --- render and publish --------------------------------------------------------------------

def render(params: dict[str, Any]) -> dict[str, Any]:
    """Manifest, README and SHA256SUMS per variant; returns the publication gate's body."""
    from ioarchive.render.documents import render_release, render_reviewer_summary

    layout = layout_for(params)
    manifests = render_release(
        layout.root,
        params["campaign_dir"],
        layout.release_id,
        version=int(params.get("version", 1)),
        archive_target_bytes=int(params.get("archive_target_bytes", 2 * 1024**3)),
        threshold=int(params.get("threshold", 5000)),
    )
    readme_urls = {v: layout.readme(v).resolve().as_uri() for v in VARIANTS}
    data_docs_urls = {}
    for variant in VARIANTS:
        index = sorted(layout.validation_dir(variant).rglob("index.html"))
        if index:
            data_docs_urls[variant] = index[0].resolve().as_uri()
    previous = _previous_manifests(params)
    body = render_reviewer_summary(
        layout.root, layout.release_id, readme_urls=readme_urls, data_docs_urls=data_docs_urls,
        previous_manifest=previous or None,
    )
    return {
        "publication_body": body,
        "files": {v: len(m.get("files", [])) for v, m in manifests.items()},
    }


def _previous_manifests(params: dict[str, Any]) -> dict[str, Any]:
    """Manifests of version N-1 staged on this machine, so the reviewer sees what changed."""
    version = int(params.get("version", 1))
    if version < 2:
        return {}
    previous = StagingLayout(staging_root() / str(params["release_id"]) / f"v{version - 1}", str(params["release_id"]))
    found = {}
    for variant in VARIANTS:
        path = previous.manifest(variant)
        if path.exists():
            found[variant] = json.loads(path.read_text(encoding="utf-8"))
    if not found:
        log.warning("no staged manifest of v%d of %s: the reviewer summary cannot show changes", version - 1,
                    params["release_id"])
    return found


def publish(params: dict[str, Any], variant: str, dag_run: Any) -> dict[str, Any]:
    """Upload, verify, manifest last: ``s3://<bucket>/releases/<id>/v<N>/``."""
    from ioarchive.publish.preconditions import prepare_publication
    from ioarchive.publish.upload import publish_release, s3_store

    layout = layout_for(params)
    # Re-check every gate from the audit trail before any upload (RELEASE_SPEC 7), then record
    # this run's sign-offs in the manifest (rendered before the publication sign-off).
    prepare_publication(layout, variant, params, dag_run)
    result = publish_release(
        s3_store(aws_conn_id=S3_CONN_ID),
        staging=layout.root,
        release_id=layout.release_id,
        variant=variant,
        bucket=bucket_for(variant),
        version=int(params.get("version", 1)),
    )
    log.info("%s", result.summary())
    return {"variant": variant, "url": result.url, "uploaded": len(result.uploaded), "skipped": len(result.skipped)}


def update_catalog(params: dict[str, Any]) -> list[str]:
    """Rebuild the public catalog from every manifest in the public bucket and upload it."""
    from ioarchive.publish.upload import list_published_manifests, publish_catalog, s3_store
    from ioarchive.render.documents import render_catalog

    store = s3_store(aws_conn_id=S3_CONN_ID)
    bucket = bucket_for("hashed")
    manifests = list_published_manifests(store, bucket)
    out = layout_for(params).root / "catalog"
    render_catalog(manifests, out)
    return publish_catalog(store, bucket, out)


# --- helpers -------------------------------------------------------------------------------

def _jsonable(value: Any) -> dict[str, Any]:
    from dataclasses import asdict, is_dataclass

    if is_dataclass(value) and not isinstance(value, type):
        data = asdict(value)
    elif isinstance(value, dict):
        data = dict(value)
    else:
        return {"result": str(value)}
    return json.loads(json.dumps(data, default=str))


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "spark-step":
        sys.exit(_spark_step_main(sys.argv[2], json.loads(sys.argv[3])))
    sys.exit("usage: python -m ioarchive.airflow.tasks spark-step <step> '<json args>'")


def no_retry_on_bad_input(func: Any, *args: Any, **kwargs: Any) -> Any:
    """Run a step; input or policy errors fail the task at once (a retry cannot fix them).

    Bad campaign input, a failed quality gate and a refused publication need a person; retrying
    them would only delay the failure notification by the retry delays.
    """
    from airflow.sdk.exceptions import AirflowFailException

    from ioarchive.publish.upload import PublishRefused

    try:
        return func(*args, **kwargs)
    except (InvalidRelease, QualityGateFailed, PublishRefused) as exc:
        raise AirflowFailException(str(exc)) from exc
