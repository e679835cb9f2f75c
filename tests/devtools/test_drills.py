"""The fault-drill hold point: inert in production, one shot, and it really parks a process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

from ioarchive.devtools import drills


class _FileAccess:
    """Records file-system use of ``drills.hold``: paths it builds, renames, opened files."""

    def __init__(self, monkeypatch) -> None:
        self.events: list[str] = []
        self.active = False
        real_path, real_rename = drills.Path, os.rename

        def spy_path(*parts):
            self.events.append(f"Path{parts}")
            return real_path(*parts)

        def spy_rename(src, dst, *args, **kwargs):
            self.events.append(f"rename {src} -> {dst}")
            return real_rename(src, dst, *args, **kwargs)

        monkeypatch.setattr(drills, "Path", spy_path)
        monkeypatch.setattr(os, "rename", spy_rename)
        sys.addaudithook(self._audit)  # hooks cannot be removed: ``active`` scopes this one

    def _audit(self, event: str, args: tuple) -> None:
        if self.active and event in {"open", "os.rename", "os.remove", "os.listdir", "os.scandir"}:
            self.events.append(f"{event} {args[0]!r}")


def _hold_in_thread(point: str) -> threading.Thread:
    thread = threading.Thread(target=drills.hold, args=(point,), daemon=True)
    thread.start()
    return thread


def test_hold_is_inert_without_a_drill_dir(tmp_path, monkeypatch) -> None:
    """Same folder, same ``.hold`` file as below, no ``IOARCHIVE_DRILL_DIR``: no file touched."""
    monkeypatch.delenv(drills.DRILL_DIR_ENV, raising=False)
    monkeypatch.chdir(tmp_path)  # a fallback to the working folder would find the hold file
    (tmp_path / f"{drills.RENDER}.hold").write_text("")
    access = _FileAccess(monkeypatch)
    access.active = True
    thread = _hold_in_thread(drills.RENDER)
    thread.join(timeout=60)
    access.active = False
    assert not thread.is_alive(), "hold() waited although no drill dir is configured"
    assert access.events == []
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{drills.RENDER}.hold"]


def test_hold_with_a_drill_dir_blocks_until_released(tmp_path, monkeypatch) -> None:
    """The control for the test above: with the drill dir set, the same setup parks the caller."""
    monkeypatch.setenv(drills.DRILL_DIR_ENV, str(tmp_path))
    monkeypatch.setenv(drills.HOLD_SECONDS_ENV, "600")
    monkeypatch.chdir(tmp_path)
    (tmp_path / f"{drills.RENDER}.hold").write_text("")
    thread = _hold_in_thread(drills.RENDER)
    reached = tmp_path / f"{drills.RENDER}.reached"
    deadline = time.monotonic() + 60
    while not (reached.exists() and reached.read_text()) and time.monotonic() < deadline:
        time.sleep(0.05)
    info = json.loads(reached.read_text())
    assert info["point"] == drills.RENDER and info["pid"] == os.getpid()
    assert not (tmp_path / f"{drills.RENDER}.hold").exists()
    thread.join(timeout=0.5)
    assert thread.is_alive(), "hold() returned before it was released"
    (tmp_path / f"{drills.RENDER}.release").write_text("")
    thread.join(timeout=60)
    assert not thread.is_alive(), "hold() did not return after the release file appeared"


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
