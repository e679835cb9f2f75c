"""End to end: a real Airflow (api-server, scheduler, dag-processor, triggerer) and a real S3 server.

One stack per metadata database (SQLite, then PostgreSQL), shared by every scenario of this
module (PostgreSQL first, then SQLite). Everything is driven through the REST API as named
users, as reviewers and on-call would:

- the whole release: attribution approved by reviewer_a; the run waits (task
  ``up_for_reschedule``, no worker slot) while an investigation is open; the registry row is
  concluded; extraction, pseudonymization, media, quality and render run; publication approved
  by reviewer_b; both buckets hold exactly the bytes their manifests list, and ``verify``
  passes on both. On PostgreSQL the run is undisturbed. On SQLite it is the rerun drill
  (issue #8): every writing task (extract, pseudonymize, pack_media, render, publish, catalog)
  is SIGKILLed once in the middle of its writes (``ioarchive.devtools.drills`` hold points) and cleared
  through the REST API with the runbook's request; the published objects must be byte-identical
  to the undisturbed run's (the manifests differ only in the sign-off times);
- a rejected attribution fails the run, names who rejected and why, publishes nothing
  (PostgreSQL stack; the SQLite stack's rejections are the browser module's);
- a self-approval by the user who triggered the run fails it (four eyes, PostgreSQL stack): the administrator,
  the only role that may both trigger and answer a gate (tests/e2e/test_roles.py shows the
  other roles refused by the API);
- the public bucket guard refuses the unhashed variant (library call against the same S3);
- no retry hides a defect: every task instance of the whole release succeeded on try 1 (on
  the drill, the killed and cleared tasks on try 2);
- publication re-checks the gates from the audit trail (issue #17, PostgreSQL stack): an
  administrator marks both gate tasks ``success`` over REST and no reviewer answers -> both
  publish tasks fail on try 1 naming the missing sign-offs; then, clearing only the publish
  tasks each time, a hand-written approval by the triggering user, an investigation reopened
  after the wait and a staged file changed after the quality gate each fail them again, naming
  the precondition; neither bucket ever holds an object of that release.
- retraction after an appeal (issue #18, PostgreSQL stack, after its release): ``io_retract``
  removes two accounts of the published v1 (one pseudonymized, one above the threshold): v2 is
  published, v1 keeps only its withdrawal record in both buckets, the catalog marks it, no byte
  of either bucket names them, v2's media archives that held none of their media are v1's bytes
  and were copied (CopyObject counted by the store's botocore hook), ``ioarchive diff`` names
  exactly the removed accounts, posts and media, and the runbook's ``withdrawal-check`` passes.

The scenario runs are triggered together when the stack is up, so their gates wait in
parallel (``awaiting_input`` holds no slot) while the whole release runs its Spark steps.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import time
from pathlib import Path

import pytest
from ioarchive.devtools import drills
from ioarchive.devtools.stack import (
    ADMIN_USER,
    MEMBER_BUCKET,
    ONCALL_USER,
    PUBLIC_BUCKET,
    REVIEWERS,
    TRIGGER_USER,
    AirflowClient,
    Stack,
)
from support import runbook
from support.stacks import start_stack, stop_stack

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(2400)]

DAG_ID = "io_release"
REVIEWER_A, REVIEWER_B = REVIEWERS
RELEASE_OK = "e2eok_202102"
RELEASE_REJECT = "e2ereject_202102"
RELEASE_SELF = "e2eself_202102"
RELEASE_MARK = "e2emark_202102"
PUBLISH_TASKS = ("publish_public", "publish_member")


# --- fixtures -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def e2e_campaign(tmp_path_factory) -> Path:
    """A small generated campaign (40 accounts, 400 posts, 2 MiB of media)."""
    from ioarchive.devtools.generate.campaign import generate_campaign

    out = tmp_path_factory.mktemp("e2e_campaign") / "campaign"
    generate_campaign(out, seed=23, accounts=40, posts=400, media_bytes=2 * 1024**2, release_month="2021-02")
    return out


@pytest.fixture(scope="module", params=["postgresql", "sqlite"])
def stack(request, tmp_path_factory, e2e_campaign):
    """One running stack per metadata DB, with the scenario runs already triggered.

    PostgreSQL first (its stack is stopped when the module moves on), then the session's shared
    SQLite stack, which the browser module uses after this one.
    """
    if request.param == "sqlite":
        the_stack = request.getfixturevalue("sqlite_stack")
    else:
        the_stack = start_stack(tmp_path_factory.mktemp("stack_postgresql"), "postgresql")
    try:
        client = AirflowClient.for_stack(the_stack)
        client.wait_for_dag(DAG_ID, TRIGGER_USER)
        client.unpause(DAG_ID, TRIGGER_USER)
        scenarios = [("ok", RELEASE_OK, list(REVIEWERS))]
        if request.param == "postgresql":
            # The gate scenarios once, on PostgreSQL: what they test is the gate operator, not the
            # metadata DB (the SQLite stack's rejections are the browser module's, in Chromium).
            scenarios += [("reject", RELEASE_REJECT, list(REVIEWERS)), ("self", RELEASE_SELF, [ADMIN_USER, REVIEWER_A])]
            # Gates marked success (issue #17): a second full pipeline, so on the undisturbed stack
            # only (the SQLite drill arms hold points every running release would stop at). The
            # triggering user is listed as a reviewer so that a hand-written self-approval is
            # refused by four eyes, not merely as an unassigned user.
            scenarios.append(("mark", RELEASE_MARK, [*REVIEWERS, TRIGGER_USER]))
        the_stack.runs = {  # type: ignore[attr-defined]
            name: _trigger(client, e2e_campaign, release_id, reviewers, ADMIN_USER if name == "self" else TRIGGER_USER)
            for name, release_id, reviewers in scenarios
        }
        the_stack.client = client  # type: ignore[attr-defined]
        the_stack.metadata = request.param  # type: ignore[attr-defined]
        yield the_stack
    finally:
        if request.param != "sqlite":
            stop_stack(the_stack)


def _trigger(
    client: AirflowClient, campaign: Path, release_id: str, reviewers: list[str], user: str = TRIGGER_USER
) -> str:
    run_id = f"{release_id}__{secrets.token_hex(3)}"
    conf = {
        "campaign_dir": str(campaign),
        "release_id": release_id,
        "version": 1,
        "threshold": 5000,
        "archive_target_bytes": 512 * 1024,
        "reviewers": reviewers,
    }
    run = client.trigger(DAG_ID, run_id, conf, user)
    assert run["triggering_user_name"] == user
    return run_id


# --- helpers ----------------------------------------------------------------------------------

def _released_keys(stack: Stack, bucket: str, release_id: str) -> dict[str, bytes]:
    client = stack.s3_client()
    out: dict[str, bytes] = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"releases/{release_id}/"):
        for obj in page.get("Contents", []):
            out[obj["Key"]] = client.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
    return out


def _wait_gate(stack: Stack, run_id: str, task_id: str, dag_id: str = DAG_ID) -> dict:
    client: AirflowClient = stack.client  # type: ignore[attr-defined]
    client.wait_task_state(dag_id, run_id, task_id, {"awaiting_input"}, TRIGGER_USER, timeout=1500)
    stack.wait_scheduler_saw(run_id, task_id, "awaiting_input")  # answer only after the park is processed
    details = [d for d in client.hitl_details(dag_id, run_id, TRIGGER_USER) if d["task_instance"]["task_id"] == task_id]
    assert len(details) == 1
    return details[0]


def _signoffs(stack: Stack, release_id: str) -> list[dict]:
    path = stack.staging_root / release_id / "v1" / "signoffs.json"
    return json.loads(path.read_text()) if path.exists() else []


def _assert_nothing_published(stack: Stack, release_id: str) -> None:
    assert _released_keys(stack, PUBLIC_BUCKET, release_id) == {}
    assert _released_keys(stack, MEMBER_BUCKET, release_id) == {}


# --- scenarios --------------------------------------------------------------------------------

UNDISTURBED: dict[str, dict[str, bytes]] = {}
"""Objects published by the undisturbed (PostgreSQL) run, per bucket: what the drill run must equal."""
RETRACTED: dict[str, dict[str, bytes]] = {}
"""The release's objects per bucket after the undisturbed (PostgreSQL) retraction: what the drill must equal."""
RETRACTION_REASON = "Appeal granted: the platform restored two accounts."


