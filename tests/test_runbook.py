"""The runbook's commands are all exercised: adding one without a test fails here."""

from __future__ import annotations

import json

from support import runbook


def test_every_runbook_command_is_exercised_by_the_e2e_tests() -> None:
    cmds = runbook.commands()
    assert cmds, "no commands found: the parser or the runbook changed"
    rerun = runbook.commands(f"```sh\n{runbook.rerun_snippet()}```")
    unexercised = [c for c in cmds if c not in rerun and not any(c.startswith(p) for p in runbook.EXERCISED)]
    assert unexercised == [], f"runbook commands no test runs: {unexercised} (add them to support/runbook.EXERCISED and tests/e2e)"
    for prefix in runbook.EXERCISED:  # and every exercised prefix is still in the runbook
        assert any(c.startswith(prefix) for c in cmds), f"{prefix!r} is no longer in the runbook"


def test_rerun_snippet_clears_with_dry_run_off_and_downstream() -> None:
    snippet = runbook.rerun_snippet()
    body = snippet[snippet.index("-d '", snippet.index("clearTaskInstances")) + 4:]
    body = body[:body.index("'")]
    filled = json.loads(runbook.fill(body, {"<run id>": "r1", "<task id>": "extract"}))
    assert filled == {"dag_run_id": "r1", "task_ids": ["extract"], "include_downstream": True,
                      "only_failed": False, "dry_run": False}


def test_fill_refuses_leftover_placeholders() -> None:
    try:
        runbook.fill("ioarchive verify <staging>/x <release_id>", {"<staging>": "/s"})
    except AssertionError as exc:
        assert "<release_id>" in str(exc)
    else:
        raise AssertionError("a leftover placeholder was accepted")
