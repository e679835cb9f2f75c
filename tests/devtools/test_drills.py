"""The fault-drill hold point: inert in production, one shot, and it really parks a process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from ioarchive.devtools import drills


def test_hold_is_inert_without_a_drill_dir(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv(drills.DRILL_DIR_ENV, raising=False)
    (tmp_path / f"{drills.RENDER}.hold").write_text("")
    drills.hold(drills.RENDER)  # returns at once: no drill dir configured
    assert (tmp_path / f"{drills.RENDER}.hold").exists()


def test_hold_parks_until_killed_and_is_one_shot(tmp_path) -> None:
    (tmp_path / f"{drills.PUBLISH}.hold").write_text("")
    env = dict(os.environ, **{drills.DRILL_DIR_ENV: str(tmp_path)})
    code = f"from ioarchive.devtools import drills; drills.hold({drills.PUBLISH!r}); print('passed')"
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, text=True)
    reached = tmp_path / f"{drills.PUBLISH}.reached"
    deadline = time.monotonic() + 60
    while not (reached.exists() and reached.read_text()) and time.monotonic() < deadline:
        time.sleep(0.05)
    info = json.loads(reached.read_text())
    assert info["pid"] == proc.pid and info["point"] == drills.PUBLISH
    time.sleep(0.3)
    assert proc.poll() is None, "the process went on instead of holding"
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL
    assert not (tmp_path / f"{drills.PUBLISH}.hold").exists()
    # The rerun passes straight through: the hold was consumed.
    rerun = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert rerun.returncode == 0 and rerun.stdout.strip() == "passed"