def _process_title(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def _parent(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1])


def _worker_process(pid: int) -> tuple[int, str]:
    """The Airflow task process running ``pid`` (itself or an ancestor) and its task-instance id.

    Airflow's task runner retitles itself ``airflow worker -- <ti id>``; a Spark step's child
    process is below it.
    """
    probe = pid
    while probe > 1:
        title = _process_title(probe)
        if title.startswith("airflow worker -- "):
            return probe, title.split("-- ", 1)[1].strip()
        probe = _parent(probe)
    raise AssertionError(f"no 'airflow worker' process above pid {pid} ({_process_title(pid)!r})")


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _kill_and_clear(stack: Stack, run_id: str, point: str, killed_keys: list[str] | None = None,
                    dag_id: str = DAG_ID) -> str:
    """Wait for the run to hold at ``point``, SIGKILL its task process, clear it as on-call does."""
    import signal

    client: AirflowClient = stack.client  # type: ignore[attr-defined]
    reached = stack.state_dir / "drills" / f"{point}.reached"
    deadline = time.monotonic() + 1200
    while not (reached.exists() and reached.read_text()):
        if client.run(dag_id, run_id, TRIGGER_USER)["state"] in ("success", "failed"):
            raise AssertionError(f"the run ended before reaching {point}: {client.task_states(dag_id, run_id, TRIGGER_USER)}")
        assert time.monotonic() < deadline, f"{point} never reached: {client.task_states(dag_id, run_id, TRIGGER_USER)}"
        time.sleep(0.5)
    holder = json.loads(reached.read_text())["pid"]
    worker, ti_id = _worker_process(holder)
    listing = client.call("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances?limit=1000", TRIGGER_USER)
    ti = next(t for t in listing["task_instances"] if t["id"] == ti_id)
    os.kill(worker, signal.SIGKILL)
    key = ti["task_id"] if ti["map_index"] == -1 else f"{ti['task_id']}[{ti['map_index']}]"
    if killed_keys is not None:
        killed_keys.append(key)
    client.wait_task_state(dag_id, run_id, key, {"up_for_retry", "failed"}, TRIGGER_USER, timeout=300)
    end = time.monotonic() + 30
    while _alive(holder) and time.monotonic() < end:
        time.sleep(0.2)
    assert not _alive(holder), f"pid {holder} ({_process_title(holder)}) outlived its killed task: it would keep writing"
    # On-call's rerun, exactly as docs/runbook.md writes it (token, then clearTaskInstances).
    script = runbook.fill(runbook.rerun_snippet(), {  # io_retract: the same request on its own URL (runbook)
        "<you>": ONCALL_USER, "<password>": stack.passwords()[ONCALL_USER],
        "<run id>": run_id, "<task id>": ti["task_id"],
    }).replace(f"/dags/{DAG_ID}/", f"/dags/{dag_id}/")
    done = runbook.run(script, env={**stack.env(), "AIRFLOW": stack.base_url})
    assert done.returncode == 0, done.stderr
    cleared = json.loads(done.stdout)
    assert ti["task_id"] in {t["task_id"] for t in cleared["task_instances"]}, cleared
    return ti["task_id"]


