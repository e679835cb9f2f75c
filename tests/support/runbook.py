"""The on-call runbook's shell commands, as tests run them.

docs/runbook.md promises that every command in it works; tests/e2e runs each one against a real
stack through these helpers (placeholders such as ``<release_id>`` filled in), and
tests/test_runbook.py checks that no command in the runbook is left unexercised.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

RUNBOOK = Path(__file__).resolve().parents[2] / "docs" / "runbook.md"

EXERCISED = (
    "TOKEN=$(curl",  # with the clearTaskInstances curl below it: the rerun snippet
    "ioarchive investigations list",
    "ioarchive investigations set",
    "ioarchive verify s3://",
    "ioarchive verify <staging>",
    "python -m ioarchive.devtools.stack status",
    "ioarchive withdrawal-check",
)
"""Beginnings of the runbook's commands that tests/e2e/test_release_e2e.py runs."""


def shell_blocks(text: str | None = None) -> list[str]:
    """The ``sh`` code blocks of the runbook."""
    text = RUNBOOK.read_text() if text is None else text
    return re.findall(r"```sh\n(.*?)```", text, flags=re.S)


def commands(text: str | None = None) -> list[str]:
    """Every command of the runbook: one per line, continuation lines joined, comments dropped."""
    out: list[str] = []
    for block in shell_blocks(text):
        joined = re.sub(r"\\\n\s*", " ", block)
        for line in joined.splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()
            if line and not line.startswith("#"):
                out.append(line)
    return out


def rerun_snippet() -> str:
    """The shell block that gets a token and clears a task (as on-call does)."""
    return next(b for b in shell_blocks() if "clearTaskInstances" in b)


def command(prefix: str) -> str:
    """The one runbook command starting with ``prefix``."""
    found = [c for c in commands() if c.startswith(prefix)]
    if len(found) != 1:
        raise AssertionError(f"expected one runbook command starting with {prefix!r}, found {found}")
    return found[0]


def fill(template: str, values: dict[str, str]) -> str:
    """Replace ``<placeholder>`` (and literal tokens such as ``var/stack``) with values; none may remain."""
    for key, value in values.items():
        template = template.replace(key, value)
    left = re.findall(r"<[a-z_ ]+>", template)
    if left:
        raise AssertionError(f"placeholders left unfilled: {left} in {template!r}")
    return template


def run(script: str, env: dict[str, str], cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run ``script`` with bash as on-call would (``set -e``), capturing output."""
    return subprocess.run(["bash", "-euo", "pipefail", "-c", script], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, check=False)
