"""``make demo``: one whole release on a generated campaign, driven as the people involved would.

1. generate a small campaign;
2. start the local stack (``ioarchive.devtools.stack``), or reuse the one already running;
3. the integrity lead marks the linked investigations concluded in the registry;
4. ``trigger_user`` triggers ``io_release`` through the REST API, for the next free version of
   the release in the buckets: v1 the first time, v2 beside it the next (the stack keeps its
   buckets across ``make down``/``make up``), with a ``changelog`` from v2 on;
5. ``reviewer_a`` approves the attribution, ``reviewer_b`` approves publication (REST API,
   each as themselves: four eyes);
6. wait for success, print the published folders and run ``ioarchive verify`` on both;
7. print ``approval -> publication gate: N s``, taken from the run's HITL records in Airflow
   (issue #20's measure of the fixed cost per release), not from the demo's own clock.

The stack stays up afterwards so the run can be explored in the UI; ``make down`` stops it.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from ioarchive import settings
from ioarchive.devtools.stack import (
    DEFAULT_STATE_DIR,
    MEMBER_BUCKET,
    PUBLIC_BUCKET,
    REPO,
    REVIEWERS,
    TRIGGER_USER,
    AirflowClient,
    Stack,
    StackError,
)

DAG_ID = "io_release"


def say(text: str) -> None:
    print(f"[demo {time.strftime('%H:%M:%S')}] {text}", flush=True)


def running_stack(state_dir: Path, port: int) -> Stack:
    """The stack in ``state_dir`` if it runs, else a freshly started one."""
    try:
        stack = Stack.load(state_dir)
        if stack.pids and all(stack.alive().values()):
            stack.wait_healthy(timeout=60)
            say(f"reusing the running stack at {stack.base_url}")
            return stack
    except StackError:
        pass
    say("starting the local stack (Airflow api-server, scheduler, dag-processor, triggerer; S3 server)...")
    stack = Stack(state_dir=state_dir, api_port=port, registry_poke_seconds=5)
    stack.up()
    say(f"stack up: Airflow {stack.base_url}, S3 {stack.s3_endpoint}")
    return stack


def next_version(client: Any, release_id: str, buckets: tuple[str, ...] = (PUBLIC_BUCKET, MEMBER_BUCKET)) -> int:
    """One more than the highest version of ``release_id`` in either bucket (1 if none).

    Both buckets count: a version is taken as soon as any object of it exists (a publication
    cut short, a withdrawal record), since a published version is immutable.
    """
    highest = 0
    for bucket in buckets:
        pages = client.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix=f"releases/{release_id}/v", Delimiter="/")
        for page in pages:
            for prefix in page.get("CommonPrefixes", []):
                tail = prefix["Prefix"].rstrip("/").rsplit("/v", 1)[-1]
                if tail.isdigit():
                    highest = max(highest, int(tail))
    return highest + 1


def _timestamp(value: str) -> datetime:
    """An Airflow REST timestamp (ISO 8601, ``Z`` or an offset) as an aware datetime."""
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def approval_to_gate_seconds(hitl_details: list[dict[str, Any]]) -> float:
    """Seconds from the attribution sign-off's approval to the publication gate awaiting input.

    Both ends are Airflow's own records of the run (``GET .../hitlDetails``): the attribution
    gate's ``responded_at`` and the publication gate's ``created_at`` (written when the task
    parks for input). The demo's polling and sleeps therefore do not count, so the figure is
    the pipeline's: extraction, quality, render and the scheduling between them.
    """
    by_task = {d["task_instance"]["task_id"]: d for d in hitl_details}
    missing = [t for t in ("attribution_signoff", "publication_signoff") if t not in by_task]
    if missing:
        raise ValueError(f"no HITL record for {', '.join(missing)} in this run")
    approved = by_task["attribution_signoff"].get("responded_at")
    if not approved:
        raise ValueError("attribution_signoff has not been answered")
    parked = by_task["publication_signoff"]["created_at"]
    return (_timestamp(parked) - _timestamp(approved)).total_seconds()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ioarchive.devtools.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--state-dir", default=str(DEFAULT_STATE_DIR))
    parser.add_argument("--port", type=int, default=settings.get_int("IOARCHIVE_API_PORT"))
    parser.add_argument("--out", default=str(REPO / "demo-output"), help="where the generated campaign goes")
    parser.add_argument("--accounts", type=int, default=60)
    parser.add_argument("--posts", type=int, default=1500)
    parser.add_argument("--media-mib", type=int, default=8)
    args = parser.parse_args(argv)

    from ioarchive.devtools.generate.campaign import generate_campaign
    from ioarchive.request.campaign import Campaign

    campaign_dir = Path(args.out) / "campaign"
    say(f"generating a campaign ({args.accounts} accounts, {args.posts} posts, {args.media_mib} MiB media) in {campaign_dir}")
    generate_campaign(campaign_dir, seed=1, accounts=args.accounts, posts=args.posts,
                      media_bytes=args.media_mib * 1024**2, release_month="2021-02", overwrite=True)
    campaign = Campaign.load(campaign_dir)
    release_id = f"{campaign.campaign_id.lower()}_{campaign.disclosure_month.replace('-', '')}"

    try:
        stack = running_stack(Path(args.state_dir), args.port)
    except StackError as exc:
        say(f"could not start the stack: {exc}")
        return 1
    client = AirflowClient.for_stack(stack)
    client.wait_for_dag(DAG_ID, TRIGGER_USER)
    client.unpause(DAG_ID, TRIGGER_USER)

    for investigation in campaign.investigation_ids:
        stack.set_investigation(campaign.campaign_id, investigation, "concluded", "integrity_lead")
        say(f"integrity_lead marked investigation {investigation} of {campaign.campaign_id} concluded")

    version = next_version(stack.s3_client(), release_id)
    run_id = f"demo_{release_id}_v{version}_{int(time.time())}"
    conf = {"campaign_dir": str(campaign_dir.resolve()), "release_id": release_id, "version": version,
            "reviewers": list(REVIEWERS), "archive_target_bytes": 2 * 1024**2}
    if version > 1:  # v1 is already in the buckets (the stack keeps them): this demo publishes a correction
        conf["changelog"] = f"Demo re-release: v{version} published beside v{version - 1} by make demo."
        say(f"{release_id} v{version - 1} is already in the buckets (kept across `make down`/`make up`): "
            f"this run publishes v{version} beside it")
    client.trigger(DAG_ID, run_id, conf, TRIGGER_USER)
    say(f"{TRIGGER_USER} triggered {DAG_ID} run {run_id} for {release_id} v{version}")
    say(f"follow it at {stack.base_url}/dags/{DAG_ID}/runs/{run_id}")

    reviewer_a, reviewer_b = REVIEWERS
    for gate, reviewer, comment in (
        ("attribution_signoff", reviewer_a, "attribution statement matches the investigation report"),
        ("publication_signoff", reviewer_b, "counts, README and data quality reviewed"),
    ):
        say(f"waiting for the {gate.replace('_', ' ')} (the pipeline runs up to it)...")
        try:
            client.wait_task_state(DAG_ID, run_id, gate, {"awaiting_input"}, TRIGGER_USER, timeout=1800)
        except StackError as exc:
            say(f"the run stopped before {gate}: {exc}")
            return 1
        stack.wait_scheduler_saw(run_id, gate, "awaiting_input")  # an instant answer can race the scheduler
        client.answer(DAG_ID, run_id, gate, reviewer, "Approve", comment)
        say(f"{reviewer} approved the {gate.replace('_', ' ')}: {comment!r}")

    state = client.wait_run(DAG_ID, run_id, TRIGGER_USER, timeout=1800)
    if state != "success":
        say(f"run {run_id} ended {state}: {client.task_states(DAG_ID, run_id, TRIGGER_USER)}")
        return 1
    say(f"run {run_id} succeeded")

    status = 0
    for bucket in (PUBLIC_BUCKET, MEMBER_BUCKET):
        url = f"s3://{bucket}/releases/{release_id}/v{version}/"
        listing = stack.s3_client().list_objects_v2(Bucket=bucket, Prefix=url.split("/", 3)[3])
        say(f"published {url} ({len(listing.get('Contents', []))} objects):")
        for obj in listing.get("Contents", []):
            print(f"    {obj['Size']:>12,d}  {obj['Key']}")
        say(f"ioarchive verify {url}")
        result = subprocess.run(
            [sys.executable, "-m", "ioarchive.cli.main", "verify", url, "--endpoint-url", stack.s3_endpoint],
            env=stack.env(),
        )
        status |= result.returncode
    say(f"catalog: s3://{PUBLIC_BUCKET}/catalog/index.html; staging: {stack.staging_root / release_id}")
    say(f"the stack keeps running for exploration at {stack.base_url} (users and passwords: "
        f"{stack.passwords_file}); `make down` stops it")
    seconds = approval_to_gate_seconds(client.hitl_details(DAG_ID, run_id, TRIGGER_USER))
    say(f"approval -> publication gate: {seconds:.0f} s")
    return status


if __name__ == "__main__":
    sys.exit(main())