def _task_instances(client: AirflowClient, run_id: str, dag_id: str = DAG_ID) -> dict[str, dict]:
    """``task_id`` (``task_id[i]`` for mapped instances) -> the REST task instance."""
    listing = client.call("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances?limit=1000", TRIGGER_USER)
    return {
        (ti["task_id"] if ti["map_index"] == -1 else f"{ti['task_id']}[{ti['map_index']}]"): ti
        for ti in listing["task_instances"]
    }


def _assert_every_task_succeeded_first_time(client: AirflowClient, run_id: str, killed_keys: list[str],
                                            dag_id: str = DAG_ID) -> None:
    """No retry hides a defect: every task instance succeeded on try 1.

    The drill's killed instances ran exactly twice (killed, then cleared as the runbook says);
    a killed task's clear also clears its other mapped instances and downstream tasks, so those
    may have run twice too, never more.
    """
    instances = _task_instances(client, run_id, dag_id)
    assert len(instances) > 10, sorted(instances)
    killed_tasks = {key.split("[")[0] for key in killed_keys}
    wrong = {}
    for key, ti in sorted(instances.items()):
        if key in killed_keys:
            allowed = {2}
        elif ti["task_id"] in killed_tasks:
            allowed = {1, 2}
        else:
            allowed = {1}
        if ti["state"] != "success" or ti["try_number"] not in allowed:
            wrong[key] = (ti["state"], ti["try_number"], sorted(allowed))
    assert not wrong, f"task instances not succeeded on the expected try (state, try, allowed): {wrong}"


def _assert_same_objects(bucket: str, objects: dict[str, bytes], reference: dict[str, bytes]) -> None:
    """A drill's objects equal the undisturbed run's: same keys, same bytes, manifests but for their times."""
    assert sorted(objects) == sorted(reference), f"{bucket}: duplicate, orphaned or missing objects after the drill"
    for key, data in objects.items():
        if key.endswith("/manifest.json"):
            assert _normalized_manifest(data) == _normalized_manifest(reference[key]), key
        else:
            assert hashlib.sha256(data).hexdigest() == hashlib.sha256(reference[key]).hexdigest(), key


@contextlib.contextmanager
def _holds_armed(stack: Stack, points: tuple[str, ...]):
    """Arm the drill's hold points (earlier drills' ``.reached`` records removed first); disarm
    whatever is left afterwards, so a failed drill never stops the next module's runs."""
    drill_dir = stack.state_dir / "drills"
    for stale in drill_dir.glob("*.reached"):
        stale.unlink()
    for point in points:
        (drill_dir / f"{point}.hold").write_text("")
    try:
        yield
    finally:
        for armed in drill_dir.glob("*.hold"):
            armed.unlink()


def _normalized_manifest(data: bytes) -> dict:
    """A manifest (or withdrawal record) without its times: generation, sign-offs, withdrawal
    (the only things two runs cannot share)."""
    manifest = json.loads(data)
    manifest.pop("generated_at", None)
    manifest.pop("withdrawn_at", None)
    for signoff in manifest.get("signoffs", []):
        signoff.pop("at")
    return manifest


def test_release_end_to_end(stack, e2e_campaign):
    client: AirflowClient = stack.client  # type: ignore[attr-defined]
    run_id = stack.runs["ok"]  # type: ignore[attr-defined]
    drill = stack.metadata == "sqlite"  # type: ignore[attr-defined]
    campaign = json.loads((e2e_campaign / "campaign.json").read_text())
    with _holds_armed(stack, drills.POINTS if drill else ()):
        _release_end_to_end(stack, client, run_id, drill, campaign)


def _release_end_to_end(stack: Stack, client: AirflowClient, run_id: str, drill: bool, campaign: dict) -> None:
    # Gate 1: the reviewer sees the campaign, the attribution statement and counts.
    gate = _wait_gate(stack, run_id, "attribution_signoff")
    assert {u["name"] for u in gate["assigned_users"]} == set(REVIEWERS)
    assert "| attributed accounts | 40 |" in gate["body"]
    assert campaign["title"].split(" (")[0] in gate["body"]
    client.answer(DAG_ID, run_id, "attribution_signoff", REVIEWER_A, "Approve", "attribution confirmed")

    # Gate 2: investigations still open -> rescheduled, no worker slot; extraction has not started.
    assert campaign["investigation_ids"], "the generator links at least one investigation"
    client.wait_task_state(DAG_ID, run_id, "wait_for_investigations", {"up_for_reschedule"}, TRIGGER_USER, 300)
    stack.wait_scheduler_saw(run_id, "wait_for_investigations", "up_for_reschedule")
    states = client.task_states(DAG_ID, run_id, TRIGGER_USER)
    assert states["wait_for_investigations"] in {"up_for_reschedule", "queued", "scheduled"}
    assert states["extract"] is None
    env = stack.env()
    for investigation in campaign["investigation_ids"]:  # the runbook's command, as the integrity lead
        done = runbook.run(runbook.fill(runbook.command("ioarchive investigations set"), {
            "<campaign_id>": campaign["campaign_id"], "<id>": investigation, "<you>": "integrity_lead"}), env)
        assert done.returncode == 0 and "concluded" in done.stdout, done.stderr
    listed = runbook.run(runbook.fill(runbook.command("ioarchive investigations list"),
                                      {"<campaign_id>": campaign["campaign_id"]}), env)
    assert listed.returncode == 0, listed.stderr
    rows = [line.split() for line in listed.stdout.splitlines()[1:]]
    assert sorted((r[1], r[2], r[-1]) for r in rows) == sorted(
        (i, "concluded", "integrity_lead") for i in campaign["investigation_ids"])

    killed: list[str] = []
    killed_keys: list[str] = []
    if drill:
        for point in (drills.EXTRACT, drills.PSEUDONYMIZE, drills.PACK_MEDIA, drills.RENDER):
            killed.append(_kill_and_clear(stack, run_id, point, killed_keys))

    # Gate 4: publication sign-off shows the reviewer summary; a second reviewer approves.
    gate = _wait_gate(stack, run_id, "publication_signoff")
    assert "hashed" in gate["body"] and "unhashed" in gate["body"]
    assert "README.md" in gate["body"]
    client.answer(DAG_ID, run_id, "publication_signoff", REVIEWER_B, "Approve", "counts and quality checked")
    if drill:
        for point in (drills.PUBLISH, drills.CATALOG):
            killed.append(_kill_and_clear(stack, run_id, point, killed_keys))
        assert killed[:4] == ["extract", "pseudonymize", "pack_media", "render"]
        assert killed[4] in {"publish_public", "publish_member"} and killed[5] == "update_catalog"
    state = client.wait_run(DAG_ID, run_id, TRIGGER_USER, timeout=900)
    assert state == "success", client.task_states(DAG_ID, run_id, TRIGGER_USER)
    _assert_every_task_succeeded_first_time(client, run_id, killed_keys)

    # Both buckets hold exactly the bytes their manifests list, and nothing else.
    staging = stack.staging_root / RELEASE_OK / "v1" / "release"
    published: dict[str, dict[str, bytes]] = {}
    for bucket, variant in ((PUBLIC_BUCKET, "hashed"), (MEMBER_BUCKET, "unhashed")):
        objects = _released_keys(stack, bucket, RELEASE_OK)
        published[bucket] = dict(objects)
        prefix = f"releases/{RELEASE_OK}/v1/"
        manifest_bytes = objects.pop(prefix + "manifest.json")
        assert manifest_bytes == (staging / variant / "manifest.json").read_bytes()
        manifest = json.loads(manifest_bytes)
        assert manifest["variant"] == variant
        listed = {prefix + f["name"]: f for f in manifest["files"]}
        assert set(objects) == set(listed), f"{bucket}: objects differ from the manifest"
        for key, entry in listed.items():
            assert len(objects[key]) == entry["bytes"], key
            assert hashlib.sha256(objects[key]).hexdigest() == entry["sha256"], key
        assert any(name.startswith("media/") and name.endswith(".zip") for name in (f["name"] for f in manifest["files"]))
        by_gate = {s["gate"]: s for s in manifest["signoffs"]}
        assert by_gate["attribution"]["by"] == REVIEWER_A and by_gate["attribution"]["decision"] == "approved"
        assert by_gate["publication"]["by"] == REVIEWER_B and by_gate["publication"]["decision"] == "approved"
        assert TRIGGER_USER not in {s["by"] for s in manifest["signoffs"]}
        uploads = stack.s3_client().list_multipart_uploads(Bucket=bucket).get("Uploads", [])
        assert uploads == [], f"{bucket}: unfinished multipart uploads left behind: {uploads}"
    assert not any("unhashed" in key for key in published[PUBLIC_BUCKET])

    # ioarchive verify (the runbook's commands, as on-call runs them) passes on both published
    # versions and on the staged folder; the public catalog lists the release.
    for bucket in (PUBLIC_BUCKET, MEMBER_BUCKET):
        done = runbook.run(runbook.fill(runbook.command("ioarchive verify s3://"), {
            "<bucket>": bucket, "<release_id>": RELEASE_OK, "<N>": "1"}), env)
        assert done.returncode == 0 and "PASSED" in done.stdout, done.stdout + done.stderr
    done = runbook.run(runbook.fill(runbook.command("ioarchive verify <staging>"), {
        "<staging>": str(stack.staging_root / RELEASE_OK / "v1")}), env)
    assert done.returncode == 0 and "PASSED" in done.stdout, done.stdout + done.stderr
    done = runbook.run(runbook.fill(runbook.command("python -m ioarchive.devtools.stack status"),
                                    {"var/stack": str(stack.state_dir)}), env)
    assert done.returncode == 0 and "scheduler" in done.stdout, done.stdout + done.stderr
    catalog = json.loads(stack.s3_client().get_object(Bucket=PUBLIC_BUCKET, Key="catalog/releases.json")["Body"].read())
    assert RELEASE_OK in json.dumps(catalog)

    if not drill:
        UNDISTURBED.update(published)
        return
    # The drill: same objects, same bytes as the undisturbed run; manifests differ only in times.
    if not UNDISTURBED:
        pytest.fail("the undisturbed PostgreSQL release did not complete, so the drill has nothing to compare with")
    for bucket, objects in published.items():
        _assert_same_objects(bucket, objects, UNDISTURBED[bucket])


def test_public_bucket_guard_refuses_the_unhashed_variant(stack):
    """A library call against the same S3 server: unhashed data never reaches the public bucket."""
    from ioarchive.publish.upload import PublishRefused, publish_release, s3_store

    staging = stack.staging_root / RELEASE_OK / "v1"
    if not (staging / "release" / "unhashed" / "manifest.json").exists():
        pytest.fail("the end-to-end release did not stage an unhashed variant (see test_release_end_to_end)")
    before = sorted(_released_keys(stack, PUBLIC_BUCKET, RELEASE_OK))
    with pytest.raises(PublishRefused, match="(?i)public"):
        publish_release(
            s3_store(endpoint_url=stack.s3_endpoint),
            staging=staging,
            release_id=RELEASE_OK,
            variant="unhashed",
            bucket=PUBLIC_BUCKET,
            version=2,
            audience="public",
        )
    assert sorted(_released_keys(stack, PUBLIC_BUCKET, RELEASE_OK)) == before


def test_rejected_attribution_publishes_nothing(stack):
    if stack.metadata != "postgresql":  # type: ignore[attr-defined]
        pytest.skip("the gate scenarios run on the PostgreSQL stack (see the stack fixture)")
    client: AirflowClient = stack.client  # type: ignore[attr-defined]
    run_id = stack.runs["reject"]  # type: ignore[attr-defined]
    _wait_gate(stack, run_id, "attribution_signoff")
    client.answer(DAG_ID, run_id, "attribution_signoff", REVIEWER_B, "Reject", "attribution disputed by legal")
    assert client.wait_run(DAG_ID, run_id, TRIGGER_USER, timeout=180) == "failed"
    states = client.task_states(DAG_ID, run_id, TRIGGER_USER)
    assert states["attribution_signoff"] == "failed"
    assert states["extract"] == "upstream_failed" and states["publish_public"] == "upstream_failed"
    log = client.task_log(DAG_ID, run_id, "attribution_signoff", TRIGGER_USER)
    assert "rejected by 'reviewer_b'" in log and "attribution disputed by legal" in log
    assert _signoffs(stack, RELEASE_REJECT) == [
        {"gate": "attribution", "decision": "rejected", "by": REVIEWER_B,
         "at": _signoffs(stack, RELEASE_REJECT)[0]["at"], "comment": "attribution disputed by legal",
         "run_id": run_id}
    ]
    _assert_nothing_published(stack, RELEASE_REJECT)


def test_self_approval_by_the_triggering_user_fails(stack):
    if stack.metadata != "postgresql":  # type: ignore[attr-defined]
        pytest.skip("the gate scenarios run on the PostgreSQL stack (see the stack fixture)")
    client: AirflowClient = stack.client  # type: ignore[attr-defined]
    run_id = stack.runs["self"]  # type: ignore[attr-defined]
    gate = _wait_gate(stack, run_id, "attribution_signoff")
    assert ADMIN_USER in {u["id"] for u in gate["assigned_users"]}  # listed, yet refused below
    client.answer(DAG_ID, run_id, "attribution_signoff", ADMIN_USER, "Approve")
    assert client.wait_run(DAG_ID, run_id, TRIGGER_USER, timeout=180) == "failed"
    states = client.task_states(DAG_ID, run_id, TRIGGER_USER)
    assert states["attribution_signoff"] == "failed"
    assert states["wait_for_investigations"] == "upstream_failed"
    log = client.task_log(DAG_ID, run_id, "attribution_signoff", TRIGGER_USER)
    assert f"'{ADMIN_USER}' triggered this run and cannot also approve it" in log
    assert _signoffs(stack, RELEASE_SELF) == []  # a refused self-approval is not a sign-off
    _assert_nothing_published(stack, RELEASE_SELF)


# --- publication re-checks the gates from the audit trail (issue #17) ---------------------------

def _publish_attempt(client: AirflowClient, run_id: str, expected_try: int) -> str:
    """Wait until both publish tasks failed on ``expected_try`` and the scheduler has failed the
    run; return the logs of that try.

    The run's state is part of the wait because on-call clears a failed run: a clear sent while
    the scheduler is still finishing the run is overwritten by its "failed" (seen once: the
    cleared tasks then sat in state none under a failed run, never scheduled).
    """
    deadline = time.monotonic() + 600
    while True:
        instances = _task_instances(client, run_id)
        publish = [instances[t] for t in PUBLISH_TASKS]
        assert not [t for t in publish if t["state"] == "success"], f"a publish task succeeded: {publish}"
        if (all(t["state"] == "failed" and t["try_number"] == expected_try for t in publish)
                and client.run(DAG_ID, run_id, TRIGGER_USER)["state"] == "failed"):
            break
        assert time.monotonic() < deadline, f"publish tasks not failed on try {expected_try}: {publish}"
        time.sleep(2.0)
    return "\n".join(client.task_log(DAG_ID, run_id, t, TRIGGER_USER, try_number=expected_try) for t in PUBLISH_TASKS)


def _clear_publish_tasks(client: AirflowClient, run_id: str) -> None:
    """On-call reruns only the publish tasks (the upstream gates stay as they are)."""
    body = {"dag_run_id": run_id, "task_ids": list(PUBLISH_TASKS), "include_downstream": False,
            "only_failed": True, "dry_run": False}
    cleared = client.call("POST", f"/api/v2/dags/{DAG_ID}/clearTaskInstances", ONCALL_USER, body)
    assert {t["task_id"] for t in cleared["task_instances"]} == set(PUBLISH_TASKS), cleared


def _approve_by_hand(stack: Stack, run_id: str, attribution_by: str, publication_by: str) -> None:
    """Approvals written into this run's sign-off record by someone with access to the staging folder."""
    from ioarchive.gates.signoffs import Signoff, record_signoff

    path = stack.staging_root / RELEASE_MARK / "v1" / "signoffs.json"
    record_signoff(path, Signoff("attribution", "approved", attribution_by, "2026-12-01T10:00:00+00:00"), run_id)
    record_signoff(path, Signoff("publication", "approved", publication_by, "2026-12-01T11:00:00+00:00"), run_id)


def test_gates_marked_success_by_an_administrator_publish_nothing(stack, e2e_campaign):
    if stack.metadata != "postgresql":  # type: ignore[attr-defined]
        pytest.skip("runs on the undisturbed PostgreSQL stack only (see the stack fixture)")
    client: AirflowClient = stack.client  # type: ignore[attr-defined]
    run_id = stack.runs["mark"]  # type: ignore[attr-defined]
    campaign = json.loads((e2e_campaign / "campaign.json").read_text())

    # An administrator marks both gates success; no reviewer answers.
    for gate in ("attribution_signoff", "publication_signoff"):
        _wait_gate(stack, run_id, gate)
        client.call("PATCH", f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{gate}", ADMIN_USER,
                    {"new_state": "success"})
    assert client.wait_run(DAG_ID, run_id, TRIGGER_USER, timeout=1500) == "failed"
    log = _publish_attempt(client, run_id, 1)  # failed on try 1: no retry
    assert "precondition(s) not met: attribution sign-off, publication sign-off" in log
    assert f"no publication decision is recorded for run {run_id}" in log
    states = client.task_states(DAG_ID, run_id, TRIGGER_USER)
    assert states["update_catalog"] == "upstream_failed" and states["quality_gate"] == "success"
    _assert_nothing_published(stack, RELEASE_MARK)
    assert [e for e in _signoffs(stack, RELEASE_MARK) if e.get("run_id") == run_id] == []

    # An approval by the triggering user written by hand into the record: four eyes.
    _approve_by_hand(stack, run_id, REVIEWER_A, TRIGGER_USER)
    _clear_publish_tasks(client, run_id)
    log = _publish_attempt(client, run_id, 2)
    assert "precondition(s) not met: publication sign-off." in log
    assert f"is by '{TRIGGER_USER}', who triggered the run (four eyes)" in log
    _assert_nothing_published(stack, RELEASE_MARK)

    # Proper-looking approvals, but an investigation reopened after the wait.
    _approve_by_hand(stack, run_id, REVIEWER_A, REVIEWER_B)
    reopened = campaign["investigation_ids"][0]
    stack.set_investigation(campaign["campaign_id"], reopened, "open", "integrity_lead")
    try:
        _clear_publish_tasks(client, run_id)
        log = _publish_attempt(client, run_id, 3)
    finally:
        stack.set_investigation(campaign["campaign_id"], reopened, "concluded", "integrity_lead")
    assert "precondition(s) not met: investigations concluded." in log and reopened in log
    _assert_nothing_published(stack, RELEASE_MARK)

    # One staged file changed after the quality gate (the member variant: both buckets stay empty).
    staged = stack.staging_root / RELEASE_MARK / "v1" / "release" / "unhashed" / "parquet" / "users.parquet"
    staged.write_bytes(staged.read_bytes() + b"changed after validation")
    _clear_publish_tasks(client, run_id)
    log = _publish_attempt(client, run_id, 4)
    assert "precondition(s) not met: quality summary." in log
    assert "unhashed files changed after the quality gate" in log and "parquet/users.parquet" in log
    _assert_nothing_published(stack, RELEASE_MARK)


# --- retraction after a successful appeal (issue #18, RELEASE_SPEC 8) ---------------------------

RETRACT_DAG = "io_retract"


def _xcom(client: AirflowClient, dag_id: str, run_id: str, task_id: str):
    # Without ``deserialize`` the API returns the value as stored: JSON (text or already parsed).
    entry = client.call("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/"
                               "return_value", TRIGGER_USER)
    value = entry["value"]
    return json.loads(value) if isinstance(value, str) else value


def _all_objects(stack: Stack, bucket: str) -> dict[str, bytes]:
    client = stack.s3_client()
    out = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for obj in page.get("Contents", []):
            out[obj["Key"]] = client.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
    return out


def _diff_json(stack: Stack, old: Path, new: Path, variant: str) -> dict:
    """``ioarchive diff --json`` of two versions that differ (exit 1, as diff(1): 0 means the same)."""
    done = runbook.run(f"ioarchive diff --json --variant {variant} {old} {new}", stack.env())
    assert done.returncode == 1, done.stdout + done.stderr
    return json.loads(done.stdout)


def test_retraction_end_to_end(stack, e2e_campaign):
    """Retract two accounts (one pseudonymized, one above the threshold) from the published v1.

    On PostgreSQL undisturbed, right after its release, then a corrected v3 by io_release. On
    SQLite the retraction's kill-and-clear drill, from the drill's v1 (same bytes as
    PostgreSQL's): every writing task of io_retract (extract, pseudonymize, pack_media, render,
    publish, update_catalog, withdraw) is SIGKILLed once at its hold point and cleared with the
    runbook's request; both buckets must then hold what the undisturbed retraction left, byte
    for byte (manifests and withdrawal records but for their times).
    """
    if stack.metadata != "postgresql":  # type: ignore[attr-defined]
        _retraction_drill(stack, e2e_campaign)
        return
    import pyarrow.parquet as pq
    from ioarchive.pseudonymize.pseudonym import pseudonym
    from support.leak import scan
    from support.retraction import needles, pick_accounts

    client: AirflowClient = stack.client  # type: ignore[attr-defined]
    started = time.monotonic()
    v1_prefix, v2_prefix = f"releases/{RELEASE_OK}/v1/", f"releases/{RELEASE_OK}/v2/"
    before = {b: _released_keys(stack, b, RELEASE_OK) for b in (PUBLIC_BUCKET, MEMBER_BUCKET)}
    if not before[PUBLIC_BUCKET].get(v1_prefix + "manifest.json"):
        pytest.fail("v1 was not published by test_release_end_to_end: nothing to retract from")
    small, large = pick_accounts(e2e_campaign, fewest_media=True)  # most archives must keep their bytes
    key = stack.pseudonym_key().encode()

    client.wait_for_dag(RETRACT_DAG, TRIGGER_USER)
    client.unpause(RETRACT_DAG, TRIGGER_USER)
    run_id = f"retract_{RELEASE_OK}__{secrets.token_hex(3)}"
    reason = RETRACTION_REASON
    run = client.trigger(RETRACT_DAG, run_id, {"release_id": RELEASE_OK, "account_ids": [small, large],
                                               "reason": reason, "reviewers": list(REVIEWERS)}, TRIGGER_USER)
    assert run["triggering_user_name"] == TRIGGER_USER
    gate = _wait_gate(stack, run_id, "retraction_signoff", RETRACT_DAG)
    assert f"`{small}`" in gate["body"] and f"`{large}`" in gate["body"] and "v2" in gate["body"]
    client.answer(RETRACT_DAG, run_id, "retraction_signoff", REVIEWER_A, "Approve", "appeal confirmed")
    gate = _wait_gate(stack, run_id, "publication_signoff", RETRACT_DAG)
    assert "Accounts: 2 removed" in gate["body"], gate["body"]
    client.answer(RETRACT_DAG, run_id, "publication_signoff", REVIEWER_B, "Approve", "v2 checked")
    state = client.wait_run(RETRACT_DAG, run_id, TRIGGER_USER, timeout=1200)
    assert state == "success", client.task_states(RETRACT_DAG, run_id, TRIGGER_USER)
    _assert_every_task_succeeded_first_time(client, run_id, [], RETRACT_DAG)
    RETRACTED.update({b: _released_keys(stack, b, RELEASE_OK) for b in (PUBLIC_BUCKET, MEMBER_BUCKET)})

    v1_manifests = {b: json.loads(before[b][v1_prefix + "manifest.json"]) for b in before}
    for bucket, variant in ((PUBLIC_BUCKET, "hashed"), (MEMBER_BUCKET, "unhashed")):
        objects = _released_keys(stack, bucket, RELEASE_OK)
        # v1: only its withdrawal record is left.
        assert [k for k in objects if k.startswith(v1_prefix)] == [v1_prefix + "manifest.json"], bucket
        record = json.loads(objects[v1_prefix + "manifest.json"])
        assert record["superseded_by"] == 2 and record["reason"] == reason and record["files"] == []
        assert record["withdrawn_at"].endswith("Z") and record["withdrawn_at"][:4] == "2026"
        assert record["withdrawn_files"] == [{k: f[k] for k in ("name", "bytes", "sha256")}
                                             for f in v1_manifests[bucket]["files"]]
        # v2: exactly what its manifest lists, retraction + publication sign-offs, the changelog.
        manifest = json.loads(objects.pop(v2_prefix + "manifest.json"))
        listed = {v2_prefix + f["name"]: f for f in manifest["files"]}
        assert {k for k in objects if k.startswith(v2_prefix)} == set(listed), bucket
        assert all(hashlib.sha256(objects[k]).hexdigest() == f["sha256"] for k, f in listed.items())
        assert {s["gate"]: s["by"] for s in manifest["signoffs"]} == {"retraction": REVIEWER_A,
                                                                      "publication": REVIEWER_B}
        entry = manifest["changelog"][-1]
        assert entry["version"] == 2 and entry["text"].startswith(reason + " (changes from v1: Accounts: 2 removed")
        readme = objects[v2_prefix + "README.md"].decode()
        assert reason in readme and "Accounts: 2 removed" in readme
        assert manifest["counts"]["accounts"] == v1_manifests[bucket]["counts"]["accounts"] - 2
        # Media archives of v2 holding none of the removed media keep v1's bytes and were copied.
        published = _xcom(client, RETRACT_DAG, run_id, f"publish_{'public' if variant == 'hashed' else 'member'}")
        v1_archives = {f["sha256"]: f["name"] for f in v1_manifests[bucket]["files"] if f["name"].endswith(".zip")
                       and f["name"].startswith("media/")}
        same = sorted(f["name"] for f in manifest["files"] if f["name"].startswith("media/")
                      and f["name"].endswith(".zip") and f["sha256"] in v1_archives)
        assert same, f"{bucket}: no media archive of v2 kept v1's bytes"
        assert set(same) <= set(published["copied_files"]), (same, published)
        assert published["requests"].get("CopyObject", 0) == published["copied"] >= len(same)
        assert published["requests"].get("PutObject", 0) == published["uploaded"]  # small files: one PUT each
    catalog = stack.s3_client().get_object(Bucket=PUBLIC_BUCKET, Key="catalog/index.html")["Body"].read().decode()
    catalog_text = " ".join(catalog.replace('<span class="withdrawn">', "").replace("</span>", "").split())
    assert "v1: withdrawn, superseded by v2 (" in catalog_text, catalog_text
    assert f'href="../releases/{RELEASE_OK}/v1/README.md"' not in catalog  # its data objects are gone
    # The runbook's check finds nothing left under the withdrawn version (and lists a leftover).
    check = runbook.fill(runbook.command("ioarchive withdrawal-check"), {
        "<public bucket>": PUBLIC_BUCKET, "<member bucket>": MEMBER_BUCKET, "<release_id>": RELEASE_OK})
    done = runbook.run(check, stack.env())
    assert done.returncode == 0 and "no leftover object" in done.stdout, done.stdout + done.stderr
    stack.s3_client().put_object(Bucket=MEMBER_BUCKET, Key=v1_prefix + "media/leftover.zip", Body=b"x")
    done = runbook.run(check, stack.env())
    assert done.returncode == 1 and f"s3://{MEMBER_BUCKET}/{v1_prefix}media/leftover.zip" in done.stdout
    stack.s3_client().delete_object(Bucket=MEMBER_BUCKET, Key=v1_prefix + "media/leftover.zip")

    # No byte of either bucket names the retracted accounts (zip members, decoded Parquet too).
    n = needles(e2e_campaign, [small, large], key)
    assert pseudonym(key, small) in n.pseudonyms and n.names and n.media
    leaks = scan({f"{b}/{k}": v for b in (PUBLIC_BUCKET, MEMBER_BUCKET) for k, v in _all_objects(stack, b).items()}, n)
    assert leaks == []

    # ioarchive diff of v1 and v2 (the staged folders: v1's published data is withdrawn) names
    # exactly the removed accounts, posts and media, and nothing added.
    v1_dir, v2_dir = (stack.staging_root / RELEASE_OK / f"v{v}" for v in (1, 2))
    diff = _diff_json(stack, v1_dir, v2_dir, "unhashed")
    v1_tweets = pq.read_table(v1_dir / "release" / "unhashed" / "parquet" / "tweets").to_pylist()
    removed_posts = sorted((r["tweetid"] for r in v1_tweets if r["userid"] in {small, large}), key=int)
    v1_media = pq.read_table(v1_dir / "release" / "unhashed" / "parquet" / "media_index.parquet").to_pylist()
    removed_media = sorted(r["path_in_archive"] for r in v1_media if r["userid"] in {small, large})
    assert diff["accounts"] == {"added": [], "removed": sorted([small, large], key=int)}
    assert diff["posts"] == {"added": [], "removed": removed_posts} and removed_posts
    assert diff["media"]["added"] == [] and sorted(m["path_in_archive"] for m in diff["media"]["removed"]) == removed_media
    hashed = _diff_json(stack, v1_dir, v2_dir, "hashed")
    assert sorted(hashed["accounts"]["removed"]) == sorted([pseudonym(key, small), large])
    assert hashed["posts"]["removed"] == removed_posts
    # The registry keeps the retraction, so a later io_release of the same campaign (v3, a
    # correction) leaves them out: counted as "retracted", in no byte of v3.
    from ioarchive.gates.registry import retracted_accounts

    assert [r.account_id for r in retracted_accounts(RELEASE_OK, db_url=stack.registry_url)] == sorted([small, large])
    v3_run = f"{RELEASE_OK}__v3_{secrets.token_hex(3)}"
    conf = {"campaign_dir": str(e2e_campaign), "release_id": RELEASE_OK, "version": 3, "threshold": 5000,
            "archive_target_bytes": 512 * 1024, "reviewers": list(REVIEWERS),
            "changelog": "Corrected export of the same campaign."}
    client.trigger(DAG_ID, v3_run, conf, TRIGGER_USER)
    _wait_gate(stack, v3_run, "attribution_signoff")
    client.answer(DAG_ID, v3_run, "attribution_signoff", REVIEWER_A, "Approve", "same campaign")
    _wait_gate(stack, v3_run, "publication_signoff")
    client.answer(DAG_ID, v3_run, "publication_signoff", REVIEWER_B, "Approve", "v3 checked")
    assert client.wait_run(DAG_ID, v3_run, TRIGGER_USER, timeout=1200) == "success"
    _assert_every_task_succeeded_first_time(client, v3_run, [])
    v3_prefix = f"releases/{RELEASE_OK}/v3/"
    v3_objects = {f"{b}/{k}": v for b in (PUBLIC_BUCKET, MEMBER_BUCKET)
                  for k, v in _released_keys(stack, b, RELEASE_OK).items() if k.startswith(v3_prefix)}
    v3_manifest = json.loads(v3_objects[f"{MEMBER_BUCKET}/{v3_prefix}manifest.json"])
    v2_manifest = json.loads(_released_keys(stack, MEMBER_BUCKET, RELEASE_OK)[v2_prefix + "manifest.json"])
    assert v3_manifest["counts"] == v2_manifest["counts"]
    reconciliation = json.loads((stack.staging_root / RELEASE_OK / "v3" / "reconciliation.json").read_text())
    assert reconciliation["tables"]["accounts"]["excluded"].get("retracted") == 2, reconciliation
    assert scan(v3_objects, n) == []
    print(f"retraction e2e: {time.monotonic() - started:.0f} s")



def _retraction_drill(stack: Stack, e2e_campaign: Path) -> None:
    from support.retraction import pick_accounts

    if not RETRACTED:
        pytest.fail("the undisturbed retraction (PostgreSQL) did not complete: the drill has nothing to compare with")
    client: AirflowClient = stack.client  # type: ignore[attr-defined]
    if not _released_keys(stack, PUBLIC_BUCKET, RELEASE_OK).get(f"releases/{RELEASE_OK}/v1/manifest.json"):
        pytest.fail("v1 was not published by the drill's test_release_end_to_end: nothing to retract from")
    small, large = pick_accounts(e2e_campaign, fewest_media=True)
    client.wait_for_dag(RETRACT_DAG, TRIGGER_USER)
    client.unpause(RETRACT_DAG, TRIGGER_USER)
    killed: list[str] = []
    killed_keys: list[str] = []
    with _holds_armed(stack, drills.RETRACTION_POINTS):  # the release drill's .reached records go first
        run_id = f"retract_{RELEASE_OK}__{secrets.token_hex(3)}"
        client.trigger(RETRACT_DAG, run_id, {"release_id": RELEASE_OK, "account_ids": [small, large],
                                             "reason": RETRACTION_REASON, "reviewers": list(REVIEWERS)}, TRIGGER_USER)
        _wait_gate(stack, run_id, "retraction_signoff", RETRACT_DAG)
        client.answer(RETRACT_DAG, run_id, "retraction_signoff", REVIEWER_A, "Approve", "appeal confirmed")
        for point in (drills.EXTRACT, drills.PSEUDONYMIZE, drills.PACK_MEDIA, drills.RENDER):
            killed.append(_kill_and_clear(stack, run_id, point, killed_keys, RETRACT_DAG))
        _wait_gate(stack, run_id, "publication_signoff", RETRACT_DAG)
        client.answer(RETRACT_DAG, run_id, "publication_signoff", REVIEWER_B, "Approve", "v2 checked")
        for point in (drills.PUBLISH, drills.CATALOG, drills.WITHDRAW):
            killed.append(_kill_and_clear(stack, run_id, point, killed_keys, RETRACT_DAG))
        state = client.wait_run(RETRACT_DAG, run_id, TRIGGER_USER, timeout=1200)
        assert state == "success", client.task_states(RETRACT_DAG, run_id, TRIGGER_USER)
    assert killed[:4] == ["extract", "pseudonymize", "pack_media", "render"]
    assert killed[4] in {"publish_public", "publish_member"} and killed[5:] == ["update_catalog", "withdraw"]
    _assert_every_task_succeeded_first_time(client, run_id, killed_keys, RETRACT_DAG)
    for bucket, reference in RETRACTED.items():
        _assert_same_objects(bucket, _released_keys(stack, bucket, RELEASE_OK), reference)
